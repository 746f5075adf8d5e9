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
    const char *method;  /* the interaction that made it: "POST", "PUT", "PATCH", "DELETE" */
    const char *content; /* compact JSON as served; NULL when deleted */
    size_t content_len;
    /* search only: the row's position in the default order (an opaque
       cursor for paging links, ehr_store_query.after/before), and whether
       it came from _include/_revinclude rather than the match */
    int64_t key;
    bool included;
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
    EHR_IDX_TEXT, /* added with search: full text of _text and _content */
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
 *   TEXT:      s1 = words to index as full text (param "_text": the
 *              narrative; "_content": every string of the resource)
 */
struct ehr_store_value {
    ehr_idx_kind kind;
    const char *param; /* the parameter code; derived rows use "code:identifier"
                          (Reference.identifier of a reference parameter),
                          "code:of-type" (Identifier: s1 = type system,
                          s2 = "typecode|value") and "code$N" (component N of
                          the composite code, rows of one item sharing grp) */
    int grp;           /* composite: the item the component row belongs to */
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
 * its conditions. Sorted by position (the order in which resources were
 * first created, rec.key) unless sort says otherwise. The rendering of
 * every field below is in sqlite_search.c (and postgres.c).
 */
typedef enum {
    EHR_MATCH_EQ,        /* exact equality of the fields given */
    EHR_MATCH_PREFIX,    /* STRING: s1 starts with; URI: the row's uri starts with s1 (:below) */
    EHR_MATCH_CONTAINS,  /* STRING: s1 contains */
    EHR_MATCH_RANGE,     /* DATE/NUMBER/QUANTITY: see lo/hi semantics below */
    EHR_MATCH_ANY,       /* any row of param exists (:missing=false; negated: :missing=true) */
    EHR_MATCH_ABOVE,     /* URI: s1 starts with the row's uri (:above) */
    EHR_MATCH_TEXT,      /* TOKEN: the display text (s3, normalised) starts with s1 (:text) */
    EHR_MATCH_CHAIN,     /* REFERENCE: the target is a current resource of sub->type
                            matching sub's clauses (subject:Patient.name=x) */
    EHR_MATCH_HAS,       /* the resource is the target of reference param of a
                            current resource of sub->type matching sub (_has) */
    EHR_MATCH_COMPOSITE, /* one item has every component: parts[i] applies to the rows
                            of param "param$i" with the same grp */
} ehr_match;

struct ehr_store_query;

struct ehr_store_cond {
    ehr_idx_kind kind;
    const char *param; /* "_id" and "_lastUpdated" address the resource itself */
    ehr_match match;
    const char *s1, *s2; /* NULL = any (e.g. TOKEN code without system) */
    const char *s3;      /* REFERENCE: the reference text to match exactly
                            (canonical URLs, absolute URLs); NULL = unused */
    /* RANGE: row matches when its [lo,hi] satisfies op against the query's
       [lo,hi], op being a FHIR prefix: "eq","ne","lt","gt","le","ge","sa","eb","ap" */
    const char *op;
    int64_t lo, hi;
    double num_lo, num_hi;
    /* QUANTITY: also match rows whose canonical form (s1 = UCUM, s2 = canon
       unit) lies in [canon_lo, canon_hi] under op; canon NULL = not used */
    const char *canon;
    double canon_lo, canon_hi;
    /* CHAIN, HAS: the sub-search (type, clauses; nothing else is read) */
    const struct ehr_store_query *sub;
    /* COMPOSITE: one condition per component, in component order */
    size_t n_parts;
    const struct ehr_store_cond *parts;
};

struct ehr_store_clause {
    bool negate; /* :not / :missing style: no row matches */
    size_t n_conds;
    const struct ehr_store_cond *conds;
};

/* A sort key (_sort): a parameter ("_id", "_lastUpdated" or an indexed
 * one); resources without a value come last either way. */
struct ehr_store_sort {
    ehr_idx_kind kind;
    const char *param;
    bool desc;
};

/*
 * _include (reverse false): the resources that the matches refer to through
 * reference param of the matches' type (param NULL: through any reference),
 * limited to target type target (NULL: any). _revinclude (reverse true):
 * the resources of type source whose param (NULL: any) refers to a match.
 * iterate: apply again to what the includes found, up to a bounded depth.
 */
struct ehr_store_include {
    bool reverse, iterate;
    const char *source; /* the referring type (_include: the matches' type or NULL) */
    const char *param;
    const char *target;
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
    const char *const *types; /* n_types 0: any type */
    bool limited;
    size_t n_patients;
    const char *const *patients; /* Patient ids */
};

typedef struct ehr_store_access {
    size_t n_groups; /* 0 groups: nothing is visible */
    const struct ehr_store_access_group *groups;
} ehr_store_access;

typedef struct ehr_store_query {
    const char *type; /* NULL: every type */
    size_t n_clauses;
    const struct ehr_store_clause *clauses;
    const char *compartment_patient; /* limit to this patient's compartment, or NULL */
    size_t offset, count;            /* paging; count 0 = only the total */
    bool want_total;
    const ehr_store_access *access; /* NULL: no limit (also limits chains,
                                       _has and includes) */
    /* -- added with search (src/store/sqlite_search.c) -- */
    size_t n_sort; /* 0: the default order, by position (rec.key) */
    const struct ehr_store_sort *sort;
    /* keyset paging in the default order: only rows with key > after
       (after > 0), or the last `count` rows with key < before (before > 0),
       still handed out in ascending order; offset is then ignored */
    int64_t after, before;
    size_t n_includes; /* after the page: its includes, rec.included set */
    const struct ehr_store_include *includes;
    size_t max_includes; /* most included rows handed out (0: none) */
    bool *more;          /* when set: told whether matches remain after
                            the page (for next links) */
    size_t total_limit;  /* > 0: count at most this many matches; a total
                            equal to it then means "at least" */
} ehr_store_query;

/* Called once per match, with the current version's content. Non-OK stops. */
typedef ehr_status (*ehr_store_row_cb)(void *ctx, const ehr_store_rec *rec);

/* History selection: type and id may be NULL (system or type level). */
typedef struct ehr_store_history_q {
    const char *type, *id;
    int64_t since;        /* 0 = no lower bound; versions with last_updated >= since */
    int64_t at_or_before; /* 0 = no upper bound (_at / paging snapshot) */
    size_t offset, count;
    const ehr_store_access *access; /* NULL: no limit */
} ehr_store_history_q;

/*
 * A scan of current resources in storage-key order (bulk export): stream
 * them all, or resume after the last key handed out. Filters combine with
 * AND; empty ones match everything.
 */
typedef struct ehr_store_scan_q {
    size_t n_types;
    const char *const *types; /* only these types */
    int64_t since;            /* last_updated >= since; 0: any */
    int64_t after_key;        /* resume: keys greater than this (0: from the start) */
    size_t limit;             /* at most this many rows; 0: no limit */
    bool in_compartments;     /* only resources in some patient's compartment ... */
    size_t n_patients;        /* ... of one of these patients (0: any patient) */
    const char *const *patients;
    const ehr_store_access *access; /* NULL: no limit */
} ehr_store_scan_q;

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
    int64_t from_seq;     /* records with seq >= from_seq */
    int64_t since, until; /* time range, microseconds */
    const char *text;     /* the event JSON contains this text (a cheap prefilter) */
    size_t limit;         /* 0: no limit */
    bool newest_first;
} ehr_store_audit_q;
typedef ehr_status (*ehr_store_audit_cb)(void *ctx, int64_t seq, int64_t time, const char *hash,
                                         const char *event, size_t len);

