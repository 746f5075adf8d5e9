/*
 * api.c - compile/free and the public view of result items (fhirpath.h).
 */
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "fhirpath/fhirpath_int.h"

ehr_status ehr_fhirpath_compile_opts(const char *expr, size_t len, const ehr_fhirpath_options *opts,
                                     ehr_fhirpath_expr **out, ehr_err *err)
{
    *out = NULL;
    if (len > EHR_FHIRPATH_MAX_EXPR_LEN)
        return ehr_err_set(err, EHR_ELIMIT,
                           "limit exceeded: expression of %zu bytes is longer than %d", len,
                           EHR_FHIRPATH_MAX_EXPR_LEN);
    if (memchr(expr, '\0', len))
        return ehr_err_set(err, EHR_EINVAL, "syntax error at column 1: NUL byte in expression");
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_fhirpath_expr *e = ehr_arena_calloc(a, 1, sizeof *e);
    char *text = ehr_arena_strndup(a, expr, len);
    if (!e || !text) {
        ehr_arena_free(&a);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    e->arena = a;
    e->text = text;
    e->len = len;
    e->flags = opts ? opts->flags : 0;
    ehr_status st = fp_parse(text, len, a, &e->root, err);
    if (st == EHR_OK && opts && (opts->context_type || (opts->flags & ~EHR_FHIRPATH_LENIENT_AS)))
        st = fp_check(e, opts, err);
    if (st != EHR_OK) {
        if (st == EHR_ENOMEM)
            ehr_err_set(err, EHR_ENOMEM, "out of memory");
        ehr_arena_free(&a);
        return st;
    }
    *out = e;
    return EHR_OK;
}

ehr_status ehr_fhirpath_compile(const char *expr, size_t len, ehr_fhirpath_expr **out, ehr_err *err)
{
    return ehr_fhirpath_compile_opts(expr, len, NULL, out, err);
}

void ehr_fhirpath_free(ehr_fhirpath_expr **e)
{
    if (!e || !*e)
        return;
    ehr_arena *a = (*e)->arena;
    ehr_arena_free(&a);
    *e = NULL;
}

const char *ehr_fhirpath_text(const ehr_fhirpath_expr *e)
{
    return e->text;
}

ehr_fhirpath_errclass ehr_fhirpath_error_class(ehr_status st, const ehr_err *err)
{
    if (st == EHR_OK)
        return EHR_FHIRPATH_ERR_NONE;
    if (st == EHR_ELIMIT)
        return EHR_FHIRPATH_ERR_LIMIT;
    if (!err)
        return EHR_FHIRPATH_ERR_OTHER;
    if (strncmp(err->msg, "syntax error", 12) == 0)
        return EHR_FHIRPATH_ERR_SYNTAX;
    if (strncmp(err->msg, "semantic error", 14) == 0)
        return EHR_FHIRPATH_ERR_SEMANTIC;
    if (strncmp(err->msg, "execution error", 15) == 0)
        return EHR_FHIRPATH_ERR_EXECUTION;
    return EHR_FHIRPATH_ERR_OTHER;
}

const ehr_fhirpath_item *ehr_fhirpath_result_get(const ehr_fhirpath_result *r, size_t i)
{
    return i < r->count ? &r->items[i] : NULL;
}

ehr_fhirpath_kind ehr_fhirpath_item_kind(const ehr_fhirpath_item *it)
{
    return (ehr_fhirpath_kind)it->kind;
}

const ehr_fhir_type *ehr_fhirpath_item_fhir_type(const ehr_fhirpath_item *it)
{
    return it->ftype;
}

const char *ehr_fhirpath_item_type_name(const ehr_fhirpath_item *it, ehr_arena *arena)
{
    const char *ns;
    const char *name = fp_item_type_name(it, &ns);
    const char *r = ehr_arena_printf(arena, "%s.%s", ns, name);
    return r ? r : name;
}

const json_t *ehr_fhirpath_item_json(const ehr_fhirpath_item *it)
{
    return it->node;
}

bool ehr_fhirpath_item_location(const ehr_fhirpath_item *it, const json_t **parent,
                                const char **key, long *index)
{
    if (!it->parent || !it->key)
        return false;
    *parent = it->parent;
    *key = it->key;
    *index = it->index;
    return true;
}

bool ehr_fhirpath_item_has_value(const ehr_fhirpath_item *it)
{
    return !(it->flags & FP_F_NOVALUE);
}

bool ehr_fhirpath_item_bool(const ehr_fhirpath_item *it)
{
    return it->kind == EHR_FHIRPATH_BOOLEAN && it->v.b;
}

int64_t ehr_fhirpath_item_int(const ehr_fhirpath_item *it)
{
    if (it->kind == EHR_FHIRPATH_INTEGER)
        return it->v.i;
    int64_t v = 0;
    if (it->kind == EHR_FHIRPATH_DECIMAL)
        fp_dec_to_int64(it->v.d, &v);
    return v;
}

const char *ehr_fhirpath_item_string(const ehr_fhirpath_item *it, size_t *len)
{
    if (it->kind != EHR_FHIRPATH_STRING || (it->flags & FP_F_NOVALUE)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = it->v.s.n;
    return it->v.s.p;
}

bool ehr_fhirpath_item_datetime(const ehr_fhirpath_item *it, ehr_fhirpath_datetime *out)
{
    if ((it->kind != EHR_FHIRPATH_DATE && it->kind != EHR_FHIRPATH_DATETIME &&
         it->kind != EHR_FHIRPATH_TIME) ||
        (it->flags & FP_F_NOVALUE))
        return false;
    const fp_dt *d = &it->v.dt;
    memset(out, 0, sizeof *out);
    out->year = d->year;
    out->month = d->month;
    out->day = d->day;
    out->hour = d->hour;
    out->minute = d->minute;
    out->second = d->second;
    out->millisecond = d->ms;
    out->precision = (ehr_fhirpath_precision)d->prec;
    out->has_tz = d->has_tz;
    out->tz_minutes = d->tz;
    return true;
}

/* A FHIR Quantity object or System Quantity as an fp_qty (no context). */
static bool item_qty(const ehr_fhirpath_item *it, fp_qty *q)
{
    if (it->kind == EHR_FHIRPATH_QUANTITY) {
        *q = *it->v.q;
        return true;
    }
    return false;
}

bool ehr_fhirpath_item_quantity(const ehr_fhirpath_item *it, ehr_arena *arena, const char **value,
                                const char **unit)
{
    fp_qty q;
    if (!item_qty(it, &q))
        return false;
    char buf[64];
    fp_dec_format(q.value, buf, sizeof buf);
    *value = ehr_arena_strdup(arena, buf);
    *unit = q.unit;
    return *value != NULL;
}

const char *ehr_fhirpath_item_text(const ehr_fhirpath_item *it, ehr_arena *arena)
{
    char buf[128];
    size_t n;
    if (it->flags & FP_F_NOVALUE)
        return NULL;
    switch (it->kind) {
    case EHR_FHIRPATH_STRING:
        return ehr_arena_strndup(arena, it->v.s.p, it->v.s.n);
    case EHR_FHIRPATH_BOOLEAN:
        return it->v.b ? "true" : "false";
    case EHR_FHIRPATH_INTEGER:
        snprintf(buf, sizeof buf, "%lld", (long long)it->v.i);
        break;
    case EHR_FHIRPATH_DECIMAL:
        fp_dec_format(it->v.d, buf, sizeof buf);
        break;
    case EHR_FHIRPATH_DATE:
    case EHR_FHIRPATH_DATETIME:
    case EHR_FHIRPATH_TIME:
        fp_dt_format(&it->v.dt, it->kind, buf, sizeof buf);
        break;
    case EHR_FHIRPATH_QUANTITY:
        fp_qty_format(it->v.q, buf, sizeof buf);
        break;
    case EHR_FHIRPATH_TYPEINFO:
        snprintf(buf, sizeof buf, "%s.%s", it->v.ti->ns, it->v.ti->name);
        break;
    default:
        return NULL;
    }
    (void)n;
    return ehr_arena_strdup(arena, buf);
}

json_t *ehr_fhirpath_item_to_json(const ehr_fhirpath_item *it)
{
    char buf[128];
    if (it->kind == EHR_FHIRPATH_OBJECT)
        return json_incref((json_t *)it->node);
    if (it->flags & FP_F_NOVALUE) {
        /* a primitive with only extensions: show its id/extension object */
        return it->ext ? json_incref((json_t *)it->ext) : json_null();
    }
    if (it->node && it->ftype)
        return json_incref((json_t *)it->node); /* as stored, numbers losslessly */
    switch (it->kind) {
    case EHR_FHIRPATH_BOOLEAN:
        return json_boolean(it->v.b);
    case EHR_FHIRPATH_INTEGER:
        return ehr_json_integer(it->v.i);
    case EHR_FHIRPATH_DECIMAL:
        fp_dec_format(it->v.d, buf, sizeof buf);
        return ehr_json_number(buf);
    case EHR_FHIRPATH_STRING:
        return json_stringn(it->v.s.p, it->v.s.n);
    case EHR_FHIRPATH_DATE:
    case EHR_FHIRPATH_DATETIME:
    case EHR_FHIRPATH_TIME:
        fp_dt_format(&it->v.dt, it->kind, buf, sizeof buf);
        return json_string(buf);
    case EHR_FHIRPATH_QUANTITY: {
        const fp_qty *q = it->v.q;
        json_t *o = json_object();
        fp_dec_format(q->value, buf, sizeof buf);
        if (!o || json_object_set_new(o, "value", ehr_json_number(buf)) ||
            json_object_set_new(o, "unit", json_string(q->unit))) {
            json_decref(o);
            return NULL;
        }
        if (!q->cal && strcmp(q->unit, "1") != 0) {
            fp_unit u;
            fp_ucum_parse(q->unit, strlen(q->unit), &u);
            if (u.valid &&
                (json_object_set_new(o, "system", json_string("http://unitsofmeasure.org")) ||
                 json_object_set_new(o, "code", json_string(q->unit)))) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case EHR_FHIRPATH_TYPEINFO: {
        json_t *o = json_object();
        if (!o || json_object_set_new(o, "namespace", json_string(it->v.ti->ns)) ||
            json_object_set_new(o, "name", json_string(it->v.ti->name))) {
            json_decref(o);
            return NULL;
        }
        return o;
    }
    default:
        return json_null();
    }
}

json_t *ehr_fhirpath_result_to_json(const ehr_fhirpath_result *r)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < r->count; i++) {
        json_t *v = ehr_fhirpath_item_to_json(&r->items[i]);
        if (!v || json_array_append_new(a, v)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
