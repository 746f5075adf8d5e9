/*
 * auth.c - the auth module's life cycle, mounting, and what its HTTP
 * handlers share (see auth.h, auth_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/json.h"
#include "core/util.h"
#include "search/search.h"

void ehr_auth_config_defaults(ehr_auth_config *c)
{
    memset(c, 0, sizeof *c);
    c->clinicians_panel = true;
    c->mfa_roles = EHR_ROLE_BIT(EHR_ROLE_ADMIN) | EHR_ROLE_BIT(EHR_ROLE_PHYSICIAN) |
                   EHR_ROLE_BIT(EHR_ROLE_NURSE);
    c->glass_roles = EHR_ROLE_BIT(EHR_ROLE_PHYSICIAN) | EHR_ROLE_BIT(EHR_ROLE_NURSE);
    c->glass_minutes = 60;
    c->session_idle = 900;
    c->session_max = 12 * 3600;
    c->access_ttl = 3600;
    c->refresh_days = 30;
    c->lockout_attempts = 5;
    c->lockout_seconds = 900;
}

ehr_status ehr_auth_new(ehr_repo *repo, const ehr_auth_config *cfg, ehr_auth **out, ehr_err *err)
{
    if (ehr_crypto_init())
        return ehr_err_set(err, EHR_EINTERNAL, "libsodium could not start");
    ehr_auth *a = calloc(1, sizeof *a);
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    a->repo = repo;
    a->cfg = *cfg;
    if (a->cfg.lockout_attempts < 1)
        a->cfg.lockout_attempts = 1;
    pthread_mutex_init(&a->lock, NULL);
    /* expired codes, tokens and sessions go away at start */
    ehr_store_conn *c;
    if (!ehr_repo_conn(repo, &c, NULL))
        EHR_STORE_CALL(c, obj_purge, NULL);
    *out = a;
    return EHR_OK;
}

void ehr_auth_free(ehr_auth **ap)
{
    if (!ap || !*ap)
        return;
    ehr_auth *a = *ap;
    EVP_PKEY_free(a->key);
    pthread_mutex_destroy(&a->lock);
    free(a);
    *ap = NULL;
}

ehr_status ehr_auth_mount(ehr_auth *a, ehr_http_server *s)
{
    ehr_status st = ehr_http_server_add(s, "", auth_guard, a);
    if (!st)
        st = ehr_http_server_add(s, "/", auth_oauth, a);
    if (!st)
        st = ehr_http_server_add(s, "/auth/", auth_web, a);
    return st;
}

/* ---- shared by the handlers ---- */

void auth_send_json(ehr_http_request *req, ehr_http_response *res, int status, json_t *j)
{
    res->status = status;
    ehr_buf_reset(&res->body);
    if (j)
        ehr_json_dump(j, &res->body, EHR_JSON_COMPACT);
    json_decref(j);
    res->content_type = "application/json; charset=utf-8";
}

void auth_oauth_error(ehr_http_request *req, ehr_http_response *res, int status, const char *error,
                      const char *description)
{
    json_t *j = json_pack("{s:s}", "error", error);
    if (j && description)
        json_object_set_new(j, "error_description", json_string(description));
    if (status == 401)
        ehr_http_set_header(req, res, "WWW-Authenticate", "Basic realm=\"ehr\"");
    auth_send_json(req, res, status, j);
}

/* JSON object bodies become fields too (strings only). */
static void form_from_json(ehr_http_request *req, auth_form *f)
{
    json_t *j = json_loadb(req->body, req->body_len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    size_t n = json_object_size(j);
    f->p = ehr_arena_calloc(req->arena, n + 1, sizeof *f->p);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (f->p && json_is_string(v)) {
            f->p[f->n].name = ehr_arena_strdup(req->arena, k);
            f->p[f->n].value = ehr_arena_strdup(req->arena, json_string_value(v));
            if (f->p[f->n].name && f->p[f->n].value)
                f->n++;
        }
    }
    json_decref(j);
}

