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

/* Who is asking, for the audit log (strings borrowed, may be NULL). */
typedef struct ehr_repo_ctx {
    const char *user;   /* "Practitioner/12", "system", ... */
    const char *client; /* network address or "cli" */
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

/* History at instance, type (id NULL) or system (both NULL) level. */
ehr_status ehr_repo_history(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_store_history_q *q,
                            ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err);

/* Search (s from ehr_search_parse). */
ehr_status ehr_repo_search(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_search *s,
                           ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err);

/* Verify the audit chain (see store.h audit_verify). */
ehr_status ehr_repo_audit_verify(ehr_repo *r, int64_t *n_records, int64_t *bad_seq, ehr_err *err);

/* Parse an ETag or If-Match value (W/"3", "3" or 3) into a version; 0 when malformed. */
int64_t ehr_repo_parse_etag(const char *s);

#endif
