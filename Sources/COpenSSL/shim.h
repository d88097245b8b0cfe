// The parts of OpenSSL (libcrypto and libssl 3.x) that kmsfs uses. KMSFSCrypto (crypto) and
// KMSTLS (the client side of TLS) import this module.
#ifndef KMSFS_COPENSSL_SHIM_H
#define KMSFS_COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/// SSL_CTX_set_min_proto_version and SSL_set_tlsext_host_name are macros over *_ctrl.
static inline int COpenSSL_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline int COpenSSL_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// OPENSSL_secure_zalloc and OPENSSL_secure_clear_free are macros passing __FILE__/__LINE__;
/// with none given, a full secure heap returns NULL without touching the error queue.
static inline void *COpenSSL_secure_zalloc(size_t count) {
    return CRYPTO_secure_zalloc(count, NULL, 0);
}
static inline void COpenSSL_secure_clear_free(void *pointer, size_t count) {
    CRYPTO_secure_clear_free(pointer, count, NULL, 0);
}

#include <limits.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/x509.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/obj_mac.h>

// Asymmetric keys (kmsd's RSA, ECC and Ed25519 key specs). Each helper does one multi-step
// OpenSSL exchange whose macros and out-parameters Swift cannot call directly; all return 1 on
// success and 0 (or NULL) on failure, with the reason on OpenSSL's error queue.

/// A new key pair: `type` "RSA" (with `bits`), "EC" (with `group`, e.g. "P-256", "secp256k1")
/// or "ED25519".
static inline EVP_PKEY *COpenSSL_generate_key(const char *type, int bits, const char *group) {
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL) return NULL;
    if (EVP_PKEY_keygen_init(ctx) != 1) goto done;
    if (bits > 0 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) != 1) goto done;
    if (group != NULL && EVP_PKEY_CTX_set_group_name(ctx, group) != 1) goto done;
    if (EVP_PKEY_generate(ctx, &key) != 1) key = NULL;
done:
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/// Ed25519 signing, over the message itself (the digest schemes use `COpenSSL_signature_ctx`).
/// `*length` is the buffer's size in, the signature's out.
static inline int COpenSSL_sign_message(EVP_PKEY *key, const unsigned char *message, size_t count,
                                        unsigned char *signature, size_t *length) {
    int ok = 0;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    if (mctx == NULL) return 0;
    if (EVP_DigestSignInit(mctx, NULL, NULL, NULL, key) == 1)
        ok = EVP_DigestSign(mctx, signature, length, message, count) == 1;
    EVP_MD_CTX_free(mctx);
    return ok;
}

/// A context set up once for signing (`verify` 0) or verifying (1) digests with `md` and, for
/// RSA, `padding` (RSA_PKCS1_PADDING, or RSA_PKCS1_PSS_PADDING with a salt of the digest's
/// length; 0 for ECDSA). OpenSSL 3 fetches the algorithm and builds the provider's
/// key context on every init, a tenth of an ECDSA P-256 verification, so kmsd keeps these per
/// key and reuses them. NULL on failure.
static inline EVP_PKEY_CTX *COpenSSL_signature_ctx(EVP_PKEY *key, int verify, const EVP_MD *md, int padding) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL) return NULL;
    if ((verify ? EVP_PKEY_verify_init(ctx) : EVP_PKEY_sign_init(ctx)) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
        && (padding == 0 || EVP_PKEY_CTX_set_rsa_padding(ctx, padding) == 1)
        && (padding != RSA_PKCS1_PSS_PADDING || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) == 1))
        return ctx;
    EVP_PKEY_CTX_free(ctx);
    return NULL;
}

