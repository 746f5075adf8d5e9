/*
 * repo.c - the repository: FHIR interactions over the store, each write
 * in one storage transaction (see repo.h).
 */
#include "repo/repo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/json.h"
#include "core/jsonpatch.h"
#include "core/util.h"
#include "fhir/model.h"
#include "fhir/validate.h"
#include "repo/repo_int.h"

struct ehr_repo {
    ehr_store *store;
    pthread_key_t conn_key;
    /* last_updated values handed out, so that they strictly increase within
       this process (two writes in one microsecond still order) */
    _Atomic int64_t last_time;
    /* group commit (run_write): writers queue here instead of sleeping in
       SQLite's busy handler; a leader commits the queued jobs together */
    pthread_mutex_t write_lock;
    pthread_cond_t write_cond;
    struct wjob *queue_head, *queue_tail;
    bool leader;
    /* audit records committed without an fsync since the last one, and the
       thread that flushes them to disk within a second (see run_batch) */
    atomic_bool unsynced;
    pthread_t flusher;
    pthread_mutex_t flush_lock;
    pthread_cond_t flush_cond;
    bool stopping, have_flusher;
    /* the audit journal (auditj.c): its path (NULL: not a local database),
       and, while this process owns it (ehr_repo_audit_journal), the
       journal and the applier's period */
    char *aj_path;
    struct repo_aj *aj;
    int aj_ms;
    /* every connection ever opened, closed by ehr_repo_free */
    pthread_mutex_t lock;
    ehr_store_conn **conns;
    size_t n_conns, cap_conns;
};

void ehr_repo_out_free(ehr_repo_out *o)
{
    ehr_buf_free(&o->body);
}

static void conn_gone(void *p)
{
    /* The thread ended; its connection stays listed and is closed by
       ehr_repo_free (a connection must not be used by two threads, and this
       one has no thread any more). */
    (void)p;
}

/*
 * The background thread. With the audit journal on, every aj_ms it syncs
 * the journal and applies it into the audit chain (auditj.c). Every second,
 * if audit records were committed without an fsync since the last one, it
 * makes them durable (and once more when the repository closes), on its own
 * connection: that never waits for a writer.
 */
static void *flusher(void *p)
{
    ehr_repo *r = p;
    ehr_store_conn *c = NULL;
    int64_t last_flush = ehr_time_now_us();
    pthread_mutex_lock(&r->flush_lock);
    for (;;) {
        bool stop = r->stopping;
        if (!stop) {
            int ms = r->aj ? r->aj_ms : 1000;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (long)(ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->flush_cond, &r->flush_lock, &ts);
            stop = r->stopping;
        }
        struct repo_aj *aj = r->aj;
        pthread_mutex_unlock(&r->flush_lock);
        ehr_err err = {{0}};
        if (aj && !stop && repo_aj_tick(r, aj, &err))
            ehr_log(EHR_LOG_ERROR, "repo: applying the audit journal failed (will retry): %s",
                    err.msg);
        int64_t now = ehr_time_now_us();
        if ((stop || now - last_flush >= 1000000) && atomic_exchange(&r->unsynced, false)) {
            last_flush = now;
            if ((c || !ehr_store_connect(r->store, &c, &err)) && EHR_STORE_CALL(c, flush, &err)) {
                atomic_store(&r->unsynced, true); /* try again */
                ehr_log(EHR_LOG_ERROR, "repo: flushing the audit log failed: %s", err.msg);
            }
        }
        pthread_mutex_lock(&r->flush_lock);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&r->flush_lock);
    ehr_store_disconnect(&c);
    return NULL;
}

/* DB.audit-journal for a local SQLite file; NULL for anything else. */
static char *journal_path(const char *target)
{
    if (!strncmp(target, "postgres:", 9))
        return NULL;
    if (!strncmp(target, "sqlite:", 7))
        target += 7;
    if (!*target || !strcmp(target, ":memory:") || !strncmp(target, "file:", 5))
        return NULL;
    size_t n = strlen(target);
    char *p = malloc(n + sizeof ".audit-journal");
    if (p) {
        memcpy(p, target, n);
        memcpy(p + n, ".audit-journal", sizeof ".audit-journal");
    }
    return p;
}

ehr_status ehr_repo_open(const char *store_target, ehr_repo **out, ehr_err *err)
{
    *out = NULL;
    ehr_repo *r = calloc(1, sizeof *r);
    if (!r)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = ehr_store_open(store_target, &r->store, err);
    if (st) {
        free(r);
        return st;
    }
    pthread_key_create(&r->conn_key, conn_gone);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->write_lock, NULL);
    pthread_cond_init(&r->write_cond, NULL);
    pthread_mutex_init(&r->flush_lock, NULL);
    pthread_cond_init(&r->flush_cond, NULL);
    r->have_flusher = pthread_create(&r->flusher, NULL, flusher, r) == 0;
    /* records a previous run left in the audit journal go into the chain
       before anything else happens (unless a running server owns them) */
    r->aj_path = journal_path(store_target);
    struct repo_aj *aj = NULL;
    if (r->aj_path && (st = repo_aj_open(r, r->aj_path, false, &aj, err)) != EHR_OK &&
        st != EHR_EBUSY) {
        ehr_repo_free(&r);
        return st;
    }
    repo_aj_free(&aj);
    *out = r;
    return EHR_OK;
}

ehr_status ehr_repo_audit_journal(ehr_repo *r, int sync_ms, ehr_err *err)
{
    if (!r->aj_path || r->aj)
        return EHR_OK;
    if (sync_ms < 1)
        sync_ms = 1;
    struct repo_aj *aj = NULL;
    ehr_status st = repo_aj_open(r, r->aj_path, true, &aj, err);
    if (st)
        return st;
    pthread_mutex_lock(&r->flush_lock);
    r->aj_ms = sync_ms;
    r->aj = aj;
    pthread_cond_signal(&r->flush_cond);
    pthread_mutex_unlock(&r->flush_lock);
    return EHR_OK;
}

ehr_status ehr_repo_audit_sync(ehr_repo *r, ehr_err *err)
{
    if (r->aj)
        return repo_aj_apply(r, r->aj, false, err);
    return r->aj_path ? repo_aj_follow(r, r->aj_path, err) : EHR_OK;
}

