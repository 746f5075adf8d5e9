/*
 * eval.c - the FHIRPath evaluator: navigation over FHIR JSON, literals,
 * variables and operators. Functions are in fn_*.c.
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

static bool is_quantity_type(const ehr_fhir_type *t)
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
    if (it->kind != EHR_FHIRPATH_OBJECT || !is_quantity_type(it->ftype))
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

/* ---- equality, equivalence, ordering ---- */

static bool is_num(int k)
{
    return k == EHR_FHIRPATH_INTEGER || k == EHR_FHIRPATH_DECIMAL;
}

static fp_dec num_dec(const fp_item *it)
{
    return it->kind == EHR_FHIRPATH_INTEGER ? fp_dec_from_int(it->v.i) : it->v.d;
}

static bool is_dt(int k)
{
    return k == EHR_FHIRPATH_DATE || k == EHR_FHIRPATH_DATETIME;
}

static int dt_kind(const fp_item *a, const fp_item *b)
{
    if (a->kind == EHR_FHIRPATH_TIME)
        return EHR_FHIRPATH_TIME;
    return a->kind == EHR_FHIRPATH_DATE && b->kind == EHR_FHIRPATH_DATE ? EHR_FHIRPATH_DATE
                                                                        : EHR_FHIRPATH_DATETIME;
}

/* Quantity view of an item for mixed comparisons (numbers are unit '1'). */
static const fp_qty *as_qty(fp_ctx *c, const fp_item *it, fp_qty *tmp)
{
    if (is_num(it->kind)) {
        memset(tmp, 0, sizeof *tmp);
        tmp->value = num_dec(it);
        tmp->unit = "1";
        tmp->quoted = true;
        return tmp;
    }
    return fp_item_quantity(c, it);
}

static bool str_equiv(const char *a, size_t na, const char *b, size_t nb)
{
    size_t i = 0, j = 0;
    /* ignore case, treat all whitespace alike, trim the ends */
    while (i < na && fp_is_space((unsigned char)a[i]))
        i++;
    while (j < nb && fp_is_space((unsigned char)b[j]))
        j++;
    while (na > i && fp_is_space((unsigned char)a[na - 1]))
        na--;
    while (nb > j && fp_is_space((unsigned char)b[nb - 1]))
        nb--;
    while (i < na && j < nb) {
        uint32_t x, y;
        i += fp_utf8_decode(a, na, i, &x);
        j += fp_utf8_decode(b, nb, j, &y);
        if (fp_is_space(x) && fp_is_space(y))
            continue;
        if (fp_lower(x) != fp_lower(y))
            return false;
    }
    return i == na && j == nb;
}

