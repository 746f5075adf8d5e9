/*
 * cmd_import.c - ehr import: load FHIR data, straight into the database or
 * through a running server (--url).
 *
 * Input: transaction or batch Bundles (Synthea's files), single resources
 * (.json), NDJSON (.ndjson, .jsonl: one resource a line), and folders of
 * them (walked in name order). Every Bundle is one transaction through
 * ehr_repo_transaction (or POST /fhir): a failed Bundle leaves nothing
 * behind. NDJSON goes in batches of 1000 lines, each line on its own. Files named
 * hospitalInformation* and practitionerInformation* (Synthea's shared
 * organizations and practitioners, which patient Bundles refer to by
 * conditional reference) are loaded before the others.
 *
 * Re-running an import creates no duplicates: a POST entry whose resource
 * has an id becomes a PUT of that id (the source's ids are kept), entries
 * with ifNoneExist stay conditional creates, and a PUT of content equal
 * to the stored version writes nothing (ehr_repo_tx_opts.skip_unchanged).
 *
 * HL7 v2 files (.hl7, or text beginning with MSH, FHS or BHS; batches are
 * split) go message by message the way an MLLP message goes (docs/hl7v2.md):
 * stored raw, mapped, applied as one transaction, acknowledged (with --url:
 * POST /hl7v2); a message not accepted is reported with its file and line,
 * and a repeated control id is not applied twice.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/progress.h"
#include "core/json.h"
#include "core/util.h"
#include "hl7v2/engine.h"
#include "http/client.h"
#include "repo/repo.h"

#define NDJSON_CHUNK 1000
#define MAX_ENTRIES 100000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ehr import [--db PATH | --postgres CONNINFO] [--jobs N] PATH...\n"
            "       ehr import --url URL [--token T] [--jobs N] PATH...\n"
            "\n"
            "Loads transaction or batch Bundles (Synthea), single resources (.json),\n"
            "NDJSON (.ndjson, .jsonl), HL7 v2 messages (.hl7, batches too) and folders\n"
            "of them. Each Bundle (or 1000 NDJSON\n"
            "lines) is one transaction: a failed one leaves nothing behind, and is\n"
            "reported with its file and line or entry. Safe to re-run: resources keep\n"
            "their ids, and unchanged ones are not written again.\n"
            "  --db PATH     the SQLite database (default %s); the server may be stopped\n"
            "  --url URL     a running server's FHIR base (http://host:8080/fhir)\n"
            "  --token T     its access token (default: $EHR_TOKEN)\n"
            "  --jobs N      units loaded in parallel (default 2)\n"
            "  --quiet       no progress, only errors and the summary\n",
            EHR_DEFAULT_DB);
}

/* One transaction to send. */
struct unit {
    const char *file;
    json_t *bundle;
    size_t *lines; /* NDJSON: the line of each entry; NULL for a Bundle file */
    size_t n;      /* entries */
    size_t bytes;  /* of the file, counted when done */
    struct unit *next;
};

struct imp {
    ehr_repo *repo;
    const char *url, *token;
    ehr_repo_ctx ctx;
    /* the queue between the reader and the loaders */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct unit *head, *tail;
    size_t queued, cap;
    bool closed;
    /* results */
    size_t n_resources, n_created, n_failed_units, n_errors;
    ehr_progress prog;
};

static void unit_free(struct unit *u)
{
    json_decref(u->bundle);
    free(u->lines);
    free(u);
}

static void push(struct imp *im, struct unit *u)
{
    pthread_mutex_lock(&im->lock);
    while (im->queued >= im->cap)
        pthread_cond_wait(&im->cond, &im->lock);
    if (im->tail)
        im->tail->next = u;
    else
        im->head = u;
    im->tail = u;
    im->queued++;
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
}

static struct unit *pop(struct imp *im)
{
    pthread_mutex_lock(&im->lock);
    while (!im->head && !im->closed)
        pthread_cond_wait(&im->cond, &im->lock);
    struct unit *u = im->head;
    if (u) {
        im->head = u->next;
        if (!im->head)
            im->tail = NULL;
        im->queued--;
        pthread_cond_broadcast(&im->cond);
    }
    pthread_mutex_unlock(&im->lock);
    return u;
}

