/*
 * fhirpath_r4.c - runs the official FHIRPath test suite of FHIR R4
 * (../shared/data/fhirpath/r4-xml/tests-fhir-r4.xml, with its input
 * resources as JSON from ../shared/data/fhirpath/r4-json/) against the
 * engine in src/fhirpath/, and prints passed / failed / skipped per group
 * and in total.
 *
 * Usage: fhirpath_r4 [--min-pass N] [--verbose] [--only NAME] [DATA_DIR]
 *
 * A test passes when the expression gives exactly the expected outputs
 * (in order, unless the test says ordered="false"), or, for tests marked
 * invalid="syntax|semantic|execution", fails with an error of that class.
 * Expressions are compiled with the type of the input resource as context,
 * so that semantic errors are found, in strict mode where the test says
 * mode="strict" (see ehr_fhirpath_options).
 *
 * Tests are skipped only through tests/conformance/fhirpath_skip.txt, which
 * gives the reason for each. Exit 77 (skipped) when the data is absent,
 * 1 when fewer than --min-pass tests pass.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "fhirpath/fhirpath.h"

#define SKIP_FILE "tests/conformance/fhirpath_skip.txt"

typedef struct skip {
    char *name;
    char *reason;
} skip;

static skip skips[256];
static size_t n_skips;
static bool verbose;

typedef struct input {
    char *file;
    json_t *json;
} input;

static input inputs[32];
static size_t n_inputs;

static void load_skips(void)
{
    FILE *f = fopen(SKIP_FILE, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f) && n_skips < 256) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        skips[n_skips].name = strdup(line);
        skips[n_skips].reason = strdup(tab + 1);
        n_skips++;
    }
    fclose(f);
}

static const char *skip_reason(const char *name)
{
    for (size_t i = 0; i < n_skips; i++)
        if (strcmp(skips[i].name, name) == 0)
            return skips[i].reason;
    return NULL;
}

static json_t *load_input(const char *dir, const char *file)
{
    for (size_t i = 0; i < n_inputs; i++)
        if (strcmp(inputs[i].file, file) == 0)
            return inputs[i].json;
    /* the JSON form of x.xml is x.json */
    char name[512];
    size_t fl = strlen(file);
    if (fl > 4 && strcmp(file + fl - 4, ".xml") == 0)
        snprintf(name, sizeof name, "%.*s.json", (int)(fl - 4), file);
    else
        snprintf(name, sizeof name, "%s", file);
    char path[1024];
    snprintf(path, sizeof path, "%s/r4-json/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ehr_buf b = EHR_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ehr_buf_append(&b, chunk, n);
    fclose(f);
    ehr_err err;
    json_t *j = ehr_json_parse(b.data ? b.data : "", b.len, &err);
    ehr_buf_free(&b);
    if (!j) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return NULL;
    }
    if (n_inputs < 32) {
        inputs[n_inputs].file = strdup(file);
        inputs[n_inputs].json = j;
        n_inputs++;
    }
    return j;
}

static char *attr(xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    char *r = strdup((const char *)v);
    xmlFree(v);
    return r;
}

static char *text_of(xmlNode *n)
{
    xmlChar *v = xmlNodeGetContent(n);
    char *r = strdup(v ? (const char *)v : "");
    xmlFree(v);
    return r;
}

/* Does the item have the type the suite names ("string", "code", "date")? */
static bool type_matches(const ehr_fhirpath_item *it, const char *type)
{
    const ehr_fhir_type *ft = ehr_fhirpath_item_fhir_type(it);
    ehr_fhirpath_kind k = ehr_fhirpath_item_kind(it);
    if (strcmp(type, "Quantity") == 0)
        return k == EHR_FHIRPATH_QUANTITY ||
               (ft && ehr_fhir_type_is_a(ft, ehr_fhir_type_find("Quantity", 8)));
    if (ft) {
        const ehr_fhir_type *want = ehr_fhir_type_find(type, strlen(type));
        /* FHIR R4 declares Resource.id as System.String: id and string
         * values answer for each other */
        return want && (ehr_fhir_type_is_a(ft, want) || ehr_fhir_type_is_a(want, ft));
    }
    static const struct {
        const char *t;
        ehr_fhirpath_kind k;
    } m[] = {{"boolean", EHR_FHIRPATH_BOOLEAN}, {"integer", EHR_FHIRPATH_INTEGER},
             {"decimal", EHR_FHIRPATH_DECIMAL}, {"string", EHR_FHIRPATH_STRING},
             {"code", EHR_FHIRPATH_STRING},     {"id", EHR_FHIRPATH_STRING},
             {"date", EHR_FHIRPATH_DATE},       {"dateTime", EHR_FHIRPATH_DATETIME},
             {"time", EHR_FHIRPATH_TIME}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(m[i].t, type) == 0)
            return k == m[i].k;
    return false;
}

