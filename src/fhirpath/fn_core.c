/*
 * fn_core.c - FHIRPath functions on collections (N1 section 5.1-5.4, 5.7,
 * 5.8 and the aggregates of section 7), the function table, and type
 * functions (is, as, ofType, type).
 */
#include <string.h>

#include "fhirpath/fn.h"

/* ---- argument helpers (shared through fn.h) ---- */

ehr_status fp_arg_single(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, fp_coll *tmp,
                         const fp_item **out)
{
    ehr_status st = fp_eval_arg(c, n->args[i], s, tmp);
    if (st)
        return st;
    if (tmp->n > 1)
        return fp_error(c, n->args[i], "argument %d of %s() must be a single item, got %zu", i + 1,
                        n->name, tmp->n);
    *out = tmp->n ? &tmp->items[0] : NULL;
    return EHR_OK;
}

ehr_status fp_arg_int(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, bool *present,
                      int64_t *v)
{
    fp_coll tmp;
    const fp_item *it;
    ehr_status st = fp_arg_single(c, n, s, i, &tmp, &it);
    if (st)
        return st;
    *present = it != NULL;
    if (!it)
        return EHR_OK;
    if (it->kind != EHR_FHIRPATH_INTEGER)
        return fp_error(c, n->args[i], "argument %d of %s() must be an Integer", i + 1, n->name);
    *v = it->v.i;
    return EHR_OK;
}

ehr_status fp_arg_str(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, const char **p,
                      size_t *len)
{
    fp_coll tmp;
    const fp_item *it;
    ehr_status st = fp_arg_single(c, n, s, i, &tmp, &it);
    if (st)
        return st;
    *p = NULL;
    if (!it)
        return EHR_OK;
    if (!fp_item_str(it, p, len)) {
        if (it->flags & FP_F_NOVALUE)
            return EHR_OK;
        return fp_error(c, n->args[i], "argument %d of %s() must be a String", i + 1, n->name);
    }
    return EHR_OK;
}

ehr_status fp_input_single(fp_ctx *c, const fp_node *n, const fp_coll *in, const fp_item **out)
{
    if (in->n > 1)
        return fp_error(c, n, "%s() needs a single input item, got %zu", n->name, in->n);
    *out = in->n ? &in->items[0] : NULL;
    return EHR_OK;
}

/* ---- existence ---- */

static ehr_status fn_empty(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    return fp_push_bool(c, out, in->n == 0);
}

/* Criteria of exists/all/where on item i: FP_TRUE/FALSE/EMPTY/ERR. */
static int criteria(fp_ctx *c, const fp_node *arg, const fp_scope *s, const fp_item *it, size_t i)
{
    fp_coll r;
    if (fp_eval_on(c, arg, s, it, (int64_t)i, &r))
        return FP_ERR;
    return fp_to_bool(c, arg, &r);
}

static ehr_status fn_exists(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    if (n->nargs == 0)
        return fp_push_bool(c, out, in->n > 0);
    for (size_t i = 0; i < in->n; i++) {
        int r = criteria(c, n->args[0], s, &in->items[i], i);
        if (r == FP_ERR)
            return c->fail;
        if (r == FP_TRUE)
            return fp_push_bool(c, out, true);
    }
    return fp_push_bool(c, out, false);
}

static ehr_status fn_all(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        int r = criteria(c, n->args[0], s, &in->items[i], i);
        if (r == FP_ERR)
            return c->fail;
        if (r != FP_TRUE)
            return fp_push_bool(c, out, false);
    }
    return fp_push_bool(c, out, true);
}

/* allTrue, anyTrue, allFalse, anyFalse */
static ehr_status bool_agg(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out, bool want,
                           bool all)
{
    bool res = all;
    for (size_t i = 0; i < in->n; i++) {
        const fp_item *it = &in->items[i];
        if (it->kind != EHR_FHIRPATH_BOOLEAN)
            return fp_error(c, n, "%s() needs Booleans, found an item of another type", n->name);
        if (it->flags & FP_F_NOVALUE)
            continue;
        if (all && it->v.b != want)
            res = false;
        if (!all && it->v.b == want)
            res = true;
    }
    return fp_push_bool(c, out, res);
}

static ehr_status fn_all_true(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    return bool_agg(c, n, in, out, true, true);
}

