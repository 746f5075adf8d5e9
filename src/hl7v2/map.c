/*
 * map.c - HL7 v2 -> FHIR: data types, the patient (PID, NK1, IN1) and the
 * ADT events, following the HL7 v2-to-FHIR IG (messages ADT_A01, ADT_A02,
 * ADT_A05, ADT_A09, ADT_A11; segments PID[Patient], PV1[Encounter],
 * NK1[RelatedPerson], IN1[Coverage], MRG; data types CX, XPN, XAD, XTN,
 * CWE, XCN; concept maps in vocab_gen.c). Results, vaccinations and
 * appointments are in map_results.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "hl7v2/map_int.h"

const struct hl7_vocab *hl7_vocab_find(const char *map, const char *v2)
{
    if (!v2 || !*v2)
        return NULL;
    for (size_t i = 0; i < hl7_vocab_count; i++)
        if (!strcmp(hl7_vocab[i].map, map) && !strcmp(hl7_vocab[i].v2, v2))
            return &hl7_vocab[i];
    return NULL;
}

/* -- small helpers -- */

static bool valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80             ? 0
                : (*s & 0xE0) == 0xC0 ? 1
                : (*s & 0xF0) == 0xE0 ? 2
                : (*s & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (n < 0)
            return false;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xC0) != 0x80)
                return false;
    }
    return true;
}

json_t *map_str(const char *s)
{
    if (valid_utf8((const unsigned char *)s))
        return json_string(s);
    /* v2 messages declare their character set in MSH-18; bytes that are not
       UTF-8 are read as ISO 8859-1, the most common one */
    ehr_buf b = EHR_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            ehr_buf_putc(&b, (char)*p);
        } else {
            ehr_buf_putc(&b, (char)(0xC0 | (*p >> 6)));
            ehr_buf_putc(&b, (char)(0x80 | (*p & 0x3F)));
        }
    }
    json_t *j = json_string(b.data ? b.data : "");
    ehr_buf_free(&b);
    return j;
}

/* FHIR strings may not be all whitespace; v2 sends "" (the null value) too */
static bool valued(const char *s)
{
    if (!s || !strcmp(s, "\"\""))
        return false;
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return true;
    return false;
}

void map_set(json_t *obj, const char *key, const char *s)
{
    if (valued(s))
        json_object_set_new(obj, key, map_str(s));
}

static void push_str(json_t *obj, const char *key, const char *s)
{
    if (!valued(s))
        return;
    json_t *a = json_object_get(obj, key);
    if (!a) {
        a = json_array();
        json_object_set_new(obj, key, a);
    }
    json_array_append_new(a, map_str(s));
}

static void push(json_t *obj, const char *key, json_t *v)
{
    if (!v)
        return;
    json_t *a = json_object_get(obj, key);
    if (!a) {
        a = json_array();
        json_object_set_new(obj, key, a);
    }
    json_array_append_new(a, v);
}

void map_uuid(char out[64])
{
    unsigned char r[16];
    ehr_random(r, sizeof r);
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
    snprintf(out, 64,
             "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

void map_query_value(ehr_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ',')
            ehr_buf_puts(b, "\\,");
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '/' ||
            c == '|')
            ehr_buf_putc(b, (char)c);
        else if (c != ',')
            ehr_buf_printf(b, "%%%02X", c);
    }
}

char *map_ident_query(const json_t *ident)
{
    const char *sys = ehr_json_get_string(ident, "system");
    const char *val = ehr_json_get_string(ident, "value");
    if (!val)
        return NULL;
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, "identifier=");
    /* "|value": an identifier without a system (FHIR R4 3.1.1.4.10) */
    if (sys)
        map_query_value(&b, sys);
    ehr_buf_putc(&b, '|');
    map_query_value(&b, val);
    return ehr_buf_steal(&b, NULL);
}

