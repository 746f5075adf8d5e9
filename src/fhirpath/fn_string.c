/*
 * fn_string.c - FHIRPath string functions (N1 section 5.6 and the FHIRPath
 * 2.0 additions trim, split, join, encode, decode, escape, unescape,
 * lastIndexOf, matchesFull). Positions and lengths count characters
 * (Unicode scalar values), not bytes.
 */
#include <stdio.h>
#include <string.h>

#include "fhirpath/fn.h"

/* Steps a regular expression may take per call: bounds patterns with
 * catastrophic backtracking. A regex step counts 1/16 of an evaluation
 * step, and the call never gets more than what is left of max_steps. */
#define REGEX_BUDGET 2000000
#define REGEX_STEP 16

static size_t regex_budget(const fp_ctx *c)
{
    size_t left = c->steps < c->max_steps ? c->max_steps - c->steps : 0;
    return left < REGEX_BUDGET / REGEX_STEP ? left * REGEX_STEP : REGEX_BUDGET;
}

static ehr_status regex_too_costly(fp_ctx *c, const fp_node *n, size_t given)
{
    char buf[128];
    snprintf(buf, sizeof buf, "regular expression of %s() took more than %zu steps", n->name,
             given);
    return fp_limit(c, buf);
}

/* The input string; *p NULL when the input is empty. Error for non-strings. */
static ehr_status input_str(fp_ctx *c, const fp_node *n, const fp_coll *in, const char **p,
                            size_t *len)
{
    const fp_item *it;
    ehr_status st = fp_input_single(c, n, in, &it);
    *p = NULL;
    if (st || !it)
        return st;
    if (fp_item_str(it, p, len))
        return EHR_OK;
    if (it->kind == EHR_FHIRPATH_STRING && (it->flags & FP_F_NOVALUE))
        return EHR_OK;
    const char *ns;
    return fp_error(c, n, "%s() needs a String input, not %s", n->name, fp_item_type_name(it, &ns));
}

static const char *find(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    return memmem(h, hn, nd, nn);
}

static ehr_status fn_index_of(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    const char *p, *sub;
    size_t len, sl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &sub, &sl)) || !sub)
        return st;
    const char *f = find(p, len, sub, sl);
    return fp_push_int(c, out, f ? (int64_t)fp_utf8_count(p, (size_t)(f - p)) : -1);
}

static ehr_status fn_last_index_of(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                   const fp_coll *in, fp_coll *out)
{
    const char *p, *sub;
    size_t len, sl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &sub, &sl)) || !sub)
        return st;
    const char *last = NULL;
    for (size_t i = 0; i + sl <= len; i++)
        if (memcmp(p + i, sub, sl) == 0)
            last = p + i;
    return fp_push_int(c, out, last ? (int64_t)fp_utf8_count(p, (size_t)(last - p)) : -1);
}

static ehr_status fn_substring(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    const char *p;
    size_t len;
    bool has_start, has_len = false;
    int64_t start = 0, count = 0;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_int(c, n, s, 0, &has_start, &start)) || !has_start)
        return st;
    if (n->nargs > 1 && (st = fp_arg_int(c, n, s, 1, &has_len, &count)))
        return st;
    int64_t chars = (int64_t)fp_utf8_count(p, len);
    if (start < 0 || start >= chars)
        return EHR_OK;
    size_t b = fp_utf8_offset(p, len, (size_t)start);
    size_t e = len;
    if (has_len) {
        if (count <= 0)
            return fp_push_str(c, out, "", 0);
        if (start + count < chars)
            e = fp_utf8_offset(p, len, (size_t)(start + count));
    }
    return fp_push_str(c, out, p + b, e - b);
}

static ehr_status affix(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                        fp_coll *out, int mode)
{
    const char *p, *sub;
    size_t len, sl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &sub, &sl)) || !sub)
        return st;
    bool r;
    if (mode == 0)
        r = sl <= len && memcmp(p, sub, sl) == 0;
    else if (mode == 1)
        r = sl <= len && memcmp(p + len - sl, sub, sl) == 0;
    else
        r = find(p, len, sub, sl) != NULL;
    return fp_push_bool(c, out, r);
}

