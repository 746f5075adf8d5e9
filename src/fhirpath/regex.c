/*
 * regex.c - regular expressions for matches(), matchesFull() and
 * replaceMatches() (FHIRPath N1 section 5.6.9: PCRE flavour recommended,
 * case-sensitive, single-line mode where '.' also matches a newline).
 *
 * A backtracking matcher over a small compiled program, in the style of
 * Russ Cox's "Regular Expression Matching: the Virtual Machine Approach",
 * working on UTF-8 characters. Supported: literals and escapes, '.',
 * classes with ranges and \d \w \s (and negations), POSIX [:alpha:] names,
 * anchors ^ $ \A \z \Z \b \B, groups (capturing, (?:..), named (?<n>..)),
 * alternation, greedy and lazy quantifiers * + ? {n} {n,} {n,m},
 * backreferences \1 and \k<n>, lookahead (?=..) (?!..). Not supported:
 * lookbehind, Unicode properties \p{..}, inline flags.
 *
 * Patterns come from expressions and data, so matching is bounded: every
 * call gets a step budget and reports -1 when it runs out, instead of
 * taking exponential time on patterns like (a+)+b.
 */
#include <stdlib.h>
#include <string.h>

#include "fhirpath/fhirpath_int.h"

enum {
    R_EMPTY,
    R_CHAR,
    R_ANY,
    R_CLASS,
    R_BOL,
    R_EOL,
    R_STRBEG,
    R_STREND,
    R_STRENDNL,
    R_WORDB,
    R_NWORDB,
    R_CAT,
    R_ALT,
    R_GROUP,
    R_REPEAT,
    R_BACKREF,
    R_LOOK,
};

#define R_INF (-1)
#define MAX_PROG 100000
#define MAX_REPEAT 1000
#define MAX_RANGES 512

typedef struct rnode rnode;
struct rnode {
    int type;
    uint32_t c;
    int cls;
    int min, max;
    bool greedy, neg;
    int cap;
    int loop; /* loop register for a star over something that can be empty */
    rnode *a, *b;
};

typedef struct rclass {
    bool neg;
    int n;
    uint32_t *r; /* pairs lo, hi */
} rclass;

enum {
    I_CHAR,
    I_ANY,
    I_ANYNL,
    I_CLASS,
    I_BOL,
    I_EOL,
    I_STRBEG,
    I_STREND,
    I_STRENDNL,
    I_WORDB,
    I_NWORDB,
    I_SPLIT,
    I_JMP,
    I_SAVE,
    I_BACKREF,
    I_LOOK,
    I_LOOPSET,
    I_LOOPCHK,
    I_MATCH,
};

typedef struct rinst {
    uint8_t op;
    bool neg;
    int x, y;
    uint32_t c;
} rinst;

struct fp_regex {
    rinst *prog;
    int nprog;
    rclass *cls;
    int ncls;
    int ngroups; /* including group 0 */
    int nloops;
    unsigned flags;
    const char **names;
    int *name_group;
    int nnames;
};

typedef struct rparser {
    const char *p;
    size_t i, n;
    ehr_arena *a;
    const char *err;
    int ngroups;
    int nloops;
    int depth;
    unsigned flags;
    rclass cls[64];
    int ncls;
    const char *names[32];
    int name_group[32];
    int nnames;
} rparser;

static rnode *node(rparser *P, int type)
{
    rnode *n = ehr_arena_calloc(P->a, 1, sizeof *n);
    if (!n) {
        P->err = "out of memory";
        return NULL;
    }
    n->type = type;
    n->cap = -1;
    n->loop = -1;
    return n;
}

static rnode *bin(rparser *P, int type, rnode *a, rnode *b)
{
    rnode *n = node(P, type);
    if (n) {
        n->a = a;
        n->b = b;
    }
    return n;
}

/* ---- character classes ---- */

typedef struct ranges {
    uint32_t r[MAX_RANGES * 2];
    int n;
} ranges;

