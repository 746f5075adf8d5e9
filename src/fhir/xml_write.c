/*
 * xml_write.c - the JSON tree -> FHIR R4 XML (ehr_fhir_json_to_xml, xml.h).
 *
 * Walks the JSON tree and emits each object's elements in definition order
 * (ehr_fhir_element.order), "name" and "_name" merged into one element.
 */
#include "fhir/xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "fhir/model.h"
#include "fhir/xml_int.h"

struct writer {
    ehr_buf *out;
    bool pretty;
    int depth;
    ehr_buf path;
    ehr_err *err;
    ehr_status st;
};

static void wfail(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void wfail(struct writer *w, const char *fmt, ...)
{
    if (w->st != EHR_OK)
        return;
    w->st = EHR_EINVAL;
    if (w->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err->msg, sizeof w->err->msg, fmt, ap);
        va_end(ap);
        snprintf(w->err->where, sizeof w->err->where, "%s", w->path.data ? w->path.data : "");
    }
}

static void wput(struct writer *w, const char *s, size_t n)
{
    if (w->st == EHR_OK) {
        ehr_status st = ehr_buf_append(w->out, s, n);
        if (st) {
            w->st = st;
            ehr_err_set(w->err, st, "%s", st == EHR_ENOMEM ? "out of memory" : "output too large");
        }
    }
}

static void wputs(struct writer *w, const char *s)
{
    wput(w, s, strlen(s));
}

static void windent(struct writer *w)
{
    static const char spaces[] = "                                                            ";
    if (!w->pretty)
        return;
    size_t n = (size_t)w->depth * 2;
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        wput(w, spaces, k);
        n -= k;
    }
}

static void wnl(struct writer *w)
{
    if (w->pretty)
        wput(w, "\n", 1);
}

/* Refuse an element nested deeper than the reader accepts (which also
   bounds the recursion of the writer). */
static bool too_deep(struct writer *w)
{
    if (w->depth < EHR_FHIR_XML_MAX_DEPTH)
        return false;
    if (w->st == EHR_OK) {
        w->st = EHR_ELIMIT;
        ehr_err_at(w->err, EHR_ELIMIT, w->path.data, "elements are nested deeper than %d levels",
                   EHR_FHIR_XML_MAX_DEPTH);
    }
    return true;
}

static void wpath(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void wpath_status(struct writer *w, ehr_status st)
{
    if (st && w->st == EHR_OK) {
        w->st = st;
        ehr_err_set(w->err, st, "out of memory");
    }
}

static void wpath(struct writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ehr_status st = ehr_buf_vprintf(&w->path, fmt, ap);
    va_end(ap);
    if (st && w->st == EHR_OK) {
        w->st = st;
        ehr_err_set(w->err, st, "out of memory");
    }
}

/* s escaped for an attribute value (also fine for text). Tab, CR and LF
   become character references so that attribute-value normalisation
   gives them back. Characters XML 1.0 cannot carry at all are refused. */
static const unsigned char xml_special[256] = {
    [0 ... 0x1f] = 1, ['<'] = 1, ['>'] = 1, ['&'] = 1, ['"'] = 1, [0xEF] = 1,
};

static void wescape(struct writer *w, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        unsigned char c = u[i];
        if (!xml_special[c])
            continue;
        switch (c) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\t':
            rep = "&#x9;";
            break;
        case '\n':
            rep = "&#xA;";
            break;
        case '\r':
            rep = "&#xD;";
            break;
        case 0xEF:
            /* U+FFFE and U+FFFF are not XML characters */
            if (i + 2 < len && u[i + 1] == 0xBF && (u[i + 2] == 0xBE || u[i + 2] == 0xBF)) {
                wfail(w, "the character U+FFF%c cannot be written in XML",
                      u[i + 2] == 0xBE ? 'E' : 'F');
                return;
            }
            continue;
        default:
            if (c < 0x20) {
                wfail(w, "the control character U+%04X cannot be written in XML", c);
                return;
            }
            continue;
        }
        wput(w, s + start, i - start);
        wputs(w, rep);
        start = i + 1;
    }
    wput(w, s + start, len - start);
}

static void wattr(struct writer *w, const char *name, const json_t *v)
{
    const char *s = ehr_json_string(v);
    if (!s) {
        wfail(w, "%s must be a string", name);
        return;
    }
    size_t n = json_string_length(v);
    if (n == 0) {
        wfail(w, "%s may not be empty", name);
        return;
    }
    wput(w, " ", 1);
    wputs(w, name);
    wput(w, "=\"", 2);
    wescape(w, s, n);
    wput(w, "\"", 1);
}

/* Is s a well-formed XHTML div that can be embedded as is? FHIR R4
   Narrative.div: an XHTML <div> in the XHTML namespace. */
