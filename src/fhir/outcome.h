/*
 * outcome.h - lists of issues, and OperationOutcome resources built from them.
 *
 * Validation, the repository and the REST layer collect problems as
 * ehr_fhir_issues; the REST layer (the one funnel to the outside) turns
 * them into an OperationOutcome. Strings are copied; the list owns them.
 */
#ifndef EHR_FHIR_OUTCOME_H
#define EHR_FHIR_OUTCOME_H

#include <jansson.h>
#include <stddef.h>

#include "core/status.h"

typedef enum {
    EHR_SEV_FATAL,
    EHR_SEV_ERROR,
    EHR_SEV_WARNING,
    EHR_SEV_INFORMATION,
} ehr_fhir_severity;

struct ehr_fhir_issue {
    ehr_fhir_severity severity;
    const char *code; /* FHIR issue-type code: "structure", "required", "value",
                         "code-invalid", "invalid", "not-found", "conflict",
                         "processing", "not-supported", "too-costly", ... (static) */
    char *expression; /* FHIRPath-style location, "Patient.name[0].given[1]", or NULL */
    char *message;    /* for people */
};

typedef struct ehr_fhir_issues {
    size_t n, cap;
    struct ehr_fhir_issue *items;
    size_t max; /* stop collecting after this many (0 = 100) */
} ehr_fhir_issues;

#define EHR_FHIR_ISSUES_INIT                                                                       \
    {                                                                                              \
        0, 0, NULL, 0                                                                              \
    }

/* Add an issue; code must be a static string. Beyond max, issues are
   dropped (the list stays valid). */
ehr_status ehr_fhir_issue_add(ehr_fhir_issues *l, ehr_fhir_severity sev, const char *code,
                              const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Number of issues of severity error or fatal. */
size_t ehr_fhir_issues_errors(const ehr_fhir_issues *l);
void ehr_fhir_issues_free(ehr_fhir_issues *l);

/* The OperationOutcome issue type (a static string) for a failure status:
   not-found, deleted, conflict, transient, ... ("exception" for storage
   and internal errors). */
const char *ehr_fhir_issue_code(ehr_status st);

/* An OperationOutcome with one issue per entry of l (caller owns it). */
json_t *ehr_fhir_outcome_new(const ehr_fhir_issues *l);
/* An OperationOutcome with a single issue. */
json_t *ehr_fhir_outcome_simple(ehr_fhir_severity sev, const char *code, const char *expression,
                                const char *message);

#endif
