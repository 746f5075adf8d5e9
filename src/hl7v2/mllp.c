/*
 * mllp.c - the MLLP listener and client (mllp.h).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/util.h"
#include "hl7v2/mllp.h"

struct conn_slot {
    int fd;
    pthread_t th;
    bool used, done;
    char peer[64];
    struct ehr_mllp_server *srv;
};

struct ehr_mllp_server {
    ehr_hl7_engine *engine;
    ehr_mllp_config cfg;
    int lfd;
    uint16_t port;
    pthread_t accept_th;
    pthread_mutex_t lock;
    bool stopping;
    struct conn_slot *slots;
};

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_frame(int fd, const char *msg, size_t len)
{
    char vt = EHR_MLLP_VT, end[2] = {EHR_MLLP_FS, EHR_MLLP_CR};
    return write_all(fd, &vt, 1) && write_all(fd, msg, len) && write_all(fd, end, 2);
}

/* Handle one complete frame's content. */
static bool handle(struct conn_slot *c, const char *msg, size_t len)
{
    ehr_repo_ctx ctx = {.user = "mllp", .client = c->peer, .role = "system"};
    ehr_hl7_reply r;
    ehr_hl7_receive(c->srv->engine, &ctx, msg, len, &r);
    bool ok = true;
    if (r.accept.len)
        ok = send_frame(c->fd, r.accept.data, r.accept.len);
    if (ok && r.app.len)
        ok = send_frame(c->fd, r.app.data, r.app.len);
    ehr_hl7_reply_free(&r);
    return ok;
}

static void too_large(struct conn_slot *c, size_t limit)
{
    ehr_hl7_error e;
    ehr_hl7_fail(&e, EHR_ELIMIT, 207, "", 0, 0,
                 "the message is larger than the limit of %zu bytes and was discarded", limit);
    ehr_buf b = EHR_BUF_INIT;
    char id[EHR_ID_LEN];
    ehr_id_new(id);
    id[20] = '\0';
    if (!ehr_hl7_ack(NULL, EHR_HL7_AR, &e, "EHR", "EHR", id, &b))
        send_frame(c->fd, b.data, b.len);
    ehr_buf_free(&b);
}

static void *conn_main(void *p)
{
    struct conn_slot *c = p;
    struct ehr_mllp_server *s = c->srv;
    size_t limit = EHR_HL7_MAX_MESSAGE;
    ehr_buf frame = EHR_BUF_INIT;
    bool in_frame = false, discarding = false, after_fs = false;
    size_t stray = 0;
    char buf[65536];
    int idle_ms = (int)(s->cfg.idle_seconds ? s->cfg.idle_seconds : 600) * 1000;
    for (;;) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pf, 1, idle_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break; /* idle or error */
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (after_fs) {
                after_fs = false;
                if (ch == EHR_MLLP_CR)
                    continue; /* the proper end of a frame */
                /* FS without CR: the frame was taken as ended; go on */
            }
            if (!in_frame) {
                if (ch == EHR_MLLP_VT) {
                    in_frame = true;
                    discarding = false;
                    ehr_buf_reset(&frame);
                } else if (ch != '\r' && ch != '\n') {
                    stray++;
                }
                continue;
            }
            if (ch == EHR_MLLP_FS) {
                in_frame = false;
                after_fs = true;
                if (discarding) {
                    too_large(c, limit);
                } else if (!handle(c, frame.data ? frame.data : "", frame.len)) {
                    goto out;
                }
                ehr_buf_reset(&frame);
                continue;
            }
            if (ch == EHR_MLLP_VT) {
                /* a new start inside a frame: the unfinished one is dropped */
                ehr_log(EHR_LOG_WARN,
                        "mllp: %s: a frame began before the previous one ended "
                        "(%zu bytes dropped)",
                        c->peer, frame.len);
                ehr_buf_reset(&frame);
                discarding = false;
                continue;
            }
            if (discarding)
                continue;
            if (frame.len >= limit) {
                discarding = true;
                ehr_buf_free(&frame);
                continue;
            }
            if (ehr_buf_putc(&frame, ch)) {
                discarding = true;
                ehr_buf_free(&frame);
            }
        }
    }
