/* cmd_serve.c - ehr serve: the HTTP server with the FHIR API. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/util.h"
#include "fhir/xml.h"
#include "http/http.h"
#include "repo/repo.h"
#include "rest/rest.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ehr serve [--port N] [--db PATH | --postgres CONNINFO] [--bind ADDR]\n"
            "                 [--threads N] [--max-body BYTES] [--base-url URL]\n"
            "                 [--tls-cert FILE --tls-key FILE]\n"
            "\n"
            "Serves the FHIR R4 API at /fhir (GET /fhir/metadata describes it).\n"
            "  --port N          TCP port (default 8080; 0 picks a free one)\n"
            "  --db PATH         SQLite database file (default %s), created if missing\n"
            "  --postgres INFO   PostgreSQL connection string instead of SQLite\n"
            "  --bind ADDR       address to listen on (default 0.0.0.0)\n"
            "  --threads N       worker threads (default: 4 per CPU, so that writes waiting\n"
            "                    for the disk can share a commit)\n"
            "  --max-body BYTES  largest request body accepted (default 16777216); larger\n"
            "                    ones are answered 413\n"
            "  --base-url URL    the public base of the FHIR API, used in links\n"
            "                    (default: http://HOST/fhir from the request)\n"
            "  --tls-cert/--tls-key  PEM files: serve HTTPS\n",
            EHR_DEFAULT_DB);
}

static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > max)
        return false;
    *out = v;
    return true;
}

int ehr_cmd_serve(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    ehr_http_config hc = {.port = 8080, .max_body = 16u << 20};
    ehr_rest_config rc = {0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        unsigned long n;
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--port"))) {
            if (!parse_num(v, 65535, &n)) {
                fprintf(stderr, "ehr serve: --port takes a number from 0 to 65535\n");
                return 2;
            }
            hc.port = (uint16_t)n;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--threads"))) {
            if (!parse_num(v, 1024, &n)) {
                fprintf(stderr, "ehr serve: --threads takes a number from 0 to 1024\n");
                return 2;
            }
            hc.threads = (unsigned)n;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--max-body"))) {
            if (!parse_num(v, 1ul << 31, &n) || n == 0) {
                fprintf(stderr, "ehr serve: --max-body takes a number of bytes (1 to 2^31)\n");
                return 2;
            }
            hc.max_body = n;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--bind"))) {
            hc.bind = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--base-url"))) {
            rc.base_url = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--tls-cert"))) {
            hc.tls_cert = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--tls-key"))) {
            hc.tls_key = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--mllp-port"))) {
            fprintf(stderr, "ehr serve: --mllp-port: HTTP v2 over MLLP is not in this build yet\n");
            return 2;
        } else {
            fprintf(stderr, "ehr serve: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (hc.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        hc.threads = (unsigned)(n > 0 ? n * 4 : 4);
    }
    if ((hc.tls_cert == NULL) != (hc.tls_key == NULL)) {
        fprintf(stderr, "ehr serve: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (!ehr_opts_store_target(&so, "serve"))
        return 2;
    rc.max_body = hc.max_body;

    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        return 1;
    }
    hc.error_body = ehr_rest_error_body;
    ehr_http_server *srv = ehr_http_server_new(&hc);
    ehr_rest *rest = NULL;
    if (!srv || ehr_rest_mount(srv, repo, &rc, &rest)) {
        fprintf(stderr, "ehr serve: out of memory\n");
        ehr_http_server_free(&srv);
        ehr_repo_free(&repo);
        return 1;
    }
    ehr_fhir_xml_init(); /* before the worker threads exist */
    if (ehr_http_server_start(srv, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        ehr_http_server_free(&srv);
        ehr_rest_free(&rest);
        ehr_repo_free(&repo);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("ehr: serving the FHIR R4 API at %s://%s:%u/fhir (database: %s)\n",
           hc.tls_cert ? "https" : "http", hc.bind ? hc.bind : "localhost",
           ehr_http_server_port(srv), so.postgres ? "PostgreSQL" : (so.db ? so.db : EHR_DEFAULT_DB));
    fflush(stdout);
    while (!stop_requested)
        pause();
    ehr_log(EHR_LOG_INFO, "serve: stopping");
    ehr_http_server_free(&srv);
    ehr_rest_free(&rest);
    ehr_repo_free(&repo);
    return 0;
}
