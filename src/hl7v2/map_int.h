/*
 * map_int.h - shared by the v2 -> FHIR maps (map.c: data types, PID,
 * ADT; map_results.c: ORU, VXU, SIU). Field and component numbers are
 * those of HL7 v2.5.1; element choices follow the HL7 v2-to-FHIR IG's
 * segment and data type maps (docs/hl7v2.md lists them).
 */
#ifndef EHR_HL7V2_MAP_INT_H
#define EHR_HL7V2_MAP_INT_H

#include "hl7v2/hl7v2_int.h"

/* A transaction being built. */
struct mapper {
    const struct hl7_map_in *in;
    const ehr_hl7_msg *m;
    json_t *bundle, *entries;
    ehr_hl7_error *e;
    char patient_ref[64];  /* urn:uuid of the patient entry */
    char patient_key[512]; /* "system/value" of the patient's identifier */
    char encounter_ref[64];
};

/* A JSON string from v2 text (Latin-1 bytes that are not UTF-8 are converted). */
json_t *map_str(const char *s);
/* obj[key] = s when s is not empty. */
void map_set(json_t *obj, const char *key, const char *s);
/* A new "urn:uuid:..." */
void map_uuid(char out[64]);
/* Append to a query string value, escaped for a token search (FHIR 3.1.1.5.2)
   and percent-encoded. */
void map_query_value(ehr_buf *b, const char *s);
/*
 * Add an entry. method "POST" (cond: ifNoneExist query or NULL) or "PUT"
 * (cond: the conditional url's query). fullurl receives the entry's urn.
 */
json_t *map_entry(struct mapper *mp, json_t *res, const char *method, const char *cond,
                  char fullurl[64]);
/* "identifier=SYSTEM|VALUE" for an identifier object. */
char *map_ident_query(const json_t *ident);
/* An identifier for a resource the message names no identifier for:
   system urn:ehr:hl7v2:source, value "peer/control-id/what". */
json_t *map_source_ident(struct mapper *mp, const char *what);

/* Data types (seg, field, repetition) -> FHIR; NULL when not valued. */
const char *map_system_of(const char *v2_coding_system);
json_t *map_cx(const ehr_hl7_seg *s, int f, int rep);
json_t *map_xpn(const ehr_hl7_seg *s, int f, int rep);
json_t *map_xad(const ehr_hl7_seg *s, int f, int rep);
json_t *map_xtn(const ehr_hl7_seg *s, int f, int rep, const char *default_use);
json_t *map_cwe(const ehr_hl7_seg *s, int f, int rep, const char *default_system);
json_t *map_ei_ident(const ehr_hl7_seg *s, int f);
/* A FHIR code from an IG concept map, as a Coding; NULL when unmapped. */
json_t *map_coding(const char *map, const char *v2);
/* dateTime (or date) text from a DTM; false when empty or malformed (then e
   is filled when required). */
bool map_dtm(struct mapper *mp, const ehr_hl7_seg *s, int f, int comp, bool date_only, char *out,
             size_t cap, bool required);
/* A reference to a Practitioner made from an XCN (entry added when it has an
   id), or {display} only; NULL when not valued. */
json_t *map_xcn_ref(struct mapper *mp, const ehr_hl7_seg *s, int f, int rep);
/* Fail with ERR code 101 (required field missing) at seg-field. */
ehr_status map_required(struct mapper *mp, const ehr_hl7_seg *s, int f, const char *what);
/* 1-based position of segment s in the message. */
int map_seq(struct mapper *mp, const ehr_hl7_seg *s);

/* The patient of PID: ADT writes it (conditional update); other messages
   match it or create it from PID, or demand it exists (reject policy). */
ehr_status map_patient(struct mapper *mp, const ehr_hl7_seg *pid, bool adt);

ehr_status map_oru(struct mapper *mp);
ehr_status map_vxu(struct mapper *mp);
ehr_status map_siu(struct mapper *mp, const char *event);

#endif
