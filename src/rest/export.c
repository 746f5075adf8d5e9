/*
 * export.c - FHIR Bulk Data Access 2.0 $export (hl7.org/fhir/uv/bulkdata):
 * asynchronous export at system, Patient and Group/[id] levels.
 *
 *   kick-off  GET|POST [base]/$export, [base]/Patient/$export,
 *             [base]/Group/ID/$export with Prefer: respond-async:
 *             202 + Content-Location: [base]/$export-status/JOB
 *   status    GET: 202 + X-Progress + Retry-After while running, then 200
 *             with the manifest (500 + OperationOutcome if it failed);
 *             DELETE: cancel (or discard), 202
 *   files     GET [base]/$export-file/JOB/TYPE.ndjson (same token, same user)
 *
 * Jobs are documents in the store (kind "bulk-export", owner the user) and
 * files are under the export folder (ehr serve --export-dir, default
 * DB.exports/). One worker thread runs the jobs in order, in chunks of
 * EXPORT_CHUNK resources in storage-key order; after each chunk the job
 * records where it is (last key, and each file's size and count), so a job
 * interrupted by a crash or restart resumes exactly there: files are cut
 * back to the recorded sizes and the scan goes on after the recorded key.
 * Memory stays flat: rows go from the database to the files one by one.
 *
 * Only callers with unlimited access may start one (ehr_repo_export_allowed):
 * the job runs after the request, without its policy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/util.h"
#include "fhir/model.h"
#include "rest/rest_int.h"
#include "search/search.h"

#define EXPORT_KIND "bulk-export"
#define EXPORT_CHUNK 5000
#define EXPORT_MAX_TYPES 160
#define EXPORT_MAX_MEMBERS 10000
#define EXPORT_MAX_FILTERS 32
#define EXPORT_KEEP_US (24LL * 3600 * 1000000) /* finished jobs and files: a day */

