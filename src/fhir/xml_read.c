/*
 * xml_read.c - FHIR R4 XML -> the JSON tree (ehr_fhir_xml_to_json, xml.h).
 *
 * A libxml2 SAX2 parse that builds the JSON tree directly, with a stack of
 * frames, one per open FHIR element; no DOM is built. The narrative div is
 * skipped by the parser's events and copied from the input bytes.
 */
#include "fhir/xml.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h> /* xmlCreateMemoryParserCtxt */
#include <libxml/xmlerror.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "fhir/model.h"
#include "fhir/xml_int.h"

#define XSI_NS "http://www.w3.org/2001/XMLSchema-instance"
/* Stop reading after this many errors: enough to fix a document. */
#define MAX_ERRORS 50

enum frame_kind {
    FR_RESOURCE, /* a resource: the root, or inside a wrapper */
    FR_COMPLEX,  /* a data type or backbone element */
    FR_PRIM,     /* a primitive: value attribute, extension children */
    FR_WRAP,     /* an element of type Resource: <contained>, <resource> */
};

struct frame {
    enum frame_kind kind;
    const ehr_fhir_type *type;    /* the type of the content */
    const ehr_fhir_element *elem; /* the element in the parent; NULL for a resource */
    const char *key;              /* JSON name in the parent (the XML local name) */
    json_t *obj;     /* RESOURCE, COMPLEX: the object; PRIM: its "_name" object (or NULL);
                        WRAP: the resource once read */
    json_t *value;   /* PRIM: the value, or NULL */
    size_t path_len; /* length of the location before this frame's step */
    bool bad;        /* a problem with it was reported: no follow-up errors */
};

struct reader {
    xmlParserCtxtPtr ctxt;
    const char *xml;
    size_t len;
    struct frame *frames;
    size_t n, cap;
    /* > 0 while inside an element that is skipped (unknown, or the
       narrative div): its nesting depth */
    size_t skip;
    bool xhtml;         /* the skipped element is the div */
    bool xhtml_has_ns;  /* ... and declares the XHTML namespace itself */
    size_t xhtml_start; /* offset of the div's '<' */
    const ehr_fhir_element *xhtml_elem;
    /* namespace prefixes used and declared inside the div, so that the
       string can declare those bound further out */
    struct nsuse {
        char *prefix, *uri;
        bool declared;
    } * ns;
    size_t n_ns, cap_ns;
    ehr_buf path; /* location of the innermost frame, FHIRPath-style */
    ehr_buf scratch;
    json_t *result;
    ehr_fhir_issues *issues;
    ehr_err *err;
    ehr_status st; /* the first failure; EHR_OK while none */
    size_t n_errors;
};

static void rfail(struct reader *r, ehr_status st, const char *code, const char *where,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void rfail(struct reader *r, ehr_status st, const char *code, const char *where,
                  const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where && !*where)
        where = NULL;
    if (r->st == EHR_OK) {
        r->st = st;
        ehr_err_at(r->err, st, where, "%s", msg);
    }
    if (r->issues) {
        ehr_fhir_severity sev = st == EHR_EINVAL ? EHR_SEV_ERROR : EHR_SEV_FATAL;
        ehr_fhir_issue_add(r->issues, sev, code, where, "%s", msg);
    }
    if (++r->n_errors >= MAX_ERRORS || st != EHR_EINVAL)
        xmlStopParser(r->ctxt);
}

static void oom(struct reader *r)
{
    rfail(r, EHR_ENOMEM, "exception", NULL, "out of memory");
}

/* Append the step for element e (JSON name key) to the location. */
static void path_step(struct reader *r, const ehr_fhir_element *e, const ehr_fhir_type *ct,
                      const char *key, bool indexed, size_t index)
{
    ehr_status st;
    if (e && e->is_choice) {
        /* FHIRPath names a choice by its element and type:
           Observation.value.ofType(Quantity) */
        const char *suffix = key + strlen(e->name);
        bool prim = ct->kind == EHR_FHIR_KIND_PRIMITIVE;
        st = ehr_buf_printf(&r->path, ".%s.ofType(%c%s)", e->name,
                            prim && suffix[0] >= 'A' && suffix[0] <= 'Z' ? suffix[0] - 'A' + 'a'
                                                                         : suffix[0],
                            suffix[0] ? suffix + 1 : "");
    } else {
        st = ehr_fhir_xml_path_name(&r->path, key);
    }
    if (!st && indexed)
        st = ehr_fhir_xml_path_index(&r->path, index);
    if (st)
        oom(r);
}

