/*
 * server.c - the libmicrohttpd daemon and the life of a request.
 *
 * MHD calls us at three points per request:
 *
 *   URI log callback   the request line has arrived: we make the request's
 *                      arena and context and take the raw target apart
 *                      (MHD unescapes it in place right after);
 *   access handler     first with the headers (we can refuse a body that is
 *                      announced too big), then once per piece of body, and
 *                      last with no data: we run the handler chain and
 *                      queue the answer;
 *   completed callback the response has been sent or the connection died:
 *                      the arena and the body are freed.
 *
 * MHD sets its "client aware" flag when the URI log callback runs, so the
 * completed callback runs for every context we make, even when MHD itself
 * rejects the request afterwards (bad headers, timeouts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "http/http_int.h"

/* ---- per request ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    ehr_http_server *s = cls;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return NULL;
    struct req_ctx *rc = ehr_arena_calloc(a, 1, sizeof *rc);
    if (!rc) {
        ehr_arena_free(&a);
        return NULL;
    }
    rc->srv = s;
    rc->conn = conn;
    rc->req.arena = a;
    rc->req.internal = rc;
    rc->req.body = "";
    rc->req.remote_addr = "";
    rc->body.limit = s->cfg.max_body;
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    /* on failure bad_status is set and the access handler answers it */
    ehr_http__parse_target(rc, uri);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ehr_http_server *s = cls;
    struct req_ctx *rc = *con_cls;
    if (!rc)
        return;
    *con_cls = NULL;
    ehr_buf_free(&rc->body);
    bool answering = rc->answering;
    ehr_arena *a = rc->req.arena; /* rc lives in the arena: read it first */
    ehr_arena_free(&a);
    if (answering)
        atomic_fetch_sub(&s->answering, 1);
    atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_relaxed);
}

/*
 * From here on the request counts as one being answered: shutdown waits for
 * it. (A request still waiting for its body does not hold shutdown up; MHD
 * may not even notice that such a client went away.)
 */
static void begin_answer(struct req_ctx *rc)
{
    if (!rc->answering) {
        rc->answering = true;
        atomic_fetch_add(&rc->srv->answering, 1);
    }
}

static enum MHD_Result answer_error(struct req_ctx *rc, int status, const char *message)
{
    begin_answer(rc);
    ehr_http_response res = {.status = status, .body = EHR_BUF_INIT};
    ehr_http__error(rc->srv, status, message, &res);
    return ehr_http__send(rc, &res);
}

