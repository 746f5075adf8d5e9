/*
 * eval.c - the FHIRPath evaluator: navigation over FHIR JSON, literals,
 * variables and the node dispatch. Operators are in ops.c, functions in fn_*.c.
 *
 * Navigation follows the FHIR JSON representation (FHIR R4 section 2.6.2)
 * through the model: a choice element "value" is read from whichever
 * "valueQuantity", "valueString"... is present, typed by its suffix; a
 * primitive's id and extensions come from its "_name" companion (arrays
 * paired by index, null where a side is missing); resources inside
 * resources get their type from "resourceType".
 */
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "fhirpath/fhirpath_int.h"

/* Evaluation recursion limit (the parse depth bounds the tree; functions
 * such as repeat() and resolve() add a few frames each). */
#define MAX_EVAL_DEPTH (EHR_FHIRPATH_MAX_DEPTH * 4)

ehr_status fp_error(fp_ctx *c, const fp_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->fail = fp_set_error(c->err, EHR_EUNPROCESSABLE, "execution error", c->expr->text,
                           c->expr->len, n ? n->pos : 0, fmt, ap);
    va_end(ap);
    return c->fail;
}

ehr_status fp_limit(fp_ctx *c, const char *what)
{
    c->fail = ehr_err_set(c->err, EHR_ELIMIT, "limit exceeded: %s", what);
    return c->fail;
}

ehr_status fp_nomem(fp_ctx *c)
{
    c->fail = ehr_err_set(c->err, EHR_ENOMEM, "out of memory");
    return c->fail;
}

ehr_status fp_step(fp_ctx *c, size_t n)
{
    c->steps += n;
    if (c->steps > c->max_steps) {
        char buf[96];
        snprintf(buf, sizeof buf, "evaluation took more than %zu steps", c->max_steps);
        return fp_limit(c, buf);
    }
    return EHR_OK;
}

void *fp_alloc(fp_ctx *c, size_t size)
{
    if (size > c->max_bytes || c->bytes > c->max_bytes - size) {
        char buf[96];
        snprintf(buf, sizeof buf, "evaluation used more than %zu bytes", c->max_bytes);
        fp_limit(c, buf);
        return NULL;
    }
    void *p = ehr_arena_alloc(c->arena, size);
    if (!p) {
        fp_nomem(c);
        return NULL;
    }
    c->bytes += size;
    return p;
}

ehr_status fp_push(fp_ctx *c, fp_coll *out, const fp_item *it)
{
    if (out->n == out->cap) {
        size_t nc = out->cap ? out->cap * 2 : 4;
        if (out->n >= c->max_items) {
            char buf[96];
            snprintf(buf, sizeof buf, "a collection grew beyond %zu items", c->max_items);
            return fp_limit(c, buf);
        }
        fp_item *ni = fp_alloc(c, nc * sizeof(fp_item));
        if (!ni)
            return c->fail;
        if (out->n)
            memcpy(ni, out->items, out->n * sizeof(fp_item));
        out->items = ni;
        out->cap = nc;
    }
    out->items[out->n++] = *it;
    return EHR_OK;
}

ehr_status fp_append(fp_ctx *c, fp_coll *out, const fp_coll *in)
{
    for (size_t i = 0; i < in->n; i++) {
        ehr_status st = fp_push(c, out, &in->items[i]);
        if (st)
            return st;
    }
    return EHR_OK;
}

void fp_mk_bool(fp_item *it, bool b)
{
    memset(it, 0, sizeof *it);
    it->kind = EHR_FHIRPATH_BOOLEAN;
    it->v.b = b;
}

void fp_mk_int(fp_item *it, int64_t v)
{
    memset(it, 0, sizeof *it);
    it->kind = EHR_FHIRPATH_INTEGER;
    it->v.i = v;
}

void fp_mk_dec(fp_item *it, fp_dec d)
{
    memset(it, 0, sizeof *it);
    it->kind = EHR_FHIRPATH_DECIMAL;
    it->v.d = d;
}

void fp_mk_str(fp_item *it, const char *p, size_t n)
{
    memset(it, 0, sizeof *it);
    it->kind = EHR_FHIRPATH_STRING;
    it->v.s.p = p;
    it->v.s.n = n;
}

