/*
 * fn_convert.c - conversion functions (N1 section 5.5), math (5.7 of
 * FHIRPath 2.0), lowBoundary/highBoundary/precision, comparable and the
 * date/time component functions of FHIRPath 2.0.
 */
#include <math.h>
#include <string.h>

#include "fhirpath/fn.h"

static bool ci_eq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (l != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = p[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a + 32);
        if (a != lit[i])
            return false;
    }
    return true;
}

/* ---- the conversions: each fills *r and returns true when possible ---- */

static bool conv_bool(fp_ctx *c, const fp_item *it, fp_item *r)
{
    static const char *const t[] = {"true", "t", "yes", "y", "1", "1.0"};
    static const char *const f[] = {"false", "f", "no", "n", "0", "0.0"};
    switch (it->kind) {
    case EHR_FHIRPATH_BOOLEAN:
        fp_mk_bool(r, it->v.b);
        return true;
    case EHR_FHIRPATH_INTEGER:
        if (it->v.i != 0 && it->v.i != 1)
            return false;
        fp_mk_bool(r, it->v.i == 1);
        return true;
    case EHR_FHIRPATH_DECIMAL: {
        fp_dec one = fp_dec_from_int(1);
        if (fp_dec_is_zero(it->v.d))
            fp_mk_bool(r, false);
        else if (fp_dec_cmp(it->v.d, one) == 0)
            fp_mk_bool(r, true);
        else
            return false;
        return true;
    }
    case EHR_FHIRPATH_STRING:
        for (size_t i = 0; i < 6; i++) {
            if (ci_eq(it->v.s.p, it->v.s.n, t[i])) {
                fp_mk_bool(r, true);
                return true;
            }
            if (ci_eq(it->v.s.p, it->v.s.n, f[i])) {
                fp_mk_bool(r, false);
                return true;
            }
        }
        return false;
    default:
        return false;
    }
}

/* (\+|-)?\d+ or (\+|-)?\d+(\.\d+)? */
static bool num_text(const char *p, size_t n, bool allow_dec)
{
    size_t i = 0;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        i++;
    size_t d = i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i == d)
        return false;
    if (i < n && p[i] == '.' && allow_dec) {
        size_t f = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == f)
            return false;
    }
    return i == n;
}

static bool conv_int(fp_ctx *c, const fp_item *it, fp_item *r)
{
    switch (it->kind) {
    case EHR_FHIRPATH_INTEGER:
        fp_mk_int(r, it->v.i);
        return true;
    case EHR_FHIRPATH_BOOLEAN:
        fp_mk_int(r, it->v.b);
        return true;
    case EHR_FHIRPATH_STRING: {
        fp_dec d;
        int64_t v;
        if (!num_text(it->v.s.p, it->v.s.n, false) ||
            !fp_dec_parse(it->v.s.p[0] == '+' ? it->v.s.p + 1 : it->v.s.p,
                          it->v.s.p[0] == '+' ? it->v.s.n - 1 : it->v.s.n, &d) ||
            !fp_dec_to_int64(d, &v) || v > INT32_MAX || v < INT32_MIN)
            return false;
        fp_mk_int(r, v);
        return true;
    }
    default:
        return false;
    }
}

static bool conv_dec(fp_ctx *c, const fp_item *it, fp_item *r)
{
    switch (it->kind) {
    case EHR_FHIRPATH_INTEGER:
        fp_mk_dec(r, fp_dec_from_int(it->v.i));
        return true;
    case EHR_FHIRPATH_DECIMAL:
        fp_mk_dec(r, it->v.d);
        return true;
    case EHR_FHIRPATH_BOOLEAN: {
        fp_dec d;
        fp_dec_parse(it->v.b ? "1.0" : "0.0", 3, &d);
        fp_mk_dec(r, d);
        return true;
    }
    case EHR_FHIRPATH_STRING: {
        fp_dec d;
        const char *p = it->v.s.p;
        size_t n = it->v.s.n;
        if (!num_text(p, n, true))
            return false;
        if (p[0] == '+') {
            p++;
            n--;
        }
        if (!fp_dec_parse(p, n, &d))
            return false;
        fp_mk_dec(r, d);
        return true;
    }
    default:
        return false;
    }
}