/* The location of a child named name of the innermost frame (for errors
   about an element that gets no frame). Returns the path; the caller
   truncates back to old. */
static const char *path_child(struct reader *r, const char *name, size_t *old)
{
    *old = r->path.len;
    if (ehr_fhir_xml_path_name(&r->path, name))
        return r->path.data;
    return r->path.data ? r->path.data : "";
}

static struct frame *push(struct reader *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct frame *f = realloc(r->frames, cap * sizeof *f);
        if (!f) {
            oom(r);
            return NULL;
        }
        r->frames = f;
        r->cap = cap;
    }
    struct frame *f = &r->frames[r->n++];
    memset(f, 0, sizeof *f);
    f->path_len = r->path.len;
    return f;
}

/* An attribute value as libxml2 gives it to SAX2 without entity
   substitution: a '&' of the document arrives as the reference "&#38;"
   (libxml2 leaves it for the tree builder to decode), every other
   reference is decoded already. */
static const char *attr_value(struct reader *r, const xmlChar *v, const xmlChar *end, size_t *len)
{
    size_t n = (size_t)(end - v);
    if (!memchr(v, '&', n)) {
        *len = n;
        return (const char *)v;
    }
    ehr_buf_reset(&r->scratch);
    for (size_t i = 0; i < n;) {
        if (v[i] == '&' && i + 5 <= n && memcmp(v + i, "&#38;", 5) == 0) {
            if (ehr_buf_putc(&r->scratch, '&'))
                goto nomem;
            i += 5;
        } else {
            if (ehr_buf_putc(&r->scratch, (char)v[i]))
                goto nomem;
            i++;
        }
    }
    *len = r->scratch.len;
    return r->scratch.data ? r->scratch.data : "";
nomem:
    oom(r);
    *len = 0;
    return NULL;
}

/* The JSON value of a primitive's value attribute, typed by the model
   (FHIR R4 2.6.2.2: boolean and the number types are JSON literals). On a
   malformed value returns NULL and sets *why. */
static json_t *prim_value(ehr_fhir_prim prim, const char *s, size_t n, const char **why)
{
    *why = NULL;
    if (n == 0) {
        *why = "a value attribute may not be empty";
        return NULL;
    }
    switch (prim) {
    case EHR_PRIM_BOOLEAN:
        if (n == 4 && memcmp(s, "true", 4) == 0)
            return json_true();
        if (n == 5 && memcmp(s, "false", 5) == 0)
            return json_false();
        *why = "a boolean is true or false";
        return NULL;
    case EHR_PRIM_INTEGER:
    case EHR_PRIM_UNSIGNEDINT:
    case EHR_PRIM_POSITIVEINT: {
        /* FHIR allows a leading + on positiveInt; JSON does not */
        if (prim == EHR_PRIM_POSITIVEINT && s[0] == '+') {
            s++;
            n--;
        }
        if ((*why = ehr_fhir_xml_int_problem(prim, s, n)))
            return NULL;
        char buf[16];
        memcpy(buf, s, n);
        buf[n] = '\0';
        return ehr_json_number(buf);
    }
    case EHR_PRIM_DECIMAL: {
        if (!ehr_fhir_xml_number_shape(s, n, false)) {
            *why = "a decimal is a number such as 12, -0.5 or 1.50e3";
            return NULL;
        }
        char small[64];
        char *buf = n < sizeof small ? small : malloc(n + 1);
        if (!buf)
            return NULL;
        memcpy(buf, s, n);
        buf[n] = '\0';
        json_t *j = ehr_json_number(buf);
        if (buf != small)
            free(buf);
        return j;
    }
    default:
        return json_stringn(s, n);
    }
}

