/*
 * postgres_search.c - ehr_store_query (store.h) rendered as PostgreSQL SQL
 * with bound parameters: the search of the PostgreSQL backend, answering
 * as sqlite_search.c does.
 *
 * Every clause is an EXISTS probe from `current c` into the index table of
 * its kind; PostgreSQL turns them into semi-joins and picks the selective
 * one to drive the plan, using the (type, param, value...) btrees, the
 * (key, param) btrees for probes, the "C" collation for prefixes (LIKE
 * 'abc%'), and the trigram index for :contains when pg_trgm is there.
 * Chains and _has are sub-selects over current resources of the target
 * type, under the same access limits as the outer query. Default order is
 * the position (key), so cursor paging (after/before) is stable while
 * writes go on; _sort orders by each resource's smallest (ascending) or
 * largest (descending) value of the parameter, resources without one last.
 *
 * Extending: a new kind of condition is a case in value_sql; a new sort
 * column an entry in sort_col.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

/* "$n::type" for a new parameter (strings live in the query's arena). */
static const char *P(struct pg_q *q, int n, const char *type)
{
    const char *s = q->a ? ehr_arena_printf(q->a, "$%d::%s", n, type) : NULL;
    if (!s) {
        q->oom = true;
        return "NULL";
    }
    return s;
}

static const char *T(struct pg_q *q, const char *v)
{
    return P(q, pgq_text(q, v), "text");
}

static const char *I(struct pg_q *q, int64_t v)
{
    return P(q, pgq_int(q, v), "bigint");
}

static const char *R(struct pg_q *q, double v)
{
    return P(q, pgq_real(q, v), "float8");
}

/* A LIKE pattern matching s literally: s% (prefix) or %s% (contains). */
static const char *like(struct pg_q *q, const char *s, bool contains)
{
    ehr_buf b = EHR_BUF_INIT;
    if (contains)
        ehr_buf_putc(&b, '%');
    for (; s && *s; s++) {
        if (*s == '%' || *s == '_' || *s == '\\')
            ehr_buf_putc(&b, '\\');
        ehr_buf_putc(&b, *s);
    }
    ehr_buf_putc(&b, '%');
    const char *out = T(q, b.data ? b.data : "%");
    if (!b.data)
        q->oom = true;
    ehr_buf_free(&b);
    return out;
}

/*
 * The words of a full-text condition (search.c writes them for SQLite's
 * FTS5 as "w1"* "w2"*) as a tsquery: 'w1':* & 'w2':*. The words are
 * letters and digits, normalised; anything else is dropped.
 */
static const char *tsquery(struct pg_q *q, const char *s)
{
    ehr_buf b = EHR_BUF_INIT;
    size_t words = 0;
    while (s && *s) {
        while (*s && *s != '"')
            s++;
        if (!*s)
            break;
        const char *w = ++s;
        while (*s && *s != '"')
            s++;
        ehr_buf_printf(&b, "%s'", words++ ? " & " : "");
        for (const char *c = w; c < s; c++)
            if (*c != '\'' && *c != '\\')
                ehr_buf_putc(&b, *c);
        ehr_buf_puts(&b, "':*");
        if (*s)
            s++;
    }
    const char *out = q->a && b.data ? ehr_arena_strdup(q->a, b.data) : NULL;
    ehr_buf_free(&b);
    if (!out)
        q->oom = words > 0;
    return out ? out : "''";
}

struct ctx {
    struct pg_q *q;
    int alias; /* next correlation alias number */
};

static void access(struct ctx *x, ehr_buf *w, const ehr_store_access *ac, const char *a)
{
    char tc[32], kc[32];
    snprintf(tc, sizeof tc, "%s.type", a);
    snprintf(kc, sizeof kc, "%s.key", a);
    ehr_pg__access_sql(x->q, w, ac, tc, false, kc);
}

/*
 * Range comparison (FHIR R4 search, prefixes): the row's [lo, hi] against
 * the search's [qlo, qhi], as sqlite_search.c. Parameters only where used.
 */
