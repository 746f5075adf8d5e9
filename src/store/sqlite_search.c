/*
 * sqlite_search.c - ehr_store_query (store.h) rendered as SQLite SQL with
 * bound values: the search of the SQLite backend.
 *
 * Plan: one clause drives the query (a key lookup in an index table,
 * chosen by how selective its kind usually is: _id, references, tokens,
 * strings, then ranges); every other clause is an EXISTS probe on the
 * index table's (key) index for each candidate. Chains and _has are
 * sub-selects over current resources of the target type, with the same
 * access limits as the outer query. Default order is the position (key),
 * so paging by cursor (after/before) is stable while writes go on;
 * _sort orders by the smallest (ascending) or largest (descending) value
 * of each key's parameter, resources without a value last.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/sqlite_int.h"

/* ---- a statement built at run time, and its bindings ---- */

struct bind {
    int kind; /* 0 text, 1 int, 2 real */
    const char *s;
    int64_t i;
    double d;
};

struct q {
    ehr_buf sql;
    struct bind *b;
    int n, cap;
    bool oom;
    ehr_buf owned[16]; /* JSON arrays bound as text */
    int n_owned;
    int alias; /* next correlation alias number */
};

#define MAX_BINDS 30000

static int add_bind(struct q *d, struct bind b)
{
    if (d->n == d->cap) {
        int nc = d->cap ? d->cap * 2 : 64;
        struct bind *p = realloc(d->b, (size_t)nc * sizeof *p);
        if (!p) {
            d->oom = true;
            return 1;
        }
        d->b = p;
        d->cap = nc;
    }
    d->b[d->n] = b;
    return ++d->n;
}

static int bt(struct q *d, const char *s)
{
    return add_bind(d, (struct bind){.kind = 0, .s = s});
}
static int bi(struct q *d, int64_t v)
{
    return add_bind(d, (struct bind){.kind = 1, .i = v});
}
static int br(struct q *d, double v)
{
    return add_bind(d, (struct bind){.kind = 2, .d = v});
}

static int barray(struct q *d, const char *const *v, size_t n)
{
    if (d->n_owned == 16)
        return bt(d, "[]");
    ehr_buf *b = &d->owned[d->n_owned++];
    *b = (ehr_buf)EHR_BUF_INIT;
    if (ehr_sqlite__json_array(b, v, n))
        return bt(d, "[]");
    return bt(d, b->data);
}

static void q_free(struct q *d)
{
    ehr_buf_free(&d->sql);
    free(d->b);
    for (int i = 0; i < d->n_owned; i++)
        ehr_buf_free(&d->owned[i]);
}

/*
 * Prepared statements by SQL text, per connection: a search's SQL depends
 * on the shape of the query (parameters, modifiers, number of values), not
 * on the values, so the shapes an application uses are prepared once.
 */
#define CACHE_SIZE 64
struct sqlite_search_cache {
    struct {
        char *sql;
        sqlite3_stmt *st;
        uint64_t used;
        bool busy;
    } e[CACHE_SIZE];
    uint64_t tick;
};

void ehr_sqlite__search_cache_free(struct sqlite_xconn *x)
{
    struct sqlite_search_cache *c = x->search_cache;
    if (!c)
        return;
    for (int i = 0; i < CACHE_SIZE; i++) {
        sqlite3_finalize(c->e[i].st);
        free(c->e[i].sql);
    }
    free(c);
    x->search_cache = NULL;
}

