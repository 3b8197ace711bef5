/* The lexical half of the native JSON decoder: see json_read.h. */
#include "proto/json_read.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

static const char *const err_messages[] = {
#define GM_JSON_ERR_MSG(name, msg) msg,
  GM_JSON_ERR_MAP(GM_JSON_ERR_MSG)
#undef GM_JSON_ERR_MSG
};

const char *gm_json_err_message(gm_json_err_t err) {
  if ((unsigned)err >= sizeof err_messages / sizeof err_messages[0]) return "?";
  return err_messages[err];
}

static const char *fail(gm_json_err_t *err, const char **at, gm_json_err_t e,
                        const char *where) {
  *err = e;
  *at = where;
  return NULL;
}

/* {=============== strings =============== */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Eight bytes at a time: a word's bytes that stop the plain run (a quote,
 * a backslash, a control character or a non-ASCII byte) have their high
 * bit set in the result. Most of an event's bytes are plain ASCII. */
static inline uint64_t stops(uint64_t w) {
  uint64_t q = w ^ (ONES * '"');
  uint64_t b = w ^ (ONES * '\\');
  uint64_t special = ((q - ONES) & ~q) | ((b - ONES) & ~b) | (w - ONES * 0x20);
  return (special | w) & HIGHS;
}

/* A non-ASCII sequence at p (*p >= 0x80): its length, or 0 when it is not
 * well-formed UTF-8 (RFC 3629: shortest form, no surrogates, <= U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  unsigned lo = 0x80, hi = 0xBF;
  size_t n;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
  } else return 0;
  if ((size_t)(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return n;
}

const char *gm_json_scan_string(const char *p, const char *end, size_t *len,
                                bool *escaped, gm_json_err_t *err,
                                const char **at) {
  const unsigned char *s = (const unsigned char *)p, *u = s;
  const unsigned char *e = (const unsigned char *)end;
  bool esc = false;
  for (;;) {
    while (e - u >= 8) {
      uint64_t w;
      memcpy(&w, u, 8);
      uint64_t m = stops(w);
      if (m) {
        u += __builtin_ctzll(m) >> 3;
        goto special;
      }
      u += 8;
    }
    while (u < e && *u >= 0x20 && *u < 0x80 && *u != '"' && *u != '\\') u++;
    if (u >= e) return fail(err, at, GM_JSON_EEOF, end);
  special:
    if (*u == '"') break;
    if (*u == '\\') {
      /* the escape's validity is unescape's business; here only its
       * extent: the escaped byte is never the closing quote */
      esc = true;
      if (e - u < 2) return fail(err, at, GM_JSON_EEOF, end);
      u += 2;
    } else if (*u < 0x20) {
      return fail(err, at, *u ? GM_JSON_ECTRL : GM_JSON_ENUL, (const char *)u);
    } else {
      size_t n = utf8_seq(u, e);
      if (n == 0) return fail(err, at, GM_JSON_EUTF8, (const char *)u);
      u += n;
    }
  }
  *len = (size_t)(u - s);
  *escaped = esc;
  return (const char *)u + 1;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0'
          : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v << 4 | d;
  }
  return v;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* The output never outgrows the body: each escape is at least as long as
 * what it stands for (\uXXXX: 6 bytes for at most 3, a pair 12 for 4). */
long gm_json_unescape_body(const char *body, size_t len, char *out,
                           gm_json_err_t *err, const char **at) {
  const char *p = body, *end = body + len;
  char *o = out;
  while (p < end) {
    const char *bs = memchr(p, '\\', (size_t)(end - p));
    size_t run = (size_t)((bs ? bs : end) - p);
    memcpy(o, p, run);
    o += run;
    if (bs == NULL) break;
    p = bs + 1; /* the scanner saw a byte after every backslash */
    switch (*p++) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      int cp = end - p >= 4 ? hex4(p) : -1;
      if (cp < 0) return fail(err, at, GM_JSON_EESCAPE, bs), -1;
      p += 4;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(err, at, GM_JSON_ESURROGATE, bs), -1;
      if (cp >= 0xD800 && cp <= 0xDBFF) { /* RFC 8259 7: a pair, or nothing */
        int lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) return fail(err, at, GM_JSON_ESURROGATE, bs), -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
      }
      o += put_utf8(o, (unsigned)cp);
      break;
    }
    default:
      return fail(err, at, GM_JSON_EESCAPE, bs), -1;
    }
  }
  return (long)(o - out);
}

/* }=============== */

/* {=============== numbers =============== */

static inline bool digit(const char *p, const char *end) {
  return p < end && *p >= '0' && *p <= '9';
}

/* strtod in the C locale whatever the process's LC_NUMERIC is (a script
 * may call os.setlocale). */
static double c_strtod(const char *s) {
  static locale_t c_locale;
  if (c_locale == (locale_t)0) c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

const char *gm_json_scan_number(const char *p, const char *end,
                                gm_json_number_t *out, gm_json_err_t *err,
                                const char **at) {
  const char *q = p;
  bool neg = false;
  if (q < end && *q == '-') { neg = true; q++; }
  if (!digit(q, end)) return fail(err, at, GM_JSON_ENUMBER, q);
  uint64_t v = 0;
  const char *digits = q;
  if (*q == '0') {
    q++;
    if (digit(q, end)) return fail(err, at, GM_JSON_ENUMBER, q); /* a leading zero */
  } else {
    while (digit(q, end)) {
      if (q - digits < 19) v = v * 10 + (uint64_t)(*q - '0');
      q++;
    }
  }
  size_t ndigits = (size_t)(q - digits);
  bool whole = true;
  if (q < end && *q == '.') {
    whole = false;
    q++;
    if (!digit(q, end)) return fail(err, at, GM_JSON_ENUMBER, q);
    while (digit(q, end)) q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    whole = false;
    q++;
    if (q < end && (*q == '+' || *q == '-')) q++;
    if (!digit(q, end)) return fail(err, at, GM_JSON_ENUMBER, q);
    while (digit(q, end)) q++;
  }
  /* 19 digits never overflow a uint64 (10^19 - 1 < 2^64) */
  if (whole && ndigits <= 19 && v != 0 &&
      (neg ? v <= (uint64_t)INT64_MAX + 1 : v <= (uint64_t)INT64_MAX)) {
    out->is_int = true;
    out->i = neg ? (int64_t)(0 - v) : (int64_t)v;
    return q;
  }
  if (whole && v == 0 && ndigits == 1) { /* 0 is an integer, -0 a float */
    out->is_int = !neg;
    out->i = 0;
    out->d = neg ? -0.0 : 0.0;
    return q;
  }
  /* strtod needs a terminated copy: the text may end right after q */
  char small[128];
  size_t n = (size_t)(q - p);
  char *buf = n < sizeof small ? small : malloc(n + 1); /* only absurd numbers */
  if (buf == NULL) return fail(err, at, GM_JSON_ENUMBER, p);
  memcpy(buf, p, n);
  buf[n] = '\0';
  out->is_int = false;
  out->d = c_strtod(buf);
  if (buf != small) free(buf);
  return q;
}

/* }=============== */