static ehr_status fn_any_true(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    return bool_agg(c, n, in, out, true, false);
}

static ehr_status fn_all_false(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    return bool_agg(c, n, in, out, false, true);
}

static ehr_status fn_any_false(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    return bool_agg(c, n, in, out, false, false);
}

static bool subset(fp_ctx *c, const fp_coll *a, const fp_coll *b)
{
    for (size_t i = 0; i < a->n; i++)
        if (!fp_coll_contains(c, b, &a->items[i]))
            return false;
    return true;
}

static ehr_status fn_subset_of(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    fp_coll other;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &other);
    if (st || (st = fp_step(c, in->n * (other.n + 1))))
        return st;
    bool r = subset(c, in, &other);
    return c->fail ? c->fail : fp_push_bool(c, out, r);
}

static ehr_status fn_superset_of(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    fp_coll other;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &other);
    if (st || (st = fp_step(c, other.n * (in->n + 1))))
        return st;
    bool r = subset(c, &other, in);
    return c->fail ? c->fail : fp_push_bool(c, out, r);
}

static ehr_status fn_count(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    return fp_push_int(c, out, (int64_t)in->n);
}

static ehr_status distinct_into(fp_ctx *c, const fp_coll *in, fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        ehr_status st = fp_step(c, out->n + 1);
        if (st)
            return st;
        if (!fp_coll_contains(c, out, &in->items[i]) && (st = fp_push(c, out, &in->items[i])))
            return st;
    }
    return c->fail;
}

static ehr_status fn_distinct(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    return distinct_into(c, in, out);
}

static ehr_status fn_is_distinct(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    fp_coll d;
    memset(&d, 0, sizeof d);
    ehr_status st = distinct_into(c, in, &d);
    return st ? st : fp_push_bool(c, out, d.n == in->n);
}

/* ---- filtering and projection ---- */

static ehr_status fn_where(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        int r = criteria(c, n->args[0], s, &in->items[i], i);
        if (r == FP_ERR)
            return c->fail;
        if (r == FP_TRUE) {
            ehr_status st = fp_push(c, out, &in->items[i]);
            if (st)
                return st;
        }
    }
    return EHR_OK;
}

static ehr_status fn_select(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        ehr_status st = fp_eval_on(c, n->args[0], s, &in->items[i], (int64_t)i, &r);
        if (st || (st = fp_append(c, out, &r)))
            return st;
    }
    return EHR_OK;
}

static ehr_status repeat_impl(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out, bool dedupe)
{
    fp_coll queue = *in;
    size_t qi = 0;
    /* the queue grows at its end; items already output are not queued again */
    fp_coll work;
    memset(&work, 0, sizeof work);
    ehr_status st = fp_append(c, &work, &queue);
    if (st)
        return st;
    while (qi < work.n) {
        fp_item cur = work.items[qi++];
        fp_coll r;
        if ((st = fp_eval_on(c, n->args[0], s, &cur, 0, &r)))
            return st;
        for (size_t k = 0; k < r.n; k++) {
            if (dedupe) {
                if ((st = fp_step(c, out->n + 1)))
                    return st;
                if (fp_coll_contains(c, out, &r.items[k]))
                    continue;
                if (c->fail)
                    return c->fail;
            }
            if ((st = fp_push(c, out, &r.items[k])) || (st = fp_push(c, &work, &r.items[k])))
                return st;
        }
    }
    return EHR_OK;
}

static ehr_status fn_repeat(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    return repeat_impl(c, n, s, in, out, true);
}

static ehr_status fn_repeat_all(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                fp_coll *out)
{
    return repeat_impl(c, n, s, in, out, false);
}

static ehr_status unknown_type(fp_ctx *c, const fp_node *n)
{
    const fp_typeref *t = n->type;
    return fp_error(c, n, "unknown type '%s%s%s'", t->ns ? t->ns : "", t->ns ? "." : "", t->name);
}

static bool type_known(const fp_typeref *t)
{
    return t->ftype || t->sys || t->any || t->none;
}

static ehr_status fn_of_type(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    if (!type_known(n->type))
        return unknown_type(c, n);
    for (size_t i = 0; i < in->n; i++) {
        if (fp_item_is(&in->items[i], n->type, true)) {
            ehr_status st = fp_push(c, out, &in->items[i]);
            if (st)
                return st;
        }
    }
    return EHR_OK;
}