static void range_sql(ehr_buf *w, const char *op, const char *lo, const char *hi,
                      const char *(*qlo)(void *), const char *(*qhi)(void *), void *arg)
{
    if (!op || !strcmp(op, "eq")) {
        const char *a = qlo(arg), *b = qhi(arg);
        ehr_buf_printf(w, "(%s >= %s AND %s <= %s)", lo, a, hi, b);
    } else if (!strcmp(op, "ne")) {
        const char *a = qlo(arg), *b = qhi(arg);
        ehr_buf_printf(w, "NOT (%s >= %s AND %s <= %s)", lo, a, hi, b);
    } else if (!strcmp(op, "gt")) {
        ehr_buf_printf(w, "(%s > %s)", hi, qhi(arg));
    } else if (!strcmp(op, "lt")) {
        ehr_buf_printf(w, "(%s < %s)", lo, qlo(arg));
    } else if (!strcmp(op, "ge")) {
        ehr_buf_printf(w, "(%s >= %s)", hi, qlo(arg));
    } else if (!strcmp(op, "le")) {
        ehr_buf_printf(w, "(%s <= %s)", lo, qhi(arg));
    } else if (!strcmp(op, "sa")) {
        ehr_buf_printf(w, "(%s > %s)", lo, qhi(arg));
    } else if (!strcmp(op, "eb")) {
        ehr_buf_printf(w, "(%s < %s)", hi, qlo(arg));
    } else { /* ap: the ranges overlap */
        const char *b = qhi(arg), *a = qlo(arg);
        ehr_buf_printf(w, "(%s <= %s AND %s >= %s)", lo, b, hi, a);
    }
}

/* The bounds of a range, bound on demand. */
struct bounds {
    struct pg_q *q;
    bool real;
    int64_t lo, hi;
    double dlo, dhi;
};

static const char *b_lo(void *p)
{
    struct bounds *b = p;
    return b->real ? R(b->q, b->dlo) : I(b->q, b->lo);
}

static const char *b_hi(void *p)
{
    struct bounds *b = p;
    return b->real ? R(b->q, b->dhi) : I(b->q, b->hi);
}

static void range(struct pg_q *q, ehr_buf *w, const char *op, const char *lo, const char *hi,
                  int64_t ilo, int64_t ihi)
{
    struct bounds b = {.q = q, .lo = ilo, .hi = ihi};
    range_sql(w, op, lo, hi, b_lo, b_hi, &b);
}

static void rangef(struct pg_q *q, ehr_buf *w, const char *op, const char *col, double dlo,
                   double dhi)
{
    struct bounds b = {.q = q, .real = true, .dlo = dlo, .dhi = dhi};
    range_sql(w, op, col, col, b_lo, b_hi, &b);
}

static void sub_where(struct ctx *x, ehr_buf *w, const ehr_store_query *sq, const char *a,
                      const ehr_store_access *ac);