static bool is_xml_space(const xmlChar *s, int len)
{
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* The object that children of frame f go into (a primitive's "_name"
   object is made on demand). */
static json_t *container_of(struct reader *r, struct frame *f)
{
    if (f->kind == FR_PRIM && !f->obj) {
        f->obj = json_object();
        if (!f->obj)
            oom(r);
    }
    return f->obj;
}

static void set_new(struct reader *r, json_t *obj, const char *key, json_t *v)
{
    if (!v || json_object_set_new(obj, key, v))
        oom(r);
}

/* Another JSON name in obj for the same choice element? (valueString
   after valueQuantity) */
static bool choice_taken(const json_t *obj, const ehr_fhir_type *t, const ehr_fhir_element *e)
{
    size_t n = strlen(e->name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        const char *b = k[0] == '_' ? k + 1 : k;
        const ehr_fhir_type *ct;
        if (strncmp(b, e->name, n) == 0 && b[n] && ehr_fhir_element_find(t, b, strlen(b), &ct) == e)
            return true;
    }
    return false;
}

/* Append v to the array obj[key], making it. */
static void append_item(struct reader *r, json_t *obj, const char *key, json_t *v)
{
    json_t *a = json_object_get(obj, key);
    if (!a) {
        a = json_array();
        if (!a || json_object_set_new(obj, key, a)) {
            json_decref(v);
            oom(r);
            return;
        }
    }
    if (json_array_append_new(a, v))
        oom(r);
}

/* Add a primitive (value v and/or "_key" object x) to obj. In an array,
   "key" and "_key" stay aligned: the one made later starts with nulls
   (FHIR R4 JSON 2.6.2.4). */
static void put_prim(struct reader *r, json_t *obj, const ehr_fhir_element *e, const char *key,
                     json_t *v, json_t *x)
{
    char ukey[256];
    if (snprintf(ukey, sizeof ukey, "_%s", key) >= (int)sizeof ukey) {
        json_decref(v);
        json_decref(x);
        return;
    }
    if (!e->is_array) {
        if (v)
            set_new(r, obj, key, v);
        if (x)
            set_new(r, obj, ukey, x);
        return;
    }
    json_t *a = json_object_get(obj, key);
    json_t *u = json_object_get(obj, ukey);
    size_t n = a ? json_array_size(a) : u ? json_array_size(u) : 0;
    const char *keys[2] = {key, ukey};
    json_t *arrs[2] = {a, u};
    json_t *vals[2] = {v, x};
    for (int k = 0; k < 2; k++) {
        if (!vals[k] && !arrs[k])
            continue;
        if (!arrs[k]) {
            arrs[k] = json_array();
            if (!arrs[k] || json_object_set_new(obj, keys[k], arrs[k])) {
                oom(r);
                continue;
            }
            for (size_t i = 0; i < n; i++)
                json_array_append_new(arrs[k], json_null());
        }
        if (json_array_append_new(arrs[k], vals[k] ? vals[k] : json_null()))
            oom(r);
        vals[k] = NULL;
    }
    json_decref(vals[0]);
    json_decref(vals[1]);
}

static void frame_free(struct frame *f)
{
    json_decref(f->obj);
    json_decref(f->value);
    f->obj = f->value = NULL;
}

static void ns_clear(struct reader *r)
{
    for (size_t i = 0; i < r->n_ns; i++) {
        free(r->ns[i].prefix);
        free(r->ns[i].uri);
    }
    r->n_ns = 0;
}

/* Note prefix (bound to uri) as used, or as declared, inside the div. */
static void ns_note(struct reader *r, const xmlChar *prefix, const xmlChar *uri, bool declared)
{
    if (!prefix || strcmp((const char *)prefix, "xml") == 0)
        return;
    for (size_t i = 0; i < r->n_ns; i++)
        if (strcmp(r->ns[i].prefix, (const char *)prefix) == 0) {
            r->ns[i].declared |= declared;
            return;
        }
    if (r->n_ns == r->cap_ns) {
        size_t cap = r->cap_ns ? r->cap_ns * 2 : 4;
        struct nsuse *v = realloc(r->ns, cap * sizeof *v);
        if (!v)
            return oom(r);
        r->ns = v;
        r->cap_ns = cap;
    }
    struct nsuse *u = &r->ns[r->n_ns];
    u->prefix = strdup((const char *)prefix);
    u->uri = strdup(uri ? (const char *)uri : "");
    u->declared = declared;
    if (!u->prefix || !u->uri) {
        free(u->prefix);
        free(u->uri);
        return oom(r);
    }
    r->n_ns++;
}

/* The namespaces an element of the div declares and uses. */
static void ns_scan(struct reader *r, const xmlChar *prefix, const xmlChar *uri, int nb_namespaces,
                    const xmlChar **namespaces, int nb_attributes, const xmlChar **attributes)
{
    for (int i = 0; i < nb_namespaces; i++)
        ns_note(r, namespaces[2 * i], namespaces[2 * i + 1], true);
    ns_note(r, prefix, uri, false);
    for (int i = 0; i < nb_attributes; i++)
        ns_note(r, attributes[5 * i + 1], attributes[5 * i + 2], false);
}

static void start_skip(struct reader *r)
{
    r->skip = 1;
    r->xhtml = false;
}

/* Attributes allowed here: xsi:* (schemaLocation on the root, as in the
   official examples) is ignored, anything else unknown is an error. */
static bool foreign_attr_ok(const xmlChar *uri)
{
    return uri && strcmp((const char *)uri, XSI_NS) == 0;
}

static void bad_attr(struct reader *r, const xmlChar *name, const xmlChar *prefix)
{
    rfail(r, EHR_EINVAL, "structure", r->path.data, "unknown attribute %s%s%s",
          prefix ? (const char *)prefix : "", prefix ? ":" : "", (const char *)name);
}

static void start_resource(struct reader *r, const ehr_fhir_type *t, int nb_attributes,
                           const xmlChar **attributes)
{
    size_t old = r->path.len;
    if (r->n == 0 && ehr_buf_puts(&r->path, t->name)) {
        oom(r);
        return;
    }
    struct frame *f = push(r);
    if (!f)
        return;
    f->path_len = old;
    f->kind = FR_RESOURCE;
    f->type = t;
    f->obj = json_object();
    if (!f->obj)
        return oom(r);
    set_new(r, f->obj, "resourceType", json_string(t->name));
    for (int i = 0; i < nb_attributes; i++) {
        const xmlChar **a = attributes + 5 * i;
        if (!foreign_attr_ok(a[2]))
            bad_attr(r, a[0], a[1]);
    }
}

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
                     int nb_defaulted, const xmlChar **attributes)
{
    struct reader *r = ctx;
    const char *name = (const char *)localname;
    bool fhir_ns = uri && strcmp((const char *)uri, EHR_FHIR_XML_NS) == 0;
    size_t old;

    if (r->skip) {
        r->skip++;
        if (r->xhtml)
            ns_scan(r, prefix, uri, nb_namespaces, namespaces, nb_attributes, attributes);
        return;
    }
    if (r->n >= EHR_FHIR_XML_MAX_DEPTH) {
        rfail(r, EHR_ELIMIT, "too-costly", r->path.data,
              "elements are nested deeper than %d levels", EHR_FHIR_XML_MAX_DEPTH);
        return;
    }
    if (r->n == 0) {
        const ehr_fhir_type *t = ehr_fhir_resource_type(name);
        if (!fhir_ns) {
            rfail(r, EHR_EINVAL, "structure", NULL,
                  "the root element %s is not in the FHIR namespace " EHR_FHIR_XML_NS, name);
            start_skip(r);
        } else if (!t || t->is_abstract) {
            rfail(r, EHR_EINVAL, "structure", NULL, "%s is not a resource type", name);
            start_skip(r);
        } else {
            start_resource(r, t, nb_attributes, attributes);
        }
        return;
    }

    struct frame *p = &r->frames[r->n - 1];
    if (p->kind == FR_WRAP) {
        /* <contained><Patient>: the one child names the resource type */
        const ehr_fhir_type *t = ehr_fhir_resource_type(name);
        const char *msg = NULL;
        if (!fhir_ns)
            msg = "is not in the FHIR namespace";
        else if (!t || t->is_abstract || !ehr_fhir_type_is_a(t, p->type))
            msg = "is not a resource type";
        else if (p->obj)
            msg = "is a second resource where one is allowed";
        if (msg) {
            rfail(r, EHR_EINVAL, "structure", r->path.data, "element %s %s", name, msg);
            p->bad = true;
            start_skip(r);
            return;
        }
        start_resource(r, t, nb_attributes, attributes);
        return;
    }

    const ehr_fhir_type *ct = NULL;
    const ehr_fhir_element *e = ehr_fhir_element_find(p->type, name, strlen(name), &ct);
    if (!e || !ct || ehr_fhir_xml_is_attribute(p->type, e->name)) {
        const char *where = path_child(r, name, &old);
        rfail(r, EHR_EINVAL, "structure", where, "unknown element %s in %s", name, p->type->name);
        ehr_fhir_xml_path_truncate(&r->path, old);
        start_skip(r);
        return;
    }
    if (ct->prim == EHR_PRIM_XHTML) {
        /* The narrative div: copied as written, up to its end tag. */
        const char *where = path_child(r, name, &old);
        json_t *c = container_of(r, p);
        if (!uri || strcmp((const char *)uri, EHR_FHIR_XHTML_NS) != 0 || prefix) {
            rfail(r, EHR_EINVAL, "structure", where,
                  "the narrative must be an XHTML <div xmlns=\"" EHR_FHIR_XHTML_NS "\">");
        } else if (c && json_object_get(c, name)) {
            rfail(r, EHR_EINVAL, "structure", where, "%s repeats", name);
        }
        start_skip(r);
        if (r->st != EHR_OK) {
            ehr_fhir_xml_path_truncate(&r->path, old);
            return;
        }
        long pos = xmlByteConsumed(r->ctxt);
        size_t at = pos > 0 && (size_t)pos <= r->len ? (size_t)pos : 0;
        /* the parser stands at the end of the start tag, whose attributes
           cannot hold a literal '<' */
        while (at > 0 && r->xml[at - 1] != '<')
            at--;
        if (at == 0 || r->len - at < 3 || memcmp(r->xml + at, "div", 3) != 0) {
            rfail(r, EHR_EINTERNAL, "exception", where, "cannot locate the narrative div");
            ehr_fhir_xml_path_truncate(&r->path, old);
            return;
        }
        ehr_fhir_xml_path_truncate(&r->path, old);
        r->xhtml = true;
        r->xhtml_start = at - 1;
        r->xhtml_elem = e;
        r->xhtml_has_ns = false;
        for (int i = 0; i < nb_namespaces; i++)
            if (!namespaces[2 * i])
                r->xhtml_has_ns = true;
        ns_clear(r);
        ns_scan(r, prefix, uri, nb_namespaces, namespaces, nb_attributes, attributes);
        return;
    }
    if (!fhir_ns) {
        const char *where = path_child(r, name, &old);
        rfail(r, EHR_EINVAL, "structure", where,
              "element %s is not in the FHIR namespace " EHR_FHIR_XML_NS, name);
        ehr_fhir_xml_path_truncate(&r->path, old);
        start_skip(r);
        return;
    }

    json_t *c = container_of(r, p);
    if (!c) {
        start_skip(r);
        return;
    }
    bool prim = ct->kind == EHR_FHIR_KIND_PRIMITIVE;
    char ukey[256];
    snprintf(ukey, sizeof ukey, "_%s", name);
    json_t *a = json_object_get(c, name);
    json_t *u = prim ? json_object_get(c, ukey) : NULL;
    size_t index = 0;
    if (e->is_array) {
        index = a ? json_array_size(a) : u ? json_array_size(u) : 0;
    } else if (a || u || (e->is_choice && choice_taken(c, p->type, e))) {
        const char *where = path_child(r, name, &old);
        if (a || u)
            rfail(r, EHR_EINVAL, "structure", where, "%s repeats but may occur only once", name);
        else
            rfail(r, EHR_EINVAL, "structure", where, "%s[x] has more than one value", e->name);
        ehr_fhir_xml_path_truncate(&r->path, old);
        start_skip(r);
        return;
    }
    struct frame *f = push(r); /* p is invalid from here */
    if (!f) {
        start_skip(r);
        return;
    }
    f->type = ct;
    f->elem = e;
    f->key = name;
    path_step(r, e, ct, name, e->is_array, index);

    if (prim) {
        f->kind = FR_PRIM;
        for (int i = 0; i < nb_attributes; i++) {
            const xmlChar **at = attributes + 5 * i;
            const char *an = (const char *)at[0];
            size_t vlen;
            bool is_value = !at[2] && strcmp(an, "value") == 0;
            bool is_id = !at[2] && strcmp(an, "id") == 0;
            if (!is_value && !is_id) {
                if (!foreign_attr_ok(at[2])) {
                    bad_attr(r, at[0], at[1]);
                    f->bad = true;
                }
                continue;
            }
            const char *v = attr_value(r, at[3], at[4], &vlen);
            if (!v)
                continue;
            if (is_id) {
                if (vlen == 0) {
                    rfail(r, EHR_EINVAL, "value", r->path.data, "an id attribute may not be empty");
                    f->bad = true;
                    continue;
                }
                json_t *x = container_of(r, f);
                if (x)
                    set_new(r, x, "id", json_stringn(v, vlen));
                continue;
            }
            const char *why;
            json_t *j = prim_value(ct->prim, v, vlen, &why);
            if (!j) {
                if (why)
                    rfail(r, EHR_EINVAL, "value", r->path.data, "bad %s value \"%.*s\": %s",
                          ct->name, (int)(vlen > 64 ? 64 : vlen), v, why);
                else
                    oom(r);
                f->bad = true;
                continue;
            }
            f->value = j;
        }
        return;
    }
    if (ct->kind == EHR_FHIR_KIND_RESOURCE) {
        f->kind = FR_WRAP;
        for (int i = 0; i < nb_attributes; i++) {
            const xmlChar **at = attributes + 5 * i;
            if (!foreign_attr_ok(at[2]))
                bad_attr(r, at[0], at[1]);
        }
        return;
    }
    f->kind = FR_COMPLEX;
    f->obj = json_object();
    if (!f->obj)
        return oom(r);
    /* attributes go first in the object, id then url, whatever their
       order in the tag */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < nb_attributes; i++) {
            const xmlChar **at = attributes + 5 * i;
            const char *an = (const char *)at[0];
            size_t vlen;
            bool known = !at[2] && ehr_fhir_xml_is_attribute(ct, an);
            if (pass == 0) {
                if (!known && !foreign_attr_ok(at[2]))
                    bad_attr(r, at[0], at[1]);
                if (!known || strcmp(an, "id") != 0)
                    continue;
            } else if (!known || strcmp(an, "id") == 0) {
                continue;
            }
            const char *v = attr_value(r, at[3], at[4], &vlen);
            if (!v)
                continue;
            if (vlen == 0)
                rfail(r, EHR_EINVAL, "value", r->path.data, "attribute %s may not be empty", an);
            else
                set_new(r, f->obj, an, json_stringn(v, vlen));
        }
    }
}

