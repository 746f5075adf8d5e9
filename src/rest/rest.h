/*
 * rest.h - the FHIR R4 RESTful API (http://hl7.org/fhir/R4/http.html) over
 * the repository, mounted on the HTTP server under /fhir.
 *
 * This layer is the one funnel from ehr_status to HTTP: it turns statuses
 * and issue lists into HTTP codes and OperationOutcomes.
 */
#ifndef EHR_REST_REST_H
#define EHR_REST_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"
#include "repo/repo.h"

typedef struct ehr_rest_config {
    const char *base_url;      /* "https://ehr.example.org/fhir"; NULL: from the Host header */
    size_t max_body;           /* the server's body limit, announced in the CapabilityStatement */
    size_t max_bundle_entries; /* batch/transaction entries; 0: EHR_REPO_MAX_BUNDLE_ENTRIES */
    const char *export_dir;    /* where bulk $export files go; NULL: $export answers 501 */
} ehr_rest_config;

typedef struct ehr_rest ehr_rest;

/* Mount /fhir on s. The repo is borrowed; free the rest with ehr_rest_free
   after the server has stopped. */
ehr_status ehr_rest_mount(ehr_http_server *s, ehr_repo *repo, const ehr_rest_config *cfg,
                          ehr_rest **out);
void ehr_rest_free(ehr_rest **r);

/* The answer the HTTP server gives on its own (413, 404 outside /fhir),
   phrased as an OperationOutcome. For ehr_http_config.error_body. */
void ehr_rest_error_body(void *ctx, int status, const char *message, ehr_http_response *res);

#endif
