/*
 * Unit tests for access enforcement in src/repo: a policy built on
 * ehr_auth_decide, and every interaction trying to reach another
 * patient's data (read, vread of an old version, search, history at each
 * level, conditional operations, writes into another compartment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "auth/policy.h"
#include "core/json.h"
#include "repo/repo.h"
#include "testutil.h"

struct fixture {
    char dir[64];
    ehr_repo *r;
};

static const ehr_repo_ctx admin = {.user = "setup", .client = "unit"};

/* A policy over a subject. */
struct pol {
    ehr_repo_policy p;
    ehr_subject s;
    ehr_scopes sc;
    const char *created;
};

static ehr_status decide(const ehr_repo_policy *p, ehr_access a, const char *type,
                         ehr_repo_limit *lim, ehr_err *err)
{
    const struct pol *pp = p->data;
    return ehr_auth_decide(&pp->s, a, type, lim, err);
}

static void created(const ehr_repo_policy *p, const char *id)
{
    ((struct pol *)p->data)->created = "yes";
}

static const char *const own[] = {"a"};

static void pol_init(struct pol *p, ehr_role role, const char *scopes)
{
    memset(p, 0, sizeof *p);
    p->p.decide = decide;
    p->p.created_patient = created;
    p->p.data = p;
    p->s.has_user = true;
    p->s.role = role;
    p->s.n_patients = 1;
    p->s.patients = own;
    p->s.clinicians_panel = true;
    if (scopes) {
        assert_int_equal(ehr_scopes_parse(scopes, &p->sc, NULL), EHR_OK);
        p->s.scopes = &p->sc;
    }
}

static void put(struct fixture *f, const char *type, const char *id, const char *json)
{
    json_t *j = ehr_json_parse(json, strlen(json), NULL);
    assert_non_null(j);
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_err err = {{0}};
    ehr_status st = ehr_repo_update(f->r, &admin, type, id, j, 0, &o, &is, &err);
    if (st)
        fail_msg("%s/%s: %s %s", type, id, err.msg, is.n ? is.items[0].message : "");
    ehr_fhir_issues_free(&is);
    ehr_repo_out_free(&o);
    json_decref(j);
}

#define OBS(id, pt)                                                                                \
    "{\"resourceType\":\"Observation\",\"id\":\"" id "\",\"status\":\"final\",\"code\":{\"text\":" \
    "\"x\"},\"identifier\":[{\"system\":\"urn:t\",\"value\":\"" id "\"}],\"subject\":{"            \
    "\"reference\":\"Patient/" pt "\"}}"

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_tmpdir(f->dir, sizeof f->dir);
    char path[128];
    snprintf(path, sizeof path, "sqlite:%s/t.db", f->dir);
    ehr_err err;
    if (ehr_repo_open(path, &f->r, &err))
        return -1;
    put(f, "Patient", "a", "{\"resourceType\":\"Patient\",\"id\":\"a\"}");
    put(f, "Patient", "b", "{\"resourceType\":\"Patient\",\"id\":\"b\"}");
    put(f, "Observation", "oa", OBS("oa", "a"));
    put(f, "Observation", "ob", OBS("ob", "b"));
    /* moved: version 1 was b's, version 2 is a's */
    put(f, "Observation", "moved", OBS("moved", "b"));
    put(f, "Observation", "moved", OBS("moved", "a"));
    put(f, "Observation", "gone", OBS("gone", "b"));
    ehr_repo_out o = {0};
    assert_int_equal(ehr_repo_delete(f->r, &admin, "Observation", "gone", 0, &o, &err), EHR_OK);
    ehr_repo_out_free(&o);
    put(f, "Practitioner", "doc", "{\"resourceType\":\"Practitioner\",\"id\":\"doc\"}");
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

static ehr_status rd(struct fixture *f, const ehr_repo_ctx *c, const char *type, const char *id,
                     int64_t v, ehr_err *err)
{
    ehr_repo_out o = {0};
    ehr_status st = ehr_repo_read(f->r, c, type, id, v, &o, err);
    if (st)
        assert_int_equal(o.body.len, 0); /* nothing leaks on failure */
    ehr_repo_out_free(&o);
    return st;
}

struct ids {
    size_t n;
    char v[32][96];
};

static ehr_status collect(void *p, const ehr_store_rec *rec)
{
    struct ids *ids = p;
    if (ids->n < 32)
        snprintf(ids->v[ids->n++], 96, "%s/%s/%lld", rec->type, rec->id, (long long)rec->version);
    return EHR_OK;
}

static bool has(const struct ids *ids, const char *s)
{
    for (size_t i = 0; i < ids->n; i++)
        if (!strcmp(ids->v[i], s))
            return true;
    return false;
}

