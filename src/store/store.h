/*
 * store.h - storage behind the repository: an ops table with one
 * implementation per database (sqlite.c now, postgres.c later).
 *
 * The store knows bytes, versions and index rows, not FHIR. It keeps every
 * version of every resource, a current-version pointer per (type, id),
 * index rows for search, the patient compartment and the audit log
 * (schema: DESIGN.md, "Storage"; migrations in each backend). SQL dialect
 * details never leave the backend: queries arrive as ehr_store_query
 * structures and the backend renders them.
 *
 * Threads: an ehr_store is shared; each thread uses its own
 * ehr_store_conn (ehr_store_connect), never two threads on one connection.
 */
#ifndef EHR_STORE_STORE_H
#define EHR_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

typedef struct ehr_store ehr_store;
typedef struct ehr_store_conn ehr_store_conn;

/* One version of one resource. Strings are borrowed. */
typedef struct ehr_store_rec {
    const char *type;
    const char *id;
    int64_t version;      /* 1, 2, ... */
    int64_t last_updated; /* microseconds since the epoch */
    bool deleted;
    const char *method;   /* the interaction that made it: "POST", "PUT", "PATCH", "DELETE" */
    const char *content;  /* compact JSON as served; NULL when deleted */
    size_t content_len;
} ehr_store_rec;

/* Kinds of index values (FHIR search parameter types). */
typedef enum {
    EHR_IDX_STRING,
    EHR_IDX_TOKEN,
    EHR_IDX_DATE,
    EHR_IDX_REFERENCE,
    EHR_IDX_QUANTITY,
    EHR_IDX_NUMBER,
    EHR_IDX_URI,
} ehr_idx_kind;

/*
 * One extracted search value. Which fields are used depends on kind:
 *   STRING:    s1 = normalised (lowercase, accents removed), s2 = exact
 *   TOKEN:     s1 = system ("" when none), s2 = code, s3 = display text
 *   DATE:      lo, hi = microseconds, the range the value covers
 *   REFERENCE: s1 = target type, s2 = target id, s3 = full reference text
 *   QUANTITY:  num = value, s1 = system, s2 = code/unit
 *   NUMBER:    num = value
 *   URI:       s1 = the uri
 */
struct ehr_store_value {
    ehr_idx_kind kind;
    const char *param;
    const char *s1, *s2, *s3;
    double num;
    int64_t lo, hi;
};

/* All index rows of one resource version, replacing the previous ones. */
typedef struct ehr_store_index {
    size_t n_values;
    const struct ehr_store_value *values;
    size_t n_patients;
    const char *const *patients; /* ids of the Patients whose compartment holds it */
} ehr_store_index;

/*
 * A search, as the backend must run it: over current, non-deleted
 * resources of type (NULL = all types), the AND of clauses, each the OR of
 * its conditions. Sorted by last_updated descending then id unless sort
 * says otherwise.
 */
typedef enum {
    EHR_MATCH_EQ,       /* exact equality of the fields given */
    EHR_MATCH_PREFIX,   /* STRING: s1 starts with */
    EHR_MATCH_CONTAINS, /* STRING: s1 contains */
    EHR_MATCH_RANGE,    /* DATE/NUMBER/QUANTITY: see lo/hi semantics below */
} ehr_match;

struct ehr_store_cond {
    ehr_idx_kind kind;
    const char *param;       /* "_id" and "_lastUpdated" address the resource itself */
    ehr_match match;
    const char *s1, *s2;     /* NULL = any (e.g. TOKEN code without system) */
    /* RANGE: row matches when its [lo,hi] satisfies op against the query's
       [lo,hi], op being a FHIR prefix: "eq","ne","lt","gt","le","ge","sa","eb","ap" */
    const char *op;
    int64_t lo, hi;
    double num_lo, num_hi;
};

struct ehr_store_clause {
    bool negate;             /* :not / :missing style: no row matches */
    size_t n_conds;
    const struct ehr_store_cond *conds;
};

/*
 * Access limits from the authorization decision (repo.h, ehr_repo_access),
 * applied inside the query so that totals and pages count only what the
 * caller may see. A row is visible when some group admits it: its type is
 * one of the group's types (or the group names none: any type) and, when
 * the group is limited, it is in the compartment of one of the patients.
 * For history, the compartment is that of each version, not the current one.
 */