/* Print one error line (file and line, or entry). */
static void report(struct imp *im, const struct unit *u, size_t entry, const char *where,
                   const char *msg)
{
    pthread_mutex_lock(&im->lock);
    ehr_progress_clear(&im->prog);
    if (u->lines && entry < u->n)
        fprintf(stderr, "%s:%zu: %s%s%s\n", u->file, u->lines[entry], where ? where : "",
                where ? ": " : "", msg);
    else if (entry != (size_t)-1)
        fprintf(stderr, "%s: entry %zu: %s%s%s\n", u->file, entry, where ? where : "",
                where ? ": " : "", msg);
    else
        fprintf(stderr, "%s: %s\n", u->file, msg);
    im->n_errors++;
    pthread_mutex_unlock(&im->lock);
}

/* The entry index named by a location "Bundle.entry[3]...", or -1. */
static size_t entry_of(const char *loc)
{
    if (!loc || strncmp(loc, "Bundle.entry[", 13))
        return (size_t)-1;
    return (size_t)strtoul(loc + 13, NULL, 10);
}

/* Keep the source's ids: POST of a resource with an id becomes PUT Type/id. */
static void keep_ids(json_t *bundle)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e)
    {
        json_t *req = json_object_get(e, "request");
        json_t *res = json_object_get(e, "resource");
        const char *m = ehr_json_get_string(req, "method");
        const char *id = ehr_json_get_string(res, "id");
        const char *type = ehr_json_get_string(res, "resourceType");
        if (!m || strcmp(m, "POST") || !id || !type || json_object_get(req, "ifNoneExist"))
            continue;
        char url[200];
        snprintf(url, sizeof url, "%.70s/%.64s", type, id);
        json_object_set_new(req, "method", json_string("PUT"));
        json_object_set_new(req, "url", json_string(url));
    }
}

