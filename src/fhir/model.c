/*
 * model.c - lookups over the generated FHIR R4 tables (model_gen.c).
 *
 * Everything here is a binary search or a short walk over immutable
 * tables: no allocation, no state, safe from any thread.
 */
#include "fhir/model.h"

#include <string.h>

/* strcmp of a (length alen, not NUL-terminated) against the string b. */
static int cmp_n(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

const ehr_fhir_type *ehr_fhir_type_find(const char *name, size_t len)
{
    size_t lo = 0, hi = ehr_fhir_n_types;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_n(name, len, ehr_fhir_types[mid].name);
        if (c == 0)
            return &ehr_fhir_types[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const ehr_fhir_type *ehr_fhir_resource_type(const char *name)
{
    if (!name)
        return NULL;
    const ehr_fhir_type *t = ehr_fhir_type_find(name, strlen(name));
    return t && t->kind == EHR_FHIR_KIND_RESOURCE ? t : NULL;
}

static const ehr_fhir_element *elem_bsearch(const ehr_fhir_type *t, const char *name, size_t len)
{
    size_t lo = 0, hi = t->n_elements;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_n(name, len, t->elements[mid].name);
        if (c == 0)
            return &t->elements[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Does the JSON suffix ("Quantity", "DateTime") name type code? The first
   letter of a primitive's code is capitalised in the suffix (FHIR R4 JSON
   2.6.2.3: "valueDateTime"). */
static bool suffix_is(const char *s, size_t len, const char *code)
{
    if (len != strlen(code) || len == 0)
        return false;
    char c0 = code[0];
    if (c0 >= 'a' && c0 <= 'z')
        c0 = (char)(c0 - 'a' + 'A');
    return s[0] == c0 && memcmp(s + 1, code + 1, len - 1) == 0;
}

const ehr_fhir_element *ehr_fhir_element_find(const ehr_fhir_type *t, const char *name, size_t len,
                                              const ehr_fhir_type **choice_type)
{
    if (!t || !name || len == 0)
        return NULL;
    const ehr_fhir_element *e = elem_bsearch(t, name, len);
    if (e && !e->is_choice) {
        if (choice_type)
            *choice_type = e->n_types == 1 ? e->types[0] : NULL;
        return e;
    }
    /* a choice: the name is a prefix followed by a capitalised type code */
    for (size_t i = 1; i < len; i++) {
        if (name[i] < 'A' || name[i] > 'Z')
            continue;
        e = elem_bsearch(t, name, i);
        if (!e || !e->is_choice)
            continue;
        for (uint16_t k = 0; k < e->n_types; k++) {
            if (suffix_is(name + i, len - i, e->types[k]->code)) {
                if (choice_type)
                    *choice_type = e->types[k];
                return e;
            }
        }
        return NULL;
    }
    return NULL;
}

const ehr_fhir_element *ehr_fhir_element_get(const ehr_fhir_type *t, const char *name, size_t len)
{
    if (!t || !name)
        return NULL;
    return elem_bsearch(t, name, len);
}

size_t ehr_fhir_json_name(const ehr_fhir_element *e, const ehr_fhir_type *t, char *buf, size_t size)
{
    const char *code = e->is_choice && t ? t->code : "";
    size_t n = strlen(e->name), m = strlen(code);
    for (size_t i = 0; i < n + m && i + 1 < size; i++) {
        char ch = i < n ? e->name[i] : code[i - n];
        if (i == n && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        buf[i] = ch;
    }
    if (size)
        buf[n + m < size ? n + m : size - 1] = 0;
    return n + m;
}

bool ehr_fhir_type_is_a(const ehr_fhir_type *t, const ehr_fhir_type *ancestor)
{
    for (; t; t = t->base)
        if (t == ancestor)
            return true;
    return false;
}

static int code_cmp(const struct ehr_fhir_code *c, const char *system, const char *code)
{
    int r = strcmp(code, c->code);
    if (r || !system)
        return r;
    return strcmp(system, c->system ? c->system : "");
}

bool ehr_fhir_valueset_has(const ehr_fhir_valueset *vs, const char *system, const char *code)
{
    if (!vs || !code)
        return false;
    /* find the first entry with this code, then scan its systems */
    size_t lo = 0, hi = vs->n_codes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(vs->codes[mid].code, code) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < vs->n_codes && strcmp(vs->codes[i].code, code) == 0; i++)
        if (code_cmp(&vs->codes[i], system, code) == 0 || !vs->codes[i].system)
            return true;
    return false;
}

bool ehr_fhir_valueset_has_system(const ehr_fhir_valueset *vs, const char *system)
{
    if (!vs || !system)
        return false;
    for (uint32_t i = 0; i < vs->n_codes; i++)
        if (vs->codes[i].system && strcmp(vs->codes[i].system, system) == 0)
            return true;
    return false;
}

const ehr_fhir_valueset *ehr_fhir_valueset_find(const char *url)
{
    if (!url)
        return NULL;
    size_t lo = 0, hi = ehr_fhir_n_valuesets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(url, ehr_fhir_valuesets[mid].url);
        if (c == 0)
            return &ehr_fhir_valuesets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
