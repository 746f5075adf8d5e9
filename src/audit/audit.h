/*
 * audit.h - the append-only, hash-chained audit log, read back as FHIR
 * AuditEvents.
 *
 * The chain lives in the store (audit table: each record carries the
 * SHA-256 over the previous record's hash, its seq, time and event; see
 * store.h audit_append / audit_verify, `ehr audit verify`). Records are
 * written by the repository:
 *
 *   - a write appends its record inside its own transaction, so a change
 *     and its audit record commit together or not at all;
 *   - everything else (reads, searches, history, denials, sign-ins, token
 *     grants, break-glass, user changes) is appended through the same group
 *     commit as writes (repo.c run_job), and the caller waits until it is
 *     committed: no PHI leaves the server unrecorded, and if the append
 *     fails the request fails ("no unaudited access"). Batches of audit
 *     records alone are committed to the log without an fsync: they survive
 *     a crash of the process, and reach the disk with the next write or
 *     within a second (the repository's flusher). docs/security.md weighs
 *     this against an fsync per read.
 *
 * Events are compact JSON objects with ids, never resource content
 * (fields: docs/security.md, "Audit log").
 */
#ifndef EHR_AUDIT_AUDIT_H
#define EHR_AUDIT_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One audit record as a FHIR R4 AuditEvent (IHE Basic Audit Log Patterns
 * style: type rest or user authentication, subtype the interaction, agent
 * the user and the app, entity the patient(s) and the resource, purpose of
 * use BTG for break-glass). id is the record's seq. Caller owns the result.
 */
json_t *ehr_audit_to_fhir(int64_t seq, int64_t time, const char *event, size_t len);

#endif