struct ehr_store_access_group {
    size_t n_types;
    const char *const *types;    /* n_types 0: any type */
    bool limited;
    size_t n_patients;
    const char *const *patients; /* Patient ids */
};

typedef struct ehr_store_access {
    size_t n_groups;             /* 0 groups: nothing is visible */
    const struct ehr_store_access_group *groups;
} ehr_store_access;

typedef struct ehr_store_query {
    const char *type;        /* NULL: every type */
    size_t n_clauses;
    const struct ehr_store_clause *clauses;
    const char *compartment_patient; /* limit to this patient's compartment, or NULL */
    size_t offset, count;    /* paging; count 0 = only the total */
    bool want_total;
    const ehr_store_access *access; /* NULL: no limit */
} ehr_store_query;

/* Called once per match, with the current version's content. Non-OK stops. */
typedef ehr_status (*ehr_store_row_cb)(void *ctx, const ehr_store_rec *rec);

/* History selection: type and id may be NULL (system or type level). */
typedef struct ehr_store_history_q {
    const char *type, *id;
    int64_t since;           /* 0 = no lower bound; versions with last_updated >= since */
    int64_t at_or_before;    /* 0 = no upper bound (_at / paging snapshot) */
    size_t offset, count;
    const ehr_store_access *access; /* NULL: no limit */
} ehr_store_history_q;

/* Called with each patient id of a compartment (compartment_of). */
typedef ehr_status (*ehr_store_patient_cb)(void *ctx, const char *patient);

/* One small document of a module's own state (auth_object table). */
typedef struct ehr_store_obj {
    const char *kind, *key, *owner; /* owner may be NULL */
    int64_t expires;                /* microseconds since the epoch; 0 = never */
    const char *doc;                /* JSON text */
    size_t doc_len;
} ehr_store_obj;
typedef ehr_status (*ehr_store_obj_cb)(void *ctx, const ehr_store_obj *obj);

/* Selection of audit records (audit_list). 0/NULL fields match all. */
typedef struct ehr_store_audit_q {
    int64_t from_seq;        /* records with seq >= from_seq */
    int64_t since, until;    /* time range, microseconds */
    const char *text;        /* the event JSON contains this text (a cheap prefilter) */
    size_t limit;            /* 0: no limit */
    bool newest_first;
} ehr_store_audit_q;
typedef ehr_status (*ehr_store_audit_cb)(void *ctx, int64_t seq, int64_t time, const char *hash,
                                          const char *event, size_t len);

/* The backend interface. Every function reports detail through err. */
struct ehr_store_ops {
    const char *name;
    ehr_status (*open)(const char *target, ehr_store **out, ehr_err *err);
    void (*close)(ehr_store *s);
    ehr_status (*connect)(ehr_store *s, ehr_store_conn **out, ehr_err *err);
    void (*disconnect)(ehr_store_conn *c);
    ehr_status (*begin)(ehr_store_conn *c, bool write, ehr_err *err);
    ehr_status (*commit)(ehr_store_conn *c, ehr_err *err);
    void (*rollback)(ehr_store_conn *c);
    /* nested scopes inside a write transaction: a failed part is undone
       alone (rollback_to), a good one kept (release) */
    ehr_status (*savepoint)(ehr_store_conn *c, ehr_err *err);
    ehr_status (*release)(ehr_store_conn *c, ehr_err *err);
    ehr_status (*rollback_to)(ehr_store_conn *c, ehr_err *err);
    /* current version of type/id; ENOTFOUND when never created. A deleted
       resource is found with rec->deleted set. content goes into out. */
    ehr_status (*current)(ehr_store_conn *c, const char *type, const char *id, ehr_store_rec *rec,
                          ehr_buf *content, ehr_err *err);
    ehr_status (*version)(ehr_store_conn *c, const char *type, const char *id, int64_t version,
                          ehr_store_rec *rec, ehr_buf *content, ehr_err *err);
    /* write a new version and make it current; idx replaces the index rows
       (NULL for a delete, which removes them) */
    ehr_status (*put)(ehr_store_conn *c, const ehr_store_rec *rec, const ehr_store_index *idx,
                      ehr_err *err);
    ehr_status (*history)(ehr_store_conn *c, const ehr_store_history_q *q, ehr_store_row_cb cb,
                          void *ctx, size_t *total, ehr_err *err);
    ehr_status (*search)(ehr_store_conn *c, const ehr_store_query *q, ehr_store_row_cb cb, void *ctx,
                         size_t *total, ehr_err *err);
    /* append one audit record (event is JSON); the backend chains hashes */
    ehr_status (*audit_append)(ehr_store_conn *c, int64_t time, const char *event, size_t len,
                               ehr_err *err);
    /* check the audit chain; on a break, *bad_seq names the first bad record */
    ehr_status (*audit_verify)(ehr_store_conn *c, int64_t *n_records, int64_t *bad_seq,
                               ehr_err *err);

