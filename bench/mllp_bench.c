/*
 * mllp_bench.c - an MLLP load generator for bench/hl7v2.sh: N connections,
 * each sending a message, waiting for its ACK, and sending the next, for a
 * given time. The message is a template file in which every "@ID@" is
 * replaced by a unique control id (so no message is a duplicate).
 *
 *   mllp_bench HOST PORT CONNECTIONS SECONDS TEMPLATE
 *
 * Prints one line:
 *   BENCH rps=R p50_us=A p99_us=B errors=E acked=N notaa=M
 * (errors: transport failures; notaa: ACKs whose MSA-1 is not AA).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host;
static int port, seconds;
static char *tmpl;
static size_t tmpl_len;
static double t_end;

struct worker {
    int n;
    pthread_t th;
    long acked, notaa, errors;
    size_t n_lat, cap_lat;
    unsigned *lat;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static size_t build(char *out, size_t cap, const char *id)
{
    size_t o = 0, idl = strlen(id);
    for (size_t i = 0; i < tmpl_len && o + idl + 4 < cap;) {
        if (!strncmp(tmpl + i, "@ID@", 4)) {
            memcpy(out + o, id, idl);
            o += idl;
            i += 4;
        } else {
            char c = tmpl[i++];
            out[o++] = c == '\n' ? '\r' : c;
        }
    }
    return o;
}

static void *run(void *p)
{
    struct worker *w = p;
    int fd = dial();
    char *msg = malloc(tmpl_len * 2 + 4096), ack[65536];
    size_t cap = tmpl_len * 2 + 4096;
    long i = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(w->n * 7919);
    while (now() < t_end) {
        if (fd < 0) {
            w->errors++;
            usleep(100000);
            fd = dial();
            continue;
        }
        char id[48];
        snprintf(id, sizeof id, "B%x-%d-%ld", rand_r(&seed) & 0xffff, w->n, i++);
        msg[0] = 0x0b;
        size_t n = build(msg + 1, cap - 4, id) + 1;
        msg[n++] = 0x1c;
        msg[n++] = 0x0d;
        double t0 = now();
        if (send(fd, msg, n, MSG_NOSIGNAL) != (ssize_t)n) {
            close(fd);
            fd = -1;
            continue;
        }
        size_t got = 0;
        while (!memchr(ack, 0x1c, got) && got < sizeof ack) {
            ssize_t r = recv(fd, ack + got, sizeof ack - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (!memchr(ack, 0x1c, got)) {
            close(fd);
            fd = -1;
            continue;
        }
        double dt = now() - t0;
        if (w->n_lat == w->cap_lat) {
            w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 4096;
            w->lat = realloc(w->lat, w->cap_lat * sizeof *w->lat);
        }
        w->lat[w->n_lat++] = (unsigned)(dt * 1e6);
        w->acked++;
        ack[got < sizeof ack ? got : sizeof ack - 1] = '\0';
        char *msa = memmem(ack, got, "MSA|", 4);
        if (!msa || strncmp(msa + 4, "AA", 2))
            w->notaa++;
    }
    if (fd >= 0)
        close(fd);
    free(msg);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: mllp_bench HOST PORT CONNECTIONS SECONDS TEMPLATE\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    int conns = atoi(argv[3]);
    seconds = atoi(argv[4]);
    FILE *f = fopen(argv[5], "rb");
    if (!f || conns < 1 || conns > 256 || seconds < 1) {
        fprintf(stderr, "mllp_bench: bad arguments or unreadable template\n");
        return 2;
    }
    fseek(f, 0, SEEK_END);
    tmpl_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    tmpl = malloc(tmpl_len + 1);
    if (fread(tmpl, 1, tmpl_len, f) != tmpl_len)
        return 2;
    fclose(f);
    while (tmpl_len && (tmpl[tmpl_len - 1] == '\n' || tmpl[tmpl_len - 1] == '\r'))
        tmpl_len--;
    struct worker *w = calloc((size_t)conns, sizeof *w);
    double t0 = now();
    t_end = t0 + seconds;
    for (int i = 0; i < conns; i++) {
        w[i].n = i;
        pthread_create(&w[i].th, NULL, run, &w[i]);
    }
    long acked = 0, notaa = 0, errors = 0;
    size_t n = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(w[i].th, NULL);
        acked += w[i].acked;
        notaa += w[i].notaa;
        errors += w[i].errors;
        n += w[i].n_lat;
    }
    double el = now() - t0;
    unsigned *all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, w[i].lat, w[i].n_lat * sizeof *all);
        k += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, n, sizeof *all, cmp);
    printf("BENCH rps=%.1f p50_us=%u p99_us=%u errors=%ld acked=%ld notaa=%ld\n", acked / el,
           n ? all[n / 2] : 0, n ? all[(size_t)(n * 0.99)] : 0, errors, acked, notaa);
    free(all);
    free(w);
    free(tmpl);
    return 0;
}