ehr_status fp_push_bool(fp_ctx *c, fp_coll *out, bool b)
{
    fp_item it;
    fp_mk_bool(&it, b);
    return fp_push(c, out, &it);
}

ehr_status fp_push_int(fp_ctx *c, fp_coll *out, int64_t v)
{
    fp_item it;
    fp_mk_int(&it, v);
    return fp_push(c, out, &it);
}

ehr_status fp_push_dec(fp_ctx *c, fp_coll *out, fp_dec d)
{
    fp_item it;
    fp_mk_dec(&it, d);
    return fp_push(c, out, &it);
}

ehr_status fp_push_str(fp_ctx *c, fp_coll *out, const char *p, size_t n)
{
    fp_item it;
    fp_mk_str(&it, p, n);
    return fp_push(c, out, &it);
}

bool fp_item_str(const fp_item *it, const char **p, size_t *n)
{
    if (it->kind != EHR_FHIRPATH_STRING || (it->flags & FP_F_NOVALUE))
        return false;
    *p = it->v.s.p;
    *n = it->v.s.n;
    return true;
}

const ehr_fhir_type *fp_resource_type(const json_t *obj)
{
    const char *rt = ehr_json_get_string(obj, "resourceType");
    return rt ? ehr_fhir_resource_type(rt) : NULL;
}

/* ---- items from JSON ---- */

static int prim_kind(ehr_fhir_prim p)
{
    switch (p) {
    case EHR_PRIM_BOOLEAN:
        return EHR_FHIRPATH_BOOLEAN;
    case EHR_PRIM_INTEGER:
    case EHR_PRIM_UNSIGNEDINT:
    case EHR_PRIM_POSITIVEINT:
        return EHR_FHIRPATH_INTEGER;
    case EHR_PRIM_DECIMAL:
        return EHR_FHIRPATH_DECIMAL;
    case EHR_PRIM_DATE:
        return EHR_FHIRPATH_DATE;
    case EHR_PRIM_DATETIME:
    case EHR_PRIM_INSTANT:
        return EHR_FHIRPATH_DATETIME;
    case EHR_PRIM_TIME:
        return EHR_FHIRPATH_TIME;
    default:
        return EHR_FHIRPATH_STRING;
    }
}

/* A JSON scalar as a System value of the given kind; false if it is not. */
static bool scalar_as(const json_t *v, int kind, fp_item *out)
{
    const char *s = ehr_json_string(v);
    const char *num = ehr_json_number_text(v);
    switch (kind) {
    case EHR_FHIRPATH_BOOLEAN:
        if (!json_is_boolean(v))
            return false;
        out->v.b = json_is_true(v);
        break;
    case EHR_FHIRPATH_INTEGER: {
        fp_dec d;
        if (!num || !fp_dec_parse(num, strlen(num), &d))
            return false;
        if (!fp_dec_is_integer(d) || !fp_dec_to_int64(d, &out->v.i)) {
            out->kind = EHR_FHIRPATH_DECIMAL;
            out->v.d = d;
            return true;
        }
        break;
    }
    case EHR_FHIRPATH_DECIMAL:
        if (!num || !fp_dec_parse(num, strlen(num), &out->v.d))
            return false;
        break;
    case EHR_FHIRPATH_DATE:
    case EHR_FHIRPATH_DATETIME:
    case EHR_FHIRPATH_TIME:
        if (!s || !fp_dt_parse(s, strlen(s), kind, &out->v.dt))
            return false;
        if (kind == EHR_FHIRPATH_DATE && out->v.dt.prec > EHR_FHIRPATH_PREC_DAY)
            return false;
        break;
    default:
        if (!s)
            return false;
        out->v.s.p = s;
        out->v.s.n = json_string_length(v);
        break;
    }
    out->kind = (uint8_t)kind;
    return true;
}

