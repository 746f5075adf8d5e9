/* ehr - the command-line program: one subcommand per file in src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", ehr_cmd_serve, "run the server: FHIR R4 API at /fhir"},
    {"demo", ehr_cmd_demo, "load the demo patients into the database"},
    {"import", ehr_cmd_import, "load Bundles and NDJSON (Synthea, bulk exports) into the database"},
    {"export", ehr_cmd_export, "write the current resources as NDJSON, one file per type"},
    {"validate", ehr_cmd_validate, "check FHIR R4 JSON files against the specification"},
    {"user", ehr_cmd_user, "add, list, disable users; reset passwords and MFA; link patients"},
    {"client", ehr_cmd_client, "register SMART apps and backend services"},
    {"token", ehr_cmd_token, "print an access token for a user (scripts, operations)"},
    {"audit", ehr_cmd_audit, "verify the audit log's hash chain; report from it"},
    {"reindex", ehr_cmd_reindex, "rebuild the search index of every resource"},
    {"hl7", ehr_cmd_hl7, "HL7 v2: list, show, reprocess stored messages; send over MLLP"},
    {"fhirpath", ehr_cmd_fhirpath, "evaluate a FHIRPath expression on a resource file"},
    {"migrate", ehr_cmd_migrate, "copy a SQLite database to PostgreSQL and verify the copy"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'ehr COMMAND --help' tells more about each.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ehr: unknown command '%s'; run 'ehr --help' for the list\n", argv[1]);
    return 2;
}
