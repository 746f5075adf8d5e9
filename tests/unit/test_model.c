/* Unit tests for src/fhir/model: the generated R4 tables and their lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "fhir/model.h"
#include "model_expect.h"

static const ehr_fhir_type *type(const char *name)
{
    const ehr_fhir_type *t = ehr_fhir_type_find(name, strlen(name));
    assert_non_null(t);
    return t;
}

static const ehr_fhir_element *elem(const char *tname, const char *json_name,
                                    const ehr_fhir_type **ct)
{
    const ehr_fhir_element *e =
        ehr_fhir_element_find(type(tname), json_name, strlen(json_name), ct);
    assert_non_null(e);
    return e;
}

static void test_types_sorted_and_counted(void **state)
{
    size_t n[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < ehr_fhir_n_types; i++) {
        const ehr_fhir_type *t = &ehr_fhir_types[i];
        if (i)
            assert_true(strcmp(ehr_fhir_types[i - 1].name, t->name) < 0);
        n[t->kind]++;
        /* elements sorted by name, every one with a type */
        for (uint32_t k = 0; k < t->n_elements; k++) {
            if (k)
                assert_true(strcmp(t->elements[k - 1].name, t->elements[k].name) < 0);
            assert_true(t->elements[k].n_types >= 1);
            assert_true(t->elements[k].max >= t->elements[k].min);
        }
        assert_true(t->n_elements <= ehr_fhir_max_elements);
        assert_int_equal(ehr_fhir_type_find(t->name, strlen(t->name)), t);
    }
    assert_int_equal(n[EHR_FHIR_KIND_PRIMITIVE], EXPECT_N_PRIMITIVES);
    assert_int_equal(n[EHR_FHIR_KIND_COMPLEX], EXPECT_N_COMPLEX);
    assert_int_equal(n[EHR_FHIR_KIND_BACKBONE], EXPECT_N_BACKBONE);
    /* concrete resources, plus Resource and DomainResource */
    assert_int_equal(n[EHR_FHIR_KIND_RESOURCE], EXPECT_N_RESOURCES + 2);
}

/* Every resource has as many elements (and required ones) as its snapshot
   has direct children, counted by model_expect.js. */
static void test_resource_element_counts(void **state)
{
    size_t concrete = 0;
    for (size_t i = 0; i < ehr_fhir_n_types; i++)
        if (ehr_fhir_types[i].kind == EHR_FHIR_KIND_RESOURCE && !ehr_fhir_types[i].is_abstract)
            concrete++;
    assert_int_equal(concrete, EXPECT_N_RESOURCES);
    for (size_t i = 0; i < sizeof expect_resources / sizeof expect_resources[0]; i++) {
        const ehr_fhir_type *t = ehr_fhir_resource_type(expect_resources[i].name);
        assert_non_null(t);
        assert_int_equal(t->n_elements, expect_resources[i].n);
        unsigned req = 0;
        for (uint32_t k = 0; k < t->n_elements; k++)
            req += t->elements[k].min > 0;
        assert_int_equal(req, expect_resources[i].n_required);
    }
}

