/*
 * search.c - FHIR R4 search parameters (search.html) parsed into an
 * ehr_store_query: each filter parameter becomes a clause (AND), each of
 * its comma-separated values a condition (OR); chains and _has become
 * conditions with a sub-query. The store renders it (sqlite_search.c).
 */
#include "search/search.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "fhir/model.h"
#include "search/params.h"
#include "search/search_int.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *decode(ehr_arena *a, const char *s, size_t len)
{
    char *out = ehr_arena_alloc(a, len + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[j++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

ehr_status ehr_search_split_query(const char *qs, ehr_arena *arena, struct ehr_search_param **out,
                                  size_t *n)
{
    size_t cap = 1;
    for (const char *p = qs; *p; p++)
        cap += *p == '&';
    struct ehr_search_param *ps = ehr_arena_calloc(arena, cap, sizeof *ps);
    if (!ps)
        return EHR_ENOMEM;
    size_t k = 0;
    const char *p = qs;
    while (*p) {
        size_t len = strcspn(p, "&");
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t nl = eq ? (size_t)(eq - p) : len;
            ps[k].name = decode(arena, p, nl);
            ps[k].value = eq ? decode(arena, eq + 1, len - nl - 1) : decode(arena, "", 0);
            if (!ps[k].name || !ps[k].value)
                return EHR_ENOMEM;
            k++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    *out = ps;
    *n = k;
    return EHR_OK;
}

bool ehr_search_date_range(const char *v, int64_t *lo, int64_t *hi)
{
    size_t n = strlen(v);
    char buf[64];
    if (n >= sizeof buf || n < 4)
        return false;
    if (!ehr_time_parse(v, lo))
        return false;
    int64_t end;
    if (n == 4) { /* year */
        snprintf(buf, sizeof buf, "%04d", atoi(v) + 1);
        if (!ehr_time_parse(buf, &end))
            return false;
    } else if (n == 7) { /* year-month */
        int y = atoi(v), m = atoi(v + 5) + 1;
        if (m > 12) {
            m = 1;
            y++;
        }
        snprintf(buf, sizeof buf, "%04d-%02d", y, m);
        if (!ehr_time_parse(buf, &end))
            return false;
    } else if (n == 10) {
        end = *lo + 86400LL * 1000000;
    } else {
        /* dateTime: precision of the time part (minutes, seconds, fractions) */
        const char *t = strchr(v, 'T');
        if (!t)
            return false;
        size_t tl = strcspn(t + 1, "Z+-");
        if (tl <= 5)
            end = *lo + 60LL * 1000000;
        else if (tl <= 8)
            end = *lo + 1000000;
        else {
            int64_t step = 1000000;
            for (size_t i = 9; i < tl && step > 1; i++)
                step /= 10;
            end = *lo + step;
        }
    }
    *hi = end - 1;
    return true;
}

/* ---- the parser's state ---- */

struct ps {
    ehr_arena *a;
    ehr_fhir_issues *issues;
    bool strict;
    ehr_status res; /* EHR_EINVAL once an error issue was added */
    size_t n_ignored;
};

static void fail(struct ps *p, const char *code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct ps *p, const char *code, const char *where, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ehr_fhir_issue_add(p->issues, EHR_SEV_ERROR, code, where, "%s", msg);
    p->res = EHR_EINVAL;
}

/* An unknown parameter: an error when strict, else a warning and skipped. */
static void unknown(struct ps *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void unknown(struct ps *p, const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->strict) {
        ehr_fhir_issue_add(p->issues, EHR_SEV_ERROR, "not-supported", name, "%s", msg);
        p->res = EHR_EINVAL;
    } else {
        ehr_fhir_issue_add(p->issues, EHR_SEV_WARNING, "not-supported", name, "%s; ignored", msg);
        p->n_ignored++;
    }
}

/* Split a comma-separated list of values (a \, is a literal comma). */
static size_t split_values(ehr_arena *a, const char *v, char sep, const char ***out)
{
    size_t cap = 1;
    for (const char *p = v; *p; p++)
        cap += *p == sep;
    const char **vals = ehr_arena_calloc(a, cap, sizeof *vals);
    char *cur = ehr_arena_alloc(a, strlen(v) + 1);
    if (!vals || !cur)
        return 0;
    size_t n = 0, j = 0;
    for (const char *p = v;; p++) {
        if (*p == '\\' && (p[1] == ',' || p[1] == '$' || p[1] == '|' || p[1] == '\\')) {
            cur[j++] = p[1];
            p++;
        } else if (*p == sep || *p == '\0') {
            cur[j] = '\0';
            vals[n++] = cur;
            cur += j + 1;
            j = 0;
            if (*p == '\0')
                break;
        } else {
            cur[j++] = *p;
        }
    }
    *out = vals;
    return n;
}

/* Split at the first unescaped '|' (token, quantity parts). */
static const char *unescaped_bar(const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '|')
            return p;
    }
    return NULL;
}

static const char *const prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};

static const char *take_prefix(const char **v)
{
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(*v, prefixes[i], 2) &&
            ((*v)[2] == '-' || (*v)[2] == '.' || ((*v)[2] >= '0' && (*v)[2] <= '9'))) {
            *v += 2;
            return prefixes[i];
        }
    return "eq";
}