static void search(struct fixture *f, const ehr_repo_ctx *c, const char *type, const char *qs,
                   struct ids *out, size_t *total, ehr_status want)
{
    ehr_arena *a = ehr_arena_new();
    struct ehr_search_param *ps;
    size_t n;
    assert_int_equal(ehr_search_split_query(qs, a, &ps, &n), EHR_OK);
    ehr_search s;
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(ehr_search_parse(type, ps, n, false, a, &s, &is), EHR_OK);
    memset(out, 0, sizeof *out);
    ehr_err err = {{0}};
    assert_int_equal(ehr_repo_search(f->r, c, &s, collect, out, total, &err), want);
    ehr_search_done(&s);
    ehr_fhir_issues_free(&is);
    ehr_arena_free(&a);
}

static void test_patient_reads(void **state)
{
    struct fixture *f = *state;
    struct pol p;
    pol_init(&p, EHR_ROLE_PATIENT, NULL);
    ehr_repo_ctx c = {.user = "pa", .client = "unit", .policy = &p.p};
    ehr_err e1 = {{0}}, e2 = {{0}};
    assert_int_equal(rd(f, &c, "Observation", "oa", 0, &e1), EHR_OK);
    assert_int_equal(rd(f, &c, "Patient", "a", 0, &e1), EHR_OK);
    /* another patient's resource answers exactly as a missing one */
    assert_int_equal(rd(f, &c, "Observation", "ob", 0, &e1), EHR_ENOTFOUND);
    assert_int_equal(rd(f, &c, "Observation", "nonexistent", 0, &e2), EHR_ENOTFOUND);
    assert_string_equal(e1.msg, "Observation/ob is not known");
    assert_string_equal(e2.msg, "Observation/nonexistent is not known");
    assert_int_equal(rd(f, &c, "Patient", "b", 0, &e1), EHR_ENOTFOUND);
    /* a deleted resource of another patient: not known, not gone */
    assert_int_equal(rd(f, &c, "Observation", "gone", 0, &e1), EHR_ENOTFOUND);
    /* vread: the old version was b's */
    assert_int_equal(rd(f, &c, "Observation", "moved", 1, &e1), EHR_ENOTFOUND);
    assert_int_equal(rd(f, &c, "Observation", "moved", 2, &e1), EHR_OK);
    assert_int_equal(rd(f, &c, "Observation", "ob", 1, &e1), EHR_ENOTFOUND);
    assert_int_equal(rd(f, &c, "Observation", "ob", 7, &e2), EHR_ENOTFOUND);
    assert_string_equal(e1.msg, "Observation/ob has no version 1");
    /* no PHI: readable by all */
    assert_int_equal(rd(f, &c, "Practitioner", "doc", 0, &e1), EHR_OK);
    /* a type the role may not read: forbidden */
    assert_int_equal(rd(f, &c, "AuditEvent", "x", 0, &e1), EHR_EFORBIDDEN);
}

static void test_patient_searches(void **state)
{
    struct fixture *f = *state;
    struct pol p;
    pol_init(&p, EHR_ROLE_PATIENT, NULL);
    ehr_repo_ctx c = {.user = "pa", .client = "unit", .policy = &p.p};
    struct ids ids;
    size_t total = 99;
    search(f, &c, "Observation", "", &ids, &total, EHR_OK);
    assert_int_equal(total, 2); /* oa and moved: counted in the query, not after */
    assert_true(has(&ids, "Observation/oa/1"));
    assert_true(has(&ids, "Observation/moved/2"));
    search(f, &c, "Observation", "_id=ob", &ids, &total, EHR_OK);
    assert_int_equal(total, 0);
    search(f, &c, "Observation", "identifier=urn:t|ob", &ids, &total, EHR_OK);
    assert_int_equal(total, 0);
    search(f, &c, "Patient", "", &ids, &total, EHR_OK);
    assert_int_equal(total, 1);
    assert_true(has(&ids, "Patient/a/1"));
    search(f, &c, "Practitioner", "", &ids, &total, EHR_OK);
    assert_int_equal(total, 1);
    /* across all types: only a's compartment */
    search(f, &c, NULL, "", &ids, &total, EHR_OK);
    for (size_t i = 0; i < ids.n; i++)
        assert_null(strstr(ids.v[i], "/ob/"));
    search(f, &c, "AuditEvent", "", &ids, &total, EHR_EFORBIDDEN);
}

