/*
 * auth.h - users, sessions, MFA, the SMART on FHIR authorization server,
 * and the access decision in front of every FHIR request.
 *
 * What it serves (ehr_auth_mount, before /fhir on the handler chain):
 *
 *   /.well-known/smart-configuration, /fhir/.well-known/smart-configuration
 *   /oauth/authorize    authorization code flow with PKCE (S256 only)
 *   /oauth/token        authorization_code, refresh_token (rotated),
 *                       client_credentials (private_key_jwt, backend services)
 *   /oauth/introspect, /oauth/revoke, /oauth/jwks
 *   /auth/login, /auth/mfa, /auth/mfa/enroll, /auth/logout, /auth/session
 *                       sessions for the web apps (cookie), TOTP MFA
 *   /auth/break-glass   emergency access with a reason
 *   /auth/launch        EHR launch contexts
 *
 * and, for /fhir, the guard: a Bearer access token is required (except
 * for GET /fhir/metadata); its user, role, scopes and patient context
 * become an ehr_repo_ctx with a policy (req->user points to it), which the
 * repository asks for every interaction (repo.h). Security headers
 * (no-store, nosniff, frame denial, HSTS on TLS) are set on every answer.
 *
 * State lives in the store (auth_object documents): users, sessions,
 * clients, codes and tokens (stored as SHA-256 hashes, never in clear),
 * break-glass grants, the id_token signing key. Defaults and choices:
 * docs/security.md.
 */
#ifndef EHR_AUTH_AUTH_H
#define EHR_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/policy.h"
#include "core/buf.h"
#include "core/status.h"
#include "http/http.h"
#include "repo/repo.h"

typedef struct ehr_auth ehr_auth;

typedef struct ehr_auth_config {
    bool clinicians_panel; /* physicians and nurses see their panel only (default true) */
    unsigned mfa_roles;    /* roles that must use MFA (default admin, physician, nurse) */
    unsigned glass_roles;  /* roles that may break the glass (default physician, nurse) */
    int glass_minutes;     /* how long a break-glass grant lasts (60) */
    int session_idle;      /* seconds without activity that end a session (900) */
    int session_max;       /* absolute session lifetime, seconds (43200 = 12 h) */
    int access_ttl;        /* access token lifetime, seconds (3600) */
    int refresh_days;      /* offline_access refresh token lifetime (30) */
    int lockout_attempts;  /* failed logins in a row that lock an account (5) */
    int lockout_seconds;   /* how long the lock lasts (900) */
    const char *base_url;  /* public origin, "https://ehr.example.org"; NULL: from Host */
    bool tls;              /* served over TLS: Secure cookies, HSTS */
    bool no_auth;          /* --insecure-no-auth: /fhir without tokens (development) */
    /* The FHIR error body (an OperationOutcome) for 401s on /fhir. */
    void (*error_body)(void *ctx, int status, const char *message, ehr_http_response *res);
} ehr_auth_config;

void ehr_auth_config_defaults(ehr_auth_config *c);

/* Open the auth module over repo (borrowed). */
ehr_status ehr_auth_new(ehr_repo *repo, const ehr_auth_config *cfg, ehr_auth **out, ehr_err *err);
void ehr_auth_free(ehr_auth **a);

/* Add the handlers to s; call before mounting /fhir. */
ehr_status ehr_auth_mount(ehr_auth *a, ehr_http_server *s);

/* ---- administration (the ehr user / client / token commands) ---- */

/* Who runs an administrative command, for the audit log ("cli:alice"). */
typedef struct ehr_auth_actor {
    const char *name;
    const char *client; /* "cli" or an address */
} ehr_auth_actor;

/*
 * Add a user. patients: the Patient ids the user is linked to (patient:
 * own record, or several for a proxy; clinicians: their panel). fhir_user:
 * "Practitioner/x", "Patient/y", "RelatedPerson/z" or NULL (derived: a
 * patient's own Patient, else Practitioner/<username>). EEXISTS when the
 * name is taken (names are case-insensitive); EINVAL for a weak password.
 */
ehr_status ehr_auth_user_add(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                             const char *password, ehr_role role, const char *const *patients,
                             size_t n_patients, const char *fhir_user, ehr_err *err);

