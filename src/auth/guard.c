/*
 * guard.c - in front of everything: security headers on every answer, and
 * for /fhir and /hl7v2 a valid access token (RFC 6750) turned into the caller's
 * identity and policy.
 *
 * No token: 401 with WWW-Authenticate: Bearer. A token that is malformed,
 * unknown, expired, revoked, or whose user was disabled or whose session
 * ended: 401 with error="invalid_token"; when the store cannot be read to
 * check it, 503 (transient). A valid token whose scopes or
 * role do not allow the interaction: 403, decided in the repository for
 * each interaction (repo.h). GET /fhir/metadata and the SMART
 * configuration are public.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

static void security_headers(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    ehr_http_set_header(req, res, "X-Content-Type-Options", "nosniff");
    ehr_http_set_header(req, res, "X-Frame-Options", "DENY");
    ehr_http_set_header(req, res, "Referrer-Policy", "no-referrer");
    if (a->cfg.tls)
        ehr_http_set_header(req, res, "Strict-Transport-Security",
                            "max-age=31536000; includeSubDomains");
    const char *p = req->path;
    /* PHI, tokens and sessions are never cached */
    if (!strncmp(p, "/fhir", 5) || !strncmp(p, "/oauth/", 7) || !strncmp(p, "/auth/", 6) ||
        !strncmp(p, "/.well-known/", 13) || !strncmp(p, "/hl7v2", 6)) {
        ehr_http_set_header(req, res, "Cache-Control", "no-store");
        ehr_http_set_header(req, res, "Pragma", "no-cache");
    }
}

static void unauthorized(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                         const char *error, const char *message)
{
    char h[300];
    if (error)
        snprintf(h, sizeof h, "Bearer realm=\"ehr\", error=\"%s\", error_description=\"%s\"", error,
                 message);
    else
        snprintf(h, sizeof h, "Bearer realm=\"ehr\"");
    ehr_http_set_header(req, res, "WWW-Authenticate", h);
    if (a->cfg.error_body) {
        a->cfg.error_body(NULL, 401, message, res);
    } else {
        auth_send_json(req, res, 401, json_pack("{s:s}", "error", error ? error : "unauthorized"));
    }
    res->status = 401;
    /* security events: attempts with bad tokens are audited (no token text) */
    if (error) {
        ehr_repo_ctx ctx;
        auth_anon_ctx(req, &ctx);
        json_t *ev =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "action", "token-check", "outcome", "failed",
                      "detail", message, "method", req->method, "path", req->path);
        auth_audit(a, &ctx, ev, NULL);
    }
}

/* A caller for the public endpoints: any decision is "no". */
static auth_identity *public_identity(ehr_auth *a, ehr_http_request *req)
{
    auth_identity *id = auth_open_identity(a, req);
    if (id) {
        id->subject.scopes = &id->scopes; /* no scopes granted */
        id->ctx.role = "public";
    }
    return id;
}

int auth_guard(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    ehr_auth *a = ctx;
    security_headers(a, req, res);
    const char *p = req->path;
    /* HL7 v2 over HTTP (POST /hl7v2) is guarded as /fhir is: its writes
       go through the repository as the caller */
    bool hl7 = !strncmp(p, "/hl7v2", 6) && (!p[6] || p[6] == '/');
    if (!hl7 && (strncmp(p, "/fhir", 5) || (p[5] && p[5] != '/')))
        return EHR_HTTP_NEXT;
    if (!strncmp(p, "/fhir/.well-known/", 18))
        return EHR_HTTP_NEXT; /* the SMART configuration: public (oauth.c) */
    auth_identity *id = NULL;
    if (!strcmp(p, "/fhir/metadata") || !strcmp(p, "/fhir/metadata/")) {
        id = public_identity(a, req);
    } else if (a->cfg.no_auth) {
        id = auth_open_identity(a, req);
    } else {
        const char *h = ehr_http_header(req, "Authorization");
        if (!h || !*h) {
            unauthorized(a, req, res, NULL,
                         "this request needs an access token: Authorization: Bearer TOKEN "
                         "(see /.well-known/smart-configuration, or ehr token on the server)");
            return EHR_HTTP_HANDLED;
        }
        if (strncasecmp(h, "Bearer ", 7)) {
            unauthorized(a, req, res, "invalid_request",
                         "the Authorization header must be: Bearer TOKEN");
            return EHR_HTTP_HANDLED;
        }
        const char *tok = h + 7;
        while (*tok == ' ')
            tok++;
        ehr_err err = {{0}};
        id = auth_token_identity(a, req, tok, &err);
        if (!id && !strcmp(err.where, "store")) {
            /* the database did not answer: try again later (no false 401) */
            ehr_http_set_header(req, res, "Retry-After", "1");
            if (a->cfg.error_body)
                a->cfg.error_body(NULL, 503, "the service is unavailable for a moment; try again",
                                  res);
            else
                auth_send_json(req, res, 503, json_pack("{s:s}", "error", "unavailable"));
            res->status = 503;
            return EHR_HTTP_HANDLED;
        }
        if (!id) {
            unauthorized(a, req, res, "invalid_token",
                         err.msg[0] ? err.msg : "the access token is not valid");
            return EHR_HTTP_HANDLED;
        }
    }
    if (!id) {
        res->status = 500;
        return EHR_HTTP_HANDLED;
    }
    req->user = &id->ctx;
    if (auth_audit_view(a, req, res, &id->ctx))
        return EHR_HTTP_HANDLED;
    return EHR_HTTP_NEXT;
}