static bool add_range(rparser *P, ranges *rs, uint32_t lo, uint32_t hi)
{
    if (rs->n >= MAX_RANGES) {
        P->err = "character class too large";
        return false;
    }
    rs->r[rs->n * 2] = lo;
    rs->r[rs->n * 2 + 1] = hi;
    rs->n++;
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Add the complement of src to dst. */
static bool add_complement(rparser *P, ranges *dst, ranges *src)
{
    qsort(src->r, (size_t)src->n, sizeof(uint32_t) * 2, cmp_range);
    uint32_t next = 0;
    for (int i = 0; i < src->n; i++) {
        if (src->r[i * 2] > next && !add_range(P, dst, next, src->r[i * 2] - 1))
            return false;
        if (src->r[i * 2 + 1] + 1 > next)
            next = src->r[i * 2 + 1] + 1;
    }
    return next > 0x10FFFF || add_range(P, dst, next, 0x10FFFF);
}

static bool add_named(rparser *P, ranges *rs, char which)
{
    ranges tmp;
    tmp.n = 0;
    ranges *t = (which >= 'A' && which <= 'Z') ? &tmp : rs;
    switch (which | 0x20) {
    case 'd':
        if (!add_range(P, t, '0', '9'))
            return false;
        break;
    case 'w':
        if (!add_range(P, t, '0', '9') || !add_range(P, t, 'A', 'Z') ||
            !add_range(P, t, 'a', 'z') || !add_range(P, t, '_', '_'))
            return false;
        break;
    case 's':
        if (!add_range(P, t, '\t', '\r') || !add_range(P, t, ' ', ' ') ||
            !add_range(P, t, 0xA0, 0xA0))
            return false;
        break;
    default:
        return false;
    }
    if (t == &tmp)
        return add_complement(P, rs, &tmp);
    return true;
}

static bool posix_class(rparser *P, ranges *rs)
{
    static const struct {
        const char *name;
        const char *spans; /* pairs of characters */
    } pc[] = {
        {"alpha", "AZaz"},    {"digit", "09"},      {"alnum", "09AZaz"},
        {"upper", "AZ"},      {"lower", "az"},      {"space", "\t\r  "},
        {"xdigit", "09AFaf"}, {"word", "09AZaz__"}, {"punct", "!/:@[`{~"},
    };
    size_t end = P->i + 2;
    while (end < P->n && P->p[end] != ':')
        end++;
    if (end + 1 >= P->n || P->p[end + 1] != ']')
        return false;
    const char *name = P->p + P->i + 2;
    size_t len = end - (P->i + 2);
    for (size_t k = 0; k < sizeof pc / sizeof pc[0]; k++) {
        if (strlen(pc[k].name) == len && memcmp(pc[k].name, name, len) == 0) {
            for (const char *s = pc[k].spans; *s; s += 2)
                if (!add_range(P, rs, (unsigned char)s[0], (unsigned char)s[1]))
                    return false;
            P->i = end + 2;
            return true;
        }
    }
    return false;
}

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

/* An escaped character after '\' (P->i at the letter); false if not one. */
static bool escape_char(rparser *P, uint32_t *out)
{
    char c = P->p[P->i];
    switch (c) {
    case 'n':
        *out = '\n';
        break;
    case 'r':
        *out = '\r';
        break;
    case 't':
        *out = '\t';
        break;
    case 'f':
        *out = '\f';
        break;
    case 'v':
        *out = '\v';
        break;
    case 'e':
        *out = 0x1B;
        break;
    case '0':
        *out = 0;
        break;
    case 'x':
    case 'u': {
        size_t k = P->i + 1;
        uint32_t v = 0;
        int nd = c == 'x' ? 2 : 4;
        if (c == 'x' && k < P->n && P->p[k] == '{') {
            k++;
            while (k < P->n && P->p[k] != '}') {
                int h = hexval(P->p[k]);
                if (h < 0 || v > 0x10FFFF)
                    return false;
                v = v * 16 + (uint32_t)h;
                k++;
            }
            if (k >= P->n)
                return false;
            P->i = k;
            *out = v;
            return true;
        }
        for (int j = 0; j < nd; j++, k++) {
            if (k >= P->n || hexval(P->p[k]) < 0)
                return false;
            v = v * 16 + (uint32_t)hexval(P->p[k]);
        }
        P->i = k - 1;
        *out = v;
        break;
    }
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            return false;
        P->i += fp_utf8_decode(P->p, P->n, P->i, out) - 1;
        break;
    }
    return true;
}

static int finish_class(rparser *P, ranges *rs, bool neg)
{
    if (P->ncls >= (int)(sizeof P->cls / sizeof P->cls[0])) {
        P->err = "too many character classes";
        return -1;
    }
    rclass *c = &P->cls[P->ncls];
    c->neg = neg;
    c->n = rs->n;
    c->r = ehr_arena_alloc(P->a, sizeof(uint32_t) * 2 * (size_t)(rs->n ? rs->n : 1));
    if (!c->r) {
        P->err = "out of memory";
        return -1;
    }
    memcpy(c->r, rs->r, sizeof(uint32_t) * 2 * (size_t)rs->n);
    return P->ncls++;
}

static rnode *parse_class(rparser *P)
{
    ranges rs;
    rs.n = 0;
    bool neg = false;
    P->i++; /* '[' */
    if (P->i < P->n && P->p[P->i] == '^') {
        neg = true;
        P->i++;
    }
    bool first = true;
    while (P->i < P->n && (P->p[P->i] != ']' || first)) {
        first = false;
        uint32_t lo;
        if (P->p[P->i] == '[' && P->i + 1 < P->n && P->p[P->i + 1] == ':') {
            if (!posix_class(P, &rs)) {
                if (!P->err)
                    P->err = "unknown POSIX class";
                return NULL;
            }
            continue;
        }
        if (P->p[P->i] == '\\') {
            P->i++;
            if (P->i >= P->n) {
                P->err = "trailing backslash";
                return NULL;
            }
            char e = P->p[P->i];
            if (strchr("dDwWsS", e)) {
                if (!add_named(P, &rs, e))
                    return NULL;
                P->i++;
                continue;
            }
            if (e == 'b') {
                lo = '\b';
            } else if (!escape_char(P, &lo)) {
                P->err = "unknown escape in class";
                return NULL;
            }
            P->i++;
        } else {
            P->i += fp_utf8_decode(P->p, P->n, P->i, &lo);
        }
        uint32_t hi = lo;
        if (P->i + 1 < P->n && P->p[P->i] == '-' && P->p[P->i + 1] != ']') {
            P->i++;
            if (P->p[P->i] == '\\') {
                P->i++;
                if (P->i >= P->n || !escape_char(P, &hi)) {
                    P->err = "bad range in class";
                    return NULL;
                }
                P->i++;
            } else {
                P->i += fp_utf8_decode(P->p, P->n, P->i, &hi);
            }
            if (hi < lo) {
                P->err = "range out of order in class";
                return NULL;
            }
        }
        if (!add_range(P, &rs, lo, hi))
            return NULL;
    }
    if (P->i >= P->n) {
        P->err = "missing ]";
        return NULL;
    }
    P->i++; /* ']' */
    int k = finish_class(P, &rs, neg);
    if (k < 0)
        return NULL;
    rnode *n = node(P, R_CLASS);
    if (n)
        n->cls = k;
    return n;
}

static rnode *parse_alt(rparser *P);

static rnode *named_class(rparser *P, char which)
{
    ranges rs;
    rs.n = 0;
    if (!add_named(P, &rs, which))
        return NULL;
    int k = finish_class(P, &rs, false);
    if (k < 0)
        return NULL;
    rnode *n = node(P, R_CLASS);
    if (n)
        n->cls = k;
    return n;
}

static rnode *parse_group(rparser *P)
{
    P->i++; /* '(' */
    int cap = -1, look = 0;
    if (P->i < P->n && P->p[P->i] == '?') {
        P->i++;
        if (P->i >= P->n) {
            P->err = "bad group";
            return NULL;
        }
        char c = P->p[P->i];
        if (c == ':') {
            P->i++;
        } else if (c == '=' || c == '!') {
            look = c == '=' ? 1 : 2;
            P->i++;
        } else if (c == '<' || c == 'P' || c == '\'') {
            if (c == 'P')
                P->i++;
            if (P->i + 1 < P->n && P->p[P->i] == '<' &&
                (P->p[P->i + 1] == '=' || P->p[P->i + 1] == '!')) {
                P->err = "lookbehind is not supported";
                return NULL;
            }
            char close = P->p[P->i] == '\'' ? '\'' : '>';
            size_t s = ++P->i;
            while (P->i < P->n && P->p[P->i] != close)
                P->i++;
            if (P->i >= P->n || P->i == s || P->nnames >= 32) {
                P->err = "bad group name";
                return NULL;
            }
            cap = P->ngroups++;
            P->names[P->nnames] = ehr_arena_strndup(P->a, P->p + s, P->i - s);
            P->name_group[P->nnames++] = cap;
            P->i++;
        } else {
            P->err = "unsupported group syntax";
            return NULL;
        }
    } else {
        cap = P->ngroups++;
    }
    if (++P->depth > 100) {
        P->err = "groups nested too deeply";
        return NULL;
    }
    rnode *inner = parse_alt(P);
    P->depth--;
    if (!inner)
        return NULL;
    if (P->i >= P->n || P->p[P->i] != ')') {
        P->err = "missing )";
        return NULL;
    }
    P->i++;
    rnode *g = node(P, look ? R_LOOK : R_GROUP);
    if (!g)
        return NULL;
    g->a = inner;
    g->cap = cap;
    g->neg = look == 2;
    return g;
}

static rnode *parse_atom(rparser *P)
{
    char c = P->p[P->i];
    rnode *n;
    switch (c) {
    case '(':
        return parse_group(P);
    case '[':
        return parse_class(P);
    case '.':
        P->i++;
        return node(P, R_ANY);
    case '^':
        P->i++;
        return node(P, R_BOL);
    case '$':
        P->i++;
        return node(P, R_EOL);
    case '*':
    case '+':
    case '?':
        P->err = "quantifier without a preceding item";
        return NULL;
    case '\\': {
        P->i++;
        if (P->i >= P->n) {
            P->err = "trailing backslash";
            return NULL;
        }
        char e = P->p[P->i];
        if (strchr("dDwWsS", e)) {
            P->i++;
            return named_class(P, e);
        }
        int t = -1;
        switch (e) {
        case 'b':
            t = R_WORDB;
            break;
        case 'B':
            t = R_NWORDB;
            break;
        case 'A':
            t = R_STRBEG;
            break;
        case 'z':
            t = R_STREND;
            break;
        case 'Z':
            t = R_STRENDNL;
            break;
        default:
            break;
        }
        if (t >= 0) {
            P->i++;
            return node(P, t);
        }
        if (e >= '1' && e <= '9') {
            int g = e - '0';
            P->i++;
            if (P->i < P->n && P->p[P->i] >= '0' && P->p[P->i] <= '9' &&
                g * 10 + (P->p[P->i] - '0') < P->ngroups)
                g = g * 10 + (P->p[P->i++] - '0');
            n = node(P, R_BACKREF);
            if (n)
                n->cap = g;
            return n;
        }
        if (e == 'k' && P->i + 1 < P->n && P->p[P->i + 1] == '<') {
            size_t s = P->i + 2, k = s;
            while (k < P->n && P->p[k] != '>')
                k++;
            for (int j = 0; k < P->n && j < P->nnames; j++) {
                if (strlen(P->names[j]) == k - s && memcmp(P->names[j], P->p + s, k - s) == 0) {
                    P->i = k + 1;
                    n = node(P, R_BACKREF);
                    if (n)
                        n->cap = P->name_group[j];
                    return n;
                }
            }
            P->err = "unknown group name";
            return NULL;
        }
        uint32_t cp;
        if (!escape_char(P, &cp)) {
            P->err = "unsupported escape";
            return NULL;
        }
        P->i++;
        n = node(P, R_CHAR);
        if (n)
            n->c = cp;
        return n;
    }
    default: {
        uint32_t cp;
        P->i += fp_utf8_decode(P->p, P->n, P->i, &cp);
        n = node(P, R_CHAR);
        if (n)
            n->c = cp;
        return n;
    }
    }
}

/* {n}, {n,}, {n,m} at P->i; false (and P->i unchanged) when not one. */
static bool parse_braces(rparser *P, int *min, int *max)
{
    size_t k = P->i + 1;
    int a = 0, b;
    bool dig = false;
    while (k < P->n && P->p[k] >= '0' && P->p[k] <= '9') {
        if (a <= MAX_REPEAT)
            a = a * 10 + (P->p[k] - '0');
        dig = true;
        k++;
    }
    if (!dig || k >= P->n)
        return false;
    b = a;
    if (P->p[k] == ',') {
        k++;
        b = R_INF;
        if (k < P->n && P->p[k] >= '0' && P->p[k] <= '9') {
            b = 0;
            while (k < P->n && P->p[k] >= '0' && P->p[k] <= '9') {
                if (b <= MAX_REPEAT)
                    b = b * 10 + (P->p[k] - '0');
                k++;
            }
        }
    }
    if (k >= P->n || P->p[k] != '}')
        return false;
    *min = a;
    *max = b;
    P->i = k + 1;
    return true;
}

static rnode *parse_repeat(rparser *P)
{
    rnode *atom;
    if (P->p[P->i] == '{') {
        int mn, mx;
        size_t save = P->i;
        if (parse_braces(P, &mn, &mx)) {
            P->err = "quantifier without a preceding item";
            return NULL;
        }
        P->i = save + 1;
        atom = node(P, R_CHAR);
        if (atom)
            atom->c = '{';
    } else {
        atom = parse_atom(P);
    }
    while (atom && P->i < P->n) {
        char c = P->p[P->i];
        int mn, mx;
        if (c == '*') {
            mn = 0;
            mx = R_INF;
            P->i++;
        } else if (c == '+') {
            mn = 1;
            mx = R_INF;
            P->i++;
        } else if (c == '?') {
            mn = 0;
            mx = 1;
            P->i++;
        } else if (c == '{') {
            if (!parse_braces(P, &mn, &mx))
                break;
            if (mn > MAX_REPEAT || mx > MAX_REPEAT || (mx != R_INF && mx < mn)) {
                P->err = "bad repetition count";
                return NULL;
            }
        } else {
            break;
        }
        bool greedy = true;
        if (P->i < P->n && P->p[P->i] == '?') {
            greedy = false;
            P->i++;
        } else if (P->i < P->n && P->p[P->i] == '+') {
            P->i++; /* possessive: treated as greedy */
        }
        rnode *r = node(P, R_REPEAT);
        if (!r)
            return NULL;
        r->a = atom;
        r->min = mn;
        r->max = mx;
        r->greedy = greedy;
        atom = r;
    }
    return atom;
}

static rnode *parse_cat(rparser *P)
{
    rnode *n = node(P, R_EMPTY);
    while (n && P->i < P->n && P->p[P->i] != '|' && P->p[P->i] != ')') {
        rnode *a = parse_repeat(P);
        if (!a)
            return NULL;
        n = n->type == R_EMPTY ? a : bin(P, R_CAT, n, a);
    }
    return n;
}

static rnode *parse_alt(rparser *P)
{
    rnode *n = parse_cat(P);
    while (n && P->i < P->n && P->p[P->i] == '|') {
        P->i++;
        rnode *b = parse_cat(P);
        if (!b)
            return NULL;
        n = bin(P, R_ALT, n, b);
    }
    return n;
}

/* ---- compile ---- */

static bool nullable(const rnode *n)
{
    switch (n->type) {
    case R_CHAR:
    case R_ANY:
    case R_CLASS:
        return false;
    case R_CAT:
        return nullable(n->a) && nullable(n->b);
    case R_ALT:
        return nullable(n->a) || nullable(n->b);
    case R_GROUP:
        return nullable(n->a);
    case R_REPEAT:
        return n->min == 0 || nullable(n->a);
    default:
        return true;
    }
}

static long prog_size(rparser *P, rnode *n)
{
    long s;
    switch (n->type) {
    case R_EMPTY:
        return 0;
    case R_CAT:
        return prog_size(P, n->a) + prog_size(P, n->b);
    case R_ALT:
        return prog_size(P, n->a) + prog_size(P, n->b) + 2;
    case R_GROUP:
        return prog_size(P, n->a) + (n->cap >= 0 ? 2 : 0);
    case R_LOOK:
        return prog_size(P, n->a) + 2;
    case R_REPEAT:
        s = prog_size(P, n->a);
        if (s > MAX_PROG)
            return s;
        if (n->max == R_INF) {
            if (nullable(n->a))
                n->loop = P->nloops++;
            return s * n->min + s + 2 + (n->loop >= 0 ? 2 : 0);
        }
        return s * n->min + (long)(n->max - n->min) * (s + 1);
    default:
        return 1;
    }
}

typedef struct emitter {
    rinst *prog;
    int pc;
} emitter;

static int emit(emitter *E, int op, int x, int y, uint32_t c, bool neg)
{
    rinst *i = &E->prog[E->pc];
    i->op = (uint8_t)op;
    i->x = x;
    i->y = y;
    i->c = c;
    i->neg = neg;
    return E->pc++;
}

static void gen(emitter *E, const rnode *n, unsigned flags)
{
    int a, b;
    switch (n->type) {
    case R_EMPTY:
        break;
    case R_CHAR:
        emit(E, I_CHAR, 0, 0, n->c, false);
        break;
    case R_ANY:
        emit(E, (flags & FP_RE_DOTALL) ? I_ANY : I_ANYNL, 0, 0, 0, false);
        break;
    case R_CLASS:
        emit(E, I_CLASS, n->cls, 0, 0, false);
        break;
    case R_BOL:
        emit(E, I_BOL, 0, 0, 0, false);
        break;
    case R_EOL:
        emit(E, I_EOL, 0, 0, 0, false);
        break;
    case R_STRBEG:
        emit(E, I_STRBEG, 0, 0, 0, false);
        break;
    case R_STREND:
        emit(E, I_STREND, 0, 0, 0, false);
        break;
    case R_STRENDNL:
        emit(E, I_STRENDNL, 0, 0, 0, false);
        break;
    case R_WORDB:
        emit(E, I_WORDB, 0, 0, 0, false);
        break;
    case R_NWORDB:
        emit(E, I_NWORDB, 0, 0, 0, false);
        break;
    case R_BACKREF:
        emit(E, I_BACKREF, n->cap, 0, 0, false);
        break;
    case R_CAT:
        gen(E, n->a, flags);
        gen(E, n->b, flags);
        break;
    case R_ALT:
        a = emit(E, I_SPLIT, 0, 0, 0, false);
        E->prog[a].x = E->pc;
        gen(E, n->a, flags);
        b = emit(E, I_JMP, 0, 0, 0, false);
        E->prog[a].y = E->pc;
        gen(E, n->b, flags);
        E->prog[b].x = E->pc;
        break;
    case R_GROUP:
        if (n->cap >= 0)
            emit(E, I_SAVE, n->cap * 2, 0, 0, false);
        gen(E, n->a, flags);
        if (n->cap >= 0)
            emit(E, I_SAVE, n->cap * 2 + 1, 0, 0, false);
        break;
    case R_LOOK:
        a = emit(E, I_LOOK, 0, 0, 0, n->neg);
        E->prog[a].x = E->pc;
        gen(E, n->a, flags);
        emit(E, I_MATCH, 0, 0, 0, false);
        E->prog[a].y = E->pc;
        break;
    case R_REPEAT:
        for (int k = 0; k < n->min; k++)
            gen(E, n->a, flags);
        if (n->max == R_INF) {
            int loop = emit(E, I_SPLIT, 0, 0, 0, false);
            int body = E->pc;
            if (n->loop >= 0)
                emit(E, I_LOOPSET, n->loop, 0, 0, false);
            gen(E, n->a, flags);
            if (n->loop >= 0)
                emit(E, I_LOOPCHK, n->loop, 0, 0, false);
            emit(E, I_JMP, loop, 0, 0, false);
            int end = E->pc;
            E->prog[loop].x = n->greedy ? body : end;
            E->prog[loop].y = n->greedy ? end : body;
        } else {
            int opt = n->max - n->min;
            /* opt nested optional copies; each is a SPLIT and the body, all
             * of the same size, so split k sits at base + k * step */
            int base = E->pc, step = 0;
            for (int k = 0; k < opt; k++) {
                int s = emit(E, I_SPLIT, 0, 0, 0, false);
                E->prog[s].x = E->pc; /* body */
                gen(E, n->a, flags);
                if (k == 0)
                    step = E->pc - base;
            }
            for (int k = 0; k < opt; k++) {
                int s = base + k * step;
                int body = E->prog[s].x;
                E->prog[s].x = n->greedy ? body : E->pc;
                E->prog[s].y = n->greedy ? E->pc : body;
            }
        }
        break;
    default:
        break;
    }
}

fp_regex *fp_regex_compile(ehr_arena *a, const char *pat, size_t len, unsigned flags,
                           const char **err)
{
    rparser P;
    memset(&P, 0, sizeof P);
    P.p = pat;
    P.n = len;
    P.a = a;
    P.flags = flags;
    P.ngroups = 1;
    rnode *root = parse_alt(&P);
    if (root && P.i < P.n) {
        P.err = "unmatched )";
        root = NULL;
    }
    if (!root) {
        *err = P.err ? P.err : "bad pattern";
        return NULL;
    }
    long size = prog_size(&P, root) + 3;
    if (size > MAX_PROG) {
        *err = "pattern too large";
        return NULL;
    }
    fp_regex *re = ehr_arena_calloc(a, 1, sizeof *re);
    rinst *prog = re ? ehr_arena_calloc(a, (size_t)size, sizeof(rinst)) : NULL;
    if (!prog) {
        *err = "out of memory";
        return NULL;
    }
    emitter E = {prog, 0};
    emit(&E, I_SAVE, 0, 0, 0, false);
    gen(&E, root, flags);
    emit(&E, I_SAVE, 1, 0, 0, false);
    emit(&E, I_MATCH, 0, 0, 0, false);
    re->prog = prog;
    re->nprog = E.pc;
    re->ncls = P.ncls;
    re->cls = ehr_arena_calloc(a, (size_t)(P.ncls ? P.ncls : 1), sizeof(rclass));
    if (!re->cls) {
        *err = "out of memory";
        return NULL;
    }
    memcpy(re->cls, P.cls, sizeof(rclass) * (size_t)P.ncls);
    re->ngroups = P.ngroups;
    re->nloops = P.nloops;
    re->flags = flags;
    re->nnames = P.nnames;
    re->names = ehr_arena_calloc(a, (size_t)(P.nnames ? P.nnames : 1), sizeof(char *));
    re->name_group = ehr_arena_calloc(a, (size_t)(P.nnames ? P.nnames : 1), sizeof(int));
    if (!re->names || !re->name_group) {
        *err = "out of memory";
        return NULL;
    }
    for (int i = 0; i < P.nnames; i++) {
        re->names[i] = P.names[i];
        re->name_group[i] = P.name_group[i];
    }
    return re;
}

int fp_regex_ngroups(const fp_regex *re)
{
    return re->ngroups;
}

int fp_regex_group_index(const fp_regex *re, const char *name, size_t len)
{
    for (int i = 0; i < re->nnames; i++)
        if (strlen(re->names[i]) == len && memcmp(re->names[i], name, len) == 0)
            return re->name_group[i];
    return -1;
}

/* ---- match ---- */

static bool is_word(const char *s, size_t len, long i)
{
    if (i < 0 || (size_t)i >= len)
        return false;
    char c = s[i];
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool in_class(const rclass *c, uint32_t ch, bool icase)
{
    bool in = false;
    for (int pass = 0; pass < (icase ? 3 : 1) && !in; pass++) {
        uint32_t x = pass == 0 ? ch : pass == 1 ? fp_lower(ch) : fp_upper(ch);
        for (int i = 0; i < c->n; i++) {
            if (x >= c->r[i * 2] && x <= c->r[i * 2 + 1]) {
                in = true;
                break;
            }
        }
    }
    return in != c->neg;
}

typedef struct bt {
    int kind; /* 0 branch, 1 restore */
    int pc;
    long pos;
} bt;

typedef struct vm {
    const fp_regex *re;
    const char *s;
    size_t len;
    bool full;
    long *slots;
    size_t *budget;
} vm;

static int run(vm *V, int pc0, long pos0, bool sub);

static bool push(bt **stk, size_t *n, size_t *cap, int kind, int pc, long pos)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        if (nc > (1u << 22))
            return false;
        bt *ns = realloc(*stk, nc * sizeof(bt));
        if (!ns)
            return false;
        *stk = ns;
        *cap = nc;
    }
    (*stk)[*n].kind = kind;
    (*stk)[*n].pc = pc;
    (*stk)[*n].pos = pos;
    (*n)++;
    return true;
}