/* Compare one result item with an expected output (type may be NULL). */
static bool output_matches(const ehr_fhirpath_item *it, const char *type, const char *expect,
                           ehr_arena *a)
{
    if (type && !type_matches(it, type))
        return false;
    const char *t = ehr_fhirpath_item_text(it, a);
    if (!t)
        return false;
    const char *e = expect;
    if (e[0] == '@')
        e += (e[1] == 'T') ? 2 : 1;
    if (type && strcmp(type, "decimal") == 0) {
        /* numerically */
        return strtod(t, NULL) == strtod(e, NULL);
    }
    return strcmp(t, e) == 0;
}

typedef struct out {
    char *type;
    char *text;
} out;

typedef struct counts {
    int pass, fail, skip;
} counts;

static void print_result(const ehr_fhirpath_result *r, ehr_arena *a)
{
    fprintf(stderr, "      got (%zu):", r->count);
    for (size_t i = 0; i < r->count; i++) {
        const ehr_fhirpath_item *it = ehr_fhirpath_result_get(r, i);
        const char *t = ehr_fhirpath_item_text(it, a);
        fprintf(stderr, " %s<%s>", t ? t : "(object)", ehr_fhirpath_item_type_name(it, a));
    }
    fprintf(stderr, "\n");
}

static void trace_none(void *ctx, const char *name, const ehr_fhirpath_item *items, size_t n)
{
}

/* Run one <test>; returns 1 pass, 0 fail, -1 skipped. */
static int run_test(const char *dir, xmlNode *t, const char *group)
{
    char *name = attr(t, "name");
    char *inputfile = attr(t, "inputfile");
    char *predicate = attr(t, "predicate");
    char *ordered = attr(t, "ordered");
    char *check_ordered = attr(t, "checkOrderedFunctions");
    char *mode = attr(t, "mode");
    char *expr = NULL, *invalid = NULL;
    out outs[64];
    int n_out = 0;
    int result = 0;
    for (xmlNode *c = t->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)c->name, "expression") == 0) {
            expr = text_of(c);
            invalid = attr(c, "invalid");
            char *m = attr(c, "mode");
            if (m) {
                free(mode);
                mode = m;
            }
        } else if (strcmp((const char *)c->name, "output") == 0 && n_out < 64) {
            outs[n_out].type = attr(c, "type");
            outs[n_out].text = text_of(c);
            n_out++;
        }
    }
    const char *why = skip_reason(name ? name : "");
    if (why) {
        printf("  skip %s: %s\n", name, why);
        result = -1;
        goto done;
    }
    json_t *res_json = NULL;
    if (inputfile) {
        res_json = load_input(dir, inputfile);
        if (!res_json) {
            fprintf(stderr, "  FAIL %s: input %s not found\n", name, inputfile);
            goto done;
        }
    }
    ehr_fhirpath_options opts = {0};
    const char *rt = res_json ? ehr_json_get_string(res_json, "resourceType") : NULL;
    opts.context_type = rt;
    if (check_ordered && strcmp(check_ordered, "true") == 0)
        opts.flags |= EHR_FHIRPATH_CHECK_ORDERED;
    if (mode && strcmp(mode, "strict") == 0)
        opts.flags |= EHR_FHIRPATH_STRICT;
    ehr_err err;
    memset(&err, 0, sizeof err);
    ehr_fhirpath_expr *e = NULL;
    ehr_status st = ehr_fhirpath_compile_opts(expr, strlen(expr), &opts, &e, &err);
    ehr_arena *a = ehr_arena_new();
    ehr_fhirpath_result r = {0};
    if (st == EHR_OK) {
        ehr_fhirpath_env env;
        memset(&env, 0, sizeof env);
        env.trace = trace_none;
        st = ehr_fhirpath_eval(e, res_json, &env, a, &r, &err);
    }
    ehr_fhirpath_errclass cls = ehr_fhirpath_error_class(st, &err);
    if (invalid) {
        ehr_fhirpath_errclass want = strcmp(invalid, "syntax") == 0 ? EHR_FHIRPATH_ERR_SYNTAX
                                          : strcmp(invalid, "semantic") == 0
                                              ? EHR_FHIRPATH_ERR_SEMANTIC
                                              : EHR_FHIRPATH_ERR_EXECUTION;
        result = cls == want;
        if (!result) {
            fprintf(stderr, "  FAIL %s [%s]: %s\n      expected a %s error, got %s\n", name, group,
                    expr, invalid, st ? err.msg : "no error");
            if (!st)
                print_result(&r, a);
        }
    } else if (st != EHR_OK) {
        fprintf(stderr, "  FAIL %s [%s]: %s\n      error: %s\n", name, group, expr, err.msg);
    } else {
        bool ok;
        if (predicate && strcmp(predicate, "true") == 0) {
            ok = n_out == 1 && strcmp(outs[0].text, r.count ? "true" : "false") == 0;
        } else if ((size_t)n_out != r.count) {
            ok = false;
        } else if (ordered && strcmp(ordered, "false") == 0) {
            bool used[64] = {false};
            ok = true;
            for (int i = 0; i < n_out && ok; i++) {
                bool found = false;
                for (size_t k = 0; k < r.count && !found; k++)
                    if (!used[k] && output_matches(ehr_fhirpath_result_get(&r, k), outs[i].type,
                                                   outs[i].text, a))
                        used[k] = found = true;
                ok = found;
            }
        } else {
            ok = true;
            for (int i = 0; i < n_out && ok; i++)
                ok = output_matches(ehr_fhirpath_result_get(&r, (size_t)i), outs[i].type,
                                    outs[i].text, a);
        }
        result = ok;
        if (!ok) {
            fprintf(stderr, "  FAIL %s [%s]: %s\n      expected (%d):", name, group, expr, n_out);
            for (int i = 0; i < n_out; i++)
                fprintf(stderr, " %s<%s>", outs[i].text, outs[i].type ? outs[i].type : "?");
            fprintf(stderr, "\n");
            print_result(&r, a);
        }
    }
    if (verbose && result == 1)
        printf("  pass %s\n", name);
    ehr_arena_free(&a);
    ehr_fhirpath_free(&e);
