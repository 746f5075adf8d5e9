/*
 * arena.h - a bump allocator for per-request memory (as h2o's mem pool).
 *
 * Everything allocated from an arena is released at once by
 * ehr_arena_free. Large allocations get their own block; nothing is ever
 * freed individually.
 */
#ifndef EHR_CORE_ARENA_H
#define EHR_CORE_ARENA_H

#include <stddef.h>

typedef struct ehr_arena ehr_arena;

ehr_arena *ehr_arena_new(void);
void ehr_arena_free(ehr_arena **a);
/* 16-byte aligned memory, or NULL when out of memory. */
void *ehr_arena_alloc(ehr_arena *a, size_t size);
void *ehr_arena_calloc(ehr_arena *a, size_t n, size_t size);
/* Copies of strings: always NUL-terminated. */
char *ehr_arena_strndup(ehr_arena *a, const char *s, size_t len);
char *ehr_arena_strdup(ehr_arena *a, const char *s);
char *ehr_arena_printf(ehr_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
