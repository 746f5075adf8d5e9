/*
 * search.h - FHIR search: parameters parsed into store queries (a plan the
 * store backend renders as SQL with bound values), and the search index
 * values extracted from resources on every write.
 *
 * Every R4 search parameter of every resource type is known (params.h,
 * generated from the official definitions). What is supported, and the
 * limits, are listed in docs/search.md; each limit below is enforced with
 * an error issue (EHR_EINVAL or EHR_ELIMIT).
 */
#ifndef EHR_SEARCH_SEARCH_H
#define EHR_SEARCH_SEARCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "fhir/outcome.h"
#include "store/store.h"

/* A name=value pair, percent-decoded. Layout matches ehr_http_param. */
struct ehr_search_param {
    const char *name;
    const char *value;
};

#define EHR_SEARCH_DEFAULT_COUNT 20
#define EHR_SEARCH_MAX_COUNT 1000
/* Most comma-separated values of one parameter (an OR list). */
#define EHR_SEARCH_MAX_OR 200
/* Most filter parameters in one search (AND). */
#define EHR_SEARCH_MAX_PARAMS 64
/* Deepest chain (a.b.c.d) and _has nesting, counted together. */
#define EHR_SEARCH_MAX_CHAIN 4
/* Most _sort keys, _include/_revinclude parameters. */
#define EHR_SEARCH_MAX_SORT 8
#define EHR_SEARCH_MAX_INCLUDES 16
/* Most resources that _include/_revinclude add to one page. */
#define EHR_SEARCH_MAX_INCLUDED 1000
/* Matches counted for Bundle.total unless _total=accurate: beyond it the
 * total is left out (paging links still work). */
#define EHR_SEARCH_TOTAL_LIMIT 2000
/* Most names in _elements. */
#define EHR_SEARCH_MAX_ELEMENTS 64

typedef enum {
    EHR_SUMMARY_NONE = 0, /* _summary=false or absent */
    EHR_SUMMARY_TRUE,     /* elements marked summary */
    EHR_SUMMARY_TEXT,     /* text, id, meta and mandatory elements */
    EHR_SUMMARY_DATA,     /* everything but text */
    EHR_SUMMARY_COUNT,    /* only the total */
} ehr_search_summary;

typedef struct ehr_search {
    ehr_store_query q;   /* clauses live in the arena given to ehr_search_parse */
    bool summary_count;  /* _summary=count: only the total */
    bool total_none;     /* _total=none */
    bool total_accurate; /* _total=accurate: count every match */
    ehr_search_summary summary;
    size_t n_elements; /* _elements: top-level names kept (0: all) */
    const char **elements;
    ehr_buf self;     /* the parameters that were used, as a query string
                         (without _count, _offset and the paging cursors) */
    size_t n_ignored; /* parameters not understood (lenient handling) */
} ehr_search;

/*
 * Parse params for a search of type (NULL for a search across all types;
 * _type may then name them). strict: an unknown parameter is an error (for
 * conditional operations, where ignoring one would widen the match, and
 * for Prefer: handling=strict); otherwise it is skipped with a warning
 * issue. A malformed value, an unknown modifier or a limit exceeded is an
 * error either way. Errors go to issues and return EHR_EINVAL. Free
 * s->self with ehr_search_done.
 */
ehr_status ehr_search_parse(const char *type, const struct ehr_search_param *params, size_t n,
                            bool strict, ehr_arena *arena, ehr_search *s, ehr_fhir_issues *issues);
void ehr_search_done(ehr_search *s);

/* Split a query string ("a=1&b=x%20y") into decoded pairs from arena. */
ehr_status ehr_search_split_query(const char *qs, ehr_arena *arena, struct ehr_search_param **out,
                                  size_t *n);

/*
 * The index rows of resource res (type, id): the values of every search
 * parameter of its type, and the patients whose compartment holds it.
 * Allocated from arena.
 */
ehr_status ehr_search_extract(const char *type, const char *id, const json_t *res, ehr_arena *arena,
                              ehr_store_index *out);

/*
 * Parse a FHIR date/dateTime/instant search value into the range it covers,
 * by its precision: "2024" is the whole year. Returns false when malformed.
 */
bool ehr_search_date_range(const char *v, int64_t *lo, int64_t *hi);

/*
 * Reduce a resource (compact JSON) to what _summary / _elements keep,
 * marked with the SUBSETTED tag; appends the JSON to out. When s asks for
 * the whole resource, appends it unchanged.
 */
ehr_status ehr_search_subset(const ehr_search *s, const char *content, size_t len, ehr_buf *out);

#endif
