/* history.c - instance, type and system history (FHIR R4 3.1.0.10). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "rest/bundle.h"
#include "search/search.h"

#define HISTORY_DEFAULT_COUNT 50

static bool parse_count(const char *s, size_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0)
        return false;
    *out = v > EHR_SEARCH_MAX_COUNT ? EHR_SEARCH_MAX_COUNT : (size_t)v;
    return true;
}

void rest_history(struct rctx *x, const char *type, const char *id)
{
    ehr_store_history_q q = {.type = type, .id = id, .count = HISTORY_DEFAULT_COUNT};
    const char *since = ehr_http_param(x->req, "_since");
    const char *count = ehr_http_param(x->req, "_count");
    const char *offset = ehr_http_param(x->req, "_offset");
    const char *snapshot = ehr_http_param(x->req, "_snapshot");
    if (since && !ehr_time_parse(since, &q.since)) {
        rest_fail(x, 400, "value", "_since",
                  "_since '%.60s' is not an instant such as 2024-01-31T12:00:00Z", since);
        return;
    }
    if (count && !parse_count(count, &q.count)) {
        rest_fail(x, 400, "value", "_count", "_count must be a whole number from 0 to %d",
                  EHR_SEARCH_MAX_COUNT);
        return;
    }
    if (offset && !parse_count(offset, &q.offset)) {
        rest_fail(x, 400, "value", "_offset", "_offset must be a whole number");
        return;
    }
    /* Pages after the first keep to the versions that existed when the first
       was made, so new writes don't shift them. */
    if (snapshot) {
        char *end;
        q.at_or_before = strtoll(snapshot, &end, 10);
        if (*end || q.at_or_before <= 0) {
            rest_fail(x, 400, "value", "_snapshot", "_snapshot is not one this server made");
            return;
        }
    } else {
        q.at_or_before = ehr_time_now_us();
    }
    if (id) {
        /* an unknown resource has no history: 404 */
        ehr_repo_out o = {0};
        ehr_status st = ehr_repo_read(x->rest->repo, &x->who, type, id, 0, &o, NULL);
        ehr_repo_out_free(&o);
        if (st == EHR_ENOTFOUND) {
            rest_fail(x, 404, "not-found", NULL, "%s/%s is not known", type, id);
            return;
        }
    }
    struct rest_bundle bb;
    size_t total = 0;
    ehr_err err = {{0}};
    /* the total first, to write it in the head of the Bundle */
    ehr_store_history_q tq = q;
    tq.count = 0;
    ehr_status st = ehr_repo_history(x->rest->repo, &x->who, &tq, NULL, NULL, &total, &err);
    if (st) {
        rest_fail_status(x, st, &err, NULL);
        return;
    }
    rest_bundle_open(&bb, x, "history", (long long)total);
    ehr_buf url = EHR_BUF_INIT;
    ehr_buf_puts(&url, x->base);
    if (type)
        ehr_buf_printf(&url, "/%s", type);
    if (id)
        ehr_buf_printf(&url, "/%s", id);
    ehr_buf_puts(&url, "/_history?");
    if (since)
        ehr_buf_printf(&url, "_since=%s&", since);
    size_t base_len = url.len;
    ehr_buf_printf(&url, "_count=%zu&_offset=%zu&_snapshot=%lld", q.count, q.offset,
                   (long long)q.at_or_before);
    rest_bundle_link(&bb, "self", url.data);
    if (q.count > 0 && q.offset + q.count < total) {
        url.len = base_len;
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu&_snapshot=%lld", q.count, q.offset + q.count,
                       (long long)q.at_or_before);
        rest_bundle_link(&bb, "next", url.data);
    }
    if (q.offset > 0 && q.count > 0) {
        url.len = base_len;
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu&_snapshot=%lld", q.count,
                       q.offset > q.count ? q.offset - q.count : 0, (long long)q.at_or_before);
        rest_bundle_link(&bb, "previous", url.data);
    }
    ehr_buf_free(&url);
    rest_bundle_entries(&bb);
    if (q.count > 0)
        st = ehr_repo_history(x->rest->repo, &x->who, &q, rest_bundle_row, &bb, NULL, &err);
    if (st)
        rest_fail_status(x, st, &err, NULL);
    else
        rest_bundle_send(&bb);
    rest_bundle_free(&bb);
}
