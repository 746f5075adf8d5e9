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

#include "core/arena.h"
#include "core/json.h"
#include "core/jsonpatch.h"
#include "core/util.h"
#include "fhir/model.h"
#include "fhir/validate.h"

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
    *out = r;
    return EHR_OK;
}

void ehr_repo_free(ehr_repo **rp)
{
    if (!rp || !*rp)
        return;
    ehr_repo *r = *rp;
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
        json_object_foreach((json_t *)old_meta, k, v) {
            if (strcmp(k, "versionId") && strcmp(k, "lastUpdated"))
                json_object_set(meta, k, v);
        }
    json_object_set_new(o, "meta", meta);
    json_object_foreach((json_t *)res, k, v) {
        if (strcmp(k, "resourceType") && strcmp(k, "id") && strcmp(k, "meta"))
            json_object_set(o, k, v);
    }
    ehr_buf_reset(out);
    ehr_status st = ehr_json_dump(o, out, EHR_JSON_COMPACT);
    json_decref(o);
    return st;
}

static ehr_status audit(ehr_store_conn *c, const ehr_repo_ctx *ctx, const char *action,
                        const char *type, const char *id, int64_t version, int64_t when,
                        ehr_err *err)
{
    /* ids and types only: no content, so no PHI beyond the record's id */
    json_t *ev = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "action", action, "type", type, "id",
                           id, "version", (json_int_t)version, "user",
                           ctx && ctx->user ? ctx->user : "anonymous", "client",
                           ctx && ctx->client ? ctx->client : "");
    char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = EHR_STORE_CALL(c, audit_append, when, s, strlen(s), err);
    free(s);
    return st;
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
    ehr_arena_free(&a);
    if (!st)
        st = audit(c, ctx, version == 1 ? "create" : "update", type, id, version, when, err);
    if (st)
        return st;
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
    ehr_status st;
    ehr_err err;
    bool done;
    struct wjob *next;
};

#define MAX_BATCH 256

static void run_batch(ehr_repo *r, struct wjob *batch)
{
    ehr_store_conn *c = NULL;
    ehr_err err = {{0}};
    ehr_status st = conn_get(r, &c, &err);
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
    if (st)
        for (struct wjob *j = batch; j; j = j->next)
            if (!j->st) {
                j->st = st;
                j->err = err;
            }
}

/* Run fn(arg) in a durable write transaction; returns when it is committed. */
static ehr_status run_write(ehr_repo *r, ehr_status (*fn)(ehr_repo *, ehr_store_conn *, void *,
                                                          ehr_err *),
                            void *arg, ehr_err *err)
{
    struct wjob job = {.fn = fn, .arg = arg};
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

ehr_status ehr_repo_read(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, const char *id,
                         int64_t version, ehr_repo_out *out, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = check_type(type, err);
    if (st || (st = conn_get(r, &c, err)))
        return st;
    ehr_store_rec rec;
    if (version)
        st = EHR_STORE_CALL(c, version, type, id, version, &rec, &out->body, err);
    else
        st = EHR_STORE_CALL(c, current, type, id, &rec, &out->body, err);
    if (st == EHR_ENOTFOUND) {
        if (version)
            return ehr_err_set(err, st, "%s/%s has no version %lld", type, id, (long long)version);
        return ehr_err_set(err, st, "%s/%s is not known", type, id);
    }
    if (st)
        return st;
    snprintf(out->type, sizeof out->type, "%s", type);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->version = rec.version;
    out->last_updated = rec.last_updated;
    out->deleted = rec.deleted;
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

static ehr_status find_matches(ehr_store_conn *c, const char *type, const char *query,
                               struct matches *m, ehr_fhir_issues *issues, ehr_err *err)
{
    memset(m, 0, sizeof *m);
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
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
        ehr_status st = find_matches(c, a->type, a->query, &m, a->issues, err);
        if (st)
            return st;
        if (m.n > 1)
            return ehr_err_set(err, EHR_EMULTIPLE,
                               "If-None-Exist matches more than one %s; make the criteria "
                               "more selective",
                               a->type);
        if (m.n == 1) {
            ehr_store_rec rec;
            st = EHR_STORE_CALL(c, current, a->type, m.id, &rec, &out->body, err);
            if (st)
                return st;
            snprintf(out->type, sizeof out->type, "%s", a->type);
            snprintf(out->id, sizeof out->id, "%s", m.id);
            out->version = rec.version;
            out->last_updated = rec.last_updated;
            out->unchanged = true;
            return EHR_OK;
        }
    }
    return create_in(r, c, a->ctx, a->type, NULL, a->res, out, err);
}

ehr_status ehr_repo_create(ehr_repo *r, const ehr_repo_ctx *ctx, const char *type, json_t *res,
                           const char *if_none_exist, ehr_repo_out *out, ehr_fhir_issues *issues,
                           ehr_err *err)
{
    ehr_status st = check_type(type, err);
    if (st || (st = validate(type, res, issues, err)))
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .query = if_none_exist, .res = res, .out = out,
                      .issues = issues};
    return run_write(r, do_create, &a, err);
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
    ehr_status st = check_type(type, err);
    if (st || (st = validate(type, res, issues, err)) ||
        (st = check_body_id(type, id, res, issues, err)))
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .id = id, .res = res, .if_match = if_match,
                      .out = out, .issues = issues};
    return run_write(r, do_update, &a, err);
}

