/*
 * policy.c - roles, scopes and the access decision (see policy.h).
 */
#include "auth/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[EHR_ROLE_N] = {
    [EHR_ROLE_ADMIN] = "admin",     [EHR_ROLE_PHYSICIAN] = "physician",
    [EHR_ROLE_NURSE] = "nurse",     [EHR_ROLE_FRONT_DESK] = "front-desk",
    [EHR_ROLE_BILLER] = "biller",   [EHR_ROLE_AUDITOR] = "auditor",
    [EHR_ROLE_PATIENT] = "patient",
};

const char *ehr_role_name(ehr_role r)
{
    return r < EHR_ROLE_N ? role_names[r] : "unknown";
}

bool ehr_role_parse(const char *s, ehr_role *out)
{
    for (int i = 0; s && i < EHR_ROLE_N; i++)
        if (!strcmp(s, role_names[i]) || (i == EHR_ROLE_FRONT_DESK && !strcmp(s, "front_desk"))) {
            *out = (ehr_role)i;
            return true;
        }
    return false;
}

bool ehr_role_list(const char *s, unsigned *bits, const char **bad)
{
    static char badbuf[64];
    *bits = 0;
    while (s && *s) {
        size_t n = strcspn(s, ", ");
        char name[32];
        if (n > 0) {
            snprintf(name, sizeof name, "%.*s", (int)(n < 31 ? n : 31), s);
            ehr_role r;
            if (!strcmp(name, "none")) {
                /* explicit empty set */
            } else if (!ehr_role_parse(name, &r)) {
                snprintf(badbuf, sizeof badbuf, "%s", name);
                if (bad)
                    *bad = badbuf;
                return false;
            } else {
                *bits |= EHR_ROLE_BIT(r);
            }
        }
        s += n;
        s += strspn(s, ", ");
    }
    return true;
}

unsigned ehr_perm_of(ehr_access a)
{
    switch (a) {
    case EHR_ACCESS_READ:
        return EHR_PERM_R;
    case EHR_ACCESS_SEARCH:
        return EHR_PERM_S;
    case EHR_ACCESS_CREATE:
        return EHR_PERM_C;
    case EHR_ACCESS_UPDATE:
        return EHR_PERM_U;
    case EHR_ACCESS_DELETE:
        return EHR_PERM_D;
    }
    return 0;
}

/* Sorted lists of the types outside the default (clinical) category. */
static const char *const demographic[] = {
    "Appointment", "AppointmentResponse", "Coverage", "Encounter", "Patient",
    "Person",      "RelatedPerson",       "Schedule", "Slot",
};
static const char *const coding[] = {"Condition", "Procedure"};
static const char *const financial[] = {
    "Account",
    "ChargeItem",
    "Claim",
    "ClaimResponse",
    "Contract",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "ExplanationOfBenefit",
    "Invoice",
    "PaymentNotice",
    "PaymentReconciliation",
};
/* No PHI: definitions, directories, terminology. None is in the Patient
   compartment (checked by tests/unit/test_auth.c). */
static const char *const reference[] = {
    "ActivityDefinition",
    "CapabilityStatement",
    "ChargeItemDefinition",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "DeviceDefinition",
    "EffectEvidenceSynthesis",
    "Endpoint",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "GraphDefinition",
    "HealthcareService",
    "ImplementationGuide",
    "InsurancePlan",
    "Library",
    "Location",
    "Measure",
    "Medication",
    "MedicationKnowledge",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "NamingSystem",
    "ObservationDefinition",
    "OperationDefinition",
    "Organization",
    "OrganizationAffiliation",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Questionnaire",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "TerminologyCapabilities",
    "ValueSet",
};

static int cmp(const void *k, const void *e)
{
    return strcmp(k, *(const char *const *)e);
}

#define IN(list, t)                                                                                \
    (bsearch((t), (list), sizeof(list) / sizeof(list)[0], sizeof(list)[0], cmp) != NULL)

