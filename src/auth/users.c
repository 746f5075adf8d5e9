/*
 * users.c - users, passwords, lockout, MFA and web sessions.
 *
 * A user document (kind "user", key the lowercase name):
 *   {"username", "role", "hash" (argon2id), "disabled", "patients": [ids],
 *    "fhirUser", "failed", "locked_until", "totp" (base32), "totp_last",
 *    "recovery": [sha256 of each unused code], "not_before" (tokens and
 *    sessions issued earlier are void), "created"}
 * A session (kind "session", key the SHA-256 of the cookie, owner the user):
 *   {"user", "state": "ok" | "mfa" | "enroll", "created", "last", "csrf",
 *    "pending" (a TOTP secret being enrolled)}
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/util.h"

bool auth_username_norm(const char *in, char out[65])
{
    size_t n = in ? strlen(in) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        if (!isalnum((unsigned char)c) && !strchr("._@-", c))
            return false;
        out[i] = c;
    }
    out[n] = '\0';
    return true;
}

json_t *auth_user_get(ehr_auth *a, const char *username)
{
    char key[65];
    json_t *u = NULL;
    if (auth_username_norm(username, key))
        auth_get(a, "user", key, &u, NULL);
    return u;
}

bool auth_user_role(const json_t *user, ehr_role *role)
{
    return ehr_role_parse(auth_str(user, "role"), role);
}

static bool valid_patient_id(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.')
            return false;
    return true;
}

/* "Patient/x" or "x" -> "x"; NULL when malformed. */
static const char *patient_id(const char *p)
{
    if (p && !strncmp(p, "Patient/", 8))
        p += 8;
    return p && valid_patient_id(p) ? p : NULL;
}

static json_t *admin_event(const char *action, const char *target, const ehr_auth_actor *who)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "action", action, "outcome", "ok", "target",
                     target, "user", who && who->name ? who->name : "cli", "client",
                     who && who->client ? who->client : "cli");
}

ehr_status ehr_auth_user_add(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                             const char *password, ehr_role role, const char *const *patients,
                             size_t n_patients, const char *fhir_user, ehr_err *err)
{
    char key[65];
    if (!auth_username_norm(username, key))
        return ehr_err_set(err, EHR_EINVAL,
                           "a user name has 1 to 64 letters, digits, '.', '_', '@' or '-'");
    const char *weak = ehr_pw_weak(password, key);
    if (weak)
        return ehr_err_set(err, EHR_EINVAL, "%s", weak);
    if (role == EHR_ROLE_PATIENT && n_patients == 0)
        return ehr_err_set(err, EHR_EINVAL,
                           "a patient user needs --patient Patient/ID (their own record, or "
                           "several for a proxy)");
    json_t *pts = json_array();
    for (size_t i = 0; i < n_patients; i++) {
        const char *id = patient_id(patients[i]);
        if (!id) {
            json_decref(pts);
            return ehr_err_set(err, EHR_EINVAL, "'%.80s' is not Patient/ID", patients[i]);
        }
        json_array_append_new(pts, json_string(id));
    }
    char fu[160];
    if (fhir_user)
        snprintf(fu, sizeof fu, "%s", fhir_user);
    else if (role == EHR_ROLE_PATIENT && n_patients == 1)
        snprintf(fu, sizeof fu, "Patient/%s", patient_id(patients[0]));
    else if (role == EHR_ROLE_PATIENT)
        snprintf(fu, sizeof fu, "RelatedPerson/%s", key);
    else
        snprintf(fu, sizeof fu, "Practitioner/%s", key);
    char hash[EHR_PW_HASH_LEN];
    if (ehr_pw_hash(password, hash)) {
        json_decref(pts);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory hashing the password");
    }
    json_t *u = json_pack("{s:s, s:s, s:s, s:b, s:o, s:s, s:i, s:I, s:I}", "username", key, "role",
                          ehr_role_name(role), "hash", hash, "disabled", 0, "patients", pts,
                          "fhirUser", fu, "failed", 0, "locked_until", (json_int_t)0, "created",
                          (json_int_t)ehr_time_now_us());
    if (!u)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = auth_put(a, "user", key, NULL, 0, u, true, err);
    json_decref(u);
    if (st == EHR_EEXISTS)
        return ehr_err_set(err, st, "a user named '%s' exists already", key);
    if (st)
        return st;
    json_t *ev = admin_event("user-add", key, who);
    json_object_set_new(ev, "role", json_string(ehr_role_name(role)));
    return auth_audit(a, NULL, ev, err);
}