void ehr_repo_free(ehr_repo **rp)
{
    if (!rp || !*rp)
        return;
    ehr_repo *r = *rp;
    if (r->have_flusher) {
        pthread_mutex_lock(&r->flush_lock);
        r->stopping = true;
        pthread_cond_signal(&r->flush_cond);
        pthread_mutex_unlock(&r->flush_lock);
        pthread_join(r->flusher, NULL);
    }
    if (r->aj) {
        /* the last records into the chain, on disk */
        ehr_err err = {{0}};
        if (repo_aj_apply(r, r->aj, true, &err))
            ehr_log(EHR_LOG_ERROR,
                    "repo: applying the audit journal failed; it is applied at the next start: "
                    "%s",
                    err.msg);
        repo_aj_free(&r->aj);
    }
    free(r->aj_path);
    pthread_mutex_destroy(&r->flush_lock);
    pthread_cond_destroy(&r->flush_cond);
    for (size_t i = 0; i < r->n_conns; i++)
        ehr_store_disconnect(&r->conns[i]);
    free(r->conns);
    pthread_key_delete(r->conn_key);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->write_lock);
    pthread_cond_destroy(&r->write_cond);
    ehr_store_close(&r->store);
    free(r);
    *rp = NULL;
}

/* This thread's connection, opened on first use. */
static ehr_status conn_get(ehr_repo *r, ehr_store_conn **out, ehr_err *err)
{
    ehr_store_conn *c = pthread_getspecific(r->conn_key);
    if (c) {
        *out = c;
        return EHR_OK;
    }
    ehr_status st = ehr_store_connect(r->store, &c, err);
    if (st)
        return st;
    pthread_mutex_lock(&r->lock);
    if (r->n_conns == r->cap_conns) {
        size_t cap = r->cap_conns ? r->cap_conns * 2 : 16;
        ehr_store_conn **p = realloc(r->conns, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&r->lock);
            ehr_store_disconnect(&c);
            return ehr_err_set(err, EHR_ENOMEM, "out of memory");
        }
        r->conns = p;
        r->cap_conns = cap;
    }
    r->conns[r->n_conns++] = c;
    pthread_mutex_unlock(&r->lock);
    pthread_setspecific(r->conn_key, c);
    *out = c;
    return EHR_OK;
}

static int64_t next_time(ehr_repo *r)
{
    int64_t now = ehr_time_now_us();
    int64_t last = atomic_load(&r->last_time);
    for (;;) {
        int64_t t = now > last ? now : last + 1;
        if (atomic_compare_exchange_weak(&r->last_time, &last, t))
            return t;
    }
}

int64_t ehr_repo_parse_etag(const char *s)
{
    if (!s)
        return 0;
    while (*s == ' ')
        s++;
    if (!strncmp(s, "W/", 2))
        s += 2;
    bool quoted = *s == '"';
    if (quoted)
        s++;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0)
        return 0;
    if (quoted && *end++ != '"')
        return 0;
    while (*end == ' ')
        end++;
    return *end ? 0 : v;
}

static ehr_status check_type(const char *type, ehr_err *err)
{
    const ehr_fhir_type *t = ehr_fhir_resource_type(type);
    if (!t || t->is_abstract)
        return ehr_err_set(err, EHR_ENOTFOUND, "'%s' is not a FHIR R4 resource type", type);
    return EHR_OK;
}

/* Validate res as a resource of type; problems go to issues. */
static ehr_status validate(const char *type, const json_t *res, ehr_fhir_issues *issues,
                           ehr_err *err)
{
    if (!json_is_object(res)) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "structure", NULL,
                           "the body must be a JSON object holding a %s resource", type);
        return ehr_err_set(err, EHR_EINVAL, "not a resource");
    }
    const char *rt = ehr_json_get_string(res, "resourceType");
    if (!rt || strcmp(rt, type) != 0) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "invalid", "resourceType",
                           "resourceType is '%s' but the request is for %s; send a %s resource "
                           "or use the URL of its type",
                           rt ? rt : "(missing)", type, type);
        return ehr_err_set(err, EHR_EINVAL, "resourceType mismatch");
    }
    ehr_status st = ehr_fhir_validate(res, issues);
    if (st == EHR_ENOMEM)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (st)
        return ehr_err_set(err, EHR_EINVAL, "the %s resource is not valid", type);
    return EHR_OK;
}

/*
 * The stored form: resourceType, id, meta (versionId, lastUpdated, then the
 * client's other meta elements), then the remaining elements in order.
 */
static ehr_status serialise(const char *type, const char *id, int64_t version, int64_t when,
                            const json_t *res, ehr_buf *out)
{
    json_t *o = json_object();
    json_t *meta = json_object();
    char vid[32], lu[EHR_INSTANT_LEN];
    snprintf(vid, sizeof vid, "%lld", (long long)version);
    ehr_time_format(when, lu);
    json_object_set_new(o, "resourceType", json_string(type));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(meta, "versionId", json_string(vid));
    json_object_set_new(meta, "lastUpdated", json_string(lu));
    const json_t *old_meta = json_object_get(res, "meta");
    const char *k;
    json_t *v;
    if (json_is_object(old_meta))
        json_object_foreach((json_t *)old_meta, k, v)
        {
            if (strcmp(k, "versionId") && strcmp(k, "lastUpdated"))
                json_object_set(meta, k, v);
        }
    json_object_set_new(o, "meta", meta);
    json_object_foreach((json_t *)res, k, v)
    {
        if (strcmp(k, "resourceType") && strcmp(k, "id") && strcmp(k, "meta"))
            json_object_set(o, k, v);
    }
    ehr_buf_reset(out);
    ehr_status st = ehr_json_dump(o, out, EHR_JSON_COMPACT);
    json_decref(o);
    return st;
}

/* The access kind of a write method (update-as-create is an update). */
static ehr_access method_access(const char *method)
{
    return !strcmp(method, "POST") ? EHR_ACCESS_CREATE : EHR_ACCESS_UPDATE;
}

/*
 * Write version `version` of type/id from res (already validated), inside
 * the caller's transaction. Fills out.
 */