/* Returns 1 on match, 0 on no match, -1 when out of budget or memory. */
static int run(vm *V, int pc0, long pos0, bool sub)
{
    const fp_regex *re = V->re;
    const rinst *prog = re->prog;
    bool icase = (re->flags & FP_RE_ICASE) != 0;
    bool ml = (re->flags & FP_RE_MULTILINE) != 0;
    const char *s = V->s;
    long len = (long)V->len;
    bt *stk = NULL;
    size_t n = 0, cap = 0;
    int result = 0;
    if (!push(&stk, &n, &cap, 0, pc0, pos0))
        return -1;
    while (n > 0) {
        bt e = stk[--n];
        if (e.kind == 1) {
            V->slots[e.pc] = e.pos;
            continue;
        }
        int pc = e.pc;
        long pos = e.pos;
        for (;;) {
            if (*V->budget == 0) {
                result = -1;
                goto out;
            }
            (*V->budget)--;
            const rinst *in = &prog[pc];
            uint32_t ch;
            size_t cl;
            switch (in->op) {
            case I_CHAR:
                if (pos >= len)
                    goto fail;
                cl = fp_utf8_decode(s, (size_t)len, (size_t)pos, &ch);
                if (ch != in->c && !(icase && fp_lower(ch) == fp_lower(in->c)))
                    goto fail;
                pos += (long)cl;
                pc++;
                continue;
            case I_ANY:
            case I_ANYNL:
                if (pos >= len || (in->op == I_ANYNL && s[pos] == '\n'))
                    goto fail;
                pos += (long)fp_utf8_decode(s, (size_t)len, (size_t)pos, &ch);
                pc++;
                continue;
            case I_CLASS:
                if (pos >= len)
                    goto fail;
                cl = fp_utf8_decode(s, (size_t)len, (size_t)pos, &ch);
                if (!in_class(&re->cls[in->x], ch, icase))
                    goto fail;
                pos += (long)cl;
                pc++;
                continue;
            case I_BOL:
                if (!(pos == 0 || (ml && s[pos - 1] == '\n')))
                    goto fail;
                pc++;
                continue;
            case I_EOL:
                if (!(pos == len || (pos == len - 1 && s[pos] == '\n') || (ml && s[pos] == '\n')))
                    goto fail;
                pc++;
                continue;
            case I_STRBEG:
                if (pos != 0)
                    goto fail;
                pc++;
                continue;
            case I_STREND:
                if (pos != len)
                    goto fail;
                pc++;
                continue;
            case I_STRENDNL:
                if (!(pos == len || (pos == len - 1 && s[pos] == '\n')))
                    goto fail;
                pc++;
                continue;
            case I_WORDB:
            case I_NWORDB: {
                bool b = is_word(s, (size_t)len, pos - 1) != is_word(s, (size_t)len, pos);
                if (b != (in->op == I_WORDB))
                    goto fail;
                pc++;
                continue;
            }
            case I_SPLIT:
                if (!push(&stk, &n, &cap, 0, in->y, pos)) {
                    result = -1;
                    goto out;
                }
                pc = in->x;
                continue;
            case I_JMP:
                pc = in->x;
                continue;
            case I_SAVE:
            case I_LOOPSET: {
                int slot = in->op == I_SAVE ? in->x : re->ngroups * 2 + in->x;
                if (!push(&stk, &n, &cap, 1, slot, V->slots[slot])) {
                    result = -1;
                    goto out;
                }
                V->slots[slot] = pos;
                pc++;
                continue;
            }
            case I_LOOPCHK:
                /* an iteration that consumed nothing ends the loop */
                if (V->slots[re->ngroups * 2 + in->x] == pos)
                    goto fail;
                pc++;
                continue;
            case I_BACKREF: {
                if (in->x >= re->ngroups)
                    goto fail;
                long b0 = V->slots[in->x * 2], b1 = V->slots[in->x * 2 + 1];
                if (b0 < 0 || b1 < b0) {
                    pc++;
                    continue;
                }
                long bl = b1 - b0;
                if (pos + bl > len)
                    goto fail;
                if (icase) {
                    long k = 0;
                    while (k < bl) {
                        uint32_t x, y;
                        size_t l1 = fp_utf8_decode(s, (size_t)len, (size_t)(b0 + k), &x);
                        fp_utf8_decode(s, (size_t)len, (size_t)(pos + k), &y);
                        if (fp_lower(x) != fp_lower(y))
                            goto fail;
                        k += (long)l1;
                    }
                } else if (memcmp(s + b0, s + pos, (size_t)bl) != 0) {
                    goto fail;
                }
                pos += bl;
                pc++;
                continue;
            }
            case I_LOOK: {
                size_t ns = (size_t)(re->ngroups * 2 + re->nloops);
                long *save = malloc(ns * sizeof(long));
                if (!save) {
                    result = -1;
                    goto out;
                }
                memcpy(save, V->slots, ns * sizeof(long));
                int r = run(V, in->x, pos, true);
                memcpy(V->slots, save, ns * sizeof(long));
                free(save);
                if (r < 0) {
                    result = -1;
                    goto out;
                }
                if ((r == 1) == in->neg)
                    goto fail;
                pc = in->y;
                continue;
            }
            case I_MATCH:
                if (!sub && V->full && pos != len)
                    goto fail;
                result = 1;
                goto out;
            default:
                goto fail;
            }
        fail:
            break;
        }
    }
out:
    free(stk);
    return result;
}

int fp_regex_exec(const fp_regex *re, const char *s, size_t len, size_t start, bool anchored_full,
                  long *caps, int ncaps, size_t *budget)
{
    size_t ns = (size_t)(re->ngroups * 2 + re->nloops);
    long *slots = malloc(ns * sizeof(long));
    if (!slots)
        return -1;
    vm V = {re, s, len, anchored_full, slots, budget};
    int r = 0;
    for (size_t p = start; p <= len;) {
        for (size_t k = 0; k < ns; k++)
            slots[k] = -1;
        r = run(&V, 0, (long)p, false);
        if (r != 0 || anchored_full)
            break;
        if (p == len)
            break;
        uint32_t ch;
        p += fp_utf8_decode(s, len, p, &ch);
    }
    if (r == 1 && caps) {
        for (int k = 0; k < ncaps && k < re->ngroups * 2; k++)
            caps[k] = slots[k];
        for (int k = re->ngroups * 2; k < ncaps; k++)
            caps[k] = -1;
    }
    free(slots);
    return r;
}
