/*
 * tokens.c - clients, access and refresh tokens, the identities they
 * stand for, and the id_token signing key.
 *
 * Tokens are opaque random strings (256 bits); the store keeps only their
 * SHA-256 (kind "token"), so a copy of the database does not yield usable
 * tokens. Checking one is a few indexed lookups (token, family, session,
 * user, break-glass grants) in one read transaction, and revocation takes
 * effect at once. A token document:
 *   {"type": "access" | "refresh", "user", "client", "scope", "patient",
 *    "sid" (bound to a web session), "fam" (refresh family), "iat", "exp",
 *    "used" (refresh tokens, once rotated)}
 * A refresh token is single use: using it gives a new one of the same
 * family; using an old one again revokes the whole family (RFC 6819
 * 5.2.2.3, OAuth 2.0 Security BCP 4.14).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/util.h"

/* ---- the policy the repository asks ---- */

static ehr_status policy_decide(const ehr_repo_policy *p, ehr_access access, const char *type,
                                ehr_repo_limit *lim, ehr_err *err)
{
    const auth_identity *id = p->data;
    return ehr_auth_decide(&id->subject, access, type, lim, err);
}

static bool add_patient(auth_identity *id, const char *pid)
{
    for (size_t i = 0; i < id->n_patients; i++)
        if (!strcmp(id->patients[i], pid))
            return true;
    if (id->n_patients == id->cap_patients) {
        size_t cap = id->cap_patients ? id->cap_patients * 2 : 8;
        const char **np = ehr_arena_alloc(id->arena, cap * sizeof *np);
        if (!np)
            return false;
        if (id->n_patients)
            memcpy(np, id->patients, id->n_patients * sizeof *np);
        id->patients = np;
        id->cap_patients = cap;
    }
    const char *s = ehr_arena_strdup(id->arena, pid);
    if (!s)
        return false;
    id->patients[id->n_patients++] = s;
    id->subject.patients = id->patients;
    id->subject.n_patients = id->n_patients;
    return true;
}

/* A clinician's new patient joins their panel (inside the create's transaction). */
static void policy_created_patient(const ehr_repo_policy *p, const char *pid)
{
    auth_identity *id = p->data;
    /* only for those whose chart access is limited to a panel */
    bool panel = id->subject.clinicians_panel &&
                 (id->subject.role == EHR_ROLE_PHYSICIAN || id->subject.role == EHR_ROLE_NURSE);
    if (!id->username[0] || !id->subject.has_user || !panel || !add_patient(id, pid))
        return;
    json_t *u = NULL;
    if (!auth_get(id->auth, "user", id->username, &u, NULL)) {
        json_t *pts = json_object_get(u, "patients");
        if (json_is_array(pts) && json_array_size(pts) < 10000) {
            json_array_append_new(pts, json_string(pid));
            auth_put(id->auth, "user", id->username, NULL, 0, u, false, NULL);
        }
    }
    json_decref(u);
}

static auth_identity *identity_new(ehr_auth *a, ehr_http_request *req)
{
    auth_identity *id = ehr_arena_calloc(req->arena, 1, sizeof *id);
    if (!id)
        return NULL;
    id->auth = a;
    id->arena = req->arena;
    id->policy.decide = policy_decide;
    id->policy.created_patient = policy_created_patient;
    id->policy.data = id;
    id->ctx.policy = &id->policy;
    id->ctx.client = req->remote_addr;
    id->subject.clinicians_panel = a->cfg.clinicians_panel;
    return id;
}

struct glass_ctx {
    auth_identity *id;
    int64_t now;
};

static ehr_status glass_one(void *p, const char *key, json_t *doc, int64_t expires)
{
    struct glass_ctx *g = p;
    const char *pt = auth_str(doc, "patient");
    if (!pt || expires <= g->now)
        return EHR_OK;
    auth_identity *id = g->id;
    bool linked = false;
    for (size_t i = 0; i < id->n_patients; i++)
        linked |= !strcmp(id->patients[i], pt);
    if (linked)
        return EHR_OK;
    if (!add_patient(id, pt))
        return EHR_ENOMEM;
    const char **ng = ehr_arena_alloc(id->arena, (id->n_glass + 1) * sizeof *ng);
    if (!ng)
        return EHR_ENOMEM;
    if (id->n_glass)
        memcpy(ng, id->glass, id->n_glass * sizeof *ng);
    ng[id->n_glass++] = id->patients[id->n_patients - 1];
    id->glass = ng;
    id->policy.glass = id->glass;
    id->policy.n_glass = id->n_glass;
    return EHR_OK;
}

