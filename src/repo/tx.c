/*
 * tx.c - batch and transaction Bundles (FHIR R4 http.html 3.1.0.11): many
 * interactions as one unit of work in the group commit.
 *
 * A transaction runs as ONE write job: every entry inside one savepoint of
 * the leader's transaction, so either all of it is committed or none of it.
 * A batch is one write job too (one commit), each entry in a nested
 * savepoint of its own, so a failed entry is undone alone.
 *
 * Outside the writer's lock: the Bundle is checked and every resource
 * validated (the expensive part). Inside it, in the order of the
 * specification: DELETE, then POST (conditional creates resolved, ids
 * assigned), PUT and PATCH (conditional updates resolved), then every
 * reference rewritten (urn:uuid:, urn:oid: full URLs and conditional
 * references "Type?query"), then the writes, then GET. Conditional
 * creates search inside the write transaction; writes are serialised by
 * the group commit, so two clients creating the same identifier at once
 * get one resource.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "repo/repo_int.h"

enum { M_DELETE, M_POST, M_PUT, M_PATCH, M_GET };
static const char *const method_names[] = {"DELETE", "POST", "PUT", "PATCH", "GET"};

/* One entry of the Bundle and what became of it. */
struct txe {
    size_t i;
    int method;
    bool skip; /* batch: failed before the write job */
    char type[72];
    char id[72]; /* from the URL, or assigned */
    char *query; /* conditional: after '?' */
    int64_t vid; /* GET .../_history/N */
    const char *full_url;
    json_t *res; /* our copy of the resource (POST, PUT) or the patch (PATCH) */
    const char *if_none_exist;
    int64_t if_match;
    bool matched;   /* POST ifNoneExist found an existing resource */
    bool unchanged; /* PUT of identical content (skip_unchanged) */
    ehr_status st;
    ehr_err err;
    ehr_fhir_issues issues;
    ehr_repo_out out;
    json_t *got; /* GET: the resource or searchset */
};

struct tx {
    ehr_repo *r;
    const ehr_repo_ctx *ctx;
    ehr_repo_tx_opts o;
    bool batch;
    size_t n;
    struct txe *e;
    json_t *urls;  /* fullUrl -> "Type/id" */
    json_t *conds; /* "Type?query" -> "Type/id": conditional references and creates */
    json_t *seen;  /* "Type/id" -> entry index: one change per resource */
    struct txe *failed;
};

/* The Bundle entry status line for a status (http.html 3.1.0.11.3). */
static const char *status_line(ehr_status st)
{
    switch (st) {
    case EHR_OK:
        return "200 OK";
    case EHR_EINVAL:
        return "400 Bad Request";
    case EHR_ENOTFOUND:
        return "404 Not Found";
    case EHR_EGONE:
        return "410 Gone";
    case EHR_ECONFLICT:
    case EHR_EMULTIPLE:
        return "412 Precondition Failed";
    case EHR_EPRECONDITION:
    case EHR_EUNPROCESSABLE:
        return "422 Unprocessable Entity";
    case EHR_ELIMIT:
        return "413 Payload Too Large";
    case EHR_EFORBIDDEN:
        return "403 Forbidden";
    case EHR_EBUSY:
        return "503 Service Unavailable";
    case EHR_EUNSUPPORTED:
        return "501 Not Implemented";
    case EHR_EEXISTS:
        return "409 Conflict";
    default:
        return "500 Internal Server Error";
    }
}

