/* params.c - lookups in the generated parameter table, expression cache. */
#include "search/params.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static int row_cmp(const char *type, const char *code, const struct ehr_sp *r)
{
    int c = strcmp(type, r->type);
    return c ? c : strcmp(code, r->code);
}

static const struct ehr_sp *find_exact(const char *type, const char *code)
{
    size_t lo = 0, hi = ehr_sp_table_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = row_cmp(type, code, &ehr_sp_table[mid]);
        if (!c)
            return &ehr_sp_table[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static bool is_domain(const char *type)
{
    return strcmp(type, "Bundle") && strcmp(type, "Binary") && strcmp(type, "Parameters");
}

const struct ehr_sp *ehr_sp_find(const char *type, const char *code)
{
    const struct ehr_sp *sp = type ? find_exact(type, code) : NULL;
    if (!sp)
        sp = find_exact("Resource", code);
    if (!sp && (!type || is_domain(type)))
        sp = find_exact("DomainResource", code);
    return sp;
}

static size_t add_rows(const char *type, const struct ehr_sp **out, size_t max, size_t n)
{
    size_t lo = 0, hi = ehr_sp_table_n;
    while (lo < hi) { /* first row of type */
        size_t mid = (lo + hi) / 2;
        if (strcmp(ehr_sp_table[mid].type, type) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < ehr_sp_table_n && !strcmp(ehr_sp_table[i].type, type); i++) {
        if (n < max)
            out[n] = &ehr_sp_table[i];
        n++;
    }
    return n;
}

size_t ehr_sp_list(const char *type, const struct ehr_sp **out, size_t max)
{
    size_t n = add_rows(type, out, max, 0);
    n = add_rows("Resource", out, max, n);
    if (is_domain(type))
        n = add_rows("DomainResource", out, max, n);
    return n;
}

bool ehr_sp_targets(const struct ehr_sp *sp, const char *t)
{
    if (!sp->targets)
        return true;
    size_t n = strlen(t);
    for (const char *p = sp->targets; *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && !memcmp(p, t, n))
            return true;
        p += len;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Compiled expressions, by row (and component), made on first use. */
#define MAX_COMPONENTS 4
static _Atomic(ehr_fhirpath_expr *) *cache; /* ehr_sp_table_n * (1 + MAX_COMPONENTS) */
static _Atomic(unsigned char) *failed;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_init(void)
{
    cache = calloc(ehr_sp_table_n * (1 + MAX_COMPONENTS), sizeof *cache);
    failed = calloc(ehr_sp_table_n * (1 + MAX_COMPONENTS), 1);
}

static const ehr_fhirpath_expr *compiled(const struct ehr_sp *sp, size_t slot, const char *text,
                                         const char *context)
{
    if (!text)
        return NULL;
    pthread_once(&cache_once, cache_init);
    if (!cache || !failed)
        return NULL;
    size_t i = (size_t)(sp - ehr_sp_table) * (1 + MAX_COMPONENTS) + slot;
    ehr_fhirpath_expr *e = atomic_load(&cache[i]);
    if (e || atomic_load(&failed[i]))
        return e;
    pthread_mutex_lock(&cache_lock);
    e = atomic_load(&cache[i]);
    if (!e && !atomic_load(&failed[i])) {
        ehr_err err = {{0}};
        (void)context;
        if (ehr_fhirpath_compile(text, strlen(text), &e, &err)) {
            ehr_log(EHR_LOG_WARN, "search: parameter %s.%s does not compile: %s", sp->type,
                    sp->code, err.msg);
            atomic_store(&failed[i], 1);
            e = NULL;
        } else {
            atomic_store(&cache[i], e);
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return e;
}

const ehr_fhirpath_expr *ehr_sp_expr(const struct ehr_sp *sp)
{
    return compiled(sp, 0, sp->expr, sp->type);
}

const ehr_fhirpath_expr *ehr_sp_component_expr(const struct ehr_sp *sp, size_t i)
{
    if (!sp->components || i >= MAX_COMPONENTS)
        return NULL;
    return compiled(sp, 1 + i, sp->components[i].expr, NULL);
}
