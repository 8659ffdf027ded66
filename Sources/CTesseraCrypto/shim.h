// The libcrypto surface Tessera uses. Only Sources/TesseraJOSE/OpenSSL/ (and the benchmark, which
// measures the raw primitive) import this module.
#ifndef TESSERA_CRYPTO_SHIM_H
#define TESSERA_CRYPTO_SHIM_H

#include <openssl/opensslv.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_MAJOR < 3
#error "Tessera needs OpenSSL 3 (Debian: apt-get install libssl-dev)"
#endif

// Function-like macros are not visible to Swift; these wrap the ones we need.
static inline void tessera_openssl_free(void *ptr) { OPENSSL_free(ptr); }
static inline int tessera_selection_keypair(void) { return EVP_PKEY_KEYPAIR; }
static inline int tessera_selection_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int tessera_bn_num_bytes(const BIGNUM *bn) { return BN_num_bytes(bn); }

#endif