/*
 * HL7 v2 messages, raw as they came in or went out (src/hl7v2/; table
 * hl7_message, migration 4). An inbound message is stored before it is
 * acknowledged; (direction, peer, control_id) is unique, so a repeated
 * control id from the same sender is recognised (messages stored with
 * status "rejected", which could not be read, take no part in this). Outbound messages wait
 * here ("queued") until their destination acknowledges them.
 */
typedef struct ehr_store_hl7 {
    int64_t id;             /* assigned by hl7_put */
    const char *direction;  /* "in" or "out" */
    const char *peer;       /* in: the sender (MSH-3^MSH-4); out: "host:port" */
    const char *control_id; /* MSH-10 */
    const char *type;       /* "ADT^A01" */
    const char *status;     /* in: received, applied, error, rejected;
                               out: queued, sent, failed */
    const char *ack_code;   /* MSA-1 of the ACK sent (in) or received (out); NULL: none */
    const char *outcome;    /* what happened, for people (never PHI); NULL: none */
    int64_t received;       /* microseconds since the epoch */
    int64_t processed;      /* 0: not yet */
    int64_t attempts;       /* out: sends tried */
    int64_t next_try;       /* out: not before (microseconds); 0: now */
    const char *raw;        /* the message bytes */
    size_t raw_len;
    const char *ack; /* the ACK bytes, NULL: none */
    size_t ack_len;
} ehr_store_hl7;

