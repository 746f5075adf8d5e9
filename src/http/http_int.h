/*
 * http_int.h - private declarations shared by the files of src/http/.
 *
 * server.c   the libmicrohttpd daemon, request life cycle, handler chain
 * request.c  request-target parsing: percent-decoding, query parameters
 * response.c turning an ehr_http_response into an MHD response: CORS,
 *            gzip, headers
 */
#ifndef EHR_HTTP_HTTP_INT_H
#define EHR_HTTP_HTTP_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "http/http.h"

/* Bodies smaller than this are sent as they are: gzip would not pay. */
#define EHR_HTTP_GZIP_MIN 1024
/* zlib level: 1 as nginx and h2o default to; FHIR JSON compresses well even so. */
#define EHR_HTTP_GZIP_LEVEL 1
/* Default request body limit (ehr_http_config.max_body = 0). */
#define EHR_HTTP_DEFAULT_MAX_BODY ((size_t)16 << 20)
/* Per-connection memory for MHD: request line and headers must fit. */
#define EHR_HTTP_CONN_MEMORY ((size_t)32 << 10)
/* Idle keep-alive connections are closed after this many seconds. */
#define EHR_HTTP_CONN_TIMEOUT 120
/* ehr_http_server_free waits at most this long for requests in flight. */
#define EHR_HTTP_DRAIN_MS 10000

struct route {
    const char *prefix; /* owned (strdup) */
    size_t prefix_len;
    ehr_http_handler fn;
    void *ctx;
};

/* A zlib stream kept for reuse: deflateInit2 allocates ~270 KiB. */
struct gz_stream;

struct ehr_http_server {
    ehr_http_config cfg; /* strings point into the copies below */
    char *bind, *cors_origins;
    char *tls_cert_pem, *tls_key_pem; /* file contents, kept while running */
    struct route *routes;
    size_t n_routes, cap_routes;
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_t starter;      /* the thread inside ehr_http_server_start */
    atomic_bool starting;   /* MHD messages are logged in full only then */
    atomic_long in_flight;  /* requests begun and not yet completed */
    atomic_long answering;  /* of those, the ones a handler or an answer is under way for */
    atomic_ulong counts[6]; /* responses by status class: [0] other, [1..5] 1xx..5xx */
    pthread_mutex_t gz_lock;
    struct gz_stream *gz_free; /* idle deflate streams */
};

/* What the server keeps per request; allocated from the request's arena. */
struct req_ctx {
    ehr_http_request req; /* what handlers see; req.internal points here */
    ehr_http_server *srv;
    struct MHD_Connection *conn;
    ehr_buf body;     /* the request body, malloc'ed, bounded by max_body */
    size_t discarded; /* body bytes thrown away after refusing the request */
    int bad_status;   /* nonzero: the request-target was rejected with this */
    const char *bad_msg;
    bool started;   /* the access handler has seen the headers */
    bool too_big;   /* the body went over max_body */
    bool answered;  /* a response has been queued */
    bool answering; /* counted in srv->answering */
};

/*
 * Parse the request-target as sent (origin-form, absolute-form or "*") into
 * rc->req.path, raw_query and params, all in the arena. On a target we
 * refuse, sets rc->bad_status and bad_msg and returns EHR_EINVAL.
 */
ehr_status ehr_http__parse_target(struct req_ctx *rc, const char *uri);

/*
 * Decode %XX escapes (and '+' as space when plus_space) of s[0..len) into
 * out, which has room for len + 1 bytes; returns the decoded length or
 * (size_t)-1 when the result would contain a NUL byte. Malformed escapes
 * are kept as they are.
 */
size_t ehr_http__decode(const char *s, size_t len, bool plus_space, char *out);

/*
 * Send res for rc: adds CORS headers, gzips when worth it, hands the body's
 * memory to MHD and queues the response. Empties res->body.
 */
enum MHD_Result ehr_http__send(struct req_ctx *rc, ehr_http_response *res);

/* Fill res with an answer the server gives on its own (404, 413, 400 ...). */
void ehr_http__error(ehr_http_server *s, int status, const char *message, ehr_http_response *res);

/* A preflight (OPTIONS with Origin and Access-Control-Request-Method)? */
bool ehr_http__is_preflight(const struct req_ctx *rc);
/* Answer a preflight: 204 and, when the origin is allowed, the CORS headers. */
void ehr_http__preflight(struct req_ctx *rc, ehr_http_response *res);

/*
 * printf into out[cap] with the strings left out: numbers are printed, each
 * %s becomes "..." unless the whole format is "%s" (how MHD passes its own
 * fixed messages). For MHD's log messages, which may quote a request.
 */
void ehr_http__format_redacted(char *out, size_t cap, const char *fmt, va_list ap);

/* Free the idle deflate streams. */
void ehr_http__gz_cleanup(ehr_http_server *s);

#endif
