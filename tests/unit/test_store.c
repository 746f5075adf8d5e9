/* Unit tests for src/store: the SQLite backend behind store.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"
#include "testutil.h"

struct fixture {
    char dir[64];
    char path[128];
    ehr_store *s;
    ehr_store_conn *c;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    ehr_err err;
    if (ehr_store_open(f->path, &f->s, &err) || ehr_store_connect(f->s, &f->c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ehr_store_disconnect(&f->c);
    ehr_store_close(&f->s);
    test_rmdir(f->dir);
    free(f);
    return 0;
}

static void put(struct fixture *f, const char *type, const char *id, int64_t version,
                int64_t when, const char *content, const ehr_store_index *idx)
{
    ehr_store_rec rec = {.type = type,
                         .id = id,
                         .version = version,
                         .last_updated = when,
                         .deleted = content == NULL,
                         .method = content ? "PUT" : "DELETE",
                         .content = content,
                         .content_len = content ? strlen(content) : 0};
    ehr_err err;
    assert_int_equal(EHR_STORE_CALL(f->c, begin, true, &err), EHR_OK);
    assert_int_equal(EHR_STORE_CALL(f->c, put, &rec, idx, &err), EHR_OK);
    assert_int_equal(EHR_STORE_CALL(f->c, commit, &err), EHR_OK);
}

static void test_versions(void **state)
{
    struct fixture *f = *state;
    ehr_buf b = EHR_BUF_INIT;
    ehr_store_rec rec;
    ehr_err err;
    assert_int_equal(EHR_STORE_CALL(f->c, current, "Patient", "a", &rec, &b, &err), EHR_ENOTFOUND);
    put(f, "Patient", "a", 1, 1000, "{\"v\":1}", NULL);
    put(f, "Patient", "a", 2, 2000, "{\"v\":2}", NULL);
    assert_int_equal(EHR_STORE_CALL(f->c, current, "Patient", "a", &rec, &b, &err), EHR_OK);
    assert_int_equal(rec.version, 2);
    assert_int_equal(rec.last_updated, 2000);
    assert_string_equal(b.data, "{\"v\":2}");
    assert_int_equal(EHR_STORE_CALL(f->c, version, "Patient", "a", 1, &rec, &b, &err), EHR_OK);
    assert_string_equal(b.data, "{\"v\":1}");
    assert_int_equal(EHR_STORE_CALL(f->c, version, "Patient", "a", 3, &rec, &b, &err),
                     EHR_ENOTFOUND);
    /* same id, other type: a different resource */
    assert_int_equal(EHR_STORE_CALL(f->c, current, "Observation", "a", &rec, &b, &err),
                     EHR_ENOTFOUND);
    put(f, "Patient", "a", 3, 3000, NULL, NULL);
    assert_int_equal(EHR_STORE_CALL(f->c, current, "Patient", "a", &rec, &b, &err), EHR_OK);
    assert_true(rec.deleted);
    assert_int_equal(rec.version, 3);
    ehr_buf_free(&b);
}

static ehr_status collect(void *ctx, const ehr_store_rec *rec)
{
    ehr_buf *b = ctx;
    ehr_buf_printf(b, "%s/%s/%lld;", rec->type, rec->id, (long long)rec->version);
    return EHR_OK;
}