static bool conv_string(fp_ctx *c, const fp_item *it, fp_item *r)
{
    size_t n;
    const char *p = fp_item_to_string(c, it, &n);
    if (!p)
        return false;
    fp_mk_str(r, p, n);
    return true;
}

static bool conv_dt(fp_ctx *c, const fp_item *it, fp_item *r, int kind)
{
    memset(r, 0, sizeof *r);
    r->kind = (uint8_t)kind;
    if (it->kind == EHR_FHIRPATH_STRING)
        return fp_dt_parse(it->v.s.p, it->v.s.n, kind, &r->v.dt) && fp_dt_valid(&r->v.dt, kind);
    if (kind == EHR_FHIRPATH_TIME)
        return it->kind == EHR_FHIRPATH_TIME && (r->v.dt = it->v.dt, true);
    if (it->kind != EHR_FHIRPATH_DATE && it->kind != EHR_FHIRPATH_DATETIME)
        return false;
    r->v.dt = it->v.dt;
    if (kind == EHR_FHIRPATH_DATE && r->v.dt.prec > EHR_FHIRPATH_PREC_DAY) {
        /* the date part as written, no time zone conversion */
        r->v.dt.prec = EHR_FHIRPATH_PREC_DAY;
        r->v.dt.hour = r->v.dt.minute = r->v.dt.second = 0;
        r->v.dt.ms = 0;
        r->v.dt.has_tz = false;
        r->v.dt.tz = 0;
    }
    return true;
}

static bool conv_date(fp_ctx *c, const fp_item *it, fp_item *r)
{
    return conv_dt(c, it, r, EHR_FHIRPATH_DATE);
}

static bool conv_datetime(fp_ctx *c, const fp_item *it, fp_item *r)
{
    return conv_dt(c, it, r, EHR_FHIRPATH_DATETIME);
}

static bool conv_time(fp_ctx *c, const fp_item *it, fp_item *r)
{
    return conv_dt(c, it, r, EHR_FHIRPATH_TIME);
}

static bool conv_qty(fp_ctx *c, const fp_item *it, fp_item *r)
{
    fp_qty *q = fp_alloc(c, sizeof *q);
    if (!q)
        return false;
    memset(q, 0, sizeof *q);
    q->unit = "1";
    q->quoted = true;
    switch (it->kind) {
    case EHR_FHIRPATH_INTEGER:
        q->value = fp_dec_from_int(it->v.i);
        break;
    case EHR_FHIRPATH_DECIMAL:
        q->value = it->v.d;
        break;
    case EHR_FHIRPATH_BOOLEAN:
        fp_dec_parse(it->v.b ? "1.0" : "0.0", 3, &q->value);
        break;
    case EHR_FHIRPATH_STRING:
        if (!fp_qty_parse_string(it->v.s.p, it->v.s.n, c->arena, q))
            return false;
        break;
    default: {
        const fp_qty *x = fp_item_quantity(c, it);
        if (!x)
            return false;
        *q = *x;
        break;
    }
    }
    memset(r, 0, sizeof *r);
    r->kind = EHR_FHIRPATH_QUANTITY;
    r->v.q = q;
    return true;
}

typedef bool (*conv_fn)(fp_ctx *c, const fp_item *it, fp_item *r);

static ehr_status convert(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out, conv_fn f,
                          bool test)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it)
        return st;
    fp_item r;
    bool ok = !(it->flags & FP_F_NOVALUE) && f(c, it, &r);
    if (c->fail)
        return c->fail;
    if (test)
        return fp_push_bool(c, out, ok);
    return ok ? fp_push(c, out, &r) : EHR_OK;
}

#define CONVERSION(name, fn, test)                                                                 \
    static ehr_status name(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,      \
                           fp_coll *out)                                                           \
    {                                                                                              \
        return convert(c, n, in, out, fn, test);                                                   \
    }