static int equal_impl(fp_ctx *c, const fp_item *a, const fp_item *b, bool equiv)
{
    if ((a->flags & FP_F_NOVALUE) || (b->flags & FP_F_NOVALUE))
        return equiv ? ((a->flags & b->flags & FP_F_NOVALUE) ? FP_TRUE : FP_FALSE) : FP_EMPTY;
    int ka = a->kind, kb = b->kind;
    if (ka == EHR_FHIRPATH_OBJECT && kb == EHR_FHIRPATH_OBJECT) {
        if (a->node == b->node)
            return FP_TRUE;
        return ehr_json_equal(a->node, b->node) ? FP_TRUE : FP_FALSE;
    }
    if (ka == EHR_FHIRPATH_QUANTITY || kb == EHR_FHIRPATH_QUANTITY ||
        (ka == EHR_FHIRPATH_OBJECT && is_quantity_type(a->ftype)) ||
        (kb == EHR_FHIRPATH_OBJECT && is_quantity_type(b->ftype))) {
        fp_qty ta, tb;
        const fp_qty *qa = as_qty(c, a, &ta), *qb = as_qty(c, b, &tb);
        if (!qa || !qb)
            return c->fail ? FP_ERR : FP_FALSE;
        int r;
        return fp_qty_compare(qa, qb, equiv ? 1 : 0, &r);
    }
    if (is_num(ka) && is_num(kb)) {
        if (ka == EHR_FHIRPATH_INTEGER && kb == EHR_FHIRPATH_INTEGER)
            return a->v.i == b->v.i ? FP_TRUE : FP_FALSE;
        fp_dec x = num_dec(a), y = num_dec(b);
        if (equiv) {
            int p = fp_dec_precision(x) < fp_dec_precision(y) ? fp_dec_precision(x)
                                                              : fp_dec_precision(y);
            fp_dec_round(x, p, FP_ROUND_HALF_UP, &x);
            fp_dec_round(y, p, FP_ROUND_HALF_UP, &y);
        }
        return fp_dec_cmp(x, y) == 0 ? FP_TRUE : FP_FALSE;
    }
    if (ka == EHR_FHIRPATH_STRING && kb == EHR_FHIRPATH_STRING) {
        if (equiv)
            return str_equiv(a->v.s.p, a->v.s.n, b->v.s.p, b->v.s.n) ? FP_TRUE : FP_FALSE;
        return a->v.s.n == b->v.s.n && memcmp(a->v.s.p, b->v.s.p, a->v.s.n) == 0 ? FP_TRUE
                                                                                 : FP_FALSE;
    }
    if (ka == EHR_FHIRPATH_BOOLEAN && kb == EHR_FHIRPATH_BOOLEAN)
        return a->v.b == b->v.b ? FP_TRUE : FP_FALSE;
    if ((is_dt(ka) && is_dt(kb)) || (ka == EHR_FHIRPATH_TIME && kb == EHR_FHIRPATH_TIME)) {
        int r = fp_dt_cmp(&a->v.dt, &b->v.dt, dt_kind(a, b));
        if (r == 2)
            return equiv ? FP_FALSE : FP_EMPTY;
        return r == 0 ? FP_TRUE : FP_FALSE;
    }
    if (ka == EHR_FHIRPATH_TYPEINFO && kb == EHR_FHIRPATH_TYPEINFO)
        return strcmp(a->v.ti->ns, b->v.ti->ns) == 0 && strcmp(a->v.ti->name, b->v.ti->name) == 0
                   ? FP_TRUE
                   : FP_FALSE;
    return FP_FALSE;
}

int fp_equal(fp_ctx *c, const fp_item *a, const fp_item *b)
{
    return equal_impl(c, a, b, false);
}

int fp_equiv(fp_ctx *c, const fp_item *a, const fp_item *b)
{
    return equal_impl(c, a, b, true);
}

static const char *kind_name(const fp_item *it)
{
    const char *ns;
    return fp_item_type_name(it, &ns);
}

int fp_compare(fp_ctx *c, const fp_node *n, const fp_item *a, const fp_item *b, int *r)
{
    if ((a->flags & FP_F_NOVALUE) || (b->flags & FP_F_NOVALUE))
        return FP_EMPTY;
    int ka = a->kind, kb = b->kind;
    if (is_num(ka) && is_num(kb)) {
        *r = ka == EHR_FHIRPATH_INTEGER && kb == EHR_FHIRPATH_INTEGER
                 ? (a->v.i < b->v.i ? -1 : a->v.i > b->v.i)
                 : fp_dec_cmp(num_dec(a), num_dec(b));
        return FP_TRUE;
    }
    if (ka == EHR_FHIRPATH_STRING && kb == EHR_FHIRPATH_STRING) {
        size_t m = a->v.s.n < b->v.s.n ? a->v.s.n : b->v.s.n;
        int x = memcmp(a->v.s.p, b->v.s.p, m);
        *r = x < 0 ? -1 : x > 0 ? 1 : a->v.s.n < b->v.s.n ? -1 : a->v.s.n > b->v.s.n;
        return FP_TRUE;
    }
    if ((is_dt(ka) && is_dt(kb)) || (ka == EHR_FHIRPATH_TIME && kb == EHR_FHIRPATH_TIME)) {
        int x = fp_dt_cmp(&a->v.dt, &b->v.dt, dt_kind(a, b));
        if (x == 2)
            return FP_EMPTY;
        *r = x;
        return FP_TRUE;
    }
    fp_qty ta, tb;
    const fp_qty *qa = (ka == EHR_FHIRPATH_QUANTITY || ka == EHR_FHIRPATH_OBJECT || is_num(ka))
                           ? as_qty(c, a, &ta)
                           : NULL;
    const fp_qty *qb = (kb == EHR_FHIRPATH_QUANTITY || kb == EHR_FHIRPATH_OBJECT || is_num(kb))
                           ? as_qty(c, b, &tb)
                           : NULL;
    if (c->fail)
        return FP_ERR;
    if (qa && qb &&
        (ka == EHR_FHIRPATH_QUANTITY || kb == EHR_FHIRPATH_QUANTITY || ka == EHR_FHIRPATH_OBJECT ||
         kb == EHR_FHIRPATH_OBJECT))
        return fp_qty_compare(qa, qb, 2, r);
    fp_error(c, n, "cannot compare %s with %s", kind_name(a), kind_name(b));
    return FP_ERR;
}

