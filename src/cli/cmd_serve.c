/* cmd_serve.c - ehr serve: the HTTP server with the FHIR API. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "auth/auth.h"
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
            "  --max-bundle-entries N  most entries in one batch or transaction Bundle\n"
            "                    (default 10000); more are answered 413\n"
            "  --base-url URL    the public base of the FHIR API, used in links\n"
            "                    (default: http://HOST/fhir from the request)\n"
            "  --tls-cert/--tls-key  PEM files: serve HTTPS\n"
            "\n"
            "Security (docs/security.md): /fhir needs an access token (SMART on FHIR,\n"
            "/.well-known/smart-configuration; or ehr token on this host). On a database\n"
            "without users, a first admin is made and its password written to a file.\n"
            "  --clinician-access panel|all  physicians and nurses see the charts of\n"
            "                    their panel (ehr user link), others by break-glass (panel,\n"
            "                    the default), or every chart (all)\n"
            "  --mfa-roles LIST  roles that must use TOTP (default admin,physician,nurse;\n"
            "                    \"none\" for none)\n"
            "  --break-glass-roles LIST  who may use emergency access (physician,nurse)\n"
            "  --break-glass-minutes N   how long it lasts (60)\n"
            "  --session-idle S  seconds of inactivity that end a session (900)\n"
            "  --session-max S   longest session, seconds (43200)\n"
            "  --token-ttl S     access token lifetime, seconds (3600)\n"
            "  --lockout-attempts N, --lockout-seconds S  lock an account after N failed\n"
            "                    sign-ins in a row, for S seconds (5, 900)\n"
            "  --insecure-no-auth  no tokens needed on /fhir (local development only:\n"
            "                    listens on 127.0.0.1; every access still audited)\n",
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

/* Seconds option: false (message printed) when out of range. */
static bool seconds(const char *opt, const char *v, unsigned long min, unsigned long max, int *out)
{
    unsigned long n;
    if (!parse_num(v, max, &n) || n < min) {
        fprintf(stderr, "ehr serve: %s takes a number from %lu to %lu\n", opt, min, max);
        return false;
    }
    *out = (int)n;
    return true;
}

/*
 * First start: no users yet. Make an admin with a random password, written
 * to a file only its owner can read (never to the log).
 */
static int bootstrap_admin(ehr_auth *auth, const struct ehr_store_opts *so)
{
    size_t n = 0;
    ehr_err err = {{0}};
    if (ehr_auth_user_count(auth, &n, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        return 1;
    }
    if (n > 0)
        return 0;
    unsigned char r[12];
    char pw[32];
    ehr_random(r, sizeof r);
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(pw + 2 * i, 3, "%02x", r[i]);
    char path[4200];
    /* SQLite: beside the database file; PostgreSQL: in the working folder */
    if (so->postgres)
        snprintf(path, sizeof path, "ehr-postgres.admin-password");
    else
        snprintf(path, sizeof path, "%s.admin-password", so->db ? so->db : EHR_DEFAULT_DB);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "ehr serve: no users yet, and %s cannot be created to hold the first "
                        "admin's password; add one: ehr user add --username admin --password - "
                        "--role admin\n",
                path);
        return 1;
    }
    ehr_auth_actor who = {.name = "system/bootstrap", .client = "cli"};
    if (ehr_auth_user_add(auth, &who, "admin", pw, EHR_ROLE_ADMIN, NULL, 0, NULL, &err) ||
        write(fd, pw, strlen(pw)) != (ssize_t)strlen(pw) || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "ehr serve: making the first admin failed: %s\n", err.msg);
        close(fd);
        unlink(path);
        return 1;
    }
    close(fd);
    printf("ehr: first start: made the user 'admin'; its password is in %s (readable by you "
           "only). It sets up two-step sign-in at first sign-in. A token for scripts:\n"
           "  ehr token --db %s --user admin --scope \"user/*.cruds\"\n",
           path, so->db ? so->db : EHR_DEFAULT_DB);
    return 0;
}