/* The value part of condition k over index row alias p (" AND ..."). */
static void value_sql(struct ctx *x, ehr_buf *w, const struct ehr_store_cond *k, const char *p,
                      const ehr_store_access *ac)
{
    struct pg_q *q = x->q;
    if (k->match == EHR_MATCH_ANY)
        return;
    switch (k->kind) {
    case EHR_IDX_TEXT: /* _text, _content: every word starts a word of the body */
        ehr_buf_printf(w, " AND to_tsvector('simple', %s.body) @@ to_tsquery('simple', %s)", p,
                       T(q, tsquery(q, k->s1)));
        break;
    case EHR_IDX_STRING:
        if (k->match == EHR_MATCH_EQ)
            ehr_buf_printf(w, " AND %s.exact = %s", p, T(q, k->s2 ? k->s2 : k->s1));
        else
            ehr_buf_printf(w, " AND %s.norm LIKE %s", p,
                           like(q, k->s1, k->match == EHR_MATCH_CONTAINS));
        break;
    case EHR_IDX_TOKEN:
        if (k->match == EHR_MATCH_TEXT) {
            ehr_buf_printf(w, " AND %s.text LIKE %s", p, like(q, k->s1, false));
            break;
        }
        if (k->s2)
            ehr_buf_printf(w, " AND %s.code = %s", p, T(q, k->s2));
        if (k->s1)
            ehr_buf_printf(w, " AND %s.system = %s", p, T(q, k->s1));
        break;
    case EHR_IDX_REFERENCE:
        if (k->match == EHR_MATCH_CHAIN) {
            char s[16];
            snprintf(s, sizeof s, "s%d", x->alias++);
            ehr_buf_printf(w,
                           " AND %s.target_type = %s AND %s.target_id IN (SELECT %s.id FROM "
                           "current %s WHERE %s.type = %s AND NOT %s.deleted",
                           p, T(q, k->sub->type), p, s, s, s, T(q, k->sub->type), s);
            sub_where(x, w, k->sub, s, ac);
            ehr_buf_putc(w, ')');
            break;
        }
        if (k->s2)
            ehr_buf_printf(w, " AND %s.target_id = %s", p, T(q, k->s2));
        if (k->s1)
            ehr_buf_printf(w, " AND %s.target_type = %s", p, T(q, k->s1));
        if (k->s3)
            ehr_buf_printf(w, " AND %s.url = %s", p, T(q, k->s3));
        break;
    case EHR_IDX_URI:
        if (k->match == EHR_MATCH_PREFIX)
            ehr_buf_printf(w, " AND %s.uri LIKE %s", p, like(q, k->s1, false));
        else if (k->match == EHR_MATCH_ABOVE)
            ehr_buf_printf(w, " AND left(%s, length(%s.uri)) = %s.uri", T(q, k->s1), p, p);
        else
            ehr_buf_printf(w, " AND %s.uri = %s", p, T(q, k->s1));
        break;
    case EHR_IDX_DATE: {
        char lo[32], hi[32];
        snprintf(lo, sizeof lo, "%s.lo", p);
        snprintf(hi, sizeof hi, "%s.hi", p);
        ehr_buf_puts(w, " AND ");
        range(q, w, k->op, lo, hi, k->lo, k->hi);
        break;
    }
    case EHR_IDX_NUMBER:
    case EHR_IDX_QUANTITY: {
        char v[32];
        snprintf(v, sizeof v, "%s.value", p);
        if (k->kind == EHR_IDX_QUANTITY && k->canon) {
            /* the canonical rows, or the rows in the unit as asked */
            ehr_buf_printf(w, " AND ((%s.system = %s AND %s.code = %s AND ", p,
                           T(q, "urn:ehr:ucum-canonical"), p, T(q, k->canon));
            rangef(q, w, k->op, v, k->canon_lo, k->canon_hi);
            ehr_buf_puts(w, ") OR (");
        } else {
            ehr_buf_puts(w, " AND ((");
        }
        rangef(q, w, k->op, v, k->num_lo, k->num_hi);
        if (k->kind == EHR_IDX_QUANTITY && k->s2)
            ehr_buf_printf(w, " AND %s.code = %s", p, T(q, k->s2));
        if (k->kind == EHR_IDX_QUANTITY && k->s1)
            ehr_buf_printf(w, " AND %s.system = %s", p, T(q, k->s1));
        if (k->kind == EHR_IDX_QUANTITY && !k->s1)
            ehr_buf_printf(w, " AND %s.system IS DISTINCT FROM %s", p,
                           T(q, "urn:ehr:ucum-canonical"));
        ehr_buf_puts(w, "))");
        break;
    }
    }
}

static const char *table_of(ehr_idx_kind k)
{
    return (unsigned)k < PG_N_KINDS ? ehr_pg__kinds[k].table : "idx_string";
}

