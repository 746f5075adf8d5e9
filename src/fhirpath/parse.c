/*
 * parse.c - lexer and parser of FHIRPath (grammar of FHIRPath N1, appendix
 * "Formal Syntax", fhirpath.g4), producing the fp_node tree.
 *
 * Operator precedence, from loose to tight (N1 section 6.8.2):
 *   implies | or xor | and | in contains | = ~ != !~ | < > <= >= | '|'
 *   | is as | + - & | * / div mod | unary + - | . and [] (invocation)
 * All binary operators associate to the left.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fhirpath/fhirpath_int.h"

typedef enum {
    T_EOF,
    T_IDENT,  /* simple identifier (and keywords) */
    T_DIDENT, /* `delimited identifier` */
    T_STRING,
    T_NUMBER,
    T_DATE,
    T_DATETIME,
    T_TIME,
    T_BADTIME, /* @T.. with a zone: valid token, fails when evaluated */
    T_SYM,
    T_THIS,
    T_INDEX,
    T_TOTAL,
} tok_type;

typedef struct token {
    tok_type type;
    size_t pos, end; /* source span */
    const char *val; /* decoded string / identifier (arena), or raw text */
    size_t vlen;
    char sym[3];
} token;

typedef struct parser {
    const char *s;
    size_t len, i;
    ehr_arena *a;
    ehr_err *err;
    token t;  /* current token */
    token nx; /* lookahead */
    bool have_nx;
    int depth;
    ehr_status st;
} parser;

