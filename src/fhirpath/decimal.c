/*
 * decimal.c - exact decimal arithmetic for FHIRPath Decimal values.
 *
 * FHIRPath N1 section 4.1.3 asks for fixed-precision decimals with at
 * least 28 digits and 8 places; doubles would make 2.2 mod 1.8 come out as
 * 0.40000000000000013. A value is a signed 128-bit mantissa and a scale
 * (digits after the point), so precision as written is kept (1.50 has two
 * places) and + - * are exact; division is rounded half up.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath/fhirpath_int.h"

/* 10^0 .. 10^38, computed by the compiler */
static const fp_i128 pow10_tab[39] = {
    (fp_i128)1ULL,
    (fp_i128)10ULL,
    (fp_i128)100ULL,
    (fp_i128)1000ULL,
    (fp_i128)10000ULL,
    (fp_i128)100000ULL,
    (fp_i128)1000000ULL,
    (fp_i128)10000000ULL,
    (fp_i128)100000000ULL,
    (fp_i128)1000000000ULL,
    (fp_i128)10000000000ULL,
    (fp_i128)100000000000ULL,
    (fp_i128)1000000000000ULL,
    (fp_i128)10000000000000ULL,
    (fp_i128)100000000000000ULL,
    (fp_i128)1000000000000000ULL,
    (fp_i128)10000000000000000ULL,
    (fp_i128)100000000000000000ULL,
    (fp_i128)1000000000000000000ULL,
    (fp_i128)10000000000000000000ULL,
    (fp_i128)10000000000000000000ULL * 10ULL,
    (fp_i128)10000000000000000000ULL * 100ULL,
    (fp_i128)10000000000000000000ULL * 1000ULL,
    (fp_i128)10000000000000000000ULL * 10000ULL,
    (fp_i128)10000000000000000000ULL * 100000ULL,
    (fp_i128)10000000000000000000ULL * 1000000ULL,
    (fp_i128)10000000000000000000ULL * 10000000ULL,
    (fp_i128)10000000000000000000ULL * 100000000ULL,
    (fp_i128)10000000000000000000ULL * 1000000000ULL,
    (fp_i128)10000000000000000000ULL * 10000000000ULL,
    (fp_i128)10000000000000000000ULL * 100000000000ULL,
    (fp_i128)10000000000000000000ULL * 1000000000000ULL,
    (fp_i128)10000000000000000000ULL * 10000000000000ULL,
    (fp_i128)10000000000000000000ULL * 100000000000000ULL,
    (fp_i128)10000000000000000000ULL * 1000000000000000ULL,
    (fp_i128)10000000000000000000ULL * 10000000000000000ULL,
    (fp_i128)10000000000000000000ULL * 100000000000000000ULL,
    (fp_i128)10000000000000000000ULL * 1000000000000000000ULL,
    (fp_i128)10000000000000000000ULL * 10000000000000000000ULL,
};

static fp_i128 p10(int n)
{
    return pow10_tab[n];
}

/* Largest mantissa we let values grow to: leaves room for one more digit. */
#define MAX_DIGITS 37

static bool too_big(fp_i128 m)
{
    fp_i128 lim = p10(MAX_DIGITS);
    return m >= lim || m <= -lim;
}

static fp_dec mk(fp_i128 m, int scale)
{
    fp_dec d;
    d.m = m;
    d.scale = scale;
    d.negzero = false;
    return d;
}

fp_dec fp_dec_from_int(int64_t v)
{
    return mk(v, 0);
}

bool fp_dec_parse(const char *s, size_t len, fp_dec *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    fp_i128 m = 0;
    int digits = 0, scale = 0, dropped = 0;
    bool any = false, round_up = false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (digits >= MAX_DIGITS)
            return false; /* integer part too large */
        m = m * 10 + (s[i] - '0');
        if (m != 0)
            digits++;
        any = true;
        i++;
    }
    if (!any)
        return false;
    if (i < len && s[i] == '.') {
        i++;
        bool frac = false;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (digits < MAX_DIGITS && scale < FP_DEC_MAX_SCALE) {
                m = m * 10 + (s[i] - '0');
                if (m != 0)
                    digits++;
                scale++;
            } else {
                /* beyond what we keep: round half up on the first dropped digit */
                if (dropped == 0 && s[i] >= '5')
                    round_up = true;
                dropped++;
            }
            frac = true;
            i++;
        }
        if (!frac)
            return false;
    }
    if (round_up)
        m += 1;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        int e = 0;
        bool edig = false;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (e < 1000)
                e = e * 10 + (s[i] - '0');
            edig = true;
            i++;
        }
        if (!edig)
            return false;
        if (eneg) {
            scale += e;
            if (scale > FP_DEC_MAX_SCALE) {
                /* round the excess away */
                int excess = scale - FP_DEC_MAX_SCALE;
                if (excess > 38) {
                    *out = mk(0, FP_DEC_MAX_SCALE);
                    return true;
                }
                fp_i128 q = m / p10(excess), r = m % p10(excess);
                if (r * 2 >= p10(excess))
                    q++;
                *out = mk(neg ? -q : q, FP_DEC_MAX_SCALE);
                return true;
            }
        } else {
            /* move the exponent into the scale first, then the mantissa */
            int take = e < scale ? e : scale;
            scale -= take;
            e -= take;
            for (; e > 0; e--) {
                if (too_big(m * 10))
                    return false;
                m *= 10;
            }
        }
    }
    if (i != len)
        return false;
    *out = mk(neg ? -m : m, scale);
    return true;
}

