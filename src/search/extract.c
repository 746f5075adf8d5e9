/*
 * extract.c - search index values of a resource, from the FHIRPath
 * expression of every search parameter of its type (params.h), evaluated
 * on each write. Values become ehr_store_value rows (store.h) by the
 * parameter's type and the FHIR type of what the expression selected:
 *
 *   string     string-like primitives; HumanName and Address by their parts
 *   token      Coding, CodeableConcept (each coding; text for :text),
 *              Identifier (also "code:of-type" rows), ContactPoint (value),
 *              code/boolean/string/uri/id primitives (code, no system)
 *   date       date, dateTime, instant (the range of their precision),
 *              Period (open ends unbounded), Timing (events, bounds)
 *   reference  Reference (type and id from relative or absolute URLs, the
 *              text as written; "code:identifier" token rows from
 *              Reference.identifier), canonical and uri (text only)
 *   quantity   Quantity and its profiles (value, system, code or unit),
 *              plus a canonical UCUM row when the unit converts
 *   number     integer and decimal
 *   uri        uri, url, canonical, oid, uuid
 *   composite  each item of the base expression: its components' rows
 *              as "code$N" sharing one grp number
 *
 * An expression that fails on a resource contributes nothing (logged at
 * debug level without content: no PHI in logs).
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "fhir/compartment.h"
#include "fhir/model.h"
#include "fhirpath/fhirpath_int.h"
#include "search/params.h"
#include "search/search.h"
#include "search/search_int.h"

/* ---- text normalisation: lowercase, accents removed ---- */

/* Base letter of a Latin-1 Supplement / Latin Extended-A character
 * (from the Unicode decompositions; ligatures and stroked letters by their
 * first letter), else the lowercase character. */
static uint32_t fold(uint32_t c)
{
    static const char l1[] = /* U+00C0 .. U+00FF; \0: not a letter */
        "aaaaaaaceeeeiiiidnooooo\0ouuuuytsaaaaaaaceeeeiiiidnooooo\0ouuuuyty";
    static const char ea[] = /* U+0100 .. U+017F */
        "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiiijjkkkllllllllllnnnnnnnnnoooooooorrrrrr"
        "ssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";
    if (c >= 0xC0 && c <= 0xFF && l1[c - 0xC0])
        return (uint32_t)l1[c - 0xC0];
    if (c >= 0x100 && c <= 0x17F && ea[c - 0x100])
        return (uint32_t)ea[c - 0x100];
    return fp_lower(c);
}

char *ehr_search_normalize(ehr_arena *a, const char *s, size_t len)
{
    char *out = ehr_arena_alloc(a, len * 2 + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = fp_utf8_decode(s, len, i, &cp);
        i += n ? n : 1;
        if (cp >= 0x300 && cp <= 0x36F) /* combining accents */
            continue;
        j += fp_utf8_encode(fold(cp), out + j);
    }
    out[j] = '\0';
    return out;
}

/* ---- rows ---- */

struct rows {
    ehr_arena *a;
    struct ehr_store_value *v;
    size_t n, cap;
    int grp;
};

static struct ehr_store_value *row(struct rows *r, ehr_idx_kind kind, const char *param)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 32;
        struct ehr_store_value *p = ehr_arena_calloc(r->a, nc, sizeof *p);
        if (!p)
            return NULL;
        if (r->n)
            memcpy(p, r->v, r->n * sizeof *p);
        r->v = p;
        r->cap = nc;
    }
    struct ehr_store_value *v = &r->v[r->n++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->param = param;
    v->grp = r->grp;
    return v;
}

static const char *str(const json_t *o, const char *key)
{
    return ehr_json_get_string(o, key);
}

static ehr_status add_string(struct rows *r, const char *param, const char *s)
{
    if (!s || !*s)
        return EHR_OK;
    struct ehr_store_value *v = row(r, EHR_IDX_STRING, param);
    if (!v || !(v->s1 = ehr_search_normalize(r->a, s, strlen(s))))
        return EHR_ENOMEM;
    v->s2 = s;
    return EHR_OK;
}