/* Condition k on the current row alias a. */
static void cond_sql(struct ctx *x, ehr_buf *w, const char *type, const struct ehr_store_cond *k,
                     const char *a, const ehr_store_access *ac)
{
    struct pg_q *q = x->q;
    if (!strcmp(k->param, "_id")) {
        ehr_buf_printf(w, "%s.id = %s", a, T(q, k->s2 ? k->s2 : k->s1));
        return;
    }
    if (!strcmp(k->param, "_type")) {
        ehr_buf_printf(w, "%s.type = %s", a, T(q, k->s2));
        return;
    }
    if (!strcmp(k->param, "_lastUpdated")) {
        char col[32];
        snprintf(col, sizeof col, "%s.last_updated", a);
        range(q, w, k->op, col, col, k->lo, k->hi);
        return;
    }
    char p[16];
    snprintf(p, sizeof p, "x%d", x->alias++);
    if (k->match == EHR_MATCH_HAS) {
        /* the resource is the target of k->param of a match of k->sub */
        char s[16];
        snprintf(s, sizeof s, "s%d", x->alias++);
        ehr_buf_printf(w,
                       "EXISTS (SELECT 1 FROM idx_reference %s JOIN current %s ON %s.key = "
                       "%s.key WHERE %s.target_id = %s.id AND %s.target_type = %s.type",
                       p, s, s, p, p, a, p, a);
        ehr_buf_printf(w, " AND %s.type = %s AND %s.param = %s AND %s.type = %s AND NOT %s.deleted",
                       p, T(q, k->sub->type), p, T(q, k->param), s, T(q, k->sub->type), s);
        sub_where(x, w, k->sub, s, ac);
        ehr_buf_putc(w, ')');
        return;
    }
    if (k->match == EHR_MATCH_COMPOSITE) {
        ehr_buf_printf(w, "EXISTS (SELECT 1 FROM ");
        for (size_t i = 0; i < k->n_parts; i++) {
            if (i)
                ehr_buf_puts(w, " JOIN ");
            ehr_buf_printf(w, "%s %s_%zu", table_of(k->parts[i].kind), p, i);
            if (i)
                ehr_buf_printf(w, " ON %s_%zu.key = %s_0.key AND %s_%zu.grp = %s_0.grp", p, i, p, p,
                               i, p);
        }
        ehr_buf_printf(w, " WHERE %s_0.key = %s.key", p, a);
        for (size_t i = 0; i < k->n_parts; i++) {
            char pi[48];
            snprintf(pi, sizeof pi, "%s_%zu", p, i);
            if (type)
                ehr_buf_printf(w, " AND %s.type = %s", pi, T(q, type));
            ehr_buf_printf(w, " AND %s.param = %s", pi, T(q, k->parts[i].param));
            value_sql(x, w, &k->parts[i], pi, ac);
        }
        ehr_buf_putc(w, ')');
        return;
    }
    ehr_buf_printf(w, "EXISTS (SELECT 1 FROM %s %s WHERE %s.key = %s.key", table_of(k->kind), p, p,
                   a);
    if (type)
        ehr_buf_printf(w, " AND %s.type = %s", p, T(q, type));
    ehr_buf_printf(w, " AND %s.param = %s", p, T(q, k->param));
    value_sql(x, w, k, p, ac);
    ehr_buf_putc(w, ')');
}

static void clauses_sql(struct ctx *x, ehr_buf *w, const char *type, size_t n,
                        const struct ehr_store_clause *cls, const char *a,
                        const ehr_store_access *ac)
{
    for (size_t i = 0; i < n; i++) {
        const struct ehr_store_clause *cl = &cls[i];
        ehr_buf_puts(w, cl->negate ? " AND NOT (" : " AND (");
        for (size_t j = 0; j < cl->n_conds; j++) {
            if (j)
                ehr_buf_puts(w, " OR ");
            cond_sql(x, w, type, &cl->conds[j], a, ac);
        }
        if (cl->n_conds == 0)
            ehr_buf_puts(w, "false");
        ehr_buf_putc(w, ')');
    }
}

static void sub_where(struct ctx *x, ehr_buf *w, const ehr_store_query *sq, const char *a,
                      const ehr_store_access *ac)
{
    access(x, w, ac, a);
    clauses_sql(x, w, sq->type, sq->n_clauses, sq->clauses, a, ac);
}

/* The column a sort by a parameter of this kind uses. */
static const char *sort_col(ehr_idx_kind k, bool desc)
{
    switch (k) {
    case EHR_IDX_STRING:
        return "norm";
    case EHR_IDX_TOKEN:
        return "code";
    case EHR_IDX_DATE:
        return desc ? "hi" : "lo";
    case EHR_IDX_REFERENCE:
        return "url";
    case EHR_IDX_QUANTITY:
    case EHR_IDX_NUMBER:
        return "value";
    case EHR_IDX_URI:
        return "uri";
    case EHR_IDX_TEXT:
        break;
    }
    return "norm";
}

static void sort_expr(struct pg_q *q, ehr_buf *b, const struct ehr_store_sort *s)
{
    ehr_buf_reset(b);
    if (!strcmp(s->param, "_id"))
        ehr_buf_puts(b, "c.id");
    else if (!strcmp(s->param, "_lastUpdated"))
        ehr_buf_puts(b, "c.last_updated");
    else
        ehr_buf_printf(b, "(SELECT %s(%s) FROM %s WHERE key = c.key AND param = %s)",
                       s->desc ? "max" : "min", sort_col(s->kind, s->desc), table_of(s->kind),
                       T(q, s->param));
}

#define ROW_COLS "r.type, r.id, r.version, r.last_updated, r.deleted, r.method, r.content, c.key "

struct keys {
    int64_t *v;
    size_t n, cap;
};

static bool keys_has(const struct keys *k, int64_t key)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i] == key)
            return true;
    return false;
}