/* Fill the identity from a user document (role, links, break-glass grants). */
/* EHR_OK; EHR_EINVAL for a user record without a valid role; a store
   failure (EBUSY, EIO) from reading the user's emergency-access grants. */
static ehr_status identity_user(auth_identity *id, const json_t *u)
{
    ehr_role r;
    if (!auth_user_role(u, &r))
        return EHR_EINVAL;
    snprintf(id->username, sizeof id->username, "%s", auth_str(u, "username") ?: "");
    snprintf(id->role_name, sizeof id->role_name, "%s", ehr_role_name(r));
    snprintf(id->fhir_user, sizeof id->fhir_user, "%s", auth_str(u, "fhirUser") ?: "");
    id->subject.has_user = true;
    id->subject.role = r;
    id->is_admin_user = r == EHR_ROLE_ADMIN;
    id->ctx.user = id->username;
    id->ctx.role = id->role_name;
    const json_t *pts = json_object_get(u, "patients");
    for (size_t i = 0; i < json_array_size(pts); i++) {
        const char *p = json_string_value(json_array_get(pts, i));
        if (p && !add_patient(id, p))
            return EHR_ENOMEM;
    }
    if (!id->patients)
        id->subject.patients = NULL;
    struct glass_ctx g = {id, ehr_time_now_us()};
    return auth_list(id->auth, "glass", id->username, glass_one, &g, NULL);
}

auth_identity *auth_open_identity(ehr_auth *a, ehr_http_request *req)
{
    auth_identity *id = identity_new(a, req);
    if (!id)
        return NULL;
    /* no user and no scopes: the decision allows everything, unlimited */
    id->ctx.user = "anonymous";
    id->ctx.role = "insecure-no-auth";
    id->subject.has_user = false;
    id->subject.scopes = NULL;
    return id;
}

auth_identity *auth_session_identity(ehr_auth *a, ehr_http_request *req, const json_t *session)
{
    auth_identity *id = identity_new(a, req);
    json_t *u = id ? auth_user_get(a, auth_str(session, "user")) : NULL;
    bool ok = u && identity_user(id, u) == EHR_OK;
    json_decref(u);
    return ok ? id : NULL;
}

