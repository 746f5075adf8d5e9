/*
 * search.h - FHIR search: parameters parsed into store queries, and the
 * search index values extracted from resources on every write.
 *
 * This is the foundation's subset: the parameters every resource has
 * (_id, _lastUpdated), identifier, and the result controls (_count,
 * _offset, _total, _summary=count). The search issue grows it to every
 * R4 search parameter without changing these entry points.
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

typedef struct ehr_search {
    ehr_store_query q;  /* clauses live in the arena given to ehr_search_parse */
    bool summary_count; /* _summary=count: only the total */
    bool total_none;    /* _total=none */
    ehr_buf self;       /* the parameters that were used, as a query string */
    size_t n_ignored;   /* parameters not understood (lenient handling) */
} ehr_search;

/*
 * Parse params for a search of type (NULL for a search across all types).
 * strict: an unknown or unsupported parameter is an error (for conditional
 * operations, where ignoring one would widen the match, and for
 * Prefer: handling=strict); otherwise it is skipped with a warning issue.
 * Errors go to issues and return EHR_EINVAL. Free s->self with ehr_search_done.
 */
ehr_status ehr_search_parse(const char *type, const struct ehr_search_param *params, size_t n,
                            bool strict, ehr_arena *arena, ehr_search *s, ehr_fhir_issues *issues);
void ehr_search_done(ehr_search *s);

/* Split a query string ("a=1&b=x%20y") into decoded pairs from arena. */
ehr_status ehr_search_split_query(const char *qs, ehr_arena *arena, struct ehr_search_param **out,
                                  size_t *n);

/*
 * The index rows of resource res (type, id): search values and the
 * patients whose compartment holds it. Allocated from arena.
 */
ehr_status ehr_search_extract(const char *type, const char *id, const json_t *res,
                              ehr_arena *arena, ehr_store_index *out);

/*
 * Parse a FHIR date/dateTime/instant search value into the range it covers,
 * by its precision: "2024" is the whole year. Returns false when malformed.
 */
bool ehr_search_date_range(const char *v, int64_t *lo, int64_t *hi);

#endif
