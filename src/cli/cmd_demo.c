/*
 * cmd_demo.c - ehr demo: load the demo patients (tools/gen_demo.js) through
 * the repository. Safe to re-run: resources already present are left alone.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/json.h"
#include "repo/repo.h"

extern const char ehr_demo_json[];
extern const size_t ehr_demo_json_len;

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
            printf("usage: ehr demo [--db PATH | --postgres CONNINFO]\n\n"
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
    ehr_repo_free(&repo);
    printf("ehr demo: %zu resources loaded, %zu already present%s\n", created, present,
           failed ? ", some failed (see above)" : "");
    return failed ? 1 : 0;
}