static void set_remote_addr(struct req_ctx *rc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rc->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    char *buf = ehr_arena_alloc(rc->req.arena, INET6_ADDRSTRLEN);
    if (!buf)
        return;
    const struct sockaddr *sa = ci->client_addr;
    const void *addr = NULL;
    if (sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (addr && inet_ntop(sa->sa_family, addr, buf, INET6_ADDRSTRLEN))
        rc->req.remote_addr = buf;
}

/* The whole request is in: run the chain and send what it made. */
static enum MHD_Result dispatch(struct req_ctx *rc)
{
    ehr_http_server *s = rc->srv;
    ehr_http_request *req = &rc->req;
    begin_answer(rc);
    if (rc->body.data) {
        req->body = rc->body.data;
        req->body_len = rc->body.len;
    }
    set_remote_addr(rc);

    ehr_http_response res = {.status = 200, .body = EHR_BUF_INIT};
    if (ehr_http__is_preflight(rc)) {
        ehr_http__preflight(rc, &res);
        return ehr_http__send(rc, &res);
    }
    bool handled = false;
    for (size_t i = 0; i < s->n_routes && !handled; i++) {
        const struct route *r = &s->routes[i];
        if (strncmp(req->path, r->prefix, r->prefix_len) == 0)
            handled = r->fn(r->ctx, req, &res) == EHR_HTTP_HANDLED;
    }
    if (!handled)
        ehr_http__error(s, 404, "no handler for this path", &res);
    return ehr_http__send(rc, &res);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    ehr_http_server *s = cls;
    struct req_ctx *rc = *con_cls;
    if (!rc)
        return MHD_NO; /* out of memory in on_uri: drop the connection */

    if (!rc->started) {
        /* headers are in, the body (if any) is not */
        rc->started = true;
        rc->req.method = method;
        if (rc->bad_status)
            return answer_error(rc, rc->bad_status, rc->bad_msg);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > s->cfg.max_body) {
                /* answered before the body is read; MHD then closes the connection */
                rc->bad_status = 413;
                return answer_error(rc, 413, "the request body is larger than allowed");
            }
            if (n > 0 && ehr_buf_reserve(&rc->body, (size_t)n) != EHR_OK)
                return answer_error(rc, 500, "out of memory");
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rc->bad_status || rc->answered) {
            /* discard, so the client still gets its answer at the end; but
               a chunked body that goes on past the limit plus 64 MiB is cut
               off, the connection closed without an answer */
            rc->discarded += n;
            return rc->discarded > s->cfg.max_body + ((size_t)64 << 20) ? MHD_NO : MHD_YES;
        }
        ehr_status st = ehr_buf_append(&rc->body, upload_data, n);
        if (st != EHR_OK) {
            ehr_buf_free(&rc->body);
            rc->bad_status = st == EHR_ELIMIT ? 413 : 500;
            rc->bad_msg =
                st == EHR_ELIMIT ? "the request body is larger than allowed" : "out of memory";
            /* Answer at once if MHD lets us queue during the upload. 0.9.75
               does not (only with the headers or after the body), so then
               the rest is discarded and the answer given at its end. */
            (void)answer_error(rc, rc->bad_status, rc->bad_msg);
        }
        return MHD_YES;
    }

    if (rc->answered)
        return MHD_YES;
    if (rc->bad_status)
        return answer_error(rc, rc->bad_status, rc->bad_msg);
    return dispatch(rc);
}

/* ---- logging ---- */

/*
 * Format an MHD message with its strings left out: numbers (ports, status
 * codes, sizes) are printed, every %s becomes "..." unless the whole format
 * is "%s", the form MHD uses to pass one of its own fixed messages. So no
 * text that came from a request (a URL, a header) can reach the log.
 */
void ehr_http__format_redacted(char *out, size_t cap, const char *fmt, va_list ap)
{
    ehr_buf b = EHR_BUF_INIT; /* unbounded: only MHD's own text goes in; cut at cap */
    bool fixed = strncmp(fmt, "%s", 2) == 0 && fmt[2 + strspn(fmt + 2, "\r\n")] == '\0';
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            ehr_buf_putc(&b, *p);
            continue;
        }
        p++;
        if (*p == '%') {
            ehr_buf_putc(&b, '%');
            continue;
        }
        p += strspn(p, "-+ #0");
        if (*p == '*')
            (void)va_arg(ap, int), p++;
        p += strspn(p, "0123456789");
        if (*p == '.') {
            p++;
            if (*p == '*')
                (void)va_arg(ap, int), p++;
            p += strspn(p, "0123456789");
        }
        int longs = 0;
        bool size = false;
        for (; strchr("hlLqjzt", *p) && *p; p++) {
            if (*p == 'l' || *p == 'q' || *p == 'j' || *p == 'L')
                longs++;
            if (*p == 'z' || *p == 't')
                size = true;
        }
        switch (*p) {
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
        case 'c': {
            unsigned long long v = size         ? va_arg(ap, size_t)
                                   : longs >= 2 ? va_arg(ap, unsigned long long)
                                   : longs == 1 ? va_arg(ap, unsigned long)
                                                : va_arg(ap, unsigned);
            if (*p == 'd' || *p == 'i')
                ehr_buf_printf(&b, "%lld", size || longs ? (long long)v : (long long)(int)v);
            else if (*p == 'c')
                ehr_buf_putc(&b, '?');
            else
                ehr_buf_printf(&b, *p == 'u' ? "%llu" : "%llx", v);
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            ehr_buf_puts(&b, fixed && str ? str : "...");
            break;
        }
        case 'p':
            (void)va_arg(ap, void *);
            ehr_buf_puts(&b, "...");
            break;
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
        case 'a':
        case 'A':
            ehr_buf_printf(&b, "%g", va_arg(ap, double));
            break;
        default:
            /* unknown conversion: stop rather than misread the arguments */
            ehr_buf_puts(&b, "...");
            p += strlen(p) - 1;
            break;
        }
    }
    snprintf(out, cap, "%s", b.data ? b.data : "");
    ehr_buf_free(&b);
}

