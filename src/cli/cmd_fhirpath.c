/* ehr fhirpath - evaluate a FHIRPath expression on a FHIR JSON resource. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "fhirpath/fhirpath.h"

/* Resources larger than this are refused rather than read. */
#define MAX_FILE (512u * 1024 * 1024)
#define MAX_VARS 64

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr fhirpath [--var NAME=JSON]... [--type TYPE] [--now INSTANT] EXPRESSION "
               "FILE\n"
               "\n"
               "Evaluates EXPRESSION (FHIRPath, as FHIR R4 uses it) on FILE, a FHIR resource in\n"
               "JSON ('-' reads standard input), and prints the result collection as a JSON\n"
               "array: elements of the resource as they are in it, strings, numbers and\n"
               "booleans as JSON values, dates and times as strings as written, quantities as\n"
               "{\"value\": 1.5, \"unit\": \"mg\"}.\n"
               "\n"
               "  --var NAME=JSON  define %%NAME as the JSON value (an array is a collection)\n"
               "  --type TYPE      the type of FILE when it is not a resource (e.g. HumanName)\n"
               "  --now INSTANT    the time now() and today() return\n"
               "\n"
               "Exit status: 0 success, 1 error in the expression or while evaluating it\n"
               "(the message gives the position in the expression), 2 unreadable file, bad\n"
               "JSON or usage error.\n");
}

static int read_all(const char *file, ehr_buf *b)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "ehr fhirpath: %s: cannot open: %s\n", file, strerror(errno));
        return -1;
    }
    b->limit = MAX_FILE;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        ehr_status st = ehr_buf_append(b, chunk, n);
        if (st != EHR_OK) {
            fprintf(stderr, "ehr fhirpath: %s: %s\n", file,
                    st == EHR_ELIMIT ? "file too large (more than 512 MB)" : "out of memory");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "ehr fhirpath: %s: cannot read: %s\n", file, strerror(errno));
        rc = -1;
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

int ehr_cmd_fhirpath(int argc, char **argv)
{
    const char *expr = NULL, *file = NULL, *type = NULL, *now = NULL;
    ehr_fhirpath_var vars[MAX_VARS];
    json_t *var_values[MAX_VARS];
    size_t n_vars = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if ((strcmp(a, "--type") == 0 || strcmp(a, "--now") == 0) && i + 1 < argc) {
            *(a[2] == 't' ? &type : &now) = argv[++i];
        } else if (strcmp(a, "--var") == 0 && i + 1 < argc) {
            const char *def = argv[++i];
            const char *eq = strchr(def, '=');
            if (!eq || eq == def || n_vars == MAX_VARS) {
                fprintf(stderr, "ehr fhirpath: --var needs NAME=JSON (at most %d)\n", MAX_VARS);
                goto done;
            }
            ehr_err jerr;
            json_t *v = ehr_json_parse(eq + 1, strlen(eq + 1), &jerr);
            if (!v) /* not JSON: take the text as a string */
                v = json_string(eq + 1);
            if (!v) {
                fprintf(stderr, "ehr fhirpath: out of memory\n");
                goto done;
            }
            char *name = strndup(def, (size_t)(eq - def));
            if (!name) {
                json_decref(v);
                fprintf(stderr, "ehr fhirpath: out of memory\n");
                goto done;
            }
            var_values[n_vars] = v;
            vars[n_vars].name = name;
            vars[n_vars].value = v;
            vars[n_vars].type = NULL;
            n_vars++;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "ehr fhirpath: unknown option '%s'\n", a);
            usage(stderr);
            goto done;
        } else if (!expr) {
            expr = a;
        } else if (!file) {
            file = a;
        } else {
            usage(stderr);
            goto done;
        }
    }
    if (!expr || !file) {
        usage(stderr);
        goto done;
    }

    ehr_err err;
    ehr_fhirpath_expr *e = NULL;
    ehr_status st = ehr_fhirpath_compile(expr, strlen(expr), &e, &err);
    if (st != EHR_OK) {
        fprintf(stderr, "ehr fhirpath: expression: %s\n", err.msg);
        rc = st == EHR_ENOMEM ? 2 : 1;
        goto done;
    }
    ehr_buf b = EHR_BUF_INIT;
    if (read_all(file, &b) != 0) {
        ehr_buf_free(&b);
        ehr_fhirpath_free(&e);
        goto done;
    }
    json_t *doc = ehr_json_parse(b.data ? b.data : "", b.len, &err);
    ehr_buf_free(&b);
    if (!doc) {
        fprintf(stderr, "ehr fhirpath: %s: %s\n", file, err.msg);
        ehr_fhirpath_free(&e);
        goto done;
    }
    ehr_arena *arena = ehr_arena_new();
    ehr_fhirpath_env env;
    memset(&env, 0, sizeof env);
    env.context_type = type;
    env.now = now;
    env.vars = vars;
    env.n_vars = n_vars;
    ehr_fhirpath_result res;
    st = arena ? ehr_fhirpath_eval(e, doc, &env, arena, &res, &err)
               : ehr_err_set(&err, EHR_ENOMEM, "out of memory");
    if (st != EHR_OK) {
        fprintf(stderr, "ehr fhirpath: %s: %s\n", file, err.msg);
        rc = 1;
    } else {
        json_t *out = ehr_fhirpath_result_to_json(&res);
        ehr_buf ob = EHR_BUF_INIT;
        if (!out || ehr_json_dump(out, &ob, EHR_JSON_PRETTY) != EHR_OK) {
            fprintf(stderr, "ehr fhirpath: out of memory\n");
        } else {
            fwrite(ob.data, 1, ob.len, stdout);
            putchar('\n');
            rc = 0;
        }
        ehr_buf_free(&ob);
        json_decref(out);
    }
    ehr_arena_free(&arena);
    json_decref(doc);
    ehr_fhirpath_free(&e);
done:
    for (size_t i = 0; i < n_vars; i++) {
        free((char *)vars[i].name);
        json_decref(var_values[i]);
    }
    return rc;
}