out:
    if (stray)
        ehr_log(EHR_LOG_WARN, "mllp: %s: %zu bytes outside MLLP frames were skipped", c->peer,
                stray);
    ehr_buf_free(&frame);
    pthread_mutex_lock(&s->lock);
    close(c->fd);
    c->fd = -1;
    c->done = true;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void reap(struct ehr_mllp_server *s, unsigned max)
{
    for (unsigned i = 0; i < max; i++) {
        pthread_mutex_lock(&s->lock);
        bool finished = s->slots[i].used && s->slots[i].done;
        pthread_mutex_unlock(&s->lock);
        if (finished) {
            pthread_join(s->slots[i].th, NULL);
            s->slots[i].used = false;
        }
    }
}

static void *accept_main(void *p)
{
    struct ehr_mllp_server *s = p;
    unsigned max = s->cfg.max_connections;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept(s->lfd, (struct sockaddr *)&ss, &sl);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* the listening socket was shut down */
        }
        reap(s, max);
        unsigned slot = max;
        for (unsigned i = 0; i < max; i++)
            if (!s->slots[i].used) {
                slot = i;
                break;
            }
        if (slot == max) {
            /* at the limit: close at once; the sender retries */
            ehr_log(EHR_LOG_WARN, "mllp: %u connections open, the limit; one refused", max);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn_slot *c = &s->slots[slot];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->srv = s;
        c->used = true;
        char host[48] = "?", serv[8] = "";
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(c->peer, sizeof c->peer, "%s", host);
        pthread_mutex_lock(&s->lock);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping || pthread_create(&c->th, NULL, conn_main, c)) {
            close(fd);
            c->used = false;
        }
    }
    return NULL;
}

ehr_status ehr_mllp_server_start(ehr_hl7_engine *engine, const ehr_mllp_config *cfg,
                                 ehr_mllp_server **out, ehr_err *err)
{
    struct ehr_mllp_server *s = calloc(1, sizeof *s);
    if (!s)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    s->engine = engine;
    s->cfg = *cfg;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 64;
    s->slots = calloc(s->cfg.max_connections, sizeof *s->slots);
    pthread_mutex_init(&s->lock, NULL);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    int gai = getaddrinfo(cfg->bind, port, &hints, &ai);
    if (gai || !s->slots) {
        free(s->slots);
        free(s);
        return ehr_err_set(err, EHR_EIO, "MLLP: cannot use address %s: %s",
                           cfg->bind ? cfg->bind : "*", gai ? gai_strerror(gai) : "no memory");
    }
    s->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->lfd >= 0)
        setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s->lfd < 0 || bind(s->lfd, ai->ai_addr, ai->ai_addrlen) || listen(s->lfd, 128)) {
        ehr_status st = ehr_err_set(err, EHR_EIO, "MLLP: cannot listen on port %u: %s", cfg->port,
                                    strerror(errno));
        if (s->lfd >= 0)
            close(s->lfd);
        freeaddrinfo(ai);
        free(s->slots);
        free(s);
        return st;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    if (pthread_create(&s->accept_th, NULL, accept_main, s)) {
        close(s->lfd);
        free(s->slots);
        free(s);
        return ehr_err_set(err, EHR_ENOMEM, "MLLP: cannot start a thread");
    }
    *out = s;
    return EHR_OK;
}

uint16_t ehr_mllp_server_port(const ehr_mllp_server *s)
{
    return s->port;
}

void ehr_mllp_server_stop(ehr_mllp_server **sp)
{
    struct ehr_mllp_server *s = sp ? *sp : NULL;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->accept_th, NULL);
    for (unsigned i = 0; i < s->cfg.max_connections; i++) {
        pthread_mutex_lock(&s->lock);
        if (s->slots[i].used && s->slots[i].fd >= 0)
            shutdown(s->slots[i].fd, SHUT_RD); /* the message in hand is finished first */
        pthread_mutex_unlock(&s->lock);
        if (s->slots[i].used)
            pthread_join(s->slots[i].th, NULL);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->slots);
    free(s);
    *sp = NULL;
}

