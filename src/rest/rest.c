/*
 * rest.c - routing of /fhir requests, content negotiation, and the funnel
 * from statuses to HTTP answers with OperationOutcomes.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "fhir/compartment.h"
#include "fhir/model.h"
#include "fhir/xml.h"
#include "rest/rest_int.h"

#define JSON_TYPE "application/fhir+json; charset=utf-8"
#define XML_TYPE "application/fhir+xml; charset=utf-8"

int rest_http_status(ehr_status st)
{
    switch (st) {
    case EHR_OK:
        return 200;
    case EHR_EINVAL:
        return 400;
    case EHR_ENOTFOUND:
        return 404;
    case EHR_EGONE:
        return 410;
    case EHR_ECONFLICT:
        return 412;
    case EHR_EMULTIPLE:
        return 412;
    case EHR_EPRECONDITION:
        return 422;
    case EHR_EUNPROCESSABLE:
        return 422;
    case EHR_ELIMIT:
        return 413;
    case EHR_EFORBIDDEN:
        return 403;
    case EHR_EBUSY:
        return 503;
    case EHR_EUNSUPPORTED:
        return 501;
    case EHR_EEXISTS:
        return 409;
    case EHR_ENOMEM:
    case EHR_EIO:
    case EHR_EINTERNAL:
        return 500;
    }
    return 500;
}

/* Write the body of an answer; XML when asked for, else JSON. */
static void put_body(struct rctx *x, json_t *j)
{
    ehr_http_response *res = x->res;
    ehr_buf_reset(&res->body);
    if (x->fmt == REST_XML) {
        ehr_err err;
        if (ehr_fhir_json_to_xml(j, x->pretty, &res->body, &err) == EHR_OK) {
            res->content_type = XML_TYPE;
            return;
        }
        /* what we store always converts; log the rare miss, answer in JSON */
        ehr_log(EHR_LOG_WARN, "rest: XML conversion failed at %s", err.where);
        ehr_buf_reset(&res->body);
    }
    ehr_json_dump(j, &res->body, x->pretty ? EHR_JSON_PRETTY : EHR_JSON_COMPACT);
    res->content_type = JSON_TYPE;
}

void rest_send_json(struct rctx *x, int status, json_t *j)
{
    x->res->status = status;
    put_body(x, j);
    json_decref(j);
}

void rest_send_text(struct rctx *x, int status, const char *json, size_t len)
{
    x->res->status = status;
    if (x->fmt == REST_JSON && !x->pretty) {
        /* the hot path: stored bytes as they are */
        ehr_buf_reset(&x->res->body);
        ehr_buf_append(&x->res->body, json, len);
        x->res->content_type = JSON_TYPE;
        return;
    }
    json_t *j = ehr_json_parse(json, len, NULL);
    if (!j) {
        rest_fail(x, 500, "exception", NULL, "stored content could not be read back");
        return;
    }
    put_body(x, j);
    json_decref(j);
}

void rest_fail(struct rctx *x, int status, const char *code, const char *expression,
               const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rest_send_json(x, status, ehr_fhir_outcome_simple(EHR_SEV_ERROR, code, expression, msg));
}

void rest_fail_status(struct rctx *x, ehr_status st, const ehr_err *err,
                      const ehr_fhir_issues *issues)
{
    int status = rest_http_status(st);
    if (status >= 500)
        ehr_log(EHR_LOG_ERROR, "%s %s: %s", x->req->method, x->n_seg ? x->seg[0] : "/",
                ehr_status_str(st));
    if (issues && ehr_fhir_issues_errors(issues) > 0) {
        rest_send_json(x, status, ehr_fhir_outcome_new(issues));
        return;
    }
    const char *msg = err && err->msg[0] ? err->msg : ehr_status_str(st);
    if (status == 500)
        msg = "the server failed to complete the request; it was not applied. "
              "Try again, and report it if it persists";
    rest_send_json(x, status,
                   ehr_fhir_outcome_simple(EHR_SEV_ERROR, ehr_fhir_issue_code(st),
                                           err && err->where[0] ? err->where : NULL, msg));
}