static ehr_status keys_add(struct keys *k, int64_t key, ehr_err *err)
{
    if (k->n == k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 64;
        int64_t *p = realloc(k->v, nc * sizeof *p);
        if (!p)
            return ehr_err_set(err, EHR_ENOMEM, "out of memory");
        k->v = p;
        k->cap = nc;
    }
    k->v[k->n++] = key;
    return EHR_OK;
}

/* Run q; hand out up to limit rows (included: each resource once, counted
   against limit); *more when a row beyond the page came back. */
static ehr_status run_rows(struct pg_conn *c, struct pg_q *q, ehr_store_row_cb cb, void *ctx,
                           struct keys *keys, bool included, size_t limit, bool *more, ehr_err *err)
{
    ehr_status res;
    PGresult *r = pg_dynamic(c, q, true, &res, err, "running a search");
    if (!r)
        return res;
    size_t n = 0;
    for (int i = 0; !res && i < PQntuples(r); i++) {
        int64_t key = pg_get_i64(r, i, 7);
        if (included) {
            if (keys_has(keys, key))
                continue;
            if (n++ >= limit)
                break;
        } else if (n++ >= limit) {
            if (more)
                *more = true;
            break;
        }
        if (keys && (res = keys_add(keys, key, err)))
            break;
        ehr_store_rec rec = {
            .type = PQgetvalue(r, i, 0),
            .id = PQgetvalue(r, i, 1),
            .version = pg_get_i64(r, i, 2),
            .last_updated = pg_get_i64(r, i, 3),
            .deleted = PQgetvalue(r, i, 4)[0] == 't',
            .method = PQgetvalue(r, i, 5),
            .content = PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6),
            .content_len = (size_t)PQgetlength(r, i, 6),
            .key = key,
            .included = included,
        };
        res = cb(ctx, &rec);
    }
    PQclear(r);
    return res;
}

/* The page's includes, then (iterate) the includes of what they found. */
static ehr_status includes(struct pg_conn *c, const ehr_store_query *sq, ehr_store_row_cb cb,
                           void *ctx, struct keys *keys, ehr_err *err)
{
    size_t from = 0, budget = sq->max_includes;
    ehr_status res = EHR_OK;
    for (int round = 0; round < 3 && !res && budget > 0; round++) {
        size_t upto = keys->n;
        if (from == upto)
            break;
        ehr_buf ks = EHR_BUF_INIT;
        ehr_buf_putc(&ks, '{');
        for (size_t i = from; i < upto; i++)
            ehr_buf_printf(&ks, "%s%lld", i > from ? "," : "", (long long)keys->v[i]);
        ehr_buf_putc(&ks, '}');
        for (size_t i = 0; i < sq->n_includes && !res && budget > 0; i++) {
            const struct ehr_store_include *inc = &sq->includes[i];
            if (round > 0 && !inc->iterate)
                continue;
            struct pg_q q;
            pgq_init(&q);
            struct ctx x = {.q = &q};
            ehr_buf *s = &q.sql;
            ehr_buf_puts(s, "SELECT " ROW_COLS "FROM current c JOIN resource r ON r.rid = c.rid "
                            "WHERE NOT c.deleted AND ");
            const char *kp = P(&q, pgq_text(&q, ks.data ? ks.data : "{}"), "bigint[]");
            if (!inc->reverse) {
                ehr_buf_printf(s,
                               "(c.type, c.id) IN (SELECT x.target_type, x.target_id FROM "
                               "idx_reference x WHERE x.key = ANY (%s)",
                               kp);
                if (inc->source)
                    ehr_buf_printf(s, " AND x.type = %s", T(&q, inc->source));
                if (inc->param)
                    ehr_buf_printf(s, " AND x.param = %s", T(&q, inc->param));
                if (inc->target)
                    ehr_buf_printf(s, " AND x.target_type = %s", T(&q, inc->target));
                ehr_buf_putc(s, ')');
            } else {
                ehr_buf_printf(s,
                               "c.key IN (SELECT x.key FROM current m JOIN idx_reference x ON "
                               "x.target_type = m.type AND x.target_id = m.id WHERE m.key = "
                               "ANY (%s)",
                               kp);
                if (inc->source)
                    ehr_buf_printf(s, " AND x.type = %s", T(&q, inc->source));
                if (inc->param)
                    ehr_buf_printf(s, " AND x.param = %s", T(&q, inc->param));
                ehr_buf_putc(s, ')');
            }
            access(&x, s, sq->access, "c");
            ehr_buf_printf(s, " ORDER BY c.key LIMIT %zu", budget + keys->n);
            size_t before = keys->n;
            res = run_rows(c, &q, cb, ctx, keys, true, budget, NULL, err);
            budget -= keys->n - before < budget ? keys->n - before : budget;
            pgq_free(&q);
        }
        ehr_buf_free(&ks);
        from = upto;
    }
    return res;
}