CONVERSION(fn_to_boolean, conv_bool, false)
CONVERSION(fn_converts_to_boolean, conv_bool, true)
CONVERSION(fn_to_integer, conv_int, false)
CONVERSION(fn_converts_to_integer, conv_int, true)
CONVERSION(fn_to_decimal, conv_dec, false)
CONVERSION(fn_converts_to_decimal, conv_dec, true)
CONVERSION(fn_to_string, conv_string, false)
CONVERSION(fn_converts_to_string, conv_string, true)
CONVERSION(fn_to_date, conv_date, false)
CONVERSION(fn_converts_to_date, conv_date, true)
CONVERSION(fn_to_datetime, conv_datetime, false)
CONVERSION(fn_converts_to_datetime, conv_datetime, true)
CONVERSION(fn_to_time, conv_time, false)
CONVERSION(fn_converts_to_time, conv_time, true)

static ehr_status quantity_conv(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                fp_coll *out, bool test)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it)
        return st;
    const char *unit = NULL;
    size_t ul = 0;
    if (n->nargs && (st = fp_arg_str(c, n, s, 0, &unit, &ul)))
        return st;
    fp_item r;
    bool ok = !(it->flags & FP_F_NOVALUE) && conv_qty(c, it, &r);
    if (c->fail)
        return c->fail;
    if (ok && unit) {
        fp_qty *q = fp_alloc(c, sizeof *q);
        if (!q)
            return c->fail;
        ok = fp_qty_convert(r.v.q, unit, ul, c->arena, q);
        r.v.q = q;
    }
    if (test)
        return fp_push_bool(c, out, ok);
    return ok ? fp_push(c, out, &r) : EHR_OK;
}

static ehr_status fn_to_quantity(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    return quantity_conv(c, n, s, in, out, false);
}

static ehr_status fn_converts_to_quantity(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                          const fp_coll *in, fp_coll *out)
{
    return quantity_conv(c, n, s, in, out, true);
}

/* ---- math ---- */

/* The input as a number (Integer or Decimal), or a quantity. */
static ehr_status math_input(fp_ctx *c, const fp_node *n, const fp_coll *in, const fp_item **it,
                             bool allow_qty)
{
    ehr_status st = fp_input_single(c, n, in, it);
    if (st || !*it)
        return st;
    int k = (*it)->kind;
    if ((*it)->flags & FP_F_NOVALUE) {
        *it = NULL;
        return EHR_OK;
    }
    if (k == EHR_FHIRPATH_INTEGER || k == EHR_FHIRPATH_DECIMAL)
        return EHR_OK;
    if (allow_qty && fp_item_quantity(c, *it))
        return EHR_OK;
    if (c->fail)
        return c->fail;
    const char *ns;
    return fp_error(c, n, "%s() needs a number, not %s", n->name, fp_item_type_name(*it, &ns));
}

static fp_dec as_dec(const fp_item *it)
{
    return it->kind == EHR_FHIRPATH_INTEGER ? fp_dec_from_int(it->v.i) : it->v.d;
}

static ehr_status push_qty(fp_ctx *c, fp_coll *out, const fp_qty *q, fp_dec v)
{
    fp_qty *r = fp_alloc(c, sizeof *r);
    if (!r)
        return c->fail;
    *r = *q;
    r->value = v;
    fp_item it;
    memset(&it, 0, sizeof it);
    it.kind = EHR_FHIRPATH_QUANTITY;
    it.v.q = r;
    return fp_push(c, out, &it);
}

static ehr_status fn_abs(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    const fp_item *it;
    ehr_status st = math_input(c, n, in, &it, true);
    if (st || !it)
        return st;
    if (it->kind == EHR_FHIRPATH_INTEGER)
        return it->v.i == INT64_MIN ? EHR_OK
                                    : fp_push_int(c, out, it->v.i < 0 ? -it->v.i : it->v.i);
    if (it->kind == EHR_FHIRPATH_DECIMAL)
        return fp_push_dec(c, out, fp_dec_abs(it->v.d));
    const fp_qty *q = fp_item_quantity(c, it);
    return push_qty(c, out, q, fp_dec_abs(q->value));
}

static ehr_status rounding(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out, int mode)
{
    const fp_item *it;
    ehr_status st = math_input(c, n, in, &it, true);
    if (st || !it)
        return st;
    if (it->kind == EHR_FHIRPATH_INTEGER)
        return fp_push_int(c, out, it->v.i);
    const fp_qty *q = it->kind == EHR_FHIRPATH_DECIMAL ? NULL : fp_item_quantity(c, it);
    fp_dec d = q ? q->value : it->v.d, r;
    fp_dec_round(d, 0, mode, &r);
    if (q)
        return push_qty(c, out, q, r);
    int64_t v;
    if (!fp_dec_to_int64(r, &v))
        return EHR_OK;
    return fp_push_int(c, out, v);
}

