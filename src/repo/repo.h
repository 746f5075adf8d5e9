/*
 * repo.h - the repository: the one door to clinical data.
 *
 * Every read and write of FHIR resources goes through these functions,
 * whoever the caller (REST, HL7 v2, import, jobs). A write validates the
 * resource, assigns id, meta.versionId and meta.lastUpdated, serialises the
 * compact JSON exactly as it will be served, extracts search index rows and
 * the patient compartment, stores it and appends an audit record, all in
 * one storage transaction. A read returns the stored bytes unparsed.
 *
 * Threads: an ehr_repo is shared by all threads; each thread gets its own
 * storage connection, opened on first use and closed when the thread ends.
 */
#ifndef EHR_REPO_REPO_H
#define EHR_REPO_REPO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "fhir/outcome.h"
#include "search/search.h"
#include "store/store.h"

typedef struct ehr_repo ehr_repo;

/*
 * Access control. The auth module decides, the repository enforces: for
 * every interaction (including each entry of a transaction) the repository
 * asks the caller's policy whether it may do that kind of access on that
 * resource type, and with which patient limit; it then applies the limit
 * inside the storage query (search, history: totals and pages count only
 * what the caller may see) or to the resource itself (read, vread, update,
 * patch, delete). A resource outside the limit answers exactly as one that
 * does not exist (ENOTFOUND, "X/id is not known"); a write that would place
 * a resource in a compartment outside the limit is EFORBIDDEN. Every
 * decision, allowed or denied, is audited.
 */
typedef enum {
    EHR_ACCESS_READ,   /* read, vread, history of one resource (SMART "r") */
    EHR_ACCESS_SEARCH, /* search, history of a type or of everything ("s") */
    EHR_ACCESS_CREATE, /* "c" */
    EHR_ACCESS_UPDATE, /* update and patch ("u") */
    EHR_ACCESS_DELETE, /* "d" */
} ehr_access;

/* The patient limit that goes with a decision. */
typedef struct ehr_repo_limit {
    bool limited; /* only resources in these patients' compartments */
    size_t n_patients;
    const char *const *patients; /* Patient ids; must stay valid for the whole request */
} ehr_repo_limit;

typedef struct ehr_repo_policy ehr_repo_policy;
struct ehr_repo_policy {
    /*
     * May the caller do `access` on resources of `type`? EHR_OK with *limit
     * filled in, or EHR_EFORBIDDEN with the reason in err (no PHI in it).
     * The limit's patients for one policy are the same list for every type
     * that is limited (or one of at most two lists).
     */
    ehr_status (*decide)(const ehr_repo_policy *p, ehr_access access, const char *type,
                         ehr_repo_limit *limit, ehr_err *err);
    /* After a limited caller created a Patient (a clinician's new patient
       joins their panel). May be NULL. */
    void (*created_patient)(const ehr_repo_policy *p, const char *id);
    /* Patients opened to this caller by break-glass: every access that
       touches them is flagged in the audit log. */
    size_t n_glass;
    const char *const *glass;
    void *data; /* the policy's own */
};

/* Who is asking (strings borrowed, may be NULL). */
typedef struct ehr_repo_ctx {
    const char *user;   /* "alice", "Practitioner/12", "system", ... */
    const char *client; /* network address or "cli" */
    const char *app;    /* OAuth client id of the app, when there is one */
    const char *role;   /* the user's role, for the audit log */
    /* NULL: a trusted in-process caller (CLI, import, jobs): no limits.
       Requests from the network always carry one (see src/auth/). */
    const ehr_repo_policy *policy;
} ehr_repo_ctx;

/* What an interaction produced. Free with ehr_repo_out_free. */
typedef struct ehr_repo_out {
    char type[72];
    char id[72];
    int64_t version;
    int64_t last_updated; /* microseconds since the epoch */
    bool created;         /* a new resource (201) rather than a new version */
    bool deleted;         /* the current version is a deletion */
    bool unchanged;       /* conditional create matched an existing resource */
    ehr_buf body;         /* the stored JSON of the version (empty when deleted) */
} ehr_repo_out;

void ehr_repo_out_free(ehr_repo_out *o);

/* Open the repository on a store target (see ehr_store_open). */
ehr_status ehr_repo_open(const char *store_target, ehr_repo **out, ehr_err *err);
void ehr_repo_free(ehr_repo **r);

/*
 * read / vread. version 0 = current. ENOTFOUND for an unknown resource or
 * version, EGONE when the current version is a deletion (out->version and
 * last_updated then describe the deletion).
 */
ehr_status ehr_repo_read(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                         int64_t version, ehr_repo_out *out, ehr_err *err);

