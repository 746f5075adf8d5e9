/*
 * quantity.c - Quantity comparison, conversion and arithmetic (FHIRPath N1
 * section 4.1.6, 6.1 and 6.6 with the calendar duration rules of 4.2.1.2.1).
 *
 * Calendar durations (1 year, 4 days) and UCUM definite durations (1 'a',
 * 4 'd') are the same for weeks and below; years and months are only
 * equivalent (~) to 'a' and 'mo', never equal or ordered.
 */
#include <stdio.h>
#include <string.h>

#include "fhirpath/fhirpath_int.h"

/* UCUM code that a calendar unit stands for (years and months only
 * equivalently). */
static const char *cal_ucum(int cal)
{
    switch (cal) {
    case FP_CAL_YEAR:
        return "a";
    case FP_CAL_MONTH:
        return "mo";
    case FP_CAL_WEEK:
        return "wk";
    case FP_CAL_DAY:
        return "d";
    case FP_CAL_HOUR:
        return "h";
    case FP_CAL_MINUTE:
        return "min";
    case FP_CAL_SECOND:
        return "s";
    case FP_CAL_MILLISECOND:
        return "ms";
    default:
        return NULL;
    }
}

/* Calendar unit length in seconds for conversions between calendar units
 * (FHIRPath 2.0: a year is 365 days and a month 30 days). */
static fp_dec cal_seconds(int cal)
{
    static const char *const secs[] = {
        [FP_CAL_YEAR] = "31536000", [FP_CAL_MONTH] = "2592000",     [FP_CAL_WEEK] = "604800",
        [FP_CAL_DAY] = "86400",     [FP_CAL_HOUR] = "3600",         [FP_CAL_MINUTE] = "60",
        [FP_CAL_SECOND] = "1",      [FP_CAL_MILLISECOND] = "0.001",
    };
    fp_dec d;
    fp_dec_parse(secs[cal], strlen(secs[cal]), &d);
    return d;
}

static bool is_one(const char *u)
{
    return u[0] == '1' && u[1] == '\0';
}

/* Decimal equivalence: equal after rounding both to the precision of the
 * less precise one (trailing zeros ignored). */
static bool dec_equiv(fp_dec a, fp_dec b)
{
    int pa = fp_dec_precision(a), pb = fp_dec_precision(b);
    int p = pa < pb ? pa : pb;
    fp_dec x, y;
    fp_dec_round(a, p, FP_ROUND_HALF_UP, &x);
    fp_dec_round(b, p, FP_ROUND_HALF_UP, &y);
    return fp_dec_cmp(x, y) == 0;
}

static int finish(int mode, int c, int *r)
{
    if (mode == 2) {
        *r = c;
        return FP_TRUE;
    }
    return c == 0 ? FP_TRUE : FP_FALSE;
}

/* value * num / den in the units of the other side: compare a*na*db with b*nb*da */
static int compare_factors(fp_dec va, fp_dec na, fp_dec da, fp_dec vb, fp_dec nb, fp_dec db,
                           int mode, int *r)
{
    if (mode == 1) {
        /* equivalence: convert the finer value into the coarser unit */
        fp_dec fa, fb;
        if (!fp_dec_mul(na, db, &fa) || !fp_dec_mul(nb, da, &fb))
            return FP_EMPTY;
        fp_dec conv;
        if (fp_dec_cmp(fa, fb) >= 0) {
            /* a coarser: vb * fb / fa in units of a */
            fp_dec t;
            if (!fp_dec_mul(vb, fb, &t) || !fp_dec_div_scale(t, fa, 20, &conv))
                return FP_EMPTY;
            return dec_equiv(va, fp_dec_strip(conv)) ? FP_TRUE : FP_FALSE;
        }
        fp_dec t;
        if (!fp_dec_mul(va, fa, &t) || !fp_dec_div_scale(t, fb, 20, &conv))
            return FP_EMPTY;
        return dec_equiv(fp_dec_strip(conv), vb) ? FP_TRUE : FP_FALSE;
    }
    fp_dec l, rr;
    if (!fp_dec_mul(va, na, &l) || !fp_dec_mul(l, db, &l) || !fp_dec_mul(vb, nb, &rr) ||
        !fp_dec_mul(rr, da, &rr)) {
        double x = fp_dec_to_double(va) * fp_dec_to_double(na) / fp_dec_to_double(da);
        double y = fp_dec_to_double(vb) * fp_dec_to_double(nb) / fp_dec_to_double(db);
        return finish(mode, x < y ? -1 : x > y, r);
    }
    return finish(mode, fp_dec_cmp(l, rr), r);
}

static bool commensurable(const fp_unit *a, const fp_unit *b)
{
    if (!a->valid || !b->valid || a->special || b->special || a->arbitrary || b->arbitrary)
        return false;
    return memcmp(a->dim, b->dim, sizeof a->dim) == 0;
}