void auth_form_parse(ehr_http_request *req, auth_form *f)
{
    f->n = 0;
    f->p = NULL;
    const char *ct = ehr_http_header(req, "Content-Type");
    if (ct && (!strncasecmp(ct, "application/json", 16) ||
               !strncasecmp(ct, "application/fhir+json", 21))) {
        form_from_json(req, f);
        return;
    }
    if (req->body_len && ehr_search_split_query(req->body, req->arena, &f->p, &f->n))
        f->n = 0;
}

const char *auth_form_get(const auth_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->p[i].name, name))
            return f->p[i].value;
    return NULL;
}

void auth_anon_ctx(ehr_http_request *req, ehr_repo_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->user = "anonymous";
    ctx->client = req->remote_addr;
}

const char *auth_origin(ehr_auth *a, ehr_http_request *req)
{
    if (a->cfg.base_url)
        return a->cfg.base_url;
    const char *host = ehr_http_header(req, "Host");
    /* only what a host[:port] may hold, so no one can forge our links */
    if (!host || !*host || strlen(host) > 255 ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") !=
            strlen(host))
        host = "localhost";
    const char *proto = ehr_http_header(req, "X-Forwarded-Proto");
    if (!proto || (strcmp(proto, "https") && strcmp(proto, "http")))
        proto = a->cfg.tls ? "https" : "http";
    return ehr_arena_printf(req->arena, "%s://%s", proto, host);
}

const char *auth_fhir_base(ehr_auth *a, ehr_http_request *req)
{
    return ehr_arena_printf(req->arena, "%s/fhir", auth_origin(a, req));
}

const char *auth_cookie(ehr_auth *a, ehr_http_request *req, const char *value)
{
    const char *proto = ehr_http_header(req, "X-Forwarded-Proto");
    bool secure = a->cfg.tls || (proto && !strcmp(proto, "https"));
    /* HttpOnly: scripts can't read it; SameSite=Lax: not sent on cross-site
       POSTs (CSRF), still sent when an app sends the user to /oauth/authorize */
    if (!value)
        return ehr_arena_printf(req->arena,
                                "ehr_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s",
                                secure ? "; Secure" : "");
    return ehr_arena_printf(req->arena,
                            "ehr_session=%s; Path=/; Max-Age=%d; HttpOnly; "
                            "SameSite=Lax%s",
                            value, a->cfg.session_max, secure ? "; Secure" : "");
}

bool auth_wants_json(ehr_http_request *req)
{
    const char *ct = ehr_http_header(req, "Content-Type");
    const char *acc = ehr_http_header(req, "Accept");
    if (ct && !strncasecmp(ct, "application/json", 16))
        return true;
    return acc && strstr(acc, "json") && !strstr(acc, "text/html");
}

void auth_html(ehr_buf *b, const char *s)
{
    if (s)
        ehr_buf_xml_escape(b, s, strlen(s));
}

/* An HTML page; form_action: extra origins the page's form may lead to. */
void auth_page(ehr_http_request *req, ehr_http_response *res, int status, const char *title,
               const char *body, const char *form_action)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    auth_html(&b, title);
    ehr_buf_puts(&b, "</title><style>body{font:16px system-ui,sans-serif;max-width:32em;"
                     "margin:2em auto;padding:0 1em}input,select,button{font:inherit;"
                     "margin:.2em 0}label{display:block;margin-top:.6em}.err{color:#a00}"
                     "</style></head><body><h1>");
    auth_html(&b, title);
    ehr_buf_puts(&b, "</h1>");
    ehr_buf_puts(&b, body);
    ehr_buf_puts(&b, "</body></html>");
    res->status = status;
    ehr_buf_reset(&res->body);
    ehr_buf_append(&res->body, b.data, b.len);
    ehr_buf_free(&b);
    res->content_type = "text/html; charset=utf-8";
    ehr_http_set_header(req, res, "Content-Security-Policy",
                        ehr_arena_printf(req->arena,
                                         "default-src 'none'; style-src 'unsafe-inline'; "
                                         "img-src data:; form-action 'self'%s%s; "
                                         "frame-ancestors 'none'; base-uri 'none'",
                                         form_action ? " " : "", form_action ? form_action : ""));
}