static ehr_status add_strings(struct rows *r, const char *param, const json_t *o, const char *key)
{
    const json_t *x = json_object_get(o, key);
    if (json_is_array(x)) {
        for (size_t i = 0; i < json_array_size(x); i++)
            if (add_string(r, param, ehr_json_string(json_array_get(x, i))))
                return EHR_ENOMEM;
        return EHR_OK;
    }
    return add_string(r, param, ehr_json_string(x));
}

static ehr_status add_token(struct rows *r, const char *param, const char *system, const char *code,
                            const char *text)
{
    if (!code && !text)
        return EHR_OK;
    struct ehr_store_value *v = row(r, EHR_IDX_TOKEN, param);
    if (!v)
        return EHR_ENOMEM;
    v->s1 = system ? system : "";
    v->s2 = code;
    v->s3 = text ? ehr_search_normalize(r->a, text, strlen(text)) : NULL;
    return EHR_OK;
}

static const char *derived(struct rows *r, const char *param, const char *suffix)
{
    size_t n = strlen(param), m = strlen(suffix);
    char *p = ehr_arena_alloc(r->a, n + m + 1);
    if (p) {
        memcpy(p, param, n);
        memcpy(p + n, suffix, m + 1);
    }
    return p;
}

static ehr_status token_object(struct rows *r, const char *param, const char *tname,
                               const json_t *o)
{
    if (!strcmp(tname, "CodeableConcept")) {
        const char *text = str(o, "text");
        const json_t *cs = json_object_get(o, "coding");
        for (size_t i = 0; i < json_array_size(cs); i++) {
            const json_t *cd = json_array_get(cs, i);
            const char *disp = str(cd, "display");
            if (add_token(r, param, str(cd, "system"), str(cd, "code"), disp ? disp : text))
                return EHR_ENOMEM;
        }
        if (text && add_token(r, param, NULL, NULL, text))
            return EHR_ENOMEM;
        return EHR_OK;
    }
    if (!strcmp(tname, "Coding"))
        return add_token(r, param, str(o, "system"), str(o, "code"), str(o, "display"));
    if (!strcmp(tname, "Identifier")) {
        const json_t *type = json_object_get(o, "type");
        const char *value = str(o, "value");
        if (add_token(r, param, str(o, "system"), value, str(type, "text")))
            return EHR_ENOMEM;
        const json_t *cs = json_object_get(type, "coding");
        if (value && json_array_size(cs)) {
            const char *p = derived(r, param, ":of-type");
            if (!p)
                return EHR_ENOMEM;
            for (size_t i = 0; i < json_array_size(cs); i++) {
                const json_t *cd = json_array_get(cs, i);
                const char *code = str(cd, "code");
                if (!code)
                    continue;
                size_t n = strlen(code) + strlen(value) + 2;
                char *cv = ehr_arena_alloc(r->a, n);
                if (!cv)
                    return EHR_ENOMEM;
                snprintf(cv, n, "%s|%s", code, value);
                if (add_token(r, p, str(cd, "system"), cv, NULL))
                    return EHR_ENOMEM;
            }
        }
        return EHR_OK;
    }
    if (!strcmp(tname, "ContactPoint"))
        return add_token(r, param, NULL, str(o, "value"), NULL);
    return EHR_OK;
}

/* The range a date/dateTime/instant text covers; false when malformed. */
static bool date_of(const json_t *j, int64_t *lo, int64_t *hi)
{
    const char *s = ehr_json_string(j);
    return s && ehr_search_date_range(s, lo, hi);
}

static ehr_status add_date(struct rows *r, const char *param, int64_t lo, int64_t hi)
{
    struct ehr_store_value *v = row(r, EHR_IDX_DATE, param);
    if (!v)
        return EHR_ENOMEM;
    v->lo = lo;
    v->hi = hi;
    return EHR_OK;
}