auth_identity *auth_token_identity(ehr_auth *a, ehr_http_request *req, const char *token,
                                   ehr_err *err)
{
    char key[65];
    size_t tl = strlen(token);
    if (tl < 20 || tl > 200) {
        ehr_err_set(err, EHR_EINVAL, "the access token is malformed");
        return NULL;
    }
    ehr_sha256_hex(token, tl, key);
    json_t *t = NULL, *u = NULL, *f = NULL, *s = NULL;
    auth_identity *id = NULL;
    ehr_store_conn *c = NULL;
    /* one read transaction: the token and what it depends on, consistently */
    bool txn = !ehr_repo_conn(a->repo, &c, NULL) && !EHR_STORE_CALL(c, begin, false, NULL);
    int64_t now = ehr_time_now_us();
    ehr_err gerr = {{0}};
    ehr_status gst = auth_get(a, "token", key, &t, &gerr);
    if (gst == EHR_EBUSY || gst == EHR_EIO) {
        /* the store could not answer: not the token's fault (503, not 401) */
        ehr_err_at(err, EHR_EBUSY, "store", "the token could not be checked: %s", gerr.msg);
        goto out;
    }
    if (gst || strcmp(auth_str(t, "type") ?: "", "access") || auth_int(t, "exp") <= now) {
        ehr_err_set(err, EHR_EINVAL, "the access token is not valid (unknown, expired or revoked)");
        goto out;
    }
    const char *fam = auth_str(t, "fam"), *sid = auth_str(t, "sid");
    const char *user = auth_str(t, "user"), *client = auth_str(t, "client");
    /* each lookup below: a store failure is 503, not a refused token */
#define UNAVAILABLE(st)                                                                            \
    ((st) == EHR_EBUSY || (st) == EHR_EIO                                                          \
         ? (ehr_err_at(err, EHR_EBUSY, "store", "the token could not be checked: %s", gerr.msg),   \
            true)                                                                                  \
         : false)
    if (fam && (gst = auth_get(a, "family", fam, &f, &gerr))) {
        if (!UNAVAILABLE(gst))
            ehr_err_set(err, EHR_EINVAL, "the access token was revoked");
        goto out;
    }
    if (sid) {
        if ((gst = auth_get(a, "session", sid, &s, &gerr)) && UNAVAILABLE(gst))
            goto out;
        if (gst || now - auth_int(s, "last") > (int64_t)a->cfg.session_idle * US) {
            ehr_err_set(err, EHR_EINVAL, "the session of this access token has ended");
            goto out;
        }
    }
    if (!(id = identity_new(a, req)))
        goto out;
    if (user) {
        char ukey[65];
        if (auth_username_norm(user, ukey) && (gst = auth_get(a, "user", ukey, &u, &gerr)) &&
            UNAVAILABLE(gst)) {
            id = NULL;
            goto out;
        }
#undef UNAVAILABLE
        ehr_status ust = EHR_EINVAL;
        if (u && !json_is_true(json_object_get(u, "disabled")) &&
            auth_int(u, "not_before") <= auth_int(t, "iat"))
            ust = identity_user(id, u);
        if (ust == EHR_EBUSY || ust == EHR_EIO) { /* the grants could not be read: 503 */
            ehr_err_at(err, EHR_EBUSY, "store", "the token could not be checked: storage failed");
            id = NULL;
            goto out;
        }
        if (ust) {
            ehr_err_set(err, EHR_EINVAL, "the access token is not valid for this user any more");
            id = NULL;
            goto out;
        }
    } else {
        id->ctx.user = "system";
        id->ctx.role = "backend-service";
    }
    if (client) {
        snprintf(id->app, sizeof id->app, "%s", client);
        id->ctx.app = id->app;
        if (!user) {
            char name[128];
            snprintf(name, sizeof name, "client/%s", client);
            id->ctx.user = ehr_arena_strdup(req->arena, name);
        }
    }
    if (ehr_scopes_parse(auth_str(t, "scope"), &id->scopes, NULL)) {
        id = NULL;
        goto out;
    }
    id->subject.scopes = &id->scopes;
    const char *pt = auth_str(t, "patient");
    if (pt) {
        snprintf(id->patient, sizeof id->patient, "%s", pt);
        id->subject.context_patient = id->patient;
    }
    snprintf(id->token_key, sizeof id->token_key, "%s", key);
    id->exp = auth_int(t, "exp");
out:
    if (txn)
        EHR_STORE_CALL(c, commit, NULL);
    /* a session-bound token keeps its session alive (touched outside the read) */
    if (id && s) {
        int64_t step = (int64_t)a->cfg.session_idle * US / 4;
        if (step > 30 * US)
            step = 30 * US;
        if (now - auth_int(s, "last") >= step) {
            json_object_set_new(s, "last", json_integer(now));
            auth_session_save(a, sid, s, NULL);
        }
    }
    json_decref(t);
    json_decref(u);
    json_decref(f);
    json_decref(s);
    return id;
}

/* ---- issuing ---- */

/* Store a token of type for grant g, expiring at exp; its text into out. */
static ehr_status put_token(ehr_auth *a, const auth_grant *g, const char *type, const char *fam,
                            const char *scope, int64_t exp, ehr_buf *out, ehr_err *err)
{
    ehr_status st = ehr_secret_new(32, out);
    if (st)
        return ehr_err_set(err, st, "out of memory");
    char key[65];
    ehr_sha256_hex(out->data, out->len, key);
    json_t *t = json_pack("{s:s, s:s, s:I, s:I}", "type", type, "scope", scope, "iat",
                          (json_int_t)ehr_time_now_us(), "exp", (json_int_t)exp);
    if (!t)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (g->user)
        json_object_set_new(t, "user", json_string(g->user));
    if (g->client)
        json_object_set_new(t, "client", json_string(g->client));
    if (g->patient)
        json_object_set_new(t, "patient", json_string(g->patient));
    /* access tokens die with the session unless offline access was granted;
       online refresh tokens too */
    if (g->sid && !g->offline)
        json_object_set_new(t, "sid", json_string(g->sid));
    if (fam)
        json_object_set_new(t, "fam", json_string(fam));
    st = auth_put(a, "token", key, fam, exp, t, true, err);
    json_decref(t);
    return st;
}

