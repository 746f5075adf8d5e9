/*
 * hl7v2_int.h - private to src/hl7v2/: vocabulary tables, the v2 -> FHIR
 * maps and the transaction they produce.
 */
#ifndef EHR_HL7V2_INT_H
#define EHR_HL7V2_INT_H

#include <jansson.h>

#include "hl7v2/engine.h"
#include "hl7v2/hl7v2.h"

/* One row of an IG concept map (vocab_gen.c, made by tools/gen_hl7_vocab.js). */
struct hl7_vocab {
    const char *map, *v2, *code, *system, *display;
};
extern const struct hl7_vocab hl7_vocab[];
extern const size_t hl7_vocab_count;

/* The row of map for v2 code, or NULL. */
const struct hl7_vocab *hl7_vocab_find(const char *map, const char *v2);

/*
 * What a map produces: a FHIR transaction Bundle (type "transaction"),
 * entries in dependency order, cross-references as urn:uuid: fullUrls,
 * conditional writes (PUT Type?identifier=..., POST with ifNoneExist) so
 * that applying the same message twice changes nothing. An entry may carry
 * the private marker "_mustExist": true (the unknown-patient policy
 * "reject"): applying fails with ERR 204 when its ifNoneExist matches
 * nothing.
 */
struct hl7_map_in {
    const ehr_hl7_msg *m;
    const char *peer;       /* sender, MSH-3^MSH-4 */
    const char *control_id; /* MSH-10 */
    bool reject_unknown_patient;
};

/* Is there a map for this type^event? */
bool hl7_map_supported(const char *type, const char *event);

/* Map the message. EINVAL (with e: segment, field, code 101/102/103) when a
   required field is missing or malformed. Caller owns *bundle. */
ehr_status hl7_map(const struct hl7_map_in *in, json_t **bundle, ehr_hl7_error *e);

/* Apply a Bundle made by hl7_map through the repository (engine.c). */
ehr_status hl7_apply(ehr_repo *repo, const ehr_repo_ctx *ctx, json_t *bundle, ehr_hl7_error *e,
                     json_t **summary);

#endif
