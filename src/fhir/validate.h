/*
 * validate.h - validation of FHIR R4 JSON against the base specification.
 *
 * Checks a resource (or any value of a FHIR type) as parsed by
 * ehr_json_parse against the generated model (model.h): resourceType,
 * unknown elements, JSON types, arrays, cardinality, choice types,
 * primitive formats (FHIR R4 2.24.0.1 regexes, with real calendar checks),
 * required bindings, primitive extensions ("_birthDate") and the null
 * alignment of primitive arrays, empty objects / arrays / strings, the
 * invariants ext-1 (Extension: value or extensions, not both), dom-2 / dom-4
 * / dom-5 (contained resources), txt-1-like narrative shape, and reference
 * targets. Contained resources, Bundle.entry.resource and
 * Parameters.parameter.resource are validated as resources, recursively.
 * Profiles (meta.profile) and FHIRPath invariants beyond those above are
 * not checked.
 *
 * Every problem becomes an issue; validation does not stop at the first.
 *
 * Locations ("expression" of an issue) are FHIRPath, rooted at the type:
 *   Patient.birthDate
 *   Patient.name[0].given[1]           every item of an array has its index
 *   Observation.value.ofType(Quantity).unit   a choice element, by its type
 *   Patient.birthDate.extension[0].url the "_birthDate" object of a primitive
 *   Bundle.entry[2].resource.status    a resource inside another
 * An unknown JSON property is reported at parent + "." + the property name
 * as written ("Patient.birthdate"). Problems with the root itself (not an
 * object, no resourceType) have no location.
 */
#ifndef EHR_FHIR_VALIDATE_H
#define EHR_FHIR_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "fhir/model.h"
#include "fhir/outcome.h"

typedef struct ehr_fhir_validate_opts {
    /* Validate as this type ("Patient", "HumanName", "date"), NULL to take
       the type from resourceType. A resource type must match resourceType. */
    const char *type;
    /* Skip required-binding checks. */
    bool no_bindings;
    /* Skip the check that a relative reference ("Patient/1") names a type
       that the element allows. */
    bool no_reference_targets;
    /* Maximum nesting of JSON objects and arrays (0 = 64). Deeper input is
       an error, not a crash. */
    unsigned max_depth;
} ehr_fhir_validate_opts;

/*
 * Validate a resource: the type comes from its resourceType. Issues are
 * appended to issues (which the caller owns and frees). Returns EHR_OK
 * when no issue of severity error or fatal was found, EHR_EINVAL when one
 * was (including issues already in the list), EHR_ENOMEM when the list
 * could not grow.
 */
ehr_status ehr_fhir_validate(const json_t *resource, ehr_fhir_issues *issues);

/* The same, with options (opts may be NULL). */
ehr_status ehr_fhir_validate_ex(const json_t *value, const ehr_fhir_validate_opts *opts,
                                ehr_fhir_issues *issues);

/*
 * Check the lexical form of a primitive value given as text: a string's
 * content, a number's text (ehr_json_number_text), or "true"/"false".
 * Returns NULL when valid, else a static sentence saying what is expected
 * ("a date is YYYY, YYYY-MM or YYYY-MM-DD ..."). For date types the
 * calendar is checked (2024-02-30 is rejected).
 */
const char *ehr_fhir_primitive_check(ehr_fhir_prim prim, const char *text, size_t len);

/*
 * Check the XHTML of a narrative (Narrative.div, FHIR R4 2.15.0.1): well-
 * formed XML, root <div> in the XHTML namespace, only basic formatting
 * elements (txt-1: no script, form, iframe, style, event handlers or
 * javascript: links), some content (txt-2). Returns 0 when fine, 1 for a
 * warning (the div declares no namespace), -1 when it is not well-formed
 * XHTML, -2 when it breaks txt-1 or txt-2; why gets a sentence in all but
 * the first case. Thread-safe.
 */
int ehr_fhir_narrative_check(const char *div, size_t len, char *why, size_t why_size);

#endif
