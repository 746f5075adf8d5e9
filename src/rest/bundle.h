/*
 * bundle.h - Bundles written as text around stored resource bytes, so that
 * a search or history page is one pass with no parse (private to src/rest/).
 */
#ifndef EHR_REST_BUNDLE_H
#define EHR_REST_BUNDLE_H

#include "rest/rest_int.h"
#include "store/store.h"

struct rest_bundle {
    struct rctx *x;
    ehr_buf b;
    size_t n_entries;
    bool history;                    /* entries get request/response */
    const struct ehr_search *subset; /* search: _summary/_elements to apply, or NULL */
};

/* Open a Bundle of type ("searchset", "history"); total < 0 means none. */
void rest_bundle_open(struct rest_bundle *bb, struct rctx *x, const char *type, long long total);
/* Add a link (url is written escaped). */
void rest_bundle_link(struct rest_bundle *bb, const char *relation, const char *url);
/* Start the entries (after the links). */
void rest_bundle_entries(struct rest_bundle *bb);
/* A row callback for ehr_repo_search / ehr_repo_history: one entry each. */
ehr_status rest_bundle_row(void *ctx, const ehr_store_rec *rec);
/* Add an OperationOutcome entry (search.mode = outcome). */
void rest_bundle_outcome(struct rest_bundle *bb, const ehr_fhir_issues *issues);
/* Close and send with status 200. */
void rest_bundle_send(struct rest_bundle *bb);
void rest_bundle_free(struct rest_bundle *bb);

#endif