static bool parse_date(struct ps *p, const char *name, const char *v, struct ehr_store_cond *c)
{
    c->op = take_prefix(&v);
    c->match = EHR_MATCH_RANGE;
    if (!ehr_search_date_range(v, &c->lo, &c->hi)) {
        fail(p, "value", name,
             "'%s' is not a date for parameter %s; use YYYY, YYYY-MM, YYYY-MM-DD or a full "
             "dateTime such as 2024-05-01T10:00:00Z, optionally after a prefix such as ge or lt",
             v, name);
        return false;
    }
    if (!strcmp(c->op, "ap")) { /* approximately: 10% of the distance to now, at least a day */
        int64_t now = ehr_time_now_us(), d = llabs(now - c->lo) / 10;
        if (d < 86400LL * 1000000)
            d = 86400LL * 1000000;
        c->lo -= d;
        c->hi += d;
    }
    return true;
}

/* A decimal with its implicit precision: "5.4" stands for [5.35, 5.45]. */
static bool parse_number(const char *v, double *x, double *lo, double *hi)
{
    if (!*v)
        return false;
    char *end;
    errno = 0;
    *x = strtod(v, &end);
    if (*end || errno || !isfinite(*x) ||
        !(isdigit((unsigned char)*v) || *v == '-' || *v == '+' || *v == '.'))
        return false;
    int places = 0;
    const char *dot = strchr(v, '.');
    const char *e = strpbrk(v, "eE");
    int exp = e ? atoi(e + 1) : 0;
    if (dot)
        places = (int)((e ? e : v + strlen(v)) - dot - 1);
    double half = 0.5 * pow(10, -(places - exp));
    /* [x - half, x + half): a hair inside, so that binary rounding of the
       bounds neither drops 5.35 nor takes 5.45 for 5.4 */
    *lo = *x - half * (1 + 1e-9);
    *hi = *x + half * (1 - 1e-9);
    return true;
}

static bool number_cond(struct ps *p, const char *name, const char *v, struct ehr_store_cond *c)
{
    c->op = take_prefix(&v);
    c->match = EHR_MATCH_RANGE;
    double x, lo, hi;
    if (!parse_number(v, &x, &lo, &hi)) {
        fail(p, "value", name, "'%s' is not a number for parameter %s", v, name);
        return false;
    }
    if (!strcmp(c->op, "eq") || !strcmp(c->op, "ne")) {
        c->num_lo = lo;
        c->num_hi = hi;
    } else if (!strcmp(c->op, "ap")) {
        double d = fabs(x) / 10;
        c->num_lo = x - d;
        c->num_hi = x + d;
    } else {
        c->num_lo = c->num_hi = x;
    }
    return true;
}

static bool quantity_cond(struct ps *p, const char *name, const char *v, struct ehr_store_cond *c)
{
    const char *bar = unescaped_bar(v);
    const char *num = bar ? ehr_arena_strndup(p->a, v, (size_t)(bar - v)) : v;
    if (!num || !number_cond(p, name, num, c))
        return false;
    if (!bar)
        return true;
    const char *rest = bar + 1, *bar2 = unescaped_bar(rest);
    if (!bar2) {
        fail(p, "value", name,
             "'%s' is not a quantity: use number, number|system|code or number||unit", v);
        return false;
    }
    const char *system = ehr_arena_strndup(p->a, rest, (size_t)(bar2 - rest));
    const char *code = bar2 + 1;
    c->s1 = system && *system ? system : NULL;
    c->s2 = *code ? code : NULL;
    double f;
    const char *cu;
    if (c->s2 && (!c->s1 || !strcmp(c->s1, "http://unitsofmeasure.org")) &&
        ehr_search_ucum_canonical(c->s2, 1.0, p->a, &cu, &f) && f > 0) {
        c->canon = cu;
        c->canon_lo = c->num_lo * f;
        c->canon_hi = c->num_hi * f;
    }
    return true;
}

