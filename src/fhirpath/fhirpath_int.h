/*
 * fhirpath_int.h - private declarations of the FHIRPath engine.
 *
 * Values: every item of a collection is an ehr_fhirpath_item: a System value
 * (Boolean, Integer, Decimal, String, Date, DateTime, Time, Quantity) or a
 * JSON object, with the FHIR type it had in the resource when it came from
 * one. Decimals are exact (a 128-bit mantissa and a decimal scale), so 1.50
 * keeps its two places and 0.1 + 0.2 = 0.3.
 *
 * The compiled expression is a tree of fp_node allocated from the
 * expression's own arena and never written after compile.
 */
#ifndef EHR_FHIRPATH_INT_H
#define EHR_FHIRPATH_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/status.h"
#include "fhir/model.h"
#include "fhirpath/fhirpath.h"

__extension__ typedef __int128 fp_i128;

/* ---- decimal.c: exact decimals ---- */

/* Most digits after the point that a decimal keeps. */
#define FP_DEC_MAX_SCALE 28

typedef struct fp_dec {
    fp_i128 m;     /* value = m / 10^scale */
    int32_t scale; /* 0..FP_DEC_MAX_SCALE */
    bool negzero;  /* "-0.0" as a boundary of a negative number */
} fp_dec;

bool fp_dec_parse(const char *s, size_t len, fp_dec *out);
fp_dec fp_dec_from_int(int64_t v);
/* Arithmetic returns false on overflow (or a zero divisor). */
bool fp_dec_add(fp_dec a, fp_dec b, fp_dec *out);
bool fp_dec_sub(fp_dec a, fp_dec b, fp_dec *out);
bool fp_dec_mul(fp_dec a, fp_dec b, fp_dec *out);
/* Quotient to at least 8 places (more when the operands have more),
 * trailing zeros stripped down to the operands' places. */
bool fp_dec_div(fp_dec a, fp_dec b, fp_dec *out);
/* Quotient to scale places exactly (no stripping). */
bool fp_dec_div_scale(fp_dec a, fp_dec b, int scale, fp_dec *out);
bool fp_dec_div_int(fp_dec a, fp_dec b, fp_dec *out); /* truncated: div */
bool fp_dec_mod(fp_dec a, fp_dec b, fp_dec *out);
int fp_dec_cmp(fp_dec a, fp_dec b);
bool fp_dec_is_zero(fp_dec a);
fp_dec fp_dec_neg(fp_dec a);
fp_dec fp_dec_abs(fp_dec a);
/* Rounding to a scale: half away from zero, toward zero, floor, ceiling. */
enum { FP_ROUND_HALF_UP, FP_ROUND_TRUNC, FP_ROUND_FLOOR, FP_ROUND_CEIL };
bool fp_dec_round(fp_dec a, int scale, int mode, fp_dec *out);
/* Rescale to at least scale places (adds zeros), false on overflow. */
bool fp_dec_rescale(fp_dec a, int scale, fp_dec *out);
/* Remove zeros after the point. */
fp_dec fp_dec_strip(fp_dec a);
/* Digits after the point once trailing zeros are ignored. */
int fp_dec_precision(fp_dec a);
/* Integer part (truncated) when it fits in int64. */
bool fp_dec_to_int64(fp_dec a, int64_t *out);
bool fp_dec_is_integer(fp_dec a);
double fp_dec_to_double(fp_dec a);
bool fp_dec_from_double(double d, fp_dec *out);
/* Text of a decimal into buf (at least 48 bytes); returns the length. */
size_t fp_dec_format(fp_dec a, char *buf, size_t size);

/* ---- datetime.c: partial dates, dateTimes and times ---- */

typedef struct fp_dt {
    int16_t year;
    uint8_t month, day, hour, minute, second;
    uint8_t prec; /* ehr_fhirpath_precision */
    uint16_t ms;
    uint8_t ms_digits; /* digits written after the point (1..9, 0 none) */
    bool has_tz;
    bool tz_z;  /* written as "Z" */
    int16_t tz; /* minutes east of UTC */
} fp_dt;

