/*
 * Tests for src/http: a real server on 127.0.0.1, port 0, talked to with
 * plain sockets through the tiny HTTP/1.1 client below.
 */
/* cmocka needs these before it */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/arena.h"
#include "core/buf.h"
#include "http/http.h"
#include "http/http_int.h"

#define MAX_BODY 1024

/* ---- a tiny HTTP/1.1 client ---- */

struct client {
    int fd;
    char buf[65536];
    size_t len; /* bytes received and not yet consumed */
};

struct reply {
    int status;
    size_t n_headers;
    char *names[64], *values[64];
    ehr_buf body;
    bool eof; /* the server closed the connection */
};

static void client_open(struct client *c, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void client_send(struct client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void client_sends(struct client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

/* Make sure at least want bytes are buffered; false at end of stream. */
static bool fill(struct client *c, size_t want)
{
    while (c->len < want) {
        assert_true(c->len < sizeof c->buf);
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n <= 0)
            return false;
        c->len += (size_t)n;
    }
    return true;
}

static void consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *reply_header(const struct reply *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

/* All values of a header, comma-joined, into out. */
static const char *reply_header_all(const struct reply *r, const char *name, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n_headers && len < cap; i++)
        if (strcasecmp(r->names[i], name) == 0)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", r->values[i]);
    return out;
}

static void reply_free(struct reply *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    r->n_headers = 0;
    ehr_buf_free(&r->body);
}

/* Read one response; no_body for answers to HEAD. */
static void client_read(struct client *c, struct reply *r, bool no_body)
{
    memset(r, 0, sizeof *r);
    char *end = NULL;
    for (size_t want = 1;; want = c->len + 1) {
        if (!fill(c, want))
            fail_msg("connection closed before the response headers");
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end)
            break;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    char *head = strndup(c->buf, head_len - 2);
    consume(c, head_len);
    assert_int_equal(strncmp(head, "HTTP/1.1 ", 9), 0);
    r->status = atoi(head + 9);
    char *line = strstr(head, "\r\n") + 2;
    while (*line) {
        char *eol = strstr(line, "\r\n");
        *eol = '\0';
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        assert_true(r->n_headers < 64);
        r->names[r->n_headers] = strdup(line);
        r->values[r->n_headers] = strdup(v);
        r->n_headers++;
        line = eol + 2;
    }
    free(head);
    if (no_body || r->status == 204 || r->status == 304)
        return;
    const char *cl = reply_header(r, "Content-Length");
    const char *te = reply_header(r, "Transfer-Encoding");
    if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        assert_true(fill(c, n));
        ehr_buf_append(&r->body, c->buf, n);
        consume(c, n);
    } else if (te && strcasecmp(te, "chunked") == 0) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(c->buf, c->len, "\r\n", 2)))
                assert_true(fill(c, c->len + 1));
            size_t n = strtoul(c->buf, NULL, 16);
            consume(c, (size_t)(crlf - c->buf) + 2);
            assert_true(fill(c, n + 2));
            ehr_buf_append(&r->body, c->buf, n);
            consume(c, n + 2);
            if (n == 0)
                break;
        }
    } else {
        while (fill(c, c->len + 1))
            ;
        ehr_buf_append(&r->body, c->buf, c->len);
        consume(c, c->len);
        r->eof = true;
    }
    if (!r->body.data)
        ehr_buf_puts(&r->body, "");
}

/* One request on a fresh connection. */
static void roundtrip(uint16_t port, const char *request, struct reply *r)
{
    struct client *c = malloc(sizeof *c);
    client_open(c, port);
    client_sends(c, request);
    client_read(c, r, strncmp(request, "HEAD ", 5) == 0);
    client_close(c);
    free(c);
}

/* ---- the server under test ---- */

static int h_mark(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    req->user = "marked";
    ehr_http_set_header(req, res, "X-Chain", "mark");
    return EHR_HTTP_NEXT;
}