static void token_value(struct ps *p, const char *v, struct ehr_store_cond *c)
{
    const char *bar = unescaped_bar(v);
    if (!bar) {
        c->s1 = NULL;
        c->s2 = v;
        return;
    }
    c->s1 = ehr_arena_strndup(p->a, v, (size_t)(bar - v));
    c->s2 = bar[1] ? bar + 1 : NULL;
}

static bool reference_value(struct ps *p, const struct ehr_sp *sp, const char *name,
                            const char *type_mod, const char *v, struct ehr_store_cond *c)
{
    const char *t, *id;
    c->match = EHR_MATCH_EQ;
    if (strchr(v, '/') && ehr_search_ref_parts(v, p->a, &t, &id)) {
        if (type_mod && strcmp(type_mod, t)) {
            fail(p, "value", name, "reference '%s' is not of type %s", v, type_mod);
            return false;
        }
        c->s1 = t;
        c->s2 = id; /* an absolute URL matches by its type and id too */
        return true;
    }
    if (strstr(v, "://") || !strncmp(v, "urn:", 4)) {
        c->s3 = v;
        return true;
    }
    if (!*v || strchr(v, '/')) {
        fail(p, "value", name, "'%s' is not a reference: use id, Type/id or an absolute URL", v);
        return false;
    }
    c->s1 = type_mod;
    c->s2 = v;
    (void)sp;
    return true;
}

/* ---- one filter parameter into a clause ---- */

static bool filter(struct ps *p, const char *type, const char *name, const char *value, int depth,
                   struct ehr_store_clause *out);

static struct ehr_store_query *subquery(struct ps *p, const char *type, const char *name,
                                        const char *value, int depth)
{
    struct ehr_store_query *sq = ehr_arena_calloc(p->a, 1, sizeof *sq);
    struct ehr_store_clause *cl = ehr_arena_calloc(p->a, 1, sizeof *cl);
    if (!sq || !cl)
        return NULL;
    sq->type = type;
    if (!filter(p, type, name, value, depth, cl))
        return NULL;
    sq->clauses = cl;
    sq->n_clauses = 1;
    return sq;
}

/* _has:Type:param:rest=value */
static bool has_filter(struct ps *p, const char *type, const char *name, const char *value,
                       int depth, struct ehr_store_clause *out)
{
    const char *s = name + 5;
    const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 == s || c2 == c1 + 1 || !c2[1]) {
        fail(p, "invalid", name,
             "'%s' is not a _has parameter: use _has:Type:reference-parameter:parameter=value",
             name);
        return false;
    }
    char *rtype = ehr_arena_strndup(p->a, s, (size_t)(c1 - s));
    char *rparam = ehr_arena_strndup(p->a, c1 + 1, (size_t)(c2 - c1 - 1));
    if (!rtype || !rparam)
        return false;
    if (!ehr_fhir_resource_type(rtype)) {
        fail(p, "invalid", name, "%s in %s is not a resource type", rtype, name);
        return false;
    }
    const struct ehr_sp *sp = ehr_sp_find(rtype, rparam);
    if (!sp || sp->kind != EHR_SP_REFERENCE) {
        fail(p, "invalid", name, "%s is not a reference parameter of %s", rparam, rtype);
        return false;
    }
    /* a parameter that never refers to this type simply matches nothing */
    struct ehr_store_query *sq = subquery(p, rtype, c2 + 1, value, depth + 1);
    struct ehr_store_cond *c = ehr_arena_calloc(p->a, 1, sizeof *c);
    if (!sq || !c)
        return false;
    c->kind = EHR_IDX_REFERENCE;
    c->match = EHR_MATCH_HAS;
    c->param = rparam;
    c->sub = sq;
    out->conds = c;
    out->n_conds = 1;
    return true;
}