ehr_category ehr_type_category(const char *type)
{
    if (!strcmp(type, "AuditEvent"))
        return EHR_CAT_SECURITY;
    if (IN(demographic, type))
        return EHR_CAT_DEMOGRAPHIC;
    if (IN(coding, type))
        return EHR_CAT_CODING;
    if (IN(financial, type))
        return EHR_CAT_FINANCIAL;
    if (IN(reference, type))
        return EHR_CAT_REFERENCE;
    return EHR_CAT_CLINICAL;
}

#define C EHR_PERM_C
#define R EHR_PERM_R
#define U EHR_PERM_U
#define D EHR_PERM_D
#define S EHR_PERM_S
#define ALL EHR_PERM_ALL

/* The roles matrix (docs/security.md). AuditEvents are written by the
   server only, never through the API. */
// clang-format off
static const unsigned matrix[EHR_ROLE_N][EHR_CAT_N] = {
    /*                      clinical   demographic coding     financial  reference  security */
    [EHR_ROLE_ADMIN] =      {ALL,       ALL,        ALL,       ALL,       ALL,       R | S},
    [EHR_ROLE_PHYSICIAN] =  {ALL,       ALL,        ALL,       R | S,     C|R|U|S,   0},
    [EHR_ROLE_NURSE] =      {C|R|U|S,   C|R|U|S,    C|R|U|S,   0,         R | S,     0},
    [EHR_ROLE_FRONT_DESK] = {0,         C|R|U|S,    0,         R | S,     R | S,     0},
    [EHR_ROLE_BILLER] =     {0,         R | S,      R | S,     ALL,       R | S,     0},
    [EHR_ROLE_AUDITOR] =    {0,         0,          0,         0,         R | S,     R | S},
    [EHR_ROLE_PATIENT] =    {R | S,     R | S,      R | S,     R | S,     R | S,     0},
};

unsigned ehr_role_perms(ehr_role r, const char *type)
{
    if (r >= EHR_ROLE_N)
        return 0;
    return matrix[r][ehr_type_category(type)];
}

/* Is the role's access to this type limited to its patients? */
static bool role_limited(const ehr_subject *s, const char *type)
{
    ehr_category cat = ehr_type_category(type);
    if (cat == EHR_CAT_REFERENCE)
        return false;
    switch (s->role) {
    case EHR_ROLE_PATIENT:
        return true;
    case EHR_ROLE_PHYSICIAN:
    case EHR_ROLE_NURSE:
        /* in panel mode clinicians see their patients' charts; any Patient
           (demographics) can be looked up, to find a patient or to break
           the glass */
        return s->clinicians_panel && strcmp(type, "Patient") != 0;
    default:
        return false;
    }
}

/* ---- scopes ---- */

static bool valid_type(const char *t)
{
    if (!strcmp(t, "*"))
        return true;
    if (!*t || *t < 'A' || *t > 'Z')
        return false;
    for (; *t; t++)
        if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z')))
            return false;
    return true;
}

/* "rs", "cruds" (v2: letters in this order, each at most once) or v1 words. */
static bool parse_perms(const char *p, unsigned *out)
{
    if (!strcmp(p, "read")) {
        *out = R | S;
        return true;
    }
    if (!strcmp(p, "write")) {
        *out = C | U | D;
        return true;
    }
    if (!strcmp(p, "*")) {
        *out = ALL;
        return true;
    }
    static const char order[] = "cruds";
    unsigned bits = 0;
    int last = -1;
    if (!*p)
        return false;
    for (; *p; p++) {
        const char *q = strchr(order, *p);
        if (!q || !*q || (int)(q - order) <= last)
            return false;
        last = (int)(q - order);
        bits |= 1u << last;
    }
    *out = bits;
    return true;
}