static const char *div_problem(const char *s, size_t n)
{
    if (n < 6 || memcmp(s, "<div", 4) != 0 || s[n - 1] != '>' || n > INT_MAX)
        return "the narrative must be an XHTML <div xmlns=\"" EHR_FHIR_XHTML_NS "\">...</div>";
    if (memmem(s, n, "<!DOCTYPE", 9))
        return "the narrative may not hold a DOCTYPE";
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return "out of memory";
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, s, (int)n, NULL, "UTF-8",
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                          XML_PARSE_IGNORE_ENC);
    /* a namespace error (an undeclared prefix) leaves a document, but the
       reader refuses it once embedded */
    bool ns_ok = ctxt->nsWellFormed;
    xmlFreeParserCtxt(ctxt);
    if (!doc || !ns_ok) {
        xmlFreeDoc(doc);
        return "the narrative div is not well-formed XML";
    }
    xmlNodePtr root = xmlDocGetRootElement(doc);
    const char *why = NULL;
    if (!root || !root->ns || !root->ns->href || root->ns->prefix ||
        strcmp((const char *)root->ns->href, EHR_FHIR_XHTML_NS) != 0 ||
        strcmp((const char *)root->name, "div") != 0)
        why = "the narrative must be an XHTML <div xmlns=\"" EHR_FHIR_XHTML_NS "\">";
    else if (doc->intSubset || root->prev || root->next)
        why = "the narrative div must be the only content of the string";
    xmlFreeDoc(doc);
    return why;
}

static void write_complex(struct writer *w, const ehr_fhir_type *t, const char *name,
                          const json_t *obj);
static void write_resource(struct writer *w, const json_t *obj, const ehr_fhir_type *base,
                           bool root);

/* A primitive: value v (or NULL) and its "_name" object x (or NULL). */
static void write_prim(struct writer *w, const ehr_fhir_type *t, const char *name, const json_t *v,
                       const json_t *x)
{
    const json_t *ext = NULL, *id = NULL;
    const char *why;
    if (too_deep(w))
        return;
    if (x) {
        if (!json_is_object(x)) {
            wfail(w, "_%s must be an object", name);
            return;
        }
        const char *k;
        json_t *xv;
        json_object_foreach((json_t *)x, k, xv)
        {
            if (strcmp(k, "id") == 0) {
                id = xv;
            } else if (strcmp(k, "extension") == 0) {
                if (!json_is_array(xv) || json_array_size(xv) == 0) {
                    wfail(w, "_%s.extension must be a non-empty array", name);
                    return;
                }
                ext = xv;
            } else {
                wfail(w, "unknown property %s in _%s", k, name);
                return;
            }
        }
    }
    if (!v && !id && !ext) {
        wfail(w, "%s has neither a value nor an id or extensions", name);
        return;
    }
    if (t->prim == EHR_PRIM_XHTML) {
        const char *s = ehr_json_string(v);
        if (x)
            wfail(w, "the narrative div cannot carry an id or extensions");
        else if (!s)
            wfail(w, "%s must be a string", name);
        else if ((why = div_problem(s, json_string_length(v))))
            wfail(w, "%s", why);
        if (w->st)
            return;
        windent(w);
        wput(w, s, json_string_length(v));
        wnl(w);
        return;
    }
    windent(w);
    wput(w, "<", 1);
    wputs(w, name);
    if (id)
        wattr(w, "id", id);
    if (v) {
        if (t->prim == EHR_PRIM_BOOLEAN) {
            if (json_is_true(v))
                wputs(w, " value=\"true\"");
            else if (json_is_false(v))
                wputs(w, " value=\"false\"");
            else
                wfail(w, "%s must be true or false", name);
        } else if (ehr_fhir_xml_is_number(t->prim)) {
            const char *num = ehr_json_number_text(v);
            if (!num)
                wfail(w, "%s must be a number", name);
            else if (t->prim != EHR_PRIM_DECIMAL && !ehr_json_is_integer(v))
                wfail(w, "%s must be an integer", name);
            else if (t->prim != EHR_PRIM_DECIMAL &&
                     (why = ehr_fhir_xml_int_problem(t->prim, num, strlen(num))))
                wfail(w, "%s: %s", name, why);
            else {
                wputs(w, " value=\"");
                wputs(w, num);
                wput(w, "\"", 1);
            }
        } else {
            wattr(w, "value", v);
        }
    }
    if (!ext) {
        wput(w, "/>", 2);
        wnl(w);
        return;
    }
    wput(w, ">", 1);
    wnl(w);
    w->depth++;
    const ehr_fhir_type *et = NULL;
    ehr_fhir_element_find(t, "extension", 9, &et);
    size_t plen = w->path.len;
    for (size_t i = 0; i < json_array_size(ext) && !w->st; i++) {
        wpath(w, ".extension[%zu]", i);
        const json_t *item = json_array_get(ext, i);
        if (!et || !json_is_object(item))
            wfail(w, "an extension must be an object");
        else
            write_complex(w, et, "extension", item);
        ehr_fhir_xml_path_truncate(&w->path, plen);
    }
    w->depth--;
    windent(w);
    wput(w, "</", 2);
    wputs(w, name);
    wput(w, ">", 1);
    wnl(w);
}