json_t *map_entry(struct mapper *mp, json_t *res, const char *method, const char *cond,
                  char fullurl[64])
{
    /* one resource per key in a message: a second conditional write of the
       same key (the same practitioner in several OBX, two SPM with one id)
       is the first entry (a transaction would otherwise create two) */
    const char *type = ehr_json_get_string(res, "resourceType");
    size_t i;
    json_t *old;
    json_array_foreach(mp->entries, i, old)
    {
        json_t *oreq = json_object_get(old, "request");
        const char *ot = ehr_json_get_string(json_object_get(old, "resource"), "resourceType");
        const char *oc = ehr_json_get_string(oreq, "ifNoneExist");
        const char *ou = ehr_json_get_string(oreq, "url");
        const char *oq = oc ? oc : ou && strchr(ou, '?') ? strchr(ou, '?') + 1 : NULL;
        if (cond && oq && ot && type && !strcmp(ot, type) && !strcmp(oq, cond)) {
            if (fullurl)
                snprintf(fullurl, 64, "%s", ehr_json_get_string(old, "fullUrl"));
            json_decref(res);
            return old;
        }
    }
    char u[64];
    map_uuid(u);
    if (fullurl)
        snprintf(fullurl, 64, "%s", u);
    /* where it came from (FHIR meta.source): the sender; outbound messages
       are not made for what came in this way */
    ehr_buf src = EHR_BUF_INIT;
    ehr_buf_puts(&src, "urn:ehr:hl7v2:");
    for (const char *p = mp->in->peer; *p; p++)
        ehr_buf_putc(&src, isalnum((unsigned char)*p) || *p == '-' || *p == '.' ? *p : '_');
    json_object_set_new(res, "meta", json_pack("{s:s}", "source", src.data));
    ehr_buf_free(&src);
    json_t *req = json_pack("{s:s}", "method", method);
    if (!strcmp(method, "PUT")) {
        char url[1200];
        snprintf(url, sizeof url, "%s?%s", type, cond ? cond : "");
        json_object_set_new(req, "url", json_string(url));
    } else {
        json_object_set_new(req, "url", json_string(type));
        if (cond)
            json_object_set_new(req, "ifNoneExist", json_string(cond));
    }
    json_t *en = json_pack("{s:s, s:o, s:o}", "fullUrl", u, "resource", res, "request", req);
    json_array_append_new(mp->entries, en);
    return en;
}

json_t *map_source_ident(struct mapper *mp, const char *what)
{
    char v[600];
    snprintf(v, sizeof v, "%s/%s/%s", mp->in->peer, mp->in->control_id, what);
    return json_pack("{s:s, s:o}", "system", "urn:ehr:hl7v2:source", "value", map_str(v));
}

int map_seq(struct mapper *mp, const ehr_hl7_seg *s)
{
    return s ? (int)(s - mp->m->segs) + 1 : 0;
}

ehr_status map_required(struct mapper *mp, const ehr_hl7_seg *s, int f, const char *what)
{
    return ehr_hl7_fail(mp->e, EHR_EINVAL, 101, s ? s->name : "", map_seq(mp, s), f,
                        "%s-%d (%s) is required", s ? s->name : "?", f, what);
}

/* -- data types -- */

const char *map_system_of(const char *cs)
{
    static const struct {
        const char *v2, *uri;
    } t[] = {
        {"LN", "http://loinc.org"},
        {"LOINC", "http://loinc.org"},
        {"SCT", "http://snomed.info/sct"},
        {"SNM", "http://snomed.info/sct"},
        {"SNOMED", "http://snomed.info/sct"},
        {"CVX", "http://hl7.org/fhir/sid/cvx"},
        {"MVX", "http://terminology.hl7.org/CodeSystem/MVX"},
        {"NDC", "http://hl7.org/fhir/sid/ndc"},
        {"RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"},
        {"I10", "http://hl7.org/fhir/sid/icd-10"},
        {"I10C", "http://hl7.org/fhir/sid/icd-10-cm"},
        {"I9C", "http://hl7.org/fhir/sid/icd-9-cm"},
        {"CPT", "http://www.ama-assn.org/go/cpt"},
        {"C4", "http://www.ama-assn.org/go/cpt"},
        {"UCUM", "http://unitsofmeasure.org"},
        {"NCIT", "http://ncimeta.nci.nih.gov"},
    };
    if (!valued(cs))
        return NULL;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(cs, t[i].v2))
            return t[i].uri;
    return NULL;
}

/* HL7 tables HL7nnnn -> http://terminology.hl7.org/CodeSystem/v2-nnnn */
static void coding_system(const char *cs, char *out, size_t cap)
{
    out[0] = '\0';
    const char *uri = map_system_of(cs);
    if (uri) {
        snprintf(out, cap, "%s", uri);
    } else if (cs && !strncmp(cs, "HL7", 3) && strlen(cs) == 7 && isdigit((unsigned char)cs[3])) {
        snprintf(out, cap, "http://terminology.hl7.org/CodeSystem/v2-%s", cs + 3);
    } else if (valued(cs)) {
        /* a local coding system: a stable URI naming it (docs/hl7v2.md) */
        ehr_buf b = EHR_BUF_INIT;
        ehr_buf_puts(&b, "urn:ehr:hl7v2:cs:");
        for (const char *p = cs; *p; p++)
            ehr_buf_putc(&b, isalnum((unsigned char)*p) || *p == '-' || *p == '.' ? *p : '_');
        snprintf(out, cap, "%s", b.data);
        ehr_buf_free(&b);
    }
}