static ehr_status write_version(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx,
                                const char *type, const char *id, int64_t version,
                                const char *method, const json_t *res, ehr_repo_out *out,
                                ehr_err *err)
{
    int64_t when = next_time(r);
    ehr_status st = serialise(type, id, version, when, res, &out->body);
    if (st)
        return ehr_err_set(err, st, "out of memory");
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_store_index idx;
    st = ehr_search_extract(type, id, res, a, &idx);
    if (st) {
        ehr_arena_free(&a);
        return ehr_err_set(err, st, "extracting search values failed");
    }
    /* the caller's policy decides on every write, transaction entries too;
       a limited caller writes only into the compartments it may see */
    ehr_repo_limit lim;
    if ((st = repo_decide(ctx, method_access(method), type, &lim, err)) ||
        (st = repo_check_write(ctx, &lim, type, &idx, err))) {
        ehr_arena_free(&a);
        return st;
    }
    ehr_store_rec rec = {
        .type = type,
        .id = id,
        .version = version,
        .last_updated = when,
        .deleted = false,
        .method = method,
        .content = out->body.data,
        .content_len = out->body.len,
    };
    st = EHR_STORE_CALL(c, put, &rec, &idx, err);
    if (!st) {
        struct repo_event ev = {.action = !strcmp(method, "PATCH") ? "patch"
                                          : version == 1           ? "create"
                                                                   : "update",
                                .type = type,
                                .id = id,
                                .version = version,
                                .n = -1,
                                .n_patients = idx.n_patients,
                                .patients = idx.patients};
        for (size_t i = 0; ctx && ctx->policy && i < idx.n_patients; i++)
            for (size_t j = 0; j < ctx->policy->n_glass; j++)
                if (!strcmp(idx.patients[i], ctx->policy->glass[j]))
                    ev.glass = true;
        st = repo_audit_in(c, ctx, &ev, when, err);
    }
    ehr_arena_free(&a);
    if (st)
        return st;
    /* the policy may add a new patient to its caller's panel (same transaction) */
    if (version == 1 && ctx && ctx->policy && ctx->policy->created_patient &&
        !strcmp(type, "Patient"))
        ctx->policy->created_patient(ctx->policy, id);
    snprintf(out->type, sizeof out->type, "%s", type);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->version = version;
    out->last_updated = when;
    out->deleted = false;
    return EHR_OK;
}

static ehr_status finish(ehr_store_conn *c, ehr_status st, ehr_err *err)
{
    if (st) {
        EHR_STORE_CALL(c, rollback);
        return st;
    }
    st = EHR_STORE_CALL(c, commit, err);
    if (st)
        EHR_STORE_CALL(c, rollback);
    return st;
}

/*
 * Group commit. A durable commit costs an fsync (milliseconds on real
 * disks), so writers that arrive together share one: the first becomes
 * the leader, takes every job queued so far, runs each inside its own
 * savepoint of one write transaction (a failed job is undone alone),
 * commits once and wakes the others. Jobs run in arrival order, so a
 * conditional create or an If-Match check sees the jobs before it.
 */
struct wjob {
    ehr_status (*fn)(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err);
    void *arg;
    bool log_only; /* appends an audit record and nothing else */
    ehr_status st;
    ehr_err err;
    bool done;
    struct wjob *next;
};

#define MAX_BATCH 256

/*
 * Durability. A batch that changes data commits with an fsync (its audit
 * records with it). A batch of audit records alone (reads, searches,
 * denials, sign-ins) is committed to the log without one: it survives the
 * process dying, and reaches the disk with the next data commit or within
 * a second (the flusher). Only a power cut or a kernel crash in that
 * second can lose read records; never a write or its record. This makes
 * auditing every read cheap: an fsync costs milliseconds on a busy disk,
 * a log append microseconds (docs/security.md, "Audit log").
 */
static void run_batch(ehr_repo *r, struct wjob *batch)
{
    ehr_store_conn *c = NULL;
    ehr_err err = {{0}};
    bool log_only = true;
    for (struct wjob *j = batch; j; j = j->next)
        log_only = log_only && j->log_only;
    ehr_status st = conn_get(r, &c, &err);
    if (!st)
        st = EHR_STORE_CALL(c, set_sync, !log_only, &err);
    if (!st)
        st = EHR_STORE_CALL(c, begin, true, &err);
    if (st) {
        for (struct wjob *j = batch; j; j = j->next) {
            j->st = st;
            j->err = err;
        }
        return;
    }
    bool broken = false; /* the transaction itself failed: nothing can commit */
    for (struct wjob *j = batch; j; j = j->next) {
        if (broken) {
            j->st = st;
            j->err = err;
            continue;
        }
        if ((st = EHR_STORE_CALL(c, savepoint, &err))) {
            broken = true;
            j->st = st;
            j->err = err;
            continue;
        }
        j->st = j->fn(r, c, j->arg, &j->err);
        st = j->st ? EHR_STORE_CALL(c, rollback_to, &err) : EHR_STORE_CALL(c, release, &err);
        if (st) {
            broken = true;
            if (!j->st) {
                j->st = st;
                j->err = err;
            }
        }
    }
    if (broken) {
        EHR_STORE_CALL(c, rollback);
        for (struct wjob *j = batch; j; j = j->next)
            if (!j->st) {
                j->st = st;
                j->err = err;
            }
        return;
    }
    st = finish(c, EHR_OK, &err);
    if (st) {
        for (struct wjob *j = batch; j; j = j->next)
            if (!j->st) {
                j->st = st;
                j->err = err;
            }
    } else if (log_only) {
        atomic_store(&r->unsynced, true);
        /* this thread's connection also serves writes outside the queue
           (auth's documents): back to fsync at commit */
        EHR_STORE_CALL(c, set_sync, true, NULL);
    } else {
        atomic_store(&r->unsynced, false); /* the fsync took the earlier records too */
    }
}