bool fp_coll_contains(fp_ctx *c, const fp_coll *coll, const fp_item *it)
{
    for (size_t i = 0; i < coll->n; i++)
        if (fp_equal(c, &coll->items[i], it) == FP_TRUE)
            return true;
    return false;
}

/* ---- text of values ---- */

const char *fp_item_to_string(fp_ctx *c, const fp_item *it, size_t *len)
{
    char buf[128];
    size_t n;
    if (it->flags & FP_F_NOVALUE)
        return NULL;
    switch (it->kind) {
    case EHR_FHIRPATH_STRING:
        *len = it->v.s.n;
        return it->v.s.p;
    case EHR_FHIRPATH_BOOLEAN:
        *len = it->v.b ? 4 : 5;
        return it->v.b ? "true" : "false";
    case EHR_FHIRPATH_INTEGER:
        n = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)it->v.i);
        break;
    case EHR_FHIRPATH_DECIMAL:
        n = fp_dec_format(it->v.d, buf, sizeof buf);
        break;
    case EHR_FHIRPATH_DATE:
    case EHR_FHIRPATH_DATETIME:
    case EHR_FHIRPATH_TIME:
        n = fp_dt_format(&it->v.dt, it->kind, buf, sizeof buf);
        break;
    case EHR_FHIRPATH_QUANTITY:
        n = fp_qty_format(it->v.q, buf, sizeof buf);
        break;
    case EHR_FHIRPATH_OBJECT: {
        const fp_qty *q = is_quantity_type(it->ftype) ? fp_item_quantity(c, it) : NULL;
        if (!q)
            return NULL;
        n = fp_qty_format(q, buf, sizeof buf);
        break;
    }
    default:
        return NULL;
    }
    char *p = fp_alloc(c, n + 1);
    if (!p)
        return NULL;
    memcpy(p, buf, n + 1);
    *len = n;
    return p;
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

/* ---- operators ---- */

static int cal_of_ucum(const char *u)
{
    static const struct {
        const char *u;
        int cal;
    } m[] = {{"wk", FP_CAL_WEEK},    {"d", FP_CAL_DAY},    {"h", FP_CAL_HOUR},
             {"min", FP_CAL_MINUTE}, {"s", FP_CAL_SECOND}, {"ms", FP_CAL_MILLISECOND}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(m[i].u, u) == 0)
            return m[i].cal;
    return 0;
}

static ehr_status date_arith(fp_ctx *c, const fp_node *n, const fp_item *a, const fp_qty *q,
                             bool minus, fp_coll *out)
{
    int cal = q->cal;
    if (!cal) {
        /* definite-duration UCUM units count as calendar units up to weeks;
         * 'mo' and 'a' are not calendar months and years (N1 6.6.7) */
        cal = cal_of_ucum(q->unit);
        if (!cal)
            return fp_error(c, n, "cannot add a quantity in '%s' to a date/time", q->unit);
    }
    if (a->kind == EHR_FHIRPATH_TIME && cal < FP_CAL_HOUR)
        return fp_error(c, n, "cannot add %s to a time", fp_calendar_name(cal, true));
    int64_t amount;
    if (!fp_dec_to_int64(q->value, &amount))
        return fp_error(c, n, "date/time arithmetic out of range");
    if (minus)
        amount = -amount;
    fp_item r = *a;
    r.ftype = NULL;
    r.node = NULL;
    r.ext = NULL;
    if (!fp_dt_add(&r.v.dt, a->kind, cal, amount))
        return fp_error(c, n, "date/time arithmetic out of range");
    return fp_push(c, out, &r);
}

