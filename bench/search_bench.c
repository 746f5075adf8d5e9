/*
 * search_bench.c - FHIR search at scale on SQLite: a ladder of databases
 * built by cloning the Synthea patients of ../shared/data/synthea/r4-2019
 * under new ids (every reference rewritten, family names suffixed per
 * clone), each resource indexed with every R4 search parameter as a write
 * does it (ehr_search_extract + store put, 1000 resources a transaction).
 * At each rung it measures, in process, the parse of the query string and
 * the store's search (total and first page, as GET does), p50 and p99 over
 * many runs with varying patients and codes, against the baseline of a
 * bare read by id (the store's current-version lookup) in the same run.
 *
 * Usage: search_bench --db PATH [--ladder 10000,100000,1000000] [--iters N]
 *        [--data DIR]
 * Prints markdown rows; bench/search.sh appends them to bench/RESULTS.md.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "search/search.h"
#include "store/store.h"

struct tmpl {
    json_t *bundle; /* entries with references made relative, ids are uuids */
};

static json_t **templates;
static size_t n_templates;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this thread: steadier than wall time on a loaded machine. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static double write_cpu_ms;

static void load_templates(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "search_bench: cannot open %s\n", dir);
        exit(2);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") || !strchr(de->d_name, '_') ||
            !strncmp(de->d_name, "INDEX", 5))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        ehr_buf b = EHR_BUF_INIT;
        char chunk[65536];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
            ehr_buf_append(&b, chunk, k);
        fclose(f);
        ehr_err err;
        json_t *j = ehr_json_parse(b.data, b.len, &err);
        ehr_buf_free(&b);
        if (!json_is_object(j) || !json_is_array(json_object_get(j, "entry"))) {
            json_decref(j);
            continue;
        }
        templates = realloc(templates, (n_templates + 1) * sizeof *templates);
        templates[n_templates++] = j;
    }
    closedir(d);
}

/* Rewrite references "urn:uuid:X" to "Type/X-k" (map: fullUrl -> type). */
static void rewrite(json_t *j, const json_t *map, int k)
{
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            rewrite(json_array_get(j, i), map, k);
        return;
    }
    if (!json_is_object(j))
        return;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        const char *s = ehr_json_string(v);
        if (!strcmp(key, "reference") && s && !strncmp(s, "urn:uuid:", 9)) {
            const char *t = ehr_json_string(json_object_get(map, s));
            if (t) {
                char buf[256];
                snprintf(buf, sizeof buf, "%s/%s-%d", t, s + 9, k);
                json_object_set_new(j, key, json_string(buf));
            }
        } else {
            rewrite(v, map, k);
        }
    }
}

static size_t n_written;
static double write_ms;
static char (*patients)[80];
static size_t n_patients;
static char (*families)[80];

/* Write clone k of template t; returns resources written. */
static size_t write_clone(ehr_store_conn *c, const json_t *t, int k, int64_t *clock)
{
    const json_t *entries = json_object_get(t, "entry");
    json_t *map = json_object();
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *e = json_array_get(entries, i);
        const char *fu = ehr_json_get_string(e, "fullUrl");
        const char *rt = ehr_json_get_string(json_object_get(e, "resource"), "resourceType");
        if (fu && rt)
            json_object_set_new(map, fu, json_string(rt));
    }
    size_t n = 0;
    ehr_err err;
    double t0 = now_ms(), c0 = cpu_ms();
    EHR_STORE_CALL(c, begin, true, &err);
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *e = json_array_get(entries, i);
        const char *fu = ehr_json_get_string(e, "fullUrl");
        json_t *r = json_deep_copy(json_object_get(e, "resource"));
        const char *rt = ehr_json_get_string(r, "resourceType");
        if (!fu || !rt || strncmp(fu, "urn:uuid:", 9)) {
            json_decref(r);
            continue;
        }
        char id[80];
        snprintf(id, sizeof id, "%s-%d", fu + 9, k);
        json_object_set_new(r, "id", json_string(id));
        rewrite(r, map, k);
        if (!strcmp(rt, "Patient")) {
            json_t *nm = json_array_get(json_object_get(r, "name"), 0);
            const char *fam = ehr_json_get_string(nm, "family");
            char f2[80];
            snprintf(f2, sizeof f2, "%s%c%c", fam ? fam : "X", 'a' + k % 26, 'a' + (k / 26) % 26);
            json_object_set_new(nm, "family", json_string(f2));
            patients = realloc(patients, (n_patients + 1) * sizeof *patients);
            families = realloc(families, (n_patients + 1) * sizeof *families);
            snprintf(patients[n_patients], 80, "%s", id);
            snprintf(families[n_patients], 80, "%s", f2);
            n_patients++;
        }
        ehr_buf body = EHR_BUF_INIT;
        ehr_json_dump(r, &body, EHR_JSON_COMPACT);
        ehr_arena *a = ehr_arena_new();
        ehr_store_index idx;
        if (ehr_search_extract(rt, id, r, a, &idx) == EHR_OK) {
            ehr_store_rec rec = {.type = rt,
                                 .id = id,
                                 .version = 1,
                                 .last_updated = ++*clock,
                                 .method = "PUT",
                                 .content = body.data,
                                 .content_len = body.len};
            if (EHR_STORE_CALL(c, put, &rec, &idx, &err) == EHR_OK)
                n++;
        }
        ehr_arena_free(&a);
        ehr_buf_free(&body);
        json_decref(r);
    }
    EHR_STORE_CALL(c, commit, &err);
    write_ms += now_ms() - t0;
    write_cpu_ms += cpu_ms() - c0;
    json_decref(map);
    return n;
}

