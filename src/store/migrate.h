/*
 * migrate.h - moving a SQLite database to PostgreSQL (`ehr migrate`).
 *
 * Both schemas are the same logical schema (sqlite.c, postgres.c), so the
 * move is a table-by-table copy of rows, keys included: every version of
 * every resource, the current pointers, the index rows and compartments,
 * the module documents and the audit chain (its hashes stay valid). Both
 * databases are first brought to the newest schema by opening them.
 *
 * The copy runs in one PostgreSQL transaction (COPY): it is all there or
 * not at all. The target must hold no resources and no audit records.
 *
 * Verification compares, per resource type, the number of versions, the
 * number of live (current, not deleted) resources and a SHA-256 over every
 * version (type, id, version, time, deleted, method, content) in (id,
 * version) order; then the audit chain's length and head hash, and the
 * number of module documents.
 */
#ifndef EHR_STORE_MIGRATE_H
#define EHR_STORE_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef struct ehr_migrate_opts {
    const char *from; /* SQLite path */
    const char *to;   /* libpq conninfo */
    bool verify_only; /* compare, copy nothing */
    FILE *progress;   /* progress and the verification table; NULL: quiet */
} ehr_migrate_opts;

/* EHR_OK when copied (unless verify_only) and verified equal; EHR_EINVAL
   when verification finds a difference (err names it). */
ehr_status ehr_store_migrate(const ehr_migrate_opts *o, ehr_err *err);

#endif
