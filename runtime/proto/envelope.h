/* The gateway envelope: `op`, `s` and `t` of a payload, without a full parse.
 *
 * The shard must know what a payload is before deciding whether anyone
 * wants it decoded. The scanner walks the top-level object only: it reads
 * the three small keys wherever they are and skips every other value
 * (`d` above all) while tracking strings, escapes and nesting, so a `d`
 * that comes first and contains "op": or "t": cannot fool it (twilight's
 * substring search can be). It does not validate what it skips: an event
 * nobody wants costs a scan, and its JSON is never judged. */
#ifndef GM_ENVELOPE_H
#define GM_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gm_envelope_s {
  int op;          /* -1 when absent or not an integer */
  bool has_s;      /* s was an integer (not null, not absent) */
  int64_t s;
  const char *t;   /* the raw characters of t (no quotes), NULL if null/absent */
  size_t t_len;
  bool t_escaped;  /* t holds a backslash: it names no event we know */
  size_t d_off;    /* the raw `d` value within the payload; d_len 0 when */
  size_t d_len;    /* d is absent */
} gm_envelope_t;

/* 0, or GM_EDECODE when the text is not one object with balanced values
 * (anything but whitespace after it is an error). */
int gm_envelope_scan(const char *json, size_t len, gm_envelope_t *env);

/* Finds key in the JSON object text obj (top level of that object) and
 * returns its raw value span (strings include their quotes). false when
 * absent or obj is not an object. */
bool gm_json_find(const char *obj, size_t len, const char *key,
                  const char **value, size_t *value_len);
/* Decodes a JSON string token (with its quotes) into out (NUL-terminated,
 * capacity cap): escapes and \u sequences, surrogate pairs included.
 * Returns the length, or -1 when malformed or too long. */
long gm_json_unescape(const char *token, size_t len, char *out, size_t cap);
/* Parses a JSON integer token; false for anything else (1.5, 1e3, null). */
bool gm_json_integer(const char *token, size_t len, int64_t *out);

#endif
