/*
 * primitive.c - lexical checks of FHIR R4 primitive values.
 *
 * Follows the regular expressions of FHIR R4 2.24.0.1 (Primitive Types),
 * written out by hand, plus what a regex can't say: real calendar dates
 * (2023-02-29 is not a date) and the 32-bit range of integers.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/validate.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* FHIRPath / XML Schema \s: space, tab, CR, LF (and FF, VT in regex engines) */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* n digits at s, as a number; -1 when not all digits */
static int digits(const char *s, size_t len, size_t at, size_t n)
{
    if (at + n > len)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[at + i]))
            return -1;
        v = v * 10 + (s[at + i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

enum { DATE_Y = 1, DATE_YM = 2, DATE_YMD = 3 };

/*
 * Date part "YYYY", "YYYY-MM" or "YYYY-MM-DD" at the start of s. Returns
 * the number of bytes used (0 on error) and the precision in *prec.
 */
static size_t parse_date(const char *s, size_t len, int *prec, const char **why)
{
    int y = digits(s, len, 0, 4);
    if (y < 0) {
        *why = "expected a four-digit year";
        return 0;
    }
    if (y == 0) {
        *why = "year 0000 does not exist";
        return 0;
    }
    *prec = DATE_Y;
    if (len == 4 || s[4] != '-')
        return 4;
    int m = digits(s, len, 5, 2);
    if (m < 1 || m > 12 || (len > 7 && is_digit(s[7]))) {
        *why = "the month must be two digits, 01 to 12";
        return 0;
    }
    *prec = DATE_YM;
    if (len == 7 || s[7] != '-')
        return 7;
    int d = digits(s, len, 8, 2);
    if (d < 1 || (len > 10 && is_digit(s[10]))) {
        *why = "the day must be two digits, 01 to 31";
        return 0;
    }
    if (d > days_in_month(y, m)) {
        if (m != 2)
            *why = "that month has only 30 days";
        else if (days_in_month(y, m) == 29)
            *why = "February has only 29 days, even in a leap year";
        else
            *why = "February has only 28 days in that year (it is not a leap year)";
        return 0;
    }
    *prec = DATE_YMD;
    return 10;
}

/* "hh:mm:ss(.s+)?" at s; bytes used or 0 */
static size_t parse_time(const char *s, size_t len, const char **why)
{
    int h = digits(s, len, 0, 2), mi = digits(s, len, 3, 2), se = digits(s, len, 6, 2);
    if (len < 8 || s[2] != ':' || s[5] != ':' || h < 0 || mi < 0 || se < 0) {
        *why = "a time is hh:mm:ss with optional fractions of a second (seconds are required)";
        return 0;
    }
    if (h > 23 || mi > 59 || se > 60) { /* 60: a leap second, as the R4 regex allows */
        *why = "the time is out of range (hours 00-23, minutes 00-59, seconds 00-60)";
        return 0;
    }
    size_t i = 8;
    if (i < len && s[i] == '.') {
        size_t f = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == f) {
            *why = "a decimal point in the seconds needs digits after it";
            return 0;
        }
    }
    return i;
}

/* "Z" or "+hh:mm" / "-hh:mm" (up to 14:00) at s; bytes used or 0 */
static size_t parse_zone(const char *s, size_t len, const char **why)
{
    if (len >= 1 && s[0] == 'Z')
        return 1;
    if (len >= 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':') {
        int h = digits(s, len, 1, 2), m = digits(s, len, 4, 2);
        if (h >= 0 && m >= 0 && m <= 59 && (h <= 13 || (h == 14 && m == 0)))
            return 6;
    }
    *why = "a time needs a time zone: Z or +hh:mm / -hh:mm (at most 14:00)";
    return 0;
}

static const char *check_date(const char *s, size_t len)
{
    const char *why = NULL;
    int prec;
    size_t n = parse_date(s, len, &prec, &why);
    if (n == 0)
        return why;
    if (n != len)
        return "a date is YYYY, YYYY-MM or YYYY-MM-DD, with no time";
    return NULL;
}

static const char *check_datetime(const char *s, size_t len, bool instant)
{
    const char *why = NULL;
    int prec;
    size_t n = parse_date(s, len, &prec, &why);
    if (n == 0)
        return why;
    if (n == len) {
        if (instant)
            return "an instant is YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)";
        return NULL;
    }
    if (s[n] != 'T' || prec != DATE_YMD)
        return instant ? "an instant is YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)"
                       : "a dateTime is YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a "
                         "time zone";
    n++;
    size_t t = parse_time(s + n, len - n, &why);
    if (t == 0)
        return why;
    n += t;
    size_t z = parse_zone(s + n, len - n, &why);
    if (z == 0)
        return why;
    if (n + z != len)
        return "unexpected characters after the time zone";
    return NULL;
}

static const char *check_time(const char *s, size_t len)
{
    const char *why = NULL;
    size_t n = parse_time(s, len, &why);
    if (n == 0)
        return why;
    if (n != len)
        return "a time is hh:mm:ss(.s) with no date and no time zone";
    return NULL;
}

/* string and markdown: FHIR R4 2.24.0.1 "[ \r\n\t\S]+", no other control
   characters, at most 1 MB */
static const char *check_string(const char *s, size_t len)
{
    if (len == 0)
        return "empty strings are not allowed in FHIR JSON: leave the element out";
    if (len > 1024 * 1024)
        return "strings may be at most 1 MB";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
            return "strings may not contain control characters other than tab, CR and LF";
    }
    return NULL;
}

