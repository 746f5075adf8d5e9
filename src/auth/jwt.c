/*
 * jwt.c - JSON Web Tokens and Keys over OpenSSL 3 (see crypto.h).
 *
 * ECDSA signatures are DER in OpenSSL and r||s in JOSE (RFC 7518 3.4);
 * they are converted both ways here. The header's alg must be one the
 * caller allows, and the key must be of that alg's type, so an RSA public
 * key can never be used as an HMAC secret and "none" never verifies.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <string.h>

#include "auth/crypto.h"
#include "core/json.h"

struct alg {
    const char *name;
    int is_ec;      /* 0 RSA PKCS#1 v1.5, else EC with coordinate size in bytes */
    const char *md; /* digest */
    const char *curve;
};

static const struct alg algs[] = {
    {"RS256", 0, "SHA256", NULL},     {"RS384", 0, "SHA384", NULL},
    {"RS512", 0, "SHA512", NULL},     {"ES256", 32, "SHA256", "P-256"},
    {"ES384", 48, "SHA384", "P-384"},
};

static const struct alg *find_alg(const char *name)
{
    for (size_t i = 0; name && i < sizeof algs / sizeof algs[0]; i++)
        if (!strcmp(algs[i].name, name))
            return &algs[i];
    return NULL;
}

static bool key_fits(EVP_PKEY *key, const struct alg *a)
{
    if (!a->is_ec)
        return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) >= 2048;
    if (!EVP_PKEY_is_a(key, "EC"))
        return false;
    char group[64];
    size_t n = 0;
    if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &n))
        return false;
    if (a->is_ec == 32)
        return !strcmp(group, "prime256v1") || !strcmp(group, "P-256");
    return !strcmp(group, "secp384r1") || !strcmp(group, "P-384");
}

/* Sign data; JOSE form of the signature into sig. */
static ehr_status sign_raw(EVP_PKEY *key, const struct alg *a, const void *data, size_t len,
                           ehr_buf *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 0;
    unsigned char *der = NULL;
    ehr_status st = EHR_EINTERNAL;
    if (!ctx || EVP_DigestSignInit_ex(ctx, NULL, a->md, NULL, NULL, key, NULL) != 1 ||
        EVP_DigestSign(ctx, NULL, &n, data, len) != 1 || !(der = OPENSSL_malloc(n)) ||
        EVP_DigestSign(ctx, der, &n, data, len) != 1)
        goto out;
    if (!a->is_ec) {
        st = ehr_buf_append(sig, der, n);
        goto out;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    if (!es)
        goto out;
    unsigned char rs[96];
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, rs, a->is_ec) == a->is_ec &&
        BN_bn2binpad(s, rs + a->is_ec, a->is_ec) == a->is_ec)
        st = ehr_buf_append(sig, rs, (size_t)(2 * a->is_ec));
    ECDSA_SIG_free(es);
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    return st;
}

static bool verify_raw(EVP_PKEY *key, const struct alg *a, const void *data, size_t len,
                       const unsigned char *sig, size_t siglen)
{
    unsigned char *der = NULL;
    int derlen = 0;
    if (a->is_ec) {
        if (siglen != (size_t)(2 * a->is_ec))
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, a->is_ec, NULL), *s = BN_bin2bn(sig + a->is_ec, a->is_ec, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return false;
        }
        derlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (derlen <= 0)
            return false;
        sig = der;
        siglen = (size_t)derlen;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx, NULL, a->md, NULL, NULL, key, NULL) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

static ehr_status b64_json(const json_t *j, ehr_buf *out)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s)
        return EHR_ENOMEM;
    ehr_status st = ehr_b64url_encode(s, strlen(s), out);
    free(s);
    return st;
}

