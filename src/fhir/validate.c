/*
 * validate.c - structural validation of FHIR R4 JSON (see validate.h).
 *
 * One recursive walk over the JSON tree, guided by the generated model.
 * The current location is kept in one growing buffer: a step appends to
 * it and truncates it back when done, so an issue's expression is the
 * buffer's content at that moment.
 *
 * Rules followed: FHIR R4 JSON representation (2.6.2): property names,
 * arrays for repeating elements, primitive extensions in "_name" and the
 * null alignment of primitive arrays, no empty objects/arrays/strings;
 * datatypes (2.24); cardinality and required bindings of the
 * StructureDefinitions; invariants ele-1, ext-1, dom-2, dom-4, dom-5.
 */
#include "fhir/validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/json.h"

#define DEFAULT_MAX_DEPTH 64
/* scratch slots per object: more than any type has, else the heap is used */
#define LOCAL_SLOTS 64

struct ctx {
    ehr_fhir_issues *issues;
    ehr_buf path;
    unsigned depth, max_depth;
    bool bindings, ref_targets;
    ehr_status st; /* EHR_ENOMEM once anything failed to allocate */
    const ehr_fhir_type *t_resource, *t_extension, *t_coding, *t_codeable, *t_reference,
        *t_narrative;
};

static void issue(struct ctx *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void issue_sev(struct ctx *c, ehr_fhir_severity sev, const char *code, const char *fmt,
                      va_list ap)
{
    char msg[900];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *where = c->path.len ? c->path.data : NULL;
    if (ehr_fhir_issue_add(c->issues, sev, code, where, "%s", msg) != EHR_OK)
        c->st = EHR_ENOMEM;
}

static void issue(struct ctx *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    issue_sev(c, EHR_SEV_ERROR, code, fmt, ap);
    va_end(ap);
}

static void warning(struct ctx *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warning(struct ctx *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    issue_sev(c, EHR_SEV_WARNING, code, fmt, ap);
    va_end(ap);
}

/* Once the list is full, there is no point in walking on. */
static bool full(const struct ctx *c)
{
    size_t max = c->issues->max ? c->issues->max : 100;
    return c->issues->n >= max || c->st != EHR_OK;
}

/* ---- location ---------------------------------------------------------- */

static size_t path_mark(struct ctx *c)
{
    return c->path.len;
}

static void path_reset(struct ctx *c, size_t mark)
{
    c->path.len = mark;
    if (c->path.data)
        c->path.data[mark] = 0;
}

static void path_add(struct ctx *c, const char *s)
{
    if (ehr_buf_puts(&c->path, s) != EHR_OK)
        c->st = EHR_ENOMEM;
}

static void path_child(struct ctx *c, const char *name)
{
    if (c->path.len)
        path_add(c, ".");
    path_add(c, name);
}

static void path_index(struct ctx *c, size_t i)
{
    if (ehr_buf_printf(&c->path, "[%zu]", i) != EHR_OK)
        c->st = EHR_ENOMEM;
}

/* ".value.ofType(Quantity)" for a choice, ".status" otherwise */
static void path_element(struct ctx *c, const ehr_fhir_element *e, const ehr_fhir_type *t)
{
    path_child(c, e->name);
    if (e->is_choice && t) {
        path_add(c, ".ofType(");
        path_add(c, t->code);
        path_add(c, ")");
    }
}

/* ---- helpers ----------------------------------------------------------- */

static const char *json_kind(const json_t *v)
{
    if (!v)
        return "nothing";
    if (ehr_json_is_number(v))
        return "a number";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* What JSON a primitive takes (FHIR R4 2.6.2.1). */
static const char *prim_json(ehr_fhir_prim p)
{
    switch (p) {
    case EHR_PRIM_BOOLEAN:
        return "a JSON boolean (true or false, without quotes)";
    case EHR_PRIM_INTEGER:
    case EHR_PRIM_UNSIGNEDINT:
    case EHR_PRIM_POSITIVEINT:
    case EHR_PRIM_DECIMAL:
        return "a JSON number (without quotes)";
    default:
        return "a JSON string";
    }
}

/* A suggestion for an unknown property: a case-insensitive match. */
static const char *similar_name(const ehr_fhir_type *t, const char *key)
{
    for (uint32_t i = 0; i < t->n_elements; i++)
        if (!t->elements[i].is_choice && strcasecmp(t->elements[i].name, key) == 0)
            return t->elements[i].name;
    return NULL;
}

/* "valueQuantity, valueString, ..." for a choice element, into buf */
static void choice_names(const ehr_fhir_element *e, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (uint16_t k = 0; k < e->n_types; k++) {
        char name[80];
        ehr_fhir_json_name(e, e->types[k], name, sizeof name);
        int w = snprintf(buf + n, size - n, "%s%s", k ? ", " : "", name);
        if (w < 0 || (size_t)w >= size - n) {
            if (size > 4)
                memcpy(buf + size - 4, "...", 4);
            return;
        }
        n += (size_t)w;
    }
}

/* "male, female, other, unknown" (at most a few) into buf */
static void code_list(const ehr_fhir_valueset *vs, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    uint32_t shown = 0;
    for (uint32_t i = 0; i < vs->n_codes && shown < 12; i++) {
        if (i && strcmp(vs->codes[i].code, vs->codes[i - 1].code) == 0)
            continue;
        int w = snprintf(buf + n, size - n, "%s%s", shown ? ", " : "", vs->codes[i].code);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
        shown++;
    }
    if (shown < vs->n_codes && n + 6 < size && shown == 12)
        memcpy(buf + n, ", ...", 6);
}

static void validate_value(struct ctx *c, const ehr_fhir_element *e, const ehr_fhir_type *t,
                           const json_t *v, const json_t *ext);
static void validate_object(struct ctx *c, const json_t *obj, const ehr_fhir_type *t);
static void validate_resource(struct ctx *c, const json_t *v, const ehr_fhir_type *expected,
                              bool contained);

/* ---- primitives -------------------------------------------------------- */

static void check_binding_code(struct ctx *c, const ehr_fhir_element *e, const char *code)
{
    const ehr_fhir_valueset *vs = e->binding;
    if (!c->bindings || !vs || !vs->complete || !code)
        return;
    if (ehr_fhir_valueset_has(vs, NULL, code))
        return;
    char list[400];
    code_list(vs, list, sizeof list);
    issue(c, "code-invalid",
          "'%.80s' is not a valid code here: use one of %s (required value set %s)", code, list,
          vs->url);
}

/* True when v is a well-formed value of the primitive type t. */
static bool check_primitive(struct ctx *c, const ehr_fhir_element *e, const ehr_fhir_type *t,
                            const json_t *v)
{
    ehr_fhir_prim p = t->prim;
    const char *text = NULL;
    size_t len = 0;
    bool ok_kind;
    switch (p) {
    case EHR_PRIM_BOOLEAN:
        ok_kind = json_is_boolean(v);
        text = json_is_true(v) ? "true" : "false";
        len = strlen(text);
        break;
    case EHR_PRIM_INTEGER:
    case EHR_PRIM_UNSIGNEDINT:
    case EHR_PRIM_POSITIVEINT:
    case EHR_PRIM_DECIMAL:
        ok_kind = ehr_json_is_number(v);
        if (ok_kind) {
            text = ehr_json_number_text(v);
            len = strlen(text);
        }
        break;
    default:
        ok_kind = ehr_json_is_string(v);
        if (ok_kind) {
            text = ehr_json_string(v);
            len = json_string_length(v);
        }
        break;
    }
    if (!ok_kind) {
        if (json_is_object(v))
            issue(c, "structure",
                  "a %s must be %s, not an object; put the id and extensions of a primitive "
                  "in a property named '_' + its name",
                  t->name, prim_json(p));
        else if (ehr_json_is_string(v) && p != EHR_PRIM_BOOLEAN)
            issue(c, "structure", "a %s must be %s, not a string: write %.40s without quotes",
                  t->name, prim_json(p), ehr_json_string(v));
        else
            issue(c, "structure", "a %s must be %s, not %s", t->name, prim_json(p), json_kind(v));
        return false;
    }
    const char *why = ehr_fhir_primitive_check(p, text, len);
    if (why) {
        if (len > 80 || p == EHR_PRIM_XHTML)
            issue(c, "value", "invalid %s: %s", t->name, why);
        else
            issue(c, "value", "'%s' is not a valid %s: %s", text, t->name, why);
        return false;
    }
    if (e && e->binding && p == EHR_PRIM_CODE)
        check_binding_code(c, e, text);
    return true;
}

/* The narrative's div: XHTML with only basic formatting (txt-1, txt-2). */
static void check_div(struct ctx *c, const json_t *v)
{
    char why[400];
    int rc = ehr_fhir_narrative_check(ehr_json_string(v), json_string_length(v), why, sizeof why);
    if (rc < 0)
        issue(c, rc == -2 ? "invariant" : "value", "%s", why);
    else if (rc > 0)
        warning(c, "value", "%s", why);
}

/* ---- complex values ------------------------------------------------------ */

static void check_coding_binding(struct ctx *c, const ehr_fhir_valueset *vs, const json_t *coding)
{
    const char *system = ehr_json_get_string(coding, "system");
    const char *code = ehr_json_get_string(coding, "code");
    if (!system || !code || !ehr_fhir_valueset_has_system(vs, system))
        return;
    if (ehr_fhir_valueset_has(vs, system, code))
        return;
    size_t m = path_mark(c);
    path_child(c, "code");
    char list[400];
    code_list(vs, list, sizeof list);
    issue(c, "code-invalid",
          "'%.80s' is not a code of %.200s allowed here: use one of %s (required value set %s)",
          code, system, list, vs->url);
    path_reset(c, m);
}

static void check_complex_binding(struct ctx *c, const ehr_fhir_element *e, const ehr_fhir_type *t,
                                  const json_t *v)
{
    const ehr_fhir_valueset *vs = e->binding;
    if (!c->bindings || !vs || !vs->complete)
        return;
    if (t == c->t_coding) {
        check_coding_binding(c, vs, v);
    } else if (t == c->t_codeable) {
        const json_t *codings = json_object_get(v, "coding");
        size_t i;
        const json_t *cd;
        if (!json_is_array(codings))
            return;
        json_array_foreach(codings, i, cd)
        {
            if (!json_is_object(cd))
                continue;
            size_t m = path_mark(c);
            path_child(c, "coding");
            path_index(c, i);
            check_coding_binding(c, vs, cd);
            path_reset(c, m);
        }
    }
}

/* A relative reference "Type/id" must name a type the element allows. */
static void check_reference_target(struct ctx *c, const ehr_fhir_element *e, const json_t *v)
{
    if (!c->ref_targets || !e->target_profiles)
        return;
    const char *ref = ehr_json_get_string(v, "reference");
    if (!ref || ref[0] < 'A' || ref[0] > 'Z')
        return;
    const char *slash = strchr(ref, '/');
    if (!slash || strchr(ref, ':'))
        return;
    const ehr_fhir_type *rt = ehr_fhir_type_find(ref, (size_t)(slash - ref));
    if (!rt || rt->kind != EHR_FHIR_KIND_RESOURCE)
        return;
    char allowed[300];
    size_t n = 0;
    allowed[0] = 0;
    for (const char *const *p = e->target_profiles; *p; p++) {
        const ehr_fhir_type *tt = ehr_fhir_resource_type(*p);
        if (strcmp(*p, "Resource") == 0 || (tt && ehr_fhir_type_is_a(rt, tt)))
            return;
        int w = snprintf(allowed + n, sizeof allowed - n, "%s%s", n ? ", " : "", *p);
        if (w > 0 && (size_t)w < sizeof allowed - n)
            n += (size_t)w;
    }
    size_t m = path_mark(c);
    path_child(c, "reference");
    issue(c, "invalid", "references to %s are not allowed here: it must refer to %s", rt->name,
          allowed);
    path_reset(c, m);
}

/* One value (not an array) of element e, of type t; ext is its "_name"
   companion (or NULL). */
static void validate_single(struct ctx *c, const ehr_fhir_element *e, const ehr_fhir_type *t,
                            const json_t *v, const json_t *ext)
{
    if (t->kind == EHR_FHIR_KIND_PRIMITIVE) {
        if (v && check_primitive(c, e, t, v) && t->prim == EHR_PRIM_XHTML && !full(c))
            check_div(c, v);
        if (ext && !json_is_null(ext)) {
            if (!json_is_object(ext))
                issue(c, "structure",
                      "the '_' companion of a primitive must be an object with id and/or "
                      "extension, not %s",
                      json_kind(ext));
            else
                validate_object(c, ext, t);
        }
        return;
    }
    if (t == c->t_resource) {
        validate_resource(c, v, NULL, e && strcmp(e->name, "contained") == 0);
        return;
    }
    if (!json_is_object(v)) {
        issue(c, "structure", "a %s must be a JSON object, not %s", t->name, json_kind(v));
        return;
    }
    validate_object(c, v, t);
    if (e && e->binding)
        check_complex_binding(c, e, t, v);
    if (e && t == c->t_reference)
        check_reference_target(c, e, v);
}

/* The value(s) of element e from the JSON property v (may be NULL when only
   the "_name" companion ext is present). */
static void validate_value(struct ctx *c, const ehr_fhir_element *e, const ehr_fhir_type *t,
                           const json_t *v, const json_t *ext)
{
    if (e->max == 0) {
        issue(c, "structure", "%s is not allowed here (its cardinality is 0..0): remove it",
              e->name);
        return;
    }
    if (!e->is_array) {
        if (json_is_array(v) || json_is_array(ext)) {
            issue(c, "structure",
                  "%s takes a single value, not an array: remove the [ ] (at most one value)",
                  e->name);
            return;
        }
        if ((v && json_is_null(v)) || (ext && json_is_null(ext))) {
            issue(c, "structure", "null is not a value: leave the element out");
            return;
        }
        validate_single(c, e, t, v, ext);
        return;
    }
    /* repeating: an array, even of one */
    if ((v && !json_is_array(v)) || (ext && !json_is_array(ext))) {
        issue(c, "structure", "%s repeats, so its value must be an array: wrap it in [ ]", e->name);
        return;
    }
    size_t n = v ? json_array_size(v) : 0, nx = ext ? json_array_size(ext) : 0;
    if ((v && n == 0) || (ext && nx == 0)) {
        issue(c, "structure", "empty arrays are not allowed in FHIR JSON: leave the element out");
        return;
    }
    if (v && ext && n != nx) {
        issue(c, "structure",
              "%s has %zu values but _%s has %zu entries: the two arrays must line up, with "
              "null where one side has nothing",
              e->name, n, e->name, nx);
        return;
    }
    size_t count = n > nx ? n : nx;
    if (count > e->max)
        issue(c, "structure", "%s has %zu values, but at most %u are allowed", e->name, count,
              e->max);
    size_t m = path_mark(c);
    for (size_t i = 0; i < count && !full(c); i++) {
        const json_t *item = v ? json_array_get(v, i) : NULL;
        const json_t *xi = ext ? json_array_get(ext, i) : NULL;
        path_index(c, i);
        bool vnull = !item || json_is_null(item);
        bool xnull = !xi || json_is_null(xi);
        if (vnull && xnull)
            issue(c, "structure",
                  v && ext ? "null in both %s and _%s: an entry needs a value or an extension"
                           : "null is not a value in %s%s: remove it",
                  v ? "" : "_", e->name);
        else if (vnull && t->kind != EHR_FHIR_KIND_PRIMITIVE)
            issue(c, "structure", "null is not a value: remove it from the array");
        else
            validate_single(c, e, t, vnull ? NULL : item, xi);
        path_reset(c, m);
    }
}

/* ---- objects ------------------------------------------------------------ */

/* The reports below are kept out of validate_object, which recurses, so
   that their buffers don't grow every level's stack frame. */

/* An unknown JSON property key in an object of type t. */
static __attribute__((noinline)) void report_unknown(struct ctx *c, const ehr_fhir_type *t,
                                                     const char *key)
{
    bool under = key[0] == '_';
    const char *name = under ? key + 1 : key;
    const char *like = similar_name(t, name);
    const ehr_fhir_element *ch = NULL;
    for (uint32_t i = 0; i < t->n_elements && !ch; i++)
        if (t->elements[i].is_choice &&
            strncmp(name, t->elements[i].name, strlen(t->elements[i].name)) == 0)
            ch = &t->elements[i];
    if (ch) {
        char names[600];
        choice_names(ch, names, sizeof names);
        issue(c, "structure", "'%.80s' is not a valid name for %s[x]: use one of %s", key, ch->name,
              names);
    } else if (like) {
        issue(c, "structure",
              "unknown element '%.80s' in %s: did you mean '%s%s'? (names are case-sensitive)", key,
              t->name, under ? "_" : "", like);
    } else if (strcmp(key, "resourceType") == 0) {
        issue(c, "structure", "resourceType is only allowed on a resource, not in a %s", t->name);
    } else {
        issue(c, "structure",
              "unknown element '%.80s' in %s: remove it, or carry the data in an extension", key,
              t->name);
    }
}

/* A required element e that is absent. */
static __attribute__((noinline)) void report_missing(struct ctx *c, const ehr_fhir_element *e)
{
    if (e->is_choice) {
        char names[600];
        choice_names(e, names, sizeof names);
        issue(c, "required", "missing required element %s[x]: add one of %s", e->name, names);
    } else {
        char max[16] = "*";
        if (e->max != UINT32_MAX)
            snprintf(max, sizeof max, "%u", e->max);
        issue(c, "required", "missing required element '%s' (%s has cardinality %u..%s): add it",
              e->name, e->path, e->min, max);
    }
}

struct slot {
    const char *key;        /* the JSON property that gave this element a value */
    const ehr_fhir_type *t; /* for a choice, the variant used */
};

static void validate_object(struct ctx *c, const json_t *obj, const ehr_fhir_type *t)
{
    if (full(c))
        return;
    if (c->depth >= c->max_depth) {
        issue(c, "too-costly", "nested too deeply (more than %u levels)", c->max_depth);
        return;
    }
    c->depth++;
    bool is_resource = t->kind == EHR_FHIR_KIND_RESOURCE;
    if (json_object_size(obj) == 0) {
        issue(c, "structure", "empty objects are not allowed in FHIR JSON: leave the element out");
        goto out;
    }
    struct slot local[LOCAL_SLOTS];
    struct slot *slots = local;
    if (t->n_elements > LOCAL_SLOTS) {
        slots = calloc(t->n_elements, sizeof *slots);
        if (!slots) {
            c->st = EHR_ENOMEM;
            goto out;
        }
    } else {
        memset(slots, 0, t->n_elements * sizeof *slots);
    }

    size_t m = path_mark(c);
    const char *key;
    json_t *val;
    size_t n_content = 0;
    json_object_foreach((json_t *)obj, key, val)
    {
        if (full(c))
            break;
        if (is_resource && strcmp(key, "resourceType") == 0)
            continue;
        bool under = key[0] == '_';
        const char *name = under ? key + 1 : key;
        const ehr_fhir_type *vt = NULL;
        const ehr_fhir_element *e = ehr_fhir_element_find(t, name, strlen(name), &vt);
        if (!e) {
            path_child(c, key);
            report_unknown(c, t, key);
            path_reset(c, m);
            continue;
        }
        size_t idx = (size_t)(e - t->elements);
        if (under) {
            if (!vt || vt->kind != EHR_FHIR_KIND_PRIMITIVE) {
                path_child(c, key);
                issue(c, "structure",
                      "'%.80s' is only for primitive values, but %s is a %s: put id and extension "
                      "inside the object itself",
                      key, name, vt ? vt->name : "complex element");
                path_reset(c, m);
                continue;
            }
            /* with its value: checked together below, when the value comes */
            if (json_object_get(obj, name))
                continue;
        }
        n_content += strcmp(name, "id") != 0;
        if (slots[idx].key) {
            path_element(c, e, vt);
            if (e->is_choice)
                issue(c, "structure",
                      "%s[x] has more than one value ('%s' and '%s'): keep only one", e->name,
                      slots[idx].key, key);
            path_reset(c, m);
            continue;
        }
        slots[idx].key = key;
        slots[idx].t = vt;
        if (!vt) {
            issue(c, "structure", "element %s has no type in the model", e->path);
            continue;
        }
        path_element(c, e, vt);
        if (under) {
            validate_value(c, e, vt, NULL, val);
        } else {
            const json_t *ext = NULL;
            if (vt->kind == EHR_FHIR_KIND_PRIMITIVE) {
                char ukey[128];
                int w = snprintf(ukey, sizeof ukey, "_%s", key);
                if (w > 0 && (size_t)w < sizeof ukey)
                    ext = json_object_get(obj, ukey);
            }
            validate_value(c, e, vt, val, ext);
        }
        path_reset(c, m);
    }

    if (!full(c)) {
        /* ele-1: every element has a value or children other than id */
        if (!is_resource && t->kind != EHR_FHIR_KIND_PRIMITIVE && n_content == 0 &&
            json_object_get(obj, "id"))
            issue(c, "invariant",
                  "an element with only an id has no content (ele-1): add content or remove it");
        for (uint32_t i = 0; i < t->n_elements; i++) {
            const ehr_fhir_element *e = &t->elements[i];
            if (e->min > 0 && !slots[i].key) {
                path_child(c, e->name);
                report_missing(c, e);
                path_reset(c, m);
            }
        }
        /* ext-1: an extension has a value or nested extensions, not both */
        if (t == c->t_extension) {
            const ehr_fhir_element *ve = ehr_fhir_element_get(t, "value", 5);
            const ehr_fhir_element *xe = ehr_fhir_element_get(t, "extension", 9);
            bool has_v = ve && slots[ve - t->elements].key;
            bool has_x = xe && slots[xe - t->elements].key;
            if (has_v && has_x)
                issue(c, "invariant",
                      "an extension has either a value[x] or nested extensions, not both "
                      "(ext-1)");
            else if (!has_v && !has_x)
                issue(c, "invariant", "an extension needs a value[x] or nested extensions (ext-1)");
        }
    }
    if (slots != local)
        free(slots);
out:
    c->depth--;
}

/* A resource: in a contained list, Bundle entry, Parameters, or the root.
   expected, when given, is the type it must be. */
static void validate_resource(struct ctx *c, const json_t *v, const ehr_fhir_type *expected,
                              bool contained)
{
    if (!json_is_object(v)) {
        issue(c, "structure", "a resource must be a JSON object, not %s", json_kind(v));
        return;
    }
    const json_t *rtj = json_object_get(v, "resourceType");
    const char *rt = ehr_json_string(rtj);
    if (!rtj) {
        issue(c, "required",
              "missing resourceType: a resource needs \"resourceType\": \"Patient\" (or another "
              "resource type)");
        return;
    }
    if (!rt) {
        issue(c, "structure", "resourceType must be a string naming the resource type");
        return;
    }
    const ehr_fhir_type *t = ehr_fhir_resource_type(rt);
    if (!t) {
        const ehr_fhir_type *any = ehr_fhir_type_find(rt, strlen(rt));
        if (any)
            issue(c, "not-supported",
                  "'%.80s' is not a resource type (it is a %s): use a resource type such as "
                  "Patient or Observation",
                  rt, any->kind == EHR_FHIR_KIND_PRIMITIVE ? "primitive data type" : "data type");
        else
            issue(c, "not-supported",
                  "unknown resourceType '%.80s': use one of the FHIR R4 resource types "
                  "(names are case-sensitive, e.g. Patient)",
                  rt);
        return;
    }
    if (t->is_abstract) {
        issue(c, "structure", "%.80s is abstract: use a concrete resource type", rt);
        return;
    }
    if (expected && !ehr_fhir_type_is_a(t, expected)) {
        issue(c, "structure", "expected a resource of type %s, not %.80s", expected->name, rt);
        return;
    }
    if (contained) {
        /* dom-2, dom-4, dom-5 (FHIR R4 2.36: contained resources) */
        if (json_object_get(v, "contained"))
            issue(c, "invariant",
                  "a contained resource may not contain resources itself (dom-2): move them "
                  "up into the container");
        const json_t *meta = json_object_get(v, "meta");
        if (json_is_object(meta)) {
            if (json_object_get(meta, "versionId") || json_object_get(meta, "lastUpdated"))
                issue(c, "invariant",
                      "a contained resource may not have meta.versionId or meta.lastUpdated "
                      "(dom-4)");
            if (json_object_get(meta, "security"))
                issue(c, "invariant",
                      "a contained resource may not have security labels (dom-5): label the "
                      "container");
        }
        if (json_object_get(v, "text"))
            warning(c, "invariant",
                    "a contained resource should not have a narrative (dom-6 guidance)");
    }
    validate_object(c, v, t);
}

ehr_status ehr_fhir_validate_ex(const json_t *value, const ehr_fhir_validate_opts *opts,
                                ehr_fhir_issues *issues)
{
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.issues = issues;
    c.max_depth = opts && opts->max_depth ? opts->max_depth : DEFAULT_MAX_DEPTH;
    c.bindings = !(opts && opts->no_bindings);
    c.ref_targets = !(opts && opts->no_reference_targets);
    c.t_resource = ehr_fhir_type_find("Resource", 8);
    c.t_extension = ehr_fhir_type_find("Extension", 9);
    c.t_coding = ehr_fhir_type_find("Coding", 6);
    c.t_codeable = ehr_fhir_type_find("CodeableConcept", 15);
    c.t_reference = ehr_fhir_type_find("Reference", 9);
    c.t_narrative = ehr_fhir_type_find("Narrative", 9);

    const ehr_fhir_type *t = NULL;
    if (opts && opts->type) {
        t = ehr_fhir_type_find(opts->type, strlen(opts->type));
        if (!t) {
            if (ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "not-supported", NULL,
                                   "unknown type '%s'", opts->type) != EHR_OK)
                return EHR_ENOMEM;
            return EHR_EINVAL;
        }
    }
    if (!value) {
        issue(&c, "structure", "no content");
    } else if (!t || t->kind == EHR_FHIR_KIND_RESOURCE) {
        /* the location starts at the resource type once it is known */
        const char *rt = json_is_object(value) ? ehr_json_get_string(value, "resourceType") : NULL;
        if (rt && ehr_fhir_resource_type(rt))
            path_add(&c, rt);
        validate_resource(&c, value, t, false);
    } else {
        path_add(&c, t->name);
        /* a data type: primitive or complex */
        validate_single(&c, NULL, t, value, NULL);
    }
    ehr_buf_free(&c.path);
    if (c.st != EHR_OK)
        return c.st;
    return ehr_fhir_issues_errors(issues) ? EHR_EINVAL : EHR_OK;
}

ehr_status ehr_fhir_validate(const json_t *resource, ehr_fhir_issues *issues)
{
    return ehr_fhir_validate_ex(resource, NULL, issues);
}