ehr_status auth_issue(ehr_auth *a, const auth_grant *g, json_t **resp, ehr_err *err)
{
    *resp = NULL;
    /* expired codes, tokens, sessions, jtis go away now and then (and at start) */
    if (atomic_fetch_add(&a->issued, 1) % 1000 == 999) {
        ehr_store_conn *c;
        if (!ehr_repo_conn(a->repo, &c, NULL))
            EHR_STORE_CALL(c, obj_purge, NULL);
    }
    int64_t now = ehr_time_now_us();
    int ttl = g->ttl > 0 ? g->ttl : a->cfg.access_ttl;
    ehr_buf scope = EHR_BUF_INIT, at = EHR_BUF_INIT, rt = EHR_BUF_INIT, idt = EHR_BUF_INIT;
    char fam[65] = "";
    ehr_status st = ehr_scopes_format(g->scopes, &scope);
    /* tokens of an OAuth grant form a family: revoking it (refresh token
       reuse, a replayed code, revocation) voids them all */
    if (!st && (g->refresh || g->client || g->family)) {
        if (g->family) {
            snprintf(fam, sizeof fam, "%s", g->family);
        } else {
            ehr_buf fb = EHR_BUF_INIT;
            st = ehr_secret_new(16, &fb);
            if (!st)
                snprintf(fam, sizeof fam, "%s", fb.data);
            ehr_buf_free(&fb);
            int64_t fexp = g->offline ? now + (int64_t)a->cfg.refresh_days * 86400 * US
                                      : now + (int64_t)a->cfg.session_max * US;
            json_t *fd = json_pack("{s:s?, s:s?, s:I}", "user", g->user, "client", g->client,
                                   "created", (json_int_t)now);
            if (!st)
                st = auth_put(a, "family", fam, g->user, fexp, fd, true, err);
            json_decref(fd);
        }
    }
    if (g->fam_out)
        snprintf(g->fam_out, 65, "%s", fam);
    if (!st)
        st = put_token(a, g, "access", fam[0] ? fam : NULL, scope.data, now + ttl * US, &at, err);
    if (!st && g->refresh) {
        int64_t rexp = g->offline ? now + (int64_t)a->cfg.refresh_days * 86400 * US
                                  : now + (int64_t)a->cfg.session_max * US;
        st = put_token(a, g, "refresh", fam, scope.data, rexp, &rt, err);
    }
    if (!st && g->user && g->scopes->openid && g->client)
        st = auth_id_token(a, g->issuer, g->user, g->client, g->nonce, g->scopes->fhir_user, &idt,
                           err);
    if (!st) {
        json_t *r = json_pack("{s:s, s:s, s:i, s:s}", "access_token", at.data, "token_type",
                              "Bearer", "expires_in", ttl, "scope", scope.data);
        if (r && rt.data)
            json_object_set_new(r, "refresh_token", json_string(rt.data));
        if (r && idt.data)
            json_object_set_new(r, "id_token", json_string(idt.data));
        if (r && g->patient && (g->scopes->launch_patient || g->scopes->launch)) {
            json_object_set_new(r, "patient", json_string(g->patient));
            json_object_set_new(r, "need_patient_banner", json_true());
        }
        if (!r)
            st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
        *resp = r;
    }
    ehr_buf_free(&scope);
    ehr_buf_free(&at);
    ehr_buf_free(&rt);
    ehr_buf_free(&idt);
    return st;
}

/* ---- the signing key ---- */