/* HD (namespace^universal id^type) -> an Identifier.system */
static void hd_system(const char *ns, const char *uid, const char *type, char *out, size_t cap)
{
    out[0] = '\0';
    if (valued(uid) && type && !strcmp(type, "ISO"))
        snprintf(out, cap, "urn:oid:%s", uid);
    else if (valued(uid) && type && !strcmp(type, "UUID"))
        snprintf(out, cap, "urn:uuid:%s", uid);
    else if (valued(uid) && (!strncmp(uid, "http", 4) || !strncmp(uid, "urn:", 4)))
        snprintf(out, cap, "%s", uid);
    else if (valued(ns) || valued(uid)) {
        ehr_buf b = EHR_BUF_INIT;
        ehr_buf_puts(&b, "urn:ehr:hl7v2:id:");
        for (const char *p = valued(ns) ? ns : uid; *p; p++)
            ehr_buf_putc(&b, isalnum((unsigned char)*p) || *p == '-' || *p == '.' ? *p : '_');
        snprintf(out, cap, "%s", b.data);
        ehr_buf_free(&b);
    }
}

json_t *map_cx(const ehr_hl7_seg *s, int f, int rep)
{
    const char *v = ehr_hl7_get(s, f, rep, 1, 1);
    if (!valued(v))
        return NULL;
    json_t *id = json_object();
    char sys[300];
    hd_system(ehr_hl7_get(s, f, rep, 4, 1), ehr_hl7_get(s, f, rep, 4, 2),
              ehr_hl7_get(s, f, rep, 4, 3), sys, sizeof sys);
    const char *type = ehr_hl7_get(s, f, rep, 5, 1);
    if (valued(type))
        json_object_set_new(id, "type",
                            json_pack("{s:[{s:s, s:o}]}", "coding", "system",
                                      "http://terminology.hl7.org/CodeSystem/v2-0203", "code",
                                      map_str(type)));
    map_set(id, "system", sys);
    map_set(id, "value", v);
    return id;
}

json_t *map_ei_ident(const ehr_hl7_seg *s, int f)
{
    const char *v = ehr_hl7_val(s, f, 1);
    if (!valued(v))
        return NULL;
    json_t *id = json_object();
    char sys[300];
    hd_system(ehr_hl7_val(s, f, 2), ehr_hl7_val(s, f, 3), ehr_hl7_val(s, f, 4), sys, sizeof sys);
    map_set(id, "system", sys);
    map_set(id, "value", v);
    return id;
}

json_t *map_coding(const char *map, const char *v2)
{
    const struct hl7_vocab *v = hl7_vocab_find(map, v2);
    if (!v)
        return NULL;
    json_t *c = json_object();
    map_set(c, "system", v->system);
    map_set(c, "code", v->code);
    map_set(c, "display", v->display);
    return c;
}

json_t *map_xpn(const ehr_hl7_seg *s, int f, int rep)
{
    json_t *n = json_object();
    map_set(n, "family", ehr_hl7_get(s, f, rep, 1, 1));
    push_str(n, "given", ehr_hl7_get(s, f, rep, 2, 1));
    /* XPN-3 "second and further given names or initials" */
    push_str(n, "given", ehr_hl7_get(s, f, rep, 3, 1));
    push_str(n, "suffix", ehr_hl7_get(s, f, rep, 4, 1));
    push_str(n, "prefix", ehr_hl7_get(s, f, rep, 5, 1));
    push_str(n, "suffix", ehr_hl7_get(s, f, rep, 6, 1));
    if (json_object_size(n) == 0) {
        json_decref(n);
        return NULL;
    }
    const struct hl7_vocab *u = hl7_vocab_find("NameUse", ehr_hl7_get(s, f, rep, 7, 1));
    if (u)
        map_set(n, "use", u->code);
    return n;
}

json_t *map_xad(const ehr_hl7_seg *s, int f, int rep)
{
    json_t *a = json_object();
    push_str(a, "line", ehr_hl7_get(s, f, rep, 1, 1));
    push_str(a, "line", ehr_hl7_get(s, f, rep, 2, 1));
    map_set(a, "city", ehr_hl7_get(s, f, rep, 3, 1));
    map_set(a, "state", ehr_hl7_get(s, f, rep, 4, 1));
    map_set(a, "postalCode", ehr_hl7_get(s, f, rep, 5, 1));
    map_set(a, "country", ehr_hl7_get(s, f, rep, 6, 1));
    if (json_object_size(a) == 0) {
        json_decref(a);
        return NULL;
    }
    const struct hl7_vocab *u = hl7_vocab_find("AddressUse", ehr_hl7_get(s, f, rep, 7, 1));
    if (u && strstr(u->system, "address-use"))
        map_set(a, "use", u->code);
    return a;
}

