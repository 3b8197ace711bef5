#include "io/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "proto/alloc.h"

#define LINE_MAX_BYTES 8192
#define REDACTED "<redacted>"

static const char *level_names[] = {
#define GM_LOG_NAME(name, label) label,
    GM_LOG_LEVEL_MAP(GM_LOG_NAME)
#undef GM_LOG_NAME
};

static gm_log_level_t level_from_env(void) {
  const char *v = getenv("GLOAMING_LOG");
  int l = v ? gm_log_level_parse(v) : -1;
  return l < 0 ? GM_LOG_INFO : (gm_log_level_t)l;
}

gm_log_level_t gm_log_level = GM_LOG_INFO;
static int level_loaded;

void gm_log_init(void) {
  if (!level_loaded) {
    gm_log_level = level_from_env();
    level_loaded = 1;
  }
}

static gm_log_sink_t sink;
static void *sink_ud;

typedef struct {
  char *text;
  size_t len;
  int refs;
} secret_t;
static secret_t *secrets;
static size_t n_secrets;
static size_t longest; /* the longest secret registered so far */

const char *gm_log_level_name(gm_log_level_t level) {
  return (unsigned)level <= GM_LOG_OFF ? level_names[level] : "?";
}

int gm_log_level_parse(const char *name) {
  for (int i = 0; i <= GM_LOG_OFF; i++)
    if (strcasecmp(name, level_names[i]) == 0) return i;
  return -1;
}

void gm_log_set_sink(gm_log_sink_t s, void *ud) {
  sink = s;
  sink_ud = ud;
}

void gm_log_add_secret(const char *s, size_t len) {
  if (len < 4) return; /* scrubbing "a" would wreck every line */
  for (size_t i = 0; i < n_secrets; i++)
    if (secrets[i].len == len && memcmp(secrets[i].text, s, len) == 0) {
      secrets[i].refs++;
      return;
    }
  secret_t *grown = gm_realloc(secrets, n_secrets * sizeof *secrets,
                               (n_secrets + 1) * sizeof *secrets);
  if (grown == NULL) return;
  secrets = grown;
  secrets[n_secrets].text = gm_strndup(s, len);
  if (secrets[n_secrets].text == NULL) return;
  secrets[n_secrets].len = len;
  secrets[n_secrets].refs = 1;
  if (len > longest) longest = len;
  n_secrets++;
}

void gm_log_remove_secret(const char *s, size_t len) {
  for (size_t i = 0; i < n_secrets; i++)
    if (secrets[i].len == len && memcmp(secrets[i].text, s, len) == 0) {
      if (--secrets[i].refs > 0) return;
      gm_free(secrets[i].text, len + 1);
      secrets[i] = secrets[--n_secrets];
      return;
    }
}

size_t gm_log_scrub(const char *text, size_t len, char *out, size_t cap) {
  size_t o = 0;
  if (cap == 0) return 0;
  for (size_t i = 0; i < len && o + 1 < cap;) {
    size_t hit = 0;
    for (size_t k = 0; k < n_secrets; k++) {
      const secret_t *s = &secrets[k];
      if (s->len <= len - i && memcmp(text + i, s->text, s->len) == 0) {
        hit = s->len;
        break;
      }
    }
    if (hit) {
      size_t n = sizeof REDACTED - 1;
      if (n > cap - 1 - o) n = cap - 1 - o;
      memcpy(out + o, REDACTED, n);
      o += n;
      i += hit;
    } else {
      out[o++] = text[i++];
    }
  }
  out[o] = '\0';
  return o;
}

size_t gm_log_scrub_bound(size_t len) {
  /* each secret (4 bytes at least) may grow into REDACTED */
  return len + len / 4 * (sizeof REDACTED - 1) + 1;
}

static void emit(gm_log_level_t level, char *line, size_t len) {
  line[len++] = '\n';
  line[len] = '\0';
  if (sink) {
    sink(sink_ud, level, line, len);
  } else {
    fwrite(line, 1, len, stderr);
    fflush(stderr);
  }
}

void gm_logv(gm_log_level_t level, const char *context, const char *fmt,
             va_list ap) {
  gm_log_init();
  if (level < gm_log_level || level >= GM_LOG_OFF) return;
  /* Scrubbed, then cut to LINE_MAX_BYTES: cut first, a secret straddling
   * the cut would print minus its tail. Every secret that starts before
   * the cut ends within `longest` bytes of it: the text past that window
   * cannot change the line, so it is not even formatted. */
  size_t window = LINE_MAX_BYTES + longest;
  char *raw = gm_malloc(window + 1);
  size_t cap = gm_log_scrub_bound(window);
  char *line = raw ? gm_malloc(cap + 1) : NULL;
  if (line == NULL) {
    char oom[64] = "log line dropped: out of memory";
    emit(level, oom, strlen(oom));
    if (raw) gm_free(raw, window + 1);
    return;
  }
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  int n = snprintf(raw, window + 1, "%02d:%02d:%02d.%03d %-5s ", tm.tm_hour,
                   tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                   gm_log_level_name(level));
  if (context && *context && n < (int)window)
    n += snprintf(raw + n, window + 1 - (size_t)n, "[%s] ", context);
  if (n < (int)window)
    n += vsnprintf(raw + n, window + 1 - (size_t)n, fmt, ap);
  size_t rlen = n < 0 ? 0 : (size_t)n > window ? window : (size_t)n;
  size_t len = gm_log_scrub(raw, rlen, line, cap);
  gm_free(raw, window + 1);
  if (len > LINE_MAX_BYTES - 2) len = LINE_MAX_BYTES - 2;
  emit(level, line, len);
  gm_free(line, cap + 1);
}

void gm_log(gm_log_level_t level, const char *context, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gm_logv(level, context, fmt, ap);
  va_end(ap);
}