static ehr_status date_object(struct rows *r, const char *param, const char *tname, const json_t *o)
{
    int64_t lo, hi, l2, h2;
    if (!strcmp(tname, "Period")) {
        const json_t *s = json_object_get(o, "start"), *e = json_object_get(o, "end");
        if (!s && !e)
            return EHR_OK;
        lo = INT64_MIN;
        hi = INT64_MAX;
        if (s && !date_of(s, &lo, &h2))
            return EHR_OK;
        if (e && !date_of(e, &l2, &hi))
            return EHR_OK;
        return add_date(r, param, lo, hi);
    }
    if (!strcmp(tname, "Timing")) {
        const json_t *ev = json_object_get(o, "event");
        bool any = false;
        lo = INT64_MAX;
        hi = INT64_MIN;
        for (size_t i = 0; i < json_array_size(ev); i++)
            if (date_of(json_array_get(ev, i), &l2, &h2)) {
                any = true;
                lo = l2 < lo ? l2 : lo;
                hi = h2 > hi ? h2 : hi;
            }
        const json_t *b = json_object_get(json_object_get(o, "repeat"), "boundsPeriod");
        if (b) {
            const json_t *s = json_object_get(b, "start"), *e = json_object_get(b, "end");
            int64_t bl = INT64_MIN, bh = INT64_MAX;
            if ((!s || date_of(s, &bl, &h2)) && (!e || date_of(e, &l2, &bh)) && (s || e)) {
                any = true;
                lo = bl < lo ? bl : lo;
                hi = bh > hi ? bh : hi;
            }
        }
        return any ? add_date(r, param, lo, hi) : EHR_OK;
    }
    return EHR_OK;
}

/* Type and id from a reference text: "Patient/1", "Patient/1/_history/2",
 * "http://x/fhir/Patient/1". False when it names no resource. */
bool ehr_search_ref_parts(const char *ref, ehr_arena *a, const char **type, const char **id)
{
    if (!ref || !*ref || *ref == '#' || !strncmp(ref, "urn:", 4))
        return false;
    size_t n = strlen(ref);
    const char *h = strstr(ref, "/_history/");
    if (h)
        n = (size_t)(h - ref);
    /* last two segments */
    size_t e = n;
    size_t s2 = e;
    while (s2 > 0 && ref[s2 - 1] != '/')
        s2--;
    if (s2 == 0 || s2 == e)
        return false;
    size_t s1 = s2 - 1;
    while (s1 > 0 && ref[s1 - 1] != '/')
        s1--;
    size_t tl = s2 - 1 - s1;
    char tb[64];
    if (tl == 0 || tl >= sizeof tb)
        return false;
    memcpy(tb, ref + s1, tl);
    tb[tl] = '\0';
    if (!ehr_fhir_resource_type(tb))
        return false;
    *type = ehr_arena_strndup(a, ref + s1, tl);
    *id = ehr_arena_strndup(a, ref + s2, e - s2);
    return *type && *id;
}

static ehr_status add_reference(struct rows *r, const char *param, const char *ref)
{
    if (!ref || !*ref)
        return EHR_OK;
    struct ehr_store_value *v = row(r, EHR_IDX_REFERENCE, param);
    if (!v)
        return EHR_ENOMEM;
    const char *t = NULL, *id = NULL;
    if (ehr_search_ref_parts(ref, r->a, &t, &id)) {
        v->s1 = t;
        v->s2 = id;
    }
    v->s3 = ref;
    return EHR_OK;
}

static ehr_status reference_object(struct rows *r, const char *param, const json_t *o)
{
    if (add_reference(r, param, str(o, "reference")))
        return EHR_ENOMEM;
    const json_t *ident = json_object_get(o, "identifier");
    if (ident && str(ident, "value")) {
        const char *p = derived(r, param, ":identifier");
        if (!p || add_token(r, p, str(ident, "system"), str(ident, "value"), NULL))
            return EHR_ENOMEM;
    }
    return EHR_OK;
}