/* Run fn(arg) in a durable write transaction; returns when it is committed. */
static ehr_status run_job(ehr_repo *r,
                          ehr_status (*fn)(ehr_repo *, ehr_store_conn *, void *, ehr_err *),
                          void *arg, bool log_only, ehr_err *err)
{
    struct wjob job = {.fn = fn, .arg = arg, .log_only = log_only};
    pthread_mutex_lock(&r->write_lock);
    if (r->queue_tail)
        r->queue_tail->next = &job;
    else
        r->queue_head = &job;
    r->queue_tail = &job;
    while (!job.done) {
        if (r->leader) {
            pthread_cond_wait(&r->write_cond, &r->write_lock);
            continue;
        }
        /* lead: take up to MAX_BATCH queued jobs (ours is among them) */
        r->leader = true;
        struct wjob *batch = r->queue_head, *last = batch;
        for (int n = 1; n < MAX_BATCH && last->next; n++)
            last = last->next;
        r->queue_head = last->next;
        if (!r->queue_head)
            r->queue_tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&r->write_lock);
        run_batch(r, batch);
        pthread_mutex_lock(&r->write_lock);
        for (struct wjob *j = batch; j; j = j->next)
            j->done = true;
        r->leader = false;
        pthread_cond_broadcast(&r->write_cond);
    }
    pthread_mutex_unlock(&r->write_lock);
    if (job.st && err)
        *err = job.err;
    return job.st;
}

ehr_status repo_run_job(ehr_repo *r,
                        ehr_status (*fn)(ehr_repo *, ehr_store_conn *, void *, ehr_err *),
                        void *arg, bool log_only, ehr_err *err)
{
    return run_job(r, fn, arg, log_only, err);
}

static ehr_status run_write(ehr_repo *r,
                            ehr_status (*fn)(ehr_repo *, ehr_store_conn *, void *, ehr_err *),
                            void *arg, ehr_err *err)
{
    return run_job(r, fn, arg, false, err);
}

struct store_job {
    ehr_status (*fn)(ehr_store_conn *c, void *arg, ehr_err *err);
    void *arg;
};

static ehr_status do_store_job(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    (void)r;
    struct store_job *j = arg;
    return j->fn(c, j->arg, err);
}

ehr_status ehr_repo_store_job(ehr_repo *r,
                              ehr_status (*fn)(ehr_store_conn *c, void *arg, ehr_err *err),
                              void *arg, ehr_err *err)
{
    struct store_job j = {fn, arg};
    return run_write(r, do_store_job, &j, err);
}

/*
 * Audit records outside a change of data (reads, searches, denials,
 * sign-ins) go through the same group commit as writes: the record is
 * durable when this returns, and many concurrent readers share one fsync.
 */
struct audit_job {
    const char *event;
    size_t len;
    int64_t when;
};

static ehr_status do_audit(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct audit_job *j = arg;
    return EHR_STORE_CALL(c, audit_append, j->when, j->event, j->len, err);
}

ehr_status repo_append_audit(ehr_repo *r, const json_t *event, ehr_err *err)
{
    char *s = json_dumps(event, JSON_COMPACT);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    struct audit_job j = {.event = s, .len = strlen(s), .when = next_time(r)};
    ehr_status st;
    /* the journal: one append, no wait for the writer (auditj.c); an event
       too large for it (or a full disk) goes the slow way */
    if (!r->aj || (st = repo_aj_append(r->aj, j.when, j.event, j.len, err)) == EHR_ELIMIT)
        st = run_job(r, do_audit, &j, true, err);
    free(s);
    if (st)
        ehr_log(EHR_LOG_ERROR, "audit: a record could not be appended: %s", ehr_status_str(st));
    return st;
}

/* Audit a refused or hidden access; keeps the status unless the audit fails. */
static ehr_status denied(ehr_repo *r, const ehr_repo_ctx *ctx, ehr_status st, const char *action,
                         const char *type, const char *id, const char *why, ehr_err *err)
{
    /* refused, or hidden (another patient's: the caller was told "not
       known"), are denials; a plain miss is "not-found" */
    struct repo_event ev = {.action = action,
                            .outcome = st == EHR_EFORBIDDEN || why ? "denied" : "not-found",
                            .type = type,
                            .id = id,
                            .n = -1,
                            .reason = why};
    ehr_err aerr = {{0}};
    ehr_status ast = repo_audit_now(r, ctx, &ev, &aerr);
    if (ast) {
        if (err)
            *err = aerr;
        return ast;
    }
    return st;
}

/* After a write job: refused (EFORBIDDEN) or aimed at nothing the caller
   can see (ENOTFOUND) is audited too, outside the rolled-back job. */
static ehr_status after_write(ehr_repo *r, const ehr_repo_ctx *ctx, ehr_status st,
                              const char *action, const char *type, const char *id, ehr_err *err)
{
    if (st != EHR_EFORBIDDEN && st != EHR_ENOTFOUND)
        return st;
    char why[256] = "";
    if (st == EHR_EFORBIDDEN && err)
        snprintf(why, sizeof why, "%.250s", err->msg);
    return denied(r, ctx, st, action, type, id, why[0] ? why : NULL, err);
}

ehr_status ehr_repo_read(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                         int64_t version, ehr_repo_out *out, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    const char *action = version ? "vread" : "read";
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_READ, type, &lim, err)) == EHR_EFORBIDDEN)
        return denied(r, ctx, st, action, type, id, err ? err->msg : NULL, err);
    if (st || (st = conn_get(r, &c, err)))
        return st;
    ehr_store_rec rec;
    if (version)
        st = EHR_STORE_CALL(c, version, type, id, version, &rec, &out->body, err);
    else
        st = EHR_STORE_CALL(c, current, type, id, &rec, &out->body, err);
    /* another patient's resource answers as one that does not exist, with
       the same status and the same words */
    repo_seen seen = {.visible = true};
    if (!st && (st = repo_check_visible(c, ctx, &lim, type, id, version, &seen, err)) == EHR_OK &&
        !seen.visible) {
        ehr_buf_reset(&out->body);
        st = denied(r, ctx, EHR_ENOTFOUND, action, type, id, "outside the caller's compartments",
                    err);
    } else if (st == EHR_ENOTFOUND && ctx && ctx->policy) {
        st = denied(r, ctx, st, action, type, id, NULL, err);
    }
    if (st == EHR_ENOTFOUND) {
        if (version)
            return ehr_err_set(err, st, "%s/%s has no version %lld", type, id, (long long)version);
        return ehr_err_set(err, st, "%s/%s is not known", type, id);
    }
    if (st) {
        ehr_buf_reset(&out->body);
        return st;
    }
    snprintf(out->type, sizeof out->type, "%s", type);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->version = rec.version;
    out->last_updated = rec.last_updated;
    out->deleted = rec.deleted;
    struct repo_event ev = {
        .action = action, .type = type, .id = id, .version = rec.version, .n = -1, .seen = &seen};
    if ((st = repo_audit_now(r, ctx, &ev, err))) {
        ehr_buf_reset(&out->body);
        return st;
    }
    if (rec.deleted)
        return ehr_err_set(err, EHR_EGONE, "%s/%s was deleted", type, id);
    return EHR_OK;
}