void fp_item_from_json(const json_t *v, const json_t *ext, const ehr_fhir_type *t,
                       const json_t *resource, fp_item *out)
{
    memset(out, 0, sizeof *out);
    out->ftype = t;
    out->node = v;
    out->ext = ext;
    out->resource = resource;
    out->index = -1;
    if (v && json_is_object(v)) {
        out->kind = EHR_FHIRPATH_OBJECT;
        /* elements of type Resource hold any resource, named by resourceType */
        if (!t || t->kind == EHR_FHIR_KIND_RESOURCE) {
            const ehr_fhir_type *rt = fp_resource_type(v);
            if (rt) {
                out->ftype = rt;
                out->resource = v;
            }
        }
        return;
    }
    if (!v || json_is_null(v)) {
        out->node = NULL;
        out->kind = (uint8_t)(t && t->kind == EHR_FHIR_KIND_PRIMITIVE ? prim_kind(t->prim)
                                                                      : EHR_FHIRPATH_STRING);
        out->flags = FP_F_NOVALUE;
        return;
    }
    if (t && t->kind == EHR_FHIR_KIND_PRIMITIVE && scalar_as(v, prim_kind(t->prim), out))
        return;
    /* unknown type (or data not matching it): take what the JSON says */
    if (json_is_boolean(v))
        scalar_as(v, EHR_FHIRPATH_BOOLEAN, out);
    else if (ehr_json_is_number(v))
        scalar_as(v, ehr_json_is_integer(v) ? EHR_FHIRPATH_INTEGER : EHR_FHIRPATH_DECIMAL, out);
    else if (ehr_json_is_string(v))
        scalar_as(v, EHR_FHIRPATH_STRING, out);
    else {
        /* an array inside an array: not FHIR; expose nothing usable */
        out->kind = EHR_FHIRPATH_STRING;
        out->flags = FP_F_NOVALUE;
    }
}

/* Add the values of JSON property key (and its "_key" companion). */
static ehr_status add_property(fp_ctx *c, const fp_item *parent, const char *key, size_t klen,
                               const ehr_fhir_type *t, fp_coll *out)
{
    json_t *obj = (json_t *)parent->node;
    char buf[128];
    if (klen + 1 >= sizeof buf)
        return EHR_OK; /* no FHIR name is this long */
    /* one lookup gives the value and jansson's own copy of the key, which
     * items keep as their location (for FHIRPath Patch) */
    memcpy(buf + 1, key, klen);
    buf[klen + 1] = '\0';
    void *iv = json_object_iter_at(obj, buf + 1);
    const json_t *v = iv ? json_object_iter_value(iv) : NULL;
    const char *skey = iv ? json_object_iter_key(iv) : NULL;
    const json_t *e = NULL;
    if (!t || t->kind == EHR_FHIR_KIND_PRIMITIVE) {
        buf[0] = '_';
        void *ie = json_object_iter_at(obj, buf);
        if (ie) {
            e = json_object_iter_value(ie);
            if (!skey)
                skey = json_object_iter_key(ie) + 1;
        }
    }
    if (!v && !e)
        return EHR_OK;
    const json_t *res = parent->resource;
    if (json_is_array(v) || json_is_array(e)) {
        size_t nv = json_is_array(v) ? json_array_size(v) : 0;
        size_t ne = json_is_array(e) ? json_array_size(e) : 0;
        size_t n = nv > ne ? nv : ne;
        ehr_status st = fp_step(c, n);
        if (st)
            return st;
        for (size_t i = 0; i < n; i++) {
            const json_t *vi = i < nv ? json_array_get(v, i) : NULL;
            const json_t *ei = i < ne ? json_array_get(e, i) : NULL;
            if (ei && json_is_null(ei))
                ei = NULL;
            if ((!vi || json_is_null(vi)) && !ei)
                continue;
            fp_item it;
            fp_item_from_json(vi, ei, t, res, &it);
            it.parent = obj;
            it.key = skey;
            it.index = (int32_t)i;
            if ((st = fp_push(c, out, &it)))
                return st;
        }
        return EHR_OK;
    }
    if (e && json_is_null(e))
        e = NULL;
    if ((!v || json_is_null(v)) && !e)
        return EHR_OK;
    ehr_status st = fp_step(c, 1);
    if (st)
        return st;
    fp_item it;
    fp_item_from_json(v, e, t, res, &it);
    it.parent = obj;
    it.key = skey;
    return fp_push(c, out, &it);
}