static ehr_status load_key(ehr_auth *a, ehr_err *err)
{
    ehr_status st = EHR_OK;
    pthread_mutex_lock(&a->lock);
    if (a->key)
        goto out;
    json_t *k = NULL;
    if (auth_get(a, "key", "id_token", &k, NULL) == EHR_OK) {
        a->key = ehr_pkey_from_pem(auth_str(k, "pem") ?: "");
        snprintf(a->kid, sizeof a->kid, "%s", auth_str(k, "kid") ?: "");
        json_decref(k);
        if (!a->key)
            st = ehr_err_set(err, EHR_EINTERNAL, "the stored signing key is damaged");
        goto out;
    }
    EVP_PKEY *pk = ehr_rsa_new();
    ehr_buf pem = EHR_BUF_INIT;
    if (!pk || ehr_pkey_to_pem(pk, &pem)) {
        EVP_PKEY_free(pk);
        ehr_buf_free(&pem);
        st = ehr_err_set(err, EHR_EINTERNAL, "cannot make a signing key");
        goto out;
    }
    /* kid: the key's JWK thumbprint (RFC 7638) */
    json_t *jwk = ehr_jwk_from_pkey(pk, NULL, NULL);
    json_t *tp = json_pack("{s:O?, s:s, s:O?}", "e", json_object_get(jwk, "e"), "kty", "RSA", "n",
                           json_object_get(jwk, "n"));
    char *canon = tp ? json_dumps(tp, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(tp);
    char h[65];
    ehr_sha256_hex(canon ? canon : "", canon ? strlen(canon) : 0, h);
    free(canon);
    json_decref(jwk);
    snprintf(a->kid, sizeof a->kid, "%.16s", h);
    json_t *doc = json_pack("{s:s, s:s}", "kid", a->kid, "pem", pem.data);
    /* another process may have made one first: use what is stored then */
    st = auth_put(a, "key", "id_token", NULL, 0, doc, true, err);
    json_decref(doc);
    ehr_buf_free(&pem);
    if (st == EHR_EEXISTS) {
        EVP_PKEY_free(pk);
        pthread_mutex_unlock(&a->lock);
        return load_key(a, err);
    }
    a->key = st ? NULL : pk;
    if (st)
        EVP_PKEY_free(pk);
out:
    pthread_mutex_unlock(&a->lock);
    return st;
}

json_t *auth_jwks(ehr_auth *a)
{
    json_t *keys = json_array();
    if (!load_key(a, NULL))
        json_array_append_new(keys, ehr_jwk_from_pkey(a->key, a->kid, "RS256"));
    return json_pack("{s:o}", "keys", keys);
}

ehr_status auth_id_token(ehr_auth *a, const char *iss, const char *user, const char *client,
                         const char *nonce, bool fhir_user, ehr_buf *out, ehr_err *err)
{
    ehr_status st = load_key(a, err);
    if (st)
        return st;
    json_t *u = auth_user_get(a, user);
    int64_t now = ehr_time_now_us() / US;
    if (!iss)
        iss = a->cfg.base_url ? a->cfg.base_url : "";
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", iss, "sub", user, "aud", client,
                          "iat", (json_int_t)now, "exp", (json_int_t)(now + 3600));
    if (c && nonce)
        json_object_set_new(c, "nonce", json_string(nonce));
    if (c && fhir_user && u && auth_str(u, "fhirUser")) {
        char ref[512];
        snprintf(ref, sizeof ref, "%s/fhir/%s", iss, auth_str(u, "fhirUser"));
        json_object_set_new(c, "fhirUser", json_string(ref));
    }
    json_decref(u);
    if (!c)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    st = ehr_jwt_sign(a->key, "RS256", a->kid, c, out, err);
    json_decref(c);
    return st;
}

/* ---- clients ---- */

static const char *default_scope(const char *kind)
{
    if (!strcmp(kind, "backend"))
        return "system/*.rs";
    return "launch launch/patient openid fhirUser offline_access online_access "
           "patient/*.cruds user/*.cruds";
}

