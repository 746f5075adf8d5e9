#include "fhir/outcome.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ehr_status ehr_fhir_issue_add(ehr_fhir_issues *l, ehr_fhir_severity sev, const char *code,
                              const char *expression, const char *fmt, ...)
{
    size_t max = l->max ? l->max : 100;
    if (l->n >= max)
        return EHR_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct ehr_fhir_issue *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return EHR_ENOMEM;
        l->items = p;
        l->cap = cap;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct ehr_fhir_issue *it = &l->items[l->n];
    it->severity = sev;
    it->code = code;
    it->expression = expression ? strdup(expression) : NULL;
    it->message = strdup(msg);
    if (!it->message || (expression && !it->expression)) {
        free(it->expression);
        free(it->message);
        return EHR_ENOMEM;
    }
    l->n++;
    return EHR_OK;
}

size_t ehr_fhir_issues_errors(const ehr_fhir_issues *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].severity <= EHR_SEV_ERROR)
            n++;
    return n;
}

void ehr_fhir_issues_free(ehr_fhir_issues *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].expression);
        free(l->items[i].message);
    }
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static const char *sev_name(ehr_fhir_severity s)
{
    switch (s) {
    case EHR_SEV_FATAL:
        return "fatal";
    case EHR_SEV_ERROR:
        return "error";
    case EHR_SEV_WARNING:
        return "warning";
    case EHR_SEV_INFORMATION:
        return "information";
    }
    return "error";
}

static json_t *issue_json(ehr_fhir_severity sev, const char *code, const char *expression,
                          const char *message)
{
    json_t *i = json_object();
    json_object_set_new(i, "severity", json_string(sev_name(sev)));
    json_object_set_new(i, "code", json_string(code ? code : "processing"));
    if (message)
        json_object_set_new(i, "diagnostics", json_string(message));
    if (expression && *expression) {
        json_object_set_new(i, "expression", json_pack("[s]", expression));
    }
    return i;
}

json_t *ehr_fhir_outcome_new(const ehr_fhir_issues *l)
{
    json_t *oo = json_object();
    json_object_set_new(oo, "resourceType", json_string("OperationOutcome"));
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, issue_json(l->items[i].severity, l->items[i].code,
                                              l->items[i].expression, l->items[i].message));
    if (l->n == 0)
        json_array_append_new(arr, issue_json(EHR_SEV_INFORMATION, "informational", NULL, "ok"));
    json_object_set_new(oo, "issue", arr);
    return oo;
}

json_t *ehr_fhir_outcome_simple(ehr_fhir_severity sev, const char *code, const char *expression,
                                const char *message)
{
    json_t *oo = json_object();
    json_object_set_new(oo, "resourceType", json_string("OperationOutcome"));
    json_t *arr = json_array();
    json_array_append_new(arr, issue_json(sev, code, expression, message));
    json_object_set_new(oo, "issue", arr);
    return oo;
}

const char *ehr_fhir_issue_code(ehr_status st)
{
    switch (st) {
    case EHR_OK:
    case EHR_EINVAL:
        return "invalid";
    case EHR_ENOTFOUND:
        return "not-found";
    case EHR_EGONE:
        return "deleted";
    case EHR_ECONFLICT:
    case EHR_EPRECONDITION:
        return "conflict";
    case EHR_EEXISTS:
        return "duplicate";
    case EHR_EMULTIPLE:
        return "multiple-matches";
    case EHR_ELIMIT:
        return "too-costly";
    case EHR_EFORBIDDEN:
        return "forbidden";
    case EHR_EBUSY:
        return "transient";
    case EHR_EUNSUPPORTED:
        return "not-supported";
    case EHR_EUNPROCESSABLE:
        return "business-rule";
    case EHR_ENOMEM:
    case EHR_EIO:
    case EHR_EINTERNAL:
        return "exception";
    }
    return "exception";
}
