/*
 * response.c - from an ehr_http_response to bytes on the wire: CORS
 * (Fetch standard, "CORS protocol"), gzip content coding (RFC 7231
 * 3.1.2.2, 5.3.4), and handing the body's memory to MHD without a copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <zlib.h>

#include "http/http_int.h"

#define EXPOSE_HEADERS "Location, ETag, Last-Modified, Content-Location"
#define ALLOW_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#define ALLOW_HEADERS                                                                              \
    "Authorization, Content-Type, Accept, If-Match, If-None-Exist, If-None-Match, "                \
    "If-Modified-Since, Prefer"
#define PREFLIGHT_MAX_AGE "86400"

/* ---- CORS ---- */

/*
 * The value for Access-Control-Allow-Origin when origin may read our
 * answers, else NULL. With a list of origins the request's own Origin is
 * echoed (the header takes a single origin, never a list).
 */
static const char *allowed_origin(const ehr_http_server *s, const char *origin)
{
    if (!origin)
        return NULL;
    const char *list = s->cfg.cors_origins;
    if (strcmp(list, "*") == 0)
        return "*";
    size_t olen = strlen(origin);
    const char *p = list;
    while (*p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m > 0 && m == olen && strncasecmp(p, origin, m) == 0)
            return origin;
        p += n;
    }
    return NULL;
}

static bool cors_is_list(const ehr_http_server *s)
{
    return strcmp(s->cfg.cors_origins, "*") != 0;
}

