/* Unit tests for src/repo: the FHIR interactions over a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "core/json.h"
#include "repo/repo.h"
#include "testutil.h"

struct fixture {
    char dir[64];
    ehr_repo *r;
};

static const ehr_repo_ctx who = {.user = "test", .client = "unit"};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_tmpdir(f->dir, sizeof f->dir);
    char path[128];
    snprintf(path, sizeof path, "sqlite:%s/t.db", f->dir);
    ehr_err err;
    if (ehr_repo_open(path, &f->r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ehr_repo_free(&f->r);
    test_rmdir(f->dir);
    free(f);
    return 0;
}

static json_t *parse(const char *s)
{
    json_t *j = ehr_json_parse(s, strlen(s), NULL);
    assert_non_null(j);
    return j;
}

/* create from text; returns the new id in id (cap 72) */
static ehr_status create(struct fixture *f, const char *type, const char *text,
                         const char *if_none_exist, ehr_repo_out *out, ehr_fhir_issues *issues)
{
    json_t *j = parse(text);
    ehr_err err;
    ehr_status st = ehr_repo_create(f->r, &who, type, j, if_none_exist, out, issues, &err);
    json_decref(j);
    return st;
}

static size_t history_total(struct fixture *f)
{
    ehr_store_history_q q = {0};
    size_t total = 0;
    assert_int_equal(ehr_repo_history(f->r, &who, &q, NULL, NULL, &total, NULL), EHR_OK);
    return total;
}

static void test_create_read(void **state)
{
    struct fixture *f = *state;
    ehr_repo_out o = {0}, r = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    const char *in = "{\"resourceType\":\"Observation\",\"id\":\"client-id\",\"status\":\"final\","
                     "\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":1.50}}";
    assert_int_equal(create(f, "Observation", in, NULL, &o, &is), EHR_OK);
    assert_true(o.created);
    assert_int_equal(o.version, 1);
    assert_int_equal(strlen(o.id), 32); /* the server's id, not the client's */
    /* stored form: resourceType, id, meta first; decimals keep their text */
    char prefix[160];
    snprintf(prefix, sizeof prefix,
             "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\","
             "\"lastUpdated\":\"",
             o.id);
    assert_memory_equal(o.body.data, prefix, strlen(prefix));
    assert_non_null(strstr(o.body.data, "\"value\":1.50}"));
    assert_int_equal(ehr_repo_read(f->r, &who, "Observation", o.id, 0, &r, NULL), EHR_OK);
    assert_int_equal(r.body.len, o.body.len);
    assert_memory_equal(r.body.data, o.body.data, o.body.len);
    ehr_repo_out_free(&r);
    assert_int_equal(ehr_repo_read(f->r, &who, "Observation", "nope", 0, &r, NULL), EHR_ENOTFOUND);
    assert_int_equal(ehr_repo_read(f->r, &who, "Observation", o.id, 2, &r, NULL), EHR_ENOTFOUND);
    assert_int_equal(ehr_repo_read(f->r, &who, "NotAType", o.id, 0, &r, NULL), EHR_ENOTFOUND);
    ehr_repo_out_free(&r);
    ehr_repo_out_free(&o);
    ehr_fhir_issues_free(&is);
}

/* Invalid input: the right status, an issue at the right place, nothing stored. */
static void test_invalid_writes(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *type, *body, *where;
    } cases[] = {
        {"Patient", "{\"resourceType\":\"Patient\",\"birthDate\":\"2024-02-30\"}",
         "Patient.birthDate"},
        {"Patient", "{\"resourceType\":\"Patient\",\"gender\":\"robot\"}", "Patient.gender"},
        {"Patient", "{\"resourceType\":\"Patient\",\"colour\":\"blue\"}", "Patient.colour"},
        {"Patient", "{\"resourceType\":\"Observation\",\"status\":\"final\"}", "resourceType"},
        {"Patient", "[1,2]", NULL},
    };
    size_t before = history_total(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ehr_repo_out o = {0};
        ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
        assert_int_equal(create(f, cases[i].type, cases[i].body, NULL, &o, &is), EHR_EINVAL);
        assert_true(is.n >= 1);
        if (cases[i].where) {
            bool found = false;
            for (size_t k = 0; k < is.n; k++)
                found |= is.items[k].expression && !strcmp(is.items[k].expression, cases[i].where);
            assert_true(found);
        }
        ehr_repo_out_free(&o);
        ehr_fhir_issues_free(&is);
    }
    assert_int_equal(history_total(f), before);
}