static ehr_status arith(fp_ctx *c, const fp_node *n, int op, const fp_item *a, const fp_item *b,
                        fp_coll *out)
{
    int ka = a->kind, kb = b->kind;
    if ((a->flags | b->flags) & FP_F_NOVALUE)
        return EHR_OK;
    if (ka == EHR_FHIRPATH_INTEGER && kb == EHR_FHIRPATH_INTEGER && op != OP_DIV) {
        int64_t x = a->v.i, y = b->v.i, r;
        bool ovf = false;
        switch (op) {
        case OP_PLUS:
            ovf = __builtin_add_overflow(x, y, &r);
            break;
        case OP_MINUS:
            ovf = __builtin_sub_overflow(x, y, &r);
            break;
        case OP_MUL:
            ovf = __builtin_mul_overflow(x, y, &r);
            break;
        case OP_IDIV:
            if (y == 0 || (x == INT64_MIN && y == -1))
                return EHR_OK;
            r = x / y;
            break;
        case OP_MOD:
            if (y == 0 || (x == INT64_MIN && y == -1))
                return EHR_OK;
            r = x % y;
            break;
        default:
            return fp_error(c, n, "bad integer operator");
        }
        if (ovf)
            return EHR_OK; /* overflow: empty (N1 6.6) */
        return fp_push_int(c, out, r);
    }
    if (is_num(ka) && is_num(kb)) {
        fp_dec x = num_dec(a), y = num_dec(b), r;
        bool ok;
        switch (op) {
        case OP_PLUS:
            ok = fp_dec_add(x, y, &r);
            break;
        case OP_MINUS:
            ok = fp_dec_sub(x, y, &r);
            break;
        case OP_MUL:
            ok = fp_dec_mul(x, y, &r);
            break;
        case OP_DIV:
            ok = fp_dec_div(x, y, &r);
            break;
        case OP_IDIV:
            ok = fp_dec_div_int(x, y, &r);
            if (ok) {
                int64_t v;
                if (!fp_dec_to_int64(r, &v))
                    return EHR_OK;
                return fp_push_int(c, out, v);
            }
            break;
        case OP_MOD:
            ok = fp_dec_mod(x, y, &r);
            break;
        default:
            ok = false;
            break;
        }
        if (!ok)
            return EHR_OK; /* division by zero, overflow: empty */
        return fp_push_dec(c, out, r);
    }
    if (ka == EHR_FHIRPATH_STRING && kb == EHR_FHIRPATH_STRING && op == OP_PLUS) {
        char *p = fp_alloc(c, a->v.s.n + b->v.s.n + 1);
        if (!p)
            return c->fail;
        memcpy(p, a->v.s.p, a->v.s.n);
        memcpy(p + a->v.s.n, b->v.s.p, b->v.s.n);
        p[a->v.s.n + b->v.s.n] = '\0';
        return fp_push_str(c, out, p, a->v.s.n + b->v.s.n);
    }
    if ((is_dt(ka) || ka == EHR_FHIRPATH_TIME) && (op == OP_PLUS || op == OP_MINUS)) {
        const fp_qty *q = fp_item_quantity(c, b);
        if (q)
            return date_arith(c, n, a, q, op == OP_MINUS, out);
        if (c->fail)
            return c->fail;
    }
    if (op != OP_IDIV && op != OP_MOD) {
        fp_qty ta, tb;
        const fp_qty *qa = (ka == EHR_FHIRPATH_QUANTITY || ka == EHR_FHIRPATH_OBJECT || is_num(ka))
                               ? as_qty(c, a, &ta)
                               : NULL;
        const fp_qty *qb = (kb == EHR_FHIRPATH_QUANTITY || kb == EHR_FHIRPATH_OBJECT || is_num(kb))
                               ? as_qty(c, b, &tb)
                               : NULL;
        if (c->fail)
            return c->fail;
        if (qa && qb) {
            fp_qty *r = fp_alloc(c, sizeof *r);
            if (!r)
                return c->fail;
            if (fp_qty_arith(op, qa, qb, c->arena, r) != FP_TRUE)
                return EHR_OK;
            fp_item it;
            memset(&it, 0, sizeof it);
            it.kind = EHR_FHIRPATH_QUANTITY;
            it.v.q = r;
            return fp_push(c, out, &it);
        }
    }
    static const char *const opname[] = {
        [OP_PLUS] = "+", [OP_MINUS] = "-",  [OP_MUL] = "*",
        [OP_DIV] = "/",  [OP_IDIV] = "div", [OP_MOD] = "mod",
    };
    return fp_error(c, n, "operator %s cannot be applied to %s and %s", opname[op], kind_name(a),
                    kind_name(b));
}