static ehr_status fn_is(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                        fp_coll *out)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st)
        return st;
    if (!type_known(n->type))
        return unknown_type(c, n);
    if (!it)
        return EHR_OK;
    return fp_push_bool(c, out, fp_item_is(it, n->type, false));
}

static ehr_status fn_as(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                        fp_coll *out)
{
    if (in->n > 1 && (c->expr->flags & EHR_FHIRPATH_LENIENT_AS))
        return fn_of_type(c, n, s, in, out);
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st)
        return st;
    if (!type_known(n->type))
        return unknown_type(c, n);
    if (it && fp_item_is(it, n->type, true))
        return fp_push(c, out, it);
    return EHR_OK;
}

static ehr_status fn_type(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const fp_item *it = &in->items[i];
        fp_typeinfo *ti = fp_alloc(c, sizeof *ti);
        if (!ti)
            return c->fail;
        ti->name = fp_item_type_name(it, &ti->ns);
        if (it->ftype)
            ti->base = it->ftype->base
                           ? ehr_arena_printf(c->arena, "FHIR.%s", it->ftype->base->name)
                           : "System.Any";
        else
            ti->base = "System.Any";
        fp_item r;
        memset(&r, 0, sizeof r);
        r.kind = EHR_FHIRPATH_TYPEINFO;
        r.v.ti = ti;
        ehr_status st = fp_push(c, out, &r);
        if (st)
            return st;
    }
    return EHR_OK;
}

/* ---- subsetting ---- */

static ehr_status fn_single(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    if (in->n > 1)
        return fp_error(c, n, "single() found %zu items", in->n);
    return fp_append(c, out, in);
}

static ehr_status fn_first(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    return in->n ? fp_push(c, out, &in->items[0]) : EHR_OK;
}

static ehr_status fn_last(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    return in->n ? fp_push(c, out, &in->items[in->n - 1]) : EHR_OK;
}

static ehr_status slice(fp_ctx *c, const fp_coll *in, size_t from, size_t to, fp_coll *out)
{
    for (size_t i = from; i < to && i < in->n; i++) {
        ehr_status st = fp_push(c, out, &in->items[i]);
        if (st)
            return st;
    }
    return EHR_OK;
}

static ehr_status fn_tail(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    return slice(c, in, 1, in->n, out);
}

static ehr_status fn_skip(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    bool present;
    int64_t k = 0;
    ehr_status st = fp_arg_int(c, n, s, 0, &present, &k);
    if (st || !present)
        return st;
    return slice(c, in, k < 0 ? 0 : (size_t)k, in->n, out);
}

static ehr_status fn_take(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    bool present;
    int64_t k = 0;
    ehr_status st = fp_arg_int(c, n, s, 0, &present, &k);
    if (st || !present || k <= 0)
        return st;
    return slice(c, in, 0, (size_t)k, out);
}

static ehr_status fn_intersect(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    fp_coll other;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &other);
    if (st)
        return st;
    for (size_t i = 0; i < in->n; i++) {
        if ((st = fp_step(c, other.n + out->n)))
            return st;
        const fp_item *it = &in->items[i];
        if (fp_coll_contains(c, &other, it) && !fp_coll_contains(c, out, it) &&
            (st = fp_push(c, out, it)))
            return st;
    }
    return c->fail;
}

static ehr_status fn_exclude(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    fp_coll other;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &other);
    if (st)
        return st;
    for (size_t i = 0; i < in->n; i++) {
        if ((st = fp_step(c, other.n)))
            return st;
        if (!fp_coll_contains(c, &other, &in->items[i]) && (st = fp_push(c, out, &in->items[i])))
            return st;
    }
    return c->fail;
}

/* ---- combining ---- */

static ehr_status fn_union(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    fp_coll other;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &other);
    if (st || (st = distinct_into(c, in, out)))
        return st;
    return distinct_into(c, &other, out);
}

static ehr_status fn_combine(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    fp_coll other;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &other);
    if (st || (st = fp_append(c, out, in)))
        return st;
    return fp_append(c, out, &other);
}