ehr_status ehr_auth_client_add(ehr_auth *a, const ehr_auth_actor *who,
                               const ehr_auth_client_spec *spec, ehr_buf *id_out,
                               ehr_buf *secret_out, ehr_err *err)
{
    const char *kind = spec->kind ? spec->kind : "public";
    if (strcmp(kind, "public") && strcmp(kind, "confidential") && strcmp(kind, "backend"))
        return ehr_err_set(err, EHR_EINVAL, "--type is public, confidential or backend");
    if (!strcmp(kind, "backend") && !spec->jwks)
        return ehr_err_set(err, EHR_EINVAL,
                           "a backend client needs --jwks FILE (its public keys as a JWK Set)");
    if (strcmp(kind, "backend") && spec->n_redirect_uris == 0)
        return ehr_err_set(err, EHR_EINVAL, "an app needs at least one --redirect-uri");
    for (size_t i = 0; i < spec->n_redirect_uris; i++) {
        const char *u = spec->redirect_uris[i];
        /* https, or http on the loopback for native apps (RFC 8252 7.3) */
        if (strncmp(u, "https://", 8) && strncmp(u, "http://localhost", 16) &&
            strncmp(u, "http://127.0.0.1", 16) && strncmp(u, "http://[::1]", 12))
            return ehr_err_set(err, EHR_EINVAL,
                               "redirect URI '%.100s' must be https (or http on localhost)", u);
        if (strchr(u, '#'))
            return ehr_err_set(err, EHR_EINVAL, "a redirect URI may not have a fragment");
    }
    ehr_scopes cap;
    const char *scope = spec->scope ? spec->scope : default_scope(kind);
    ehr_status st = ehr_scopes_parse(scope, &cap, err);
    if (st)
        return st;
    json_t *jwks = NULL;
    if (spec->jwks) {
        jwks = json_loads(spec->jwks, 0, NULL);
        const json_t *keys = json_object_get(jwks, "keys");
        if (!json_is_array(keys) || json_array_size(keys) == 0) {
            json_decref(jwks);
            return ehr_err_set(err, EHR_EINVAL, "the JWKS is not {\"keys\": [ ... ]}");
        }
        for (size_t i = 0; i < json_array_size(keys); i++) {
            EVP_PKEY *pk = ehr_jwk_to_pkey(json_array_get(keys, i), err);
            if (!pk) {
                json_decref(jwks);
                return EHR_EINVAL;
            }
            EVP_PKEY_free(pk);
        }
    }
    char id[80];
    if (spec->client_id) {
        char tmp[65];
        if (!auth_username_norm(spec->client_id, tmp)) {
            json_decref(jwks);
            return ehr_err_set(err, EHR_EINVAL,
                               "a client id has 1 to 64 letters, digits, "
                               "'.', '_', '@' or '-'");
        }
        snprintf(id, sizeof id, "%s", spec->client_id);
    } else {
        ehr_buf b = EHR_BUF_INIT;
        ehr_secret_new(12, &b);
        snprintf(id, sizeof id, "app-%s", b.data ? b.data : "x");
        ehr_buf_free(&b);
    }
    json_t *uris = json_array();
    for (size_t i = 0; i < spec->n_redirect_uris; i++)
        json_array_append_new(uris, json_string(spec->redirect_uris[i]));
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:s, s:I}", "client_id", id, "name",
                            spec->name ? spec->name : id, "type", kind, "redirect_uris", uris,
                            "scope", scope, "created", (json_int_t)ehr_time_now_us());
    if (jwks)
        json_object_set_new(doc, "jwks", jwks);
    if (!strcmp(kind, "confidential")) {
        char h[65];
        if (ehr_secret_new(32, secret_out))
            return ehr_err_set(err, EHR_ENOMEM, "out of memory");
        ehr_sha256_hex(secret_out->data, secret_out->len, h);
        json_object_set_new(doc, "secret_hash", json_string(h));
    }
    st = auth_put(a, "client", id, NULL, 0, doc, true, err);
    json_decref(doc);
    if (st == EHR_EEXISTS)
        return ehr_err_set(err, st, "a client with id '%s' exists already", id);
    if (st)
        return st;
    ehr_buf_puts(id_out, id);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s}", "action", "client-add", "outcome", "ok",
                           "target", id, "user", who && who->name ? who->name : "cli", "client",
                           who && who->client ? who->client : "cli");
    return auth_audit(a, NULL, ev, err);
}

struct list_clients {
    ehr_auth_client_cb cb;
    void *ctx;
};

static ehr_status list_client(void *p, const char *key, json_t *doc, int64_t expires)
{
    struct list_clients *l = p;
    return l->cb(l->ctx, key, auth_str(doc, "name"), auth_str(doc, "type"));
}

ehr_status ehr_auth_client_list(ehr_auth *a, ehr_auth_client_cb cb, void *ctx, ehr_err *err)
{
    struct list_clients l = {cb, ctx};
    return auth_list(a, "client", NULL, list_client, &l, err);
}

/* ---- ehr token ---- */