/* Answers with what it saw, one "key=value" a line. */
static int h_echo(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    const char *h = ehr_http_header(req, "X-Test");
    res->content_type = "text/plain";
    ehr_buf_printf(&res->body, "method=%s\npath=%s\nraw=%s\nuser=%s\nheader=%s\nremote=%s\n",
                   req->method, req->path, req->raw_query, req->user ? (char *)req->user : "-",
                   h ? h : "-", req->remote_addr);
    for (size_t i = 0; i < req->n_params; i++)
        ehr_buf_printf(&res->body, "p:%s=%s\n", req->params[i].name, req->params[i].value);
    ehr_buf_printf(&res->body, "body=%zu:", req->body_len);
    ehr_buf_append(&res->body, req->body, req->body_len);
    return EHR_HTTP_HANDLED;
}

static int h_pass(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    ehr_http_set_header(req, res, "X-Pass", "1");
    return EHR_HTTP_NEXT;
}

static int h_second(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    ehr_buf_puts(&res->body, "second");
    return EHR_HTTP_HANDLED;
}

static void big_body(ehr_buf *b)
{
    ehr_buf_puts(b, "{\"resourceType\":\"Bundle\",\"entry\":[");
    for (int i = 0; i < 100; i++)
        ehr_buf_printf(b, "%s{\"fullUrl\":\"Patient/%d\",\"name\":\"n%d\"}", i ? "," : "", i,
                       i * 7);
    ehr_buf_puts(b, "]}");
}

static int h_big(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    res->content_type = "application/fhir+json";
    big_body(&res->body);
    ehr_http_set_header(req, res, "ETag", "W/\"1\"");
    return EHR_HTTP_HANDLED;
}

static int h_status(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    const char *code = ehr_http_param(req, "code");
    res->status = code ? atoi(code) : 200;
    ehr_buf_puts(&res->body, "should not be sent for 204");
    return EHR_HTTP_HANDLED;
}

static void custom_error(void *ctx, int status, const char *message, ehr_http_response *res)
{
    res->content_type = "application/fhir+json";
    ehr_buf_printf(&res->body, "{\"custom\":%d,\"message\":\"%s\"}", status, message);
}

struct fixture {
    ehr_http_server *srv;
    uint16_t port;
};

static int setup(void **state)
{
    static struct fixture f;
    ehr_http_config cfg = {
        .bind = "127.0.0.1",
        .port = 0,
        .threads = 4,
        .max_body = MAX_BODY,
        .cors_origins = "https://app.example, https://other.example",
        .error_body = custom_error,
    };
    f.srv = ehr_http_server_new(&cfg);
    assert_non_null(f.srv);
    assert_int_equal(ehr_http_server_add(f.srv, "", h_mark, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_add(f.srv, "/echo", h_echo, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_add(f.srv, "/pass", h_pass, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_add(f.srv, "/pass", h_second, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_add(f.srv, "/big", h_big, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_add(f.srv, "/status", h_status, NULL), EHR_OK);
    ehr_err err;
    assert_int_equal(ehr_http_server_start(f.srv, &err), EHR_OK);
    f.port = ehr_http_server_port(f.srv);
    assert_true(f.port != 0);
    /* no changes to the chain once serving */
    assert_int_equal(ehr_http_server_add(f.srv, "/late", h_second, NULL), EHR_EINVAL);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ehr_http_server_free(&f->srv);
    assert_null(f->srv);
    return 0;
}

#define PORT (((struct fixture *)*state)->port)

/* ---- tests ---- */

static void test_routing_next(void **state)
{
    struct reply r;
    roundtrip(PORT, "GET /pass/x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "second");
    assert_string_equal(reply_header(&r, "X-Pass"), "1");
    assert_string_equal(reply_header(&r, "X-Chain"), "mark");
    reply_free(&r);

    /* the first handler's req->user reaches the one that answers */
    roundtrip(PORT, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "user=marked\n"));
    assert_non_null(strstr(r.body.data, "remote=127.0.0.1\n"));
    assert_null(reply_header(&r, "X-Pass"));
    reply_free(&r);
}

static void test_not_found(void **state)
{
    struct reply r;
    roundtrip(PORT, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(reply_header(&r, "Content-Type"), "application/fhir+json");
    assert_non_null(strstr(r.body.data, "{\"custom\":404"));
    reply_free(&r);
}

static void test_body_echo(void **state)
{
    struct reply r;
    roundtrip(PORT,
              "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/fhir+json\r\n"
              "Content-Length: 11\r\n\r\n{\"a\":\"b\"}\r\n",
              &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "method=POST\n"));
    assert_non_null(strstr(r.body.data, "body=11:{\"a\":\"b\"}\r\n"));
    reply_free(&r);

    /* exactly the limit is allowed */
    char *req = malloc(MAX_BODY + 200);
    int n =
        snprintf(req, 200, "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
    memset(req + n, 'x', MAX_BODY);
    req[n + MAX_BODY] = '\0';
    roundtrip(PORT, req, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "body=1024:xxx"));
    reply_free(&r);
    free(req);
}

/* Content-Length over the limit: 413 before the client sends the body. */
static void test_413_announced(void **state)
{
    struct client *c = malloc(sizeof *c);
    client_open(c, PORT);
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
    struct reply r;
    client_read(c, &r, false);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body.data, "{\"custom\":413"));
    reply_free(&r);
    client_close(c);

    /* and with Expect: 100-continue, no 100 comes first */
    client_open(c, PORT);
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n"
                    "Expect: 100-continue\r\n\r\n");
    client_read(c, &r, false);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    client_close(c);
    free(c);
}

/* A chunked body has no announced size: 413 once it has grown too big. */
static void test_413_chunked(void **state)
{
    struct client *c = malloc(sizeof *c);
    client_open(c, PORT);
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'y', sizeof chunk);
    for (int i = 0; i < 3; i++) {
        client_sends(c, "258\r\n"); /* 600 */
        client_send(c, chunk, sizeof chunk);
        client_sends(c, "\r\n");
    }
    client_sends(c, "0\r\n\r\n");
    struct reply r;
    client_read(c, &r, false);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body.data, "{\"custom\":413"));
    reply_free(&r);
    client_close(c);

    /* one that goes on well past the limit is cut off: the connection closes */
    client_open(c, PORT);
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    bool closed = false;
    for (int i = 0; i < 1000 && !closed; i++) {
        char hdr[] = "258\r\n";
        closed = send(c->fd, hdr, strlen(hdr), MSG_NOSIGNAL) <= 0 ||
                 send(c->fd, chunk, sizeof chunk, MSG_NOSIGNAL) <= 0 ||
                 send(c->fd, "\r\n", 2, MSG_NOSIGNAL) <= 0;
    }
    if (!closed) {
        char b;
        assert_true(recv(c->fd, &b, 1, 0) <= 0);
    }
    client_close(c);

    /* a small chunked body is fine */
    client_open(c, PORT);
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    client_read(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "body=5:abcde"));
    reply_free(&r);
    client_close(c);
    free(c);
}