json_t *map_xtn(const ehr_hl7_seg *s, int f, int rep, const char *default_use)
{
    const char *v = ehr_hl7_get(s, f, rep, 1, 1);
    const char *email = ehr_hl7_get(s, f, rep, 4, 1);
    char num[200] = "";
    if (!valued(v) && valued(ehr_hl7_get(s, f, rep, 7, 1)))
        snprintf(num, sizeof num, "%s%s%s", ehr_hl7_get(s, f, rep, 6, 1),
                 valued(ehr_hl7_get(s, f, rep, 6, 1)) ? " " : "", ehr_hl7_get(s, f, rep, 7, 1));
    const char *value = valued(v) ? v : valued(email) ? email : num;
    if (!valued(value))
        return NULL;
    json_t *t = json_object();
    const char *equip = ehr_hl7_get(s, f, rep, 3, 1);
    const struct hl7_vocab *sys = hl7_vocab_find("TelecomSystem", equip);
    const char *use = default_use;
    if (sys && strstr(sys->system, "contact-point-use")) {
        /* CP (cellular phone) maps to a use, not a system */
        map_set(t, "system", "phone");
        use = sys->code;
    } else if (sys) {
        map_set(t, "system", sys->code);
    } else if (valued(email) && !valued(v)) {
        map_set(t, "system", "email");
    } else {
        map_set(t, "system", "phone");
    }
    map_set(t, "value", value);
    const struct hl7_vocab *u = hl7_vocab_find("TelecomUse", ehr_hl7_get(s, f, rep, 2, 1));
    if (u && strstr(u->system, "contact-point-use"))
        use = u->code;
    map_set(t, "use", use);
    return t;
}

json_t *map_cwe(const ehr_hl7_seg *s, int f, int rep, const char *default_system)
{
    json_t *cc = json_object();
    for (int k = 0; k < 2; k++) {
        const char *code = ehr_hl7_get(s, f, rep, 1 + 3 * k, 1);
        const char *disp = ehr_hl7_get(s, f, rep, 2 + 3 * k, 1);
        const char *cs = ehr_hl7_get(s, f, rep, 3 + 3 * k, 1);
        if (!valued(code))
            continue;
        json_t *c = json_object();
        char sys[300];
        coding_system(cs, sys, sizeof sys);
        if (!sys[0] && default_system && k == 0)
            snprintf(sys, sizeof sys, "%s", default_system);
        map_set(c, "system", sys);
        map_set(c, "code", code);
        map_set(c, "display", disp);
        push(cc, "coding", c);
    }
    const char *text = ehr_hl7_get(s, f, rep, 9, 1);
    if (!valued(text) && !json_object_get(cc, "coding"))
        text = ehr_hl7_get(s, f, rep, 2, 1);
    map_set(cc, "text", text);
    if (json_object_size(cc) == 0) {
        json_decref(cc);
        return NULL;
    }
    return cc;
}

bool map_dtm(struct mapper *mp, const ehr_hl7_seg *s, int f, int comp, bool date_only, char *out,
             size_t cap, bool required)
{
    const char *v = ehr_hl7_val(s, f, comp);
    if (!valued(v)) {
        if (required)
            map_required(mp, s, f, "a date and time");
        return false;
    }
    if (ehr_hl7_dtm_to_fhir(v, date_only, out, cap))
        return true;
    if (required)
        ehr_hl7_fail(mp->e, EHR_EINVAL, 102, s->name, map_seq(mp, s), f,
                     "%s-%d: '%s' is not a date/time (YYYY[MM[DD[HHMM[SS]]]][+/-ZZZZ])", s->name, f,
                     v);
    return false;
}

json_t *map_xcn_ref(struct mapper *mp, const ehr_hl7_seg *s, int f, int rep)
{
    const char *id = ehr_hl7_get(s, f, rep, 1, 1);
    const char *family = ehr_hl7_get(s, f, rep, 2, 1);
    const char *given = ehr_hl7_get(s, f, rep, 3, 1);
    char disp[400];
    snprintf(disp, sizeof disp, "%s%s%s", valued(given) ? given : "",
             valued(given) && valued(family) ? " " : "", valued(family) ? family : "");
    if (!valued(id) && !valued(disp))
        return NULL;
    json_t *ref = json_object();
    if (valued(id)) {
        json_t *pr = json_pack("{s:s}", "resourceType", "Practitioner");
        json_t *ident = json_object();
        char sys[300];
        /* XCN-9 assigning authority (HD) */
        hd_system(ehr_hl7_get(s, f, rep, 9, 1), ehr_hl7_get(s, f, rep, 9, 2),
                  ehr_hl7_get(s, f, rep, 9, 3), sys, sizeof sys);
        map_set(ident, "system", sys);
        map_set(ident, "value", id);
        char *q = map_ident_query(ident);
        push(pr, "identifier", ident);
        json_t *name = json_object();
        map_set(name, "family", family);
        push_str(name, "given", given);
        push_str(name, "prefix", ehr_hl7_get(s, f, rep, 6, 1));
        if (json_object_size(name))
            push(pr, "name", name);
        else
            json_decref(name);
        char url[64];
        map_entry(mp, pr, "POST", q, url);
        free(q);
        json_object_set_new(ref, "reference", json_string(url));
    }
    map_set(ref, "display", disp);
    return ref;
}

