/*
 * everything.c - GET /fhir/Patient/ID/$everything (FHIR R4
 * patient-operation-everything): a searchset of the patient's compartment
 * with _since, _type, _count and _offset, and next/previous links.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "rest/bundle.h"

#define EVERYTHING_DEFAULT_COUNT 50
#define EVERYTHING_MAX_COUNT 1000
#define EVERYTHING_MAX_TYPES 64

static bool parse_size(const char *s, size_t max, size_t *out)
{
    char *end;
    if (!s || !*s)
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || s[0] == '-')
        return false;
    *out = v > max ? max : v;
    return true;
}

void rest_everything(struct rctx *x, const char *id)
{
    ehr_arena *a = x->req->arena;
    ehr_repo_everything_q q = {.patient = id, .count = EVERYTHING_DEFAULT_COUNT};
    const char *v;
    if ((v = ehr_http_param(x->req, "_count")) && !parse_size(v, EVERYTHING_MAX_COUNT, &q.count)) {
        rest_fail(x, 400, "value", "_count", "_count must be a number from 0 to %d",
                  EVERYTHING_MAX_COUNT);
        return;
    }
    if ((v = ehr_http_param(x->req, "_offset")) && !parse_size(v, (size_t)1 << 40, &q.offset)) {
        rest_fail(x, 400, "value", "_offset", "_offset must be a number");
        return;
    }
    const char *since = ehr_http_param(x->req, "_since");
    if (since && !ehr_time_parse(since, &q.since)) {
        rest_fail(x, 400, "value", "_since",
                  "_since must be an instant such as "
                  "2024-01-31T12:00:00Z");
        return;
    }
    const char *types = ehr_http_param(x->req, "_type");
    const char **tv = NULL;
    if (types && *types) {
        char *dup = ehr_arena_strdup(a, types);
        tv = ehr_arena_calloc(a, EVERYTHING_MAX_TYPES, sizeof *tv);
        if (!dup || !tv) {
            rest_fail(x, 500, "exception", NULL, "out of memory");
            return;
        }
        for (char *p = dup; p && *p;) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (*p) {
                if (q.n_types == EVERYTHING_MAX_TYPES) {
                    rest_fail(x, 400, "too-costly", "_type", "at most %d types in _type",
                              EVERYTHING_MAX_TYPES);
                    return;
                }
                tv[q.n_types++] = p;
            }
            p = comma ? comma + 1 : NULL;
        }
        q.types = tv;
    }
    ehr_err err = {{0}};
    size_t total = 0;
    /* the total first, then the page (one snapshot each; ids are stable) */
    struct rest_bundle bb;
    ehr_repo_everything_q cq = q;
    cq.count = 0;
    ehr_status st = ehr_repo_everything(x->rest->repo, &x->who, &cq, NULL, NULL, &total, &err);
    if (st) {
        rest_fail_status(x, st, &err, NULL);
        return;
    }
    rest_bundle_open(&bb, x, "searchset", (long long)total);
    ehr_buf url = EHR_BUF_INIT;
    ehr_buf_printf(&url, "%s/Patient/%s/$everything?", x->base, id);
    if (since)
        ehr_buf_printf(&url, "_since=%s&", since);
    if (q.n_types) {
        ehr_buf_puts(&url, "_type=");
        for (size_t i = 0; i < q.n_types; i++)
            ehr_buf_printf(&url, "%s%s", i ? "," : "", q.types[i]);
        ehr_buf_putc(&url, '&');
    }
    size_t base_len = url.len;
    ehr_buf_printf(&url, "_count=%zu&_offset=%zu", q.count, q.offset);
    rest_bundle_link(&bb, "self", url.data);
    if (q.count && q.offset + q.count < total) {
        url.len = base_len;
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu", q.count, q.offset + q.count);
        rest_bundle_link(&bb, "next", url.data);
    }
    if (q.count && q.offset > 0) {
        url.len = base_len;
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu", q.count,
                       q.offset > q.count ? q.offset - q.count : 0);
        rest_bundle_link(&bb, "previous", url.data);
    }
    ehr_buf_free(&url);
    rest_bundle_entries(&bb);
    if (q.count)
        st = ehr_repo_everything(x->rest->repo, &x->who, &q, rest_bundle_row, &bb, NULL, &err);
    if (st)
        rest_fail_status(x, st, &err, NULL);
    else
        rest_bundle_send(&bb);
    rest_bundle_free(&bb);
}