static int ucum_compare(fp_dec va, const char *ua, fp_dec vb, const char *ub, int mode, int *r)
{
    if (strcmp(ua, ub) == 0) {
        if (mode == 1)
            return dec_equiv(va, vb) ? FP_TRUE : FP_FALSE;
        return finish(mode, fp_dec_cmp(va, vb), r);
    }
    fp_unit a, b;
    fp_ucum_parse(ua, strlen(ua), &a);
    fp_ucum_parse(ub, strlen(ub), &b);
    if (!commensurable(&a, &b))
        return FP_EMPTY;
    return compare_factors(va, a.num, a.den, vb, b.num, b.den, mode, r);
}

int fp_qty_compare(const fp_qty *a, const fp_qty *b, int mode, int *r)
{
    if (a->cal && b->cal) {
        if (a->cal == b->cal) {
            if (mode == 1)
                return dec_equiv(a->value, b->value) ? FP_TRUE : FP_FALSE;
            return finish(mode, fp_dec_cmp(a->value, b->value), r);
        }
        fp_dec one = fp_dec_from_int(1);
        bool ym_a = a->cal <= FP_CAL_MONTH, ym_b = b->cal <= FP_CAL_MONTH;
        if (ym_a && ym_b) {
            fp_dec twelve = fp_dec_from_int(12);
            return compare_factors(a->value, a->cal == FP_CAL_YEAR ? twelve : one, one, b->value,
                                   b->cal == FP_CAL_YEAR ? twelve : one, one, mode, r);
        }
        return compare_factors(a->value, cal_seconds(a->cal), one, b->value, cal_seconds(b->cal),
                               one, mode, r);
    }
    if (a->cal || b->cal) {
        int cal = a->cal ? a->cal : b->cal;
        if (cal <= FP_CAL_MONTH && mode != 1)
            return FP_EMPTY; /* 1 year = 1 'a' is unknown, 1 year ~ 1 'a' is true */
        const char *ua = a->cal ? cal_ucum(a->cal) : a->unit;
        const char *ub = b->cal ? cal_ucum(b->cal) : b->unit;
        return ucum_compare(a->value, ua, b->value, ub, mode, r);
    }
    return ucum_compare(a->value, a->unit, b->value, b->unit, mode, r);
}

static char *adup(ehr_arena *a, const char *s, size_t n)
{
    return ehr_arena_strndup(a, s, n);
}

/* v * n1/d1 / (n2/d2) */
static bool scale_value(fp_dec v, fp_dec n1, fp_dec d1, fp_dec n2, fp_dec d2, fp_dec *out)
{
    fp_dec num, den;
    if (!fp_dec_mul(v, n1, &num) || !fp_dec_mul(num, d2, &num) || !fp_dec_mul(d1, n2, &den))
        return false;
    if (!fp_dec_div_scale(num, den, 20, out))
        return false;
    *out = fp_dec_strip(*out);
    return true;
}

bool fp_qty_convert(const fp_qty *q, const char *unit, size_t len, ehr_arena *a, fp_qty *out)
{
    int tcal = fp_calendar_unit(unit, len);
    memset(out, 0, sizeof *out);
    out->unit = adup(a, unit, len);
    if (!out->unit)
        return false;
    out->cal = (uint8_t)tcal;
    out->quoted = tcal == FP_CAL_NONE;
    if ((!q->cal && is_one(q->unit)) ||
        (strlen(q->unit) == len && memcmp(q->unit, unit, len) == 0)) {
        /* a plain number takes the unit it is given (FHIRPath 2.0 toQuantity) */
        out->value = q->value;
        return true;
    }
    fp_dec one = fp_dec_from_int(1);
    if (q->cal && tcal) {
        if (q->cal <= FP_CAL_MONTH && tcal <= FP_CAL_MONTH) {
            fp_dec twelve = fp_dec_from_int(12);
            return scale_value(q->value, q->cal == FP_CAL_YEAR ? twelve : one, one,
                               tcal == FP_CAL_YEAR ? twelve : one, one, &out->value);
        }
        return scale_value(q->value, cal_seconds(q->cal), one, cal_seconds(tcal), one, &out->value);
    }
    /* explicit conversion between calendar and UCUM units goes through the
     * UCUM unit each calendar unit stands for */
    const char *from = q->cal ? cal_ucum(q->cal) : q->unit;
    const char *to = tcal ? cal_ucum(tcal) : out->unit;
    if (strcmp(from, to) == 0) {
        out->value = q->value;
        return true;
    }
    fp_unit uf, ut;
    fp_ucum_parse(from, strlen(from), &uf);
    fp_ucum_parse(to, strlen(to), &ut);
    if (!commensurable(&uf, &ut))
        return false;
    return scale_value(q->value, uf.num, uf.den, ut.num, ut.den, &out->value);
}

