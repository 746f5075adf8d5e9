/* store.c - choosing a backend and the thin wrappers of store.h. */
#include "store/store.h"

#include <string.h>

ehr_status ehr_store_open(const char *target, ehr_store **out, ehr_err *err)
{
    *out = NULL;
    if (strncmp(target, "postgres:", 9) == 0)
        return ehr_store_postgres_ops.open(target + 9, out, err);
    if (strncmp(target, "sqlite:", 7) == 0)
        target += 7;
    return ehr_store_sqlite_ops.open(target, out, err);
}

void ehr_store_close(ehr_store **s)
{
    if (s && *s) {
        (*s)->ops->close(*s);
        *s = NULL;
    }
}

ehr_status ehr_store_connect(ehr_store *s, ehr_store_conn **out, ehr_err *err)
{
    return s->ops->connect(s, out, err);
}

void ehr_store_disconnect(ehr_store_conn **c)
{
    if (c && *c) {
        (*c)->store->ops->disconnect(*c);
        *c = NULL;
    }
}