/// Signs (`verify` 0: `*length` is the buffer's size in, the signature's out) or verifies (1: 1 if valid) with a
/// context from `COpenSSL_signature_ctx`, hashing `message` with `md` first unless `prehashed`.
static inline int COpenSSL_signature_with(EVP_PKEY_CTX *ctx, int verify, const EVP_MD *md, int prehashed,
                                          const unsigned char *message, size_t count, unsigned char *signature, size_t *length) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digestLength = 0;
    if (!prehashed) {
        if (EVP_Digest(message, count, digest, &digestLength, md, NULL) != 1) return 0;
        message = digest;
        count = digestLength;
    }
    int ok = verify ? EVP_PKEY_verify(ctx, signature, *length, message, count) == 1
                    : EVP_PKEY_sign(ctx, signature, length, message, count) == 1;
    OPENSSL_cleanse(digest, sizeof digest);
    return ok;
}

/// Verifies as `COpenSSL_sign_message` signs: 1 if the signature is valid, 0 if not (or on error).
static inline int COpenSSL_verify_message(EVP_PKEY *key, const unsigned char *message, size_t count,
                                          const unsigned char *signature, size_t length) {
    int ok = 0;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    if (mctx == NULL) return 0;
    if (EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, key) == 1)
        ok = EVP_DigestVerify(mctx, signature, length, message, count) == 1;
    EVP_MD_CTX_free(mctx);
    return ok;
}

/// RSAES-OAEP with `md` for both the label hash and MGF1, as AWS KMS uses it: encrypts with
/// `encrypt` 1, decrypts with 0. `*length` is the output buffer's size in, the result's out.
static inline int COpenSSL_oaep(EVP_PKEY *key, int encrypt, const EVP_MD *md,
                                const unsigned char *input, size_t count, unsigned char *output, size_t *length) {
    int ok = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL) return 0;
    if ((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1
        && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1
        && EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1)
        ok = (encrypt ? EVP_PKEY_encrypt(ctx, output, length, input, count) : EVP_PKEY_decrypt(ctx, output, length, input, count)) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/// ECDH between `key` and `peer` (same curve). `*length` in/out as above.
static inline int COpenSSL_derive(EVP_PKEY *key, EVP_PKEY *peer, unsigned char *secret, size_t *length) {
    int ok = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL) return 0;
    if (EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1)
        ok = EVP_PKEY_derive(ctx, secret, length) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/// SM2 (GB/T 32918) signatures with SM3, as AWS KMS makes SM2DSA ones: over a RAW message, the
/// signer's Z value with the default distinguishing ID 1234567812345678 comes first; with
/// `prehashed`, `message` is already SM3(Z ‖ M) and is signed as it is.
static const char COpenSSL_sm2_default_id[] = "1234567812345678";
static inline int COpenSSL_sm2_sign(EVP_PKEY *key, int verify, int prehashed, const unsigned char *message, size_t count,
                                    unsigned char *signature, size_t *length) {
    int ok = 0;
    if (!prehashed) {
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);
        if (mctx == NULL || pctx == NULL
            || EVP_PKEY_CTX_set1_id(pctx, COpenSSL_sm2_default_id, sizeof(COpenSSL_sm2_default_id) - 1) != 1) {
            EVP_MD_CTX_free(mctx);
            EVP_PKEY_CTX_free(pctx);
            return 0;
        }
        EVP_MD_CTX_set_pkey_ctx(mctx, pctx);
        if (verify) {
            ok = EVP_DigestVerifyInit(mctx, NULL, EVP_sm3(), NULL, key) == 1
                && EVP_DigestVerify(mctx, signature, *length, message, count) == 1;
        } else {
            ok = EVP_DigestSignInit(mctx, NULL, EVP_sm3(), NULL, key) == 1
                && EVP_DigestSign(mctx, signature, length, message, count) == 1;
        }
        EVP_MD_CTX_free(mctx);
        EVP_PKEY_CTX_free(pctx);
        return ok;
    }
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL) return 0;
    if (verify) {
        ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_verify(ctx, signature, *length, message, count) == 1;
    } else {
        ok = EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_sign(ctx, signature, length, message, count) == 1;
    }
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/// SM2 public-key encryption (GB/T 32918.4 with SM3; the ciphertext in its ASN.1 DER form, C1 C3
/// C2, as OpenSSL and GmSSL write it): `encrypt` 1 encrypts, 0 decrypts.
static inline int COpenSSL_sm2_crypt(EVP_PKEY *key, int encrypt, const unsigned char *input, size_t count,
                                     unsigned char *output, size_t *length) {
    int ok = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL) return 0;
    if ((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1)
        ok = (encrypt ? EVP_PKEY_encrypt(ctx, output, length, input, count) : EVP_PKEY_decrypt(ctx, output, length, input, count)) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/// ECDH on the SM2 curve (OpenSSL 3.0 has no key exchange for SM2 keys): the x coordinate of
/// the private scalar times the peer's point, which EC_POINT_oct2point checks is on the curve
/// (whose cofactor is 1). `*length` in/out as for COpenSSL_derive.
static inline int COpenSSL_sm2_ecdh(EVP_PKEY *key, EVP_PKEY *peer, unsigned char *secret, size_t *length) {
    BIGNUM *priv = NULL, *x = BN_new();
    unsigned char pub[133];
    size_t count = 0;
    int ok = 0;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_sm2);
    EC_POINT *point = NULL, *shared = NULL;
    BN_CTX *bn = BN_CTX_secure_new();
    if (group == NULL || bn == NULL || x == NULL) goto done;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) != 1) goto done;
    if (EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &count) != 1) goto done;
    point = EC_POINT_new(group);
    shared = EC_POINT_new(group);
    if (point == NULL || shared == NULL || EC_POINT_oct2point(group, point, pub, count, bn) != 1) goto done;
    if (EC_POINT_mul(group, shared, NULL, point, priv, bn) != 1 || EC_POINT_is_at_infinity(group, shared)) goto done;
    if (EC_POINT_get_affine_coordinates(group, shared, x, NULL, bn) != 1) goto done;
    if (*length < 32 || BN_bn2binpad(x, secret, 32) != 32) goto done;
    *length = 32;
    ok = 1;