/* Parse the text of a FHIRPath literal without '@' or of a FHIR primitive.
 * kind: EHR_FHIRPATH_DATE, _DATETIME or _TIME. For _DATETIME a value with
 * no time part is accepted (FHIR dateTime "2015-02"). Returns false when
 * the text is not one. */
bool fp_dt_parse(const char *s, size_t len, int kind, fp_dt *out);
/* Text as toString() gives it: "2014-01-05T10:30:00.000+10:00". */
size_t fp_dt_format(const fp_dt *d, int kind, char *buf, size_t size);
/* Compare two values (same kind, a Date is first made a DateTime):
 * -1/0/1, or 2 when the answer is unknown because the precisions differ.
 * For equality semantics pass eq = true (seconds with fraction count as
 * one precision). */
int fp_dt_cmp(const fp_dt *a, const fp_dt *b, int kind);
bool fp_dt_valid(const fp_dt *d, int kind);
int fp_days_in_month(int year, int month);
/* Add an amount of a calendar unit (FP_CAL_YEAR ... FP_CAL_MILLISECOND);
 * false when the result is out of range or the unit does not apply. */
bool fp_dt_add(fp_dt *d, int kind, int unit, int64_t amount);
/* Now, in the local time zone, or the fixed instant text. */
bool fp_dt_now(const char *fixed, fp_dt *out);

/* ---- ucum.c: units ---- */

/* Calendar duration keywords of FHIRPath (N1 section 4.2.1.2.1). */
enum {
    FP_CAL_NONE = 0,
    FP_CAL_YEAR,
    FP_CAL_MONTH,
    FP_CAL_WEEK,
    FP_CAL_DAY,
    FP_CAL_HOUR,
    FP_CAL_MINUTE,
    FP_CAL_SECOND,
    FP_CAL_MILLISECOND,
};
/* The calendar unit named by word ("days", "week"), or FP_CAL_NONE. */
int fp_calendar_unit(const char *word, size_t len);
const char *fp_calendar_name(int cal, bool plural);

#define FP_UCUM_DIMS 8
/* A UCUM unit reduced to base units: value_base = value * num / den. */
typedef struct fp_unit {
    fp_dec num, den;
    int8_t dim[FP_UCUM_DIMS]; /* exponents of m, g, s, rad, K, C, cd, mol */
    bool special;             /* non-ratio scale (Cel, [degF], [pH]): no conversion */
    bool arbitrary;           /* [IU] and friends: only with the same unit */
    bool valid;
} fp_unit;

/* Parse a UCUM code; u->valid is false when it is not one we know. */
void fp_ucum_parse(const char *code, size_t len, fp_unit *u);

/* ---- utf8.c ---- */

/* Decode the character at byte i (U+FFFD for bad bytes); returns its length. */
size_t fp_utf8_decode(const char *s, size_t len, size_t i, uint32_t *cp);
size_t fp_utf8_encode(uint32_t cp, char *out);
size_t fp_utf8_count(const char *s, size_t len);
size_t fp_utf8_offset(const char *s, size_t len, size_t ci);
uint32_t fp_lower(uint32_t c);
uint32_t fp_upper(uint32_t c);
bool fp_is_space(uint32_t c);

/* ---- regex.c: regular expressions (a PCRE subset, bounded backtracking) ---- */

typedef struct fp_regex fp_regex;
enum { FP_RE_ICASE = 1, FP_RE_MULTILINE = 2, FP_RE_DOTALL = 4 };
/* Compile pattern; NULL with a message in err (static text) on failure. */
fp_regex *fp_regex_compile(ehr_arena *a, const char *pat, size_t len, unsigned flags,
                           const char **err);
/* Search s (len bytes) from byte offset start. Returns 1 when found (with
 * the group spans in caps: caps[2*i], caps[2*i+1], -1 when unset), 0 when
 * not, -1 when the step budget ran out. */
int fp_regex_exec(const fp_regex *re, const char *s, size_t len, size_t start, bool anchored_full,
                  long *caps, int ncaps, size_t *budget);