/* Bring a and b to the same scale; false when that overflows. */
static bool align(fp_dec *a, fp_dec *b)
{
    if (a->scale == b->scale)
        return true;
    fp_dec *lo = a->scale < b->scale ? a : b;
    fp_dec *hi = lo == a ? b : a;
    int diff = hi->scale - lo->scale;
    fp_i128 r;
    if (diff > 38 || __builtin_mul_overflow(lo->m, p10(diff), &r) || too_big(r)) {
        /* Give up places of the finer operand instead (rounding). */
        fp_dec s = fp_dec_strip(*hi);
        if (s.scale < hi->scale) {
            *hi = s;
            return align(a, b);
        }
        return false;
    }
    lo->m = r;
    lo->scale = hi->scale;
    return true;
}

bool fp_dec_add(fp_dec a, fp_dec b, fp_dec *out)
{
    if (!align(&a, &b))
        return false;
    fp_i128 r;
    if (__builtin_add_overflow(a.m, b.m, &r) || too_big(r))
        return false;
    *out = mk(r, a.scale);
    return true;
}

bool fp_dec_sub(fp_dec a, fp_dec b, fp_dec *out)
{
    return fp_dec_add(a, fp_dec_neg(b), out);
}

bool fp_dec_mul(fp_dec a, fp_dec b, fp_dec *out)
{
    fp_i128 r;
    if (__builtin_mul_overflow(a.m, b.m, &r) || too_big(r)) {
        fp_dec sa = fp_dec_strip(a), sb = fp_dec_strip(b);
        if (sa.scale == a.scale && sb.scale == b.scale)
            return false;
        return fp_dec_mul(sa, sb, out);
    }
    int scale = a.scale + b.scale;
    fp_dec d = mk(r, scale);
    if (scale > FP_DEC_MAX_SCALE)
        return fp_dec_round(d, FP_DEC_MAX_SCALE, FP_ROUND_HALF_UP, out);
    *out = d;
    return true;
}

bool fp_dec_div_scale(fp_dec a, fp_dec b, int scale, fp_dec *out)
{
    if (b.m == 0)
        return false;
    /* a/b = (ma * 10^(sb + scale - sa)) / mb, as mantissa at `scale` */
    for (; scale >= 0; scale--) {
        int e = b.scale + scale - a.scale;
        fp_i128 num = a.m, den = b.m;
        if (e >= 0) {
            if (e > 38 || __builtin_mul_overflow(num, p10(e), &num))
                continue;
        } else {
            if (-e > 38 || __builtin_mul_overflow(den, p10(-e), &den)) {
                *out = mk(0, scale);
                return true;
            }
        }
        fp_i128 q = num / den, r = num % den;
        fp_i128 ar = r < 0 ? -r : r, ad = den < 0 ? -den : den;
        if (ar >= ad - ar) /* 2|r| >= |den|: half away from zero */
            q += ((num < 0) != (den < 0)) ? -1 : 1;
        if (too_big(q))
            return false;
        *out = mk(q, scale);
        return true;
    }
    return false;
}

bool fp_dec_div(fp_dec a, fp_dec b, fp_dec *out)
{
    int scale = 8;
    if (a.scale > scale)
        scale = a.scale;
    if (b.scale > scale)
        scale = b.scale;
    if (!fp_dec_div_scale(a, b, scale, out))
        return false;
    /* trailing zeros go, down to the places the operands had: 15.0 / 3
     * is 5.0, 2 / 2 is 1 */
    int keep = a.scale > b.scale ? a.scale : b.scale;
    while (out->scale > keep && out->m % 10 == 0) {
        out->m /= 10;
        out->scale--;
    }
    return true;
}

bool fp_dec_div_int(fp_dec a, fp_dec b, fp_dec *out)
{
    if (b.m == 0 || !align(&a, &b))
        return false;
    *out = mk(a.m / b.m, 0);
    return true;
}

