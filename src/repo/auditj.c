/*
 * auditj.c - the audit journal in the repository (src/audit/journal.h).
 *
 * While `ehr serve` runs with the journal on, the audit record of a read, a
 * search, a denial or a sign-in is appended to DB.audit-journal (one
 * write(2)) before the request is answered, instead of waiting for the
 * single database writer. The repository's background thread then applies
 * the records into the hash-chained audit table every --audit-sync
 * milliseconds, in chunks of at most CHUNK records, each a job of the
 * group commit (repo.c run_job): a chunk queued behind writes rides in
 * their transaction, and the writer is never held for long.
 *
 * How far the journal is applied is kept in the database, in the same
 * transaction as the records (store.h audit_applied_get/set), as (journal
 * generation, offset). Each chunk re-reads that mark inside its transaction
 * and applies only the records past it, so applying twice (a crash between
 * the commit and the next step, or another process applying the same
 * journal) never duplicates a record. A process that does not own the
 * journal (an `ehr audit` command while the server runs) may apply it the
 * same way before reading the log, so it sees every read answered so far.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/journal.h"
#include "core/util.h"
#include "repo/repo_int.h"

/* Records per job: small enough not to hold the writer (a record costs a
   SHA-256 and an insert, some microseconds). */
#define CHUNK 128
/* Start a new generation when the file grows past this (bytes); the
   environment variable EHR_AUDIT_JOURNAL_ROTATE (bytes, at least 1024)
   lowers it, so that tests can rotate often. */
#define ROTATE_BYTES (16 << 20)

struct repo_aj {
    char *path;
    ehr_journal *j;
    pthread_mutex_t apply_lock; /* one applier at a time (read, sync, rotate) */
    int64_t applied;            /* records before this offset are applied */
    int64_t rotate_bytes;
};

/* One chunk of records, carried into the transaction that applies it. */
struct arec {
    int64_t off, time;
    size_t ev, len; /* event in the chunk's buffer */
};

struct achunk {
    int64_t gen, prev_gen, prev_off, start; /* the journal file */
    struct arec recs[CHUNK];
    size_t n;
    ehr_buf events;
    int64_t end;        /* after the last record read */
    const char *damage; /* an event recording damaged records, or NULL */
    bool mark_always;   /* set the mark even when nothing is new (a durable commit) */
    size_t applied;     /* out: records appended to the chain */
};

static ehr_status collect(void *p, int64_t off, int64_t next, int64_t time, const char *event,
                          size_t len)
{
    (void)next;
    struct achunk *k = p;
    struct arec *a = &k->recs[k->n];
    a->off = off;
    a->time = time;
    a->ev = k->events.len;
    a->len = len;
    if (ehr_buf_append(&k->events, event, len))
        return EHR_ENOMEM;
    k->n++;
    return EHR_OK;
}

/* Inside the write transaction: the records past the mark, then the mark. */
static ehr_status do_apply(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    (void)r;
    struct achunk *k = arg;
    int64_t g, o;
    ehr_status st = EHR_STORE_CALL(c, audit_applied_get, &g, &o, err);
    if (st)
        return st;
    k->applied = 0;
    if (g > k->gen) /* a newer generation was applied: this file is old */
        return EHR_OK;
    int64_t from = k->start; /* an older mark: every record here is new */
    if (g == k->gen)
        from = o;
    else if (g == k->prev_gen && k->prev_off > 0 && o > k->prev_off)
        from = k->start + (o - k->prev_off); /* part of the carried records */
    for (size_t i = 0; i < k->n && !st; i++) {
        if (k->recs[i].off < from)
            continue;
        st = EHR_STORE_CALL(c, audit_append, k->recs[i].time, k->events.data + k->recs[i].ev,
                            k->recs[i].len, err);
        k->applied++;
    }
    if (!st && k->damage)
        st = EHR_STORE_CALL(c, audit_append, ehr_time_now_us(), k->damage, strlen(k->damage), err);
    if (!st && (k->mark_always || g != k->gen || o < k->end))
        st = EHR_STORE_CALL(c, audit_applied_set, k->gen, k->end > from ? k->end : from, err);
    return st;
}

/*
 * Apply the records of j in [from, to) (to 0: the end) in chunks; the last chunk commits
 * with an fsync when durable. *reached: where it stopped (to, or the start
 * of a torn tail). Damaged records are reported in the chain when report.
 */
static ehr_status apply_range(ehr_repo *r, ehr_journal *j, int64_t from, int64_t to, bool durable,
                              bool report, int64_t *reached, ehr_err *err)
{
    struct achunk *k = calloc(1, sizeof *k);
    if (!k)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    k->gen = ehr_journal_generation(j);
    k->start = ehr_journal_start(j);
    ehr_journal_prev(j, &k->prev_gen, &k->prev_off);
    ehr_status st = EHR_OK;
    int64_t at = from;
    char damage[320];
    if (!to)
        to = ehr_journal_end(j);
    for (;;) {
        k->n = 0;
        ehr_buf_reset(&k->events);
        k->damage = NULL;
        ehr_journal_scan scan;
        if ((st = ehr_journal_read(j, at, to, CHUNK, collect, k, &scan, err)))
            break;
        if (scan.n_damaged && report) {
            snprintf(damage, sizeof damage,
                     "{\"action\":\"audit-journal\",\"outcome\":\"failed\",\"detail\":\"%zu "
                     "damaged record span(s) of the audit journal (generation %lld, first at "
                     "byte %lld) could not be read and are lost\"}",
                     scan.n_damaged, (long long)k->gen, (long long)scan.first_damaged);
            k->damage = damage;
            ehr_log(EHR_LOG_ERROR, "audit journal: %zu damaged record span(s), first at byte %lld",
                    scan.n_damaged, (long long)scan.first_damaged);
        }
        bool last = scan.torn || scan.end >= to || scan.n_records < CHUNK;
        if (!k->n && !k->damage && !(durable && last))
            break;
        k->end = scan.end;
        k->mark_always = durable && last;
        if ((st = repo_run_job(r, do_apply, k, !(durable && last), err)))
            break;
        at = scan.end;
        if (last)
            break;
    }
    ehr_buf_free(&k->events);
    free(k);
    *reached = at;
    return st;
}