static ehr_status fn_starts_with(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out)
{
    return affix(c, n, s, in, out, 0);
}

static ehr_status fn_ends_with(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out)
{
    return affix(c, n, s, in, out, 1);
}

static ehr_status fn_contains(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    return affix(c, n, s, in, out, 2);
}

static ehr_status map_case(fp_ctx *c, const fp_node *n, const fp_coll *in, fp_coll *out, bool up)
{
    const char *p;
    size_t len;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p)
        return st;
    char *r = fp_alloc(c, len * 2 + 1);
    if (!r)
        return c->fail;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += fp_utf8_decode(p, len, i, &cp);
        o += fp_utf8_encode(up ? fp_upper(cp) : fp_lower(cp), r + o);
    }
    r[o] = '\0';
    return fp_push_str(c, out, r, o);
}

static ehr_status fn_upper(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    return map_case(c, n, in, out, true);
}

static ehr_status fn_lower(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    return map_case(c, n, in, out, false);
}

/* A growable string in the evaluation arena. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static bool sb_add(fp_ctx *c, sbuf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 64);
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = fp_alloc(c, nc);
        if (!np)
            return false;
        if (b->n)
            memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

static ehr_status sb_push(fp_ctx *c, sbuf *b, fp_coll *out)
{
    if (!b->p && !sb_add(c, b, "", 0))
        return c->fail;
    return fp_push_str(c, out, b->p, b->n);
}

static ehr_status fn_replace(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    const char *p, *pat, *rep;
    size_t len, pl, rl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &pat, &pl)) || !pat ||
        (st = fp_arg_str(c, n, s, 1, &rep, &rl)) || !rep)
        return st;
    sbuf b = {0};
    if (pl == 0) {
        /* '' surrounds every character: 'abc'.replace('', 'x') = 'xaxbxcx' */
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t cl = fp_utf8_decode(p, len, i, &cp);
            if (!sb_add(c, &b, rep, rl) || !sb_add(c, &b, p + i, cl))
                return c->fail;
            i += cl;
        }
        if (!sb_add(c, &b, rep, rl))
            return c->fail;
        return sb_push(c, &b, out);
    }
    size_t i = 0;
    while (i < len) {
        const char *f = find(p + i, len - i, pat, pl);
        if (!f)
            break;
        if (!sb_add(c, &b, p + i, (size_t)(f - (p + i))) || !sb_add(c, &b, rep, rl))
            return c->fail;
        i = (size_t)(f - p) + pl;
    }
    if (!sb_add(c, &b, p + i, len - i))
        return c->fail;
    return sb_push(c, &b, out);
}

static ehr_status regex_flags(fp_ctx *c, const fp_node *n, const fp_scope *s, int i,
                              unsigned *flags)
{
    *flags = FP_RE_DOTALL; /* single-line mode: '.' matches a newline */
    if (n->nargs <= i)
        return EHR_OK;
    const char *f;
    size_t fl;
    ehr_status st = fp_arg_str(c, n, s, i, &f, &fl);
    if (st || !f)
        return st;
    for (size_t k = 0; k < fl; k++) {
        if (f[k] == 'i')
            *flags |= FP_RE_ICASE;
        else if (f[k] == 'm')
            *flags |= FP_RE_MULTILINE;
        else if (f[k] == 's')
            *flags |= FP_RE_DOTALL;
        else
            return fp_error(c, n->args[i], "unknown regular expression flag '%c'", f[k]);
    }
    return EHR_OK;
}

static ehr_status compile_re(fp_ctx *c, const fp_node *n, const char *pat, size_t pl,
                             unsigned flags, fp_regex **re)
{
    const char *why = NULL;
    *re = fp_regex_compile(c->arena, pat, pl, flags, &why);
    if (!*re)
        return fp_error(c, n, "invalid regular expression: %s", why ? why : "?");
    return EHR_OK;
}