static void test_update_versions(void **state)
{
    struct fixture *f = *state;
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_err err;
    json_t *p = parse("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true}");
    /* update-as-create with the client's id */
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "p1", p, 0, &o, &is, &err), EHR_OK);
    assert_true(o.created);
    assert_int_equal(o.version, 1);
    ehr_repo_out_free(&o);
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "p1", p, 1, &o, &is, &err), EHR_OK);
    assert_false(o.created);
    assert_int_equal(o.version, 2);
    ehr_repo_out_free(&o);
    /* stale If-Match */
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "p1", p, 1, &o, &is, &err),
                     EHR_ECONFLICT);
    ehr_repo_out_free(&o);
    /* body id must match the URL's */
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "p2", p, 0, &o, &is, &err),
                     EHR_EINVAL);
    ehr_repo_out_free(&o);
    ehr_fhir_issues_free(&is);
    /* the old version is still there */
    assert_int_equal(ehr_repo_read(f->r, &who, "Patient", "p1", 1, &o, NULL), EHR_OK);
    assert_non_null(strstr(o.body.data, "\"versionId\":\"1\""));
    ehr_repo_out_free(&o);
    /* delete, then read is gone, then delete again is a no-op */
    assert_int_equal(ehr_repo_delete(f->r, &who, "Patient", "p1", 0, &o, &err), EHR_OK);
    assert_int_equal(o.version, 3);
    assert_int_equal(ehr_repo_read(f->r, &who, "Patient", "p1", 0, &o, NULL), EHR_EGONE);
    assert_int_equal(ehr_repo_delete(f->r, &who, "Patient", "p1", 0, &o, &err), EHR_OK);
    assert_int_equal(o.version, 0);
    /* updating a deleted resource brings it back as a new version */
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "p1", p, 0, &o, &is, &err), EHR_OK);
    assert_int_equal(o.version, 4);
    assert_true(o.created);
    ehr_repo_out_free(&o);
    json_decref(p);
}

static void test_conditional(void **state)
{
    struct fixture *f = *state;
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_err err;
    const char *pat = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn\","
                      "\"value\":\"7\"}]}";
    assert_int_equal(create(f, "Patient", pat, "identifier=urn:mrn|7", &o, &is), EHR_OK);
    assert_false(o.unchanged);
    char first[72];
    snprintf(first, sizeof first, "%s", o.id);
    ehr_repo_out_free(&o);
    assert_int_equal(create(f, "Patient", pat, "identifier=urn:mrn|7", &o, &is), EHR_OK);
    assert_true(o.unchanged);
    assert_string_equal(o.id, first);
    ehr_repo_out_free(&o);
    /* two with the same identifier: a conditional create is ambiguous */
    assert_int_equal(create(f, "Patient", pat, NULL, &o, &is), EHR_OK);
    ehr_repo_out_free(&o);
    assert_int_equal(create(f, "Patient", pat, "identifier=urn:mrn|7", &o, &is), EHR_EMULTIPLE);
    ehr_repo_out_free(&o);
    /* criteria the server doesn't know are refused, never ignored */
    assert_int_equal(create(f, "Patient", pat, "colour=blue", &o, &is), EHR_EINVAL);
    ehr_repo_out_free(&o);
    ehr_fhir_issues_free(&is);
    /* conditional update: no match creates, one match updates */
    json_t *p = parse("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn\","
                      "\"value\":\"8\"}]}");
    assert_int_equal(ehr_repo_update_where(f->r, &who, "Patient", "identifier=urn:mrn|8", p, 0, &o,
                                           &is, &err),
                     EHR_OK);
    assert_true(o.created);
    snprintf(first, sizeof first, "%s", o.id);
    ehr_repo_out_free(&o);
    assert_int_equal(ehr_repo_update_where(f->r, &who, "Patient", "identifier=urn:mrn|8", p, 0, &o,
                                           &is, &err),
                     EHR_OK);
    assert_false(o.created);
    assert_string_equal(o.id, first);
    assert_int_equal(o.version, 2);
    ehr_repo_out_free(&o);
    assert_int_equal(ehr_repo_update_where(f->r, &who, "Patient", "identifier=urn:mrn|7", p, 0, &o,
                                           &is, &err),
                     EHR_EMULTIPLE);
    ehr_repo_out_free(&o);
    /* conditional delete */
    assert_int_equal(
        ehr_repo_delete_where(f->r, &who, "Patient", "identifier=urn:mrn|8", &o, &is, &err),
        EHR_OK);
    assert_int_equal(o.version, 3);
    assert_int_equal(ehr_repo_read(f->r, &who, "Patient", first, 0, &o, NULL), EHR_EGONE);
    ehr_repo_out_free(&o);
    ehr_fhir_issues_free(&is);
    json_decref(p);
}

