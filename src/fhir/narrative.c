/*
 * narrative.c - checks of the XHTML of Narrative.div (FHIR R4 2.15.0.1).
 *
 * The div must be well-formed XML whose root is <div> in the XHTML
 * namespace, holding only basic HTML formatting (txt-1: the elements of
 * HTML 4.0 chapters 7-11 and 15, <a>, <img>, no scripts, forms, event
 * handlers or javascript: links) and some content (txt-2). libxml2 parses
 * it with the network and external entities off.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fhir/validate.h"

#define XHTML_NS "http://www.w3.org/1999/xhtml"

/* txt-1: the basic HTML formatting elements (as the reference validator
   reads HTML 4.0 chapters 7-11 and 15), sorted */
static const char *const allowed_elements[] = {
    "a",      "abbr",    "acronym", "address", "area",  "b",     "bdo",      "big",   "blockquote",
    "br",     "caption", "center",  "cite",    "code",  "col",   "colgroup", "dd",    "del",
    "dfn",    "div",     "dl",      "dt",      "em",    "font",  "h1",       "h2",    "h3",
    "h4",     "h5",      "h6",      "hr",      "i",     "img",   "ins",      "kbd",   "li",
    "map",    "ol",      "p",       "pre",     "q",     "s",     "samp",     "small", "span",
    "strike", "strong",  "sub",     "sup",     "table", "tbody", "td",       "tfoot", "th",
    "thead",  "tr",      "tt",      "u",       "ul",    "var",
};

static int cmp_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

static bool element_allowed(const char *name)
{
    return bsearch(name, allowed_elements, sizeof allowed_elements / sizeof allowed_elements[0],
                   sizeof allowed_elements[0], cmp_name) != NULL;
}

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

struct walk {
    bool has_content;
    char *why;
    size_t why_size;
    bool bad;
    bool no_ns;     /* the div declared no namespace: its elements have none */
    bool not_xhtml; /* the failure is of XML / XHTML form, not of txt-1 */
};

static void fail(struct walk *w, const char *fmt, const char *arg)
{
    if (w->bad)
        return;
    w->bad = true;
    snprintf(w->why, w->why_size, fmt, arg);
}

static bool is_blank(const xmlChar *s)
{
    for (; s && *s; s++)
        if (!(*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
            return false;
    return true;
}

static void walk(struct walk *w, xmlNode *n, unsigned depth)
{
    for (; n && !w->bad; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (!is_blank(n->content))
                w->has_content = true;
            continue;
        }
        if (n->type == XML_ENTITY_REF_NODE) {
            w->not_xhtml = true;
            fail(w, "narrative may not use the entity &%s; (write the character itself)",
                 (const char *)n->name);
            return;
        }
        if (n->type == XML_PI_NODE) {
            w->not_xhtml = true;
            fail(w, "narrative may not contain processing instructions (<?%s ...?>)",
                 (const char *)n->name);
            return;
        }
        if (n->type != XML_ELEMENT_NODE)
            continue;
        const char *name = (const char *)n->name;
        if (w->no_ns ? n->ns != NULL : !n->ns || strcmp((const char *)n->ns->href, XHTML_NS) != 0) {
            w->not_xhtml = true;
            fail(w, "narrative element <%s> is not in the XHTML namespace", name);
            return;
        }
        if (!element_allowed(name)) {
            fail(w,
                 "narrative may not contain <%s> elements (txt-1): only basic HTML formatting "
                 "is allowed, no scripts, forms, frames or styles sheets",
                 name);
            return;
        }
        if (strcmp(name, "img") == 0)
            w->has_content = true;
        for (xmlAttr *a = n->properties; a; a = a->next) {
            const char *an = (const char *)a->name;
            if (strncasecmp(an, "on", 2) == 0) {
                fail(w, "narrative may not have event handler attributes such as %s (txt-1)", an);
                return;
            }
            if (strcasecmp(an, "href") == 0 || strcasecmp(an, "src") == 0) {
                xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
                const char *s = (const char *)v;
                while (s && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
                    s++;
                bool js = s && (strncasecmp(s, "javascript:", 11) == 0 ||
                                strncasecmp(s, "vbscript:", 9) == 0);
                xmlFree(v);
                if (js) {
                    fail(w, "narrative links may not run script (%s=\"javascript:...\", txt-1)",
                         an);
                    return;
                }
            }
        }
        if (depth > 200) {
            fail(w, "narrative XHTML is nested too deeply (%s)", name);
            return;
        }
        walk(w, n->children, depth + 1);
    }
}

int ehr_fhir_narrative_check(const char *div, size_t len, char *why, size_t why_size)
{
    if (why_size)
        why[0] = 0;
    if (len > (size_t)0x7fffffff) {
        snprintf(why, why_size, "narrative is too large");
        return -1;
    }
    pthread_once(&xml_once, xml_init);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, div, (int)len, "narrative", "UTF-8",
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    int rc = 0;
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[200];
        snprintf(msg, sizeof msg, "%s", e && e->message ? e->message : "parse error");
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = 0;
        snprintf(why, why_size, "narrative is not well-formed XHTML: %s (line %d)", msg,
                 e ? e->line : 0);
        rc = -1;
        goto out;
    }
    if (doc->intSubset) {
        snprintf(why, why_size, "narrative may not have a DOCTYPE");
        rc = -1;
        goto out;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || strcmp((const char *)root->name, "div") != 0) {
        snprintf(why, why_size, "narrative's root element must be <div>");
        rc = -1;
        goto out;
    }
    /* without a namespace declaration, the whole tree has none: check its
       names all the same, and warn about the namespace */
    bool no_ns = root->ns == NULL;
    if (!no_ns && strcmp((const char *)root->ns->href, XHTML_NS) != 0) {
        snprintf(why, why_size, "narrative div must be in the XHTML namespace %s", XHTML_NS);
        rc = -1;
        goto out;
    }
    char inner[300];
    struct walk w = {false, inner, sizeof inner, false, no_ns, false};
    walk(&w, root->children, 0);
    if (w.bad) {
        snprintf(why, why_size, "%s", inner);
        rc = w.not_xhtml ? -1 : -2;
    } else if (!w.has_content) {
        snprintf(why, why_size,
                 "narrative has no content (txt-2): add text or an image, or leave out text");
        rc = -2;
    } else if (no_ns) {
        snprintf(why, why_size,
                 "narrative div should declare xmlns=\"http://www.w3.org/1999/xhtml\"");
        rc = 1;
    }
out:
    if (doc)
        xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    return rc;
}
