/*
 * fn_fhir.c - the functions FHIR adds to FHIRPath (FHIR R4 section 2.7.1):
 * extension(), hasValue(), getValue(), resolve(), conformsTo(), memberOf(),
 * htmlChecks(), and the ones that need services ehr does not have inside an
 * expression (subsumes(), elementDefinition(), slice()), which answer empty.
 */
#include <string.h>

#include "core/json.h"
#include "fhirpath/fn.h"

static ehr_status fn_extension(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    const char *url;
    size_t ul;
    ehr_status st = fp_arg_str(c, n, s, 0, &url, &ul);
    if (st || !url)
        return st;
    for (size_t i = 0; i < in->n; i++) {
        fp_coll ext;
        memset(&ext, 0, sizeof ext);
        if ((st = fp_children(c, &in->items[i], "extension", 9, &ext)))
            return st;
        for (size_t k = 0; k < ext.n; k++) {
            const char *u = ehr_json_get_string(ext.items[k].node, "url");
            if (u && strlen(u) == ul && memcmp(u, url, ul) == 0 &&
                (st = fp_push(c, out, &ext.items[k])))
                return st;
        }
    }
    return EHR_OK;
}

static bool has_value(const fp_item *it)
{
    return it->ftype && it->ftype->kind == EHR_FHIR_KIND_PRIMITIVE && !(it->flags & FP_F_NOVALUE);
}

static ehr_status fn_has_value(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    return fp_push_bool(c, out, in->n == 1 && has_value(&in->items[0]));
}

static ehr_status fn_get_value(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    if (in->n != 1 || !has_value(&in->items[0]))
        return EHR_OK;
    fp_item r = in->items[0];
    r.ftype = NULL;
    r.node = NULL;
    r.ext = NULL;
    return fp_push(c, out, &r);
}

/* "Patient/123", "Patient/123/_history/2", "http://x/fhir/Patient/123": the
 * type and id at the end, when there are some. */
static bool ref_type_id(const char *ref, const char **type, size_t *tl, const char **id, size_t *il)
{
    size_t n = strlen(ref);
    const char *h = strstr(ref, "/_history/");
    if (h)
        n = (size_t)(h - ref);
    size_t slash = n;
    while (slash > 0 && ref[slash - 1] != '/')
        slash--;
    if (slash < 2 || slash == n)
        return false;
    size_t t0 = slash - 1;
    while (t0 > 0 && ref[t0 - 1] != '/')
        t0--;
    *type = ref + t0;
    *tl = slash - 1 - t0;
    *id = ref + slash;
    *il = n - slash;
    return *tl > 0 && *il > 0;
}

static const json_t *find_in_bundle(const json_t *bundle, const char *ref)
{
    const char *rt = ehr_json_get_string(bundle, "resourceType");
    if (!rt || strcmp(rt, "Bundle") != 0)
        return NULL;
    const json_t *entries = json_object_get(bundle, "entry");
    const char *type = NULL, *id = NULL;
    size_t tl = 0, il = 0;
    bool has_tid = ref_type_id(ref, &type, &tl, &id, &il);
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *e = json_array_get(entries, i);
        const json_t *res = json_object_get(e, "resource");
        if (!res)
            continue;
        const char *full = ehr_json_get_string(e, "fullUrl");
        if (full && strcmp(full, ref) == 0)
            return res;
        if (has_tid) {
            const char *et = ehr_json_get_string(res, "resourceType");
            const char *eid = ehr_json_get_string(res, "id");
            if (et && eid && strlen(et) == tl && memcmp(et, type, tl) == 0 && strlen(eid) == il &&
                memcmp(eid, id, il) == 0)
                return res;
        }
    }
    return NULL;
}

