/*
 * auth_int.h - private to src/auth/.
 *
 * store.c    documents in the store (users, sessions, clients, tokens ...)
 * users.c    users, passwords, lockout, MFA, sessions, administration
 * tokens.c   clients, codes, access and refresh tokens, identities, keys
 * guard.c    the /fhir guard and security headers
 * oauth.c    /oauth/... and the SMART configuration
 * web.c      /auth/...: login, MFA, logout, break-glass, launch (HTML and JSON)
 */
#ifndef EHR_AUTH_INT_H
#define EHR_AUTH_INT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "auth/auth.h"
#include "auth/crypto.h"

struct ehr_auth {
    ehr_repo *repo;
    ehr_auth_config cfg;
    pthread_mutex_t lock; /* guards the lazily made key and dummy hash */
    EVP_PKEY *key;        /* id_token signing key (RSA), loaded on first use */
    char kid[48];
    char dummy_hash[EHR_PW_HASH_LEN]; /* verified against for unknown users */
    bool have_dummy;
    atomic_uint issued; /* tokens issued: expired documents are purged every 1000 */
};

#define US 1000000LL /* microseconds per second */

/* ---- documents (store.c) ---- */

/* The document (kind, key) as JSON; ENOTFOUND when absent or expired. */
ehr_status auth_get(ehr_auth *a, const char *kind, const char *key, json_t **out, ehr_err *err);
ehr_status auth_put(ehr_auth *a, const char *kind, const char *key, const char *owner,
                    int64_t expires, const json_t *doc, bool create_only, ehr_err *err);
ehr_status auth_del(ehr_auth *a, const char *kind, const char *key, ehr_err *err);
typedef ehr_status (*auth_list_cb)(void *ctx, const char *key, json_t *doc, int64_t expires);
ehr_status auth_list(ehr_auth *a, const char *kind, const char *owner, auth_list_cb cb, void *ctx,
                     ehr_err *err);
/* A write transaction around read-modify-write of documents. */
ehr_status auth_begin(ehr_auth *a, ehr_err *err);
ehr_status auth_commit(ehr_auth *a, ehr_err *err);
void auth_rollback(ehr_auth *a);
/* Audit an auth event (JSON object, consumed); durable on return. */
ehr_status auth_audit(ehr_auth *a, const ehr_repo_ctx *ctx, json_t *ev, ehr_err *err);
/* Integer and string members. */
int64_t auth_int(const json_t *o, const char *k);
const char *auth_str(const json_t *o, const char *k);

/* ---- users and sessions (users.c) ---- */

/* Username as stored: lowercase; false when not [a-z0-9._@-]{1,64}. */
bool auth_username_norm(const char *in, char out[65]);

typedef enum { LOGIN_OK, LOGIN_MFA, LOGIN_ENROLL, LOGIN_FAILED } auth_login_result;

/*
 * Check a password; on success make a session (its cookie value into
 * cookie). The answer never says whether the user exists, is locked or
 * disabled: all failures are LOGIN_FAILED, and take the same time.
 */
auth_login_result auth_login(ehr_auth *a, const ehr_repo_ctx *who, const char *username,
                             const char *password, ehr_buf *cookie, ehr_err *err);

/* A valid session from the request's cookie (touched on use): its doc and
   key (SHA-256 of the cookie), or NULL. */
json_t *auth_session(ehr_auth *a, ehr_http_request *req, char key[65]);
/* Update a session document (state change). */
ehr_status auth_session_save(ehr_auth *a, const char *key, json_t *doc, ehr_err *err);
/* End a session. */
ehr_status auth_session_end(ehr_auth *a, const char *key, ehr_err *err);

/* Second factor: a TOTP code or a recovery code; counts toward lockout. */
bool auth_mfa_check(ehr_auth *a, const ehr_repo_ctx *who, const char *username, const char *code,
                    ehr_err *err);
/* Enrolment: a new secret (base32) for a session, and its confirmation,
   which stores it and returns the recovery codes (JSON array). */
ehr_status auth_mfa_begin(ehr_auth *a, const char *username, ehr_buf *secret_b32, ehr_err *err);
ehr_status auth_mfa_confirm(ehr_auth *a, const ehr_repo_ctx *who, const char *username,
                            const char *secret_b32, const char *code, json_t **recovery,
                            ehr_err *err);

/* The user document, or NULL. */
json_t *auth_user_get(ehr_auth *a, const char *username);
bool auth_user_role(const json_t *user, ehr_role *role);
/* May this user see this patient (linked, break-glass, or unlimited role)? */
bool auth_user_may_see(ehr_auth *a, const json_t *user, const char *patient);

/* ---- tokens and identities (tokens.c) ---- */

