/*
 * oauth.c - the SMART App Launch 2.0 authorization server: discovery,
 * the authorization code flow with PKCE, the token endpoint (code,
 * refresh, backend services), introspection, revocation, JWKS.
 *
 * Rules enforced, with where they come from:
 *  - PKCE is required, S256 only; "plain" is refused (SMART 2.0 2.0.8).
 *  - redirect_uri must equal a registered one exactly (RFC 6749 3.1.2,
 *    OAuth Security BCP 4.1); an unknown client or redirect is answered
 *    here, never redirected to.
 *  - aud must be this server's FHIR base (SMART 2.0 2.0.5).
 *  - codes live 60 s and work once; a replayed code revokes what it gave.
 *  - refresh tokens rotate; reuse revokes the family.
 *  - client assertions (private_key_jwt, SMART Backend Services): RS384 or
 *    ES384 against the registered JWKS, iss = sub = client_id, aud = the
 *    token endpoint, exp at most 5 minutes ahead, jti never seen before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/json.h"
#include "core/util.h"

#define CODE_TTL 60
#define ASSERTION_MAX_AHEAD 300
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/* ---- discovery ---- */

static void smart_configuration(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    const char *o = auth_origin(a, req);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[ss], s:[sss], s:[ss], s:[s], s:[s], s:[s],"
        " s:[ssssssss], s:[sssssssssssssss]}",
        "issuer", o, "jwks_uri", ehr_arena_printf(req->arena, "%s/oauth/jwks", o),
        "authorization_endpoint", ehr_arena_printf(req->arena, "%s/oauth/authorize", o),
        "token_endpoint", ehr_arena_printf(req->arena, "%s/oauth/token", o),
        "introspection_endpoint", ehr_arena_printf(req->arena, "%s/oauth/introspect", o),
        "revocation_endpoint", ehr_arena_printf(req->arena, "%s/oauth/revoke", o),
        "management_endpoint", ehr_arena_printf(req->arena, "%s/auth/session", o),
        "token_endpoint_auth_signing_alg_values_supported", "RS384", "ES384",
        "grant_types_supported", "authorization_code", "refresh_token", "client_credentials",
        "token_endpoint_auth_methods_supported", "client_secret_basic", "private_key_jwt",
        "response_types_supported", "code", "code_challenge_methods_supported", "S256",
        "id_token_signing_alg_values_supported", "RS256", "scopes_supported", "openid", "fhirUser",
        "launch", "launch/patient", "offline_access", "online_access", "patient/*.rs", "user/*.rs",
        "capabilities", "launch-ehr", "launch-standalone", "client-public",
        "client-confidential-symmetric", "client-confidential-asymmetric", "context-ehr-patient",
        "context-standalone-patient", "sso-openid-connect", "permission-offline",
        "permission-online", "permission-patient", "permission-user", "permission-v1",
        "permission-v2", "authorize-post", "context-passthrough-banner");
    auth_send_json(req, res, 200, j);
}

/* ---- helpers ---- */

static void pct(ehr_buf *b, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            ehr_buf_putc(b, (char)c);
        else
            ehr_buf_printf(b, "%%%02X", c);
    }
}

static void redirect(ehr_http_request *req, ehr_http_response *res, const char *uri,
                     const char *const *kv)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, uri);
    char sep = strchr(uri, '?') ? '&' : '?';
    for (size_t i = 0; kv[i]; i += 2) {
        if (!kv[i + 1])
            continue;
        ehr_buf_printf(&b, "%c%s=", sep, kv[i]);
        pct(&b, kv[i + 1]);
        sep = '&';
    }
    ehr_http_set_header(req, res, "Location", b.data);
    ehr_buf_free(&b);
    res->status = 302;
    ehr_buf_reset(&res->body);
}

static void redirect_error(ehr_http_request *req, ehr_http_response *res, const char *uri,
                           const char *error, const char *desc, const char *state)
{
    const char *kv[] = {"error", error, "error_description", desc, "state", state, NULL};
    redirect(req, res, uri, kv);
}

static void bad_request_page(ehr_http_request *req, ehr_http_response *res, const char *msg)
{
    if (auth_wants_json(req)) {
        auth_oauth_error(req, res, 400, "invalid_request", msg);
        return;
    }
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, "<p class=\"err\">");
    auth_html(&b, msg);
    ehr_buf_puts(&b, "</p>");
    auth_page(req, res, 400, "Authorization failed", b.data, NULL);
    ehr_buf_free(&b);
}

static bool has_redirect(const json_t *client, const char *uri)
{
    const json_t *uris = json_object_get(client, "redirect_uris");
    for (size_t i = 0; uri && i < json_array_size(uris); i++)
        if (!strcmp(json_string_value(json_array_get(uris, i)) ?: "", uri))
            return true;
    return false;
}

/* The origin of a URL ("https://app.example:8443"), in the arena. */
static const char *url_origin(ehr_http_request *req, const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return NULL;
    size_t n = (size_t)(p + 3 - url) + strcspn(p + 3, "/?#");
    return ehr_arena_strndup(req->arena, url, n);
}

static bool same_base(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na && a[na - 1] == '/')
        na--;
    while (nb && b[nb - 1] == '/')
        nb--;
    return na == nb && !strncmp(a, b, na);
}

/* ---- authorize ---- */