/* Navigate to an element named name when the parent's type is not known:
 * the plain key, else a choice key "nameXxx" whose suffix names a type. */
static ehr_status child_untyped(fp_ctx *c, const fp_item *it, const char *name, size_t len,
                                fp_coll *out)
{
    json_t *obj = (json_t *)it->node;
    bool has = json_object_getn(obj, name, len) != NULL;
    if (!has && len < 120) {
        char b[128];
        b[0] = '_';
        memcpy(b + 1, name, len);
        has = json_object_getn(obj, b, len + 1) != NULL;
    }
    if (has)
        return add_property(c, it, name, len, NULL, out);
    for (void *iter = json_object_iter(obj); iter; iter = json_object_iter_next(obj, iter)) {
        const char *key = json_object_iter_key(iter);
        size_t klen = json_object_iter_key_len(iter);
        if (klen > len && memcmp(key, name, len) == 0 && key[len] >= 'A' && key[len] <= 'Z') {
            const ehr_fhir_type *t = ehr_fhir_type_find(key + len, klen - len);
            if (!t) {
                char lc[64];
                if (klen - len < sizeof lc) {
                    memcpy(lc, key + len, klen - len);
                    lc[0] = (char)(lc[0] + 32);
                    t = ehr_fhir_type_find(lc, klen - len);
                }
            }
            if (t) {
                ehr_status st = add_property(c, it, key, klen, t, out);
                if (st)
                    return st;
            }
        }
    }
    return EHR_OK;
}

static ehr_status typeinfo_member(fp_ctx *c, const fp_item *it, const char *name, size_t len,
                                  fp_coll *out)
{
    const fp_typeinfo *ti = it->v.ti;
    const char *v = NULL;
    if (len == 9 && memcmp(name, "namespace", 9) == 0)
        v = ti->ns;
    else if (len == 4 && memcmp(name, "name", 4) == 0)
        v = ti->name;
    else if (len == 8 && memcmp(name, "baseType", 8) == 0)
        v = ti->base;
    if (!v)
        return EHR_OK;
    return fp_push_str(c, out, v, strlen(v));
}

static ehr_status children_all(fp_ctx *c, const fp_item *it, fp_coll *out);

ehr_status fp_children(fp_ctx *c, const fp_item *it, const char *name, size_t len, fp_coll *out)
{
    if (!name)
        return children_all(c, it, out);
    if (it->kind == EHR_FHIRPATH_TYPEINFO)
        return typeinfo_member(c, it, name, len, out);
    if (it->kind == EHR_FHIRPATH_QUANTITY) {
        /* the two components of a System.Quantity (N1 4.1.6) */
        const fp_qty *q = it->v.q;
        if (len == 5 && memcmp(name, "value", 5) == 0)
            return fp_push_dec(c, out, q->value);
        if (len == 4 && memcmp(name, "unit", 4) == 0)
            return fp_push_str(c, out, q->unit, strlen(q->unit));
        return EHR_OK;
    }
    if (it->kind != EHR_FHIRPATH_OBJECT) {
        /* a primitive: its id and extensions live in the companion object */
        if (!it->ext || !it->ftype)
            return EHR_OK;
        fp_item holder = *it;
        holder.node = it->ext;
        const ehr_fhir_type *et = NULL;
        if (len == 9 && memcmp(name, "extension", 9) == 0)
            et = ehr_fhir_type_find("Extension", 9);
        else if (!(len == 2 && memcmp(name, "id", 2) == 0))
            return EHR_OK;
        else
            et = ehr_fhir_type_find("string", 6);
        return add_property(c, &holder, name, len, et, out);
    }
    const ehr_fhir_type *t = it->ftype;
    if (!t)
        return child_untyped(c, it, name, len, out);
    /* FHIRPath names a choice element without its type ("value", not
     * "valueQuantity"): anything else is not an element of the type. */
    const ehr_fhir_element *el = ehr_fhir_element_get(t, name, len);
    if (!el)
        return EHR_OK;
    if (!el->is_choice)
        return add_property(c, it, name, len, el->n_types ? el->types[0] : NULL, out);
    for (uint16_t k = 0; k < el->n_types; k++) {
        char key[128];
        size_t kl = ehr_fhir_json_name(el, el->types[k], key, sizeof key);
        if (kl < sizeof key) {
            ehr_status st = add_property(c, it, key, kl, el->types[k], out);
            if (st)
                return st;
        }
    }
    return EHR_OK;
}

