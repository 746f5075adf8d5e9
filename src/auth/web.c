/*
 * web.c - /auth/...: sign-in for people (HTML forms, or JSON for scripts and
 * the web apps), the second factor, logout, break-glass and EHR launch.
 *
 *   GET  /auth/login             the sign-in form (?next=/local/path)
 *   POST /auth/login             username, password [, next]
 *   GET  /auth/mfa, POST         the TOTP (or recovery) code
 *   GET  /auth/mfa/enroll, POST  a new TOTP secret with its QR code; confirm with a code
 *   POST /auth/logout            ends the session (and the tokens bound to it)
 *   GET  /auth/session           who is signed in (401 when no one)
 *   POST /auth/break-glass       patient, reason: emergency access, audited
 *   POST /auth/launch            patient: an EHR launch context for an app
 *   GET  /auth/access?patient=ID may the caller see this patient's chart
 *                                (panel, break-glass or role), and may they
 *                                break the glass; for apps, so that an empty
 *                                chart is not mistaken for an empty record
 *
 * Sign-in answers never tell a wrong password from an unknown, locked or
 * disabled user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/util.h"

static const char *safe_next(const char *next)
{
    /* a local path only: no open redirect to another site */
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\' || strchr(next, '\r') ||
        strchr(next, '\n') || strlen(next) > 4000)
        return "/auth/session";
    return next;
}

static void see_other(ehr_http_request *req, ehr_http_response *res, const char *where)
{
    ehr_http_set_header(req, res, "Location", where);
    res->status = 303;
    ehr_buf_reset(&res->body);
}

static void pct(ehr_buf *b, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~/", c))
            ehr_buf_putc(b, (char)c);
        else
            ehr_buf_printf(b, "%%%02X", c);
    }
}

static const char *with_next(ehr_http_request *req, const char *path, const char *next)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_printf(&b, "%s?next=", path);
    pct(&b, next);
    const char *s = ehr_arena_strdup(req->arena, b.data);
    ehr_buf_free(&b);
    return s;
}

static void json_status(ehr_http_request *req, ehr_http_response *res, int status,
                        const char *state, const char *next)
{
    json_t *j = json_pack("{s:s}", "status", state);
    if (j && next)
        json_object_set_new(j, "next", json_string(next));
    auth_send_json(req, res, status, j);
}

static void json_error(ehr_http_request *req, ehr_http_response *res, int status, const char *msg)
{
    auth_send_json(req, res, status, json_pack("{s:s}", "error", msg));
}

/* Cross-site form posts carry an Origin we do not know: refused. */
static bool same_origin(ehr_auth *a, ehr_http_request *req)
{
    const char *o = ehr_http_header(req, "Origin");
    if (!o || !strcmp(o, "null"))
        return o == NULL;
    return !strcmp(o, auth_origin(a, req));
}

/* ---- pages ---- */

static void login_page(ehr_http_request *req, ehr_http_response *res, int status, const char *next,
                       const char *error)
{
    ehr_buf b = EHR_BUF_INIT;
    if (error) {
        ehr_buf_puts(&b, "<p class=\"err\">");
        auth_html(&b, error);
        ehr_buf_puts(&b, "</p>");
    }
    ehr_buf_puts(&b, "<form method=\"post\" action=\"/auth/login\">"
                     "<label>User name <input name=\"username\" autocomplete=\"username\" "
                     "required autofocus></label>"
                     "<label>Password <input name=\"password\" type=\"password\" "
                     "autocomplete=\"current-password\" required></label>"
                     "<input type=\"hidden\" name=\"next\" value=\"");
    auth_html(&b, next);
    ehr_buf_puts(&b, "\"><p><button>Sign in</button></p></form>");
    auth_page(req, res, status, "Sign in to ehr", b.data, NULL);
    ehr_buf_free(&b);
}