struct list_users {
    ehr_auth_user_cb cb;
    void *ctx;
};

static ehr_status list_user(void *p, const char *key, json_t *u, int64_t expires)
{
    struct list_users *l = p;
    const json_t *pts = json_object_get(u, "patients");
    const char *ids[64];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(pts) && n < 64; i++)
        if (json_is_string(json_array_get(pts, i)))
            ids[n++] = json_string_value(json_array_get(pts, i));
    ehr_auth_user_info info = {
        .username = key,
        .role = auth_str(u, "role"),
        .fhir_user = auth_str(u, "fhirUser"),
        .disabled = json_is_true(json_object_get(u, "disabled")),
        .mfa = auth_str(u, "totp") != NULL,
        .locked = auth_int(u, "locked_until") > ehr_time_now_us(),
        .n_patients = n,
        .patients = ids,
    };
    return l->cb(l->ctx, &info);
}

ehr_status ehr_auth_user_list(ehr_auth *a, ehr_auth_user_cb cb, void *ctx, ehr_err *err)
{
    struct list_users l = {cb, ctx};
    return auth_list(a, "user", NULL, list_user, &l, err);
}

static ehr_status count_one(void *p, const char *key, json_t *doc, int64_t expires)
{
    (*(size_t *)p)++;
    return EHR_OK;
}

ehr_status ehr_auth_user_count(ehr_auth *a, size_t *n, ehr_err *err)
{
    *n = 0;
    return auth_list(a, "user", NULL, count_one, n, err);
}

static ehr_status end_session(void *p, const char *key, json_t *doc, int64_t expires)
{
    return auth_del(p, "session", key, NULL);
}

/* End every session of a user (tokens die through not_before). */
static ehr_status end_sessions(ehr_auth *a, const char *key, ehr_err *err)
{
    return auth_list(a, "session", key, end_session, a, err);
}

/* Change a user document inside a transaction: fn edits it. */
static ehr_status user_edit(ehr_auth *a, const char *username,
                            ehr_status (*fn)(json_t *u, const void *arg, ehr_err *err),
                            const void *arg, char key[65], ehr_err *err)
{
    if (!auth_username_norm(username, key))
        return ehr_err_set(err, EHR_ENOTFOUND, "no user named '%.64s'", username);
    ehr_status st = auth_begin(a, err);
    if (st)
        return st;
    json_t *u = NULL;
    st = auth_get(a, "user", key, &u, err);
    if (st == EHR_ENOTFOUND)
        st = ehr_err_set(err, st, "no user named '%s'", key);
    if (!st)
        st = fn(u, arg, err);
    if (!st)
        st = auth_put(a, "user", key, NULL, 0, u, false, err);
    json_decref(u);
    if (!st)
        return auth_commit(a, err);
    auth_rollback(a);
    return st;
}

static ehr_status set_disabled(json_t *u, const void *arg, ehr_err *err)
{
    bool dis = *(const bool *)arg;
    json_object_set_new(u, "disabled", json_boolean(dis));
    if (dis)
        json_object_set_new(u, "not_before", json_integer(ehr_time_now_us()));
    return EHR_OK;
}

ehr_status ehr_auth_user_disable(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                                 bool disabled, ehr_err *err)
{
    char key[65];
    ehr_status st = user_edit(a, username, set_disabled, &disabled, key, err);
    if (!st && disabled)
        st = end_sessions(a, key, err);
    if (!st)
        st = auth_audit(a, NULL, admin_event(disabled ? "user-disable" : "user-enable", key, who),
                        err);
    return st;
}

static ehr_status set_password(json_t *u, const void *arg, ehr_err *err)
{
    const char *pw = arg;
    const char *weak = ehr_pw_weak(pw, auth_str(u, "username"));
    if (weak)
        return ehr_err_set(err, EHR_EINVAL, "%s", weak);
    char hash[EHR_PW_HASH_LEN];
    if (ehr_pw_hash(pw, hash))
        return ehr_err_set(err, EHR_ENOMEM, "out of memory hashing the password");
    json_object_set_new(u, "hash", json_string(hash));
    json_object_set_new(u, "failed", json_integer(0));
    json_object_set_new(u, "locked_until", json_integer(0));
    json_object_set_new(u, "not_before", json_integer(ehr_time_now_us()));
    return EHR_OK;
}

