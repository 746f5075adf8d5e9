/*
 * cmd_demo.c - ehr demo: load the demo patients (tools/gen_demo.js) through
 * the repository. Safe to re-run: resources already present are left alone.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "core/json.h"
#include "repo/repo.h"

extern const char ehr_demo_json[];
extern const size_t ehr_demo_json_len;

/*
 * The demo's people (docs/security.md). Their passwords are printed: this
 * is a demo database, never a real one. Physicians and nurses set up TOTP
 * at their first sign-in in a browser; tokens for scripts come from
 * ehr token.
 */
static const struct {
    const char *name, *password, *role, *patient;
} demo_people[] = {
    {"admin", "Demo-Operator-1", "admin", NULL},
    {"dr.hansen", "Demo-Physician-1", "physician", "emma"},
    {"nurse.berg", "Demo-Nurse-1", "nurse", "emma"},
    {"frontdesk", "Demo-Desk-2026", "front-desk", NULL},
    {"emma", "Demo-Patient-1", "patient", "emma"},
    {"auditor", "Demo-Audit-2026", "auditor", NULL},
};

static int demo_users(ehr_repo *repo)
{
    ehr_auth_config cfg;
    ehr_auth_config_defaults(&cfg);
    ehr_auth *auth = NULL;
    ehr_err err = {{0}};
    if (ehr_auth_new(repo, &cfg, &auth, &err)) {
        fprintf(stderr, "ehr demo: %s\n", err.msg);
        return 1;
    }
    ehr_auth_actor who = {.name = "system/demo", .client = "cli"};
    int failed = 0;
    printf("ehr demo: users (demo passwords; physicians, nurses and the admin set up two-step "
           "sign-in at their first sign-in):\n");
    for (size_t i = 0; i < sizeof demo_people / sizeof demo_people[0]; i++) {
        ehr_role role;
        ehr_role_parse(demo_people[i].role, &role);
        const char *pts[1] = {demo_people[i].patient};
        ehr_status st = ehr_auth_user_add(auth, &who, demo_people[i].name, demo_people[i].password,
                                          role, pts, demo_people[i].patient ? 1 : 0, NULL, &err);
        if (st && st != EHR_EEXISTS) {
            fprintf(stderr, "ehr demo: user %s: %s\n", demo_people[i].name, err.msg);
            failed = 1;
            continue;
        }
        printf("  %-11s %-16s %-10s%s%s%s\n", demo_people[i].name, demo_people[i].password,
               demo_people[i].role, demo_people[i].patient ? " Patient/" : "",
               demo_people[i].patient ? demo_people[i].patient : "",
               st == EHR_EEXISTS ? " (already there)" : "");
    }
    printf("ehr demo: a token for scripts: ehr token --user dr.hansen --scope \"user/*.rs\"\n");
    ehr_auth_free(&auth);
    return failed;
}

int ehr_cmd_demo(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    for (int i = 1; i < argc; i++) {
        int r = ehr_opts_store(&so, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: ehr demo [--db PATH | --postgres CONNINFO]\n\n"
                "Loads the demo chart of Emma Larsen (35): eight yearly check-ups with her\n"
                "cholesterol, vital signs, problems, medication, allergy, and an emergency\n"
                "visit for chest pain. Resources already in the database are left as they are.\n");
            return 0;
        }
        fprintf(stderr, "ehr demo: unknown option '%s'\n", argv[i]);
        return 2;
    }
    if (!ehr_opts_store_target(&so, "demo"))
        return 2;
    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr demo: %s\n", err.msg);
        return 1;
    }
    json_t *all = ehr_json_parse(ehr_demo_json, ehr_demo_json_len, &err);
    if (!all) {
        fprintf(stderr, "ehr demo: the built-in demo data is damaged: %s\n", err.msg);
        ehr_repo_free(&repo);
        return 1;
    }
    ehr_repo_ctx who = {.user = "system/demo", .client = "cli"};
    size_t created = 0, present = 0, failed = 0;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *res = json_array_get(all, i);
        const char *type = ehr_json_get_string(res, "resourceType");
        const char *id = ehr_json_get_string(res, "id");
        ehr_repo_out out = {0};
        ehr_status st = ehr_repo_read(repo, &who, type, id, 0, &out, NULL);
        ehr_repo_out_free(&out);
        if (st == EHR_OK || st == EHR_EGONE) {
            present++;
            continue;
        }
        ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
        st = ehr_repo_update(repo, &who, type, id, res, 0, &out, &issues, &err);
        if (st) {
            failed++;
            fprintf(stderr, "ehr demo: %s/%s: %s\n", type, id,
                    issues.n ? issues.items[0].message : err.msg);
        } else {
            created++;
        }
        ehr_fhir_issues_free(&issues);
        ehr_repo_out_free(&out);
    }
    json_decref(all);
    int users_failed = demo_users(repo);
    ehr_repo_free(&repo);
    printf("ehr demo: %zu resources loaded, %zu already present%s\n", created, present,
           failed ? ", some failed (see above)" : "");
    return failed || users_failed ? 1 : 0;
}