ehr_status ehr_jwt_sign(EVP_PKEY *key, const char *alg, const char *kid, const json_t *claims,
                        ehr_buf *out, ehr_err *err)
{
    const struct alg *a = find_alg(alg);
    if (!a || !key_fits(key, a))
        return ehr_err_set(err, EHR_EINVAL, "the key does not fit the algorithm %s", alg);
    json_t *h = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    if (!h)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (kid)
        json_object_set_new(h, "kid", json_string(kid));
    size_t start = out->len;
    ehr_status st = b64_json(h, out);
    json_decref(h);
    if (!st)
        st = ehr_buf_putc(out, '.');
    if (!st)
        st = b64_json(claims, out);
    ehr_buf sig = EHR_BUF_INIT;
    if (!st)
        st = sign_raw(key, a, out->data + start, out->len - start, &sig);
    if (!st)
        st = ehr_buf_putc(out, '.');
    if (!st)
        st = ehr_b64url_encode(sig.data, sig.len, out);
    ehr_buf_free(&sig);
    if (st)
        return ehr_err_set(err, st, "signing failed");
    return EHR_OK;
}

static json_t *decode_part(const char *s, size_t len)
{
    ehr_buf b = EHR_BUF_INIT;
    json_t *j = NULL;
    /* plain jansson: claims are ours to read (exp, iat as integers) */
    if (ehr_b64url_decode(s, len, &b) == EHR_OK && b.data)
        j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
    ehr_buf_free(&b);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

ehr_status ehr_jwt_verify(const char *jwt, const char *const *allowed, const json_t *jwks,
                          json_t **claims, ehr_err *err)
{
    *claims = NULL;
    const char *d1 = jwt ? strchr(jwt, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.') || strlen(jwt) > 16384)
        return ehr_err_set(err, EHR_EINVAL, "not a signed JWT (header.payload.signature)");
    json_t *h = decode_part(jwt, (size_t)(d1 - jwt));
    if (!h)
        return ehr_err_set(err, EHR_EINVAL, "the JWT header is not base64url JSON");
    const char *alg = ehr_json_get_string(h, "alg");
    const char *kid = ehr_json_get_string(h, "kid");
    const struct alg *a = NULL;
    for (size_t i = 0; alg && allowed && allowed[i]; i++)
        if (!strcmp(allowed[i], alg) && strcmp(alg, "none"))
            a = find_alg(alg);
    if (!a) {
        ehr_status st = ehr_err_set(err, EHR_EINVAL, "JWT algorithm '%.20s' is not accepted",
                                    alg ? alg : "(none)");
        json_decref(h);
        return st;
    }
    ehr_buf sig = EHR_BUF_INIT;
    if (ehr_b64url_decode(d2 + 1, strlen(d2 + 1), &sig) || !sig.len) {
        json_decref(h);
        ehr_buf_free(&sig);
        return ehr_err_set(err, EHR_EINVAL, "the JWT signature is not base64url");
    }
    bool ok = false, tried = false;
    const json_t *keys = json_object_get(jwks, "keys");
    for (size_t i = 0; !ok && i < json_array_size(keys); i++) {
        const json_t *k = json_array_get(keys, i);
        const char *kkid = ehr_json_get_string(k, "kid");
        const char *kalg = ehr_json_get_string(k, "alg");
        if (kid && (!kkid || strcmp(kid, kkid)))
            continue;
        if (kalg && strcmp(kalg, alg))
            continue;
        EVP_PKEY *pk = ehr_jwk_to_pkey(k, NULL);
        if (!pk)
            continue;
        if (key_fits(pk, a)) {
            tried = true;
            ok = verify_raw(pk, a, jwt, (size_t)(d2 - jwt), (const unsigned char *)sig.data,
                            sig.len);
        }
        EVP_PKEY_free(pk);
    }
    ehr_buf_free(&sig);
    json_decref(h);
    if (!ok)
        return ehr_err_set(err, EHR_EINVAL, "%s",
                           tried ? "the JWT signature does not verify"
                                 : "no registered key fits the JWT (kid, alg)");
    *claims = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!*claims)
        return ehr_err_set(err, EHR_EINVAL, "the JWT payload is not base64url JSON");
    return EHR_OK;
}

static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *s = ehr_json_get_string(jwk, name);
    ehr_buf b = EHR_BUF_INIT;
    BIGNUM *bn = NULL;
    if (s && ehr_b64url_decode(s, strlen(s), &b) == EHR_OK && b.len)
        bn = BN_bin2bn((const unsigned char *)b.data, (int)b.len, NULL);
    ehr_buf_free(&b);
    return bn;
}