struct authz {
    const char *response_type, *client_id, *redirect_uri, *scope, *state, *aud;
    const char *challenge, *method, *launch, *nonce;
    json_t *client;
};

static const char *field(ehr_http_request *req, const auth_form *f, const char *name)
{
    const char *v = auth_form_get(f, name);
    return v ? v : ehr_http_param(req, name);
}

/*
 * Check the request's parameters. On an error that may be redirected,
 * *redir is set; otherwise the error is answered here. Returns false on
 * any error (answer set).
 */
static bool authz_check(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                        const auth_form *f, struct authz *z)
{
    z->response_type = field(req, f, "response_type");
    z->client_id = field(req, f, "client_id");
    z->redirect_uri = field(req, f, "redirect_uri");
    z->scope = field(req, f, "scope");
    z->state = field(req, f, "state");
    z->aud = field(req, f, "aud");
    z->challenge = field(req, f, "code_challenge");
    z->method = field(req, f, "code_challenge_method");
    z->launch = field(req, f, "launch");
    z->nonce = field(req, f, "nonce");
    if (!z->client_id || auth_get(a, "client", z->client_id, &z->client, NULL)) {
        bad_request_page(req, res, "unknown client_id");
        return false;
    }
    if (!strcmp(auth_str(z->client, "type") ?: "", "backend")) {
        bad_request_page(req, res, "a backend service client cannot use this flow");
        return false;
    }
    /* the first-party app comes back to this server's own origin */
    bool first_party = json_is_true(json_object_get(z->client, "first_party"));
    if (!has_redirect(z->client, z->redirect_uri) &&
        !(first_party && z->redirect_uri &&
          !strcmp(z->redirect_uri, ehr_arena_printf(req->arena, "%s/", auth_origin(a, req))))) {
        bad_request_page(req, res, "redirect_uri is not one registered for this client");
        return false;
    }
    const char *err = NULL, *desc = NULL;
    if (!z->response_type || strcmp(z->response_type, "code"))
        err = "unsupported_response_type", desc = "only response_type=code is supported";
    else if (!z->state || !*z->state)
        err = "invalid_request", desc = "state is required";
    else if (!z->challenge || !z->method)
        err = "invalid_request", desc = "PKCE is required: code_challenge and "
                                        "code_challenge_method=S256";
    else if (strcmp(z->method, "S256"))
        err = "invalid_request", desc = "code_challenge_method must be S256 (plain is refused)";
    else if (strlen(z->challenge) != 43 ||
             strspn(z->challenge, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789-_") != 43)
        err = "invalid_request", desc = "code_challenge is not a base64url SHA-256";
    else if (!z->aud || !same_base(z->aud, auth_fhir_base(a, req)))
        err = "invalid_request", desc = "aud must be this server's FHIR base URL";
    else if (!z->scope || !*z->scope)
        err = "invalid_scope", desc = "scope is required";
    if (err) {
        redirect_error(req, res, z->redirect_uri, err, desc, z->state);
        return false;
    }
    ehr_scopes sc;
    if (ehr_scopes_parse(z->scope, &sc, NULL)) {
        redirect_error(req, res, z->redirect_uri, "invalid_scope", "a scope is malformed",
                       z->state);
        return false;
    }
    return true;
}

/* The scopes to grant: asked ∩ the client's cap; user-facing levels only. */
static void grant_scopes(ehr_auth *a, const struct authz *z, ehr_scopes *out)
{
    ehr_scopes cap;
    ehr_scopes_parse(z->scope, out, NULL);
    if (ehr_scopes_parse(auth_str(z->client, "scope"), &cap, NULL) == EHR_OK) {
        ehr_scopes_narrow(out, &cap, true, true, false);
#define KEEP(f) out->f = out->f && cap.f
        KEEP(openid);
        KEEP(fhir_user);
        KEEP(profile);
        KEEP(launch);
        KEEP(launch_patient);
        KEEP(launch_encounter);
        KEEP(offline_access);
        KEEP(online_access);
#undef KEEP
    }
}

static void hidden(ehr_buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    ehr_buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
    auth_html(b, value);
    ehr_buf_puts(b, "\">");
}

static void consent_page(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                         const struct authz *z, const json_t *session, const json_t *user,
                         const ehr_scopes *sc, bool need_patient, const char *launch_patient)
{
    ehr_buf b = EHR_BUF_INIT, s = EHR_BUF_INIT;
    ehr_scopes_format(sc, &s);
    ehr_buf_puts(&b, "<p><b>");
    auth_html(&b, auth_str(z->client, "name"));
    ehr_buf_puts(&b, "</b> asks to use your account <b>");
    auth_html(&b, auth_str(user, "username"));
    ehr_buf_puts(&b, "</b> with these permissions:</p><ul>");
    const char *p = s.data ? s.data : "";
    while (*p) {
        size_t n = strcspn(p, " ");
        ehr_buf_puts(&b, "<li><code>");
        ehr_buf_xml_escape(&b, p, n);
        ehr_buf_puts(&b, "</code></li>");
        p += n;
        p += strspn(p, " ");
    }
    ehr_buf_puts(&b, "</ul><form method=\"post\" action=\"/oauth/authorize\">");
    static const char *const names[] = {
        "response_type", "client_id",      "redirect_uri",          "scope",  "state",
        "aud",           "code_challenge", "code_challenge_method", "launch", "nonce"};
    const char *vals[] = {z->response_type, z->client_id, z->redirect_uri, z->scope,  z->state,
                          z->aud,           z->challenge, z->method,       z->launch, z->nonce};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        hidden(&b, names[i], vals[i]);
    hidden(&b, "csrf", auth_str(session, "csrf"));
    if (launch_patient) {
        ehr_buf_puts(&b, "<p>For the patient <code>");
        auth_html(&b, launch_patient);
        ehr_buf_puts(&b, "</code>.</p>");
    } else if (need_patient) {
        ehr_buf_puts(&b, "<label>Patient<select name=\"patient\">");
        const json_t *pts = json_object_get(user, "patients");
        for (size_t i = 0; i < json_array_size(pts); i++) {
            ehr_buf_puts(&b, "<option value=\"");
            auth_html(&b, json_string_value(json_array_get(pts, i)));
            ehr_buf_puts(&b, "\">Patient/");
            auth_html(&b, json_string_value(json_array_get(pts, i)));
            ehr_buf_puts(&b, "</option>");
        }
        ehr_buf_puts(&b, "</select></label>");
        ehr_role r;
        if (auth_user_role(user, &r) && r != EHR_ROLE_PATIENT)
            ehr_buf_puts(&b, "<label>or another patient's id <input name=\"patient_id\" "
                             "autocomplete=\"off\"></label>");
    }
    ehr_buf_puts(&b, "<p><button name=\"decision\" value=\"allow\">Allow</button> "
                     "<button name=\"decision\" value=\"deny\">Deny</button></p></form>");
    auth_page(req, res, 200, "Allow access?", b.data, url_origin(req, z->redirect_uri));
    ehr_buf_free(&b);
    ehr_buf_free(&s);
}

static void authorize(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    auth_form f = {0};
    bool post = !strcmp(req->method, "POST");
    if (post)
        auth_form_parse(req, &f);
    else if (strcmp(req->method, "GET")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "GET, POST");
        return;
    }
    struct authz z = {0};
    if (!authz_check(a, req, res, &f, &z)) {
        json_decref(z.client);
        return;
    }
    char skey[65];
    json_t *session = auth_session(a, req, skey);
    const char *decision = auth_form_get(&f, "decision");
    if (!session || strcmp(auth_str(session, "state") ?: "", "ok")) {
        json_decref(session);
        json_decref(z.client);
        if (post && decision) {
            bad_request_page(req, res, "your session has ended; start again from the app");
            return;
        }
        /* log in first, then come back here */
        ehr_buf next = EHR_BUF_INIT;
        ehr_buf_puts(&next, "/oauth/authorize?");
        if (post) {
            for (size_t i = 0; i < f.n; i++) {
                ehr_buf_printf(&next, "%s%s=", i ? "&" : "", f.p[i].name);
                pct(&next, f.p[i].value);
            }
        } else {
            ehr_buf_puts(&next, req->raw_query);
        }
        const char *kv[] = {"next", next.data, NULL};
        redirect(req, res, "/auth/login", kv);
        ehr_buf_free(&next);
        return;
    }
    json_t *user = auth_user_get(a, auth_str(session, "user"));
    ehr_role role;
    ehr_scopes sc;
    grant_scopes(a, &z, &sc);
    ehr_repo_ctx who;
    auth_anon_ctx(req, &who);
    who.user = auth_str(session, "user");
    who.app = z.client_id;
    const char *errc = NULL, *desc = NULL;
    char lp[72] = "";
    if (!user || !auth_user_role(user, &role))
        errc = "access_denied", desc = "the user may not use apps";
    /* the patient context: an EHR launch names it; else a patient's own
       record, or the one picked on the consent page */
    if (!errc && z.launch) {
        json_t *l = NULL;
        char lk[65];
        ehr_sha256_hex(z.launch, strlen(z.launch), lk);
        if (auth_get(a, "launch", lk, &l, NULL) ||
            strcmp(auth_str(l, "user") ?: "", auth_str(user, "username") ?: ""))
            errc = "invalid_request", desc = "unknown or expired launch";
        else
            snprintf(lp, sizeof lp, "%s", auth_str(l, "patient") ?: "");
        json_decref(l);
    }
    bool want_patient = sc.launch_patient || ehr_scopes_have_level(&sc, 'p');
    if (!errc && !lp[0] && want_patient && role == EHR_ROLE_PATIENT &&
        json_array_size(json_object_get(user, "patients")) == 1)
        snprintf(lp, sizeof lp, "%s",
                 json_string_value(json_array_get(json_object_get(user, "patients"), 0)) ?: "");
    if (errc) {
        redirect_error(req, res, z.redirect_uri, errc, desc, z.state);
        goto out;
    }
    /* the first-party app needs no consent: it is this server's own, and the
       code goes back to this origin only (authz_check) */
    if (json_is_true(json_object_get(z.client, "first_party")))
        decision = "allow";
    else if (!post || !decision) {
        consent_page(a, req, res, &z, session, user, &sc, want_patient && !lp[0],
                     lp[0] ? lp : NULL);
        goto out;
    }
    /* the decision: a form of ours, for this session */
    if (!json_is_true(json_object_get(z.client, "first_party")) &&
        !ehr_ct_equal(auth_form_get(&f, "csrf"), auth_str(session, "csrf"))) {
        bad_request_page(req, res, "the form has expired; start again from the app");
        goto out;
    }
    if (strcmp(decision, "allow")) {
        auth_audit(a, &who,
                   json_pack("{s:s, s:s, s:s}", "action", "authorize", "outcome", "denied",
                             "detail", "the user denied access"),
                   NULL);
        redirect_error(req, res, z.redirect_uri, "access_denied", "the user denied access",
                       z.state);
        goto out;
    }
    if (!lp[0] && want_patient) {
        const char *pick = auth_form_get(&f, "patient_id");
        if (!pick || !*pick)
            pick = auth_form_get(&f, "patient");
        if (pick && !strncmp(pick, "Patient/", 8))
            pick += 8;
        if (!pick || !*pick || strlen(pick) > 64) {
            redirect_error(req, res, z.redirect_uri, "invalid_request", "no patient was chosen",
                           z.state);
            goto out;
        }
        snprintf(lp, sizeof lp, "%s", pick);
    }
    if (lp[0] && !auth_user_may_see(a, user, lp)) {
        auth_audit(a, &who,
                   json_pack("{s:s, s:s, s:[s], s:s}", "action", "authorize", "outcome", "denied",
                             "patients", lp, "detail", "patient outside the user's access"),
                   NULL);
        redirect_error(req, res, z.redirect_uri, "access_denied",
                       "you have no access to this patient", z.state);
        goto out;
    }
    ehr_buf code = EHR_BUF_INIT, sstr = EHR_BUF_INIT;
    char ck[65];
    ehr_secret_new(32, &code);
    ehr_sha256_hex(code.data, code.len, ck);
    ehr_scopes_format(&sc, &sstr);
    json_t *cd =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "client", z.client_id, "redirect_uri",
                  z.redirect_uri, "challenge", z.challenge, "scope", sstr.data ? sstr.data : "",
                  "user", auth_str(user, "username"), "sid", skey);
    if (cd && lp[0])
        json_object_set_new(cd, "patient", json_string(lp));
    if (cd && z.nonce)
        json_object_set_new(cd, "nonce", json_string(z.nonce));
    ehr_status st =
        auth_put(a, "code", ck, NULL, ehr_time_now_us() + CODE_TTL * US, cd, true, NULL);
    json_decref(cd);
    if (!st) {
        json_t *ev = json_pack("{s:s, s:s, s:s}", "action", "authorize", "outcome", "ok", "scope",
                               sstr.data ? sstr.data : "");
        if (ev && lp[0])
            json_object_set_new(ev, "patients", json_pack("[s]", lp));
        st = auth_audit(a, &who, ev, NULL);
    }
    if (st) {
        redirect_error(req, res, z.redirect_uri, "server_error", "try again", z.state);
    } else {
        const char *kv[] = {"code", code.data, "state", z.state, NULL};
        redirect(req, res, z.redirect_uri, kv);
    }
    ehr_buf_free(&code);
    ehr_buf_free(&sstr);
out:
    json_decref(user);
    json_decref(session);
    json_decref(z.client);
}