static void history(struct fixture *f, const ehr_repo_ctx *c, const char *type, const char *id,
                    struct ids *out, size_t *total)
{
    ehr_store_history_q q = {.type = type, .id = id, .count = 50};
    memset(out, 0, sizeof *out);
    ehr_err err = {{0}};
    assert_int_equal(ehr_repo_history(f->r, c, &q, collect, out, total, &err), EHR_OK);
}

static void test_patient_history(void **state)
{
    struct fixture *f = *state;
    struct pol p;
    pol_init(&p, EHR_ROLE_PATIENT, NULL);
    ehr_repo_ctx c = {.user = "pa", .client = "unit", .policy = &p.p};
    struct ids ids;
    size_t total;
    history(f, &c, "Observation", "moved", &ids, &total);
    assert_int_equal(total, 1); /* version 1 was b's */
    assert_true(has(&ids, "Observation/moved/2"));
    history(f, &c, "Observation", "ob", &ids, &total);
    assert_int_equal(total, 0);
    history(f, &c, "Observation", NULL, &ids, &total);
    assert_int_equal(total, 2);
    assert_false(has(&ids, "Observation/moved/1"));
    history(f, &c, NULL, NULL, &ids, &total);
    for (size_t i = 0; i < ids.n; i++) {
        assert_null(strstr(ids.v[i], "/ob/"));
        assert_null(strstr(ids.v[i], "/gone/"));
        assert_null(strstr(ids.v[i], "Patient/b/"));
    }
    assert_false(has(&ids, "Observation/moved/1"));
}

static ehr_status wr(struct fixture *f, const ehr_repo_ctx *c, const char *method, const char *type,
                     const char *id, const char *json, const char *cond)
{
    json_t *j = json ? ehr_json_parse(json, strlen(json), NULL) : NULL;
    ehr_repo_out o = {0};
    ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
    ehr_err err = {{0}};
    ehr_status st;
    if (!strcmp(method, "POST"))
        st = ehr_repo_create(f->r, c, type, j, cond, &o, &is, &err);
    else if (!strcmp(method, "PUT") && cond)
        st = ehr_repo_update_where(f->r, c, type, cond, j, 0, &o, &is, &err);
    else if (!strcmp(method, "PUT"))
        st = ehr_repo_update(f->r, c, type, id, j, 0, &o, &is, &err);
    else if (!strcmp(method, "PATCH")) {
        json_t *patch =
            json_pack("[{s:s, s:s, s:s}]", "op", "replace", "path", "/status", "value", "amended");
        st = ehr_repo_patch(f->r, c, type, id, patch, 0, &o, &is, &err);
        json_decref(patch);
    } else if (cond)
        st = ehr_repo_delete_where(f->r, c, type, cond, &o, &is, &err);
    else
        st = ehr_repo_delete(f->r, c, type, id, 0, &o, &err);
    if (!st && !strcmp(method, "DELETE"))
        st = o.version ? EHR_OK : EHR_ENOTFOUND; /* nothing was deleted */
    ehr_fhir_issues_free(&is);
    ehr_repo_out_free(&o);
    json_decref(j);
    return st;
}

