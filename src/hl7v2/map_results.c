/*
 * map_results.c - HL7 v2 -> FHIR for results, vaccinations and
 * appointments, following the HL7 v2-to-FHIR IG: ORU_R01 (OBR
 * [DiagnosticReport], OBX[Observation], SPM[Specimen], NTE[Observation]),
 * VXU_V04 (ORC[Immunization], RXA[Immunization], RXR[Immunization]) and
 * SIU_S12 (SCH[Appointment], AIS, AIG, AIL, AIP).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "hl7v2/map_int.h"

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

static json_t *ref(const char *urn)
{
    return json_pack("{s:s}", "reference", urn);
}

/* A FHIR decimal from v2 NM text ("+5.6", "05", " 7 "), or false. */
static bool decimal(const char *s, char *out, size_t cap)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || n >= cap)
        return false;
    size_t i = 0, o = 0;
    if (s[i] == '+')
        i++;
    else if (s[i] == '-')
        out[o++] = s[i++];
    /* FHIR/JSON numbers have no leading zeros */
    while (i + 1 < n && s[i] == '0' && isdigit((unsigned char)s[i + 1]))
        i++;
    bool digits = false, dot = false;
    if (i < n && s[i] == '.')
        out[o++] = '0';
    for (; i < n; i++) {
        if (isdigit((unsigned char)s[i])) {
            digits = true;
        } else if (s[i] == '.' && !dot) {
            dot = true;
        } else {
            return false;
        }
        out[o++] = s[i];
    }
    if (o > 0 && out[o - 1] == '.')
        o--;
    out[o] = '\0';
    return digits;
}

/* Quantity from a number and a CWE unit (OBX-6: code^text^system). */
static json_t *quantity(const char *num, const ehr_hl7_seg *s, int unit_field)
{
    json_t *q = json_pack("{s:o}", "value", ehr_json_number(num));
    const char *code = ehr_hl7_val(s, unit_field, 1), *text = ehr_hl7_val(s, unit_field, 2);
    const char *cs = ehr_hl7_val(s, unit_field, 3);
    if (*code || *text)
        map_set(q, "unit", *text ? text : code);
    if (*code) {
        /* UCUM when the message says so or names no system (lab units are UCUM-like) */
        if (!*cs || !strcmp(cs, "UCUM") || !strcmp(cs, "ANSI+"))
            map_set(q, "system", "http://unitsofmeasure.org");
        else if (map_system_of(cs))
            map_set(q, "system", map_system_of(cs));
        if (json_object_get(q, "system"))
            map_set(q, "code", code);
    }
    return q;
}

/* OBX-7 reference range "3.5-5.0", "<10", ">=2", "negative" */
static json_t *reference_range(const ehr_hl7_seg *obx)
{
    const char *r = ehr_hl7_val(obx, 7, 1);
    if (!*r)
        return NULL;
    json_t *rr = json_object();
    char lo[64], hi[64], buf[128];
    snprintf(buf, sizeof buf, "%s", r);
    const char *dash = strchr(buf + (buf[0] == '-' ? 1 : 0), '-');
    if (dash) {
        snprintf(lo, sizeof lo, "%.*s", (int)(dash - buf), buf);
        snprintf(hi, sizeof hi, "%s", dash + 1);
        char l2[64], h2[64];
        if (decimal(lo, l2, sizeof l2) && decimal(hi, h2, sizeof h2)) {
            json_object_set_new(rr, "low", quantity(l2, obx, 6));
            json_object_set_new(rr, "high", quantity(h2, obx, 6));
        }
    } else if (buf[0] == '<' || buf[0] == '>') {
        const char *num = buf + 1 + (buf[1] == '=');
        char n2[64];
        if (decimal(num, n2, sizeof n2))
            json_object_set_new(rr, buf[0] == '<' ? "high" : "low", quantity(n2, obx, 6));
    }
    map_set(rr, "text", r);
    return rr;
}