static ehr_status fn_ceiling(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    return rounding(c, n, in, out, FP_ROUND_CEIL);
}

static ehr_status fn_floor(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    return rounding(c, n, in, out, FP_ROUND_FLOOR);
}

static ehr_status fn_truncate(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    return rounding(c, n, in, out, FP_ROUND_TRUNC);
}

static ehr_status fn_round(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    const fp_item *it;
    ehr_status st = math_input(c, n, in, &it, true);
    if (st || !it)
        return st;
    bool present = false;
    int64_t prec = 0;
    if (n->nargs && (st = fp_arg_int(c, n, s, 0, &present, &prec)))
        return st;
    if (prec < 0)
        return fp_error(c, n, "round() needs a precision of 0 or more");
    if (prec > FP_DEC_MAX_SCALE)
        prec = FP_DEC_MAX_SCALE;
    const fp_qty *q = it->kind == EHR_FHIRPATH_QUANTITY || it->kind == EHR_FHIRPATH_OBJECT
                          ? fp_item_quantity(c, it)
                          : NULL;
    fp_dec d = q ? q->value : as_dec(it), r;
    fp_dec_round(d, (int)prec, FP_ROUND_HALF_UP, &r);
    if (q)
        return push_qty(c, out, q, r);
    return fp_push_dec(c, out, r);
}

/* exp, ln, sqrt through doubles: results keep 15 significant digits */
static ehr_status transcendental(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out,
                                 int which)
{
    const fp_item *it;
    ehr_status st = math_input(c, n, in, &it, false);
    if (st || !it)
        return st;
    double x = fp_dec_to_double(as_dec(it)), r;
    switch (which) {
    case 0:
        r = exp(x);
        break;
    case 1:
        if (x <= 0)
            return EHR_OK;
        r = log(x);
        break;
    default:
        if (x < 0)
            return EHR_OK;
        r = sqrt(x);
        break;
    }
    fp_dec d;
    if (!fp_dec_from_double(r, &d))
        return EHR_OK;
    return fp_push_dec(c, out, d);
}

static ehr_status fn_exp(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    return transcendental(c, n, in, out, 0);
}

static ehr_status fn_ln(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                        fp_coll *out)
{
    return transcendental(c, n, in, out, 1);
}

static ehr_status fn_sqrt(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    return transcendental(c, n, in, out, 2);
}

static ehr_status number_arg(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, fp_dec *d,
                             bool *present, bool *is_int)
{
    fp_coll tmp;
    const fp_item *it;
    ehr_status st = fp_arg_single(c, n, s, i, &tmp, &it);
    *present = false;
    if (st || !it)
        return st;
    if (it->kind != EHR_FHIRPATH_INTEGER && it->kind != EHR_FHIRPATH_DECIMAL)
        return fp_error(c, n->args[i], "argument %d of %s() must be a number", i + 1, n->name);
    *d = as_dec(it);
    *present = true;
    if (is_int)
        *is_int = it->kind == EHR_FHIRPATH_INTEGER;
    return EHR_OK;
}

static ehr_status fn_log(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                         fp_coll *out)
{
    const fp_item *it;
    ehr_status st = math_input(c, n, in, &it, false);
    fp_dec base;
    bool present;
    if (st || !it || (st = number_arg(c, n, s, 0, &base, &present, NULL)) || !present)
        return st;
    double x = fp_dec_to_double(as_dec(it)), b = fp_dec_to_double(base);
    if (x <= 0 || b <= 0 || b == 1)
        return EHR_OK;
    fp_dec d;
    if (!fp_dec_from_double(log(x) / log(b), &d))
        return EHR_OK;
    return fp_push_dec(c, out, d);
}