static ehr_status eval_sub(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    memset(out, 0, sizeof *out);
    return fp_eval(c, n, s, out);
}

static ehr_status eval_bool_op(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    fp_coll l, r;
    ehr_status st = eval_sub(c, n->left, s, &l);
    if (st)
        return st;
    int a = fp_to_bool(c, n->left, &l);
    if (a == FP_ERR)
        return c->fail;
    /* decided by the left side alone */
    if ((n->op == OP_AND && a == FP_FALSE) || (n->op == OP_OR && a == FP_TRUE))
        return fp_push_bool(c, out, n->op == OP_OR);
    if (n->op == OP_IMPLIES && a == FP_FALSE)
        return fp_push_bool(c, out, true);
    if ((st = eval_sub(c, n->right, s, &r)))
        return st;
    int b = fp_to_bool(c, n->right, &r);
    if (b == FP_ERR)
        return c->fail;
    int res;
    switch (n->op) {
    case OP_AND:
        res = b == FP_FALSE ? FP_FALSE : (a == FP_TRUE && b == FP_TRUE) ? FP_TRUE : FP_EMPTY;
        break;
    case OP_OR:
        res = b == FP_TRUE ? FP_TRUE : (a == FP_FALSE && b == FP_FALSE) ? FP_FALSE : FP_EMPTY;
        break;
    case OP_XOR:
        res = (a == FP_EMPTY || b == FP_EMPTY) ? FP_EMPTY : (a != b) ? FP_TRUE : FP_FALSE;
        break;
    default: /* implies, left true or empty */
        if (a == FP_TRUE)
            res = b;
        else
            res = b == FP_TRUE ? FP_TRUE : FP_EMPTY;
        break;
    }
    if (res == FP_EMPTY)
        return EHR_OK;
    return fp_push_bool(c, out, res == FP_TRUE);
}

static ehr_status union_into(fp_ctx *c, fp_coll *out, const fp_coll *in)
{
    for (size_t i = 0; i < in->n; i++) {
        ehr_status st = fp_step(c, out->n + 1);
        if (st)
            return st;
        if (!fp_coll_contains(c, out, &in->items[i]) && (st = fp_push(c, out, &in->items[i])))
            return st;
    }
    return EHR_OK;
}

static int equal_colls(fp_ctx *c, const fp_coll *l, const fp_coll *r)
{
    if (l->n != r->n)
        return FP_FALSE;
    int res = FP_TRUE;
    for (size_t i = 0; i < l->n; i++) {
        int e = fp_equal(c, &l->items[i], &r->items[i]);
        if (e == FP_ERR)
            return FP_ERR;
        if (e == FP_FALSE)
            return FP_FALSE;
        if (e == FP_EMPTY)
            res = FP_EMPTY;
    }
    return res;
}