/* Record a failure of entry e, located at where (NULL: the entry). */
static ehr_status fail(struct txe *e, ehr_status st, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ehr_status fail(struct txe *e, ehr_status st, const char *where, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char loc[160];
    snprintf(loc, sizeof loc, "Bundle.entry[%zu]%s%s", e->i, where ? "." : "", where ? where : "");
    ehr_fhir_issue_add(&e->issues, EHR_SEV_ERROR, ehr_fhir_issue_code(st), loc, "%s", msg);
    e->st = st;
    ehr_err_set(&e->err, st, "Bundle.entry[%zu]: %s", e->i, msg);
    snprintf(e->err.where, sizeof e->err.where, "%s", loc);
    return st;
}

/* A status from the repository: its message, at the entry, unless issues say more. */
static ehr_status failed_with(struct txe *e, ehr_status st)
{
    e->st = st;
    if (ehr_fhir_issues_errors(&e->issues) == 0) {
        char msg[sizeof e->err.msg];
        snprintf(msg, sizeof msg, "%s", e->err.msg[0] ? e->err.msg : ehr_status_str(st));
        return fail(e, st, NULL, "%s", msg);
    }
    ehr_err_set(&e->err, st, "Bundle.entry[%zu]: %s", e->i,
                e->issues.items[0].message ? e->issues.items[0].message : ehr_status_str(st));
    return st;
}

/*
 * Issues of a resource are located in the resource ("Patient.birthDate");
 * inside a Bundle they are at Bundle.entry[i].resource.birthDate.
 */
static void relocate_issues(struct txe *e, size_t from)
{
    size_t tl = strlen(e->type);
    for (size_t k = from; k < e->issues.n; k++) {
        char *x = e->issues.items[k].expression;
        char buf[512];
        if (x && !strncmp(x, e->type, tl) && (x[tl] == '.' || x[tl] == '\0' || x[tl] == '['))
            snprintf(buf, sizeof buf, "Bundle.entry[%zu].resource%s", e->i, x + tl);
        else if (x && !strncmp(x, "resourceType", 12))
            snprintf(buf, sizeof buf, "Bundle.entry[%zu].resource.%s", e->i, x);
        else if (x && !strncmp(x, "Resource.", 9))
            snprintf(buf, sizeof buf, "Bundle.entry[%zu].resource%s", e->i, x + 8);
        else if (!x)
            snprintf(buf, sizeof buf, "Bundle.entry[%zu].resource", e->i);
        else
            continue;
        char *nx = strdup(buf);
        if (nx) {
            free(x);
            e->issues.items[k].expression = nx;
        }
    }
}

/* -- parsing the Bundle (outside the writer's lock) -- */

static bool valid_id(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* request.url: "Type", "Type/id", "Type?q", "Type/id/_history/v", absolute or relative. */
static ehr_status parse_url(struct txe *e, const char *url)
{
    const char *p = url;
    const char *scheme = strstr(url, "://");
    if (scheme && scheme < url + strcspn(url, "?")) {
        /* absolute: find the segment that names a resource type */
        const char *q = strchr(scheme + 3, '/');
        for (; q; q = strchr(q + 1, '/')) {
            size_t n = strcspn(q + 1, "/?");
            char t[72];
            if (n && n < sizeof t) {
                memcpy(t, q + 1, n);
                t[n] = '\0';
                if (!repo_check_type(t, NULL)) {
                    p = q + 1;
                    break;
                }
            }
        }
        if (!q)
            return fail(e, EHR_EINVAL, "request.url", "'%.200s' names no resource type", url);
    }
    while (*p == '/')
        p++;
    size_t tn = strcspn(p, "/?");
    if (tn == 0 || tn >= sizeof e->type)
        return fail(e, EHR_EINVAL, "request.url", "'%.200s' names no resource type", url);
    memcpy(e->type, p, tn);
    e->type[tn] = '\0';
    if (repo_check_type(e->type, NULL))
        return fail(e, EHR_EINVAL, "request.url", "'%.72s' is not a FHIR R4 resource type",
                    e->type);
    p += tn;
    if (*p == '/') {
        p++;
        size_t n = strcspn(p, "/?");
        if (!valid_id(p, n))
            return fail(e, EHR_EINVAL, "request.url",
                        "'%.200s': the id must be 1 to 64 letters, digits, '-' or '.'", url);
        memcpy(e->id, p, n);
        e->id[n] = '\0';
        p += n;
        if (!strncmp(p, "/_history/", 10)) {
            char *end;
            long long v = strtoll(p + 10, &end, 10);
            if (e->method != M_GET || v <= 0 || (*end && *end != '?'))
                return fail(e, EHR_EINVAL, "request.url", "'%.200s' is not a version to read", url);
            e->vid = v;
            p = end;
        } else if (*p == '/') {
            return fail(e, EHR_EUNSUPPORTED, "request.url",
                        "'%.200s': only reads, writes and searches can be in a Bundle", url);
        }
    }
    if (*p == '?') {
        e->query = strdup(p + 1);
        if (!e->query)
            return fail(e, EHR_ENOMEM, NULL, "out of memory");
    }
    return EHR_OK;
}

/* Standard base64 (Binary.data), into a NUL-terminated malloc'd buffer. */
static char *base64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *out = malloc(n / 4 * 3 + 4);
    if (!out)
        return NULL;
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else if (c == '=' || isspace(c))
            continue;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

static ehr_status parse_entry(struct tx *t, struct txe *e, const json_t *entry)
{
    if (!json_is_object(entry))
        return fail(e, EHR_EINVAL, NULL, "an entry must be a JSON object");
    const json_t *req = json_object_get(entry, "request");
    if (!json_is_object(req))
        return fail(e, EHR_EINVAL, "request",
                    "every entry of a %s needs a request (method and url)",
                    t->batch ? "batch" : "transaction");
    const char *m = ehr_json_get_string(req, "method");
    e->method = -1;
    for (int k = 0; m && k < 5; k++)
        if (!strcmp(m, method_names[k]))
            e->method = k;
    if (!m || e->method < 0)
        return fail(e, EHR_EINVAL, "request.method",
                    "request.method must be GET, POST, PUT, PATCH or DELETE, not '%.20s'",
                    m ? m : "(missing)");
    const char *url = ehr_json_get_string(req, "url");
    if (!url || !*url)
        return fail(e, EHR_EINVAL, "request.url", "request.url is required");
    ehr_status st = parse_url(e, url);
    if (st)
        return st;
    e->full_url = ehr_json_get_string(entry, "fullUrl");
    e->if_none_exist = ehr_json_get_string(req, "ifNoneExist");
    if (e->if_none_exist) {
        const char *q = strchr(e->if_none_exist, '?');
        if (q)
            e->if_none_exist = q + 1;
    }
    const char *im = ehr_json_get_string(req, "ifMatch");
    if (im && (e->if_match = ehr_repo_parse_etag(im)) <= 0)
        return fail(e, EHR_ECONFLICT, "request.ifMatch",
                    "ifMatch '%.60s' is not a version ETag such as W/\"3\"", im);
    const json_t *res = json_object_get(entry, "resource");
    switch (e->method) {
    case M_POST:
        if (e->id[0] || e->query)
            return fail(e, EHR_EINVAL, "request.url",
                        "a POST entry's url is the resource type alone ('%s')", e->type);
        break;
    case M_PUT:
        if (!e->id[0] && !e->query)
            return fail(e, EHR_EINVAL, "request.url",
                        "a PUT entry's url is Type/id or Type?criteria");
        break;
    case M_DELETE:
    case M_PATCH:
        if (!e->id[0] && !e->query)
            return fail(e, EHR_EINVAL, "request.url",
                        "a %s entry's url is Type/id or Type?criteria", method_names[e->method]);
        break;
    default:
        break;
    }
    if (e->method == M_POST || e->method == M_PUT) {
        if (!json_is_object(res))
            return fail(e, EHR_EINVAL, "resource", "a %s entry needs a resource",
                        method_names[e->method]);
        /* references are rewritten in the resource: ours, or the caller's when
           it gave the Bundle away (in_place) */
        e->res = t->o.in_place ? json_incref((json_t *)res) : json_deep_copy(res);
        if (!e->res)
            return fail(e, EHR_ENOMEM, NULL, "out of memory");
        size_t before = e->issues.n;
        st = repo_validate(e->type, e->res, &e->issues, &e->err);
        relocate_issues(e, before);
        if (st)
            return failed_with(e, st);
        const char *bid = ehr_json_get_string(e->res, "id");
        if (e->method == M_PUT && e->id[0] && (!bid || strcmp(bid, e->id)))
            return fail(e, EHR_EINVAL, "resource.id",
                        "the resource's id ('%.64s') must be the id in request.url ('%s')",
                        bid ? bid : "missing", e->id);
    } else if (e->method == M_PATCH) {
        /* FHIR R4 3.1.0.11: a JSON Patch travels as a Binary */
        const char *rt = ehr_json_get_string(res, "resourceType");
        const char *ct = ehr_json_get_string(res, "contentType");
        const char *data = ehr_json_get_string(res, "data");
        if (!rt || strcmp(rt, "Binary") || !ct || strncmp(ct, "application/json-patch+json", 27) ||
            !data)
            return fail(e, EHR_EUNSUPPORTED, "resource",
                        "a PATCH entry carries a Binary with contentType "
                        "application/json-patch+json and the patch in data");
        size_t len;
        char *text = base64_decode(data, &len);
        if (!text)
            return fail(e, EHR_EINVAL, "resource.data", "Binary.data is not base64");
        ehr_err perr = {{0}};
        e->res = ehr_json_parse(text, len, &perr);
        free(text);
        if (!e->res || !json_is_array(e->res))
            return fail(e, EHR_EINVAL, "resource.data", "the patch is not a JSON array: %s",
                        perr.msg);
    }
    return EHR_OK;
}

/* -- inside the write job -- */

static ehr_status set_target(struct tx *t, struct txe *e)
{
    char ref[160];
    snprintf(ref, sizeof ref, "%s/%s", e->type, e->id);
    if (e->method != M_GET) {
        json_t *prev = json_object_get(t->seen, ref);
        if (prev)
            return fail(e, EHR_EINVAL, NULL,
                        "entries %s and %zu both change %s; a Bundle may change a resource "
                        "only once",
                        ehr_json_string(prev), e->i, ref);
        char idx[32];
        snprintf(idx, sizeof idx, "%zu", e->i);
        json_object_set_new(t->seen, ref, json_string(idx));
    }
    if (e->full_url && *e->full_url)
        json_object_set_new(t->urls, e->full_url, json_string(ref));
    return EHR_OK;
}

/* Which resource a POST, PUT, PATCH or DELETE entry is about. */
static ehr_status resolve(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    struct repo_matches m;
    ehr_status st;
    if (e->method == M_POST) {
        if (e->if_none_exist && *e->if_none_exist) {
            char key[1024];
            snprintf(key, sizeof key, "%s?%s", e->type, e->if_none_exist);
            const char *done = ehr_json_get_string(t->conds, key);
            if (done) {
                /* an earlier entry of this Bundle created it */
                snprintf(e->id, sizeof e->id, "%s", strchr(done, '/') + 1);
                e->matched = true;
                if (e->full_url && *e->full_url)
                    json_object_set_new(t->urls, e->full_url, json_string(done));
                return EHR_OK;
            }
            if ((st = repo_find_matches(c, t->ctx, e->type, e->if_none_exist, &m, &e->issues,
                                        &e->err)))
                return failed_with(e, st);
            if (m.n > 1)
                return fail(e, EHR_EMULTIPLE, "request.ifNoneExist",
                            "ifNoneExist matches more than one %s; make it more selective",
                            e->type);
            if (m.n == 1) {
                snprintf(e->id, sizeof e->id, "%s", m.id);
                e->matched = true;
            } else {
                ehr_id_new(e->id);
            }
            char ref[160];
            snprintf(ref, sizeof ref, "%s/%s", e->type, e->id);
            json_object_set_new(t->conds, key, json_string(ref));
        } else {
            ehr_id_new(e->id);
        }
        return set_target(t, e);
    }
    if (e->query && e->method != M_GET) {
        if ((st = repo_find_matches(c, t->ctx, e->type, e->query, &m, &e->issues, &e->err)))
            return failed_with(e, st);
        if (m.n > 1)
            return fail(e, EHR_EMULTIPLE, "request.url",
                        "the conditional %s matches more than one %s; make the criteria more "
                        "selective",
                        method_names[e->method], e->type);
        if (m.n == 1) {
            snprintf(e->id, sizeof e->id, "%s", m.id);
            const char *bid =
                e->res && e->method == M_PUT ? ehr_json_get_string(e->res, "id") : NULL;
            if (bid && strcmp(bid, m.id))
                return fail(e, EHR_EINVAL, "resource.id",
                            "the resource's id '%.64s' differs from the matching resource's "
                            "id '%s'",
                            bid, m.id);
        } else if (e->method == M_PUT) {
            const char *bid = ehr_json_get_string(e->res, "id");
            if (bid && valid_id(bid, strlen(bid)))
                snprintf(e->id, sizeof e->id, "%s", bid);
            else
                ehr_id_new(e->id);
        } else if (e->method == M_PATCH) {
            return fail(e, EHR_ENOTFOUND, "request.url", "the conditional PATCH matches no %s",
                        e->type);
        } else {
            return EHR_OK; /* conditional delete of nothing */
        }
    }
    return set_target(t, e);
}

/* Replace each "urn:uuid:..." / "urn:oid:..." of the Bundle inside narrative text. */
static ehr_status rewrite_text(struct tx *t, json_t *holder, const char *key, const char *s)
{
    if (!strstr(s, "urn:"))
        return EHR_OK;
    ehr_buf b = EHR_BUF_INIT;
    bool changed = false;
    const char *p = s;
    while (*p) {
        const char *u = strstr(p, "urn:");
        if (!u) {
            ehr_buf_puts(&b, p);
            break;
        }
        ehr_buf_append(&b, p, (size_t)(u - p));
        size_t n = strcspn(u, "\"'<> \t\r\n");
        char urn[160];
        const char *to = NULL;
        if (n < sizeof urn) {
            memcpy(urn, u, n);
            urn[n] = '\0';
            to = ehr_json_get_string(t->urls, urn);
        }
        if (to) {
            ehr_buf_puts(&b, to);
            changed = true;
        } else {
            ehr_buf_append(&b, u, n);
        }
        p = u + n;
    }
    ehr_status st = EHR_OK;
    if (changed && b.data)
        st = json_object_set_new(holder, key, json_stringn(b.data, b.len)) ? EHR_ENOMEM : EHR_OK;
    ehr_buf_free(&b);
    return st;
}

/* A conditional reference "Type?criteria": exactly one match, or an error. */
static ehr_status conditional_ref(struct tx *t, ehr_store_conn *c, struct txe *e, const char *ref,
                                  const char *where, const char **to)
{
    const char *done = ehr_json_get_string(t->conds, ref);
    if (done) {
        *to = done;
        return EHR_OK;
    }
    size_t tn = strcspn(ref, "?");
    char type[72];
    if (tn >= sizeof type)
        return fail(e, EHR_EINVAL, where, "'%.100s' is not a reference", ref);
    memcpy(type, ref, tn);
    type[tn] = '\0';
    struct repo_matches m;
    ehr_status st = repo_find_matches(c, t->ctx, type, ref + tn + 1, &m, &e->issues, &e->err);
    if (st)
        return failed_with(e, st);
    if (m.n != 1)
        return fail(e, m.n ? EHR_EMULTIPLE : EHR_EUNPROCESSABLE, where,
                    "the conditional reference '%.200s' matches %s %s; it must match exactly one",
                    ref, m.n ? "more than one" : "no", type);
    char out[160];
    snprintf(out, sizeof out, "%s/%s", type, m.id);
    json_object_set_new(t->conds, ref, json_string(out));
    *to = ehr_json_get_string(t->conds, ref);
    return EHR_OK;
}

static bool is_conditional_ref(const char *s)
{
    size_t tn = strcspn(s, "?/");
    if (s[tn] != '?' || tn == 0 || tn >= 72)
        return false;
    char type[72];
    memcpy(type, s, tn);
    type[tn] = '\0';
    return repo_check_type(type, NULL) == EHR_OK;
}

/* Walk v (at path), rewriting references. */
static ehr_status rewrite(struct tx *t, ehr_store_conn *c, struct txe *e, json_t *v, ehr_buf *path,
                          int depth)
{
    if (depth > 64)
        return EHR_OK; /* validation refuses deeper nesting */
    size_t mark = path->len;
    ehr_status st = EHR_OK;
    if (json_is_array(v)) {
        size_t k;
        json_t *x;
        json_array_foreach(v, k, x)
        {
            if (json_is_object(x) || json_is_array(x)) {
                path->len = mark;
                ehr_buf_printf(path, "[%zu]", k);
                if ((st = rewrite(t, c, e, x, path, depth + 1)))
                    break;
            }
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, x)
        {
            path->len = mark;
            ehr_buf_printf(path, ".%s", k);
            if (ehr_json_is_string(x) && !strcmp(k, "reference")) {
                const char *s = ehr_json_string(x);
                const char *to = ehr_json_get_string(t->urls, s);
                if (!to && is_conditional_ref(s) &&
                    (st = conditional_ref(t, c, e, s, path->data, &to)))
                    break;
                if (!to && (!strncmp(s, "urn:uuid:", 9) || !strncmp(s, "urn:oid:", 8))) {
                    st = fail(e, EHR_EUNPROCESSABLE, path->data,
                              "'%.100s' is not the fullUrl of any entry of the Bundle%s", s,
                              t->batch ? " processed before this one" : "");
                    break;
                }
                if (to && json_object_set_new(v, k, json_string(to))) {
                    st = EHR_ENOMEM;
                    break;
                }
            } else if (ehr_json_is_string(x) && !strcmp(k, "div")) {
                if ((st = rewrite_text(t, v, k, ehr_json_string(x))))
                    break;
            } else if (json_is_object(x) || json_is_array(x)) {
                if ((st = rewrite(t, c, e, x, path, depth + 1)))
                    break;
            }
        }
    }
    path->len = mark;
    if (path->data)
        path->data[mark] = '\0';
    return st;
}

static ehr_status rewrite_entry(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    if (!e->res || e->method == M_PATCH)
        return EHR_OK;
    ehr_buf path = EHR_BUF_INIT;
    ehr_buf_printf(&path, "resource");
    ehr_status st = rewrite(t, c, e, e->res, &path, 0);
    ehr_buf_free(&path);
    if (st && !e->st)
        return fail(e, st, NULL, "out of memory");
    return st;
}

/* Read the current version of a matched resource into out (and audit the read). */
static ehr_status read_matched(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    ehr_store_rec rec;
    ehr_status st = EHR_STORE_CALL(c, current, e->type, e->id, &rec, &e->out.body, &e->err);
    if (st)
        return failed_with(e, st);
    snprintf(e->out.type, sizeof e->out.type, "%s", e->type);
    snprintf(e->out.id, sizeof e->out.id, "%s", e->id);
    e->out.version = rec.version;
    e->out.last_updated = rec.last_updated;
    e->out.unchanged = true;
    struct repo_event ev = {.action = "read",
                            .type = e->type,
                            .id = e->id,
                            .version = rec.version,
                            .n = -1,
                            .query = e->if_none_exist};
    return repo_audit_in(c, t->ctx, &ev, repo_next_time(t->r), &e->err);
}

/* A PUT whose content equals the current version's writes nothing (import re-runs). */
static bool same_as_current(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    ehr_store_rec rec;
    ehr_buf now = EHR_BUF_INIT, want = EHR_BUF_INIT;
    bool same = false;
    if (!EHR_STORE_CALL(c, current, e->type, e->id, &rec, &now, NULL) && !rec.deleted &&
        (!e->if_match || e->if_match == rec.version) &&
        !repo_serialise(e->type, e->id, rec.version, rec.last_updated, e->res, &want))
        same = now.len == want.len && !memcmp(now.data, want.data, now.len);
    if (same) {
        snprintf(e->out.type, sizeof e->out.type, "%s", e->type);
        snprintf(e->out.id, sizeof e->out.id, "%s", e->id);
        e->out.version = rec.version;
        e->out.last_updated = rec.last_updated;
        e->out.unchanged = true;
        ehr_buf_free(&e->out.body);
        e->out.body = now;
        now = (ehr_buf)EHR_BUF_INIT;
    }
    ehr_buf_free(&now);
    ehr_buf_free(&want);
    (void)t;
    return same;
}

static ehr_status write_entry(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    ehr_status st = EHR_OK;
    switch (e->method) {
    case M_DELETE:
        if (e->query && !e->id[0]) { /* conditional delete of nothing */
            snprintf(e->out.type, sizeof e->out.type, "%s", e->type);
            e->out.deleted = true;
            return EHR_OK;
        }
        st = repo_delete_in(t->r, c, t->ctx, e->type, e->id, e->if_match, &e->out, &e->err);
        break;
    case M_POST:
        if (e->matched)
            return read_matched(t, c, e);
        st = repo_create_in(t->r, c, t->ctx, e->type, e->id, "POST", e->res, &e->out, &e->err);
        break;
    case M_PUT:
        if (t->o.skip_unchanged && same_as_current(t, c, e))
            return EHR_OK;
        st = repo_update_in(t->r, c, t->ctx, e->type, e->id, e->res, e->if_match, &e->out, &e->err);
        break;
    case M_PATCH:
        st = repo_patch_in(t->r, c, t->ctx, e->type, e->id, e->res, e->if_match, &e->out,
                           &e->issues, &e->err);
        break;
    default:
        break;
    }
    return st ? failed_with(e, st) : EHR_OK;
}

static ehr_status search_row(void *p, const ehr_store_rec *rec)
{
    json_t *entries = p;
    json_t *res = ehr_json_parse(rec->content, rec->content_len, NULL);
    if (!res)
        return EHR_EINTERNAL;
    json_t *en = json_object();
    json_object_set_new(en, "resource", res);
    json_object_set_new(en, "search", json_pack("{s:s}", "mode", "match"));
    json_array_append_new(entries, en);
    return EHR_OK;
}

/* GET entries: a read, a vread or a search, seeing the writes before it. */
static ehr_status get_entry(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    ehr_status st;
    if (e->id[0]) {
        ehr_repo_limit lim;
        repo_seen seen;
        ehr_store_rec rec;
        if ((st = repo_decide(t->ctx, EHR_ACCESS_READ, e->type, &lim, &e->err)))
            return failed_with(e, st);
        st = e->vid
                 ? EHR_STORE_CALL(c, version, e->type, e->id, e->vid, &rec, &e->out.body, &e->err)
                 : EHR_STORE_CALL(c, current, e->type, e->id, &rec, &e->out.body, &e->err);
        if (!st &&
            !(st = repo_check_visible(c, t->ctx, &lim, e->type, e->id, e->vid, &seen, &e->err)) &&
            !seen.visible)
            st = EHR_ENOTFOUND;
        if (st == EHR_ENOTFOUND)
            return fail(e, st, "request.url", "%s/%s is not known", e->type, e->id);
        if (st)
            return failed_with(e, st);
        snprintf(e->out.type, sizeof e->out.type, "%s", e->type);
        snprintf(e->out.id, sizeof e->out.id, "%s", e->id);
        e->out.version = rec.version;
        e->out.last_updated = rec.last_updated;
        struct repo_event ev = {.action = e->vid ? "vread" : "read",
                                .type = e->type,
                                .id = e->id,
                                .version = rec.version,
                                .n = -1,
                                .seen = &seen};
        if ((st = repo_audit_in(c, t->ctx, &ev, repo_next_time(t->r), &e->err)))
            return failed_with(e, st);
        if (rec.deleted)
            return fail(e, EHR_EGONE, "request.url", "%s/%s was deleted", e->type, e->id);
        e->got = ehr_json_parse(e->out.body.data, e->out.body.len, NULL);
        return e->got ? EHR_OK : fail(e, EHR_EINTERNAL, NULL, "stored content unreadable");
    }
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return fail(e, EHR_ENOMEM, NULL, "out of memory");
    struct ehr_search_param *ps = NULL;
    size_t n = 0;
    ehr_search s;
    const ehr_store_access *acc = NULL;
    bool glass = false;
    st = repo_query_access(t->ctx, EHR_ACCESS_SEARCH, e->type, a, &acc, &glass, &e->err);
    if (!st && e->query)
        st = ehr_search_split_query(e->query, a, &ps, &n);
    json_t *entries = json_array();
    size_t total = 0;
    if (!st) {
        size_t before = e->issues.n;
        st = ehr_search_parse(e->type, ps, n, false, a, &s, &e->issues);
        /* warnings about ignored parameters are not failures */
        if (!st) {
            while (e->issues.n > before) {
                struct ehr_fhir_issue *it = &e->issues.items[--e->issues.n];
                free(it->expression);
                free(it->message);
            }
            s.q.access = acc;
            st = EHR_STORE_CALL(c, search, &s.q, search_row, entries, &total, &e->err);
            if (!st) {
                struct repo_event ev = {.action = "search",
                                        .type = e->type,
                                        .query = e->query ? e->query : "",
                                        .n = (long long)json_array_size(entries),
                                        .glass = glass};
                st = repo_audit_in(c, t->ctx, &ev, repo_next_time(t->r), &e->err);
            }
        }
        ehr_search_done(&s);
    }
    ehr_arena_free(&a);
    if (st) {
        json_decref(entries);
        return failed_with(e, st);
    }
    e->got = json_pack("{s:s,s:s,s:I,s:o}", "resourceType", "Bundle", "type", "searchset", "total",
                       (json_int_t)total, "entry", entries);
    /* totals are JSON numbers: keep them in the house form */
    json_object_set_new(e->got, "total", ehr_json_integer((long long)total));
    return EHR_OK;
}

/* Undo a batch entry alone: its own savepoint. */
static ehr_status batch_step(struct tx *t, ehr_store_conn *c, struct txe *e,
                             ehr_status (*step)(struct tx *, ehr_store_conn *, struct txe *))
{
    if (e->skip || e->st)
        return EHR_OK;
    ehr_err err = {{0}};
    ehr_status st = EHR_STORE_CALL(c, savepoint, &err);
    if (st)
        return st;
    ehr_status es = step(t, c, e);
    if (es)
        return EHR_STORE_CALL(c, rollback_to, &err);
    return EHR_STORE_CALL(c, release, &err);
}

static ehr_status batch_entry(struct tx *t, ehr_store_conn *c, struct txe *e)
{
    ehr_status st;
    if (e->method == M_GET)
        return get_entry(t, c, e);
    if ((st = resolve(t, c, e)) || (st = rewrite_entry(t, c, e)))
        return st;
    return write_entry(t, c, e);
}

static ehr_status do_tx(ehr_repo *r, ehr_store_conn *c, void *arg, ehr_err *err)
{
    struct tx *t = arg;
    (void)r;
    static const int order[] = {M_DELETE, M_POST, M_PUT, M_PATCH, M_GET};
    if (t->batch) {
        /* FHIR R4 3.1.0.11.2: each entry on its own; same order as a transaction */
        for (size_t k = 0; k < 5; k++)
            for (size_t i = 0; i < t->n; i++)
                if (t->e[i].method == order[k]) {
                    ehr_status st = batch_step(t, c, &t->e[i], batch_entry);
                    if (st)
                        return ehr_err_set(err, st, "the batch could not be stored");
                }
        return EHR_OK;
    }
    /* FHIR R4 3.1.0.11.2: DELETE, POST, PUT/PATCH, GET; references after ids */
    for (size_t i = 0; i < t->n; i++) {
        struct txe *e = &t->e[i];
        if (e->method == M_DELETE && (resolve(t, c, e) || write_entry(t, c, e)))
            goto failed;
    }
    for (size_t k = 1; k < 4; k++)
        for (size_t i = 0; i < t->n; i++)
            if (t->e[i].method == order[k] && resolve(t, c, &t->e[i])) {
                t->failed = &t->e[i];
                goto failed_at;
            }
    for (size_t i = 0; i < t->n; i++)
        if (rewrite_entry(t, c, &t->e[i])) {
            t->failed = &t->e[i];
            goto failed_at;
        }
    for (size_t k = 1; k < 5; k++)
        for (size_t i = 0; i < t->n; i++) {
            struct txe *e = &t->e[i];
            if (e->method != order[k])
                continue;
            if (k == 4 ? get_entry(t, c, e) : write_entry(t, c, e)) {
                t->failed = e;
                goto failed_at;
            }
        }
    return EHR_OK;
failed:
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].st) {
            t->failed = &t->e[i];
            break;
        }
failed_at:
    *err = t->failed->err;
    return t->failed->st;
}

