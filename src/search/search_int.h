/*
 * search_int.h - private to src/search: what the parser shares with the
 * extractor (normalisation, reference parsing, units).
 */
#ifndef EHR_SEARCH_INT_H
#define EHR_SEARCH_INT_H

#include <stdbool.h>

#include "core/arena.h"
#include "search/params.h"
#include "store/store.h"

/* The system of canonical UCUM quantity rows (value in base units, code
 * the dimension vector, e.g. "g1.m-3" for mass concentration). */
#define EHR_SEARCH_CANON_SYSTEM "urn:ehr:ucum-canonical"

/* Lowercase, accents removed (Latin letters), as stored for strings. */
char *ehr_search_normalize(ehr_arena *a, const char *s, size_t len);
/* Type and id named by a reference text (relative or absolute). */
bool ehr_search_ref_parts(const char *ref, ehr_arena *a, const char **type, const char **id);
/* value in code as base units; false when it does not convert. */
bool ehr_search_ucum_canonical(const char *code, double value, ehr_arena *a, const char **unit,
                               double *out);
/* The index kind of a parameter type (composites and specials: TOKEN). */
ehr_idx_kind ehr_search_idx_kind(ehr_sp_kind k);

#endif
