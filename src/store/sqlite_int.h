/*
 * sqlite_int.h - private to the SQLite backend: what sqlite.c shares with
 * sqlite_access.c (per-version compartments, module documents, audit reads).
 */
#ifndef EHR_STORE_SQLITE_INT_H
#define EHR_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "store/store.h"

/* Statements of sqlite_access.c, prepared on first use per connection. */
enum sqlite_xstmt {
    SX_VC_INSERT,
    SX_VC_COPY,
    SX_COMP_CURRENT,
    SX_COMP_VERSION,
    SX_VERSION_EXISTS,
    SX_OBJ_GET,
    SX_OBJ_INSERT,
    SX_OBJ_REPLACE,
    SX_OBJ_DEL,
    SX_OBJ_LIST,
    SX_OBJ_LIST_OWNER,
    SX_OBJ_PURGE,
    SX_AJ_GET,
    SX_AJ_SET,
    SX_COUNT
};

struct sqlite_search_cache; /* sqlite_search.c: prepared search statements */

struct sqlite_xconn {
    sqlite3 *db;
    sqlite3_stmt *stmts[SX_COUNT];
    struct sqlite_search_cache *search_cache;
};

/* Finalize the cached search statements of a connection (on disconnect). */
void ehr_sqlite__search_cache_free(struct sqlite_xconn *x);

/* The extra part of a connection (defined in sqlite.c). */
struct sqlite_xconn *ehr_sqlite__xconn(ehr_store_conn *c);
/* Finalize the extra statements (on disconnect). */
void ehr_sqlite__xconn_close(struct sqlite_xconn *x);

/*
 * Record the compartment of a new version (rid): the patients of idx, or,
 * for a deletion (idx NULL), those of the version before it.
 */
ehr_status ehr_sqlite__version_compartment(struct sqlite_xconn *x, sqlite3_int64 rid,
                                           const ehr_store_rec *rec, const ehr_store_index *idx,
                                           ehr_err *err);

/* Append a JSON array of the strings to b (for json_each in queries). */
ehr_status ehr_sqlite__json_array(ehr_buf *b, const char *const *v, size_t n);

ehr_status ehr_sqlite__compartment_of(ehr_store_conn *c, const char *type, const char *id,
                                      int64_t version, ehr_store_patient_cb cb, void *ctx,
                                      ehr_err *err);
ehr_status ehr_sqlite__audit_list(ehr_store_conn *c, const ehr_store_audit_q *q,
                                  ehr_store_audit_cb cb, void *ctx, ehr_err *err);
ehr_status ehr_sqlite__obj_get(ehr_store_conn *c, const char *kind, const char *key, ehr_buf *doc,
                               ehr_err *err);
ehr_status ehr_sqlite__obj_put(ehr_store_conn *c, const ehr_store_obj *obj, bool create_only,
                               ehr_err *err);
ehr_status ehr_sqlite__obj_del(ehr_store_conn *c, const char *kind, const char *key, ehr_err *err);
ehr_status ehr_sqlite__obj_list(ehr_store_conn *c, const char *kind, const char *owner,
                                ehr_store_obj_cb cb, void *ctx, ehr_err *err);
ehr_status ehr_sqlite__obj_purge(ehr_store_conn *c, ehr_err *err);
ehr_status ehr_sqlite__set_sync(ehr_store_conn *c, bool full, ehr_err *err);
/* The search of the SQLite backend (sqlite_search.c). */
ehr_status ehr_sqlite__search(ehr_store_conn *c, const ehr_store_query *q, ehr_store_row_cb cb,
                              void *ctx, size_t *total, ehr_err *err);
ehr_status ehr_sqlite__flush(ehr_store_conn *c, ehr_err *err);
ehr_status ehr_sqlite__audit_applied_get(ehr_store_conn *c, int64_t *generation, int64_t *offset,
                                         ehr_err *err);
ehr_status ehr_sqlite__audit_applied_set(ehr_store_conn *c, int64_t generation, int64_t offset,
                                         ehr_err *err);

/* HL7 v2 messages (sqlite_hl7.c) */
ehr_status ehr_sqlite__hl7_put(ehr_store_conn *c, const ehr_store_hl7 *m, int64_t *id,
                               ehr_err *err);
ehr_status ehr_sqlite__hl7_update(ehr_store_conn *c, const ehr_store_hl7 *m, ehr_err *err);
ehr_status ehr_sqlite__hl7_list(ehr_store_conn *c, const ehr_store_hl7_q *q, ehr_store_hl7_cb cb,
                                void *ctx, ehr_err *err);

#endif