/* Search inside the caller's transaction for the matches of a conditional query. */
struct matches {
    size_t n;
    char id[72];
    int64_t version;
};

static ehr_status match_cb(void *p, const ehr_store_rec *rec)
{
    struct matches *m = p;
    if (m->n++ == 0) {
        snprintf(m->id, sizeof m->id, "%s", rec->id);
        m->version = rec->version;
    }
    return EHR_OK;
}

static ehr_status find_matches(ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                               const char *query, struct matches *m, ehr_fhir_issues *issues,
                               ehr_err *err)
{
    memset(m, 0, sizeof *m);
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    /* conditional operations search: they match only what the caller may see */
    const ehr_store_access *acc = NULL;
    bool glass;
    ehr_status ast = repo_query_access(ctx, EHR_ACCESS_SEARCH, type, a, &acc, &glass, err);
    if (ast) {
        ehr_arena_free(&a);
        return ast;
    }
    struct ehr_search_param *ps;
    size_t n;
    ehr_search s;
    ehr_status st = ehr_search_split_query(query, a, &ps, &n);
    if (!st && n == 0) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "invalid", NULL,
                           "a conditional request needs search criteria, such as "
                           "identifier=system|value");
        st = EHR_EINVAL;
    }
    if (!st) {
        st = ehr_search_parse(type, ps, n, true, a, &s, issues);
        if (!st) {
            s.q.count = 2; /* one is a match, two is too many */
            s.q.offset = 0;
            s.q.access = acc;
            st = EHR_STORE_CALL(c, search, &s.q, match_cb, m, NULL, err);
        }
        ehr_search_done(&s);
    }
    ehr_arena_free(&a);
    if (st == EHR_EINVAL)
        return ehr_err_set(err, st, "the conditional criteria are not valid");
    return st;
}

/* Create inside an open write transaction. */
static ehr_status create_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx,
                            const char *type, const char *id_or_null, json_t *res,
                            ehr_repo_out *out, ehr_err *err)
{
    char id[EHR_ID_LEN];
    if (!id_or_null)
        ehr_id_new(id);
    ehr_status st = write_version(r, c, ctx, type, id_or_null ? id_or_null : id, 1,
                                  id_or_null ? "PUT" : "POST", res, out, err);
    out->created = true;
    return st;
}

/* The arguments of a write, carried into the transaction that runs it. */
struct wargs {
    const ehr_repo_ctx *ctx;
    const char *type, *id, *query;
    json_t *res;
    const json_t *patch;
    int64_t if_match;
    ehr_repo_out *out;
    ehr_fhir_issues *issues;
};

static ehr_status do_create(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    ehr_repo_out *out = a->out;
    if (a->query && *a->query) {
        struct matches m;
        ehr_status st = find_matches(c, a->ctx, a->type, a->query, &m, a->issues, err);
        if (st)
            return st;
        if (m.n > 1)
            return ehr_err_set(err, EHR_EMULTIPLE,
                               "If-None-Exist matches more than one %s; make the criteria "
                               "more selective",
                               a->type);
        if (m.n == 1) {
            /* the match is returned: that is a read of it */
            ehr_store_rec rec;
            ehr_repo_limit lim;
            repo_seen seen;
            if ((st = repo_decide(a->ctx, EHR_ACCESS_READ, a->type, &lim, err)) ||
                (st = EHR_STORE_CALL(c, current, a->type, m.id, &rec, &out->body, err)) ||
                (st = repo_check_visible(c, a->ctx, &lim, a->type, m.id, 0, &seen, err)))
                return st;
            snprintf(out->type, sizeof out->type, "%s", a->type);
            snprintf(out->id, sizeof out->id, "%s", m.id);
            out->version = rec.version;
            out->last_updated = rec.last_updated;
            out->unchanged = true;
            struct repo_event ev = {.action = "read",
                                    .type = a->type,
                                    .id = m.id,
                                    .version = rec.version,
                                    .n = -1,
                                    .seen = &seen,
                                    .query = a->query};
            return repo_audit_in(c, a->ctx, &ev, next_time(r), err);
        }
    }
    return create_in(r, c, a->ctx, a->type, NULL, a->res, out, err);
}

ehr_status ehr_repo_create(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, json_t *res,
                           const char *if_none_exist, ehr_repo_out *out, ehr_fhir_issues *issues,
                           ehr_err *err)
{
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_CREATE, type, &lim, err)) == EHR_EFORBIDDEN)
        return after_write(r, ctx, st, "create", type, NULL, err);
    if (st || (st = validate(type, res, issues, err)))
        return st;
    struct wargs a = {
        .ctx = ctx, .type = type, .query = if_none_exist, .res = res, .out = out, .issues = issues};
    st = run_write(r, do_create, &a, err);
    return after_write(r, ctx, st, "create", type, NULL, err);
}

/* Update inside an open write transaction. */
static ehr_status update_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx,
                            const char *type, const char *id, json_t *res, int64_t if_match,
                            const char *method, ehr_repo_out *out, ehr_err *err)
{
    ehr_store_rec cur;
    ehr_status st = EHR_STORE_CALL(c, current, type, id, &cur, NULL, err);
    if (st == EHR_ENOTFOUND) {
        if (if_match)
            return ehr_err_set(err, EHR_ECONFLICT,
                               "If-Match names version %lld but %s/%s does not exist",
                               (long long)if_match, type, id);
        return create_in(r, c, ctx, type, id, res, out, err);
    }
    if (st)
        return st;
    /* an existing resource the caller can't see can't be overwritten */
    ehr_repo_limit lim;
    repo_seen seen;
    if ((st = repo_decide(ctx, EHR_ACCESS_UPDATE, type, &lim, err)) ||
        (st = repo_check_visible(c, ctx, &lim, type, id, 0, &seen, err)))
        return st;
    if (!seen.visible)
        return ehr_err_set(err, EHR_EFORBIDDEN, "you may not write %s/%s", type, id);
    if (if_match && if_match != cur.version)
        return ehr_err_set(err, EHR_ECONFLICT,
                           "%s/%s is at version %lld, not %lld; read it again and reapply "
                           "your change",
                           type, id, (long long)cur.version, (long long)if_match);
    st = write_version(r, c, ctx, type, id, cur.version + 1, method, res, out, err);
    out->created = cur.deleted;
    return st;
}