/* ---- client authentication at the token endpoint ---- */

static json_t *verify_assertion(ehr_auth *a, ehr_http_request *req, const char *jwt,
                                const char **why)
{
    /* the client is named by the (not yet verified) iss; then everything is checked */
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2) {
        *why = "client_assertion is not a JWT";
        return NULL;
    }
    ehr_buf pb = EHR_BUF_INIT;
    json_t *claims = NULL, *client = NULL;
    if (ehr_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pb) == EHR_OK && pb.data)
        claims = json_loadb(pb.data, pb.len, 0, NULL);
    ehr_buf_free(&pb);
    const char *iss = auth_str(claims, "iss");
    if (!iss || auth_get(a, "client", iss, &client, NULL) ||
        strcmp(auth_str(client, "type") ?: "", "backend")) {
        *why = "unknown client";
        goto fail;
    }
    json_decref(claims);
    claims = NULL;
    static const char *const algs[] = {"RS384", "ES384", NULL};
    ehr_err err = {{0}};
    if (ehr_jwt_verify(jwt, algs, json_object_get(client, "jwks"), &claims, &err)) {
        *why = "the client assertion's signature or algorithm is not accepted";
        goto fail;
    }
    const char *cid = auth_str(client, "client_id");
    const json_t *aud = json_object_get(claims, "aud");
    const char *tok_url = ehr_arena_printf(req->arena, "%s/oauth/token", auth_origin(a, req));
    bool aud_ok = json_is_string(aud) && same_base(json_string_value(aud), tok_url);
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++)
        aud_ok |= json_is_string(json_array_get(aud, i)) &&
                  same_base(json_string_value(json_array_get(aud, i)), tok_url);
    int64_t now = ehr_time_now_us() / US;
    const json_t *exp = json_object_get(claims, "exp");
    const char *jti = auth_str(claims, "jti");
    if (strcmp(auth_str(claims, "iss") ?: "", cid) || strcmp(auth_str(claims, "sub") ?: "", cid))
        *why = "iss and sub must be the client_id";
    else if (!aud_ok)
        *why = "aud must be the token endpoint URL";
    else if (!json_is_integer(exp) || json_integer_value(exp) <= now)
        *why = "the client assertion has expired (exp)";
    else if (json_integer_value(exp) > now + ASSERTION_MAX_AHEAD + 5)
        *why = "exp may be at most 5 minutes ahead";
    else if (!jti || !*jti || strlen(jti) > 256)
        *why = "jti is required";
    else {
        /* each jti once, remembered until the assertion expires */
        char jk[65];
        char *kj = ehr_arena_printf(req->arena, "%s\n%s", cid, jti);
        ehr_sha256_hex(kj, strlen(kj), jk);
        json_t *doc = json_pack("{s:s}", "client", cid);
        ehr_status st = auth_put(a, "jti", jk, cid, (int64_t)json_integer_value(exp) * US + US, doc,
                                 true, NULL);
        json_decref(doc);
        if (st == EHR_EEXISTS)
            *why = "this jti was used before (replay)";
        else if (st)
            *why = "the assertion could not be recorded";
        else {
            json_decref(claims);
            return client;
        }
    }
