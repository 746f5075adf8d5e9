/*
 * Unit tests for src/search: date ranges by precision, text normalisation,
 * the parameter table, extraction of index rows from a resource and the
 * parse of query strings into plans. Expected values come from the FHIR R4
 * search page and from the resources written here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "core/json.h"
#include "core/util.h"
#include "search/params.h"
#include "search/search.h"
#include "search/search_int.h"

static int64_t t(const char *s)
{
    int64_t v = 0;
    assert_true(ehr_time_parse(s, &v));
    return v;
}

static void test_date_range(void **state)
{
    int64_t lo, hi;
    assert_true(ehr_search_date_range("2024", &lo, &hi));
    assert_int_equal(lo, t("2024-01-01T00:00:00Z"));
    assert_int_equal(hi, t("2025-01-01T00:00:00Z") - 1);
    assert_true(ehr_search_date_range("2024-02", &lo, &hi)); /* a leap February */
    assert_int_equal(hi, t("2024-03-01T00:00:00Z") - 1);
    assert_true(ehr_search_date_range("2023-12", &lo, &hi));
    assert_int_equal(hi, t("2024-01-01T00:00:00Z") - 1);
    assert_true(ehr_search_date_range("2024-05-06", &lo, &hi));
    assert_int_equal(hi - lo, 86400LL * 1000000 - 1);
    assert_true(ehr_search_date_range("2024-05-06T10:30Z", &lo, &hi)); /* a minute */
    assert_int_equal(hi - lo, 60LL * 1000000 - 1);
    assert_true(ehr_search_date_range("2024-05-06T10:30:15+02:00", &lo, &hi));
    assert_int_equal(lo, t("2024-05-06T08:30:15Z"));
    assert_int_equal(hi - lo, 999999);
    assert_false(ehr_search_date_range("2024-13", &lo, &hi));
    assert_false(ehr_search_date_range("2024-02-30", &lo, &hi));
    assert_false(ehr_search_date_range("24", &lo, &hi));
}

static void test_normalize(void **state)
{
    ehr_arena *a = ehr_arena_new();
    assert_string_equal(ehr_search_normalize(a, "Zoë-Ñúñez", strlen("Zoë-Ñúñez")), "zoe-nunez");
    assert_string_equal(ehr_search_normalize(a, "ÅNGSTRÖM", strlen("ÅNGSTRÖM")), "angstrom");
    assert_string_equal(ehr_search_normalize(a, "Łódź", strlen("Łódź")), "lodz");
    ehr_arena_free(&a);
}

static void test_table(void **state)
{
    /* the R4 set: 1,378 definitions, some with several base types */
    assert_true(ehr_sp_table_n >= 1700); /* distinct (base, code) pairs */
    const struct ehr_sp *sp = ehr_sp_find("Observation", "patient");
    assert_non_null(sp);
    assert_int_equal(sp->kind, EHR_SP_REFERENCE);
    assert_true(ehr_sp_targets(sp, "Patient"));
    assert_false(ehr_sp_targets(sp, "Device"));
    assert_non_null(ehr_sp_find("Patient", "_id"));   /* from Resource */
    assert_non_null(ehr_sp_find("Patient", "_text")); /* from DomainResource */
    assert_null(ehr_sp_find("Bundle", "_text"));      /* not a DomainResource */
    sp = ehr_sp_find("Observation", "code-value-quantity");
    assert_int_equal(sp->kind, EHR_SP_COMPOSITE);
    assert_string_equal(sp->components[0].code, "code");
    /* the clinical-code expression keeps only its Condition branch */
    sp = ehr_sp_find("Condition", "code");
    assert_string_equal(sp->expr, "Condition.code");
    for (size_t i = 0; i < ehr_sp_table_n; i++) /* every expression compiles */
        if (ehr_sp_table[i].expr)
            assert_non_null(ehr_sp_expr(&ehr_sp_table[i]));
}

static const struct ehr_store_value *find(const ehr_store_index *idx, const char *param,
                                          const char *s2)
{
    for (size_t i = 0; i < idx->n_values; i++)
        if (!strcmp(idx->values[i].param, param) &&
            (!s2 || (idx->values[i].s2 && !strcmp(idx->values[i].s2, s2))))
            return &idx->values[i];
    return NULL;
}