/* Move a finished frame's content into its parent (or make it the
   result). */
static void finish(struct reader *r, struct frame *f)
{
    struct frame *p = r->n ? &r->frames[r->n - 1] : NULL;
    const char *where = r->path.data;
    switch (f->kind) {
    case FR_RESOURCE:
        if (!p) {
            r->result = f->obj;
        } else if (p->kind == FR_WRAP) {
            p->obj = f->obj;
        } else {
            json_decref(f->obj);
        }
        f->obj = NULL;
        return;
    case FR_WRAP:
        if (!f->obj) {
            if (!f->bad)
                rfail(r, EHR_EINVAL, "structure", where, "%s must hold a resource", f->key);
            return;
        }
        break;
    case FR_PRIM:
        if (!f->value && !f->obj) {
            if (!f->bad)
                rfail(r, EHR_EINVAL, "value", where,
                      "%s has neither a value attribute nor extensions", f->key);
            return;
        }
        put_prim(r, container_of(r, p), f->elem, f->key, f->value, f->obj);
        f->value = f->obj = NULL;
        return;
    case FR_COMPLEX:
        break;
    }
    json_t *c = container_of(r, p);
    if (!c)
        return;
    if (f->elem->is_array)
        append_item(r, c, f->key, f->obj);
    else
        set_new(r, c, f->key, f->obj);
    f->obj = NULL;
}