/* param[:Type].rest=value */
static bool chain_filter(struct ps *p, const char *type, const char *name, const char *dot,
                         const char *value, int depth, struct ehr_store_clause *out)
{
    char *head = ehr_arena_strndup(p->a, name, (size_t)(dot - name));
    if (!head)
        return false;
    char *mod = strchr(head, ':');
    if (mod)
        *mod++ = '\0';
    const struct ehr_sp *sp = ehr_sp_find(type, head);
    if (!sp) {
        unknown(p, name, "search parameter '%s' is not defined for %s", head,
                type ? type : "every type");
        return false;
    }
    if (sp->kind != EHR_SP_REFERENCE) {
        fail(p, "invalid", name, "'%s' chains through %s, which is not a reference parameter", name,
             head);
        return false;
    }
    if (mod && (!ehr_fhir_resource_type(mod) || !ehr_sp_targets(sp, mod))) {
        fail(p, "invalid", name, "'%s' is not a target type of %s", mod, head);
        return false;
    }
    /* the target types: the modifier's, or every target that has the
       chained parameter */
    const char *rest = dot + 1;
    char first[128];
    size_t fl = strcspn(rest, ".:");
    if (fl >= sizeof first)
        fl = sizeof first - 1;
    memcpy(first, rest, fl);
    first[fl] = '\0';
    const char *targets[64];
    size_t nt = 0;
    if (mod) {
        targets[nt++] = mod;
    } else if (sp->targets) {
        for (const char *t = sp->targets; *t && nt < 64;) {
            size_t len = strcspn(t, " ");
            char *tt = ehr_arena_strndup(p->a, t, len);
            if (tt && ehr_sp_find(tt, first))
                targets[nt++] = tt;
            t += len;
            while (*t == ' ')
                t++;
        }
    }
    if (nt == 0) {
        fail(p, "invalid", name, "no target type of %s has a search parameter '%s'", head, first);
        return false;
    }
    struct ehr_store_cond *cs = ehr_arena_calloc(p->a, nt, sizeof *cs);
    if (!cs)
        return false;
    for (size_t i = 0; i < nt; i++) {
        if (mod && !ehr_sp_find(targets[i], first)) {
            fail(p, "invalid", name, "%s has no search parameter '%s'", targets[i], first);
            return false;
        }
        struct ehr_store_query *sq = subquery(p, targets[i], rest, value, depth + 1);
        if (!sq)
            return false;
        cs[i].kind = EHR_IDX_REFERENCE;
        cs[i].match = EHR_MATCH_CHAIN;
        cs[i].param = sp->code;
        cs[i].s1 = targets[i];
        cs[i].sub = sq;
    }
    out->conds = cs;
    out->n_conds = nt;
    return true;
}

static bool value_cond(struct ps *p, const struct ehr_sp *sp, ehr_sp_kind kind, const char *name,
                       const char *mod, const char *v, struct ehr_store_cond *c)
{
    c->kind = ehr_search_idx_kind(kind);
    c->match = EHR_MATCH_EQ;
    switch (kind) {
    case EHR_SP_STRING:
        if (mod && !strcmp(mod, "exact")) {
            c->s2 = v;
        } else {
            c->match = mod && !strcmp(mod, "contains") ? EHR_MATCH_CONTAINS : EHR_MATCH_PREFIX;
            c->s1 = ehr_search_normalize(p->a, v, strlen(v));
        }
        return true;
    case EHR_SP_TOKEN:
        if (mod && !strcmp(mod, "text")) {
            c->match = EHR_MATCH_TEXT;
            c->s1 = ehr_search_normalize(p->a, v, strlen(v));
            return true;
        }
        if (mod && !strcmp(mod, "of-type")) {
            /* system|code|value */
            const char *b1 = unescaped_bar(v), *b2 = b1 ? unescaped_bar(b1 + 1) : NULL;
            if (!b2 || !b2[1]) {
                fail(p, "value", name, "%s takes type-system|type-code|value", name);
                return false;
            }
            c->s1 = ehr_arena_strndup(p->a, v, (size_t)(b1 - v));
            c->s2 = b1 + 1;
            return true;
        }
        token_value(p, v, c);
        return true;
    case EHR_SP_DATE:
        return parse_date(p, name, v, c);
    case EHR_SP_NUMBER:
        return number_cond(p, name, v, c);
    case EHR_SP_QUANTITY:
        return quantity_cond(p, name, v, c);
    case EHR_SP_REFERENCE:
        if (mod && !strcmp(mod, "identifier")) {
            c->kind = EHR_IDX_TOKEN;
            token_value(p, v, c);
            return true;
        }
        return reference_value(p, sp, name, mod, v, c);
    case EHR_SP_URI:
        c->s1 = v;
        if (mod && !strcmp(mod, "below"))
            c->match = EHR_MATCH_PREFIX;
        else if (mod && !strcmp(mod, "above"))
            c->match = EHR_MATCH_ABOVE;
        return true;
    default:
        fail(p, "not-supported", name, "parameter %s cannot be searched", name);
        return false;
    }
}

static bool modifier_ok(const struct ehr_sp *sp, const char *mod)
{
    if (!mod || !strcmp(mod, "missing"))
        return true;
    switch (sp->kind) {
    case EHR_SP_STRING:
        return !strcmp(mod, "exact") || !strcmp(mod, "contains");
    case EHR_SP_TOKEN:
        return !strcmp(mod, "not") || !strcmp(mod, "text") ||
               (!strcmp(mod, "of-type") && !strcmp(sp->code, "identifier"));
    case EHR_SP_REFERENCE:
        return !strcmp(mod, "identifier") ||
               (ehr_fhir_resource_type(mod) && ehr_sp_targets(sp, mod));
    case EHR_SP_URI:
        return !strcmp(mod, "below") || !strcmp(mod, "above");
    default:
        return false;
    }
}