/*
 * MHD's messages go to our log. Once the server runs, a message may carry
 * request data in its arguments, so they are redacted
 * (ehr_http__format_redacted).
 * While starting, on the starting thread, the arguments are addresses,
 * ports and system errors: logged in full.
 */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    ehr_http_server *s = cls;
    char msg[512];
    if (atomic_load(&s->starting) && pthread_equal(pthread_self(), s->starter))
        vsnprintf(msg, sizeof msg, fmt, ap);
    else
        ehr_http__format_redacted(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    ehr_log(EHR_LOG_WARN, "http: %s", msg);
}

/* ---- server ---- */

static char *dup_or_null(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

ehr_http_server *ehr_http_server_new(const ehr_http_config *cfg)
{
    ehr_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    bool fail = false;
    s->bind = dup_or_null(cfg->bind, &fail);
    s->cors_origins = dup_or_null(cfg->cors_origins ? cfg->cors_origins : "*", &fail);
    s->cfg.tls_cert = dup_or_null(cfg->tls_cert, &fail);
    s->cfg.tls_key = dup_or_null(cfg->tls_key, &fail);
    s->cfg.bind = s->bind;
    s->cfg.cors_origins = s->cors_origins;
    if (!s->cfg.max_body)
        s->cfg.max_body = EHR_HTTP_DEFAULT_MAX_BODY;
    if (!s->cfg.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.threads = n > 0 ? (unsigned)n : 1;
    }
    pthread_mutex_init(&s->gz_lock, NULL);
    if (fail)
        ehr_http_server_free(&s);
    return s;
}

ehr_status ehr_http_server_add(ehr_http_server *s, const char *prefix, ehr_http_handler fn,
                               void *ctx)
{
    if (!fn || s->daemon)
        return EHR_EINVAL; /* the chain is read without locks once serving */
    if (!prefix)
        prefix = "";
    if (s->n_routes == s->cap_routes) {
        size_t cap = s->cap_routes ? s->cap_routes * 2 : 8;
        struct route *r = realloc(s->routes, cap * sizeof *r);
        if (!r)
            return EHR_ENOMEM;
        s->routes = r;
        s->cap_routes = cap;
    }
    char *p = strdup(prefix);
    if (!p)
        return EHR_ENOMEM;
    s->routes[s->n_routes++] = (struct route){p, strlen(p), fn, ctx};
    return EHR_OK;
}

/* Read a whole (small) file as a NUL-terminated string. */
static ehr_status read_file(const char *path, char **out, ehr_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ehr_err_set(err, EHR_EIO, "cannot open %s: %s", path, strerror(errno));
    ehr_buf b = EHR_BUF_INIT;
    b.limit = (size_t)1 << 20;
    char chunk[4096];
    size_t n;
    ehr_status st = EHR_OK;
    while (!st && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        st = ehr_buf_append(&b, chunk, n);
    if (!st && ferror(f))
        st = EHR_EIO;
    fclose(f);
    if (st) {
        ehr_buf_free(&b);
        return ehr_err_set(err, st, "cannot read %s", path);
    }
    *out = ehr_buf_steal(&b, NULL);
    return EHR_OK;
}

ehr_status ehr_http_server_start(ehr_http_server *s, ehr_err *err)
{
    if (s->daemon)
        return ehr_err_set(err, EHR_EINVAL, "the HTTP server is already running");
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem ops[16];
    size_t n = 0;
#define OPT(o, v, p) (ops[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
    /* first, so that MHD sends every message of its own through it */
    OPT(MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (s->cfg.bind && *s->cfg.bind) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, s->cfg.bind, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons(s->cfg.port);
        } else if (inet_pton(AF_INET6, s->cfg.bind, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(s->cfg.port);
            flags |= MHD_USE_IPv6;
        } else {
            return ehr_err_set(err, EHR_EINVAL, "bind address '%s' is not an IP address",
                               s->cfg.bind);
        }
        OPT(MHD_OPTION_SOCK_ADDR, 0, &ss);
    }

    if (s->cfg.tls_cert || s->cfg.tls_key) {
        if (!s->cfg.tls_cert || !s->cfg.tls_key)
            return ehr_err_set(err, EHR_EINVAL, "TLS needs both a certificate and a key");
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return ehr_err_set(err, EHR_EUNSUPPORTED,
                               "this libmicrohttpd was built without TLS support");
        ehr_status st;
        if (!s->tls_cert_pem && (st = read_file(s->cfg.tls_cert, &s->tls_cert_pem, err)))
            return st;
        if (!s->tls_key_pem && (st = read_file(s->cfg.tls_key, &s->tls_key_pem, err)))
            return st;
        flags |= MHD_USE_TLS;
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert_pem);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key_pem);
    }

    if (s->cfg.threads > 1)
        OPT(MHD_OPTION_THREAD_POOL_SIZE, s->cfg.threads, NULL);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, on_uri, s);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, EHR_HTTP_CONN_MEMORY, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, EHR_HTTP_CONN_TIMEOUT, NULL);
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT

    s->starter = pthread_self();
    atomic_store(&s->starting, true);
    s->daemon = MHD_start_daemon(flags, s->cfg.port, NULL, NULL, on_access, s, MHD_OPTION_ARRAY,
                                 ops, MHD_OPTION_END);
    atomic_store(&s->starting, false);
    if (!s->daemon)
        return ehr_err_set(err, EHR_EIO, "cannot listen on %s port %u",
                           s->cfg.bind ? s->cfg.bind : "0.0.0.0", (unsigned)s->cfg.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    return EHR_OK;
}