void fp_position(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

ehr_status fp_set_error(ehr_err *err, ehr_status st, const char *cls, const char *text, size_t len,
                        size_t off, const char *fmt, va_list ap)
{
    if (!err)
        return st;
    char what[400];
    vsnprintf(what, sizeof what, fmt, ap);
    unsigned line, col;
    fp_position(text, len, off, &line, &col);
    if (line > 1)
        ehr_err_at(err, st, "", "%s at line %u, column %u: %s", cls, line, col, what);
    else
        ehr_err_at(err, st, "", "%s at column %u: %s", cls, col, what);
    snprintf(err->where, sizeof err->where, "%u:%u", line, col);
    return st;
}

static ehr_status perr(parser *P, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ehr_status perr(parser *P, size_t off, const char *fmt, ...)
{
    if (P->st != EHR_OK)
        return P->st;
    va_list ap;
    va_start(ap, fmt);
    P->st = fp_set_error(P->err, EHR_EINVAL, "syntax error", P->s, P->len, off, fmt, ap);
    va_end(ap);
    return P->st;
}

static ehr_status serr(parser *P, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ehr_status serr(parser *P, size_t off, const char *fmt, ...)
{
    if (P->st != EHR_OK)
        return P->st;
    va_list ap;
    va_start(ap, fmt);
    P->st = fp_set_error(P->err, EHR_EINVAL, "semantic error", P->s, P->len, off, fmt, ap);
    va_end(ap);
    return P->st;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_u4(parser *P, size_t i, uint32_t *v)
{
    if (i + 4 > P->len)
        return false;
    uint32_t r = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexv(P->s[i + (size_t)k]);
        if (h < 0)
            return false;
        r = r * 16 + (uint32_t)h;
    }
    *v = r;
    return true;
}

/* Read a quoted string or delimited identifier starting at P->i (the quote),
 * decoding escapes (N1 section 4.1.2: \' \" \` \\ \/ \f \n \r \t \uXXXX). */
static bool lex_quoted(parser *P, char q, token *t)
{
    size_t start = P->i++;
    /* decoded text is never longer than the source */
    char *out = ehr_arena_alloc(P->a, P->len - start + 1);
    if (!out) {
        P->st = EHR_ENOMEM;
        return false;
    }
    size_t o = 0;
    while (P->i < P->len && P->s[P->i] != q) {
        char c = P->s[P->i];
        if (c != '\\') {
            out[o++] = c;
            P->i++;
            continue;
        }
        P->i++;
        if (P->i >= P->len)
            break;
        char e = P->s[P->i++];
        switch (e) {
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'u': {
            uint32_t cp;
            if (!read_u4(P, P->i, &cp)) {
                perr(P, P->i - 2, "bad \\u escape: expected four hexadecimal digits");
                return false;
            }
            P->i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && P->i + 6 <= P->len && P->s[P->i] == '\\' &&
                P->s[P->i + 1] == 'u') {
                uint32_t lo;
                if (read_u4(P, P->i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    P->i += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD; /* unpaired surrogate */
            o += fp_utf8_encode(cp, out + o);
            break;
        }
        default:
            /* \' \" \` \\ \/ and, per FHIRPath 2.0, any other character
             * stands for itself */
            out[o++] = e;
            break;
        }
    }
    if (P->i >= P->len) {
        perr(P, start, q == '\'' ? "unterminated string" : "unterminated delimited identifier");
        return false;
    }
    P->i++;
    out[o] = '\0';
    t->type = q == '\'' ? T_STRING : T_DIDENT;
    t->val = out;
    t->vlen = o;
    t->pos = start;
    t->end = P->i;
    return true;
}

/* @... date, dateTime or time literal. */
static bool lex_at(parser *P, token *t)
{
    size_t start = P->i++;
    const char *s = P->s;
    size_t n = P->len, i = P->i;
    if (i < n && s[i] == 'T') {
        i++;
        size_t b = i;
        /* hh(:mm(:ss(.f+)?)?)? */
        if (!(i + 1 < n && is_digit(s[i]) && is_digit(s[i + 1]))) {
            perr(P, start, "bad time literal");
            return false;
        }
        i += 2;
        if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2])) {
            i += 3;
            if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2])) {
                i += 3;
                if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
                    i++;
                    while (i < n && is_digit(s[i]))
                        i++;
                }
            }
        }
        size_t e = i;
        t->type = T_TIME;
        /* a zone is not part of a time (N1 4.1.5): the token still ends
         * there, and using it is an error */
        if (i < n && s[i] == 'Z') {
            i++;
            t->type = T_BADTIME;
        } else if (i + 5 < n && (s[i] == '+' || s[i] == '-') && is_digit(s[i + 1]) &&
                   is_digit(s[i + 2]) && s[i + 3] == ':') {
            i += 6;
            t->type = T_BADTIME;
        }
        t->val = s + b;
        t->vlen = (t->type == T_TIME ? e : i) - b;
        t->pos = start;
        t->end = i;
        P->i = i;
        return true;
    }
    size_t b = i;
    if (!(i + 3 < n && is_digit(s[i]) && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
          is_digit(s[i + 3]))) {
        perr(P, start, "bad date literal: expected @YYYY, @YYYY-MM or @YYYY-MM-DD");
        return false;
    }
    i += 4;
    int parts = 1;
    while (parts < 3 && i + 2 < n && s[i] == '-' && is_digit(s[i + 1]) && is_digit(s[i + 2])) {
        i += 3;
        parts++;
    }
    t->type = T_DATE;
    if (i < n && s[i] == 'T') {
        t->type = T_DATETIME;
        i++;
        if (parts == 3 && i + 1 < n && is_digit(s[i]) && is_digit(s[i + 1])) {
            i += 2;
            if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2])) {
                i += 3;
                if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2])) {
                    i += 3;
                    if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
                        i++;
                        while (i < n && is_digit(s[i]))
                            i++;
                    }
                }
            }
            if (i < n && s[i] == 'Z')
                i++;
            else if (i + 5 < n && (s[i] == '+' || s[i] == '-') && is_digit(s[i + 1]) &&
                     is_digit(s[i + 2]) && s[i + 3] == ':' && is_digit(s[i + 4]) &&
                     is_digit(s[i + 5]))
                i += 6;
        }
    }
    t->val = s + b;
    t->vlen = i - b;
    if (t->type == T_DATETIME && t->vlen > 0 && s[i - 1] == 'T')
        t->vlen--; /* "@2015T": the T only marks a dateTime */
    t->pos = start;
    t->end = i;
    P->i = i;
    return true;
}

static bool skip_space(parser *P)
{
    for (;;) {
        while (P->i < P->len && (P->s[P->i] == ' ' || P->s[P->i] == '\t' || P->s[P->i] == '\n' ||
                                 P->s[P->i] == '\r'))
            P->i++;
        if (P->i + 1 < P->len && P->s[P->i] == '/' && P->s[P->i + 1] == '/') {
            while (P->i < P->len && P->s[P->i] != '\n')
                P->i++;
            continue;
        }
        if (P->i + 1 < P->len && P->s[P->i] == '/' && P->s[P->i + 1] == '*') {
            size_t start = P->i;
            P->i += 2;
            while (P->i + 1 < P->len && !(P->s[P->i] == '*' && P->s[P->i + 1] == '/'))
                P->i++;
            if (P->i + 1 >= P->len) {
                perr(P, start, "unterminated comment");
                return false;
            }
            P->i += 2;
            continue;
        }
        return true;
    }
}