static void test_history(void **state)
{
    struct fixture *f = *state;
    put(f, "Patient", "a", 1, 1000, "{}", NULL);
    put(f, "Patient", "b", 1, 2000, "{}", NULL);
    put(f, "Patient", "a", 2, 3000, "{}", NULL);
    put(f, "Observation", "o", 1, 4000, "{}", NULL);
    static const struct {
        ehr_store_history_q q;
        size_t total;
        const char *rows; /* newest first */
    } cases[] = {
        {{.count = 10}, 4, "Observation/o/1;Patient/a/2;Patient/b/1;Patient/a/1;"},
        {{.type = "Patient", .count = 10}, 3, "Patient/a/2;Patient/b/1;Patient/a/1;"},
        {{.type = "Patient", .id = "a", .count = 10}, 2, "Patient/a/2;Patient/a/1;"},
        {{.since = 2000, .count = 10}, 3, "Observation/o/1;Patient/a/2;Patient/b/1;"},
        {{.at_or_before = 2000, .count = 10}, 2, "Patient/b/1;Patient/a/1;"},
        {{.count = 2, .offset = 1}, 4, "Patient/a/2;Patient/b/1;"},
        {{.count = 0}, 4, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ehr_buf b = EHR_BUF_INIT;
        ehr_buf_puts(&b, "");
        size_t total = 99;
        ehr_err err;
        assert_int_equal(EHR_STORE_CALL(f->c, history, &cases[i].q, collect, &b, &total, &err),
                         EHR_OK);
        assert_int_equal(total, cases[i].total);
        assert_string_equal(b.data, cases[i].rows);
        ehr_buf_free(&b);
    }
}

static void test_search_index(void **state)
{
    struct fixture *f = *state;
    struct ehr_store_value v1[] = {
        {.kind = EHR_IDX_TOKEN, .param = "identifier", .s1 = "urn:mrn", .s2 = "1"},
        {.kind = EHR_IDX_DATE, .param = "birthdate", .lo = 100, .hi = 199},
    };
    const char *pats[] = {"p1"};
    ehr_store_index i1 = {.n_values = 2, .values = v1, .n_patients = 1, .patients = pats};
    struct ehr_store_value v2[] = {
        {.kind = EHR_IDX_TOKEN, .param = "identifier", .s1 = "urn:other", .s2 = "1"},
        {.kind = EHR_IDX_DATE, .param = "birthdate", .lo = 300, .hi = 399},
    };
    ehr_store_index i2 = {.n_values = 2, .values = v2};
    put(f, "Patient", "p1", 1, 1000, "{}", &i1);
    put(f, "Patient", "p2", 1, 2000, "{}", &i2);

    struct ehr_store_cond any1 = {.kind = EHR_IDX_TOKEN, .param = "identifier", .s2 = "1"};
    struct ehr_store_cond mrn1 = {
        .kind = EHR_IDX_TOKEN, .param = "identifier", .s1 = "urn:mrn", .s2 = "1"};
    struct ehr_store_cond date_lt = {
        .kind = EHR_IDX_DATE, .param = "birthdate", .op = "lt", .lo = 250, .hi = 260};
    struct ehr_store_cond date_eq = {
        .kind = EHR_IDX_DATE, .param = "birthdate", .op = "eq", .lo = 300, .hi = 399};
    struct ehr_store_cond lu_gt = {.param = "_lastUpdated", .op = "gt", .lo = 1500, .hi = 1500};
    struct ehr_store_clause c_any = {.n_conds = 1, .conds = &any1};
    struct ehr_store_clause c_mrn = {.n_conds = 1, .conds = &mrn1};
    struct ehr_store_clause c_not_mrn = {.negate = true, .n_conds = 1, .conds = &mrn1};
    struct ehr_store_clause c_lt = {.n_conds = 1, .conds = &date_lt};
    struct ehr_store_clause c_eq = {.n_conds = 1, .conds = &date_eq};
    struct ehr_store_clause c_lu = {.n_conds = 1, .conds = &lu_gt};
    struct ehr_store_cond either[] = {date_lt, date_eq};
    struct ehr_store_clause c_or = {.n_conds = 2, .conds = either};
    const struct {
        const struct ehr_store_clause *cl;
        const char *compartment;
        const char *rows;
    } cases[] = {
        {&c_any, NULL, "Patient/p1/1;Patient/p2/1;"}, /* by position (creation order) */
        {&c_mrn, NULL, "Patient/p1/1;"},
        {&c_not_mrn, NULL, "Patient/p2/1;"},
        {&c_lt, NULL, "Patient/p1/1;"},
        {&c_eq, NULL, "Patient/p2/1;"},
        {&c_or, NULL, "Patient/p1/1;Patient/p2/1;"},
        {&c_lu, NULL, "Patient/p2/1;"},
        {&c_any, "p1", "Patient/p1/1;"},
        {&c_any, "nobody", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ehr_store_query q = {.type = "Patient",
                             .n_clauses = 1,
                             .clauses = cases[i].cl,
                             .compartment_patient = cases[i].compartment,
                             .count = 10};
        ehr_buf b = EHR_BUF_INIT;
        ehr_buf_puts(&b, "");
        size_t total = 99;
        ehr_err err;
        assert_int_equal(EHR_STORE_CALL(f->c, search, &q, collect, &b, &total, &err), EHR_OK);
        assert_string_equal(b.data, cases[i].rows);
        ehr_buf_free(&b);
    }
    /* an update replaces the index rows: p1 loses its MRN */
    ehr_store_index none = {0};
    put(f, "Patient", "p1", 2, 3000, "{}", &none);
    ehr_store_query q = {.type = "Patient", .n_clauses = 1, .clauses = &c_mrn, .count = 10};
    size_t total = 99;
    ehr_err err;
    assert_int_equal(EHR_STORE_CALL(f->c, search, &q, collect, &(ehr_buf)EHR_BUF_INIT, &total, &err),
                     EHR_OK);
    assert_int_equal(total, 0);
    /* deleted resources are never found */
    put(f, "Patient", "p2", 2, 4000, NULL, NULL);
    q.clauses = &c_any;
    assert_int_equal(EHR_STORE_CALL(f->c, search, &q, NULL, NULL, &total, &err), EHR_OK);
    assert_int_equal(total, 0);
}

static void test_audit_chain(void **state)
{
    struct fixture *f = *state;
    ehr_err err;
    for (int i = 0; i < 5; i++) {
        char ev[64];
        snprintf(ev, sizeof ev, "{\"n\":%d}", i);
        assert_int_equal(EHR_STORE_CALL(f->c, begin, true, &err), EHR_OK);
        assert_int_equal(EHR_STORE_CALL(f->c, audit_append, 1000 + i, ev, strlen(ev), &err),
                         EHR_OK);
        assert_int_equal(EHR_STORE_CALL(f->c, commit, &err), EHR_OK);
    }
    int64_t n, bad;
    assert_int_equal(EHR_STORE_CALL(f->c, audit_verify, &n, &bad, &err), EHR_OK);
    assert_int_equal(n, 5);

    /* the table refuses updates... */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET event = '{}' WHERE seq = 3", NULL,
                                      NULL, NULL),
                         SQLITE_OK);
    /* ...and a forger who removes the guard is found out */
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TRIGGER audit_no_update;"
                                  "UPDATE audit SET event = '{\"n\":9}' WHERE seq = 3",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(EHR_STORE_CALL(f->c, audit_verify, &n, &bad, &err), EHR_EINVAL);
    assert_int_equal(bad, 3);
    assert_non_null(strstr(err.msg, "3"));
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ehr_store *s = NULL;
    ehr_err err;
    assert_int_equal(ehr_store_open(f->path, &s, &err), EHR_EUNSUPPORTED);
    assert_null(s);
    assert_non_null(strstr(err.msg, "upgrade ehr"));
}

