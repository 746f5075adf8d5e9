#include "search/search.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "fhir/compartment.h"
#include "fhir/model.h"

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
        } else if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
                   hexval(s[i + 2]) >= 0) {
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

static const char *const prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};

static ehr_status parse_date(ehr_arena *a, const char *name, const char *v,
                             struct ehr_store_cond *c, ehr_fhir_issues *issues)
{
    c->op = "eq";
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(v, prefixes[i], 2) && v[2] >= '0' && v[2] <= '9') {
            c->op = prefixes[i];
            v += 2;
            break;
        }
    if (!ehr_search_date_range(v, &c->lo, &c->hi)) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "value", name,
                           "'%s' is not a date for parameter %s; use YYYY, YYYY-MM, YYYY-MM-DD "
                           "or a full dateTime, optionally after a prefix such as ge or lt",
                           v, name);
        return EHR_EINVAL;
    }
    return EHR_OK;
}

static void parse_token(ehr_arena *a, const char *v, struct ehr_store_cond *c)
{
    const char *bar = strchr(v, '|');
    if (!bar) {
        c->s1 = NULL;
        c->s2 = v;
        return;
    }
    c->s1 = ehr_arena_strndup(a, v, (size_t)(bar - v));
    c->s2 = bar[1] ? bar + 1 : NULL;
}

/* Split a comma-separated list of values (a \, is a literal comma). */
static size_t split_values(ehr_arena *a, const char *v, const char ***out)
{
    size_t cap = 1;
    for (const char *p = v; *p; p++)
        cap += *p == ',';
    const char **vals = ehr_arena_calloc(a, cap, sizeof *vals);
    char *cur = ehr_arena_alloc(a, strlen(v) + 1);
    if (!vals || !cur)
        return 0;
    size_t n = 0, j = 0;
    for (const char *p = v;; p++) {
        if (*p == '\\' && p[1] == ',') {
            cur[j++] = ',';
            p++;
        } else if (*p == ',' || *p == '\0') {
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

ehr_status ehr_search_parse(const char *type, const struct ehr_search_param *params, size_t n,
                            bool strict, ehr_arena *arena, ehr_search *s, ehr_fhir_issues *issues)
{
    memset(s, 0, sizeof *s);
    s->q.type = type;
    s->q.count = EHR_SEARCH_DEFAULT_COUNT;
    s->q.want_total = true;
    struct ehr_store_clause *clauses = ehr_arena_calloc(arena, n ? n : 1, sizeof *clauses);
    if (!clauses)
        return EHR_ENOMEM;
    const ehr_fhir_type *t = type ? ehr_fhir_resource_type(type) : NULL;
    bool has_identifier = t && ehr_fhir_element_find(t, "identifier", 10, NULL) != NULL;
    ehr_status res = EHR_OK;
    size_t nc = 0;

    for (size_t i = 0; i < n; i++) {
        const char *name = params[i].name, *value = params[i].value;
        bool used = true;
        if (!strcmp(name, "_count")) {
            char *end;
            long v = strtol(value, &end, 10);
            if (*value == '\0' || *end || v < 0) {
                ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "value", "_count",
                                   "_count must be a whole number from 0 to %d",
                                   EHR_SEARCH_MAX_COUNT);
                res = EHR_EINVAL;
                continue;
            }
            s->q.count = v > EHR_SEARCH_MAX_COUNT ? EHR_SEARCH_MAX_COUNT : (size_t)v;
        } else if (!strcmp(name, "_offset")) {
            char *end;
            long v = strtol(value, &end, 10);
            if (*value == '\0' || *end || v < 0) {
                ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "value", "_offset",
                                   "_offset must be a whole number, 0 or more");
                res = EHR_EINVAL;
                continue;
            }
            s->q.offset = (size_t)v;
        } else if (!strcmp(name, "_total")) {
            s->total_none = !strcmp(value, "none");
        } else if (!strcmp(name, "_summary") && !strcmp(value, "count")) {
            s->summary_count = true;
        } else if (!strcmp(name, "_format") || !strcmp(name, "_pretty")) {
            used = false; /* handled by the REST layer, not part of the query */
            continue;
        } else {
            /* a filter: _id, _lastUpdated, identifier, each value list ORed */
            const char *base = name, *modifier = strchr(name, ':');
            char pname[64];
            size_t bl = modifier ? (size_t)(modifier - name) : strlen(name);
            if (bl >= sizeof pname)
                bl = sizeof pname - 1;
            memcpy(pname, base, bl);
            pname[bl] = '\0';
            ehr_idx_kind kind;
            if (!strcmp(pname, "_id") || (!strcmp(pname, "identifier") && has_identifier))
                kind = EHR_IDX_TOKEN;
            else if (!strcmp(pname, "_lastUpdated"))
                kind = EHR_IDX_DATE;
            else {
                used = false;
                if (strict) {
                    ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "not-supported", name,
                                       "search parameter '%s' is not supported for %s", name,
                                       type ? type : "a search across all types");
                    res = EHR_EINVAL;
                } else {
                    ehr_fhir_issue_add(issues, EHR_SEV_WARNING, "not-supported", name,
                                       "search parameter '%s' is not supported for %s and was "
                                       "ignored",
                                       name, type ? type : "a search across all types");
                    s->n_ignored++;
                }
                continue;
            }
            if (modifier) {
                ehr_fhir_issue_add(issues, strict ? EHR_SEV_ERROR : EHR_SEV_WARNING,
                                   "not-supported", name, "modifier '%s' is not supported",
                                   modifier);
                if (strict)
                    res = EHR_EINVAL;
                else
                    s->n_ignored++;
                continue;
            }
            const char **vals = NULL;
            size_t nv = split_values(arena, value, &vals);
            struct ehr_store_cond *conds = ehr_arena_calloc(arena, nv ? nv : 1, sizeof *conds);
            if (!conds || !vals)
                return EHR_ENOMEM;
            for (size_t k = 0; k < nv; k++) {
                conds[k].kind = kind;
                conds[k].param = !strcmp(pname, "_id") ? "_id"
                                 : !strcmp(pname, "_lastUpdated") ? "_lastUpdated"
                                                                  : "identifier";
                conds[k].match = EHR_MATCH_EQ;
                if (kind == EHR_IDX_DATE) {
                    if (parse_date(arena, name, vals[k], &conds[k], issues))
                        res = EHR_EINVAL;
                } else if (!strcmp(pname, "_id")) {
                    conds[k].s2 = vals[k];
                } else {
                    parse_token(arena, vals[k], &conds[k]);
                }
            }
            clauses[nc].n_conds = nv;
            clauses[nc].conds = conds;
            nc++;
        }
        if (used) {
            if (s->self.len)
                ehr_buf_putc(&s->self, '&');
            ehr_buf_printf(&s->self, "%s=%s", name, value);
        }
    }
    s->q.clauses = clauses;
    s->q.n_clauses = nc;
    if (s->summary_count)
        s->q.count = 0;
    return res;
}