done:
    BN_clear_free(priv);
    BN_clear_free(x);
    EC_POINT_clear_free(shared);
    EC_POINT_free(point);
    EC_GROUP_free(group);
    BN_CTX_free(bn);
    return ok;
}

/// The private key as PKCS#8 DER, in memory the caller frees with OPENSSL_clear_free (a secret).
static inline int COpenSSL_private_key_der(EVP_PKEY *key, unsigned char **der) {
    PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(key);
    if (info == NULL) return -1;
    *der = NULL;
    int length = i2d_PKCS8_PRIV_KEY_INFO(info, der);
    PKCS8_PRIV_KEY_INFO_free(info);
    return length;
}

/// OPENSSL_clear_free is a macro passing __FILE__/__LINE__.
static inline void COpenSSL_clear_free(void *pointer, size_t count) { CRYPTO_clear_free(pointer, count, NULL, 0); }
static inline void COpenSSL_free(void *pointer) { CRYPTO_free(pointer, NULL, 0); }

/// The key's type name ("RSA", "EC", "ED25519"), its size in bits, and for EC keys the curve's
/// name ("prime256v1", "secp384r1", "secp521r1", "secp256k1") in `group` (`size` bytes).
static inline int COpenSSL_key_group(EVP_PKEY *key, char *group, size_t size) {
    size_t length = 0;
    return EVP_PKEY_get_utf8_string_param(key, "group", group, size, &length);
}

/// AES key wrap with padding (RFC 5649) under a 256-bit key: `wrap` 1 wraps, 0 unwraps (and
/// fails if the integrity check does). `*length` is the output buffer's size in, the result's out.
static inline int COpenSSL_aes_key_wrap_pad(int wrap, const unsigned char *key, const unsigned char *input, size_t count,
                                            unsigned char *output, size_t *length) {
    int ok = 0, first = 0, last = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || count > INT_MAX) { EVP_CIPHER_CTX_free(ctx); return 0; }
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, key, NULL, wrap) == 1
        && *length >= count + 16
        && EVP_CipherUpdate(ctx, output, &first, input, (int)count) == 1
        && EVP_CipherFinal_ex(ctx, output + first, &last) == 1) {
        *length = (size_t)first + (size_t)last;
        ok = 1;
    }
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

#endif
