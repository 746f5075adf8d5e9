/*
 * crypto.h - the cryptography of src/auth/, each piece from the library
 * meant for it: passwords (argon2id), random secrets and constant-time
 * comparison from libsodium; SHA-256, HMAC-SHA1 (TOTP) and signatures
 * (JWT RS256/RS384/ES256/ES384) from OpenSSL libcrypto.
 *
 * Pure functions, tested in tests/unit/test_auth.c.
 */
#ifndef EHR_AUTH_CRYPTO_H
#define EHR_AUTH_CRYPTO_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* ---- passwords (argon2id, libsodium crypto_pwhash_str) ---- */

#define EHR_PW_HASH_LEN 128 /* crypto_pwhash_STRBYTES */
#define EHR_PW_MIN 8        /* NIST SP 800-63B: at least 8 characters */
#define EHR_PW_MAX 128

/* Call once before threads start (sodium_init). */
ehr_status ehr_crypto_init(void);
/* Hash pw into out (a NUL-terminated "$argon2id$..." string). */
ehr_status ehr_pw_hash(const char *pw, char out[EHR_PW_HASH_LEN]);
/* True when pw matches hash. Takes the same time whether or not it does. */
bool ehr_pw_verify(const char *hash, const char *pw);
/* NULL when pw is acceptable as a new password, else why not. */
const char *ehr_pw_weak(const char *pw, const char *username);

/* ---- secrets ---- */

/* A random secret of nbytes as base64url text (no padding), into out. */
ehr_status ehr_secret_new(size_t nbytes, ehr_buf *out);
/* SHA-256 of s as 64 lowercase hex characters: how secrets are stored. */
void ehr_sha256_hex(const void *s, size_t len, char out[65]);
/* Constant-time string equality. */
bool ehr_ct_equal(const char *a, const char *b);

/* ---- encodings ---- */

ehr_status ehr_b64url_encode(const void *data, size_t len, ehr_buf *out);
/* Decode base64url (padding optional); EINVAL when malformed. */
ehr_status ehr_b64url_decode(const char *s, size_t len, ehr_buf *out);
/* RFC 4648 base32 without padding. */
ehr_status ehr_base32_encode(const void *data, size_t len, ehr_buf *out);
ehr_status ehr_base32_decode(const char *s, ehr_buf *out);

/* ---- TOTP (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1) ---- */

#define EHR_TOTP_STEP 30
#define EHR_TOTP_DIGITS 6

/* The HOTP value of key at counter, digits long (6 to 8). */
uint32_t ehr_hotp(const void *key, size_t keylen, uint64_t counter, int digits);
/*
 * Check a 6-digit code against key at unix time now, accepting one step
 * either side (clock drift). A step at or before *last_step is refused
 * (no replay); on success *last_step becomes the matched step.
 */
bool ehr_totp_check(const void *key, size_t keylen, const char *code, int64_t now,
                    int64_t *last_step);
/* otpauth://totp/ URI for an authenticator app. */
ehr_status ehr_totp_uri(const char *issuer, const char *account, const char *secret_b32,
                        ehr_buf *out);
/* The text as a QR code drawn in SVG (libqrencode). */
ehr_status ehr_qr_svg(const char *text, ehr_buf *out);

/* ---- JWT / JWK (RFC 7515, 7517, 7518, 7519) ---- */

/* Sign claims with alg ("RS256", "RS384", "ES256", "ES384"); compact form into out. */
ehr_status ehr_jwt_sign(EVP_PKEY *key, const char *alg, const char *kid, const json_t *claims,
                        ehr_buf *out, ehr_err *err);
/*
 * Verify a compact JWT: its alg must be one of algs (NULL-terminated; "none"
 * is never accepted), signed by a key of jwks ({"keys":[...]}) whose kid
 * matches the header's (or any key of a matching type when the header has
 * no kid). On success *claims holds the payload (caller decrefs). Claims
 * (exp, aud, iss) are the caller's to check.
 */
ehr_status ehr_jwt_verify(const char *jwt, const char *const *algs, const json_t *jwks,
                          json_t **claims, ehr_err *err);
/* A public key from a JWK (RSA n/e, EC P-256/P-384 x/y). */
EVP_PKEY *ehr_jwk_to_pkey(const json_t *jwk, ehr_err *err);
/* The public JWK of key, with kid and alg. Caller owns it. */
json_t *ehr_jwk_from_pkey(EVP_PKEY *key, const char *kid, const char *alg);
/* A new RSA 2048 key. */
EVP_PKEY *ehr_rsa_new(void);
/* PEM of a private key (into out) and back. */
ehr_status ehr_pkey_to_pem(EVP_PKEY *key, ehr_buf *out);
EVP_PKEY *ehr_pkey_from_pem(const char *pem);

#endif
