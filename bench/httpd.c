/*
 * httpd.c - the HTTP layer alone (src/http) for bench/run.sh: the same
 * answers as bench/bare.c, given through ehr_http_server and a handler
 * that does what the FHIR read path does with stored bytes: copy them into
 * the response body and set the headers. The gap between this and bare is
 * what src/http costs; the gap between this and "ehr serve" is FHIR,
 * auth and storage.
 *
 *   GET  /fhir/...  200 with the Patient from --body (ETag, Last-Modified)
 *   POST /fhir/...  201 with Location and a small body
 *
 * usage: httpd [--port N] [--threads N] [--body FILE]; runs until SIGINT
 * or SIGTERM.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/http.h"

static const char created[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                              "\"information\",\"code\":\"informational\"}]}";

struct body {
    char *data;
    size_t len;
};

static int h_fhir(void *ctx, ehr_http_request *req, ehr_http_response *res)
{
    const struct body *b = ctx;
    res->content_type = "application/fhir+json";
    if (strcmp(req->method, "POST") == 0) {
        res->status = 201;
        ehr_http_set_header(req, res, "Location", "http://127.0.0.1/fhir/Patient/bench/_history/1");
        ehr_http_set_header(req, res, "ETag", "W/\"1\"");
        ehr_buf_append(&res->body, created, sizeof created - 1);
        return EHR_HTTP_HANDLED;
    }
    ehr_http_set_header(req, res, "ETag", "W/\"1\"");
    ehr_http_set_header(req, res, "Last-Modified", "Mon, 23 Nov 2026 18:39:04 GMT");
    ehr_buf_append(&res->body, b->data, b->len);
    return EHR_HTTP_HANDLED;
}

int main(int argc, char **argv)
{
    ehr_http_config cfg = {.port = 8082};
    const char *body_file = "bench/patient.json";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            cfg.port = (uint16_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            cfg.threads = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--body") == 0)
            body_file = argv[i + 1];
        else {
            fprintf(stderr, "usage: httpd [--port N] [--threads N] [--body FILE]\n");
            return 2;
        }
    }
    FILE *f = fopen(body_file, "rb");
    if (!f) {
        fprintf(stderr, "httpd: cannot read %s\n", body_file);
        return 1;
    }
    static char buf[1 << 20];
    struct body b = {buf, fread(buf, 1, sizeof buf, f)};
    fclose(f);
    while (b.len > 0 && (buf[b.len - 1] == '\n' || buf[b.len - 1] == '\r'))
        b.len--;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    ehr_http_server *s = ehr_http_server_new(&cfg);
    ehr_err err = {.msg = "cannot add the handler"};
    if (!s || ehr_http_server_add(s, "/fhir/", h_fhir, &b) || ehr_http_server_start(s, &err)) {
        fprintf(stderr, "httpd: %s\n", s ? err.msg : "out of memory");
        ehr_http_server_free(&s);
        return 1;
    }
    fprintf(stderr, "httpd: listening on port %u\n", ehr_http_server_port(s));
    int sig;
    sigwait(&set, &sig);
    ehr_http_server_free(&s);
    return 0;
}
