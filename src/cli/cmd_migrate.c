/*
 * cmd_migrate.c - ehr migrate --from SQLITE_PATH --to CONNINFO [--verify-only]:
 * move a clinic's SQLite database to PostgreSQL, then prove the copy
 * (src/store/migrate.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "repo/repo.h"
#include "store/migrate.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr migrate --from SQLITE_PATH --to CONNINFO [--verify-only]\n"
               "\n"
               "Copies every resource version, index row, compartment, user, token and\n"
               "audit record of the SQLite database into the PostgreSQL database named\n"
               "by CONNINFO (a libpq connection string or URI), which must hold no data\n"
               "yet, in one transaction; then verifies the copy: per resource type the\n"
               "number of versions, of live resources, and a SHA-256 over every version;\n"
               "the audit chain's length and head. Stop the servers on the SQLite file\n"
               "first. --verify-only: compare the two databases, copy nothing.\n"
               "Exit 0: copied and verified; 1: a difference or an error; 2: usage.\n");
}

int ehr_cmd_migrate(int argc, char **argv)
{
    ehr_migrate_opts o = {.progress = stdout};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--verify-only")) {
            o.verify_only = true;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--from"))) {
            o.from = v;
        } else if ((v = ehr_opts_value(argc, argv, &i, "--to"))) {
            o.to = v;
        } else {
            fprintf(stderr, "ehr migrate: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!o.from || !o.to) {
        fprintf(stderr, "ehr migrate: --from and --to are both needed\n");
        usage(stderr);
        return 2;
    }
    ehr_err err = {{0}};
    /* opening the repository applies what a crashed server left in the
       audit journal (DB.audit-journal), so that the copy has every record;
       a running server's journal is applied too */
    char target[4200];
    snprintf(target, sizeof target, "sqlite:%s", o.from);
    ehr_repo *repo = NULL;
    ehr_status st = ehr_repo_open(target, &repo, &err);
    if (!st)
        st = ehr_repo_audit_sync(repo, &err);
    ehr_repo_free(&repo);
    if (st) {
        fprintf(stderr, "ehr migrate: %s\n", err.msg);
        return 1;
    }
    if (ehr_store_migrate(&o, &err)) {
        fprintf(stderr, "ehr migrate: %s\n", err.msg);
        return 1;
    }
    printf("%s: the PostgreSQL database holds the same data\n",
           o.verify_only ? "verified" : "migrated and verified");
    return 0;
}