bool fp_qty_parse_string(const char *s, size_t len, ehr_arena *a, fp_qty *out)
{
    /* (\+|-)?\d+(\.\d+)?\s*('[^']+'|[a-zA-Z]+)? as FHIRPath 2.0 toQuantity() */
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t d0 = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d0)
        return false;
    if (i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f0)
            return false;
    }
    size_t vend = i;
    memset(out, 0, sizeof *out);
    if (!fp_dec_parse(s, vend, &out->value))
        return false;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == len) {
        out->unit = "1";
        out->quoted = true;
        return true;
    }
    if (s[i] == '\'') {
        size_t u0 = ++i;
        while (i < len && s[i] != '\'')
            i++;
        if (i >= len || i == u0 || i + 1 != len)
            return false;
        out->unit = adup(a, s + u0, i - u0);
        out->quoted = true;
        out->cal = (uint8_t)fp_calendar_unit(s + u0, i - u0);
        return out->unit != NULL;
    }
    size_t u0 = i;
    while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        i++;
    if (i != len)
        return false;
    int cal = fp_calendar_unit(s + u0, i - u0);
    if (!cal)
        return false;
    out->unit = adup(a, s + u0, i - u0);
    out->cal = (uint8_t)cal;
    return out->unit != NULL;
}

static const char *join_units(ehr_arena *a, const char *x, const char *y, bool div)
{
    if (!div) {
        if (is_one(x))
            return y;
        if (is_one(y))
            return x;
        if (y[0] == '/')
            return ehr_arena_printf(a, "%s%s", x, y);
        return ehr_arena_printf(a, "%s.%s", x, y);
    }
    if (is_one(y))
        return x;
    bool paren = strpbrk(y, "./") != NULL;
    if (is_one(x))
        return ehr_arena_printf(a, paren ? "/(%s)" : "/%s", y);
    return ehr_arena_printf(a, paren ? "%s/(%s)" : "%s/%s", x, y);
}

int fp_qty_arith(int op, const fp_qty *a, const fp_qty *b, ehr_arena *ar, fp_qty *out)
{
    memset(out, 0, sizeof *out);
    if (op == OP_PLUS || op == OP_MINUS) {
        fp_qty bb = *b;
        if (!(a->cal == b->cal && strcmp(a->unit, b->unit) == 0) && !is_one(b->unit)) {
            if (is_one(a->unit) && !a->cal) {
                /* 1 + 2 'cm' is 3 'cm' */
                fp_qty aa = *a;
                aa.unit = b->unit;
                aa.cal = b->cal;
                aa.quoted = b->quoted;
                return fp_qty_arith(op, &aa, b, ar, out);
            }
            /* years and months only with themselves: the conversion
             * factors are approximate (FHIRPath 2.0, 6.6.1) */
            if ((a->cal && a->cal <= FP_CAL_MONTH) || (b->cal && b->cal <= FP_CAL_MONTH))
                return FP_EMPTY;
            if (!fp_qty_convert(b, a->unit, strlen(a->unit), ar, &bb))
                return FP_EMPTY;
        }
        fp_dec v;
        bool ok =
            op == OP_PLUS ? fp_dec_add(a->value, bb.value, &v) : fp_dec_sub(a->value, bb.value, &v);
        if (!ok)
            return FP_EMPTY;
        *out = *a;
        out->value = v;
        return FP_TRUE;
    }
    bool div = op == OP_DIV;
    fp_dec v;
    if (div) {
        if (fp_dec_is_zero(b->value) || !fp_dec_div(a->value, b->value, &v))
            return FP_EMPTY;
    } else if (!fp_dec_mul(a->value, b->value, &v)) {
        return FP_EMPTY;
    }
    /* calendar durations only with plain numbers */
    if (a->cal || b->cal) {
        if (b->cal || !is_one(b->unit)) {
            if (!(a->cal == 0 && is_one(a->unit) && !div))
                return FP_EMPTY;
            *out = *b;
        } else {
            *out = *a;
        }
        out->value = v;
        return FP_TRUE;
    }
    fp_unit ua, ub;
    fp_ucum_parse(a->unit, strlen(a->unit), &ua);
    fp_ucum_parse(b->unit, strlen(b->unit), &ub);
    out->quoted = true;
    if (ua.valid && ub.valid && !ua.special && !ub.special && !ua.arbitrary && !ub.arbitrary &&
        !is_one(a->unit) && !is_one(b->unit)) {
        bool cancel = true;
        for (int i = 0; i < FP_UCUM_DIMS; i++)
            if (ua.dim[i] + (div ? -ub.dim[i] : ub.dim[i]) != 0)
                cancel = false;
        if (cancel) {
            /* m/m, cm.m-1: a plain number */
            fp_dec f;
            bool ok = div ? scale_value(v, ua.num, ua.den, ub.num, ub.den, &f)
                          : scale_value(v, ua.num, ua.den, ub.den, ub.num, &f);
            if (!ok)
                return FP_EMPTY;
            out->value = f;
            out->unit = "1";
            return FP_TRUE;
        }
    }
    out->value = v;
    out->unit = join_units(ar, a->unit, b->unit, div);
    return out->unit ? FP_TRUE : FP_EMPTY;
}

size_t fp_qty_format(const fp_qty *q, char *buf, size_t size)
{
    char num[64];
    fp_dec_format(q->value, num, sizeof num);
    int n;
    if (q->cal && !q->quoted)
        n = snprintf(buf, size, "%s %s", num, q->unit);
    else
        n = snprintf(buf, size, "%s '%s'", num, q->unit);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}
