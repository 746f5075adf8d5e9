/*
 * check.c - static checks of a compiled expression against the FHIR model
 * (FHIRPath N1 section 11, "Type safety and strict evaluation").
 *
 * When the caller names the type of the evaluation context, the compiler
 * infers for every node the set of types it can produce and rejects what
 * can never be right, as semantic errors:
 *   - a path step that is an element of none of the possible types
 *     (name.given1; Observation.valueQuantity, as FHIRPath names a choice
 *     without its type suffix; a path starting with a type the context
 *     can't be);
 *   - string functions on values that are never strings;
 *   - iif() with a criterion that is never a single Boolean;
 *   - date/time plus or minus something that is never a Quantity;
 *   - with EHR_FHIRPATH_CHECK_ORDERED, order-dependent functions on the
 *     unordered output of children() and descendants().
 * Whatever the checker can't know (children(), resolve(), variables,
 * type()) is "any" and passes. Checks are deliberately conservative: an
 * expression is rejected only when no data could make it right.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath/fhirpath_int.h"

#define MAX_TYPES 64

typedef struct stype {
    bool any;       /* unknown */
    bool many;      /* more than one item possible */
    bool unordered; /* order undefined (children, descendants) */
    uint32_t sys;   /* bit per ehr_fhirpath_kind of System values */
    int nf;
    const ehr_fhir_type *f[MAX_TYPES];
} stype;

typedef struct checker {
    const ehr_fhirpath_expr *e;
    const struct stype *context; /* %context and %resource */
    const ehr_fhirpath_options *opts;
    ehr_err *err;
    ehr_status st;
    int depth;
} checker;

#define SYS(k) (1u << (k))

static void set_any(stype *t)
{
    memset(t, 0, sizeof *t);
    t->any = true;
}

static void set_sys(stype *t, int kind, bool many)
{
    memset(t, 0, sizeof *t);
    t->sys = SYS(kind);
    t->many = many;
}

static void add_fhir(stype *t, const ehr_fhir_type *f)
{
    for (int i = 0; i < t->nf; i++)
        if (t->f[i] == f)
            return;
    if (t->nf == MAX_TYPES) {
        t->any = true;
        return;
    }
    t->f[t->nf++] = f;
}

static bool is_empty(const stype *t);

/* Types of a union: {} | x is x, and x | y may hold several items. */
static void merge(stype *a, const stype *b)
{
    if (is_empty(b))
        return;
    if (is_empty(a)) {
        *a = *b;
        return;
    }
    a->any |= b->any;
    a->many = true;
    a->unordered |= b->unordered;
    a->sys |= b->sys;
    for (int i = 0; i < b->nf; i++)
        add_fhir(a, b->f[i]);
}

static bool is_empty(const stype *t)
{
    return !t->any && !t->sys && t->nf == 0;
}

