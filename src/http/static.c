/*
 * static.c - the web apps' files from a folder (see static.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http/static.h"

#define MAX_PATH_IN 1024
#define MAX_FILE (16u << 20)

/* Pages may load scripts, styles, images and data from this origin only;
   the QR code of the MFA enrolment is a data: image. */
#define HTML_CSP                                                                                   \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "                 \
    "frame-ancestors 'none'"

struct ehr_http_static {
    char root[PATH_MAX];
    size_t root_len;
};

ehr_http_static *ehr_http_static_new(const char *root)
{
    struct stat st;
    char buf[PATH_MAX];
    if (!root || !realpath(root, buf) || stat(buf, &st) || !S_ISDIR(st.st_mode))
        return NULL;
    ehr_http_static *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->root, sizeof s->root, "%s", buf);
    s->root_len = strlen(s->root);
    return s;
}

void ehr_http_static_free(ehr_http_static **s)
{
    if (s) {
        free(*s);
        *s = NULL;
    }
}

const char *ehr_http_static_root(const ehr_http_static *s)
{
    return s->root;
}

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"webmanifest", "application/manifest+json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"woff2", "font/woff2"},
};

const char *ehr_http_content_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

/* A path we are willing to look up: no hidden or dot segments, no
   backslashes or control characters, bounded. */
static bool path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > MAX_PATH_IN || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            return false;
        if (c == '/' && (p[i + 1] == '.' || p[i + 1] == '/'))
            return false;
    }
    return true;
}

static bool api_path(const char *p)
{
    return (!strncmp(p, "/fhir", 5) && (p[5] == '\0' || p[5] == '/')) ||
           !strncmp(p, "/oauth/", 7) || !strncmp(p, "/auth/", 6) ||
           !strncmp(p, "/.well-known/", 13);
}

static void not_found(ehr_http_response *res)
{
    res->status = 404;
    res->content_type = "text/plain; charset=utf-8";
    ehr_buf_reset(&res->body);
    ehr_buf_puts(&res->body, "not found\n");
}

/* Does an If-None-Match list name etag (or "*")? RFC 7232 3.2. */
static bool etag_matches(const char *inm, const char *etag)
{
    size_t el = strlen(etag);
    const char *p = inm;
    while (*p) {
        p += strspn(p, " \t,");
        if (*p == '*')
            return true;
        if (!strncmp(p, "W/", 2))
            p += 2; /* weak comparison for GET */
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == el && !strncmp(p, etag, el))
            return true;
        p += n;
    }
    return false;
}

int ehr_http_static_handle(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    ehr_http_static *s = ctx;
    const char *p = req->path;
    if (api_path(p))
        return EHR_HTTP_NEXT;
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        res->status = 405;
        ehr_http_set_header(req, res, "Allow", "GET, HEAD");
        res->content_type = "text/plain; charset=utf-8";
        ehr_buf_reset(&res->body);
        ehr_buf_puts(&res->body, "method not allowed\n");
        return EHR_HTTP_HANDLED;
    }
    if (!path_ok(p)) {
        not_found(res);
        return EHR_HTTP_HANDLED;
    }
    size_t n = strlen(p);
    const char *rel = p[n - 1] == '/' ? ehr_arena_printf(req->arena, "%sindex.html", p) : p;
    char want[PATH_MAX], real[PATH_MAX];
    if (!rel || (size_t)snprintf(want, sizeof want, "%s%s", s->root, rel) >= sizeof want ||
        !realpath(want, real) || strncmp(real, s->root, s->root_len) ||
        (real[s->root_len] != '/' && real[s->root_len] != '\0')) {
        not_found(res);
        return EHR_HTTP_HANDLED;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE) {
        if (fd >= 0)
            close(fd);
        not_found(res);
        return EHR_HTTP_HANDLED;
    }
    const char *type = ehr_http_content_type(real);
    char etag[96], lm[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx%09ld\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ehr_http_set_header(req, res, "ETag", etag);
    ehr_http_set_header(req, res, "Last-Modified", lm);
    ehr_http_set_header(req, res, "Cache-Control", "no-cache");
    if (!strncmp(type, "text/html", 9))
        ehr_http_set_header(req, res, "Content-Security-Policy", HTML_CSP);
    res->content_type = type;
    ehr_buf_reset(&res->body);
    const char *inm = ehr_http_header(req, "If-None-Match");
    if (inm && etag_matches(inm, etag)) {
        close(fd);
        res->status = 304;
        return EHR_HTTP_HANDLED;
    }
    res->status = 200;
    size_t want_len = (size_t)st.st_size, got = 0;
    if (ehr_buf_reserve(&res->body, want_len + 1)) {
        close(fd);
        res->status = 500;
        return EHR_HTTP_HANDLED;
    }
    while (got < want_len) {
        ssize_t r = read(fd, res->body.data + got, want_len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    res->body.len = got;
    res->body.data[got] = '\0';
    return EHR_HTTP_HANDLED;
}
