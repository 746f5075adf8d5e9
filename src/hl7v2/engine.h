/*
 * engine.h - the HL7 v2 inbound engine: store, map, apply, acknowledge.
 *
 * Every message goes the same way, whether it came over MLLP, HTTP
 * (POST /hl7v2) or from a file (ehr import):
 *   1. parse; a message that can't be read, has no control id (MSH-10),
 *      a version other than 2.x or a type with no map is stored with status
 *      "rejected" and answered AR (enhanced mode: CR) with an ERR;
 *   2. store the raw bytes, durably (table hl7_message) -- before any ACK;
 *      a control id already stored for that sender is a duplicate: it is
 *      answered again with the stored ACK and applied no second time;
 *   3. map to one FHIR transaction Bundle (HL7 v2-to-FHIR IG) and apply
 *      it through the repository, as the caller (ctx), so that access
 *      rules and the audit log apply as to any write;
 *   4. record the outcome (applied / error, the ACK) with the message;
 *   5. answer: original mode an application ACK (AA/AE/AR); enhanced mode
 *      (MSH-15/16 valued) an accept ACK (CA/CE/CR) and an application ACK,
 *      each as the sender asked.
 * A message stored but never finished (the process died between 2 and 4)
 * is applied by ehr_hl7_recover at start, or when the sender resends it.
 *
 * Threads: an engine is shared; ehr_hl7_receive may run on many threads.
 */
#ifndef EHR_HL7V2_ENGINE_H
#define EHR_HL7V2_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "hl7v2/hl7v2.h"
#include "repo/repo.h"

typedef struct ehr_hl7_engine ehr_hl7_engine;

typedef struct ehr_hl7_config {
    const char *app, *facility;  /* this system in ACKs (MSH-3/4); NULL: "EHR" */
    bool reject_unknown_patient; /* results, vaccinations, appointments for a patient
                                    not on file: AE 204 (true) or create the patient
                                    from PID (false, the default) */
    ehr_hl7_limits limits;       /* zeroed: the defaults */
} ehr_hl7_config;

/* A new engine over repo (borrowed; it must outlive the engine). */
ehr_status ehr_hl7_engine_new(ehr_repo *repo, const ehr_hl7_config *cfg, ehr_hl7_engine **out,
                              ehr_err *err);
void ehr_hl7_engine_free(ehr_hl7_engine **e);

/* What to send back. Free with ehr_hl7_reply_free. */
typedef struct ehr_hl7_reply {
    ehr_buf accept;        /* enhanced mode accept ACK, when the sender asked for one */
    ehr_buf app;           /* application ACK, when asked for (always in original mode) */
    ehr_hl7_ack_code code; /* the application outcome: AA, AE or AR */
    int64_t id;            /* the stored message's id; 0 when not stored */
    bool duplicate;        /* the control id was known: nothing applied this time */
    bool stored;           /* the message is durably stored (safe to acknowledge) */
    ehr_hl7_error error;   /* why, when code is AE or AR (as in the ERR segment) */
} ehr_hl7_reply;

void ehr_hl7_reply_free(ehr_hl7_reply *r);

/*
 * Receive one message (bytes from MSH to its last segment). Fills out.
 * Returns EHR_OK whenever there is an answer to send (AE and AR included);
 * a non-OK status only when not even the raw message could be stored
 * (then out->app holds an AE the caller may send, out->stored is false).
 */
ehr_status ehr_hl7_receive(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, const char *data, size_t len,
                           ehr_hl7_reply *out);

/* Apply stored message id again (after a fix to data or configuration);
   its outcome and ACK are replaced. */
ehr_status ehr_hl7_reprocess(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, int64_t id,
                             ehr_hl7_reply *out, ehr_err *err);

/*
 * Map one message to the FHIR transaction Bundle it would be applied as,
 * without storing or writing anything (ehr hl7 map, conformance tests).
 * cfg may be NULL. The caller owns *bundle. Errors as in an ACK's ERR.
 */
ehr_status ehr_hl7_to_fhir(const char *data, size_t len, const ehr_hl7_config *cfg, json_t **bundle,
                           ehr_hl7_error *e);

/*
 * The answer of an immunization registry to a history query (RSP^K11,
 * CDC IG for Immunization Messaging, profiles Z32/Z42) as FHIR: a
 * "collection" Bundle of the Patient and the Immunizations it lists,
 * mapped as a VXU's RXA segments are. Nothing is stored. QAK-2 "NF" (no
 * patient found) gives an empty collection; AE/AR, or a QAK-2 other than
 * OK/NF, an error with the registry's reason.
 */
ehr_status ehr_hl7_rsp_to_fhir(const char *data, size_t len, json_t **bundle, ehr_hl7_error *e);

/* Apply every inbound message stored but not finished; *n counts them. */
ehr_status ehr_hl7_recover(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, size_t *n, ehr_err *err);

#endif