static ehr_status matches_impl(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                               fp_coll *out, bool full)
{
    const char *p, *pat;
    size_t len, pl;
    unsigned flags;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &pat, &pl)) || !pat ||
        (st = regex_flags(c, n, s, 1, &flags)))
        return st;
    const fp_regex *re = n->re;
    if (!re) {
        fp_regex *cre;
        if ((st = compile_re(c, n, pat, pl, flags, &cre)))
            return st;
        re = cre;
    }
    size_t given = regex_budget(c), budget = given;
    int r = fp_regex_exec(re, p, len, 0, full, NULL, 0, &budget);
    if (r < 0)
        return regex_too_costly(c, n, given);
    if ((st = fp_step(c, (given - budget) / REGEX_STEP)))
        return st;
    return fp_push_bool(c, out, r == 1);
}

static ehr_status fn_matches(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                             fp_coll *out)
{
    return matches_impl(c, n, s, in, out, false);
}

static ehr_status fn_matches_full(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                  fp_coll *out)
{
    return matches_impl(c, n, s, in, out, true);
}

static ehr_status fn_replace_matches(fp_ctx *c, const fp_node *n, const fp_scope *s,
                                     const fp_coll *in, fp_coll *out)
{
    const char *p, *pat, *rep;
    size_t len, pl, rl;
    unsigned flags;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &pat, &pl)) || !pat ||
        (st = fp_arg_str(c, n, s, 1, &rep, &rl)) || !rep || (st = regex_flags(c, n, s, 2, &flags)))
        return st;
    if (pl == 0) /* an empty pattern changes nothing */
        return fp_push_str(c, out, p, len);
    const fp_regex *re = n->re;
    if (!re) {
        fp_regex *cre;
        if ((st = compile_re(c, n, pat, pl, flags, &cre)))
            return st;
        re = cre;
    }
    int ng = fp_regex_ngroups(re);
    long *caps = fp_alloc(c, sizeof(long) * 2 * (size_t)ng);
    if (!caps)
        return c->fail;
    size_t given = regex_budget(c), budget = given;
    sbuf b = {0};
    size_t pos = 0;
    while (pos <= len) {
        int r = fp_regex_exec(re, p, len, pos, false, caps, ng * 2, &budget);
        if (r < 0)
            return regex_too_costly(c, n, given);
        if (r == 0)
            break;
        size_t ms = (size_t)caps[0], me = (size_t)caps[1];
        if (!sb_add(c, &b, p + pos, ms - pos))
            return c->fail;
        /* substitution: $1, ${name}, $$ */
        for (size_t k = 0; k < rl; k++) {
            if (rep[k] == '$' && k + 1 < rl) {
                int g = -1;
                size_t skip = 0;
                if (rep[k + 1] == '$') {
                    if (!sb_add(c, &b, "$", 1))
                        return c->fail;
                    k++;
                    continue;
                }
                if (rep[k + 1] >= '0' && rep[k + 1] <= '9') {
                    g = rep[k + 1] - '0';
                    skip = 1;
                    if (k + 2 < rl && rep[k + 2] >= '0' && rep[k + 2] <= '9' &&
                        g * 10 + (rep[k + 2] - '0') < ng) {
                        g = g * 10 + (rep[k + 2] - '0');
                        skip = 2;
                    }
                } else if (rep[k + 1] == '{') {
                    const char *e = memchr(rep + k + 2, '}', rl - k - 2);
                    if (e) {
                        const char *nm = rep + k + 2;
                        size_t nl = (size_t)(e - nm);
                        g = fp_regex_group_index(re, nm, nl);
                        if (g < 0) {
                            int v = 0;
                            bool num = nl > 0;
                            for (size_t q = 0; q < nl; q++) {
                                if (nm[q] < '0' || nm[q] > '9')
                                    num = false;
                                else
                                    v = v * 10 + (nm[q] - '0');
                            }
                            if (num)
                                g = v;
                        }
                        skip = nl + 2;
                    }
                }
                if (skip) {
                    if (g >= 0 && g < ng && caps[2 * g] >= 0 &&
                        !sb_add(c, &b, p + caps[2 * g], (size_t)(caps[2 * g + 1] - caps[2 * g])))
                        return c->fail;
                    k += skip;
                    continue;
                }
            }
            if (!sb_add(c, &b, rep + k, 1))
                return c->fail;
        }
        if (me == ms) {
            /* empty match: copy one character and move on */
            if (ms >= len)
                break;
            uint32_t cp;
            size_t cl = fp_utf8_decode(p, len, ms, &cp);
            if (!sb_add(c, &b, p + ms, cl))
                return c->fail;
            pos = ms + cl;
        } else {
            pos = me;
        }
        if (pos > len)
            break;
    }
    if (pos < len && !sb_add(c, &b, p + pos, len - pos))
        return c->fail;
    if ((st = fp_step(c, (given - budget) / REGEX_STEP)))
        return st;
    return sb_push(c, &b, out);
}

