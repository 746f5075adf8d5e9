/*
 * subset.c - _summary and _elements (FHIR R4 search 3.1.1.5.7/8): a
 * resource reduced to the elements asked for, marked SUBSETTED in
 * meta.tag. Top-level elements only; the model says which are summary
 * elements and which are mandatory.
 */
#include <string.h>

#include "core/json.h"
#include "fhir/model.h"
#include "search/search.h"

static bool keep(const ehr_search *s, const ehr_fhir_type *t, const char *key)
{
    if (!strcmp(key, "resourceType") || !strcmp(key, "id") || !strcmp(key, "meta"))
        return true;
    const char *k = key[0] == '_' ? key + 1 : key; /* a primitive's id and extensions */
    const ehr_fhir_element *e = t ? ehr_fhir_element_find(t, k, strlen(k), NULL) : NULL;
    if (s->n_elements) {
        for (size_t i = 0; i < s->n_elements; i++)
            if (!strcmp(s->elements[i], k) || (e && !strcmp(s->elements[i], e->name)))
                return true;
        return e && e->min > 0 && e->is_modifier; /* never hide what changes meaning */
    }
    switch (s->summary) {
    case EHR_SUMMARY_TRUE:
        return e && e->is_summary;
    case EHR_SUMMARY_TEXT:
        return !strcmp(k, "text") || (e && e->min > 0);
    case EHR_SUMMARY_DATA:
        return strcmp(k, "text") != 0;
    default:
        return true;
    }
}

ehr_status ehr_search_subset(const ehr_search *s, const char *content, size_t len, ehr_buf *out)
{
    if (!s->n_elements && (s->summary == EHR_SUMMARY_NONE || s->summary == EHR_SUMMARY_COUNT)) {
        ehr_buf_append(out, content, len);
        return out->data ? EHR_OK : EHR_ENOMEM;
    }
    ehr_err err = {{0}};
    json_t *res = ehr_json_parse(content, len, &err);
    if (!res)
        return EHR_EIO;
    const ehr_fhir_type *t = ehr_fhir_resource_type(ehr_json_get_string(res, "resourceType"));
    const char *key;
    json_t *val, *tmp;
    json_object_foreach_safe(res, tmp, key, val)
    {
        if (!keep(s, t, key))
            json_object_del(res, key);
    }
    json_t *meta = json_object_get(res, "meta");
    if (!meta) {
        meta = json_object();
        json_object_set_new(res, "meta", meta);
    }
    json_t *tags = json_object_get(meta, "tag");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(meta, "tag", tags);
    }
    json_array_append_new(tags,
                          json_pack("{s:s,s:s}", "system",
                                    "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                    "code", "SUBSETTED"));
    ehr_status st = ehr_json_dump(res, out, EHR_JSON_COMPACT);
    json_decref(res);
    return st;
}
