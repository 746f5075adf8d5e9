/*
 * fhirpath.h - the FHIRPath engine of ehr (FHIRPath N1 / 2.0.0 as FHIR R4
 * uses it, with the FHIR additions of FHIR R4 section 2.7.1).
 *
 * Compile once, evaluate many. ehr_fhirpath_compile() turns the text of an
 * expression into an immutable compiled form; any number of threads may then
 * call ehr_fhirpath_eval() on it at the same time. Evaluation reads the stored
 * FHIR JSON (jansson trees as made by ehr_json_parse) in place, uses the FHIR
 * model (fhir/model.h) for element types, choice types and the type hierarchy,
 * and allocates everything it returns from the caller's arena: the result
 * lives until that arena is freed, and points into the input JSON, which must
 * outlive it too.
 *
 * Errors. Every failing call returns a status and fills err->msg with a
 * message that starts with its class, then the position in the expression:
 *   "syntax error at column 7: expected ')'"       (EHR_EINVAL)
 *   "semantic error at column 1: ..."              (EHR_EINVAL, static checks)
 *   "execution error at column 12: ..."            (EHR_EUNPROCESSABLE)
 *   "limit exceeded: ..."                          (EHR_ELIMIT)
 * err->where holds "line:column" of the offending part of the expression.
 * ehr_fhirpath_error_class() gives the class back to programs.
 *
 * Limits (DESIGN.md "Errors"): expressions longer than
 * EHR_FHIRPATH_MAX_EXPR_LEN bytes, nested deeper than EHR_FHIRPATH_MAX_DEPTH
 * or with paths of more than 4 * EHR_FHIRPATH_MAX_DEPTH steps are rejected
 * at compile time; an evaluation stops with EHR_ELIMIT after max_steps
 * steps (regular expressions draw on the same budget, so a pattern with
 * catastrophic backtracking ends there too), when a collection grows beyond
 * max_items items or when it has allocated more than max_bytes (see
 * ehr_fhirpath_env).
 */
#ifndef EHR_FHIRPATH_FHIRPATH_H
#define EHR_FHIRPATH_FHIRPATH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/status.h"
#include "fhir/model.h"

/* Longest expression text accepted, in bytes. */
#define EHR_FHIRPATH_MAX_EXPR_LEN 65536
/* Deepest nesting of the parse tree (parentheses, operators, arguments). */
#define EHR_FHIRPATH_MAX_DEPTH 200
/* Defaults of the evaluation limits (ehr_fhirpath_env, 0 = default). */
#define EHR_FHIRPATH_DEFAULT_MAX_STEPS 10000000u
#define EHR_FHIRPATH_DEFAULT_MAX_ITEMS 1000000u
#define EHR_FHIRPATH_DEFAULT_MAX_BYTES (256u * 1024 * 1024)

typedef struct ehr_fhirpath_expr ehr_fhirpath_expr;
typedef struct ehr_fhirpath_item ehr_fhirpath_item;

/* Compile flags (ehr_fhirpath_options.flags). */
enum {
    /*
     * Report functions that depend on order (first, last, tail, skip, take,
     * indexers) applied to the unordered output of children() or
     * descendants() as semantic errors (FHIRPath N1 section 4: "implementations
     * may decide to return an error").
     */
    EHR_FHIRPATH_CHECK_ORDERED = 1u << 0,
    /*
     * Strict mode (FHIRPath N1 section 11): a path that starts with a type
     * name the context can never be ("Encounter.name" on a Patient) is a
     * semantic error rather than the empty collection. Off, expressions
     * such as "Patient.name | Person.name" work on either type.
     */
    EHR_FHIRPATH_STRICT = 1u << 1,
    /*
     * as() on more than one item filters like ofType() instead of failing
     * (FHIRPath N1 5.2.4 makes it an error). FHIR R4's own dom-3 invariant
     * relies on it ("descendants().as(canonical)"; R5 rewrote it with
     * ofType). The operator form "x as T" always filters: R4's search
     * parameters apply it to repeating elements.
     */
    EHR_FHIRPATH_LENIENT_AS = 1u << 2,
};

typedef struct ehr_fhirpath_options {
    /*
     * Type name of the evaluation context ("Patient", "HumanName"), or NULL.
     * When set, the compiler checks the expression against the model and
     * rejects what can never be right with a semantic error: paths that name
     * no element of the type ("Patient.name.given1", "Observation.valueQuantity"
     * - FHIRPath names a choice element without its type suffix), string
     * functions on values that are never strings, iif() with a criterion that
     * is never a single Boolean, arithmetic on dates with a non-quantity.
     */
    const char *context_type;
    unsigned flags;
} ehr_fhirpath_options;

/*
 * Compile expr (len bytes, UTF-8, need not be NUL-terminated). On success
 * *out owns the compiled expression (free with ehr_fhirpath_free); it is
 * immutable and may be shared between threads. On failure *out is NULL and
 * err says what and where (syntax or semantic error, or EHR_ELIMIT).
 */