static bool lex(parser *P, token *t)
{
    memset(t, 0, sizeof *t);
    if (!skip_space(P))
        return false;
    t->pos = P->i;
    if (P->i >= P->len) {
        t->type = T_EOF;
        t->end = P->i;
        return true;
    }
    const char *s = P->s;
    char c = s[P->i];
    if (is_alpha(c)) {
        size_t b = P->i;
        while (P->i < P->len && (is_alpha(s[P->i]) || is_digit(s[P->i])))
            P->i++;
        t->type = T_IDENT;
        t->val = ehr_arena_strndup(P->a, s + b, P->i - b);
        if (!t->val) {
            P->st = EHR_ENOMEM;
            return false;
        }
        t->vlen = P->i - b;
        t->end = P->i;
        return true;
    }
    if (is_digit(c)) {
        size_t b = P->i;
        while (P->i < P->len && is_digit(s[P->i]))
            P->i++;
        if (P->i + 1 < P->len && s[P->i] == '.' && is_digit(s[P->i + 1])) {
            P->i++;
            while (P->i < P->len && is_digit(s[P->i]))
                P->i++;
        }
        t->type = T_NUMBER;
        t->val = s + b;
        t->vlen = P->i - b;
        t->end = P->i;
        return true;
    }
    if (c == '\'' || c == '`')
        return lex_quoted(P, c, t);
    if (c == '@')
        return lex_at(P, t);
    if (c == '$') {
        size_t b = P->i++;
        while (P->i < P->len && is_alpha(s[P->i]))
            P->i++;
        size_t n = P->i - b;
        if (n == 5 && memcmp(s + b, "$this", 5) == 0)
            t->type = T_THIS;
        else if (n == 6 && memcmp(s + b, "$index", 6) == 0)
            t->type = T_INDEX;
        else if (n == 6 && memcmp(s + b, "$total", 6) == 0)
            t->type = T_TOTAL;
        else {
            perr(P, b, "unknown special variable '%.*s'", (int)n, s + b);
            return false;
        }
        t->end = P->i;
        return true;
    }
    static const char *const two[] = {"<=", ">=", "!=", "!~"};
    for (size_t k = 0; k < 4; k++) {
        if (P->i + 1 < P->len && s[P->i] == two[k][0] && s[P->i + 1] == two[k][1]) {
            t->type = T_SYM;
            t->sym[0] = two[k][0];
            t->sym[1] = two[k][1];
            P->i += 2;
            t->end = P->i;
            return true;
        }
    }
    if (strchr(".,()[]{}+-*/|&=~<>%", c)) {
        t->type = T_SYM;
        t->sym[0] = c;
        P->i++;
        t->end = P->i;
        return true;
    }
    uint32_t cp;
    fp_utf8_decode(s, P->len, P->i, &cp);
    perr(P, P->i, "unexpected character '%.*s'", (int)(cp < 0x80 ? 1 : 1), s + P->i);
    return false;
}

static bool next(parser *P)
{
    if (P->have_nx) {
        P->t = P->nx;
        P->have_nx = false;
        return true;
    }
    return lex(P, &P->t);
}

static const token *peek(parser *P)
{
    if (!P->have_nx) {
        if (!lex(P, &P->nx))
            return NULL;
        P->have_nx = true;
    }
    return &P->nx;
}

static bool is_sym(const token *t, const char *sym)
{
    return t->type == T_SYM && strcmp(t->sym, sym) == 0;
}

static bool is_word(const token *t, const char *w)
{
    return t->type == T_IDENT && strcmp(t->val, w) == 0;
}

static fp_node *mknode(parser *P, int kind, size_t pos)
{
    fp_node *n = ehr_arena_calloc(P->a, 1, sizeof *n);
    if (!n) {
        P->st = EHR_ENOMEM;
        return NULL;
    }
    n->kind = (uint8_t)kind;
    n->pos = (uint32_t)pos;
    n->end = (uint32_t)P->t.end;
    return n;
}