static ehr_status children_all(fp_ctx *c, const fp_item *it, fp_coll *out)
{
    if (it->kind != EHR_FHIRPATH_OBJECT) {
        if (it->ext && it->ftype) {
            ehr_status st = fp_children(c, it, "id", 2, out);
            return st ? st : fp_children(c, it, "extension", 9, out);
        }
        return EHR_OK;
    }
    json_t *obj = (json_t *)it->node;
    for (void *iter = json_object_iter(obj); iter; iter = json_object_iter_next(obj, iter)) {
        const char *key = json_object_iter_key(iter);
        size_t klen = json_object_iter_key_len(iter);
        if (klen == 12 && memcmp(key, "resourceType", 12) == 0)
            continue;
        const char *k = key;
        size_t kl = klen;
        if (k[0] == '_') {
            /* a companion: handled with its value unless the value is absent */
            if (json_object_getn(obj, k + 1, kl - 1))
                continue;
            k++;
            kl--;
        }
        const ehr_fhir_type *t = NULL;
        if (it->ftype) {
            const ehr_fhir_element *el = ehr_fhir_element_find(it->ftype, k, kl, &t);
            if (!el)
                t = NULL;
        }
        ehr_status st = add_property(c, it, k, kl, t, out);
        if (st)
            return st;
    }
    return EHR_OK;
}

/* ---- scalar helpers ---- */

ehr_status fp_singleton(fp_ctx *c, const fp_node *n, const fp_coll *in, const fp_item **out)
{
    if (in->n > 1)
        return fp_error(c, n, "expected a single item, got a collection of %zu", in->n);
    *out = in->n ? &in->items[0] : NULL;
    return EHR_OK;
}

int fp_to_bool(fp_ctx *c, const fp_node *n, const fp_coll *in)
{
    if (in->n == 0)
        return FP_EMPTY;
    if (in->n > 1) {
        fp_error(c, n, "expected a single Boolean, got a collection of %zu items", in->n);
        return FP_ERR;
    }
    const fp_item *it = &in->items[0];
    if (it->kind == EHR_FHIRPATH_BOOLEAN) {
        if (it->flags & FP_F_NOVALUE)
            return FP_EMPTY;
        return it->v.b ? FP_TRUE : FP_FALSE;
    }
    /* singleton evaluation (N1 4.5): one non-Boolean item counts as true */
    return FP_TRUE;
}

const char *fp_item_type_name(const fp_item *it, const char **ns)
{
    if (it->ftype) {
        *ns = "FHIR";
        return it->ftype->name;
    }
    *ns = "System";
    switch (it->kind) {
    case EHR_FHIRPATH_BOOLEAN:
        return "Boolean";
    case EHR_FHIRPATH_INTEGER:
        return "Integer";
    case EHR_FHIRPATH_DECIMAL:
        return "Decimal";
    case EHR_FHIRPATH_STRING:
        return "String";
    case EHR_FHIRPATH_DATE:
        return "Date";
    case EHR_FHIRPATH_DATETIME:
        return "DateTime";
    case EHR_FHIRPATH_TIME:
        return "Time";
    case EHR_FHIRPATH_QUANTITY:
        return "Quantity";
    case EHR_FHIRPATH_TYPEINFO:
        return "TypeInfo";
    default:
        return "Any";
    }
}

bool fp_item_is(const fp_item *it, const fp_typeref *t, bool exact)
{
    if (t->any)
        return true;
    if (t->sys && !it->ftype && it->kind == t->sys)
        return true;
    if (t->ftype && it->ftype) {
        if (exact && t->ftype->kind == EHR_FHIR_KIND_PRIMITIVE)
            return it->ftype == t->ftype;
        return ehr_fhir_type_is_a(it->ftype, t->ftype);
    }
    return false;
}