/* -- the patient -- */

static json_t *patient_from_pid(struct mapper *mp, const ehr_hl7_seg *pid)
{
    json_t *p = json_pack("{s:s}", "resourceType", "Patient");
    for (size_t r = 1; r <= ehr_hl7_nreps(pid, 3); r++)
        push(p, "identifier", map_cx(pid, 3, (int)r));
    push(p, "identifier", map_cx(pid, 2, 1));
    const char *ssn = ehr_hl7_val(pid, 19, 1);
    if (valued(ssn))
        push(p, "identifier",
             json_pack("{s:{s:[{s:s, s:s}]}, s:s, s:o}", "type", "coding", "system",
                       "http://terminology.hl7.org/CodeSystem/v2-0203", "code", "SS", "system",
                       "http://hl7.org/fhir/sid/us-ssn", "value", map_str(ssn)));
    json_object_set_new(p, "active", json_true());
    for (size_t r = 1; r <= ehr_hl7_nreps(pid, 5); r++)
        push(p, "name", map_xpn(pid, 5, (int)r));
    for (size_t r = 1; r <= ehr_hl7_nreps(pid, 13); r++)
        push(p, "telecom", map_xtn(pid, 13, (int)r, "home"));
    for (size_t r = 1; r <= ehr_hl7_nreps(pid, 14); r++)
        push(p, "telecom", map_xtn(pid, 14, (int)r, "work"));
    const struct hl7_vocab *g = hl7_vocab_find("AdministrativeSex", ehr_hl7_val(pid, 8, 1));
    if (g)
        map_set(p, "gender", g->code);
    char d[64];
    if (map_dtm(mp, pid, 7, 1, true, d, sizeof d, false))
        map_set(p, "birthDate", d);
    const char *dead = ehr_hl7_val(pid, 30, 1);
    if (map_dtm(mp, pid, 29, 1, false, d, sizeof d, false))
        map_set(p, "deceasedDateTime", d);
    else if (valued(dead))
        json_object_set_new(p, "deceasedBoolean", !strcmp(dead, "Y") ? json_true() : json_false());
    for (size_t r = 1; r <= ehr_hl7_nreps(pid, 11); r++)
        push(p, "address", map_xad(pid, 11, (int)r));
    json_t *ms = map_cwe(pid, 16, 1, "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus");
    if (ms)
        json_object_set_new(p, "maritalStatus", ms);
    const char *mb = ehr_hl7_val(pid, 24, 1), *order = ehr_hl7_val(pid, 25, 1);
    if (valued(order) && strspn(order, "0123456789") == strlen(order) && strlen(order) < 6)
        json_object_set_new(p, "multipleBirthInteger", ehr_json_integer(atoi(order)));
    else if (valued(mb))
        json_object_set_new(p, "multipleBirthBoolean",
                            !strcmp(mb, "Y") ? json_true() : json_false());
    json_t *lang = map_cwe(pid, 15, 1, NULL);
    if (lang)
        push(p, "communication", json_pack("{s:o}", "language", lang));
    return p;
}

ehr_status map_patient(struct mapper *mp, const ehr_hl7_seg *pid, bool adt)
{
    if (!pid)
        return ehr_hl7_fail(mp->e, EHR_EINVAL, 100, "PID", 0, 0, "the message has no PID segment");
    json_t *key = map_cx(pid, 3, 1);
    for (size_t r = 2; !key && r <= ehr_hl7_nreps(pid, 3); r++)
        key = map_cx(pid, 3, (int)r);
    if (!key)
        return map_required(mp, pid, 3, "patient identifier list");
    char *q = map_ident_query(key);
    snprintf(mp->patient_key, sizeof mp->patient_key, "%s/%s",
             ehr_json_get_string(key, "system") ? ehr_json_get_string(key, "system") : "",
             ehr_json_get_string(key, "value"));
    json_decref(key);
    json_t *p = patient_from_pid(mp, pid);
    if (mp->e->code) {
        free(q);
        json_decref(p);
        return EHR_EINVAL;
    }
    /* next of kin (NK1[RelatedPerson]) come after the patient they name */
    json_t *en;
    if (adt) {
        en = map_entry(mp, p, "PUT", q, mp->patient_ref);
    } else {
        en = map_entry(mp, p, "POST", q, mp->patient_ref);
        if (mp->in->reject_unknown_patient)
            json_object_set_new(en, "_mustExist", json_true());
    }
    free(q);
    return EHR_OK;
}