/* -- the answer -- */

static json_t *entry_response(struct tx *t, struct txe *e)
{
    json_t *en = json_object();
    json_t *resp = json_object();
    if (e->st) {
        json_object_set_new(resp, "status", json_string(status_line(e->st)));
        json_object_set_new(resp, "outcome", ehr_fhir_outcome_new(&e->issues));
        json_object_set_new(en, "response", resp);
        return en;
    }
    const ehr_repo_out *o = &e->out;
    const char *status = "200 OK";
    if (e->method == M_DELETE)
        status = "204 No Content";
    else if (o->created && !o->unchanged)
        status = "201 Created";
    json_object_set_new(resp, "status", json_string(status));
    if (o->version > 0 && e->method != M_GET) {
        char loc[512], etag[48], lu[EHR_INSTANT_LEN];
        snprintf(loc, sizeof loc, "%s%s%s/%s/_history/%lld", t->o.base ? t->o.base : "",
                 t->o.base ? "/" : "", o->type, o->id, (long long)o->version);
        snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)o->version);
        ehr_time_format(o->last_updated, lu);
        if (e->method != M_DELETE) {
            char full[400];
            snprintf(full, sizeof full, "%s%s%s/%s", t->o.base ? t->o.base : "",
                     t->o.base ? "/" : "", o->type, o->id);
            json_object_set_new(en, "fullUrl", json_string(full));
            json_object_set_new(resp, "location", json_string(loc));
        }
        json_object_set_new(resp, "etag", json_string(etag));
        json_object_set_new(resp, "lastModified", json_string(lu));
        if (t->o.representation && o->body.len && e->method != M_DELETE) {
            json_t *res = ehr_json_parse(o->body.data, o->body.len, NULL);
            if (res)
                json_object_set_new(en, "resource", res);
        }
    } else if (e->method == M_GET) {
        if (o->version > 0) {
            char etag[48];
            snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)o->version);
            json_object_set_new(resp, "etag", json_string(etag));
        }
        if (e->got)
            json_object_set(en, "resource", e->got);
    }
    json_object_set_new(en, "response", resp);
    return en;
}