static void test_reopen_keeps_data(void **state)
{
    struct fixture *f = *state;
    put(f, "Patient", "a", 1, 1000, "{\"x\":1}", NULL);
    ehr_store_disconnect(&f->c);
    ehr_store_close(&f->s);
    ehr_err err;
    assert_int_equal(ehr_store_open(f->path, &f->s, &err), EHR_OK);
    assert_int_equal(ehr_store_connect(f->s, &f->c, &err), EHR_OK);
    ehr_buf b = EHR_BUF_INIT;
    ehr_store_rec rec;
    assert_int_equal(EHR_STORE_CALL(f->c, current, "Patient", "a", &rec, &b, &err), EHR_OK);
    assert_string_equal(b.data, "{\"x\":1}");
    ehr_buf_free(&b);
}

static void test_rollback(void **state)
{
    struct fixture *f = *state;
    ehr_err err;
    ehr_store_rec rec = {.type = "Patient", .id = "r", .version = 1, .last_updated = 1,
                         .method = "POST", .content = "{}", .content_len = 2};
    assert_int_equal(EHR_STORE_CALL(f->c, begin, true, &err), EHR_OK);
    assert_int_equal(EHR_STORE_CALL(f->c, put, &rec, NULL, &err), EHR_OK);
    EHR_STORE_CALL(f->c, rollback);
    assert_int_equal(EHR_STORE_CALL(f->c, current, "Patient", "r", &rec, NULL, &err),
                     EHR_ENOTFOUND);
    /* a duplicate version is refused by the schema */
    put(f, "Patient", "r", 1, 1, "{}", NULL);
    assert_int_equal(EHR_STORE_CALL(f->c, begin, true, &err), EHR_OK);
    assert_int_not_equal(EHR_STORE_CALL(f->c, put, &rec, NULL, &err), EHR_OK);
    EHR_STORE_CALL(f->c, rollback);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
