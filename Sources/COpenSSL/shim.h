#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/bn.h>
#include <openssl/bio.h>
#include <openssl/obj_mac.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/encoder.h>
#include <openssl/decoder.h>

/*
 * Macros that Swift cannot import, wrapped as functions. Only constants and tiny wrappers here;
 * all logic stays in Swift (Sources/LedgerCore/Crypto/SM2SM3Suite.swift, OpenSSLSupport.swift).
 */

/* EVP_PKEY_PUBLIC_KEY: key parameters and the public key (a selection for fromdata/encoders). */
static inline int scf_evp_pkey_selection_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }

/* EVP_PKEY_KEYPAIR: key parameters, the public key and the private key. */
static inline int scf_evp_pkey_selection_keypair(void) { return EVP_PKEY_KEYPAIR; }