/* Send u; on failure fill issues-like lines: returns the failing entry index or -1. */
static ehr_status send_unit(struct imp *im, struct unit *u, json_t **resp, char *where,
                            size_t where_n, char *msg, size_t msg_n)
{
    where[0] = msg[0] = '\0';
    if (im->repo) {
        /* a unit is sent once (a retry without a failed entry happens only
           after the whole unit failed before any rewrite that matters:
           NDJSON entries are PUTs of their own ids): no copy */
        ehr_repo_tx_opts o = {.max_entries = MAX_ENTRIES, .skip_unchanged = true, .in_place = true};
        ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
        ehr_err err = {{0}};
        ehr_status st =
            ehr_repo_transaction(im->repo, &im->ctx, u->bundle, &o, resp, &issues, &err);
        if (st) {
            const struct ehr_fhir_issue *it = NULL;
            for (size_t k = 0; k < issues.n && !it; k++)
                if (issues.items[k].severity <= EHR_SEV_ERROR)
                    it = &issues.items[k];
            snprintf(where, where_n, "%s", it && it->expression ? it->expression : err.where);
            snprintf(msg, msg_n, "%s", it ? it->message : err.msg);
        }
        ehr_fhir_issues_free(&issues);
        return st;
    }
    char *body = ehr_json_dumps(u->bundle, EHR_JSON_COMPACT);
    if (!body)
        return EHR_ENOMEM;
    char auth[4200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %.4000s", im->token ? im->token : "");
    const char *hdrs[] = {auth, "Accept: application/fhir+json", NULL};
    char url[4200];
    snprintf(url, sizeof url, "%s", im->url);
    ehr_http_client_req rq = {.method = "POST",
                              .url = url,
                              .content_type = "application/fhir+json",
                              .body = body,
                              .body_len = strlen(body),
                              .headers = im->token ? hdrs : hdrs + 1};
    ehr_http_client_res rs;
    ehr_err err = {{0}};
    ehr_status st = ehr_http_client_send(&rq, &rs, &err);
    free(body);
    if (st) {
        snprintf(msg, msg_n, "%s", err.msg);
        return st;
    }
    json_t *j = ehr_json_parse(rs.body.data, rs.body.len, NULL);
    if (rs.status == 200 && j) {
        *resp = j;
    } else {
        const char *rt = ehr_json_get_string(j, "resourceType");
        json_t *issue = json_array_get(json_object_get(j, "issue"), 0);
        if (rt && !strcmp(rt, "OperationOutcome") && issue) {
            const char *d = ehr_json_get_string(issue, "diagnostics");
            const char *x =
                ehr_json_string(json_array_get(json_object_get(issue, "expression"), 0));
            snprintf(where, where_n, "%s", x ? x : "");
            snprintf(msg, msg_n, "HTTP %d: %s", rs.status, d ? d : "(no diagnostics)");
        } else {
            snprintf(msg, msg_n, "HTTP %d from the server", rs.status);
        }
        json_decref(j);
        st = rs.status == 401 || rs.status == 403 ? EHR_EFORBIDDEN : EHR_EINVAL;
    }
    ehr_http_client_res_free(&rs);
    return st;
}

/* Drop entry k of u (an NDJSON line that failed), keeping lines aligned. */
static void drop_entry(struct unit *u, size_t k)
{
    json_array_remove(json_object_get(u->bundle, "entry"), k);
    memmove(&u->lines[k], &u->lines[k + 1], (u->n - k - 1) * sizeof *u->lines);
    u->n--;
}

static void load_unit(struct imp *im, struct unit *u)
{
    size_t done = 0, created = 0;
    for (;;) {
        json_t *resp = NULL;
        char where[256], msg[600];
        ehr_status st = send_unit(im, u, &resp, where, sizeof where, msg, sizeof msg);
        if (!st) {
            size_t i;
            json_t *e;
            json_array_foreach(json_object_get(resp, "entry"), i, e)
            {
                json_t *r = json_object_get(e, "response");
                const char *s = ehr_json_get_string(r, "status");
                if (s && s[0] == '2') {
                    done++;
                    created += !strncmp(s, "201", 3);
                } else {
                    /* a batch entry failed alone */
                    json_t *is =
                        json_array_get(json_object_get(json_object_get(r, "outcome"), "issue"), 0);
                    const char *d = ehr_json_get_string(is, "diagnostics");
                    const char *x =
                        ehr_json_string(json_array_get(json_object_get(is, "expression"), 0));
                    char m[700], loc[300];
                    snprintf(m, sizeof m, "%s: %s", s, d ? d : "failed");
                    /* an NDJSON line is a resource: Patient.birthDate, not
                       the chunk's Bundle.entry[k].resource.birthDate */
                    const char *rest = x && u->lines ? strstr(x, "].resource") : NULL;
                    if (rest) {
                        const char *t = ehr_json_get_string(
                            json_object_get(json_array_get(json_object_get(u->bundle, "entry"), i),
                                            "resource"),
                            "resourceType");
                        snprintf(loc, sizeof loc, "%s%s", t ? t : "Resource", rest + 10);
                        x = loc;
                    }
                    report(im, u, i, x, m);
                }
            }
            json_decref(resp);
            break;
        }
        size_t k = entry_of(where);
        report(im, u, k, where[0] ? where : NULL, msg);
        /* NDJSON: the other lines of the chunk still go in */
        if (!u->lines || k >= u->n || u->n == 1) {
            pthread_mutex_lock(&im->lock);
            im->n_failed_units++;
            pthread_mutex_unlock(&im->lock);
            break;
        }
        drop_entry(u, k);
    }
    pthread_mutex_lock(&im->lock);
    im->n_resources += done;
    im->n_created += created;
    ehr_progress_update(&im->prog, u->bytes, done);
    pthread_mutex_unlock(&im->lock);
}

static void *loader(void *p)
{
    struct imp *im = p;
    struct unit *u;
    while ((u = pop(im))) {
        load_unit(im, u);
        unit_free(u);
    }
    return NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ehr_buf b = EHR_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (ehr_buf_append(&b, tmp, n)) {
            fclose(f);
            ehr_buf_free(&b);
            return NULL;
        }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        ehr_buf_free(&b);
        return NULL;
    }
    return ehr_buf_steal(&b, len) ?: strdup("");
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* An entry that loads resource res (PUT of its id, or POST). */
static json_t *entry_for(json_t *res)
{
    const char *type = ehr_json_get_string(res, "resourceType");
    const char *id = ehr_json_get_string(res, "id");
    char url[200];
    if (id)
        snprintf(url, sizeof url, "%.70s/%.64s", type ? type : "", id);
    else
        snprintf(url, sizeof url, "%.70s", type ? type : "");
    return json_pack("{s:o,s:{s:s,s:s}}", "resource", res, "request", "method", id ? "PUT" : "POST",
                     "url", url);
}

static struct unit *unit_new(const char *file)
{
    struct unit *u = calloc(1, sizeof *u);
    if (u) {
        u->file = file;
        /* NDJSON lines are independent resources: a batch, so that a bad
           line fails alone and the others of its chunk go in */
        u->bundle = json_pack("{s:s,s:s,s:[]}", "resourceType", "Bundle", "type", "batch", "entry");
    }
    return u;
}

/* Read an NDJSON file into units of NDJSON_CHUNK lines. */
static void read_ndjson(struct imp *im, const char *file, char *text, size_t len)
{
    struct unit *u = NULL;
    size_t line = 0, cap = 0, last = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        char *q = p;
        p = nl ? nl + 1 : end;
        while (n && (q[n - 1] == '\r' || q[n - 1] == ' '))
            n--;
        if (n == 0)
            continue;
        ehr_err err = {{0}};
        json_t *res = ehr_json_parse(q, n, &err);
        if (!res || !json_is_object(res) || !ehr_json_get_string(res, "resourceType")) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s%s", res ? "" : "not valid JSON: ",
                     res ? "the line is not a FHIR resource (no resourceType)" : err.msg);
            size_t ln = line;
            struct unit tmp = {.file = file, .lines = &ln, .n = 1};
            report(im, &tmp, 0, NULL, msg);
            json_decref(res);
            continue;
        }
        if (!u && !(u = unit_new(file))) {
            json_decref(res);
            break;
        }
        if (u->n == cap) {
            cap = cap ? cap * 2 : 64;
            size_t *nl2 = realloc(u->lines, cap * sizeof *nl2);
            if (!nl2) {
                json_decref(res);
                break;
            }
            u->lines = nl2;
        }
        u->lines[u->n++] = line;
        json_array_append_new(json_object_get(u->bundle, "entry"), entry_for(res));
        if (u->n == NDJSON_CHUNK) {
            u->bytes = (size_t)(p - text) - last;
            last = (size_t)(p - text);
            push(im, u);
            u = NULL;
            cap = 0;
        }
    }
    if (u) {
        u->bytes = len - last;
        push(im, u);
    } else {
        pthread_mutex_lock(&im->lock);
        ehr_progress_update(&im->prog, len - last, 0);
        pthread_mutex_unlock(&im->lock);
    }
}

