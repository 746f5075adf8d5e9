/* client.c - a small HTTP/1.1 client over plain sockets (see client.h). */
#include "http/client.h"

#include <ctype.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

void ehr_http_client_res_free(ehr_http_client_res *res)
{
    ehr_buf_free(&res->headers);
    ehr_buf_free(&res->body);
}

static ehr_status connect_to(const char *host, const char *port, int timeout_ms, int *out,
                             ehr_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *p;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc)
        return ehr_err_set(err, EHR_EIO, "cannot resolve %s: %s", host, gai_strerror(rc));
    int fd = -1;
    for (p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = timeout_ms / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return ehr_err_set(err, EHR_EIO, "cannot connect to %s:%s", host, port);
    *out = fd;
    return EHR_OK;
}

static ehr_status send_all(int fd, const char *p, size_t n, ehr_err *err)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return ehr_err_set(err, EHR_EIO, "sending the request failed");
        p += w;
        n -= (size_t)w;
    }
    return EHR_OK;
}

/* Decode a chunked body in place. */
static bool dechunk(ehr_buf *b)
{
    size_t r = 0, w = 0;
    for (;;) {
        char *end;
        if (r >= b->len)
            return false;
        unsigned long n = strtoul(b->data + r, &end, 16);
        char *nl = strstr(end, "\r\n");
        if (!nl)
            return false;
        r = (size_t)(nl + 2 - b->data);
        if (n == 0)
            break;
        if (r + n > b->len)
            return false;
        memmove(b->data + w, b->data + r, n);
        w += n;
        r += n + 2;
    }
    b->len = w;
    b->data[w] = '\0';
    return true;
}

bool ehr_http_client_header(const ehr_http_client_res *res, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = res->headers.data;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = len - (size_t)(v - p);
            snprintf(out, n, "%.*s", (int)vl, v);
            return true;
        }
        p = eol ? eol + 2 : NULL;
    }
    return false;
}

ehr_status ehr_http_client_send(const ehr_http_client_req *req, ehr_http_client_res *res,
                                ehr_err *err)
{
    memset(res, 0, sizeof *res);
    if (strncmp(req->url, "http://", 7))
        return ehr_err_set(err, EHR_EINVAL, "only http:// URLs are supported (got %.60s)",
                           req->url);
    const char *h = req->url + 7;
    size_t hl = strcspn(h, "/?");
    char host[256], port[16] = "80";
    if (hl == 0 || hl >= sizeof host)
        return ehr_err_set(err, EHR_EINVAL, "no host in %.60s", req->url);
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof port, "%s", colon + 1);
        *colon = '\0';
    }
    if (host[0] == '[') { /* [::1] */
        memmove(host, host + 1, strlen(host));
        char *rb = strchr(host, ']');
        if (rb)
            *rb = '\0';
    }
    const char *path = h + hl;
    int timeout = (req->timeout_s ? req->timeout_s : 300) * 1000;
    int fd;
    ehr_status st = connect_to(host, port, timeout, &fd, err);
    if (st)
        return st;
    ehr_buf head = EHR_BUF_INIT;
    ehr_buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n", req->method,
                   *path ? path : "/", (int)hl, h);
    if (req->content_type)
        ehr_buf_printf(&head, "Content-Type: %s\r\n", req->content_type);
    if (req->body || !strcmp(req->method, "POST") || !strcmp(req->method, "PUT"))
        ehr_buf_printf(&head, "Content-Length: %zu\r\n", req->body_len);
    for (const char *const *x = req->headers; x && *x; x++)
        ehr_buf_printf(&head, "%s\r\n", *x);
    ehr_buf_puts(&head, "\r\n");
    st = send_all(fd, head.data, head.len, err);
    ehr_buf_free(&head);
    if (!st && req->body_len)
        st = send_all(fd, req->body, req->body_len, err);
    ehr_buf all = EHR_BUF_INIT;
    while (!st) {
        if (ehr_buf_reserve(&all, 65536)) {
            st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
            break;
        }
        ssize_t n = recv(fd, all.data + all.len, 65536, 0);
        if (n == 0)
            break;
        if (n < 0) {
            st = ehr_err_set(err, EHR_EIO, "reading the answer failed (timeout?)");
            break;
        }
        all.len += (size_t)n;
        all.data[all.len] = '\0';
        if (all.len > EHR_HTTP_CLIENT_MAX_BODY)
            st = ehr_err_set(err, EHR_ELIMIT, "the answer is larger than 256 MiB");
    }
    close(fd);
    char *sep = all.data ? strstr(all.data, "\r\n\r\n") : NULL;
    if (!st && (!sep || strncmp(all.data, "HTTP/1.", 7)))
        st = ehr_err_set(err, EHR_EIO, "the answer is not HTTP");
    if (st) {
        ehr_buf_free(&all);
        return st;
    }
    res->status = atoi(all.data + 9);
    const char *eol = strstr(all.data, "\r\n");
    ehr_buf_append(&res->headers, eol + 2, (size_t)(sep + 2 - (eol + 2)));
    ehr_buf_append(&res->body, sep + 4, all.len - (size_t)(sep + 4 - all.data));
    ehr_buf_free(&all);
    char te[64];
    if (ehr_http_client_header(res, "Transfer-Encoding", te, sizeof te) && strstr(te, "chunked") &&
        !dechunk(&res->body)) {
        ehr_http_client_res_free(res);
        return ehr_err_set(err, EHR_EIO, "the chunked answer is malformed");
    }
    return EHR_OK;
}
