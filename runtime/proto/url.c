#include "url.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "errors.h"

static const struct {
  const char *name;
  bool tls, websocket;
  uint16_t port;
} schemes[] = {
    {"ws", false, true, 80},
    {"wss", true, true, 443},
    {"http", false, false, 80},
    {"https", true, false, 443},
};

static int fail(const char **why, const char *text) {
  if (why) *why = text;
  return GM_EURL;
}

static bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int gm_url_parse(const char *s, size_t len, gm_url_t *u, const char **why) {
  memset(u, 0, sizeof *u);
  const char *end = s + len, *p = memchr(s, ':', len);
  if (p == NULL || end - p < 3 || p[1] != '/' || p[2] != '/')
    return fail(why, "expected scheme://host");
  size_t slen = (size_t)(p - s);
  int k = -1;
  for (int i = 0; i < 4; i++)
    if (strlen(schemes[i].name) == slen &&
        strncasecmp(s, schemes[i].name, slen) == 0)
      k = i;
  if (k < 0) return fail(why, "the scheme must be ws, wss, http or https");
  strcpy(u->scheme, schemes[k].name);
  u->tls = schemes[k].tls;
  u->websocket = schemes[k].websocket;
  u->port = schemes[k].port;

  const char *h = p + 3, *hend;
  const char *auth_end = h;
  while (auth_end < end && *auth_end != '/' && *auth_end != '?' &&
         *auth_end != '#')
    auth_end++;
  if (memchr(h, '@', (size_t)(auth_end - h)))
    return fail(why, "user information in URLs is not supported");
  const char *port_at = NULL;
  if (h < auth_end && *h == '[') { /* [IPv6] */
    hend = memchr(h, ']', (size_t)(auth_end - h));
    if (hend == NULL) return fail(why, "unterminated [IPv6] host");
    u->host = gm_strndup(h + 1, (size_t)(hend - h - 1));
    if (u->host == NULL) return GM_ENOMEM;
    unsigned char buf[16];
    if (inet_pton(AF_INET6, u->host, buf) != 1)
      return gm_url_free(u), fail(why, "bad IPv6 address");
    u->host_is_ip = true;
    hend++;
    if (hend < auth_end) {
      if (*hend != ':') return gm_url_free(u), fail(why, "junk after ]");
      port_at = hend + 1;
    }
  } else {
    hend = h;
    while (hend < auth_end && *hend != ':') hend++;
    if (hend == h) return fail(why, "empty host");
    for (const char *c = h; c < hend; c++)
      if (!valid_host_char(*c)) return fail(why, "bad character in host");
    u->host = gm_strndup(h, (size_t)(hend - h));
    if (u->host == NULL) return GM_ENOMEM;
    unsigned char buf[4];
    u->host_is_ip = inet_pton(AF_INET, u->host, buf) == 1;
    if (hend < auth_end) port_at = hend + 1;
  }
  if (port_at) {
    unsigned long port = 0;
    if (port_at == auth_end) return gm_url_free(u), fail(why, "empty port");
    for (const char *c = port_at; c < auth_end; c++) {
      if (*c < '0' || *c > '9' || port > 65535)
        return gm_url_free(u), fail(why, "bad port");
      port = port * 10 + (unsigned long)(*c - '0');
    }
    if (port == 0 || port > 65535) return gm_url_free(u), fail(why, "bad port");
    u->port = (uint16_t)port;
    u->port_given = true;
  }

  const char *q = auth_end;
  const char *path_end = q;
  while (path_end < end && *path_end != '?' && *path_end != '#') path_end++;
  for (const char *c = q; c < end; c++)
    if ((unsigned char)*c <= 0x20 || *c == 0x7f)
      return gm_url_free(u), fail(why, "space or control character in URL");
  u->path = path_end > q ? gm_strndup(q, (size_t)(path_end - q))
                         : gm_strndup("/", 1);
  const char *query = path_end, *query_end = path_end;
  if (query < end && *query == '?') {
    query++;
    query_end = query;
    while (query_end < end && *query_end != '#') query_end++;
  }
  u->query = gm_strndup(query, (size_t)(query_end - query));
  if (u->path == NULL || u->query == NULL) return gm_url_free(u), GM_ENOMEM;
  return 0;
}

