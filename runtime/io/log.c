#include "io/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "proto/alloc.h"
#include "proto/json_write.h"

#define LINE_MAX_BYTES 8192
#define REDACTED "<redacted>"

static const char *level_names[] = {
#define GM_LOG_NAME(name, label) label,
    GM_LOG_LEVEL_MAP(GM_LOG_NAME)
#undef GM_LOG_NAME
};

static const char *component_names[] = {
#define GM_LOG_COMPONENT_NAME(name, label) label,
    GM_LOG_COMPONENT_MAP(GM_LOG_COMPONENT_NAME)
#undef GM_LOG_COMPONENT_NAME
};

static const char *format_names[] = {
#define GM_LOG_FORMAT_NAME(name, label) label,
    GM_LOG_FORMAT_MAP(GM_LOG_FORMAT_NAME)
#undef GM_LOG_FORMAT_NAME
};

gm_log_level_t gm_log_level = GM_LOG_INFO;
static int level_loaded;
/* -1: the component follows gm_log_level */
static int component_level[GM_LOG_COMPONENT_COUNT] = {
#define GM_LOG_COMPONENT_UNSET(name, label) -1,
    GM_LOG_COMPONENT_MAP(GM_LOG_COMPONENT_UNSET)
#undef GM_LOG_COMPONENT_UNSET
};
static gm_log_format_t format = GM_LOG_FORMAT_TEXT;

void gm_log_init(void) {
  if (level_loaded) return;
  level_loaded = 1;
  const char *v = getenv("GLOAMING_LOG");
  char why[160];
  if (v && *v && gm_log_apply_spec(v, why, sizeof why) != 0)
    gm_log(GM_LOG_WARN, NULL, "GLOAMING_LOG ignored: %s", why);
}

static int component_of(const char *name, size_t len) {
  for (int i = 0; i < GM_LOG_COMPONENT_COUNT; i++)
    if (strlen(component_names[i]) == len &&
        strncasecmp(name, component_names[i], len) == 0)
      return i;
  return -1;
}

const char *gm_log_component_name(gm_log_component_t c) {
  return (unsigned)c < GM_LOG_COMPONENT_COUNT ? component_names[c] : "?";
}

int gm_log_component_level(gm_log_component_t c) {
  return (unsigned)c < GM_LOG_COMPONENT_COUNT ? component_level[c] : -1;
}

static int level_of(const char *name, size_t len) {
  for (int i = 0; i <= GM_LOG_OFF; i++)
    if (strlen(level_names[i]) == len && strncasecmp(name, level_names[i], len) == 0)
      return i;
  return -1;
}

int gm_log_apply_spec(const char *spec, char *why, size_t why_len) {
  int global = -2; /* -2: unchanged */
  int levels[GM_LOG_COMPONENT_COUNT];
  memcpy(levels, component_level, sizeof levels);
  for (const char *p = spec; *p;) {
    size_t n = strcspn(p, ",");
    const char *eq = memchr(p, '=', n);
    while (n > 0 && p[0] == ' ') p++, n--;
    if (eq == NULL) {
      global = level_of(p, n);
      if (global < 0) {
        snprintf(why, why_len, "unknown level '%.*s' (debug, info, warn, error or off)",
                 (int)n, p);
        return -1;
      }
    } else {
      int c = component_of(p, (size_t)(eq - p));
      if (c < 0) {
#define GM_LOG_COMPONENT_LIST(name, label) ", " label
        static const char names[] = "" GM_LOG_COMPONENT_MAP(GM_LOG_COMPONENT_LIST);
#undef GM_LOG_COMPONENT_LIST
        snprintf(why, why_len, "unknown component '%.*s' (%s)", (int)(eq - p), p, names + 2);
        return -1;
      }
      size_t vn = n - (size_t)(eq + 1 - p);
      int l = vn == 7 && strncasecmp(eq + 1, "default", 7) == 0 ? -1 : level_of(eq + 1, vn);
      if (l < 0 && !(vn == 7 && strncasecmp(eq + 1, "default", 7) == 0)) {
        snprintf(why, why_len, "unknown level '%.*s' for %.*s", (int)vn, eq + 1,
                 (int)(eq - p), p);
        return -1;
      }
      levels[c] = l;
    }
    p += n;
    if (*p == ',') p++;
  }
  if (global >= 0) gm_log_level = (gm_log_level_t)global;
  memcpy(component_level, levels, sizeof levels);
  return 0;
}