/* One occurrence of element name of type ct: value v and, for a
   primitive, its "_name" object x (either may be NULL). */
static void write_one(struct writer *w, const ehr_fhir_type *ct, const char *name, const json_t *v,
                      const json_t *x)
{
    if (ct->kind == EHR_FHIR_KIND_PRIMITIVE) {
        if (!v && !x)
            wfail(w, "%s is null and has no extensions", name);
        else
            write_prim(w, ct, name, v, x);
        return;
    }
    if (x) {
        wfail(w, "_%s: only primitive elements have a \"_\" property", name);
        return;
    }
    if (!json_is_object(v)) {
        wfail(w, "%s must be an object", name);
        return;
    }
    if (ct->kind == EHR_FHIR_KIND_RESOURCE) {
        if (too_deep(w))
            return;
        windent(w);
        wput(w, "<", 1);
        wputs(w, name);
        wput(w, ">", 1);
        wnl(w);
        w->depth++;
        write_resource(w, v, ct, false);
        w->depth--;
        windent(w);
        wput(w, "</", 2);
        wputs(w, name);
        wput(w, ">", 1);
        wnl(w);
        return;
    }
    write_complex(w, ct, name, v);
}

/* Element e, named name in JSON and XML, with JSON value v and "_name"
   value x (either may be NULL). */
static void write_element(struct writer *w, const ehr_fhir_element *e, const ehr_fhir_type *ct,
                          const char *name, const json_t *v, const json_t *x)
{
    size_t plen = w->path.len;
    if (e->is_choice) {
        const char *suffix = name + strlen(e->name);
        bool prim = ct->kind == EHR_FHIR_KIND_PRIMITIVE;
        wpath(w, ".%s.ofType(%c%s)", e->name,
              prim && suffix[0] >= 'A' && suffix[0] <= 'Z' ? suffix[0] - 'A' + 'a' : suffix[0],
              suffix[0] ? suffix + 1 : "");
    } else {
        wpath_status(w, ehr_fhir_xml_path_name(&w->path, name));
    }
    if (v && json_is_null(v))
        v = NULL;
    if (x && json_is_null(x))
        x = NULL;
    if (!e->is_array) {
        if (json_is_array(v) || json_is_array(x))
            wfail(w, "%s may occur only once, it cannot be an array", name);
        else
            write_one(w, ct, name, v, x);
        ehr_fhir_xml_path_truncate(&w->path, plen);
        return;
    }
    if ((v && !json_is_array(v)) || (x && !json_is_array(x))) {
        wfail(w, "%s must be an array", name);
        ehr_fhir_xml_path_truncate(&w->path, plen);
        return;
    }
    size_t nv = v ? json_array_size(v) : 0, nx = x ? json_array_size(x) : 0;
    if (v && x && nv != nx)
        wfail(w, "%s and _%s must have the same number of items", name, name);
    else if (nv == 0 && nx == 0)
        wfail(w, "%s is an empty array", name);
    size_t n = nv > nx ? nv : nx;
    size_t ilen = w->path.len;
    for (size_t i = 0; i < n && !w->st; i++) {
        wpath_status(w, ehr_fhir_xml_path_index(&w->path, i));
        const json_t *vi = v ? json_array_get(v, i) : NULL;
        const json_t *xi = x ? json_array_get(x, i) : NULL;
        write_one(w, ct, name, json_is_null(vi) ? NULL : vi, json_is_null(xi) ? NULL : xi);
        ehr_fhir_xml_path_truncate(&w->path, ilen);
    }
    ehr_fhir_xml_path_truncate(&w->path, plen);
}

struct item {
    unsigned rank;
    bool underscore;
    const ehr_fhir_element *e;
    const ehr_fhir_type *ct;
    const char *key; /* without the underscore */
    const json_t *value;
};

static int item_cmp(const struct item *a, const struct item *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    int c = strcmp(a->key, b->key);
    if (c)
        return c;
    return (int)a->underscore - (int)b->underscore;
}

/* The children of obj (of type t) in definition order, after the start
   tag "<name attrs" was written; closes it. */