static const char *describe(const token *t)
{
    switch (t->type) {
    case T_EOF:
        return "end of expression";
    case T_STRING:
        return "a string";
    case T_NUMBER:
        return "a number";
    case T_DATE:
    case T_DATETIME:
    case T_TIME:
    case T_BADTIME:
        return "a date/time";
    default:
        return NULL;
    }
}

static ehr_status unexpected(parser *P, const char *expected)
{
    const token *t = &P->t;
    const char *d = describe(t);
    if (d)
        return perr(P, t->pos, "expected %s, found %s", expected, d);
    return perr(P, t->pos, "expected %s, found '%.*s'", expected, (int)(t->end - t->pos),
                P->s + t->pos);
}

static fp_node *parse_expr(parser *P, int minprec);

/* Binary operator of the current token and its precedence (0 = none). */
static int binop(const token *t, fp_op *op)
{
    static const struct {
        const char *s;
        bool word;
        fp_op op;
        int prec;
    } ops[] = {
        {"implies", true, OP_IMPLIES, 1}, {"or", true, OP_OR, 2},
        {"xor", true, OP_XOR, 2},         {"and", true, OP_AND, 3},
        {"in", true, OP_IN, 4},           {"contains", true, OP_CONTAINS, 4},
        {"=", false, OP_EQ, 5},           {"~", false, OP_EQUIV, 5},
        {"!=", false, OP_NE, 5},          {"!~", false, OP_NEQUIV, 5},
        {"<", false, OP_LT, 6},           {">", false, OP_GT, 6},
        {"<=", false, OP_LE, 6},          {">=", false, OP_GE, 6},
        {"|", false, OP_UNION, 7},        {"is", true, OP_IS, 8},
        {"as", true, OP_AS, 8},           {"+", false, OP_PLUS, 9},
        {"-", false, OP_MINUS, 9},        {"&", false, OP_CONCAT, 9},
        {"*", false, OP_MUL, 10},         {"/", false, OP_DIV, 10},
        {"div", true, OP_IDIV, 10},       {"mod", true, OP_MOD, 10},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        if (ops[k].word ? is_word(t, ops[k].s) : is_sym(t, ops[k].s)) {
            *op = ops[k].op;
            return ops[k].prec;
        }
    }
    return 0;
}

bool fp_resolve_type(const char *ns, const char *name, fp_typeref *t)
{
    static const struct {
        const char *name;
        int kind;
    } sys[] = {
        {"Boolean", EHR_FHIRPATH_BOOLEAN}, {"Integer", EHR_FHIRPATH_INTEGER},
        {"Decimal", EHR_FHIRPATH_DECIMAL}, {"String", EHR_FHIRPATH_STRING},
        {"Date", EHR_FHIRPATH_DATE},       {"DateTime", EHR_FHIRPATH_DATETIME},
        {"Time", EHR_FHIRPATH_TIME},       {"Quantity", EHR_FHIRPATH_QUANTITY},
    };
    t->ftype = NULL;
    t->sys = 0;
    t->any = false;
    t->none = false;
    bool fhir = !ns || strcmp(ns, "FHIR") == 0;
    bool system = !ns || strcmp(ns, "System") == 0;
    if (ns && !fhir && !system)
        return false;
    if (fhir)
        t->ftype = ehr_fhir_type_find(name, strlen(name));
    /* The model is searched first (N1 section 10.1); Quantity, the one name
     * both have, also matches System quantities when unqualified. */
    if (system && (!t->ftype || (!ns && strcmp(name, "Quantity") == 0))) {
        for (size_t k = 0; k < sizeof sys / sizeof sys[0]; k++)
            if (strcmp(sys[k].name, name) == 0)
                t->sys = sys[k].kind;
        if (strcmp(name, "Any") == 0)
            t->any = true;
    }
    if (!t->ftype && !t->sys && !t->any && ns)
        t->none = true; /* System.Patient: a type name, of no value */
    return t->ftype || t->sys || t->any || t->none;
}

static fp_typeref *mktype(parser *P, const char *ns, const char *name)
{
    fp_typeref *t = ehr_arena_calloc(P->a, 1, sizeof *t);
    if (!t) {
        P->st = EHR_ENOMEM;
        return NULL;
    }
    t->ns = ns;
    t->name = name;
    fp_resolve_type(ns, name, t); /* unresolved: an execution error when used */
    return t;
}