void ehr_rest_error_body(void *ctx, int status, const char *message, ehr_http_response *res)
{
    const char *code = status == 413   ? "too-costly"
                       : status == 404 ? "not-found"
                       : status == 503 ? "transient"
                                       : "processing";
    json_t *oo = ehr_fhir_outcome_simple(EHR_SEV_ERROR, code, NULL, message);
    ehr_buf_reset(&res->body);
    ehr_json_dump(oo, &res->body, EHR_JSON_COMPACT);
    json_decref(oo);
    res->status = status;
    res->content_type = JSON_TYPE;
}

void rest_version_headers(struct rctx *x, const ehr_repo_out *o, bool location)
{
    char etag[48], lm[40];
    snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)o->version);
    ehr_http_set_header(x->req, x->res, "ETag", etag);
    ehr_time_http(o->last_updated, lm);
    ehr_http_set_header(x->req, x->res, "Last-Modified", lm);
    if (location) {
        char *loc = ehr_arena_printf(x->req->arena, "%s/%s/%s/_history/%lld", x->base, o->type,
                                     o->id, (long long)o->version);
        if (loc) {
            ehr_http_set_header(x->req, x->res, "Location", loc);
            ehr_http_set_header(x->req, x->res, "Content-Location", loc);
        }
    }
}

void rest_full_url(struct rctx *x, ehr_buf *b, const char *type, const char *id)
{
    ehr_buf_puts(b, "\"fullUrl\":\"");
    ehr_buf_json_escape(b, x->base, strlen(x->base));
    ehr_buf_putc(b, '/');
    ehr_buf_json_escape(b, type, strlen(type));
    ehr_buf_putc(b, '/');
    ehr_buf_json_escape(b, id, strlen(id));
    ehr_buf_putc(b, '"');
}

/* Does a media type (from Content-Type or Accept) name JSON or XML? */
static int media_format(const char *m, size_t len)
{
    while (len && (*m == ' ' || *m == '\t'))
        m++, len--;
    size_t n = 0;
    while (n < len && m[n] != ';' && m[n] != ' ')
        n++;
#define IS(s) (n == strlen(s) && strncasecmp(m, s, n) == 0)
    if (IS("application/fhir+json") || IS("application/json") || IS("json") ||
        IS("application/json+fhir"))
        return REST_JSON;
    if (IS("application/fhir+xml") || IS("application/xml") || IS("text/xml") || IS("xml") ||
        IS("application/xml+fhir"))
        return REST_XML;
    if (IS("*/*") || IS("application/*"))
        return REST_JSON;
    if (IS("text/html"))
        return REST_JSON; /* a browser: show JSON */
#undef IS
    return -1;
}

