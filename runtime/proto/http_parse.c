#include "http_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "errors.h"

static gm_http_parser_t *of(llhttp_t *h) { return h->data; }

static int fail(gm_http_parser_t *p, int err, const char *why) {
  p->error = err;
  p->why = why;
  return -1;
}

static char *take(gm_buf_t *b) {
  char *s = gm_strndup((const char *)b->data, b->len);
  gm_buf_clear(b);
  return s;
}

static int count_header_bytes(gm_http_parser_t *p, size_t n) {
  p->header_bytes += n;
  if (p->header_bytes > p->max_header_bytes) {
    snprintf(p->why_buf, sizeof p->why_buf,
             "HTTP headers larger than the limit of %zu bytes",
             p->max_header_bytes);
    return fail(p, GM_EMSGSIZE, p->why_buf);
  }
  return 0;
}

static int on_url(llhttp_t *h, const char *at, size_t n) {
  gm_http_parser_t *p = of(h);
  if (count_header_bytes(p, n)) return -1;
  return gm_buf_append(&p->field, at, n) ? fail(p, GM_ENOMEM, "out of memory") : 0;
}

static int on_url_complete(llhttp_t *h) {
  gm_http_parser_t *p = of(h);
  p->msg.target = take(&p->field);
  return p->msg.target ? 0 : fail(p, GM_ENOMEM, "out of memory");
}

static int on_method_complete(llhttp_t *h) {
  gm_http_parser_t *p = of(h);
  const char *m = llhttp_method_name((llhttp_method_t)h->method);
  p->msg.method = gm_strndup(m, strlen(m));
  return p->msg.method ? 0 : fail(p, GM_ENOMEM, "out of memory");
}

static int on_header_field(llhttp_t *h, const char *at, size_t n) {
  gm_http_parser_t *p = of(h);
  if (count_header_bytes(p, n)) return -1;
  return gm_buf_append(&p->field, at, n) ? fail(p, GM_ENOMEM, "out of memory") : 0;
}

static int on_header_value(llhttp_t *h, const char *at, size_t n) {
  gm_http_parser_t *p = of(h);
  if (count_header_bytes(p, n)) return -1;
  return gm_buf_append(&p->value, at, n) ? fail(p, GM_ENOMEM, "out of memory") : 0;
}

static int on_header_value_complete(llhttp_t *h) {
  gm_http_parser_t *p = of(h);
  gm_http_message_t *m = &p->msg;
  if (m->n_headers == GM_HTTP_MAX_HEADERS)
    return fail(p, GM_EMSGSIZE, "too many HTTP headers");
  if (m->n_headers == m->cap_headers) {
    /* a parser lives a moment per connection: keep it small until used */
    int cap = m->cap_headers ? m->cap_headers * 2 : 8;
    gm_http_header_t *grown = gm_realloc(
        m->headers, (size_t)m->cap_headers * sizeof *grown, (size_t)cap * sizeof *grown);
    if (grown == NULL) return fail(p, GM_ENOMEM, "out of memory");
    m->headers = grown;
    m->cap_headers = cap;
  }
  gm_http_header_t *hd = &m->headers[m->n_headers];
  hd->name = take(&p->field);
  hd->value = take(&p->value);
  if (hd->name == NULL || hd->value == NULL) {
    if (hd->name) gm_free(hd->name, strlen(hd->name) + 1);
    if (hd->value) gm_free(hd->value, strlen(hd->value) + 1);
    return fail(p, GM_ENOMEM, "out of memory");
  }
  for (char *c = hd->name; *c; c++) *c = (char)tolower((unsigned char)*c);
  m->n_headers++;
  return 0;
}

static int on_headers_complete(llhttp_t *h) {
  gm_http_parser_t *p = of(h);
  p->msg.status = h->status_code;
  p->msg.keep_alive = llhttp_should_keep_alive(h);
  p->msg.upgrade = h->upgrade;
  /* A 101 has no body; telling llhttp so stops it from waiting for one. */
  return p->msg.status == 101 ? 1 : 0;
}

static int on_body(llhttp_t *h, const char *at, size_t n) {
  gm_http_parser_t *p = of(h);
  if (p->msg.body.len + n > p->max_body) {
    snprintf(p->why_buf, sizeof p->why_buf,
             "HTTP body larger than the limit of %zu bytes", p->max_body);
    return fail(p, GM_EMSGSIZE, p->why_buf);
  }
  return gm_buf_append(&p->msg.body, at, n) ? fail(p, GM_ENOMEM, "out of memory") : 0;
}