static double num_of(const json_t *j, bool *ok)
{
    const char *t = ehr_json_number_text(j);
    *ok = t != NULL;
    return t ? strtod(t, NULL) : 0;
}

#define UCUM "http://unitsofmeasure.org"

/* The canonical form of value in UCUM code (base units), for comparing
 * mg/dL with g/L. False when the unit is unknown or not a ratio scale. */
bool ehr_search_ucum_canonical(const char *code, double value, ehr_arena *a, const char **unit,
                               double *out)
{
    if (!code || !*code)
        return false;
    fp_unit u;
    fp_ucum_parse(code, strlen(code), &u);
    if (!u.valid || u.special || u.arbitrary)
        return false;
    static const char *const dims[FP_UCUM_DIMS] = {"m", "g", "s", "rad", "K", "C", "cd", "mol"};
    char buf[96] = "";
    size_t n = 0;
    for (int i = 0; i < FP_UCUM_DIMS; i++)
        if (u.dim[i])
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s%d", n ? "." : "", dims[i],
                                  u.dim[i]);
    if (!n)
        snprintf(buf, sizeof buf, "1");
    double den = fp_dec_to_double(u.den);
    if (den == 0)
        return false;
    *out = value * fp_dec_to_double(u.num) / den;
    *unit = ehr_arena_strdup(a, buf);
    return *unit != NULL;
}

static ehr_status add_quantity(struct rows *r, const char *param, double value, const char *system,
                               const char *code)
{
    struct ehr_store_value *v = row(r, EHR_IDX_QUANTITY, param);
    if (!v)
        return EHR_ENOMEM;
    v->num = value;
    v->s1 = system;
    v->s2 = code;
    const char *cu;
    double cv;
    if ((!system || !strcmp(system, UCUM)) &&
        ehr_search_ucum_canonical(code, value, r->a, &cu, &cv)) {
        v = row(r, EHR_IDX_QUANTITY, param);
        if (!v)
            return EHR_ENOMEM;
        v->num = cv;
        v->s1 = EHR_SEARCH_CANON_SYSTEM;
        v->s2 = cu;
    }
    return EHR_OK;
}

static ehr_status quantity_object(struct rows *r, const char *param, const json_t *o)
{
    bool ok;
    double value = num_of(json_object_get(o, "value"), &ok);
    if (!ok)
        return EHR_OK;
    const char *code = str(o, "code");
    return add_quantity(r, param, value, str(o, "system"), code ? code : str(o, "unit"));
}

static ehr_status money_object(struct rows *r, const char *param, const json_t *o)
{
    bool ok;
    double value = num_of(json_object_get(o, "value"), &ok);
    return ok ? add_quantity(r, param, value, "urn:iso:std:iso:4217", str(o, "currency")) : EHR_OK;
}

static const char *item_type(const ehr_fhirpath_item *it)
{
    const ehr_fhir_type *t = ehr_fhirpath_item_fhir_type(it);
    return t ? t->name : "";
}