void gm_url_free(gm_url_t *u) {
  if (u->host) gm_free(u->host, strlen(u->host) + 1);
  if (u->path) gm_free(u->path, strlen(u->path) + 1);
  if (u->query) gm_free(u->query, strlen(u->query) + 1);
  u->host = u->path = u->query = NULL;
}

/* Calls fn for each key=value pair of the query. */
static void each_pair(const char *q, void (*fn)(void *, const char *, size_t,
                                                 const char *, size_t),
                      void *ud) {
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', n);
    size_t klen = eq ? (size_t)(eq - q) : n;
    if (n) fn(ud, q, klen, eq ? eq + 1 : q + n, eq ? n - klen - 1 : 0);
    q += n + (amp != NULL);
  }
}

typedef struct {
  const char *key;
  char out[4096];
  size_t len;
  int found;
  char *value_out;
  size_t cap;
} query_job_t;

static void keep_other(void *ud, const char *k, size_t kl, const char *v,
                       size_t vl) {
  query_job_t *j = ud;
  if (strlen(j->key) == kl && memcmp(k, j->key, kl) == 0) return;
  int n = snprintf(j->out + j->len, sizeof j->out - j->len, "%s%.*s%s%.*s",
                   j->len ? "&" : "", (int)kl, k, v > k + kl ? "=" : "",
                   (int)vl, v);
  if (n > 0 && (size_t)n < sizeof j->out - j->len) j->len += (size_t)n;
}

int gm_url_set_query(gm_url_t *u, const char *key, const char *value) {
  query_job_t j = {.key = key, .len = 0};
  j.out[0] = '\0';
  each_pair(u->query, keep_other, &j);
  if (value) {
    int n = snprintf(j.out + j.len, sizeof j.out - j.len, "%s%s=%s",
                     j.len ? "&" : "", key, value);
    if (n < 0 || (size_t)n >= sizeof j.out - j.len) return GM_EURL;
    j.len += (size_t)n;
  }
  char *q = gm_strndup(j.out, j.len);
  if (q == NULL) return GM_ENOMEM;
  gm_free(u->query, strlen(u->query) + 1);
  u->query = q;
  return 0;
}

static void find_key(void *ud, const char *k, size_t kl, const char *v,
                     size_t vl) {
  query_job_t *j = ud;
  if (j->found >= 0 || strlen(j->key) != kl || memcmp(k, j->key, kl)) return;
  j->found = (int)vl;
  if (j->cap) {
    size_t n = vl < j->cap - 1 ? vl : j->cap - 1;
    memcpy(j->value_out, v, n);
    j->value_out[n] = '\0';
  }
}

int gm_url_get_query(const gm_url_t *u, const char *key, char *out,
                     size_t cap) {
  query_job_t j = {.key = key, .found = -1, .value_out = out, .cap = cap};
  each_pair(u->query, find_key, &j);
  return j.found;
}

/* Formats into an exact-size gm_malloc'd string: callers free it with
 * strlen + 1, so no slack (and no shrinking realloc that could fail). */
static char *format_exact(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *format_exact(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = gm_malloc((size_t)n + 1);
  if (s == NULL) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

char *gm_url_format(const gm_url_t *u) {
  uint16_t dflt = u->tls ? 443 : 80;
  char port[8] = "";
  if (u->port != dflt) snprintf(port, sizeof port, ":%u", u->port);
  bool v6 = strchr(u->host, ':') != NULL;
  return format_exact("%s://%s%s%s%s%s%s%s", u->scheme, v6 ? "[" : "",
                      u->host, v6 ? "]" : "", port, u->path,
                      *u->query ? "?" : "", u->query);
}

char *gm_url_target(const gm_url_t *u) {
  return format_exact("%s%s%s", u->path, *u->query ? "?" : "", u->query);
}
