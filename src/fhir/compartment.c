#include "fhir/compartment.h"

#include <string.h>

#include "core/json.h"

static ehr_status add(const char *pid, size_t len, ehr_arena *a, const char ***out, size_t *n,
                      size_t *cap)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen((*out)[i]) == len && !memcmp((*out)[i], pid, len))
            return EHR_OK;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        const char **p = ehr_arena_alloc(a, nc * sizeof *p);
        if (!p)
            return EHR_ENOMEM;
        if (*n)
            memcpy(p, *out, *n * sizeof *p);
        *out = p;
        *cap = nc;
    }
    const char *s = ehr_arena_strndup(a, pid, len);
    if (!s)
        return EHR_ENOMEM;
    (*out)[(*n)++] = s;
    return EHR_OK;
}

/* Walk the dotted path below v; at its end take "Patient/ID" references. */
static ehr_status walk(const json_t *v, const char *path, ehr_arena *a, const char ***out,
                       size_t *n, size_t *cap)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            ehr_status st = walk(json_array_get(v, i), path, a, out, n, cap);
            if (st)
                return st;
        }
        return EHR_OK;
    }
    if (!json_is_object(v))
        return EHR_OK;
    if (*path == '\0') {
        const char *ref = ehr_json_get_string(v, "reference");
        if (!ref)
            return EHR_OK;
        /* relative "Patient/ID" or absolute ".../Patient/ID"; skip versions */
        const char *p = strstr(ref, "Patient/");
        if (!p || (p != ref && p[-1] != '/'))
            return EHR_OK;
        p += 8;
        size_t len = strcspn(p, "/?#");
        if (len == 0 || len > 64)
            return EHR_OK;
        return add(p, len, a, out, n, cap);
    }
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    char key[128];
    if (len >= sizeof key)
        return EHR_OK;
    memcpy(key, path, len);
    key[len] = '\0';
    return walk(json_object_get(v, key), dot ? dot + 1 : "", a, out, n, cap);
}

ehr_status ehr_fhir_patient_compartments(const char *type, const char *id, const json_t *res,
                                         ehr_arena *arena, const char ***out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    if (!strcmp(type, "Patient") && id)
        return add(id, strlen(id), arena, out, n, &cap);
    for (size_t i = 0; i < ehr_fhir_patient_compartment_n; i++) {
        const struct ehr_fhir_compartment_path *cp = &ehr_fhir_patient_compartment[i];
        int c = strcmp(cp->type, type);
        if (c < 0)
            continue;
        if (c > 0)
            break;
        ehr_status st = walk(res, cp->path, arena, out, n, &cap);
        if (st)
            return st;
    }
    return EHR_OK;
}