/* typeSpecifier after is/as: identifier, optionally qualified by a model
 * name (FHIR.Patient, System.Boolean). */
static fp_typeref *parse_typespec(parser *P)
{
    if (P->t.type != T_IDENT && P->t.type != T_DIDENT) {
        unexpected(P, "a type name");
        return NULL;
    }
    const char *ns = NULL, *name = P->t.val;
    const token *nx = peek(P);
    if (!nx)
        return NULL;
    if (is_sym(nx, ".") && (strcmp(name, "FHIR") == 0 || strcmp(name, "System") == 0)) {
        /* FHIR.Patient: read the name after the '.' by hand, unless it is a
         * function call (System.foo() is not a type) */
        size_t save = P->i;
        token t2, t3;
        if (!lex(P, &t2))
            return NULL;
        if (t2.type == T_IDENT || t2.type == T_DIDENT) {
            size_t after = P->i;
            if (!lex(P, &t3))
                return NULL;
            P->i = after;
            if (!is_sym(&t3, "(")) {
                ns = name;
                name = t2.val;
                P->have_nx = false; /* drop the '.'; continue after the name */
            } else {
                P->i = save;
            }
        } else {
            P->i = save;
        }
    }
    if (!next(P))
        return NULL;
    return mktype(P, ns, name);
}

/* Function arguments "(a, b)": P->t is '('. */
static bool parse_args(parser *P, fp_node *f)
{
    fp_node *args[32];
    int n = 0;
    if (!next(P))
        return false;
    if (!is_sym(&P->t, ")")) {
        for (;;) {
            if (n >= 32) {
                perr(P, P->t.pos, "too many arguments");
                return false;
            }
            fp_node *a = parse_expr(P, 0);
            if (!a)
                return false;
            args[n++] = a;
            if (is_sym(&P->t, ",")) {
                if (!next(P))
                    return false;
                continue;
            }
            if (!is_sym(&P->t, ")")) {
                unexpected(P, "',' or ')'");
                return false;
            }
            break;
        }
    }
    f->end = (uint32_t)P->t.end;
    if (!next(P))
        return false;
    f->nargs = (uint16_t)n;
    if (n) {
        f->args = ehr_arena_alloc(P->a, sizeof(fp_node *) * (size_t)n);
        if (!f->args) {
            P->st = EHR_ENOMEM;
            return false;
        }
        memcpy(f->args, args, sizeof(fp_node *) * (size_t)n);
    }
    return true;
}

/* An argument written as a type name: ident, or ns.ident. */
static fp_typeref *arg_type(parser *P, const fp_node *a)
{
    if (a->kind == FPN_MEMBER && !a->left)
        return mktype(P, NULL, a->name);
    if (a->kind == FPN_MEMBER && a->left && a->left->kind == FPN_MEMBER && !a->left->left)
        return mktype(P, a->left->name, a->name);
    perr(P, a->pos, "expected a type name");
    return NULL;
}

static bool is_regex_fn(const fp_node *f)
{
    return strcmp(f->name, "matches") == 0 || strcmp(f->name, "matchesFull") == 0 ||
           strcmp(f->name, "replaceMatches") == 0;
}

/* A literal pattern (and literal flags) is compiled once, with the
 * expression; anything else, or a bad pattern, is left to evaluation. */
static void precompile_regex(parser *P, fp_node *f)
{
    int flags_arg = strcmp(f->name, "replaceMatches") == 0 ? 2 : 1;
    const fp_node *pat = f->args[0];
    if (pat->kind != FPN_LITERAL || pat->lit.kind != EHR_FHIRPATH_STRING || pat->lit.v.s.n == 0)
        return;
    unsigned flags = FP_RE_DOTALL;
    if (f->nargs > flags_arg) {
        const fp_node *fl = f->args[flags_arg];
        if (fl->kind != FPN_LITERAL || fl->lit.kind != EHR_FHIRPATH_STRING)
            return;
        for (size_t k = 0; k < fl->lit.v.s.n; k++) {
            char ch = fl->lit.v.s.p[k];
            if (ch == 'i')
                flags |= FP_RE_ICASE;
            else if (ch == 'm')
                flags |= FP_RE_MULTILINE;
            else if (ch != 's')
                return;
        }
    }
    const char *why;
    f->re = fp_regex_compile(P->a, pat->lit.v.s.p, pat->lit.v.s.n, flags, &why);
}

