/*
 * repo_int.h - private to src/repo/: access enforcement and audit events
 * (access.c), used by the interactions in repo.c.
 */
#ifndef EHR_REPO_INT_H
#define EHR_REPO_INT_H

#include <jansson.h>

#include "core/arena.h"
#include "repo/repo.h"

/* What a visibility check found out about one resource version. */
typedef struct repo_seen {
    bool visible; /* the caller may see it */
    bool glass;   /* ... only because of a break-glass grant */
    size_t n;     /* patients recorded (at most 8; for the audit record) */
    char ids[8][72];
} repo_seen;

/*
 * Ask the caller's policy (none: allowed, unlimited). EFORBIDDEN is
 * returned as it is; the caller audits it.
 */
ehr_status repo_decide(const ehr_repo_ctx *ctx, ehr_access access, const char *type,
                       ehr_repo_limit *lim, ehr_err *err);

/*
 * Which patients' compartments held this version (0 = current), and may
 * the caller see it under lim? ENOTFOUND when there is no such version.
 */
ehr_status repo_check_visible(ehr_store_conn *c, const ehr_repo_ctx *ctx, const ehr_repo_limit *lim,
                              const char *type, const char *id, int64_t version, repo_seen *seen,
                              ehr_err *err);

/*
 * May a limited caller write a resource whose compartment is idx->patients?
 * Only when it is in at least one allowed compartment and in no other.
 */
ehr_status repo_check_write(const ehr_repo_ctx *ctx, const ehr_repo_limit *lim, const char *type,
                            const ehr_store_index *idx, ehr_err *err);

/*
 * The store-level limits of a search or history over type (NULL: every
 * type) for `access`, allocated from arena; *out NULL when unlimited.
 * *glass is set when a break-glass patient is within them.
 */
ehr_status repo_query_access(const ehr_repo_ctx *ctx, ehr_access access, const char *type,
                             ehr_arena *arena, const ehr_store_access **out, bool *glass,
                             ehr_err *err);

/* One audit event of an interaction. */
struct repo_event {
    const char *action;  /* "read", "vread", "search", "history", "create", "update", ... */
    const char *outcome; /* "ok", "denied" */
    const char *type, *id;
    int64_t version;
    const char *query; /* search parameters as sent */
    long long n;       /* results; -1: not a search */
    const repo_seen *seen;
    size_t n_patients; /* written resources: their compartment */
    const char *const *patients;
    bool glass;         /* touched a break-glass patient */
    const char *reason; /* why it was denied */
};

json_t *repo_event_json(const ehr_repo_ctx *ctx, const struct repo_event *ev);
/* Inside the caller's write transaction (commits with the change). */
ehr_status repo_audit_in(ehr_store_conn *c, const ehr_repo_ctx *ctx, const struct repo_event *ev,
                         int64_t when, ehr_err *err);
/* Through the group commit of writes (repo.c); returns once durable. */
ehr_status repo_audit_now(ehr_repo *r, const ehr_repo_ctx *ctx, const struct repo_event *ev,
                          ehr_err *err);
/* Append one event (a JSON object): to the audit journal when it is on,
   else through the group commit. */
ehr_status repo_append_audit(ehr_repo *r, const json_t *event, ehr_err *err);

/* Run fn(arg) as a job of the group commit (repo.c run_job); log_only: it
   appends audit records and nothing else (committed without an fsync). */
ehr_status repo_run_job(ehr_repo *r,
                        ehr_status (*fn)(ehr_repo *, ehr_store_conn *, void *, ehr_err *),
                        void *arg, bool log_only, ehr_err *err);

/*
 * The audit journal (auditj.c). repo_aj_open opens and locks path (create:
 * also when there is none; otherwise *out stays NULL then), applies what a
 * previous run left and starts a new generation; EBUSY when another
 * process owns it. append: one record, before answering. apply: every
 * record appended so far into the chain (durable: the last commit with an
 * fsync). tick: the periodic work (fdatasync, apply, rotate when large).
 * follow: apply a journal this process does not own (before reading the
 * log while a server runs).
 */
struct repo_aj;
ehr_status repo_aj_open(ehr_repo *r, const char *path, bool create, struct repo_aj **out,
                        ehr_err *err);
void repo_aj_free(struct repo_aj **aj);
ehr_status repo_aj_append(struct repo_aj *aj, int64_t when, const char *event, size_t len,
                          ehr_err *err);
ehr_status repo_aj_apply(ehr_repo *r, struct repo_aj *aj, bool durable, ehr_err *err);
ehr_status repo_aj_tick(ehr_repo *r, struct repo_aj *aj, ehr_err *err);
ehr_status repo_aj_follow(ehr_repo *r, const char *path, ehr_err *err);

/*
 * -- the interactions' parts, for units of work of several writes (tx.c) --
 *
 * Everything below runs inside a write job (repo_run_write): c is the
 * leader's connection with an open transaction, and the job's changes are
 * undone together when it returns an error.
 */
typedef ehr_status (*repo_write_fn)(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err);

/* Run fn(arg) in its own savepoint of the group commit; returns once durable. */
ehr_status repo_run_write(ehr_repo *r, repo_write_fn fn, void *arg, ehr_err *err);

/* The resource type exists and is concrete (ENOTFOUND otherwise). */
ehr_status repo_check_type(const char *type, ehr_err *err);
/* Validate res as a resource of type; problems go to issues (EINVAL). */
ehr_status repo_validate(const char *type, const json_t *res, ehr_fhir_issues *issues,
                         ehr_err *err);
/* A strictly increasing last_updated for this process. */
int64_t repo_next_time(ehr_repo *r);
/* The stored form of a version (resourceType, id, meta first; compact). */
ehr_status repo_serialise(const char *type, const char *id, int64_t version, int64_t when,
                          const json_t *res, ehr_buf *out);

/* The current resources a conditional query selects (at most 2 are looked at). */
struct repo_matches {
    size_t n;
    char id[72];
    int64_t version;
};
ehr_status repo_find_matches(ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                             const char *query, struct repo_matches *m, ehr_fhir_issues *issues,
                             ehr_err *err);

/* Write version 1 of type/id (method "POST" or "PUT"). */
ehr_status repo_create_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                          const char *id, const char *method, json_t *res, ehr_repo_out *out,
                          ehr_err *err);
/* Update (or create with this id); if_match 0 for none. */
ehr_status repo_update_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                          const char *id, json_t *res, int64_t if_match, ehr_repo_out *out,
                          ehr_err *err);
/* JSON Patch of the current version. */
ehr_status repo_patch_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                         const char *id, const json_t *patch, int64_t if_match, ehr_repo_out *out,
                         ehr_fhir_issues *issues, ehr_err *err);
/* Delete; nothing to delete is not an error (out->version 0). */
ehr_status repo_delete_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                          const char *id, int64_t if_match, ehr_repo_out *out, ehr_err *err);
/* After a job: audit a refusal or a miss (EFORBIDDEN, ENOTFOUND) outside it. */
ehr_status repo_after_write(ehr_repo *r, const ehr_repo_ctx *ctx, ehr_status st, const char *action,
                            const char *type, const char *id, ehr_err *err);

#endif