static int equiv_colls(fp_ctx *c, const fp_coll *l, const fp_coll *r)
{
    if (l->n != r->n)
        return FP_FALSE;
    if (l->n == 0)
        return FP_TRUE;
    bool *used = fp_alloc(c, r->n);
    if (!used)
        return FP_ERR;
    memset(used, 0, r->n);
    for (size_t i = 0; i < l->n; i++) {
        bool found = false;
        if (fp_step(c, r->n))
            return FP_ERR;
        for (size_t j = 0; j < r->n && !found; j++) {
            if (!used[j] && fp_equiv(c, &l->items[i], &r->items[j]) == FP_TRUE) {
                used[j] = true;
                found = true;
            }
        }
        if (c->fail)
            return FP_ERR;
        if (!found)
            return FP_FALSE;
    }
    return FP_TRUE;
}

static ehr_status eval_binary(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    switch (n->op) {
    case OP_AND:
    case OP_OR:
    case OP_XOR:
    case OP_IMPLIES:
        return eval_bool_op(c, n, s, out);
    default:
        break;
    }
    fp_coll l, r;
    ehr_status st = eval_sub(c, n->left, s, &l);
    if (st || (st = eval_sub(c, n->right, s, &r)))
        return st;
    const fp_item *a, *b;
    int res;
    switch (n->op) {
    case OP_UNION:
        if ((st = union_into(c, out, &l)))
            return st;
        return union_into(c, out, &r);
    case OP_EQ:
    case OP_NE:
        if (l.n == 0 || r.n == 0)
            return EHR_OK;
        res = equal_colls(c, &l, &r);
        if (res == FP_ERR)
            return c->fail;
        if (res == FP_EMPTY)
            return EHR_OK;
        return fp_push_bool(c, out, (res == FP_TRUE) == (n->op == OP_EQ));
    case OP_EQUIV:
    case OP_NEQUIV:
        res = equiv_colls(c, &l, &r);
        if (res == FP_ERR)
            return c->fail;
        return fp_push_bool(c, out, (res == FP_TRUE) == (n->op == OP_EQUIV));
    case OP_LT:
    case OP_GT:
    case OP_LE:
    case OP_GE: {
        if (l.n > 1 || r.n > 1)
            return fp_error(c, n, "comparison needs single items, got %zu and %zu", l.n, r.n);
        if (l.n == 0 || r.n == 0)
            return EHR_OK;
        int cmp;
        res = fp_compare(c, n, &l.items[0], &r.items[0], &cmp);
        if (res == FP_ERR)
            return c->fail;
        if (res == FP_EMPTY)
            return EHR_OK;
        bool v = n->op == OP_LT   ? cmp < 0
                 : n->op == OP_GT ? cmp > 0
                 : n->op == OP_LE ? cmp <= 0
                                  : cmp >= 0;
        return fp_push_bool(c, out, v);
    }
    case OP_IN:
    case OP_CONTAINS: {
        const fp_coll *one = n->op == OP_IN ? &l : &r;
        const fp_coll *many = n->op == OP_IN ? &r : &l;
        if (one->n > 1)
            return fp_error(c, n, "'%s' needs a single item on its %s side",
                            n->op == OP_IN ? "in" : "contains", n->op == OP_IN ? "left" : "right");
        if (one->n == 0)
            return EHR_OK;
        if ((st = fp_step(c, many->n)))
            return st;
        bool found = fp_coll_contains(c, many, &one->items[0]);
        if (c->fail)
            return c->fail;
        return fp_push_bool(c, out, found);
    }
    case OP_CONCAT: {
        const char *pa = "", *pb = "";
        size_t na = 0, nb = 0;
        if (l.n > 1 || r.n > 1)
            return fp_error(c, n, "'&' needs single items, got %zu and %zu", l.n, r.n);
        if (l.n && !(pa = fp_item_to_string(c, &l.items[0], &na))) {
            if (c->fail)
                return c->fail;
            pa = "";
            na = 0;
        }
        if (r.n && !(pb = fp_item_to_string(c, &r.items[0], &nb))) {
            if (c->fail)
                return c->fail;
            pb = "";
            nb = 0;
        }
        char *p = fp_alloc(c, na + nb + 1);
        if (!p)
            return c->fail;
        memcpy(p, pa, na);
        memcpy(p + na, pb, nb);
        p[na + nb] = '\0';
        return fp_push_str(c, out, p, na + nb);
    }
    default:
        if ((st = fp_singleton(c, n, &l, &a)) || (st = fp_singleton(c, n, &r, &b)))
            return st;
        if (!a || !b)
            return EHR_OK;
        return arith(c, n, n->op, a, b, out);
    }
}