static ehr_status fn_length(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    const char *p;
    size_t len;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p)
        return st;
    return fp_push_int(c, out, (int64_t)fp_utf8_count(p, len));
}

static ehr_status fn_to_chars(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    const char *p;
    size_t len;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p)
        return st;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = fp_utf8_decode(p, len, i, &cp);
        if ((st = fp_push_str(c, out, p + i, cl)))
            return st;
        i += cl;
    }
    return EHR_OK;
}

static bool ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static ehr_status fn_trim(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    const char *p;
    size_t len;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p)
        return st;
    size_t b = 0, e = len;
    while (b < e && ws(p[b]))
        b++;
    while (e > b && ws(p[e - 1]))
        e--;
    return fp_push_str(c, out, p + b, e - b);
}

static ehr_status fn_split(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out)
{
    const char *p, *sep;
    size_t len, sl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &sep, &sl)) || !sep)
        return st;
    if (sl == 0)
        return fn_to_chars(c, n, s, in, out);
    size_t i = 0;
    for (;;) {
        const char *f = find(p + i, len - i, sep, sl);
        size_t e = f ? (size_t)(f - p) : len;
        if ((st = fp_push_str(c, out, p + i, e - i)))
            return st;
        if (!f)
            break;
        i = e + sl;
    }
    return EHR_OK;
}

static ehr_status fn_join(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                          fp_coll *out)
{
    const char *sep = "";
    size_t sl = 0;
    ehr_status st;
    if (n->nargs && (st = fp_arg_str(c, n, s, 0, &sep, &sl)))
        return st;
    if (!sep) {
        sep = "";
        sl = 0;
    }
    if (in->n == 0)
        return EHR_OK;
    sbuf b = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *p;
        size_t len;
        if (!fp_item_str(&in->items[i], &p, &len)) {
            p = fp_item_to_string(c, &in->items[i], &len);
            if (!p) {
                if (c->fail)
                    return c->fail;
                return fp_error(c, n, "join() needs strings");
            }
        }
        if ((i && !sb_add(c, &b, sep, sl)) || !sb_add(c, &b, p, len))
            return c->fail;
    }
    return sb_push(c, &b, out);
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64val(const char *alpha, char ch)
{
    const char *f = ch ? strchr(alpha, ch) : NULL;
    return f ? (int)(f - alpha) : -1;
}

static bool utf8_valid(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        size_t l = ch < 0x80             ? 1
                   : (ch & 0xE0) == 0xC0 ? 2
                   : (ch & 0xF0) == 0xE0 ? 3
                   : (ch & 0xF8) == 0xF0 ? 4
                                         : 0;
        if (!l || i + l > n)
            return false;
        for (size_t k = 1; k < l; k++)
            if (((unsigned char)p[i + k] & 0xC0) != 0x80)
                return false;
        i += l;
    }
    return true;
}

