/*
 * access.c - the repository's side of access control: applying the
 * decisions of the caller's policy (repo.h) to resources and queries, and
 * the audit events of interactions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "fhir/model.h"
#include "repo/repo_int.h"

ehr_status repo_decide(const ehr_repo_ctx *ctx, ehr_access access, const char *type,
                       ehr_repo_limit *lim, ehr_err *err)
{
    memset(lim, 0, sizeof *lim);
    if (!ctx || !ctx->policy)
        return EHR_OK;
    ehr_status st = ctx->policy->decide(ctx->policy, access, type, lim, err);
    if (st && st != EHR_EFORBIDDEN && st != EHR_ENOMEM)
        st = ehr_err_set(err, EHR_EFORBIDDEN, "access denied");
    return st;
}

static bool in_list(const char *id, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], id))
            return true;
    return false;
}

struct seen_ctx {
    const ehr_repo_ctx *ctx;
    const ehr_repo_limit *lim;
    repo_seen *seen;
    bool plain; /* allowed through a patient other than a break-glass one */
    bool glass; /* allowed through a break-glass patient */
};

static ehr_status seen_cb(void *p, const char *patient)
{
    struct seen_ctx *s = p;
    repo_seen *v = s->seen;
    if (v->n < 8)
        snprintf(v->ids[v->n++], sizeof v->ids[0], "%s", patient);
    const ehr_repo_policy *pol = s->ctx ? s->ctx->policy : NULL;
    if (s->lim->limited && !in_list(patient, s->lim->patients, s->lim->n_patients))
        return EHR_OK;
    if (s->lim->limited && pol && in_list(patient, pol->glass, pol->n_glass))
        s->glass = true;
    else
        s->plain = true;
    return EHR_OK;
}

ehr_status repo_check_visible(ehr_store_conn *c, const ehr_repo_ctx *ctx, const ehr_repo_limit *lim,
                              const char *type, const char *id, int64_t version, repo_seen *seen,
                              ehr_err *err)
{
    memset(seen, 0, sizeof *seen);
    struct seen_ctx s = {.ctx = ctx, .lim = lim, .seen = seen};
    ehr_status st = EHR_STORE_CALL(c, compartment_of, type, id, version, seen_cb, &s, err);
    if (st)
        return st;
    /* break-glass patients are in the limit's list too (the policy adds
       them); the access is flagged only when nothing else allowed it */
    seen->visible = !lim->limited || s.plain || s.glass;
    seen->glass = s.glass && !s.plain;
    return EHR_OK;
}

ehr_status repo_check_write(const ehr_repo_ctx *ctx, const ehr_repo_limit *lim, const char *type,
                            const ehr_store_index *idx, ehr_err *err)
{
    (void)ctx;
    if (!lim->limited)
        return EHR_OK;
    if (idx->n_patients == 0)
        return ehr_err_set(err, EHR_EFORBIDDEN,
                           "this %s would belong to no patient you have access to", type);
    for (size_t i = 0; i < idx->n_patients; i++)
        if (!in_list(idx->patients[i], lim->patients, lim->n_patients))
            return ehr_err_set(err, EHR_EFORBIDDEN,
                               "this %s would belong to a patient you have no access to", type);
    return EHR_OK;
}

static bool glass_within(const ehr_repo_ctx *ctx, const ehr_repo_limit *lim)
{
    if (!ctx || !ctx->policy || !lim->limited)
        return false;
    for (size_t i = 0; i < ctx->policy->n_glass; i++)
        if (in_list(ctx->policy->glass[i], lim->patients, lim->n_patients))
            return true;
    return false;
}

