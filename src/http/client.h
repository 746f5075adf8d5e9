/*
 * client.h - a small HTTP/1.1 client over plain sockets, for the command
 * line (ehr import --url, ehr export --url): one request per connection,
 * the whole answer read into memory.
 *
 * Only http:// URLs (put a TLS-terminating proxy in front, or run the
 * command on the server's host with --db). Limits: an answer larger than
 * 256 MiB is refused (ELIMIT); a connection or read that stalls for the
 * timeout fails with EIO.
 */
#ifndef EHR_HTTP_CLIENT_H
#define EHR_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"

#define EHR_HTTP_CLIENT_MAX_BODY (256u << 20)

typedef struct ehr_http_client_req {
    const char *method;       /* "GET", "POST", ... */
    const char *url;          /* http://host[:port]/path?query */
    const char *content_type; /* of body, or NULL */
    const char *body;
    size_t body_len;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
    int timeout_s;              /* 0: 300 seconds */
} ehr_http_client_req;

typedef struct ehr_http_client_res {
    int status;
    ehr_buf headers; /* the header block as received */
    ehr_buf body;    /* de-chunked */
} ehr_http_client_res;

/*
 * Send req and read the answer into res (whatever its status). EINVAL for
 * a URL that is not http://, EIO when the server can't be reached or the
 * answer is malformed. Free res with ehr_http_client_res_free.
 */
ehr_status ehr_http_client_send(const ehr_http_client_req *req, ehr_http_client_res *res,
                                ehr_err *err);
void ehr_http_client_res_free(ehr_http_client_res *res);

/* The value of header name in res (copied into out, at most n bytes), or false. */
bool ehr_http_client_header(const ehr_http_client_res *res, const char *name, char *out, size_t n);

#endif