static json_t *response_bundle(struct tx *t)
{
    json_t *entries = json_array();
    for (size_t i = 0; i < t->n; i++)
        json_array_append_new(entries, entry_response(t, &t->e[i]));
    char id[EHR_ID_LEN], now[EHR_INSTANT_LEN];
    ehr_id_new(id);
    ehr_time_now(now);
    return json_pack("{s:s,s:s,s:{s:s},s:s,s:o}", "resourceType", "Bundle", "id", id, "meta",
                     "lastUpdated", now, "type",
                     t->batch ? "batch-response" : "transaction-response", "entry", entries);
}

static void tx_free(struct tx *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct txe *e = &t->e[i];
        free(e->query);
        json_decref(e->res);
        json_decref(e->got);
        ehr_fhir_issues_free(&e->issues);
        ehr_repo_out_free(&e->out);
    }
    free(t->e);
    json_decref(t->urls);
    json_decref(t->conds);
    json_decref(t->seen);
}

/* Copy an entry's issues to the caller's list. */
static void give_issues(const struct txe *e, ehr_fhir_issues *issues)
{
    for (size_t k = 0; issues && k < e->issues.n; k++) {
        const struct ehr_fhir_issue *it = &e->issues.items[k];
        ehr_fhir_issue_add(issues, it->severity, it->code, it->expression, "%s", it->message);
    }
}

