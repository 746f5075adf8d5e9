/*
 * audit.c - the group-commit writer of the audit log (see audit.h).
 */
#include "audit/audit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"

/* One caller waiting for its record; lives on the caller's stack. */
struct waiter {
    struct waiter *next;
    const char *event;
    size_t len;
    int64_t time;
    ehr_status status;
    char msg[160];
    bool done;
};

struct ehr_audit {
    ehr_store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits here for events */
    pthread_cond_t done; /* callers wait here for their batch */
    struct waiter *head, **tail;
    bool stopping;
};

/* Append one batch in one transaction; every waiter gets the outcome. */
static void commit_batch(ehr_audit *a, ehr_store_conn *c, struct waiter *batch)
{
    ehr_err err = {{0}};
    ehr_status st = c ? EHR_STORE_CALL(c, begin, true, &err) : EHR_EIO;
    if (!c)
        ehr_err_set(&err, st, "the audit log has no database connection");
    for (struct waiter *w = batch; !st && w; w = w->next)
        st = EHR_STORE_CALL(c, audit_append, w->time, w->event, w->len, &err);
    if (!st)
        st = EHR_STORE_CALL(c, commit, &err);
    if (st && c)
        EHR_STORE_CALL(c, rollback);
    if (st)
        ehr_log(EHR_LOG_ERROR, "audit: appending a batch failed: %s", ehr_status_str(st));
    pthread_mutex_lock(&a->mu);
    for (struct waiter *w = batch; w; w = w->next) {
        w->status = st;
        if (st)
            snprintf(w->msg, sizeof w->msg, "%.150s", err.msg);
        w->done = true;
    }
    pthread_cond_broadcast(&a->done);
    pthread_mutex_unlock(&a->mu);
}

static void *writer(void *p)
{
    ehr_audit *a = p;
    ehr_store_conn *c = NULL;
    ehr_err err = {{0}};
    if (ehr_store_connect(a->store, &c, &err)) {
        ehr_log(EHR_LOG_ERROR, "audit: cannot open the database: %s", err.msg);
        c = NULL;
    }
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (!a->head && !a->stopping)
            pthread_cond_wait(&a->work, &a->mu);
        struct waiter *batch = a->head;
        a->head = NULL;
        a->tail = &a->head;
        bool stop = a->stopping;
        pthread_mutex_unlock(&a->mu);
        if (batch)
            commit_batch(a, c, batch);
        else if (stop)
            break;
    }
    ehr_store_disconnect(&c);
    return NULL;
}

ehr_status ehr_audit_new(ehr_store *store, ehr_audit **out, ehr_err *err)
{
    ehr_audit *a = calloc(1, sizeof *a);
    if (!a)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    a->store = store;
    a->tail = &a->head;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work, NULL);
    pthread_cond_init(&a->done, NULL);
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->work);
        pthread_cond_destroy(&a->done);
        free(a);
        return ehr_err_set(err, EHR_ENOMEM, "cannot start the audit writer");
    }
    *out = a;
    return EHR_OK;
}

void ehr_audit_free(ehr_audit **ap)
{
    if (!ap || !*ap)
        return;
    ehr_audit *a = *ap;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->work);
    pthread_cond_destroy(&a->done);
    free(a);
    *ap = NULL;
}

ehr_status ehr_audit_record(ehr_audit *a, int64_t time, const char *event, size_t len,
                            ehr_err *err)
{
    struct waiter w = {.event = event, .len = len, .time = time ? time : ehr_time_now_us()};
    pthread_mutex_lock(&a->mu);
    if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        return ehr_err_set(err, EHR_EBUSY, "the audit log is closing");
    }
    *a->tail = &w;
    a->tail = &w.next;
    pthread_cond_signal(&a->work);
    while (!w.done)
        pthread_cond_wait(&a->done, &a->mu);
    pthread_mutex_unlock(&a->mu);
    if (w.status)
        return ehr_err_set(err, w.status, "the access could not be recorded in the audit log: %s",
                           w.msg);
    return EHR_OK;
}

ehr_status ehr_audit_record_json(ehr_audit *a, int64_t time, const json_t *event, ehr_err *err)
{
    char *s = json_dumps(event, JSON_COMPACT);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = ehr_audit_record(a, time, s, strlen(s), err);
    free(s);
    return st;
}