/* code: "[^\s]+(\s[^\s]+)*" */
static const char *check_code(const char *s, size_t len)
{
    const char *why = check_string(s, len);
    if (why)
        return why;
    if (is_space(s[0]) || is_space(s[len - 1]))
        return "a code may not start or end with whitespace";
    for (size_t i = 1; i < len; i++)
        if (is_space(s[i]) && is_space(s[i - 1]))
            return "a code may not contain two whitespace characters in a row";
    return NULL;
}

/* id: "[A-Za-z0-9\-\.]{1,64}" */
static const char *check_id(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return "an id has 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'";
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' ||
              c == '.'))
            return "an id has 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'";
    }
    return NULL;
}

/* uri, url, canonical: "\S*" (and non-empty, as every JSON string) */
static const char *check_uri(const char *s, size_t len)
{
    if (len == 0)
        return "empty strings are not allowed in FHIR JSON: leave the element out";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_space((char)c) || c < 0x20)
            return "a URI may not contain whitespace (percent-encode spaces as %20)";
    }
    return NULL;
}

/* oid: "urn:oid:[0-2](\.(0|[1-9][0-9]*))+" */
static const char *check_oid(const char *s, size_t len)
{
    static const char msg[] = "an oid is urn:oid: followed by dotted numbers, e.g. urn:oid:1.2.3";
    if (len < 10 || memcmp(s, "urn:oid:", 8) != 0 || s[8] < '0' || s[8] > '2')
        return msg;
    size_t i = 9;
    int arcs = 0;
    while (i < len) {
        if (s[i] != '.' || i + 1 >= len || !is_digit(s[i + 1]))
            return msg;
        i++;
        if (s[i] == '0' && i + 1 < len && is_digit(s[i + 1]))
            return "an oid's numbers may not have leading zeros";
        while (i < len && is_digit(s[i]))
            i++;
        arcs++;
    }
    return arcs ? NULL : msg;
}

/* uuid: "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}" */
static const char *check_uuid(const char *s, size_t len)
{
    static const char msg[] =
        "a uuid is urn:uuid: followed by 8-4-4-4-12 lowercase hexadecimal digits";
    if (len != 45 || memcmp(s, "urn:uuid:", 9) != 0)
        return msg;
    for (size_t i = 9; i < len; i++) {
        size_t k = i - 9;
        char c = s[i];
        if (k == 8 || k == 13 || k == 18 || k == 23) {
            if (c != '-')
                return msg;
        } else if (!(is_digit(c) || (c >= 'a' && c <= 'f'))) {
            return msg;
        }
    }
    return NULL;
}

/* base64Binary: "(\s*([0-9a-zA-Z\+/=]){4}\s*)+", with '=' only as padding */
static const char *check_base64(const char *s, size_t len)
{
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_space(c))
            continue;
        if (c == '=') {
            pad++;
        } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' ||
                   c == '/') {
            if (pad)
                return "base64 padding '=' may only come at the end";
        } else {
            return "base64Binary may hold only A-Z, a-z, 0-9, '+', '/', '=' and whitespace";
        }
        n++;
    }
    if (n == 0)
        return "empty strings are not allowed in FHIR JSON: leave the element out";
    if (n % 4 != 0 || pad > 2)
        return "base64 text comes in groups of four characters (pad with '=')";
    return NULL;
}