ehr_status repo_query_access(const ehr_repo_ctx *ctx, ehr_access access, const char *type,
                             ehr_arena *arena, const ehr_store_access **out, bool *glass,
                             ehr_err *err)
{
    *out = NULL;
    *glass = false;
    if (!ctx || !ctx->policy)
        return EHR_OK;
    ehr_store_access *a = ehr_arena_calloc(arena, 1, sizeof *a);
    struct ehr_store_access_group *g = ehr_arena_calloc(arena, 3, sizeof *g);
    if (!a || !g)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    a->groups = g;
    ehr_repo_limit lim;
    if (type) {
        ehr_status st = repo_decide(ctx, access, type, &lim, err);
        if (st)
            return st;
        if (!lim.limited)
            return EHR_OK;
        g[0].limited = true;
        g[0].n_patients = lim.n_patients;
        g[0].patients = lim.patients;
        a->n_groups = 1;
        *glass = glass_within(ctx, &lim);
        *out = a;
        return EHR_OK;
    }
    /*
     * Every type: group the types the caller may search by their limit:
     * unlimited ones, and those limited to one list of patients (a policy
     * has at most two such lists, e.g. the patient of a patient/ scope and
     * a clinician's panel).
     */
    const char **types = ehr_arena_calloc(arena, 3 * ehr_fhir_n_types, sizeof *types);
    if (!types)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    for (int i = 0; i < 3; i++)
        g[i].types = types + (size_t)i * ehr_fhir_n_types;
    size_t n_allowed = 0, n_rt = 0;
    for (size_t i = 0; i < ehr_fhir_n_types; i++) {
        const ehr_fhir_type *t = &ehr_fhir_types[i];
        if (t->kind != EHR_FHIR_KIND_RESOURCE || t->is_abstract)
            continue;
        n_rt++;
        ehr_err e2 = {{0}};
        ehr_status st = repo_decide(ctx, access, t->name, &lim, &e2);
        if (st == EHR_ENOMEM)
            return ehr_err_set(err, st, "out of memory");
        if (st)
            continue;
        n_allowed++;
        size_t k;
        if (!lim.limited) {
            k = 0;
        } else if (!g[1].limited || g[1].patients == lim.patients) {
            k = 1;
        } else if (!g[2].limited || g[2].patients == lim.patients) {
            k = 2;
        } else {
            continue; /* a third list: leave the type out rather than widen */
        }
        if (lim.limited) {
            g[k].limited = true;
            g[k].patients = lim.patients;
            g[k].n_patients = lim.n_patients;
            if (glass_within(ctx, &lim))
                *glass = true;
        }
        ((const char **)g[k].types)[g[k].n_types++] = t->name;
    }
    if (n_allowed == 0)
        return ehr_err_set(err, EHR_EFORBIDDEN, "you may not search any resource type");
    /* unlimited on every type: no filter */
    if (g[0].n_types == n_rt)
        return EHR_OK;
    /* the groups that have types, contiguous */
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        if (g[i].n_types)
            g[n++] = g[i];
    a->groups = g;
    a->n_groups = n;
    *out = a;
    return EHR_OK;
}

json_t *repo_event_json(const ehr_repo_ctx *ctx, const struct repo_event *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "action", json_string(ev->action));
    json_object_set_new(o, "outcome", json_string(ev->outcome ? ev->outcome : "ok"));
    json_object_set_new(o, "user", json_string(ctx && ctx->user ? ctx->user : "anonymous"));
    if (ctx && ctx->role)
        json_object_set_new(o, "role", json_string(ctx->role));
    if (ctx && ctx->app)
        json_object_set_new(o, "app", json_string(ctx->app));
    json_object_set_new(o, "client", json_string(ctx && ctx->client ? ctx->client : ""));
    if (ev->type)
        json_object_set_new(o, "type", json_string(ev->type));
    if (ev->id)
        json_object_set_new(o, "id", json_string(ev->id));
    if (ev->version)
        json_object_set_new(o, "version", json_integer(ev->version));
    if (ev->query)
        json_object_set_new(o, "query", json_string(ev->query));
    if (ev->n >= 0)
        json_object_set_new(o, "n", json_integer(ev->n));
    json_t *pts = json_array();
    if (ev->seen)
        for (size_t i = 0; i < ev->seen->n; i++)
            json_array_append_new(pts, json_string(ev->seen->ids[i]));
    for (size_t i = 0; i < ev->n_patients; i++)
        json_array_append_new(pts, json_string(ev->patients[i]));
    if (json_array_size(pts))
        json_object_set_new(o, "patients", pts);
    else
        json_decref(pts);
    if (ev->glass || (ev->seen && ev->seen->glass))
        json_object_set_new(o, "break_glass", json_true());
    if (ev->reason)
        json_object_set_new(o, "reason", json_string(ev->reason));
    return o;
}

ehr_status repo_audit_in(ehr_store_conn *c, const ehr_repo_ctx *ctx, const struct repo_event *ev,
                         int64_t when, ehr_err *err)
{
    json_t *o = repo_event_json(ctx, ev);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = EHR_STORE_CALL(c, audit_append, when, s, strlen(s), err);
    free(s);
    return st;
}

ehr_status repo_audit_now(ehr_repo *r, const ehr_repo_ctx *ctx, const struct repo_event *ev,
                          ehr_err *err)
{
    json_t *o = repo_event_json(ctx, ev);
    if (!o)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = repo_append_audit(r, o, err);
    json_decref(o);
    return st;
}
