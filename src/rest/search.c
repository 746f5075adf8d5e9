/* search.c - search by GET or POST _search (FHIR R4 3.1.0.9, search.html). */
#include <stdio.h>
#include <string.h>

#include "rest/bundle.h"
#include "search/search.h"

static bool strict_handling(struct rctx *x)
{
    const char *p = ehr_http_header(x->req, "Prefer");
    return p && strstr(p, "handling=strict");
}

void rest_search(struct rctx *x, const char *type, const char *patient)
{
    ehr_arena *a = x->req->arena;
    /* GET: the query; POST _search: the form body and the query together */
    const struct ehr_search_param *params = (const struct ehr_search_param *)x->req->params;
    size_t n = x->req->n_params;
    if (!strcmp(x->req->method, "POST")) {
        const char *ct = ehr_http_header(x->req, "Content-Type");
        if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
            rest_fail(x, 415, "not-supported", NULL,
                      "POST _search takes Content-Type application/x-www-form-urlencoded");
            return;
        }
        struct ehr_search_param *bp;
        size_t bn;
        if (ehr_search_split_query(x->req->body, a, &bp, &bn)) {
            rest_fail(x, 500, "exception", NULL, "out of memory");
            return;
        }
        struct ehr_search_param *all = ehr_arena_calloc(a, n + bn + 1, sizeof *all);
        if (!all) {
            rest_fail(x, 500, "exception", NULL, "out of memory");
            return;
        }
        if (n) /* no query: params may be NULL */
            memcpy(all, params, n * sizeof *all);
        if (bn)
            memcpy(all + n, bp, bn * sizeof *all);
        params = all;
        n += bn;
    }
    ehr_search s;
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_status st = ehr_search_parse(type, params, n, strict_handling(x), a, &s, &issues);
    if (st) {
        rest_fail_status(x, st, NULL, &issues);
        ehr_search_done(&s);
        ehr_fhir_issues_free(&issues);
        return;
    }
    s.q.compartment_patient = patient;
    size_t total = 0;
    ehr_err err = {{0}};
    struct rest_bundle bb;
    /* total first (a count query), then the page */
    ehr_search tq = s;
    tq.q.count = 0;
    tq.total_none = false;
    if (!s.total_none)
        st = ehr_repo_search(x->rest->repo, &x->who, &tq, NULL, NULL, &total, &err);
    if (st) {
        rest_fail_status(x, st, &err, NULL);
        ehr_search_done(&s);
        ehr_fhir_issues_free(&issues);
        return;
    }
    rest_bundle_open(&bb, x, "searchset", s.total_none ? -1 : (long long)total);
    ehr_buf url = EHR_BUF_INIT;
    if (patient)
        ehr_buf_printf(&url, "%s/Patient/%s/%s?", x->base, patient, type);
    else
        ehr_buf_printf(&url, "%s/%s?", x->base, type);
    if (s.self.len)
        ehr_buf_printf(&url, "%s&", s.self.data);
    size_t base_len = url.len;
    size_t count = s.summary_count ? 0 : s.q.count;
    ehr_buf_printf(&url, "_count=%zu&_offset=%zu", count, s.q.offset);
    rest_bundle_link(&bb, "self", url.data);
    if (count > 0 && (s.total_none || s.q.offset + count < total)) {
        url.len = base_len;
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu", count, s.q.offset + count);
        rest_bundle_link(&bb, "next", url.data);
    }
    if (count > 0 && s.q.offset > 0) {
        url.len = base_len;
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu", count,
                       s.q.offset > count ? s.q.offset - count : 0);
        rest_bundle_link(&bb, "previous", url.data);
    }
    ehr_buf_free(&url);
    rest_bundle_entries(&bb);
    if (count > 0) {
        ehr_search pq = s;
        pq.total_none = true;
        st = ehr_repo_search(x->rest->repo, &x->who, &pq, rest_bundle_row, &bb, NULL, &err);
    }
    if (!st && issues.n)
        rest_bundle_outcome(&bb, &issues);
    if (st)
        rest_fail_status(x, st, &err, NULL);
    else
        rest_bundle_send(&bb);
    rest_bundle_free(&bb);
    ehr_search_done(&s);
    ehr_fhir_issues_free(&issues);
}