static void mfa_page(ehr_http_request *req, ehr_http_response *res, int status, const char *next,
                     const char *error)
{
    ehr_buf b = EHR_BUF_INIT;
    if (error) {
        ehr_buf_puts(&b, "<p class=\"err\">");
        auth_html(&b, error);
        ehr_buf_puts(&b, "</p>");
    }
    ehr_buf_puts(&b, "<form method=\"post\" action=\"/auth/mfa\"><label>The 6-digit code from "
                     "your authenticator app (or a recovery code) <input name=\"code\" "
                     "autocomplete=\"one-time-code\" inputmode=\"numeric\" required autofocus>"
                     "</label><input type=\"hidden\" name=\"next\" value=\"");
    auth_html(&b, next);
    ehr_buf_puts(&b, "\"><p><button>Continue</button></p></form>");
    auth_page(req, res, status, "Second step", b.data, NULL);
    ehr_buf_free(&b);
}

/* ---- handlers ---- */

static void login(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    bool json = auth_wants_json(req);
    if (!strcmp(req->method, "GET")) {
        login_page(req, res, 200, safe_next(ehr_http_param(req, "next")), NULL);
        return;
    }
    if (strcmp(req->method, "POST")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "GET, POST");
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    const char *next = safe_next(auth_form_get(&f, "next") ? auth_form_get(&f, "next")
                                                           : ehr_http_param(req, "next"));
    if (!same_origin(a, req)) {
        json_error(req, res, 403, "cross-site sign-in is refused");
        return;
    }
    ehr_repo_ctx who;
    auth_anon_ctx(req, &who);
    ehr_buf cookie = EHR_BUF_INIT;
    ehr_err err = {{0}};
    auth_login_result r = auth_login(a, &who, auth_form_get(&f, "username"),
                                     auth_form_get(&f, "password"), &cookie, &err);
    if (r == LOGIN_FAILED) {
        ehr_buf_free(&cookie);
        if (json)
            json_error(req, res, 401, "invalid username or password");
        else
            login_page(req, res, 401, next, "Invalid username or password.");
        return;
    }
    ehr_http_set_header(req, res, "Set-Cookie", auth_cookie(a, req, cookie.data));
    ehr_buf_free(&cookie);
    const char *state = r == LOGIN_OK    ? "ok"
                        : r == LOGIN_MFA ? "mfa_required"
                                         : "mfa_enrollment_required";
    if (json) {
        json_status(req, res, 200, state, next);
        return;
    }
    if (r == LOGIN_OK)
        see_other(req, res, next);
    else
        see_other(req, res,
                  with_next(req, r == LOGIN_MFA ? "/auth/mfa" : "/auth/mfa/enroll", next));
}