struct rest_exports {
    struct ehr_rest *rest;
    char *dir;
    char lease_owner[EHR_ID_LEN]; /* this process, in its job leases */
    pthread_t worker;
    bool have_worker, stopping;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

/* -- the job documents -- */

static ehr_status job_get(ehr_repo *repo, const char *id, json_t **out, ehr_err *err)
{
    *out = NULL;
    ehr_store_conn *c;
    ehr_status st = ehr_repo_conn(repo, &c, err);
    ehr_buf b = EHR_BUF_INIT;
    if (!st)
        st = EHR_STORE_CALL(c, obj_get, EXPORT_KIND, id, &b, err);
    if (!st && !(*out = json_loadb(b.data ? b.data : "", b.len, 0, NULL)))
        st = ehr_err_set(err, EHR_EINTERNAL, "the export job's document is damaged");
    ehr_buf_free(&b);
    return st;
}

static ehr_status job_put(ehr_repo *repo, json_t *job, bool create, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = ehr_repo_conn(repo, &c, err);
    if (st)
        return st;
    char *s = json_dumps(job, JSON_COMPACT);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_store_obj o = {.kind = EXPORT_KIND,
                       .key = json_string_value(json_object_get(job, "id")),
                       .owner = json_string_value(json_object_get(job, "owner")),
                       .expires = ehr_time_now_us() + EXPORT_KEEP_US,
                       .doc = s,
                       .doc_len = strlen(s)};
    st = EHR_STORE_CALL(c, obj_put, &o, create, err);
    free(s);
    return st;
}

/*
 * Record the job's progress unless it was cancelled meanwhile (its
 * document deleted): the check and the write in one transaction, so a
 * DELETE is never undone. EHR_ENOTFOUND when it was cancelled.
 */
static ehr_status job_update(ehr_repo *repo, json_t *job, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = ehr_repo_conn(repo, &c, err);
    if (st || (st = EHR_STORE_CALL(c, begin, true, err)))
        return st;
    ehr_buf b = EHR_BUF_INIT;
    st = EHR_STORE_CALL(c, obj_get, EXPORT_KIND, json_string_value(json_object_get(job, "id")), &b,
                        err);
    ehr_buf_free(&b);
    if (!st)
        st = job_put(repo, job, false, err);
    if (st) {
        EHR_STORE_CALL(c, rollback);
        return st;
    }
    if ((st = EHR_STORE_CALL(c, commit, err)))
        EHR_STORE_CALL(c, rollback);
    return st;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/*
 * Leases. Several servers may share one database (PostgreSQL): a job is
 * run by the server that holds its lease, a document (kind LEASE_KIND,
 * key the job id, doc this process's random token) that expires unless
 * renewed after each chunk. Taking one is a create-only put, which
 * succeeds only when there is none or it has expired, atomically in the
 * store; so one server runs a job at a time, and when that server dies
 * another takes the job over after LEASE_US and resumes it from the
 * progress recorded (the export folder must then be shared). A chunk
 * (EXPORT_CHUNK rows) must take less than LEASE_US.
 */
#define LEASE_KIND "bulk-export-lease"
#define LEASE_US (30LL * 1000000)

static bool lease(struct rest_exports *ex, const char *id, bool renew)
{
    ehr_store_conn *c;
    ehr_err err = {{0}};
    if (ehr_repo_conn(ex->rest->repo, &c, &err))
        return false;
    /* a SQLite file has one server: no lease to take (a restarted server
       resumes its jobs at once) */
    if (!strcmp(c->store->ops->name, "sqlite"))
        return true;
    if (renew) {
        /* still ours? (an expired lease may have been taken over) */
        ehr_buf b = EHR_BUF_INIT;
        bool mine = !EHR_STORE_CALL(c, obj_get, LEASE_KIND, id, &b, &err) && b.data &&
                    !strcmp(b.data, ex->lease_owner);
        ehr_buf_free(&b);
        if (!mine)
            return false;
    }
    ehr_store_obj o = {.kind = LEASE_KIND,
                       .key = id,
                       .expires = ehr_time_now_us() + LEASE_US,
                       .doc = ex->lease_owner,
                       .doc_len = strlen(ex->lease_owner)};
    return EHR_STORE_CALL(c, obj_put, &o, !renew, &err) == EHR_OK;
}

static void lease_drop(struct rest_exports *ex, const char *id)
{
    ehr_store_conn *c;
    ehr_err err = {{0}};
    ehr_buf b = EHR_BUF_INIT;
    if (!ehr_repo_conn(ex->rest->repo, &c, &err) &&
        !EHR_STORE_CALL(c, obj_get, LEASE_KIND, id, &b, &err) && b.data &&
        !strcmp(b.data, ex->lease_owner))
        EHR_STORE_CALL(c, obj_del, LEASE_KIND, id, &err);
    ehr_buf_free(&b);
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void job_dir(struct rest_exports *ex, const char *id, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", ex->dir, id);
}

static void remove_files(struct rest_exports *ex, const char *id)
{
    char d[4200], f[4600];
    job_dir(ex, id, d, sizeof d);
    DIR *dh = opendir(d);
    struct dirent *de;
    while (dh && (de = readdir(dh))) {
        size_t n = strlen(de->d_name);
        if (n > 7 && !strcmp(de->d_name + n - 7, ".ndjson")) {
            snprintf(f, sizeof f, "%s/%s", d, de->d_name);
            unlink(f);
        }
    }
    if (dh)
        closedir(dh);
    rmdir(d);
}

/* -- the worker -- */

struct out {
    char type[72];
    FILE *f;
    long long count;
};

/* A _typeFilter, parsed: its query plus one clause for the row's _id. */
struct filter {
    const char *type;
    ehr_search s;
    struct ehr_store_clause *clauses; /* s's clauses and the _id one */
    struct ehr_store_cond id_cond;
};

struct run {
    struct rest_exports *ex;
    const char *dir;
    struct out outs[EXPORT_MAX_TYPES];
    size_t n_outs;
    long long rows;
    ehr_status io;
    ehr_store_conn *c;
    struct filter filters[EXPORT_MAX_FILTERS];
    size_t n_filters;
};

static struct out *out_for(struct run *ru, const char *type, json_t *files)
{
    for (size_t i = 0; i < ru->n_outs; i++)
        if (!strcmp(ru->outs[i].type, type))
            return &ru->outs[i];
    if (ru->n_outs == EXPORT_MAX_TYPES)
        return NULL;
    struct out *o = &ru->outs[ru->n_outs];
    snprintf(o->type, sizeof o->type, "%s", type);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.ndjson", ru->dir, type);
    /* resume: cut the file back to what the job recorded, then append */
    json_t *rec = json_object_get(files, type);
    off_t keep = rec ? (off_t)jint(rec, "bytes") : 0;
    o->count = rec ? jint(rec, "count") : 0;
    int fd = open(path, O_WRONLY | O_CREAT, 0640);
    if (fd < 0 || ftruncate(fd, keep) != 0 || lseek(fd, keep, SEEK_SET) < 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    o->f = fdopen(fd, "a");
    if (!o->f) {
        close(fd);
        return NULL;
    }
    ru->n_outs++;
    return o;
}

struct row_ctx {
    struct run *ru;
    json_t *files;
};

/* Does rec pass the _typeFilter queries of its type (any of them; none: yes)? */
static bool passes(struct run *ru, const ehr_store_rec *rec)
{
    bool any = false;
    for (size_t i = 0; i < ru->n_filters; i++) {
        struct filter *f = &ru->filters[i];
        if (strcmp(f->type, rec->type))
            continue;
        any = true;
        f->id_cond.s2 = rec->id;
        ehr_store_query q = f->s.q;
        q.clauses = f->clauses;
        q.n_clauses = f->s.q.n_clauses + 1;
        q.count = 0;
        q.offset = 0;
        size_t n = 0;
        if (!EHR_STORE_CALL(ru->c, search, &q, NULL, NULL, &n, NULL) && n > 0)
            return true;
    }
    return !any;
}

static ehr_status export_row(void *p, const ehr_store_rec *rec)
{
    struct row_ctx *rc = p;
    if (rc->ru->n_filters && !passes(rc->ru, rec))
        return EHR_OK;
    struct out *o = out_for(rc->ru, rec->type, rc->files);
    if (!o || fwrite(rec->content, 1, rec->content_len, o->f) != rec->content_len ||
        fputc('\n', o->f) == EOF)
        return rc->ru->io = EHR_EIO;
    o->count++;
    rc->ru->rows++;
    return EHR_OK;
}

static void close_outs(struct run *ru)
{
    for (size_t i = 0; i < ru->n_outs; i++)
        if (ru->outs[i].f)
            fclose(ru->outs[i].f);
    ru->n_outs = 0;
}

static bool stopping(struct rest_exports *ex)
{
    pthread_mutex_lock(&ex->lock);
    bool s = ex->stopping;
    pthread_mutex_unlock(&ex->lock);
    return s;
}

/* Run (or resume) one job until it is done, cancelled, failed or the server stops. */
static void run_job(struct rest_exports *ex, json_t *job)
{
    ehr_repo *repo = ex->rest->repo;
    char id[80], dir[4200];
    snprintf(id, sizeof id, "%s", jstr(job, "id"));
    job_dir(ex, id, dir, sizeof dir);
    mkdir(ex->dir, 0750);
    mkdir(dir, 0750);
    const char *types[EXPORT_MAX_TYPES], *pats[EXPORT_MAX_MEMBERS];
    ehr_store_scan_q q = {.since = (int64_t)jint(job, "since"), .types = types, .patients = pats};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(job, "types"), i, v) if (q.n_types < EXPORT_MAX_TYPES)
        types[q.n_types++] = json_string_value(v);
    const char *level = jstr(job, "level");
    q.in_compartments = level && strcmp(level, "system");
    json_array_foreach(json_object_get(job, "patients"), i,
                       v) if (q.n_patients < EXPORT_MAX_MEMBERS) pats[q.n_patients++] =
        json_string_value(v);
    if (q.in_compartments && !strcmp(level, "group") && q.n_patients == 0) {
        /* an empty Group exports nothing */
        json_object_set_new(job, "status", json_string("done"));
        ehr_err err = {{0}};
        job_update(repo, job, &err);
        return;
    }
    ehr_repo_ctx ctx = {.user = jstr(job, "owner"), .client = "export-job", .role = "system"};
    if (!strcmp(jstr(job, "status"), "queued")) {
        json_object_set_new(job, "status", json_string("running"));
        /* the expected total, for X-Progress */
        ehr_store_conn *c;
        ehr_err err = {{0}};
        size_t total = 0;
        if (!q.in_compartments && !ehr_repo_conn(repo, &c, &err))
            for (size_t t = 0; t < (q.n_types ? q.n_types : 1); t++) {
                ehr_store_query cq = {.type = q.n_types ? types[t] : NULL};
                size_t n = 0;
                if (!EHR_STORE_CALL(c, search, &cq, NULL, NULL, &n, NULL))
                    total += n;
            }
        json_object_set_new(job, "total", json_integer((json_int_t)total));
    }
    struct run ru = {.ex = ex, .dir = dir};
    ehr_arena *fa = ehr_arena_new();
    if (!fa || ehr_repo_conn(repo, &ru.c, NULL)) {
        ehr_arena_free(&fa);
        return;
    }
    json_array_foreach(json_object_get(job, "filters"), i, v)
    {
        struct filter *f = &ru.filters[ru.n_filters];
        struct ehr_search_param *ps = NULL;
        size_t n = 0;
        ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
        f->type = jstr(v, "type");
        if (ru.n_filters == EXPORT_MAX_FILTERS || !f->type ||
            ehr_search_split_query(jstr(v, "query"), fa, &ps, &n) ||
            ehr_search_parse(f->type, ps, n, true, fa, &f->s, &is)) {
            ehr_fhir_issues_free(&is);
            continue;
        }
        ehr_fhir_issues_free(&is);
        f->clauses = ehr_arena_calloc(fa, f->s.q.n_clauses + 1, sizeof *f->clauses);
        if (!f->clauses) {
            ehr_search_done(&f->s);
            continue;
        }
        if (f->s.q.n_clauses)
            memcpy(f->clauses, f->s.q.clauses, f->s.q.n_clauses * sizeof *f->clauses);
        f->id_cond =
            (struct ehr_store_cond){.kind = EHR_IDX_TOKEN, .param = "_id", .match = EHR_MATCH_EQ};
        f->clauses[f->s.q.n_clauses] =
            (struct ehr_store_clause){.n_conds = 1, .conds = &f->id_cond};
        ru.n_filters++;
    }
    for (;;) {
        if (stopping(ex))
            break;
        json_t *files = json_object_get(job, "files");
        if (!files) {
            files = json_object();
            json_object_set_new(job, "files", files);
        }
        q.after_key = (int64_t)jint(job, "after_key");
        q.limit = EXPORT_CHUNK;
        int64_t last = q.after_key;
        ehr_err err = {{0}};
        struct row_ctx rc = {.ru = &ru, .files = files};
        ru.rows = 0;
        ehr_status st = ehr_repo_export(repo, &ctx, &q, export_row, &rc, &last, &err);
        for (size_t k = 0; k < ru.n_outs; k++)
            if (fflush(ru.outs[k].f) != 0)
                st = EHR_EIO;
        if (st) {
            json_object_set_new(job, "status", json_string("failed"));
            json_object_set_new(job, "error",
                                json_string(st == EHR_EIO || ru.io
                                                ? "writing the export files failed"
                                            : err.msg[0] ? err.msg
                                                         : ehr_status_str(st)));
            ehr_log(EHR_LOG_ERROR, "export: job %s failed: %s", id, ehr_status_str(st));
            if (job_update(repo, job, &err) == EHR_ENOTFOUND) {
                close_outs(&ru);
                remove_files(ex, id); /* cancelled: the failure was the cancel */
            }
            break;
        }
        for (size_t k = 0; k < ru.n_outs; k++)
            json_object_set_new(files, ru.outs[k].type,
                                json_pack("{s:I,s:I}", "count", (json_int_t)ru.outs[k].count,
                                          "bytes", (json_int_t)ftello(ru.outs[k].f)));
        json_object_set_new(job, "after_key", json_integer((json_int_t)last));
        json_object_set_new(job, "done", json_integer((json_int_t)(jint(job, "done") + ru.rows)));
        bool finished = ru.rows < EXPORT_CHUNK;
        if (finished)
            json_object_set_new(job, "status", json_string("done"));
        /* cancelled meanwhile? then the document is gone: drop the files */
        if ((st = job_update(repo, job, &err)) == EHR_ENOTFOUND) {
            close_outs(&ru);
            remove_files(ex, id);
            break;
        }
        if (st) {
            ehr_log(EHR_LOG_ERROR, "export: job %s: recording progress failed", id);
            break;
        }
        if (finished)
            break;
        if (!lease(ex, id, true)) {
            ehr_log(EHR_LOG_WARN, "export: job %s: another server took it over", id);
            break;
        }
    }
    close_outs(&ru);
    for (size_t k = 0; k < ru.n_filters; k++)
        ehr_search_done(&ru.filters[k].s);
    ehr_arena_free(&fa);
}

/* The unfinished jobs, oldest first: the worker runs the first whose
   lease it can take. */
#define PICK_MAX 16
struct pick {
    json_t *jobs[PICK_MAX];
    size_t n;
};

static ehr_status pick_one(void *p, const ehr_store_obj *o)
{
    struct pick *pk = p;
    if (pk->n == PICK_MAX)
        return EHR_OK;
    json_t *j = json_loadb(o->doc, o->doc_len, 0, NULL);
    const char *s = jstr(j, "status");
    if (s && (!strcmp(s, "queued") || !strcmp(s, "running")))
        pk->jobs[pk->n++] = j;
    else
        json_decref(j);
    return EHR_OK;
}

static void *worker(void *p)
{
    struct rest_exports *ex = p;
    for (;;) {
        if (stopping(ex))
            break;
        struct pick pk = {0};
        ehr_store_conn *c;
        ehr_err err = {{0}};
        if (!ehr_repo_conn(ex->rest->repo, &c, &err))
            EHR_STORE_CALL(c, obj_list, EXPORT_KIND, NULL, pick_one, &pk, &err);
        bool ran = false;
        for (size_t i = 0; i < pk.n; i++) {
            const char *id = jstr(pk.jobs[i], "id");
            if (!ran && id && lease(ex, id, false)) {
                /* the document as it is now, under the lease */
                json_t *now = NULL;
                ehr_err gerr = {{0}};
                if (!job_get(ex->rest->repo, id, &now, &gerr) &&
                    (!strcmp(jstr(now, "status") ?: "", "queued") ||
                     !strcmp(jstr(now, "status") ?: "", "running")))
                    run_job(ex, now);
                json_decref(now);
                lease_drop(ex, id);
                ran = true;
            }
            json_decref(pk.jobs[i]);
        }
        if (ran)
            continue;
        pthread_mutex_lock(&ex->lock);
        if (!ex->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 2;
            pthread_cond_timedwait(&ex->cond, &ex->lock, &ts);
        }
        pthread_mutex_unlock(&ex->lock);
    }
    return NULL;
}

ehr_status rest_exports_start(struct ehr_rest *rest, const char *dir)
{
    struct rest_exports *ex = calloc(1, sizeof *ex);
    if (!ex || !(ex->dir = strdup(dir))) {
        free(ex);
        return EHR_ENOMEM;
    }
    ex->rest = rest;
    ehr_id_new(ex->lease_owner);
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->cond, NULL);
    ex->have_worker = pthread_create(&ex->worker, NULL, worker, ex) == 0;
    rest->exports = ex;
    return EHR_OK;
}

void rest_exports_stop(struct ehr_rest *rest)
{
    struct rest_exports *ex = rest->exports;
    if (!ex)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->stopping = true;
    pthread_cond_broadcast(&ex->cond);
    pthread_mutex_unlock(&ex->lock);
    if (ex->have_worker)
        pthread_join(ex->worker, NULL);
    pthread_mutex_destroy(&ex->lock);
    pthread_cond_destroy(&ex->cond);
    free(ex->dir);
    free(ex);
    rest->exports = NULL;
}

/* -- the HTTP side -- */

static bool valid_job_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* A parameter from the query, or (POST) from a Parameters body. */
static const char *param(struct rctx *x, json_t *body, const char *name)
{
    const char *v = ehr_http_param(x->req, name);
    if (v || !body)
        return v;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(body, "parameter"), i, p)
    {
        if (!strcmp(ehr_json_get_string(p, "name") ?: "", name)) {
            const char *s = ehr_json_get_string(p, "valueString");
            if (!s)
                s = ehr_json_get_string(p, "valueInstant");
            if (!s)
                s = ehr_json_get_string(p, "valueCode");
            return s;
        }
    }
    return NULL;
}

/*
 * _typeFilter: "Type?query" items separated by commas (a comma followed by
 * a resource type and '?' starts the next one; others belong to the
 * query). Each is checked as a strict search of its type. false with the
 * answer sent when one is not valid.
 */
static bool parse_filters(struct rctx *x, const char *tf, json_t *out)
{
    char *dup = ehr_arena_strdup(x->req->arena, tf);
    char *p = dup;
    while (p && *p) {
        /* the end of this item */
        char *end = p, *next = NULL;
        for (char *c = strchr(p, ','); c; c = strchr(c + 1, ',')) {
            size_t tn = strcspn(c + 1, "?,");
            char t[72];
            if (c[1 + tn] == '?' && tn && tn < sizeof t) {
                memcpy(t, c + 1, tn);
                t[tn] = '\0';
                const ehr_fhir_type *ft = ehr_fhir_resource_type(t);
                if (ft && !ft->is_abstract) {
                    next = c + 1;
                    *c = '\0';
                    break;
                }
            }
        }
        end = p;
        char *q = strchr(end, '?');
        const ehr_fhir_type *ft = NULL;
        if (q) {
            *q = '\0';
            ft = ehr_fhir_resource_type(end);
        }
        if (!q || !ft || ft->is_abstract) {
            rest_fail(x, 400, "value", "_typeFilter",
                      "each _typeFilter item is Type?query, such as "
                      "Observation?category=laboratory ('%.80s' is not)",
                      end);
            return false;
        }
        struct ehr_search_param *ps = NULL;
        size_t n = 0;
        ehr_search s = {0};
        ehr_fhir_issues is = EHR_FHIR_ISSUES_INIT;
        ehr_status st = ehr_search_split_query(q + 1, x->req->arena, &ps, &n);
        if (!st)
            st = ehr_search_parse(end, ps, n, true, x->req->arena, &s, &is);
        if (st) {
            if (is.n)
                rest_fail_status(x, EHR_EINVAL, NULL, &is);
            else
                rest_fail(x, 400, "value", "_typeFilter",
                          "the _typeFilter '%.60s?%.100s' is not a valid search", end, q + 1);
            ehr_search_done(&s);
            ehr_fhir_issues_free(&is);
            return false;
        }
        ehr_search_done(&s);
        ehr_fhir_issues_free(&is);
        if (json_array_size(out) == EXPORT_MAX_FILTERS) {
            rest_fail(x, 400, "too-costly", "_typeFilter", "at most %d _typeFilter queries",
                      EXPORT_MAX_FILTERS);
            return false;
        }
        json_array_append_new(out, json_pack("{s:s,s:s}", "type", end, "query", q + 1));
        p = next;
    }
    return true;
}

void rest_export_kickoff(struct rctx *x, const char *level, const char *group_id)
{
    struct rest_exports *ex = x->rest->exports;
    if (!ex) {
        rest_fail(x, 501, "not-supported", NULL, "bulk export is not configured on this server");
        return;
    }
    /* who may, first: a caller who may not gets 403 whatever it sent */
    ehr_err aerr = {{0}};
    ehr_status ast = ehr_repo_export_allowed(x->rest->repo, &x->who, &aerr);
    if (ast) {
        rest_fail_status(x, ast, &aerr, NULL);
        return;
    }
    const char *prefer = ehr_http_header(x->req, "Prefer");
    if (!prefer || !strstr(prefer, "respond-async")) {
        rest_fail(x, 400, "required", NULL,
                  "$export is asynchronous: send Prefer: respond-async (FHIR Bulk Data 2.0)");
        return;
    }
    json_t *body = NULL;
    if (!strcmp(x->req->method, "POST") && x->req->body_len) {
        body = rest_read_resource(x);
        if (!body)
            return;
    }
    const char *fmt = param(x, body, "_outputFormat");
    if (fmt && strcmp(fmt, "application/fhir+ndjson") && strcmp(fmt, "application/ndjson") &&
        strcmp(fmt, "ndjson")) {
        rest_fail(x, 400, "not-supported", "_outputFormat",
                  "_outputFormat '%.60s' is not supported; use application/fhir+ndjson", fmt);
        json_decref(body);
        return;
    }
    json_t *filters = json_array();
    const char *tf = param(x, body, "_typeFilter");
    if (tf && !parse_filters(x, tf, filters)) {
        json_decref(filters);
        json_decref(body);
        return;
    }
    int64_t since = 0;
    const char *sv = param(x, body, "_since");
    if (sv && !ehr_time_parse(sv, &since)) {
        rest_fail(x, 400, "value", "_since",
                  "_since must be an instant such as "
                  "2024-01-31T00:00:00Z");
        json_decref(body);
        return;
    }
    json_t *types = json_array();
    const char *tv = param(x, body, "_type");
    if (tv) {
        char *dup = ehr_arena_strdup(x->req->arena, tv);
        for (char *p = dup; p && *p;) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            const ehr_fhir_type *t = ehr_fhir_resource_type(p);
            if (*p && (!t || t->is_abstract)) {
                rest_fail(x, 400, "value", "_type", "'%.72s' is not a FHIR R4 resource type", p);
                json_decref(types);
                json_decref(filters);
                json_decref(body);
                return;
            }
            if (*p && json_array_size(types) < EXPORT_MAX_TYPES)
                json_array_append_new(types, json_string(p));
            p = comma ? comma + 1 : NULL;
        }
    }
    json_decref(body);
    ehr_err err = {{0}};
    ehr_status st;
    json_t *patients = json_array();
    if (group_id) {
        /* Group/ID/$export: the Patients among its members */
        ehr_repo_out g = {0};
        st = ehr_repo_read(x->rest->repo, &x->who, "Group", group_id, 0, &g, &err);
        json_t *gj = st ? NULL : ehr_json_parse(g.body.data, g.body.len, NULL);
        ehr_repo_out_free(&g);
        if (st) {
            json_decref(types);
            json_decref(patients);
            json_decref(filters);
            rest_fail_status(x, st, &err, NULL);
            return;
        }
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(gj, "member"), i, m)
        {
            const char *ref = ehr_json_get_string(json_object_get(m, "entity"), "reference");
            const char *p = ref ? strstr(ref, "Patient/") : NULL;
            if (p && (p == ref || p[-1] == '/') && json_array_size(patients) < EXPORT_MAX_MEMBERS)
                json_array_append_new(patients, json_string(p + 8));
        }
        json_decref(gj);
    }
    char id[EHR_ID_LEN], now[EHR_INSTANT_LEN];
    ehr_id_new(id);
    ehr_time_now(now);
    char *request = ehr_arena_printf(x->req->arena, "%s%s%s", x->base, x->req->path + 5,
                                     *x->req->raw_query ? "?" : "");
    if (request && *x->req->raw_query)
        request = ehr_arena_printf(x->req->arena, "%s%s", request, x->req->raw_query);
    json_t *job = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:I}", "id", id, "owner",
                            x->who.user ? x->who.user : "anonymous", "status", "queued", "level",
                            level, "request", request ? request : "", "transactionTime", now,
                            "types", types, "patients", patients, "filters", filters, "since",
                            (json_int_t)since, "after_key", (json_int_t)0, "done", (json_int_t)0);
    if (group_id)
        json_object_set_new(job, "group", json_string(group_id));
    st = job_put(x->rest->repo, job, true, &err);
    json_decref(job);
    if (st) {
        rest_fail_status(x, st, &err, NULL);
        return;
    }
    pthread_mutex_lock(&ex->lock);
    pthread_cond_broadcast(&ex->cond);
    pthread_mutex_unlock(&ex->lock);
    char *loc = ehr_arena_printf(x->req->arena, "%s/$export-status/%s", x->base, id);
    ehr_http_set_header(x->req, x->res, "Content-Location", loc);
    rest_send_json(x, 202,
                   ehr_fhir_outcome_simple(EHR_SEV_INFORMATION, "informational", NULL,
                                           "the export has started; poll Content-Location"));
}

