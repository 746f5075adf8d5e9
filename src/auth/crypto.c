/*
 * crypto.c - passwords, secrets and encodings (see crypto.h).
 */
#include "auth/crypto.h"

#include <ctype.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <string.h>

ehr_status ehr_crypto_init(void)
{
    return sodium_init() < 0 ? EHR_EINTERNAL : EHR_OK;
}

/*
 * argon2id with libsodium's "interactive" limits (2 passes, 64 MiB): about
 * 50-100 ms per login on a laptop, the cost the library recommends for
 * online logins. The parameters are stored in the hash string, so they can
 * be raised later without invalidating existing hashes.
 */
ehr_status ehr_pw_hash(const char *pw, char out[EHR_PW_HASH_LEN])
{
    if (crypto_pwhash_str(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return EHR_ENOMEM;
    return EHR_OK;
}

bool ehr_pw_verify(const char *hash, const char *pw)
{
    return hash && crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
}

const char *ehr_pw_weak(const char *pw, const char *username)
{
    static const char *const common[] = {
        "password", "password1", "12345678", "123456789", "1234567890", "qwertyuiop",
        "iloveyou", "changeme",  "letmein1", "welcome1",  "passw0rd",   "admin123",
        "abc12345", "11111111",  "00000000", "sunshine",  "football",   "princess",
    };
    size_t n = strlen(pw);
    if (n < EHR_PW_MIN)
        return "a password needs at least 8 characters";
    if (n > EHR_PW_MAX)
        return "a password may have at most 128 characters";
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (!strcasecmp(pw, common[i]))
            return "this password is too common";
    if (username && *username && strcasestr(pw, username) && strlen(username) >= 3)
        return "a password may not contain the user name";
    return NULL;
}

ehr_status ehr_secret_new(size_t nbytes, ehr_buf *out)
{
    unsigned char b[64];
    if (nbytes > sizeof b)
        return EHR_EINVAL;
    randombytes_buf(b, nbytes);
    ehr_status st = ehr_b64url_encode(b, nbytes, out);
    sodium_memzero(b, sizeof b);
    return st;
}

void ehr_sha256_hex(const void *s, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(s, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

bool ehr_ct_equal(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    /* compare digests: equal length, and no early exit on the strings */
    unsigned char da[32], db[32];
    crypto_hash_sha256(da, (const unsigned char *)a, strlen(a));
    crypto_hash_sha256(db, (const unsigned char *)b, strlen(b));
    return sodium_memcmp(da, db, 32) == 0 && strlen(a) == strlen(b);
}

ehr_status ehr_b64url_encode(const void *data, size_t len, ehr_buf *out)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    ehr_status st = ehr_buf_reserve(out, cap);
    if (st)
        return st;
    sodium_bin2base64(out->data + out->len, cap, data, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out->len += strlen(out->data + out->len);
    return EHR_OK;
}

ehr_status ehr_b64url_decode(const char *s, size_t len, ehr_buf *out)
{
    while (len > 0 && s[len - 1] == '=')
        len--;
    size_t cap = len * 3 / 4 + 3;
    ehr_status st = ehr_buf_reserve(out, cap + 1);
    if (st)
        return st;
    size_t n = 0;
    const char *end = NULL;
    if (sodium_base642bin((unsigned char *)out->data + out->len, cap, s, len, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != s + len)
        return EHR_EINVAL;
    out->len += n;
    out->data[out->len] = '\0';
    return EHR_OK;
}

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

ehr_status ehr_base32_encode(const void *data, size_t len, ehr_buf *out)
{
    const unsigned char *p = data;
    uint32_t acc = 0;
    int bits = 0;
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < len && !st; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5 && !st) {
            st = ehr_buf_putc(out, b32[(acc >> (bits - 5)) & 31]);
            bits -= 5;
        }
    }
    if (!st && bits > 0)
        st = ehr_buf_putc(out, b32[(acc << (5 - bits)) & 31]);
    return st;
}

ehr_status ehr_base32_decode(const char *s, ehr_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (; *s; s++) {
        if (*s == '=' || *s == ' ' || *s == '-')
            continue;
        const char *q = strchr(b32, toupper((unsigned char)*s));
        if (!q || !*q)
            return EHR_EINVAL;
        acc = (acc << 5) | (uint32_t)(q - b32);
        bits += 5;
        if (bits >= 8) {
            ehr_status st = ehr_buf_putc(out, (char)((acc >> (bits - 8)) & 0xff));
            if (st)
                return st;
            bits -= 8;
        }
    }
    return EHR_OK;
}