/* identifier or function call after '.' or at the start of a term. */
static fp_node *parse_invocation(parser *P, fp_node *left)
{
    token id = P->t;
    if (id.type == T_THIS || id.type == T_INDEX || id.type == T_TOTAL) {
        fp_node *n = mknode(P,
                            id.type == T_THIS    ? FPN_THIS
                            : id.type == T_INDEX ? FPN_INDEX
                                                 : FPN_TOTAL,
                            id.pos);
        if (!n || !next(P))
            return NULL;
        if (left) {
            /* x.$this is x evaluated with $this bound: keep it simple */
            perr(P, id.pos, "'%s' cannot follow '.'",
                 id.type == T_THIS    ? "$this"
                 : id.type == T_INDEX ? "$index"
                                      : "$total");
            return NULL;
        }
        return n;
    }
    if (id.type != T_IDENT && id.type != T_DIDENT) {
        unexpected(P, "an identifier or function");
        return NULL;
    }
    if (!next(P))
        return NULL;
    if (id.type == T_IDENT && is_sym(&P->t, "(")) {
        fp_node *f = mknode(P, FPN_FUNC, id.pos);
        if (!f)
            return NULL;
        f->left = left;
        f->name = id.val;
        f->name_len = id.vlen;
        f->fn = fp_fn_lookup(id.val, id.vlen);
        if (!parse_args(P, f))
            return NULL;
        if (!f->fn) {
            serr(P, id.pos, "unknown function '%s'", id.val);
            return NULL;
        }
        if (f->nargs < f->fn->min_args || f->nargs > f->fn->max_args) {
            if (f->fn->min_args == f->fn->max_args)
                serr(P, id.pos, "%s() takes %d argument%s, not %d", f->name, f->fn->min_args,
                     f->fn->min_args == 1 ? "" : "s", f->nargs);
            else
                serr(P, id.pos, "%s() takes %d to %d arguments, not %d", f->name, f->fn->min_args,
                     f->fn->max_args, f->nargs);
            return NULL;
        }
        if (is_regex_fn(f))
            precompile_regex(P, f);
        if ((f->fn->flags & FP_FN_TYPEARG) && f->nargs == 1) {
            f->type = arg_type(P, f->args[0]);
            if (!f->type)
                return NULL;
        }
        return f;
    }
    fp_node *m = mknode(P, FPN_MEMBER, id.pos);
    if (!m)
        return NULL;
    m->end = (uint32_t)id.end;
    m->left = left;
    m->name = id.val;
    m->name_len = id.vlen;
    if (!left && id.val[0] >= 'A' && id.val[0] <= 'Z')
        m->tname = ehr_fhir_type_find(id.val, id.vlen);
    return m;
}

static fp_node *literal(parser *P, size_t pos)
{
    fp_node *n = mknode(P, FPN_LITERAL, pos);
    return n;
}