static ehr_status codec(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                        fp_coll *out, bool enc)
{
    const char *p, *fmt;
    size_t len, fl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &fmt, &fl)) || !fmt)
        return st;
    sbuf b = {0};
#define F(lit) (fl == sizeof(lit) - 1 && memcmp(fmt, lit, fl) == 0)
    if (F("hex")) {
        static const char hx[] = "0123456789abcdef";
        if (enc) {
            for (size_t i = 0; i < len; i++) {
                char two[2] = {hx[(unsigned char)p[i] >> 4], hx[(unsigned char)p[i] & 15]};
                if (!sb_add(c, &b, two, 2))
                    return c->fail;
            }
        } else {
            if (len % 2)
                return EHR_OK;
            for (size_t i = 0; i < len; i += 2) {
                const char *h1 = strchr(hx, p[i] | 0x20), *h2 = strchr(hx, p[i + 1] | 0x20);
                if (!p[i] || !p[i + 1] || !h1 || !h2)
                    return EHR_OK;
                char ch = (char)(((h1 - hx) << 4) | (h2 - hx));
                if (!sb_add(c, &b, &ch, 1))
                    return c->fail;
            }
            if (!utf8_valid(b.p ? b.p : "", b.n))
                return EHR_OK;
        }
        return sb_push(c, &b, out);
    }
    if (F("base64") || F("urlbase64")) {
        const char *alpha = F("base64") ? b64std : b64url;
        if (enc) {
            for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned char)p[i] << 16;
                if (i + 1 < len)
                    v |= (unsigned char)p[i + 1] << 8;
                if (i + 2 < len)
                    v |= (unsigned char)p[i + 2];
                char q[4] = {alpha[v >> 18], alpha[(v >> 12) & 63],
                             i + 1 < len ? alpha[(v >> 6) & 63] : '=',
                             i + 2 < len ? alpha[v & 63] : '='};
                if (!sb_add(c, &b, q, 4))
                    return c->fail;
            }
        } else {
            unsigned v = 0;
            int bits = 0;
            for (size_t i = 0; i < len; i++) {
                if (p[i] == '=')
                    break;
                int d = b64val(alpha, p[i]);
                if (d < 0)
                    return EHR_OK;
                v = (v << 6) | (unsigned)d;
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    char ch = (char)((v >> bits) & 0xFF);
                    if (!sb_add(c, &b, &ch, 1))
                        return c->fail;
                }
            }
            if (!utf8_valid(b.p ? b.p : "", b.n))
                return EHR_OK;
        }
        return sb_push(c, &b, out);
    }
    if (F("ascii") && enc) {
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t cl = fp_utf8_decode(p, len, i, &cp);
            char ch = cp < 128 ? (char)cp : '?';
            if (!sb_add(c, &b, &ch, 1))
                return c->fail;
            i += cl;
        }
        return sb_push(c, &b, out);
    }
#undef F
    return fp_error(c, n, "unknown encoding '%.*s'", (int)fl, fmt);
}

static ehr_status fn_encode(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    return codec(c, n, s, in, out, true);
}

static ehr_status fn_decode(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    return codec(c, n, s, in, out, false);
}