static ehr_status check_body_id(const char *type, const char *id, const json_t *res,
                                ehr_fhir_issues *issues, ehr_err *err)
{
    const char *bid = ehr_json_get_string(res, "id");
    if (!bid) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "required", "Resource.id",
                           "an update must carry the resource's id in the body (\"id\": \"%s\")",
                           id);
        return ehr_err_set(err, EHR_EINVAL, "no id in the body");
    }
    if (strcmp(bid, id) != 0) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "invalid", "Resource.id",
                           "the body's id '%s' differs from the id '%s' in the URL", bid, id);
        return ehr_err_set(err, EHR_EINVAL, "id mismatch");
    }
    return EHR_OK;
}

static ehr_status do_update(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    return update_in(r, c, a->ctx, a->type, a->id, a->res, a->if_match, "PUT", a->out, err);
}

ehr_status ehr_repo_update(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                           json_t *res, int64_t if_match, ehr_repo_out *out,
                           ehr_fhir_issues *issues, ehr_err *err)
{
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_UPDATE, type, &lim, err)) == EHR_EFORBIDDEN)
        return after_write(r, ctx, st, "update", type, id, err);
    if (st || (st = validate(type, res, issues, err)) ||
        (st = check_body_id(type, id, res, issues, err)))
        return st;
    struct wargs a = {.ctx = ctx,
                      .type = type,
                      .id = id,
                      .res = res,
                      .if_match = if_match,
                      .out = out,
                      .issues = issues};
    st = run_write(r, do_update, &a, err);
    return after_write(r, ctx, st, "update", type, id, err);
}

static ehr_status do_update_where(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    struct matches m;
    ehr_status st = find_matches(c, a->ctx, a->type, a->query, &m, a->issues, err);
    if (st)
        return st;
    const char *bid = ehr_json_get_string(a->res, "id");
    if (m.n > 1)
        return ehr_err_set(err, EHR_EMULTIPLE,
                           "the conditional update matches more than one %s; make the criteria "
                           "more selective",
                           a->type);
    if (m.n == 0)
        return create_in(r, c, a->ctx, a->type, bid, a->res, a->out, err);
    if (bid && strcmp(bid, m.id)) {
        ehr_fhir_issue_add(a->issues, EHR_SEV_ERROR, "invalid", "Resource.id",
                           "the body's id '%s' differs from the matching resource's id '%s'", bid,
                           m.id);
        return ehr_err_set(err, EHR_EINVAL, "id mismatch");
    }
    return update_in(r, c, a->ctx, a->type, m.id, a->res, a->if_match, "PUT", a->out, err);
}

ehr_status ehr_repo_update_where(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type,
                                 const char *query, json_t *res, int64_t if_match,
                                 ehr_repo_out *out, ehr_fhir_issues *issues, ehr_err *err)
{
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_UPDATE, type, &lim, err)) == EHR_EFORBIDDEN)
        return after_write(r, ctx, st, "update", type, NULL, err);
    if (st || (st = validate(type, res, issues, err)))
        return st;
    struct wargs a = {.ctx = ctx,
                      .type = type,
                      .query = query,
                      .res = res,
                      .if_match = if_match,
                      .out = out,
                      .issues = issues};
    st = run_write(r, do_update_where, &a, err);
    return after_write(r, ctx, st, "update", type, NULL, err);
}

static ehr_status do_patch(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    const char *type = a->type, *id = a->id;
    ehr_store_rec cur;
    ehr_buf body = EHR_BUF_INIT;
    json_t *doc = NULL;
    ehr_repo_limit lim;
    repo_seen seen;
    ehr_status st = repo_decide(a->ctx, EHR_ACCESS_UPDATE, type, &lim, err);
    if (!st)
        st = EHR_STORE_CALL(c, current, type, id, &cur, &body, err);
    /* another patient's resource is not known */
    if (!st && !(st = repo_check_visible(c, a->ctx, &lim, type, id, 0, &seen, err)) &&
        !seen.visible)
        st = EHR_ENOTFOUND;
    if (st == EHR_ENOTFOUND)
        st = ehr_err_set(err, EHR_ENOTFOUND, "%s/%s is not known", type, id);
    else if (!st && cur.deleted)
        st = ehr_err_set(err, EHR_EGONE, "%s/%s was deleted", type, id);
    else if (!st && a->if_match && a->if_match != cur.version)
        st = ehr_err_set(err, EHR_ECONFLICT,
                         "%s/%s is at version %lld, not %lld; read it again and reapply your patch",
                         type, id, (long long)cur.version, (long long)a->if_match);
    if (!st && !(doc = ehr_json_parse(body.data, body.len, err)))
        st = EHR_EINTERNAL;
    if (!st && (st = ehr_json_patch(&doc, a->patch, err))) {
        ehr_fhir_issue_add(a->issues, EHR_SEV_ERROR,
                           st == EHR_EPRECONDITION ? "conflict" : "invalid", NULL, "%s",
                           err ? err->msg : "the patch failed");
    }
    if (!st) {
        const char *bid = ehr_json_get_string(doc, "id");
        const char *rt = ehr_json_get_string(doc, "resourceType");
        if (!bid || strcmp(bid, id) || !rt || strcmp(rt, type)) {
            ehr_fhir_issue_add(a->issues, EHR_SEV_ERROR, "invalid", "Resource.id",
                               "a patch may not change the resource's id or resourceType");
            st = ehr_err_set(err, EHR_EUNPROCESSABLE, "patch changes id or type");
        }
    }
    if (!st && (st = validate(type, doc, a->issues, err)) == EHR_EINVAL)
        st = ehr_err_set(err, EHR_EUNPROCESSABLE, "the patched %s is not valid", type);
    if (!st)
        st = write_version(r, c, a->ctx, type, id, cur.version + 1, "PATCH", doc, a->out, err);
    json_decref(doc);
    ehr_buf_free(&body);
    return st;
}