fail:
    json_decref(claims);
    json_decref(client);
    return NULL;
}

/*
 * Who is calling the token endpoint. Confidential clients authenticate
 * (client_secret_basic / _post, or private_key_jwt); public clients only
 * name themselves. NULL with *why on failure.
 */
static json_t *client_auth(ehr_auth *a, ehr_http_request *req, const auth_form *f,
                           bool *authenticated, const char **why)
{
    *authenticated = false;
    *why = "client authentication failed";
    json_t *client = NULL;
    const char *assertion = auth_form_get(f, "client_assertion");
    const char *atype = auth_form_get(f, "client_assertion_type");
    if (assertion || atype) {
        if (!atype || strcmp(atype, ASSERTION_TYPE) || !assertion) {
            *why = "client_assertion_type must be " ASSERTION_TYPE;
            return NULL;
        }
        client = verify_assertion(a, req, assertion, why);
        if (client) {
            const char *named = auth_form_get(f, "client_id");
            if (named && strcmp(named, auth_str(client, "client_id"))) {
                json_decref(client);
                *why = "client_id does not match the assertion";
                return NULL;
            }
            *authenticated = true;
        }
        return client;
    }
    const char *id = NULL, *secret = NULL;
    char idbuf[256], secbuf[256];
    const char *basic = ehr_http_header(req, "Authorization");
    if (basic && !strncasecmp(basic, "Basic ", 6)) {
        ehr_buf dec = EHR_BUF_INIT;
        /* base64 (standard alphabet): map to base64url for the decoder */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", basic + 6);
        for (char *p = tmp; *p; p++)
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        if (ehr_b64url_decode(tmp, strlen(tmp), &dec) == EHR_OK && dec.data) {
            char *colon = strchr(dec.data, ':');
            if (colon && (size_t)(colon - dec.data) < sizeof idbuf &&
                strlen(colon + 1) < sizeof secbuf) {
                snprintf(idbuf, sizeof idbuf, "%.*s", (int)(colon - dec.data), dec.data);
                snprintf(secbuf, sizeof secbuf, "%s", colon + 1);
                id = idbuf;
                secret = secbuf;
            }
        }
        ehr_buf_free(&dec);
        if (!id)
            return NULL;
    } else {
        id = auth_form_get(f, "client_id");
        secret = auth_form_get(f, "client_secret");
    }
    if (!id || auth_get(a, "client", id, &client, NULL)) {
        *why = "unknown client";
        return NULL;
    }
    const char *type = auth_str(client, "type") ?: "";
    if (!strcmp(type, "confidential")) {
        char h[65];
        if (!secret) {
            *why = "this client must authenticate";
        } else {
            ehr_sha256_hex(secret, strlen(secret), h);
            if (ehr_ct_equal(h, auth_str(client, "secret_hash")))
                *authenticated = true;
            else
                *why = "client authentication failed";
        }
        if (!*authenticated) {
            json_decref(client);
            return NULL;
        }
    } else if (!strcmp(type, "backend")) {
        *why = "this client must authenticate with private_key_jwt";
        json_decref(client);
        return NULL;
    } else if (secret) {
        *why = "a public client has no secret";
        json_decref(client);
        return NULL;
    }
    return client;
}

