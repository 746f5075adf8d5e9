/* ehr validate - check FHIR R4 JSON files against the base specification. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "fhir/validate.h"

/* Resources larger than this are refused rather than read. */
#define MAX_FILE (512u * 1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr validate [--type TYPE] [--no-bindings] [--max-issues N] FILE...\n"
               "\n"
               "Checks each FILE (a FHIR R4 resource in JSON; '-' reads standard input) against\n"
               "the base specification: element names, JSON types, cardinality, choice types,\n"
               "primitive formats, required bindings, contained and Bundle entry resources.\n"
               "Profiles (meta.profile) are not checked.\n"
               "\n"
               "  --type TYPE    validate as TYPE (a resource or data type, e.g. HumanName)\n"
               "  --no-bindings  don't check codes against required value sets\n"
               "  --max-issues N report at most N issues per file (default 100)\n"
               "\n"
               "Prints nothing for a valid file. Otherwise prints one line per issue,\n"
               "  FILE: error: Patient.birthDate: message\n"
               "Exit status: 0 all valid, 1 some file invalid, 2 unreadable file, bad JSON,\n"
               "or usage error.\n");
}

static int read_all(const char *file, ehr_buf *b)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open: %s\n", file, strerror(errno));
        return -1;
    }
    b->limit = MAX_FILE;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        ehr_status st = ehr_buf_append(b, chunk, n);
        if (st != EHR_OK) {
            fprintf(stderr, "%s: %s\n", file,
                    st == EHR_ELIMIT ? "file too large (more than 512 MB)" : "out of memory");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "%s: cannot read: %s\n", file, strerror(errno));
        rc = -1;
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

static const char *sev_word(ehr_fhir_severity s)
{
    switch (s) {
    case EHR_SEV_FATAL:
        return "fatal";
    case EHR_SEV_ERROR:
        return "error";
    case EHR_SEV_WARNING:
        return "warning";
    case EHR_SEV_INFORMATION:
        return "information";
    }
    return "error";
}

/* 0 valid, 1 invalid, 2 unreadable */
static int validate_file(const char *file, const ehr_fhir_validate_opts *opts, size_t max_issues)
{
    ehr_buf b = EHR_BUF_INIT;
    if (read_all(file, &b) != 0) {
        ehr_buf_free(&b);
        return 2;
    }
    ehr_err err;
    json_t *j = ehr_json_parse(b.data ? b.data : "", b.len, &err);
    ehr_buf_free(&b);
    if (!j) {
        fprintf(stderr, "%s: invalid JSON: %s\n", file, err.msg);
        return 2;
    }
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    issues.max = max_issues;
    ehr_status st = ehr_fhir_validate_ex(j, opts, &issues);
    json_decref(j);
    for (size_t i = 0; i < issues.n; i++) {
        const struct ehr_fhir_issue *it = &issues.items[i];
        if (it->expression)
            fprintf(stderr, "%s: %s: %s: %s\n", file, sev_word(it->severity), it->expression,
                    it->message);
        else
            fprintf(stderr, "%s: %s: %s\n", file, sev_word(it->severity), it->message);
    }
    if (max_issues && issues.n >= max_issues)
        fprintf(stderr, "%s: note: stopped after %zu issues\n", file, issues.n);
    ehr_fhir_issues_free(&issues);
    if (st == EHR_ENOMEM) {
        fprintf(stderr, "%s: out of memory\n", file);
        return 2;
    }
    return st == EHR_OK ? 0 : 1;
}

int ehr_cmd_validate(int argc, char **argv)
{
    ehr_fhir_validate_opts opts;
    memset(&opts, 0, sizeof opts);
    size_t max_issues = 100;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--type") == 0 && i + 1 < argc) {
            opts.type = argv[++i];
        } else if (strcmp(a, "--no-bindings") == 0) {
            opts.no_bindings = true;
        } else if (strcmp(a, "--max-issues") == 0 && i + 1 < argc) {
            char *end;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (*end || n == 0 || n > 1000000) {
                fprintf(stderr, "ehr validate: --max-issues takes a number from 1 to 1000000\n");
                return 2;
            }
            max_issues = n;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ehr validate: unknown option '%s'; run 'ehr validate --help'\n", a);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "ehr validate: no FILE given; run 'ehr validate --help'\n");
        return 2;
    }
    if (opts.type && !ehr_fhir_type_find(opts.type, strlen(opts.type))) {
        fprintf(stderr,
                "ehr validate: unknown type '%s' (names are case-sensitive: Patient, "
                "HumanName, date)\n",
                opts.type);
        return 2;
    }
    int worst = 0;
    for (; i < argc; i++) {
        int rc = validate_file(argv[i], &opts, max_issues);
        if (rc > worst)
            worst = rc;
    }
    return worst;
}