/* The job, if it is the caller's (another user's answers as a missing one). */
static json_t *own_job(struct rctx *x, const char *id)
{
    json_t *job = NULL;
    ehr_err err = {{0}};
    if (!valid_job_id(id) || job_get(x->rest->repo, id, &job, &err)) {
        rest_fail(x, 404, "not-found", NULL, "no export job '%.64s'", id);
        return NULL;
    }
    const char *owner = jstr(job, "owner");
    if (!owner || !x->who.user || strcmp(owner, x->who.user)) {
        json_decref(job);
        rest_fail(x, 404, "not-found", NULL, "no export job '%.64s'", id);
        return NULL;
    }
    return job;
}

void rest_export_status(struct rctx *x, const char *id)
{
    if (!x->rest->exports) {
        rest_fail(x, 501, "not-supported", NULL, "bulk export is not configured on this server");
        return;
    }
    json_t *job = own_job(x, id);
    if (!job)
        return;
    const char *status = jstr(job, "status");
    if (!strcmp(x->req->method, "DELETE")) {
        ehr_store_conn *c;
        ehr_err err = {{0}};
        if (!ehr_repo_conn(x->rest->repo, &c, &err))
            EHR_STORE_CALL(c, obj_del, EXPORT_KIND, id, &err);
        /* a queued or running job's files are removed by the worker when it
           sees the job is gone; a finished one's here */
        if (!strcmp(status, "done") || !strcmp(status, "failed"))
            remove_files(x->rest->exports, id);
        json_decref(job);
        rest_send_json(x, 202,
                       ehr_fhir_outcome_simple(EHR_SEV_INFORMATION, "informational", NULL,
                                               "the export was cancelled"));
        return;
    }
    if (!strcmp(status, "failed")) {
        rest_fail(x, 500, "exception", NULL, "the export failed: %s",
                  jstr(job, "error") ? jstr(job, "error") : "unknown error");
        json_decref(job);
        return;
    }
    if (strcmp(status, "done")) {
        long long done = jint(job, "done"), total = jint(job, "total");
        char prog[120];
        if (total > 0)
            snprintf(prog, sizeof prog, "%lld%% (%lld of %lld resources)",
                     done >= total ? 99 : done * 100 / total, done, total);
        else
            snprintf(prog, sizeof prog, "%lld resources", done);
        ehr_http_set_header(x->req, x->res, "X-Progress", prog);
        ehr_http_set_header(x->req, x->res, "Retry-After", "1");
        x->res->status = 202;
        json_decref(job);
        return;
    }
    /* the manifest (Bulk Data 2.0 "Response - Complete Status") */
    json_t *output = json_array();
    const char *k;
    json_t *f;
    json_object_foreach(json_object_get(job, "files"), k, f)
    {
        if (jint(f, "count") == 0)
            continue;
        char *url = ehr_arena_printf(x->req->arena, "%s/$export-file/%s/%s.ndjson", x->base, id, k);
        json_array_append_new(output, json_pack("{s:s,s:s,s:I}", "type", k, "url", url ? url : "",
                                                "count", (json_int_t)jint(f, "count")));
    }
    json_t *m = json_pack("{s:s,s:s,s:b,s:o,s:[]}", "transactionTime", jstr(job, "transactionTime"),
                          "request", jstr(job, "request"), "requiresAccessToken", 1, "output",
                          output, "error");
    json_decref(job);
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    x->res->status = 200;
    ehr_buf_reset(&x->res->body);
    ehr_buf_puts(&x->res->body, text ? text : "{}");
    x->res->content_type = "application/json";
    free(text);
}