static ehr_status fn_resolve(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const fp_item *it = &in->items[i];
        const char *ref = NULL;
        if (it->kind == EHR_FHIRPATH_OBJECT)
            ref = ehr_json_get_string(it->node, "reference");
        else if (it->kind == EHR_FHIRPATH_STRING && !(it->flags & FP_F_NOVALUE))
            ref = ehr_arena_strndup(c->arena, it->v.s.p, it->v.s.n);
        if (!ref)
            continue;
        const json_t *found = NULL;
        const json_t *container = it->resource;
        if (!container && c->resource.n)
            container = c->resource.items[0].node;
        if (ref[0] == '#') {
            /* FHIR R4 2.3.0.2: a contained resource, or "#" the container;
             * references between contained resources resolve in the
             * container that holds them both */
            if (ref[1] == '\0') {
                found = container;
            } else {
                const json_t *where[3] = {
                    container, c->resource.n ? c->resource.items[0].node : NULL,
                    c->root_resource.n ? c->root_resource.items[0].node : NULL};
                for (int w = 0; w < 3 && !found; w++) {
                    const json_t *contained = json_object_get(where[w], "contained");
                    for (size_t k = 0; k < json_array_size(contained) && !found; k++) {
                        const char *cid = ehr_json_get_string(json_array_get(contained, k), "id");
                        if (cid && strcmp(cid, ref + 1) == 0)
                            found = json_array_get(contained, k);
                    }
                }
            }
        } else {
            if (c->root_resource.n)
                found = find_in_bundle(c->root_resource.items[0].node, ref);
            if (!found && c->resource.n)
                found = find_in_bundle(c->resource.items[0].node, ref);
            if (!found && c->env && c->env->resolve)
                found = c->env->resolve(c->env->resolve_ctx, ref);
        }
        if (!found || !json_is_object(found))
            continue;
        fp_item r;
        fp_item_from_json(found, NULL, NULL, found, &r);
        ehr_status st = fp_push(c, out, &r);
        if (st)
            return st;
    }
    return EHR_OK;
}

#define SD_BASE "http://hl7.org/fhir/StructureDefinition/"

static ehr_status fn_conforms_to(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    const char *url;
    size_t ul;
    ehr_status st = fp_arg_str(c, n, s, 0, &url, &ul);
    if (st || !url)
        return st;
    size_t bl = strlen(SD_BASE);
    const ehr_fhir_type *t = NULL;
    if (ul > bl && memcmp(url, SD_BASE, bl) == 0)
        t = ehr_fhir_type_find(url + bl, ul - bl);
    if (!t)
        return fp_error(c, n,
                        "conformsTo(): unknown profile '%.*s' (only the core "
                        "StructureDefinitions of FHIR R4 are known)",
                        (int)ul, url);
    const fp_item *it;
    if ((st = fp_input_single(c, n, in, &it)) || !it)
        return st;
    return fp_push_bool(c, out, it->ftype && ehr_fhir_type_is_a(it->ftype, t));
}

static int code_in(const ehr_fhir_valueset *vs, const char *system, const char *code)
{
    return code && ehr_fhir_valueset_has(vs, system, code);
}

static ehr_status fn_member_of(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    const char *url;
    size_t ul;
    ehr_status st = fp_arg_str(c, n, s, 0, &url, &ul);
    if (st || !url)
        return st;
    const fp_item *it;
    if ((st = fp_input_single(c, n, in, &it)) || !it)
        return st;
    const char *bar = memchr(url, '|', ul);
    char *u = ehr_arena_strndup(c->arena, url, bar ? (size_t)(bar - url) : ul);
    if (!u)
        return fp_nomem(c);
    const ehr_fhir_valueset *vs = ehr_fhir_valueset_find(u);
    /* without the expansion the answer is unknown (FHIR R4 2.7.1.1) */
    if (!vs || !vs->complete)
        return EHR_OK;
    bool r = false;
    if (it->kind == EHR_FHIRPATH_STRING) {
        char *code = ehr_arena_strndup(c->arena, it->v.s.p, it->v.s.n);
        r = code && code_in(vs, NULL, code);
    } else if (it->kind == EHR_FHIRPATH_OBJECT) {
        const json_t *codings = json_object_get(it->node, "coding");
        if (codings) {
            for (size_t k = 0; k < json_array_size(codings) && !r; k++) {
                const json_t *cd = json_array_get(codings, k);
                r = code_in(vs, ehr_json_get_string(cd, "system"), ehr_json_get_string(cd, "code"));
            }
        } else {
            r = code_in(vs, ehr_json_get_string(it->node, "system"),
                        ehr_json_get_string(it->node, "code"));
        }
    }
    return fp_push_bool(c, out, r);
}

