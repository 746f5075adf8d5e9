#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE 8192

struct block {
    struct block *next;
    size_t used, size;
    /* 16-byte alignment of the payload */
    _Alignas(16) unsigned char data[];
};

struct ehr_arena {
    struct block *head;
};

ehr_arena *ehr_arena_new(void)
{
    return calloc(1, sizeof(ehr_arena));
}

void ehr_arena_free(ehr_arena **ap)
{
    if (!ap || !*ap)
        return;
    struct block *b = (*ap)->head;
    while (b) {
        struct block *n = b->next;
        free(b);
        b = n;
    }
    free(*ap);
    *ap = NULL;
}

void *ehr_arena_alloc(ehr_arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    struct block *b = a->head;
    if (b && b->size - b->used >= size) {
        void *p = b->data + b->used;
        b->used += size;
        return p;
    }
    if (size > BLOCK_SIZE / 4) {
        /* a large allocation gets its own block, kept behind the current one */
        struct block *big = malloc(sizeof *big + size);
        if (!big)
            return NULL;
        big->size = big->used = size;
        if (b) {
            big->next = b->next;
            b->next = big;
        } else {
            big->next = NULL;
            a->head = big;
        }
        return big->data;
    }
    struct block *nb = malloc(sizeof *nb + BLOCK_SIZE);
    if (!nb)
        return NULL;
    nb->size = BLOCK_SIZE;
    nb->used = size;
    nb->next = b;
    a->head = nb;
    return nb->data;
}

void *ehr_arena_calloc(ehr_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = ehr_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *ehr_arena_strndup(ehr_arena *a, const char *s, size_t len)
{
    char *p = ehr_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *ehr_arena_strdup(ehr_arena *a, const char *s)
{
    return ehr_arena_strndup(a, s, strlen(s));
}

char *ehr_arena_printf(ehr_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = ehr_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
