/*
 * rest_int.h - what the REST handlers share (private to src/rest/).
 */
#ifndef EHR_REST_INT_H
#define EHR_REST_INT_H

#include <jansson.h>

#include "fhir/outcome.h"
#include "rest/rest.h"

struct rest_exports;

struct ehr_rest {
    ehr_repo *repo;
    ehr_rest_config cfg;
    char *base_url;
    struct rest_exports *exports; /* bulk export jobs (export.c), NULL when off */
};

typedef enum { REST_JSON, REST_XML } rest_format;

/* One request being answered. */
struct rctx {
    struct ehr_rest *rest;
    ehr_http_request *req;
    ehr_http_response *res;
    rest_format fmt;
    bool pretty;
    const char *base; /* "http://host/fhir" */
    ehr_repo_ctx who;
    /* path segments after /fhir */
    size_t n_seg;
    const char *seg[5];
};

/* Answer with an OperationOutcome of one issue. */
void rest_fail(struct rctx *x, int status, const char *code, const char *expression,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answer a failed repository call: status from st, issues if any, else err. */
void rest_fail_status(struct rctx *x, ehr_status st, const ehr_err *err,
                      const ehr_fhir_issues *issues);
/* The HTTP code for a status. */
int rest_http_status(ehr_status st);

/* Send JSON text (a resource or Bundle), honouring _format, _pretty. */
void rest_send_text(struct rctx *x, int status, const char *json, size_t len);
/* Send a JSON tree (consumed). */
void rest_send_json(struct rctx *x, int status, json_t *j);

/*
 * Parse the request body as a resource (JSON or XML by Content-Type).
 * On failure the error response is already set and NULL is returned.
 */
json_t *rest_read_resource(struct rctx *x);

/* Set ETag, Last-Modified, Location (when location) for a version. */
void rest_version_headers(struct rctx *x, const ehr_repo_out *o, bool location);

/* Handlers. */
void rest_read(struct rctx *x, const char *type, const char *id, const char *vid);
void rest_create(struct rctx *x, const char *type);
void rest_update(struct rctx *x, const char *type, const char *id);
void rest_patch(struct rctx *x, const char *type, const char *id);
void rest_delete(struct rctx *x, const char *type, const char *id);
void rest_history(struct rctx *x, const char *type, const char *id);
void rest_search(struct rctx *x, const char *type);
/* Search type (NULL: every type) in Patient patient's compartment (NULL: everywhere). */
void rest_search_in(struct rctx *x, const char *type, const char *patient);
void rest_capabilities(struct rctx *x);
/* POST /fhir: a batch or transaction Bundle (transaction.c). */
void rest_transaction(struct rctx *x);
/* GET /fhir/Patient/ID/$everything (everything.c). */
void rest_everything(struct rctx *x, const char *id);
/* Bulk Data $export (export.c): kick-off at level "system", "patient" or
   "group" (group_id), status polling and cancel, file download. */
void rest_export_kickoff(struct rctx *x, const char *level, const char *group_id);
void rest_export_status(struct rctx *x, const char *id);
void rest_export_file(struct rctx *x, const char *id, const char *file);
/* The export worker: started by ehr_rest_mount when cfg.export_dir is set,
   stopped by ehr_rest_free; it resumes unfinished jobs. */
ehr_status rest_exports_start(struct ehr_rest *rest, const char *dir);
void rest_exports_stop(struct ehr_rest *rest);

/* Bundle text helpers: append "fullUrl" for type/id. */
void rest_full_url(struct rctx *x, ehr_buf *b, const char *type, const char *id);

#endif
