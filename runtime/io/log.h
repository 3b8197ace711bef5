/* Logging to stderr (or a sink such as the REPL), with secrets scrubbed.
 *
 * Every line passes through gm_log_write(), which replaces each registered
 * secret (bot tokens) with "<redacted>", so a token that slipped into a
 * message, a URL or a peer's error text still never reaches the output. */
#ifndef GM_LOG_H
#define GM_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "proto/log_level.h" /* the levels: gm_log_level_t */

typedef void (*gm_log_sink_t)(void *ud, gm_log_level_t level,
                              const char *line, size_t len);

/* Lines below this level are dropped; starts from $GLOAMING_LOG or info. */
extern gm_log_level_t gm_log_level;

/* Reads $GLOAMING_LOG (debug, info, warn, error, off); default info. */
void gm_log_init(void);
const char *gm_log_level_name(gm_log_level_t level);
int gm_log_level_parse(const char *name); /* -1 when unknown */

/* context: "shard=0/2" style fields, or NULL. */
void gm_log(gm_log_level_t level, const char *context, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gm_logv(gm_log_level_t level, const char *context, const char *fmt,
             va_list ap);

void gm_log_set_sink(gm_log_sink_t sink, void *ud); /* NULL: stderr */
/* Registers a secret to scrub (copied); counted, so add/remove pair up. */
void gm_log_add_secret(const char *s, size_t len);
void gm_log_remove_secret(const char *s, size_t len);
/* Scrubs secrets from text into out (capacity cap, NUL-terminated);
 * returns the length written. */
size_t gm_log_scrub(const char *text, size_t len, char *out, size_t cap);
/* A cap for gm_log_scrub that never cuts the scrubbed text of len bytes. */
size_t gm_log_scrub_bound(size_t len);

#endif