ehr_status ehr_fhirpath_compile(const char *expr, size_t len, ehr_fhirpath_expr **out,
                                ehr_err *err);
/* As ehr_fhirpath_compile, with options (NULL = none). */
ehr_status ehr_fhirpath_compile_opts(const char *expr, size_t len, const ehr_fhirpath_options *opts,
                                     ehr_fhirpath_expr **out, ehr_err *err);
/* Free a compiled expression and NULL the caller's pointer. */
void ehr_fhirpath_free(ehr_fhirpath_expr **e);
/* The source text of a compiled expression (NUL-terminated). */
const char *ehr_fhirpath_text(const ehr_fhirpath_expr *e);

/* Error classes, from the message of a failed compile or eval. */
typedef enum {
    EHR_FHIRPATH_ERR_NONE = 0,
    EHR_FHIRPATH_ERR_SYNTAX,
    EHR_FHIRPATH_ERR_SEMANTIC,
    EHR_FHIRPATH_ERR_EXECUTION,
    EHR_FHIRPATH_ERR_LIMIT,
    EHR_FHIRPATH_ERR_OTHER, /* out of memory, or an error from a callback */
} ehr_fhirpath_errclass;
ehr_fhirpath_errclass ehr_fhirpath_error_class(ehr_status st, const ehr_err *err);

/* A user-supplied environment variable (%name). */
typedef struct ehr_fhirpath_var {
    const char *name;    /* without the '%': "patient", "vs-my-codes" */
    const json_t *value; /* a JSON value; an array stands for the collection of
                            its items; NULL is the empty collection */
    const char *type;    /* FHIR type of the value(s) ("Patient", "string"),
                            or NULL to take the type from "resourceType" or
                            from the JSON value (string, number, boolean) */
} ehr_fhirpath_var;

/*
 * Called by resolve() for a reference it cannot find inside the resource
 * (contained) or the Bundle (%rootResource): return a resource that stays
 * valid until the evaluation's arena is freed (for example one parsed and
 * kept by the caller), or NULL when not found. Errors are not reported.
 */
typedef const json_t *(*ehr_fhirpath_resolve_fn)(void *ctx, const char *reference);

/* Called by trace(name [, projection]) with what it logs. */
typedef void (*ehr_fhirpath_trace_fn)(void *ctx, const char *name, const ehr_fhirpath_item *items,
                                      size_t count);

/* Everything but the context that an evaluation may use. All optional. */
typedef struct ehr_fhirpath_env {
    const json_t *resource;       /* %resource; default: the context */
    const json_t *root_resource;  /* %rootResource (a Bundle, say); default: %resource */
    const char *context_type;     /* type of the context when it is not a
                                     resource ("HumanName"); default: from
                                     its "resourceType" */
    const ehr_fhirpath_var *vars; /* user variables */
    size_t n_vars;
    const char *now; /* fixed value for now()/today()/timeOfDay(),
                        a FHIR instant; default: the clock */
    ehr_fhirpath_resolve_fn resolve;
    void *resolve_ctx;
    ehr_fhirpath_trace_fn trace;
    void *trace_ctx;
    size_t max_steps; /* 0 = EHR_FHIRPATH_DEFAULT_MAX_STEPS */
    size_t max_items; /* 0 = EHR_FHIRPATH_DEFAULT_MAX_ITEMS */
    size_t max_bytes; /* 0 = EHR_FHIRPATH_DEFAULT_MAX_BYTES */
} ehr_fhirpath_env;

/* The output collection of an evaluation. Read items with
 * ehr_fhirpath_result_get; everything lives in the evaluation's arena. */
typedef struct ehr_fhirpath_result {
    size_t count;
    const ehr_fhirpath_item *items; /* opaque array: use ehr_fhirpath_result_get */
} ehr_fhirpath_result;

/*
 * Evaluate e with resource as the context (%context, $this; NULL means an
 * empty context). Memory comes from arena; the caller frees the arena. On
 * failure out is empty and err holds an execution error, or EHR_ELIMIT.
 */
ehr_status ehr_fhirpath_eval(const ehr_fhirpath_expr *e, const json_t *resource,
                             const ehr_fhirpath_env *env, ehr_arena *arena,
                             ehr_fhirpath_result *out, ehr_err *err);

/*
 * The value of a boolean expression (invariants, where-like filters):
 * *value is 1 for true, 0 for false and -1 for an empty result. A result
 * of a single non-Boolean item counts as true (FHIRPath N1 section 4.5,
 * singleton evaluation); more than one item is an execution error.
 */
ehr_status ehr_fhirpath_eval_bool(const ehr_fhirpath_expr *e, const json_t *resource,
                                  const ehr_fhirpath_env *env, ehr_arena *arena, int *value,
                                  ehr_err *err);

