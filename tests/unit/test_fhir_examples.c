/*
 * Conformance of the validator with real R4 content written by others:
 * every US Core example resource and every entry of the Synthea R4 bundles
 * in ../shared/data must validate. Examples that are genuinely invalid per
 * base R4 are listed below with the reason, and must fail for that reason.
 *
 * Reports counts (passed / failed / skipped) and validation throughput.
 * Skipped, with the reason, when the shared data is absent.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "fhir/validate.h"

#define DATA "../shared/data"

/* Examples that break base R4 as published; each fails with this issue. */
static const struct {
    const char *file, *expression, *why;
} known_invalid[] = {
    {"diagnosticreport-cbc.json", "DiagnosticReport.text.div",
     "text has status but no div; Narrative.div is 1..1 in R4"},
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted .json names in dir (NULL when dir can't be opened). */
static char **list_json(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t cap = 64;
    char **v = malloc(cap * sizeof *v);
    assert_non_null(v);
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static json_t *load(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    ehr_buf b = EHR_BUF_INIT;
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(ehr_buf_append(&b, chunk, k), EHR_OK);
    fclose(f);
    ehr_err err;
    json_t *j = ehr_json_parse(b.data ? b.data : "", b.len, &err);
    if (!j)
        print_message("%s: not JSON: %s\n", path, err.msg);
    ehr_buf_free(&b);
    return j;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_issues(const char *what, const ehr_fhir_issues *l)
{
    for (size_t i = 0; i < l->n; i++)
        print_message("  %s: %s: %s: %s\n", what,
                      l->items[i].severity <= EHR_SEV_ERROR ? "error" : "warning",
                      l->items[i].expression ? l->items[i].expression : "-", l->items[i].message);
}

static void test_us_core_examples(void **state)
{
    const char *dir = DATA "/us-core/examples";
    size_t n;
    char **files = list_json(dir, &n);
    if (!files) {
        print_message("skipped: %s not found (the shared test data is absent)\n", dir);
        skip();
    }
    size_t passed = 0, failed = 0, known = 0, warnings = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *j = load(dir, files[i]);
        if (!j) {
            failed++;
            continue;
        }
        ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
        ehr_status st = ehr_fhir_validate(j, &l);
        warnings += l.n - ehr_fhir_issues_errors(&l);
        const char *expect = NULL;
        for (size_t k = 0; k < sizeof known_invalid / sizeof known_invalid[0]; k++)
            if (strcmp(files[i], known_invalid[k].file) == 0)
                expect = known_invalid[k].expression;
        if (expect) {
            bool ok = st == EHR_EINVAL && ehr_fhir_issues_errors(&l) == 1 &&
                      strcmp(l.items[0].expression, expect) == 0;
            if (ok) {
                known++;
            } else {
                print_message("%s: expected exactly one error at %s\n", files[i], expect);
                print_issues(files[i], &l);
                failed++;
            }
        } else if (st == EHR_OK) {
            passed++;
        } else {
            print_message("%s: invalid\n", files[i]);
            print_issues(files[i], &l);
            failed++;
        }
        ehr_fhir_issues_free(&l);
        json_decref(j);
    }
    print_message("us-core examples: %zu files: %zu valid, %zu known invalid (listed with "
                  "reasons), %zu failed; %zu warnings\n",
                  n, passed, known, failed, warnings);
    for (size_t k = 0; k < sizeof known_invalid / sizeof known_invalid[0]; k++)
        print_message("  known invalid: %s: %s\n", known_invalid[k].file, known_invalid[k].why);
    free_list(files, n);
    assert_int_equal(failed, 0);
    assert_true(passed > 200);
}

static void test_synthea_bundles(void **state)
{
    const char *dir = DATA "/synthea/r4-2019";
    size_t n;
    char **files = list_json(dir, &n);
    if (!files) {
        print_message("skipped: %s not found (the shared test data is absent)\n", dir);
        skip();
    }
    size_t bundles = 0, resources = 0, failed = 0, skipped = 0;
    double t_validate = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *j = load(dir, files[i]);
        assert_non_null(j);
        if (!json_is_object(j) ||
            strcmp(ehr_json_get_string(j, "resourceType") ? ehr_json_get_string(j, "resourceType")
                                                          : "",
                   "Bundle") != 0) {
            /* INDEX_all_617_bundles_resource_counts.json: not FHIR */
            print_message("skipped %s: not a Bundle\n", files[i]);
            skipped++;
            json_decref(j);
            continue;
        }
        bundles++;
        json_t *entries = json_object_get(j, "entry");
        size_t k;
        json_t *entry;
        json_array_foreach(entries, k, entry)
        {
            json_t *r = json_object_get(entry, "resource");
            ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
            double t0 = now_s();
            ehr_status st = ehr_fhir_validate(r, &l);
            t_validate += now_s() - t0;
            resources++;
            if (st != EHR_OK) {
                char what[600];
                snprintf(what, sizeof what, "%s entry %zu", files[i], k);
                print_issues(what, &l);
                failed++;
            }
            ehr_fhir_issues_free(&l);
        }
        /* and the bundle as a whole (entries validated recursively) */
        ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
        if (ehr_fhir_validate(j, &l) != EHR_OK) {
            print_issues(files[i], &l);
            failed++;
        }
        ehr_fhir_issues_free(&l);
        json_decref(j);
    }
    print_message("synthea r4-2019: %zu bundles, %zu entry resources: %zu valid, %zu failed; "
                  "%zu files skipped (not Bundles)\n",
                  bundles, resources, resources - failed, failed, skipped);
    if (t_validate > 0)
        print_message("synthea r4-2019: validation %.3f s, %.0f resources/s\n", t_validate,
                      (double)resources / t_validate);
    free_list(files, n);
    assert_int_equal(failed, 0);
    assert_true(resources > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_us_core_examples),
        cmocka_unit_test(test_synthea_bundles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
