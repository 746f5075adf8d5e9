/*
 * request.c - the request-target (RFC 7230 5.3) taken apart: the path
 * percent-decoded, the query kept as sent and split into decoded
 * parameters in order. Also the accessors handlers use on a request.
 *
 * We parse the target ourselves, from the copy MHD hands to the URI log
 * callback before it unescapes anything, because MHD's own decoding keeps
 * neither the raw query nor a guaranteed order, and would let "%00" cut a
 * value short.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t ehr_http__decode(const char *s, size_t len, bool plus_space, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            if (c == '\0')
                return SIZE_MAX;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}

static ehr_status reject(struct req_ctx *rc, int status, const char *msg)
{
    rc->bad_status = status;
    rc->bad_msg = msg;
    return EHR_EINVAL;
}

/* A decoded path with a "." or ".." segment could escape a prefix. */
static bool has_dot_segment(const char *p)
{
    while (*p) {
        const char *seg = p + (*p == '/');
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return true;
        if (!end)
            break;
        p = end;
    }
    return false;
}

static ehr_status parse_query(struct req_ctx *rc, const char *q, size_t qlen)
{
    ehr_arena *a = rc->req.arena;
    size_t pieces = 1;
    for (size_t i = 0; i < qlen; i++)
        pieces += q[i] == '&';
    struct ehr_http_param *params = ehr_arena_alloc(a, pieces * sizeof *params);
    /* every decoded name and value fits in its raw text plus a NUL */
    char *out = ehr_arena_alloc(a, qlen + 2 * pieces);
    if (!params || !out)
        return reject(rc, 500, "out of memory");
    size_t n = 0;
    const char *p = q, *end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            const char *name_end = eq ? eq : stop;
            size_t len = ehr_http__decode(p, (size_t)(name_end - p), true, out);
            if (len == SIZE_MAX)
                return reject(rc, 400, "the query contains an encoded NUL byte");
            params[n].name = out;
            out += len + 1;
            if (eq) {
                len = ehr_http__decode(eq + 1, (size_t)(stop - eq - 1), true, out);
                if (len == SIZE_MAX)
                    return reject(rc, 400, "the query contains an encoded NUL byte");
                params[n].value = out;
                out += len + 1;
            } else {
                params[n].value = "";
            }
            n++;
        }
        p = stop + 1;
    }
    rc->req.params = params;
    rc->req.n_params = n;
    return EHR_OK;
}

ehr_status ehr_http__parse_target(struct req_ctx *rc, const char *uri)
{
    ehr_arena *a = rc->req.arena;
    rc->req.path = "/";
    rc->req.raw_query = "";
    rc->req.params = NULL;
    rc->req.n_params = 0;
    if (!uri || !*uri)
        return reject(rc, 400, "empty request target");
    if (strcmp(uri, "*") == 0) { /* OPTIONS * */
        rc->req.path = "*";
        return EHR_OK;
    }
    const char *p = uri;
    /* absolute-form (RFC 7230 5.3.2): skip scheme and authority */
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strstr(p, "//") + 2;
        p += strcspn(p, "/?#");
    } else if (*p != '/') {
        return reject(rc, 400, "the request target must begin with '/'");
    }
    size_t path_len = strcspn(p, "?#");
    const char *q = p[path_len] == '?' ? p + path_len + 1 : NULL;
    size_t qlen = q ? strcspn(q, "#") : 0;

    if (path_len > 0) {
        char *path = ehr_arena_alloc(a, path_len + 1);
        if (!path)
            return reject(rc, 500, "out of memory");
        if (ehr_http__decode(p, path_len, false, path) == SIZE_MAX)
            return reject(rc, 400, "the path contains an encoded NUL byte");
        if (has_dot_segment(path))
            return reject(rc, 400, "the path contains a '.' or '..' segment");
        rc->req.path = path;
    }
    if (qlen > 0) {
        char *raw = ehr_arena_strndup(a, q, qlen);
        if (!raw)
            return reject(rc, 500, "out of memory");
        rc->req.raw_query = raw;
        return parse_query(rc, raw, qlen);
    }
    return EHR_OK;
}

const char *ehr_http_header(const ehr_http_request *req, const char *name)
{
    const struct req_ctx *rc = req->internal;
    if (!rc || !rc->conn)
        return NULL;
    return MHD_lookup_connection_value(rc->conn, MHD_HEADER_KIND, name);
}

const char *ehr_http_param(const ehr_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_params; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

ehr_status ehr_http_set_header(ehr_http_request *req, ehr_http_response *res, const char *name,
                               const char *value)
{
    /* CR or LF would let a value smuggle in headers of its own */
    if (!name || !value || !*name || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return EHR_EINVAL;
    char *v = ehr_arena_strdup(req->arena, value);
    if (!v)
        return EHR_ENOMEM;
    if (strcasecmp(name, "Content-Type") == 0) {
        res->content_type = v;
        return EHR_OK;
    }
    if (res->n_headers >= sizeof res->headers / sizeof res->headers[0])
        return EHR_ELIMIT;
    char *n = ehr_arena_strdup(req->arena, name);
    if (!n)
        return EHR_ENOMEM;
    res->headers[res->n_headers].name = n;
    res->headers[res->n_headers].value = v;
    res->n_headers++;
    return EHR_OK;
}
