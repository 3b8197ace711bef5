#include "redis_url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "errors.h"

#define DEFAULT_PORT 6379
#define MAX_DB 1000000 /* redis.conf's `databases` is an int; no one runs more */

static int fail(gm_redis_url_t *u, const char **why, const char *text) {
  gm_redis_url_free(u);
  if (why) *why = text;
  return GM_EURL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes [s, s+n) into a new string; *out NULL on a bad escape
 * or a decoded NUL (C strings carry these values to hiredis). */
static int decode(const char *s, size_t n, char **out, size_t *out_len) {
  char *d = gm_malloc(n + 1);
  if (d == NULL) return GM_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\0') {
      gm_free(d, n + 1);
      *out = NULL;
      return 0;
    }
    if (s[i] != '%') {
      d[k++] = s[i];
      continue;
    }
    int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
    int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      gm_free(d, n + 1);
      *out = NULL;
      return 0;
    }
    d[k++] = (char)(hi * 16 + lo);
    i += 2;
  }
  char *exact = gm_strndup(d, k);
  gm_free(d, n + 1);
  if (exact == NULL) return GM_ENOMEM;
  *out = exact;
  if (out_len) *out_len = k;
  return 0;
}

/* A decimal number in [s, e) no greater than max; -1 when it is not one. */
static long number(const char *s, const char *e, long max) {
  if (s == e || e - s > 9) return -1;
  long v = 0;
  for (const char *c = s; c < e; c++) {
    if (*c < '0' || *c > '9') return -1;
    v = v * 10 + (*c - '0');
  }
  return v <= max ? v : -1;
}

static bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

static int parse_userinfo(gm_redis_url_t *u, const char *s, const char *e,
                          const char **why) {
  const char *colon = memchr(s, ':', (size_t)(e - s));
  if (colon == NULL)
    return fail(u, why, "user information needs a password: [user]:password@");
  int rc;
  if (colon > s) {
    if ((rc = decode(s, (size_t)(colon - s), &u->user, NULL)) != 0) return gm_redis_url_free(u), rc;
    if (u->user == NULL) return fail(u, why, "bad percent-escape in the user name");
  }
  if ((rc = decode(colon + 1, (size_t)(e - colon - 1), &u->password, &u->password_len)) != 0)
    return gm_redis_url_free(u), rc;
  if (u->password == NULL) return fail(u, why, "bad percent-escape in the password");
  return 0;
}

static int parse_tcp(gm_redis_url_t *u, const char *h, const char *end,
                     const char **why) {
  const char *auth_end = h;
  while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#') auth_end++;
  if (auth_end < end && *auth_end != '/') return fail(u, why, "redis:// URLs take no query or fragment");
  const char *at = NULL;
  for (const char *c = h; c < auth_end; c++)
    if (*c == '@') at = c; /* the last one: a password may hold '@' unescaped */
  int rc;
  if (at) {
    if ((rc = parse_userinfo(u, h, at, why)) != 0) return rc;
    h = at + 1;
  }
  const char *hend, *port_at = NULL;
  if (h < auth_end && *h == '[') {
    hend = memchr(h, ']', (size_t)(auth_end - h));
    if (hend == NULL) return fail(u, why, "unterminated [IPv6] host");
    u->host = gm_strndup(h + 1, (size_t)(hend - h - 1));
    if (u->host == NULL) return gm_redis_url_free(u), GM_ENOMEM;
    unsigned char buf[16];
    if (inet_pton(AF_INET6, u->host, buf) != 1) return fail(u, why, "bad IPv6 address");
    u->host_is_ip = true;
    hend++;
    if (hend < auth_end) {
      if (*hend != ':') return fail(u, why, "junk after ]");
      port_at = hend + 1;
    }
  } else {
    hend = h;
    while (hend < auth_end && *hend != ':') hend++;
    if (hend == h) return fail(u, why, "empty host");
    for (const char *c = h; c < hend; c++)
      if (!host_char(*c)) return fail(u, why, "bad character in host");
    u->host = gm_strndup(h, (size_t)(hend - h));
    if (u->host == NULL) return gm_redis_url_free(u), GM_ENOMEM;
    unsigned char buf[4];
    u->host_is_ip = inet_pton(AF_INET, u->host, buf) == 1;
    if (hend < auth_end) port_at = hend + 1;
  }
  u->port = DEFAULT_PORT;
  if (port_at) {
    long port = number(port_at, auth_end, 65535);
    if (port <= 0) return fail(u, why, "bad port");
    u->port = (uint16_t)port;
  }
  if (auth_end < end) { /* "/db" */
    const char *d = auth_end + 1;
    if (d < end) {
      long db = number(d, end, MAX_DB);
      if (db < 0) return fail(u, why, "the path must be a database number: /0");
      u->db = (int)db;
    }
  }
  return 0;
}

