/*
 * Unit tests for src/auth: TOTP against the RFC 4226 and RFC 6238 test
 * vectors, base32, argon2id, JWT sign/verify (and the attacks on it),
 * SMART scope parsing, and the access decision, table-driven.
 */
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */
#include <string.h>

#include "auth/crypto.h"
#include "auth/policy.h"
#include "core/json.h"
#include "fhir/compartment.h"
#include "fhir/model.h"

/* ---- TOTP ---- */

static void test_hotp_rfc4226(void **state)
{
    /* RFC 4226 appendix D: secret "12345678901234567890", counters 0..9 */
    static const uint32_t want[] = {755224, 287082, 359152, 969429, 338314,
                                    254676, 287922, 162583, 399871, 520489};
    const char *key = "12345678901234567890";
    for (uint64_t c = 0; c < 10; c++)
        assert_int_equal(ehr_hotp(key, 20, c, 6), want[c]);
}

static void test_totp_rfc6238(void **state)
{
    /* RFC 6238 appendix B, SHA-1 column: time -> 8-digit code */
    static const struct {
        int64_t t;
        uint32_t code;
    } v[] = {
        {59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
        {1234567890, 89005924}, {2000000000, 69279037}, {20000000000LL, 65353130},
    };
    const char *key = "12345678901234567890";
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(ehr_hotp(key, 20, (uint64_t)(v[i].t / 30), 8), v[i].code);
}

static void test_totp_check(void **state)
{
    const char *key = "12345678901234567890";
    int64_t now = 1111111111, last = 0;
    char code[8];
    /* 6 digits at the current step: accepted once, then refused (replay) */
    snprintf(code, sizeof code, "%06u", ehr_hotp(key, 20, (uint64_t)(now / 30), 6));
    assert_true(ehr_totp_check(key, 20, code, now, &last));
    assert_int_equal(last, now / 30);
    assert_false(ehr_totp_check(key, 20, code, now, &last));
    /* one step either side is accepted (clock drift), two are not */
    last = 0;
    snprintf(code, sizeof code, "%06u", ehr_hotp(key, 20, (uint64_t)(now / 30 + 1), 6));
    assert_true(ehr_totp_check(key, 20, code, now, &last));
    last = 0;
    snprintf(code, sizeof code, "%06u", ehr_hotp(key, 20, (uint64_t)(now / 30 - 2), 6));
    assert_false(ehr_totp_check(key, 20, code, now, &last));
    /* malformed codes */
    static const char *const bad[] = {"", "12345", "1234567", "12345a", " 12345", NULL};
    for (int i = 0; bad[i]; i++) {
        last = 0;
        assert_false(ehr_totp_check(key, 20, bad[i], now, &last));
    }
    assert_false(ehr_totp_check(key, 20, NULL, now, &last));
}

static void test_base32(void **state)
{
    /* RFC 4648 section 10, without padding */
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},
             {"f", "MY"},
             {"fo", "MZXQ"},
             {"foo", "MZXW6"},
             {"foob", "MZXW6YQ"},
             {"fooba", "MZXW6YTB"},
             {"foobar", "MZXW6YTBOI"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ehr_buf b = EHR_BUF_INIT, d = EHR_BUF_INIT;
        assert_int_equal(ehr_base32_encode(v[i].in, strlen(v[i].in), &b), EHR_OK);
        assert_string_equal(b.data ? b.data : "", v[i].out);
        assert_int_equal(ehr_base32_decode(v[i].out, &d), EHR_OK);
        assert_int_equal(d.len, strlen(v[i].in));
        assert_memory_equal(d.data ? d.data : "", v[i].in, d.len);
        ehr_buf_free(&b);
        ehr_buf_free(&d);
    }
    ehr_buf d = EHR_BUF_INIT;
    assert_int_equal(ehr_base32_decode("MZ1W", &d), EHR_EINVAL);
    ehr_buf_free(&d);
}