int fp_regex_ngroups(const fp_regex *re);
/* Group number of a named group, or -1. */
int fp_regex_group_index(const fp_regex *re, const char *name, size_t len);

/* ---- values ---- */

enum {
    FP_F_NOVALUE = 1, /* a primitive element with only id/extensions */
};

typedef struct fp_qty {
    fp_dec value;
    const char *unit; /* NUL-terminated; a UCUM code or a calendar keyword */
    uint8_t cal;      /* FP_CAL_* when unit is a calendar keyword */
    bool quoted;      /* written as a string: 'mg', 'month' */
} fp_qty;

typedef struct fp_typeinfo {
    const char *ns, *name, *base;
} fp_typeinfo;

struct ehr_fhirpath_item {
    uint8_t kind;               /* ehr_fhirpath_kind */
    uint8_t flags;              /* FP_F_* */
    const ehr_fhir_type *ftype; /* FHIR type, NULL for System values */
    const json_t *node;         /* source JSON (object, or primitive value) */
    const json_t *ext;          /* the "_name" companion of a primitive */
    const json_t *resource;     /* the resource that contains the node */
    const json_t *parent;       /* the object holding the property, or NULL */
    const char *key;            /* its JSON name (stable: jansson's copy) */
    int32_t index;              /* position in the property's array, or -1 */
    union {
        bool b;
        int64_t i;
        fp_dec d;
        struct {
            const char *p;
            size_t n;
        } s;
        fp_dt dt;
        const fp_qty *q;
        const fp_typeinfo *ti;
    } v;
};
typedef struct ehr_fhirpath_item fp_item;

typedef struct fp_coll {
    fp_item *items;
    size_t n, cap;
} fp_coll;

/* ---- the compiled expression ---- */

typedef enum {
    FPN_LITERAL,
    FPN_EMPTY,  /* {} */
    FPN_MEMBER, /* [left.]name */
    FPN_FUNC,   /* [left.]name(args) */
    FPN_THIS,
    FPN_INDEX,
    FPN_TOTAL,
    FPN_VAR,     /* %name */
    FPN_INDEXER, /* left[args[0]] */
    FPN_UNARY,   /* op left */
    FPN_BINARY,  /* left op right */
    FPN_TYPEOP,  /* left is/as type */
    FPN_BAD,     /* a literal that fails when evaluated (a time with a zone) */
} fp_nkind;

typedef enum {
    OP_NONE,
    OP_IMPLIES,
    OP_OR,
    OP_XOR,
    OP_AND,
    OP_IN,
    OP_CONTAINS,
    OP_EQ,
    OP_EQUIV,
    OP_NE,
    OP_NEQUIV,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_UNION,
    OP_IS,
    OP_AS,
    OP_PLUS,
    OP_MINUS,
    OP_CONCAT,
    OP_MUL,
    OP_DIV,
    OP_IDIV,
    OP_MOD,
    OP_NEG,
    OP_POS,
} fp_op;

/* A type specifier after is/as/ofType, resolved at compile time when it can. */
typedef struct fp_typeref {
    const char *ns; /* "FHIR", "System" or NULL */
    const char *name;
    const ehr_fhir_type *ftype; /* a FHIR type, or NULL */
    int sys;                    /* a System type (ehr_fhirpath_kind), or 0 */
    bool any;                   /* System.Any */
    bool none;                  /* a qualified name its model lacks (System.Patient):
                                   valid, and nothing is of that type */
} fp_typeref;

typedef struct fp_node fp_node;
typedef struct fp_fn fp_fn;
typedef struct fp_ctx fp_ctx;
typedef struct fp_scope fp_scope;

struct fp_node {
    uint8_t kind; /* fp_nkind */
    uint8_t op;   /* fp_op */
    uint16_t nargs;
    uint32_t pos, end; /* byte span in the source */
    fp_node *left, *right;
    fp_node **args;
    const fp_fn *fn;
    const char *name; /* member, variable, function name (NUL-terminated) */
    size_t name_len;
    fp_typeref *type;
    const ehr_fhir_type *tname; /* a member at the start of a path that names a type */
    const fp_regex *re;         /* matches() etc. with a literal pattern, compiled once */
    fp_item lit;
};