void ehr_search_done(ehr_search *s)
{
    ehr_buf_free(&s->self);
}

/* Index rows for every Identifier in res.identifier. */
static ehr_status add_identifiers(const json_t *ids, ehr_arena *a, struct ehr_store_value **vals,
                                  size_t *n, size_t *cap)
{
    size_t count = json_is_array(ids) ? json_array_size(ids) : (json_is_object(ids) ? 1 : 0);
    for (size_t i = 0; i < count; i++) {
        const json_t *id = json_is_array(ids) ? json_array_get(ids, i) : ids;
        const char *value = ehr_json_get_string(id, "value");
        if (!value)
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 8;
            struct ehr_store_value *p = ehr_arena_calloc(a, nc, sizeof *p);
            if (!p)
                return EHR_ENOMEM;
            if (*n)
                memcpy(p, *vals, *n * sizeof *p);
            *vals = p;
            *cap = nc;
        }
        const char *system = ehr_json_get_string(id, "system");
        struct ehr_store_value *v = &(*vals)[(*n)++];
        v->kind = EHR_IDX_TOKEN;
        v->param = "identifier";
        v->s1 = system ? system : "";
        v->s2 = value;
    }
    return EHR_OK;
}

ehr_status ehr_search_extract(const char *type, const char *id, const json_t *res,
                              ehr_arena *arena, ehr_store_index *out)
{
    memset(out, 0, sizeof *out);
    struct ehr_store_value *vals = NULL;
    size_t n = 0, cap = 0;
    ehr_status st = add_identifiers(json_object_get(res, "identifier"), arena, &vals, &n, &cap);
    if (st)
        return st;
    out->values = vals;
    out->n_values = n;
    const char **pats = NULL;
    size_t np = 0;
    st = ehr_fhir_patient_compartments(type, id, res, arena, &pats, &np);
    out->patients = pats;
    out->n_patients = np;
    return st;
}
