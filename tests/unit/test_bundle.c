/*
 * Unit tests for src/repo/tx.c and everything.c: transactions and batches
 * at the repository level (what the HL7 v2 and import paths call), over a
 * real SQLite file. Expected values come from FHIR R4 http.html 3.1.0.11.
 */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
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

/* Run a Bundle given as text; returns the status, *resp the response. */
static ehr_status run(struct fixture *f, const char *text, json_t **resp, ehr_fhir_issues *is)
{
    json_t *b = ehr_json_parse(text, strlen(text), NULL);
    assert_non_null(b);
    ehr_err err = {{0}};
    ehr_repo_tx_opts o = {.max_entries = 20};
    ehr_status st = ehr_repo_transaction(f->r, &who, b, &o, resp, is, &err);
    json_decref(b);
    return st;
}

static size_t count(struct fixture *f, const char *type, const char *query)
{
    ehr_arena *a = ehr_arena_new();
    struct ehr_search_param *ps = NULL;
    size_t n = 0, total = 0;
    ehr_search s;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(ehr_search_split_query(query, a, &ps, &n), EHR_OK);
    assert_int_equal(ehr_search_parse(type, ps, n, true, a, &s, &is), EHR_OK);
    s.q.count = 0;
    assert_int_equal(ehr_repo_search(f->r, &who, &s, NULL, NULL, &total, NULL), EHR_OK);
    ehr_search_done(&s);
    ehr_fhir_issues_free(&is);
    ehr_arena_free(&a);
    return total;
}

static const char *status_of(json_t *resp, size_t i)
{
    json_t *e = json_array_get(json_object_get(resp, "entry"), i);
    return ehr_json_get_string(json_object_get(e, "response"), "status");
}

static void test_transaction_rewrites_and_commits(void **state)
{
    struct fixture *f = *state;
    json_t *resp = NULL;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(
        run(f,
            "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
            "{\"fullUrl\":\"urn:uuid:9f0c1f3e-0000-4000-8000-000000000001\","
            "\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:u\","
            "\"value\":\"1\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
            "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{"
            "\"text\":\"x\"},\"subject\":{\"reference\":"
            "\"urn:uuid:9f0c1f3e-0000-4000-8000-000000000001\"}},"
            "\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}",
            &resp, &is),
        EHR_OK);
    assert_string_equal(ehr_json_get_string(resp, "type"), "transaction-response");
    assert_string_equal(status_of(resp, 0), "201 Created");
    assert_string_equal(status_of(resp, 1), "201 Created");
    /* the Observation is in the new patient's compartment: its reference was rewritten */
    json_t *e0 = json_array_get(json_object_get(resp, "entry"), 0);
    const char *loc = ehr_json_get_string(json_object_get(e0, "response"), "location");
    char pid[72];
    assert_int_equal(sscanf(loc, "Patient/%71[^/]", pid), 1);
    ehr_repo_everything_q q = {.patient = pid, .count = 10};
    size_t total = 0;
    assert_int_equal(ehr_repo_everything(f->r, &who, &q, NULL, NULL, &total, NULL), EHR_OK);
    assert_int_equal(total, 2);
    json_decref(resp);
    ehr_fhir_issues_free(&is);
}

static void test_transaction_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    json_t *resp = NULL;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    /* the third entry's conditional reference matches nothing */
    assert_int_equal(
        run(f,
            "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
            "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\","
            "\"value\":\"1\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
            "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\","
            "\"value\":\"2\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
            "{\"resource\":{\"resourceType\":\"Patient\",\"managingOrganization\":{\"reference\":"
            "\"Organization?identifier=urn:none|x\"}},\"request\":{\"method\":\"POST\","
            "\"url\":\"Patient\"}}]}",
            &resp, &is),
        EHR_EUNPROCESSABLE);
    assert_null(resp);
    assert_int_equal(is.n, 1);
    assert_string_equal(is.items[0].expression,
                        "Bundle.entry[2].resource.managingOrganization.reference");
    assert_int_equal(count(f, "Patient", "identifier=urn:a|"), 0);
    ehr_fhir_issues_free(&is);
}

static void test_batch_independent(void **state)
{
    struct fixture *f = *state;
    json_t *resp = NULL;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(
        run(f,
            "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
            "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\","
            "\"value\":\"1\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Patient\","
            "\"ifNoneExist\":\"identifier=urn:b|1\"}},"
            "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\","
            "\"value\":\"1\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Patient\","
            "\"ifNoneExist\":\"identifier=urn:b|1\"}},"
            "{\"resource\":{\"resourceType\":\"Patient\",\"gender\":\"nope\"},"
            "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}",
            &resp, &is),
        EHR_OK);
    assert_string_equal(status_of(resp, 0), "201 Created");
    assert_string_equal(status_of(resp, 1), "200 OK"); /* the same criteria: one resource */
    assert_string_equal(status_of(resp, 2), "400 Bad Request");
    assert_int_equal(count(f, "Patient", "identifier=urn:b|1"), 1);
    json_decref(resp);
    ehr_fhir_issues_free(&is);
}

static void test_limits(void **state)
{
    struct fixture *f = *state;
    json_t *resp = NULL;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[");
    for (int i = 0; i < 21; i++)
        ehr_buf_printf(&b, "%s{\"request\":{\"method\":\"GET\",\"url\":\"Patient/x\"}}",
                       i ? "," : "");
    ehr_buf_puts(&b, "]}");
    assert_int_equal(run(f, b.data, &resp, &is), EHR_ELIMIT);
    assert_string_equal(is.items[0].expression, "Bundle.entry");
    ehr_buf_free(&b);
    ehr_fhir_issues_free(&is);
    assert_int_equal(run(f, "{\"resourceType\":\"Bundle\",\"type\":\"document\"}", &resp, &is),
                     EHR_EINVAL);
    assert_string_equal(is.items[0].expression, "Bundle.type");
    ehr_fhir_issues_free(&is);
}

/* Concurrent identical conditional creates: one resource. */
struct racer {
    struct fixture *f;
    ehr_status st;
};

static void *race(void *p)
{
    struct racer *r = p;
    json_t *resp = NULL;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    r->st = run(r->f,
                "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
                "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
                "\"urn:race\",\"value\":\"1\"}]},\"request\":{\"method\":\"POST\",\"url\":"
                "\"Patient\",\"ifNoneExist\":\"identifier=urn:race|1\"}}]}",
                &resp, &is);
    json_decref(resp);
    ehr_fhir_issues_free(&is);
    return NULL;
}

static void test_concurrent_conditional_create(void **state)
{
    struct fixture *f = *state;
    pthread_t th[8];
    struct racer rs[8];
    for (int i = 0; i < 8; i++) {
        rs[i] = (struct racer){.f = f};
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].st, EHR_OK);
    }
    assert_int_equal(count(f, "Patient", "identifier=urn:race|1"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transaction_rewrites_and_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_conditional_create, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