/* --reuse: the patients of an existing ladder database. */
static ehr_status patient_cb(void *ctx, const ehr_store_rec *rec)
{
    ehr_err err;
    json_t *r = ehr_json_parse(rec->content, rec->content_len, &err);
    const char *fam =
        ehr_json_get_string(json_array_get(json_object_get(r, "name"), 0), "family");
    if (fam) {
        patients = realloc(patients, (n_patients + 1) * sizeof *patients);
        families = realloc(families, (n_patients + 1) * sizeof *families);
        snprintf(patients[n_patients], 80, "%s", rec->id);
        snprintf(families[n_patients], 80, "%s", fam);
        n_patients++;
    }
    json_decref(r);
    return EHR_OK;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static ehr_status count_cb(void *ctx, const ehr_store_rec *rec)
{
    (*(size_t *)ctx)++;
    return EHR_OK;
}

/* One query: parse + search (total + first page) in a read transaction. */
static double run_query(ehr_store_conn *c, const char *type, const char *qs, size_t *rows,
                        size_t *total)
{
    double t0 = now_ms();
    ehr_arena *a = ehr_arena_new();
    struct ehr_search_param *ps;
    size_t n;
    ehr_search s;
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_err err;
    ehr_search_split_query(qs, a, &ps, &n);
    if (ehr_search_parse(type, ps, n, true, a, &s, &issues)) {
        fprintf(stderr, "search_bench: %s?%s does not parse\n", type, qs);
        exit(1);
    }
    s.q.total_limit = EHR_SEARCH_TOTAL_LIMIT; /* as GET does unless _total=accurate */
    EHR_STORE_CALL(c, begin, false, &err);
    if (EHR_STORE_CALL(c, search, &s.q, count_cb, rows, total, &err)) {
        fprintf(stderr, "search_bench: %s?%s: %s\n", type, qs, err.msg);
        exit(1);
    }
    EHR_STORE_CALL(c, rollback);
    ehr_search_done(&s);
    ehr_fhir_issues_free(&issues);
    ehr_arena_free(&a);
    return now_ms() - t0;
}

static const char *const codes[] = {"8302-2", "29463-7", "39156-5", "8867-4",  "72514-3",
                                    "2339-0", "6299-2",  "38483-4", "49765-1", "8480-6"};

static void measure(ehr_store_conn *c, size_t scale, int iters, const char *name, const char *type,
                    int kind)
{
    double *ms = calloc((size_t)iters, sizeof *ms), *cpu = calloc((size_t)iters, sizeof *cpu);
    size_t rows = 0, total = 0;
    int warm = iters / 10;
    for (int i = -warm; i < iters; i++) {
        double c0 = cpu_ms();
        size_t p = (size_t)rand() % n_patients;
        const char *code = codes[rand() % 10];
        char qs[1024];
        switch (kind) {
        case 0:
            snprintf(qs, sizeof qs, "patient=%s&code=http://loinc.org|%s", patients[p], code);
            break;
        case 1:
            snprintf(qs, sizeof qs, "name=%s&birthdate=ge1900", families[p]);
            break;
        case 2:
            snprintf(qs, sizeof qs, "code=http://loinc.org|%s&date=ge2015-01-01&_count=50", code);
            break;
        case 3:
            snprintf(qs, sizeof qs, "subject:Patient.name=%s&code=http://loinc.org|%s", families[p],
                     code);
            break;
        case 4:
            snprintf(qs, sizeof qs, "name=%s&_has:Observation:patient:code=http://loinc.org|%s",
                     families[p], code);
            break;
        case 5:
            snprintf(qs, sizeof qs,
                     "patient=%s&code=http://loinc.org|%s&_include=Observation:patient",
                     patients[p], code);
            break;
        case 6:
            snprintf(qs, sizeof qs, "patient=%s&_sort=-date&_count=50", patients[p]);
            break;
        default: { /* baseline: a bare read by id */
            double t0 = now_ms();
            ehr_store_rec rec;
            ehr_buf content = EHR_BUF_INIT;
            ehr_err err;
            EHR_STORE_CALL(c, begin, false, &err);
            EHR_STORE_CALL(c, current, "Patient", patients[p], &rec, &content, &err);
            EHR_STORE_CALL(c, rollback);
            ehr_buf_free(&content);
            if (i >= 0) {
                ms[i] = now_ms() - t0;
                cpu[i] = cpu_ms() - c0;
            }
            rows++;
            continue;
        }
        }
        size_t r = 0, t = 0;
        double w = run_query(c, type, qs, &r, &t);
        if (i < 0)
            continue;
        ms[i] = w;
        cpu[i] = cpu_ms() - c0;
        rows += r;
        total += t;
    }
    qsort(ms, (size_t)iters, sizeof *ms, cmp_d);
    qsort(cpu, (size_t)iters, sizeof *cpu, cmp_d);
    int p99 = (int)floor(iters * 0.99);
    printf("| %zu | %s | %.3f | %.3f | %.3f | %.3f | %.1f |\n", scale, name, ms[iters / 2], ms[p99],
           cpu[iters / 2], cpu[p99], (double)total / iters);
    fflush(stdout);
    free(ms);
    free(cpu);
}

int main(int argc, char **argv)
{
    const char *db = NULL, *data = "../shared/data/synthea/r4-2019";
    char ladder_s[256] = "10000,100000,1000000";
    int iters = 200;
    bool reuse = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strcmp(argv[i], "--ladder") && i + 1 < argc)
            snprintf(ladder_s, sizeof ladder_s, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--reuse")) /* measure an existing ladder database */
            reuse = true;
        else if (!strcmp(argv[i], "--query") && i + 2 < argc) { /* one query on an existing db */
            ehr_store *st = NULL;
            ehr_store_conn *c = NULL;
            ehr_err err;
            if (!db || ehr_store_open(db, &st, &err) || ehr_store_connect(st, &c, &err))
                return 1;
            size_t r = 0, t = 0;
            double ms = run_query(c, argv[i + 1], argv[i + 2], &r, &t);
            printf("%.3f ms, %zu rows, total %zu\n", ms, r, t);
            return 0;
        }
    }
    if (!db) {
        fprintf(stderr, "usage: search_bench --db PATH [--ladder N,N,...] [--iters N]\n");
        return 2;
    }
    if (!reuse)
        load_templates(data);
    if (!n_templates && !reuse) {
        fprintf(stderr, "search_bench: no Synthea bundles in %s\n", data);
        return 2;
    }
    if (!reuse)
        remove(db);
    ehr_store *st = NULL;
    ehr_store_conn *c = NULL;
    ehr_err err;
    if (ehr_store_open(db, &st, &err) || ehr_store_connect(st, &c, &err)) {
        fprintf(stderr, "search_bench: %s\n", err.msg);
        return 1;
    }
    EHR_STORE_CALL(c, set_sync, false, &err);
    srand(42);
    int64_t clock = 1700000000000000LL;
    int k = 0;
    size_t t = 0;
    printf("| resources | query | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | mean total |\n"
           "|---:|---|---:|---:|---:|---:|---:|\n");
    if (reuse) {
        ehr_store_query pq = {.type = "Patient", .count = 1000000};
        size_t total = 0;
        ehr_store_query all = {.count = 0};
        EHR_STORE_CALL(c, begin, false, &err);
        EHR_STORE_CALL(c, search, &pq, patient_cb, NULL, NULL, &err);
        EHR_STORE_CALL(c, search, &all, NULL, NULL, &total, &err);
        EHR_STORE_CALL(c, rollback);
        if (!n_patients) {
            fprintf(stderr, "search_bench: no patients in %s\n", db);
            return 1;
        }
        n_written = total;
        snprintf(ladder_s, sizeof ladder_s, "%zu", total);
    }
    for (char *tok = strtok(ladder_s, ","); tok; tok = strtok(NULL, ",")) {
        size_t target = (size_t)atol(tok);
        while (!reuse && n_written < target) {
            n_written += write_clone(c, templates[t], k, &clock);
            if (++t == n_templates) {
                t = 0;
                k++;
            }
        }
        EHR_STORE_CALL(c, flush, &err);
        fprintf(stderr, "%zu resources, %zu patients\n", n_written, n_patients);
        if (!reuse)
            printf("| %zu | writes, all parameters indexed (resources/s: wall, CPU) | %.0f/s | "
                   "| %.0f/s | | |\n",
                   n_written, n_written / (write_ms / 1000), n_written / (write_cpu_ms / 1000));
        measure(c, n_written, iters, "baseline: read Patient by id", NULL, 99);
        measure(c, n_written, iters, "Observation?patient=X&code=Y", "Observation", 0);
        measure(c, n_written, iters, "Patient?name=F&birthdate=ge1900", "Patient", 1);
        measure(c, n_written, iters, "Observation?code=Y&date=ge2015-01-01&_count=50",
                "Observation", 2);
        measure(c, n_written, iters, "Observation?subject:Patient.name=F&code=Y (chain)",
                "Observation", 3);
        measure(c, n_written, iters, "Patient?name=F&_has:Observation:patient:code=Y", "Patient",
                4);
        measure(c, n_written, iters, "Observation?patient=X&code=Y&_include=Observation:patient",
                "Observation", 5);
        measure(c, n_written, iters, "Observation?patient=X&_sort=-date&_count=50", "Observation",
                6);
    }
    ehr_store_disconnect(&c);
    ehr_store_close(&st);
    return 0;
}
