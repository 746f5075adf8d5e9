/*
 * ucum.c - UCUM unit codes reduced to base units, for quantity comparison
 * and conversion in FHIRPath (N1 section 4.1.6 and 5.5.6 toQuantity).
 *
 * Covers the UCUM grammar (prefixes, exponents, '.', '/', parentheses,
 * annotations, 10*n) and the atoms clinical data uses: SI units and their
 * derivatives, time, customary length/volume/mass units, pressure (mm[Hg],
 * cm[H2O]), amount of substance (mol, eq, osm) and enzyme activity (U, kat),
 * percent and parts-per. Factors are kept as exact decimal fractions, so
 * 4.0 'g' = 4000.0 'mg' holds exactly. Units on non-ratio scales (Cel,
 * [degF], [pH]) and arbitrary units ([IU]) are recognized but never
 * converted, as FHIRPath requires.
 *
 * One deliberate departure: UCUM defines mol as 6.0221367e23 (a pure
 * number); here it is its own dimension, so that mmol/L never compares with
 * a plain count.
 */
#include <string.h>

#include "fhirpath/fhirpath_int.h"

enum { D_M, D_G, D_S, D_RAD, D_K, D_C, D_CD, D_MOL };

typedef struct atom {
    const char *code;
    const char *num, *den; /* factor to base units, num/den */
    int8_t dim[FP_UCUM_DIMS];
    uint8_t flags;
} atom;

enum { A_METRIC = 1, A_SPECIAL = 2, A_ARB = 4 };

/*                          m  g  s  r  K  C cd mol */
#define DIMS(m, g, s, r, k, c, cd, mol)                                                            \
    {                                                                                              \
        m, g, s, r, k, c, cd, mol                                                                  \
    }
