/*
 * audit.h - the append-only, hash-chained audit log: recording events,
 * durably and cheaply, and reading them back as FHIR AuditEvents.
 *
 * The chain itself lives in the store (audit table: each record carries
 * the SHA-256 of the previous record's hash, its seq, time and event; see
 * store.h audit_append / audit_verify). Writes append their record inside
 * their own storage transaction, so a change and its audit record commit
 * together. Everything else (reads, searches, denials, logins, token
 * grants) goes through ehr_audit_record, which hands the event to one
 * writer thread and waits until it is committed:
 *
 *   group commit: while the writer commits one batch, new events queue up;
 *   the next batch takes them all in one transaction (one fsync). A caller
 *   returns only when its record is durable, so no PHI leaves the server
 *   before the access is on disk, and if the append fails the caller fails
 *   ("no unaudited access"). Under load many reads share one fsync; alone,
 *   a read pays one commit (about 0.3 ms on the development machine).
 *
 * Events are compact JSON objects (fields: docs/security.md, "Audit log").
 * They carry ids, never resource content.
 */
#ifndef EHR_AUDIT_AUDIT_H
#define EHR_AUDIT_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "store/store.h"

typedef struct ehr_audit ehr_audit;

/* Start the writer over store (borrowed; it must outlive the audit). */
ehr_status ehr_audit_new(ehr_store *store, ehr_audit **out, ehr_err *err);
/* Commit what is queued, stop the writer, free; *a is set to NULL. */
void ehr_audit_free(ehr_audit **a);

/*
 * Append one event (JSON object text) and return once it is committed.
 * time: microseconds since the epoch (0: now). Thread-safe.
 */
ehr_status ehr_audit_record(ehr_audit *a, int64_t time, const char *event, size_t len,
                            ehr_err *err);

/* Same, taking a JSON object (not consumed). */
ehr_status ehr_audit_record_json(ehr_audit *a, int64_t time, const json_t *event, ehr_err *err);

/*
 * One audit record as a FHIR R4 AuditEvent (IHE Basic Audit Log Patterns
 * style: type rest/login, subtype the interaction, agent the user and the
 * app, entity the patient(s) and the resource). Caller owns the result.
 */
json_t *ehr_audit_to_fhir(int64_t seq, int64_t time, const char *event, size_t len);

#endif