static void test_query_decoding(void **state)
{
    struct reply r;
    roundtrip(PORT,
              "GET /echo/a%20b/c%2Fd+e?name=J%C3%B6rg+Smith&flag&empty=&a=1&&a=2"
              "&plus=%2B&bad=%zz%4&eq=x=y HTTP/1.1\r\nHost: t\r\n\r\n",
              &r);
    assert_int_equal(r.status, 200);
    const char *want = "method=GET\n"
                       "path=/echo/a b/c/d+e\n"
                       "raw=name=J%C3%B6rg+Smith&flag&empty=&a=1&&a=2&plus=%2B&bad=%zz%4&eq=x=y\n"
                       "user=marked\n"
                       "header=-\n"
                       "remote=127.0.0.1\n"
                       "p:name=J\xc3\xb6rg Smith\n"
                       "p:flag=\n"
                       "p:empty=\n"
                       "p:a=1\n"
                       "p:a=2\n"
                       "p:plus=+\n"
                       "p:bad=%zz%4\n"
                       "p:eq=x=y\n"
                       "body=0:";
    assert_string_equal(r.body.data, want);
    reply_free(&r);

    /* no query at all */
    roundtrip(PORT, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_non_null(strstr(r.body.data, "path=/echo\nraw=\n"));
    reply_free(&r);

    /* absolute-form target */
    roundtrip(PORT, "GET http://t/echo/x?q=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "path=/echo/x\nraw=q=1\n"));
    reply_free(&r);
}

/* Targets refused with 400, each with the reason in the error body. */
static void test_bad_target(void **state)
{
    static const struct {
        const char *target, *reason;
    } cases[] = {
        {"/echo/a%00b", "NUL"},          {"/echo?x=%00", "NUL"}, {"/echo/../secret", "'..'"},
        {"/echo/%2e%2e/secret", "'..'"}, {"/echo/./x", "'.'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", cases[i].target);
        struct reply r;
        roundtrip(PORT, req, &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body.data, "\"custom\":400"));
        assert_non_null(strstr(r.body.data, cases[i].reason));
        reply_free(&r);
    }
}

/* Requests MHD refuses itself still end (and free) their context: ASan checks. */
static void test_refused_by_mhd(void **state)
{
    struct reply r;
    /* HTTP/1.1 needs Host; MHD 0.9.75 lets it pass, later ones answer 400 */
    roundtrip(PORT, "GET /echo HTTP/1.1\r\n\r\n", &r);
    assert_true(r.status == 200 || r.status == 400);
    reply_free(&r);

    size_t n = 40000; /* more header than the connection's memory */
    char *req = malloc(n + 100);
    int k = snprintf(req, 100, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + k, 'a', n);
    snprintf(req + k + n, 100 - 40, "\r\n\r\n");
    struct client *c = malloc(sizeof *c);
    client_open(c, PORT);
    send(c->fd, req, strlen(req), MSG_NOSIGNAL);
    if (fill(c, 12))
        assert_true(strncmp(c->buf, "HTTP/1.1 4", 10) == 0); /* 431 or 413, or just closed */
    client_close(c);
    free(c);
    free(req);

    /* a client that goes away mid-body */
    c = malloc(sizeof *c);
    client_open(c, PORT);
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc");
    client_close(c);
    free(c);
}

static void test_headers_case_insensitive(void **state)
{
    struct reply r;
    roundtrip(PORT, "GET /echo HTTP/1.1\r\nhost: t\r\nx-tEsT: Hello There\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "header=Hello There\n"));
    reply_free(&r);
}

static void test_status_without_body(void **state)
{
    struct reply r;
    roundtrip(PORT, "GET /status?code=204 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 204);
    const char *cl = reply_header(&r, "Content-Length");
    assert_true(!cl || strcmp(cl, "0") == 0);
    reply_free(&r);

    roundtrip(PORT, "GET /status?code=201 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body.data, "should not be sent for 204");
    reply_free(&r);

    roundtrip(PORT, "GET /status?code=42 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 500);
    reply_free(&r);
}

static char *gunzip(const char *data, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    inflateEnd(&z);
    return out;
}

static void test_gzip(void **state)
{
    ehr_buf want = EHR_BUF_INIT;
    big_body(&want);
    assert_true(want.len > 1024);
    static const struct {
        const char *accept; /* NULL: no Accept-Encoding header */
        bool gzip;
    } cases[] = {
        {NULL, false},     {"gzip", true},      {"deflate, gzip;q=0.8, br", true},
        {"GZIP", true},    {"gzip;q=0", false}, {"gzip; q=0.000, *", false},
        {"*;q=0.5", true}, {"identity", false}, {"br, deflate", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET /big HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n",
                 cases[i].accept ? "Accept-Encoding: " : "", cases[i].accept ? cases[i].accept : "",
                 cases[i].accept ? "\r\n" : "");
        struct reply r;
        roundtrip(PORT, req, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(reply_header(&r, "Vary"), "Accept-Encoding");
        assert_string_equal(reply_header(&r, "ETag"), "W/\"1\"");
        const char *ce = reply_header(&r, "Content-Encoding");
        if (cases[i].gzip) {
            assert_non_null(ce);
            assert_string_equal(ce, "gzip");
            assert_true(r.body.len < want.len / 2);
            size_t n;
            char *plain = gunzip(r.body.data, r.body.len, &n);
            assert_int_equal(n, want.len);
            assert_memory_equal(plain, want.data, n);
            free(plain);
        } else {
            assert_null(ce);
            assert_int_equal(r.body.len, want.len);
            assert_memory_equal(r.body.data, want.data, want.len);
        }
        reply_free(&r);
    }
    /* small bodies go as they are, and don't vary by encoding */
    struct reply r;
    char vary[256];
    roundtrip(PORT, "GET /echo HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n", &r);
    assert_null(reply_header(&r, "Content-Encoding"));
    assert_string_equal(reply_header_all(&r, "Vary", vary, sizeof vary), "Origin");
    reply_free(&r);
    ehr_buf_free(&want);
}

static void test_cors(void **state)
{
    char all[1024];
    struct reply r;
    roundtrip(PORT,
              "OPTIONS /echo HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n"
              "Access-Control-Request-Method: PUT\r\n"
              "Access-Control-Request-Headers: authorization, if-match, content-type\r\n\r\n",
              &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(reply_header(&r, "Access-Control-Allow-Origin"), "https://app.example");
    const char *m = reply_header(&r, "Access-Control-Allow-Methods");
    assert_non_null(m);
    assert_non_null(strstr(m, "PUT"));
    assert_non_null(strstr(m, "DELETE"));
    assert_non_null(strstr(m, "PATCH"));
    const char *h = reply_header(&r, "Access-Control-Allow-Headers");
    assert_non_null(h);
    static const char *const needed[] = {"Authorization", "Content-Type",  "If-Match",
                                         "If-None-Exist", "If-None-Match", "If-Modified-Since",
                                         "Prefer"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        assert_non_null(strstr(h, needed[i]));
    assert_non_null(reply_header(&r, "Access-Control-Max-Age"));
    assert_non_null(strstr(reply_header_all(&r, "Vary", all, sizeof all), "Origin"));
    /* preflights are answered before the chain */
    assert_null(reply_header(&r, "X-Chain"));
    reply_free(&r);

    /* an origin not on the list gets no CORS headers */
    roundtrip(PORT,
              "OPTIONS /echo HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n"
              "Access-Control-Request-Method: GET\r\n\r\n",
              &r);
    assert_int_equal(r.status, 204);
    assert_null(reply_header(&r, "Access-Control-Allow-Origin"));
    assert_null(reply_header(&r, "Access-Control-Allow-Methods"));
    reply_free(&r);

    /* an actual request from an allowed origin */
    roundtrip(PORT, "GET /big HTTP/1.1\r\nHost: t\r\nOrigin: https://other.example\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(reply_header(&r, "Access-Control-Allow-Origin"), "https://other.example");
    const char *ex = reply_header(&r, "Access-Control-Expose-Headers");
    assert_non_null(ex);
    assert_non_null(strstr(ex, "Location"));
    assert_non_null(strstr(ex, "ETag"));
    assert_non_null(strstr(ex, "Last-Modified"));
    assert_non_null(strstr(ex, "Content-Location"));
    reply_header_all(&r, "Vary", all, sizeof all);
    assert_non_null(strstr(all, "Origin"));
    assert_non_null(strstr(all, "Accept-Encoding"));
    reply_free(&r);

    /* errors carry CORS headers too, so that apps can read them */
    roundtrip(PORT, "GET /nowhere HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(reply_header(&r, "Access-Control-Allow-Origin"), "https://app.example");
    reply_free(&r);

    /* a plain OPTIONS (not a preflight) goes to the handlers */
    roundtrip(PORT, "OPTIONS /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "method=OPTIONS\n"));
    reply_free(&r);
}

static void test_keep_alive(void **state)
{
    struct client *c = malloc(sizeof *c);
    client_open(c, PORT);
    struct reply r;
    client_sends(c, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    client_read(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "p:n=1\n"));
    reply_free(&r);
    client_sends(c, "POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    client_read(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "p:n=2\n"));
    assert_non_null(strstr(r.body.data, "body=3:abc"));
    reply_free(&r);
    /* pipelined: two requests in one write */
    client_sends(c, "GET /echo?n=3 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    client_read(c, &r, false);
    assert_non_null(strstr(r.body.data, "p:n=3\n"));
    reply_free(&r);
    client_read(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_true(r.body.len > 1024);
    reply_free(&r);
    /* HEAD: headers, no body, and the connection stays usable */
    client_sends(c, "HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n");
    client_read(c, &r, true);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    client_sends(c, "GET /echo?n=4 HTTP/1.1\r\nHost: t\r\n\r\n");
    client_read(c, &r, false);
    assert_non_null(strstr(r.body.data, "p:n=4\n"));
    reply_free(&r);
    client_close(c);
    free(c);
}

struct worker {
    uint16_t port;
    int id;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct client *c = malloc(sizeof *c);
    for (int round = 0; round < 5; round++) {
        client_open(c, w->port);
        for (int i = 0; i < 20; i++) {
            char req[256], want[64];
            snprintf(req, sizeof req,
                     "POST /echo?w=%d&i=%d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                     "w%04d",
                     w->id, i, w->id);
            snprintf(want, sizeof want, "p:w=%d\np:i=%d\nbody=5:w%04d", w->id, i, w->id);
            client_sends(c, req);
            struct reply r;
            client_read(c, &r, false);
            if (r.status == 200 && strstr(r.body.data, want))
                w->ok++;
            reply_free(&r);
        }
        client_close(c);
    }
    free(c);
    return NULL;
}

static void test_concurrent(void **state)
{
    enum { N = 8 };
    pthread_t th[N];
    struct worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){PORT, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 100);
    }
}

static int h_slow(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    usleep(300 * 1000);
    ehr_buf_puts(&res->body, "slow but sure");
    return EHR_HTTP_HANDLED;
}

struct slow_client {
    uint16_t port;
    struct reply r;
};

static void *slow_client_main(void *arg)
{
    struct slow_client *sc = arg;
    roundtrip(sc->port, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", &sc->r);
    return NULL;
}

/* A second server: wildcard CORS, no error_body (default JSON), stats, shutdown. */
static void test_defaults_and_shutdown(void **state)
{
    ehr_http_config cfg = {.bind = "127.0.0.1", .threads = 1};
    ehr_http_server *s = ehr_http_server_new(&cfg);
    assert_non_null(s);
    assert_int_equal(ehr_http_server_add(s, "/big", h_big, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_add(s, "/slow", h_slow, NULL), EHR_OK);
    assert_int_equal(ehr_http_server_start(s, NULL), EHR_OK);
    uint16_t port = ehr_http_server_port(s);
    assert_true(port != 0 && port != PORT);

    struct reply r;
    roundtrip(port, "GET /x HTTP/1.1\r\nHost: t\r\nOrigin: https://any.example\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(reply_header(&r, "Content-Type"), "application/json");
    assert_string_equal(r.body.data, "{\"status\":404,\"message\":\"no handler for this path\"}");
    assert_string_equal(reply_header(&r, "Access-Control-Allow-Origin"), "*");
    reply_free(&r);
    roundtrip(port, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_null(reply_header(&r, "Access-Control-Allow-Origin")); /* no Origin, no CORS */
    reply_free(&r);

    /* a keep-alive connection left open must not hold up shutdown */
    struct client *c = malloc(sizeof *c);
    client_open(c, port);
    client_sends(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    client_read(c, &r, false);
    reply_free(&r);

    struct ehr_http_stats st;
    ehr_http_server_stats(s, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.by_class[2], 2);
    assert_int_equal(st.by_class[4], 1);
    /* shutdown lets an answer under way go out */
    struct slow_client sc = {.port = port};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_client_main, &sc), 0);
    usleep(100 * 1000);
    ehr_http_server_free(&s);
    assert_null(s);
    pthread_join(th, NULL);
    assert_int_equal(sc.r.status, 200);
    assert_string_equal(sc.r.body.data, "slow but sure");
    reply_free(&sc.r);
    /* the server is gone: the connection is closed */
    char b;
    assert_true(recv(c->fd, &b, 1, 0) <= 0);
    client_close(c);
    free(c);
}

static void test_bad_config(void **state)
{
    ehr_err err;
    ehr_http_config cfg = {.bind = "not-an-address"};
    ehr_http_server *s = ehr_http_server_new(&cfg);
    assert_int_equal(ehr_http_server_start(s, &err), EHR_EINVAL);
    assert_non_null(strstr(err.msg, "not an IP address"));
    ehr_http_server_free(&s);

    ehr_http_config tls = {.bind = "127.0.0.1",
                           .tls_cert = "/nonexistent/cert.pem",
                           .tls_key = "/nonexistent/key.pem"};
    s = ehr_http_server_new(&tls);
    assert_int_equal(ehr_http_server_start(s, &err), EHR_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem"));
    ehr_http_server_free(&s);

    /* the port is taken */
    ehr_http_config taken = {.bind = "127.0.0.1", .port = PORT};
    s = ehr_http_server_new(&taken);
    assert_int_equal(ehr_http_server_start(s, &err), EHR_EIO);
    ehr_http_server_free(&s);
}

/* TLS with a throw-away self-signed certificate, checked with curl. */
static void test_tls(void **state)
{
    if (system("command -v openssl >/dev/null && command -v curl >/dev/null") != 0)
        skip();
    char dir[] = "/tmp/ehr-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    char cert[256], key[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    ehr_http_config cfg = {.bind = "127.0.0.1", .threads = 2, .tls_cert = cert, .tls_key = key};
    ehr_http_server *s = ehr_http_server_new(&cfg);
    assert_int_equal(ehr_http_server_add(s, "", h_echo, NULL), EHR_OK);
    ehr_err err;
    assert_int_equal(ehr_http_server_start(s, &err), EHR_OK);
    snprintf(cmd, sizeof cmd, "curl -sk https://127.0.0.1:%u/tls?x=1", ehr_http_server_port(s));
    FILE *p = popen(cmd, "r");
    char out[1024] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_non_null(strstr(out, "path=/tls\n"));
    assert_non_null(strstr(out, "p:x=1\n"));
    ehr_http_server_free(&s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The accessors work on a request made by hand, as REST unit tests may do. */
static void test_set_header(void **state)
{
    ehr_http_request req = {.method = "GET", .path = "/x", .raw_query = "a=1&b=%20"};
    struct ehr_http_param params[] = {{"a", "1"}, {"b", " "}, {"a", "2"}};
    req.params = params;
    req.n_params = 3;
    req.arena = ehr_arena_new();
    ehr_http_response res = {.status = 200};
    assert_null(ehr_http_header(&req, "Accept"));
    assert_string_equal(ehr_http_param(&req, "a"), "1");
    assert_string_equal(ehr_http_param(&req, "b"), " ");
    assert_null(ehr_http_param(&req, "c"));

    char name[16] = "X-Copied";
    assert_int_equal(ehr_http_set_header(&req, &res, name, "v"), EHR_OK);
    snprintf(name, sizeof name, "X-Changed");
    assert_string_equal(res.headers[0].name, "X-Copied");
    assert_int_equal(ehr_http_set_header(&req, &res, "content-type", "text/csv"), EHR_OK);
    assert_string_equal(res.content_type, "text/csv");
    assert_int_equal(res.n_headers, 1);
    /* no header injection */
    assert_int_equal(ehr_http_set_header(&req, &res, "X-A", "v\r\nSet-Cookie: x"), EHR_EINVAL);
    assert_int_equal(ehr_http_set_header(&req, &res, "X-A\r\nB", "v"), EHR_EINVAL);
    assert_int_equal(ehr_http_set_header(&req, &res, "", "v"), EHR_EINVAL);
    /* the array is bounded */
    while (res.n_headers < 24)
        assert_int_equal(ehr_http_set_header(&req, &res, "X-Fill", "v"), EHR_OK);
    assert_int_equal(ehr_http_set_header(&req, &res, "X-More", "v"), EHR_ELIMIT);
    ehr_arena_free(&req.arena);
}

static void redact(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ehr_http__format_redacted(out, cap, fmt, ap);
    va_end(ap);
}

/* MHD's messages reach the log without any text that came from a request. */
static void test_log_redaction(void **state)
{
    char out[128];
    redact(out, sizeof out, "%s\n", "Application reported internal error");
    assert_string_equal(out, "Application reported internal error\n");
    redact(out, sizeof out, "Bad request for '%s' from %s", "/fhir/Patient?name=Smith", "x");
    assert_string_equal(out, "Bad request for '...' from ...");
    redact(out, sizeof out, "code %u, size %zu, fd %d, %ld, %llu%%, %5.2f", 404u, (size_t)12, -3,
           -7L, 9ULL, 1.5);
    assert_string_equal(out, "code 404, size 12, fd -3, -7, 9%, 1.5");
    redact(out, sizeof out, "%-10s|%.*s|%c|%p", "secret", 3, "secret", 'x', (void *)out);
    assert_string_equal(out, "...|...|?|...");
    redact(out, 8, "%s", "a long fixed message");
    assert_string_equal(out, "a long ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_next),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_body_echo),
        cmocka_unit_test(test_413_announced),
        cmocka_unit_test(test_413_chunked),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_bad_target),
        cmocka_unit_test(test_refused_by_mhd),
        cmocka_unit_test(test_headers_case_insensitive),
        cmocka_unit_test(test_status_without_body),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_defaults_and_shutdown),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_log_redaction),
        cmocka_unit_test(test_set_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