ehr_status ehr_repo_transaction(ehr_repo *r, const ehr_repo_ctx *ctx, const json_t *bundle,
                                const ehr_repo_tx_opts *opts, json_t **response,
                                ehr_fhir_issues *issues, ehr_err *err)
{
    *response = NULL;
    struct tx t = {.r = r, .ctx = ctx};
    if (opts)
        t.o = *opts;
    size_t max = t.o.max_entries ? t.o.max_entries : EHR_REPO_MAX_BUNDLE_ENTRIES;
    const char *rt = ehr_json_get_string(bundle, "resourceType");
    if (!json_is_object(bundle) || !rt || strcmp(rt, "Bundle")) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "invalid", "Bundle.resourceType",
                           "send a Bundle of type transaction or batch");
        return ehr_err_set(err, EHR_EINVAL, "not a Bundle");
    }
    const char *type = ehr_json_get_string(bundle, "type");
    if (!type || (strcmp(type, "transaction") && strcmp(type, "batch"))) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "invalid", "Bundle.type",
                           "Bundle.type is '%.40s'; only transaction and batch Bundles can be "
                           "processed",
                           type ? type : "(missing)");
        return ehr_err_set(err, EHR_EINVAL, "not a transaction or batch");
    }
    t.batch = !strcmp(type, "batch");
    const json_t *entries = json_object_get(bundle, "entry");
    if (entries && !json_is_array(entries)) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "structure", "Bundle.entry",
                           "Bundle.entry must be an array");
        return ehr_err_set(err, EHR_EINVAL, "entry is not an array");
    }
    t.n = json_array_size(entries);
    if (t.n > max) {
        ehr_fhir_issue_add(issues, EHR_SEV_ERROR, "too-costly", "Bundle.entry",
                           "the Bundle has %zu entries; this server takes at most %zu in one "
                           "Bundle (ehr serve --max-bundle-entries)",
                           t.n, max);
        return ehr_err_set(err, EHR_ELIMIT, "too many entries");
    }
    t.e = calloc(t.n ? t.n : 1, sizeof *t.e);
    t.urls = json_object();
    t.conds = json_object();
    t.seen = json_object();
    if (!t.e || !t.urls || !t.conds || !t.seen) {
        tx_free(&t);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    /* outside the writer's lock: parse and validate every entry */
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < t.n; i++) {
        struct txe *e = &t.e[i];
        e->i = i;
        if (parse_entry(&t, e, json_array_get(entries, i))) {
            if (!t.batch) {
                t.failed = e;
                st = e->st;
                break;
            }
            e->skip = true;
        }
    }
    if (!st)
        st = repo_run_write(r, do_tx, &t, err);
    else if (err)
        *err = t.failed->err;
    if (st && !t.batch && t.failed) {
        give_issues(t.failed, issues);
        /* refusals are audited outside the rolled-back job */
        if (t.failed->st == EHR_EFORBIDDEN)
            repo_after_write(r, ctx, st, "transaction", t.failed->type, NULL, err);
        st = t.failed->st;
    }
    if (!st)
        *response = response_bundle(&t);
    if (!st && !*response)
        st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
    tx_free(&t);
    return st;
}