/* The narrative div ended: its text, exactly as in the input, becomes
   the string value of "div" (FHIR R4 JSON 2.6.2.7). */
static void finish_xhtml(struct reader *r)
{
    struct frame *p = &r->frames[r->n - 1];
    long pos = xmlByteConsumed(r->ctxt);
    size_t end = pos > 0 && (size_t)pos <= r->len ? (size_t)pos : 0;
    size_t old;
    const char *where = path_child(r, "div", &old);
    if (end <= r->xhtml_start + 4 || r->xml[end - 1] != '>') {
        rfail(r, EHR_EINTERNAL, "exception", where, "cannot locate the end of the narrative div");
        ehr_fhir_xml_path_truncate(&r->path, old);
        return;
    }
    ehr_fhir_xml_path_truncate(&r->path, old);
    const char *s = r->xml + r->xhtml_start;
    size_t n = end - r->xhtml_start;
    bool complete = r->xhtml_has_ns;
    for (size_t i = 0; i < r->n_ns; i++)
        complete &= r->ns[i].declared;
    json_t *v;
    if (complete) {
        v = json_stringn(s, n);
    } else {
        /* Namespaces bound further out (the XHTML default one, prefixes
           used inside): declare them on the div, as a standalone string
           needs them. */
        ehr_buf *b = &r->scratch;
        ehr_buf_reset(b);
        ehr_status st = ehr_buf_append(b, s, 4);
        if (!st && !r->xhtml_has_ns)
            st = ehr_buf_puts(b, " xmlns=\"" EHR_FHIR_XHTML_NS "\"");
        for (size_t i = 0; i < r->n_ns && !st; i++) {
            if (r->ns[i].declared)
                continue;
            if (!(st = ehr_buf_printf(b, " xmlns:%s=\"", r->ns[i].prefix)) &&
                !(st = ehr_buf_xml_escape(b, r->ns[i].uri, strlen(r->ns[i].uri))))
                st = ehr_buf_putc(b, '"');
        }
        if (!st)
            st = ehr_buf_append(b, s + 4, n - 4);
        if (st)
            return oom(r);
        v = json_stringn(b->data, b->len);
    }
    json_t *c = container_of(r, p);
    if (!v || !c) {
        json_decref(v);
        return oom(r);
    }
    put_prim(r, c, r->xhtml_elem, "div", v, NULL);
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
    struct reader *r = ctx;
    if (r->skip) {
        if (--r->skip == 0 && r->xhtml) {
            r->xhtml = false;
            if (r->st == EHR_OK)
                finish_xhtml(r);
        }
        return;
    }
    if (r->n == 0)
        return;
    struct frame f = r->frames[--r->n];
    /* locations of problems found now name the element itself */
    finish(r, &f);
    frame_free(&f);
    ehr_fhir_xml_path_truncate(&r->path, f.path_len);
}