/* One item of a parameter's result into rows. */
static ehr_status item_rows(struct rows *r, const char *param, ehr_sp_kind kind,
                            const ehr_fhirpath_item *it)
{
    ehr_fhirpath_kind k = ehr_fhirpath_item_kind(it);
    const char *tname = item_type(it);
    const json_t *j = ehr_fhirpath_item_json(it);
    size_t len = 0;
    const char *s = NULL;
    if (k == EHR_FHIRPATH_STRING) {
        s = ehr_fhirpath_item_string(it, &len);
        s = s ? ehr_arena_strndup(r->a, s, len) : NULL;
        if (!s)
            return EHR_OK;
    }
    switch (kind) {
    case EHR_SP_STRING:
        if (s)
            return add_string(r, param, s);
        if (k == EHR_FHIRPATH_OBJECT && !strcmp(tname, "HumanName")) {
            static const char *const keys[] = {"family", "given", "prefix", "suffix", "text"};
            for (size_t i = 0; i < 5; i++)
                if (add_strings(r, param, j, keys[i]))
                    return EHR_ENOMEM;
        } else if (k == EHR_FHIRPATH_OBJECT && !strcmp(tname, "Address")) {
            static const char *const keys[] = {"line",       "city",    "district", "state",
                                               "postalCode", "country", "text"};
            for (size_t i = 0; i < 7; i++)
                if (add_strings(r, param, j, keys[i]))
                    return EHR_ENOMEM;
        }
        return EHR_OK;
    case EHR_SP_TOKEN:
        if (k == EHR_FHIRPATH_BOOLEAN)
            return add_token(r, param, NULL, ehr_fhirpath_item_bool(it) ? "true" : "false", NULL);
        if (s)
            return add_token(r, param, NULL, s, NULL);
        if (k == EHR_FHIRPATH_INTEGER || k == EHR_FHIRPATH_DECIMAL) {
            const char *t = ehr_fhirpath_item_text(it, r->a);
            return t ? add_token(r, param, NULL, t, NULL) : EHR_OK;
        }
        if (k == EHR_FHIRPATH_OBJECT && j)
            return token_object(r, param, tname, j);
        return EHR_OK;
    case EHR_SP_DATE:
        if (k == EHR_FHIRPATH_DATE || k == EHR_FHIRPATH_DATETIME) {
            int64_t lo, hi;
            if (date_of(j, &lo, &hi))
                return add_date(r, param, lo, hi);
            return EHR_OK;
        }
        if (k == EHR_FHIRPATH_OBJECT && j)
            return date_object(r, param, tname, j);
        return EHR_OK;
    case EHR_SP_REFERENCE:
        if (s)
            return add_reference(r, param, s);
        if (k == EHR_FHIRPATH_OBJECT && j && !strcmp(tname, "Reference"))
            return reference_object(r, param, j);
        return EHR_OK;
    case EHR_SP_QUANTITY:
        if (k == EHR_FHIRPATH_OBJECT && j &&
            (!strcmp(tname, "Quantity") || !strcmp(tname, "Age") || !strcmp(tname, "Duration") ||
             !strcmp(tname, "SimpleQuantity") || !strcmp(tname, "Distance") ||
             !strcmp(tname, "Count") || !strcmp(tname, "MoneyQuantity") || !strcmp(tname, "Money")))
            return !strcmp(tname, "Money") ? money_object(r, param, j)
                                           : quantity_object(r, param, j);
        /* a plain number as a quantity without unit */
        __attribute__((fallthrough));
    case EHR_SP_NUMBER:
        if (k == EHR_FHIRPATH_INTEGER || k == EHR_FHIRPATH_DECIMAL) {
            const char *t = ehr_fhirpath_item_text(it, r->a);
            if (!t)
                return EHR_OK;
            if (kind == EHR_SP_QUANTITY)
                return add_quantity(r, param, strtod(t, NULL), NULL, NULL);
            struct ehr_store_value *v = row(r, EHR_IDX_NUMBER, param);
            if (!v)
                return EHR_ENOMEM;
            v->num = strtod(t, NULL);
        }
        return EHR_OK;
    case EHR_SP_URI:
        if (s) {
            struct ehr_store_value *v = row(r, EHR_IDX_URI, param);
            if (!v)
                return EHR_ENOMEM;
            v->s1 = s;
        }
        return EHR_OK;
    default:
        return EHR_OK;
    }
}

/* ---- resolve(): a stub resource of the type a reference names ---- */

static pthread_mutex_t stub_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *stubs; /* type -> {"resourceType": type}, never freed */