/* Pick the response format; false (with 406 sent) when nothing fits. */
static bool negotiate(struct rctx *x)
{
    const char *f = ehr_http_param(x->req, "_format");
    if (f && *f) {
        int fmt = media_format(f, strlen(f));
        if (fmt < 0) {
            x->fmt = REST_JSON;
            rest_fail(x, 406, "not-supported", "_format",
                      "_format '%s' is not supported; use json or xml", f);
            return false;
        }
        x->fmt = (rest_format)fmt;
        return true;
    }
    const char *accept = ehr_http_header(x->req, "Accept");
    x->fmt = REST_JSON;
    if (!accept || !*accept)
        return true;
    const char *p = accept;
    while (*p) {
        size_t len = strcspn(p, ",");
        int fmt = media_format(p, len);
        if (fmt >= 0) {
            x->fmt = (rest_format)fmt;
            return true;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    rest_fail(x, 406, "not-supported", NULL,
              "none of the media types in Accept can be produced; ask for "
              "application/fhir+json or application/fhir+xml");
    return false;
}

json_t *rest_read_resource(struct rctx *x)
{
    const char *ct = ehr_http_header(x->req, "Content-Type");
    int fmt = ct ? media_format(ct, strlen(ct)) : REST_JSON;
    if (ct && (fmt < 0 || !strncasecmp(ct, "*/*", 3))) {
        rest_fail(x, 415, "not-supported", NULL,
                  "Content-Type '%s' is not accepted; send application/fhir+json or "
                  "application/fhir+xml",
                  ct);
        return NULL;
    }
    if (x->req->body_len == 0) {
        rest_fail(x, 400, "required", NULL, "the request needs a resource in its body");
        return NULL;
    }
    ehr_err err = {{0}};
    json_t *j;
    if (fmt == REST_XML) {
        ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
        j = ehr_fhir_xml_to_json(x->req->body, x->req->body_len, &issues, &err);
        if (!j) {
            if (issues.n)
                rest_send_json(x, 400, ehr_fhir_outcome_new(&issues));
            else
                rest_fail(x, 400, "structure", NULL, "the body is not valid FHIR XML: %s", err.msg);
        }
        ehr_fhir_issues_free(&issues);
        return j;
    }
    j = ehr_json_parse(x->req->body, x->req->body_len, &err);
    if (!j)
        rest_fail(x, 400, "structure", NULL, "the body is not valid JSON: %s", err.msg);
    return j;
}

/* Valid FHIR id: [A-Za-z0-9\-\.]{1,64} */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

static void not_allowed(struct rctx *x, const char *allow)
{
    ehr_http_set_header(x->req, x->res, "Allow", allow);
    rest_fail(x, 405, "not-supported", NULL, "%s is not allowed here; allowed: %s", x->req->method,
              allow);
}

static const char *base_url(struct rctx *x)
{
    if (x->rest->base_url)
        return x->rest->base_url;
    const char *host = ehr_http_header(x->req, "Host");
    /* only characters a host[:port] can have, so links can't be forged */
    if (!host || !*host || strlen(host) > 255 ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") !=
            strlen(host))
        host = "localhost";
    const char *proto = ehr_http_header(x->req, "X-Forwarded-Proto");
    if (!proto || (strcmp(proto, "https") && strcmp(proto, "http")))
        proto = "http";
    return ehr_arena_printf(x->req->arena, "%s://%s/fhir", proto, host);
}

static bool is_method(struct rctx *x, const char *m)
{
    /* HEAD is GET without the body (the HTTP layer drops it) */
    if (!strcmp(m, "GET") && !strcmp(x->req->method, "HEAD"))
        return true;
    return strcmp(x->req->method, m) == 0;
}

/* Is type one of the Patient compartment's (or Patient itself)? */
static bool in_patient_compartment(const char *type)
{
    if (!strcmp(type, "Patient"))
        return true;
    for (size_t i = 0; i < ehr_fhir_patient_compartment_n; i++)
        if (!strcmp(ehr_fhir_patient_compartment[i].type, type))
            return true;
    return false;
}

static int fhir_handler(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    struct rctx x = {.rest = ctx, .req = req, .res = res};
    const char *path = req->path + 5; /* after "/fhir" */
    if (*path && *path != '/')
        return EHR_HTTP_NEXT;
    x.base = base_url(&x);
    /* the caller, as the auth guard in front of us established it
       (src/auth/guard.c): user, app and the policy the repository applies */
    if (req->user)
        x.who = *(const ehr_repo_ctx *)req->user;
    if (!x.who.client)
        x.who.client = req->remote_addr;
    const char *pretty = ehr_http_param(req, "_pretty");
    x.pretty = pretty && !strcmp(pretty, "true");

    /* split into at most 5 segments */
    char *p = ehr_arena_strdup(req->arena, path);
    while (p && *p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        if (x.n_seg == 5) {
            x.n_seg = 6;
            break;
        }
        x.seg[x.n_seg++] = p;
        p = strchr(p, '/');
        if (p)
            *p++ = '\0';
    }
    if (!negotiate(&x))
        return EHR_HTTP_HANDLED;
    /* no identity (no guard mounted): nothing but the CapabilityStatement */
    if (!req->user && !(x.n_seg == 1 && !strcmp(x.seg[0], "metadata"))) {
        rest_fail(&x, 401, "security", NULL, "this request needs an access token");
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg > 4) {
        rest_fail(&x, 404, "not-found", NULL, "no FHIR interaction has this URL");
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 0 || (x.n_seg == 1 && !strcmp(x.seg[0], "_search"))) {
        if (x.n_seg == 0 && is_method(&x, "GET"))
            rest_search_in(&x, NULL, NULL); /* system search */
        else if (x.n_seg == 1 && is_method(&x, "POST"))
            rest_search_in(&x, NULL, NULL);
        else if (x.n_seg == 0 && is_method(&x, "POST"))
            rest_transaction(&x);
        else if (x.n_seg == 1)
            not_allowed(&x, "POST");
        else
            not_allowed(&x, "GET, POST");
        return EHR_HTTP_HANDLED;
    }
    const char *first = x.seg[0];
    if (!strcmp(first, "metadata")) {
        if (x.n_seg == 1 && is_method(&x, "GET"))
            rest_capabilities(&x);
        else
            not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (!strcmp(first, "_history")) {
        if (x.n_seg == 1 && is_method(&x, "GET"))
            rest_history(&x, NULL, NULL);
        else
            not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (!strcmp(first, "$export")) {
        if (x.n_seg == 1 && (is_method(&x, "GET") || is_method(&x, "POST")))
            rest_export_kickoff(&x, "system", NULL);
        else
            not_allowed(&x, "GET, POST");
        return EHR_HTTP_HANDLED;
    }
    if (!strcmp(first, "$export-status") && x.n_seg == 2) {
        if (is_method(&x, "GET") || is_method(&x, "DELETE"))
            rest_export_status(&x, x.seg[1]);
        else
            not_allowed(&x, "GET, DELETE");
        return EHR_HTTP_HANDLED;
    }
    if (!strcmp(first, "$export-file") && x.n_seg == 3) {
        if (is_method(&x, "GET"))
            rest_export_file(&x, x.seg[1], x.seg[2]);
        else
            not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (first[0] == '$' || first[0] == '_') {
        rest_fail(&x, 404, "not-supported", NULL, "'%s' is not an operation this server offers",
                  first);
        return EHR_HTTP_HANDLED;
    }
    const ehr_fhir_type *t = ehr_fhir_resource_type(first);
    if (!t || t->is_abstract) {
        rest_fail(&x, 404, "not-supported", NULL,
                  "'%s' is not a FHIR R4 resource type (names are case-sensitive, e.g. Patient)",
                  first);
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 1) {
        if (is_method(&x, "GET"))
            rest_search(&x, first);
        else if (is_method(&x, "POST"))
            rest_create(&x, first);
        else if (is_method(&x, "PUT"))
            rest_update(&x, first, NULL);
        else if (is_method(&x, "DELETE"))
            rest_delete(&x, first, NULL);
        else
            not_allowed(&x, "GET, POST, PUT, DELETE");
        return EHR_HTTP_HANDLED;
    }
    const char *second = x.seg[1];
    if (!strcmp(second, "_search")) {
        if (x.n_seg == 2 && is_method(&x, "POST"))
            rest_search(&x, first);
        else
            not_allowed(&x, "POST");
        return EHR_HTTP_HANDLED;
    }
    if (!strcmp(second, "_history")) {
        if (x.n_seg == 2 && is_method(&x, "GET"))
            rest_history(&x, first, NULL);
        else
            not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 2 && !strcmp(first, "Patient") && !strcmp(second, "$export")) {
        if (is_method(&x, "GET") || is_method(&x, "POST"))
            rest_export_kickoff(&x, "patient", NULL);
        else
            not_allowed(&x, "GET, POST");
        return EHR_HTTP_HANDLED;
    }
    if (second[0] == '$') {
        rest_fail(&x, 404, "not-supported", NULL, "operation '%s' is not offered on %s", second,
                  first);
        return EHR_HTTP_HANDLED;
    }
    if (!valid_id(second)) {
        char *where = ehr_arena_printf(req->arena, "%s.id", first);
        rest_fail(&x, 400, "value", where,
                  "'%.80s' is not a valid id: 1 to 64 letters, digits, '-' or '.'", second);
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 2) {
        if (is_method(&x, "GET"))
            rest_read(&x, first, second, NULL);
        else if (is_method(&x, "PUT"))
            rest_update(&x, first, second);
        else if (is_method(&x, "PATCH"))
            rest_patch(&x, first, second);
        else if (is_method(&x, "DELETE"))
            rest_delete(&x, first, second);
        else
            not_allowed(&x, "GET, PUT, PATCH, DELETE");
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 3 && !strcmp(first, "Group") && !strcmp(x.seg[2], "$export")) {
        if (is_method(&x, "GET") || is_method(&x, "POST"))
            rest_export_kickoff(&x, "group", second);
        else
            not_allowed(&x, "GET, POST");
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 3 && !strcmp(first, "Patient") && !strcmp(x.seg[2], "$everything")) {
        if (is_method(&x, "GET"))
            rest_everything(&x, second);
        else
            not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (strcmp(x.seg[2], "_history") != 0 && x.n_seg == 3 && !strcmp(first, "Patient") &&
        x.seg[2][0] != '$' && x.seg[2][0] != '_') {
        /* compartment search: GET /Patient/ID/TYPE */
        const ehr_fhir_type *ct = ehr_fhir_resource_type(x.seg[2]);
        if (!ct || ct->is_abstract)
            rest_fail(&x, 404, "not-supported", NULL,
                      "'%s' is not a FHIR R4 resource type (names are case-sensitive)", x.seg[2]);
        else if (!in_patient_compartment(x.seg[2]))
            rest_fail(&x, 400, "not-supported", NULL,
                      "%s is not in the Patient compartment (FHIR R4 CompartmentDefinition "
                      "patient)",
                      x.seg[2]);
        else if (is_method(&x, "GET"))
            rest_search_in(&x, x.seg[2], second);
        else
            not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (strcmp(x.seg[2], "_history") != 0) {
        rest_fail(&x, 404, "not-found", NULL, "no FHIR interaction has this URL");
        return EHR_HTTP_HANDLED;
    }
    if (!is_method(&x, "GET")) {
        not_allowed(&x, "GET");
        return EHR_HTTP_HANDLED;
    }
    if (x.n_seg == 3)
        rest_history(&x, first, second);
    else
        rest_read(&x, first, second, x.seg[3]);
    return EHR_HTTP_HANDLED;
}

ehr_status ehr_rest_mount(ehr_http_server *s, ehr_repo *repo, const ehr_rest_config *cfg,
                          ehr_rest **out)
{
    ehr_rest *r = calloc(1, sizeof *r);
    if (!r)
        return EHR_ENOMEM;
    r->repo = repo;
    r->cfg = *cfg;
    if (cfg->base_url) {
        r->base_url = strdup(cfg->base_url);
        size_t n = strlen(r->base_url);
        while (n > 0 && r->base_url[n - 1] == '/')
            r->base_url[--n] = '\0';
    }
    ehr_status st = ehr_http_server_add(s, "/fhir", fhir_handler, r);
    if (!st && cfg->export_dir)
        st = rest_exports_start(r, cfg->export_dir);
    if (st) {
        free(r->base_url);
        free(r);
        return st;
    }
    *out = r;
    return EHR_OK;
}

void ehr_rest_free(ehr_rest **r)
{
    if (r && *r) {
        rest_exports_stop(*r);
        free((*r)->base_url);
        free(*r);
        *r = NULL;
    }
}
