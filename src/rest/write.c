/*
 * write.c - create, update, patch and delete, plain and conditional
 * (FHIR R4 http.html 3.1.0.4 - 3.1.0.7, 3.1.0.8 conditional).
 */
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "fhir/outcome.h"
#include "rest/rest_int.h"

typedef enum { RETURN_REPRESENTATION, RETURN_MINIMAL, RETURN_OUTCOME } prefer_return;

static prefer_return prefer(struct rctx *x)
{
    const char *p = ehr_http_header(x->req, "Prefer");
    if (!p)
        return RETURN_REPRESENTATION;
    if (strstr(p, "return=minimal"))
        return RETURN_MINIMAL;
    if (strstr(p, "return=OperationOutcome"))
        return RETURN_OUTCOME;
    return RETURN_REPRESENTATION;
}

/* If-Match: 0 when absent; -1 (412 sent) when it can't be a version. */
static int64_t if_match(struct rctx *x)
{
    const char *h = ehr_http_header(x->req, "If-Match");
    if (!h)
        return 0;
    int64_t v = ehr_repo_parse_etag(h);
    if (v <= 0) {
        rest_fail(x, 412, "conflict", NULL,
                  "If-Match '%.60s' is not a version ETag such as W/\"3\"", h);
        return -1;
    }
    return v;
}

/* The answer to a successful write. */
static void written(struct rctx *x, int status, const ehr_repo_out *o, const char *what)
{
    rest_version_headers(x, o, true);
    switch (prefer(x)) {
    case RETURN_MINIMAL:
        x->res->status = status;
        ehr_buf_reset(&x->res->body);
        break;
    case RETURN_OUTCOME: {
        char msg[256];
        snprintf(msg, sizeof msg, "%s %s/%s (version %lld)", what, o->type, o->id,
                 (long long)o->version);
        rest_send_json(x, status,
                       ehr_fhir_outcome_simple(EHR_SEV_INFORMATION, "informational", NULL, msg));
        break;
    }
    default:
        rest_send_text(x, status, o->body.data, o->body.len);
    }
}

void rest_create(struct rctx *x, const char *type)
{
    json_t *res = rest_read_resource(x);
    if (!res)
        return;
    ehr_repo_out out = {0};
    ehr_err err = {{0}};
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    const char *ine = ehr_http_header(x->req, "If-None-Exist");
    if (ine) {
        /* the header may carry a full URL or just the query */
        const char *q = strchr(ine, '?');
        ine = q ? q + 1 : ine;
    }
    ehr_status st = ehr_repo_create(x->rest->repo, &x->who, type, res, ine, &out, &issues, &err);
    if (st)
        rest_fail_status(x, st, &err, &issues);
    else if (out.unchanged)
        written(x, 200, &out, "Found existing");
    else
        written(x, 201, &out, "Created");
    ehr_fhir_issues_free(&issues);
    ehr_repo_out_free(&out);
    json_decref(res);
}

void rest_update(struct rctx *x, const char *type, const char *id)
{
    int64_t im = if_match(x);
    if (im < 0)
        return;
    if (!id && !*x->req->raw_query) {
        rest_fail(x, 400, "required", NULL,
                  "PUT needs an id in the URL (%s/ID) or search criteria for a conditional "
                  "update (%s?identifier=...)",
                  type, type);
        return;
    }
    json_t *res = rest_read_resource(x);
    if (!res)
        return;
    ehr_repo_out out = {0};
    ehr_err err = {{0}};
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_status st;
    if (id)
        st = ehr_repo_update(x->rest->repo, &x->who, type, id, res, im, &out, &issues, &err);
    else
        st = ehr_repo_update_where(x->rest->repo, &x->who, type, x->req->raw_query, res, im, &out,
                                   &issues, &err);
    if (st)
        rest_fail_status(x, st, &err, &issues);
    else
        written(x, out.created ? 201 : 200, &out, out.created ? "Created" : "Updated");
    ehr_fhir_issues_free(&issues);
    ehr_repo_out_free(&out);
    json_decref(res);
}

void rest_patch(struct rctx *x, const char *type, const char *id)
{
    int64_t im = if_match(x);
    if (im < 0)
        return;
    const char *ct = ehr_http_header(x->req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json-patch+json", 27) != 0) {
        rest_fail(x, 415, "not-supported", NULL,
                  "PATCH takes a JSON Patch document with Content-Type "
                  "application/json-patch+json");
        return;
    }
    ehr_err err = {{0}};
    json_t *patch = ehr_json_parse(x->req->body, x->req->body_len, &err);
    if (!patch) {
        rest_fail(x, 400, "structure", NULL, "the patch is not valid JSON: %s", err.msg);
        return;
    }
    ehr_repo_out out = {0};
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_status st =
        ehr_repo_patch(x->rest->repo, &x->who, type, id, patch, im, &out, &issues, &err);
    if (st)
        rest_fail_status(x, st, &err, &issues);
    else
        written(x, 200, &out, "Patched");
    ehr_fhir_issues_free(&issues);
    ehr_repo_out_free(&out);
    json_decref(patch);
}

void rest_delete(struct rctx *x, const char *type, const char *id)
{
    int64_t im = if_match(x);
    if (im < 0)
        return;
    ehr_repo_out out = {0};
    ehr_err err = {{0}};
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_status st;
    if (id) {
        st = ehr_repo_delete(x->rest->repo, &x->who, type, id, im, &out, &err);
    } else if (!*x->req->raw_query) {
        rest_fail(x, 400, "required", NULL,
                  "DELETE needs an id in the URL (%s/ID) or search criteria for a conditional "
                  "delete",
                  type);
        return;
    } else {
        st = ehr_repo_delete_where(x->rest->repo, &x->who, type, x->req->raw_query, &out, &issues,
                                   &err);
    }
    if (st) {
        rest_fail_status(x, st, &err, &issues);
    } else {
        if (out.version > 0) {
            char etag[48];
            snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)out.version);
            ehr_http_set_header(x->req, x->res, "ETag", etag);
        }
        char msg[256];
        if (out.version > 0)
            snprintf(msg, sizeof msg, "Deleted %s/%s", out.type, out.id);
        else
            snprintf(msg, sizeof msg, "Nothing to delete: no current %s matched", type);
        if (prefer(x) == RETURN_MINIMAL) {
            x->res->status = 204;
        } else {
            rest_send_json(
                x, 200, ehr_fhir_outcome_simple(EHR_SEV_INFORMATION, "informational", NULL, msg));
        }
    }
    ehr_fhir_issues_free(&issues);
    ehr_repo_out_free(&out);
}