bool ehr_http__is_preflight(const struct req_ctx *rc)
{
    return strcmp(rc->req.method, "OPTIONS") == 0 &&
           MHD_lookup_connection_value(rc->conn, MHD_HEADER_KIND, "Origin") &&
           MHD_lookup_connection_value(rc->conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
}

void ehr_http__preflight(struct req_ctx *rc, ehr_http_response *res)
{
    /* ehr_http__send adds Access-Control-Allow-Origin (and Vary: Origin) */
    res->status = 204;
    const char *origin = MHD_lookup_connection_value(rc->conn, MHD_HEADER_KIND, "Origin");
    if (!allowed_origin(rc->srv, origin))
        return; /* without the headers the browser refuses; nothing else to say */
    ehr_http_set_header(&rc->req, res, "Access-Control-Allow-Methods", ALLOW_METHODS);
    ehr_http_set_header(&rc->req, res, "Access-Control-Allow-Headers", ALLOW_HEADERS);
    ehr_http_set_header(&rc->req, res, "Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
}

/* ---- gzip ---- */

struct gz_stream {
    struct gz_stream *next;
    z_stream z;
};

static struct gz_stream *gz_get(ehr_http_server *s)
{
    pthread_mutex_lock(&s->gz_lock);
    struct gz_stream *g = s->gz_free;
    if (g)
        s->gz_free = g->next;
    pthread_mutex_unlock(&s->gz_lock);
    if (g) {
        if (deflateReset(&g->z) == Z_OK)
            return g;
        deflateEnd(&g->z);
        free(g);
    }
    g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    /* windowBits 15 + 16: a gzip wrapper rather than zlib's */
    if (deflateInit2(&g->z, EHR_HTTP_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        free(g);
        return NULL;
    }
    return g;
}

static void gz_put(ehr_http_server *s, struct gz_stream *g)
{
    pthread_mutex_lock(&s->gz_lock);
    g->next = s->gz_free;
    s->gz_free = g;
    pthread_mutex_unlock(&s->gz_lock);
}

void ehr_http__gz_cleanup(ehr_http_server *s)
{
    struct gz_stream *g = s->gz_free;
    while (g) {
        struct gz_stream *n = g->next;
        deflateEnd(&g->z);
        free(g);
        g = n;
    }
    s->gz_free = NULL;
}

/* Compress data; a malloc'ed result, or NULL when that failed or did not pay. */
static char *gzip(ehr_http_server *s, const char *data, size_t len, size_t *out_len)
{
    struct gz_stream *g = gz_get(s);
    if (!g)
        return NULL;
    uLong bound = deflateBound(&g->z, (uLong)len);
    char *out = malloc(bound);
    if (!out) {
        gz_put(s, g);
        return NULL;
    }
    g->z.next_in = (Bytef *)data;
    g->z.avail_in = (uInt)len;
    g->z.next_out = (Bytef *)out;
    g->z.avail_out = (uInt)bound;
    int rc = deflate(&g->z, Z_FINISH);
    size_t n = (size_t)(bound - g->z.avail_out);
    gz_put(s, g);
    if (rc != Z_STREAM_END || n >= len) {
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

/* Is a q-value (RFC 7231 5.3.1) zero? "0", "0.", "0.000" are. */
static bool q_is_zero(const char *q, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (q[i] >= '1' && q[i] <= '9')
            return false;
    return true;
}

/* Does Accept-Encoding allow gzip? (RFC 7231 5.3.4) */
static bool accepts_gzip(const char *ae)
{
    if (!ae)
        return false;
    int gz = -1, star = -1; /* -1 unmentioned, 0 refused, 1 accepted */
    const char *p = ae;
    while (*p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t name_len = strcspn(p, " \t;,");
        int ok = 1;
        const char *semi = memchr(p, ';', n);
        if (semi) {
            const char *q = semi + 1;
            q += strspn(q, " \t");
            if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=')
                ok = !q_is_zero(q + 2, n - (size_t)(q + 2 - p));
        }
        if ((name_len == 4 && strncasecmp(p, "gzip", 4) == 0) ||
            (name_len == 6 && strncasecmp(p, "x-gzip", 6) == 0))
            gz = ok;
        else if (name_len == 1 && p[0] == '*')
            star = ok;
        p += n;
    }
    return gz >= 0 ? gz == 1 : star == 1;
}

/* Text-like media types gain from gzip; images, archives and the like do not. */
static bool compressible(const char *ct)
{
    if (!ct)
        return false;
    if (strncasecmp(ct, "text/", 5) == 0)
        return true;
    return strcasestr(ct, "json") || strcasestr(ct, "xml") || strcasestr(ct, "javascript");
}

static bool has_header(const ehr_http_response *res, const char *name)
{
    for (size_t i = 0; i < res->n_headers; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return true;
    return false;
}

/* ---- errors and sending ---- */

void ehr_http__error(ehr_http_server *s, int status, const char *message, ehr_http_response *res)
{
    res->status = status;
    res->content_type = NULL;
    ehr_buf_reset(&res->body);
    if (s->cfg.error_body) {
        s->cfg.error_body(s->cfg.error_ctx, status, message, res);
        if (res->body.len > 0 || res->content_type)
            return;
    }
    res->content_type = "application/json";
    if (ehr_buf_printf(&res->body, "{\"status\":%d,\"message\":\"", status) ||
        ehr_buf_json_escape(&res->body, message, strlen(message)) ||
        ehr_buf_puts(&res->body, "\"}"))
        ehr_buf_reset(&res->body);
}

enum MHD_Result ehr_http__send(struct req_ctx *rc, ehr_http_response *res)
{
    ehr_http_server *s = rc->srv;
    int status = res->status;
    if (status < 100 || status > 599) {
        /* a handler bug; say so rather than put garbage on the wire */
        ehr_http__error(s, 500, "the handler gave an invalid status", res);
        status = 500;
    }
    const char *origin = MHD_lookup_connection_value(rc->conn, MHD_HEADER_KIND, "Origin");
    const char *allow_origin = allowed_origin(s, origin);

    char *data = NULL;
    size_t len = 0;
    bool vary_ae = false, gzipped = false;
    /* RFC 7230 3.3.3: 1xx, 204 and 304 answers have no body */
    if (status >= 200 && status != 204 && status != 304 && res->body.len > 0) {
        if (res->body.len >= EHR_HTTP_GZIP_MIN && compressible(res->content_type) &&
            !has_header(res, "Content-Encoding")) {
            vary_ae = true;
            const char *ae =
                MHD_lookup_connection_value(rc->conn, MHD_HEADER_KIND, "Accept-Encoding");
            if (accepts_gzip(ae)) {
                data = gzip(s, res->body.data, res->body.len, &len);
                gzipped = data != NULL;
            }
        }
        if (gzipped)
            ehr_buf_free(&res->body);
        else
            data = ehr_buf_steal(&res->body, &len);
    } else {
        ehr_buf_free(&res->body);
    }

    struct MHD_Response *r;
    if (res->file_fd > 0 && status == 200) {
        /* a large download (bulk export files): from the disk, memory stays flat */
        free(data);
        r = MHD_create_response_from_fd64(res->file_size, res->file_fd);
        if (!r)
            close(res->file_fd);
        res->file_fd = 0;
    } else if (len > 0) {
        if (res->file_fd > 0)
            close(res->file_fd);
        res->file_fd = 0;
        /* MHD takes the malloc'ed bytes and frees them once sent: no copy */
        r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(data);
    } else {
        free(data);
        if (res->file_fd > 0)
            close(res->file_fd);
        res->file_fd = 0;
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!r)
        return MHD_NO;

    if (res->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
    for (size_t i = 0; i < res->n_headers; i++)
        MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
    if (gzipped)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (vary_ae)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (allow_origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", allow_origin);
        MHD_add_response_header(r, "Access-Control-Expose-Headers", EXPOSE_HEADERS);
    }
    /* with a list, Access-Control-Allow-Origin depends on Origin: tell caches,
       also on answers to requests that had none */
    if (cors_is_list(s))
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");

    enum MHD_Result ok = MHD_queue_response(rc->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        rc->answered = true;
        atomic_fetch_add_explicit(&s->counts[status / 100], 1, memory_order_relaxed);
    }
    return ok;
}