static void test_totp_uri_and_qr(void **state)
{
    ehr_buf u = EHR_BUF_INIT, svg = EHR_BUF_INIT;
    assert_int_equal(ehr_totp_uri("ehr", "dr.who@x", "JBSWY3DPEHPK3PXP", &u), EHR_OK);
    assert_string_equal(u.data, "otpauth://totp/ehr:dr.who%40x?secret=JBSWY3DPEHPK3PXP&issuer=ehr"
                                "&algorithm=SHA1&digits=6&period=30");
    assert_int_equal(ehr_qr_svg(u.data, &svg), EHR_OK);
    assert_non_null(strstr(svg.data, "<svg"));
    assert_non_null(strstr(svg.data, "</svg>"));
    ehr_buf_free(&u);
    ehr_buf_free(&svg);
}

/* ---- passwords ---- */

static void test_argon2id(void **state)
{
    assert_int_equal(ehr_crypto_init(), EHR_OK);
    char h[EHR_PW_HASH_LEN], h2[EHR_PW_HASH_LEN];
    assert_int_equal(ehr_pw_hash("correct horse battery", h), EHR_OK);
    assert_int_equal(strncmp(h, "$argon2id$", 10), 0);
    assert_true(ehr_pw_verify(h, "correct horse battery"));
    assert_false(ehr_pw_verify(h, "correct horse batterx"));
    assert_false(ehr_pw_verify(h, ""));
    assert_false(ehr_pw_verify(NULL, "x"));
    /* salted: the same password hashes differently */
    assert_int_equal(ehr_pw_hash("correct horse battery", h2), EHR_OK);
    assert_string_not_equal(h, h2);
    assert_true(ehr_pw_verify(h2, "correct horse battery"));
}

static void test_password_rules(void **state)
{
    static const struct {
        const char *pw, *user;
        bool ok;
    } v[] = {
        {"short", "u", false},           {"12345678", "u", false},       {"Password", "u", false},
        {"alice-2026!", "alice", false}, {"tr0ub4dor&3", "alice", true}, {"eightchr", "bob", true},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(ehr_pw_weak(v[i].pw, v[i].user) == NULL, v[i].ok);
    char long_pw[200];
    memset(long_pw, 'x', 199);
    long_pw[199] = '\0';
    assert_non_null(ehr_pw_weak(long_pw, "u"));
}

static void test_secrets(void **state)
{
    ehr_buf a = EHR_BUF_INIT, b = EHR_BUF_INIT;
    assert_int_equal(ehr_secret_new(32, &a), EHR_OK);
    assert_int_equal(ehr_secret_new(32, &b), EHR_OK);
    assert_int_equal(a.len, 43); /* 256 bits as base64url */
    assert_string_not_equal(a.data, b.data);
    assert_true(ehr_ct_equal(a.data, a.data));
    assert_false(ehr_ct_equal(a.data, b.data));
    assert_false(ehr_ct_equal("abc", "abcd"));
    assert_false(ehr_ct_equal(NULL, "x"));
    char h[65];
    ehr_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ehr_buf_free(&a);
    ehr_buf_free(&b);
}

/* ---- JWT ---- */

static json_t *jwks_of(EVP_PKEY *k, const char *kid, const char *alg)
{
    json_t *keys = json_array();
    json_array_append_new(keys, ehr_jwk_from_pkey(k, kid, alg));
    return json_pack("{s:o}", "keys", keys);
}

static char *b64(const char *s)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_b64url_encode(s, strlen(s), &b);
    return b.data;
}