static void write_body(struct writer *w, const json_t *obj, const ehr_fhir_type *t,
                       const char *name)
{
    bool is_resource = t->kind == EHR_FHIR_KIND_RESOURCE;
    size_t cap = json_object_size(obj);
    struct item small[32];
    struct item *items = cap <= 32 ? small : malloc(cap * sizeof *items);
    if (!items) {
        w->st = EHR_ENOMEM;
        ehr_err_set(w->err, EHR_ENOMEM, "out of memory");
        return;
    }
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (is_resource && strcmp(k, "resourceType") == 0)
            continue;
        if (ehr_fhir_xml_is_attribute(t, k))
            continue; /* written in the start tag */
        bool u = k[0] == '_';
        const ehr_fhir_type *ct = NULL;
        const ehr_fhir_element *e = ehr_fhir_element_find(t, k + u, strlen(k + u), &ct);
        if (!e || !ct) {
            wpath(w, ".%s", k);
            wfail(w, "unknown property %s in %s", k, t->name);
            break;
        }
        if (u && (ehr_fhir_xml_is_attribute(t, e->name) || ct->kind != EHR_FHIR_KIND_PRIMITIVE)) {
            wpath(w, ".%s", k);
            wfail(w, "%s cannot carry a \"_\" property in FHIR XML", k + 1);
            break;
        }
        struct item *it = &items[n++];
        it->rank = e->order; /* FHIR R4 XML: elements in definition order */
        it->underscore = u;
        it->e = e;
        it->ct = ct;
        it->key = k + u;
        it->value = v;
    }
    /* insertion sort: objects are small */
    for (size_t i = 1; i < n; i++) {
        struct item tmp = items[i];
        size_t j = i;
        while (j > 0 && item_cmp(&items[j - 1], &tmp) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = tmp;
    }
    if (w->st == EHR_OK) {
        if (n == 0) {
            wput(w, "/>", 2);
        } else {
            wput(w, ">", 1);
            wnl(w);
            w->depth++;
            for (size_t i = 0; i < n && !w->st;) {
                const struct item *a = &items[i];
                const json_t *val = a->underscore ? NULL : a->value;
                const json_t *ext = a->underscore ? a->value : NULL;
                size_t next = i + 1;
                if (next < n && items[next].e == a->e && strcmp(items[next].key, a->key) == 0) {
                    ext = items[next].value; /* "name" then "_name" */
                    next++;
                }
                if (next < n && items[next].e == a->e) {
                    wpath(w, ".%s", a->e->name);
                    wfail(w, "%s[x] has more than one value (%s, %s)", a->e->name, a->key,
                          items[next].key);
                    break;
                }
                write_element(w, a->e, a->ct, a->key, val, ext);
                i = next;
            }
            w->depth--;
            windent(w);
            wput(w, "</", 2);
            wputs(w, name);
            wput(w, ">", 1);
        }
        wnl(w);
    }
    if (items != small)
        free(items);
}

static void write_complex(struct writer *w, const ehr_fhir_type *t, const char *name,
                          const json_t *obj)
{
    if (too_deep(w))
        return;
    windent(w);
    wput(w, "<", 1);
    wputs(w, name);
    const json_t *id = json_object_get(obj, "id");
    if (id)
        wattr(w, "id", id);
    if (strcmp(t->name, "Extension") == 0) {
        const json_t *url = json_object_get(obj, "url");
        if (url)
            wattr(w, "url", url);
    }
    write_body(w, obj, t, name);
}

static void write_resource(struct writer *w, const json_t *obj, const ehr_fhir_type *base,
                           bool root)
{
    if (too_deep(w))
        return;
    if (!json_is_object(obj)) {
        wfail(w, "a resource must be a JSON object");
        return;
    }
    const char *rt = ehr_json_get_string(obj, "resourceType");
    const ehr_fhir_type *t = rt ? ehr_fhir_resource_type(rt) : NULL;
    if (!rt) {
        wfail(w, "the resource has no resourceType");
        return;
    }
    if (!t || t->is_abstract || (base && !ehr_fhir_type_is_a(t, base))) {
        wfail(w, "unknown resource type %s", rt);
        return;
    }
    windent(w);
    wput(w, "<", 1);
    wputs(w, rt);
    if (root)
        wputs(w, " xmlns=\"" EHR_FHIR_XML_NS "\"");
    write_body(w, obj, t, rt);
}

ehr_status ehr_fhir_json_to_xml(const json_t *res, bool pretty, ehr_buf *out, ehr_err *err)
{
    struct writer w = {0};
    w.out = out;
    w.pretty = pretty;
    w.err = err;
    w.path.limit = 64 * 1024;
    ehr_fhir_xml_init();
    wputs(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    wnl(&w);
    /* locations start with the resource type, as FHIRPath does */
    const char *rt = json_is_object(res) ? ehr_json_get_string(res, "resourceType") : NULL;
    if (rt)
        wpath(&w, "%s", rt);
    write_resource(&w, res, NULL, true);
    ehr_buf_free(&w.path);
    return w.st;
}