static bool is_hl7(const char *file, const char *text, size_t len)
{
    if (ends_with(file, ".hl7"))
        return true;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
        text += 3;
        len -= 3;
    }
    return len > 4 &&
           (!memcmp(text, "MSH", 3) || !memcmp(text, "FHS", 3) || !memcmp(text, "BHS", 3)) &&
           text[3] > 0x20 && text[3] < 0x7f;
}

struct hl7_file {
    struct imp *im;
    const char *file;
    ehr_hl7_engine *engine;
    size_t n, accepted;
};

static ehr_status hl7_one(void *p, const char *data, size_t len, int line)
{
    struct hl7_file *h = p;
    struct imp *im = h->im;
    ehr_buf ack = EHR_BUF_INIT;
    char why[700] = "";
    h->n++;
    if (h->engine) {
        /* judged by the outcome, not the ACK: the sender (this file) may
           have asked for none (MSH-15/16 NE) */
        ehr_hl7_reply r;
        if (ehr_hl7_receive(h->engine, &im->ctx, data, len, &r))
            snprintf(why, sizeof why, "the message could not be stored");
        else if (r.code != EHR_HL7_AA) {
            char loc[32] = "";
            if (r.error.seg[0] && r.error.field)
                snprintf(loc, sizeof loc, "%s-%d: ", r.error.seg, r.error.field);
            snprintf(why, sizeof why, "HL7 %s: %s%s", ehr_hl7_ack_code_str(r.code), loc,
                     r.error.text);
        }
        ehr_hl7_reply_free(&r);
        ehr_buf_puts(&ack, "MSA|AA|");
    } else {
        /* the server's /hl7v2 next to its FHIR base */
        char url[4200];
        snprintf(url, sizeof url, "%s", im->url);
        char *f = strstr(url, "/fhir");
        snprintf(f ? f : url + strlen(url),
                 sizeof url - (size_t)((f ? f : url + strlen(url)) - url), "/hl7v2");
        char auth[4200];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.4000s", im->token ? im->token : "");
        const char *hdrs[] = {auth, NULL};
        ehr_http_client_req rq = {.method = "POST",
                                  .url = url,
                                  .content_type = "x-application/hl7-v2+er7",
                                  .body = data,
                                  .body_len = len,
                                  .headers = im->token ? hdrs : hdrs + 1};
        ehr_http_client_res rs;
        ehr_err err = {{0}};
        if (ehr_http_client_send(&rq, &rs, &err))
            snprintf(why, sizeof why, "%s", err.msg);
        else if (rs.status != 200 && rs.status != 204)
            snprintf(why, sizeof why, "HTTP %d from the server", rs.status);
        else
            ehr_buf_append(&ack, rs.body.data ? rs.body.data : "", rs.body.len);
        if (!err.msg[0])
            ehr_http_client_res_free(&rs);
    }
    const char *msa = ack.data ? strstr(ack.data, "MSA|") : NULL;
    if (!why[0] && (!msa || (strncmp(msa + 4, "AA", 2) && strncmp(msa + 4, "CA", 2)))) {
        /* the reason: ERR-8 when there is one, else MSA-3 */
        const char *err8 = ack.data ? strstr(ack.data, "\rERR|") : NULL, *t = NULL;
        int bars = 0;
        for (const char *q = err8; q && *++q && *q != '\r';)
            if (*q == '|' && ++bars == 8) {
                t = q + 1;
                break;
            }
        if (!t && msa) {
            const char *q = strchr(msa + 4, '|');
            t = q ? strchr(q + 1, '|') : NULL;
            t = t ? t + 1 : NULL;
        }
        snprintf(why, sizeof why, "HL7 %.2s: %.*s", msa ? msa + 4 : "??",
                 t ? (int)strcspn(t, "|\r") : 0, t ? t : "");
    }
    if (why[0]) {
        pthread_mutex_lock(&im->lock);
        ehr_progress_clear(&im->prog);
        fprintf(stderr, "%s:%d: %s\n", h->file, line, why);
        im->n_errors++;
        pthread_mutex_unlock(&im->lock);
    } else {
        h->accepted++;
    }
    ehr_buf_free(&ack);
    return EHR_OK;
}