static void mfa(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    bool json = auth_wants_json(req);
    char key[65];
    json_t *s = auth_session(a, req, key);
    const char *next = safe_next(ehr_http_param(req, "next"));
    if (!s || strcmp(auth_str(s, "state") ?: "", "mfa")) {
        json_decref(s);
        if (json)
            json_error(req, res, 401, "sign in first");
        else
            see_other(req, res, with_next(req, "/auth/login", next));
        return;
    }
    if (!strcmp(req->method, "GET")) {
        mfa_page(req, res, 200, next, NULL);
        json_decref(s);
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    if (auth_form_get(&f, "next"))
        next = safe_next(auth_form_get(&f, "next"));
    ehr_repo_ctx who;
    auth_anon_ctx(req, &who);
    const char *user = auth_str(s, "user");
    if (!same_origin(a, req) || !auth_mfa_check(a, &who, user, auth_form_get(&f, "code"), NULL)) {
        /* locked now? then the half-open session ends too */
        json_t *u = auth_user_get(a, user);
        if (u && auth_int(u, "locked_until") > ehr_time_now_us())
            auth_session_end(a, key, NULL);
        json_decref(u);
        if (json)
            json_error(req, res, 401, "invalid code");
        else
            mfa_page(req, res, 401, next, "Invalid code.");
        json_decref(s);
        return;
    }
    json_object_set_new(s, "state", json_string("ok"));
    auth_session_save(a, key, s, NULL);
    json_decref(s);
    if (json)
        json_status(req, res, 200, "ok", next);
    else
        see_other(req, res, next);
}

static void enroll(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    bool json = auth_wants_json(req);
    char key[65];
    json_t *s = auth_session(a, req, key);
    const char *next = safe_next(ehr_http_param(req, "next"));
    json_t *u = s ? auth_user_get(a, auth_str(s, "user")) : NULL;
    const char *state = s ? auth_str(s, "state") ?: "" : "";
    /* enrol when required at sign-in, or by choice once signed in without MFA */
    if (!u || !(!strcmp(state, "enroll") || (!strcmp(state, "ok") && !auth_str(u, "totp")))) {
        json_decref(s);
        json_decref(u);
        if (json)
            json_error(req, res, 401, "sign in first");
        else
            see_other(req, res, with_next(req, "/auth/login", next));
        return;
    }
    ehr_repo_ctx who;
    auth_anon_ctx(req, &who);
    who.user = auth_str(s, "user");
    if (!strcmp(req->method, "GET")) {
        ehr_buf secret = EHR_BUF_INIT, uri = EHR_BUF_INIT, svg = EHR_BUF_INIT;
        auth_mfa_begin(a, auth_str(s, "user"), &secret, NULL);
        ehr_totp_uri("ehr", auth_str(s, "user"), secret.data, &uri);
        ehr_qr_svg(uri.data, &svg);
        json_object_set_new(s, "pending", json_string(secret.data));
        auth_session_save(a, key, s, NULL);
        if (json) {
            auth_send_json(req, res, 200,
                           json_pack("{s:s, s:s, s:s}", "secret", secret.data, "otpauth_uri",
                                     uri.data, "qr_svg", svg.data ? svg.data : ""));
        } else {
            ehr_buf b = EHR_BUF_INIT;
            ehr_buf_puts(&b, "<p>Scan this code with an authenticator app, then type the code "
                             "it shows.</p>");
            ehr_buf_append(&b, svg.data, svg.len); /* our own SVG: no user text in it */
            ehr_buf_puts(&b, "<p>Or enter this key: <code>");
            auth_html(&b, secret.data);
            ehr_buf_puts(&b, "</code></p><form method=\"post\" action=\"/auth/mfa/enroll\">"
                             "<label>Code <input name=\"code\" autocomplete=\"one-time-code\" "
                             "inputmode=\"numeric\" required autofocus></label>"
                             "<input type=\"hidden\" name=\"next\" value=\"");
            auth_html(&b, next);
            ehr_buf_puts(&b, "\"><p><button>Confirm</button></p></form>");
            auth_page(req, res, 200, "Set up two-step sign-in", b.data, NULL);
            ehr_buf_free(&b);
        }
        ehr_buf_free(&secret);
        ehr_buf_free(&uri);
        ehr_buf_free(&svg);
        json_decref(s);
        json_decref(u);
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    if (auth_form_get(&f, "next"))
        next = safe_next(auth_form_get(&f, "next"));
    json_t *codes = NULL;
    const char *pending = auth_str(s, "pending");
    if (!same_origin(a, req) || !pending ||
        auth_mfa_confirm(a, &who, auth_str(s, "user"), pending, auth_form_get(&f, "code"), &codes,
                         NULL)) {
        if (json)
            json_error(req, res, 401, "invalid code");
        else
            auth_page(req, res, 401, "Set up two-step sign-in",
                      "<p class=\"err\">Invalid code. <a href=\"/auth/mfa/enroll\">Start "
                      "again</a>.</p>",
                      NULL);
        json_decref(s);
        json_decref(u);
        return;
    }
    json_object_del(s, "pending");
    json_object_set_new(s, "state", json_string("ok"));
    auth_session_save(a, key, s, NULL);
    if (json) {
        auth_send_json(
            req, res, 200,
            json_pack("{s:s, s:O, s:s}", "status", "ok", "recovery_codes", codes, "next", next));
    } else {
        ehr_buf b = EHR_BUF_INIT;
        ehr_buf_puts(&b, "<p>Keep these recovery codes somewhere safe; each works once if you "
                         "lose your authenticator:</p><ul>");
        for (size_t i = 0; i < json_array_size(codes); i++) {
            ehr_buf_puts(&b, "<li><code>");
            auth_html(&b, json_string_value(json_array_get(codes, i)));
            ehr_buf_puts(&b, "</code></li>");
        }
        ehr_buf_puts(&b, "</ul><p><a href=\"");
        auth_html(&b, next);
        ehr_buf_puts(&b, "\">Continue</a></p>");
        auth_page(req, res, 200, "Two-step sign-in is on", b.data, NULL);
        ehr_buf_free(&b);
    }
    json_decref(codes);
    json_decref(s);
    json_decref(u);
}

static void logout(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "POST")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "POST");
        return;
    }
    char key[65];
    json_t *s = auth_session(a, req, key);
    if (s && same_origin(a, req)) {
        ehr_repo_ctx who;
        auth_anon_ctx(req, &who);
        who.user = auth_str(s, "user");
        auth_session_end(a, key, NULL);
        auth_audit(a, &who, json_pack("{s:s, s:s}", "action", "logout", "outcome", "ok"), NULL);
    }
    json_decref(s);
    ehr_http_set_header(req, res, "Set-Cookie", auth_cookie(a, req, NULL));
    if (auth_wants_json(req))
        json_status(req, res, 200, "logged_out", NULL);
    else
        see_other(req, res, "/auth/login");
}

