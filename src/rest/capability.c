/*
 * capability.c - GET /fhir/metadata: the CapabilityStatement, generated
 * from the model (every resource type) and from what this server's
 * handlers and search really support. Built once, then served as bytes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "fhir/model.h"
#include "rest/rest_int.h"
#include "search/params.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *cached;
static size_t cached_len;

static void build(void)
{
    json_t *cs = json_object();
    json_object_set_new(cs, "resourceType", json_string("CapabilityStatement"));
    json_object_set_new(cs, "status", json_string("active"));
    json_object_set_new(cs, "date", json_string("2026-11-23"));
    json_object_set_new(cs, "publisher", json_string("ehr"));
    json_object_set_new(cs, "kind", json_string("instance"));
    json_object_set_new(cs, "software", json_pack("{s:s, s:s}", "name", "ehr", "version", "0.1.0"));
    json_object_set_new(cs, "implementation",
                        json_pack("{s:s}", "description", "ehr FHIR R4 server"));
    json_object_set_new(cs, "fhirVersion", json_string("4.0.1"));
    json_object_set_new(cs, "format", json_pack("[s, s]", "json", "xml"));
    json_object_set_new(cs, "patchFormat", json_pack("[s]", "application/json-patch+json"));

    json_t *resources = json_array();
    for (size_t i = 0; i < ehr_fhir_n_types; i++) {
        const ehr_fhir_type *t = &ehr_fhir_types[i];
        if (t->kind != EHR_FHIR_KIND_RESOURCE || t->is_abstract)
            continue;
        json_t *r = json_object();
        json_object_set_new(r, "type", json_string(t->name));
        json_t *ints = json_array();
        static const char *const codes[] = {"read",         "vread",  "update",
                                            "patch",        "delete", "history-instance",
                                            "history-type", "create", "search-type"};
        for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++)
            json_array_append_new(ints, json_pack("{s:s}", "code", codes[k]));
        json_object_set_new(r, "interaction", ints);
        json_object_set_new(r, "versioning", json_string("versioned-update"));
        json_object_set_new(r, "readHistory", json_true());
        json_object_set_new(r, "updateCreate", json_true());
        json_object_set_new(r, "conditionalCreate", json_true());
        json_object_set_new(r, "conditionalRead", json_string("not-match"));
        json_object_set_new(r, "conditionalUpdate", json_true());
        json_object_set_new(r, "conditionalDelete", json_string("single"));
        /* every R4 search parameter of the type (docs/search.md says how
           each type is matched and what is not supported) */
        json_t *sps = json_array(), *incs = json_array();
        static const char *const kinds[] = {"string", "token", "date",      "reference", "quantity",
                                            "number", "uri",   "composite", "special"};
        const struct ehr_sp *list[256];
        size_t n = ehr_sp_list(t->name, list, 256);
        for (size_t k = 0; k < n && k < 256; k++) {
            const struct ehr_sp *sp = list[k];
            if (sp->kind == EHR_SP_SPECIAL || !strcmp(sp->code, "_query"))
                continue;
            json_array_append_new(
                sps, json_pack("{s:s, s:s}", "name", sp->code, "type", kinds[sp->kind]));
            if (sp->kind == EHR_SP_REFERENCE) {
                char inc[160];
                snprintf(inc, sizeof inc, "%s:%s", t->name, sp->code);
                json_array_append_new(incs, json_string(inc));
            }
        }
        json_array_append_new(incs, json_string("*"));
        json_object_set_new(r, "searchInclude", incs);
        json_object_set_new(r, "searchRevInclude", json_pack("[s]", "*"));
        json_object_set_new(r, "searchParam", sps);
        json_array_append_new(resources, r);
    }
    json_t *rest = json_object();
    json_object_set_new(rest, "mode", json_string("server"));
    json_object_set_new(rest, "resource", resources);
    json_object_set_new(rest, "interaction",
                        json_pack("[{s:s},{s:s},{s:s},{s:s}]", "code", "history-system", "code",
                                  "transaction", "code", "batch", "code", "search-system"));
    /* GET /Patient/ID/TYPE (rest.c) */
    json_object_set_new(rest, "compartment",
                        json_pack("[s]", "http://hl7.org/fhir/CompartmentDefinition/patient"));
    /* SMART App Launch: the endpoints are in /.well-known/smart-configuration */
    json_object_set_new(
        rest, "security",
        json_pack("{s:b, s:[{s:[{s:s, s:s}]}], s:s}", "cors", 1, "service", "coding", "system",
                  "http://terminology.hl7.org/CodeSystem/restful-security-service", "code",
                  "SMART-on-FHIR", "description",
                  "OAuth2 with SMART App Launch 2.0: see [base]/.well-known/smart-configuration; "
                  "every request needs a Bearer access token"));
    json_object_set_new(cs, "rest", json_pack("[o]", rest));
    cached = ehr_json_dumps(cs, EHR_JSON_COMPACT);
    cached_len = cached ? strlen(cached) : 0;
    json_decref(cs);
}

void rest_capabilities(struct rctx *x)
{
    pthread_once(&once, build);
    if (!cached) {
        rest_fail(x, 500, "exception", NULL, "out of memory");
        return;
    }
    rest_send_text(x, 200, cached, cached_len);
}