static ehr_status fn_unknown_service(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                     const fp_coll *in, fp_coll *out)
{
    /* needs a terminology server or the full StructureDefinitions: unknown */
    return EHR_OK;
}

static bool ci_has(const char *p, size_t n, const char *needle)
{
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++) {
        size_t k = 0;
        while (k < l) {
            char a = p[i + k];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a + 32);
            if (a != needle[k])
                break;
            k++;
        }
        if (k == l)
            return true;
    }
    return false;
}

/*
 * The narrative rules of FHIR R4 section 2.4.0.1 (txt-1, txt-2): the
 * xhtml is a <div> with text in it, and has no active content: no scripts,
 * forms, embedded objects, event handler attributes or javascript: links.
 */
static ehr_status fn_html_checks(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it)
        return st;
    const char *p;
    size_t len;
    if (!fp_item_str(it, &p, &len))
        return fp_push_bool(c, out, false);
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    bool ok = len - i >= 5 && memcmp(p + i, "<div", 4) == 0 && (p[i + 4] == '>' || p[i + 4] == ' ');
    static const char *const banned[] = {"<script", "<object",     "<applet", "<embed", "<iframe",
                                         "<form",   "<input",      "<base",   "<link",  "<meta",
                                         "<style",  "javascript:", " on"};
    for (size_t k = 0; ok && k < sizeof banned / sizeof banned[0]; k++) {
        if (k == sizeof banned / sizeof banned[0] - 1) {
            /* an attribute named on...= inside a tag */
            bool in_tag = false;
            for (size_t j = 0; j + 3 < len && ok; j++) {
                if (p[j] == '<')
                    in_tag = true;
                else if (p[j] == '>')
                    in_tag = false;
                else if (in_tag && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n') &&
                         (p[j + 1] | 0x20) == 'o' && (p[j + 2] | 0x20) == 'n') {
                    size_t e = j + 3;
                    while (e < len && ((p[e] | 0x20) >= 'a' && (p[e] | 0x20) <= 'z'))
                        e++;
                    while (e < len && p[e] == ' ')
                        e++;
                    if (e < len && p[e] == '=')
                        ok = false;
                }
            }
        } else if (ci_has(p, len, banned[k])) {
            ok = false;
        }
    }
    return fp_push_bool(c, out, ok);
}

static ehr_status fn_check_modifiers(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                     const fp_coll *in, fp_coll *out)
{
    fp_coll allowed;
    ehr_status st = fp_eval_arg(c, n->args[0], s, &allowed);
    if (st)
        return st;
    for (size_t i = 0; i < in->n; i++) {
        const fp_item *it = &in->items[i];
        if (it->kind != EHR_FHIRPATH_OBJECT)
            continue;
        const json_t *mods = json_object_get(it->node, "modifierExtension");
        for (size_t k = 0; k < json_array_size(mods); k++) {
            const char *u = ehr_json_get_string(json_array_get(mods, k), "url");
            bool ok = false;
            for (size_t j = 0; u && j < allowed.n && !ok; j++) {
                const char *p;
                size_t l;
                ok = fp_item_str(&allowed.items[j], &p, &l) && strlen(u) == l &&
                     memcmp(u, p, l) == 0;
            }
            if (!ok)
                return fp_error(c, n, "unknown modifier extension '%s'", u ? u : "?");
        }
    }
    return fp_append(c, out, in);
}

const fp_fn fp_fns_fhir[] = {
    {"extension", 1, 1, fn_extension, 0},
    {"hasValue", 0, 0, fn_has_value, 0},
    {"getValue", 0, 0, fn_get_value, 0},
    {"resolve", 0, 0, fn_resolve, 0},
    {"conformsTo", 1, 1, fn_conforms_to, 0},
    {"memberOf", 1, 1, fn_member_of, 0},
    {"subsumes", 1, 1, fn_unknown_service, 0},
    {"subsumedBy", 1, 1, fn_unknown_service, 0},
    {"elementDefinition", 0, 0, fn_unknown_service, 0},
    {"slice", 2, 2, fn_unknown_service, 0},
    {"htmlChecks", 0, 0, fn_html_checks, 0},
    {"checkModifiers", 1, 1, fn_check_modifiers, 0},
};
const size_t fp_n_fns_fhir = sizeof fp_fns_fhir / sizeof fp_fns_fhir[0];
