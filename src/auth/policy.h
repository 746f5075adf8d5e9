/*
 * policy.h - roles, SMART scopes, and the one access decision:
 * role permissions ∩ granted scopes ∩ patient compartment.
 *
 * Pure functions (no storage), tested table-driven in
 * tests/unit/test_auth.c. The roles matrix is documented in
 * docs/security.md; change both together.
 */
#ifndef EHR_AUTH_POLICY_H
#define EHR_AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"
#include "repo/repo.h"

/* ---- roles ---- */

typedef enum {
    EHR_ROLE_ADMIN,
    EHR_ROLE_PHYSICIAN,
    EHR_ROLE_NURSE,
    EHR_ROLE_FRONT_DESK,
    EHR_ROLE_BILLER,
    EHR_ROLE_AUDITOR,
    EHR_ROLE_PATIENT,
    EHR_ROLE_N
} ehr_role;

#define EHR_ROLE_BIT(r) (1u << (r))

const char *ehr_role_name(ehr_role r);
/* "physician" -> EHR_ROLE_PHYSICIAN; false for an unknown name. */
bool ehr_role_parse(const char *s, ehr_role *out);
/* Parse a comma list of roles into a bit set; false (with *bad) on an unknown name. */
bool ehr_role_list(const char *s, unsigned *bits, const char **bad);

/* Permission bits, as SMART v2 letters c r u d s. */
enum {
    EHR_PERM_C = 1,
    EHR_PERM_R = 2,
    EHR_PERM_U = 4,
    EHR_PERM_D = 8,
    EHR_PERM_S = 16,
    EHR_PERM_ALL = 31,
};
unsigned ehr_perm_of(ehr_access a);

/* Resource types by what they hold, for the roles matrix. */
typedef enum {
    EHR_CAT_CLINICAL,    /* the chart: everything not listed below */
    EHR_CAT_DEMOGRAPHIC, /* Patient, RelatedPerson, Person, Appointment, Encounter, Coverage ... */
    EHR_CAT_CODING,      /* Condition, Procedure: what billing needs from the chart */
    EHR_CAT_FINANCIAL,   /* Claim, Account, Invoice, ExplanationOfBenefit ... */
    EHR_CAT_REFERENCE,   /* no PHI: Practitioner, Organization, Medication, ValueSet ... */
    EHR_CAT_SECURITY,    /* AuditEvent */
    EHR_CAT_N
} ehr_category;

ehr_category ehr_type_category(const char *type);
/* Role permissions on a type (EHR_PERM_* bits). */
unsigned ehr_role_perms(ehr_role r, const char *type);

/* ---- SMART scopes (App Launch 1.0 and 2.0) ---- */

#define EHR_SCOPES_MAX 48

typedef struct ehr_scope {
    char level;      /* 'p' patient/, 'u' user/, 's' system/ */
    char type[64];   /* a resource type or "*" */
    unsigned perms;  /* EHR_PERM_* */
    char query[128]; /* granular v2 scope: "category=vital-signs"; "" for none */
} ehr_scope;

typedef struct ehr_scopes {
    size_t n;
    ehr_scope v[EHR_SCOPES_MAX];
    bool openid, fhir_user, profile, launch, launch_patient, launch_encounter;
    bool offline_access, online_access;
} ehr_scopes;

/*
 * Parse a space-separated scope string. Resource scopes in v1
 * (patient/Observation.read, .write) and v2 (patient/Observation.rs,
 * user/ *.cruds, with an optional ?query) form; unknown scope tokens are
 * skipped (a server may grant less than asked). EINVAL for a malformed
 * resource scope, ELIMIT beyond EHR_SCOPES_MAX.
 */
ehr_status ehr_scopes_parse(const char *s, ehr_scopes *out, ehr_err *err);
/* The scopes as a string (v2 letters for resource scopes). */
ehr_status ehr_scopes_format(const ehr_scopes *s, ehr_buf *out);
/* Keep only the resource scopes at most as wide as some scope of cap (and
   of the levels allowed); drop granular scopes, which this server cannot
   enforce yet. Context scopes (openid, launch ...) are kept. */
void ehr_scopes_narrow(ehr_scopes *s, const ehr_scopes *cap, bool allow_patient, bool allow_user,
                       bool allow_system);
/* Any resource scope at this level? */
bool ehr_scopes_have_level(const ehr_scopes *s, char level);

/* ---- the decision ---- */

typedef struct ehr_subject {
    bool has_user; /* false: a backend service (system/ scopes only) */
    ehr_role role;
    const ehr_scopes *scopes; /* granted scopes; NULL: all the role allows */
    /* the patients the user may see when its role is limited (own record and
       proxies for patients, the panel for clinicians in panel mode, plus
       break-glass grants) */
    size_t n_patients;
    const char *const *patients;
    const char *context_patient; /* patient/ scopes: the launch patient (or NULL) */
    bool clinicians_panel;       /* physicians and nurses see only their panel */
} ehr_subject;

/*
 * May subject do access on resources of type? EHR_OK with *lim (see
 * repo.h), or EHR_EFORBIDDEN with a reason in err. The limit's patients
 * point into the subject (patients, or &context_patient).
 */
ehr_status ehr_auth_decide(const ehr_subject *s, ehr_access access, const char *type,
                           ehr_repo_limit *lim, ehr_err *err);

#endif
