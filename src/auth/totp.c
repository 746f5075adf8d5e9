/*
 * totp.c - one-time passwords (RFC 4226 HOTP, RFC 6238 TOTP) and the QR
 * code that carries the enrolment URI to an authenticator app.
 */
#include <openssl/hmac.h>
#include <qrencode.h>
#include <stdio.h>
#include <string.h>

#include "auth/crypto.h"

uint32_t ehr_hotp(const void *key, size_t keylen, uint64_t counter, int digits)
{
    unsigned char msg[8], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    /* RFC 4226 5.3: HMAC-SHA-1, then dynamic truncation */
    if (!HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof msg, md, &mdlen) || mdlen < 20)
        return UINT32_MAX;
    int off = md[mdlen - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(md[off] & 0x7f) << 24) | ((uint32_t)md[off + 1] << 16) |
                   ((uint32_t)md[off + 2] << 8) | (uint32_t)md[off + 3];
    uint32_t mod = 1;
    for (int i = 0; i < digits; i++)
        mod *= 10;
    return bin % mod;
}

bool ehr_totp_check(const void *key, size_t keylen, const char *code, int64_t now,
                    int64_t *last_step)
{
    if (!code || strlen(code) != EHR_TOTP_DIGITS || strspn(code, "0123456789") != EHR_TOTP_DIGITS)
        return false;
    uint32_t want = 0;
    for (const char *p = code; *p; p++)
        want = want * 10 + (uint32_t)(*p - '0');
    int64_t step = now / EHR_TOTP_STEP;
    bool ok = false;
    int64_t matched = 0;
    /* check every candidate, so the time taken does not say which matched */
    for (int64_t s = step - 1; s <= step + 1; s++) {
        if (s <= *last_step)
            continue;
        if (ehr_hotp(key, keylen, (uint64_t)s, EHR_TOTP_DIGITS) == want && !ok) {
            ok = true;
            matched = s;
        }
    }
    if (ok)
        *last_step = matched;
    return ok;
}

/* Percent-encode for a URI component. */
static ehr_status pct(ehr_buf *out, const char *s)
{
    ehr_status st = EHR_OK;
    for (; *s && !st; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            st = ehr_buf_putc(out, (char)c);
        else
            st = ehr_buf_printf(out, "%%%02X", c);
    }
    return st;
}

ehr_status ehr_totp_uri(const char *issuer, const char *account, const char *secret_b32,
                        ehr_buf *out)
{
    /* Key Uri Format (Google Authenticator): otpauth://totp/ISSUER:ACCOUNT?... */
    ehr_status st = ehr_buf_puts(out, "otpauth://totp/");
    if (!st)
        st = pct(out, issuer);
    if (!st)
        st = ehr_buf_putc(out, ':');
    if (!st)
        st = pct(out, account);
    if (!st)
        st = ehr_buf_printf(out, "?secret=%s&issuer=", secret_b32);
    if (!st)
        st = pct(out, issuer);
    if (!st)
        st = ehr_buf_printf(out, "&algorithm=SHA1&digits=%d&period=%d", EHR_TOTP_DIGITS,
                            EHR_TOTP_STEP);
    return st;
}

ehr_status ehr_qr_svg(const char *text, ehr_buf *out)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return EHR_ENOMEM;
    int w = qr->width, border = 4, size = w + 2 * border;
    ehr_status st =
        ehr_buf_printf(out,
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                       "width=\"%d\" height=\"%d\" shape-rendering=\"crispEdges\">"
                       "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path d=\"",
                       size, size, size * 6, size * 6, size, size);
    for (int y = 0; y < w && !st; y++)
        for (int x = 0; x < w && !st; x++)
            if (qr->data[y * w + x] & 1)
                st = ehr_buf_printf(out, "M%d %dh1v1h-1z", x + border, y + border);
    if (!st)
        st = ehr_buf_puts(out, "\" fill=\"#000\"/></svg>");
    QRcode_free(qr);
    return st;
}