/* An HL7 v2 file: every message in it, in order. */
static void read_hl7(struct imp *im, const char *file, const char *text, size_t len)
{
    struct hl7_file h = {.im = im, .file = file};
    ehr_err err = {{0}};
    if (im->repo && ehr_hl7_engine_new(im->repo, NULL, &h.engine, &err)) {
        fprintf(stderr, "%s: %s\n", file, err.msg);
        return;
    }
    ehr_hl7_error he = {0};
    if (ehr_hl7_split(text, len, hl7_one, &h, &he)) {
        pthread_mutex_lock(&im->lock);
        fprintf(stderr, "%s: %s\n", file, he.text);
        im->n_errors++;
        pthread_mutex_unlock(&im->lock);
    }
    ehr_hl7_engine_free(&h.engine);
    pthread_mutex_lock(&im->lock);
    ehr_progress_clear(&im->prog);
    fprintf(stderr, "%s: %zu HL7 v2 message(s), %zu accepted\n", file, h.n, h.accepted);
    ehr_progress_update(&im->prog, len, 0);
    pthread_mutex_unlock(&im->lock);
}

/* Queue one file. */
static void read_one(struct imp *im, const char *file)
{
    size_t len;
    char *text = read_file(file, &len);
    if (!text) {
        struct unit tmp = {.file = file};
        report(im, &tmp, (size_t)-1, NULL, strerror(errno ? errno : EIO));
        return;
    }
    if (ends_with(file, ".ndjson") || ends_with(file, ".jsonl")) {
        read_ndjson(im, file, text, len);
        free(text);
        return;
    }
    if (is_hl7(file, text, len)) {
        read_hl7(im, file, text, len);
        free(text);
        return;
    }
    ehr_err err = {{0}};
    json_t *j = ehr_json_parse(text, len, &err);
    free(text);
    struct unit *u = calloc(1, sizeof *u);
    if (!u) {
        json_decref(j);
        return;
    }
    u->file = file;
    u->bytes = len;
    if (!j) {
        char msg[600];
        snprintf(msg, sizeof msg, "not valid JSON: %s", err.msg);
        report(im, u, (size_t)-1, NULL, msg);
        free(u);
        return;
    }
    const char *rt = ehr_json_get_string(j, "resourceType");
    const char *bt = ehr_json_get_string(j, "type");
    if (!json_is_object(j) || !rt) {
        report(im, u, (size_t)-1, NULL, "not a FHIR resource or Bundle (no resourceType)");
        json_decref(j);
        free(u);
        return;
    }
    if (rt && !strcmp(rt, "Bundle") && bt && (!strcmp(bt, "transaction") || !strcmp(bt, "batch"))) {
        keep_ids(j);
        u->bundle = j;
    } else if (rt && !strcmp(rt, "Bundle") && bt && strcmp(bt, "transaction") &&
               strcmp(bt, "batch")) {
        /* a collection or searchset: load its resources as a transaction */
        u->bundle =
            json_pack("{s:s,s:s,s:[]}", "resourceType", "Bundle", "type", "transaction", "entry");
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(j, "entry"), i, e)
        {
            json_t *res = json_object_get(e, "resource");
            if (json_is_object(res))
                json_array_append_new(json_object_get(u->bundle, "entry"),
                                      entry_for(json_incref(res)));
        }
        json_decref(j);
    } else {
        u->bundle = json_pack("{s:s,s:s,s:[o]}", "resourceType", "Bundle", "type", "transaction",
                              "entry", entry_for(j));
    }
    u->n = json_array_size(json_object_get(u->bundle, "entry"));
    push(im, u);
}

