/*
 * audit_fhir.c - audit records as FHIR R4 AuditEvent resources, in the
 * style of IHE Basic Audit Log Patterns (BALP): type "rest" (or "110114
 * User Authentication" for sign-ins), subtype the interaction, agent the
 * user (and the app), source this server, entity the patient(s) and the
 * resource touched.
 */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "core/util.h"

static const char *str(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* FHIR AuditEvent.action: C R U D E */
static const char *crud(const char *a)
{
    if (!a)
        return "E";
    if (!strcmp(a, "create"))
        return "C";
    if (!strcmp(a, "read") || !strcmp(a, "vread") || !strcmp(a, "search") || !strcmp(a, "history"))
        return "R";
    if (!strcmp(a, "update") || !strcmp(a, "patch"))
        return "U";
    if (!strcmp(a, "delete"))
        return "D";
    return "E";
}

static bool is_rest(const char *a)
{
    static const char *const rest[] = {"read",   "vread",  "search", "history",
                                       "create", "update", "patch",  "delete"};
    for (size_t i = 0; a && i < sizeof rest / sizeof rest[0]; i++)
        if (!strcmp(a, rest[i]))
            return true;
    return false;
}

json_t *ehr_audit_to_fhir(int64_t seq, int64_t time, const char *event, size_t len)
{
    json_t *ev = json_loadb(event, len, 0, NULL);
    if (!json_is_object(ev)) {
        json_decref(ev);
        ev = json_object();
    }
    const char *action = str(ev, "action");
    const char *outcome = str(ev, "outcome");
    char id[32], when[EHR_INSTANT_LEN];
    snprintf(id, sizeof id, "%lld", (long long)seq);
    ehr_time_format(time, when);
    json_t *ae = json_pack("{s:s, s:s}", "resourceType", "AuditEvent", "id", id);
    if (is_rest(action))
        json_object_set_new(ae, "type",
                            json_pack("{s:s, s:s, s:s}", "system",
                                      "http://terminology.hl7.org/CodeSystem/audit-event-type",
                                      "code", "rest", "display", "RESTful Operation"));
    else
        json_object_set_new(ae, "type",
                            json_pack("{s:s, s:s, s:s}", "system",
                                      "http://dicom.nema.org/resources/ontology/DCM", "code",
                                      !strncmp(action ? action : "", "login", 5) ||
                                              !strncmp(action ? action : "", "mfa", 3) ||
                                              !strcmp(action ? action : "", "logout")
                                          ? "110114"
                                          : "110113",
                                      "display",
                                      !strncmp(action ? action : "", "login", 5)
                                          ? "User Authentication"
                                          : "Security Alert"));
    json_object_set_new(ae, "subtype",
                        json_pack("[{s:s, s:s}]", "system",
                                  is_rest(action) ? "http://hl7.org/fhir/restful-interaction"
                                                  : "urn:ehr:audit-action",
                                  "code", action ? action : "unknown"));
    json_object_set_new(ae, "action", json_string(crud(action)));
    json_object_set_new(ae, "recorded", json_string(when));
    /* 0 success, 4 minor failure (denied, not found), 8 serious failure */
    const char *oc = !outcome || !strcmp(outcome, "ok") ? "0"
                     : !strcmp(outcome, "failed")       ? "8"
                                                        : "4";
    json_object_set_new(ae, "outcome", json_string(oc));
    if (outcome && strcmp(outcome, "ok")) {
        const char *d = str(ev, "reason") ? str(ev, "reason") : str(ev, "detail");
        char desc[300];
        snprintf(desc, sizeof desc, "%s%s%s", outcome, d ? ": " : "", d ? d : "");
        json_object_set_new(ae, "outcomeDesc", json_string(desc));
    }
    json_t *agents = json_array();
    json_t *user = json_pack("{s:{s:s}, s:b}", "who", "display",
                             str(ev, "user") ? str(ev, "user") : "anonymous", "requestor", 1);
    if (str(ev, "role"))
        json_object_set_new(user, "role", json_pack("[{s:s}]", "text", str(ev, "role")));
    if (str(ev, "client"))
        json_object_set_new(user, "network",
                            json_pack("{s:s, s:s}", "address", str(ev, "client"), "type", "2"));
    if (json_is_true(json_object_get(ev, "break_glass")))
        json_object_set_new(user, "purposeOfUse",
                            json_pack("[{s:[{s:s, s:s, s:s}]}]", "coding", "system",
                                      "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code",
                                      "BTG", "display", "break the glass"));
    json_array_append_new(agents, user);
    if (str(ev, "app"))
        json_array_append_new(agents, json_pack("{s:{s:s}, s:b, s:[{s:s}]}", "who", "display",
                                                str(ev, "app"), "requestor", 0, "role", "text",
                                                "application"));
    json_object_set_new(ae, "agent", agents);
    json_object_set_new(
        ae, "source",
        json_pack("{s:{s:s}, s:[{s:s, s:s}]}", "observer", "display", "ehr", "type", "system",
                  "http://terminology.hl7.org/CodeSystem/security-source-type", "code", "4"));
    json_t *entities = json_array();
    const json_t *pts = json_object_get(ev, "patients");
    for (size_t i = 0; i < json_array_size(pts); i++) {
        const char *p = json_string_value(json_array_get(pts, i));
        if (!p)
            continue;
        char ref[128];
        snprintf(ref, sizeof ref, "Patient/%s", p);
        json_array_append_new(
            entities,
            json_pack("{s:{s:s}, s:{s:s, s:s}}", "what", "reference", ref, "role", "system",
                      "http://terminology.hl7.org/CodeSystem/object-role", "code", "1"));
    }
    if (str(ev, "type")) {
        char ref[200];
        if (str(ev, "id"))
            snprintf(ref, sizeof ref, "%s/%s", str(ev, "type"), str(ev, "id"));
        else
            snprintf(ref, sizeof ref, "%s", str(ev, "type"));
        json_t *en = json_pack("{s:{s:s}}", "what", str(ev, "id") ? "reference" : "display", ref);
        if (str(ev, "query")) {
            /* BALP: the query as sent, base64; here as text in description */
            json_object_set_new(en, "description", json_string(str(ev, "query")));
        }
        json_array_append_new(entities, en);
    }
    if (str(ev, "reason") && json_is_true(json_object_get(ev, "break_glass")))
        json_array_append_new(entities, json_pack("{s:s, s:s}", "name", "break-glass reason",
                                                  "description", str(ev, "reason")));
    if (json_array_size(entities))
        json_object_set_new(ae, "entity", entities);
    else
        json_decref(entities);
    json_decref(ev);
    return ae;
}