static ehr_status fn_coalesce(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    for (int i = 0; i < n->nargs; i++) {
        fp_coll r;
        ehr_status st = fp_eval_arg(c, n->args[i], s, &r);
        if (st)
            return st;
        if (r.n)
            return fp_append(c, out, &r);
    }
    return EHR_OK;
}

/* ---- conditional, boolean, utility ---- */

static ehr_status fn_iif(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    if (in->n > 1)
        return fp_error(c, n, "iif() needs at most one input item, got %zu", in->n);
    /* the arguments see the input as $this (FHIRPath 2.0 iif) */
    fp_scope sc = *s;
    sc.parent = s;
    sc.focus = in;
    sc.this_item = in->n ? &in->items[0] : NULL;
    fp_coll r;
    ehr_status st = fp_eval_arg(c, n->args[0], &sc, &r);
    if (st)
        return st;
    int b = fp_to_bool(c, n->args[0], &r);
    if (b == FP_ERR)
        return c->fail;
    const fp_node *pick = b == FP_TRUE ? n->args[1] : n->nargs > 2 ? n->args[2] : NULL;
    if (!pick)
        return EHR_OK;
    if ((st = fp_eval_arg(c, pick, &sc, &r)))
        return st;
    return fp_append(c, out, &r);
}

static ehr_status fn_not(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    int b = fp_to_bool(c, n, in);
    if (b == FP_ERR)
        return c->fail;
    if (b == FP_EMPTY)
        return EHR_OK;
    return fp_push_bool(c, out, b == FP_FALSE);
}

static ehr_status fn_trace(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    const char *name;
    size_t len;
    ehr_status st = fp_arg_str(c, n, s, 0, &name, &len);
    if (st)
        return st;
    const ehr_fhirpath_env *env = c->env;
    if (env && env->trace) {
        fp_coll logged = *in;
        fp_coll proj;
        memset(&proj, 0, sizeof proj);
        if (n->nargs > 1) {
            for (size_t i = 0; i < in->n; i++) {
                fp_coll r;
                if ((st = fp_eval_on(c, n->args[1], s, &in->items[i], (int64_t)i, &r)) ||
                    (st = fp_append(c, &proj, &r)))
                    return st;
            }
            logged = proj;
        }
        char *nm = ehr_arena_strndup(c->arena, name ? name : "", name ? len : 0);
        if (!nm)
            return fp_nomem(c);
        env->trace(env->trace_ctx, nm, logged.items, logged.n);
    }
    return fp_append(c, out, in);
}

static ehr_status now_value(fp_ctx *c, const fp_node *n)
{
    if (!c->have_now) {
        if (!fp_dt_now(c->env ? c->env->now : NULL, &c->now))
            return fp_error(c, n, "the fixed time of the environment is not a FHIR instant");
        c->have_now = true;
    }
    return EHR_OK;
}

static ehr_status fn_now(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    ehr_status st = now_value(c, n);
    if (st)
        return st;
    fp_item it;
    memset(&it, 0, sizeof it);
    it.kind = EHR_FHIRPATH_DATETIME;
    it.v.dt = c->now;
    return fp_push(c, out, &it);
}

static ehr_status fn_today(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    ehr_status st = now_value(c, n);
    if (st)
        return st;
    fp_item it;
    memset(&it, 0, sizeof it);
    it.kind = EHR_FHIRPATH_DATE;
    it.v.dt.year = c->now.year;
    it.v.dt.month = c->now.month;
    it.v.dt.day = c->now.day;
    it.v.dt.prec = EHR_FHIRPATH_PREC_DAY;
    return fp_push(c, out, &it);
}

static ehr_status fn_time_of_day(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    ehr_status st = now_value(c, n);
    if (st)
        return st;
    fp_item it;
    memset(&it, 0, sizeof it);
    it.kind = EHR_FHIRPATH_TIME;
    it.v.dt = c->now;
    it.v.dt.year = 0;
    it.v.dt.month = 0;
    it.v.dt.day = 0;
    it.v.dt.has_tz = false;
    it.v.dt.tz = 0;
    return fp_push(c, out, &it);
}