static void session_info(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    char key[65];
    json_t *s = auth_session(a, req, key);
    if (!s) {
        json_error(req, res, 401, "no session");
        return;
    }
    json_t *u = auth_user_get(a, auth_str(s, "user"));
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:b, s:i, s:I}", "user", auth_str(s, "user") ?: "", "role",
                  u ? auth_str(u, "role") ?: "" : "", "state", auth_str(s, "state") ?: "", "mfa",
                  u && auth_str(u, "totp"), "idle_timeout", a->cfg.session_idle, "expires",
                  (json_int_t)((auth_int(s, "created") + a->cfg.session_max * US) / US));
    json_decref(u);
    json_decref(s);
    auth_send_json(req, res, 200, j);
}

/* The signed-in caller of an /auth API: a bearer token or a full session. */
static auth_identity *caller(ehr_auth *a, ehr_http_request *req)
{
    const char *h = ehr_http_header(req, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7))
        return auth_token_identity(a, req, h + 7, NULL);
    char key[65];
    json_t *s = auth_session(a, req, key);
    auth_identity *id = NULL;
    if (s && !strcmp(auth_str(s, "state") ?: "", "ok") && same_origin(a, req))
        id = auth_session_identity(a, req, s);
    json_decref(s);
    return id;
}

static bool valid_id(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    return n > 0 && n <= 64 &&
           strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n;
}

static void break_glass(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "POST")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "POST");
        return;
    }
    auth_identity *id = caller(a, req);
    if (!id || !id->username[0]) {
        json_error(req, res, 401, "sign in first (bearer token or session)");
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    const char *patient = auth_form_get(&f, "patient");
    const char *reason = auth_form_get(&f, "reason");
    if (patient && !strncmp(patient, "Patient/", 8))
        patient += 8;
    if (!(a->cfg.glass_roles & EHR_ROLE_BIT(id->subject.role))) {
        auth_audit(a, &id->ctx,
                   json_pack("{s:s, s:s, s:s?}", "action", "break-glass", "outcome", "denied",
                             "detail", "role not allowed"),
                   NULL);
        json_error(req, res, 403, "your role may not use emergency access");
        return;
    }
    if (!valid_id(patient)) {
        json_error(req, res, 400, "patient must be a Patient id");
        return;
    }
    size_t rl = reason ? strlen(reason) : 0;
    if (rl < 8 || rl > 1000) {
        json_error(req, res, 400, "a reason is required (8 to 1000 characters)");
        return;
    }
    /* the patient must exist (demographics are readable to clinicians) */
    ehr_repo_out o = {0};
    ehr_status st = ehr_repo_read(a->repo, &id->ctx, "Patient", patient, 0, &o, NULL);
    ehr_repo_out_free(&o);
    if (st) {
        json_error(req, res, 404, "no such patient");
        return;
    }
    ehr_buf gk = EHR_BUF_INIT;
    ehr_secret_new(16, &gk);
    int64_t now = ehr_time_now_us(), until = now + (int64_t)a->cfg.glass_minutes * 60 * US;
    json_t *g = json_pack("{s:s, s:s, s:s, s:I}", "user", id->username, "patient", patient,
                          "reason", reason, "at", (json_int_t)now);
    st = auth_put(a, "glass", gk.data, id->username, until, g, true, NULL);
    json_decref(g);
    ehr_buf_free(&gk);
    if (!st)
        st = auth_audit(a, &id->ctx,
                        json_pack("{s:s, s:s, s:[s], s:s, s:b, s:I}", "action", "break-glass",
                                  "outcome", "ok", "patients", patient, "reason", reason,
                                  "break_glass", 1, "until", (json_int_t)(until / US)),
                        NULL);
    if (st) {
        json_error(req, res, 500, "the grant could not be recorded");
        return;
    }
    ehr_log(EHR_LOG_WARN,
            "auth: emergency access (break-glass) by user %s; see ehr audit "
            "report --break-glass",
            id->username);
    auth_send_json(req, res, 201,
                   json_pack("{s:s, s:I, s:i}", "patient", patient, "expires",
                             (json_int_t)(until / US), "minutes", a->cfg.glass_minutes));
}