/* OBX-5 by OBX-2 value type (IG OBX[Observation]: value[x]) */
static ehr_status obx_value(struct mapper *mp, const ehr_hl7_seg *obx, json_t *o)
{
    const char *vt = ehr_hl7_val(obx, 2, 1);
    size_t nreps = ehr_hl7_nreps(obx, 5);
    if (nreps == 0)
        return EHR_OK; /* no value: e.g. a cancelled result (dataAbsentReason left out) */
    const char *v = ehr_hl7_val(obx, 5, 1);
    int seq = map_seq(mp, obx);
    char num[80];
    if (!strcmp(vt, "NM")) {
        if (!decimal(v, num, sizeof num))
            return ehr_hl7_fail(mp->e, EHR_EINVAL, 102, "OBX", seq, 5,
                                "OBX-5: '%s' is not a number, as OBX-2 (NM) says it is", v);
        json_object_set_new(o, "valueQuantity", quantity(num, obx, 6));
    } else if (!strcmp(vt, "SN")) {
        /* comparator^num1^separator/suffix^num2 */
        const char *cmp = ehr_hl7_val(obx, 5, 1), *n1 = ehr_hl7_val(obx, 5, 2);
        const char *sep = ehr_hl7_val(obx, 5, 3), *n2 = ehr_hl7_val(obx, 5, 4);
        char a[80], b[80];
        bool ha = decimal(n1, a, sizeof a), hb = decimal(n2, b, sizeof b);
        if (ha && hb && (!strcmp(sep, ":") || !strcmp(sep, "/"))) {
            json_object_set_new(o, "valueRatio",
                                json_pack("{s:{s:o}, s:{s:o}}", "numerator", "value",
                                          ehr_json_number(a), "denominator", "value",
                                          ehr_json_number(b)));
        } else if (ha && hb && !strcmp(sep, "-")) {
            json_object_set_new(
                o, "valueRange",
                json_pack("{s:o, s:o}", "low", quantity(a, obx, 6), "high", quantity(b, obx, 6)));
        } else if (ha) {
            json_t *q = quantity(a, obx, 6);
            if (!strcmp(cmp, "<") || !strcmp(cmp, ">") || !strcmp(cmp, "<=") || !strcmp(cmp, ">="))
                json_object_set_new(q, "comparator", json_string(cmp));
            json_object_set_new(o, "valueQuantity", q);
        } else {
            return ehr_hl7_fail(mp->e, EHR_EINVAL, 102, "OBX", seq, 5,
                                "OBX-5: not a structured numeric (SN) value");
        }
    } else if (!strcmp(vt, "CE") || !strcmp(vt, "CWE") || !strcmp(vt, "CNE") || !strcmp(vt, "CF")) {
        json_t *cc = map_cwe(obx, 5, 1, NULL);
        if (cc)
            json_object_set_new(o, "valueCodeableConcept", cc);
    } else if (!strcmp(vt, "DT") || !strcmp(vt, "TS") || !strcmp(vt, "DTM")) {
        char d[64];
        if (!map_dtm(mp, obx, 5, 1, !strcmp(vt, "DT"), d, sizeof d, true))
            return EHR_EINVAL;
        map_set(o, "valueDateTime", d);
    } else if (!strcmp(vt, "TM")) {
        if (strlen(v) >= 4 && strspn(v, "0123456789") >= 4) {
            char t[16];
            snprintf(t, sizeof t, "%.2s:%.2s:%.2s", v, v + 2, strlen(v) >= 6 ? v + 4 : "00");
            map_set(o, "valueTime", t);
        }
    } else {
        /* ST, TX, FT and anything else: text; repetitions are lines */
        ehr_buf b = EHR_BUF_INIT;
        for (size_t r = 1; r <= nreps; r++) {
            if (r > 1)
                ehr_buf_putc(&b, '\n');
            /* components of a non-text type are kept readable */
            const ehr_hl7_seg *s = obx;
            for (size_t c = 1; c <= s->fields[5].reps[r - 1].n; c++) {
                const char *t = ehr_hl7_get(s, 5, (int)r, (int)c, 1);
                if (c > 1 && *t)
                    ehr_buf_putc(&b, ' ');
                ehr_buf_puts(&b, t);
            }
        }
        map_set(o, "valueString", b.data ? b.data : "");
        ehr_buf_free(&b);
    }
    return EHR_OK;
}

