/* ehr - the command-line program: one subcommand per file in src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        printf("usage: ehr COMMAND [OPTIONS]\n");
        return 0;
    }
    if (strcmp(argv[1], "validate") == 0)
        return ehr_cmd_validate(argc - 1, argv + 1);
    if (strcmp(argv[1], "fhirpath") == 0)
        return ehr_cmd_fhirpath(argc - 1, argv + 1);
    fprintf(stderr, "ehr: unknown command '%s'; run 'ehr --help' for the list\n", argv[1]);
    return 2;
}