static ehr_status fn_power(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    const fp_item *it;
    ehr_status st = math_input(c, n, in, &it, false);
    fp_dec e;
    bool present, e_int;
    if (st || !it || (st = number_arg(c, n, s, 0, &e, &present, &e_int)) || !present)
        return st;
    int64_t k;
    if (fp_dec_is_integer(e) && fp_dec_to_int64(e, &k) && k >= 0 && k <= 1000) {
        /* exact: repeated multiplication */
        if (it->kind == EHR_FHIRPATH_INTEGER && e_int) {
            int64_t r = 1;
            for (int64_t i = 0; i < k; i++)
                if (__builtin_mul_overflow(r, it->v.i, &r))
                    return EHR_OK;
            return fp_push_int(c, out, r);
        }
        fp_dec r = fp_dec_from_int(1), b = as_dec(it);
        for (int64_t i = 0; i < k; i++)
            if (!fp_dec_mul(r, b, &r))
                return EHR_OK;
        return fp_push_dec(c, out, r);
    }
    double x = fp_dec_to_double(as_dec(it)), y = fp_dec_to_double(e);
    double r = pow(x, y);
    fp_dec d;
    if (isnan(r) || !fp_dec_from_double(r, &d))
        return EHR_OK;
    return fp_push_dec(c, out, d);
}

/* ---- boundaries and precision (FHIRPath 2.0, STU) ---- */

static int dt_digits(const fp_dt *d, int kind)
{
    static const int date_digits[] = {0, 4, 6, 8, 10, 12, 14, 17};
    static const int time_digits[] = {0, 0, 0, 0, 2, 4, 6, 9};
    return kind == EHR_FHIRPATH_TIME ? time_digits[d->prec] : date_digits[d->prec];
}

static int prec_of_digits(int digits, int kind)
{
    if (kind == EHR_FHIRPATH_TIME) {
        switch (digits) {
        case 2:
            return EHR_FHIRPATH_PREC_HOUR;
        case 4:
            return EHR_FHIRPATH_PREC_MINUTE;
        case 6:
            return EHR_FHIRPATH_PREC_SECOND;
        case 9:
            return EHR_FHIRPATH_PREC_MILLISECOND;
        default:
            return 0;
        }
    }
    switch (digits) {
    case 4:
        return EHR_FHIRPATH_PREC_YEAR;
    case 6:
        return EHR_FHIRPATH_PREC_MONTH;
    case 8:
        return EHR_FHIRPATH_PREC_DAY;
    case 10:
        return kind == EHR_FHIRPATH_DATETIME ? EHR_FHIRPATH_PREC_HOUR : 0;
    case 12:
        return kind == EHR_FHIRPATH_DATETIME ? EHR_FHIRPATH_PREC_MINUTE : 0;
    case 14:
        return kind == EHR_FHIRPATH_DATETIME ? EHR_FHIRPATH_PREC_SECOND : 0;
    case 17:
        return kind == EHR_FHIRPATH_DATETIME ? EHR_FHIRPATH_PREC_MILLISECOND : 0;
    default:
        return 0;
    }
}

/*
 * Decimal boundaries: the value is uncertain by half a unit of its last
 * written digit (1.587 lies in [1.5865, 1.5875)); the low boundary at a
 * precision truncates that range's lower end, the high boundary rounds its
 * upper end; negative values mirror positive ones (the suite's
 * LowBoundary/HighBoundary groups).
 */
static bool dec_boundary(fp_dec v, int prec, bool high, fp_dec *out)
{
    bool neg = v.m < 0 || v.negzero;
    fp_dec a = fp_dec_abs(v);
    fp_dec half;
    fp_dec_parse("5", 1, &half);
    half.scale = a.scale + 1;
    fp_dec x;
    if (!fp_dec_rescale(a, a.scale + 1, &a))
        return false;
    /* for a negative value, low(-x) = -high(x) and high(-x) = -low(x) */
    bool up = high != neg;
    if (up ? !fp_dec_add(a, half, &x) : !fp_dec_sub(a, half, &x))
        return false;
    fp_dec r;
    if (!fp_dec_round(x, prec, up ? FP_ROUND_HALF_UP : FP_ROUND_TRUNC, &r) ||
        !fp_dec_rescale(r, prec, &r))
        return false;
    if (neg) {
        r = fp_dec_neg(r);
        r.negzero = r.m == 0;
    }
    *out = r;
    return true;
}

