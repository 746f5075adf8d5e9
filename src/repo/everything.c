/*
 * everything.c - Patient $everything (FHIR R4 patient-operation-everything):
 * the current resources of one patient's compartment, from the
 * compartment table, paged, within what the caller may see.
 */
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "repo/repo_int.h"

/* Counts rows handed on, for the audit record. */
struct ev_count {
    ehr_store_row_cb cb;
    void *ctx;
    long long n;
};

static ehr_status ev_row(void *p, const ehr_store_rec *rec)
{
    struct ev_count *k = p;
    k->n++;
    return k->cb ? k->cb(k->ctx, rec) : EHR_OK;
}

ehr_status ehr_repo_everything(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_repo_everything_q *q,
                               ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err)
{
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < q->n_types; i++)
        if ((st = repo_check_type(q->types[i], err)))
            return ehr_err_set(err, EHR_EINVAL, "_type: '%s' is not a FHIR R4 resource type",
                               q->types[i]);
    /* the patient must be one the caller may read: else it is not known */
    ehr_repo_out pat = {0};
    st = ehr_repo_read(r, ctx, "Patient", q->patient, 0, &pat, err);
    ehr_repo_out_free(&pat);
    if (st)
        return st;
    ehr_store_conn *c;
    if ((st = ehr_repo_conn(r, &c, err)))
        return st;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    const ehr_store_access *acc = NULL;
    bool glass = false;
    st = repo_query_access(ctx, EHR_ACCESS_SEARCH, NULL, a, &acc, &glass, err);
    if (st) {
        ehr_arena_free(&a);
        return st;
    }
    /* the compartment must be one the caller may search as a whole: a
       caller who may read every Patient (demographics) but only some
       charts gets "not known" for the others */
    bool whole = !acc;
    for (size_t g = 0; acc && g < acc->n_groups && !whole; g++) {
        const struct ehr_store_access_group *gr = &acc->groups[g];
        if (!gr->limited && gr->n_types == 0)
            whole = true;
        for (size_t i = 0; gr->limited && i < gr->n_patients && !whole; i++)
            whole = !strcmp(gr->patients[i], q->patient);
    }
    if (!whole) {
        ehr_arena_free(&a);
        ehr_err_set(err, EHR_EFORBIDDEN, "the patient's compartment is outside the caller's");
        repo_after_write(r, ctx, EHR_EFORBIDDEN, "everything", "Patient", q->patient, err);
        return ehr_err_set(err, EHR_ENOTFOUND, "Patient/%s is not known", q->patient);
    }
    struct ehr_store_cond since = {.kind = EHR_IDX_DATE,
                                   .param = "_lastUpdated",
                                   .match = EHR_MATCH_RANGE,
                                   .op = "ge",
                                   .lo = q->since,
                                   .hi = q->since};
    struct ehr_store_clause cl = {.n_conds = 1, .conds = &since};
    ehr_store_query sq = {.compartment_patient = q->patient,
                          .access = acc,
                          .n_clauses = q->since ? 1 : 0,
                          .clauses = &cl};
    struct ev_count k = {.cb = cb, .ctx = cb_ctx};
    size_t all = 0;
    /* one read transaction: the counts and the page see the same snapshot.
       Several _type values: one query each, the results in _type order */
    size_t n_groups = q->n_types ? q->n_types : 1;
    size_t skip = q->offset, want = q->count;
    if (!(st = EHR_STORE_CALL(c, begin, false, err))) {
        for (size_t g = 0; g < n_groups && !st; g++) {
            sq.type = q->n_types ? q->types[g] : NULL;
            size_t n = 0;
            sq.count = 0;
            sq.offset = 0;
            if ((st = EHR_STORE_CALL(c, search, &sq, NULL, NULL, &n, err)))
                break;
            all += n;
            if (want == 0 || skip >= n) {
                skip -= skip >= n ? n : skip;
                continue;
            }
            sq.offset = skip;
            sq.count = want;
            size_t before = (size_t)k.n;
            st = EHR_STORE_CALL(c, search, &sq, ev_row, &k, NULL, err);
            size_t got = (size_t)k.n - before;
            want -= got < want ? got : want;
            skip = 0;
        }
        if (st)
            EHR_STORE_CALL(c, rollback);
        else
            st = EHR_STORE_CALL(c, commit, err);
    }
    ehr_arena_free(&a);
    if (total)
        *total = all;
    if (st)
        return st;
    struct repo_event ev = {.action = "everything",
                            .type = "Patient",
                            .id = q->patient,
                            .n = k.n,
                            .glass = glass,
                            .query = q->since ? "_since" : NULL};
    return repo_audit_now(r, ctx, &ev, err);
}

/* Counts rows of an export, for the audit record. */
static ehr_status export_row(void *p, const ehr_store_rec *rec)
{
    struct ev_count *k = p;
    k->n++;
    return k->cb(k->ctx, rec);
}

ehr_status ehr_repo_export(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_store_scan_q *q,
                           ehr_store_row_cb cb, void *cb_ctx, int64_t *last_key, ehr_err *err)
{
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < q->n_types; i++)
        if ((st = repo_check_type(q->types[i], err)))
            return ehr_err_set(err, EHR_EINVAL, "_type: '%s' is not a FHIR R4 resource type",
                               q->types[i]);
    ehr_store_conn *c;
    if ((st = ehr_repo_conn(r, &c, err)))
        return st;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (!c->store->ops->scan) {
        ehr_arena_free(&a);
        return ehr_err_set(err, EHR_EUNSUPPORTED, "this storage backend cannot export yet");
    }
    ehr_store_scan_q sq = *q;
    bool glass = false;
    st = repo_query_access(ctx, EHR_ACCESS_SEARCH, q->n_types == 1 ? q->types[0] : NULL, a,
                           &sq.access, &glass, err);
    struct ev_count k = {.cb = cb, .ctx = cb_ctx};
    if (!st && !(st = EHR_STORE_CALL(c, begin, false, err))) {
        st = EHR_STORE_CALL(c, scan, &sq, export_row, &k, last_key, err);
        if (st)
            EHR_STORE_CALL(c, rollback);
        else
            st = EHR_STORE_CALL(c, commit, err);
    }
    ehr_arena_free(&a);
    if (st == EHR_EFORBIDDEN)
        return repo_after_write(r, ctx, st, "export", NULL, NULL, err);
    if (st)
        return st;
    struct repo_event ev = {
        .action = "export", .n = k.n, .glass = glass, .query = q->since ? "_since" : NULL};
    return repo_audit_now(r, ctx, &ev, err);
}

ehr_status ehr_repo_export_allowed(ehr_repo *r, const ehr_repo_ctx *ctx, ehr_err *err)
{
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    const ehr_store_access *acc = NULL;
    bool glass = false;
    ehr_status st = repo_query_access(ctx, EHR_ACCESS_SEARCH, NULL, a, &acc, &glass, err);
    bool all = !st && !acc;
    for (size_t g = 0; !st && acc && g < acc->n_groups && !all; g++)
        all = !acc->groups[g].limited && acc->groups[g].n_types == 0;
    ehr_arena_free(&a);
    if (st && st != EHR_EFORBIDDEN)
        return st;
    if (!all) {
        ehr_err_set(err, EHR_EFORBIDDEN,
                    "a bulk export needs access to every record (system/*.rs or an "
                    "unlimited user)");
        return repo_after_write(r, ctx, EHR_EFORBIDDEN, "export", NULL, NULL, err);
    }
    return EHR_OK;
}
