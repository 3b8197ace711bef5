/* Logging to stderr (or a sink such as the REPL), with secrets scrubbed.
 *
 * Every line passes through gm_logv(), which replaces each registered
 * secret (bot tokens) with "<redacted>", so a token that slipped into a
 * message, a URL or a peer's error text still never reaches the output,
 * nor the record a hook (the Lua log handler) is given. Lines are text or
 * one JSON object each (gm_log_set_format). Logging happens on the loop's
 * thread only: the levels, the secrets and the hook are not locked (the
 * recorder's writer thread leaves its errors for the loop to log). */
#ifndef GM_LOG_H
#define GM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/log_level.h" /* levels, components, formats */

typedef void (*gm_log_sink_t)(void *ud, gm_log_level_t level,
                              const char *line, size_t len);

/* One log record, scrubbed; valid during the hook's call only. */
typedef struct {
  gm_log_level_t level;
  double time;           /* seconds since the epoch */
  const char *component; /* the context's first word ("shard"), or "" */
  size_t component_len;
  const char *context;   /* "shard=0/2 close_code=4000", or "" */
  const char *message;
  size_t message_len;
} gm_log_record_t;
typedef void (*gm_log_hook_t)(void *ud, const gm_log_record_t *rec);

/* Lines below this level are dropped (unless their component has a level
 * of its own); starts from $GLOAMING_LOG or info. */
extern gm_log_level_t gm_log_level;

/* Reads $GLOAMING_LOG ("warn", "warn,shard=debug"); default info. */
void gm_log_init(void);
const char *gm_log_level_name(gm_log_level_t level);
int gm_log_level_parse(const char *name); /* -1 when unknown */
/* Applies a spec: "debug", "shard=debug", "warn,shard=debug,http=off"
 * ("default" as a level unsets a component's). 0, or -1 with why. Nothing
 * is changed when any part is wrong. */
int gm_log_apply_spec(const char *spec, char *why, size_t why_len);
const char *gm_log_component_name(gm_log_component_t c);
/* A component's own level, or -1 when it follows gm_log_level. */
int gm_log_component_level(gm_log_component_t c);

gm_log_format_t gm_log_format(void);
void gm_log_set_format(gm_log_format_t f);
const char *gm_log_format_name(gm_log_format_t f);
int gm_log_format_parse(const char *name); /* -1 when unknown */

/* context: "shard=0/2" style fields, or a component's name, or NULL. */
void gm_log(gm_log_level_t level, const char *context, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gm_logv(gm_log_level_t level, const char *context, const char *fmt,
             va_list ap);

void gm_log_set_sink(gm_log_sink_t sink, void *ud); /* NULL: stderr */
/* Every record that passes the level goes to hook too (NULL: none). */
void gm_log_set_hook(gm_log_hook_t hook, void *ud);
/* The fields of a context, one per call: returns the position after the
 * field, or NULL at the end; a bare word (the component) has no value. A
 * value with a space is quoted (logfmt: note="a \"b\" c", gloaming.log's
 * with{} writes it so): *value is then the quoted text, quotes included;
 * gm_log_field_unquote gives what it says. */
const char *gm_log_next_field(const char *p, const char **key, size_t *klen,
                              const char **value, size_t *vlen);
/* A field's value as it was given: a quoted one without its quotes and
 * escapes, into out (vlen bytes at least); returns its length. */
size_t gm_log_field_unquote(const char *v, size_t vlen, char *out);
/* Whether a field's value is written as a number: at most 9 digits
 * (close_code=4000); snowflakes stay text. */
bool gm_log_field_is_integer(const char *v, size_t n);
/* A context's component: its first word when bare ("http", "ws"), else
 * the first field whose key is a component's ("shard=0/2"); NULL (*len 0)
 * when none. */
const char *gm_log_component(const char *context, size_t *len);
/* Registers a secret to scrub (copied); counted, so add/remove pair up. */
void gm_log_add_secret(const char *s, size_t len);
void gm_log_remove_secret(const char *s, size_t len);
/* Scrubs secrets from text into out (capacity cap, NUL-terminated);
 * returns the length written. */
size_t gm_log_scrub(const char *text, size_t len, char *out, size_t cap);
/* A cap for gm_log_scrub that never cuts the scrubbed text of len bytes. */
size_t gm_log_scrub_bound(size_t len);

#endif