static void test_patch(void **state)
{
    struct fixture *f = *state;
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_err err;
    assert_int_equal(create(f, "Patient", "{\"resourceType\":\"Patient\",\"gender\":\"female\"}",
                            NULL, &o, &is),
                     EHR_OK);
    char id[72];
    snprintf(id, sizeof id, "%s", o.id);
    ehr_repo_out_free(&o);
    static const struct {
        const char *patch;
        ehr_status st;
        int64_t version; /* current version afterwards */
    } cases[] = {
        {"[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":\"other\"}]", EHR_OK, 2},
        {"[{\"op\":\"test\",\"path\":\"/gender\",\"value\":\"male\"},"
         "{\"op\":\"remove\",\"path\":\"/gender\"}]",
         EHR_EPRECONDITION, 2},
        {"[{\"op\":\"add\",\"path\":\"/birthDate\",\"value\":\"2024-02-30\"}]", EHR_EUNPROCESSABLE,
         2},
        {"[{\"op\":\"replace\",\"path\":\"/id\",\"value\":\"other\"}]", EHR_EUNPROCESSABLE, 2},
        {"[{\"op\":\"remove\",\"path\":\"/nothing\"}]", EHR_EINVAL, 2},
        {"{\"op\":\"remove\"}", EHR_EINVAL, 2},
        {"[{\"op\":\"add\",\"path\":\"/name\",\"value\":[{\"family\":\"A\"}]},"
         "{\"op\":\"add\",\"path\":\"/name/0/given\",\"value\":[\"B\"]}]",
         EHR_OK, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *p = parse(cases[i].patch);
        ehr_status st = ehr_repo_patch(f->r, &who, "Patient", id, p, 0, &o, &is, &err);
        assert_int_equal(st, cases[i].st);
        ehr_repo_out_free(&o);
        assert_int_equal(ehr_repo_read(f->r, &who, "Patient", id, 0, &o, NULL), EHR_OK);
        assert_int_equal(o.version, cases[i].version);
        ehr_repo_out_free(&o);
        json_decref(p);
        ehr_fhir_issues_free(&is);
    }
    assert_int_equal(ehr_repo_read(f->r, &who, "Patient", id, 0, &o, NULL), EHR_OK);
    assert_non_null(strstr(o.body.data, "\"gender\":\"other\""));
    assert_non_null(strstr(o.body.data, "\"name\":[{\"family\":\"A\",\"given\":[\"B\"]}]"));
    ehr_repo_out_free(&o);
}

struct racer {
    ehr_repo *r;
    pthread_barrier_t *go;
    const char *id;
    ehr_status st;
};

static void *race(void *p)
{
    struct racer *rc = p;
    char text[128];
    snprintf(text, sizeof text, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":false}",
             rc->id);
    json_t *j = parse(text);
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    pthread_barrier_wait(rc->go);
    rc->st = ehr_repo_update(rc->r, &who, "Patient", rc->id, j, 1, &o, &is, NULL);
    ehr_repo_out_free(&o);
    ehr_fhir_issues_free(&is);
    json_decref(j);
    return NULL;
}

/* Two updates holding the same version: one wins, one gets a conflict. */
static void test_if_match_race(void **state)
{
    struct fixture *f = *state;
    for (int round = 0; round < 10; round++) {
        char id[16], text[128];
        snprintf(id, sizeof id, "race%d", round);
        snprintf(text, sizeof text, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id);
        json_t *j = parse(text);
        ehr_repo_out o = {0};
        ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
        assert_int_equal(ehr_repo_update(f->r, &who, "Patient", id, j, 0, &o, &is, NULL), EHR_OK);
        assert_int_equal(o.version, 1);
        json_decref(j);
        ehr_repo_out_free(&o);
        ehr_fhir_issues_free(&is);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct racer a = {f->r, &go, id, -1}, b = {f->r, &go, id, -1};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race, &a);
        pthread_create(&tb, NULL, race, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        assert_true((a.st == EHR_OK && b.st == EHR_ECONFLICT) ||
                    (a.st == EHR_ECONFLICT && b.st == EHR_OK));
    }
}

struct writer {
    ehr_repo *r;
    int n_ok, n_conflict;
};

/* Each writer creates 25 patients and, between them, makes an update that
   must fail (stale If-Match): in a shared commit the failure stays its own. */
static void *writer(void *p)
{
    struct writer *w = p;
    for (int i = 0; i < 25; i++) {
        json_t *j = parse("{\"resourceType\":\"Patient\",\"active\":true}");
        ehr_repo_out o = {0};
        ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
        if (ehr_repo_create(w->r, &who, "Patient", j, NULL, &o, &is, NULL) == EHR_OK)
            w->n_ok++;
        ehr_repo_out_free(&o);
        json_t *u = parse("{\"resourceType\":\"Patient\",\"id\":\"fixed\"}");
        if (ehr_repo_update(w->r, &who, "Patient", "fixed", u, 99, &o, &is, NULL) ==
            EHR_ECONFLICT)
            w->n_conflict++;
        ehr_repo_out_free(&o);
        ehr_fhir_issues_free(&is);
        json_decref(u);
        json_decref(j);
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    json_t *u = parse("{\"resourceType\":\"Patient\",\"id\":\"fixed\"}");
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "fixed", u, 0, &o, &is, NULL), EHR_OK);
    json_decref(u);
    ehr_repo_out_free(&o);
    enum { N = 8 };
    struct writer w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct writer){f->r, 0, 0};
        pthread_create(&t[i], NULL, writer, &w[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].n_ok, 25);
        assert_int_equal(w[i].n_conflict, 25);
    }
    /* 200 creates and the first version of "fixed"; no conflict left a trace */
    assert_int_equal(history_total(f), N * 25 + 1);
    assert_int_equal(ehr_repo_read(f->r, &who, "Patient", "fixed", 0, &o, NULL), EHR_OK);
    assert_int_equal(o.version, 1);
    ehr_repo_out_free(&o);
    int64_t n, bad;
    assert_int_equal(ehr_repo_audit_verify(f->r, &n, &bad, NULL), EHR_OK);
    assert_int_equal(n, N * 25 + 1);
}