static void dt_fill(fp_dt *d, int kind, int prec, bool high)
{
    if (kind != EHR_FHIRPATH_TIME) {
        if (d->prec < EHR_FHIRPATH_PREC_MONTH)
            d->month = high ? 12 : 1;
        if (d->prec < EHR_FHIRPATH_PREC_DAY)
            d->day = (uint8_t)(high ? fp_days_in_month(d->year, d->month) : 1);
    }
    if (d->prec < EHR_FHIRPATH_PREC_HOUR)
        d->hour = high ? 23 : 0;
    if (d->prec < EHR_FHIRPATH_PREC_MINUTE)
        d->minute = high ? 59 : 0;
    if (d->prec < EHR_FHIRPATH_PREC_SECOND)
        d->second = high ? 59 : 0;
    if (d->prec < EHR_FHIRPATH_PREC_MILLISECOND) {
        d->ms = high ? 999 : 0;
        d->ms_digits = 3;
    }
    if (kind == EHR_FHIRPATH_DATETIME && prec >= EHR_FHIRPATH_PREC_HOUR && !d->has_tz) {
        /* no zone: the widest range, from +14:00 to -12:00 */
        d->has_tz = true;
        d->tz = (int16_t)(high ? -12 * 60 : 14 * 60);
    }
    d->prec = (uint8_t)prec;
}

static ehr_status boundary(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out, bool high)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it || (it->flags & FP_F_NOVALUE))
        return st;
    bool present = false;
    int64_t prec = -1;
    if (n->nargs && (st = fp_arg_int(c, n, s, 0, &present, &prec)))
        return st;
    int k = it->kind;
    if (k == EHR_FHIRPATH_INTEGER || k == EHR_FHIRPATH_DECIMAL || k == EHR_FHIRPATH_QUANTITY ||
        (k == EHR_FHIRPATH_OBJECT && fp_item_quantity(c, it))) {
        const fp_qty *q = (k == EHR_FHIRPATH_INTEGER || k == EHR_FHIRPATH_DECIMAL)
                              ? NULL
                              : fp_item_quantity(c, it);
        if (!present)
            prec = 8;
        if (prec < 0 || prec > FP_DEC_MAX_SCALE)
            return EHR_OK;
        fp_dec r;
        if (!dec_boundary(q ? q->value : as_dec(it), (int)prec, high, &r))
            return EHR_OK;
        return q ? push_qty(c, out, q, r) : fp_push_dec(c, out, r);
    }
    if (k != EHR_FHIRPATH_DATE && k != EHR_FHIRPATH_DATETIME && k != EHR_FHIRPATH_TIME) {
        if (c->fail)
            return c->fail;
        return fp_error(c, n, "%s() needs a number, date or time", n->name);
    }
    if (!present)
        prec = k == EHR_FHIRPATH_DATE ? 8 : k == EHR_FHIRPATH_TIME ? 9 : 17;
    int p = prec_of_digits((int)prec, k);
    if (!p)
        return EHR_OK;
    fp_item r = *it;
    r.ftype = NULL;
    r.node = NULL;
    r.ext = NULL;
    /* an hour-only dateTime counts as hh:00 (it is not a valid FHIR value) */
    if (k == EHR_FHIRPATH_DATETIME && r.v.dt.prec == EHR_FHIRPATH_PREC_HOUR)
        r.v.dt.prec = EHR_FHIRPATH_PREC_MINUTE;
    if (p > r.v.dt.prec)
        dt_fill(&r.v.dt, k, p, high);
    else
        r.v.dt.prec = (uint8_t)p;
    if (p < EHR_FHIRPATH_PREC_HOUR) {
        r.v.dt.has_tz = false;
        r.v.dt.tz = 0;
    }
    return fp_push(c, out, &r);
}

static ehr_status fn_low_boundary(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                  fp_coll *out)
{
    return boundary(c, n, s, in, out, false);
}

static ehr_status fn_high_boundary(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                   const fp_coll *in, fp_coll *out)
{
    return boundary(c, n, s, in, out, true);
}