ehr_status ehr_auth_user_password(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                                  const char *password, ehr_err *err)
{
    char key[65];
    ehr_status st = user_edit(a, username, set_password, password, key, err);
    if (!st)
        st = end_sessions(a, key, err);
    if (!st)
        st = auth_audit(a, NULL, admin_event("user-password", key, who), err);
    return st;
}

static ehr_status clear_mfa(json_t *u, const void *arg, ehr_err *err)
{
    json_object_del(u, "totp");
    json_object_del(u, "totp_last");
    json_object_del(u, "recovery");
    json_object_set_new(u, "not_before", json_integer(ehr_time_now_us()));
    return EHR_OK;
}

ehr_status ehr_auth_user_reset_mfa(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                                   ehr_err *err)
{
    char key[65];
    ehr_status st = user_edit(a, username, clear_mfa, NULL, key, err);
    if (!st)
        st = end_sessions(a, key, err);
    if (!st)
        st = auth_audit(a, NULL, admin_event("user-reset-mfa", key, who), err);
    return st;
}

struct link_arg {
    const char *patient;
    bool add;
};

static ehr_status edit_link(json_t *u, const void *arg, ehr_err *err)
{
    const struct link_arg *l = arg;
    json_t *pts = json_object_get(u, "patients");
    if (!json_is_array(pts)) {
        pts = json_array();
        json_object_set_new(u, "patients", pts);
    }
    for (size_t i = 0; i < json_array_size(pts); i++)
        if (!strcmp(json_string_value(json_array_get(pts, i)) ?: "", l->patient)) {
            if (!l->add)
                json_array_remove(pts, i);
            return EHR_OK;
        }
    if (l->add) {
        if (json_array_size(pts) >= 10000)
            return ehr_err_set(err, EHR_ELIMIT, "a user may be linked to at most 10000 patients");
        json_array_append_new(pts, json_string(l->patient));
    }
    return EHR_OK;
}

ehr_status ehr_auth_user_link(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                              const char *patient, bool add, ehr_err *err)
{
    const char *id = patient_id(patient);
    if (!id)
        return ehr_err_set(err, EHR_EINVAL, "'%.80s' is not Patient/ID", patient);
    char key[65];
    struct link_arg l = {id, add};
    ehr_status st = user_edit(a, username, edit_link, &l, key, err);
    if (!st) {
        json_t *ev = admin_event(add ? "user-link" : "user-unlink", key, who);
        json_object_set_new(ev, "patients", json_pack("[s]", id));
        st = auth_audit(a, NULL, ev, err);
    }
    return st;
}

/* ---- login ---- */

static const char *dummy_hash(ehr_auth *a)
{
    pthread_mutex_lock(&a->lock);
    if (!a->have_dummy) {
        ehr_buf r = EHR_BUF_INIT;
        if (!ehr_secret_new(24, &r) && !ehr_pw_hash(r.data, a->dummy_hash))
            a->have_dummy = true;
        ehr_buf_free(&r);
    }
    pthread_mutex_unlock(&a->lock);
    return a->have_dummy ? a->dummy_hash : NULL;
}

static void login_event(ehr_auth *a, const ehr_repo_ctx *who, const char *action, const char *user,
                        const char *outcome, const char *detail)
{
    json_t *ev = json_pack("{s:s, s:s, s:s}", "action", action, "outcome", outcome, "user", user);
    if (ev && detail)
        json_object_set_new(ev, "detail", json_string(detail));
    auth_audit(a, who, ev, NULL);
}

/*
 * Count a failure for key (inside a transaction, on the stored value, so
 * that parallel attempts cannot lose counts); lock after N in a row.
 */
static bool count_failure(ehr_auth *a, const char *key)
{
    bool locked = false;
    if (auth_begin(a, NULL))
        return false;
    json_t *u = NULL;
    if (!auth_get(a, "user", key, &u, NULL)) {
        int64_t failed = auth_int(u, "failed") + 1;
        if (failed >= a->cfg.lockout_attempts) {
            json_object_set_new(u, "locked_until",
                                json_integer(ehr_time_now_us() + a->cfg.lockout_seconds * US));
            failed = 0;
            locked = true;
        }
        json_object_set_new(u, "failed", json_integer(failed));
        auth_put(a, "user", key, NULL, 0, u, false, NULL);
    }
    json_decref(u);
    if (auth_commit(a, NULL))
        auth_rollback(a);
    return locked;
}