static void test_parse_etag(void **state)
{
    static const struct {
        const char *in;
        int64_t v;
    } cases[] = {
        {"W/\"3\"", 3}, {"\"12\"", 12}, {"7", 7}, {" W/\"1\" ", 1}, {"W/\"x\"", 0},
        {"\"3", 0},     {"W/\"0\"", 0}, {"", 0},  {"W/\"-2\"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(ehr_repo_parse_etag(cases[i].in), cases[i].v);
}

static void test_compartment_and_audit(void **state)
{
    struct fixture *f = *state;
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_err err;
    json_t *p = parse("{\"resourceType\":\"Patient\",\"id\":\"pc\"}");
    assert_int_equal(ehr_repo_update(f->r, &who, "Patient", "pc", p, 0, &o, &is, &err), EHR_OK);
    ehr_repo_out_free(&o);
    json_decref(p);
    assert_int_equal(create(f, "Observation",
                            "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":"
                            "{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/pc\"}}",
                            NULL, &o, &is),
                     EHR_OK);
    ehr_repo_out_free(&o);
    assert_int_equal(create(f, "Observation",
                            "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":"
                            "{\"text\":\"x\"},\"subject\":{\"reference\":\"Group/g\"}}",
                            NULL, &o, &is),
                     EHR_OK);
    ehr_repo_out_free(&o);
    ehr_search s = {.q = {.type = "Observation", .compartment_patient = "pc", .count = 10}};
    size_t total = 0;
    assert_int_equal(ehr_repo_search(f->r, &who, &s, NULL, NULL, &total, &err), EHR_OK);
    assert_int_equal(total, 1);
    s.q.type = NULL;
    assert_int_equal(ehr_repo_search(f->r, &who, &s, NULL, NULL, &total, &err), EHR_OK);
    assert_int_equal(total, 2); /* the Patient and its Observation */
    int64_t n, bad;
    assert_int_equal(ehr_repo_audit_verify(f->r, &n, &bad, &err), EHR_OK);
    assert_int_equal(n, 3); /* one record per write */
    ehr_fhir_issues_free(&is);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_match_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test(test_parse_etag),
        cmocka_unit_test_setup_teardown(test_compartment_and_audit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
