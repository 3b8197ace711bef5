/* Redis URLs, and the one field gloaming reads from an INFO reply.
 *
 *   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0)
 *   unix:///path/to/redis.sock[?db=N][&password=P]
 *   rediss://...  refused: hiredis 0.14 has no TLS
 *
 * Parsed here, sans-I/O, so that hiredis never sees a host name (it would
 * resolve it synchronously) and a bad URL fails when the client is made.
 * User and password may be percent-encoded. */
#ifndef GM_REDIS_URL_H
#define GM_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gm_redis_url_s {
  bool unix_socket;
  char *host;     /* host name or IP literal (no brackets), or socket path */
  bool host_is_ip;
  uint16_t port;  /* TCP only */
  char *user;     /* NULL: none (AUTH with the password alone) */
  char *password; /* NULL: no AUTH */
  size_t password_len;
  int db;
} gm_redis_url_t;

/* 0, or GM_EURL with *why a static explanation, or GM_ENOMEM. On failure
 * nothing needs freeing. */
int gm_redis_url_parse(const char *s, size_t len, gm_redis_url_t *u,
                       const char **why);
void gm_redis_url_free(gm_redis_url_t *u);
/* The URL for logs and errors, with the password as "<redacted>":
 * gm_malloc'd (free with gm_free and strlen + 1), or NULL. */
char *gm_redis_url_display(const gm_redis_url_t *u);

/* The value of field in an INFO reply ("run_id:abc\r\n"), copied into out
 * NUL-terminated; its length, or -1 when absent or longer than cap - 1. */
int gm_redis_info_field(const char *info, size_t len, const char *field,
                        char *out, size_t cap);

#endif