static void launch(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "POST")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "POST");
        return;
    }
    auth_identity *id = caller(a, req);
    if (!id || !id->username[0]) {
        json_error(req, res, 401, "sign in first (bearer token or session)");
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    const char *patient = auth_form_get(&f, "patient");
    if (patient && !strncmp(patient, "Patient/", 8))
        patient += 8;
    json_t *u = auth_user_get(a, id->username);
    bool ok = valid_id(patient) && u && auth_user_may_see(a, u, patient);
    json_decref(u);
    if (!ok) {
        json_error(req, res, 403, "no access to this patient");
        return;
    }
    ehr_buf l = EHR_BUF_INIT;
    char lk[65];
    ehr_secret_new(16, &l);
    ehr_sha256_hex(l.data, l.len, lk);
    json_t *doc = json_pack("{s:s, s:s}", "user", id->username, "patient", patient);
    ehr_status st =
        auth_put(a, "launch", lk, id->username, ehr_time_now_us() + 300 * US, doc, true, NULL);
    json_decref(doc);
    if (st)
        json_error(req, res, 500, "the launch could not be recorded");
    else
        auth_send_json(req, res, 201,
                       json_pack("{s:s, s:s}", "launch", l.data, "patient", patient));
    ehr_buf_free(&l);
}

static void access_info(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "GET")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "GET");
        return;
    }
    auth_identity *id = caller(a, req);
    if (!id || !id->username[0]) {
        json_error(req, res, 401, "sign in first (bearer token or session)");
        return;
    }
    const char *patient = ehr_http_param(req, "patient");
    if (patient && !strncmp(patient, "Patient/", 8))
        patient += 8;
    if (!valid_id(patient)) {
        json_error(req, res, 400, "patient must be a Patient id");
        return;
    }
    json_t *u = auth_user_get(a, id->username);
    bool chart = u && auth_user_may_see(a, u, patient);
    json_decref(u);
    bool glass = (a->cfg.glass_roles & EHR_ROLE_BIT(id->subject.role)) != 0;
    auth_send_json(req, res, 200,
                   json_pack("{s:s, s:b, s:b, s:i}", "patient", patient, "chart", chart,
                             "break_glass", glass && !chart, "minutes", a->cfg.glass_minutes));
}

int auth_web(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    ehr_auth *a = ctx;
    const char *p = req->path + 6; /* after "/auth/" */
    if (!strcmp(p, "login"))
        login(a, req, res);
    else if (!strcmp(p, "mfa"))
        mfa(a, req, res);
    else if (!strcmp(p, "mfa/enroll"))
        enroll(a, req, res);
    else if (!strcmp(p, "logout"))
        logout(a, req, res);
    else if (!strcmp(p, "session"))
        session_info(a, req, res);
    else if (!strcmp(p, "break-glass"))
        break_glass(a, req, res);
    else if (!strcmp(p, "launch"))
        launch(a, req, res);
    else if (!strcmp(p, "access"))
        access_info(a, req, res);
    else
        json_error(req, res, 404, "no such page");
    return EHR_HTTP_HANDLED;
}