ehr_status ehr_auth_token_mint(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                               const char *scope, const char *patient, int ttl, ehr_buf *token_out,
                               ehr_buf *granted_out, ehr_err *err)
{
    json_t *u = auth_user_get(a, username);
    ehr_role role;
    if (!u || !auth_user_role(u, &role)) {
        json_decref(u);
        return ehr_err_set(err, EHR_ENOTFOUND, "no user named '%.64s'", username);
    }
    if (json_is_true(json_object_get(u, "disabled"))) {
        json_decref(u);
        return ehr_err_set(err, EHR_EFORBIDDEN, "user '%.64s' is disabled", username);
    }
    ehr_scopes sc;
    ehr_status st = ehr_scopes_parse(scope, &sc, err);
    if (st) {
        json_decref(u);
        return st;
    }
    if (ehr_scopes_have_level(&sc, 's')) {
        json_decref(u);
        return ehr_err_set(err, EHR_EINVAL,
                           "system/ scopes are for backend services (ehr client add --type "
                           "backend), not users");
    }
    ehr_scopes_narrow(&sc, NULL, true, true, false);
    char pid[72] = "";
    if (patient) {
        snprintf(pid, sizeof pid, "%s", !strncmp(patient, "Patient/", 8) ? patient + 8 : patient);
    } else if (ehr_scopes_have_level(&sc, 'p')) {
        const json_t *pts = json_object_get(u, "patients");
        if (role == EHR_ROLE_PATIENT && json_array_size(pts) == 1)
            snprintf(pid, sizeof pid, "%s", json_string_value(json_array_get(pts, 0)) ?: "");
        else {
            json_decref(u);
            return ehr_err_set(err, EHR_EINVAL, "patient/ scopes need --patient Patient/ID");
        }
    }
    if (pid[0] && !auth_user_may_see(a, u, pid)) {
        json_decref(u);
        return ehr_err_set(err, EHR_EFORBIDDEN,
                           "user '%.64s' may not see Patient/%s (link them with ehr user link)",
                           username, pid);
    }
    char key[65];
    auth_username_norm(username, key);
    json_decref(u);
    if (sc.n == 0)
        return ehr_err_set(err, EHR_EINVAL,
                           "no resource scope to grant; ask for e.g. \"user/*.rs\" or "
                           "\"patient/*.rs\"");
    if (ttl <= 0)
        ttl = a->cfg.access_ttl;
    auth_grant g = {.user = key, .scopes = &sc, .patient = pid[0] ? pid : NULL, .ttl = ttl};
    json_t *resp = NULL;
    if ((st = auth_issue(a, &g, &resp, err)))
        return st;
    ehr_buf_puts(token_out, auth_str(resp, "access_token"));
    ehr_buf_puts(granted_out, auth_str(resp, "scope"));
    json_decref(resp);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "action", "token", "outcome", "ok",
                           "target", key, "scope", granted_out->data ? granted_out->data : "",
                           "user", who && who->name ? who->name : "cli", "client",
                           who && who->client ? who->client : "cli");
    if (ev && pid[0])
        json_object_set_new(ev, "patients", json_pack("[s]", pid));
    return auth_audit(a, NULL, ev, err);
}

/* ---- break-glass report ---- */

struct glass_list {
    ehr_auth_glass_cb cb;
    void *ctx;
};

static ehr_status glass_list_one(void *p, const char *key, json_t *doc, int64_t expires)
{
    struct glass_list *l = p;
    return l->cb(l->ctx, auth_str(doc, "user"), auth_str(doc, "patient"), auth_str(doc, "reason"),
                 auth_int(doc, "at"), expires);
}

ehr_status ehr_auth_glass_list(ehr_auth *a, bool active_only, ehr_auth_glass_cb cb, void *ctx,
                               ehr_err *err)
{
    (void)active_only; /* expired grants are in the audit log ("break-glass" events) */
    struct glass_list l = {cb, ctx};
    return auth_list(a, "glass", NULL, glass_list_one, &l, err);
}

ehr_status ehr_auth_register_app(ehr_auth *a, ehr_err *err)
{
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:[], s:s, s:b, s:I}", "client_id", EHR_AUTH_APP_CLIENT, "name",
                  "ehr clinician app", "type", "public", "redirect_uris", "scope",
                  EHR_AUTH_APP_SCOPE, "first_party", 1, "created", (json_int_t)ehr_time_now_us());
    if (!doc)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = auth_put(a, "client", EHR_AUTH_APP_CLIENT, NULL, 0, doc, true, err);
    json_decref(doc);
    if (st == EHR_EEXISTS)
        return EHR_OK;
    if (st)
        return st;
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s}", "action", "client-add", "outcome", "ok",
                           "target", EHR_AUTH_APP_CLIENT, "user", "system/serve", "client", "cli");
    return auth_audit(a, NULL, ev, err);
}