static void test_extract(void **state)
{
    const char *text =
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
        "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2093-3\","
        "\"display\":\"Cholesterol\"}],\"text\":\"Chol\"},"
        "\"subject\":{\"reference\":\"Patient/p1\"},"
        "\"effectivePeriod\":{\"start\":\"2024-01-02\",\"end\":\"2024-01-03T10:00:00Z\"},"
        "\"valueQuantity\":{\"value\":180,\"unit\":\"mg/dL\",\"system\":"
        "\"http://unitsofmeasure.org\",\"code\":\"mg/dL\"}}";
    ehr_err err;
    json_t *res = ehr_json_parse(text, strlen(text), &err);
    assert_non_null(res);
    ehr_arena *a = ehr_arena_new();
    ehr_store_index idx;
    assert_int_equal(ehr_search_extract("Observation", "o1", res, a, &idx), EHR_OK);
    const struct ehr_store_value *v = find(&idx, "code", "2093-3");
    assert_non_null(v);
    assert_string_equal(v->s1, "http://loinc.org");
    assert_string_equal(v->s3, "cholesterol");
    v = find(&idx, "patient", "p1"); /* subject.where(resolve() is Patient) */
    assert_non_null(v);
    assert_string_equal(v->s1, "Patient");
    assert_null(find(&idx, "device", NULL));
    v = find(&idx, "date", NULL);
    assert_non_null(v);
    assert_int_equal(v->lo, t("2024-01-02T00:00:00Z"));
    assert_int_equal(v->hi, t("2024-01-03T10:00:01Z") - 1);
    v = find(&idx, "status", "final");
    assert_non_null(v);
    /* 180 mg/dL as canonical: 1800 g/m3 */
    bool canon = false;
    for (size_t i = 0; i < idx.n_values; i++)
        if (!strcmp(idx.values[i].param, "value-quantity") && idx.values[i].s1 &&
            !strcmp(idx.values[i].s1, EHR_SEARCH_CANON_SYSTEM)) {
            canon = true;
            assert_true(idx.values[i].num > 1799.99 && idx.values[i].num < 1800.01);
        }
    assert_true(canon);
    /* composite: the code and the value of one item share grp */
    const struct ehr_store_value *c0 = find(&idx, "code-value-quantity$0", "2093-3");
    assert_non_null(c0);
    bool same = false;
    for (size_t i = 0; i < idx.n_values; i++)
        if (!strcmp(idx.values[i].param, "code-value-quantity$1") && idx.values[i].grp == c0->grp)
            same = true;
    assert_true(same);
    assert_int_equal(idx.n_patients, 1);
    assert_string_equal(idx.patients[0], "p1");
    json_decref(res);
    ehr_arena_free(&a);
}

static ehr_status parse(const char *type, const char *qs, ehr_arena *a, ehr_search *s,
                        ehr_fhir_issues *iss, bool strict)
{
    struct ehr_search_param *ps;
    size_t n;
    assert_int_equal(ehr_search_split_query(qs, a, &ps, &n), EHR_OK);
    return ehr_search_parse(type, ps, n, strict, a, s, iss);
}

static void test_parse(void **state)
{
    ehr_arena *a = ehr_arena_new();
    ehr_search s;
    ehr_fhir_issues iss = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(parse("Patient", "name:exact=Ann&gender:not=male,other", a, &s, &iss, true),
                     EHR_OK);
    assert_int_equal(s.q.n_clauses, 2);
    assert_int_equal(s.q.clauses[0].conds[0].match, EHR_MATCH_EQ);
    assert_true(s.q.clauses[1].negate);
    assert_int_equal(s.q.clauses[1].n_conds, 2);
    ehr_search_done(&s);

    assert_int_equal(parse("Observation", "subject:Patient.name=x&_has:Provenance:target:agent=a",
                           a, &s, &iss, true),
                     EHR_OK);
    assert_int_equal(s.q.clauses[0].conds[0].match, EHR_MATCH_CHAIN);
    assert_string_equal(s.q.clauses[0].conds[0].sub->type, "Patient");
    assert_int_equal(s.q.clauses[1].conds[0].match, EHR_MATCH_HAS);
    ehr_search_done(&s);

    assert_int_equal(parse("Observation", "value-quantity=5.4", a, &s, &iss, true), EHR_OK);
    const struct ehr_store_cond *c = &s.q.clauses[0].conds[0];
    assert_true(c->num_lo < 5.35 + 1e-9 && c->num_lo > 5.35 - 1e-6);
    assert_true(c->num_hi < 5.45 && c->num_hi > 5.45 - 1e-6);
    ehr_search_done(&s);

    /* errors whatever the handling */
    static const char *const bad[] = {"_count=-1",     "birthdate=2024-13", "name:bogus=x",
                                      "gender.name=x", "_sort=nosuch",      "birthdate:missing=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ehr_fhir_issues e = EHR_FHIR_ISSUES_INIT;
        assert_int_equal(parse("Patient", bad[i], a, &s, &e, false), EHR_EINVAL);
        assert_true(e.n > 0);
        ehr_fhir_issues_free(&e);
        ehr_search_done(&s);
    }
    /* unknown names: lenient skips them, strict refuses */
    ehr_fhir_issues e = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(parse("Patient", "nosuch=1", a, &s, &e, false), EHR_OK);
    assert_int_equal(s.n_ignored, 1);
    ehr_search_done(&s);
    assert_int_equal(parse("Patient", "nosuch=1", a, &s, &e, true), EHR_EINVAL);
    ehr_search_done(&s);
    ehr_fhir_issues_free(&e);
    ehr_fhir_issues_free(&iss);
    ehr_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_range), cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_table),      cmocka_unit_test(test_extract),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
