#include "cli/opts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char *ehr_opts_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "ehr: %s needs a value\n", name);
        return NULL;
    }
    return argv[++*i];
}

int ehr_opts_store(struct ehr_store_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strncmp(a, "--db", 4) && (a[4] == '\0' || a[4] == '=')) {
        o->db = ehr_opts_value(argc, argv, i, "--db");
        return o->db ? 1 : -1;
    }
    if (!strncmp(a, "--postgres", 10) && (a[10] == '\0' || a[10] == '=')) {
        o->postgres = ehr_opts_value(argc, argv, i, "--postgres");
        return o->postgres ? 1 : -1;
    }
    return 0;
}

bool ehr_opts_store_target(struct ehr_store_opts *o, const char *cmd)
{
    if (o->postgres) {
        snprintf(o->target, sizeof o->target, "postgres:%s", o->postgres);
        return true;
    }
    const char *db = o->db ? o->db : EHR_DEFAULT_DB;
    if (strlen(db) >= sizeof o->target - 8) {
        fprintf(stderr, "ehr %s: the --db path is too long\n", cmd);
        return false;
    }
    /* create the folder of the default database (./var) */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", db);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            fprintf(stderr, "ehr %s: cannot create the folder %s: %s\n", cmd, dir, strerror(errno));
            return false;
        }
    }
    snprintf(o->target, sizeof o->target, "sqlite:%s", db);
    return true;
}