static ehr_status do_update_where(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    struct matches m;
    ehr_status st = find_matches(c, a->type, a->query, &m, a->issues, err);
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
    ehr_status st = check_type(type, err);
    if (st || (st = validate(type, res, issues, err)))
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .query = query, .res = res,
                      .if_match = if_match, .out = out, .issues = issues};
    return run_write(r, do_update_where, &a, err);
}

static ehr_status do_patch(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    const char *type = a->type, *id = a->id;
    ehr_store_rec cur;
    ehr_buf body = EHR_BUF_INIT;
    json_t *doc = NULL;
    ehr_status st = EHR_STORE_CALL(c, current, type, id, &cur, &body, err);
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
    ehr_status st = check_type(type, err);
    if (st)
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .id = id, .patch = patch, .if_match = if_match,
                      .out = out, .issues = issues};
    return run_write(r, do_patch, &a, err);
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
    if ((st = EHR_STORE_CALL(c, put, &rec, NULL, err)) ||
        (st = audit(c, ctx, "delete", type, id, rec.version, when, err)))
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
    ehr_status st = check_type(type, err);
    if (st)
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .id = id, .if_match = if_match, .out = out};
    return run_write(r, do_delete, &a, err);
}

static ehr_status do_delete_where(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct wargs *a = arg;
    struct matches m;
    ehr_status st = find_matches(c, a->type, a->query, &m, a->issues, err);
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
    ehr_status st = check_type(type, err);
    if (st)
        return st;
    struct wargs a = {.ctx = ctx, .type = type, .query = query, .out = out, .issues = issues};
    return run_write(r, do_delete_where, &a, err);
}

ehr_status ehr_repo_history(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_store_history_q *q,
                            ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = EHR_OK;
    if ((q->type && (st = check_type(q->type, err))) || (st = conn_get(r, &c, err)))
        return st;
    /* one read transaction: the total and the page see the same snapshot */
    if ((st = EHR_STORE_CALL(c, begin, false, err)))
        return st;
    st = EHR_STORE_CALL(c, history, q, cb, cb_ctx, total, err);
    return finish(c, st, err);
}

ehr_status ehr_repo_search(ehr_repo *r, const ehr_repo_ctx *ctx, const ehr_search *s,
                           ehr_store_row_cb cb, void *cb_ctx, size_t *total, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = EHR_OK;
    if ((s->q.type && (st = check_type(s->q.type, err))) || (st = conn_get(r, &c, err)))
        return st;
    if ((st = EHR_STORE_CALL(c, begin, false, err)))
        return st;
    st = EHR_STORE_CALL(c, search, &s->q, cb, cb_ctx, s->total_none ? NULL : total, err);
    return finish(c, st, err);
}

ehr_status ehr_repo_audit_verify(ehr_repo *r, int64_t *n_records, int64_t *bad_seq, ehr_err *err)
{
    ehr_store_conn *c = NULL;
    ehr_status st = conn_get(r, &c, err);
    if (st || (st = EHR_STORE_CALL(c, begin, false, err)))
        return st;
    st = EHR_STORE_CALL(c, audit_verify, n_records, bad_seq, err);
    return finish(c, st, err);
}