ehr_status repo_aj_open(ehr_repo *r, const char *path, bool create, struct repo_aj **out,
                        ehr_err *err)
{
    *out = NULL;
    struct stat sb;
    if (!create && stat(path, &sb) != 0)
        return EHR_OK;
    /* a new file starts after the generation the database has seen */
    ehr_store_conn *c = NULL;
    int64_t g = 0, o = 0;
    ehr_status st = ehr_repo_conn(r, &c, err);
    if (!st && !(st = EHR_STORE_CALL(c, begin, false, err))) {
        st = EHR_STORE_CALL(c, audit_applied_get, &g, &o, err);
        EHR_STORE_CALL(c, rollback);
    }
    if (st)
        return st;
    struct repo_aj *aj = calloc(1, sizeof *aj);
    if (!aj || !(aj->path = strdup(path))) {
        free(aj);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&aj->apply_lock, NULL);
    aj->rotate_bytes = ROTATE_BYTES;
    const char *env = getenv("EHR_AUDIT_JOURNAL_ROTATE");
    if (env && atoll(env) >= 1024)
        aj->rotate_bytes = atoll(env);
    st = ehr_journal_open(path, g + 1, false, &aj->j, err);
    /* recovery: apply what a previous run left (a torn tail is dropped),
       durably, then start a clean generation */
    int64_t reached = 0;
    if (!st)
        st = apply_range(r, aj->j, ehr_journal_start(aj->j), 0, true, true, &reached, err);
    if (!st) {
        int64_t end = ehr_journal_end(aj->j);
        if (reached < end)
            ehr_log(EHR_LOG_WARN,
                    "audit journal: dropped %lld byte(s) of a torn last record (a write cut "
                    "short by a crash; its request was not answered)",
                    (long long)(end - reached));
        int64_t fg = ehr_journal_generation(aj->j);
        st = ehr_journal_rotate(aj->j, (fg > g ? fg : g) + 1, reached, reached, err);
    }
    if (st) {
        repo_aj_free(&aj);
        return st;
    }
    aj->applied = ehr_journal_start(aj->j);
    *out = aj;
    return EHR_OK;
}

void repo_aj_free(struct repo_aj **ajp)
{
    if (!ajp || !*ajp)
        return;
    struct repo_aj *aj = *ajp;
    ehr_journal_free(&aj->j);
    pthread_mutex_destroy(&aj->apply_lock);
    free(aj->path);
    free(aj);
    *ajp = NULL;
}

ehr_status repo_aj_append(struct repo_aj *aj, int64_t when, const char *event, size_t len,
                          ehr_err *err)
{
    return ehr_journal_append(aj->j, when, event, len, err);
}

ehr_status repo_aj_apply(ehr_repo *r, struct repo_aj *aj, bool durable, ehr_err *err)
{
    pthread_mutex_lock(&aj->apply_lock);
    int64_t to = ehr_journal_end(aj->j), reached = aj->applied;
    ehr_status st = EHR_OK;
    if (to > aj->applied || durable)
        st = apply_range(r, aj->j, aj->applied, to, durable, true, &reached, err);
    aj->applied = reached;
    pthread_mutex_unlock(&aj->apply_lock);
    return st;
}

ehr_status repo_aj_tick(ehr_repo *r, struct repo_aj *aj, ehr_err *err)
{
    /* the records of the last period reach the disk first: a power cut
       loses at most one period's reads' records (docs/security.md) */
    pthread_mutex_lock(&aj->apply_lock);
    ehr_status st = ehr_journal_sync(aj->j, err);
    pthread_mutex_unlock(&aj->apply_lock);
    if (st)
        return st;
    if ((st = repo_aj_apply(r, aj, false, err)))
        return st;
    if (ehr_journal_end(aj->j) - ehr_journal_start(aj->j) < aj->rotate_bytes)
        return EHR_OK;
    /* a new generation, carrying what is not applied yet; the mark must be
       on disk before the old file goes */
    pthread_mutex_lock(&aj->apply_lock);
    int64_t reached = aj->applied;
    st = apply_range(r, aj->j, aj->applied, ehr_journal_end(aj->j), true, true, &reached, err);
    if (!st)
        st = ehr_journal_rotate(aj->j, ehr_journal_generation(aj->j) + 1, reached, 0, err);
    if (!st)
        reached = ehr_journal_start(aj->j);
    aj->applied = reached;
    pthread_mutex_unlock(&aj->apply_lock);
    return st;
}

ehr_status repo_aj_follow(ehr_repo *r, const char *path, ehr_err *err)
{
    ehr_journal *j = NULL;
    ehr_status st = ehr_journal_open(path, 0, true, &j, err);
    if (st == EHR_ENOTFOUND)
        return EHR_OK;
    if (st)
        return st;
    int64_t reached;
    st = apply_range(r, j, ehr_journal_start(j), ehr_journal_end(j), false, false, &reached, err);
    ehr_journal_free(&j);
    return st;
}