static const json_t *resolve_stub(void *ctx, const char *reference)
{
    ehr_arena *a = ctx;
    const char *t, *id;
    if (!ehr_search_ref_parts(reference, a, &t, &id))
        return NULL;
    pthread_mutex_lock(&stub_lock);
    if (!stubs)
        stubs = json_object();
    json_t *s = stubs ? json_object_get(stubs, t) : NULL;
    if (!s && stubs) {
        s = json_pack("{s:s}", "resourceType", t);
        if (s)
            json_object_set_new(stubs, t, s);
    }
    pthread_mutex_unlock(&stub_lock);
    return s;
}

static ehr_status eval_rows(struct rows *r, const struct ehr_sp *sp, const char *param,
                            ehr_sp_kind kind, const ehr_fhirpath_expr *e, const json_t *ctx,
                            const json_t *resource, const char *ctx_type)
{
    ehr_fhirpath_env env = {.resource = resource,
                            .context_type = ctx_type,
                            .resolve = resolve_stub,
                            .resolve_ctx = r->a,
                            .max_steps = 1000000};
    ehr_fhirpath_result res;
    ehr_err err = {{0}};
    ehr_status st = ehr_fhirpath_eval(e, ctx, &env, r->a, &res, &err);
    if (st == EHR_ENOMEM)
        return st;
    if (st) {
        ehr_log(EHR_LOG_DEBUG, "search: %s.%s not extracted (%s)", sp->type, sp->code,
                ehr_status_str(st));
        return EHR_OK;
    }
    for (size_t i = 0; i < res.count; i++)
        if ((st = item_rows(r, param, kind, ehr_fhirpath_result_get(&res, i))))
            return st;
    return EHR_OK;
}

static const ehr_idx_kind kind_of_sp[] = {
    [EHR_SP_STRING] = EHR_IDX_STRING,     [EHR_SP_TOKEN] = EHR_IDX_TOKEN,
    [EHR_SP_DATE] = EHR_IDX_DATE,         [EHR_SP_REFERENCE] = EHR_IDX_REFERENCE,
    [EHR_SP_QUANTITY] = EHR_IDX_QUANTITY, [EHR_SP_NUMBER] = EHR_IDX_NUMBER,
    [EHR_SP_URI] = EHR_IDX_URI,
};

ehr_idx_kind ehr_search_idx_kind(ehr_sp_kind k)
{
    return k <= EHR_SP_URI ? kind_of_sp[k] : EHR_IDX_TOKEN;
}

static ehr_status composite_rows(struct rows *r, const struct ehr_sp *sp, const json_t *res)
{
    const ehr_fhirpath_expr *e = ehr_sp_expr(sp);
    if (!e || !sp->components)
        return EHR_OK;
    ehr_fhirpath_env env = {
        .resource = res, .resolve = resolve_stub, .resolve_ctx = r->a, .max_steps = 1000000};
    ehr_fhirpath_result items;
    ehr_err err = {{0}};
    if (ehr_fhirpath_eval(e, res, &env, r->a, &items, &err))
        return EHR_OK;
    for (size_t i = 0; i < items.count; i++) {
        const ehr_fhirpath_item *it = ehr_fhirpath_result_get(&items, i);
        const json_t *j = ehr_fhirpath_item_json(it);
        const ehr_fhir_type *t = ehr_fhirpath_item_fhir_type(it);
        if (!j || !t)
            continue;
        r->grp++;
        for (size_t c = 0; sp->components[c].code; c++) {
            const ehr_fhirpath_expr *ce = ehr_sp_component_expr(sp, c);
            if (!ce)
                continue;
            char suffix[8];
            snprintf(suffix, sizeof suffix, "$%zu", c);
            const char *p = derived(r, sp->code, suffix);
            if (!p)
                return EHR_ENOMEM;
            ehr_status st =
                eval_rows(r, sp, p, sp->components[c].kind, ce, j, res,
                          json_is_object(j) && json_object_get(j, "resourceType") ? NULL : t->name);
            if (st)
                return st;
        }
    }
    r->grp = 0;
    return EHR_OK;
}