static void test_jwt_sign_verify(void **state)
{
    struct {
        const char *alg;
        EVP_PKEY *key;
    } v[] = {
        {"RS256", ehr_rsa_new()},
        {"RS384", ehr_rsa_new()},
        {"ES256", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")},
        {"ES384", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")},
    };
    json_t *claims = json_pack("{s:s, s:i}", "iss", "app", "exp", 2000000000);
    for (size_t i = 0; i < 4; i++) {
        assert_non_null(v[i].key);
        ehr_buf jwt = EHR_BUF_INIT;
        ehr_err err = {{0}};
        assert_int_equal(ehr_jwt_sign(v[i].key, v[i].alg, "k1", claims, &jwt, &err), EHR_OK);
        json_t *jwks = jwks_of(v[i].key, "k1", v[i].alg);
        const char *algs[] = {v[i].alg, NULL};
        json_t *out = NULL;
        assert_int_equal(ehr_jwt_verify(jwt.data, algs, jwks, &out, &err), EHR_OK);
        assert_string_equal(json_string_value(json_object_get(out, "iss")), "app");
        json_decref(out);
        /* a changed payload does not verify */
        char *d1 = strchr(jwt.data, '.');
        char *tampered = strdup(jwt.data);
        tampered[d1 - jwt.data + 2] ^= 1;
        assert_int_not_equal(ehr_jwt_verify(tampered, algs, jwks, &out, &err), EHR_OK);
        assert_null(out);
        free(tampered);
        /* an alg the caller does not allow */
        const char *other[] = {"RS512", NULL};
        assert_int_not_equal(ehr_jwt_verify(jwt.data, other, jwks, &out, &err), EHR_OK);
        /* signed by another key of the same kind */
        EVP_PKEY *k2 =
            v[i].alg[0] == 'R'
                ? ehr_rsa_new()
                : EVP_PKEY_Q_keygen(NULL, NULL, "EC", v[i].alg[2] == '2' ? "P-256" : "P-384");
        json_t *jwks2 = jwks_of(k2, "k1", v[i].alg);
        assert_int_not_equal(ehr_jwt_verify(jwt.data, algs, jwks2, &out, &err), EHR_OK);
        /* a kid the JWKS does not have */
        json_t *jwks3 = jwks_of(v[i].key, "k9", v[i].alg);
        assert_int_not_equal(ehr_jwt_verify(jwt.data, algs, jwks3, &out, &err), EHR_OK);
        json_decref(jwks);
        json_decref(jwks2);
        json_decref(jwks3);
        EVP_PKEY_free(k2);
        EVP_PKEY_free(v[i].key);
        ehr_buf_free(&jwt);
    }
    json_decref(claims);
}

static void test_jwt_attacks(void **state)
{
    EVP_PKEY *rsa = ehr_rsa_new();
    json_t *jwks = jwks_of(rsa, "k1", NULL);
    const char *algs[] = {"RS384", "ES384", "none", "HS256", NULL};
    json_t *out = NULL;
    ehr_err err = {{0}};
    char *payload = b64("{\"iss\":\"app\",\"sub\":\"app\"}");
    /* alg none, with or without a signature: never accepted even when listed */
    char *h_none = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char tok[1024];
    snprintf(tok, sizeof tok, "%s.%s.", h_none, payload);
    assert_int_not_equal(ehr_jwt_verify(tok, algs, jwks, &out, &err), EHR_OK);
    snprintf(tok, sizeof tok, "%s.%s.AAAA", h_none, payload);
    assert_int_not_equal(ehr_jwt_verify(tok, algs, jwks, &out, &err), EHR_OK);
    /* HS256 "signed" with the RSA public key as the secret (alg confusion) */
    char *h_hs = b64("{\"alg\":\"HS256\",\"kid\":\"k1\"}");
    snprintf(tok, sizeof tok, "%s.%s.c2lnbmF0dXJl", h_hs, payload);
    assert_int_not_equal(ehr_jwt_verify(tok, algs, jwks, &out, &err), EHR_OK);
    /* ES384 claimed with an RSA key in the set: no key fits */
    char *h_es = b64("{\"alg\":\"ES384\",\"kid\":\"k1\"}");
    snprintf(tok, sizeof tok, "%s.%s.c2lnbmF0dXJl", h_es, payload);
    assert_int_not_equal(ehr_jwt_verify(tok, algs, jwks, &out, &err), EHR_OK);
    /* malformed */
    static const char *const bad[] = {"", "a", "a.b", "a.b.c.d", "!!.??.**", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_not_equal(ehr_jwt_verify(bad[i], algs, jwks, &out, &err), EHR_OK);
    assert_null(out);
    /* an RSA key below 2048 bits is refused for signing and verifying */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ehr_buf jwt = EHR_BUF_INIT;
    json_t *claims = json_pack("{s:s}", "iss", "app");
    assert_int_not_equal(ehr_jwt_sign(small, "RS384", NULL, claims, &jwt, &err), EHR_OK);
    json_decref(claims);
    ehr_buf_free(&jwt);
    EVP_PKEY_free(small);
    free(payload);
    free(h_none);
    free(h_hs);
    free(h_es);
    json_decref(jwks);
    EVP_PKEY_free(rsa);
}

static void test_jwk_roundtrip(void **state)
{
    /* RFC 7517 A.1 example keys parse */
    json_t *ec = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
                           "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y",
                           "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM");
    EVP_PKEY *k = ehr_jwk_to_pkey(ec, NULL);
    assert_non_null(k);
    json_t *back = ehr_jwk_from_pkey(k, NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(back, "x")),
                        "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4");
    json_decref(back);
    EVP_PKEY_free(k);
    json_decref(ec);
    json_t *bad = json_pack("{s:s, s:s}", "kty", "oct", "k", "c2VjcmV0");
    assert_null(ehr_jwk_to_pkey(bad, NULL));
    json_decref(bad);
    /* the PEM of a key reads back */
    EVP_PKEY *r = ehr_rsa_new();
    ehr_buf pem = EHR_BUF_INIT;
    assert_int_equal(ehr_pkey_to_pem(r, &pem), EHR_OK);
    EVP_PKEY *r2 = ehr_pkey_from_pem(pem.data);
    assert_non_null(r2);
    assert_int_equal(EVP_PKEY_eq(r, r2), 1);
    EVP_PKEY_free(r);
    EVP_PKEY_free(r2);
    ehr_buf_free(&pem);
}

/* ---- scopes ---- */

static void test_scope_parse(void **state)
{
    static const struct {
        const char *in;
        ehr_status st;
        const char *out; /* formatted back */
    } v[] = {
        {"patient/Observation.read", EHR_OK, "patient/Observation.rs"},
        {"patient/Observation.write", EHR_OK, "patient/Observation.cud"},
        {"user/*.*", EHR_OK, "user/*.cruds"},
        {"user/*.cruds", EHR_OK, "user/*.cruds"},
        {"system/Patient.rs", EHR_OK, "system/Patient.rs"},
        {"patient/Observation.rs?category=vital-signs", EHR_OK,
         "patient/Observation.rs?category=vital-signs"},
        {"openid fhirUser launch/patient offline_access patient/Condition.r", EHR_OK,
         "launch/patient openid fhirUser offline_access patient/Condition.r"},
        {"patient/Observation.rs patient/Observation.c", EHR_OK, "patient/Observation.crs"},
        {"profile email address", EHR_OK, "profile"}, /* unknown tokens skipped */
        {"patient/Observation.sr", EHR_EINVAL, NULL}, /* v2 letters in order */
        {"patient/Observation.rr", EHR_EINVAL, NULL},
        {"patient/Observation.x", EHR_EINVAL, NULL},
        {"patient/Observation", EHR_EINVAL, NULL},
        {"patient/observation.rs", EHR_EINVAL, NULL},
        {"patient/Obs-1.rs", EHR_EINVAL, NULL},
        {"user/*.", EHR_EINVAL, NULL},
        {"", EHR_OK, ""},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ehr_scopes s;
        ehr_status st = ehr_scopes_parse(v[i].in, &s, NULL);
        assert_int_equal(st, v[i].st);
        if (st)
            continue;
        ehr_buf b = EHR_BUF_INIT;
        assert_int_equal(ehr_scopes_format(&s, &b), EHR_OK);
        if (strcmp(b.data ? b.data : "", v[i].out))
            fail_msg("'%s' formatted as '%s', want '%s'", v[i].in, b.data, v[i].out);
        ehr_buf_free(&b);
    }
}

static void test_scope_narrow(void **state)
{
    static const struct {
        const char *asked, *cap;
        bool p, u, sys;
        const char *out;
    } v[] = {
        {"patient/*.cruds", "patient/*.rs", true, true, false, "patient/*.rs"},
        {"patient/Observation.rs", "patient/*.rs", true, true, false, "patient/Observation.rs"},
        {"user/*.rs", "user/Observation.rs", true, true, false, ""},
        {"user/Observation.rs", "user/Observation.r", true, true, false, "user/Observation.r"},
        {"system/*.rs", "system/*.rs", true, true, false, ""},
        {"system/*.rs user/*.rs", "system/*.rs user/*.rs", false, false, true, "system/*.rs"},
        {"patient/Observation.rs?category=laboratory", "patient/*.rs", true, true, false, ""},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ehr_scopes s, cap;
        assert_int_equal(ehr_scopes_parse(v[i].asked, &s, NULL), EHR_OK);
        assert_int_equal(ehr_scopes_parse(v[i].cap, &cap, NULL), EHR_OK);
        ehr_scopes_narrow(&s, &cap, v[i].p, v[i].u, v[i].sys);
        ehr_buf b = EHR_BUF_INIT;
        ehr_scopes_format(&s, &b);
        if (strcmp(b.data ? b.data : "", v[i].out))
            fail_msg("narrow '%s' by '%s': '%s', want '%s'", v[i].asked, v[i].cap, b.data,
                     v[i].out);
        ehr_buf_free(&b);
    }
}

/* ---- the decision ---- */

static void test_categories(void **state)
{
    /* no type that holds patient data is "reference" (readable by everyone) */
    for (size_t i = 0; i < ehr_fhir_patient_compartment_n; i++)
        assert_int_not_equal(ehr_type_category(ehr_fhir_patient_compartment[i].type),
                             EHR_CAT_REFERENCE);
    assert_int_equal(ehr_type_category("Practitioner"), EHR_CAT_REFERENCE);
    assert_int_equal(ehr_type_category("Observation"), EHR_CAT_CLINICAL);
    assert_int_equal(ehr_type_category("Patient"), EHR_CAT_DEMOGRAPHIC);
    assert_int_equal(ehr_type_category("Claim"), EHR_CAT_FINANCIAL);
    assert_int_equal(ehr_type_category("AuditEvent"), EHR_CAT_SECURITY);
    /* every category name in the reference list is a real resource type */
    for (size_t i = 0; i < ehr_fhir_n_types; i++) {
        const ehr_fhir_type *t = &ehr_fhir_types[i];
        if (t->kind == EHR_FHIR_KIND_RESOURCE && !t->is_abstract)
            (void)ehr_type_category(t->name);
    }
    ehr_role r;
    assert_true(ehr_role_parse("front-desk", &r));
    assert_int_equal(r, EHR_ROLE_FRONT_DESK);
    assert_false(ehr_role_parse("root", &r));
    unsigned bits;
    const char *bad;
    assert_true(ehr_role_list("admin,nurse", &bits, &bad));
    assert_int_equal(bits, EHR_ROLE_BIT(EHR_ROLE_ADMIN) | EHR_ROLE_BIT(EHR_ROLE_NURSE));
    assert_true(ehr_role_list("none", &bits, &bad));
    assert_int_equal(bits, 0);
    assert_false(ehr_role_list("admin,boss", &bits, &bad));
    assert_string_equal(bad, "boss");
}

enum { DENY, ALL, LIM };

static void test_decisions(void **state)
{
    static const char *const panel[] = {"a", "b"};
    static const struct {
        const char *name;
        bool has_user;
        ehr_role role;
        const char *scopes; /* NULL: the role's full power */
        const char *ctx;    /* context patient */
        bool panel_mode;
        ehr_access access;
        const char *type;
        int want;          /* DENY, ALL (unlimited), LIM */
        const char *first; /* LIM: the first allowed patient */
    } v[] = {
        /* roles alone */
        {"admin reads anything", true, EHR_ROLE_ADMIN, NULL, NULL, true, EHR_ACCESS_READ,
         "Observation", ALL, NULL},
        {"admin cannot write AuditEvent", true, EHR_ROLE_ADMIN, NULL, NULL, true, EHR_ACCESS_CREATE,
         "AuditEvent", DENY, NULL},
        {"physician panel: chart limited", true, EHR_ROLE_PHYSICIAN, NULL, NULL, true,
         EHR_ACCESS_SEARCH, "Observation", LIM, "a"},
        {"physician panel: any Patient", true, EHR_ROLE_PHYSICIAN, NULL, NULL, true,
         EHR_ACCESS_READ, "Patient", ALL, NULL},
        {"physician all mode", true, EHR_ROLE_PHYSICIAN, NULL, NULL, false, EHR_ACCESS_READ,
         "Condition", ALL, NULL},
        {"physician reads Practitioner", true, EHR_ROLE_PHYSICIAN, NULL, NULL, true,
         EHR_ACCESS_READ, "Practitioner", ALL, NULL},
        {"physician no AuditEvent", true, EHR_ROLE_PHYSICIAN, NULL, NULL, true, EHR_ACCESS_SEARCH,
         "AuditEvent", DENY, NULL},
        {"nurse cannot delete", true, EHR_ROLE_NURSE, NULL, NULL, false, EHR_ACCESS_DELETE,
         "Observation", DENY, NULL},
        {"nurse updates", true, EHR_ROLE_NURSE, NULL, NULL, false, EHR_ACCESS_UPDATE, "Observation",
         ALL, NULL},
        {"front desk: no chart", true, EHR_ROLE_FRONT_DESK, NULL, NULL, true, EHR_ACCESS_READ,
         "Observation", DENY, NULL},
        {"front desk: appointments", true, EHR_ROLE_FRONT_DESK, NULL, NULL, true, EHR_ACCESS_CREATE,
         "Appointment", ALL, NULL},
        {"biller: claims", true, EHR_ROLE_BILLER, NULL, NULL, true, EHR_ACCESS_DELETE, "Claim", ALL,
         NULL},
        {"biller: diagnoses, read only", true, EHR_ROLE_BILLER, NULL, NULL, true, EHR_ACCESS_UPDATE,
         "Condition", DENY, NULL},
        {"biller: no notes", true, EHR_ROLE_BILLER, NULL, NULL, true, EHR_ACCESS_READ,
         "DocumentReference", DENY, NULL},
        {"auditor: AuditEvent", true, EHR_ROLE_AUDITOR, NULL, NULL, true, EHR_ACCESS_SEARCH,
         "AuditEvent", ALL, NULL},
        {"auditor: no chart", true, EHR_ROLE_AUDITOR, NULL, NULL, true, EHR_ACCESS_READ, "Patient",
         DENY, NULL},
        {"patient: own chart", true, EHR_ROLE_PATIENT, NULL, NULL, true, EHR_ACCESS_READ,
         "Observation", LIM, "a"},
        {"patient: own Patient, limited", true, EHR_ROLE_PATIENT, NULL, NULL, true,
         EHR_ACCESS_SEARCH, "Patient", LIM, "a"},
        {"patient: cannot write", true, EHR_ROLE_PATIENT, NULL, NULL, true, EHR_ACCESS_CREATE,
         "Observation", DENY, NULL},
        {"patient: Organization, unlimited", true, EHR_ROLE_PATIENT, NULL, NULL, true,
         EHR_ACCESS_READ, "Organization", ALL, NULL},
        {"patient: no AuditEvent", true, EHR_ROLE_PATIENT, NULL, NULL, true, EHR_ACCESS_READ,
         "AuditEvent", DENY, NULL},
        /* scopes narrow the role */
        {"read scope cannot write", true, EHR_ROLE_PHYSICIAN, "user/*.rs", NULL, false,
         EHR_ACCESS_CREATE, "Observation", DENY, NULL},
        {"Observation scope cannot read Condition", true, EHR_ROLE_PATIENT,
         "patient/Observation.rs", "a", true, EHR_ACCESS_READ, "Condition", DENY, NULL},
        {"Observation scope reads Observation", true, EHR_ROLE_PATIENT, "patient/Observation.rs",
         "a", true, EHR_ACCESS_SEARCH, "Observation", LIM, "a"},
        {"r without s cannot search", true, EHR_ROLE_ADMIN, "user/Observation.r", NULL, false,
         EHR_ACCESS_SEARCH, "Observation", DENY, NULL},
        {"scopes never widen the role", true, EHR_ROLE_FRONT_DESK, "user/*.cruds", NULL, false,
         EHR_ACCESS_READ, "Observation", DENY, NULL},
        {"patient/ scope: the context patient", true, EHR_ROLE_ADMIN, "patient/*.rs", "b", false,
         EHR_ACCESS_READ, "Observation", LIM, "b"},
        {"patient/ scope without context", true, EHR_ROLE_ADMIN, "patient/*.rs", NULL, false,
         EHR_ACCESS_READ, "Observation", DENY, NULL},
        {"user/ beats patient/", true, EHR_ROLE_ADMIN, "patient/*.rs user/Observation.rs", "b",
         false, EHR_ACCESS_READ, "Observation", ALL, NULL},
        {"system/ scope for a user: nothing", true, EHR_ROLE_ADMIN, "system/*.rs", NULL, false,
         EHR_ACCESS_READ, "Observation", DENY, NULL},
        {"granular scope: not enforced, not granted", true, EHR_ROLE_PATIENT,
         "patient/Observation.rs?category=laboratory", "a", true, EHR_ACCESS_READ, "Observation",
         DENY, NULL},
        /* backend services */
        {"backend: system/*.rs", false, EHR_ROLE_N, "system/*.rs", NULL, true, EHR_ACCESS_SEARCH,
         "Observation", ALL, NULL},
        {"backend: read only", false, EHR_ROLE_N, "system/*.rs", NULL, true, EHR_ACCESS_DELETE,
         "Observation", DENY, NULL},
        {"backend: user/ scope means nothing", false, EHR_ROLE_N, "user/*.cruds", NULL, true,
         EHR_ACCESS_READ, "Observation", DENY, NULL},
        {"no scopes at all", false, EHR_ROLE_N, "", NULL, true, EHR_ACCESS_READ, "Patient", DENY,
         NULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ehr_scopes sc;
        if (v[i].scopes)
            assert_int_equal(ehr_scopes_parse(v[i].scopes, &sc, NULL), EHR_OK);
        ehr_subject s = {
            .has_user = v[i].has_user,
            .role = v[i].role,
            .scopes = v[i].scopes ? &sc : NULL,
            .n_patients = 2,
            .patients = panel,
            .context_patient = v[i].ctx,
            .clinicians_panel = v[i].panel_mode,
        };
        ehr_repo_limit lim;
        ehr_err err = {{0}};
        ehr_status st = ehr_auth_decide(&s, v[i].access, v[i].type, &lim, &err);
        int got = st ? DENY : lim.limited ? LIM : ALL;
        if (got != v[i].want)
            fail_msg("%s: got %d (%s), want %d", v[i].name, got, err.msg, v[i].want);
        if (st)
            assert_int_equal(st, EHR_EFORBIDDEN);
        if (got == LIM) {
            assert_true(lim.n_patients > 0);
            assert_string_equal(lim.patients[0], v[i].first);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotp_rfc4226),    cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_totp_check),      cmocka_unit_test(test_base32),
        cmocka_unit_test(test_totp_uri_and_qr), cmocka_unit_test(test_argon2id),
        cmocka_unit_test(test_password_rules),  cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_jwt_sign_verify), cmocka_unit_test(test_jwt_attacks),
        cmocka_unit_test(test_jwk_roundtrip),   cmocka_unit_test(test_scope_parse),
        cmocka_unit_test(test_scope_narrow),    cmocka_unit_test(test_categories),
        cmocka_unit_test(test_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