static int on_message_complete(llhttp_t *h) {
  gm_http_parser_t *p = of(h);
  p->complete = true;
  p->msg.keep_alive = llhttp_should_keep_alive(h);
  /* One message per feed: pause here (llhttp pauses by itself after an
   * upgrade, and the caller resumes either way). */
  return h->upgrade ? 0 : HPE_PAUSED;
}

void gm_http_parser_init(gm_http_parser_t *p, gm_http_kind_t kind,
                         size_t max_header_bytes, size_t max_body) {
  memset(p, 0, sizeof *p);
  llhttp_settings_init(&p->settings);
  p->settings.on_url = on_url;
  p->settings.on_url_complete = on_url_complete;
  p->settings.on_method_complete = on_method_complete;
  p->settings.on_header_field = on_header_field;
  p->settings.on_header_value = on_header_value;
  p->settings.on_header_value_complete = on_header_value_complete;
  p->settings.on_headers_complete = on_headers_complete;
  p->settings.on_body = on_body;
  p->settings.on_message_complete = on_message_complete;
  llhttp_init(&p->parser, kind == GM_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE,
              &p->settings);
  p->parser.data = p;
  p->max_header_bytes = max_header_bytes;
  p->max_body = max_body;
}

static void free_message(gm_http_message_t *m) {
  for (int i = 0; i < m->n_headers; i++) {
    gm_free(m->headers[i].name, strlen(m->headers[i].name) + 1);
    gm_free(m->headers[i].value, strlen(m->headers[i].value) + 1);
  }
  gm_free(m->headers, (size_t)m->cap_headers * sizeof *m->headers);
  if (m->method) gm_free(m->method, strlen(m->method) + 1);
  if (m->target) gm_free(m->target, strlen(m->target) + 1);
  gm_buf_free(&m->body);
  memset(m, 0, sizeof *m);
}

void gm_http_parser_free(gm_http_parser_t *p) {
  free_message(&p->msg);
  gm_buf_free(&p->field);
  gm_buf_free(&p->value);
}

void gm_http_parser_reset(gm_http_parser_t *p) {
  free_message(&p->msg);
  gm_buf_clear(&p->field);
  gm_buf_clear(&p->value);
  p->header_bytes = 0;
  p->complete = false;
  if (llhttp_get_errno(&p->parser) == HPE_PAUSED)
    llhttp_resume(&p->parser);
  else if (llhttp_get_errno(&p->parser) == HPE_PAUSED_UPGRADE)
    llhttp_resume_after_upgrade(&p->parser);
}

int gm_http_parser_feed(gm_http_parser_t *p, const char *data, size_t len,
                        size_t *used) {
  *used = 0;
  if (p->error) return p->error;
  if (p->complete) return 1;
  llhttp_errno_t e = llhttp_execute(&p->parser, data, len);
  if (p->error) return p->error;
  switch (e) {
  case HPE_OK:
    *used = len;
    return p->complete ? 1 : 0;
  case HPE_PAUSED:
  case HPE_PAUSED_UPGRADE:
    *used = (size_t)(llhttp_get_error_pos(&p->parser) - data);
    p->complete = true;
    return 1;
  default:
    p->error = GM_EHTTP;
    p->why = llhttp_get_error_reason(&p->parser);
    if (p->why == NULL) p->why = llhttp_errno_name(e);
    return p->error;
  }
}

int gm_http_parser_finish(gm_http_parser_t *p) {
  if (p->error) return p->error;
  if (p->complete) return 1;
  llhttp_errno_t e = llhttp_finish(&p->parser);
  if (p->error) return p->error;
  if (e != HPE_OK && e != HPE_PAUSED) {
    p->error = GM_EHTTP;
    p->why = "connection closed in the middle of an HTTP message";
    return p->error;
  }
  return p->complete ? 1 : 0;
}

const char *gm_http_parser_error(const gm_http_parser_t *p) {
  return p->why ? p->why : "no error";
}

const char *gm_http_header(const gm_http_message_t *m, const char *name) {
  for (int i = 0; i < m->n_headers; i++)
    if (strcasecmp(m->headers[i].name, name) == 0) return m->headers[i].value;
  return NULL;
}

bool gm_http_header_has_token(const gm_http_message_t *m, const char *name,
                              const char *token) {
  size_t tl = strlen(token);
  for (int i = 0; i < m->n_headers; i++) {
    if (strcasecmp(m->headers[i].name, name) != 0) continue;
    const char *v = m->headers[i].value;
    while (*v) {
      while (*v == ' ' || *v == '\t' || *v == ',') v++;
      const char *e = v;
      while (*e && *e != ',') e++;
      const char *te = e;
      while (te > v && (te[-1] == ' ' || te[-1] == '\t')) te--;
      if ((size_t)(te - v) == tl && strncasecmp(v, token, tl) == 0) return true;
      v = e;
    }
  }
  return false;
}