static ehr_status fn_precision(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it || (it->flags & FP_F_NOVALUE))
        return st;
    switch (it->kind) {
    case EHR_FHIRPATH_INTEGER:
        return fp_push_int(c, out, 0);
    case EHR_FHIRPATH_DECIMAL:
        return fp_push_int(c, out, it->v.d.scale);
    case EHR_FHIRPATH_DATE:
    case EHR_FHIRPATH_DATETIME:
    case EHR_FHIRPATH_TIME:
        return fp_push_int(c, out, dt_digits(&it->v.dt, it->kind));
    default:
        return fp_error(c, n, "precision() needs a number, date or time");
    }
}

static ehr_status fn_comparable(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                fp_coll *out)
{
    const fp_item *it, *o;
    fp_coll tmp;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it || (st = fp_arg_single(c, n, s, 0, &tmp, &o)) || !o)
        return st;
    /* numbers take part as quantities of unit '1' (FHIRPath 2.0) */
    fp_item qa, qb;
    if ((it->kind == EHR_FHIRPATH_INTEGER || it->kind == EHR_FHIRPATH_DECIMAL) &&
        conv_qty(c, it, &qa))
        it = &qa;
    if ((o->kind == EHR_FHIRPATH_INTEGER || o->kind == EHR_FHIRPATH_DECIMAL) && conv_qty(c, o, &qb))
        o = &qb;
    const fp_qty *a = fp_item_quantity(c, it), *b = fp_item_quantity(c, o);
    if (!a || !b)
        return c->fail;
    int r;
    return fp_push_bool(c, out, fp_qty_compare(a, b, 2, &r) != FP_EMPTY);
}

/* ---- date/time components (FHIRPath 2.0, STU) ---- */

static ehr_status component(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out, int which)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    if (st || !it || (it->flags & FP_F_NOVALUE))
        return st;
    int k = it->kind;
    if (k != EHR_FHIRPATH_DATE && k != EHR_FHIRPATH_DATETIME && k != EHR_FHIRPATH_TIME)
        return EHR_OK;
    const fp_dt *d = &it->v.dt;
    bool is_time = k == EHR_FHIRPATH_TIME;
    if (which <= EHR_FHIRPATH_PREC_DAY && is_time)
        return EHR_OK;
    if (which >= EHR_FHIRPATH_PREC_HOUR && which <= EHR_FHIRPATH_PREC_MILLISECOND &&
        k == EHR_FHIRPATH_DATE)
        return EHR_OK;
    if (which >= 1 && which <= 7 && d->prec < which)
        return EHR_OK;
    switch (which) {
    case EHR_FHIRPATH_PREC_YEAR:
        return fp_push_int(c, out, d->year);
    case EHR_FHIRPATH_PREC_MONTH:
        return fp_push_int(c, out, d->month);
    case EHR_FHIRPATH_PREC_DAY:
        return fp_push_int(c, out, d->day);
    case EHR_FHIRPATH_PREC_HOUR:
        return fp_push_int(c, out, d->hour);
    case EHR_FHIRPATH_PREC_MINUTE:
        return fp_push_int(c, out, d->minute);
    case EHR_FHIRPATH_PREC_SECOND:
        return fp_push_int(c, out, d->second);
    case EHR_FHIRPATH_PREC_MILLISECOND:
        return fp_push_int(c, out, d->ms);
    case 8: { /* timezoneOffsetOf */
        if (k != EHR_FHIRPATH_DATETIME || !d->has_tz)
            return EHR_OK;
        fp_dec r;
        if (!fp_dec_div_scale(fp_dec_from_int(d->tz), fp_dec_from_int(60), 2, &r))
            return EHR_OK;
        r = fp_dec_strip(r);
        if (r.scale == 0)
            r.m *= 10, r.scale = 1;
        return fp_push_dec(c, out, r);
    }
    case 9: { /* dateOf */
        if (is_time)
            return EHR_OK;
        fp_item r;
        if (!conv_dt(c, it, &r, EHR_FHIRPATH_DATE))
            return EHR_OK;
        return fp_push(c, out, &r);
    }
    default: { /* timeOf */
        if (k != EHR_FHIRPATH_DATETIME || d->prec < EHR_FHIRPATH_PREC_HOUR)
            return EHR_OK;
        fp_item r;
        memset(&r, 0, sizeof r);
        r.kind = EHR_FHIRPATH_TIME;
        r.v.dt = *d;
        r.v.dt.year = 0;
        r.v.dt.month = r.v.dt.day = 0;
        r.v.dt.has_tz = false;
        r.v.dt.tz = 0;
        return fp_push(c, out, &r);
    }
    }
}