gm_log_format_t gm_log_format(void) { return format; }
void gm_log_set_format(gm_log_format_t f) {
  if ((unsigned)f < GM_LOG_FORMAT_COUNT) format = f;
}
const char *gm_log_format_name(gm_log_format_t f) {
  return (unsigned)f < GM_LOG_FORMAT_COUNT ? format_names[f] : "?";
}
int gm_log_format_parse(const char *name) {
  for (int i = 0; i < GM_LOG_FORMAT_COUNT; i++)
    if (strcasecmp(name, format_names[i]) == 0) return i;
  return -1;
}

static gm_log_hook_t hook;
static void *hook_ud;

void gm_log_set_hook(gm_log_hook_t h, void *ud) {
  hook = h;
  hook_ud = ud;
}

const char *gm_log_component(const char *context, size_t *len) {
  const char *k, *v;
  size_t kl, vl;
  bool first = true;
  for (const char *p = context; (p = gm_log_next_field(p, &k, &kl, &v, &vl));) {
    if ((first && v == NULL) || (v && component_of(k, kl) >= 0)) {
      *len = kl;
      return k;
    }
    first = false;
  }
  *len = 0;
  return NULL;
}

const char *gm_log_next_field(const char *p, const char **key, size_t *klen,
                              const char **value, size_t *vlen) {
  while (p && *p == ' ') p++;
  if (p == NULL || *p == '\0') return NULL;
  size_t n = strcspn(p, " =");
  if (p[n] == '=' && p[n + 1] == '"') { /* key="quoted value" */
    size_t i = n + 2;
    while (p[i] && p[i] != '"') i += p[i] == '\\' && p[i + 1] ? 2 : 1;
    n = p[i] ? i + 1 : i;
  } else {
    n = strcspn(p, " ");
  }
  const char *eq = memchr(p, '=', n);
  *key = p;
  *klen = eq ? (size_t)(eq - p) : n;
  *value = eq ? eq + 1 : NULL;
  *vlen = eq ? n - *klen - 1 : 0;
  return p + n;
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

/* Appends text as a JSON string's content (gm_json_escape: valid UTF-8
 * whatever the text, never a character split at the cap); returns the new
 * length, which leaves CLOSERS bytes of cap for what closes the line. */
#define CLOSERS 8
static size_t json_escape(char *out, size_t o, size_t cap, const char *text,
                          size_t len) {
  if (o + CLOSERS >= cap) return o;
  return o + gm_json_escape(out + o, cap - o - CLOSERS, text, len, NULL);
}

size_t gm_log_field_unquote(const char *v, size_t vlen, char *out) {
  if (vlen < 2 || v[0] != '"' || v[vlen - 1] != '"') {
    memcpy(out, v, vlen);
    return vlen;
  }
  size_t o = 0;
  for (size_t i = 1; i + 1 < vlen; i++) {
    if (v[i] == '\\' && i + 2 < vlen) i++;
    out[o++] = v[i];
  }
  return o;
}

/* A field of at most 9 digits is a number (close_code=4000); longer ones
 * (snowflakes) stay text. */
bool gm_log_field_is_integer(const char *v, size_t n) {
  size_t i = n > 0 && v[0] == '-' ? 1 : 0;
  if (i == n || n - i > 9) return false;
  for (; i < n; i++)
    if (v[i] < '0' || v[i] > '9') return false;
  return true;
}

/* One JSON object: time, level, component, message, then each field. */
static size_t format_json(char *out, size_t cap, const gm_log_record_t *r,
                          const struct tm *tm, int ms) {
  size_t o = (size_t)snprintf(out, cap,
                              "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
                              "\"level\":\"%s\",",
                              tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
                              tm->tm_hour, tm->tm_min, tm->tm_sec, ms,
                              gm_log_level_name(r->level));
  if (r->component_len) {
    o += (size_t)snprintf(out + o, cap - o, "\"component\":\"");
    o = json_escape(out, o, cap, r->component, r->component_len);
    out[o++] = '"';
    out[o++] = ',';
  }
  if (o + 16 < cap) o += (size_t)snprintf(out + o, cap - o, "\"message\":\"");
  o = json_escape(out, o, cap, r->message, r->message_len);
  if (o + 2 < cap) out[o++] = '"';
  const char *k, *v;
  size_t kl, vl;
  for (const char *p = r->context; (p = gm_log_next_field(p, &k, &kl, &v, &vl));) {
    if (v == NULL || o + kl + 8 >= cap) continue; /* the component: said above */
    out[o++] = ',';
    out[o++] = '"';
    o = json_escape(out, o, cap, k, kl);
    if (o + 3 >= cap) break;
    out[o++] = '"';
    out[o++] = ':';
    if (gm_log_field_is_integer(v, vl) && o + vl < cap) {
      memcpy(out + o, v, vl);
      o += vl;
    } else {
      out[o++] = '"';
      char *plain = vl && v[0] == '"' ? gm_malloc(vl) : NULL;
      if (plain) {
        o = json_escape(out, o, cap, plain, gm_log_field_unquote(v, vl, plain));
        gm_free(plain, vl);
      } else {
        o = json_escape(out, o, cap, v, vl);
      }
      if (o + 2 >= cap) break;
      out[o++] = '"';
    }
  }
  if (o + 2 < cap) out[o++] = '}';
  return o;
}

void gm_logv(gm_log_level_t level, const char *context, const char *fmt,
             va_list ap) {
  gm_log_init();
  if (level >= GM_LOG_OFF) return;
  /* below every level in force: no need to find the component */
  int lowest = (int)gm_log_level;
  for (int c = 0; c < GM_LOG_COMPONENT_COUNT; c++)
    if (component_level[c] >= 0 && component_level[c] < lowest) lowest = component_level[c];
  if ((int)level < lowest) return;
  if (context == NULL) context = "";
  size_t clen;
  const char *ctext = gm_log_component(context, &clen);
  int comp = ctext ? component_of(ctext, clen) : -1;
  int threshold = comp >= 0 && component_level[comp] >= 0 ? component_level[comp]
                                                          : (int)gm_log_level;
  if ((int)level < threshold) return;
  if (format == GM_LOG_FORMAT_NONE && hook == NULL) return;
  /* Scrubbed, then cut to LINE_MAX_BYTES: cut first, a secret straddling
   * the cut would print minus its tail. Every secret that starts before
   * the cut ends within `longest` bytes of it: the text past that window
   * cannot change the line, so it is not even formatted. */
  size_t window = LINE_MAX_BYTES + longest;
  char *raw = gm_malloc(window + 1);
  size_t cap = gm_log_scrub_bound(window);
  size_t ctx_len = strlen(context);
  size_t ctx_cap = gm_log_scrub_bound(ctx_len);
  char *msg = raw ? gm_malloc(cap + 1) : NULL;
  char *ctx = msg ? gm_malloc(ctx_cap + 1) : NULL;
  /* a JSON line escapes at most 6 bytes per byte, cut at LINE_MAX_BYTES */
  size_t line_cap = LINE_MAX_BYTES + 2;
  char *line = ctx ? gm_malloc(line_cap) : NULL;
  if (line == NULL) {
    char oom[64] = "log line dropped: out of memory";
    emit(level, oom, strlen(oom));
    gm_free(raw, window + 1);
    if (msg) gm_free(msg, cap + 1);
    if (ctx) gm_free(ctx, ctx_cap + 1);
    return;
  }
  int n = vsnprintf(raw, window + 1, fmt, ap);
  size_t rlen = n < 0 ? 0 : (size_t)n > window ? window : (size_t)n;
  size_t mlen = gm_log_scrub(raw, rlen, msg, cap);
  if (mlen > LINE_MAX_BYTES - 2) mlen = LINE_MAX_BYTES - 2;
  msg[mlen] = '\0';
  gm_log_scrub(context, ctx_len, ctx, ctx_cap);
  gm_free(raw, window + 1);

  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  gm_log_record_t rec = {
      .level = level,
      .time = (double)tv.tv_sec + (double)tv.tv_usec / 1e6,
      .component = "",
      .component_len = 0,
      .context = ctx,
      .message = msg,
      .message_len = mlen,
  };
  const char *comp_text = gm_log_component(ctx, &rec.component_len);
  if (comp_text) rec.component = comp_text;
  if (format != GM_LOG_FORMAT_NONE) {
    size_t len;
    if (format == GM_LOG_FORMAT_JSON) {
      len = format_json(line, line_cap - 2, &rec, &tm, (int)(tv.tv_usec / 1000));
    } else {
      int h = snprintf(line, line_cap - 2, "%02d:%02d:%02d.%03d %-5s ", tm.tm_hour,
                       tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                       gm_log_level_name(level));
      if (*ctx && h < (int)line_cap - 2)
        h += snprintf(line + h, line_cap - 2 - (size_t)h, "[%s] ", ctx);
      if (h < (int)line_cap - 2)
        h += snprintf(line + h, line_cap - 2 - (size_t)h, "%s", msg);
      len = h < 0 ? 0 : (size_t)h > line_cap - 3 ? line_cap - 3 : (size_t)h;
    }
    if (len > LINE_MAX_BYTES - 2) len = LINE_MAX_BYTES - 2;
    emit(level, line, len);
  }
  gm_free(line, line_cap);
  if (hook) hook(hook_ud, &rec);
  gm_free(msg, cap + 1);
  gm_free(ctx, ctx_cap + 1);
}

void gm_log(gm_log_level_t level, const char *context, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gm_logv(level, context, fmt, ap);
  va_end(ap);
}