/* ---- items of a result ---- */

/* The value kinds of FHIRPath (System types), plus complex FHIR values. */
typedef enum {
    EHR_FHIRPATH_BOOLEAN = 1,
    EHR_FHIRPATH_INTEGER,
    EHR_FHIRPATH_DECIMAL,
    EHR_FHIRPATH_STRING,
    EHR_FHIRPATH_DATE,
    EHR_FHIRPATH_DATETIME,
    EHR_FHIRPATH_TIME,
    EHR_FHIRPATH_QUANTITY,
    EHR_FHIRPATH_OBJECT,   /* a complex FHIR value or a resource (a JSON object) */
    EHR_FHIRPATH_TYPEINFO, /* the result of type() */
} ehr_fhirpath_kind;

/* Precision of a date, dateTime or time value. */
typedef enum {
    EHR_FHIRPATH_PREC_YEAR = 1,
    EHR_FHIRPATH_PREC_MONTH,
    EHR_FHIRPATH_PREC_DAY,
    EHR_FHIRPATH_PREC_HOUR,
    EHR_FHIRPATH_PREC_MINUTE,
    EHR_FHIRPATH_PREC_SECOND,
    EHR_FHIRPATH_PREC_MILLISECOND,
} ehr_fhirpath_precision;

typedef struct ehr_fhirpath_datetime {
    int year, month, day; /* 0 where absent (and year for a time) */
    int hour, minute, second, millisecond;
    ehr_fhirpath_precision precision;
    bool has_tz;
    int tz_minutes; /* offset east of UTC */
} ehr_fhirpath_datetime;

const ehr_fhirpath_item *ehr_fhirpath_result_get(const ehr_fhirpath_result *r, size_t i);
ehr_fhirpath_kind ehr_fhirpath_item_kind(const ehr_fhirpath_item *it);
/* The FHIR type of an item that came from the resource ("HumanName",
 * "code", "Patient"), or NULL for a System value computed by the expression. */
const ehr_fhir_type *ehr_fhirpath_item_fhir_type(const ehr_fhirpath_item *it);
/* Qualified type name: "FHIR.HumanName", "System.String". Static storage
 * or arena; never NULL. */
const char *ehr_fhirpath_item_type_name(const ehr_fhirpath_item *it, ehr_arena *arena);
/* The JSON node an item was read from (object, or the primitive's value;
 * NULL for computed values and for primitives that only have extensions). */
const json_t *ehr_fhirpath_item_json(const ehr_fhirpath_item *it);
/*
 * Where an element of the resource sits: the JSON object holding it, the
 * property name ("valueQuantity", "given") and its index in the property's
 * array (-1 when the property is not an array). For FHIRPath Patch, which
 * changes what an expression selects. False for computed values and for
 * the context itself. The pointers are into the input JSON.
 */
bool ehr_fhirpath_item_location(const ehr_fhirpath_item *it, const json_t **parent,
                                const char **key, long *index);
/* False for a primitive element that only carries an id or extensions. */
bool ehr_fhirpath_item_has_value(const ehr_fhirpath_item *it);
bool ehr_fhirpath_item_bool(const ehr_fhirpath_item *it);
int64_t ehr_fhirpath_item_int(const ehr_fhirpath_item *it);
/* String value (not NUL-terminated in general; *len gets the length). */
const char *ehr_fhirpath_item_string(const ehr_fhirpath_item *it, size_t *len);
/* Date, dateTime or time value; false for other kinds. */
bool ehr_fhirpath_item_datetime(const ehr_fhirpath_item *it, ehr_fhirpath_datetime *out);
/* Quantity value as decimal text and unit (UCUM code or calendar keyword). */
bool ehr_fhirpath_item_quantity(const ehr_fhirpath_item *it, ehr_arena *arena, const char **value,
                                const char **unit);
/*
 * The item as FHIRPath text: strings as they are, numbers in decimal,
 * dates and times as written without '@', quantities as "1.5 'mg'" or
 * "4 days" (toString() of FHIRPath N1 section 5.5.8). NULL for objects.
 */
const char *ehr_fhirpath_item_text(const ehr_fhirpath_item *it, ehr_arena *arena);

/*
 * JSON form of an item, a new reference the caller owns (json_decref):
 * objects as they are in the resource, strings, numbers (lossless, see
 * core/json.h) and booleans as JSON scalars, dates and times as strings as
 * written, quantities as {"value": number, "unit": "mg"} (plus "system"
 * for UCUM units), type() results as {"namespace": .., "name": ..}.
 * NULL on allocation failure.
 */
json_t *ehr_fhirpath_item_to_json(const ehr_fhirpath_item *it);
/* The result collection as a JSON array (caller owns), NULL on ENOMEM. */
json_t *ehr_fhirpath_result_to_json(const ehr_fhirpath_result *r);

#endif