static void map_nk1(struct mapper *mp)
{
    for (int i = 1;; i++) {
        const ehr_hl7_seg *nk = ehr_hl7_seg_find(mp->m, "NK1", i);
        if (!nk)
            break;
        json_t *rp = json_pack("{s:s, s:{s:s}}", "resourceType", "RelatedPerson", "patient",
                               "reference", mp->patient_ref);
        char v[700];
        const char *set = ehr_hl7_val(nk, 1, 1);
        snprintf(v, sizeof v, "%s/NK1-%s", mp->patient_key, valued(set) ? set : "");
        if (!valued(set))
            snprintf(v + strlen(v), sizeof v - strlen(v), "%d", i);
        json_t *ident = json_pack("{s:s, s:o}", "system", "urn:ehr:hl7v2:nk1", "value", map_str(v));
        char *q = map_ident_query(ident);
        push(rp, "identifier", ident);
        for (size_t r = 1; r <= ehr_hl7_nreps(nk, 2); r++)
            push(rp, "name", map_xpn(nk, 2, (int)r));
        push(rp, "relationship",
             map_cwe(nk, 3, 1, "http://terminology.hl7.org/CodeSystem/v2-0063"));
        for (size_t r = 1; r <= ehr_hl7_nreps(nk, 4); r++)
            push(rp, "address", map_xad(nk, 4, (int)r));
        for (size_t r = 1; r <= ehr_hl7_nreps(nk, 5); r++)
            push(rp, "telecom", map_xtn(nk, 5, (int)r, "home"));
        for (size_t r = 1; r <= ehr_hl7_nreps(nk, 6); r++)
            push(rp, "telecom", map_xtn(nk, 6, (int)r, "work"));
        map_entry(mp, rp, "PUT", q, NULL);
        free(q);
    }
}

static void map_in1(struct mapper *mp)
{
    for (int i = 1;; i++) {
        const ehr_hl7_seg *in = ehr_hl7_seg_find(mp->m, "IN1", i);
        if (!in)
            break;
        json_t *cov = json_pack("{s:s, s:s, s:{s:s}}", "resourceType", "Coverage", "status",
                                "active", "beneficiary", "reference", mp->patient_ref);
        /* IN1-36 policy number identifies the coverage; else plan + set id */
        const char *policy = ehr_hl7_val(in, 36, 1);
        json_t *ident;
        if (valued(policy)) {
            char sys[300];
            hd_system(ehr_hl7_val(in, 3, 4), "", "", sys, sizeof sys);
            ident = json_object();
            map_set(ident, "system", sys[0] ? sys : "urn:ehr:hl7v2:policy");
            map_set(ident, "value", policy);
        } else {
            char v[700];
            snprintf(v, sizeof v, "%s/IN1-%s-%s", mp->patient_key, ehr_hl7_val(in, 2, 1),
                     ehr_hl7_val(in, 1, 1));
            ident =
                json_pack("{s:s, s:o}", "system", "urn:ehr:hl7v2:coverage", "value", map_str(v));
        }
        char *q = map_ident_query(ident);
        push(cov, "identifier", ident);
        json_t *payor = json_object();
        const char *company = ehr_hl7_val(in, 4, 1);
        map_set(payor, "display", valued(company) ? company : ehr_hl7_val(in, 3, 1));
        if (!json_object_size(payor))
            map_set(payor, "display", "unknown payor");
        push(cov, "payor", payor);
        const char *plan = ehr_hl7_val(in, 2, 1);
        if (valued(plan))
            push(cov, "class",
                 json_pack("{s:{s:[{s:s, s:s}]}, s:o, s:o*}", "type", "coding", "system",
                           "http://terminology.hl7.org/CodeSystem/coverage-class", "code", "plan",
                           "value", map_str(plan), "name",
                           valued(ehr_hl7_val(in, 2, 2)) ? map_str(ehr_hl7_val(in, 2, 2)) : NULL));
        char d1[64], d2[64];
        bool has1 = map_dtm(mp, in, 12, 1, false, d1, sizeof d1, false);
        bool has2 = map_dtm(mp, in, 13, 1, false, d2, sizeof d2, false);
        if (has1 || has2) {
            json_t *per = json_object();
            if (has1)
                map_set(per, "start", d1);
            if (has2)
                map_set(per, "end", d2);
            json_object_set_new(cov, "period", per);
        }
        map_set(cov, "subscriberId", ehr_hl7_val(in, 49, 1));
        map_entry(mp, cov, "PUT", q, NULL);
        free(q);
    }
}