static ehr_status cerr(checker *C, const fp_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ehr_status cerr(checker *C, const fp_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    C->st =
        fp_set_error(C->err, EHR_EINVAL, "semantic error", C->e->text, C->e->len, n->pos, fmt, ap);
    va_end(ap);
    return C->st;
}

/* The System kind a FHIR primitive's values have. */
static int prim_sys(const ehr_fhir_type *t)
{
    switch (t->prim) {
    case EHR_PRIM_BOOLEAN:
        return EHR_FHIRPATH_BOOLEAN;
    case EHR_PRIM_INTEGER:
    case EHR_PRIM_UNSIGNEDINT:
    case EHR_PRIM_POSITIVEINT:
        return EHR_FHIRPATH_INTEGER;
    case EHR_PRIM_DECIMAL:
        return EHR_FHIRPATH_DECIMAL;
    case EHR_PRIM_DATE:
        return EHR_FHIRPATH_DATE;
    case EHR_PRIM_DATETIME:
    case EHR_PRIM_INSTANT:
        return EHR_FHIRPATH_DATETIME;
    case EHR_PRIM_TIME:
        return EHR_FHIRPATH_TIME;
    default:
        return EHR_FHIRPATH_STRING;
    }
}

static bool is_quantity(const ehr_fhir_type *t)
{
    const ehr_fhir_type *q = ehr_fhir_type_find("Quantity", 8);
    return q && ehr_fhir_type_is_a(t, q);
}

/* Could a value of type t be of System kind k (directly or as a primitive)? */
static bool can_be(const stype *t, int k)
{
    if (t->any || (t->sys & SYS(k)))
        return true;
    for (int i = 0; i < t->nf; i++) {
        if (t->f[i]->kind == EHR_FHIR_KIND_PRIMITIVE && prim_sys(t->f[i]) == k)
            return true;
        if (k == EHR_FHIRPATH_QUANTITY && is_quantity(t->f[i]))
            return true;
    }
    return false;
}

/* Only dates/times (and no other kind of value)? */
static bool only_dates(const stype *t)
{
    if (t->any || is_empty(t))
        return false;
    uint32_t dates = SYS(EHR_FHIRPATH_DATE) | SYS(EHR_FHIRPATH_DATETIME) | SYS(EHR_FHIRPATH_TIME);
    if (t->sys & ~dates)
        return false;
    for (int i = 0; i < t->nf; i++) {
        if (t->f[i]->kind != EHR_FHIR_KIND_PRIMITIVE)
            return false;
        int k = prim_sys(t->f[i]);
        if (k != EHR_FHIRPATH_DATE && k != EHR_FHIRPATH_DATETIME && k != EHR_FHIRPATH_TIME)
            return false;
    }
    return true;
}

static size_t type_list(const stype *t, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->nf && o + 1 < size; i++) {
        int n = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", t->f[i]->name);
        if (n < 0)
            break;
        o += (size_t)n;
        if (i == 3 && t->nf > 5) {
            snprintf(buf + o, o < size ? size - o : 0, " and %d more", t->nf - 4);
            break;
        }
    }
    if (t->nf == 0 && t->sys)
        snprintf(buf, size, "a System value");
    return o;
}

static bool chk(checker *C, const fp_node *n, const stype *focus, const stype *this_t, stype *out);

/* Path step name on the types of in. */
static bool member(checker *C, const fp_node *n, const stype *in, stype *out)
{
    memset(out, 0, sizeof *out);
    out->many = in->many;
    out->unordered = in->unordered;
    if (in->any) {
        set_any(out);
        return true;
    }
    if (is_empty(in))
        return true;
    bool found = false;
    for (int i = 0; i < in->nf; i++) {
        const ehr_fhir_element *el = ehr_fhir_element_get(in->f[i], n->name, n->name_len);
        if (!el)
            continue;
        found = true;
        if (el->is_array)
            out->many = true;
        for (uint16_t k = 0; k < el->n_types; k++) {
            const ehr_fhir_type *t = el->types[k];
            /* an element of type Resource holds any resource (contained,
             * Bundle.entry.resource): its type is known only at run time */
            if (t->kind == EHR_FHIR_KIND_RESOURCE && t->is_abstract)
                out->any = true;
            add_fhir(out, t);
        }
        if (el->n_types == 0)
            out->any = true;
    }
    if (in->sys & SYS(EHR_FHIRPATH_TYPEINFO)) {
        out->any = true;
        found = true;
    }
    if ((in->sys & SYS(EHR_FHIRPATH_QUANTITY)) &&
        ((n->name_len == 5 && memcmp(n->name, "value", 5) == 0) ||
         (n->name_len == 4 && memcmp(n->name, "unit", 4) == 0))) {
        out->sys |= SYS(n->name[0] == 'v' ? EHR_FHIRPATH_DECIMAL : EHR_FHIRPATH_STRING);
        found = true;
    }
    if (!found) {
        char types[200];
        type_list(in, types, sizeof types);
        /* a JSON name of a choice is the usual mistake: say so */
        for (int i = 0; i < in->nf; i++) {
            const ehr_fhir_type *ct = NULL;
            const ehr_fhir_element *el = ehr_fhir_element_find(in->f[i], n->name, n->name_len, &ct);
            if (el && el->is_choice) {
                cerr(C, n,
                     "'%s' is not an element of %s: FHIRPath names the choice element "
                     "'%s' (use %s.ofType(%s))",
                     n->name, in->f[i]->name, el->name, el->name, ct ? ct->name : "Type");
                return false;
            }
        }
        cerr(C, n, "'%s' is not an element of %s", n->name, types[0] ? types : "this value");
        return false;
    }
    return true;
}