/* One user as ehr user list shows it. */
typedef struct ehr_auth_user_info {
    const char *username, *role, *fhir_user;
    bool disabled, mfa, locked;
    size_t n_patients;
    const char *const *patients;
} ehr_auth_user_info;
typedef ehr_status (*ehr_auth_user_cb)(void *ctx, const ehr_auth_user_info *u);
ehr_status ehr_auth_user_list(ehr_auth *a, ehr_auth_user_cb cb, void *ctx, ehr_err *err);
/* Disable (or enable) a user; disabling ends their sessions and tokens. */
ehr_status ehr_auth_user_disable(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                                 bool disabled, ehr_err *err);
/* Set a new password; unlocks the account and ends sessions and tokens. */
ehr_status ehr_auth_user_password(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                                  const char *password, ehr_err *err);
/* Remove the user's TOTP enrolment (they enrol again at next login). */
ehr_status ehr_auth_user_reset_mfa(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                                   ehr_err *err);
/* Link (add) or unlink a Patient id. */
ehr_status ehr_auth_user_link(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                              const char *patient, bool add, ehr_err *err);
/* Number of users (first start: 0). */
ehr_status ehr_auth_user_count(ehr_auth *a, size_t *n, ehr_err *err);

/* A SMART app to register. */
typedef struct ehr_auth_client_spec {
    const char *name;
    const char *client_id; /* NULL: generated */
    const char *kind;      /* "public", "confidential" (client secret), "backend" (JWKS) */
    const char *const *redirect_uris;
    size_t n_redirect_uris;
    const char *scope; /* the most it may be granted; NULL: "launch launch/patient
                          openid fhirUser offline_access online_access patient/ *.cruds
                          user/ *.cruds" (backend: "system/ *.rs") */
    const char *jwks;  /* backend: a JWK Set as JSON text */
} ehr_auth_client_spec;

/* Register; the client id (and, for confidential clients, the secret,
   shown only now) go into id_out and secret_out. */
ehr_status ehr_auth_client_add(ehr_auth *a, const ehr_auth_actor *who,
                               const ehr_auth_client_spec *spec, ehr_buf *id_out,
                               ehr_buf *secret_out, ehr_err *err);
typedef ehr_status (*ehr_auth_client_cb)(void *ctx, const char *client_id, const char *name,
                                         const char *kind);
ehr_status ehr_auth_client_list(ehr_auth *a, ehr_auth_client_cb cb, void *ctx, ehr_err *err);

/*
 * Mint an access token for user with scopes (at most what the role allows;
 * granular scopes are not granted), for scripts on the server's host.
 * patient: the context for patient/ scopes (a patient user's own record
 * when they have one). ttl seconds (0: the configured lifetime). The token
 * goes into token_out, the granted scopes into granted_out.
 */
ehr_status ehr_auth_token_mint(ehr_auth *a, const ehr_auth_actor *who, const char *username,
                               const char *scope, const char *patient, int ttl, ehr_buf *token_out,
                               ehr_buf *granted_out, ehr_err *err);

/*
 * The clinician app (web/, served at / by ehr serve) is a SMART app of its
 * own server: a public client with this id, PKCE, redirect URI "ORIGIN/"
 * (this server's own origin, auth_origin), scopes at most
 * EHR_AUTH_APP_SCOPE. It is first-party, so /oauth/authorize skips the
 * consent page for it (the code can only go back to this origin). Made in
 * the store at serve start, once (audited as client-add).
 */
#define EHR_AUTH_APP_CLIENT "ehr-clinician"
#define EHR_AUTH_APP_SCOPE "openid fhirUser online_access user/*.cruds"
ehr_status ehr_auth_register_app(ehr_auth *a, ehr_err *err);

/* Break-glass grants, newest first (for the report to admins). */
typedef ehr_status (*ehr_auth_glass_cb)(void *ctx, const char *user, const char *patient,
                                        const char *reason, int64_t at, int64_t expires);
ehr_status ehr_auth_glass_list(ehr_auth *a, bool active_only, ehr_auth_glass_cb cb, void *ctx,
                               ehr_err *err);

#endif
