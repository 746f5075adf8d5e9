/*
 * fuzz_xml - libFuzzer target for the FHIR XML reader and writer
 * (src/fhir/xml*.c).
 *
 * Any input the reader accepts must write back as XML, and that XML must
 * read back to the same tree (numbers compared by their text): the two
 * directions are inverse on everything the reader takes. An input that
 * starts with '{' is JSON instead: whatever the writer accepts must read
 * back to the same tree. Crashes, leaks and sanitizer reports are findings
 * too.
 *
 * Build and run with clang (libFuzzer), from the project root after a
 * build in build/ (for the generated tables):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *     -I/usr/include/libxml2 tests/fuzz/fuzz_xml.c src/fhir/xml.c src/fhir/xml_read.c \
 *     src/fhir/xml_write.c src/fhir/model.c src/fhir/outcome.c src/core/json.c src/core/buf.c \
 *     src/core/status.c build/src/fhir/model_gen.c \
 *     -ljansson -lxml2 -lpthread -o build/fuzz_xml
 *   build/fuzz_xml -max_len=65536 tests/fuzz/corpus/xml
 *
 * Without libFuzzer (EHR_FUZZ_MAIN), main() runs the target over the files
 * named on the command line or found in the folders named there: the
 * meson test "fuzz_xml_corpus" replays the committed corpus this way, so
 * every input that once crashed stays a regression test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/json.h"
#include "fhir/xml.h"

/* Strict equality: numbers by their text. */
static bool same(const json_t *a, const json_t *b)
{
    if (ehr_json_is_number(a) || ehr_json_is_number(b)) {
        const char *x = ehr_json_number_text(a), *y = ehr_json_number_text(b);
        return x && y && strcmp(x, y) == 0;
    }
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            if (!same(v, json_object_get(b, k)))
                return false;
        }
        return true;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    return a && b && json_equal((json_t *)a, (json_t *)b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The writer takes a few JSON forms that carry nothing (an empty "_x"
   object, a "_x" or "x" array of nothing but nulls) and the reader does
   not give them back: drop them from j before comparing. */
static void normalise(json_t *j)
{
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            normalise(json_array_get(j, i));
        return;
    }
    if (!json_is_object(j))
        return;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach(j, k, v)
    {
        normalise(v);
    }
    json_object_foreach_safe(j, tmp, k, v)
    {
        if (k[0] != '_')
            continue;
        if (json_is_object(v) && json_object_size(v) == 0) {
            json_object_del(j, k);
            continue;
        }
        if (!json_is_array(v))
            continue;
        bool any = false;
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (json_is_object(x) && json_object_size(x) == 0)
                json_array_set_new(v, i, json_null());
            else if (!json_is_null(x))
                any = true;
        }
        if (!any)
            json_object_del(j, k);
    }
    json_object_foreach_safe(j, tmp, k, v)
    {
        bool all_null = json_is_array(v) && json_array_size(v) > 0;
        for (size_t i = 0; all_null && i < json_array_size(v); i++)
            all_null = json_is_null(json_array_get(v, i));
        if (all_null)
            json_object_del(j, k);
    }
}

/* JSON in: what the writer takes must read back the same. */
static int json_input(const char *data, size_t size)
{
    ehr_err err;
    json_t *j = ehr_json_parse(data, size, NULL);
    if (!j)
        return 0;
    ehr_buf x = EHR_BUF_INIT;
    if (ehr_fhir_json_to_xml(j, false, &x, &err) == EHR_OK) {
        json_t *b = ehr_fhir_xml_to_json(x.data, x.len, NULL, &err);
        if (!b) {
            fprintf(stderr, "fuzz_xml: written XML refused: %s at %s\n%s\n", err.msg, err.where,
                    x.data);
            abort();
        }
        normalise(j);
        if (!same(j, b)) {
            fprintf(stderr, "fuzz_xml: JSON round trip differs\n%s\n", x.data);
            abort();
        }
        json_decref(b);
    }
    ehr_buf_free(&x);
    json_decref(j);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_err err;
    if (size > 0 && data[0] == '{')
        return json_input((const char *)data, size);
    json_t *a = ehr_fhir_xml_to_json((const char *)data, size, &issues, &err);
    if (!a) {
        if (issues.n == 0) {
            fprintf(stderr, "fuzz_xml: refused without an issue: %s\n", err.msg);
            abort();
        }
        ehr_fhir_issues_free(&issues);
        return 0;
    }
    for (int pretty = 0; pretty < 2; pretty++) {
        ehr_buf x = EHR_BUF_INIT;
        if (ehr_fhir_json_to_xml(a, pretty, &x, &err) != EHR_OK) {
            fprintf(stderr, "fuzz_xml: read but cannot write back: %s at %s\n", err.msg, err.where);
            abort();
        }
        json_t *b = ehr_fhir_xml_to_json(x.data, x.len, NULL, &err);
        if (!b) {
            fprintf(stderr, "fuzz_xml: own output refused: %s at %s\n%s\n", err.msg, err.where,
                    x.data);
            abort();
        }
        if (!same(a, b)) {
            fprintf(stderr, "fuzz_xml: round trip differs\n%s\n", x.data);
            abort();
        }
        json_decref(b);
        ehr_buf_free(&x);
    }
    json_decref(a);
    return 0;
}

#ifdef EHR_FUZZ_MAIN
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    ehr_buf b = EHR_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ehr_buf_append(&b, chunk, n);
    fclose(f);
    LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
    ehr_buf_free(&b);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(argv[i]);
            count++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
            bad |= run_file(path);
            count++;
        }
        if (d)
            closedir(d);
    }
    printf("fuzz_xml: %d inputs replayed\n", count);
    return bad;
}
#endif