static bool composite_cond(struct ps *p, const struct ehr_sp *sp, const char *name, const char *v,
                           struct ehr_store_cond *c)
{
    const char **parts;
    size_t np = split_values(p->a, v, '$', &parts);
    size_t nc = 0;
    while (sp->components && sp->components[nc].code)
        nc++;
    if (np != nc || nc == 0) {
        fail(p, "value", name, "%s takes %zu values separated by '$'", name, nc);
        return false;
    }
    struct ehr_store_cond *pc = ehr_arena_calloc(p->a, nc, sizeof *pc);
    if (!pc)
        return false;
    for (size_t i = 0; i < nc; i++) {
        char pn[160];
        snprintf(pn, sizeof pn, "%s$%zu", sp->code, i);
        if (!value_cond(p, NULL, sp->components[i].kind, name, NULL, parts[i], &pc[i]))
            return false;
        pc[i].param = ehr_arena_strdup(p->a, pn);
    }
    c->kind = EHR_IDX_TOKEN;
    c->match = EHR_MATCH_COMPOSITE;
    c->param = sp->code;
    c->parts = pc;
    c->n_parts = nc;
    return true;
}

/* _text, _content: every word of a value starts a word of the text (FTS5
 * prefix queries); commas are OR. */
static bool text_filter(struct ps *p, const struct ehr_sp *sp, const char *name, const char *mod,
                        const char *value, struct ehr_store_clause *out)
{
    if (mod) {
        fail(p, "not-supported", name, "%s takes no modifier", sp->code);
        return false;
    }
    const char **vals;
    size_t nv = split_values(p->a, value, ',', &vals);
    if (nv > EHR_SEARCH_MAX_OR) {
        fail(p, "too-costly", name, "%s has %zu values; at most %d are allowed", name, nv,
             EHR_SEARCH_MAX_OR);
        return false;
    }
    struct ehr_store_cond *cs = ehr_arena_calloc(p->a, nv ? nv : 1, sizeof *cs);
    if (!cs || !vals)
        return false;
    for (size_t i = 0; i < nv; i++) {
        const char *norm = ehr_search_normalize(p->a, vals[i], strlen(vals[i]));
        ehr_buf b = EHR_BUF_INIT;
        size_t words = 0;
        for (const char *q = norm; q && *q;) {
            while (*q && !isalnum((unsigned char)*q) && !((unsigned char)*q & 0x80))
                q++;
            size_t len = 0;
            while (q[len] && (isalnum((unsigned char)q[len]) || ((unsigned char)q[len] & 0x80)))
                len++;
            if (!len)
                break;
            ehr_buf_printf(&b, "%s\"%.*s\"*", words++ ? " " : "", (int)len, q);
            q += len;
        }
        if (!words) {
            ehr_buf_free(&b);
            fail(p, "value", name, "%s needs at least one word", name);
            return false;
        }
        cs[i].kind = EHR_IDX_TEXT;
        cs[i].match = EHR_MATCH_TEXT;
        cs[i].param = sp->code;
        cs[i].s1 = ehr_arena_strndup(p->a, b.data, b.len);
        ehr_buf_free(&b);
    }
    out->conds = cs;
    out->n_conds = nv;
    return true;
}