/* Who is calling, built per request in its arena; req->user points to ctx. */
typedef struct auth_identity {
    ehr_repo_ctx ctx; /* first member */
    ehr_repo_policy policy;
    ehr_subject subject;
    ehr_scopes scopes;
    ehr_auth *auth;
    ehr_arena *arena;
    char username[65];
    char role_name[24];
    char app[96];
    char patient[72]; /* the context patient */
    char fhir_user[160];
    char token_key[65];
    const char **patients; /* linked + break-glass */
    size_t n_patients, cap_patients;
    const char **glass;
    size_t n_glass;
    int64_t exp;
    bool is_admin_user;
} auth_identity;

/* The identity of an access token, or NULL (reason in err: no PHI). */
auth_identity *auth_token_identity(ehr_auth *a, ehr_http_request *req, const char *token,
                                   ehr_err *err);
/* The identity of a full (MFA-passed) web session's user, with all their role allows. */
auth_identity *auth_session_identity(ehr_auth *a, ehr_http_request *req, const json_t *session);
/* The identity of `ehr serve --insecure-no-auth`: no limits, audited as "anonymous". */
auth_identity *auth_open_identity(ehr_auth *a, ehr_http_request *req);

/* Token issue (for /oauth/token and ehr token). */
typedef struct auth_grant {
    const char *user;   /* NULL for a backend service */
    const char *client; /* client id, or NULL (ehr token) */
    const ehr_scopes *scopes;
    const char *patient; /* context */
    const char *sid;     /* session the access is bound to, or NULL */
    const char *family;  /* refresh family, NULL: a new one (when refresh wanted) */
    bool refresh;        /* issue a refresh token */
    bool offline;        /* the refresh token outlives the session */
    int ttl;             /* access token lifetime (0: configured) */
    const char *nonce;   /* for the id_token */
    const char *issuer;  /* the server's origin, for the id_token's iss */
    char *fam_out;       /* [65]: the family id, when not NULL */
} auth_grant;

/* Issue tokens; the token response JSON into *resp (caller decrefs). */
ehr_status auth_issue(ehr_auth *a, const auth_grant *g, json_t **resp, ehr_err *err);
/* Sign an id_token for user (openid fhirUser). */
ehr_status auth_id_token(ehr_auth *a, const char *iss, const char *user, const char *client,
                         const char *nonce, bool fhir_user, ehr_buf *out, ehr_err *err);
/* The public JWK Set of the server. */
json_t *auth_jwks(ehr_auth *a);

/* The public origin ("http://host:port") of a request, and the FHIR base. */
const char *auth_origin(ehr_auth *a, ehr_http_request *req);
const char *auth_fhir_base(ehr_auth *a, ehr_http_request *req);

/* ---- HTTP (guard.c, oauth.c, web.c) ---- */

int auth_guard(void *ctx, ehr_http_request *req, ehr_http_response *res);
/* GET /fhir/AuditEvent...: the audit log as AuditEvents (auditview.c); false
   when the request is for something else. */
bool auth_audit_view(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                     const ehr_repo_ctx *who);
int auth_oauth(void *ctx, ehr_http_request *req, ehr_http_response *res);
int auth_web(void *ctx, ehr_http_request *req, ehr_http_response *res);

/* Answer JSON (consumed) with a status. */
void auth_send_json(ehr_http_request *req, ehr_http_response *res, int status, json_t *j);
/* OAuth error answer (RFC 6749 5.2). */
void auth_oauth_error(ehr_http_request *req, ehr_http_response *res, int status, const char *error,
                      const char *description);
/* Form or JSON body fields; the value of name, or NULL. */
typedef struct auth_form {
    size_t n;
    struct ehr_search_param *p;
} auth_form;
void auth_form_parse(ehr_http_request *req, auth_form *f);
const char *auth_form_get(const auth_form *f, const char *name);
/* The ctx for auditing an anonymous request (from its address). */
void auth_anon_ctx(ehr_http_request *req, ehr_repo_ctx *ctx);
/* The session cookie as a Set-Cookie value (value NULL: clear it). */
const char *auth_cookie(ehr_auth *a, ehr_http_request *req, const char *value);
/* Append s escaped for HTML. */
void auth_html(ehr_buf *b, const char *s);
/* Answer an HTML page (body: HTML) with a strict Content-Security-Policy;
   form_action: an extra origin the page's form may lead to, or NULL. */
void auth_page(ehr_http_request *req, ehr_http_response *res, int status, const char *title,
               const char *body, const char *form_action);
/* Does the request prefer JSON answers (Accept or a JSON body)? */
bool auth_wants_json(ehr_http_request *req);

#endif