static json_t *observation(struct mapper *mp, const ehr_hl7_seg *obx, const ehr_hl7_seg *obr,
                           ehr_status *st)
{
    int seq = map_seq(mp, obx);
    json_t *code = map_cwe(obx, 3, 1, NULL);
    if (!code) {
        *st = map_required(mp, obx, 3, "observation identifier");
        return NULL;
    }
    const struct hl7_vocab *vs = hl7_vocab_find("ObservationStatus", ehr_hl7_val(obx, 11, 1));
    json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "resourceType", "Observation", "status",
                          vs ? vs->code : (*ehr_hl7_val(obx, 11, 1) ? "unknown" : "final"), "code",
                          code, "subject", ref(mp->patient_ref));
    char what[32];
    snprintf(what, sizeof what, "OBX%d", seq);
    push(o, "identifier", map_source_ident(mp, what));
    if (mp->encounter_ref[0])
        json_object_set_new(o, "encounter", ref(mp->encounter_ref));
    if ((*st = obx_value(mp, obx, o))) {
        json_decref(o);
        return NULL;
    }
    json_t *rr = reference_range(obx);
    if (rr)
        push(o, "referenceRange", rr);
    for (size_t r = 1; r <= ehr_hl7_nreps(obx, 8); r++) {
        const char *flag = ehr_hl7_get(obx, 8, (int)r, 1, 1);
        json_t *c = map_coding("Interpretation", flag);
        if (c)
            push(o, "interpretation", json_pack("{s:[o]}", "coding", c));
        else if (*flag)
            push(o, "interpretation",
                 json_pack("{s:[{s:s, s:o}]}", "coding", "system",
                           "http://terminology.hl7.org/CodeSystem/v2-0078", "code", map_str(flag)));
    }
    char d[64];
    if (map_dtm(mp, obx, 14, 1, false, d, sizeof d, false) ||
        map_dtm(mp, obr, 7, 1, false, d, sizeof d, false))
        map_set(o, "effectiveDateTime", d);
    for (size_t r = 1; r <= ehr_hl7_nreps(obx, 16); r++)
        push(o, "performer", map_xcn_ref(mp, obx, 16, (int)r));
    /* OBX-23 performing organization (XON): its name */
    const char *org = ehr_hl7_val(obx, 23, 1);
    if (*org)
        push(o, "performer", json_pack("{s:o}", "display", map_str(org)));
    json_t *method = map_cwe(obx, 17, 1, NULL);
    if (method)
        json_object_set_new(o, "method", method);
    /* NTE segments right after the OBX are its notes */
    for (size_t i = (size_t)seq; i < mp->m->n_segs && !strcmp(mp->m->segs[i].name, "NTE"); i++) {
        const ehr_hl7_seg *nte = &mp->m->segs[i];
        ehr_buf b = EHR_BUF_INIT;
        for (size_t r = 1; r <= ehr_hl7_nreps(nte, 3); r++) {
            if (r > 1)
                ehr_buf_putc(&b, '\n');
            ehr_buf_puts(&b, ehr_hl7_get(nte, 3, (int)r, 1, 1));
        }
        if (b.len)
            push(o, "note", json_pack("{s:o}", "text", map_str(b.data)));
        ehr_buf_free(&b);
    }
    return o;
}

static json_t *specimen(struct mapper *mp, const ehr_hl7_seg *spm, char url[64])
{
    json_t *sp =
        json_pack("{s:s, s:o}", "resourceType", "Specimen", "subject", ref(mp->patient_ref));
    /* SPM-2 specimen id (EIP: placer^filler, each EI) */
    const char *id = ehr_hl7_get(spm, 2, 1, 1, 1);
    json_t *ident;
    if (*id) {
        ident = json_object();
        map_set(ident, "value", id);
        map_set(ident, "system", "urn:ehr:hl7v2:specimen");
    } else {
        char what[32];
        snprintf(what, sizeof what, "SPM%d", map_seq(mp, spm));
        ident = map_source_ident(mp, what);
    }
    char *q = map_ident_query(ident);
    push(sp, "identifier", ident);
    json_t *type = map_cwe(spm, 4, 1, "http://terminology.hl7.org/CodeSystem/v2-0487");
    if (type)
        json_object_set_new(sp, "type", type);
    char d[64];
    if (map_dtm(mp, spm, 17, 1, false, d, sizeof d, false))
        json_object_set_new(sp, "collection", json_pack("{s:s}", "collectedDateTime", d));
    map_entry(mp, sp, "PUT", q, url);
    free(q);
    return sp;
}

