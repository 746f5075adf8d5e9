#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ehr_status ehr_buf_reserve(ehr_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (b->limit && b->len + extra > b->limit)
        return EHR_ELIMIT;
    if (need <= b->cap)
        return EHR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return EHR_ENOMEM;
    b->data = p;
    b->cap = cap;
    return EHR_OK;
}

ehr_status ehr_buf_append(ehr_buf *b, const void *data, size_t len)
{
    ehr_status st = ehr_buf_reserve(b, len);
    if (st)
        return st;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return EHR_OK;
}

ehr_status ehr_buf_puts(ehr_buf *b, const char *s)
{
    return ehr_buf_append(b, s, strlen(s));
}

ehr_status ehr_buf_putc(ehr_buf *b, char c)
{
    return ehr_buf_append(b, &c, 1);
}

ehr_status ehr_buf_vprintf(ehr_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return EHR_EINVAL;
    ehr_status st = ehr_buf_reserve(b, (size_t)n);
    if (st)
        return st;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return EHR_OK;
}

ehr_status ehr_buf_printf(ehr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ehr_status st = ehr_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return st;
}

ehr_status ehr_buf_json_escape(ehr_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    ehr_status st;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char u[7];
        if (c == '"')
            rep = "\\\"";
        else if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '\r')
            rep = "\\r";
        else if (c == '\t')
            rep = "\\t";
        else if (c < 0x20) {
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            rep = u;
        }
        if (rep) {
            if ((st = ehr_buf_append(b, s + start, i - start)) || (st = ehr_buf_puts(b, rep)))
                return st;
            start = i + 1;
        }
    }
    return ehr_buf_append(b, s + start, len - start);
}

ehr_status ehr_buf_xml_escape(ehr_buf *b, const char *s, size_t len)
{
    size_t start = 0;
    ehr_status st;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\n':
            rep = "&#xA;";
            break;
        case '\r':
            rep = "&#xD;";
            break;
        case '\t':
            rep = "&#x9;";
            break;
        default:
            break;
        }
        if (rep) {
            if ((st = ehr_buf_append(b, s + start, i - start)) || (st = ehr_buf_puts(b, rep)))
                return st;
            start = i + 1;
        }
    }
    return ehr_buf_append(b, s + start, len - start);
}

void ehr_buf_reset(ehr_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *ehr_buf_steal(ehr_buf *b, size_t *len)
{
    char *p = b->data;
    if (!p) {
        p = malloc(1);
        if (p)
            p[0] = '\0';
    }
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void ehr_buf_free(ehr_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
