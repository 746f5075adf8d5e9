/*
 * http.h - the HTTP server: libmicrohttpd with a thread pool, and an
 * ordered chain of handlers.
 *
 * The server reads the whole request body (up to a configured limit,
 * answering 413 beyond it), builds an ehr_http_request with an arena that
 * lives as long as the request, and offers it to each handler in the order
 * they were added. A handler whose prefix matches the path may answer
 * (return EHR_HTTP_HANDLED after filling the response) or pass
 * (EHR_HTTP_NEXT) so that, for example, an authorization step can sit in
 * front of every FHIR handler. The server then adds CORS headers, gzips
 * the body when the client accepts it and it is worth it, and sends it.
 *
 * http knows nothing of FHIR: the REST layer (src/rest/) turns statuses
 * into OperationOutcomes.
 *
 * Details handlers can rely on:
 * - prefix matching is literal ("/fhir" also matches "/fhirx"); add every
 *   handler before ehr_http_server_start. Handlers run on the pool's
 *   threads, concurrently; so does error_body.
 * - the response is shared along the chain: headers set by a handler that
 *   passes stay; on a 404 (nobody answered) only status, body and
 *   content type are replaced.
 * - the server answers on its own, through error_body: 404 (no handler),
 *   413 (body over max_body: at once when Content-Length says so; for a
 *   chunked body once it ends, or the connection is closed when it goes
 *   on past twice the limit), 400 (a path or query with an encoded NUL, a
 *   path with a "." or ".." segment), 500 (out of memory, or a handler
 *   status outside 100..599). Errors MHD detects itself (malformed
 *   request, headers over 32 KiB) get MHD's own short answer.
 * - a CORS preflight (OPTIONS with Origin and
 *   Access-Control-Request-Method) is answered 204 before the chain.
 * - HEAD reaches handlers as "HEAD"; MHD sends the headers only.
 * - 204 and 304 answers are sent without a body whatever the handler wrote.
 * - nothing about a request is logged (no paths, queries or bodies); see
 *   ehr_http_server_stats for counts.
 */
#ifndef EHR_HTTP_HTTP_H
#define EHR_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"

typedef struct ehr_http_server ehr_http_server;

struct ehr_http_param {
    const char *name;  /* percent-decoded */
    const char *value; /* percent-decoded, '+' as space */
};

typedef struct ehr_http_request {
    const char *method;    /* "GET", "POST", ... */
    const char *path;      /* percent-decoded path without the query, "/fhir/Patient/1" */
    const char *raw_query; /* the query as sent, without '?', "" when none */
    size_t n_params;
    const struct ehr_http_param *params; /* query parameters in order */
    const char *body;                    /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    const char *remote_addr; /* client address as text */
    ehr_arena *arena;        /* freed when the response has been sent */
    void *internal;          /* the server's, do not touch */
    void *user;              /* for handlers: set by an earlier handler in the chain
                                (e.g. the authenticated identity) */
} ehr_http_request;

struct ehr_http_header {
    const char *name, *value;
};

typedef struct ehr_http_response {
    int status;               /* 200 unless set */
    const char *content_type; /* NULL = none */
    ehr_buf body;             /* owned by the server; handlers append */
    size_t n_headers;
    struct ehr_http_header headers[24];
    /* > 0: send this open file (file_size bytes) instead of body, streamed
       from the disk, never gzipped; the server closes it */
    int file_fd;
    uint64_t file_size;
} ehr_http_response;

enum { EHR_HTTP_NEXT = 0, EHR_HTTP_HANDLED = 1 };

/*
 * A handler. prefix matching is done by the server; handlers are called
 * in the order they were added. Return EHR_HTTP_HANDLED or EHR_HTTP_NEXT.
 */
typedef int (*ehr_http_handler)(void *ctx, ehr_http_request *req, ehr_http_response *res);

typedef struct ehr_http_config {
    const char *bind;         /* address to listen on; NULL = all (0.0.0.0) */
    uint16_t port;            /* 0 = pick a free port (see ehr_http_server_port) */
    unsigned threads;         /* worker threads; 0 = number of CPUs */
    size_t max_body;          /* bytes; larger bodies are answered 413 (0 = 16 MiB) */
    const char *cors_origins; /* "*" or a comma list of allowed origins; NULL = "*" */
    const char *tls_cert;     /* PEM files; both NULL for plain HTTP */
    const char *tls_key;
    /* Called for 413 and other answers the server gives on its own, so the
       FHIR layer can phrase them as OperationOutcomes. May be NULL. */
    void (*error_body)(void *ctx, int status, const char *message, ehr_http_response *res);
    void *error_ctx;
} ehr_http_config;

/* A new server (not yet listening). NULL on ENOMEM. */
ehr_http_server *ehr_http_server_new(const ehr_http_config *cfg);
/* Append a handler for paths that begin with prefix ("" matches all). */
ehr_status ehr_http_server_add(ehr_http_server *s, const char *prefix, ehr_http_handler fn,
                               void *ctx);
/* Start listening and serving on the thread pool. */
ehr_status ehr_http_server_start(ehr_http_server *s, ehr_err *err);
/* The port actually bound (useful with port 0). */
uint16_t ehr_http_server_port(const ehr_http_server *s);
/* Stop (waits for requests in flight) and free; *s is set to NULL. */
void ehr_http_server_free(ehr_http_server **s);

/* Responses sent so far, by status class; counts only, nothing about content. */
struct ehr_http_stats {
    unsigned long requests;    /* all responses */
    unsigned long by_class[6]; /* [1] 1xx ... [5] 5xx; [0] unused */
    long in_flight;            /* requests received and not yet completed */
};
void ehr_http_server_stats(const ehr_http_server *s, struct ehr_http_stats *out);

/* A request header by name, case-insensitive, or NULL. */
const char *ehr_http_header(const ehr_http_request *req, const char *name);
/* The first query parameter of that name, or NULL. */
const char *ehr_http_param(const ehr_http_request *req, const char *name);
/*
 * Add a response header (name and value are copied into the request arena).
 * "Content-Type" sets res->content_type instead. EHR_EINVAL for a name or
 * value with CR or LF (no header injection), EHR_ELIMIT when the 24 slots
 * are used. Works on a request built by hand (tests): only arena is needed.
 */
ehr_status ehr_http_set_header(ehr_http_request *req, ehr_http_response *res, const char *name,
                               const char *value);

#endif