ehr_status ehr_repo_patch(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                          const json_t *patch, int64_t if_match, ehr_repo_out *out,
                          ehr_fhir_issues *issues, ehr_err *err)
{
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_UPDATE, type, &lim, err)) == EHR_EFORBIDDEN)
        return after_write(r, ctx, st, "patch", type, id, err);
    if (st)
        return st;
    struct wargs a = {.ctx = ctx,
                      .type = type,
                      .id = id,
                      .patch = patch,
                      .if_match = if_match,
                      .out = out,
                      .issues = issues};
    st = run_write(r, do_patch, &a, err);
    return after_write(r, ctx, st, "patch", type, id, err);
}

/* Delete inside an open write transaction. */
static ehr_status delete_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx,
                            const char *type, const char *id, int64_t if_match, ehr_repo_out *out,
                            ehr_err *err)
{
    ehr_store_rec cur;
    ehr_status st = EHR_STORE_CALL(c, current, type, id, &cur, NULL, err);
    snprintf(out->type, sizeof out->type, "%s", type);
    snprintf(out->id, sizeof out->id, "%s", id);
    if (st == EHR_ENOTFOUND || (!st && cur.deleted)) {
        out->version = 0;
        out->deleted = true;
        return EHR_OK;
    }
    if (st)
        return st;
    /* another patient's resource: as if it did not exist (nothing deleted) */
    ehr_repo_limit lim;
    repo_seen seen;
    if ((st = repo_decide(ctx, EHR_ACCESS_DELETE, type, &lim, err)) ||
        (st = repo_check_visible(c, ctx, &lim, type, id, 0, &seen, err)))
        return st;
    if (!seen.visible) {
        out->version = 0;
        out->deleted = true;
        return EHR_OK;
    }
    if (if_match && if_match != cur.version)
        return ehr_err_set(err, EHR_ECONFLICT, "%s/%s is at version %lld, not %lld", type, id,
                           (long long)cur.version, (long long)if_match);
    int64_t when = next_time(r);
    ehr_store_rec rec = {
        .type = type,
        .id = id,
        .version = cur.version + 1,
        .last_updated = when,
        .deleted = true,
        .method = "DELETE",
    };
    struct repo_event ev = {
        .action = "delete", .type = type, .id = id, .version = rec.version, .n = -1, .seen = &seen};
    if ((st = EHR_STORE_CALL(c, put, &rec, NULL, err)) ||
        (st = repo_audit_in(c, ctx, &ev, when, err)))
        return st;
    out->version = rec.version;
    out->last_updated = when;
    out->deleted = true;
    return EHR_OK;
}

static ehr_status do_delete(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    return delete_in(r, c, a->ctx, a->type, a->id, a->if_match, a->out, err);
}

ehr_status ehr_repo_delete(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                           int64_t if_match, ehr_repo_out *out, ehr_err *err)
{
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_DELETE, type, &lim, err)) == EHR_EFORBIDDEN)
        return after_write(r, ctx, st, "delete", type, id, err);
    if (st)
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .id = id, .if_match = if_match, .out = out};
    st = run_write(r, do_delete, &a, err);
    /* nothing deleted (unknown, already deleted, or not the caller's): audited too */
    if (!st && out->version == 0 && ctx && ctx->policy)
        return after_write(r, ctx, EHR_ENOTFOUND, "delete", type, id, err) == EHR_ENOTFOUND
                   ? EHR_OK
                   : EHR_EIO;
    return after_write(r, ctx, st, "delete", type, id, err);
}

static ehr_status do_delete_where(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    struct matches m;
    ehr_status st = find_matches(c, a->ctx, a->type, a->query, &m, a->issues, err);
    if (st)
        return st;
    if (m.n > 1)
        return ehr_err_set(err, EHR_EMULTIPLE,
                           "the conditional delete matches more than one %s; make the criteria "
                           "more selective",
                           a->type);
    if (m.n == 1)
        return delete_in(r, c, a->ctx, a->type, m.id, 0, a->out, err);
    snprintf(a->out->type, sizeof a->out->type, "%s", a->type);
    a->out->version = 0;
    a->out->deleted = true;
    return EHR_OK;
}

ehr_status ehr_repo_delete_where(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type,
                                 const char *query, ehr_repo_out *out, ehr_fhir_issues *issues,
                                 ehr_err *err)
{
    ehr_repo_limit lim;
    ehr_status st = check_type(type, err);
    if (!st && (st = repo_decide(ctx, EHR_ACCESS_DELETE, type, &lim, err)) == EHR_EFORBIDDEN)
        return after_write(r, ctx, st, "delete", type, NULL, err);
    if (st)
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .query = query, .out = out, .issues = issues};
    st = run_write(r, do_delete_where, &a, err);
    return after_write(r, ctx, st, "delete", type, NULL, err);
}

/* Counts the rows a search or history hands out, and keeps their ids for the audit. */
struct counted {
    ehr_store_row_cb cb;
    void *ctx;
    long long n;
    json_t *ids;
};

static ehr_status counted_cb(void *p, const ehr_store_rec *rec)
{
    struct counted *k = p;
    k->n++;
    if (k->ids && json_array_size(k->ids) < 50) {
        char ref[160];
        snprintf(ref, sizeof ref, "%s/%s", rec->type, rec->id);
        json_array_append_new(k->ids, json_string(ref));
    }
    return k->cb ? k->cb(k->ctx, rec) : EHR_OK;
}

/* Audit a search or history through the writer, once the rows are out. */
static ehr_status audit_query(ehr_repo *r, const ehr_repo_ctx *ctx, const char *action,
                              const char *type, const char *id, const char *query, long long n,
                              json_t *ids, bool glass, ehr_err *err)
{
    struct repo_event ev = {
        .action = action, .type = type, .id = id, .query = query, .n = n, .glass = glass};
    json_t *o = repo_event_json(ctx, &ev);
    if (!o)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (ids && json_array_size(ids))
        json_object_set(o, "results", ids);
    ehr_status st = repo_append_audit(r, o, err);
    json_decref(o);
    return st;
}