static bool check_args(checker *C, const fp_node *n, const stype *focus, const stype *this_t,
                       stype *last)
{
    for (int i = 0; i < n->nargs; i++) {
        stype a;
        if (!chk(C, n->args[i], focus, this_t, &a))
            return false;
        if (last)
            *last = a;
    }
    return true;
}

/* One item of type t: what $this is inside where(), select() ... */
static void element_of(const stype *t, stype *e)
{
    *e = *t;
    e->many = false;
}

static bool fn_is(const fp_node *n, const char *name)
{
    return strcmp(n->name, name) == 0;
}

static bool check_func(checker *C, const fp_node *n, const stype *focus, const stype *this_t,
                       stype *out)
{
    stype in;
    if (n->left) {
        if (!chk(C, n->left, focus, this_t, &in))
            return false;
    } else {
        in = *focus;
    }
    const fp_fn *f = n->fn;
    if ((C->opts->flags & EHR_FHIRPATH_CHECK_ORDERED) && (f->flags & FP_FN_ORDERED) &&
        in.unordered) {
        cerr(C, n,
             "%s() depends on order, and the order of children() and descendants() is "
             "undefined",
             n->name);
        return false;
    }
    if ((f->flags & FP_FN_STRING) && !in.any && !is_empty(&in) &&
        !can_be(&in, EHR_FHIRPATH_STRING)) {
        char types[200];
        type_list(&in, types, sizeof types);
        cerr(C, n, "%s() needs a String, and its input is %s", n->name, types);
        return false;
    }
    stype elem;
    element_of(&in, &elem);
    /* arguments evaluated for each item see it as the focus and $this */
    static const char *const lambdas[] = {"where",     "select", "exists",    "all",   "repeat",
                                          "repeatAll", "sort",   "aggregate", "trace", NULL};
    bool lambda = false;
    for (int i = 0; lambdas[i]; i++)
        if (fn_is(n, lambdas[i]))
            lambda = true;
    stype arg;
    set_any(&arg);
    if (fn_is(n, "iif")) {
        stype crit;
        if (!chk(C, n->args[0], &in, &elem, &crit))
            return false;
        if (!crit.any && !is_empty(&crit) && (crit.many || !can_be(&crit, EHR_FHIRPATH_BOOLEAN))) {
            cerr(C, n->args[0], "the criterion of iif() must be a single Boolean");
            return false;
        }
        stype a, b;
        if (!chk(C, n->args[1], &in, &elem, &a))
            return false;
        if (n->nargs > 2) {
            if (!chk(C, n->args[2], &in, &elem, &b))
                return false;
            merge(&a, &b);
        }
        *out = a;
        return true;
    }
    if (lambda) {
        if (fn_is(n, "aggregate") || fn_is(n, "trace")) {
            /* aggregate's init and trace's name are evaluated outside */
            if (!chk(C, n->args[0], fn_is(n, "trace") ? focus : &in,
                     fn_is(n, "trace") ? this_t : &elem, &arg))
                return false;
            if (n->nargs > 1 && !chk(C, n->args[1], fn_is(n, "trace") ? &in : focus,
                                     fn_is(n, "trace") ? &elem : this_t, &arg))
                return false;
        } else if (!check_args(C, n, &in, &elem, &arg)) {
            return false;
        }
    } else if (!(f->flags & FP_FN_TYPEARG) && !check_args(C, n, focus, this_t, &arg)) {
        return false;
    }
    memset(out, 0, sizeof *out);
    static const char *const same[] = {"where",     "first",          "last",   "tail",
                                       "skip",      "take",           "single", "distinct",
                                       "intersect", "exclude",        "trace",  "defineVariable",
                                       "sort",      "checkModifiers", NULL};
    for (int i = 0; same[i]; i++) {
        if (fn_is(n, same[i])) {
            *out = in;
            if (fn_is(n, "first") || fn_is(n, "last") || fn_is(n, "single"))
                out->many = false;
            return true;
        }
    }
    if (fn_is(n, "select")) {
        *out = arg;
        out->many = true;
        out->unordered = in.unordered;
        return true;
    }
    if (fn_is(n, "ofType") || fn_is(n, "as")) {
        const fp_typeref *t = n->type;
        if (!t->ftype && !t->sys) {
            set_any(out);
            return true;
        }
        if (t->ftype)
            add_fhir(out, t->ftype);
        if (t->sys)
            out->sys = SYS(t->sys);
        out->many = fn_is(n, "ofType") && in.many;
        out->unordered = in.unordered;
        return true;
    }
    if (fn_is(n, "union") || fn_is(n, "combine")) {
        *out = in;
        merge(out, &arg);
        return true;
    }
    if (fn_is(n, "children") || fn_is(n, "descendants")) {
        set_any(out);
        out->many = true;
        out->unordered = true;
        return true;
    }
    if (fn_is(n, "extension")) {
        const ehr_fhir_type *ext = ehr_fhir_type_find("Extension", 9);
        if (!ext) {
            set_any(out);
            return true;
        }
        add_fhir(out, ext);
        out->many = true;
        return true;
    }
    static const struct {
        const char *name;
        int kind;
        bool many;
    } results[] = {
        {"empty", EHR_FHIRPATH_BOOLEAN, false},
        {"exists", EHR_FHIRPATH_BOOLEAN, false},
        {"all", EHR_FHIRPATH_BOOLEAN, false},
        {"allTrue", EHR_FHIRPATH_BOOLEAN, false},
        {"anyTrue", EHR_FHIRPATH_BOOLEAN, false},
        {"allFalse", EHR_FHIRPATH_BOOLEAN, false},
        {"anyFalse", EHR_FHIRPATH_BOOLEAN, false},
        {"subsetOf", EHR_FHIRPATH_BOOLEAN, false},
        {"supersetOf", EHR_FHIRPATH_BOOLEAN, false},
        {"isDistinct", EHR_FHIRPATH_BOOLEAN, false},
        {"is", EHR_FHIRPATH_BOOLEAN, false},
        {"not", EHR_FHIRPATH_BOOLEAN, false},
        {"hasValue", EHR_FHIRPATH_BOOLEAN, false},
        {"startsWith", EHR_FHIRPATH_BOOLEAN, false},
        {"endsWith", EHR_FHIRPATH_BOOLEAN, false},
        {"contains", EHR_FHIRPATH_BOOLEAN, false},
        {"matches", EHR_FHIRPATH_BOOLEAN, false},
        {"matchesFull", EHR_FHIRPATH_BOOLEAN, false},
        {"comparable", EHR_FHIRPATH_BOOLEAN, false},
        {"conformsTo", EHR_FHIRPATH_BOOLEAN, false},
        {"memberOf", EHR_FHIRPATH_BOOLEAN, false},
        {"htmlChecks", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToBoolean", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToInteger", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToDecimal", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToString", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToDate", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToDateTime", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToTime", EHR_FHIRPATH_BOOLEAN, false},
        {"convertsToQuantity", EHR_FHIRPATH_BOOLEAN, false},
        {"toBoolean", EHR_FHIRPATH_BOOLEAN, false},
        {"count", EHR_FHIRPATH_INTEGER, false},
        {"length", EHR_FHIRPATH_INTEGER, false},
        {"indexOf", EHR_FHIRPATH_INTEGER, false},
        {"lastIndexOf", EHR_FHIRPATH_INTEGER, false},
        {"toInteger", EHR_FHIRPATH_INTEGER, false},
        {"precision", EHR_FHIRPATH_INTEGER, false},
        {"toString", EHR_FHIRPATH_STRING, false},
        {"substring", EHR_FHIRPATH_STRING, false},
        {"upper", EHR_FHIRPATH_STRING, false},
        {"lower", EHR_FHIRPATH_STRING, false},
        {"replace", EHR_FHIRPATH_STRING, false},
        {"replaceMatches", EHR_FHIRPATH_STRING, false},
        {"trim", EHR_FHIRPATH_STRING, false},
        {"join", EHR_FHIRPATH_STRING, false},
        {"encode", EHR_FHIRPATH_STRING, false},
        {"decode", EHR_FHIRPATH_STRING, false},
        {"escape", EHR_FHIRPATH_STRING, false},
        {"unescape", EHR_FHIRPATH_STRING, false},
        {"toChars", EHR_FHIRPATH_STRING, true},
        {"split", EHR_FHIRPATH_STRING, true},
        {"toDecimal", EHR_FHIRPATH_DECIMAL, false},
        {"exp", EHR_FHIRPATH_DECIMAL, false},
        {"ln", EHR_FHIRPATH_DECIMAL, false},
        {"log", EHR_FHIRPATH_DECIMAL, false},
        {"sqrt", EHR_FHIRPATH_DECIMAL, false},
        {"toDate", EHR_FHIRPATH_DATE, false},
        {"today", EHR_FHIRPATH_DATE, false},
        {"toDateTime", EHR_FHIRPATH_DATETIME, false},
        {"now", EHR_FHIRPATH_DATETIME, false},
        {"toTime", EHR_FHIRPATH_TIME, false},
        {"timeOfDay", EHR_FHIRPATH_TIME, false},
        {"toQuantity", EHR_FHIRPATH_QUANTITY, false},
    };
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        if (fn_is(n, results[i].name)) {
            set_sys(out, results[i].kind, results[i].many);
            return true;
        }
    }
    set_any(out);
    return true;
}

