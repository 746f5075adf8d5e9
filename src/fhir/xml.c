/*
 * xml.c - FHIR R4 XML <-> the JSON tree (see xml.h): what reading
 * (xml_read.c) and writing (xml_write.c) share.
 *
 * FHIR R4 XML (http://hl7.org/fhir/R4/xml.html) in short:
 *  - a primitive is <name value="..." id="..."> with <extension> children;
 *  - Element.id is an attribute, Extension.url is an attribute, but
 *    Resource.id is an element (<id value="..."/>);
 *  - an element of type Resource wraps the resource: <contained><Patient>;
 *  - the narrative div is XHTML, in the XHTML namespace;
 *  - elements come in definition order (ehr_fhir_element.order).
 */
#include "fhir/xml.h"

#include <libxml/parser.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/model.h"
#include "fhir/xml_int.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_libxml2(void)
{
    xmlInitParser();
}

void ehr_fhir_xml_init(void)
{
    pthread_once(&init_once, init_libxml2);
}

/* In XML, Element.id of every non-resource type and Extension.url are
   attributes, not child elements. */
bool ehr_fhir_xml_is_attribute(const ehr_fhir_type *t, const char *name)
{
    if (t->kind == EHR_FHIR_KIND_RESOURCE)
        return false;
    return strcmp(name, "id") == 0 ||
           (strcmp(name, "url") == 0 && strcmp(t->name, "Extension") == 0);
}

bool ehr_fhir_xml_is_number(ehr_fhir_prim p)
{
    return p == EHR_PRIM_INTEGER || p == EHR_PRIM_UNSIGNEDINT || p == EHR_PRIM_POSITIVEINT ||
           p == EHR_PRIM_DECIMAL;
}

void ehr_fhir_xml_path_truncate(ehr_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* ".name" and "[i]" steps of a location, without printf (one per element
   read or written). */
ehr_status ehr_fhir_xml_path_name(ehr_buf *b, const char *name)
{
    ehr_status st = ehr_buf_putc(b, '.');
    return st ? st : ehr_buf_puts(b, name);
}

ehr_status ehr_fhir_xml_path_index(ehr_buf *b, size_t i)
{
    char digits[24];
    size_t n = sizeof digits;
    digits[--n] = ']';
    do {
        digits[--n] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    digits[--n] = '[';
    return ehr_buf_append(b, digits + n, sizeof digits - n);
}

/* JSON number grammar (RFC 8259), which is also FHIR's decimal; with
   integer_only, no fraction or exponent. */
bool ehr_fhir_xml_number_shape(const char *s, size_t n, bool integer_only)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (integer_only)
        return i == n;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

/* Why s is not a valid value of the integer type prim (NULL when it is):
   FHIR R4 2.24.0.1, integer is 32 bits, unsignedInt >= 0, positiveInt >= 1. */
const char *ehr_fhir_xml_int_problem(ehr_fhir_prim prim, const char *s, size_t n)
{
    if (!ehr_fhir_xml_number_shape(s, n, true))
        return "an integer is written in decimal digits with an optional '-'";
    long long v = s[0] == '-' ? LLONG_MIN : LLONG_MAX;
    if (n <= 11) {
        char buf[16];
        memcpy(buf, s, n);
        buf[n] = '\0';
        v = strtoll(buf, NULL, 10);
    }
    if (v < INT32_MIN || v > INT32_MAX)
        return "an integer must be between -2147483648 and 2147483647";
    if (prim == EHR_PRIM_UNSIGNEDINT && v < 0)
        return "an unsignedInt may not be negative";
    if (prim == EHR_PRIM_POSITIVEINT && v < 1)
        return "a positiveInt is at least 1";
    return NULL;
}
