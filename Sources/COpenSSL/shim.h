// The parts of OpenSSL libcrypto (3.x) that kmsfs uses. Only KMSFSCrypto imports this module.
#ifndef KMSFS_COPENSSL_SHIM_H
#define KMSFS_COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#endif
