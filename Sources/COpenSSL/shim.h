#ifndef MODELKEEP_COPENSSL_SHIM_H
#define MODELKEEP_COPENSSL_SHIM_H
// OpenSSL's SHA-256 with its state in the open (SHA256_CTX): a resumable upload's whole-file
// hash is saved after each append and continued by whichever server takes the next one. The
// low-level calls are deprecated in OpenSSL 3 in favour of EVP, which hides the state.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#endif
