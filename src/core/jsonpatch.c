#include "core/jsonpatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* Decode one reference token (RFC 6901: ~1 is '/', ~0 is '~'). */
static int token(const char *s, size_t len, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (j + 1 >= cap)
            return -1;
        if (s[i] == '~') {
            if (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1'))
                return -1;
            out[j++] = s[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return 0;
}

/* Parse an array index token: digits without leading zeros, or "-". */
static int array_index(const char *t, size_t size, int allow_end, size_t *out)
{
    if (!strcmp(t, "-")) {
        if (!allow_end)
            return -1;
        *out = size;
        return 0;
    }
    if (!*t || (t[0] == '0' && t[1]))
        return -1;
    size_t v = 0;
    for (const char *p = t; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (size_t)(*p - '0');
        if (v > 100000000)
            return -1;
    }
    if (v > size || (v == size && !allow_end))
        return -1;
    *out = v;
    return 0;
}

/*
 * Resolve path to its parent container and the last token. An empty path
 * (the whole document) gives *parent = NULL.
 */
static int resolve_parent(json_t *doc, const char *path, json_t **parent, char *last, size_t cap)
{
    if (*path == '\0') {
        *parent = NULL;
        last[0] = '\0';
        return 0;
    }
    if (*path != '/')
        return -1;
    json_t *cur = doc;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (token(p, len, last, cap))
            return -1;
        if (!slash) {
            *parent = cur;
            return 0;
        }
        json_t *next;
        if (json_is_object(cur)) {
            next = json_object_get(cur, last);
        } else if (json_is_array(cur)) {
            size_t idx;
            if (array_index(last, json_array_size(cur), 0, &idx))
                return -1;
            next = json_array_get(cur, idx);
        } else {
            return -1;
        }
        if (!next)
            return -1;
        cur = next;
        p = slash + 1;
    }
}

static json_t *get(json_t *doc, const char *path)
{
    json_t *parent;
    char last[512];
    if (resolve_parent(doc, path, &parent, last, sizeof last))
        return NULL;
    if (!parent)
        return doc;
    if (json_is_object(parent))
        return json_object_get(parent, last);
    size_t idx;
    if (json_is_array(parent) && !array_index(last, json_array_size(parent), 0, &idx))
        return json_array_get(parent, idx);
    return NULL;
}

/* add: value is stolen. */
static int op_add(json_t **doc, const char *path, json_t *value)
{
    json_t *parent;
    char last[512];
    if (resolve_parent(*doc, path, &parent, last, sizeof last)) {
        json_decref(value);
        return -1;
    }
    if (!parent) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    if (json_is_object(parent))
        return json_object_set_new(parent, last, value);
    size_t idx;
    if (json_is_array(parent) && !array_index(last, json_array_size(parent), 1, &idx))
        return json_array_insert_new(parent, idx, value);
    json_decref(value);
    return -1;
}

static int op_remove(json_t *doc, const char *path)
{
    json_t *parent;
    char last[512];
    if (resolve_parent(doc, path, &parent, last, sizeof last) || !parent)
        return -1;
    if (json_is_object(parent))
        return json_object_del(parent, last);
    size_t idx;
    if (json_is_array(parent) && !array_index(last, json_array_size(parent), 0, &idx))
        return json_array_remove(parent, idx);
    return -1;
}

static ehr_status fail(ehr_err *err, ehr_status st, size_t i, const char *fmt, const char *arg)
{
    char where[32];
    snprintf(where, sizeof where, "/%zu", i);
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    return ehr_err_at(err, st, where, "patch operation %zu: %s", i, msg);
}

ehr_status ehr_json_patch(json_t **docp, const json_t *patch, ehr_err *err)
{
    if (!json_is_array(patch))
        return ehr_err_set(err, EHR_EINVAL, "a JSON Patch document is an array of operations");
    json_t *doc = json_deep_copy(*docp);
    if (!doc)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < json_array_size(patch) && !st; i++) {
        json_t *op = json_array_get(patch, i);
        const char *name = ehr_json_get_string(op, "op");
        const char *path = ehr_json_get_string(op, "path");
        json_t *value = json_object_get(op, "value");
        const char *from = ehr_json_get_string(op, "from");
        if (!json_is_object(op) || !name || !path) {
            st = fail(err, EHR_EINVAL, i, "%s", "each operation needs \"op\" and \"path\"");
        } else if (!strcmp(name, "add") || !strcmp(name, "replace")) {
            if (!value)
                st = fail(err, EHR_EINVAL, i, "%s needs a \"value\"", name);
            else if (!strcmp(name, "replace") && (!get(doc, path) || op_remove(doc, path)) && *path)
                st = fail(err, EHR_EINVAL, i, "path %s does not exist", path);
            else if (op_add(&doc, path, json_deep_copy(value)))
                st = fail(err, EHR_EINVAL, i, "cannot add at path %s", path);
        } else if (!strcmp(name, "remove")) {
            if (op_remove(doc, path))
                st = fail(err, EHR_EINVAL, i, "path %s does not exist", path);
        } else if (!strcmp(name, "move") || !strcmp(name, "copy")) {
            json_t *src = from ? get(doc, from) : NULL;
            if (!src) {
                st = fail(err, EHR_EINVAL, i, "\"from\" %s does not exist", from ? from : "");
            } else if (!strcmp(name, "move") && strncmp(path, from, strlen(from)) == 0 &&
                       (path[strlen(from)] == '/')) {
                st = fail(err, EHR_EINVAL, i, "cannot move %s into itself", from);
            } else {
                json_t *v = json_deep_copy(src);
                if (!strcmp(name, "move") && op_remove(doc, from)) {
                    json_decref(v);
                    st = fail(err, EHR_EINVAL, i, "cannot remove %s", from);
                } else if (op_add(&doc, path, v)) {
                    st = fail(err, EHR_EINVAL, i, "cannot add at path %s", path);
                }
            }
        } else if (!strcmp(name, "test")) {
            json_t *cur = get(doc, path);
            if (!value)
                st = fail(err, EHR_EINVAL, i, "%s", "test needs a \"value\"");
            else if (!cur || !ehr_json_equal(cur, value))
                st = fail(err, EHR_EPRECONDITION, i, "test failed: the value at %s differs", path);
        } else {
            st = fail(err, EHR_EINVAL, i, "unknown op \"%s\"", name);
        }
    }
    if (st) {
        json_decref(doc);
        return st;
    }
    json_decref(*docp);
    *docp = doc;
    return EHR_OK;
}