static ehr_status fn_aggregate(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    fp_coll total;
    memset(&total, 0, sizeof total);
    ehr_status st;
    if (n->nargs > 1 && (st = fp_eval_arg(c, n->args[1], s, &total)))
        return st;
    for (size_t i = 0; i < in->n; i++) {
        fp_coll focus = {&in->items[i], 1, 1};
        fp_scope sc = *s;
        sc.parent = s;
        sc.this_item = &in->items[i];
        sc.focus = &focus;
        sc.index = (int64_t)i;
        fp_coll t = total;
        sc.total = &t;
        fp_coll r;
        if ((st = fp_eval_arg(c, n->args[0], &sc, &r)))
            return st;
        total = r;
    }
    return fp_append(c, out, &total);
}

static ehr_status fn_define_variable(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                     const fp_coll *in, fp_coll *out)
{
    const char *name;
    size_t len;
    ehr_status st = fp_arg_str(c, n, s, 0, &name, &len);
    if (st)
        return st;
    if (!name)
        return fp_error(c, n, "defineVariable() needs a name");
    static const char *const reserved[] = {"context", "resource", "rootResource",
                                           "ucum",    "sct",      "loinc"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == len && memcmp(reserved[i], name, len) == 0)
            return fp_error(c, n, "variable %%%.*s already exists", (int)len, name);
    for (const fp_var *v = c->vars; v; v = v->next)
        if (v->len == len && memcmp(v->name, name, len) == 0)
            return fp_error(c, n, "variable %%%.*s already exists", (int)len, name);
    fp_var *v = fp_alloc(c, sizeof *v);
    if (!v)
        return c->fail;
    v->name = name;
    v->len = len;
    memset(&v->value, 0, sizeof v->value);
    if (n->nargs > 1) {
        fp_scope sc = *s;
        sc.parent = s;
        sc.focus = in;
        sc.this_item = in->n == 1 ? &in->items[0] : NULL;
        if ((st = fp_eval_arg(c, n->args[1], &sc, &v->value)))
            return st;
    } else {
        v->value = *in;
    }
    v->next = c->vars;
    c->vars = v;
    return fp_append(c, out, in);
}

/* ---- sort (FHIRPath 2.0, STU) ---- */

typedef struct sort_key {
    fp_coll *vals; /* one per key selector */
} sort_key;

static int sort_cmp(fp_ctx *c, const fp_node *n, const fp_item *a, const fp_item *b,
                    const sort_key *ka, const sort_key *kb, bool *err)
{
    int nk = n->nargs ? n->nargs : 1;
    for (int k = 0; k < nk; k++) {
        bool desc = n->nargs && n->args[k]->kind == FPN_UNARY && n->args[k]->op == OP_NEG;
        const fp_coll *x = n->nargs ? &ka->vals[k] : NULL;
        const fp_coll *y = n->nargs ? &kb->vals[k] : NULL;
        const fp_item *xa = x ? (x->n ? &x->items[0] : NULL) : a;
        const fp_item *yb = y ? (y->n ? &y->items[0] : NULL) : b;
        int r = 0;
        if (!xa || !yb) {
            /* an empty key sorts first, in either direction (testSort10) */
            r = (xa ? 1 : 0) - (yb ? 1 : 0);
            if (r)
                return r;
        } else {
            int res = fp_compare(c, n, xa, yb, &r);
            if (res == FP_ERR) {
                *err = true;
                return 0;
            }
            if (res == FP_EMPTY)
                r = 0;
        }
        if (r)
            return desc ? -r : r;
    }
    return 0;
}