static void test_clinician_writes(void **state)
{
    struct fixture *f = *state;
    struct pol p;
    pol_init(&p, EHR_ROLE_PHYSICIAN, NULL); /* panel: patient a */
    ehr_repo_ctx c = {.user = "dr", .client = "unit", .policy = &p.p};
    ehr_err err;
    assert_int_equal(wr(f, &c, "POST", "Observation", NULL, OBS("n1", "a"), NULL), EHR_OK);
    assert_int_equal(wr(f, &c, "POST", "Observation", NULL, OBS("n2", "b"), NULL), EHR_EFORBIDDEN);
    assert_int_equal(wr(f, &c, "POST", "Observation", NULL,
                        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":"
                        "{\"text\":\"x\"}}",
                        NULL),
                     EHR_EFORBIDDEN); /* in no compartment: would be invisible */
    assert_int_equal(wr(f, &c, "PUT", "Observation", "ob", OBS("ob", "a"), NULL),
                     EHR_EFORBIDDEN); /* b's: can't be taken over */
    assert_int_equal(wr(f, &c, "PUT", "Observation", "oa", OBS("oa", "b"), NULL),
                     EHR_EFORBIDDEN); /* nor moved to b */
    assert_int_equal(wr(f, &c, "PUT", "Observation", "oa", OBS("oa", "a"), NULL), EHR_OK);
    assert_int_equal(wr(f, &c, "PATCH", "Observation", "ob", NULL, NULL), EHR_ENOTFOUND);
    assert_int_equal(wr(f, &c, "PATCH", "Observation", "oa", NULL, NULL), EHR_OK);
    assert_int_equal(wr(f, &c, "DELETE", "Observation", "ob", NULL, NULL), EHR_ENOTFOUND);
    assert_int_equal(rd(f, &admin, "Observation", "ob", 0, &err), EHR_OK); /* still there */
    /* conditional: b's resources do not match */
    assert_int_equal(wr(f, &c, "DELETE", "Observation", NULL, NULL, "identifier=urn:t|ob"),
                     EHR_ENOTFOUND);
    assert_int_equal(rd(f, &admin, "Observation", "ob", 0, &err), EHR_OK);
    assert_int_equal(wr(f, &c, "PUT", "Observation", NULL, OBS("ob", "b"), "identifier=urn:t|ob"),
                     EHR_EFORBIDDEN);
    /* If-None-Exist matching b's Observation: no match for this caller */
    assert_int_equal(wr(f, &c, "POST", "Observation", NULL, OBS("ob", "b"), "identifier=urn:t|ob"),
                     EHR_EFORBIDDEN);
    /* a new Patient joins the clinician's panel */
    assert_int_equal(wr(f, &c, "POST", "Patient", NULL, "{\"resourceType\":\"Patient\"}", NULL),
                     EHR_OK);
    assert_non_null(p.created);
    /* patient users may not write at all */
    struct pol pp;
    pol_init(&pp, EHR_ROLE_PATIENT, NULL);
    ehr_repo_ctx pc = {.user = "pa", .client = "unit", .policy = &pp.p};
    assert_int_equal(wr(f, &pc, "POST", "Observation", NULL, OBS("n3", "a"), NULL), EHR_EFORBIDDEN);
    assert_int_equal(wr(f, &pc, "DELETE", "Observation", "oa", NULL, NULL), EHR_EFORBIDDEN);
    /* a read-only token of an admin */
    struct pol ro;
    pol_init(&ro, EHR_ROLE_ADMIN, "user/*.rs");
    ehr_repo_ctx rc = {.user = "ad", .client = "unit", .policy = &ro.p};
    assert_int_equal(wr(f, &rc, "PUT", "Observation", "oa", OBS("oa", "a"), NULL), EHR_EFORBIDDEN);
    assert_int_equal(rd(f, &rc, "Observation", "ob", 0, &err), EHR_OK);
}

struct audit_count {
    size_t denied, notfound, glass;
};

static ehr_status count_audit(void *p, int64_t seq, int64_t time, const char *hash,
                              const char *event, size_t len)
{
    struct audit_count *a = p;
    a->denied += strstr(event, "\"outcome\":\"denied\"") != NULL;
    a->notfound += strstr(event, "\"outcome\":\"not-found\"") != NULL;
    a->glass += strstr(event, "\"break_glass\":true") != NULL;
    return EHR_OK;
}

static void test_audit_of_denials_and_glass(void **state)
{
    struct fixture *f = *state;
    struct pol p;
    pol_init(&p, EHR_ROLE_PHYSICIAN, NULL);
    /* b opened by break-glass: in the patients, and in the glass list */
    static const char *const with_b[] = {"a", "b"};
    static const char *const glass[] = {"b"};
    p.s.patients = with_b;
    p.s.n_patients = 2;
    p.p.glass = glass;
    p.p.n_glass = 1;
    ehr_repo_ctx c = {.user = "dr", .client = "unit", .policy = &p.p};
    ehr_err err;
    assert_int_equal(rd(f, &c, "Observation", "ob", 0, &err), EHR_OK);
    assert_int_equal(rd(f, &c, "Observation", "oa", 0, &err), EHR_OK);
    struct pol pp;
    pol_init(&pp, EHR_ROLE_PATIENT, NULL);
    ehr_repo_ctx pc = {.user = "pa", .client = "unit", .policy = &pp.p};
    assert_int_equal(rd(f, &pc, "Observation", "ob", 0, &err), EHR_ENOTFOUND);
    assert_int_equal(wr(f, &pc, "POST", "Observation", NULL, OBS("n3", "a"), NULL), EHR_EFORBIDDEN);
    ehr_store_conn *conn;
    assert_int_equal(ehr_repo_conn(f->r, &conn, &err), EHR_OK);
    struct audit_count ac = {0};
    ehr_store_audit_q q = {0};
    assert_int_equal(EHR_STORE_CALL(conn, audit_list, &q, count_audit, &ac, &err), EHR_OK);
    assert_int_equal(ac.glass, 1); /* ob through the glass; oa is on the panel */
    assert_int_equal(ac.denied, 2);
    int64_t n, bad;
    assert_int_equal(ehr_repo_audit_verify(f->r, &n, &bad, &err), EHR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_patient_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_searches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clinician_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_of_denials_and_glass, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