/* -- client -- */

ehr_status ehr_mllp_connect(const char *host, uint16_t port, int timeout, int *fd, ehr_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV},
                    *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int gai = getaddrinfo(host, ps, &hints, &ai);
    if (gai)
        return ehr_err_set(err, EHR_EIO, "%s: %s", host, gai_strerror(gai));
    int s = -1;
    for (struct addrinfo *a = ai; a && s < 0; a = a->ai_next) {
        s = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            continue;
        struct timeval tv = {.tv_sec = timeout};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(s, a->ai_addr, a->ai_addrlen)) {
            close(s);
            s = -1;
        }
    }
    freeaddrinfo(ai);
    if (s < 0)
        return ehr_err_set(err, EHR_EIO, "cannot connect to %s:%u: %s", host, port,
                           strerror(errno));
    *fd = s;
    return EHR_OK;
}

/* Read one frame's content into out. */
static ehr_status read_frame(int fd, ehr_buf *out, ehr_err *err)
{
    bool in = false;
    char ch;
    for (;;) {
        ssize_t n = recv(fd, &ch, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ehr_err_set(err, EHR_EIO, "no acknowledgement: %s",
                               n == 0 ? "the connection was closed" : strerror(errno));
        if (!in) {
            in = ch == EHR_MLLP_VT;
            continue;
        }
        if (ch == EHR_MLLP_FS) {
            recv(fd, &ch, 1, MSG_DONTWAIT); /* the CR, when there */
            return EHR_OK;
        }
        if (out->len > EHR_HL7_MAX_MESSAGE)
            return ehr_err_set(err, EHR_ELIMIT, "acknowledgement too large");
        ehr_buf_putc(out, ch);
    }
}

ehr_status ehr_mllp_exchange(int fd, const char *msg, size_t len, int timeout, ehr_buf *ack,
                             ehr_err *err)
{
    (void)timeout;
    if (!send_frame(fd, msg, len))
        return ehr_err_set(err, EHR_EIO, "sending failed: %s", strerror(errno));
    /* enhanced mode: a commit ACK (CA) may come first, the application ACK after */
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m = NULL;
    bool want_app = true;
    if (a && !ehr_hl7_parse(msg, len, NULL, a, &m, NULL) && ehr_hl7_enhanced(m)) {
        ehr_hl7_header h;
        ehr_hl7_header_get(m, &h);
        want_app = !strcmp(h.app_ack, "AL"); /* ER/SU: maybe none; do not wait */
    }
    ehr_status st = EHR_OK;
    if (m && ehr_hl7_enhanced(m)) {
        ehr_hl7_header h;
        ehr_hl7_header_get(m, &h);
        /* the sender asked for no acknowledgement at all (2.9.3: NE, NE) */
        if (!ehr_hl7_ack_wanted(h.accept_ack, true) && !ehr_hl7_ack_wanted(h.accept_ack, false) &&
            strcmp(h.app_ack, "AL") && strcmp(h.app_ack, "ER") && strcmp(h.app_ack, "SU")) {
            ehr_arena_free(&a);
            return EHR_OK;
        }
    }
    for (;;) {
        ehr_buf one = EHR_BUF_INIT;
        st = read_frame(fd, &one, err);
        if (st) {
            ehr_buf_free(&one);
            break;
        }
        ehr_buf_append(ack, one.data ? one.data : "", one.len);
        if (one.len && one.data[one.len - 1] != '\r')
            ehr_buf_putc(ack, '\r');
        ehr_hl7_msg *am = NULL;
        const char *code = "";
        if (a && !ehr_hl7_parse(one.data ? one.data : "", one.len, NULL, a, &am, NULL))
            code = ehr_hl7_val(ehr_hl7_seg_find(am, "MSA", 1), 1, 1);
        ehr_buf_free(&one);
        if (!(m && ehr_hl7_enhanced(m) && !strcmp(code, "CA") && want_app))
            break;
    }
    ehr_arena_free(&a);
    return st;
}