/* integer types: the text of a JSON number (from ehr_json_number_text) */
static const char *check_int(const char *s, size_t len, long long min)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i == len)
        return "expected a whole number";
    for (size_t k = i; k < len; k++)
        if (!is_digit(s[k]))
            return "expected a whole number, without a fraction or exponent";
    if (s[i] == '0' && len - i > 1)
        return "a whole number may not have leading zeros";
    if (len - i > 11)
        return "out of range: integers are 32-bit, -2147483648 to 2147483647";
    char buf[16];
    memcpy(buf, s, len);
    buf[len] = 0;
    long long v = strtoll(buf, NULL, 10);
    if (v < -2147483648LL || v > 2147483647LL)
        return "out of range: integers are 32-bit, -2147483648 to 2147483647";
    if (s[0] == '-' && v == 0 && min >= 0)
        return "write 0, not -0";
    if (v < min)
        return min == 1 ? "a positiveInt must be 1 or more" : "an unsignedInt must be 0 or more";
    return NULL;
}

/* decimal: "-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", the JSON number grammar */
static const char *check_decimal(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return "expected a decimal number";
    if (s[i] == '0' && i + 1 < len && is_digit(s[i + 1]))
        return "a decimal may not have leading zeros";
    while (i < len && is_digit(s[i]))
        i++;
    if (i < len && s[i] == '.') {
        size_t d = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == d)
            return "a decimal point needs digits after it";
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == d)
            return "an exponent needs digits";
    }
    return i == len ? NULL : "expected a decimal number";
}

/* xhtml: the narrative's div (FHIR R4 2.15.0.1); its content is checked
   more closely by the validator */
static const char *check_xhtml(const char *s, size_t len)
{
    size_t a = 0, b = len;
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    if (b - a < 5 || memcmp(s + a, "<div", 4) != 0 ||
        !(s[a + 4] == '>' || s[a + 4] == '/' || is_space(s[a + 4])))
        return "narrative must be XHTML whose root element is <div "
               "xmlns=\"http://www.w3.org/1999/xhtml\">";
    if (!(b - a >= 10 && memcmp(s + b - 6, "</div>", 6) == 0) && !(memcmp(s + b - 2, "/>", 2) == 0))
        return "narrative XHTML must end with </div>";
    return NULL;
}

const char *ehr_fhir_primitive_check(ehr_fhir_prim prim, const char *text, size_t len)
{
    switch (prim) {
    case EHR_PRIM_NONE:
        return NULL;
    case EHR_PRIM_BOOLEAN:
        if ((len == 4 && memcmp(text, "true", 4) == 0) ||
            (len == 5 && memcmp(text, "false", 5) == 0))
            return NULL;
        return "expected true or false";
    case EHR_PRIM_INTEGER:
        return check_int(text, len, -2147483648LL);
    case EHR_PRIM_UNSIGNEDINT:
        return check_int(text, len, 0);
    case EHR_PRIM_POSITIVEINT:
        return check_int(text, len, 1);
    case EHR_PRIM_DECIMAL:
        return check_decimal(text, len);
    case EHR_PRIM_STRING:
    case EHR_PRIM_MARKDOWN:
        return check_string(text, len);
    case EHR_PRIM_CODE:
        return check_code(text, len);
    case EHR_PRIM_ID:
        return check_id(text, len);
    case EHR_PRIM_URI:
    case EHR_PRIM_URL:
    case EHR_PRIM_CANONICAL:
        return check_uri(text, len);
    case EHR_PRIM_OID:
        return check_oid(text, len);
    case EHR_PRIM_UUID:
        return check_uuid(text, len);
    case EHR_PRIM_BASE64BINARY:
        return check_base64(text, len);
    case EHR_PRIM_DATE:
        return check_date(text, len);
    case EHR_PRIM_DATETIME:
        return check_datetime(text, len, false);
    case EHR_PRIM_INSTANT:
        return check_datetime(text, len, true);
    case EHR_PRIM_TIME:
        return check_time(text, len);
    case EHR_PRIM_XHTML:
        return check_xhtml(text, len);
    }
    return NULL;
}
