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
 *     grants, break-glass, user changes) is written before the request is
 *     answered, and if that fails the request fails ("no unaudited
 *     access"). With the audit journal on (`ehr serve`, the default), it
 *     is one append to DB.audit-journal (journal.h), applied into the chain
 *     in the background within --audit-sync milliseconds (repo auditj.c);
 *     otherwise it goes through the same group commit as writes (repo.c
 *     run_job) and the caller waits for the commit. docs/security.md weighs
 *     the durability of each.
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
