/* URLs of the four schemes gloaming speaks: ws, wss, http, https.
 *
 * Parsing is strict on purpose: a gateway URL that is subtly wrong should
 * fail when a config is built, not when a shard connects at 3 a.m. */
#ifndef GM_URL_H
#define GM_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gm_url_s {
  char scheme[6]; /* "ws", "wss", "http", "https" */
  bool tls;
  bool websocket;
  char *host;  /* without brackets for IPv6 literals */
  bool host_is_ip;
  uint16_t port;
  bool port_given;
  char *path;  /* starts with '/', default "/" */
  char *query; /* without the '?', "" when none */
} gm_url_t;

/* 0, or GM_EURL with *why set to a static explanation. */
int gm_url_parse(const char *s, size_t len, gm_url_t *u, const char **why);
void gm_url_free(gm_url_t *u);
/* Sets key=value in the query, replacing every existing key (value NULL
 * removes it). Keys and values are used as given (already encoded). */
int gm_url_set_query(gm_url_t *u, const char *key, const char *value);
/* The value of key in the query (not decoded), copied into out; returns
 * its length or -1 when absent. */
int gm_url_get_query(const gm_url_t *u, const char *key, char *out,
                     size_t cap);
/* "wss://host[:port]/path[?query]"; the port appears when it is not the
 * scheme's default. Returns a gm_malloc'd string (free with gm_free and
 * strlen + 1) or NULL. */
char *gm_url_format(const gm_url_t *u);
/* "/path[?query]", gm_malloc'd. */
char *gm_url_target(const gm_url_t *u);

#endif
