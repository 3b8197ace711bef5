#include "io/tls.h"

#include <wolfssl/options.h> /* first, or struct layouts differ from the .so */
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <string.h>

#include "proto/alloc.h"
#include "proto/errors.h"

struct gm_tls_ctx_s {
  WOLFSSL_CTX *ctx;
  char *key; /* "client:<ca file or empty>" or "server:<cert>" */
  int refs;
  bool server;
  gm_tls_ctx_t *next;
};

static gm_tls_ctx_t *contexts;
static int initialised;

static void ensure_init(void) {
  if (!initialised) {
    wolfSSL_Init();
    initialised = 1;
  }
}

/* RFC 8996: TLS 1.0 and 1.1 are deprecated; every context, client and
 * server, refuses them (the library alone would still negotiate 1.1). */
static bool set_floor(WOLFSSL_CTX *ctx) {
  return wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) == WOLFSSL_SUCCESS;
}

static gm_tls_ctx_t *find(const char *key) {
  for (gm_tls_ctx_t *c = contexts; c; c = c->next)
    if (strcmp(c->key, key) == 0) return c;
  return NULL;
}

static gm_tls_ctx_t *wrap(WOLFSSL_CTX *ctx, const char *key, bool server) {
  gm_tls_ctx_t *c = gm_calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->key = gm_strndup(key, strlen(key));
  if (c->key == NULL) {
    gm_free(c, sizeof *c);
    return NULL;
  }
  c->ctx = ctx;
  c->refs = 1;
  c->server = server;
  c->next = contexts;
  contexts = c;
  return c;
}

gm_tls_ctx_t *gm_tls_client_ctx(const char *ca_file, const char **why) {
  ensure_init();
  char key[4200];
  snprintf(key, sizeof key, "client:%s", ca_file ? ca_file : "");
  gm_tls_ctx_t *c = find(key);
  if (c) {
    c->refs++;
    return c;
  }
  /* TLS 1.2 and 1.3: Discord documents 1.2, proxies may offer either. */
  WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLS_client_method());
  if (ctx == NULL || !set_floor(ctx)) {
    if (ctx) wolfSSL_CTX_free(ctx);
    *why = "cannot create a TLS context";
    return NULL;
  }
  int ok = ca_file ? wolfSSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                   : wolfSSL_CTX_load_system_CA_certs(ctx);
  if (ok != WOLFSSL_SUCCESS) {
    wolfSSL_CTX_free(ctx);
    *why = ca_file ? "cannot load the CA file" : "cannot load the system CAs";
    return NULL;
  }
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
  c = wrap(ctx, key, false);
  if (c == NULL) {
    wolfSSL_CTX_free(ctx);
    *why = "out of memory";
  }
  return c;
}

gm_tls_ctx_t *gm_tls_server_ctx(const char *cert_file, const char *key_file,
                                const char **why) {
  ensure_init();
  char key[4200];
  snprintf(key, sizeof key, "server:%s:%s", cert_file, key_file);
  gm_tls_ctx_t *c = find(key);
  if (c) {
    c->refs++;
    return c;
  }
  WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLS_server_method());
  if (ctx == NULL || !set_floor(ctx)) {
    if (ctx) wolfSSL_CTX_free(ctx);
    *why = "cannot create a TLS context";
    return NULL;
  }
  if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert_file) !=
          WOLFSSL_SUCCESS ||
      wolfSSL_CTX_use_PrivateKey_file(ctx, key_file, WOLFSSL_FILETYPE_PEM) !=
          WOLFSSL_SUCCESS) {
    wolfSSL_CTX_free(ctx);
    *why = "cannot load the server certificate or key";
    return NULL;
  }
  c = wrap(ctx, key, true);
  if (c == NULL) {
    wolfSSL_CTX_free(ctx);
    *why = "out of memory";
  }
  return c;
}

void gm_tls_ctx_retain(gm_tls_ctx_t *c) { c->refs++; }

void gm_tls_ctx_release(gm_tls_ctx_t *c) {
  if (c == NULL || --c->refs > 0) return;
  for (gm_tls_ctx_t **p = &contexts; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  wolfSSL_CTX_free(c->ctx);
  gm_free(c->key, strlen(c->key) + 1);
  gm_free(c, sizeof *c);
}

bool gm_tls_ctx_is_server(const gm_tls_ctx_t *c) { return c->server; }

void *gm_tls_ctx_native(const gm_tls_ctx_t *c) { return c->ctx; }

const char *gm_tls_error_text(int e) {
  switch (e) {
  case DOMAIN_NAME_MISMATCH:
  case IPADDR_MISMATCH:
    return "the server's certificate is for another host name";
  case ASN_AFTER_DATE_E:
    return "the server's certificate expired";
  case ASN_BEFORE_DATE_E:
    return "the server's certificate is not valid yet (check the clock)";
  case ASN_SIG_CONFIRM_E:
    return "the server's certificate has a bad signature";
  case ASN_NO_SIGNER_E:
  case ASN_SELF_SIGNED_E:
  case VERIFY_CERT_ERROR:
  case ASN_PATHLEN_INV_E:
  case ASN_PATHLEN_SIZE_E:
    return "the server's certificate is not trusted (no CA vouches for it)";
  case VERSION_ERROR:
    return "the peer offers only a TLS version older than 1.2 "
           "(gloaming requires TLS 1.2 or later)";
  default:
    return NULL;
  }
}

int gm_tls_error_code(int e) {
  switch (e) {
  case DOMAIN_NAME_MISMATCH:
  case IPADDR_MISMATCH:
    return GM_ETLSHOST;
  case ASN_NO_SIGNER_E:
  case ASN_AFTER_DATE_E:
  case ASN_BEFORE_DATE_E:
  case ASN_SIG_CONFIRM_E:
  case ASN_SELF_SIGNED_E:
  case VERIFY_CERT_ERROR:
  case ASN_PATHLEN_INV_E:
  case ASN_PATHLEN_SIZE_E:
    return GM_ETLSVERIFY;
  default:
    return GM_ETLS;
  }
}