static fp_node *parse_term(parser *P)
{
    token t = P->t;
    fp_node *n;
    switch (t.type) {
    case T_NUMBER: {
        n = literal(P, t.pos);
        if (!n)
            return NULL;
        bool dec = memchr(t.val, '.', t.vlen) != NULL;
        fp_dec d;
        if (!fp_dec_parse(t.val, t.vlen, &d)) {
            perr(P, t.pos, "number out of range");
            return NULL;
        }
        if (!next(P))
            return NULL;
        /* quantity: number followed by a unit string or a calendar keyword */
        int cal = P->t.type == T_IDENT ? fp_calendar_unit(P->t.val, P->t.vlen) : 0;
        if (P->t.type == T_STRING || cal) {
            fp_qty *q = ehr_arena_calloc(P->a, 1, sizeof *q);
            if (!q) {
                P->st = EHR_ENOMEM;
                return NULL;
            }
            q->value = d;
            q->unit = P->t.val;
            q->quoted = P->t.type == T_STRING;
            q->cal = (uint8_t)(cal ? cal : fp_calendar_unit(P->t.val, P->t.vlen));
            n->lit.kind = EHR_FHIRPATH_QUANTITY;
            n->lit.v.q = q;
            n->end = (uint32_t)P->t.end;
            if (!next(P))
                return NULL;
            return n;
        }
        if (dec) {
            n->lit.kind = EHR_FHIRPATH_DECIMAL;
            n->lit.v.d = d;
        } else {
            int64_t v;
            if (!fp_dec_to_int64(d, &v)) {
                perr(P, t.pos, "integer out of range");
                return NULL;
            }
            n->lit.kind = EHR_FHIRPATH_INTEGER;
            n->lit.v.i = v;
        }
        return n;
    }
    case T_STRING:
        n = literal(P, t.pos);
        if (!n)
            return NULL;
        n->lit.kind = EHR_FHIRPATH_STRING;
        n->lit.v.s.p = t.val;
        n->lit.v.s.n = t.vlen;
        return next(P) ? n : NULL;
    case T_DATE:
    case T_DATETIME:
    case T_TIME: {
        int kind = t.type == T_DATE   ? EHR_FHIRPATH_DATE
                   : t.type == T_TIME ? EHR_FHIRPATH_TIME
                                      : EHR_FHIRPATH_DATETIME;
        n = literal(P, t.pos);
        if (!n)
            return NULL;
        if (!fp_dt_parse(t.val, t.vlen, kind, &n->lit.v.dt) || !fp_dt_valid(&n->lit.v.dt, kind)) {
            perr(P, t.pos, "invalid date/time literal '%.*s'", (int)(t.end - t.pos), P->s + t.pos);
            return NULL;
        }
        n->lit.kind = (uint8_t)kind;
        return next(P) ? n : NULL;
    }
    case T_BADTIME:
        n = mknode(P, FPN_BAD, t.pos);
        if (!n)
            return NULL;
        n->name = "a time literal cannot have a time zone";
        return next(P) ? n : NULL;
    case T_THIS:
    case T_INDEX:
    case T_TOTAL:
        return parse_invocation(P, NULL);
    case T_IDENT:
        if (is_word(&t, "true") || is_word(&t, "false")) {
            n = literal(P, t.pos);
            if (!n)
                return NULL;
            n->lit.kind = EHR_FHIRPATH_BOOLEAN;
            n->lit.v.b = t.val[0] == 't';
            return next(P) ? n : NULL;
        }
        return parse_invocation(P, NULL);
    case T_DIDENT:
        return parse_invocation(P, NULL);
    case T_SYM:
        if (is_sym(&t, "(")) {
            if (!next(P))
                return NULL;
            fp_node *e = parse_expr(P, 0);
            if (!e)
                return NULL;
            if (!is_sym(&P->t, ")")) {
                unexpected(P, "')'");
                return NULL;
            }
            return next(P) ? e : NULL;
        }
        if (is_sym(&t, "{")) {
            if (!next(P))
                return NULL;
            if (!is_sym(&P->t, "}")) {
                unexpected(P, "'}'");
                return NULL;
            }
            n = mknode(P, FPN_EMPTY, t.pos);
            return n && next(P) ? n : NULL;
        }
        if (is_sym(&t, "%")) {
            if (!next(P))
                return NULL;
            if (P->t.type != T_IDENT && P->t.type != T_DIDENT && P->t.type != T_STRING) {
                unexpected(P, "a variable name after '%'");
                return NULL;
            }
            n = mknode(P, FPN_VAR, t.pos);
            if (!n)
                return NULL;
            n->name = P->t.val;
            n->name_len = P->t.vlen;
            return next(P) ? n : NULL;
        }
        break;
    default:
        break;
    }
    unexpected(P, "an expression");
    return NULL;
}

static fp_node *parse_postfix(parser *P)
{
    fp_node *n = parse_term(P);
    int steps = 0;
    while (n) {
        /* each step nests the tree one level deeper: count it as depth */
        if (++steps + P->depth > EHR_FHIRPATH_MAX_DEPTH * 4) {
            P->st = ehr_err_set(P->err, EHR_ELIMIT, "limit exceeded: path longer than %d steps",
                                EHR_FHIRPATH_MAX_DEPTH * 4);
            return NULL;
        }
        if (is_sym(&P->t, ".")) {
            if (!next(P))
                return NULL;
            n = parse_invocation(P, n);
        } else if (is_sym(&P->t, "[")) {
            size_t pos = P->t.pos;
            if (!next(P))
                return NULL;
            fp_node *idx = parse_expr(P, 0);
            if (!idx)
                return NULL;
            if (!is_sym(&P->t, "]")) {
                unexpected(P, "']'");
                return NULL;
            }
            fp_node *x = mknode(P, FPN_INDEXER, pos);
            if (!x)
                return NULL;
            x->left = n;
            x->nargs = 1;
            x->args = ehr_arena_alloc(P->a, sizeof(fp_node *));
            if (!x->args) {
                P->st = EHR_ENOMEM;
                return NULL;
            }
            x->args[0] = idx;
            if (!next(P))
                return NULL;
            n = x;
        } else {
            break;
        }
    }
    return n;
}