    /* -- added with access control (src/store/sqlite_access.c) -- */

    /* The patients whose compartment held version `version` of type/id
       (0 = the current version), one cb call each. ENOTFOUND when there is
       no such version. */
    ehr_status (*compartment_of)(ehr_store_conn *c, const char *type, const char *id,
                                 int64_t version, ehr_store_patient_cb cb, void *ctx,
                                 ehr_err *err);
    /* audit records in seq order (or newest first), filtered by q */
    ehr_status (*audit_list)(ehr_store_conn *c, const ehr_store_audit_q *q, ehr_store_audit_cb cb,
                             void *ctx, ehr_err *err);
    /* Module state as small JSON documents keyed by (kind, key), with an
       optional owner to list by and an expiry after which they are gone. */
    ehr_status (*obj_get)(ehr_store_conn *c, const char *kind, const char *key, ehr_buf *doc,
                          ehr_err *err);                     /* ENOTFOUND */
    ehr_status (*obj_put)(ehr_store_conn *c, const ehr_store_obj *obj, bool create_only,
                          ehr_err *err);                     /* EEXISTS when create_only */
    ehr_status (*obj_del)(ehr_store_conn *c, const char *kind, const char *key, ehr_err *err);
    /* owner NULL: all of the kind; expired ones are skipped */
    ehr_status (*obj_list)(ehr_store_conn *c, const char *kind, const char *owner,
                           ehr_store_obj_cb cb, void *ctx, ehr_err *err);
    /* delete the expired documents of every kind */
    ehr_status (*obj_purge)(ehr_store_conn *c, ehr_err *err);
    /* How durable the next commits on this connection are: full (the
       default) syncs the log to disk at each commit; otherwise a commit is
       written to the log and survives the process, and reaches the disk at
       the next full commit or flush (sqlite: synchronous FULL / NORMAL in
       WAL mode). */
    ehr_status (*set_sync)(ehr_store_conn *c, bool full, ehr_err *err);
    /* Make everything committed so far durable (sqlite: a WAL checkpoint,
       which syncs the log first). */
    ehr_status (*flush)(ehr_store_conn *c, ehr_err *err);
};

struct ehr_store {
    const struct ehr_store_ops *ops;
};

struct ehr_store_conn {
    ehr_store *store;
};

extern const struct ehr_store_ops ehr_store_sqlite_ops;
/* PostgreSQL (postgres.c): target is a libpq conninfo or URI */
extern const struct ehr_store_ops ehr_store_postgres_ops;

/*
 * Open a store. target is "sqlite:PATH", a plain PATH (SQLite), or
 * "postgres:CONNINFO" (a libpq connection string or URI). Runs migrations. Caller frees with
 * ehr_store_close.
 */
ehr_status ehr_store_open(const char *target, ehr_store **out, ehr_err *err);
void ehr_store_close(ehr_store **s);

/* Thin wrappers over the ops table. */
ehr_status ehr_store_connect(ehr_store *s, ehr_store_conn **out, ehr_err *err);
void ehr_store_disconnect(ehr_store_conn **c);

#define EHR_STORE_CALL(c, fn, ...) ((c)->store->ops->fn((c), ##__VA_ARGS__))

#endif