#define COMPONENT(name, which)                                                                     \
    static ehr_status name(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,      \
                           fp_coll *out)                                                           \
    {                                                                                              \
        return component(c, n, in, out, which);                                                    \
    }

COMPONENT(fn_year_of, EHR_FHIRPATH_PREC_YEAR)
COMPONENT(fn_month_of, EHR_FHIRPATH_PREC_MONTH)
COMPONENT(fn_day_of, EHR_FHIRPATH_PREC_DAY)
COMPONENT(fn_hour_of, EHR_FHIRPATH_PREC_HOUR)
COMPONENT(fn_minute_of, EHR_FHIRPATH_PREC_MINUTE)
COMPONENT(fn_second_of, EHR_FHIRPATH_PREC_SECOND)
COMPONENT(fn_millisecond_of, EHR_FHIRPATH_PREC_MILLISECOND)
COMPONENT(fn_timezone_offset_of, 8)
COMPONENT(fn_date_of, 9)
COMPONENT(fn_time_of, 10)

const fp_fn fp_fns_convert[] = {
    {"toBoolean", 0, 0, fn_to_boolean, 0},
    {"convertsToBoolean", 0, 0, fn_converts_to_boolean, 0},
    {"toInteger", 0, 0, fn_to_integer, 0},
    {"convertsToInteger", 0, 0, fn_converts_to_integer, 0},
    {"toDecimal", 0, 0, fn_to_decimal, 0},
    {"convertsToDecimal", 0, 0, fn_converts_to_decimal, 0},
    {"toString", 0, 0, fn_to_string, 0},
    {"convertsToString", 0, 0, fn_converts_to_string, 0},
    {"toDate", 0, 0, fn_to_date, 0},
    {"convertsToDate", 0, 0, fn_converts_to_date, 0},
    {"toDateTime", 0, 0, fn_to_datetime, 0},
    {"convertsToDateTime", 0, 0, fn_converts_to_datetime, 0},
    {"toTime", 0, 0, fn_to_time, 0},
    {"convertsToTime", 0, 0, fn_converts_to_time, 0},
    {"toQuantity", 0, 1, fn_to_quantity, 0},
    {"convertsToQuantity", 0, 1, fn_converts_to_quantity, 0},
    {"abs", 0, 0, fn_abs, 0},
    {"ceiling", 0, 0, fn_ceiling, 0},
    {"floor", 0, 0, fn_floor, 0},
    {"truncate", 0, 0, fn_truncate, 0},
    {"round", 0, 1, fn_round, 0},
    {"exp", 0, 0, fn_exp, 0},
    {"ln", 0, 0, fn_ln, 0},
    {"sqrt", 0, 0, fn_sqrt, 0},
    {"log", 1, 1, fn_log, 0},
    {"power", 1, 1, fn_power, 0},
    {"lowBoundary", 0, 1, fn_low_boundary, 0},
    {"highBoundary", 0, 1, fn_high_boundary, 0},
    {"precision", 0, 0, fn_precision, 0},
    {"comparable", 1, 1, fn_comparable, 0},
    {"yearOf", 0, 0, fn_year_of, 0},
    {"monthOf", 0, 0, fn_month_of, 0},
    {"dayOf", 0, 0, fn_day_of, 0},
    {"hourOf", 0, 0, fn_hour_of, 0},
    {"minuteOf", 0, 0, fn_minute_of, 0},
    {"secondOf", 0, 0, fn_second_of, 0},
    {"millisecondOf", 0, 0, fn_millisecond_of, 0},
    {"timezoneOffsetOf", 0, 0, fn_timezone_offset_of, 0},
    {"dateOf", 0, 0, fn_date_of, 0},
    {"timeOf", 0, 0, fn_time_of, 0},
};
const size_t fp_n_fns_convert = sizeof fp_fns_convert / sizeof fp_fns_convert[0];