/* ---- token endpoint ---- */

static void token_event(ehr_auth *a, ehr_http_request *req, const char *client, const char *user,
                        const char *grant, const char *outcome, const char *detail)
{
    ehr_repo_ctx who;
    auth_anon_ctx(req, &who);
    who.user = user ? user : client ? ehr_arena_printf(req->arena, "client/%s", client) : NULL;
    who.app = client;
    json_t *ev = json_pack("{s:s, s:s, s:s}", "action", "token", "outcome", outcome, "grant",
                           grant ? grant : "");
    if (ev && detail)
        json_object_set_new(ev, "detail", json_string(detail));
    auth_audit(a, &who, ev, NULL);
}

static bool pkce_ok(const char *verifier, const char *challenge)
{
    /* RFC 7636 4.1: 43 to 128 unreserved characters */
    size_t n = verifier ? strlen(verifier) : 0;
    if (n < 43 || n > 128 ||
        strspn(verifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != n)
        return false;
    unsigned char md[32];
    EVP_Digest(verifier, n, md, NULL, EVP_sha256(), NULL);
    ehr_buf b = EHR_BUF_INIT;
    bool ok = !ehr_b64url_encode(md, sizeof md, &b) && ehr_ct_equal(b.data, challenge);
    ehr_buf_free(&b);
    return ok;
}

static void grant_code(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                       const auth_form *f, const json_t *client)
{
    const char *cid = auth_str(client, "client_id");
    const char *code = auth_form_get(f, "code");
    char ck[65];
    json_t *cd = NULL;
    if (!code || strlen(code) > 200) {
        auth_oauth_error(req, res, 400, "invalid_request", "code is required");
        return;
    }
    ehr_sha256_hex(code, strlen(code), ck);
    if (auth_begin(a, NULL)) {
        auth_oauth_error(req, res, 503, "temporarily_unavailable", NULL);
        return;
    }
    if (auth_get(a, "code", ck, &cd, NULL)) {
        auth_rollback(a);
        token_event(a, req, cid, NULL, "authorization_code", "failed", "unknown or expired code");
        auth_oauth_error(req, res, 400, "invalid_grant", "the code is unknown or has expired");
        return;
    }
    const char *used = auth_str(cd, "used");
    if (used) {
        /* a code used twice: someone has a copy; revoke what it gave */
        auth_del(a, "family", used, NULL);
        auth_commit(a, NULL);
        token_event(a, req, cid, auth_str(cd, "user"), "authorization_code", "failed",
                    "code replayed: its tokens are revoked");
        auth_oauth_error(req, res, 400, "invalid_grant", "the code was used already");
        json_decref(cd);
        return;
    }
    const char *why = NULL;
    if (strcmp(auth_str(cd, "client") ?: "", cid))
        why = "the code was issued to another client";
    else if (!auth_form_get(f, "redirect_uri") ||
             strcmp(auth_form_get(f, "redirect_uri"), auth_str(cd, "redirect_uri") ?: ""))
        why = "redirect_uri differs from the authorization request";
    else if (!auth_form_get(f, "code_verifier"))
        why = "code_verifier is required (PKCE)";
    else if (!pkce_ok(auth_form_get(f, "code_verifier"), auth_str(cd, "challenge")))
        why = "code_verifier does not match the code_challenge";
    json_t *user = why ? NULL : auth_user_get(a, auth_str(cd, "user"));
    if (!why && (!user || json_is_true(json_object_get(user, "disabled"))))
        why = "the user may not sign in";
    json_decref(user);
    if (why) {
        auth_del(a, "code", ck, NULL); /* one try per code */
        auth_commit(a, NULL);
        token_event(a, req, cid, auth_str(cd, "user"), "authorization_code", "failed", why);
        auth_oauth_error(req, res, 400, "invalid_grant", why);
        json_decref(cd);
        return;
    }
    ehr_scopes sc;
    ehr_scopes_parse(auth_str(cd, "scope"), &sc, NULL);
    char fam[65] = "";
    auth_grant g = {
        .user = auth_str(cd, "user"),
        .client = cid,
        .scopes = &sc,
        .patient = auth_str(cd, "patient"),
        .sid = auth_str(cd, "sid"),
        .refresh = sc.offline_access || sc.online_access,
        .offline = sc.offline_access,
        .nonce = auth_str(cd, "nonce"),
        .issuer = auth_origin(a, req),
        .fam_out = fam,
    };
    json_t *resp = NULL;
    ehr_status st = auth_issue(a, &g, &resp, NULL);
    if (!st) {
        json_object_set_new(cd, "used", json_string(fam));
        st = auth_put(a, "code", ck, NULL, ehr_time_now_us() + CODE_TTL * US, cd, false, NULL);
    }
    if (!st)
        st = auth_commit(a, NULL);
    else
        auth_rollback(a);
    token_event(a, req, cid, g.user, "authorization_code", st ? "failed" : "ok", NULL);
    if (st) {
        json_decref(resp);
        auth_oauth_error(req, res, 500, "server_error", NULL);
    } else {
        auth_send_json(req, res, 200, resp);
    }
    json_decref(cd);
}

static void grant_refresh(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                          const auth_form *f, const json_t *client)
{
    const char *cid = auth_str(client, "client_id");
    const char *rt = auth_form_get(f, "refresh_token");
    char rk[65];
    json_t *t = NULL, *fam = NULL;
    if (!rt || strlen(rt) > 200) {
        auth_oauth_error(req, res, 400, "invalid_request", "refresh_token is required");
        return;
    }
    ehr_sha256_hex(rt, strlen(rt), rk);
    if (auth_begin(a, NULL)) {
        auth_oauth_error(req, res, 503, "temporarily_unavailable", NULL);
        return;
    }
    const char *why = NULL;
    if (auth_get(a, "token", rk, &t, NULL) || strcmp(auth_str(t, "type") ?: "", "refresh"))
        why = "the refresh token is unknown or has expired";
    else if (strcmp(auth_str(t, "client") ?: "", cid))
        why = "the refresh token was issued to another client";
    else if (json_is_true(json_object_get(t, "used"))) {
        /* reuse of a rotated token: the family is compromised */
        auth_del(a, "family", auth_str(t, "fam") ?: "", NULL);
        why = "the refresh token was used before; all tokens of this grant are revoked";
    } else if (!auth_str(t, "fam") || auth_get(a, "family", auth_str(t, "fam"), &fam, NULL))
        why = "the grant was revoked";
    json_t *user = NULL;
    if (!why && auth_str(t, "user")) {
        user = auth_user_get(a, auth_str(t, "user"));
        if (!user || json_is_true(json_object_get(user, "disabled")) ||
            auth_int(user, "not_before") > auth_int(t, "iat"))
            why = "the user may not sign in";
    }
    json_t *sess = NULL;
    if (!why && auth_str(t, "sid") &&
        (auth_get(a, "session", auth_str(t, "sid"), &sess, NULL) ||
         ehr_time_now_us() - auth_int(sess, "last") > (int64_t)a->cfg.session_idle * US))
        why = "the session of this grant has ended";
    json_decref(sess);
    json_decref(user);
    if (why) {
        auth_commit(a, NULL);
        token_event(a, req, cid, auth_str(t, "user"), "refresh_token", "failed", why);
        auth_oauth_error(req, res, 400, "invalid_grant", why);
        json_decref(t);
        json_decref(fam);
        return;
    }
    ehr_scopes sc, asked;
    ehr_scopes_parse(auth_str(t, "scope"), &sc, NULL);
    const char *narrow = auth_form_get(f, "scope");
    if (narrow && ehr_scopes_parse(narrow, &asked, NULL) == EHR_OK) {
        /* a refresh may narrow the scopes, never widen them */
        ehr_scopes_narrow(&asked, &sc, true, true, false);
        asked.offline_access = asked.offline_access && sc.offline_access;
        asked.online_access = asked.online_access && sc.online_access;
        asked.launch_patient = sc.launch_patient;
        asked.launch = sc.launch;
        sc = asked;
    }
    auth_grant g = {
        .user = auth_str(t, "user"),
        .client = cid,
        .scopes = &sc,
        .patient = auth_str(t, "patient"),
        .sid = auth_str(t, "sid"),
        .family = auth_str(t, "fam"),
        .issuer = auth_origin(a, req),
        .refresh = true,
        .offline = auth_str(t, "sid") == NULL,
    };
    json_t *resp = NULL;
    ehr_status st = auth_issue(a, &g, &resp, NULL);
    if (!st) {
        json_object_set_new(t, "used", json_true());
        st = auth_put(a, "token", rk, auth_str(t, "fam"), auth_int(t, "exp"), t, false, NULL);
    }
    if (!st)
        st = auth_commit(a, NULL);
    else
        auth_rollback(a);
    token_event(a, req, cid, g.user, "refresh_token", st ? "failed" : "ok", NULL);
    if (st) {
        json_decref(resp);
        auth_oauth_error(req, res, 500, "server_error", NULL);
    } else {
        auth_send_json(req, res, 200, resp);
    }
    json_decref(t);
    json_decref(fam);
}

static void grant_client_credentials(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                                     const auth_form *f, const json_t *client, bool authenticated)
{
    const char *cid = auth_str(client, "client_id");
    if (!authenticated || strcmp(auth_str(client, "type") ?: "", "backend")) {
        token_event(a, req, cid, NULL, "client_credentials", "failed", "not a backend service");
        auth_oauth_error(req, res, 400, "unauthorized_client",
                         "client_credentials is for backend services with private_key_jwt");
        return;
    }
    ehr_scopes sc, cap;
    if (ehr_scopes_parse(auth_form_get(f, "scope"), &sc, NULL) ||
        ehr_scopes_parse(auth_str(client, "scope"), &cap, NULL)) {
        auth_oauth_error(req, res, 400, "invalid_scope", "a scope is malformed");
        return;
    }
    ehr_scopes_narrow(&sc, &cap, false, false, true);
    sc.openid = sc.fhir_user = sc.profile = sc.launch = sc.launch_patient = false;
    sc.launch_encounter = sc.offline_access = sc.online_access = false;
    if (sc.n == 0) {
        token_event(a, req, cid, NULL, "client_credentials", "failed", "no scope granted");
        auth_oauth_error(req, res, 400, "invalid_scope",
                         "none of the requested system/ scopes is allowed for this client");
        return;
    }
    auth_grant g = {
        .client = cid, .scopes = &sc, .ttl = a->cfg.access_ttl < 300 ? a->cfg.access_ttl : 300};
    json_t *resp = NULL;
    ehr_status st = auth_issue(a, &g, &resp, NULL);
    token_event(a, req, cid, NULL, "client_credentials", st ? "failed" : "ok", NULL);
    if (st)
        auth_oauth_error(req, res, 500, "server_error", NULL);
    else
        auth_send_json(req, res, 200, resp);
}

static void token(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "POST")) {
        ehr_http_set_header(req, res, "Allow", "POST");
        auth_oauth_error(req, res, 405, "invalid_request", "use POST");
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    const char *grant = auth_form_get(&f, "grant_type");
    bool authed;
    const char *why;
    json_t *client = client_auth(a, req, &f, &authed, &why);
    if (!client) {
        token_event(a, req, auth_form_get(&f, "client_id"), NULL, grant, "failed", why);
        auth_oauth_error(req, res, 401, "invalid_client", why);
        return;
    }
    if (grant && !strcmp(grant, "authorization_code"))
        grant_code(a, req, res, &f, client);
    else if (grant && !strcmp(grant, "refresh_token"))
        grant_refresh(a, req, res, &f, client);
    else if (grant && !strcmp(grant, "client_credentials"))
        grant_client_credentials(a, req, res, &f, client, authed);
    else
        auth_oauth_error(req, res, 400, "unsupported_grant_type",
                         "grant_type is authorization_code, refresh_token or "
                         "client_credentials");
    json_decref(client);
}

