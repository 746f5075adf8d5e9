/*
 * outbound.h - HL7 v2 out: immunizations to a registry.
 *
 * When an Immunization is recorded (created or updated through the
 * repository, by any door except HL7 v2 itself), a VXU^V04 following the
 * CDC's HL7 2.5.1 Implementation Guide for Immunization Messaging (release
 * 1.5) is queued in the database (table hl7_message, direction "out",
 * status "queued") and sent to the registry over MLLP. The registry's ACK is
 * recorded with the message: AA/CA makes it "sent"; AE/AR "failed" (the
 * registry refused the content: fix and `ehr hl7 resend ID`); no answer
 * (registry down, network) leaves it queued and it is tried again after
 * 1, 2, 4 ... up to max_backoff seconds. The queue survives restarts.
 *
 * Detection: a worker thread looks every interval for Immunizations whose
 * last update is newer than its checkpoint (kept in the database); reading
 * the Immunization and its Patient to build the message goes through the
 * repository, so each disclosure is audited.
 */
#ifndef EHR_HL7V2_OUTBOUND_H
#define EHR_HL7V2_OUTBOUND_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "repo/repo.h"

typedef struct ehr_hl7_outbound ehr_hl7_outbound;

typedef struct ehr_hl7_outbound_config {
    const char *host; /* the registry */
    uint16_t port;
    const char *app, *facility;                   /* MSH-3/4; NULL: "EHR" */
    const char *registry_app, *registry_facility; /* MSH-5/6; NULL: "" */
    unsigned interval_ms;                         /* how often to look (0: 1000) */
    unsigned max_backoff;                         /* seconds (0: 300) */
    unsigned timeout;                             /* seconds to wait for an ACK (0: 30) */
} ehr_hl7_outbound_config;

/* Start the worker (repo borrowed). */
ehr_status ehr_hl7_outbound_start(ehr_repo *repo, const ehr_hl7_outbound_config *cfg,
                                  ehr_hl7_outbound **out, ehr_err *err);
/* Stop the worker (a send under way is finished) and free. */
void ehr_hl7_outbound_stop(ehr_hl7_outbound **ob);

/*
 * The VXU^V04 for an Immunization and its Patient (FHIR JSON), appended to
 * out with CR segment ends. EINVAL when the Immunization lacks what the
 * guide requires (vaccineCode, occurrenceDateTime).
 */
ehr_status ehr_hl7_vxu_build(const json_t *imm, const json_t *patient,
                             const ehr_hl7_outbound_config *cfg, const char *control_id,
                             ehr_buf *out, ehr_err *err);

/*
 * A QBP^Q11 asking a registry for a patient's immunization history (CDC IG
 * for Immunization Messaging, query profile Z34: QPD with the patient's
 * identifiers, name, birth date, sex and address; RCP immediate, at most
 * 20 records). query_tag is QPD-2, echoed in the answer's QAK-1.
 */
ehr_status ehr_hl7_qbp_build(const json_t *patient, const ehr_hl7_outbound_config *cfg,
                             const char *control_id, const char *query_tag, ehr_buf *out,
                             ehr_err *err);

/* Put outbound message id back in the queue, to go out at once. */
ehr_status ehr_hl7_resend(ehr_repo *repo, int64_t id, ehr_err *err);

#endif