done:
    free(name);
    free(inputfile);
    free(predicate);
    free(ordered);
    free(check_ordered);
    free(mode);
    free(expr);
    free(invalid);
    for (int i = 0; i < n_out; i++) {
        free(outs[i].type);
        free(outs[i].text);
    }
    return result;
}

int main(int argc, char **argv)
{
    const char *dir = "../shared/data/fhirpath";
    const char *only = NULL;
    int min_pass = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--min-pass") == 0 && i + 1 < argc)
            min_pass = atoi(argv[++i]);
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            dir = argv[i];
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/r4-xml/tests-fhir-r4.xml", dir);
    FILE *probe = fopen(path, "r");
    if (!probe) {
        printf("SKIP: FHIRPath R4 suite not found at %s (the external test data of "
               "../shared/data is absent)\n",
               path);
        return 77;
    }
    fclose(probe);
    load_skips();
    xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
    if (!doc) {
        fprintf(stderr, "%s: not well-formed XML\n", path);
        return 1;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    counts total = {0, 0, 0};
    for (xmlNode *g = root->children; g; g = g->next) {
        if (g->type != XML_ELEMENT_NODE || strcmp((const char *)g->name, "group") != 0)
            continue;
        char *gname = attr(g, "name");
        counts gc = {0, 0, 0};
        for (xmlNode *t = g->children; t; t = t->next) {
            if (t->type != XML_ELEMENT_NODE || strcmp((const char *)t->name, "test") != 0)
                continue;
            if (only) {
                char *nm = attr(t, "name");
                bool match = nm && strcmp(nm, only) == 0;
                free(nm);
                if (!match)
                    continue;
            }
            int r = run_test(dir, t, gname ? gname : "?");
            if (r == 1)
                gc.pass++;
            else if (r == 0)
                gc.fail++;
            else
                gc.skip++;
        }
        if (gc.pass + gc.fail + gc.skip)
            printf("%-40s passed %3d  failed %3d  skipped %3d\n", gname ? gname : "?", gc.pass,
                   gc.fail, gc.skip);
        total.pass += gc.pass;
        total.fail += gc.fail;
        total.skip += gc.skip;
        free(gname);
    }
    xmlFreeDoc(doc);
    xmlCleanupParser();
    for (size_t i = 0; i < n_inputs; i++) {
        json_decref(inputs[i].json);
        free(inputs[i].file);
    }
    for (size_t i = 0; i < n_skips; i++) {
        free(skips[i].name);
        free(skips[i].reason);
    }
    int all = total.pass + total.fail + total.skip;
    printf("TOTAL: %d tests: passed %d, failed %d, skipped %d\n", all, total.pass, total.fail,
           total.skip);
    if (total.pass < min_pass) {
        printf("FAIL: %d passed, fewer than the required %d\n", total.pass, min_pass);
        return 1;
    }
    return 0;
}
