/*
 * opts.h - option parsing shared by the subcommands: the store options
 * every data command takes (--db PATH | --postgres CONNINFO).
 */
#ifndef EHR_CLI_OPTS_H
#define EHR_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#define EHR_DEFAULT_DB "./var/ehr.db"

struct ehr_store_opts {
    const char *db;       /* SQLite path */
    const char *postgres; /* conninfo */
    char target[4096];    /* what ehr_store_open takes */
};

/*
 * If argv[*i] is a store option, consume it (and its value) and return
 * 1; return -1 (message printed) when its value is missing; 0 otherwise.
 */
int ehr_opts_store(struct ehr_store_opts *o, int argc, char **argv, int *i);
/* Fill o->target; creates the folder of a SQLite file. false with a message on error. */
bool ehr_opts_store_target(struct ehr_store_opts *o, const char *cmd);
/* argv[*i] is "--name" and has a value: return it and advance; NULL otherwise. */
const char *ehr_opts_value(int argc, char **argv, int *i, const char *name);

#endif
