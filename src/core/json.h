/*
 * json.h - JSON over jansson, with numbers kept exactly as written.
 *
 * FHIR decimals carry their precision in their text: 1.50 is not 1.5, and
 * a value of 0.1 must not come back as 0.10000000000000001. jansson turns
 * numbers into doubles, so ehr parses numbers itself and keeps each one as
 * its source text inside a jansson string tagged with a leading NUL byte,
 * a character that JSON input is never allowed to carry (ehr_json_parse
 * rejects \u0000). Always go through these helpers to tell numbers from
 * strings; never call json_is_number / json_is_string on parsed trees.
 *
 * Objects keep their key order (jansson does since 2.8).
 */
#ifndef EHR_CORE_JSON_H
#define EHR_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"

/*
 * Parse text. Duplicate keys and U+0000 in strings are errors. On failure
 * returns NULL and sets err->msg to "line L, column C: what". The caller
 * owns the result (json_decref).
 */
json_t *ehr_json_parse(const char *text, size_t len, ehr_err *err);

enum {
    EHR_JSON_COMPACT = 0,
    EHR_JSON_PRETTY = 1,
};

/* Serialise j, appending to out, numbers written back as their text. */
ehr_status ehr_json_dump(const json_t *j, ehr_buf *out, int flags);
/* Same, returning a malloc'd string (NULL on ENOMEM). */
char *ehr_json_dumps(const json_t *j, int flags);

/* A number made from its text (which must be a valid JSON number). */
json_t *ehr_json_number(const char *text);
json_t *ehr_json_integer(long long v);

bool ehr_json_is_number(const json_t *j);
/* The number's text, or NULL when j is not a number. */
const char *ehr_json_number_text(const json_t *j);
/* True when j is a number written without fraction or exponent. */
bool ehr_json_is_integer(const json_t *j);
/* A real string (not a tagged number). */
bool ehr_json_is_string(const json_t *j);
/* The string value, or NULL when j is not a real string. */
const char *ehr_json_string(const json_t *j);
/* The value of key in object obj when it is a real string, else NULL. */
const char *ehr_json_get_string(const json_t *obj, const char *key);

/* Deep equality that compares numbers by their numeric value. */
bool ehr_json_equal(const json_t *a, const json_t *b);

#endif