static void on_text(void *ctx, const xmlChar *ch, int len)
{
    struct reader *r = ctx;
    if (r->skip || is_xml_space(ch, len))
        return;
    rfail(r, EHR_EINVAL, "structure", r->path.data,
          "text content is not allowed here (FHIR XML carries values in value attributes)");
}

static void on_cdata(void *ctx, const xmlChar *ch, int len)
{
    struct reader *r = ctx;
    if (r->skip)
        return;
    rfail(r, EHR_EINVAL, "structure", r->path.data, "CDATA is not allowed here");
}

static void on_dtd(void *ctx, const xmlChar *name, const xmlChar *external_id,
                   const xmlChar *system_id)
{
    struct reader *r = ctx;
    rfail(r, EHR_EINVAL, "structure", NULL, "a DOCTYPE is not allowed in FHIR XML");
    xmlStopParser(r->ctxt);
}

static void on_error(void *ctx, xmlErrorPtr e)
{
    struct reader *r = ctx;
    if (!e || e->level < XML_ERR_ERROR)
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "error");
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (e->code == XML_ERR_NO_MEMORY)
        return oom(r);
    size_t old = r->path.len;
    const char *where = r->skip && r->xhtml ? path_child(r, "div", &old) : r->path.data;
    rfail(r, EHR_EINVAL, "invalid", where, "XML is not well-formed: line %d, column %d: %s",
          e->line, e->int2, msg);
    ehr_fhir_xml_path_truncate(&r->path, old);
}

