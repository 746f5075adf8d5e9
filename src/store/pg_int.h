/*
 * pg_int.h - private to the PostgreSQL backend: what postgres.c (session,
 * transactions, writes, the audit chain, migrations) shares with
 * postgres_query.c (search, history, compartments, module documents,
 * audit reads).
 *
 * Every statement goes through pg_run / pg_query, which map PostgreSQL
 * errors to ehr statuses: a lost connection, a server shutting down or
 * starting up, a serialization failure or a deadlock is EHR_EBUSY (HTTP
 * 503, "transient"), never a success. The connection is re-established at
 * the next transaction.
 */
#ifndef EHR_STORE_PG_INT_H
#define EHR_STORE_PG_INT_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "core/arena.h"
#include "store/store.h"

/* Statements prepared once per session (on first use). */
enum pg_stmt {
    PS_CURRENT,
    PS_VERSION,
    PS_PUT,
    PS_REINDEX,
    PS_AJ_GET,
    PS_AJ_SET,
    PS_AUDIT_INSERT,
    PS_COMP_CURRENT,
    PS_COMP_VERSION,
    PS_VERSION_EXISTS,
    PS_OBJ_GET,
    PS_OBJ_INSERT,
    PS_OBJ_REPLACE,
    PS_OBJ_DEL,
    PS_OBJ_LIST,
    PS_OBJ_LIST_OWNER,
    PS_OBJ_PURGE,
    PS_COUNT
};

struct pg_store {
    ehr_store base;
    char *conninfo;
    char *put_sql;     /* built from the index table description (postgres.c) */
    char *reindex_sql; /* likewise */
};

struct pg_conn {
    ehr_store_conn base;
    PGconn *pg;
    bool prepared[PS_COUNT];
    bool in_tx;           /* between begin and commit/rollback */
    bool tx_started;      /* its BEGIN has been sent */
    bool commit_inflight; /* a read transaction's COMMIT awaits its answer */
    /* transaction control queued for the next round trip (postgres.c) */
#define PG_MAX_PENDING 48
    const char *pending[PG_MAX_PENDING];
    int n_pending;
    bool pending_overflow;
    bool write_tx;  /* the transaction holds the write lock */
    bool sync_full; /* set_sync */
};

/*
 * A statement built at run time: SQL text with $n placeholders and the
 * parameter values, all as text (copies live in the arena).
 */
struct pg_q {
    ehr_buf sql;
    ehr_arena *a;
    int n, cap;
    const char **vals;
    bool oom;
};

void pgq_init(struct pg_q *q);
void pgq_free(struct pg_q *q);
/* Add a parameter; each returns its number n (for "$n"). */
int pgq_text(struct pg_q *q, const char *s);
int pgq_int(struct pg_q *q, int64_t v);
int pgq_real(struct pg_q *q, double v);
/* a text[] literal of the strings (NULL entries are SQL NULL) */
int pgq_array(struct pg_q *q, const char *const *v, size_t n);

/* Append a text[] array literal of v to b. */
ehr_status pg_array_literal(ehr_buf *b, const char *const *v, size_t n);

/* Map a failed result (or NULL) to a status and message. Clears res. */
ehr_status pg_fail(struct pg_conn *c, PGresult *res, ehr_err *err, const char *what);

/*
 * Run prepared statement id with text parameters (lens/fmts may be NULL:
 * all text). Returns the result (caller PQclear) with *st EHR_OK, or NULL
 * with *st set. read_only: safe to retry once on a fresh connection when
 * outside a transaction.
 */
PGresult *pg_prepared(struct pg_conn *c, enum pg_stmt id, int n, const char *const *vals,
                      const int *lens, const int *fmts, bool read_only, ehr_status *st,
                      ehr_err *err, const char *what);
/* Run a dynamic statement, text parameters. */
PGresult *pg_dynamic(struct pg_conn *c, struct pg_q *q, bool read_only, ehr_status *st,
                     ehr_err *err, const char *what);

/* "%lld" into a caller buffer, for parameters. */
const char *pg_i64(char buf[24], int64_t v);
int64_t pg_get_i64(const PGresult *r, int row, int col);

/* How each kind of index value is stored: its table and, in order, the
   columns after (key, type) with their SQL type and the ehr_store_value
   field they hold. The write (one statement per put) and the search
   rendering are both built from this table. */
enum pg_field { PF_PARAM, PF_S1, PF_S2, PF_S3, PF_NUM, PF_LO, PF_HI, PF_GRP };
struct pg_col {
    const char *name, *sqltype;
    enum pg_field field;
};
struct pg_kind {
    const char *table;
    int n_cols;
    struct pg_col cols[5];
};
#define PG_N_KINDS 8
extern const struct pg_kind ehr_pg__kinds[PG_N_KINDS];

/* postgres_query.c */
extern const char *const ehr_pg__query_sql[PS_COUNT];
ehr_status ehr_pg__history(ehr_store_conn *c, const ehr_store_history_q *q, ehr_store_row_cb cb,
                           void *ctx, size_t *total, ehr_err *err);
ehr_status ehr_pg__search(ehr_store_conn *c, const ehr_store_query *q, ehr_store_row_cb cb,
                          void *ctx, size_t *total, ehr_err *err);
ehr_status ehr_pg__compartment_of(ehr_store_conn *c, const char *type, const char *id,
                                  int64_t version, ehr_store_patient_cb cb, void *ctx,
                                  ehr_err *err);
ehr_status ehr_pg__audit_list(ehr_store_conn *c, const ehr_store_audit_q *q, ehr_store_audit_cb cb,
                              void *ctx, ehr_err *err);
ehr_status ehr_pg__obj_get(ehr_store_conn *c, const char *kind, const char *key, ehr_buf *doc,
                           ehr_err *err);
ehr_status ehr_pg__obj_put(ehr_store_conn *c, const ehr_store_obj *obj, bool create_only,
                           ehr_err *err);
ehr_status ehr_pg__obj_del(ehr_store_conn *c, const char *kind, const char *key, ehr_err *err);
ehr_status ehr_pg__obj_list(ehr_store_conn *c, const char *kind, const char *owner,
                            ehr_store_obj_cb cb, void *ctx, ehr_err *err);
ehr_status ehr_pg__obj_purge(ehr_store_conn *c, ehr_err *err);
ehr_status ehr_pg__scan(ehr_store_conn *c, const ehr_store_scan_q *q, ehr_store_row_cb cb,
                        void *ctx, int64_t *last_key, ehr_err *err);
ehr_status ehr_pg__audit_applied_get(ehr_store_conn *c, int64_t *generation, int64_t *offset,
                                     ehr_err *err);
ehr_status ehr_pg__audit_applied_set(ehr_store_conn *c, int64_t generation, int64_t offset,
                                     ehr_err *err);
/* postgres_hl7.c */
ehr_status ehr_pg__hl7_put(ehr_store_conn *c, const ehr_store_hl7 *m, int64_t *id, ehr_err *err);
ehr_status ehr_pg__hl7_update(ehr_store_conn *c, const ehr_store_hl7 *m, ehr_err *err);
ehr_status ehr_pg__hl7_list(ehr_store_conn *c, const ehr_store_hl7_q *q, ehr_store_hl7_cb cb,
                            void *ctx, ehr_err *err);
/* postgres_search.c; access limits as SQL (postgres_query.c) over alias a:
   its type, and its key (versions false) or version rid (true) */
void ehr_pg__access_sql(struct pg_q *q, ehr_buf *w, const ehr_store_access *ac,
                        const char *type_col, bool versions, const char *id_col);

#endif