ehr_status map_oru(struct mapper *mp)
{
    const ehr_hl7_seg *pid = ehr_hl7_seg_find(mp->m, "PID", 1);
    ehr_status st = map_patient(mp, pid, false);
    if (st)
        return st;
    const ehr_hl7_seg *obr = NULL;
    json_t *report = NULL;
    char *report_q = NULL;
    int n_obr = 0;
    for (size_t i = 0; i < mp->m->n_segs; i++) {
        const ehr_hl7_seg *s = &mp->m->segs[i];
        if (!strcmp(s->name, "OBR")) {
            obr = s;
            n_obr++;
            json_t *code = map_cwe(s, 4, 1, NULL);
            if (!code)
                return map_required(mp, s, 4, "universal service identifier");
            const struct hl7_vocab *rs = hl7_vocab_find("ReportStatus", ehr_hl7_val(s, 25, 1));
            report =
                json_pack("{s:s, s:s, s:o, s:o}", "resourceType", "DiagnosticReport", "status",
                          rs ? rs->code : "final", "code", code, "subject", ref(mp->patient_ref));
            /* OBR-3 filler order number identifies the report; else the message */
            json_t *ident = map_ei_ident(s, 3);
            if (!ident)
                ident = map_ei_ident(s, 2);
            if (ident && !json_object_get(ident, "system"))
                json_object_set_new(ident, "system", json_string("urn:ehr:hl7v2:order"));
            char what[32];
            snprintf(what, sizeof what, "OBR%zu", i + 1);
            if (!ident)
                ident = map_source_ident(mp, what);
            char *q = map_ident_query(ident);
            push(report, "identifier", ident);
            if (mp->encounter_ref[0])
                json_object_set_new(report, "encounter", ref(mp->encounter_ref));
            char d[64];
            if (map_dtm(mp, s, 7, 1, false, d, sizeof d, false))
                map_set(report, "effectiveDateTime", d);
            if (map_dtm(mp, s, 22, 1, false, d, sizeof d, false) && strchr(d, 'T'))
                map_set(report, "issued", d);
            for (size_t r = 1; r <= ehr_hl7_nreps(s, 32); r++) {
                /* OBR-32 principal result interpreter (NDL: name in component 1) */
                const char *who = ehr_hl7_get(s, 32, (int)r, 1, 1);
                if (*who)
                    push(report, "resultsInterpreter", json_pack("{s:o}", "display", map_str(who)));
            }
            /* the report goes in after its observations (below), as a
               conditional update keyed by the order number */
            report_q = q;
        } else if (!strcmp(s->name, "OBX")) {
            json_t *o = observation(mp, s, obr, &st);
            if (!o)
                goto fail;
            char url[64];
            char *q = map_ident_query(json_array_get(json_object_get(o, "identifier"), 0));
            map_entry(mp, o, "POST", q, url);
            free(q);
            if (report)
                push(report, "result", ref(url));
        } else if (!strcmp(s->name, "SPM")) {
            char url[64];
            specimen(mp, s, url);
            if (report)
                push(report, "specimen", ref(url));
        }
        /* at the end of an order group (next OBR or the end), add its report */
        bool last = i + 1 == mp->m->n_segs || !strcmp(mp->m->segs[i + 1].name, "OBR") ||
                    !strcmp(mp->m->segs[i + 1].name, "PID");
        if (last && report) {
            map_entry(mp, report, "PUT", report_q, NULL);
            free(report_q);
            report = NULL;
            report_q = NULL;
        }
    }
    if (n_obr == 0)
        return ehr_hl7_fail(mp->e, EHR_EINVAL, 100, "OBR", 0, 0,
                            "an ORU^R01 needs at least one OBR segment");
    return EHR_OK;
fail:
    json_decref(report);
    free(report_q);
    return st ? st : EHR_EINVAL;
}

/* -- VXU^V04: RXA[Immunization] -- */