/* PL (point of care^room^bed^facility...) as text */
static void pl_text(const ehr_hl7_seg *s, int f, char *out, size_t cap)
{
    out[0] = '\0';
    size_t n = 0;
    for (int c = 1; c <= 4; c++) {
        const char *v = ehr_hl7_val(s, f, c);
        if (valued(v) && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", v);
    }
}

static ehr_status map_encounter(struct mapper *mp, const char *event)
{
    const ehr_hl7_seg *pv1 = ehr_hl7_seg_find(mp->m, "PV1", 1);
    if (!pv1)
        return EHR_OK; /* A08/A04 without a visit: the patient only */
    const struct hl7_vocab *st = hl7_vocab_find("EncounterStatus", event);
    json_t *enc =
        json_pack("{s:s, s:s}", "resourceType", "Encounter", "status", st ? st->code : "unknown");
    json_t *cls = map_coding("EncounterClass", ehr_hl7_val(pv1, 2, 1));
    if (!cls)
        cls =
            json_pack("{s:s, s:s, s:s}", "system", "http://terminology.hl7.org/CodeSystem/v2-0004",
                      "code", "U", "display", "Unknown");
    json_object_set_new(enc, "class", cls);
    json_t *ident = map_cx(pv1, 19, 1);
    if (!ident)
        ident = map_source_ident(mp, "PV1");
    char *q = map_ident_query(ident);
    push(enc, "identifier", ident);
    json_object_set_new(enc, "subject", json_pack("{s:s}", "reference", mp->patient_ref));
    char d1[64], d2[64];
    const ehr_hl7_seg *evn = ehr_hl7_seg_find(mp->m, "EVN", 1);
    bool has1 = map_dtm(mp, pv1, 44, 1, false, d1, sizeof d1, false);
    bool has2 = map_dtm(mp, pv1, 45, 1, false, d2, sizeof d2, false);
    /* an admission or discharge without PV1-44/45: the event time (EVN-2) */
    if (!has1 && (!strcmp(event, "A01") || !strcmp(event, "A04")))
        has1 = map_dtm(mp, evn, 2, 1, false, d1, sizeof d1, false);
    if (!has2 && !strcmp(event, "A03"))
        has2 = map_dtm(mp, evn, 2, 1, false, d2, sizeof d2, false);
    if (!strcmp(event, "A13"))
        has2 = false; /* cancel discharge: the visit goes on */
    if (has1 || has2) {
        json_t *per = json_object();
        if (has1)
            map_set(per, "start", d1);
        if (has2)
            map_set(per, "end", d2);
        json_object_set_new(enc, "period", per);
    }
    char loc[400];
    pl_text(pv1, 3, loc, sizeof loc);
    if (loc[0])
        push(enc, "location",
             json_pack("{s:{s:o}, s:s}", "location", "display", map_str(loc), "status",
                       !strcmp(event, "A03") ? "completed" : "active"));
    static const struct {
        int field;
        const char *code, *display;
    } parts[] = {{7, "ATND", "attender"},
                 {8, "REF", "referrer"},
                 {9, "CON", "consultant"},
                 {17, "ADM", "admitter"}};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
        for (size_t r = 1; r <= ehr_hl7_nreps(pv1, parts[k].field); r++) {
            json_t *ref = map_xcn_ref(mp, pv1, parts[k].field, (int)r);
            if (ref)
                push(enc, "participant",
                     json_pack("{s:[{s:[{s:s, s:s, s:s}]}], s:o}", "type", "coding", "system",
                               "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code",
                               parts[k].code, "display", parts[k].display, "individual", ref));
        }
    json_t *hosp = json_object();
    json_t *src = map_cwe(pv1, 14, 1, "http://terminology.hl7.org/CodeSystem/v2-0023");
    if (src)
        json_object_set_new(hosp, "admitSource", src);
    json_t *disp = map_cwe(pv1, 36, 1, "http://terminology.hl7.org/CodeSystem/v2-0112");
    if (disp)
        json_object_set_new(hosp, "dischargeDisposition", disp);
    if (json_object_size(hosp))
        json_object_set_new(enc, "hospitalization", hosp);
    else
        json_decref(hosp);
    map_entry(mp, enc, "PUT", q, mp->encounter_ref);
    free(q);
    return EHR_OK;
}

/* A40: the patient of MRG-1 merged into the patient of PID (Patient.link). */
static ehr_status map_merge(struct mapper *mp, const ehr_hl7_seg *pid)
{
    const ehr_hl7_seg *mrg = ehr_hl7_seg_find(mp->m, "MRG", 1);
    if (!mrg)
        return ehr_hl7_fail(mp->e, EHR_EINVAL, 100, "MRG", 0, 0,
                            "an A40 merge needs an MRG segment naming the patient merged away");
    json_t *old = map_cx(mrg, 1, 1);
    if (!old)
        return map_required(mp, mrg, 1, "prior patient identifier list");
    char *oq = map_ident_query(old);
    ehr_status st = map_patient(mp, pid, true);
    if (st) {
        json_decref(old);
        free(oq);
        return st;
    }
    /* the prior record must exist; it keeps its content and is marked
       inactive and linked to the survivor (FHIR R4 Patient.link
       "replaced-by"); the survivor links back ("replaces"). "_merge" holds
       the elements to set: the applier reads the prior record and writes
       it back with them, in the same transaction as the survivor. */
    char old_ref[64];
    map_uuid(old_ref);
    char url[1200];
    snprintf(url, sizeof url, "Patient?%s", oq);
    json_t *merge = json_pack("{s:b, s:[{s:{s:s}, s:s}]}", "active", 0, "link", "other",
                              "reference", mp->patient_ref, "type", "replaced-by");
    json_array_append_new(mp->entries, json_pack("{s:s, s:{s:s, s:s}, s:o, s:{s:s, s:i, s:i}}",
                                                 "fullUrl", old_ref, "request", "method", "PATCH",
                                                 "url", url, "_merge", merge, "_where", "seg",
                                                 "MRG", "seq", map_seq(mp, mrg), "field", 1));
    json_decref(old);
    json_t *surv = json_object_get(json_array_get(mp->entries, 0), "resource");
    json_object_set_new(
        surv, "link",
        json_pack("[{s:{s:s}, s:s}]", "other", "reference", old_ref, "type", "replaces"));
    free(oq);
    return EHR_OK;
}

/* -- dispatch -- */

static const struct {
    const char *type, *event;
} supported[] = {
    {"ADT", "A01"}, {"ADT", "A02"}, {"ADT", "A03"}, {"ADT", "A04"}, {"ADT", "A08"}, {"ADT", "A11"},
    {"ADT", "A13"}, {"ADT", "A28"}, {"ADT", "A31"}, {"ADT", "A40"}, {"ORU", "R01"}, {"VXU", "V04"},
    {"SIU", "S12"}, {"SIU", "S13"}, {"SIU", "S14"}, {"SIU", "S15"},
};

bool hl7_map_supported(const char *type, const char *event)
{
    for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++)
        if (!strcmp(type, supported[i].type) && (!event || !strcmp(event, supported[i].event)))
            return true;
    return false;
}