static ehr_status escaping(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                           fp_coll *out, bool esc)
{
    const char *p, *fmt;
    size_t len, fl;
    ehr_status st = input_str(c, n, in, &p, &len);
    if (st || !p || (st = fp_arg_str(c, n, s, 0, &fmt, &fl)) || !fmt)
        return st;
    bool html = fl == 4 && memcmp(fmt, "html", 4) == 0;
    bool json = fl == 4 && memcmp(fmt, "json", 4) == 0;
    if (!html && !json)
        return fp_error(c, n, "unknown escape target '%.*s'", (int)fl, fmt);
    static const struct {
        char ch;
        const char *ent;
    } he[] = {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&quot;"}, {'\'', "&#39;"}};
    static const struct {
        char ch;
        const char *esc;
    } je[] = {{'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\r', "\\r"},
              {'\t', "\\t"}, {'\f', "\\f"},  {'\b', "\\b"}};
    sbuf b = {0};
    for (size_t i = 0; i < len;) {
        const char *rep = NULL;
        size_t skip = 1;
        if (esc) {
            if (html) {
                for (size_t k = 0; k < sizeof he / sizeof he[0]; k++)
                    if (p[i] == he[k].ch)
                        rep = he[k].ent;
            } else {
                for (size_t k = 0; k < sizeof je / sizeof je[0]; k++)
                    if (p[i] == je[k].ch)
                        rep = je[k].esc;
            }
        } else if (html && p[i] == '&') {
            for (size_t k = 0; k < sizeof he / sizeof he[0]; k++) {
                size_t el = strlen(he[k].ent);
                if (i + el <= len && memcmp(p + i, he[k].ent, el) == 0) {
                    rep = &he[k].ch;
                    skip = el;
                }
            }
            if (rep) {
                if (!sb_add(c, &b, rep, 1))
                    return c->fail;
                i += skip;
                continue;
            }
        } else if (json && p[i] == '\\' && i + 1 < len) {
            for (size_t k = 0; k < sizeof je / sizeof je[0]; k++) {
                if (p[i + 1] == je[k].esc[1]) {
                    if (!sb_add(c, &b, &je[k].ch, 1))
                        return c->fail;
                    rep = "";
                }
            }
            if (!rep && p[i + 1] == '/') {
                if (!sb_add(c, &b, "/", 1))
                    return c->fail;
                rep = "";
            }
            if (rep) {
                i += 2;
                continue;
            }
        }
        if (rep) {
            if (!sb_add(c, &b, rep, strlen(rep)))
                return c->fail;
        } else if (!sb_add(c, &b, p + i, 1)) {
            return c->fail;
        }
        i += skip;
    }
    return sb_push(c, &b, out);
}

static ehr_status fn_escape(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                            fp_coll *out)
{
    return escaping(c, n, s, in, out, true);
}

static ehr_status fn_unescape(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                              fp_coll *out)
{
    return escaping(c, n, s, in, out, false);
}

const fp_fn fp_fns_string[] = {
    {"indexOf", 1, 1, fn_index_of, FP_FN_STRING},
    {"lastIndexOf", 1, 1, fn_last_index_of, FP_FN_STRING},
    {"substring", 1, 2, fn_substring, FP_FN_STRING},
    {"startsWith", 1, 1, fn_starts_with, FP_FN_STRING},
    {"endsWith", 1, 1, fn_ends_with, FP_FN_STRING},
    {"contains", 1, 1, fn_contains, FP_FN_STRING},
    {"upper", 0, 0, fn_upper, FP_FN_STRING},
    {"lower", 0, 0, fn_lower, FP_FN_STRING},
    {"replace", 2, 2, fn_replace, FP_FN_STRING},
    {"matches", 1, 2, fn_matches, FP_FN_STRING},
    {"matchesFull", 1, 2, fn_matches_full, FP_FN_STRING},
    {"replaceMatches", 2, 3, fn_replace_matches, FP_FN_STRING},
    {"length", 0, 0, fn_length, FP_FN_STRING},
    {"toChars", 0, 0, fn_to_chars, FP_FN_STRING},
    {"trim", 0, 0, fn_trim, FP_FN_STRING},
    {"split", 1, 1, fn_split, FP_FN_STRING},
    {"join", 0, 1, fn_join, 0},
    {"encode", 1, 1, fn_encode, FP_FN_STRING},
    {"decode", 1, 1, fn_decode, FP_FN_STRING},
    {"escape", 1, 1, fn_escape, FP_FN_STRING},
    {"unescape", 1, 1, fn_unescape, FP_FN_STRING},
};
const size_t fp_n_fns_string = sizeof fp_fns_string / sizeof fp_fns_string[0];
