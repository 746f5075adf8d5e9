/*
 * cmd_export.c - ehr export: the current resources as NDJSON, one file per
 * type (DIR/Patient.ndjson, ...), the same files as the Bulk Data $export.
 * The stored bytes are written as they are (no parse), streamed from one
 * read snapshot: memory stays flat whatever the size. The server may be
 * running (SQLite WAL: readers don't block writers).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/progress.h"
#include "core/util.h"
#include "repo/repo.h"

#define MAX_TYPES 200

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ehr export [--db PATH | --postgres CONNINFO] [--type T,...] [--since INSTANT]\n"
            "                  --out DIR\n"
            "\n"
            "Writes the current resources as NDJSON, one file per type (DIR/Patient.ndjson),\n"
            "in the format of FHIR Bulk Data; ehr import loads them back.\n"
            "  --type T,...     only these resource types\n"
            "  --since INSTANT  only resources changed at or after it (2024-01-31T00:00:00Z)\n"
            "  --out DIR        the folder to write (created if missing)\n"
            "  --quiet          no progress\n");
}

struct out_file {
    char type[72];
    FILE *f;
    size_t n;
};

struct exp {
    const char *dir;
    struct out_file files[MAX_TYPES];
    size_t n_files;
    ehr_progress prog;
    ehr_status failed;
    char failed_path[4200];
};

static int cmp_type(const void *a, const void *b)
{
    return strcmp(((const struct out_file *)a)->type, ((const struct out_file *)b)->type);
}

static ehr_status row(void *p, const ehr_store_rec *rec)
{
    struct exp *x = p;
    struct out_file *o = NULL;
    for (size_t i = 0; i < x->n_files && !o; i++)
        if (!strcmp(x->files[i].type, rec->type))
            o = &x->files[i];
    if (!o) {
        if (x->n_files == MAX_TYPES)
            return EHR_ELIMIT;
        o = &x->files[x->n_files++];
        snprintf(o->type, sizeof o->type, "%s", rec->type);
        snprintf(x->failed_path, sizeof x->failed_path, "%s/%s.ndjson", x->dir, rec->type);
        o->f = fopen(x->failed_path, "w");
        if (!o->f)
            return EHR_EIO;
    }
    if (fwrite(rec->content, 1, rec->content_len, o->f) != rec->content_len ||
        fputc('\n', o->f) == EOF) {
        snprintf(x->failed_path, sizeof x->failed_path, "%s/%s.ndjson", x->dir, rec->type);
        return EHR_EIO;
    }
    o->n++;
    ehr_progress_update(&x->prog, 1, 1);
    return EHR_OK;
}

int ehr_cmd_export(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    const char *types = NULL, *since = NULL, *out = NULL;
    bool quiet = false;
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
        } else if ((v = ehr_opts_value(argc, argv, &i, "--type"))) {
            types = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--since"))) {
            since = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--out"))) {
            out = v;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else {
            fprintf(stderr, "ehr export: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!out) {
        usage(stderr);
        return 2;
    }
    ehr_store_scan_q q = {0};
    if (since && !ehr_time_parse(since, &q.since)) {
        fprintf(stderr,
                "ehr export: --since '%s' is not an instant such as "
                "2024-01-31T00:00:00Z\n",
                since);
        return 2;
    }
    const char *tv[MAX_TYPES];
    char *tdup = types ? strdup(types) : NULL;
    for (char *p = tdup; p && *p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p && q.n_types < MAX_TYPES)
            tv[q.n_types++] = p;
        p = comma ? comma + 1 : NULL;
    }
    q.types = tv;
    if (mkdir(out, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "ehr export: cannot create %s: %s\n", out, strerror(errno));
        free(tdup);
        return 1;
    }
    if (!ehr_opts_store_target(&so, "export")) {
        free(tdup);
        return 2;
    }
    ehr_repo *repo = NULL;
    ehr_err err = {{0}};
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr export: %s\n", err.msg);
        free(tdup);
        return 1;
    }
    struct exp *x = calloc(1, sizeof *x);
    if (!x) {
        ehr_repo_free(&repo);
        free(tdup);
        return 1;
    }
    x->dir = out;
    /* the expected total, for the progress bar */
    size_t total = 0;
    ehr_store_conn *c;
    if (!quiet && !ehr_repo_conn(repo, &c, &err)) {
        for (size_t i = 0; i < (q.n_types ? q.n_types : 1); i++) {
            ehr_store_query cq = {.type = q.n_types ? q.types[i] : NULL};
            size_t n = 0;
            if (!EHR_STORE_CALL(c, search, &cq, NULL, NULL, &n, NULL))
                total += n;
        }
    }
    ehr_progress_start(&x->prog, total, quiet ? 0 : -1, "export");
    ehr_repo_ctx ctx = {.user = "system/export", .client = "cli", .role = "system"};
    int64_t t0 = ehr_time_now_us();
    ehr_status st = ehr_repo_export(repo, &ctx, &q, row, x, NULL, &err);
    ehr_progress_done(&x->prog);
    double secs = (double)(ehr_time_now_us() - t0) / 1e6;
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < x->n_files; i++) {
        n += x->files[i].n;
        if (fclose(x->files[i].f) != 0 && !st) {
            st = EHR_EIO;
            snprintf(x->failed_path, sizeof x->failed_path, "%s/%s.ndjson", out, x->files[i].type);
        }
    }
    if (st == EHR_EIO || st == EHR_ELIMIT) {
        fprintf(stderr, "ehr export: writing %s failed: %s\n", x->failed_path, strerror(errno));
        rc = 1;
    } else if (st) {
        fprintf(stderr, "ehr export: %s\n", err.msg[0] ? err.msg : ehr_status_str(st));
        rc = 1;
    } else {
        qsort(x->files, x->n_files, sizeof x->files[0], cmp_type);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        printf("ehr export: %zu resources of %zu types to %s in %.1f s (%.0f resources/s); "
               "%.2f CPU s (%.0f resources per CPU-second)\n",
               n, x->n_files, out, secs, secs > 0 ? (double)n / secs : 0.0, cpu,
               cpu > 0 ? (double)n / cpu : 0.0);
        for (size_t i = 0; i < x->n_files; i++)
            printf("  %-28s %zu\n", x->files[i].type, x->files[i].n);
    }
    free(x);
    free(tdup);
    ehr_repo_free(&repo);
    return rc;
}