static ehr_status fn_sort(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    size_t cnt = in->n;
    if (cnt == 0)
        return EHR_OK;
    sort_key *keys = fp_alloc(c, sizeof(sort_key) * cnt);
    size_t *idx = fp_alloc(c, sizeof(size_t) * cnt);
    size_t *tmp = fp_alloc(c, sizeof(size_t) * cnt);
    if (!keys || !idx || !tmp)
        return c->fail;
    ehr_status st;
    for (size_t i = 0; i < cnt; i++) {
        idx[i] = i;
        keys[i].vals = NULL;
        if (!n->nargs)
            continue;
        keys[i].vals = fp_alloc(c, sizeof(fp_coll) * n->nargs);
        if (!keys[i].vals)
            return c->fail;
        for (int k = 0; k < n->nargs; k++) {
            /* a leading minus selects descending order: sort(-$this) */
            const fp_node *key = n->args[k];
            if (key->kind == FPN_UNARY && key->op == OP_NEG)
                key = key->left;
            if ((st = fp_eval_on(c, key, s, &in->items[i], (int64_t)i, &keys[i].vals[k])))
                return st;
            if (keys[i].vals[k].n > 1)
                return fp_error(c, n->args[k], "a sort key must be a single item");
        }
    }
    /* stable merge sort of the index */
    bool err = false;
    for (size_t w = 1; w < cnt && !err; w *= 2) {
        for (size_t lo = 0; lo < cnt; lo += 2 * w) {
            size_t mid = lo + w < cnt ? lo + w : cnt, hi = lo + 2 * w < cnt ? lo + 2 * w : cnt;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) {
                if ((st = fp_step(c, 1)))
                    return st;
                int r = sort_cmp(c, n, &in->items[idx[i]], &in->items[idx[j]], &keys[idx[i]],
                                 &keys[idx[j]], &err);
                if (err)
                    return c->fail;
                tmp[o++] = r <= 0 ? idx[i++] : idx[j++];
            }
            while (i < mid)
                tmp[o++] = idx[i++];
            while (j < hi)
                tmp[o++] = idx[j++];
        }
        memcpy(idx, tmp, sizeof(size_t) * cnt);
    }
    for (size_t i = 0; i < cnt; i++)
        if ((st = fp_push(c, out, &in->items[idx[i]])))
            return st;
    return EHR_OK;
}

/* ---- tree navigation ---- */

static ehr_status fn_children(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        ehr_status st = fp_children(c, &in->items[i], NULL, 0, out);
        if (st)
            return st;
    }
    return EHR_OK;
}

static ehr_status fn_descendants(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < in->n; i++) {
        ehr_status st = fp_children(c, &in->items[i], NULL, 0, out);
        if (st)
            return st;
    }
    /* breadth first: the output doubles as the queue */
    for (size_t qi = start; qi < out->n; qi++) {
        fp_item cur = out->items[qi];
        ehr_status st = fp_children(c, &cur, NULL, 0, out);
        if (st)
            return st;
    }
    return EHR_OK;
}

/* ---- aggregates (FHIRPath 2.0 section 7, STU) ---- */

static ehr_status fn_sum(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    if (in->n == 0)
        return EHR_OK;
    fp_coll acc;
    memset(&acc, 0, sizeof acc);
    ehr_status st = fp_push(c, &acc, &in->items[0]);
    if (st)
        return st;
    for (size_t i = 1; i < in->n; i++) {
        fp_node plus = *n;
        plus.kind = FPN_BINARY;
        plus.op = OP_PLUS;
        fp_node lit_a, lit_b;
        memset(&lit_a, 0, sizeof lit_a);
        memset(&lit_b, 0, sizeof lit_b);
        lit_a.kind = lit_b.kind = FPN_LITERAL;
        if (!acc.n)
            return EHR_OK;
        lit_a.lit = acc.items[0];
        lit_b.lit = in->items[i];
        plus.left = &lit_a;
        plus.right = &lit_b;
        fp_coll r;
        memset(&r, 0, sizeof r);
        if ((st = fp_eval(c, &plus, s, &r)))
            return st;
        acc = r;
    }
    return fp_append(c, out, &acc);
}

static ehr_status minmax(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out, int want)
{
    if (in->n == 0)
        return EHR_OK;
    const fp_item *best = &in->items[0];
    for (size_t i = 1; i < in->n; i++) {
        int r;
        int res = fp_compare(c, n, &in->items[i], best, &r);
        if (res == FP_ERR)
            return c->fail;
        if (res == FP_TRUE && r == want)
            best = &in->items[i];
    }
    return fp_push(c, out, best);
}

static ehr_status fn_min(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    return minmax(c, n, in, out, -1);
}

static ehr_status fn_max(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    return minmax(c, n, in, out, 1);
}

