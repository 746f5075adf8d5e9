/*
 * bench_xml - throughput of FHIR XML conversion (src/fhir/xml*.c).
 *
 * Usage: bench_xml [DIR [ROUNDS]]
 *
 * Loads every *.json resource of DIR (default ../shared/data/us-core/examples),
 * converts each to compact XML once, then times ROUNDS (default 20) passes
 * of JSON tree -> XML text and of XML text -> JSON tree, and prints
 * resources per second and MB/s of XML for each direction. For scale, the
 * same for the JSON text -> tree parse (ehr_json_parse) and tree -> text.
 * Times are CPU time of the process, so that a busy machine disturbs them
 * less than wall-clock time would.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "fhir/xml.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ehr_buf b = EHR_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (ehr_buf_append(&b, chunk, n))
            break;
    fclose(f);
    return ehr_buf_steal(&b, len);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/data/us-core/examples";
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_xml: cannot open %s\n", dir);
        return 1;
    }
    size_t n = 0, cap = 0, xml_bytes = 0, json_bytes = 0;
    json_t **trees = NULL;
    char **xmls = NULL, **jsons = NULL;
    size_t *xlens = NULL, *jlens = NULL;
    struct dirent *de;
    ehr_fhir_xml_init();
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *text = slurp(path, &len);
        json_t *j = text ? ehr_json_parse(text, len, NULL) : NULL;
        ehr_buf b = EHR_BUF_INIT;
        if (!j || ehr_fhir_json_to_xml(j, false, &b, NULL)) {
            fprintf(stderr, "bench_xml: skipping %s\n", de->d_name);
            json_decref(j);
            free(text);
            ehr_buf_free(&b);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            trees = realloc(trees, cap * sizeof *trees);
            xmls = realloc(xmls, cap * sizeof *xmls);
            jsons = realloc(jsons, cap * sizeof *jsons);
            xlens = realloc(xlens, cap * sizeof *xlens);
            jlens = realloc(jlens, cap * sizeof *jlens);
            if (!trees || !xmls || !jsons || !xlens || !jlens)
                return 1;
        }
        trees[n] = j;
        jsons[n] = text;
        jlens[n] = len;
        xmls[n] = ehr_buf_steal(&b, &xlens[n]);
        xml_bytes += xlens[n];
        json_bytes += len;
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "bench_xml: no resources in %s\n", dir);
        return 1;
    }

    double t0 = now();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            ehr_buf b = EHR_BUF_INIT;
            ehr_fhir_json_to_xml(trees[i], false, &b, NULL);
            ehr_buf_free(&b);
        }
    double t_write = now() - t0;
    t0 = now();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++)
            json_decref(ehr_fhir_xml_to_json(xmls[i], xlens[i], NULL, NULL));
    double t_read = now() - t0;
    t0 = now();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++)
            json_decref(ehr_json_parse(jsons[i], jlens[i], NULL));
    double t_jparse = now() - t0;
    t0 = now();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            ehr_buf b = EHR_BUF_INIT;
            ehr_json_dump(trees[i], &b, EHR_JSON_COMPACT);
            ehr_buf_free(&b);
        }
    double t_jdump = now() - t0;

    double total = (double)n * rounds;
    printf("%zu resources, %d rounds; XML %zu bytes, JSON %zu bytes per round\n", n, rounds,
           xml_bytes, json_bytes);
    printf("json tree -> xml text : %8.0f resources/s  %6.1f MB/s\n", total / t_write,
           (double)xml_bytes * rounds / t_write / 1e6);
    printf("xml text  -> json tree: %8.0f resources/s  %6.1f MB/s\n", total / t_read,
           (double)xml_bytes * rounds / t_read / 1e6);
    printf("(json text -> tree    : %8.0f resources/s  %6.1f MB/s)\n", total / t_jparse,
           (double)json_bytes * rounds / t_jparse / 1e6);
    printf("(json tree -> text    : %8.0f resources/s  %6.1f MB/s)\n", total / t_jdump,
           (double)json_bytes * rounds / t_jdump / 1e6);
    for (size_t i = 0; i < n; i++) {
        json_decref(trees[i]);
        free(xmls[i]);
        free(jsons[i]);
    }
    free(trees);
    free(xmls);
    free(jsons);
    free(xlens);
    free(jlens);
    return 0;
}