ehr_status ehr_repo_history(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_store_history_q *q,
                            ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = EHR_OK;
    if ((q->type && (st = check_type(q->type, err))) || (st = conn_get(r, &c, err)))
        return st;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    /* history of one resource is a read of it; of a type or all, a search */
    ehr_store_history_q lq = *q;
    bool glass = false;
    st = repo_query_access(ctx, q->id ? EHR_ACCESS_READ : EHR_ACCESS_SEARCH, q->type, a, &lq.access,
                           &glass, err);
    if (st == EHR_EFORBIDDEN) {
        ehr_arena_free(&a);
        return denied(r, ctx, st, "history", q->type, q->id, err ? err->msg : NULL, err);
    }
    struct counted k = {.cb = cb, .ctx = cb_ctx, .ids = json_array()};
    /* one read transaction: the total and the page see the same snapshot */
    if (!st && !(st = EHR_STORE_CALL(c, begin, false, err))) {
        st = EHR_STORE_CALL(c, history, &lq, counted_cb, &k, total, err);
        st = finish(c, st, err);
    }
    if (!st) {
        char since[64] = "";
        if (q->since)
            snprintf(since, sizeof since, "_since=%lld", (long long)q->since);
        st = audit_query(r, ctx, "history", q->type, q->id, since[0] ? since : NULL,
                         q->count ? k.n : (long long)(total ? *total : 0), k.ids, glass, err);
    }
    json_decref(k.ids);
    ehr_arena_free(&a);
    return st;
}

ehr_status ehr_repo_search(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_search *s,
                           ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = EHR_OK;
    if ((s->q.type && (st = check_type(s->q.type, err))) || (st = conn_get(r, &c, err)))
        return st;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    /* the caller's limits go into the query: totals and pages count only
       what it may see */
    ehr_store_query q = s->q;
    bool glass = false;
    st = repo_query_access(ctx, EHR_ACCESS_SEARCH, q.type, a, &q.access, &glass, err);
    if (st == EHR_EFORBIDDEN) {
        ehr_arena_free(&a);
        return denied(r, ctx, st, "search", q.type, NULL, err ? err->msg : NULL, err);
    }
    size_t *tp = s->total_none ? NULL : total;
    struct counted k = {.cb = cb, .ctx = cb_ctx, .ids = json_array()};
    if (!st && !(st = EHR_STORE_CALL(c, begin, false, err))) {
        st = EHR_STORE_CALL(c, search, &q, counted_cb, &k, tp, err);
        st = finish(c, st, err);
    }
    if (!st)
        st = audit_query(r, ctx, "search", q.type, NULL, s->self.data ? s->self.data : "",
                         q.count ? k.n : (long long)(tp ? *tp : 0), k.ids, glass, err);
    json_decref(k.ids);
    ehr_arena_free(&a);
    return st;
}

ehr_status ehr_repo_audit(ehr_repo *r, const ehr_repo_ctx *ctx, json_t *event, ehr_err *err)
{
    if (ctx && ctx->user && !json_object_get(event, "user"))
        json_object_set_new(event, "user", json_string(ctx->user));
    if (ctx && ctx->role && !json_object_get(event, "role"))
        json_object_set_new(event, "role", json_string(ctx->role));
    if (ctx && ctx->app && !json_object_get(event, "app"))
        json_object_set_new(event, "app", json_string(ctx->app));
    if (ctx && ctx->client && !json_object_get(event, "client"))
        json_object_set_new(event, "client", json_string(ctx->client));
    return repo_append_audit(r, event, err);
}

ehr_status ehr_repo_conn(ehr_repo *r, ehr_store_conn **out, ehr_err *err)
{
    return conn_get(r, out, err);
}

ehr_status ehr_repo_audit_verify(ehr_repo *r, int64_t *n_records, int64_t *bad_seq, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = ehr_repo_audit_sync(r, err);
    if (st || (st = conn_get(r, &c, err)) || (st = EHR_STORE_CALL(c, begin, false, err)))
        return st;
    st = EHR_STORE_CALL(c, audit_verify, n_records, bad_seq, err);
    return finish(c, st, err);
}

/* -- the parts of the interactions, for tx.c (repo_int.h) -- */

ehr_status repo_run_write(ehr_repo *r, repo_write_fn fn, void *arg, ehr_err *err)
{
    return run_write(r, fn, arg, err);
}

ehr_status repo_check_type(const char *type, ehr_err *err)
{
    return check_type(type, err);
}

ehr_status repo_validate(const char *type, const json_t *res, ehr_fhir_issues *issues, ehr_err *err)
{
    return validate(type, res, issues, err);
}

int64_t repo_next_time(ehr_repo *r)
{
    return next_time(r);
}

ehr_status repo_serialise(const char *type, const char *id, int64_t version, int64_t when,
                          const json_t *res, ehr_buf *out)
{
    return serialise(type, id, version, when, res, out);
}

ehr_status repo_find_matches(ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                             const char *query, struct repo_matches *m, ehr_fhir_issues *issues,
                             ehr_err *err)
{
    struct matches mm;
    ehr_status st = find_matches(c, ctx, type, query, &mm, issues, err);
    m->n = mm.n;
    memcpy(m->id, mm.id, sizeof m->id);
    m->version = mm.version;
    return st;
}

ehr_status repo_create_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                          const char *id, const char *method, json_t *res, ehr_repo_out *out,
                          ehr_err *err)
{
    ehr_status st = write_version(r, c, ctx, type, id, 1, method, res, out, err);
    out->created = true;
    return st;
}

ehr_status repo_update_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                          const char *id, json_t *res, int64_t if_match, ehr_repo_out *out,
                          ehr_err *err)
{
    return update_in(r, c, ctx, type, id, res, if_match, "PUT", out, err);
}

ehr_status repo_patch_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                         const char *id, const json_t *patch, int64_t if_match, ehr_repo_out *out,
                         ehr_fhir_issues *issues, ehr_err *err)
{
    struct wargs a = {.ctx = ctx,
                      .type = type,
                      .id = id,
                      .patch = patch,
                      .if_match = if_match,
                      .out = out,
                      .issues = issues};
    return do_patch(r, c, &a, err);
}

ehr_status repo_delete_in(ehr_repo *r, ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *type,
                          const char *id, int64_t if_match, ehr_repo_out *out, ehr_err *err)
{
    return delete_in(r, c, ctx, type, id, if_match, out, err);
}

ehr_status repo_after_write(ehr_repo *r, const ehr_repo_ctx *ctx, ehr_status st, const char *action,
                            const char *type, const char *id, ehr_err *err)
{
    return after_write(r, ctx, st, action, type, id, err);
}