/*
 * create. res is the parsed resource (its id, if any, is replaced by a
 * new one). if_none_exist: a query string ("identifier=x|1"); when it
 * matches one resource, nothing is written and out describes that one
 * (out->unchanged); more than one match gives EMULTIPLE. Validation
 * problems go to issues with EINVAL.
 */
ehr_status ehr_repo_create(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, json_t *res,
                           const char *if_none_exist, ehr_repo_out *out, ehr_fhir_issues *issues,
                           ehr_err *err);

/*
 * update (or create with the client's id). if_match: the version the
 * client holds, 0 for none; a different current version gives ECONFLICT.
 * The body's id must equal id (EINVAL otherwise).
 */
ehr_status ehr_repo_update(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                           json_t *res, int64_t if_match, ehr_repo_out *out,
                           ehr_fhir_issues *issues, ehr_err *err);

/* Conditional update: query selects the resource (0: create, 1: update, more: EMULTIPLE). */
ehr_status ehr_repo_update_where(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type,
                                 const char *query, json_t *res, int64_t if_match,
                                 ehr_repo_out *out, ehr_fhir_issues *issues, ehr_err *err);

/* JSON Patch of the current version; EPRECONDITION when a test op fails. */
ehr_status ehr_repo_patch(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                          const json_t *patch, int64_t if_match, ehr_repo_out *out,
                          ehr_fhir_issues *issues, ehr_err *err);

/* delete. Deleting a deleted or unknown resource succeeds and changes nothing
   (out->version is 0 then). */
ehr_status ehr_repo_delete(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                           int64_t if_match, ehr_repo_out *out, ehr_err *err);

/* Conditional delete: 0 matches: nothing; 1: deleted; more: EMULTIPLE. */
ehr_status ehr_repo_delete_where(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type,
                                 const char *query, ehr_repo_out *out, ehr_fhir_issues *issues,
                                 ehr_err *err);

/*
 * Batch and transaction Bundles (FHIR R4 http.html 3.1.0.11), src/repo/tx.c.
 *
 * A transaction is all or nothing: every entry runs inside one savepoint
 * of one storage transaction (the group commit), in the order the
 * specification gives: DELETE, POST, PUT and PATCH, GET. Full URLs
 * "urn:uuid:..." and "urn:oid:..." are replaced by the ids given to their
 * entries in every reference of the Bundle (and in narrative text), and
 * conditional references ("Organization?identifier=sys|val") by the one
 * resource they match (none or several: an error). request.ifNoneExist
 * (conditional create), request.ifMatch (versioned update, delete, patch),
 * conditional update/delete/patch URLs ("Patient?identifier=...") and
 * PATCH entries (a Binary holding a JSON Patch) are supported. Conditional
 * creates search inside the write transaction, after every write queued
 * before them: concurrent identical creates make one resource.
 *
 * A batch runs every entry on its own (each in a nested savepoint, the
 * whole batch one commit): a failed entry gets its status and an
 * OperationOutcome in the response and leaves nothing behind.
 *
 * On success *response is a transaction-response or batch-response Bundle
 * (caller frees with json_decref): an entry per request entry, in the same
 * order, with response.status, location, etag and lastModified (and the
 * resource when opts->representation). When a transaction fails, nothing
 * is stored, the status is that of the failing entry and issues locate it
 * ("Bundle.entry[3].resource.birthDate"). Invalid Bundles (not a Bundle,
 * type other than transaction/batch, more than max_entries entries:
 * ELIMIT) fail the same way for both kinds.
 *
 * Every entry is decided by the caller's policy and audited as its own
 * interaction.
 */
#define EHR_REPO_MAX_BUNDLE_ENTRIES 10000

typedef struct ehr_repo_tx_opts {
    size_t max_entries;  /* 0: EHR_REPO_MAX_BUNDLE_ENTRIES */
    bool representation; /* response entries carry the stored resources */
    /* a PUT whose content equals the current version's writes no new
       version (its response is 200 with the current version): re-running
       an import changes nothing */
    bool skip_unchanged;
    const char *base; /* service base URL for response fullUrls, or NULL */
    /* the caller gives the Bundle away: its resources are changed in place
       (references rewritten) instead of copied first */
    bool in_place;
} ehr_repo_tx_opts;

ehr_status ehr_repo_transaction(ehr_repo *r, const ehr_repo_ctx *ctx, const json_t *bundle,
                                const ehr_repo_tx_opts *opts, json_t **response,
                                ehr_fhir_issues *issues, ehr_err *err);

/* History at instance, type (id NULL) or system (both NULL) level. */
ehr_status ehr_repo_history(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_store_history_q *q,
                            ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err);