static ehr_status eval_unary(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    fp_coll in;
    ehr_status st = eval_sub(c, n->left, s, &in);
    const fp_item *a;
    if (st || (st = fp_singleton(c, n, &in, &a)))
        return st;
    if (!a)
        return EHR_OK;
    fp_item r = *a;
    r.ftype = NULL;
    r.node = NULL;
    r.ext = NULL;
    bool neg = n->op == OP_NEG;
    switch (a->kind) {
    case EHR_FHIRPATH_INTEGER:
        if (neg) {
            if (a->v.i == INT64_MIN)
                return EHR_OK;
            r.v.i = -a->v.i;
        }
        break;
    case EHR_FHIRPATH_DECIMAL:
        if (neg)
            r.v.d = fp_dec_neg(a->v.d);
        break;
    case EHR_FHIRPATH_QUANTITY:
    case EHR_FHIRPATH_OBJECT: {
        const fp_qty *q = fp_item_quantity(c, a);
        if (!q) {
            if (c->fail)
                return c->fail;
            goto bad;
        }
        fp_qty *nq = fp_alloc(c, sizeof *nq);
        if (!nq)
            return c->fail;
        *nq = *q;
        if (neg)
            nq->value = fp_dec_neg(q->value);
        r.kind = EHR_FHIRPATH_QUANTITY;
        r.v.q = nq;
        break;
    }
    default:
        goto bad;
    }
    if (a->flags & FP_F_NOVALUE)
        return EHR_OK;
    return fp_push(c, out, &r);
bad:
    return fp_error(c, n, "unary %c cannot be applied to %s", neg ? '-' : '+', kind_name(a));
}

static ehr_status eval_typeop(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out)
{
    fp_coll in;
    ehr_status st = eval_sub(c, n->left, s, &in);
    const fp_item *a;
    if (st)
        return st;
    if (n->op == OP_AS && in.n > 1 && (n->type->ftype || n->type->sys || n->type->any)) {
        /*
         * FHIRPath N1 6.3.3 makes "as" on several items an error, but the
         * search parameters of FHIR R4 apply it to repeating elements
         * ("Observation.component.value as Quantity"), as common engines
         * allow: the operator filters like ofType(). The function form
         * as() keeps the rule (the R4 suite, testFHIRPathAsFunction21).
         */
        for (size_t i = 0; i < in.n; i++)
            if (fp_item_is(&in.items[i], n->type, true) && (st = fp_push(c, out, &in.items[i])))
                return st;
        return EHR_OK;
    }
    if ((st = fp_singleton(c, n, &in, &a)))
        return st;
    if (!n->type->ftype && !n->type->sys && !n->type->any && !n->type->none)
        return fp_error(c, n, "unknown type '%s%s%s'", n->type->ns ? n->type->ns : "",
                        n->type->ns ? "." : "", n->type->name);
    if (!a)
        return EHR_OK;
    if (n->op == OP_IS)
        return fp_push_bool(c, out, fp_item_is(a, n->type, false));
    if (fp_item_is(a, n->type, true))
        return fp_push(c, out, a);
    return EHR_OK;
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
    if (i->kind != EHR_FHIRPATH_INTEGER)
        return fp_error(c, n, "an index must be an Integer, not %s", kind_name(i));
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
        st = eval_unary(c, n, s, out);
        break;
    case FPN_BINARY:
        st = eval_binary(c, n, s, out);
        break;
    case FPN_TYPEOP:
        st = eval_typeop(c, n, s, out);
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
