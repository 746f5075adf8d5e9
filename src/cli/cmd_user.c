/*
 * cmd_user.c - ehr user add | list | disable | enable | reset-password |
 * reset-mfa | link | unlink: the people who may sign in.
 */
#include <stdio.h>
#include <string.h>

#include "cli/authcli.h"
#include "cli/commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr user add [--db PATH] --username U --password P --role ROLE\n"
               "                    [--patient Patient/ID]... [--fhir-user REF]\n"
               "       ehr user list [--db PATH]\n"
               "       ehr user disable|enable [--db PATH] --username U\n"
               "       ehr user reset-password [--db PATH] --username U --password P\n"
               "       ehr user reset-mfa [--db PATH] --username U\n"
               "       ehr user link|unlink [--db PATH] --username U --patient Patient/ID\n"
               "\n"
               "Roles: admin, physician, nurse, front-desk, biller, auditor, patient\n"
               "(docs/security.md has what each may do).\n"
               "  --patient       a patient user's own record; repeated for a proxy (a parent).\n"
               "                  For physicians and nurses: their panel, the patients whose\n"
               "                  charts they see (ehr serve --clinician-access panel).\n"
               "  --password -    read the password from standard input (keeps it out of ps).\n"
               "Passwords: 8 to 128 characters, not a common one, not the user name.\n");
}

struct list_ctx {
    size_t n;
};

static ehr_status print_user(void *p, const ehr_auth_user_info *u)
{
    struct list_ctx *l = p;
    if (l->n++ == 0)
        printf("%-24s %-11s %-5s %-9s %-28s %s\n", "USERNAME", "ROLE", "MFA", "STATE", "FHIR USER",
               "PATIENTS");
    printf("%-24s %-11s %-5s %-9s %-28s ", u->username, u->role ? u->role : "?",
           u->mfa ? "yes" : "no",
           u->disabled ? "disabled"
           : u->locked ? "locked"
                       : "active",
           u->fhir_user ? u->fhir_user : "");
    for (size_t i = 0; i < u->n_patients && i < 8; i++)
        printf("%sPatient/%s", i ? "," : "", u->patients[i]);
    if (u->n_patients > 8)
        printf(",... (%zu)", u->n_patients);
    printf("\n");
    return EHR_OK;
}

int ehr_cmd_user(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    struct ehr_store_opts so = {0};
    const char *username = NULL, *password = NULL, *role = NULL, *fhir_user = NULL;
    const char *patients[64];
    size_t n_patients = 0;
    for (int i = 2; i < argc; i++) {
        const char *v;
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((v = ehr_opts_value(argc, argv, &i, "--username")))
            username = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--password")))
            password = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--role")))
            role = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--fhir-user")))
            fhir_user = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--patient"))) {
            if (n_patients == 64) {
                fprintf(stderr, "ehr user: at most 64 --patient options\n");
                return 2;
            }
            patients[n_patients++] = v;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ehr user %s: unknown option '%s'\n", verb, argv[i]);
            return 2;
        }
    }
    bool needs_name = strcmp(verb, "list") != 0;
    if (needs_name && !username) {
        fprintf(stderr, "ehr user %s: --username is required\n", verb);
        return 2;
    }
    char pwbuf[256];
    if ((!strcmp(verb, "add") || !strcmp(verb, "reset-password")) &&
        !(password = ehr_cli_password(password, pwbuf, sizeof pwbuf))) {
        fprintf(stderr, "ehr user %s: --password is required\n", verb);
        return 2;
    }
    ehr_role rl = EHR_ROLE_N;
    if (!strcmp(verb, "add") && (!role || !ehr_role_parse(role, &rl))) {
        fprintf(stderr,
                "ehr user add: --role is one of admin, physician, nurse, front-desk, biller, "
                "auditor, patient\n");
        return 2;
    }
    if ((!strcmp(verb, "link") || !strcmp(verb, "unlink")) && n_patients != 1) {
        fprintf(stderr, "ehr user %s: give one --patient Patient/ID\n", verb);
        return 2;
    }
    ehr_repo *repo;
    ehr_auth *auth;
    if (!ehr_cli_auth_open(&so, "user", &repo, &auth))
        return 1;
    ehr_auth_actor who = ehr_cli_actor();
    ehr_err err = {{0}};
    ehr_status st;
    if (!strcmp(verb, "add")) {
        st = ehr_auth_user_add(auth, &who, username, password, rl, patients, n_patients, fhir_user,
                               &err);
        if (!st)
            printf("ehr user: added %s (%s)%s\n", username, ehr_role_name(rl),
                   rl == EHR_ROLE_PATIENT ||
                           !(EHR_ROLE_BIT(rl) &
                             (EHR_ROLE_BIT(EHR_ROLE_ADMIN) | EHR_ROLE_BIT(EHR_ROLE_PHYSICIAN) |
                              EHR_ROLE_BIT(EHR_ROLE_NURSE)))
                       ? ""
                       : "; sets up two-step sign-in (TOTP) at first sign-in");
    } else if (!strcmp(verb, "list")) {
        struct list_ctx l = {0};
        st = ehr_auth_user_list(auth, print_user, &l, &err);
        if (!st && l.n == 0)
            printf("no users yet: ehr user add --username NAME --password - --role admin\n");
    } else if (!strcmp(verb, "disable") || !strcmp(verb, "enable")) {
        st = ehr_auth_user_disable(auth, &who, username, !strcmp(verb, "disable"), &err);
        if (!st)
            printf("ehr user: %s %sd\n", username, verb);
    } else if (!strcmp(verb, "reset-password")) {
        st = ehr_auth_user_password(auth, &who, username, password, &err);
        if (!st)
            printf("ehr user: new password set for %s; their sessions and tokens ended\n",
                   username);
    } else if (!strcmp(verb, "reset-mfa")) {
        st = ehr_auth_user_reset_mfa(auth, &who, username, &err);
        if (!st)
            printf("ehr user: %s sets up two-step sign-in again at next sign-in\n", username);
    } else if (!strcmp(verb, "link") || !strcmp(verb, "unlink")) {
        st = ehr_auth_user_link(auth, &who, username, patients[0], !strcmp(verb, "link"), &err);
        if (!st)
            printf("ehr user: %s %sed %s %s\n", username, verb,
                   !strcmp(verb, "link") ? "to" : "from", patients[0]);
    } else {
        fprintf(stderr, "ehr user: unknown action '%s'\n", verb);
        usage(stderr);
        ehr_cli_auth_close(&repo, &auth);
        return 2;
    }
    if (st)
        fprintf(stderr, "ehr user %s: %s\n", verb, err.msg[0] ? err.msg : ehr_status_str(st));
    ehr_cli_auth_close(&repo, &auth);
    return st ? 1 : 0;
}