/* ---- full text: the narrative (_text) and every string (_content) ---- */

#define MAX_TEXT 65536

static void strip_tags(ehr_buf *b, const char *html)
{
    bool tag = false;
    for (const char *p = html; *p && b->len < MAX_TEXT; p++) {
        if (*p == '<')
            tag = true;
        else if (*p == '>') {
            tag = false;
            ehr_buf_putc(b, ' ');
        } else if (!tag) {
            if (*p == '&') { /* entities become a space: words around them stay apart */
                const char *e = strchr(p, ';');
                if (e && e - p < 10) {
                    p = e;
                    ehr_buf_putc(b, ' ');
                    continue;
                }
            }
            ehr_buf_putc(b, *p);
        }
    }
}

static void all_strings(ehr_buf *b, const json_t *j, int depth)
{
    if (b->len >= MAX_TEXT || depth > 64)
        return;
    const char *s = ehr_json_string(j);
    if (s) {
        ehr_buf_puts(b, s);
        ehr_buf_putc(b, ' ');
    } else if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            all_strings(b, json_array_get(j, i), depth + 1);
    } else if (json_is_object(j)) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)j, key, v)
        {
            if (!strcmp(key, "div"))
                strip_tags(b, ehr_json_string(v) ? ehr_json_string(v) : "");
            else if (strcmp(key, "resourceType") && strcmp(key, "id") && strcmp(key, "meta") &&
                     strcmp(key, "url") && strcmp(key, "system") && strcmp(key, "reference"))
                all_strings(b, v, depth + 1);
        }
    }
}

static ehr_status text_row(struct rows *r, const char *param, const json_t *res)
{
    ehr_buf b = EHR_BUF_INIT;
    if (!strcmp(param, "_text")) {
        const char *div = ehr_json_get_string(json_object_get(res, "text"), "div");
        if (div)
            strip_tags(&b, div);
    } else {
        all_strings(&b, res, 0);
    }
    ehr_status st = EHR_OK;
    if (b.len) {
        struct ehr_store_value *v = row(r, EHR_IDX_TEXT, param);
        if (!v || !(v->s1 = ehr_arena_strndup(r->a, b.data, b.len > MAX_TEXT ? MAX_TEXT : b.len)))
            st = EHR_ENOMEM;
    }
    ehr_buf_free(&b);
    return st;
}

#define MAX_PARAMS 256

ehr_status ehr_search_extract(const char *type, const char *id, const json_t *res, ehr_arena *arena,
                              ehr_store_index *out)
{
    memset(out, 0, sizeof *out);
    struct rows r = {.a = arena};
    const struct ehr_sp *sps[MAX_PARAMS];
    size_t n = ehr_sp_list(type, sps, MAX_PARAMS);
    if (n > MAX_PARAMS)
        n = MAX_PARAMS;
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const struct ehr_sp *sp = sps[i];
        /* _id and _lastUpdated are columns of the resource itself */
        if (!strcmp(sp->code, "_id") || !strcmp(sp->code, "_lastUpdated"))
            continue;
        if (sp->kind == EHR_SP_COMPOSITE) {
            st = composite_rows(&r, sp, res);
            continue;
        }
        if (sp->kind == EHR_SP_SPECIAL)
            continue;
        if (!strcmp(sp->code, "_text") || !strcmp(sp->code, "_content")) {
            st = text_row(&r, sp->code, res);
            continue;
        }
        const ehr_fhirpath_expr *e = ehr_sp_expr(sp);
        if (e)
            st = eval_rows(&r, sp, sp->code, sp->kind, e, res, res, NULL);
    }
    if (st)
        return st;
    out->values = r.v;
    out->n_values = r.n;
    const char **pats = NULL;
    size_t np = 0;
    st = ehr_fhir_patient_compartments(type, id, res, arena, &pats, &np);
    out->patients = pats;
    out->n_patients = np;
    return st;
}