static sqlite3_stmt *cache_get(struct sqlite_xconn *x, const char *sql, ehr_err *err)
{
    struct sqlite_search_cache *c = x->search_cache;
    if (!c && !(c = x->search_cache = calloc(1, sizeof *c))) {
        ehr_err_set(err, EHR_ENOMEM, "out of memory");
        return NULL;
    }
    int victim = -1;
    for (int i = 0; i < CACHE_SIZE; i++) {
        if (c->e[i].sql && !c->e[i].busy && !strcmp(c->e[i].sql, sql)) {
            c->e[i].used = ++c->tick;
            c->e[i].busy = true;
            return c->e[i].st;
        }
        if (!c->e[i].busy && (victim < 0 || c->e[i].used < c->e[victim].used))
            victim = i;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(x->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        ehr_err_set(err, EHR_EIO, "preparing a search: %s", sqlite3_errmsg(x->db));
        return NULL;
    }
    if (getenv("EHR_SEARCH_SQL")) /* for EXPLAIN QUERY PLAN: placeholders only, no values */
        fprintf(stderr, "search sql: %s\n", sql);
    if (victim < 0) /* every entry in use (nested searches): not cached */
        return st;
    sqlite3_finalize(c->e[victim].st);
    free(c->e[victim].sql);
    c->e[victim].sql = strdup(sql);
    c->e[victim].st = c->e[victim].sql ? st : NULL;
    c->e[victim].used = ++c->tick;
    c->e[victim].busy = c->e[victim].sql != NULL;
    return st;
}

/* Done with a statement from cache_get: reset for the next use. */
static void cache_put(struct sqlite_xconn *x, sqlite3_stmt *st)
{
    struct sqlite_search_cache *c = x->search_cache;
    for (int i = 0; c && i < CACHE_SIZE; i++)
        if (c->e[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            c->e[i].busy = false;
            return;
        }
    sqlite3_finalize(st);
}

static ehr_status q_prepare(struct sqlite_xconn *x, struct q *d, sqlite3_stmt **out, ehr_err *err)
{
    if (d->oom || !d->sql.data)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (d->n > MAX_BINDS)
        return ehr_err_set(err, EHR_ELIMIT, "the search has too many values (at most %d)",
                           MAX_BINDS);
    if (!(*out = cache_get(x, d->sql.data, err)))
        return err->msg[0] ? EHR_EIO : EHR_ENOMEM;
    for (int i = 0; i < d->n; i++) {
        if (d->b[i].kind == 1)
            sqlite3_bind_int64(*out, i + 1, d->b[i].i);
        else if (d->b[i].kind == 2)
            sqlite3_bind_double(*out, i + 1, d->b[i].d);
        else if (d->b[i].s)
            sqlite3_bind_text(*out, i + 1, d->b[i].s, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(*out, i + 1);
    }
    return EHR_OK;
}

/* ---- access limits (store.h ehr_store_access) on alias a ---- */

static void access_sql(struct q *d, ehr_buf *w, const ehr_store_access *ac, const char *a)
{
    if (!ac)
        return;
    if (ac->n_groups == 0 || ac->n_groups > 3) {
        ehr_buf_puts(w, " AND 0");
        return;
    }
    ehr_buf_puts(w, " AND (");
    for (size_t i = 0; i < ac->n_groups; i++) {
        const struct ehr_store_access_group *g = &ac->groups[i];
        ehr_buf_puts(w, i ? " OR (1" : "(1");
        if (g->n_types)
            ehr_buf_printf(w, " AND %s.type IN (SELECT value FROM json_each(?%d))", a,
                           barray(d, g->types, g->n_types));
        if (g->limited)
            ehr_buf_printf(w,
                           " AND %s.key IN (SELECT key FROM compartment WHERE patient IN "
                           "(SELECT value FROM json_each(?%d)))",
                           a, barray(d, g->patients, g->n_patients));
        ehr_buf_putc(w, ')');
    }
    ehr_buf_putc(w, ')');
}

/* ---- conditions ---- */

static const char *const idx_table[] = {
    [EHR_IDX_STRING] = "idx_string",     [EHR_IDX_TOKEN] = "idx_token",
    [EHR_IDX_DATE] = "idx_date",         [EHR_IDX_REFERENCE] = "idx_reference",
    [EHR_IDX_QUANTITY] = "idx_quantity", [EHR_IDX_NUMBER] = "idx_number",
    [EHR_IDX_URI] = "idx_uri",           [EHR_IDX_TEXT] = "idx_text",
};

/*
 * Range comparison (FHIR R4 search 3.1.1.4: prefixes), the row's range
 * [lo, hi] (columns) against the search range [qlo, qhi] (parameters).
 */
static void range_sql(ehr_buf *w, const char *op, const char *lo, const char *hi, int qlo, int qhi)
{
    if (!op || !strcmp(op, "eq"))
        ehr_buf_printf(w, "(%s >= ?%d AND %s <= ?%d)", lo, qlo, hi, qhi);
    else if (!strcmp(op, "ne"))
        ehr_buf_printf(w, "NOT (%s >= ?%d AND %s <= ?%d)", lo, qlo, hi, qhi);
    else if (!strcmp(op, "gt"))
        ehr_buf_printf(w, "(%s > ?%d)", hi, qhi);
    else if (!strcmp(op, "lt"))
        ehr_buf_printf(w, "(%s < ?%d)", lo, qlo);
    else if (!strcmp(op, "ge"))
        ehr_buf_printf(w, "(%s >= ?%d)", hi, qlo);
    else if (!strcmp(op, "le"))
        ehr_buf_printf(w, "(%s <= ?%d)", lo, qhi);
    else if (!strcmp(op, "sa"))
        ehr_buf_printf(w, "(%s > ?%d)", lo, qhi);
    else if (!strcmp(op, "eb"))
        ehr_buf_printf(w, "(%s < ?%d)", hi, qlo);
    else /* ap: the ranges overlap */
        ehr_buf_printf(w, "(%s <= ?%d AND %s >= ?%d)", lo, qhi, hi, qlo);
}

static void sub_where(struct q *d, ehr_buf *w, const ehr_store_query *sq, const char *a,
                      const ehr_store_access *ac, bool drive);
static int pick_driver(size_t n, const struct ehr_store_clause *cls);

/* The value part of a condition over index row alias p (" AND ..."). */
static void value_sql(struct q *d, ehr_buf *w, const struct ehr_store_cond *k, const char *p,
                      bool drive, const ehr_store_access *ac)
{
    switch (k->kind) {
    case EHR_IDX_STRING:
        if (k->match == EHR_MATCH_ANY)
            break;
        if (k->match == EHR_MATCH_EQ)
            ehr_buf_printf(w, " AND %s.exact = ?%d", p, bt(d, k->s2 ? k->s2 : k->s1));
        else if (k->match == EHR_MATCH_CONTAINS)
            ehr_buf_printf(w, " AND instr(%s.norm, ?%d) > 0", p, bt(d, k->s1));
        else { /* prefix: a range on the index */
            int b = bt(d, k->s1);
            ehr_buf_printf(w, " AND %s.norm >= ?%d AND %s.norm < ?%d || x'f48fbfbf'", p, b, p, b);
        }
        break;
    case EHR_IDX_TOKEN:
        if (k->match == EHR_MATCH_ANY)
            break;
        if (k->match == EHR_MATCH_TEXT) {
            int b = bt(d, k->s1);
            ehr_buf_printf(w, " AND %s.text >= ?%d AND %s.text < ?%d || x'f48fbfbf'", p, b, p, b);
            break;
        }
        if (k->s2)
            ehr_buf_printf(w, " AND %s.code = ?%d", p, bt(d, k->s2));
        if (k->s1)
            ehr_buf_printf(w, " AND %s.system = ?%d", p, bt(d, k->s1));
        break;
    case EHR_IDX_REFERENCE:
        if (k->match == EHR_MATCH_CHAIN) {
            char a[16];
            int sa = d->alias++;
            snprintf(a, sizeof a, "s%d", sa);
            int tb = bt(d, k->sub->type);
            if (drive) /* the ids of the sub-query's matches, found by its own driver */
                ehr_buf_printf(w,
                               " AND %s.target_type = ?%d AND %s.target_id IN (SELECT %s.id FROM "
                               "current %s WHERE +%s.type = ?%d AND %s.deleted = 0",
                               p, tb, p, a, a, a, tb, a);
            else /* a probe of the one target */
                ehr_buf_printf(w,
                               " AND %s.target_type = ?%d AND EXISTS (SELECT 1 FROM current %s "
                               "WHERE %s.type = %s.target_type AND %s.id = %s.target_id AND "
                               "%s.deleted = 0",
                               p, tb, a, a, p, a, p, a);
            sub_where(d, w, k->sub, a, ac, drive);
            ehr_buf_putc(w, ')');
            break;
        }
        if (k->match == EHR_MATCH_ANY)
            break;
        if (k->s2)
            ehr_buf_printf(w, " AND %s.target_id = ?%d", p, bt(d, k->s2));
        if (k->s1)
            ehr_buf_printf(w, " AND %s.target_type = ?%d", p, bt(d, k->s1));
        if (k->s3)
            ehr_buf_printf(w, " AND %s.url = ?%d", p, bt(d, k->s3));
        break;
    case EHR_IDX_URI:
        if (k->match == EHR_MATCH_ANY)
            break;
        if (k->match == EHR_MATCH_PREFIX) {
            int b = bt(d, k->s1);
            ehr_buf_printf(w, " AND %s.uri >= ?%d AND %s.uri < ?%d || x'f48fbfbf'", p, b, p, b);
        } else if (k->match == EHR_MATCH_ABOVE) {
            ehr_buf_printf(w, " AND substr(?%d, 1, length(%s.uri)) = %s.uri", bt(d, k->s1), p, p);
        } else {
            ehr_buf_printf(w, " AND %s.uri = ?%d", p, bt(d, k->s1));
        }
        break;
    case EHR_IDX_TEXT: /* rendered by cond_sql */
        break;
    case EHR_IDX_DATE: {
        if (k->match == EHR_MATCH_ANY)
            break;
        char lo[32], hi[32];
        snprintf(lo, sizeof lo, "%s.lo", p);
        snprintf(hi, sizeof hi, "%s.hi", p);
        int a = bi(d, k->lo), b = bi(d, k->hi);
        ehr_buf_puts(w, " AND ");
        range_sql(w, k->op, lo, hi, a, b);
        break;
    }
    case EHR_IDX_NUMBER:
    case EHR_IDX_QUANTITY: {
        if (k->match == EHR_MATCH_ANY)
            break;
        char v[32];
        snprintf(v, sizeof v, "%s.value", p);
        if (k->kind == EHR_IDX_QUANTITY && k->canon) {
            /* the canonical rows, or the rows in the unit as asked */
            ehr_buf_printf(w, " AND ((%s.system = ?%d AND %s.code = ?%d AND ", p,
                           bt(d, "urn:ehr:ucum-canonical"), p, bt(d, k->canon));
            int a = br(d, k->canon_lo), b = br(d, k->canon_hi);
            range_sql(w, k->op, v, v, a, b);
            ehr_buf_puts(w, ") OR (");
        } else {
            ehr_buf_puts(w, " AND ((");
        }
        int a = br(d, k->num_lo), b = br(d, k->num_hi);
        range_sql(w, k->op, v, v, a, b);
        if (k->kind == EHR_IDX_QUANTITY && k->s2)
            ehr_buf_printf(w, " AND %s.code = ?%d", p, bt(d, k->s2));
        if (k->kind == EHR_IDX_QUANTITY && k->s1)
            ehr_buf_printf(w, " AND %s.system = ?%d", p, bt(d, k->s1));
        if (k->kind == EHR_IDX_QUANTITY && !k->s1)
            ehr_buf_printf(w, " AND %s.system IS NOT 'urn:ehr:ucum-canonical'", p);
        ehr_buf_puts(w, "))");
        break;
    }
    }
}

/*
 * Condition k on the current row alias a. drive: render as "a.key IN
 * (...)" (a lookup SQLite can start from) rather than an EXISTS probe.
 */
static void cond_sql(struct q *d, ehr_buf *w, const char *type, const struct ehr_store_cond *k,
                     const char *a, bool drive, const ehr_store_access *ac)
{
    if (!strcmp(k->param, "_id")) {
        ehr_buf_printf(w, "%s.id = ?%d", a, bt(d, k->s2 ? k->s2 : k->s1));
        return;
    }
    if (!strcmp(k->param, "_type")) {
        ehr_buf_printf(w, "%s.type = ?%d", a, bt(d, k->s2));
        return;
    }
    if (!strcmp(k->param, "_lastUpdated")) {
        char col[32];
        snprintf(col, sizeof col, "%s.last_updated", a);
        int lo = bi(d, k->lo), hi = bi(d, k->hi);
        range_sql(w, k->op, col, col, lo, hi);
        return;
    }
    char p[16];
    snprintf(p, sizeof p, "x%d", d->alias++);
    if (k->match == EHR_MATCH_HAS) {
        /* the resource is the target of k->param of a match of k->sub */
        char s[16];
        snprintf(s, sizeof s, "s%d", d->alias++);
        if (drive && type) /* the ids that matches of the sub-query refer to */
            ehr_buf_printf(w,
                           "%s.id IN (SELECT %s.target_id FROM idx_reference %s JOIN current %s "
                           "ON %s.key = %s.key WHERE %s.target_type = ?%d",
                           a, p, p, s, s, p, p, bt(d, type));
        else
            ehr_buf_printf(w,
                           "EXISTS (SELECT 1 FROM idx_reference %s JOIN current %s ON %s.key = "
                           "%s.key WHERE %s.target_id = %s.id AND %s.target_type = %s.type",
                           p, s, s, p, p, a, p, a);
        ehr_buf_printf(w,
                       " AND %s.type = ?%d AND %s.param = ?%d AND %s.type = ?%d AND "
                       "%s.deleted = 0",
                       p, bt(d, k->sub->type), p, bt(d, k->param), s, bt(d, k->sub->type), s);
        sub_where(d, w, k->sub, s, ac, drive && type);
        ehr_buf_putc(w, ')');
        return;
    }
    if (k->match == EHR_MATCH_COMPOSITE) {
        ehr_buf_puts(w, drive ? "" : "EXISTS (");
        if (drive)
            ehr_buf_printf(w, "%s.key IN (", a);
        ehr_buf_printf(w, "SELECT %s0.key FROM ", p);
        for (size_t i = 0; i < k->n_parts; i++) {
            if (i)
                ehr_buf_puts(w, " JOIN ");
            ehr_buf_printf(w, "%s %s%zu", idx_table[k->parts[i].kind], p, i);
            if (i)
                ehr_buf_printf(w, " ON %s%zu.key = %s0.key AND %s%zu.grp = %s0.grp", p, i, p, p, i,
                               p);
        }
        ehr_buf_puts(w, " WHERE 1");
        if (!drive)
            ehr_buf_printf(w, " AND %s0.key = %s.key", p, a);
        for (size_t i = 0; i < k->n_parts; i++) {
            char pi[48];
            snprintf(pi, sizeof pi, "%s%zu", p, i);
            if (type)
                ehr_buf_printf(w, " AND %s.type = ?%d", pi, bt(d, type));
            ehr_buf_printf(w, " AND %s.param = ?%d", pi, bt(d, k->parts[i].param));
            value_sql(d, w, &k->parts[i], pi, false, ac);
        }
        ehr_buf_putc(w, ')');
        return;
    }
    if (k->kind == EHR_IDX_TEXT) { /* FTS5: rowid = key * 2 (+1 for _content) */
        int m = bt(d, k->s1), odd = bi(d, !strcmp(k->param, "_content"));
        if (drive)
            ehr_buf_printf(w,
                           "%s.key IN (SELECT rowid / 2 FROM idx_text WHERE idx_text MATCH ?%d "
                           "AND rowid %% 2 = ?%d)",
                           a, m, odd);
        else
            ehr_buf_printf(w,
                           "EXISTS (SELECT 1 FROM idx_text WHERE idx_text MATCH ?%d AND rowid = "
                           "%s.key * 2 + ?%d)",
                           m, a, odd);
        return;
    }
    const char *tab = idx_table[k->kind];
    if (drive)
        ehr_buf_printf(w, "%s.key IN (SELECT %s.key FROM %s %s WHERE 1", a, p, tab, p);
    else
        ehr_buf_printf(w, "EXISTS (SELECT 1 FROM %s %s WHERE %s.key = %s.key", tab, p, p, a);
    if (type && drive)
        ehr_buf_printf(w, " AND %s.type = ?%d", p, bt(d, type));
    ehr_buf_printf(w, " AND %s.param = ?%d", p, bt(d, k->param));
    value_sql(d, w, k, p, drive, ac);
    ehr_buf_putc(w, ')');
}

static int drive_score(const struct ehr_store_clause *cl);

/* How selective a sub-query is: its best clause. */
static int sub_score(const ehr_store_query *sq)
{
    int best = 0;
    for (size_t i = 0; i < sq->n_clauses; i++) {
        int s = drive_score(&sq->clauses[i]);
        best = s > best ? s : best;
    }
    return best;
}

/* How good a clause is at driving the query (higher is better, 0 never). */
static int drive_score(const struct ehr_store_clause *cl)
{
    if (cl->negate || cl->n_conds == 0)
        return 0;
    int worst = 100;
    for (size_t i = 0; i < cl->n_conds; i++) {
        const struct ehr_store_cond *k = &cl->conds[i];
        int s;
        if (!strcmp(k->param, "_id"))
            s = 0; /* the unique (type, id) index serves it better inline */
        else if (!strcmp(k->param, "_lastUpdated") || !strcmp(k->param, "_type"))
            s = 0;
        else if (k->match == EHR_MATCH_ANY || k->match == EHR_MATCH_CONTAINS ||
                 k->match == EHR_MATCH_ABOVE || (k->op && !strcmp(k->op, "ne")))
            s = 0;
        else if (k->match == EHR_MATCH_HAS || k->match == EHR_MATCH_CHAIN)
            s = sub_score(k->sub) - 5;
        else if (k->kind == EHR_IDX_REFERENCE && k->s2)
            s = 90;
        else if (k->kind == EHR_IDX_TOKEN && k->s2 &&
                 (strstr(k->param, "identifier") || !strcmp(k->param, "telecom") ||
                  !strcmp(k->param, "phone") || !strcmp(k->param, "email")))
            s = 88; /* identifiers and contact points name few resources */
        else if (k->kind == EHR_IDX_STRING && k->match != EHR_MATCH_CONTAINS)
            s = 75;
        else if (k->kind == EHR_IDX_URI)
            s = 70;
        else if (k->kind == EHR_IDX_TEXT)
            s = 65;
        else if (k->kind == EHR_IDX_TOKEN && k->s2 && k->s1)
            s = 55; /* codes are shared by many resources */
        else if (k->kind == EHR_IDX_TOKEN && k->s2)
            s = 50;
        else if (k->match == EHR_MATCH_COMPOSITE)
            s = 45;
        else if (k->kind == EHR_IDX_TOKEN)
            s = 20;
        else
            s = 10; /* ranges */
        if (s < worst)
            worst = s;
    }
    return worst;
}

static void clauses_sql(struct q *d, ehr_buf *w, const char *type, size_t n,
                        const struct ehr_store_clause *cls, const char *a, int driver,
                        const ehr_store_access *ac)
{
    for (size_t i = 0; i < n; i++) {
        const struct ehr_store_clause *cl = &cls[i];
        ehr_buf_puts(w, cl->negate ? " AND NOT (" : " AND (");
        for (size_t j = 0; j < cl->n_conds; j++) {
            if (j)
                ehr_buf_puts(w, " OR ");
            cond_sql(d, w, type, &cl->conds[j], a, (int)i == driver, ac);
        }
        if (cl->n_conds == 0)
            ehr_buf_puts(w, "0");
        ehr_buf_putc(w, ')');
    }
}

static int pick_driver(size_t n, const struct ehr_store_clause *cls)
{
    int best = -1, score = 0;
    for (size_t i = 0; i < n; i++) {
        int s = drive_score(&cls[i]);
        if (s > score) {
            score = s;
            best = (int)i;
        }
    }
    return best;
}

/* A sub-query's conditions on alias a: with its own driver when the outer
 * condition drives (a list built once), else as probes of one candidate. */
static void sub_where(struct q *d, ehr_buf *w, const ehr_store_query *sq, const char *a,
                      const ehr_store_access *ac, bool drive)
{
    access_sql(d, w, ac, a);
    clauses_sql(d, w, sq->type, sq->n_clauses, sq->clauses, a,
                drive ? pick_driver(sq->n_clauses, sq->clauses) : -1, ac);
}

/* ---- the search ---- */

static const char *sort_expr(struct q *d, ehr_buf *b, const struct ehr_store_sort *s)
{
    ehr_buf_reset(b);
    if (!strcmp(s->param, "_id")) {
        ehr_buf_puts(b, "c.id");
    } else if (!strcmp(s->param, "_lastUpdated")) {
        ehr_buf_puts(b, "c.last_updated");
    } else {
        static const char *const col[] = {
            [EHR_IDX_STRING] = "norm",   [EHR_IDX_TOKEN] = "code",     [EHR_IDX_DATE] = "lo",
            [EHR_IDX_REFERENCE] = "url", [EHR_IDX_QUANTITY] = "value", [EHR_IDX_NUMBER] = "value",
            [EHR_IDX_URI] = "uri",       [EHR_IDX_TEXT] = "body",
        };
        const char *cn = col[s->kind];
        if (s->kind == EHR_IDX_DATE && s->desc)
            cn = "hi";
        ehr_buf_printf(b, "(SELECT %s(%s) FROM %s WHERE key = c.key AND param = ?%d)",
                       s->desc ? "max" : "min", cn, idx_table[s->kind], bt(d, s->param));
    }
    return b->data;
}

static ehr_status run_rows(struct sqlite_xconn *x, struct q *d, ehr_store_row_cb cb, void *ctx,
                           int64_t **keys, size_t *nk, size_t *capk, bool included, size_t limit,
                           bool *more, ehr_err *err)
{
    sqlite3_stmt *st = NULL;
    ehr_status res = q_prepare(x, d, &st, err);
    if (res)
        return res;
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t key = sqlite3_column_int64(st, 7);
        if (included) { /* each resource once */
            bool seen = false;
            for (size_t i = 0; i < *nk && !seen; i++)
                seen = (*keys)[i] == key;
            if (seen)
                continue;
            if (n++ >= limit)
                break;
        } else if (n++ >= limit) { /* the row after the page: there are more */
            if (more)
                *more = true;
            break;
        }
        if (keys) {
            if (*nk == *capk) {
                size_t nc = *capk ? *capk * 2 : 64;
                int64_t *p = realloc(*keys, nc * sizeof *p);
                if (!p) {
                    res = ehr_err_set(err, EHR_ENOMEM, "out of memory");
                    break;
                }
                *keys = p;
                *capk = nc;
            }
            (*keys)[(*nk)++] = key;
        }
        ehr_store_rec rec = {
            .type = (const char *)sqlite3_column_text(st, 0),
            .id = (const char *)sqlite3_column_text(st, 1),
            .version = sqlite3_column_int64(st, 2),
            .last_updated = sqlite3_column_int64(st, 3),
            .deleted = sqlite3_column_int(st, 4) != 0,
            .method = (const char *)sqlite3_column_text(st, 5),
            .content = sqlite3_column_blob(st, 6),
            .content_len = (size_t)sqlite3_column_bytes(st, 6),
            .key = key,
            .included = included,
        };
        if ((res = cb(ctx, &rec)))
            break;
    }
    if (!res && rc != SQLITE_DONE && rc != SQLITE_ROW)
        res = ehr_err_set(err, EHR_EIO, "running a search: %s", sqlite3_errmsg(x->db));
    cache_put(x, st);
    return res;
}

#define ROW_COLS "r.type, r.id, r.version, r.last_updated, r.deleted, r.method, r.content, c.key "

/* The page's includes, then (iterate) the includes of what they found. */
static ehr_status includes(struct sqlite_xconn *x, const ehr_store_query *q, ehr_store_row_cb cb,
                           void *ctx, int64_t **keys, size_t *nk, size_t *capk, ehr_err *err)
{
    size_t from = 0, budget = q->max_includes;
    ehr_status res = EHR_OK;
    for (int round = 0; round < 3 && !res && budget > 0; round++) {
        size_t upto = *nk;
        if (from == upto)
            break;
        ehr_buf ks = EHR_BUF_INIT;
        ehr_buf_putc(&ks, '[');
        for (size_t i = from; i < upto; i++)
            ehr_buf_printf(&ks, "%s%lld", i > from ? "," : "", (long long)(*keys)[i]);
        ehr_buf_putc(&ks, ']');
        for (size_t i = 0; i < q->n_includes && !res && budget > 0; i++) {
            const struct ehr_store_include *inc = &q->includes[i];
            if (round > 0 && !inc->iterate)
                continue;
            struct q d = {.sql = EHR_BUF_INIT};
            ehr_buf *s = &d.sql;
            ehr_buf_puts(s, "SELECT " ROW_COLS "FROM current c JOIN resource r ON r.rid = c.rid "
                            "WHERE c.deleted = 0 AND ");
            int kb = bt(&d, ks.data);
            if (!inc->reverse) {
                ehr_buf_printf(s,
                               "(c.type, c.id) IN (SELECT x.target_type, x.target_id FROM "
                               "idx_reference x WHERE x.key IN (SELECT value FROM json_each(?%d))",
                               kb);
                /* by the page's keys: (key, param) index, not the type's */
                if (inc->source)
                    ehr_buf_printf(s, " AND +x.type = ?%d", bt(&d, inc->source));
                if (inc->param)
                    ehr_buf_printf(s, " AND x.param = ?%d", bt(&d, inc->param));
                if (inc->target)
                    ehr_buf_printf(s, " AND x.target_type = ?%d", bt(&d, inc->target));
                ehr_buf_putc(s, ')');
            } else {
                ehr_buf_printf(s,
                               "c.key IN (SELECT x.key FROM current m JOIN idx_reference x ON "
                               "x.target_type = m.type AND x.target_id = m.id WHERE m.key IN "
                               "(SELECT value FROM json_each(?%d))",
                               kb);
                if (inc->source)
                    ehr_buf_printf(s, " AND x.type = ?%d", bt(&d, inc->source));
                if (inc->param)
                    ehr_buf_printf(s, " AND x.param = ?%d", bt(&d, inc->param));
                ehr_buf_putc(s, ')');
            }
            access_sql(&d, s, q->access, "c");
            ehr_buf_printf(s, " ORDER BY c.key LIMIT %zu", budget + *nk);
            size_t before = *nk;
            res = run_rows(x, &d, cb, ctx, keys, nk, capk, true, budget, NULL, err);
            budget -= *nk - before < budget ? *nk - before : budget;
            q_free(&d);
        }
        ehr_buf_free(&ks);
        from = upto;
    }
    return res;
}

ehr_status ehr_sqlite__search(ehr_store_conn *c, const ehr_store_query *q, ehr_store_row_cb cb,
                              void *ctx, size_t *total, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3 *db = x->db;
    struct q d = {.sql = EHR_BUF_INIT};
    ehr_buf w = EHR_BUF_INIT;
    int driver = pick_driver(q->n_clauses, q->clauses);
    ehr_buf_puts(&w, " WHERE c.deleted = 0");
    if (q->type)
        ehr_buf_printf(&w, driver >= 0 ? " AND +c.type = ?%d" : " AND c.type = ?%d",
                       bt(&d, q->type));
    if (q->compartment_patient)
        ehr_buf_printf(&w, " AND c.key IN (SELECT key FROM compartment WHERE patient = ?%d)",
                       bt(&d, q->compartment_patient));
    access_sql(&d, &w, q->access, "c");
    clauses_sql(&d, &w, q->type, q->n_clauses, q->clauses, "c", driver, q->access);
    ehr_status res = w.data && !d.oom ? EHR_OK : ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (!res && total) {
        if (q->total_limit)
            ehr_buf_printf(&d.sql, "SELECT count(*) FROM (SELECT 1 FROM current c%s LIMIT %zu)",
                           w.data, q->total_limit);
        else
            ehr_buf_printf(&d.sql, "SELECT count(*) FROM current c%s", w.data);
        sqlite3_stmt *st = NULL;
        if (!(res = q_prepare(x, &d, &st, err))) {
            if (sqlite3_step(st) == SQLITE_ROW)
                *total = (size_t)sqlite3_column_int64(st, 0);
            else
                res = ehr_err_set(err, EHR_EIO, "counting matches: %s", sqlite3_errmsg(db));
            cache_put(x, st);
        }
    }
    if (!res && q->count > 0 && cb) {
        ehr_buf_reset(&d.sql);
        ehr_buf order = EHR_BUF_INIT, ex = EHR_BUF_INIT;
        bool reverse = false;
        if (q->n_sort) {
            ehr_buf_puts(&order, " ORDER BY ");
            for (size_t i = 0; i < q->n_sort; i++) {
                const char *e = sort_expr(&d, &ex, &q->sort[i]);
                ehr_buf_printf(&order, "%s%s IS NULL, %s%s", i ? ", " : "", e, e,
                               q->sort[i].desc ? " DESC" : "");
            }
            ehr_buf_puts(&order, ", c.key");
        } else if (q->after > 0) {
            ehr_buf_printf(&w, " AND c.key > ?%d", bi(&d, q->after));
            ehr_buf_puts(&order, " ORDER BY c.key");
        } else if (q->before > 0) {
            ehr_buf_printf(&w, " AND c.key < ?%d", bi(&d, q->before));
            ehr_buf_puts(&order, " ORDER BY c.key DESC");
            reverse = true;
        } else {
            ehr_buf_puts(&order, " ORDER BY c.key");
        }
        size_t off = q->n_sort || (!q->after && !q->before) ? q->offset : 0;
        if (reverse)
            ehr_buf_printf(&d.sql,
                           "SELECT * FROM (SELECT " ROW_COLS "FROM current c JOIN resource "
                           "r ON r.rid = c.rid%s%s LIMIT %zu) ORDER BY 8",
                           w.data, order.data, q->count);
        else
            ehr_buf_printf(&d.sql,
                           "SELECT " ROW_COLS "FROM current c JOIN resource r ON r.rid = "
                           "c.rid%s%s LIMIT %zu OFFSET %zu",
                           w.data, order.data, q->count + 1, off);
        ehr_buf_free(&order);
        ehr_buf_free(&ex);
        int64_t *keys = NULL;
        size_t nk = 0, capk = 0;
        if (q->more)
            *q->more = false;
        res = run_rows(x, &d, cb, ctx, q->n_includes ? &keys : NULL, &nk, &capk, false, q->count,
                       q->more, err);
        if (reverse && q->more) /* the page it came back from follows */
            *q->more = true;
        if (!res && q->n_includes && q->max_includes)
            res = includes(x, q, cb, ctx, &keys, &nk, &capk, err);
        free(keys);
    }
    ehr_buf_free(&w);
    q_free(&d);
    return res;
}