ehr_status map_vxu(struct mapper *mp)
{
    const ehr_hl7_seg *pid = ehr_hl7_seg_find(mp->m, "PID", 1);
    ehr_status st = map_patient(mp, pid, false);
    if (st)
        return st;
    const ehr_hl7_seg *orc = NULL;
    int n = 0;
    for (size_t i = 0; i < mp->m->n_segs; i++) {
        const ehr_hl7_seg *s = &mp->m->segs[i];
        if (!strcmp(s->name, "ORC")) {
            orc = s;
            continue;
        }
        if (strcmp(s->name, "RXA"))
            continue;
        n++;
        json_t *vc = map_cwe(s, 5, 1, "http://hl7.org/fhir/sid/cvx");
        if (!vc)
            return map_required(mp, s, 5, "administered code");
        char when[64];
        if (!map_dtm(mp, s, 3, 1, false, when, sizeof when, true)) {
            json_decref(vc);
            return EHR_EINVAL;
        }
        const char *cs = ehr_hl7_val(s, 20, 1);
        const struct hl7_vocab *vs = hl7_vocab_find("ImmunizationStatus", cs);
        json_t *im = json_pack("{s:s, s:s, s:o, s:o, s:s}", "resourceType", "Immunization",
                               "status", vs ? vs->code : "completed", "vaccineCode", vc, "patient",
                               ref(mp->patient_ref), "occurrenceDateTime", when);
        /* ORC-3 filler order number identifies the dose; else the message */
        json_t *ident = orc ? map_ei_ident(orc, 3) : NULL;
        if (ident && !json_object_get(ident, "system"))
            json_object_set_new(ident, "system", json_string("urn:ehr:hl7v2:order"));
        if (!ident) {
            char what[32];
            snprintf(what, sizeof what, "RXA%zu", i + 1);
            ident = map_source_ident(mp, what);
        }
        char *q = map_ident_query(ident);
        push(im, "identifier", ident);
        /* RXA-6 amount, 999 meaning unknown */
        char num[80];
        if (decimal(ehr_hl7_val(s, 6, 1), num, sizeof num) && strcmp(num, "999"))
            json_object_set_new(im, "doseQuantity", quantity(num, s, 7));
        map_set(im, "lotNumber", ehr_hl7_val(s, 15, 1));
        char d[64];
        if (map_dtm(mp, s, 16, 1, true, d, sizeof d, false))
            map_set(im, "expirationDate", d);
        const char *mvx = ehr_hl7_val(s, 17, 2);
        if (*mvx || *ehr_hl7_val(s, 17, 1))
            json_object_set_new(
                im, "manufacturer",
                json_pack("{s:o}", "display", map_str(*mvx ? mvx : ehr_hl7_val(s, 17, 1))));
        /* RXA-9 administration notes: 00 new record (primary source), 01 historical */
        const char *src = ehr_hl7_val(s, 9, 1);
        if (*src)
            json_object_set_new(im, "primarySource",
                                !strcmp(src, "00") ? json_true() : json_false());
        if (vs && !strcmp(vs->code, "not-done")) {
            json_t *why = map_cwe(s, 18, 1, NULL);
            if (why)
                json_object_set_new(im, "statusReason", why);
        }
        json_t *who = map_xcn_ref(mp, s, 10, 1);
        if (who)
            push(im, "performer",
                 json_pack("{s:{s:[{s:s, s:s}]}, s:o}", "function", "coding", "system",
                           "http://terminology.hl7.org/CodeSystem/v2-0443", "code", "AP", "actor",
                           who));
        /* RXR right after the RXA: route and site */
        if (i + 1 < mp->m->n_segs && !strcmp(mp->m->segs[i + 1].name, "RXR")) {
            const ehr_hl7_seg *rxr = &mp->m->segs[i + 1];
            json_t *route = map_cwe(rxr, 1, 1, "http://terminology.hl7.org/CodeSystem/v2-0162");
            if (route)
                json_object_set_new(im, "route", route);
            json_t *site = map_cwe(rxr, 2, 1, "http://terminology.hl7.org/CodeSystem/v2-0163");
            if (site)
                json_object_set_new(im, "site", site);
        }
        map_entry(mp, im, "PUT", q, NULL);
        free(q);
    }
    if (n == 0)
        return ehr_hl7_fail(mp->e, EHR_EINVAL, 100, "RXA", 0, 0,
                            "a VXU^V04 needs at least one RXA segment");
    return EHR_OK;
}

/* -- SIU S12-S15: SCH[Appointment] -- */