bool fp_is_quantity_type(const ehr_fhir_type *t)
{
    static const ehr_fhir_type *qt;
    const ehr_fhir_type *q = __atomic_load_n(&qt, __ATOMIC_ACQUIRE);
    if (!q) {
        q = ehr_fhir_type_find("Quantity", 8);
        __atomic_store_n(&qt, q, __ATOMIC_RELEASE);
    }
    return t && q && ehr_fhir_type_is_a(t, q);
}

const fp_qty *fp_item_quantity(fp_ctx *c, const fp_item *it)
{
    if (it->kind == EHR_FHIRPATH_QUANTITY)
        return it->v.q;
    if (it->kind != EHR_FHIRPATH_OBJECT || !fp_is_quantity_type(it->ftype))
        return NULL;
    const json_t *v = json_object_get(it->node, "value");
    const char *num = ehr_json_number_text(v);
    if (!num)
        return NULL;
    fp_qty *q = fp_alloc(c, sizeof *q);
    if (!q)
        return NULL;
    memset(q, 0, sizeof *q);
    if (!fp_dec_parse(num, strlen(num), &q->value))
        return NULL;
    const char *code = ehr_json_get_string(it->node, "code");
    const char *unit = ehr_json_get_string(it->node, "unit");
    const char *system = ehr_json_get_string(it->node, "system");
    q->quoted = true;
    if (code && system && strcmp(system, "http://unitsofmeasure.org") == 0)
        q->unit = code;
    else if (code && system &&
             strcmp(system, "http://hl7.org/fhirpath/CodeSystem/calendar-units") == 0) {
        q->unit = code;
        q->cal = (uint8_t)fp_calendar_unit(code, strlen(code));
        q->quoted = false;
    } else
        q->unit = code ? code : unit ? unit : "1";
    return q;
}

/* ---- variables ---- */

static ehr_status push_json_values(fp_ctx *c, const json_t *v, const ehr_fhir_type *t, fp_coll *out)
{
    if (!v)
        return EHR_OK;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            ehr_status st = push_json_values(c, json_array_get(v, i), t, out);
            if (st)
                return st;
        }
        return EHR_OK;
    }
    if (json_is_null(v))
        return EHR_OK;
    fp_item it;
    fp_item_from_json(v, NULL, t, NULL, &it);
    if (it.kind == EHR_FHIRPATH_OBJECT && !it.resource)
        it.resource = NULL;
    return fp_push(c, out, &it);
}

static ehr_status eval_var(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    const char *name = n->name;
    size_t len = n->name_len;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, sizeof(lit) - 1) == 0)
    if (IS("context"))
        return fp_append(c, out, &c->context);
    if (IS("resource"))
        return fp_append(c, out, &c->resource);
    if (IS("rootResource"))
        return fp_append(c, out, &c->root_resource);
    for (const fp_var *v = c->vars; v; v = v->next)
        if (v->len == len && memcmp(v->name, name, len) == 0)
            return fp_append(c, out, &v->value);
    const ehr_fhirpath_env *env = c->env;
    for (size_t i = 0; env && i < env->n_vars; i++) {
        const ehr_fhirpath_var *v = &env->vars[i];
        if (v->name && strlen(v->name) == len && memcmp(v->name, name, len) == 0) {
            const ehr_fhir_type *t = v->type ? ehr_fhir_type_find(v->type, strlen(v->type)) : NULL;
            return push_json_values(c, v->value, t, out);
        }
    }
    const char *val = NULL;
    char *buf = NULL;
    if (IS("ucum"))
        val = "http://unitsofmeasure.org";
    else if (IS("sct"))
        val = "http://snomed.info/sct";
    else if (IS("loinc"))
        val = "http://loinc.org";
    else if (len > 3 && memcmp(name, "vs-", 3) == 0)
        val = buf = ehr_arena_printf(c->arena, "http://hl7.org/fhir/ValueSet/%.*s", (int)(len - 3),
                                     name + 3);
    else if (len > 4 && memcmp(name, "ext-", 4) == 0)
        val = buf = ehr_arena_printf(c->arena, "http://hl7.org/fhir/StructureDefinition/%.*s",
                                     (int)(len - 4), name + 4);
