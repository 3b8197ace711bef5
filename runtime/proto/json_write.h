/* Writing small JSON payloads into a caller's fixed buffer: the shard's
 * Identify, Resume and Heartbeat (the payloads gloaming itself frames).
 * Nothing is allocated (they carry the token: the caller wipes the
 * buffer); a payload that does not fit sets `full` and is not sent. */
#ifndef GM_JSON_WRITE_H
#define GM_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gm_jw_s {
  char *out;
  size_t cap, len;
  bool full; /* something did not fit: the text is cut */
} gm_jw_t;

void gm_jw_init(gm_jw_t *w, char *out, size_t cap);
/* Bytes as they are (punctuation, keys, a JSON value built elsewhere). */
void gm_jw_raw(gm_jw_t *w, const char *s, size_t len);
static inline void gm_jw_lit(gm_jw_t *w, const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  gm_jw_raw(w, s, n);
}
/* A JSON string: quotes, and its content as gm_json_escape writes it. */
void gm_jw_string(gm_jw_t *w, const char *s, size_t len);

/* The one JSON string escaper (the writer's strings, log lines, recording
 * lines): s as a string's content, without quotes, into out: \" \\ \b \f
 * \n \r \t, other control bytes and DEL as \u00XX, valid UTF-8 as it is,
 * and each byte that starts no valid character as \ufffd (a JSON text is
 * UTF-8, RFC 8259 8.1). At most 6 bytes out per byte in. Stops before a
 * byte (or a character) that would not fit in cap, so a cut never splits
 * a character; *used (when not NULL) says how much of s was written.
 * Returns the bytes written. */
size_t gm_json_escape(char *out, size_t cap, const char *s, size_t len,
                      size_t *used);
void gm_jw_int(gm_jw_t *w, int64_t v);
/* The text written, NUL-terminated; its length, 0 when it did not fit. */
size_t gm_jw_finish(gm_jw_t *w);

#endif