static ehr_status parse_one(const char *tok, size_t n, ehr_scopes *out, ehr_err *err)
{
    char t[256];
    if (n >= sizeof t)
        return ehr_err_set(err, EHR_EINVAL, "a scope is too long");
    memcpy(t, tok, n);
    t[n] = '\0';
#define FLAG(name, field)                                                                          \
    if (!strcmp(t, name)) {                                                                        \
        out->field = true;                                                                         \
        return EHR_OK;                                                                             \
    }
    FLAG("openid", openid)
    FLAG("fhirUser", fhir_user)
    FLAG("profile", profile)
    FLAG("launch", launch)
    FLAG("launch/patient", launch_patient)
    FLAG("launch/encounter", launch_encounter)
    FLAG("offline_access", offline_access)
    FLAG("online_access", online_access)
#undef FLAG
    char level;
    const char *rest;
    if (!strncmp(t, "patient/", 8))
        level = 'p', rest = t + 8;
    else if (!strncmp(t, "user/", 5))
        level = 'u', rest = t + 5;
    else if (!strncmp(t, "system/", 7))
        level = 's', rest = t + 7;
    else
        return EHR_OK; /* not ours: skipped */
    ehr_scope sc = {.level = level};
    const char *dot = strchr(rest, '.');
    if (!dot || (size_t)(dot - rest) >= sizeof sc.type)
        return ehr_err_set(err, EHR_EINVAL, "scope '%.80s' is not level/Type.permissions", t);
    memcpy(sc.type, rest, (size_t)(dot - rest));
    sc.type[dot - rest] = '\0';
    char perms[32];
    const char *q = strchr(dot + 1, '?');
    size_t pl = q ? (size_t)(q - dot - 1) : strlen(dot + 1);
    if (pl >= sizeof perms)
        return ehr_err_set(err, EHR_EINVAL, "scope '%.80s' has unknown permissions", t);
    memcpy(perms, dot + 1, pl);
    perms[pl] = '\0';
    if (!valid_type(sc.type) || !parse_perms(perms, &sc.perms))
        return ehr_err_set(err, EHR_EINVAL, "scope '%.80s' is not level/Type.permissions", t);
    if (q) {
        if (strlen(q + 1) >= sizeof sc.query || !q[1])
            return ehr_err_set(err, EHR_EINVAL, "scope '%.80s' has a bad query", t);
        snprintf(sc.query, sizeof sc.query, "%s", q + 1);
    }
    for (size_t i = 0; i < out->n; i++)
        if (out->v[i].level == sc.level && !strcmp(out->v[i].type, sc.type) &&
            !strcmp(out->v[i].query, sc.query)) {
            out->v[i].perms |= sc.perms;
            return EHR_OK;
        }
    if (out->n == EHR_SCOPES_MAX)
        return ehr_err_set(err, EHR_ELIMIT, "too many scopes (at most %d)", EHR_SCOPES_MAX);
    out->v[out->n++] = sc;
    return EHR_OK;
}

ehr_status ehr_scopes_parse(const char *s, ehr_scopes *out, ehr_err *err)
{
    memset(out, 0, sizeof *out);
    while (s && *s) {
        s += strspn(s, " ");
        size_t n = strcspn(s, " ");
        if (n) {
            ehr_status st = parse_one(s, n, out, err);
            if (st)
                return st;
        }
        s += n;
    }
    return EHR_OK;
}

ehr_status ehr_scopes_format(const ehr_scopes *s, ehr_buf *out)
{
    ehr_status st = EHR_OK;
    const char *sep = "";
#define PUT(cond, name)                                                                            \
    if (!st && (cond)) {                                                                           \
        st = ehr_buf_printf(out, "%s%s", sep, name);                                               \
        sep = " ";                                                                                 \
    }
    PUT(s->launch, "launch")
    PUT(s->launch_patient, "launch/patient")
    PUT(s->launch_encounter, "launch/encounter")
    PUT(s->openid, "openid")
    PUT(s->fhir_user, "fhirUser")
    PUT(s->profile, "profile")
    PUT(s->offline_access, "offline_access")
    PUT(s->online_access, "online_access")
#undef PUT
    for (size_t i = 0; !st && i < s->n; i++) {
        const ehr_scope *sc = &s->v[i];
        char letters[8];
        size_t k = 0;
        for (int b = 0; b < 5; b++)
            if (sc->perms & (1u << b))
                letters[k++] = "cruds"[b];
        letters[k] = '\0';
        st = ehr_buf_printf(out, "%s%s/%s.%s%s%s", sep,
                            sc->level == 'p' ? "patient" : sc->level == 'u' ? "user" : "system",
                            sc->type, letters, sc->query[0] ? "?" : "", sc->query);
        sep = " ";
    }
    if (!st && !out->data)
        st = ehr_buf_puts(out, "");
    return st;
}