static int parse_unix(gm_redis_url_t *u, const char *p, const char *end,
                      const char **why) {
  if (p == end || *p != '/') return fail(u, why, "unix:// needs an absolute path: unix:///path/to/redis.sock");
  const char *q = memchr(p, '?', (size_t)(end - p));
  const char *pend = q ? q : end;
  if (memchr(p, '#', (size_t)(pend - p)) || memchr(p, '\0', (size_t)(pend - p)))
    return fail(u, why, "bad character in the socket path");
  int rc;
  if ((rc = decode(p, (size_t)(pend - p), &u->host, NULL)) != 0) return gm_redis_url_free(u), rc;
  if (u->host == NULL) return fail(u, why, "bad percent-escape in the socket path");
  u->unix_socket = true;
  bool seen_db = false;
  for (const char *k = q ? q + 1 : end; k < end;) {
    const char *amp = memchr(k, '&', (size_t)(end - k));
    const char *kend = amp ? amp : end;
    const char *eq = memchr(k, '=', (size_t)(kend - k));
    if (eq == NULL) return fail(u, why, "query parameters are db=N and password=P");
    if (eq - k == 2 && memcmp(k, "db", 2) == 0 && !seen_db) {
      long db = number(eq + 1, kend, MAX_DB);
      if (db < 0) return fail(u, why, "db must be a database number");
      u->db = (int)db;
      seen_db = true;
    } else if (eq - k == 8 && memcmp(k, "password", 8) == 0 && u->password == NULL) {
      if ((rc = decode(eq + 1, (size_t)(kend - eq - 1), &u->password, &u->password_len)) != 0)
        return gm_redis_url_free(u), rc;
      if (u->password == NULL) return fail(u, why, "bad percent-escape in the password");
    } else {
      return fail(u, why, "query parameters are db=N and password=P, each once");
    }
    k = amp ? amp + 1 : end;
  }
  return 0;
}

int gm_redis_url_parse(const char *s, size_t len, gm_redis_url_t *u,
                       const char **why) {
  memset(u, 0, sizeof *u);
  const char *end = s + len, *p = memchr(s, ':', len);
  if (p == NULL || end - p < 3 || p[1] != '/' || p[2] != '/')
    return fail(u, why, "expected redis://host:port/db or unix:///path");
  size_t n = (size_t)(p - s);
  if (n == 5 && strncasecmp(s, "redis", 5) == 0) return parse_tcp(u, p + 3, end, why);
  if (n == 4 && strncasecmp(s, "unix", 4) == 0) return parse_unix(u, p + 3, end, why);
  if (n == 6 && strncasecmp(s, "rediss", 6) == 0)
    return fail(u, why, "rediss:// (TLS) is not supported: hiredis 0.14 cannot encrypt; "
                        "use redis:// over a private network or a tunnel");
  return fail(u, why, "the scheme must be redis or unix");
}

void gm_redis_url_free(gm_redis_url_t *u) {
  if (u->host) gm_free(u->host, strlen(u->host) + 1);
  if (u->user) gm_free(u->user, strlen(u->user) + 1);
  if (u->password) {
    memset(u->password, 0, u->password_len); /* not left in freed memory */
    gm_free(u->password, u->password_len + 1);
  }
  memset(u, 0, sizeof *u);
}

char *gm_redis_url_display(const gm_redis_url_t *u) {
  const char *auth = u->password ? "<redacted>@" : "";
  const char *user = u->password && u->user ? u->user : "";
  size_t cap = strlen(u->host) + strlen(user) + 64;
  char *s = gm_malloc(cap);
  if (s == NULL) return NULL;
  int n;
  if (u->unix_socket)
    n = snprintf(s, cap, "unix://%s?db=%d%s", u->host, u->db, u->password ? "&password=<redacted>" : "");
  else
    n = snprintf(s, cap, "redis://%s%s%s%s%s%s:%u/%d", user, u->password ? ":" : "", auth,
                 strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "", u->port, u->db);
  char *exact = gm_strndup(s, n < 0 ? 0 : (size_t)n);
  gm_free(s, cap);
  return exact;
}

int gm_redis_info_field(const char *info, size_t len, const char *field,
                        char *out, size_t cap) {
  size_t flen = strlen(field);
  const char *end = info + len;
  for (const char *line = info; line < end;) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    const char *lend = nl ? nl : end;
    if ((size_t)(lend - line) > flen && memcmp(line, field, flen) == 0 && line[flen] == ':') {
      const char *v = line + flen + 1, *vend = lend;
      if (vend > v && vend[-1] == '\r') vend--;
      size_t n = (size_t)(vend - v);
      if (cap == 0 || n > cap - 1) return -1;
      memcpy(out, v, n);
      out[n] = '\0';
      return (int)n;
    }
    line = nl ? nl + 1 : end;
  }
  return -1;
}
