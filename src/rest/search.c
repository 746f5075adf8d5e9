/*
 * search.c - search by GET or POST _search at the type level, the system
 * level (GET /fhir?_type=...) and in a Patient's compartment
 * (GET /fhir/Patient/ID/Type?...) (FHIR R4 3.1.0.9, search.html).
 *
 * Paging: in the default order, next/previous links carry a cursor (the
 * position of the last/first entry: _after/_before), so walking them
 * returns every match once even while resources are created or deleted;
 * with _sort, links carry _offset.
 */
#include <stdio.h>
#include <string.h>

#include "rest/bundle.h"
#include "search/search.h"

static bool strict_handling(struct rctx *x)
{
    const char *p = ehr_http_header(x->req, "Prefer");
    return p && strstr(p, "handling=strict");
}

/* The page's rows: keeps the first and last position of the matches. */
struct page {
    struct rest_bundle *bb;
    int64_t first, last;
    size_t n;
};

static ehr_status page_row(void *ctx, const ehr_store_rec *rec)
{
    struct page *pg = ctx;
    if (!rec->included) {
        if (!pg->n++)
            pg->first = rec->key;
        pg->last = rec->key;
    }
    return rest_bundle_row(pg->bb, rec);
}

void rest_search_in(struct rctx *x, const char *type, const char *patient)
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
        if (ehr_search_split_query(x->req->body ? x->req->body : "", a, &bp, &bn)) {
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
    /* _summary=count and _total=accurate count everything */
    bool accurate = s.total_accurate || s.summary_count;
    tq.q.total_limit = accurate ? 0 : EHR_SEARCH_TOTAL_LIMIT;
    if (!s.total_none)
        st = ehr_repo_search(x->rest->repo, &x->who, &tq, NULL, NULL, &total, &err);
    if (st) {
        rest_fail_status(x, st, &err, NULL);
        ehr_search_done(&s);
        ehr_fhir_issues_free(&issues);
        return;
    }
    size_t count = s.summary_count ? 0 : s.q.count;
    /* the page goes into its own buffer first: the links depend on it */
    struct rest_bundle eb;
    rest_bundle_open(&eb, x, "searchset", -1);
    size_t head = eb.b.len;
    rest_bundle_entries(&eb);
    eb.subset = &s;
    struct page pg = {.bb = &eb};
    bool more = false;
    if (count > 0) {
        ehr_search pq = s;
        pq.total_none = true;
        pq.q.more = &more;
        st = ehr_repo_search(x->rest->repo, &x->who, &pq, page_row, &pg, NULL, &err);
    }
    if (st) {
        rest_fail_status(x, st, &err, NULL);
        rest_bundle_free(&eb);
        ehr_search_done(&s);
        ehr_fhir_issues_free(&issues);
        return;
    }
    /* a count that reached the limit is only a lower bound: left out */
    bool has_total = !s.total_none && (accurate || total < EHR_SEARCH_TOTAL_LIMIT);
    rest_bundle_open(&bb, x, "searchset", has_total ? (long long)total : -1);
    ehr_buf url = EHR_BUF_INIT;
    if (patient)
        ehr_buf_printf(&url, "%s/Patient/%s/%s?", x->base, patient, type);
    else if (type)
        ehr_buf_printf(&url, "%s/%s?", x->base, type);
    else
        ehr_buf_printf(&url, "%s?", x->base);
    if (s.self.len)
        ehr_buf_printf(&url, "%s&", s.self.data);
    size_t base_len = url.len;
    bool cursor = s.q.n_sort == 0 && s.q.offset == 0;
    if (cursor && s.q.after)
        ehr_buf_printf(&url, "_count=%zu&_after=%lld", count, (long long)s.q.after);
    else if (cursor && s.q.before)
        ehr_buf_printf(&url, "_count=%zu&_before=%lld", count, (long long)s.q.before);
    else
        ehr_buf_printf(&url, "_count=%zu&_offset=%zu", count, s.q.offset);
    rest_bundle_link(&bb, "self", url.data);
    if (count > 0 && more) {
        url.len = base_len;
        if (cursor)
            ehr_buf_printf(&url, "_count=%zu&_after=%lld", count, (long long)pg.last);
        else
            ehr_buf_printf(&url, "_count=%zu&_offset=%zu", count, s.q.offset + count);
        rest_bundle_link(&bb, "next", url.data);
    }
    if (count > 0 && (cursor ? (s.q.after || s.q.before) && pg.n : s.q.offset > 0)) {
        url.len = base_len;
        if (cursor)
            ehr_buf_printf(&url, "_count=%zu&_before=%lld", count, (long long)pg.first);
        else
            ehr_buf_printf(&url, "_count=%zu&_offset=%zu", count,
                           s.q.offset > count ? s.q.offset - count : 0);
        rest_bundle_link(&bb, "previous", url.data);
    }
    ehr_buf_free(&url);
    rest_bundle_entries(&bb);
    /* the entries as written into eb (after its head and "]") */
    size_t from = head + 1;
    if (eb.n_entries) {
        ehr_buf_append(&bb.b, eb.b.data + from, eb.b.len - from);
        bb.n_entries = eb.n_entries;
    }
    if (issues.n)
        rest_bundle_outcome(&bb, &issues);
    rest_bundle_send(&bb);
    rest_bundle_free(&bb);
    rest_bundle_free(&eb);
    ehr_search_done(&s);
    ehr_fhir_issues_free(&issues);
}

void rest_search(struct rctx *x, const char *type)
{
    rest_search_in(x, type, NULL);
}
