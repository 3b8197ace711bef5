/* TLS contexts: one WOLFSSL_CTX per distinct setting, shared and counted.
 *
 * Clients always verify the peer's certificate chain and host name; there
 * is deliberately no switch to turn that off (tests trust a CA file). */
#ifndef GM_TLS_H
#define GM_TLS_H

#include <stdbool.h>

typedef struct gm_tls_ctx_s gm_tls_ctx_t;

/* A client context trusting ca_file, or the system's CAs when NULL.
 * NULL on failure with *why set. */
gm_tls_ctx_t *gm_tls_client_ctx(const char *ca_file, const char **why);
/* A server context with a certificate chain and key (PEM files). */
gm_tls_ctx_t *gm_tls_server_ctx(const char *cert_file, const char *key_file,
                                const char **why);
void gm_tls_ctx_retain(gm_tls_ctx_t *c);
void gm_tls_ctx_release(gm_tls_ctx_t *c);
bool gm_tls_ctx_is_server(const gm_tls_ctx_t *c);
/* The WOLFSSL_CTX, as void* so wolfSSL's headers stay in tls.c/stream.c. */
void *gm_tls_ctx_native(const gm_tls_ctx_t *c);
/* Maps a wolfSSL error to a GM_E* code (ETLSVERIFY, ETLSHOST, ETLS). */
int gm_tls_error_code(int wolfssl_error);
/* What a user should read for a wolfSSL error, or NULL: the library's own
 * text is generic ("ASN date error, current date after"). */
const char *gm_tls_error_text(int wolfssl_error);

#endif
