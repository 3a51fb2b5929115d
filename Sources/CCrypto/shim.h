#pragma once
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/err.h>

/* STACK_OF(X509) helpers (sk_X509_* are macros): the untrusted intermediates of a certificate file. */
static inline STACK_OF(X509) *esg_x509_stack_new(void) { return sk_X509_new_null(); }
/* Takes ownership of x on success (returns > 0). */
static inline int esg_x509_stack_push(STACK_OF(X509) *s, X509 *x) { return sk_X509_push(s, x); }
static inline void esg_x509_stack_free(STACK_OF(X509) *s) { sk_X509_pop_free(s, X509_free); }