static void test_lookup(void **state)
{
    assert_null(ehr_fhir_type_find("patient", 7));
    assert_null(ehr_fhir_type_find("Patientx", 8));
    assert_non_null(ehr_fhir_type_find("Patientx", 7)); /* length counts, not NUL */
    assert_non_null(ehr_fhir_resource_type("Patient"));
    assert_null(ehr_fhir_resource_type("HumanName"));
    assert_null(ehr_fhir_resource_type("Patient.contact"));
    assert_null(ehr_fhir_resource_type(NULL));
    /* R4 only: the R4B SubscriptionStatus shipped in the package is left out */
    assert_null(ehr_fhir_resource_type("SubscriptionStatus"));

    const ehr_fhir_type *ct = NULL;
    const ehr_fhir_element *e = elem("Patient", "birthDate", &ct);
    assert_string_equal(e->path, "Patient.birthDate");
    assert_int_equal(ct, type("date"));
    assert_int_equal(ct->prim, EHR_PRIM_DATE);
    assert_false(e->is_array);
    assert_true(e->is_summary);
    assert_int_equal(e->min, 0);
    assert_int_equal(e->max, 1);

    e = elem("Patient", "name", &ct);
    assert_true(e->is_array);
    assert_int_equal(e->max, UINT32_MAX);
    assert_int_equal(ct, type("HumanName"));

    e = elem("Observation", "status", &ct);
    assert_int_equal(e->min, 1);
    assert_true(e->is_modifier);
    assert_int_equal(ct->prim, EHR_PRIM_CODE);

    assert_null(ehr_fhir_element_find(type("Patient"), "birthdate", 9, &ct));
    assert_null(ehr_fhir_element_find(type("Patient"), "_birthDate", 10, &ct));
    assert_null(ehr_fhir_element_find(type("Patient"), "", 0, &ct));
}