int ehr_cmd_serve(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    ehr_http_config hc = {.port = 8080, .max_body = 16u << 20};
    ehr_rest_config rc = {0};
    ehr_auth_config ac;
    ehr_auth_config_defaults(&ac);
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
        } else if ((v = ehr_opts_value(argc, argv, &i, "--max-bundle-entries"))) {
            if (!parse_num(v, 1000000, &n) || n == 0) {
                fprintf(stderr, "ehr serve: --max-bundle-entries takes a number from 1 to "
                                "1000000\n");
                return 2;
            }
            rc.max_bundle_entries = n;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--bind"))) {
            hc.bind = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--base-url"))) {
            rc.base_url = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--tls-cert"))) {
            hc.tls_cert = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--tls-key"))) {
            hc.tls_key = v;
        } else if (!strcmp(argv[i], "--insecure-no-auth")) {
            ac.no_auth = true;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--clinician-access"))) {
            if (strcmp(v, "panel") && strcmp(v, "all")) {
                fprintf(stderr, "ehr serve: --clinician-access is panel or all\n");
                return 2;
            }
            ac.clinicians_panel = !strcmp(v, "panel");
        } else if ((v = ehr_opts_value(argc, argv, &i, "--mfa-roles"))) {
            const char *bad = NULL;
            if (!ehr_role_list(v, &ac.mfa_roles, &bad)) {
                fprintf(stderr, "ehr serve: --mfa-roles: unknown role '%s'\n", bad ? bad : v);
                return 2;
            }
        } else if ((v = ehr_opts_value(argc, argv, &i, "--break-glass-roles"))) {
            const char *bad = NULL;
            if (!ehr_role_list(v, &ac.glass_roles, &bad)) {
                fprintf(stderr, "ehr serve: --break-glass-roles: unknown role '%s'\n",
                        bad ? bad : v);
                return 2;
            }
        } else if ((v = ehr_opts_value(argc, argv, &i, "--break-glass-minutes"))) {
            if (!seconds("--break-glass-minutes", v, 1, 24 * 60, &ac.glass_minutes))
                return 2;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--session-idle"))) {
            if (!seconds("--session-idle", v, 1, 86400, &ac.session_idle))
                return 2;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--session-max"))) {
            if (!seconds("--session-max", v, 1, 7 * 86400, &ac.session_max))
                return 2;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--token-ttl"))) {
            if (!seconds("--token-ttl", v, 1, 86400, &ac.access_ttl))
                return 2;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--lockout-attempts"))) {
            if (!seconds("--lockout-attempts", v, 1, 1000, &ac.lockout_attempts))
                return 2;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--lockout-seconds"))) {
            if (!seconds("--lockout-seconds", v, 1, 7 * 86400, &ac.lockout_seconds))
                return 2;
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
    if (ac.no_auth) {
        /* without authentication, never on a network */
        if (!hc.bind)
            hc.bind = "127.0.0.1";
        if (strcmp(hc.bind, "127.0.0.1") && strcmp(hc.bind, "::1") && strcmp(hc.bind, "localhost")) {
            fprintf(stderr, "ehr serve: --insecure-no-auth listens on the loopback only "
                            "(--bind 127.0.0.1)\n");
            return 2;
        }
    }
    ac.tls = hc.tls_cert != NULL;
    ac.base_url = NULL;
    if (rc.base_url) {
        /* the origin of the FHIR base: "https://host/fhir" -> "https://host" */
        static char origin[1024];
        snprintf(origin, sizeof origin, "%s", rc.base_url);
        char *f = strstr(origin, "/fhir");
        if (f)
            *f = '\0';
        ac.base_url = origin;
    }
    ac.error_body = ehr_rest_error_body;

    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        return 1;
    }
    ehr_auth *auth = NULL;
    if (ehr_auth_new(repo, &ac, &auth, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        ehr_repo_free(&repo);
        return 1;
    }
    if (!ac.no_auth && bootstrap_admin(auth, &so)) {
        ehr_auth_free(&auth);
        ehr_repo_free(&repo);
        return 1;
    }
    hc.error_body = ehr_rest_error_body;
    ehr_http_server *srv = ehr_http_server_new(&hc);
    ehr_rest *rest = NULL;
    /* the auth guard first: every /fhir request is decided before REST sees it */
    if (!srv || ehr_auth_mount(auth, srv) || ehr_rest_mount(srv, repo, &rc, &rest)) {
        fprintf(stderr, "ehr serve: out of memory\n");
        ehr_http_server_free(&srv);
        ehr_auth_free(&auth);
        ehr_repo_free(&repo);
        return 1;
    }
    ehr_fhir_xml_init(); /* before the worker threads exist */
    if (ehr_http_server_start(srv, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        ehr_http_server_free(&srv);
        ehr_rest_free(&rest);
        ehr_auth_free(&auth);
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
    if (ac.no_auth)
        printf("ehr: WARNING: --insecure-no-auth: /fhir answers without a token (loopback "
               "only; every access is still audited)\n");
    else
        printf("ehr: /fhir needs an access token: see /.well-known/smart-configuration, or "
               "ehr token --user NAME --scope \"user/*.rs\" on this host\n");
    fflush(stdout);
    while (!stop_requested)
        pause();
    ehr_log(EHR_LOG_INFO, "serve: stopping");
    ehr_http_server_free(&srv);
    ehr_rest_free(&rest);
    ehr_auth_free(&auth);
    ehr_repo_free(&repo);
    return 0;
}