#undef IS
    if ((len > 3 && memcmp(name, "vs-", 3) == 0) || (len > 4 && memcmp(name, "ext-", 4) == 0)) {
        if (!buf)
            return fp_nomem(c);
    }
    if (!val)
        return fp_error(c, n, "unknown environment variable %%%.*s", (int)len, name);
    return fp_push_str(c, out, val, strlen(val));
}

static ehr_status eval_sub(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    memset(out, 0, sizeof *out);
    return fp_eval(c, n, s, out);
}

static ehr_status eval_member(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    fp_coll tmp;
    const fp_coll *in;
    ehr_status st;
    if (n->left) {
        if ((st = eval_sub(c, n->left, s, &tmp)))
            return st;
        in = &tmp;
    } else {
        in = s->focus;
    }
    for (size_t i = 0; i < in->n; i++) {
        const fp_item *it = &in->items[i];
        /* A path may start with the type of its context: Patient.name
         * (N1 section 3). A type name never names an element. */
        if (n->tname && it->ftype) {
            if (ehr_fhir_type_is_a(it->ftype, n->tname)) {
                if ((st = fp_push(c, out, it)))
                    return st;
                continue;
            }
        }
        if ((st = fp_children(c, it, n->name, n->name_len, out)))
            return st;
    }
    return EHR_OK;
}

static ehr_status eval_indexer(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    fp_coll in, idx;
    ehr_status st = eval_sub(c, n->left, s, &in);
    if (st || (st = eval_sub(c, n->args[0], s, &idx)))
        return st;
    const fp_item *i;
    if ((st = fp_singleton(c, n, &idx, &i)))
        return st;
    if (!i)
        return EHR_OK;
    if (i->kind != EHR_FHIRPATH_INTEGER) {
        const char *ns;
        return fp_error(c, n, "an index must be an Integer, not %s", fp_item_type_name(i, &ns));
    }
    if (i->v.i < 0 || (uint64_t)i->v.i >= in.n)
        return EHR_OK;
    return fp_push(c, out, &in.items[i->v.i]);
}

ehr_status fp_eval(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    ehr_status st = fp_step(c, 1);
    if (st)
        return st;
    if (++c->depth > MAX_EVAL_DEPTH) {
        c->depth--;
        return fp_limit(c, "evaluation nested too deeply");
    }
    switch (n->kind) {
    case FPN_LITERAL:
        st = fp_push(c, out, &n->lit);
        break;
    case FPN_EMPTY:
        break;
    case FPN_THIS:
        st = s->this_item ? fp_push(c, out, s->this_item) : fp_append(c, out, s->focus);
        break;
    case FPN_INDEX:
        st = fp_push_int(c, out, s->index);
        break;
    case FPN_TOTAL:
        for (const fp_scope *p = s; p; p = p->parent) {
            if (p->total) {
                st = fp_append(c, out, p->total);
                break;
            }
        }
        break;
    case FPN_VAR:
        st = eval_var(c, n, s, out);
        break;
    case FPN_MEMBER:
        st = eval_member(c, n, s, out);
        break;
    case FPN_FUNC: {
        fp_coll tmp;
        const fp_coll *in = s->focus;
        if (n->left) {
            st = eval_sub(c, n->left, s, &tmp);
            in = &tmp;
        }
        if (!st)
            st = n->fn->impl(c, n, s, in, out);
        break;
    }
    case FPN_INDEXER:
        st = eval_indexer(c, n, s, out);
        break;
    case FPN_UNARY:
        st = fp_eval_unary(c, n, s, out);
        break;
    case FPN_BINARY:
        st = fp_eval_binary(c, n, s, out);
        break;
    case FPN_TYPEOP:
        st = fp_eval_typeop(c, n, s, out);
        break;
    case FPN_BAD:
        st = fp_error(c, n, "%s", n->name);
        break;
    default:
        st = fp_error(c, n, "internal: bad node");
        break;
    }
    c->depth--;
    return st;
}