void ehr_scopes_narrow(ehr_scopes *s, const ehr_scopes *cap, bool allow_patient, bool allow_user,
                       bool allow_system)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        ehr_scope sc = s->v[i];
        if (sc.query[0])
            continue; /* granular scopes: not enforceable here yet, not granted */
        if ((sc.level == 'p' && !allow_patient) || (sc.level == 'u' && !allow_user) ||
            (sc.level == 's' && !allow_system))
            continue;
        if (cap) {
            /* what some cap scope of the same level grants on this type */
            unsigned allowed = 0;
            for (size_t j = 0; j < cap->n; j++) {
                const ehr_scope *c = &cap->v[j];
                if (c->level != sc.level || c->query[0])
                    continue;
                if (!strcmp(c->type, "*") || !strcmp(c->type, sc.type))
                    allowed |= c->perms;
            }
            /* a wildcard asked for under a narrower cap is not widened */
            if (!strcmp(sc.type, "*")) {
                unsigned star = 0;
                for (size_t j = 0; j < cap->n; j++)
                    if (cap->v[j].level == sc.level && !cap->v[j].query[0] &&
                        !strcmp(cap->v[j].type, "*"))
                        star |= cap->v[j].perms;
                allowed = star;
            }
            sc.perms &= allowed;
        }
        if (sc.perms)
            s->v[k++] = sc;
    }
    s->n = k;
}

bool ehr_scopes_have_level(const ehr_scopes *s, char level)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].level == level)
            return true;
    return false;
}

/* ---- the decision ---- */

ehr_status ehr_auth_decide(const ehr_subject *s, ehr_access access, const char *type,
                           ehr_repo_limit *lim, ehr_err *err)
{
    static const char *const verbs[] = {
        [EHR_ACCESS_READ] = "read", [EHR_ACCESS_SEARCH] = "search",
        [EHR_ACCESS_CREATE] = "create", [EHR_ACCESS_UPDATE] = "update",
        [EHR_ACCESS_DELETE] = "delete",
    };
    unsigned perm = ehr_perm_of(access);
    memset(lim, 0, sizeof *lim);
    if (s->has_user && !(ehr_role_perms(s->role, type) & perm))
        return ehr_err_set(err, EHR_EFORBIDDEN, "the %s role may not %s %s resources",
                           ehr_role_name(s->role), verbs[access], type);
    /* the widest level among the granted scopes that allow this */
    enum { NONE, PATIENT, USER, SYSTEM } best = NONE;
    if (!s->scopes) {
        best = s->has_user ? USER : SYSTEM;
    } else {
        for (size_t i = 0; i < s->scopes->n; i++) {
            const ehr_scope *sc = &s->scopes->v[i];
            if (sc->query[0] || !(sc->perms & perm) ||
                (strcmp(sc->type, "*") && strcmp(sc->type, type)))
                continue;
            if (sc->level == 's' && !s->has_user)
                best = SYSTEM;
            else if (sc->level == 'u' && s->has_user && best < USER)
                best = USER;
            else if (sc->level == 'p' && best < PATIENT)
                best = PATIENT;
        }
    }
    if (best == NONE)
        return ehr_err_set(err, EHR_EFORBIDDEN,
                           "the access token's scopes do not allow to %s %s resources",
                           verbs[access], type);
    if (ehr_type_category(type) == EHR_CAT_REFERENCE || best == SYSTEM)
        return EHR_OK;
    if (best == PATIENT) {
        /* patient/ scopes: the launch patient's compartment, and no more than
           the user could see anyway (checked when the token was issued) */
        if (!s->context_patient)
            return ehr_err_set(err, EHR_EFORBIDDEN,
                               "patient/ scopes need a patient context (launch/patient)");
        lim->limited = true;
        lim->n_patients = 1;
        lim->patients = &s->context_patient;
        return EHR_OK;
    }
    if (role_limited(s, type)) {
        lim->limited = true;
        lim->n_patients = s->n_patients;
        lim->patients = s->patients;
    }
    return EHR_OK;
}