/* ---- introspection and revocation ---- */

static void introspect(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "POST")) {
        auth_oauth_error(req, res, 405, "invalid_request", "use POST");
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    /* the caller: an authenticated client, or a valid bearer token */
    const char *caller_client = NULL;
    bool admin = false;
    json_t *client = NULL;
    const char *h = ehr_http_header(req, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        auth_identity *id = auth_token_identity(a, req, h + 7, NULL);
        if (!id) {
            auth_oauth_error(req, res, 401, "invalid_token", NULL);
            return;
        }
        admin = id->is_admin_user;
        caller_client = id->app[0] ? ehr_arena_strdup(req->arena, id->app) : NULL;
    } else {
        bool authed;
        const char *why;
        client = client_auth(a, req, &f, &authed, &why);
        if (!client || !authed) {
            json_decref(client);
            auth_oauth_error(req, res, 401, "invalid_client", "authenticate to introspect");
            return;
        }
        caller_client = ehr_arena_strdup(req->arena, auth_str(client, "client_id"));
    }
    json_decref(client);
    const char *tok = auth_form_get(&f, "token");
    json_t *t = NULL;
    char k[65];
    if (tok && strlen(tok) < 200) {
        ehr_sha256_hex(tok, strlen(tok), k);
        auth_get(a, "token", k, &t, NULL);
    }
    bool active = t && auth_int(t, "exp") > ehr_time_now_us() &&
                  !json_is_true(json_object_get(t, "used")) &&
                  (admin || (caller_client && !strcmp(caller_client, auth_str(t, "client") ?: "")));
    if (active && auth_str(t, "fam")) {
        json_t *fam = NULL;
        active = auth_get(a, "family", auth_str(t, "fam"), &fam, NULL) == EHR_OK;
        json_decref(fam);
    }
    if (active && auth_str(t, "user")) {
        json_t *u = auth_user_get(a, auth_str(t, "user"));
        active = u && !json_is_true(json_object_get(u, "disabled")) &&
                 auth_int(u, "not_before") <= auth_int(t, "iat");
        json_decref(u);
    }
    if (!active) {
        json_decref(t);
        auth_send_json(req, res, 200, json_pack("{s:b}", "active", 0));
        return;
    }
    json_t *r = json_pack(
        "{s:b, s:s, s:I, s:I, s:s}", "active", 1, "scope", auth_str(t, "scope") ?: "", "exp",
        (json_int_t)(auth_int(t, "exp") / US), "iat", (json_int_t)(auth_int(t, "iat") / US),
        "token_type", !strcmp(auth_str(t, "type") ?: "", "refresh") ? "refresh_token" : "Bearer");
    if (auth_str(t, "client"))
        json_object_set_new(r, "client_id", json_string(auth_str(t, "client")));
    if (auth_str(t, "user")) {
        json_object_set_new(r, "sub", json_string(auth_str(t, "user")));
        json_object_set_new(r, "username", json_string(auth_str(t, "user")));
    }
    if (auth_str(t, "patient"))
        json_object_set_new(r, "patient", json_string(auth_str(t, "patient")));
    json_decref(t);
    auth_send_json(req, res, 200, r);
}