/* Selection for hl7_list: 0/NULL fields match all; newest first unless oldest_first. */
typedef struct ehr_store_hl7_q {
    int64_t id;
    const char *direction, *peer, *control_id, *status;
    int64_t due_before; /* out: next_try <= due_before */
    size_t limit;       /* 0: no limit */
    bool oldest_first;
    bool with_raw; /* fill raw and ack (else NULL) */
} ehr_store_hl7_q;
typedef ehr_status (*ehr_store_hl7_cb)(void *ctx, const ehr_store_hl7 *m);

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
    ehr_status (*search)(ehr_store_conn *c, const ehr_store_query *q, ehr_store_row_cb cb,
                         void *ctx, size_t *total, ehr_err *err);
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
                                 int64_t version, ehr_store_patient_cb cb, void *ctx, ehr_err *err);
    /* audit records in seq order (or newest first), filtered by q */
    ehr_status (*audit_list)(ehr_store_conn *c, const ehr_store_audit_q *q, ehr_store_audit_cb cb,
                             void *ctx, ehr_err *err);
    /* Module state as small JSON documents keyed by (kind, key), with an
       optional owner to list by and an expiry after which they are gone. */
    ehr_status (*obj_get)(ehr_store_conn *c, const char *kind, const char *key, ehr_buf *doc,
                          ehr_err *err); /* ENOTFOUND */
    ehr_status (*obj_put)(ehr_store_conn *c, const ehr_store_obj *obj, bool create_only,
                          ehr_err *err); /* EEXISTS when create_only */
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

    /* -- added with search (src/store/sqlite.c) -- */

    /* Replace the index rows and compartment of the current version of
       type/id with idx, without a new version (ehr reindex, after a change
       of search parameters). A deleted resource keeps none. ENOTFOUND when
       type/id never existed. Inside a write transaction. */
    ehr_status (*reindex)(ehr_store_conn *c, const char *type, const char *id,
                          const ehr_store_index *idx, ehr_err *err);

    /* -- added with bulk export (src/store/sqlite.c, s_scan) -- */

    /* Rows of q in key order, cb once each (deleted ones are skipped);
       *last_key is the key of the row being handed to cb, so that a
       stopped scan resumes with after_key = *last_key. Memory stays flat
       whatever the number of rows. */
    ehr_status (*scan)(ehr_store_conn *c, const ehr_store_scan_q *q, ehr_store_row_cb cb, void *ctx,
                       int64_t *last_key, ehr_err *err);
    /* -- added with HL7 v2 (src/store/sqlite_hl7.c); each runs in the
       caller's transaction, or commits durably on its own outside one -- */
    /* Store a message; m->id is ignored, *id receives the new row's. When
       (direction, peer, control_id) is already stored: EEXISTS, *id the
       stored one's. */
    ehr_status (*hl7_put)(ehr_store_conn *c, const ehr_store_hl7 *m, int64_t *id, ehr_err *err);
    /* Record what became of message m->id: status, ack_code, outcome, ack,
       processed, attempts, next_try (the other fields are ignored).
       ENOTFOUND for an unknown id. */
    ehr_status (*hl7_update)(ehr_store_conn *c, const ehr_store_hl7 *m, ehr_err *err);
    /* The messages q selects, one cb call each (strings valid during the call). */
    ehr_status (*hl7_list)(ehr_store_conn *c, const ehr_store_hl7_q *q, ehr_store_hl7_cb cb,
                           void *ctx, ehr_err *err);
    /* -- added with the audit journal (src/audit/journal.h; migration 6) -- */

    /* How far the audit journal has been applied into the audit table: every
       record of journal generation *generation before byte *offset, and
       every record of older generations (0, 0 when never). Read it inside
       the write transaction that applies more, and set it there, so that the
       records and the mark commit together (a replay is then idempotent).
       The journal serves a local SQLite database only (the repository never
       calls these on another backend); postgres.c is to mirror them. */
    ehr_status (*audit_applied_get)(ehr_store_conn *c, int64_t *generation, int64_t *offset,
                                    ehr_err *err);
    ehr_status (*audit_applied_set)(ehr_store_conn *c, int64_t generation, int64_t offset,
                                    ehr_err *err);
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