ehr_status ehr_pg__search(ehr_store_conn *base, const ehr_store_query *sq, ehr_store_row_cb cb,
                          void *ctx, size_t *total, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    struct pg_q q;
    pgq_init(&q);
    struct ctx x = {.q = &q};
    ehr_buf w = EHR_BUF_INIT;
    ehr_buf_puts(&w, " WHERE NOT c.deleted");
    if (sq->type)
        ehr_buf_printf(&w, " AND c.type = %s", T(&q, sq->type));
    if (sq->compartment_patient)
        ehr_buf_printf(&w, " AND c.key IN (SELECT key FROM compartment WHERE patient = %s)",
                       T(&q, sq->compartment_patient));
    access(&x, &w, sq->access, "c");
    clauses_sql(&x, &w, sq->type, sq->n_clauses, sq->clauses, "c", sq->access);
    ehr_status res = w.data && !q.oom ? EHR_OK : ehr_err_set(err, EHR_ENOMEM, "out of memory");
    /* the count and the page share the parameters bound so far */
    int n_where = q.n;
    if (!res && total) {
        ehr_buf_printf(&q.sql, "SELECT count(*) FROM current c%s", w.data);
        PGresult *r = pg_dynamic(c, &q, true, &res, err, "counting matches");
        if (r) {
            *total = (size_t)pg_get_i64(r, 0, 0);
            PQclear(r);
        }
    }
    if (!res && sq->count > 0 && cb) {
        ehr_buf_reset(&q.sql);
        q.n = n_where;
        ehr_buf order = EHR_BUF_INIT, ex = EHR_BUF_INIT;
        bool reverse = false;
        if (sq->n_sort) {
            ehr_buf_puts(&order, " ORDER BY ");
            for (size_t i = 0; i < sq->n_sort; i++) {
                sort_expr(&q, &ex, &sq->sort[i]);
                ehr_buf_printf(&order, "%s%s IS NULL, %s%s", i ? ", " : "", ex.data, ex.data,
                               sq->sort[i].desc ? " DESC" : "");
            }
            ehr_buf_puts(&order, ", c.key");
        } else if (sq->after > 0) {
            ehr_buf_printf(&w, " AND c.key > %s", I(&q, sq->after));
            ehr_buf_puts(&order, " ORDER BY c.key");
        } else if (sq->before > 0) {
            ehr_buf_printf(&w, " AND c.key < %s", I(&q, sq->before));
            ehr_buf_puts(&order, " ORDER BY c.key DESC");
            reverse = true;
        } else {
            ehr_buf_puts(&order, " ORDER BY c.key");
        }
        size_t off = sq->n_sort || (!sq->after && !sq->before) ? sq->offset : 0;
        if (reverse)
            ehr_buf_printf(&q.sql,
                           "SELECT * FROM (SELECT " ROW_COLS "FROM current c JOIN resource r ON "
                           "r.rid = c.rid%s%s LIMIT %zu) page ORDER BY 8",
                           w.data, order.data, sq->count);
        else
            ehr_buf_printf(&q.sql,
                           "SELECT " ROW_COLS "FROM current c JOIN resource r ON r.rid = c.rid"
                           "%s%s LIMIT %zu OFFSET %zu",
                           w.data, order.data, sq->count + 1, off);
        ehr_buf_free(&order);
        ehr_buf_free(&ex);
        struct keys keys = {0};
        if (sq->more)
            *sq->more = false;
        res = run_rows(c, &q, cb, ctx, sq->n_includes ? &keys : NULL, false, sq->count, sq->more,
                       err);
        if (reverse && sq->more) /* the page it came back from follows */
            *sq->more = true;
        if (!res && sq->n_includes && sq->max_includes)
            res = includes(c, sq, cb, ctx, &keys, err);
        free(keys.v);
    }
    ehr_buf_free(&w);
    pgq_free(&q);
    return res;
}
