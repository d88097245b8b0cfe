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

#endif