json_t *ehr_fhir_xml_to_json(const char *xml, size_t len, ehr_fhir_issues *issues, ehr_err *err)
{
    struct reader r = {0};
    r.xml = xml;
    r.len = len;
    r.issues = issues;
    r.err = err;
    r.path.limit = 64 * 1024;
    ehr_fhir_xml_init();

    const unsigned char *u = (const unsigned char *)xml;
    if (!xml || len == 0) {
        rfail(&r, EHR_EINVAL, "invalid", NULL, "empty XML document");
        return NULL;
    }
    if (len > EHR_FHIR_XML_MAX_SIZE || len > INT_MAX) {
        rfail(&r, EHR_ELIMIT, "too-costly", NULL, "XML document larger than %u bytes",
              EHR_FHIR_XML_MAX_SIZE);
        return NULL;
    }
    /* UTF-16/32 (BOM or NUL bytes up front) would be transcoded by
       libxml2; FHIR allows only UTF-8, and the div copy needs input bytes. */
    if ((len >= 2 && ((u[0] == 0xFE && u[1] == 0xFF) || (u[0] == 0xFF && u[1] == 0xFE))) ||
        memchr(xml, '\0', len < 4 ? len : 4)) {
        rfail(&r, EHR_EINVAL, "invalid", NULL, "FHIR XML must be encoded in UTF-8");
        return NULL;
    }

    xmlSAXHandler sax;
    memset(&sax, 0, sizeof sax);
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = on_start;
    sax.endElementNs = on_end;
    sax.characters = on_text;
    sax.ignorableWhitespace = on_text;
    sax.cdataBlock = on_cdata;
    sax.internalSubset = on_dtd;
    sax.serror = on_error;

    r.ctxt = xmlCreateMemoryParserCtxt(xml, (int)len);
    if (!r.ctxt) {
        oom(&r);
        return NULL;
    }
    /* No network, no DTD loading, no entity substitution (a DOCTYPE is
       refused anyway), libxml2's default size and depth limits (no
       XML_PARSE_HUGE); the encoding declaration is ignored: input is UTF-8. */
    xmlCtxtUseOptions(r.ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                  XML_PARSE_IGNORE_ENC);
    xmlSAXHandlerPtr old_sax = r.ctxt->sax;
    r.ctxt->sax = &sax;
    r.ctxt->userData = &r;
    xmlParseDocument(r.ctxt);
    r.ctxt->sax = old_sax;
    if (r.st == EHR_OK && !r.ctxt->wellFormed)
        rfail(&r, EHR_EINVAL, "invalid", NULL, "XML is not well-formed");
    xmlFreeParserCtxt(r.ctxt);
    r.ctxt = NULL;

    if (r.st == EHR_OK && !r.result)
        rfail(&r, EHR_EINVAL, "invalid", NULL, "no resource in the XML document");
    while (r.n > 0)
        frame_free(&r.frames[--r.n]);
    free(r.frames);
    ns_clear(&r);
    free(r.ns);
    ehr_buf_free(&r.path);
    ehr_buf_free(&r.scratch);
    if (r.st != EHR_OK) {
        json_decref(r.result);
        return NULL;
    }
    return r.result;
}
