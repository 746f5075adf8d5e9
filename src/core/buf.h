/*
 * buf.h - a growable byte buffer with a hard cap.
 *
 * The buffer owns its bytes; ehr_buf_free releases them. data is always
 * NUL-terminated after any successful append, so it can be used as a string.
 * A cap (0 = unlimited) bounds growth where input decides the size.
 */
#ifndef EHR_CORE_BUF_H
#define EHR_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/status.h"

typedef struct ehr_buf {
    char *data;
    size_t len;
    size_t cap;   /* allocated bytes */
    size_t limit; /* 0 = unlimited; appends beyond it fail with EHR_ELIMIT */
} ehr_buf;

#define EHR_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

ehr_status ehr_buf_reserve(ehr_buf *b, size_t extra);
ehr_status ehr_buf_append(ehr_buf *b, const void *data, size_t len);
ehr_status ehr_buf_puts(ehr_buf *b, const char *s);
ehr_status ehr_buf_putc(ehr_buf *b, char c);
ehr_status ehr_buf_printf(ehr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ehr_status ehr_buf_vprintf(ehr_buf *b, const char *fmt, va_list ap);
/* Append s escaped as the inside of a JSON string (no surrounding quotes). */
ehr_status ehr_buf_json_escape(ehr_buf *b, const char *s, size_t len);
/* Append s escaped for XML text or attribute content. */
ehr_status ehr_buf_xml_escape(ehr_buf *b, const char *s, size_t len);
void ehr_buf_reset(ehr_buf *b);
/* Hand the bytes to the caller (who frees them with free()); b is emptied. */
char *ehr_buf_steal(ehr_buf *b, size_t *len);
void ehr_buf_free(ehr_buf *b);

#endif