uint16_t ehr_http_server_port(const ehr_http_server *s)
{
    return s->port;
}

void ehr_http_server_stats(const ehr_http_server *s, struct ehr_http_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 6; i++) {
        out->by_class[i] = atomic_load_explicit(&s->counts[i], memory_order_relaxed);
        out->requests += out->by_class[i];
    }
    out->in_flight = atomic_load_explicit(&s->in_flight, memory_order_relaxed);
}

void ehr_http_server_free(ehr_http_server **sp)
{
    if (!sp || !*sp)
        return;
    ehr_http_server *s = *sp;
    if (s->daemon) {
        /* stop accepting, let the answers under way go out, then stop */
        MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
        struct timespec ts = {0, 10 * 1000 * 1000};
        for (int ms = 0; ms < EHR_HTTP_DRAIN_MS && atomic_load(&s->answering) > 0; ms += 10)
            nanosleep(&ts, NULL);
        MHD_stop_daemon(s->daemon);
        if (lfd != MHD_INVALID_SOCKET)
            close(lfd);
        struct ehr_http_stats st;
        ehr_http_server_stats(s, &st);
        ehr_log(EHR_LOG_INFO,
                "http: stopped after %lu responses (2xx %lu, 3xx %lu, 4xx %lu, 5xx %lu)",
                st.requests, st.by_class[2], st.by_class[3], st.by_class[4], st.by_class[5]);
    }
    for (size_t i = 0; i < s->n_routes; i++)
        free((char *)s->routes[i].prefix);
    free(s->routes);
    free(s->bind);
    free(s->cors_origins);
    free((char *)s->cfg.tls_cert);
    free((char *)s->cfg.tls_key);
    free(s->tls_cert_pem);
    if (s->tls_key_pem)
        explicit_bzero(s->tls_key_pem, strlen(s->tls_key_pem));
    free(s->tls_key_pem);
    ehr_http__gz_cleanup(s);
    pthread_mutex_destroy(&s->gz_lock);
    free(s);
    *sp = NULL;
}