/* Collect the files under paths, sorted by name within each folder. */
struct files {
    char **v;
    size_t n, cap;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(struct files *f, const char *path, bool top, size_t *bytes)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "ehr import: %s: %s\n", path, strerror(errno));
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            fprintf(stderr, "ehr import: %s: %s\n", path, strerror(errno));
            return;
        }
        struct files sub = {0};
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char *p;
            if (asprintf(&p, "%s/%s", path, de->d_name) < 0)
                continue;
            if (sub.n == sub.cap) {
                sub.cap = sub.cap ? sub.cap * 2 : 64;
                sub.v = realloc(sub.v, sub.cap * sizeof *sub.v);
            }
            sub.v[sub.n++] = p;
        }
        closedir(d);
        if (sub.n)
            qsort(sub.v, sub.n, sizeof *sub.v, cmp_str);
        for (size_t i = 0; i < sub.n; i++) {
            add_path(f, sub.v[i], false, bytes);
            free(sub.v[i]);
        }
        free(sub.v);
        return;
    }
    if (!top && !ends_with(path, ".json") && !ends_with(path, ".ndjson") &&
        !ends_with(path, ".jsonl") && !ends_with(path, ".hl7"))
        return;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = realloc(f->v, f->cap * sizeof *f->v);
    }
    f->v[f->n++] = strdup(path);
    *bytes += (size_t)sb.st_size;
}