static void reset_failures(ehr_auth *a, const char *key)
{
    if (auth_begin(a, NULL))
        return;
    json_t *u = NULL;
    if (!auth_get(a, "user", key, &u, NULL) && auth_int(u, "failed") != 0) {
        json_object_set_new(u, "failed", json_integer(0));
        auth_put(a, "user", key, NULL, 0, u, false, NULL);
    }
    json_decref(u);
    if (auth_commit(a, NULL))
        auth_rollback(a);
}

static bool mfa_required(ehr_auth *a, const json_t *u)
{
    ehr_role r;
    return auth_user_role(u, &r) && (a->cfg.mfa_roles & EHR_ROLE_BIT(r));
}

static ehr_status session_new(ehr_auth *a, const char *user, const char *state, ehr_buf *cookie,
                              ehr_err *err)
{
    ehr_buf csrf = EHR_BUF_INIT;
    ehr_status st = ehr_secret_new(32, cookie);
    if (!st)
        st = ehr_secret_new(16, &csrf);
    if (st) {
        ehr_buf_free(&csrf);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    char key[65];
    ehr_sha256_hex(cookie->data, cookie->len, key);
    int64_t now = ehr_time_now_us();
    json_t *s = json_pack("{s:s, s:s, s:I, s:I, s:s}", "user", user, "state", state, "created",
                          (json_int_t)now, "last", (json_int_t)now, "csrf", csrf.data);
    ehr_buf_free(&csrf);
    st = auth_put(a, "session", key, user, now + a->cfg.session_max * US, s, true, err);
    json_decref(s);
    return st;
}

auth_login_result auth_login(ehr_auth *a, const ehr_repo_ctx *who, const char *username,
                             const char *password, ehr_buf *cookie, ehr_err *err)
{
    char key[65];
    json_t *u = NULL;
    bool named = auth_username_norm(username, key);
    if (named)
        auth_get(a, "user", key, &u, NULL);
    if (!named)
        snprintf(key, sizeof key, "(invalid name)");
    /* the same argon2id work whether or not the user exists */
    const char *hash = u ? auth_str(u, "hash") : dummy_hash(a);
    bool pw_ok = password && strlen(password) <= EHR_PW_MAX && ehr_pw_verify(hash, password);
    const char *why = NULL;
    if (!u)
        why = "unknown user";
    else if (json_is_true(json_object_get(u, "disabled")))
        why = "disabled";
    else if (auth_int(u, "locked_until") > ehr_time_now_us())
        why = "locked";
    else if (!pw_ok)
        why = "wrong password";
    if (why) {
        bool locked = u && !strcmp(why, "wrong password") && count_failure(a, key);
        login_event(a, who, "login", key, "failed",
                    locked ? "wrong password; account locked" : why);
        json_decref(u);
        ehr_err_set(err, EHR_EFORBIDDEN, "invalid username or password");
        return LOGIN_FAILED;
    }
    reset_failures(a, key);
    auth_login_result r = LOGIN_OK;
    const char *state = "ok";
    if (auth_str(u, "totp")) {
        r = LOGIN_MFA;
        state = "mfa";
    } else if (mfa_required(a, u)) {
        r = LOGIN_ENROLL;
        state = "enroll";
    }
    json_decref(u);
    if (session_new(a, key, state, cookie, err)) {
        ehr_err_set(err, EHR_EIO, "the session could not be stored");
        return LOGIN_FAILED;
    }
    login_event(a, who, "login", key, "ok", r == LOGIN_OK ? NULL : state);
    return r;
}

/* The cookie value of name in a Cookie header, into out. */
static bool cookie_value(const char *h, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    while (h && *h) {
        h += strspn(h, " ;");
        if (!strncmp(h, name, nl) && h[nl] == '=') {
            const char *v = h + nl + 1;
            size_t n = strcspn(v, ";");
            while (n > 0 && v[n - 1] == ' ')
                n--;
            if (n == 0 || n >= cap)
                return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        h += strcspn(h, ";");
    }
    return false;
}

json_t *auth_session(ehr_auth *a, ehr_http_request *req, char key[65])
{
    char v[128];
    if (!cookie_value(ehr_http_header(req, "Cookie"), "ehr_session", v, sizeof v))
        return NULL;
    ehr_sha256_hex(v, strlen(v), key);
    json_t *s = NULL;
    if (auth_get(a, "session", key, &s, NULL))
        return NULL;
    int64_t now = ehr_time_now_us(), last = auth_int(s, "last");
    /* automatic logoff: idle too long ends the session */
    if (now - last > (int64_t)a->cfg.session_idle * US) {
        auth_del(a, "session", key, NULL);
        json_decref(s);
        return NULL;
    }
    json_t *u = auth_user_get(a, auth_str(s, "user"));
    if (!u || json_is_true(json_object_get(u, "disabled")) ||
        auth_int(u, "not_before") > auth_int(s, "created")) {
        json_decref(u);
        json_decref(s);
        auth_del(a, "session", key, NULL);
        return NULL;
    }
    json_decref(u);
    /* touch, at most every quarter of the idle time (and 30 s) */
    int64_t step = (int64_t)a->cfg.session_idle * US / 4;
    if (step > 30 * US)
        step = 30 * US;
    if (now - last >= step) {
        json_object_set_new(s, "last", json_integer(now));
        auth_put(a, "session", key, auth_str(s, "user"),
                 auth_int(s, "created") + a->cfg.session_max * US, s, false, NULL);
    }
    return s;
}

ehr_status auth_session_save(ehr_auth *a, const char *key, json_t *doc, ehr_err *err)
{
    return auth_put(a, "session", key, auth_str(doc, "user"),
                    auth_int(doc, "created") + a->cfg.session_max * US, doc, false, err);
}

ehr_status auth_session_end(ehr_auth *a, const char *key, ehr_err *err)
{
    return auth_del(a, "session", key, err);
}

/* ---- MFA ---- */

struct mfa_arg {
    const char *code;
    bool ok;
};

static ehr_status check_code(json_t *u, const void *arg, ehr_err *err)
{
    struct mfa_arg *m = (struct mfa_arg *)arg;
    const char *secret = auth_str(u, "totp");
    ehr_buf key = EHR_BUF_INIT;
    if (secret && !ehr_base32_decode(secret, &key) && key.len) {
        int64_t last = auth_int(u, "totp_last");
        if (ehr_totp_check(key.data, key.len, m->code, ehr_time_now_us() / US, &last)) {
            json_object_set_new(u, "totp_last", json_integer(last));
            m->ok = true;
        }
    }
    ehr_buf_free(&key);
    if (!m->ok && strlen(m->code) >= 10) {
        /* a recovery code: each works once */
        char norm[64], h[65];
        size_t k = 0;
        for (const char *p = m->code; *p && k < sizeof norm - 1; p++)
            if (isalnum((unsigned char)*p))
                norm[k++] = (char)tolower((unsigned char)*p);
        norm[k] = '\0';
        ehr_sha256_hex(norm, k, h);
        json_t *rec = json_object_get(u, "recovery");
        for (size_t i = 0; i < json_array_size(rec); i++)
            if (ehr_ct_equal(json_string_value(json_array_get(rec, i)), h)) {
                json_array_remove(rec, i);
                m->ok = true;
                break;
            }
    }
    return EHR_OK;
}

bool auth_mfa_check(ehr_auth *a, const ehr_repo_ctx *who, const char *username, const char *code,
                    ehr_err *err)
{
    char key[65];
    json_t *u = auth_user_get(a, username);
    bool locked = u && (auth_int(u, "locked_until") > ehr_time_now_us() ||
                        json_is_true(json_object_get(u, "disabled")));
    json_decref(u);
    struct mfa_arg m = {code ? code : "", false};
    if (!locked && strlen(m.code) < 64)
        user_edit(a, username, check_code, &m, key, NULL);
    if (!auth_username_norm(username, key))
        snprintf(key, sizeof key, "(invalid name)");
    if (!m.ok) {
        bool now_locked = !locked && count_failure(a, key);
        login_event(a, who, "mfa", key, "failed",
                    locked       ? "locked"
                    : now_locked ? "wrong code; account locked"
                                 : "wrong code");
        ehr_err_set(err, EHR_EFORBIDDEN, "invalid code");
        return false;
    }
    reset_failures(a, key);
    login_event(a, who, "mfa", key, "ok", NULL);
    return true;
}

ehr_status auth_mfa_begin(ehr_auth *a, const char *username, ehr_buf *secret_b32, ehr_err *err)
{
    unsigned char k[20]; /* 160 bits, as RFC 4226 recommends for HMAC-SHA1 */
    ehr_random(k, sizeof k);
    ehr_status st = ehr_base32_encode(k, sizeof k, secret_b32);
    return st ? ehr_err_set(err, st, "out of memory") : EHR_OK;
}

struct confirm_arg {
    const char *secret, *code;
    json_t *codes;
    bool ok;
};

static ehr_status store_totp(json_t *u, const void *arg, ehr_err *err)
{
    struct confirm_arg *c = (struct confirm_arg *)arg;
    ehr_buf key = EHR_BUF_INIT;
    int64_t last = 0;
    c->ok = !ehr_base32_decode(c->secret, &key) && key.len &&
            ehr_totp_check(key.data, key.len, c->code, ehr_time_now_us() / US, &last);
    ehr_buf_free(&key);
    if (!c->ok)
        return ehr_err_set(err, EHR_EFORBIDDEN, "invalid code");
    json_t *hashes = json_array();
    c->codes = json_array();
    for (int i = 0; i < 10; i++) {
        /* 10 codes of 10 base32 characters (50 bits each), shown once */
        unsigned char r[7];
        ehr_random(r, sizeof r);
        ehr_buf b = EHR_BUF_INIT;
        ehr_base32_encode(r, sizeof r, &b);
        char code[16], lower[16], h[65];
        snprintf(code, sizeof code, "%.5s-%.5s", b.data, b.data + 5);
        for (int j = 0; j < 10; j++)
            lower[j] = (char)tolower((unsigned char)b.data[j]);
        lower[10] = '\0';
        ehr_sha256_hex(lower, 10, h);
        json_array_append_new(hashes, json_string(h));
        json_array_append_new(c->codes, json_string(code));
        ehr_buf_free(&b);
    }
    json_object_set_new(u, "totp", json_string(c->secret));
    json_object_set_new(u, "totp_last", json_integer(last));
    json_object_set_new(u, "recovery", hashes);
    return EHR_OK;
}

ehr_status auth_mfa_confirm(ehr_auth *a, const ehr_repo_ctx *who, const char *username,
                            const char *secret_b32, const char *code, json_t **recovery,
                            ehr_err *err)
{
    char key[65];
    struct confirm_arg c = {secret_b32, code ? code : "", NULL, false};
    *recovery = NULL;
    ehr_status st = user_edit(a, username, store_totp, &c, key, err);
    if (st) {
        json_decref(c.codes);
        if (st == EHR_EFORBIDDEN)
            login_event(a, who, "mfa-enroll", key, "failed", "wrong code");
        return st;
    }
    *recovery = c.codes;
    login_event(a, who, "mfa-enroll", key, "ok", NULL);
    return EHR_OK;
}

/* ---- access ---- */

static ehr_status glass_has(void *p, const char *key, json_t *doc, int64_t expires)
{
    const char **want = p;
    const char *pt = auth_str(doc, "patient");
    if (*want && pt && !strcmp(pt, *want))
        *want = NULL; /* found */
    return EHR_OK;
}

bool auth_user_may_see(ehr_auth *a, const json_t *user, const char *patient)
{
    ehr_role r;
    if (!auth_user_role(user, &r))
        return false;
    ehr_subject s = {.has_user = true, .role = r, .clinicians_panel = a->cfg.clinicians_panel};
    ehr_repo_limit lim;
    /* Observation stands for the chart: limited roles see only their patients' */
    if (ehr_auth_decide(&s, EHR_ACCESS_READ, "Observation", &lim, NULL) == EHR_OK && !lim.limited)
        return true;
    if (ehr_auth_decide(&s, EHR_ACCESS_READ, "Observation", &lim, NULL) != EHR_OK &&
        r != EHR_ROLE_PATIENT)
        return false;
    const json_t *pts = json_object_get(user, "patients");
    for (size_t i = 0; i < json_array_size(pts); i++)
        if (!strcmp(json_string_value(json_array_get(pts, i)) ?: "", patient))
            return true;
    const char *want = patient;
    auth_list(a, "glass", auth_str(user, "username"), glass_has, &want, NULL);
    return want == NULL;
}