struct ehr_fhirpath_expr {
    ehr_arena *arena;
    fp_node *root;
    unsigned flags; /* ehr_fhirpath_options.flags */
    char *text;
    size_t len;
};

/* ---- evaluation ---- */

struct fp_scope {
    const fp_item *this_item; /* $this; NULL at the top (the context) */
    const fp_coll *focus;     /* input of identifiers and functions without one */
    int64_t index;            /* $index */
    const fp_coll *total;     /* $total in aggregate(), else NULL */
    const fp_scope *parent;
};

/* A variable made by defineVariable(), visible to the rest of its scope. */
typedef struct fp_var {
    const char *name;
    size_t len;
    fp_coll value;
    struct fp_var *next;
} fp_var;

struct fp_ctx {
    ehr_arena *arena;
    const ehr_fhirpath_env *env;
    const ehr_fhirpath_expr *expr;
    ehr_err *err;
    size_t steps, max_steps, max_items, max_bytes, bytes;
    unsigned depth;
    ehr_status fail;       /* status of the first failure (set with err) */
    fp_var *vars;          /* defineVariable() stack, innermost first */
    fp_coll context;       /* %context, $this at the top */
    fp_coll resource;      /* %resource */
    fp_coll root_resource; /* %rootResource */
    bool have_now;
    fp_dt now;
};

typedef ehr_status (*fp_fn_impl)(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in,
                                 fp_coll *out);

struct fp_fn {
    const char *name;
    uint8_t min_args, max_args;
    fp_fn_impl impl;
    unsigned flags; /* FP_FN_* */
};
enum {
    FP_FN_TYPEARG = 1,  /* the argument is a type specifier */
    FP_FN_ORDERED = 2,  /* depends on the order of its input */
    FP_FN_STRING = 4,   /* input must be a String */
    FP_FN_NO_INPUT = 8, /* does not use its input (now(), today()) */
};

const fp_fn *fp_fn_lookup(const char *name, size_t len);

/* eval.c */
void *fp_alloc(fp_ctx *c, size_t size);
ehr_status fp_eval(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out);
/* Evaluate an argument of a function in the caller's scope. */
ehr_status fp_eval_arg(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out);
/* Evaluate n with the focus and $this set to one item (lambda arguments). */
ehr_status fp_eval_on(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_item *item,
                      int64_t index, fp_coll *out);