/* Search (s from ehr_search_parse). */
ehr_status ehr_repo_search(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_search *s,
                           ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err);

/*
 * Patient $everything (FHIR R4 patient-operation-everything): the current
 * resources in the patient's compartment (the Patient itself included),
 * from the compartment table. ENOTFOUND when the caller may not read the
 * Patient (as for a missing one). types limits to those types (results in
 * that order); since keeps resources changed at or after it; offset and
 * count page (count 0: only the total). The rows go to cb inside one read
 * transaction, so total and page agree. Audited as one "everything" event.
 */
typedef struct ehr_repo_everything_q {
    const char *patient; /* Patient id */
    size_t n_types;
    const char *const *types; /* _type, or none */
    int64_t since;            /* _since in microseconds, 0: none */
    size_t offset, count;
} ehr_repo_everything_q;

ehr_status ehr_repo_everything(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_repo_everything_q *q,
                               ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err);

/*
 * Bulk export: the current resources q selects, in storage-key order, to
 * cb (the stored bytes, unparsed), within what the caller may search
 * (q->access is replaced by the caller's limits). Streams inside one read
 * transaction: memory stays flat. *last_key (may be NULL) follows the
 * rows, so that a job can resume with q->after_key. Audited as one
 * "export" event with the number of resources.
 */
ehr_status ehr_repo_export(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_store_scan_q *q,
                           ehr_store_row_cb cb, void *cb_ctx, int64_t *last_key, ehr_err *err);

/*
 * May the caller start an asynchronous bulk export? Only a caller whose
 * searches are unlimited (every type, every patient): the export job runs
 * later, without the request's policy. EFORBIDDEN (audited) otherwise.
 */
ehr_status ehr_repo_export_allowed(ehr_repo *r, const ehr_repo_ctx *ctx, ehr_err *err);

/*
 * Record an event that is not a FHIR interaction (login, token grant,
 * break-glass, user changes: JSON object; "user", "from", "app" are filled
 * from ctx when absent) and return once it is durable (audit.h).
 */
ehr_status ehr_repo_audit(ehr_repo *r, const ehr_repo_ctx *ctx, json_t *event, ehr_err *err);

/*
 * This thread's storage connection, for modules that keep their own state
 * in the same store (auth: users, sessions, tokens through the obj_* ops).
 * Owned by the repository.
 */
ehr_status ehr_repo_conn(ehr_repo *r, ehr_store_conn **out, ehr_err *err);

/*
 * Run fn(c, arg) inside the group commit's write transaction (in its own
 * savepoint: a failure undoes fn's writes alone) and return once it is
 * durable. For modules that keep their own state in the store and must not
 * pay an fsync each when many write at once (HL7 v2: raw messages stored
 * before they are acknowledged). fn must touch only the module's own
 * tables, never clinical data (that goes through the interactions above).
 */
ehr_status ehr_repo_store_job(ehr_repo *r,
                              ehr_status (*fn)(ehr_store_conn *c, void *arg, ehr_err *err),
                              void *arg, ehr_err *err);

/*
 * Turn on the audit journal (src/audit/journal.h) for this process: from
 * now on the audit records of reads, searches, history, denials and
 * non-FHIR events are appended to DB.audit-journal beside the database
 * before the caller goes on, and a background thread applies them into the
 * hash-chained audit table every sync_ms milliseconds (auditj.c). Writes
 * keep their record in their own transaction. The journal is fdatasynced
 * at each period: a power cut loses at most the last period's read records
 * (docs/security.md). Only for a local SQLite database (otherwise nothing
 * changes); EBUSY when another process owns the journal. Call before the
 * threads that use the repository start.
 *
 * ehr_repo_open itself applies whatever a previous run left in the
 * journal (a crash), unless a running server owns it.
 */
ehr_status ehr_repo_audit_journal(ehr_repo *r, int sync_ms, ehr_err *err);

/*
 * Apply every audit record journaled so far into the chain, so that what
 * follows reads a complete log: the AuditEvent view, `ehr audit`, verify.
 * In a process that does not own the journal (an `ehr audit` command while
 * the server runs), applies the server's journal the same way (safe: each
 * record goes in once).
 */
ehr_status ehr_repo_audit_sync(ehr_repo *r, ehr_err *err);

/* Verify the audit chain (see store.h audit_verify), after ehr_repo_audit_sync. */
ehr_status ehr_repo_audit_verify(ehr_repo *r, int64_t *n_records, int64_t *bad_seq, ehr_err *err);

/* Parse an ETag or If-Match value (W/"3", "3" or 3) into a version; 0 when malformed. */
int64_t ehr_repo_parse_etag(const char *s);

#endif