static bool filter(struct ps *p, const char *type, const char *name, const char *value, int depth,
                   struct ehr_store_clause *out)
{
    if (depth > EHR_SEARCH_MAX_CHAIN) {
        fail(p, "too-costly", name, "chains and _has nest at most %d deep", EHR_SEARCH_MAX_CHAIN);
        return false;
    }
    if (!strncmp(name, "_has:", 5))
        return has_filter(p, type, name, value, depth, out);
    if (!strcmp(name, "_list")) /* the items of List/value: _has:List:item:_id=value */
        return has_filter(p, type, "_has:List:item:_id", value, depth, out);
    const char *dot = strchr(name, '.');
    if (dot)
        return chain_filter(p, type, name, dot, value, depth, out);
    char code[128];
    const char *colon = strchr(name, ':');
    size_t cl = colon ? (size_t)(colon - name) : strlen(name);
    if (cl >= sizeof code) {
        unknown(p, name, "search parameter '%.40s...' is not defined", name);
        return false;
    }
    memcpy(code, name, cl);
    code[cl] = '\0';
    const char *mod = colon ? colon + 1 : NULL;
    const struct ehr_sp *sp = ehr_sp_find(type, code);
    if (sp && (!strcmp(code, "_text") || !strcmp(code, "_content")))
        return text_filter(p, sp, name, mod, value, out);
    if (!sp || sp->kind == EHR_SP_SPECIAL || !strcmp(code, "_query")) {
        unknown(p, name, "search parameter '%s' is not %s for %s", code,
                sp ? "supported" : "defined", type ? type : "a search across all types");
        return false;
    }
    if (!modifier_ok(sp, mod)) {
        fail(p, "not-supported", name, "modifier ':%s' does not apply to %s (a %s parameter)", mod,
             code,
             (const char *[]){"string", "token", "date", "reference", "quantity", "number", "uri",
                              "composite", "special"}[sp->kind]);
        return false;
    }
    if (mod && !strcmp(mod, "missing")) {
        if (strcmp(value, "true") && strcmp(value, "false")) {
            fail(p, "value", name, "%s takes true or false", name);
            return false;
        }
        if (!strcmp(code, "_id") || !strcmp(code, "_lastUpdated")) {
            /* every resource has them: missing=true matches nothing */
            out->negate = !strcmp(value, "false");
            out->n_conds = 0;
            return true;
        }
        struct ehr_store_cond *c = ehr_arena_calloc(p->a, 1, sizeof *c);
        if (!c)
            return false;
        c->kind = ehr_search_idx_kind(sp->kind);
        c->param = sp->kind == EHR_SP_COMPOSITE ? ehr_arena_strdup(p->a, "") : sp->code;
        c->match = EHR_MATCH_ANY;
        if (sp->kind == EHR_SP_COMPOSITE) {
            char pn[160];
            snprintf(pn, sizeof pn, "%s$0", sp->code);
            c->param = ehr_arena_strdup(p->a, pn);
        }
        out->negate = !strcmp(value, "true");
        out->conds = c;
        out->n_conds = 1;
        return true;
    }
    const char **vals;
    size_t nv = split_values(p->a, value, ',', &vals);
    if (nv > EHR_SEARCH_MAX_OR) {
        fail(p, "too-costly", name, "%s has %zu values; at most %d are allowed in one parameter",
             name, nv, EHR_SEARCH_MAX_OR);
        return false;
    }
    struct ehr_store_cond *cs = ehr_arena_calloc(p->a, nv ? nv : 1, sizeof *cs);
    if (!cs || !vals)
        return false;
    bool ok = true;
    for (size_t i = 0; i < nv && ok; i++) {
        if (!strcmp(code, "_id")) {
            cs[i].kind = EHR_IDX_TOKEN;
            cs[i].match = EHR_MATCH_EQ;
            cs[i].s2 = vals[i];
        } else if (sp->kind == EHR_SP_COMPOSITE) {
            ok = composite_cond(p, sp, name, vals[i], &cs[i]);
            continue;
        } else {
            ok = value_cond(p, sp, sp->kind, name, mod, vals[i], &cs[i]);
        }
        cs[i].param = sp->code;
        if (mod && !strcmp(mod, "of-type"))
            cs[i].param = "identifier:of-type";
        else if (mod && !strcmp(mod, "identifier") && sp->kind == EHR_SP_REFERENCE) {
            char pn[160];
            snprintf(pn, sizeof pn, "%s:identifier", sp->code);
            cs[i].param = ehr_arena_strdup(p->a, pn);
        }
    }
    if (!ok)
        return false;
    out->negate = mod && !strcmp(mod, "not");
    out->conds = cs;
    out->n_conds = nv;
    return true;
}

/* ---- result parameters ---- */

static bool parse_sort(struct ps *p, const char *type, const char *value, ehr_store_query *q)
{
    const char **keys;
    size_t nk = split_values(p->a, value, ',', &keys);
    if (nk > EHR_SEARCH_MAX_SORT) {
        fail(p, "too-costly", "_sort", "_sort takes at most %d keys", EHR_SEARCH_MAX_SORT);
        return false;
    }
    struct ehr_store_sort *ss = ehr_arena_calloc(p->a, nk ? nk : 1, sizeof *ss);
    if (!ss)
        return false;
    for (size_t i = 0; i < nk; i++) {
        const char *k = keys[i];
        ss[i].desc = *k == '-';
        if (*k == '-')
            k++;
        const struct ehr_sp *sp = ehr_sp_find(type, k);
        if (!sp || sp->kind == EHR_SP_COMPOSITE || sp->kind == EHR_SP_SPECIAL ||
            !strcmp(k, "_text") || !strcmp(k, "_content")) {
            fail(p, "not-supported", "_sort", "cannot sort %s by '%s'",
                 type ? type : "a search across all types", k);
            return false;
        }
        ss[i].param = sp->code;
        ss[i].kind = ehr_search_idx_kind(sp->kind);
    }
    q->sort = ss;
    q->n_sort = nk;
    return true;
}

