/*
 * fuzz_fhirpath.c - libFuzzer target for the FHIRPath compiler and
 * evaluator: any bytes as an expression, compiled with and without the
 * static checks, then evaluated (with tight limits) on a small Patient.
 *
 *   CC=clang meson setup build-fuzz -Db_sanitize=address,undefined
 *   ninja -C build-fuzz tests/fuzz/fuzz_fhirpath
 *   ./build-fuzz/tests/fuzz/fuzz_fhirpath tests/fuzz/corpus/fhirpath
 *
 * Every crash found becomes a file in corpus/fhirpath/, which
 * run_corpus.c replays in `meson test` with any compiler.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/json.h"
#include "fhirpath/fhirpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char patient[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p\",\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"]}],"
    "\"birthDate\":\"1974-12-25\",\"_birthDate\":{\"extension\":[{\"url\":\"u\","
    "\"valueDateTime\":\"1974-12-25T14:35:45-05:00\"}]},"
    "\"telecom\":[{\"system\":\"phone\",\"value\":\"5\",\"rank\":2}],"
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\"}],"
    "\"managingOrganization\":{\"reference\":\"#o\"},"
    "\"extension\":[{\"url\":\"x\",\"valueQuantity\":{\"value\":1.5,\"code\":\"mg\","
    "\"system\":\"http://unitsofmeasure.org\"}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *doc;
    if (!doc)
        doc = ehr_json_parse(patient, strlen(patient), NULL);
    ehr_err err;
    ehr_fhirpath_expr *e = NULL;
    ehr_fhirpath_options o = {"Patient", EHR_FHIRPATH_CHECK_ORDERED | EHR_FHIRPATH_STRICT};
    if (ehr_fhirpath_compile_opts((const char *)data, size, &o, &e, &err) == EHR_OK)
        ehr_fhirpath_free(&e);
    if (ehr_fhirpath_compile((const char *)data, size, &e, &err) != EHR_OK)
        return 0;
    ehr_arena *a = ehr_arena_new();
    ehr_fhirpath_env env;
    memset(&env, 0, sizeof env);
    env.now = "2024-01-01T00:00:00Z";
    env.max_steps = 20000;
    env.max_items = 2000;
    env.max_bytes = 4u << 20;
    ehr_fhirpath_result r;
    if (ehr_fhirpath_eval(e, doc, &env, a, &r, &err) == EHR_OK) {
        json_t *j = ehr_fhirpath_result_to_json(&r);
        json_decref(j);
        for (size_t i = 0; i < r.count; i++)
            (void)ehr_fhirpath_item_text(ehr_fhirpath_result_get(&r, i), a);
    }
    ehr_arena_free(&a);
    ehr_fhirpath_free(&e);
    return 0;
}
