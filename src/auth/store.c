/*
 * store.c - the auth module's documents in the store (auth_object rows,
 * through the obj_* ops of store.h on this thread's connection).
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/json.h"

static ehr_status conn(ehr_auth *a, ehr_store_conn **c, ehr_err *err)
{
    return ehr_repo_conn(a->repo, c, err);
}

ehr_status auth_get(ehr_auth *a, const char *kind, const char *key, json_t **out, ehr_err *err)
{
    *out = NULL;
    ehr_store_conn *c;
    ehr_status st = conn(a, &c, err);
    if (st)
        return st;
    ehr_buf b = EHR_BUF_INIT;
    st = EHR_STORE_CALL(c, obj_get, kind, key, &b, err);
    if (!st && !(*out = json_loadb(b.data ? b.data : "", b.len, 0, NULL)))
        st = ehr_err_set(err, EHR_EINTERNAL, "a stored %s document is damaged", kind);
    ehr_buf_free(&b);
    return st;
}

ehr_status auth_put(ehr_auth *a, const char *kind, const char *key, const char *owner,
                    int64_t expires, const json_t *doc, bool create_only, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = conn(a, &c, err);
    if (st)
        return st;
    char *s = json_dumps(doc, JSON_COMPACT);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_store_obj o = {.kind = kind,
                       .key = key,
                       .owner = owner,
                       .expires = expires,
                       .doc = s,
                       .doc_len = strlen(s)};
    st = EHR_STORE_CALL(c, obj_put, &o, create_only, err);
    free(s);
    return st;
}

ehr_status auth_del(ehr_auth *a, const char *kind, const char *key, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = conn(a, &c, err);
    if (st)
        return st;
    return EHR_STORE_CALL(c, obj_del, kind, key, err);
}

struct list_ctx {
    auth_list_cb cb;
    void *ctx;
};

static ehr_status list_one(void *p, const ehr_store_obj *o)
{
    struct list_ctx *l = p;
    json_t *doc = json_loadb(o->doc, o->doc_len, 0, NULL);
    if (!doc)
        return EHR_OK; /* a damaged document is skipped */
    ehr_status st = l->cb(l->ctx, o->key, doc, o->expires);
    json_decref(doc);
    return st;
}

ehr_status auth_list(ehr_auth *a, const char *kind, const char *owner, auth_list_cb cb, void *ctx,
                     ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = conn(a, &c, err);
    if (st)
        return st;
    struct list_ctx l = {cb, ctx};
    return EHR_STORE_CALL(c, obj_list, kind, owner, list_one, &l, err);
}

ehr_status auth_begin(ehr_auth *a, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = conn(a, &c, err);
    return st ? st : EHR_STORE_CALL(c, begin, true, err);
}

ehr_status auth_commit(ehr_auth *a, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = conn(a, &c, err);
    if (!st && (st = EHR_STORE_CALL(c, commit, err)))
        EHR_STORE_CALL(c, rollback);
    return st;
}

void auth_rollback(ehr_auth *a)
{
    ehr_store_conn *c;
    if (!conn(a, &c, NULL))
        EHR_STORE_CALL(c, rollback);
}

ehr_status auth_audit(ehr_auth *a, const ehr_repo_ctx *ctx, json_t *ev, ehr_err *err)
{
    if (!ev)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = ehr_repo_audit(a->repo, ctx, ev, err);
    json_decref(ev);
    return st;
}

int64_t auth_int(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

const char *auth_str(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