static bool parse_include(struct ps *p, const char *type, const char *name, const char *value,
                          struct ehr_store_include *inc)
{
    inc->reverse = !strncmp(name, "_revinclude", 11);
    const char *mod = strchr(name, ':');
    if (mod && strcmp(mod, ":iterate") && strcmp(mod, ":recurse")) {
        fail(p, "not-supported", name, "modifier '%s' does not apply to %s", mod, name);
        return false;
    }
    inc->iterate = mod != NULL;
    if (!strcmp(value, "*")) {
        inc->source = inc->reverse ? NULL : type;
        return true;
    }
    const char **parts;
    size_t np = split_values(p->a, value, ':', &parts);
    if (np < 2 || np > 3 || !ehr_fhir_resource_type(parts[0])) {
        fail(p, "value", name, "'%s' is not an include: use SourceType:parameter[:TargetType]",
             value);
        return false;
    }
    inc->source = parts[0];
    if (!inc->reverse && type && strcmp(parts[0], type) && !inc->iterate) {
        fail(p, "value", name, "_include=%s names %s, but this search is of %s", value, parts[0],
             type);
        return false;
    }
    if (!strcmp(parts[1], "*")) {
        inc->param = NULL;
    } else {
        const struct ehr_sp *sp = ehr_sp_find(parts[0], parts[1]);
        if (!sp || sp->kind != EHR_SP_REFERENCE) {
            fail(p, "value", name, "%s is not a reference parameter of %s", parts[1], parts[0]);
            return false;
        }
        inc->param = sp->code;
        if (np == 3 && (!ehr_fhir_resource_type(parts[2]) || !ehr_sp_targets(sp, parts[2]))) {
            fail(p, "value", name, "%s is not a target type of %s.%s", parts[2], parts[0],
                 parts[1]);
            return false;
        }
    }
    inc->target = np == 3 ? parts[2] : NULL;
    return true;
}

static bool whole(const char *v, long max, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < 0 || x > max)
        return false;
    *out = x;
    return true;
}

static void url_encode(ehr_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || strchr("-._~:/|$,*", ch))
            ehr_buf_putc(b, (char)ch);
        else
            ehr_buf_printf(b, "%%%02X", ch);
    }
}

static void self_add(ehr_search *s, const char *name, const char *value)
{
    if (s->self.len)
        ehr_buf_putc(&s->self, '&');
    url_encode(&s->self, name);
    ehr_buf_putc(&s->self, '=');
    url_encode(&s->self, value);
}

