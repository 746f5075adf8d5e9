/* cmd_client.c - ehr client add | list: SMART apps registered by an admin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/authcli.h"
#include "cli/commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr client add [--db PATH] --name NAME [--id CLIENT_ID]\n"
               "                      [--type public|confidential|backend]\n"
               "                      [--redirect-uri URI]... [--scope SCOPES] [--jwks FILE]\n"
               "       ehr client list [--db PATH]\n"
               "\n"
               "  public        a browser or native app: PKCE, no secret (the default)\n"
               "  confidential  an app with a server side: a client secret, shown once\n"
               "  backend       a backend service (SMART Backend Services): client_credentials\n"
               "                with a JWT signed by a key from --jwks (a JWK Set, RS384/ES384)\n"
               "  --scope       the most the app may be granted (default: every patient/ and\n"
               "                user/ scope with launch, openid, fhirUser, offline_access;\n"
               "                backend: system/*.rs)\n");
}

static ehr_status print_client(void *ctx, const char *id, const char *name, const char *kind)
{
    size_t *n = ctx;
    if ((*n)++ == 0)
        printf("%-32s %-13s %s\n", "CLIENT ID", "TYPE", "NAME");
    printf("%-32s %-13s %s\n", id, kind ? kind : "?", name ? name : "");
    return EHR_OK;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

int ehr_cmd_client(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    struct ehr_store_opts so = {0};
    ehr_auth_client_spec spec = {0};
    const char *uris[16], *jwks_file = NULL;
    for (int i = 2; i < argc; i++) {
        const char *v;
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((v = ehr_opts_value(argc, argv, &i, "--name")))
            spec.name = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--id")))
            spec.client_id = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--type")))
            spec.kind = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--scope")))
            spec.scope = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--jwks")))
            jwks_file = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--redirect-uri"))) {
            if (spec.n_redirect_uris == 16) {
                fprintf(stderr, "ehr client: at most 16 redirect URIs\n");
                return 2;
            }
            uris[spec.n_redirect_uris++] = v;
        } else {
            fprintf(stderr, "ehr client %s: unknown option '%s'\n", verb, argv[i]);
            return 2;
        }
    }
    spec.redirect_uris = uris;
    if (strcmp(verb, "add") && strcmp(verb, "list")) {
        fprintf(stderr, "ehr client: unknown action '%s'\n", verb);
        usage(stderr);
        return 2;
    }
    char *jwks = NULL;
    if (jwks_file && !(jwks = read_file(jwks_file))) {
        fprintf(stderr, "ehr client add: cannot read %s\n", jwks_file);
        return 2;
    }
    spec.jwks = jwks;
    ehr_repo *repo;
    ehr_auth *auth;
    if (!ehr_cli_auth_open(&so, "client", &repo, &auth)) {
        free(jwks);
        return 1;
    }
    ehr_err err = {{0}};
    ehr_status st;
    if (!strcmp(verb, "list")) {
        size_t n = 0;
        st = ehr_auth_client_list(auth, print_client, &n, &err);
    } else {
        ehr_auth_actor who = ehr_cli_actor();
        ehr_buf id = EHR_BUF_INIT, secret = EHR_BUF_INIT;
        st = ehr_auth_client_add(auth, &who, &spec, &id, &secret, &err);
        if (!st) {
            printf("client_id: %s\n", id.data);
            if (secret.data)
                printf("client_secret: %s\n(shown once: keep it in the app's server "
                       "configuration)\n",
                       secret.data);
        }
        ehr_buf_free(&id);
        ehr_buf_free(&secret);
    }
    if (st)
        fprintf(stderr, "ehr client %s: %s\n", verb, err.msg[0] ? err.msg : ehr_status_str(st));
    free(jwks);
    ehr_cli_auth_close(&repo, &auth);
    return st ? 1 : 0;
}
