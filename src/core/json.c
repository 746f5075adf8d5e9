#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tag in front of a number's text: NUL, then '#'. */
#define TAG "\0#"
#define TAG_LEN 2
/* What jansson writes for the tag inside a string: \u0000# */
#define TAG_ESC "\\u0000#"
#define TAG_ESC_LEN 7

/* Length of a JSON number at s (RFC 8259 grammar), 0 when none. */
static size_t number_len(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i;
}

json_t *ehr_json_parse(const char *text, size_t len, ehr_err *err)
{
    ehr_buf b = EHR_BUF_INIT;
    size_t line = 1, col = 0;
    if (ehr_buf_reserve(&b, len + len / 4 + 16)) {
        ehr_err_set(err, EHR_ENOMEM, "out of memory");
        return NULL;
    }
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        if (c == '"') {
            /* copy the string, refusing \u0000 */
            size_t j = i + 1;
            while (j < len && text[j] != '"') {
                if (text[j] == '\\' && j + 1 < len) {
                    if (text[j + 1] == 'u' && j + 5 < len && memcmp(text + j + 2, "0000", 4) == 0) {
                        ehr_err_set(err, EHR_EINVAL,
                                    "line %zu: strings may not contain the character U+0000", line);
                        ehr_buf_free(&b);
                        return NULL;
                    }
                    j += 2;
                    continue;
                }
                if (text[j] == '\n') {
                    line++;
                    col = 0;
                }
                j++;
            }
            if (j < len)
                j++;
            if (ehr_buf_append(&b, text + i, j - i))
                goto oom;
            col += j - i;
            i = j;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = number_len(text + i, len - i);
            if (n > 0) {
                if (ehr_buf_puts(&b, "\"" TAG_ESC) || ehr_buf_append(&b, text + i, n) ||
                    ehr_buf_putc(&b, '"'))
                    goto oom;
                i += n;
                col += n;
                continue;
            }
        }
        if (c == '\n') {
            line++;
            col = 0;
        } else {
            col++;
        }
        if (ehr_buf_putc(&b, c))
            goto oom;
        i++;
    }
    json_error_t je;
    json_t *j = json_loadb(b.data ? b.data : "", b.len,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    ehr_buf_free(&b);
    if (!j) {
        /* columns after a rewritten number are off by the tag; report the line */
        ehr_err_set(err, EHR_EINVAL, "line %d: %s", je.line, je.text);
        return NULL;
    }
    return j;
oom:
    ehr_buf_free(&b);
    ehr_err_set(err, EHR_ENOMEM, "out of memory");
    return NULL;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return ehr_buf_append(data, buffer, size) == EHR_OK ? 0 : -1;
}

ehr_status ehr_json_dump(const json_t *j, ehr_buf *out, int flags)
{
    ehr_buf tmp = EHR_BUF_INIT;
    size_t jflags = JSON_ENCODE_ANY;
    jflags |= (flags & EHR_JSON_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT;
    if (json_dump_callback(j, dump_cb, &tmp, jflags) != 0) {
        ehr_buf_free(&tmp);
        return EHR_ENOMEM;
    }
    /* Write tagged strings back as bare numbers. */
    const char *s = tmp.data ? tmp.data : "";
    size_t n = tmp.len, i = 0, start = 0;
    ehr_status st = EHR_OK;
    while (i < n) {
        if (s[i] != '"') {
            i++;
            continue;
        }
        if (n - i > TAG_ESC_LEN && memcmp(s + i + 1, TAG_ESC, TAG_ESC_LEN) == 0) {
            size_t k = i + 1 + TAG_ESC_LEN, e = k;
            while (e < n && s[e] != '"')
                e++;
            if ((st = ehr_buf_append(out, s + start, i - start)) ||
                (st = ehr_buf_append(out, s + k, e - k)))
                break;
            i = e + 1;
            start = i;
            continue;
        }
        /* skip an ordinary string */
        i++;
        while (i < n && s[i] != '"')
            i += (s[i] == '\\') ? 2 : 1;
        i++;
    }
    if (!st && start < n)
        st = ehr_buf_append(out, s + start, n - start);
    if (!st && !out->data)
        st = ehr_buf_append(out, "", 0);
    ehr_buf_free(&tmp);
    return st;
}

char *ehr_json_dumps(const json_t *j, int flags)
{
    ehr_buf b = EHR_BUF_INIT;
    if (ehr_json_dump(j, &b, flags)) {
        ehr_buf_free(&b);
        return NULL;
    }
    return ehr_buf_steal(&b, NULL);
}

json_t *ehr_json_number(const char *text)
{
    size_t n = strlen(text);
    if (number_len(text, n) != n)
        return NULL;
    char *tmp = malloc(n + TAG_LEN);
    if (!tmp)
        return NULL;
    memcpy(tmp, TAG, TAG_LEN);
    memcpy(tmp + TAG_LEN, text, n);
    json_t *j = json_stringn_nocheck(tmp, n + TAG_LEN);
    free(tmp);
    return j;
}

json_t *ehr_json_integer(long long v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", v);
    return ehr_json_number(tmp);
}

bool ehr_json_is_number(const json_t *j)
{
    if (!json_is_string(j))
        return false;
    size_t n = json_string_length(j);
    const char *s = json_string_value(j);
    return n > TAG_LEN && s[0] == '\0' && s[1] == '#';
}

const char *ehr_json_number_text(const json_t *j)
{
    return ehr_json_is_number(j) ? json_string_value(j) + TAG_LEN : NULL;
}

bool ehr_json_is_integer(const json_t *j)
{
    const char *t = ehr_json_number_text(j);
    return t && !strpbrk(t, ".eE");
}

bool ehr_json_is_string(const json_t *j)
{
    return json_is_string(j) && !ehr_json_is_number(j);
}

const char *ehr_json_string(const json_t *j)
{
    return ehr_json_is_string(j) ? json_string_value(j) : NULL;
}

const char *ehr_json_get_string(const json_t *obj, const char *key)
{
    return ehr_json_string(json_object_get(obj, key));
}

bool ehr_json_equal(const json_t *a, const json_t *b)
{
    if (ehr_json_is_number(a) && ehr_json_is_number(b))
        return strtod(ehr_json_number_text(a), NULL) == strtod(ehr_json_number_text(b), NULL);
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            if (!ehr_json_equal(v, json_object_get(b, k)))
                return false;
        }
        return true;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!ehr_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}