ehr_status ehr_search_parse(const char *type, const struct ehr_search_param *params, size_t n,
                            bool strict, ehr_arena *arena, ehr_search *s, ehr_fhir_issues *issues)
{
    memset(s, 0, sizeof *s);
    s->q.type = type;
    s->q.count = EHR_SEARCH_DEFAULT_COUNT;
    s->q.want_total = true;
    s->q.max_includes = EHR_SEARCH_MAX_INCLUDED;
    struct ps p = {.a = arena, .issues = issues, .strict = strict};
    struct ehr_store_clause *clauses = ehr_arena_calloc(arena, n ? n : 1, sizeof *clauses);
    struct ehr_store_include *incs = ehr_arena_calloc(arena, EHR_SEARCH_MAX_INCLUDES, sizeof *incs);
    if (!clauses || !incs)
        return EHR_ENOMEM;
    size_t nc = 0, ni = 0;

    for (size_t i = 0; i < n; i++) {
        const char *name = params[i].name, *value = params[i].value;
        long v;
        if (!strcmp(name, "_count")) {
            if (!whole(value, 1000000000L, &v)) {
                fail(&p, "value", "_count", "_count must be a whole number from 0 to %d",
                     EHR_SEARCH_MAX_COUNT);
                continue;
            }
            s->q.count = v > EHR_SEARCH_MAX_COUNT ? EHR_SEARCH_MAX_COUNT : (size_t)v;
            continue;
        } else if (!strcmp(name, "_offset")) {
            if (!whole(value, 100000000L, &v)) {
                fail(&p, "value", "_offset", "_offset must be a whole number, 0 or more");
                continue;
            }
            s->q.offset = (size_t)v;
            continue;
        } else if (!strcmp(name, "_after") || !strcmp(name, "_before")) {
            char *end;
            long long k = strtoll(value, &end, 10);
            if (!*value || *end || k <= 0) {
                fail(&p, "value", name, "%s is a paging cursor from a next or previous link", name);
                continue;
            }
            if (name[1] == 'a')
                s->q.after = k;
            else
                s->q.before = k;
            continue;
        } else if (!strcmp(name, "_total")) {
            if (strcmp(value, "none") && strcmp(value, "estimate") && strcmp(value, "accurate")) {
                fail(&p, "value", "_total", "_total takes none, estimate or accurate");
                continue;
            }
            s->total_none = !strcmp(value, "none");
            s->total_accurate = !strcmp(value, "accurate");
        } else if (!strcmp(name, "_summary")) {
            static const char *const names[] = {"false", "true", "text", "data", "count"};
            static const ehr_search_summary vals[] = {EHR_SUMMARY_NONE, EHR_SUMMARY_TRUE,
                                                      EHR_SUMMARY_TEXT, EHR_SUMMARY_DATA,
                                                      EHR_SUMMARY_COUNT};
            size_t k = 0;
            while (k < 5 && strcmp(value, names[k]))
                k++;
            if (k == 5) {
                fail(&p, "value", "_summary", "_summary takes true, false, text, data or count");
                continue;
            }
            s->summary = vals[k];
            s->summary_count = s->summary == EHR_SUMMARY_COUNT;
        } else if (!strcmp(name, "_elements")) {
            const char **els;
            size_t ne = split_values(arena, value, ',', &els);
            if (ne > EHR_SEARCH_MAX_ELEMENTS) {
                fail(&p, "too-costly", "_elements", "_elements names at most %d elements",
                     EHR_SEARCH_MAX_ELEMENTS);
                continue;
            }
            s->elements = els;
            s->n_elements = ne;
        } else if (!strcmp(name, "_sort")) {
            if (!parse_sort(&p, type, value, &s->q))
                continue;
        } else if (!strncmp(name, "_include", 8) || !strncmp(name, "_revinclude", 11)) {
            if (ni == EHR_SEARCH_MAX_INCLUDES) {
                fail(&p, "too-costly", name, "at most %d _include and _revinclude parameters",
                     EHR_SEARCH_MAX_INCLUDES);
                continue;
            }
            if (!parse_include(&p, type, name, value, &incs[ni]))
                continue;
            ni++;
        } else if (!strcmp(name, "_type")) {
            const char **ts;
            size_t nt = split_values(arena, value, ',', &ts);
            struct ehr_store_cond *cs = ehr_arena_calloc(arena, nt ? nt : 1, sizeof *cs);
            if (!cs || !ts)
                return EHR_ENOMEM;
            bool ok = nt <= EHR_SEARCH_MAX_OR;
            for (size_t k = 0; k < nt && ok; k++) {
                const ehr_fhir_type *rt = ehr_fhir_resource_type(ts[k]);
                if (!rt || rt->is_abstract) {
                    fail(&p, "value", "_type", "'%s' is not a resource type", ts[k]);
                    ok = false;
                }
                cs[k].kind = EHR_IDX_TOKEN;
                cs[k].param = "_type";
                cs[k].s2 = ts[k];
            }
            if (!ok)
                continue;
            if (nt == 1 && !type)
                s->q.type = type = ts[0]; /* one type: its parameters apply */
            clauses[nc].conds = cs;
            clauses[nc].n_conds = nt;
            nc++;
        } else if (!strcmp(name, "_format") || !strcmp(name, "_pretty")) {
            continue; /* handled by the REST layer, not part of the query */
        } else if (!strcmp(name, "_contained") || !strcmp(name, "_containedType")) {
            if (strcmp(value, "false")) {
                unknown(&p, name, "%s is not supported", name);
                continue;
            }
        } else {
            if (nc == EHR_SEARCH_MAX_PARAMS) {
                fail(&p, "too-costly", name, "a search takes at most %d filter parameters",
                     EHR_SEARCH_MAX_PARAMS);
                continue;
            }
            if (!filter(&p, type, name, value, 0, &clauses[nc]))
                continue;
            nc++;
        }
        self_add(s, name, value);
    }
    s->q.clauses = clauses;
    s->q.n_clauses = nc;
    s->q.includes = incs;
    s->q.n_includes = ni;
    s->n_ignored = p.n_ignored;
    if (s->summary_count)
        s->q.count = 0;
    if (!s->self.data && s->self.len == 0)
        ehr_buf_puts(&s->self, "");
    return p.res;
}

void ehr_search_done(ehr_search *s)
{
    ehr_buf_free(&s->self);
}
