/*
 * cmd_reindex.c - ehr reindex [--db PATH]: rebuild the search index rows
 * and patient compartments of every current resource from its stored
 * JSON, with the search parameters of this build (after an upgrade of the
 * definitions, or of a database made before schema version 3). Works in
 * batches of 500 resources, one write transaction each, in position
 * order; safe to interrupt and run again. Progress on stderr when it is a
 * terminal. One audit record tells who ran it and how many were done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/json.h"
#include "core/util.h"
#include "repo/repo.h"
#include "search/search.h"
#include "store/store.h"

#define BATCH 500

struct item {
    char *type, *id, *content;
    size_t len;
};

struct batch {
    struct item it[BATCH];
    size_t n;
    int64_t last;
};

static ehr_status collect(void *p, const ehr_store_rec *rec)
{
    struct batch *b = p;
    if (b->n == BATCH)
        return EHR_OK;
    struct item *it = &b->it[b->n];
    it->type = strdup(rec->type);
    it->id = strdup(rec->id);
    it->content = malloc(rec->content_len + 1);
    if (!it->type || !it->id || !it->content)
        return EHR_ENOMEM;
    memcpy(it->content, rec->content, rec->content_len);
    it->content[rec->content_len] = '\0';
    it->len = rec->content_len;
    b->n++;
    b->last = rec->key;
    return EHR_OK;
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->it[i].type);
        free(b->it[i].id);
        free(b->it[i].content);
    }
    b->n = 0;
}

static void progress(size_t done, size_t total)
{
    int width = 40, fill = total ? (int)(done * (size_t)width / total) : width;
    fprintf(stderr, "\rreindex [%.*s%*s] %zu/%zu", fill, "########################################",
            width - fill, "", done, total);
    fflush(stderr);
}

int ehr_cmd_reindex(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    for (int i = 1; i < argc; i++) {
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ehr reindex [--db PATH | --postgres CONNINFO]\n\n"
                   "Rebuilds the search index of every current resource (after an upgrade).\n");
            return 0;
        }
        fprintf(stderr, "ehr reindex: unknown option '%s'\n", argv[i]);
        return 2;
    }
    if (!ehr_opts_store_target(&so, "reindex"))
        return 2;
    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr reindex: %s\n", err.msg);
        return 1;
    }
    ehr_store_conn *c = NULL;
    if (ehr_repo_conn(repo, &c, &err)) {
        fprintf(stderr, "ehr reindex: %s\n", err.msg);
        ehr_repo_free(&repo);
        return 1;
    }
    if (!c->store->ops->reindex) {
        fprintf(stderr, "ehr reindex: the %s backend cannot reindex yet\n", c->store->ops->name);
        ehr_repo_free(&repo);
        return 1;
    }
    bool tty = isatty(2);
    size_t total = 0, done = 0, failed = 0;
    ehr_store_query tq = {.count = 0};
    ehr_status st = EHR_STORE_CALL(c, begin, false, &err);
    if (!st) {
        st = EHR_STORE_CALL(c, search, &tq, NULL, NULL, &total, &err);
        EHR_STORE_CALL(c, rollback);
    }
    struct batch *b = calloc(1, sizeof *b);
    int64_t after = 0;
    while (!st && b) {
        ehr_store_query q = {.count = BATCH, .after = after};
        if ((st = EHR_STORE_CALL(c, begin, false, &err)))
            break;
        st = EHR_STORE_CALL(c, search, &q, collect, b, NULL, &err);
        EHR_STORE_CALL(c, rollback);
        if (st || b->n == 0)
            break;
        after = b->last;
        if ((st = EHR_STORE_CALL(c, begin, true, &err)))
            break;
        for (size_t i = 0; i < b->n && !st; i++) {
            ehr_err jerr = {{0}};
            json_t *res = ehr_json_parse(b->it[i].content, b->it[i].len, &jerr);
            ehr_arena *a = ehr_arena_new();
            ehr_store_index idx;
            if (!res || !a || ehr_search_extract(b->it[i].type, b->it[i].id, res, a, &idx)) {
                failed++;
            } else {
                st = EHR_STORE_CALL(c, reindex, b->it[i].type, b->it[i].id, &idx, &err);
            }
            json_decref(res);
            ehr_arena_free(&a);
        }
        if (!st)
            st = EHR_STORE_CALL(c, commit, &err);
        else
            EHR_STORE_CALL(c, rollback);
        done += b->n;
        batch_free(b);
        if (tty)
            progress(done, total);
    }
    if (tty)
        fputc('\n', stderr);
    free(b);
    if (!st) {
        json_t *ev = json_pack("{s:s,s:s}", "action", "reindex", "outcome", "ok");
        if (ev) {
            json_object_set_new(ev, "count", ehr_json_integer((long long)done));
            json_object_set_new(ev, "failed", ehr_json_integer((long long)failed));
        }
        ehr_repo_ctx ctx = {.user = "cli", .client = "cli", .role = "admin"};
        if (ev) {
            ehr_repo_audit(repo, &ctx, ev, &err);
            json_decref(ev);
        }
        printf("reindexed %zu resources%s\n", done, failed ? " (some could not be read)" : "");
    } else {
        fprintf(stderr, "ehr reindex: %s\n", err.msg);
    }
    ehr_repo_free(&repo);
    return st ? 1 : 0;
}