void rest_export_file(struct rctx *x, const char *id, const char *file)
{
    if (!x->rest->exports) {
        rest_fail(x, 501, "not-supported", NULL, "bulk export is not configured on this server");
        return;
    }
    json_t *job = own_job(x, id);
    if (!job)
        return;
    size_t n = strlen(file);
    char type[72];
    const ehr_fhir_type *t = NULL;
    if (n > 7 && n - 7 < sizeof type && !strcmp(file + n - 7, ".ndjson")) {
        memcpy(type, file, n - 7);
        type[n - 7] = '\0';
        t = ehr_fhir_resource_type(type);
    }
    json_t *rec = t ? json_object_get(json_object_get(job, "files"), type) : NULL;
    bool done = !strcmp(jstr(job, "status") ?: "", "done");
    if (!rec || !done) {
        json_decref(job);
        rest_fail(x, 404, "not-found", NULL, "no file '%.80s' in this export", file);
        return;
    }
    off_t bytes = (off_t)jint(rec, "bytes");
    json_decref(job);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s.ndjson", x->rest->exports->dir, id, type);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        rest_fail(x, 404, "not-found", NULL, "the file of this export is gone");
        return;
    }
    x->res->status = 200;
    x->res->content_type = "application/fhir+ndjson";
    x->res->file_fd = fd;
    x->res->file_size = (uint64_t)bytes;
}