ehr_status hl7_map(const struct hl7_map_in *in, json_t **bundle, ehr_hl7_error *e)
{
    ehr_hl7_header h;
    ehr_hl7_header_get(in->m, &h);
    struct mapper mp = {.in = in, .m = in->m, .e = e};
    memset(e, 0, sizeof *e);
    mp.bundle =
        json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle", "type", "transaction", "entry");
    mp.entries = json_object_get(mp.bundle, "entry");
    const ehr_hl7_seg *pid = ehr_hl7_seg_find(in->m, "PID", 1);
    ehr_status st;
    if (!strcmp(h.type, "ADT")) {
        if (!strcmp(h.event, "A40")) {
            st = map_merge(&mp, pid);
        } else {
            st = map_patient(&mp, pid, true);
            if (!st) {
                map_nk1(&mp);
                map_in1(&mp);
                /* A28/A31 are person-level: no visit */
                if (strcmp(h.event, "A28") && strcmp(h.event, "A31"))
                    st = map_encounter(&mp, h.event);
            }
        }
    } else if (!strcmp(h.type, "ORU")) {
        st = map_oru(&mp);
    } else if (!strcmp(h.type, "VXU") || !strcmp(h.type, "RSP")) {
        /* RSP^K11: a registry's immunization history, RXA as in a VXU */
        st = map_vxu(&mp);
    } else if (!strcmp(h.type, "SIU")) {
        st = map_siu(&mp, h.event);
    } else {
        st = ehr_hl7_fail(e, EHR_EUNSUPPORTED, 200, "MSH", 1, 9, "no map for %s", h.type);
    }
    if (!st && e->code)
        st = EHR_EINVAL;
    if (st) {
        json_decref(mp.bundle);
        return st;
    }
    *bundle = mp.bundle;
    return EHR_OK;
}