static fp_node *parse_unary(parser *P)
{
    if (is_sym(&P->t, "+") || is_sym(&P->t, "-")) {
        token t = P->t;
        if (++P->depth > EHR_FHIRPATH_MAX_DEPTH) {
            P->st = ehr_err_set(P->err, EHR_ELIMIT,
                                "limit exceeded: expression nested deeper than %d levels",
                                EHR_FHIRPATH_MAX_DEPTH);
            return NULL;
        }
        if (!next(P))
            return NULL;
        fp_node *e = parse_unary(P);
        P->depth--;
        if (!e)
            return NULL;
        bool neg = t.sym[0] == '-';
        /* fold a sign into a number literal: -5, -1.5 'mg' */
        if (e->kind == FPN_LITERAL &&
            (e->lit.kind == EHR_FHIRPATH_INTEGER || e->lit.kind == EHR_FHIRPATH_DECIMAL ||
             e->lit.kind == EHR_FHIRPATH_QUANTITY)) {
            if (neg) {
                if (e->lit.kind == EHR_FHIRPATH_INTEGER)
                    e->lit.v.i = -e->lit.v.i;
                else if (e->lit.kind == EHR_FHIRPATH_DECIMAL)
                    e->lit.v.d = fp_dec_neg(e->lit.v.d);
                else {
                    fp_qty *q = (fp_qty *)e->lit.v.q;
                    q->value = fp_dec_neg(q->value);
                }
            }
            e->pos = (uint32_t)t.pos;
            return e;
        }
        fp_node *u = mknode(P, FPN_UNARY, t.pos);
        if (!u)
            return NULL;
        u->op = neg ? OP_NEG : OP_POS;
        u->left = e;
        return u;
    }
    return parse_postfix(P);
}

static fp_node *parse_expr(parser *P, int minprec)
{
    if (++P->depth > EHR_FHIRPATH_MAX_DEPTH) {
        if (P->st == EHR_OK)
            P->st = ehr_err_set(P->err, EHR_ELIMIT,
                                "limit exceeded: expression nested deeper than %d levels",
                                EHR_FHIRPATH_MAX_DEPTH);
        return NULL;
    }
    fp_node *left = parse_unary(P);
    while (left) {
        fp_op op;
        int prec = binop(&P->t, &op);
        if (prec == 0 || prec < minprec)
            break;
        size_t pos = P->t.pos;
        if (!next(P))
            return NULL;
        fp_node *n;
        if (op == OP_IS || op == OP_AS) {
            n = mknode(P, FPN_TYPEOP, pos);
            if (!n)
                return NULL;
            n->op = (uint8_t)op;
            n->left = left;
            n->type = parse_typespec(P);
            if (!n->type)
                return NULL;
        } else {
            fp_node *right = parse_expr(P, prec + 1);
            if (!right)
                return NULL;
            n = mknode(P, FPN_BINARY, pos);
            if (!n)
                return NULL;
            n->op = (uint8_t)op;
            n->left = left;
            n->right = right;
        }
        left = n;
    }
    P->depth--;
    return left;
}

ehr_status fp_parse(const char *text, size_t len, ehr_arena *a, fp_node **out, ehr_err *err)
{
    parser P;
    memset(&P, 0, sizeof P);
    P.s = text;
    P.len = len;
    P.a = a;
    P.err = err;
    *out = NULL;
    if (!next(&P))
        return P.st ? P.st : EHR_EINVAL;
    if (P.t.type == T_EOF)
        return perr(&P, 0, "empty expression");
    fp_node *root = parse_expr(&P, 0);
    if (!root)
        return P.st ? P.st : EHR_EINVAL;
    if (P.t.type != T_EOF) {
        unexpected(&P, "an operator or end of expression");
        return P.st;
    }
    *out = root;
    return EHR_OK;
}