bool fp_dec_mod(fp_dec a, fp_dec b, fp_dec *out)
{
    if (b.m == 0 || !align(&a, &b))
        return false;
    *out = mk(a.m % b.m, a.scale);
    return true;
}

int fp_dec_cmp(fp_dec a, fp_dec b)
{
    if (a.m == 0 && b.m == 0)
        return 0;
    if ((a.m < 0) != (b.m < 0) || a.m == 0 || b.m == 0) {
        /* signs differ (or one is zero) */
        int sa = a.m < 0 ? -1 : a.m > 0, sb = b.m < 0 ? -1 : b.m > 0;
        return sa < sb ? -1 : sa > sb;
    }
    if (!align(&a, &b)) {
        double x = fp_dec_to_double(a), y = fp_dec_to_double(b);
        return x < y ? -1 : x > y;
    }
    return a.m < b.m ? -1 : a.m > b.m;
}

bool fp_dec_is_zero(fp_dec a)
{
    return a.m == 0;
}

fp_dec fp_dec_neg(fp_dec a)
{
    return mk(-a.m, a.scale);
}

fp_dec fp_dec_abs(fp_dec a)
{
    return mk(a.m < 0 ? -a.m : a.m, a.scale);
}

bool fp_dec_round(fp_dec a, int scale, int mode, fp_dec *out)
{
    if (scale < 0)
        scale = 0;
    if (a.scale <= scale) {
        *out = a;
        out->negzero = false;
        return true;
    }
    int diff = a.scale - scale;
    if (diff > 38) {
        *out = mk(0, scale);
        return true;
    }
    fp_i128 d = p10(diff);
    fp_i128 q = a.m / d, r = a.m % d;
    switch (mode) {
    case FP_ROUND_HALF_UP: {
        fp_i128 ar = r < 0 ? -r : r;
        if (ar >= d - ar)
            q += a.m < 0 ? -1 : 1;
        break;
    }
    case FP_ROUND_FLOOR:
        if (r < 0)
            q -= 1;
        break;
    case FP_ROUND_CEIL:
        if (r > 0)
            q += 1;
        break;
    default:
        break;
    }
    *out = mk(q, scale);
    return true;
}

bool fp_dec_rescale(fp_dec a, int scale, fp_dec *out)
{
    if (scale <= a.scale) {
        *out = a;
        return true;
    }
    if (scale > 38)
        return false;
    fp_i128 r;
    if (__builtin_mul_overflow(a.m, p10(scale - a.scale), &r) || too_big(r))
        return false;
    *out = mk(r, scale);
    out->negzero = a.negzero;
    return true;
}

fp_dec fp_dec_strip(fp_dec a)
{
    while (a.scale > 0 && a.m % 10 == 0) {
        a.m /= 10;
        a.scale--;
    }
    return a;
}

int fp_dec_precision(fp_dec a)
{
    return fp_dec_strip(a).scale;
}

bool fp_dec_to_int64(fp_dec a, int64_t *out)
{
    fp_i128 q = a.m / p10(a.scale);
    if (q > INT64_MAX || q < INT64_MIN)
        return false;
    *out = (int64_t)q;
    return true;
}

bool fp_dec_is_integer(fp_dec a)
{
    return a.m % p10(a.scale) == 0;
}

double fp_dec_to_double(fp_dec a)
{
    char buf[64];
    fp_dec_format(a, buf, sizeof buf);
    return strtod(buf, NULL);
}

bool fp_dec_from_double(double d, fp_dec *out)
{
    if (!isfinite(d))
        return false;
    char buf[64];
    /* 15 significant digits: what a double carries reliably, so that
     * log(16)/log(2) comes out as 4 and not 3.9999999999999996 */
    snprintf(buf, sizeof buf, "%.15g", d);
    if (!fp_dec_parse(buf, strlen(buf), out))
        return false;
    *out = fp_dec_strip(*out);
    return true;
}

size_t fp_dec_format(fp_dec a, char *buf, size_t size)
{
    char tmp[64];
    int n = 0;
    fp_i128 m = a.m < 0 ? -a.m : a.m;
    /* digits in reverse */
    do {
        tmp[n++] = (char)('0' + (int)(m % 10));
        m /= 10;
    } while (m > 0 && n < 60);
    while (n <= a.scale && n < 60)
        tmp[n++] = '0';
    size_t o = 0;
    if ((a.m < 0 || (a.negzero && a.m == 0)) && o + 1 < size)
        buf[o++] = '-';
    for (int i = n - 1; i >= 0 && o + 1 < size; i--) {
        buf[o++] = tmp[i];
        if (i == a.scale && a.scale > 0 && o + 1 < size)
            buf[o++] = '.';
    }
    buf[o] = '\0';
    return o;
}
