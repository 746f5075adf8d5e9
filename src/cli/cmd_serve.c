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
#include "cli/hl7_http.h"
#include "cli/opts.h"
#include "core/util.h"
#include "fhir/xml.h"
#include "hl7v2/engine.h"
#include "hl7v2/mllp.h"
#include "hl7v2/outbound.h"
#include "http/http.h"
#include "http/static.h"
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
            "                 [--tls-cert FILE --tls-key FILE] [--mllp-port N]\n"
            "                 [--hl7-unknown-patient create|reject] [--audit-sync MS]\n"
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
            "  --export-dir DIR  where bulk $export files are written (default DB.exports;\n"
            "                    with --postgres, ./ehr-postgres.exports)\n"
            "  --base-url URL    the public base of the FHIR API, used in links\n"
            "                    (default: http://HOST/fhir from the request)\n"
            "  --tls-cert/--tls-key  PEM files: serve HTTPS\n"
            "  --web-root DIR    the clinician app's files, served at / (default: web/\n"
            "                    beside the program's folder, ../share/ehr/web, or the\n"
            "                    source tree's web/); --no-web serves none\n"
            "  --mllp-port N     also receive HL7 v2 over MLLP on this port (0 picks one),\n"
            "                    on the --bind address; POST /hl7v2 takes them over HTTP\n"
            "  --hl7-unknown-patient create|reject  results, vaccinations, appointments\n"
            "                    for a patient not on file: create it from PID (default)\n"
            "                    or answer AE (docs/hl7v2.md)\n"
            "  --hl7-registry HOST:PORT  send every Immunization recorded here to this\n"
            "                    immunization registry as VXU^V04 over MLLP (queued, retried)\n"
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
            "                    listens on 127.0.0.1; every access still audited)\n"
            "  --audit-sync MS   the audit records of reads, searches, denials and sign-ins\n"
            "                    are appended to DB.audit-journal before the answer, and\n"
            "                    every MS milliseconds (default 100, at most 60000) the\n"
            "                    journal is synced to disk and applied into the hash-chained\n"
            "                    audit log; records left by a crash are applied at the next\n"
            "                    start. A power cut can lose the read records of the last MS\n"
            "                    milliseconds (never a write's). 0: no journal; each read\n"
            "                    waits for its record to be committed (slower)\n",
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
        fprintf(stderr,
                "ehr serve: no users yet, and %s cannot be created to hold the first "
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

/*
 * The web apps' folder when --web-root is not given: web/ one level above
 * the program (build/ehr -> web/), an installed ../share/ehr/web, then the
 * source tree the program was built from. NULL when none has index.html.
 */
static const char *find_web_root(char *buf, size_t n)
{
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *tails[] = {"/../web", "/../share/ehr/web"};
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
            char index[4200];
            snprintf(buf, n, "%s%s", exe, tails[i]);
            snprintf(index, sizeof index, "%s/index.html", buf);
            if (access(index, R_OK) == 0)
                return buf;
        }
    }
#ifdef EHR_SOURCE_WEB
    snprintf(buf, n, "%s", EHR_SOURCE_WEB);
    char index[4200];
    snprintf(index, sizeof index, "%s/index.html", buf);
    if (access(index, R_OK) == 0)
        return buf;
#endif
    return NULL;
}