static ehr_status fn_avg(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    fp_coll sum;
    memset(&sum, 0, sizeof sum);
    ehr_status st = fn_sum(c, n, s, in, &sum);
    if (st || sum.n == 0)
        return st;
    const fp_item *it = &sum.items[0];
    fp_dec cnt = fp_dec_from_int((int64_t)in->n), r;
    if (it->kind == EHR_FHIRPATH_INTEGER || it->kind == EHR_FHIRPATH_DECIMAL) {
        fp_dec v = it->kind == EHR_FHIRPATH_INTEGER ? fp_dec_from_int(it->v.i) : it->v.d;
        if (!fp_dec_div(v, cnt, &r))
            return EHR_OK;
        return fp_push_dec(c, out, r);
    }
    if (it->kind == EHR_FHIRPATH_QUANTITY) {
        fp_qty *q = fp_alloc(c, sizeof *q);
        if (!q)
            return c->fail;
        *q = *it->v.q;
        if (!fp_dec_div(it->v.q->value, cnt, &q->value))
            return EHR_OK;
        fp_item x = *it;
        x.v.q = q;
        return fp_push(c, out, &x);
    }
    return fp_error(c, n, "avg() needs numbers or quantities");
}

/* ---- the table ---- */

static const fp_fn core_fns[] = {
    {"empty", 0, 0, fn_empty, 0},
    {"exists", 0, 1, fn_exists, 0},
    {"all", 1, 1, fn_all, 0},
    {"allTrue", 0, 0, fn_all_true, 0},
    {"anyTrue", 0, 0, fn_any_true, 0},
    {"allFalse", 0, 0, fn_all_false, 0},
    {"anyFalse", 0, 0, fn_any_false, 0},
    {"subsetOf", 1, 1, fn_subset_of, 0},
    {"supersetOf", 1, 1, fn_superset_of, 0},
    {"count", 0, 0, fn_count, 0},
    {"distinct", 0, 0, fn_distinct, 0},
    {"isDistinct", 0, 0, fn_is_distinct, 0},
    {"where", 1, 1, fn_where, 0},
    {"select", 1, 1, fn_select, 0},
    {"repeat", 1, 1, fn_repeat, 0},
    {"repeatAll", 1, 1, fn_repeat_all, 0},
    {"ofType", 1, 1, fn_of_type, FP_FN_TYPEARG},
    {"is", 1, 1, fn_is, FP_FN_TYPEARG},
    {"as", 1, 1, fn_as, FP_FN_TYPEARG},
    {"type", 0, 0, fn_type, 0},
    {"single", 0, 0, fn_single, 0},
    {"first", 0, 0, fn_first, FP_FN_ORDERED},
    {"last", 0, 0, fn_last, FP_FN_ORDERED},
    {"tail", 0, 0, fn_tail, FP_FN_ORDERED},
    {"skip", 1, 1, fn_skip, FP_FN_ORDERED},
    {"take", 1, 1, fn_take, FP_FN_ORDERED},
    {"intersect", 1, 1, fn_intersect, 0},
    {"exclude", 1, 1, fn_exclude, 0},
    {"union", 1, 1, fn_union, 0},
    {"combine", 1, 2, fn_combine, 0},
    {"coalesce", 1, 32, fn_coalesce, 0},
    {"iif", 2, 3, fn_iif, 0},
    {"not", 0, 0, fn_not, 0},
    {"trace", 1, 2, fn_trace, 0},
    {"now", 0, 0, fn_now, FP_FN_NO_INPUT},
    {"today", 0, 0, fn_today, FP_FN_NO_INPUT},
    {"timeOfDay", 0, 0, fn_time_of_day, FP_FN_NO_INPUT},
    {"aggregate", 1, 2, fn_aggregate, 0},
    {"defineVariable", 1, 2, fn_define_variable, 0},
    {"sort", 0, 32, fn_sort, 0},
    {"children", 0, 0, fn_children, 0},
    {"descendants", 0, 0, fn_descendants, 0},
    {"sum", 0, 0, fn_sum, 0},
    {"min", 0, 0, fn_min, 0},
    {"max", 0, 0, fn_max, 0},
    {"avg", 0, 0, fn_avg, 0},
};

const fp_fn *fp_fn_lookup(const char *name, size_t len)
{
    const fp_fn *tables[] = {core_fns, fp_fns_string, fp_fns_convert, fp_fns_fhir};
    const size_t sizes[] = {sizeof core_fns / sizeof core_fns[0], fp_n_fns_string, fp_n_fns_convert,
                            fp_n_fns_fhir};
    for (size_t t = 0; t < 4; t++)
        for (size_t i = 0; i < sizes[t]; i++)
            if (strlen(tables[t][i].name) == len && memcmp(tables[t][i].name, name, len) == 0)
                return &tables[t][i];
    return NULL;
}