static const atom atoms[] = {
    {"m", "1", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"g", "1", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"s", "1", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), A_METRIC},
    {"rad", "1", "1", DIMS(0, 0, 0, 1, 0, 0, 0, 0), A_METRIC},
    {"K", "1", "1", DIMS(0, 0, 0, 0, 1, 0, 0, 0), A_METRIC},
    {"C", "1", "1", DIMS(0, 0, 0, 0, 0, 1, 0, 0), A_METRIC},
    {"cd", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 1, 0), A_METRIC},
    {"mol", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 1), A_METRIC},
    {"eq", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 1), A_METRIC},
    {"osm", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 1), A_METRIC},
    {"kat", "1", "1", DIMS(0, 0, -1, 0, 0, 0, 0, 1), A_METRIC},
    {"U", "0.000001", "60", DIMS(0, 0, -1, 0, 0, 0, 0, 1), A_METRIC},
    {"sr", "1", "1", DIMS(0, 0, 0, 2, 0, 0, 0, 0), A_METRIC},
    {"Hz", "1", "1", DIMS(0, 0, -1, 0, 0, 0, 0, 0), A_METRIC},
    {"N", "1000", "1", DIMS(1, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"Pa", "1000", "1", DIMS(-1, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"J", "1000", "1", DIMS(2, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"W", "1000", "1", DIMS(2, 1, -3, 0, 0, 0, 0, 0), A_METRIC},
    {"A", "1", "1", DIMS(0, 0, -1, 0, 0, 1, 0, 0), A_METRIC},
    {"V", "1000", "1", DIMS(2, 1, -2, 0, 0, -1, 0, 0), A_METRIC},
    {"F", "0.001", "1", DIMS(-2, -1, 2, 0, 0, 2, 0, 0), A_METRIC},
    {"Ohm", "1000", "1", DIMS(2, 1, -1, 0, 0, -2, 0, 0), A_METRIC},
    {"S", "0.001", "1", DIMS(-2, -1, 1, 0, 0, 2, 0, 0), A_METRIC},
    {"mho", "0.001", "1", DIMS(-2, -1, 1, 0, 0, 2, 0, 0), A_METRIC},
    {"Wb", "1000", "1", DIMS(2, 1, -1, 0, 0, -1, 0, 0), A_METRIC},
    {"T", "1000", "1", DIMS(0, 1, -1, 0, 0, -1, 0, 0), A_METRIC},
    {"H", "1000", "1", DIMS(2, 1, 0, 0, 0, -2, 0, 0), A_METRIC},
    {"lm", "1", "1", DIMS(0, 0, 0, 2, 0, 0, 1, 0), A_METRIC},
    {"lx", "1", "1", DIMS(-2, 0, 0, 2, 0, 0, 1, 0), A_METRIC},
    {"Bq", "1", "1", DIMS(0, 0, -1, 0, 0, 0, 0, 0), A_METRIC},
    {"Ci", "37000000000", "1", DIMS(0, 0, -1, 0, 0, 0, 0, 0), A_METRIC},
    {"Gy", "1", "1", DIMS(2, 0, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"Sv", "1", "1", DIMS(2, 0, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"l", "0.001", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"L", "0.001", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"ar", "100", "1", DIMS(2, 0, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"b", "0.0000000000000000000000000001", "1", DIMS(2, 0, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"t", "1000000", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"u", "0.0000000000000000000000016605402", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), A_METRIC},
    {"bar", "100000000", "1", DIMS(-1, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"atm", "101325000", "1", DIMS(-1, 1, -2, 0, 0, 0, 0, 0), 0},
    {"m[Hg]", "133322000", "1", DIMS(-1, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"m[H2O]", "9806650", "1", DIMS(-1, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"[in_i'Hg]", "3386378.8", "1", DIMS(-1, 1, -2, 0, 0, 0, 0, 0), 0},
    {"eV", "0.000000000000000160217733", "1", DIMS(2, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"cal", "4184", "1", DIMS(2, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"cal_th", "4184", "1", DIMS(2, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"[Cal]", "4184000", "1", DIMS(2, 1, -2, 0, 0, 0, 0, 0), 0},
    {"dyn", "0.01", "1", DIMS(1, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"erg", "0.0001", "1", DIMS(2, 1, -2, 0, 0, 0, 0, 0), A_METRIC},
    {"Ao", "0.0000000001", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    /* time */
    {"min", "60", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"h", "3600", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"d", "86400", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"wk", "604800", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"mo", "2629800", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"a", "31557600", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"mo_j", "2629800", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"a_j", "31557600", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"mo_g", "2629746", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"a_g", "31556952", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"mo_s", "2551442.976", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    {"a_t", "31556925.216", "1", DIMS(0, 0, 1, 0, 0, 0, 0, 0), 0},
    /* customary length, area, volume */
    {"[in_i]", "0.0254", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[ft_i]", "0.3048", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[yd_i]", "0.9144", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[mi_i]", "1609.344", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[nmi_i]", "1852", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[mil_i]", "0.0000254", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[hd_i]", "0.1016", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[ch]", "0.000105", "1", DIMS(1, 0, 0, 0, 0, 0, 0, 0), 0}, /* French (Charriere): 1/3 mm */
    {"[sin_i]", "0.00064516", "1", DIMS(2, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[sft_i]", "0.09290304", "1", DIMS(2, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[syd_i]", "0.83612736", "1", DIMS(2, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[cin_i]", "0.000016387064", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[cft_i]", "0.028316846592", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[gal_us]", "0.003785411784", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[qt_us]", "0.000946352946", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[pt_us]", "0.000473176473", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[cup_us]", "0.0002365882365", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[foz_us]", "0.0000295735295625", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[tbs_us]", "0.00001478676478125", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[tsp_us]", "0.00000492892159375", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[gal_br]", "0.00454609", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[pt_br]", "0.00056826125", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[foz_br]", "0.0000284130625", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[drp]", "0.00000005", "1", DIMS(3, 0, 0, 0, 0, 0, 0, 0), 0},
    /* mass */
    {"[lb_av]", "453.59237", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[oz_av]", "28.349523125", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[dr_av]", "1.7718451953125", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[gr]", "0.06479891", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[ston_av]", "6350.29318", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[lb_tr]", "373.2417216", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[oz_tr]", "31.1034768", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"[car_m]", "0.2", "1", DIMS(0, 1, 0, 0, 0, 0, 0, 0), 0},
    {"g%", "10000", "1", DIMS(-3, 1, 0, 0, 0, 0, 0, 0), A_METRIC},
    /* angle, temperature */
    {"deg", "3.1415926535897932384626433833", "180", DIMS(0, 0, 0, 1, 0, 0, 0, 0), 0},
    {"gon", "3.1415926535897932384626433833", "200", DIMS(0, 0, 0, 1, 0, 0, 0, 0), 0},
    {"[degR]", "5", "9", DIMS(0, 0, 0, 0, 1, 0, 0, 0), 0},
    {"Cel", "1", "1", DIMS(0, 0, 0, 0, 1, 0, 0, 0), A_SPECIAL | A_METRIC},
    {"[degF]", "5", "9", DIMS(0, 0, 0, 0, 1, 0, 0, 0), A_SPECIAL},
    {"[degRe]", "5", "4", DIMS(0, 0, 0, 0, 1, 0, 0, 0), A_SPECIAL},
    {"[pH]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 1), A_SPECIAL},
    /* dimensionless */
    {"%", "0.01", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[ppth]", "0.001", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[ppm]", "0.000001", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[ppb]", "0.000000001", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[pptr]", "0.000000000001", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), 0},
    {"[pi]", "3.1415926535897932384626433833", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), 0},
    /* arbitrary units: comparable only with themselves */
    {"[iU]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), A_ARB | A_METRIC},
    {"[IU]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), A_ARB | A_METRIC},
    {"[arb'U]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), A_ARB},
    {"[USP'U]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), A_ARB},
    {"[HPF]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), A_ARB},
    {"[LPF]", "1", "1", DIMS(0, 0, 0, 0, 0, 0, 0, 0), A_ARB},
};

static const struct {
    const char *p;
    const char *factor;
} prefixes[] = {
    {"da", "10"},
    {"Y", "1000000000000000000000000"},
    {"Z", "1000000000000000000000"},
    {"E", "1000000000000000000"},
    {"P", "1000000000000000"},
    {"T", "1000000000000"},
    {"G", "1000000000"},
    {"M", "1000000"},
    {"k", "1000"},
    {"h", "100"},
    {"d", "0.1"},
    {"c", "0.01"},
    {"m", "0.001"},
    {"u", "0.000001"},
    {"n", "0.000000001"},
    {"p", "0.000000000001"},
    {"f", "0.000000000000001"},
    {"a", "0.000000000000000001"},
    {"z", "0.000000000000000000001"},
    {"y", "0.000000000000000000000001"},
    {"Ki", "1024"},
    {"Mi", "1048576"},
    {"Gi", "1073741824"},
};

static fp_dec dec(const char *s)
{
    fp_dec d;
    if (!fp_dec_parse(s, strlen(s), &d))
        d = fp_dec_from_int(1);
    return d;
}

static const atom *find_atom(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof atoms / sizeof atoms[0]; i++)
        if (strlen(atoms[i].code) == n && memcmp(atoms[i].code, s, n) == 0)
            return &atoms[i];
    return NULL;
}

static void unit_one(fp_unit *u)
{
    memset(u, 0, sizeof *u);
    u->num = fp_dec_from_int(1);
    u->den = fp_dec_from_int(1);
    u->valid = true;
}

/* u = u * v^e (e may be negative) */
static bool unit_mul(fp_unit *u, const fp_unit *v, int e)
{
    fp_dec n = v->num, d = v->den;
    if (e < 0) {
        fp_dec t = n;
        n = d;
        d = t;
    }
    for (int k = 0; k < (e < 0 ? -e : e); k++) {
        if (!fp_dec_mul(u->num, n, &u->num) || !fp_dec_mul(u->den, d, &u->den))
            return false;
    }
    for (int i = 0; i < FP_UCUM_DIMS; i++)
        u->dim[i] = (int8_t)(u->dim[i] + v->dim[i] * e);
    u->special |= v->special;
    u->arbitrary |= v->arbitrary;
    return true;
}

typedef struct {
    const char *s;
    size_t i, n;
    int depth;
} uparser;

static bool parse_term(uparser *p, fp_unit *u);

/* A symbol with an optional exponent: "mg", "m2", "s-1", "10*3", "[in_i]". */
static bool parse_simple(uparser *p, fp_unit *u)
{
    size_t start = p->i;
    int bracket = 0;
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '[')
            bracket++;
        else if (c == ']')
            bracket--;
        else if (bracket == 0 && (c == '.' || c == '/' || c == '(' || c == ')' || c == '{'))
            break;
        p->i++;
    }
    size_t end = p->i;
    if (end == start)
        return false;
    const char *sym = p->s + start;
    size_t len = end - start;
    /* a pure integer is a factor */
    size_t k = 0;
    while (k < len && sym[k] >= '0' && sym[k] <= '9')
        k++;
    if (k == len) {
        unit_one(u);
        return fp_dec_parse(sym, len, &u->num);
    }
    /* 10*n or 10^n */
    if (len > 3 && sym[0] == '1' && sym[1] == '0' && (sym[2] == '*' || sym[2] == '^')) {
        int e = 0, sign = 1;
        size_t j = 3;
        if (sym[j] == '+' || sym[j] == '-')
            sign = sym[j++] == '-' ? -1 : 1;
        if (j >= len)
            return false;
        for (; j < len; j++) {
            if (sym[j] < '0' || sym[j] > '9' || e > 30)
                return false;
            e = e * 10 + (sym[j] - '0');
        }
        unit_one(u);
        fp_unit ten;
        unit_one(&ten);
        ten.num = fp_dec_from_int(10);
        return unit_mul(u, &ten, sign * e);
    }
    /* trailing exponent: digits, maybe signed, after the symbol */
    size_t e_at = len;
    while (e_at > 0 && sym[e_at - 1] >= '0' && sym[e_at - 1] <= '9')
        e_at--;
    int exp = 1;
    if (e_at < len) {
        size_t digits_at = e_at;
        int sign = 1;
        if (e_at > 0 && (sym[e_at - 1] == '+' || sym[e_at - 1] == '-')) {
            sign = sym[e_at - 1] == '-' ? -1 : 1;
            e_at--;
        }
        int e = 0;
        for (size_t j = digits_at; j < len; j++) {
            if (e > 100)
                return false;
            e = e * 10 + (sym[j] - '0');
        }
        exp = sign * e;
        len = e_at;
    }
    if (len == 0)
        return false;
    const atom *a = find_atom(sym, len);
    fp_dec pf = fp_dec_from_int(1);
    if (!a) {
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
            size_t pl = strlen(prefixes[i].p);
            if (pl < len && memcmp(sym, prefixes[i].p, pl) == 0) {
                const atom *b = find_atom(sym + pl, len - pl);
                if (b && (b->flags & A_METRIC)) {
                    a = b;
                    pf = dec(prefixes[i].factor);
                    break;
                }
            }
        }
    }
    if (!a)
        return false;
    fp_unit v;
    unit_one(&v);
    v.num = dec(a->num);
    v.den = dec(a->den);
    if (!fp_dec_mul(v.num, pf, &v.num))
        return false;
    memcpy(v.dim, a->dim, sizeof v.dim);
    v.special = (a->flags & A_SPECIAL) != 0;
    v.arbitrary = (a->flags & A_ARB) != 0;
    unit_one(u);
    return unit_mul(u, &v, exp);
}

static bool skip_annotation(uparser *p)
{
    if (p->i < p->n && p->s[p->i] == '{') {
        while (p->i < p->n && p->s[p->i] != '}')
            p->i++;
        if (p->i >= p->n)
            return false;
        p->i++;
    }
    return true;
}

static bool parse_component(uparser *p, fp_unit *u)
{
    if (p->i >= p->n)
        return false;
    char c = p->s[p->i];
    if (c == '(') {
        if (++p->depth > 20)
            return false;
        p->i++;
        if (!parse_term(p, u) || p->i >= p->n || p->s[p->i] != ')')
            return false;
        p->i++;
        p->depth--;
        return skip_annotation(p);
    }
    if (c == '{') {
        unit_one(u);
        return skip_annotation(p);
    }
    if (!parse_simple(p, u))
        return false;
    return skip_annotation(p);
}

static bool parse_term(uparser *p, fp_unit *u)
{
    unit_one(u);
    if (p->i < p->n && p->s[p->i] == '/') {
        /* leading '/': "/min" */
    } else if (!parse_component(p, u)) {
        return false;
    }
    while (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == '/')) {
        char op = p->s[p->i++];
        fp_unit v;
        if (!parse_component(p, &v) || !unit_mul(u, &v, op == '/' ? -1 : 1))
            return false;
    }
    return true;
}

void fp_ucum_parse(const char *code, size_t len, fp_unit *u)
{
    uparser p = {code, 0, len, 0};
    if (len == 0 || !parse_term(&p, u) || p.i != len) {
        memset(u, 0, sizeof *u);
        u->valid = false;
        return;
    }
    u->valid = true;
}

static const char *const cal_names[][2] = {
    [FP_CAL_YEAR] = {"year", "years"},       [FP_CAL_MONTH] = {"month", "months"},
    [FP_CAL_WEEK] = {"week", "weeks"},       [FP_CAL_DAY] = {"day", "days"},
    [FP_CAL_HOUR] = {"hour", "hours"},       [FP_CAL_MINUTE] = {"minute", "minutes"},
    [FP_CAL_SECOND] = {"second", "seconds"}, [FP_CAL_MILLISECOND] = {"millisecond", "milliseconds"},
};

int fp_calendar_unit(const char *word, size_t len)
{
    for (int i = FP_CAL_YEAR; i <= FP_CAL_MILLISECOND; i++)
        for (int k = 0; k < 2; k++)
            if (strlen(cal_names[i][k]) == len && memcmp(cal_names[i][k], word, len) == 0)
                return i;
    return FP_CAL_NONE;
}

const char *fp_calendar_name(int cal, bool plural)
{
    if (cal < FP_CAL_YEAR || cal > FP_CAL_MILLISECOND)
        return "";
    return cal_names[cal][plural ? 1 : 0];
}