ehr_status fp_push(fp_ctx *c, fp_coll *out, const fp_item *it);
ehr_status fp_append(fp_ctx *c, fp_coll *out, const fp_coll *in);
ehr_status fp_error(fp_ctx *c, const fp_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ehr_status fp_limit(fp_ctx *c, const char *what);
ehr_status fp_nomem(fp_ctx *c);
ehr_status fp_step(fp_ctx *c, size_t n);
/* Children of an item (all of them, or those named name). */
ehr_status fp_children(fp_ctx *c, const fp_item *it, const char *name, size_t len, fp_coll *out);
/* Make an item from a JSON value of FHIR type t (t may be NULL: guess). */
void fp_item_from_json(const json_t *v, const json_t *ext, const ehr_fhir_type *t,
                       const json_t *resource, fp_item *out);
/* An item with a FHIR Quantity type as a System Quantity (NULL if not). */
const fp_qty *fp_item_quantity(fp_ctx *c, const fp_item *it);

/* ops.c: the operator nodes */
ehr_status fp_eval_binary(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out);
ehr_status fp_eval_unary(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out);
ehr_status fp_eval_typeop(fp_ctx *c, const fp_node *n, const fp_scope *s, fp_coll *out);
/* Is t Quantity or one of its specializations (Age, Duration ...)? */
bool fp_is_quantity_type(const ehr_fhir_type *t);

/* Three-valued results of comparisons. */
enum { FP_FALSE = 0, FP_TRUE = 1, FP_EMPTY = 2, FP_ERR = 3 };
int fp_equal(fp_ctx *c, const fp_item *a, const fp_item *b);
int fp_equiv(fp_ctx *c, const fp_item *a, const fp_item *b);
/* Order two items: sets *r to -1/0/1; returns FP_TRUE when known, FP_EMPTY
 * when not (precision), FP_ERR when not comparable (error set). */
int fp_compare(fp_ctx *c, const fp_node *n, const fp_item *a, const fp_item *b, int *r);
/* Singleton evaluation as a Boolean: FP_TRUE/FP_FALSE/FP_EMPTY or FP_ERR. */
int fp_to_bool(fp_ctx *c, const fp_node *n, const fp_coll *in);
/* The one item of a collection, NULL when empty; error when more. */
ehr_status fp_singleton(fp_ctx *c, const fp_node *n, const fp_coll *in, const fp_item **out);
/* Membership with equality (for union, distinct, in). */
bool fp_coll_contains(fp_ctx *c, const fp_coll *coll, const fp_item *it);

/* Is-a for a type specifier (follows the hierarchy). exact: as/ofType rules
 * (FHIR primitive types are matched exactly). */
bool fp_item_is(const fp_item *it, const fp_typeref *t, bool exact);
const char *fp_item_type_name(const fp_item *it, const char **ns);
/* The type of a JSON resource object (from resourceType). */
const ehr_fhir_type *fp_resource_type(const json_t *obj);

/* Item constructors. */
void fp_mk_bool(fp_item *it, bool b);
void fp_mk_int(fp_item *it, int64_t v);
void fp_mk_dec(fp_item *it, fp_dec d);
void fp_mk_str(fp_item *it, const char *p, size_t n);
ehr_status fp_push_bool(fp_ctx *c, fp_coll *out, bool b);
ehr_status fp_push_int(fp_ctx *c, fp_coll *out, int64_t v);
ehr_status fp_push_dec(fp_ctx *c, fp_coll *out, fp_dec d);
ehr_status fp_push_str(fp_ctx *c, fp_coll *out, const char *p, size_t n);
/* String value of an item that is a String (or a FHIR string-like). */
bool fp_item_str(const fp_item *it, const char **p, size_t *n);
/* Text of an item as toString(); NULL if it has none. */
const char *fp_item_to_string(fp_ctx *c, const fp_item *it, size_t *len);

/* quantity.c */
/* Compare quantities; mode 0 equality, 1 equivalence, 2 ordering.
 * Returns FP_TRUE/FP_FALSE (or order in *r) or FP_EMPTY when the units are
 * not comparable. */
int fp_qty_compare(const fp_qty *a, const fp_qty *b, int mode, int *r);
/* Convert q to unit (UCUM code or calendar keyword); false when impossible. */
bool fp_qty_convert(const fp_qty *q, const char *unit, size_t len, ehr_arena *a, fp_qty *out);
bool fp_qty_parse_string(const char *s, size_t len, ehr_arena *a, fp_qty *out);
/* Arithmetic on quantities: op is OP_PLUS/MINUS/MUL/DIV. Returns FP_TRUE,
 * FP_EMPTY (units not compatible, overflow). */
int fp_qty_arith(int op, const fp_qty *a, const fp_qty *b, ehr_arena *ar, fp_qty *out);
size_t fp_qty_format(const fp_qty *q, char *buf, size_t size);

/* parse.c */
ehr_status fp_parse(const char *text, size_t len, ehr_arena *a, fp_node **out, ehr_err *err);
/* Line and column (1-based) of a byte offset. */
void fp_position(const char *text, size_t len, size_t off, unsigned *line, unsigned *col);
bool fp_resolve_type(const char *ns, const char *name, fp_typeref *t);

/* check.c: static checks against the model */
ehr_status fp_check(const ehr_fhirpath_expr *e, const ehr_fhirpath_options *opts, ehr_err *err);

/* Shared error formatting. */
ehr_status fp_set_error(ehr_err *err, ehr_status st, const char *cls, const char *text, size_t len,
                        size_t off, const char *fmt, va_list ap);

#endif