ehr_status fp_eval_on(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_item *item,
                      int64_t index, fp_coll *out)
{
    fp_coll focus = {(fp_item *)item, 1, 1};
    fp_scope sc = *s;
    sc.this_item = item;
    sc.focus = &focus;
    sc.index = index;
    sc.parent = s;
    sc.total = NULL;
    memset(out, 0, sizeof *out);
    fp_var *saved = c->vars;
    ehr_status st = fp_eval(c, n, &sc, out);
    c->vars = saved;
    return st;
}

ehr_status fp_eval_arg(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    memset(out, 0, sizeof *out);
    fp_var *saved = c->vars;
    ehr_status st = fp_eval(c, n, s, out);
    c->vars = saved;
    return st;
}

/* ---- entry points ---- */

static ehr_status item_for_root(fp_ctx *c, const json_t *j, const char *type, fp_coll *out)
{
    memset(out, 0, sizeof *out);
    if (!j)
        return EHR_OK;
    const ehr_fhir_type *t = type ? ehr_fhir_type_find(type, strlen(type)) : NULL;
    fp_item it;
    fp_item_from_json(j, NULL, t, NULL, &it);
    if (it.kind == EHR_FHIRPATH_OBJECT && it.ftype && it.ftype->kind == EHR_FHIR_KIND_RESOURCE)
        it.resource = j;
    return fp_push(c, out, &it);
}

ehr_status ehr_fhirpath_eval(const ehr_fhirpath_expr *e, const json_t *resource,
                             const ehr_fhirpath_env *env, ehr_arena *arena,
                             ehr_fhirpath_result *out, ehr_err *err)
{
    out->count = 0;
    out->items = NULL;
    fp_ctx c;
    memset(&c, 0, sizeof c);
    c.arena = arena;
    c.env = env;
    c.expr = e;
    c.err = err;
    c.max_steps = env && env->max_steps ? env->max_steps : EHR_FHIRPATH_DEFAULT_MAX_STEPS;
    c.max_items = env && env->max_items ? env->max_items : EHR_FHIRPATH_DEFAULT_MAX_ITEMS;
    c.max_bytes = env && env->max_bytes ? env->max_bytes : EHR_FHIRPATH_DEFAULT_MAX_BYTES;
    ehr_status st = item_for_root(&c, resource, env ? env->context_type : NULL, &c.context);
    if (st)
        return st;
    if (env && env->resource) {
        if ((st = item_for_root(&c, env->resource, NULL, &c.resource)))
            return st;
    } else {
        c.resource = c.context;
    }
    if (env && env->root_resource) {
        if ((st = item_for_root(&c, env->root_resource, NULL, &c.root_resource)))
            return st;
    } else {
        c.root_resource = c.resource;
    }
    /* contained resources resolve against the resource that holds them */
    if (c.context.n && !c.context.items[0].resource && c.resource.n)
        c.context.items[0].resource = c.resource.items[0].node;
    fp_scope s;
    memset(&s, 0, sizeof s);
    s.focus = &c.context;
    fp_coll res;
    memset(&res, 0, sizeof res);
    st = fp_eval(&c, e->root, &s, &res);
    if (st)
        return st;
    out->count = res.n;
    out->items = res.items;
    return EHR_OK;
}

ehr_status ehr_fhirpath_eval_bool(const ehr_fhirpath_expr *e, const json_t *resource,
                                  const ehr_fhirpath_env *env, ehr_arena *arena, int *value,
                                  ehr_err *err)
{
    ehr_fhirpath_result r;
    ehr_status st = ehr_fhirpath_eval(e, resource, env, arena, &r, err);
    *value = -1;
    if (st)
        return st;
    if (r.count == 0)
        return EHR_OK;
    if (r.count > 1)
        return ehr_err_set(err, EHR_EUNPROCESSABLE,
                           "execution error at column 1: expected a single Boolean, got %zu items",
                           r.count);
    const fp_item *it = &r.items[0];
    if (it->kind == EHR_FHIRPATH_BOOLEAN && (it->flags & FP_F_NOVALUE))
        return EHR_OK;
    *value = it->kind == EHR_FHIRPATH_BOOLEAN ? it->v.b : 1;
    return EHR_OK;
}