static bool chk(checker *C, const fp_node *n, const stype *focus, const stype *this_t, stype *out)
{
    /* deeper than any real expression: stop inferring (bounds the stack) */
    if (++C->depth > 100) {
        set_any(out);
        C->depth--;
        return true;
    }
    bool ok = true;
    memset(out, 0, sizeof *out);
    switch (n->kind) {
    case FPN_LITERAL:
        set_sys(out, n->lit.kind, false);
        break;
    case FPN_EMPTY:
        break;
    case FPN_THIS:
        *out = *this_t;
        break;
    case FPN_INDEX:
        set_sys(out, EHR_FHIRPATH_INTEGER, false);
        break;
    case FPN_VAR:
        if (n->name_len == 7 && memcmp(n->name, "context", 7) == 0)
            *out = *C->context;
        else
            set_any(out);
        break;
    case FPN_MEMBER: {
        stype in;
        if (n->left) {
            ok = chk(C, n->left, focus, this_t, &in);
        } else {
            in = *focus;
            /* a path may start with the type of its context */
            if (n->name[0] >= 'A' && n->name[0] <= 'Z' && !in.any && in.nf) {
                const ehr_fhir_type *t = ehr_fhir_type_find(n->name, n->name_len);
                if (t) {
                    for (int i = 0; i < in.nf; i++) {
                        if (ehr_fhir_type_is_a(in.f[i], t)) {
                            *out = in;
                            C->depth--;
                            return true;
                        }
                        if (ehr_fhir_type_is_a(t, in.f[i])) {
                            /* Resource context, Patient.name: narrowed to Patient */
                            memset(out, 0, sizeof *out);
                            add_fhir(out, t);
                            out->many = in.many;
                            C->depth--;
                            return true;
                        }
                    }
                    if (C->opts->flags & EHR_FHIRPATH_STRICT) {
                        char types[200];
                        type_list(&in, types, sizeof types);
                        cerr(C, n, "the context is %s, never a %s", types, t->name);
                        ok = false;
                        break;
                    }
                    /* not the context's type: the empty collection */
                    C->depth--;
                    return true;
                }
            }
        }
        if (ok)
            ok = member(C, n, &in, out);
        break;
    }
    case FPN_FUNC:
        ok = check_func(C, n, focus, this_t, out);
        break;
    case FPN_INDEXER: {
        stype idx;
        ok = chk(C, n->left, focus, this_t, out) && chk(C, n->args[0], focus, this_t, &idx);
        if (ok && (C->opts->flags & EHR_FHIRPATH_CHECK_ORDERED) && out->unordered) {
            cerr(C, n,
                 "an indexer depends on order, and the order of children() and "
                 "descendants() is undefined");
            ok = false;
        }
        out->many = false;
        break;
    }
    case FPN_UNARY:
        ok = chk(C, n->left, focus, this_t, out);
        break;
    case FPN_BINARY: {
        stype l, r;
        ok = chk(C, n->left, focus, this_t, &l) && chk(C, n->right, focus, this_t, &r);
        if (!ok)
            break;
        switch (n->op) {
        case OP_UNION:
            *out = l;
            merge(out, &r);
            break;
        case OP_PLUS:
        case OP_MINUS:
            if (only_dates(&l) && !r.any && !is_empty(&r) && !can_be(&r, EHR_FHIRPATH_QUANTITY)) {
                cerr(C, n, "a date/time can only be added to or subtracted from a Quantity");
                ok = false;
                break;
            }
            if (only_dates(&l))
                *out = l;
            else
                set_any(out);
            break;
        case OP_CONCAT:
            set_sys(out, EHR_FHIRPATH_STRING, false);
            break;
        case OP_MUL:
        case OP_DIV:
        case OP_IDIV:
        case OP_MOD:
            set_any(out);
            break;
        default: /* logic, equality, comparison, membership */
            set_sys(out, EHR_FHIRPATH_BOOLEAN, false);
            break;
        }
        break;
    }
    case FPN_TYPEOP: {
        stype in;
        ok = chk(C, n->left, focus, this_t, &in);
        if (!ok)
            break;
        if (n->op == OP_IS) {
            set_sys(out, EHR_FHIRPATH_BOOLEAN, false);
        } else if (n->type->ftype || n->type->sys) {
            if (n->type->ftype)
                add_fhir(out, n->type->ftype);
            if (n->type->sys)
                out->sys = SYS(n->type->sys);
        } else {
            set_any(out);
        }
        break;
    }
    default:
        set_any(out);
        break;
    }
    C->depth--;
    return ok;
}

ehr_status fp_check(const ehr_fhirpath_expr *e, const ehr_fhirpath_options *opts, ehr_err *err)
{
    checker C;
    memset(&C, 0, sizeof C);
    C.e = e;
    C.opts = opts;
    C.err = err;
    stype *ctx = calloc(1, sizeof *ctx);
    stype *res = calloc(1, sizeof *res);
    if (!ctx || !res) {
        free(ctx);
        free(res);
        return EHR_ENOMEM;
    }
    const ehr_fhir_type *t =
        opts->context_type ? ehr_fhir_type_find(opts->context_type, strlen(opts->context_type))
                           : NULL;
    if (t)
        add_fhir(ctx, t);
    else
        ctx->any = true;
    C.context = ctx;
    chk(&C, e->root, ctx, ctx, res);
    free(ctx);
    free(res);
    return C.st;
}
