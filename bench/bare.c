/*
 * bare.c - the baseline for bench/run.sh: libmicrohttpd alone, with the
 * same daemon settings as src/http/server.c (internal epoll thread pool,
 * one thread per CPU, same connection memory and timeout), answering
 *
 *   GET  anything  200 with a fixed FHIR Patient (bench/patient.json, ~1 KiB;
 *                  one prebuilt response reused)
 *   POST anything  201 with a fixed small body and a Location header, after
 *                  reading the whole request body
 *
 * so that "ehr serve" (and the HTTP layer alone, bench/httpd.c) can be
 * reported as a fraction of what MHD itself does on this machine.
 *
 * usage: bare [--port N] [--threads N] [--body FILE]; runs until SIGINT or
 * SIGTERM. FILE defaults to bench/patient.json (run from the source root).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

static const char created[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                              "\"information\",\"code\":\"informational\"}]}";

static struct MHD_Response *read_resp;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
        (*len)--;
    return buf;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    static int started;
    if (!*con_cls) {
        *con_cls = &started; /* first call: headers only */
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* a real server would keep it; reading is what counts */
        return MHD_YES;
    }
    if (strcmp(method, "POST") == 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            sizeof created - 1, (void *)created, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Content-Type", "application/fhir+json");
        MHD_add_response_header(r, "Location", "http://127.0.0.1/fhir/Patient/bench/_history/1");
        MHD_add_response_header(r, "ETag", "W/\"1\"");
        enum MHD_Result ok = MHD_queue_response(conn, 201, r);
        MHD_destroy_response(r);
        return ok;
    }
    return MHD_queue_response(conn, 200, read_resp);
}

int main(int argc, char **argv)
{
    unsigned port = 8081, threads = 0;
    const char *body_file = "bench/patient.json";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--body") == 0)
            body_file = argv[i + 1];
        else {
            fprintf(stderr, "usage: bare [--port N] [--threads N] [--body FILE]\n");
            return 2;
        }
    }
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    size_t body_len;
    char *body = slurp(body_file, &body_len);
    if (!body) {
        fprintf(stderr, "bare: cannot read %s\n", body_file);
        return 1;
    }
    read_resp = MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(read_resp, "Content-Type", "application/fhir+json");
    MHD_add_response_header(read_resp, "ETag", "W/\"1\"");
    MHD_add_response_header(read_resp, "Last-Modified", "Mon, 23 Nov 2026 18:39:04 GMT");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before MHD's threads inherit the mask */

    /* as src/http/server.c: a pool only with more than one thread */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_access, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        threads > 1 ? threads : 0u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 << 10,
        MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bare: cannot listen on port %u\n", port);
        return 1;
    }
    fprintf(stderr, "bare: listening on port %u with %u threads\n", port, threads);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(read_resp);
    return 0;
}