/* Synthea's shared resources, which other Bundles refer to, go first. */
static bool goes_first(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return !strncmp(b, "hospitalInformation", 19) || !strncmp(b, "practitionerInformation", 23);
}

static void run_phase(struct imp *im, struct files *f, bool first, unsigned jobs)
{
    pthread_t th[16];
    unsigned started = 0;
    im->closed = false;
    for (unsigned i = 0; i < jobs; i++)
        if (!pthread_create(&th[i], NULL, loader, im))
            started++;
    for (size_t i = 0; i < f->n; i++)
        if (goes_first(f->v[i]) == first)
            read_one(im, f->v[i]);
    pthread_mutex_lock(&im->lock);
    im->closed = true;
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (!started) { /* no threads: load here */
        struct unit *u;
        while ((u = pop(im))) {
            load_unit(im, u);
            unit_free(u);
        }
    }
}

int ehr_cmd_import(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    struct imp im = {.cap = 4};
    unsigned long jobs = 2;
    bool quiet = false;
    struct files f = {0};
    size_t bytes = 0;
    int first_path = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--url"))) {
            im.url = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--token"))) {
            im.token = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--jobs"))) {
            char *end;
            jobs = strtoul(v, &end, 10);
            if (*end || jobs < 1 || jobs > 16) {
                fprintf(stderr, "ehr import: --jobs takes a number from 1 to 16\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ehr import: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            if (!first_path)
                first_path = i;
            add_path(&f, argv[i], true, &bytes);
        }
    }
    if (!first_path) {
        usage(stderr);
        return 2;
    }
    if (im.url && (so.db || so.postgres)) {
        fprintf(stderr, "ehr import: give either --url or a database, not both\n");
        return 2;
    }
    if (im.url && !im.token)
        im.token = getenv("EHR_TOKEN");
    char url[4096];
    if (im.url) {
        /* POST to the FHIR base itself */
        snprintf(url, sizeof url, "%s", im.url);
        size_t n = strlen(url);
        while (n && url[n - 1] == '/')
            url[--n] = '\0';
        im.url = url;
    } else {
        if (!ehr_opts_store_target(&so, "import"))
            return 2;
        ehr_err err = {{0}};
        if (ehr_repo_open(so.target, &im.repo, &err)) {
            fprintf(stderr, "ehr import: %s\n", err.msg);
            return 1;
        }
    }
    im.ctx = (ehr_repo_ctx){.user = "system/import", .client = "cli", .role = "system"};
    pthread_mutex_init(&im.lock, NULL);
    pthread_cond_init(&im.cond, NULL);
    im.cap = 2 * jobs;
    ehr_progress_start(&im.prog, bytes, quiet ? 0 : -1, "import");
    int64_t t0 = ehr_time_now_us();
    run_phase(&im, &f, true, (unsigned)jobs);
    run_phase(&im, &f, false, (unsigned)jobs);
    ehr_progress_done(&im.prog);
    double secs = (double)(ehr_time_now_us() - t0) / 1e6;
    /* CPU time too: on a shared machine resources per CPU-second is the steady figure */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("ehr import: %zu resources from %zu files in %.1f s (%.0f resources/s): %zu created, "
           "%zu updated or already there; %zu errors; %.1f CPU s in this process (%.0f "
           "resources per CPU-second)\n",
           im.n_resources, f.n, secs, secs > 0 ? (double)im.n_resources / secs : 0.0, im.n_created,
           im.n_resources - im.n_created, im.n_errors, cpu,
           cpu > 0 ? (double)im.n_resources / cpu : 0.0);
    for (size_t i = 0; i < f.n; i++)
        free(f.v[i]);
    free(f.v);
    ehr_repo_free(&im.repo);
    pthread_mutex_destroy(&im.lock);
    pthread_cond_destroy(&im.cond);
    return im.n_errors ? 1 : 0;
}