static void test_inherited(void **state)
{
    const char *names[] = {"id",   "meta",      "implicitRules", "language",
                           "text", "contained", "extension",     "modifierExtension"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        elem("Patient", names[i], NULL);
    /* Resource.id has type id (the R4 snapshots say System.String) */
    const ehr_fhir_type *ct;
    elem("Patient", "id", &ct);
    assert_int_equal(ct, type("id"));
    elem("HumanName", "id", &ct);
    assert_int_equal(ct, type("string"));
    elem("HumanName", "extension", &ct);
    assert_int_equal(ct, type("Extension"));
    assert_null(ehr_fhir_element_find(type("HumanName"), "modifierExtension", 17, NULL));
    elem("Patient.contact", "modifierExtension", NULL);
    /* primitives: id and extension, for "_birthDate" */
    assert_int_equal(type("date")->n_elements, 2);
    elem("date", "extension", NULL);
    assert_null(ehr_fhir_element_find(type("date"), "value", 5, NULL));
    /* Extension.url is a uri */
    elem("Extension", "url", &ct);
    assert_int_equal(ct, type("uri"));

    assert_true(ehr_fhir_type_is_a(type("Patient"), type("DomainResource")));
    assert_true(ehr_fhir_type_is_a(type("Patient"), type("Resource")));
    assert_true(ehr_fhir_type_is_a(type("Patient"), type("Patient")));
    assert_false(ehr_fhir_type_is_a(type("Bundle"), type("DomainResource")));
    assert_true(ehr_fhir_type_is_a(type("Bundle"), type("Resource")));
    assert_true(ehr_fhir_type_is_a(type("Age"), type("Quantity")));
    assert_true(ehr_fhir_type_is_a(type("SimpleQuantity"), type("Quantity")));
    assert_true(ehr_fhir_type_is_a(type("code"), type("string")));
    assert_true(ehr_fhir_type_is_a(type("positiveInt"), type("integer")));
    assert_true(ehr_fhir_type_is_a(type("Patient.contact"), type("BackboneElement")));
    assert_true(ehr_fhir_type_is_a(type("Timing.repeat"), type("Element")));
    assert_false(ehr_fhir_type_is_a(type("Timing.repeat"), type("BackboneElement")));
    assert_false(ehr_fhir_type_is_a(type("Quantity"), type("Age")));
    assert_null(type("Resource")->base);
    assert_null(type("Element")->base);
    assert_true(type("Resource")->is_abstract);
    assert_true(type("DomainResource")->is_abstract);
    assert_true(type("Element")->is_abstract);
    assert_true(type("BackboneElement")->is_abstract);
    assert_false(type("Patient")->is_abstract);
    assert_int_equal(type("Patient")->kind, EHR_FHIR_KIND_RESOURCE);
    assert_int_equal(type("HumanName")->kind, EHR_FHIR_KIND_COMPLEX);
    assert_int_equal(type("Patient.contact")->kind, EHR_FHIR_KIND_BACKBONE);
    assert_int_equal(type("xhtml")->prim, EHR_PRIM_XHTML);
    assert_int_equal(type("HumanName")->prim, EHR_PRIM_NONE);
}

static void test_choice(void **state)
{
    const ehr_fhir_type *ct = NULL;
    const ehr_fhir_element *e = elem("Observation", "valueQuantity", &ct);
    assert_string_equal(e->name, "value");
    assert_string_equal(e->path, "Observation.value[x]");
    assert_true(e->is_choice);
    /* R4: Quantity, CodeableConcept, string, boolean, integer, Range, Ratio,
       SampledData, time, dateTime, Period */
    assert_int_equal(e->n_types, 11);
    assert_int_equal(ct, type("Quantity"));
    assert_int_equal(elem("Observation", "valueString", &ct), e);
    assert_int_equal(ct, type("string"));
    elem("Observation", "valueDateTime", &ct);
    assert_int_equal(ct, type("dateTime"));
    elem("Observation", "valueSampledData", &ct);
    assert_int_equal(ct, type("SampledData"));
    /* lowercase suffix, unknown type, bare name: not JSON names */
    assert_null(ehr_fhir_element_find(type("Observation"), "valuestring", 11, &ct));
    assert_null(ehr_fhir_element_find(type("Observation"), "valueDate", 9, &ct));
    assert_null(ehr_fhir_element_find(type("Observation"), "value", 5, &ct));
    assert_null(ehr_fhir_element_find(type("Observation"), "valueHumanName", 14, &ct));
    /* effective[x]; Patient.deceased[x]; Extension.value[x] takes every type */
    elem("Observation", "effectivePeriod", &ct);
    assert_int_equal(ct, type("Period"));
    elem("Patient", "deceasedBoolean", &ct);
    assert_int_equal(ct, type("boolean"));
    e = elem("Extension", "valueBase64Binary", &ct);
    assert_int_equal(ct, type("base64Binary"));
    assert_true(e->n_types >= 49);
    elem("Extension", "valueCodeableConcept", &ct);
    assert_int_equal(ct, type("CodeableConcept"));
    /* a constrained type in a choice keeps the JSON name of its base type */
    elem("Dosage.doseAndRate", "doseQuantity", &ct);
    assert_int_equal(ct, type("SimpleQuantity"));
    assert_string_equal(ct->code, "Quantity");
    /* by FHIR name, and back to JSON names */
    e = ehr_fhir_element_get(type("Observation"), "value", 5);
    assert_non_null(e);
    assert_true(e->is_choice);
    assert_null(ehr_fhir_element_get(type("Observation"), "valueQuantity", 13));
    assert_int_equal(ehr_fhir_element_get(type("Patient"), "birthDate", 9),
                     elem("Patient", "birthDate", NULL));
    char buf[32];
    assert_int_equal(ehr_fhir_json_name(e, type("dateTime"), buf, sizeof buf), 13);
    assert_string_equal(buf, "valueDateTime");
    ehr_fhir_json_name(e, type("SimpleQuantity"), buf, sizeof buf);
    assert_string_equal(buf, "valueQuantity");
    assert_int_equal(ehr_fhir_json_name(e, type("CodeableConcept"), buf, 6), 20);
    assert_string_equal(buf, "value");
    ehr_fhir_json_name(elem("Patient", "birthDate", NULL), type("date"), buf, sizeof buf);
    assert_string_equal(buf, "birthDate");
    /* every choice type's JSON name finds the element and the type again */
    for (size_t i = 0; i < ehr_fhir_n_types; i++) {
        const ehr_fhir_type *t = &ehr_fhir_types[i];
        for (uint32_t k = 0; k < t->n_elements; k++) {
            const ehr_fhir_element *ce = &t->elements[k];
            for (uint16_t x = 0; ce->is_choice && x < ce->n_types; x++) {
                char jn[80];
                size_t len = ehr_fhir_json_name(ce, ce->types[x], jn, sizeof jn);
                assert_true(len < sizeof jn);
                assert_int_equal(ehr_fhir_element_find(t, jn, len, &ct), ce);
                assert_int_equal(ct, ce->types[x]);
            }
        }
    }
    /* choice_type may be NULL */
    assert_non_null(ehr_fhir_element_find(type("Observation"), "valueBoolean", 12, NULL));
}

static void test_backbone_and_references(void **state)
{
    const ehr_fhir_type *ct;
    const ehr_fhir_element *e = elem("Patient", "contact", &ct);
    assert_int_equal(ct, type("Patient.contact"));
    assert_true(e->is_array);
    elem("Patient.contact", "relationship", NULL);
    /* contentReference: Questionnaire.item.item reuses Questionnaire.item */
    e = elem("Questionnaire.item", "item", &ct);
    assert_int_equal(ct, type("Questionnaire.item"));
    assert_string_equal(e->path, "Questionnaire.item.item");
    elem("Bundle.entry", "link", &ct);
    assert_int_equal(ct, type("Bundle.link"));
    /* Resource-typed elements */
    elem("Bundle.entry", "resource", &ct);
    assert_int_equal(ct, type("Resource"));
    elem("Patient", "contained", &ct);
    assert_int_equal(ct, type("Resource"));
    /* Reference targets */
    e = elem("Observation", "subject", &ct);
    assert_int_equal(ct, type("Reference"));
    assert_non_null(e->target_profiles);
    bool has_patient = false, has_group = false;
    for (const char *const *p = e->target_profiles; *p; p++) {
        has_patient |= strcmp(*p, "Patient") == 0;
        has_group |= strcmp(*p, "Group") == 0;
    }
    assert_true(has_patient && has_group);
    assert_null(elem("Patient", "birthDate", NULL)->target_profiles);
    /* SimpleQuantity: comparator is not allowed */
    e = elem("SimpleQuantity", "comparator", NULL);
    assert_int_equal(e->max, 0);
    elem("MedicationRequest.dispenseRequest", "quantity", &ct);
    assert_int_equal(ct, type("SimpleQuantity"));
    /* Timing.repeat derives from Element */
    elem("Timing", "repeat", &ct);
    assert_int_equal(ct->base, type("Element"));
}

static void test_bindings(void **state)
{
    const ehr_fhir_element *e = elem("Patient", "gender", NULL);
    const ehr_fhir_valueset *vs = e->binding;
    assert_non_null(vs);
    assert_string_equal(vs->url, "http://hl7.org/fhir/ValueSet/administrative-gender");
    assert_true(vs->complete);
    assert_int_equal(vs->n_codes, 4);
    assert_true(ehr_fhir_valueset_has(vs, NULL, "female"));
    assert_true(ehr_fhir_valueset_has(vs, "http://hl7.org/fhir/administrative-gender", "other"));
    assert_false(ehr_fhir_valueset_has(vs, "http://example.org", "other"));
    assert_false(ehr_fhir_valueset_has(vs, NULL, "Female"));
    assert_false(ehr_fhir_valueset_has(vs, NULL, "f"));
    assert_true(ehr_fhir_valueset_has_system(vs, "http://hl7.org/fhir/administrative-gender"));
    assert_int_equal(ehr_fhir_valueset_find("http://hl7.org/fhir/ValueSet/administrative-gender"),
                     vs);
    assert_null(ehr_fhir_valueset_find("http://example.org/none"));
    /* valuesets sorted by url, codes sorted by code */
    for (size_t i = 0; i < ehr_fhir_n_valuesets; i++) {
        const ehr_fhir_valueset *v = &ehr_fhir_valuesets[i];
        if (i)
            assert_true(strcmp(ehr_fhir_valuesets[i - 1].url, v->url) < 0);
        for (uint32_t k = 1; k < v->n_codes; k++)
            assert_true(strcmp(v->codes[k - 1].code, v->codes[k].code) <= 0);
        assert_true(v->complete || v->n_codes == 0);
    }
    /* not enumerable: MIME types (BCP-13), currencies (ISO 4217) */
    vs = elem("Attachment", "contentType", NULL)->binding;
    assert_non_null(vs);
    assert_false(vs->complete);
    /* observation-status: nested concepts are included */
    vs = elem("Observation", "status", NULL)->binding;
    assert_true(ehr_fhir_valueset_has(vs, NULL, "final"));
    assert_true(ehr_fhir_valueset_has(vs, NULL, "entered-in-error"));
    /* a required binding on a CodeableConcept ... */
    vs = elem("Condition", "clinicalStatus", NULL)->binding;
    assert_non_null(vs);
    assert_true(ehr_fhir_valueset_has(
        vs, "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"));
    /* and value sets built from a v3 code system with nested concepts */
    vs = elem("Encounter", "class", NULL)->binding;
    assert_null(vs); /* extensible in R4: not carried */
    /* the resource-types value set covers every resource */
    vs = ehr_fhir_valueset_find("http://hl7.org/fhir/ValueSet/resource-types");
    assert_non_null(vs);
    assert_int_equal(vs->n_codes, EXPECT_N_RESOURCES + 2);
    /* Bundle.type etc. */
    assert_true(ehr_fhir_valueset_has(elem("Bundle", "type", NULL)->binding, NULL, "transaction"));
    assert_true(ehr_fhir_valueset_has(elem("Quantity", "comparator", NULL)->binding, NULL, "<="));
}

/* The package patches some R4 definitions; the model is R4's (see gen_model.js). */
static void test_r4_not_medplum(void **state)
{
    const ehr_fhir_type *ct;
    assert_null(ehr_fhir_element_find(type("Meta"), "project", 7, NULL));
    assert_null(ehr_fhir_element_find(type("Meta"), "compartment", 11, NULL));
    assert_int_equal(type("Meta")->n_elements, 8); /* id extension versionId lastUpdated
                                                      source profile security tag */
    assert_null(ehr_fhir_element_find(type("Binary"), "url", 3, NULL));
    assert_null(ehr_fhir_element_find(type("ResearchStudy"), "name", 4, NULL));
    elem("ResearchStudy", "sponsor", NULL);
    const ehr_fhir_element *e = elem("EvidenceVariable.characteristic", "definitionReference", &ct);
    assert_int_equal(e->min, 1);
    assert_int_equal(ct, type("Reference"));
    elem("EvidenceVariable.characteristic", "groupMeasure", NULL);
    assert_null(ehr_fhir_type_find("EvidenceVariable.characteristic.definitionByCombination", 56));
    elem("Bundle.entry.response", "outcome", &ct);
    assert_int_equal(ct, type("Resource"));
    e = elem("AuditEvent.source", "observer", NULL);
    for (const char *const *p = e->target_profiles; *p; p++)
        assert_non_null(ehr_fhir_resource_type(*p));
    e = elem("DetectedIssue", "status", NULL);
    assert_string_equal(e->binding->url, "http://hl7.org/fhir/ValueSet/observation-status");
    /* long paths that dataelements.json can't tell apart stay */
    elem("MedicinalProductIngredient.specifiedSubstance.strength", "presentation", NULL);
    elem("MedicinalProductIngredient.specifiedSubstance.strength", "presentationLowLimit", NULL);
    /* every Reference target is an R4 resource type (or Resource) */
    for (size_t i = 0; i < ehr_fhir_n_types; i++)
        for (uint32_t k = 0; k < ehr_fhir_types[i].n_elements; k++)
            for (const char *const *p = ehr_fhir_types[i].elements[k].target_profiles; p && *p; p++)
                if (!ehr_fhir_type_find(*p, strlen(*p)))
                    fail_msg("%s: unknown target %s", ehr_fhir_types[i].elements[k].path, *p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_sorted_and_counted),
        cmocka_unit_test(test_resource_element_counts),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_inherited),
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_backbone_and_references),
        cmocka_unit_test(test_bindings),
        cmocka_unit_test(test_r4_not_medplum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
