/* Unit tests for src/core: buffers, arena, lossless JSON, time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"

static void test_buf_limit(void **state)
{
    ehr_buf b = EHR_BUF_INIT;
    b.limit = 8;
    assert_int_equal(ehr_buf_puts(&b, "12345678"), EHR_OK);
    assert_int_equal(ehr_buf_putc(&b, 'x'), EHR_ELIMIT);
    assert_string_equal(b.data, "12345678");
    ehr_buf_free(&b);
}

static void test_json_escape(void **state)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_json_escape(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u0001");
    ehr_buf_free(&b);
}

static void test_arena(void **state)
{
    ehr_arena *a = ehr_arena_new();
    for (int i = 0; i < 1000; i++) {
        char *s = ehr_arena_printf(a, "value %d", i);
        assert_non_null(s);
        assert_int_equal(((uintptr_t)s) % 16, 0);
    }
    void *big = ehr_arena_alloc(a, 100000);
    assert_non_null(big);
    memset(big, 1, 100000);
    ehr_arena_free(&a);
    assert_null(a);
}

/* Table: input JSON -> compact output. Numbers keep their exact text. */
static const struct {
    const char *in, *out;
} json_cases[] = {
    {"{\"a\": 1.50}", "{\"a\":1.50}"},
    {"{\"a\":0.1,\"b\":[1e3, -0.0, 12345678901234567890]}",
     "{\"a\":0.1,\"b\":[1e3,-0.0,12345678901234567890]}"},
    {"{\"z\":1,\"a\":2}", "{\"z\":1,\"a\":2}"},
    {"{\"s\":\"1.50\"}", "{\"s\":\"1.50\"}"},
    {"[\"\\\\u0000#5\"]", "[\"\\\\u0000#5\"]"},
    {"\"h\\u00e9\"", "\"h\xc3\xa9\""},
};

static void test_json_roundtrip(void **state)
{
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
        ehr_err err;
        json_t *j = ehr_json_parse(json_cases[i].in, strlen(json_cases[i].in), &err);
        assert_non_null(j);
        char *s = ehr_json_dumps(j, EHR_JSON_COMPACT);
        assert_string_equal(s, json_cases[i].out);
        free(s);
        json_decref(j);
    }
}

static void test_json_types(void **state)
{
    const char *in = "{\"n\":1.50,\"i\":42,\"s\":\"42\"}";
    json_t *j = ehr_json_parse(in, strlen(in), NULL);
    assert_true(ehr_json_is_number(json_object_get(j, "n")));
    assert_false(ehr_json_is_integer(json_object_get(j, "n")));
    assert_true(ehr_json_is_integer(json_object_get(j, "i")));
    assert_false(ehr_json_is_string(json_object_get(j, "i")));
    assert_true(ehr_json_is_string(json_object_get(j, "s")));
    assert_string_equal(ehr_json_number_text(json_object_get(j, "n")), "1.50");
    assert_null(ehr_json_get_string(j, "n"));
    json_decref(j);
}

static void test_json_errors(void **state)
{
    static const char *bad[] = {
        "{\"a\":1,\"a\":2}",      /* duplicate key */
        "{\"a\":\"x\\u0000\"}",   /* NUL in a string */
        "{\"a\":01}",             /* leading zero */
        "{\"a\":}",
        "[1,2",
        "{\"a\":\n\"b\"\n,}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ehr_err err = {{0}};
        json_t *j = ehr_json_parse(bad[i], strlen(bad[i]), &err);
        assert_null(j);
        assert_non_null(strstr(err.msg, "line "));
    }
}

static void test_time(void **state)
{
    int64_t us;
    assert_true(ehr_time_parse("1970-01-01T00:00:00Z", &us));
    assert_int_equal(us, 0);
    assert_true(ehr_time_parse("2000-03-01", &us));
    assert_int_equal(us / 1000000, 951868800);
    assert_true(ehr_time_parse("2026-11-23T18:39:04.5+01:00", &us));
    char out[EHR_INSTANT_LEN];
    ehr_time_format(us, out);
    assert_string_equal(out, "2026-11-23T17:39:04.500Z");
    assert_false(ehr_time_parse("2026-13-01", &us));
    assert_false(ehr_time_parse("2024-02-30T00:00:00Z", &us));
    assert_true(ehr_time_parse("2024-02-29", &us));
    assert_false(ehr_time_parse("2023-02-29", &us));
    assert_false(ehr_time_parse("2024-01-01T24:00:00Z", &us));
    assert_false(ehr_time_parse("yesterday", &us));
}

static void test_ids(void **state)
{
    char a[EHR_ID_LEN], b[EHR_ID_LEN];
    ehr_id_new(a);
    ehr_id_new(b);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit),   cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_arena),       cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_types),  cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_time),        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