EVP_PKEY *ehr_jwk_to_pkey(const json_t *jwk, ehr_err *err)
{
    const char *kty = ehr_json_get_string(jwk, "kty");
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *n = NULL, *e = NULL;
    ehr_buf pub = EHR_BUF_INIT;
    const char *type = NULL;
    if (!bld)
        goto out;
    if (kty && !strcmp(kty, "RSA")) {
        n = jwk_bn(jwk, "n");
        e = jwk_bn(jwk, "e");
        if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            goto out;
        type = "RSA";
    } else if (kty && !strcmp(kty, "EC")) {
        const char *crv = ehr_json_get_string(jwk, "crv");
        const char *x = ehr_json_get_string(jwk, "x"), *y = ehr_json_get_string(jwk, "y");
        size_t sz = crv && !strcmp(crv, "P-256") ? 32 : crv && !strcmp(crv, "P-384") ? 48 : 0;
        const char *group = sz == 32 ? "prime256v1" : "secp384r1";
        ehr_buf bx = EHR_BUF_INIT, by = EHR_BUF_INIT;
        bool good = sz && x && y && !ehr_b64url_decode(x, strlen(x), &bx) &&
                    !ehr_b64url_decode(y, strlen(y), &by) && bx.len == sz && by.len == sz &&
                    !ehr_buf_putc(&pub, 4) && !ehr_buf_append(&pub, bx.data, sz) &&
                    !ehr_buf_append(&pub, by.data, sz);
        ehr_buf_free(&bx);
        ehr_buf_free(&by);
        if (!good || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub.data, pub.len))
            goto out;
        type = "EC";
    } else {
        goto out;
    }
    if (!(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
out:
    if (!pk)
        ehr_err_set(err, EHR_EINVAL, "the JWK is not an RSA or EC (P-256, P-384) public key");
    ehr_buf_free(&pub);
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static json_t *b64_bn(const BIGNUM *bn, int pad)
{
    int len = pad ? pad : BN_num_bytes(bn);
    unsigned char buf[1024];
    if (len <= 0 || len > (int)sizeof buf || BN_bn2binpad(bn, buf, len) != len)
        return NULL;
    ehr_buf b = EHR_BUF_INIT;
    json_t *j = ehr_b64url_encode(buf, (size_t)len, &b) ? NULL : json_string(b.data);
    ehr_buf_free(&b);
    return j;
}

json_t *ehr_jwk_from_pkey(EVP_PKEY *key, const char *kid, const char *alg)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    if (EVP_PKEY_is_a(key, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e);
        json_object_set_new(j, "kty", json_string("RSA"));
        if (n && e) {
            json_object_set_new(j, "n", b64_bn(n, 0));
            json_object_set_new(j, "e", b64_bn(e, 0));
        }
        BN_free(n);
        BN_free(e);
    } else if (EVP_PKEY_is_a(key, "EC")) {
        BIGNUM *x = NULL, *y = NULL;
        char group[64] = "";
        size_t gl = 0;
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &gl);
        int sz = !strcmp(group, "prime256v1") ? 32 : 48;
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv", json_string(sz == 32 ? "P-256" : "P-384"));
        if (x && y) {
            json_object_set_new(j, "x", b64_bn(x, sz));
            json_object_set_new(j, "y", b64_bn(y, sz));
        }
        BN_free(x);
        BN_free(y);
    }
    if (kid)
        json_object_set_new(j, "kid", json_string(kid));
    if (alg)
        json_object_set_new(j, "alg", json_string(alg));
    json_object_set_new(j, "use", json_string("sig"));
    return j;
}

EVP_PKEY *ehr_rsa_new(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

ehr_status ehr_pkey_to_pem(EVP_PKEY *key, ehr_buf *out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL;
    ehr_status st = EHR_ENOMEM;
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        long n = BIO_get_mem_data(bio, &p);
        if (n > 0)
            st = ehr_buf_append(out, p, (size_t)n);
    }
    BIO_free(bio);
    return st;
}

EVP_PKEY *ehr_pkey_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return k;
}
