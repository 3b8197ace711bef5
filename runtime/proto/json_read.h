/* The lexical half of the native JSON decoder (RFC 8259), sans-I/O: strings
 * (raw control characters, escapes, surrogate pairs, UTF-8) and numbers
 * (integers that fit int64 apart from everything else). The structure and
 * the values it becomes live in the caller (runtime/lua/l_json.c builds Lua
 * tables with these); nothing here allocates.
 *
 * Every scanner takes [p, end) and returns the first byte after what it
 * read, or NULL with *err set and *at the offending byte. */
#ifndef GM_JSON_READ_H
#define GM_JSON_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* XX(name, message): why a text is not JSON, one message each. */
#define GM_JSON_ERR_MAP(XX)                                         \
  XX(OK, "no error")                                                \
  XX(EOF, "unexpected end of text")                                 \
  XX(SYNTAX, "unexpected character")                                \
  XX(NUL, "unexpected NUL byte")                                    \
  XX(CTRL, "unescaped control character in string")                 \
  XX(UTF8, "invalid UTF-8 in string")                               \
  XX(ESCAPE, "invalid escape in string")                            \
  XX(SURROGATE, "unpaired surrogate escape in string")              \
  XX(NUMBER, "invalid number")                                      \
  XX(DEPTH, "nesting deeper than 1000")                             \
  XX(TRAILING, "text after the JSON value")

typedef enum {
#define GM_JSON_ERR_ENUM(name, msg) GM_JSON_E##name,
  GM_JSON_ERR_MAP(GM_JSON_ERR_ENUM)
#undef GM_JSON_ERR_ENUM
} gm_json_err_t;

/* lua-cjson's default decode_max_depth: the same texts nest too deep. */
#define GM_JSON_MAX_DEPTH 1000

const char *gm_json_err_message(gm_json_err_t err);

/* A string's body. p points just after the opening quote; the result
 * points just after the closing one. *len is the raw body's length and
 * *escaped tells whether it holds a backslash (then gm_json_unescape gives
 * its value, at most *len bytes); the raw bytes are valid UTF-8 without
 * control characters. */
const char *gm_json_scan_string(const char *p, const char *end, size_t *len,
                                bool *escaped, gm_json_err_t *err,
                                const char **at);

/* Writes the value of a scanned escaped body (len bytes) to out (at least
 * len bytes): its length, or -1 with *err and *at set (a bad escape, a
 * lone surrogate). */
long gm_json_unescape_body(const char *body, size_t len, char *out,
                           gm_json_err_t *err, const char **at);

typedef struct gm_json_number_s {
  bool is_int;   /* no fraction, no exponent, fits int64, not -0 */
  int64_t i;
  double d;      /* when !is_int */
} gm_json_number_t;

/* A number, p at its first byte ('-' or a digit). */
const char *gm_json_scan_number(const char *p, const char *end,
                                gm_json_number_t *out, gm_json_err_t *err,
                                const char **at);

#endif
