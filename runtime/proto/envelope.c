#include "envelope.h"

#include <string.h>

#include "errors.h"

#define MAX_DEPTH 512

static size_t skip_ws(const char *p, size_t i, size_t n) {
  while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
    i++;
  return i;
}

/* p[i] is a quote: returns the index after the closing quote, or 0. */
static size_t skip_string(const char *p, size_t i, size_t n, bool *escaped) {
  i++;
  while (i < n) {
    const char *q = memchr(p + i, '"', n - i);
    if (q == NULL) return 0;
    size_t j = (size_t)(q - p);
    /* the quote closes the string unless an odd run of backslashes
     * precedes it */
    size_t k = j;
    while (k > i && p[k - 1] == '\\') k--;
    if (escaped && (k != j || memchr(p + i, '\\', j - i))) *escaped = true;
    if ((j - k) % 2 == 0) return j + 1;
    i = j + 1;
  }
  return 0;
}

/* Skips one value starting at p[i]; returns the index after it, or 0. */
static size_t skip_value(const char *p, size_t i, size_t n) {
  if (i >= n) return 0;
  char c = p[i];
  if (c == '"') return skip_string(p, i, n, NULL);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (i < n) {
      c = p[i];
      if (c == '"') {
        i = skip_string(p, i, n, NULL);
        if (i == 0) return 0;
        continue;
      }
      if (c == '{' || c == '[') {
        if (++depth > MAX_DEPTH) return 0;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      i++;
    }
    return 0;
  }
  /* a number or a literal: up to the next delimiter */
  size_t start = i;
  while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' &&
         p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
    i++;
  return i > start ? i : 0;
}

bool gm_json_integer(const char *t, size_t n, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (n && t[0] == '-') {
    neg = true;
    i = 1;
  }
  if (i == n) return false;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return false;
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + (uint64_t)(t[i] - '0');
  }
  if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0)) return false;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

/* Calls visit(key, value) for each member of the object at p[0..n). */
typedef bool (*visit_fn)(void *ud, const char *key, size_t klen,
                         const char *val, size_t vlen, bool key_escaped);

/* whole: nothing but whitespace may follow the object (a payload is one
 * object; text glued after it is another payload lost, or garbage). */
static int object_end(const char *p, size_t i, size_t n, bool whole) {
  return !whole || skip_ws(p, i + 1, n) == n ? 0 : GM_EDECODE;
}

static int walk_object(const char *p, size_t n, visit_fn visit, void *ud,
                       bool whole) {
  size_t i = skip_ws(p, 0, n);
  if (i >= n || p[i] != '{') return GM_EDECODE;
  i = skip_ws(p, i + 1, n);
  if (i < n && p[i] == '}') return object_end(p, i, n, whole);
  while (i < n) {
    if (p[i] != '"') return GM_EDECODE;
    bool esc = false;
    size_t kend = skip_string(p, i, n, &esc);
    if (kend == 0) return GM_EDECODE;
    const char *key = p + i + 1;
    size_t klen = kend - i - 2;
    i = skip_ws(p, kend, n);
    if (i >= n || p[i] != ':') return GM_EDECODE;
    i = skip_ws(p, i + 1, n);
    size_t vend = skip_value(p, i, n);
    if (vend == 0) return GM_EDECODE;
    if (!visit(ud, key, klen, p + i, vend - i, esc)) return 0;
    i = skip_ws(p, vend, n);
    if (i < n && p[i] == ',') {
      i = skip_ws(p, i + 1, n);
      continue;
    }
    if (i < n && p[i] == '}') return object_end(p, i, n, whole);
    return GM_EDECODE;
  }
  return GM_EDECODE;
}

typedef struct {
  const char *base;
  gm_envelope_t *env;
} scan_t;

static bool visit_envelope(void *ud, const char *key, size_t klen,
                           const char *val, size_t vlen, bool key_escaped) {
  scan_t *s = ud;
  gm_envelope_t *e = s->env;
  if (key_escaped) return true;
  if (klen == 2 && key[0] == 'o' && key[1] == 'p') {
    int64_t v;
    if (gm_json_integer(val, vlen, &v) && v >= 0 && v <= 255) e->op = (int)v;
  } else if (klen == 1 && key[0] == 's') {
    int64_t v;
    if (gm_json_integer(val, vlen, &v)) {
      e->has_s = true;
      e->s = v;
    }
  } else if (klen == 1 && key[0] == 't') {
    if (vlen >= 2 && val[0] == '"') {
      e->t = val + 1;
      e->t_len = vlen - 2;
      e->t_escaped = memchr(e->t, '\\', e->t_len) != NULL;
    }
  } else if (klen == 1 && key[0] == 'd') {
    e->d_off = (size_t)(val - s->base);
    e->d_len = vlen;
  }
  return true;
}

int gm_envelope_scan(const char *json, size_t len, gm_envelope_t *env) {
  memset(env, 0, sizeof *env);
  env->op = -1;
  scan_t s = {json, env};
  return walk_object(json, len, visit_envelope, &s, true);
}

typedef struct {
  const char *key;
  size_t klen;
  const char *val;
  size_t vlen;
  bool found;
} find_t;

static bool visit_find(void *ud, const char *key, size_t klen,
                       const char *val, size_t vlen, bool key_escaped) {
  find_t *f = ud;
  if (key_escaped || klen != f->klen || memcmp(key, f->key, klen) != 0)
    return true;
  f->val = val;
  f->vlen = vlen;
  f->found = true;
  return false;
}

bool gm_json_find(const char *obj, size_t len, const char *key,
                  const char **value, size_t *value_len) {
  find_t f = {key, strlen(key), NULL, 0, false};
  if (walk_object(obj, len, visit_find, &f, false) != 0 || !f.found) return false;
  *value = f.val;
  *value_len = f.vlen;
  return true;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

long gm_json_unescape(const char *t, size_t n, char *out, size_t cap) {
  if (n < 2 || t[0] != '"' || t[n - 1] != '"' || cap == 0) return -1;
  size_t o = 0;
  for (size_t i = 1; i < n - 1; i++) {
    if (o + 5 > cap) return -1;
    char c = t[i];
    if (c != '\\') {
      if ((unsigned char)c < 0x20) return -1;
      out[o++] = c;
      continue;
    }
    if (++i >= n - 1) return -1;
    switch (t[i]) {
    case '"': out[o++] = '"'; break;
    case '\\': out[o++] = '\\'; break;
    case '/': out[o++] = '/'; break;
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': {
      if (i + 4 >= n - 1 + 1 || i + 4 > n - 2) return -1;
      int cp = hex4(t + i + 1);
      if (cp < 0) return -1;
      i += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
        if (i + 6 > n - 2 || t[i + 1] != '\\' || t[i + 2] != 'u') return -1;
        int lo = hex4(t + i + 3);
        if (lo < 0xDC00 || lo > 0xDFFF) return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return -1;
      }
      o += put_utf8(out + o, (unsigned)cp);
      break;
    }
    default:
      return -1;
    }
  }
  out[o] = '\0';
  return (long)o;
}