int ehr_cmd_serve(int argc, char **argv)
{
    const char *web_root = NULL;
    bool no_web = false;
    struct ehr_store_opts so = {0};
    ehr_http_config hc = {.port = 8080, .max_body = 16u << 20};
    unsigned long audit_sync = 100;
    ehr_rest_config rc = {0};
    ehr_auth_config ac;
    ehr_auth_config_defaults(&ac);
    ehr_hl7_config hl7c = {0};
    long mllp_port = -1;
    ehr_hl7_outbound_config obc = {0};
    char registry_host[256] = "";
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
        } else if ((v = ehr_opts_value(argc, argv, &i, "--export-dir"))) {
            rc.export_dir = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--bind"))) {
            hc.bind = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--base-url"))) {
            rc.base_url = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--tls-cert"))) {
            hc.tls_cert = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--tls-key"))) {
            hc.tls_key = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--web-root"))) {
            web_root = v;
        } else if (!strcmp(argv[i], "--no-web")) {
            no_web = true;
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
        } else if ((v = ehr_opts_value(argc, argv, &i, "--audit-sync"))) {
            if (!parse_num(v, 60000, &audit_sync)) {
                fprintf(stderr, "ehr serve: --audit-sync takes milliseconds from 0 to 60000\n");
                return 2;
            }
        } else if ((v = ehr_opts_value(argc, argv, &i, "--mllp-port"))) {
            if (!parse_num(v, 65535, &n)) {
                fprintf(stderr, "ehr serve: --mllp-port takes a number from 0 to 65535\n");
                return 2;
            }
            mllp_port = (long)n;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--hl7-registry"))) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v || !parse_num(colon + 1, 65535, &n) || n == 0 ||
                (size_t)(colon - v) >= sizeof registry_host) {
                fprintf(stderr, "ehr serve: --hl7-registry takes HOST:PORT\n");
                return 2;
            }
            snprintf(registry_host, sizeof registry_host, "%.*s", (int)(colon - v), v);
            obc.host = registry_host;
            obc.port = (uint16_t)n;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--hl7-unknown-patient"))) {
            if (strcmp(v, "create") && strcmp(v, "reject")) {
                fprintf(stderr, "ehr serve: --hl7-unknown-patient is create or reject\n");
                return 2;
            }
            hl7c.reject_unknown_patient = !strcmp(v, "reject");
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
    /* bulk $export files: next to the SQLite file unless told otherwise */
    char export_dir[4200];
    if (!rc.export_dir) {
        snprintf(export_dir, sizeof export_dir, "%s.exports",
                 so.postgres ? "ehr-postgres"
                 : so.db     ? so.db
                             : EHR_DEFAULT_DB);
        rc.export_dir = export_dir;
    }
    if (ac.no_auth) {
        /* without authentication, never on a network */
        if (!hc.bind)
            hc.bind = "127.0.0.1";
        if (strcmp(hc.bind, "127.0.0.1") && strcmp(hc.bind, "::1") &&
            strcmp(hc.bind, "localhost")) {
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
    ehr_status jst = audit_sync ? ehr_repo_audit_journal(repo, (int)audit_sync, &err) : EHR_OK;
    if (jst == EHR_EBUSY) {
        /* another server on this database owns it: records go the slow way */
        fprintf(stderr, "ehr serve: warning: %s; auditing without the journal\n", err.msg);
    } else if (jst) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        ehr_repo_free(&repo);
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
    ehr_hl7_engine *hl7 = NULL;
    if (ehr_hl7_engine_new(repo, &hl7c, &hl7, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        ehr_auth_free(&auth);
        ehr_repo_free(&repo);
        return 1;
    }
    /* HL7 v2 messages stored before a crash and never applied: apply them now */
    size_t recovered = 0;
    ehr_repo_ctx sysctx = {.user = "system/hl7v2-recovery", .client = "local", .role = "system"};
    if (ehr_hl7_recover(hl7, &sysctx, &recovered, &err))
        fprintf(stderr, "ehr serve: HL7 v2 recovery: %s\n", err.msg);
    else if (recovered)
        printf("ehr: applied %zu HL7 v2 message(s) stored before a stop\n", recovered);
    ehr_http_server *srv = ehr_http_server_new(&hc);
    ehr_rest *rest = NULL;
    /* the auth guard first: every /fhir and /hl7v2 request is decided before
       REST or the HL7 handler sees it */
    if (!srv || ehr_auth_mount(auth, srv) ||
        ehr_http_server_add(srv, "/hl7v2", ehr_hl7_http_handler, hl7) ||
        ehr_rest_mount(srv, repo, &rc, &rest)) {
        fprintf(stderr, "ehr serve: out of memory\n");
        ehr_http_server_free(&srv);
        ehr_hl7_engine_free(&hl7);
        ehr_auth_free(&auth);
        ehr_repo_free(&repo);
        return 1;
    }
    /* the clinician app at /, last on the chain, and its SMART client */
    char web_buf[4096];
    ehr_http_static *web = NULL;
    if (!no_web) {
        const char *root = web_root ? web_root : find_web_root(web_buf, sizeof web_buf);
        if (root && !(web = ehr_http_static_new(root))) {
            fprintf(stderr, "ehr serve: --web-root %s is not a readable folder\n", root);
            ehr_http_server_free(&srv);
            ehr_rest_free(&rest);
            ehr_auth_free(&auth);
            ehr_repo_free(&repo);
            return 1;
        }
        if (web && (ehr_http_server_add(srv, "/", ehr_http_static_handle, web) ||
                    ehr_auth_register_app(auth, &err))) {
            fprintf(stderr, "ehr serve: the clinician app: %s\n",
                    err.msg[0] ? err.msg : "out of memory");
            ehr_http_server_free(&srv);
            ehr_http_static_free(&web);
            ehr_rest_free(&rest);
            ehr_auth_free(&auth);
            ehr_repo_free(&repo);
            return 1;
        }
    }
    ehr_fhir_xml_init(); /* before the worker threads exist */
    ehr_mllp_server *mllp = NULL;
    if (mllp_port >= 0) {
        ehr_mllp_config mc = {.bind = hc.bind, .port = (uint16_t)mllp_port};
        if (ehr_mllp_server_start(hl7, &mc, &mllp, &err)) {
            fprintf(stderr, "ehr serve: %s\n", err.msg);
            ehr_http_server_free(&srv);
            ehr_http_static_free(&web);
            ehr_rest_free(&rest);
            ehr_hl7_engine_free(&hl7);
            ehr_auth_free(&auth);
            ehr_repo_free(&repo);
            return 1;
        }
    }
    if (ehr_http_server_start(srv, &err)) {
        fprintf(stderr, "ehr serve: %s\n", err.msg);
        ehr_mllp_server_stop(&mllp);
        ehr_hl7_engine_free(&hl7);
        ehr_http_server_free(&srv);
        ehr_http_static_free(&web);
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
           ehr_http_server_port(srv),
           so.postgres ? "PostgreSQL" : (so.db ? so.db : EHR_DEFAULT_DB));
    if (web)
        printf("ehr: the clinician app: %s://%s:%u/ (files from %s)\n",
               hc.tls_cert ? "https" : "http", hc.bind ? hc.bind : "localhost",
               ehr_http_server_port(srv), ehr_http_static_root(web));
    if (ac.no_auth)
        printf("ehr: WARNING: --insecure-no-auth: /fhir answers without a token (loopback "
               "only; every access is still audited)\n");
    else
        printf("ehr: /fhir needs an access token: see /.well-known/smart-configuration, or "
               "ehr token --user NAME --scope \"user/*.rs\" on this host\n");
    if (mllp)
        printf("ehr: receiving HL7 v2 over MLLP on port %u\n", ehr_mllp_server_port(mllp));
    ehr_hl7_outbound *outbound = NULL;
    if (obc.host) {
        if (ehr_hl7_outbound_start(repo, &obc, &outbound, &err))
            fprintf(stderr, "ehr serve: %s\n", err.msg);
        else
            printf("ehr: sending recorded immunizations to the registry at %s:%u (VXU^V04)\n",
                   obc.host, obc.port);
    }
    fflush(stdout);
    while (!stop_requested)
        pause();
    ehr_log(EHR_LOG_INFO, "serve: stopping");
    ehr_hl7_outbound_stop(&outbound);
    ehr_mllp_server_stop(&mllp);
    ehr_http_server_free(&srv);
    ehr_http_static_free(&web);
    ehr_hl7_engine_free(&hl7);
    ehr_rest_free(&rest);
    ehr_auth_free(&auth);
    ehr_repo_free(&repo);
    return 0;
}
