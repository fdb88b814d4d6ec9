#ifndef SWAPGATE_COPENSSL_SHIM_H
#define SWAPGATE_COPENSSL_SHIM_H
/* OpenSSL's libcrypto 3 (already on the board through libmosquitto): Ed25519 verification of ABS commands.
 * Seen only by Sources/ABSProtocol's signature file. */
#include <openssl/evp.h>
#include <openssl/err.h>
#endif