static void revoke(ehr_auth *a, ehr_http_request *req, ehr_http_response *res)
{
    if (strcmp(req->method, "POST")) {
        auth_oauth_error(req, res, 405, "invalid_request", "use POST");
        return;
    }
    auth_form f;
    auth_form_parse(req, &f);
    bool authed;
    const char *why;
    json_t *client = client_auth(a, req, &f, &authed, &why);
    if (!client) {
        auth_oauth_error(req, res, 401, "invalid_client", why);
        return;
    }
    const char *tok = auth_form_get(&f, "token");
    json_t *t = NULL;
    char k[65];
    if (tok && strlen(tok) < 200) {
        ehr_sha256_hex(tok, strlen(tok), k);
        auth_get(a, "token", k, &t, NULL);
    }
    /* RFC 7009 2.2: unknown tokens, and other clients' tokens, get 200 too */
    if (t && !strcmp(auth_str(t, "client") ?: "", auth_str(client, "client_id") ?: "")) {
        if (!strcmp(auth_str(t, "type") ?: "", "refresh") && auth_str(t, "fam"))
            auth_del(a, "family", auth_str(t, "fam"), NULL);
        auth_del(a, "token", k, NULL);
        token_event(a, req, auth_str(client, "client_id"), auth_str(t, "user"), "revoke", "ok",
                    auth_str(t, "type"));
    }
    json_decref(t);
    json_decref(client);
    auth_send_json(req, res, 200, json_object());
}

int auth_oauth(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    ehr_auth *a = ctx;
    const char *p = req->path;
    if (!strcmp(p, "/.well-known/smart-configuration") ||
        !strcmp(p, "/fhir/.well-known/smart-configuration")) {
        smart_configuration(a, req, res);
        return EHR_HTTP_HANDLED;
    }
    if (strncmp(p, "/oauth/", 7))
        return EHR_HTTP_NEXT;
    p += 7;
    if (!strcmp(p, "authorize"))
        authorize(a, req, res);
    else if (!strcmp(p, "token"))
        token(a, req, res);
    else if (!strcmp(p, "introspect"))
        introspect(a, req, res);
    else if (!strcmp(p, "revoke"))
        revoke(a, req, res);
    else if (!strcmp(p, "jwks"))
        auth_send_json(req, res, 200, auth_jwks(a));
    else
        auth_oauth_error(req, res, 404, "not_found", "no such endpoint");
    return EHR_HTTP_HANDLED;
}
