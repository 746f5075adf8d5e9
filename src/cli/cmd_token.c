/*
 * cmd_token.c - ehr token --user U --scope "SCOPES": an access token for
 * scripts and operations on the server's host (whoever can run this can
 * read the database anyway). The token is the last line of the output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/authcli.h"
#include "cli/commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr token [--db PATH] --user USERNAME --scope \"SCOPES\"\n"
               "                 [--patient Patient/ID] [--ttl SECONDS]\n"
               "\n"
               "Prints an access token (its last line) for the user, with the scopes asked\n"
               "for as far as the user's role allows, e.g.\n"
               "  ehr token --user admin --scope \"user/*.cruds\"\n"
               "  ehr token --user emma --scope \"patient/*.rs\"\n"
               "  curl -H \"Authorization: Bearer $TOKEN\" http://localhost:8080/fhir/Patient\n"
               "--patient sets the context of patient/ scopes (a patient user's own record\n"
               "by default). --ttl: lifetime in seconds (default 3600, at most 30 days).\n");
}

int ehr_cmd_token(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    const char *user = NULL, *scope = NULL, *patient = NULL;
    long ttl = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--user"))) {
            user = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--scope"))) {
            scope = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--patient"))) {
            patient = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--ttl"))) {
            char *end;
            ttl = strtol(v, &end, 10);
            if (*end || ttl <= 0 || ttl > 30L * 86400) {
                fprintf(stderr, "ehr token: --ttl is a number of seconds up to 2592000\n");
                return 2;
            }
        } else {
            fprintf(stderr, "ehr token: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!user || !scope) {
        fprintf(stderr, "ehr token: --user and --scope are required\n");
        usage(stderr);
        return 2;
    }
    ehr_repo *repo;
    ehr_auth *auth;
    if (!ehr_cli_auth_open(&so, "token", &repo, &auth))
        return 1;
    ehr_auth_actor who = ehr_cli_actor();
    ehr_buf tok = EHR_BUF_INIT, granted = EHR_BUF_INIT;
    ehr_err err = {{0}};
    ehr_status st =
        ehr_auth_token_mint(auth, &who, user, scope, patient, (int)ttl, &tok, &granted, &err);
    if (st) {
        fprintf(stderr, "ehr token: %s\n", err.msg[0] ? err.msg : ehr_status_str(st));
    } else {
        printf("# scope: %s\n# expires in %ld s\n%s\n", granted.data ? granted.data : "",
               ttl ? ttl : 3600, tok.data);
    }
    ehr_buf_free(&tok);
    ehr_buf_free(&granted);
    ehr_cli_auth_close(&repo, &auth);
    return st ? 1 : 0;
}