ehr_status map_siu(struct mapper *mp, const char *event)
{
    const ehr_hl7_seg *sch = ehr_hl7_seg_find(mp->m, "SCH", 1);
    if (!sch)
        return ehr_hl7_fail(mp->e, EHR_EINVAL, 100, "SCH", 0, 0, "an SIU message needs an SCH");
    const ehr_hl7_seg *pid = ehr_hl7_seg_find(mp->m, "PID", 1);
    ehr_status st = map_patient(mp, pid, false);
    if (st)
        return st;
    /* SCH-2 filler appointment id, else SCH-1 placer */
    json_t *ident = map_ei_ident(sch, 2);
    if (!ident)
        ident = map_ei_ident(sch, 1);
    if (!ident)
        return map_required(mp, sch, 2, "filler appointment id");
    if (!json_object_get(ident, "system"))
        json_object_set_new(ident, "system", json_string("urn:ehr:hl7v2:appointment"));
    const struct hl7_vocab *fs = hl7_vocab_find("AppointmentStatus", ehr_hl7_val(sch, 25, 1));
    const char *status = !strcmp(event, "S15") ? "cancelled" : fs ? fs->code : "booked";
    json_t *ap = json_pack("{s:s, s:s}", "resourceType", "Appointment", "status", status);
    char *q = map_ident_query(ident);
    push(ap, "identifier", ident);
    /* start and end: SCH-11 (TQ, components 4 and 5) or the first AIS/AIG/AIL/AIP
       start (field 6 in AIS, 8 in the others) with its duration */
    char start[64] = "", end[64] = "";
    if (!map_dtm(mp, sch, 11, 4, false, start, sizeof start, false)) {
        const ehr_hl7_seg *tq1 = ehr_hl7_seg_find(mp->m, "TQ1", 1);
        if (!map_dtm(mp, tq1, 7, 1, false, start, sizeof start, false)) {
            const ehr_hl7_seg *ais = ehr_hl7_seg_find(mp->m, "AIS", 1);
            map_dtm(mp, ais, 4, 1, false, start, sizeof start, false);
        }
        const ehr_hl7_seg *tq = ehr_hl7_seg_find(mp->m, "TQ1", 1);
        map_dtm(mp, tq, 8, 1, false, end, sizeof end, false);
    } else {
        map_dtm(mp, sch, 11, 5, false, end, sizeof end, false);
    }
    if (start[0] && strchr(start, 'T'))
        map_set(ap, "start", start);
    if (end[0] && strchr(end, 'T'))
        map_set(ap, "end", end);
    /* FHIR R4 app-3: only proposed or cancelled appointments may lack times */
    if ((!json_object_get(ap, "start") || !json_object_get(ap, "end")) &&
        strcmp(status, "cancelled") && strcmp(status, "proposed")) {
        /* a duration (SCH-9, minutes by SCH-10) gives an end */
        const char *dur = ehr_hl7_val(sch, 9, 1);
        if (json_object_get(ap, "start") && *dur && strspn(dur, "0123456789") == strlen(dur))
            json_object_set_new(ap, "minutesDuration", ehr_json_integer(atoi(dur)));
        if (!json_object_get(ap, "start") || !json_object_get(ap, "end"))
            status = "proposed";
        json_object_set_new(ap, "status", json_string(status));
    }
    json_t *reason = map_cwe(sch, 7, 1, NULL);
    if (reason)
        push(ap, "reasonCode", reason);
    json_t *atype = map_cwe(sch, 8, 1, "http://terminology.hl7.org/CodeSystem/v2-0277");
    if (atype)
        json_object_set_new(ap, "appointmentType", atype);
    const ehr_hl7_seg *ais = ehr_hl7_seg_find(mp->m, "AIS", 1);
    json_t *svc = map_cwe(ais, 3, 1, NULL);
    if (svc)
        push(ap, "serviceType", svc);
    push(ap, "participant",
         json_pack("{s:o, s:s}", "actor", ref(mp->patient_ref), "status", "accepted"));
    for (int k = 1;; k++) {
        const ehr_hl7_seg *aip = ehr_hl7_seg_find(mp->m, "AIP", k);
        if (!aip)
            break;
        json_t *who = map_xcn_ref(mp, aip, 3, 1);
        if (who)
            push(ap, "participant", json_pack("{s:o, s:s}", "actor", who, "status", "accepted"));
    }
    for (int k = 1;; k++) {
        const ehr_hl7_seg *ail = ehr_hl7_seg_find(mp->m, "AIL", k);
        if (!ail)
            break;
        char loc[300];
        snprintf(loc, sizeof loc, "%s%s%s", ehr_hl7_val(ail, 3, 1),
                 *ehr_hl7_val(ail, 3, 2) ? " " : "", ehr_hl7_val(ail, 3, 2));
        if (loc[0])
            push(ap, "participant",
                 json_pack("{s:{s:o}, s:s}", "actor", "display", map_str(loc), "status",
                           "accepted"));
    }
    map_entry(mp, ap, "PUT", q, NULL);
    free(q);
    return EHR_OK;
}
