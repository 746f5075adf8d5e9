/*
 * transaction.c - POST /fhir: batch and transaction Bundles
 * (FHIR R4 http.html 3.1.0.11), processed by ehr_repo_transaction.
 *
 * A transaction that fails answers with the failing entry's status and an
 * OperationOutcome locating it (Bundle.entry[3].resource.birthDate);
 * nothing is stored. A batch answers 200 with a batch-response in which
 * each entry has its own status (and OperationOutcome when it failed).
 * A PUT entry whose content equals the current version writes nothing and
 * answers 200 with that version, so a loader may re-send a Bundle.
 */
#include <string.h>

#include "rest/rest_int.h"

void rest_transaction(struct rctx *x)
{
    json_t *bundle = rest_read_resource(x);
    if (!bundle)
        return;
    const char *prefer = ehr_http_header(x->req, "Prefer");
    ehr_repo_tx_opts o = {
        .max_entries = x->rest->cfg.max_bundle_entries,
        .representation = prefer && strstr(prefer, "return=representation"),
        /* re-sending the same Bundle (a loader's retry) makes no new versions */
        .skip_unchanged = true,
        .in_place = true, /* the parsed body is ours */
        .base = x->base,
    };
    json_t *resp = NULL;
    ehr_err err = {{0}};
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_status st = ehr_repo_transaction(x->rest->repo, &x->who, bundle, &o, &resp, &issues, &err);
    if (st)
        rest_fail_status(x, st, &err, &issues);
    else
        rest_send_json(x, 200, resp);
    ehr_fhir_issues_free(&issues);
    json_decref(bundle);
}
