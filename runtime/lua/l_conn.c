/* Connections for tasks: gloaming.ws clients, and the server side that the
 * fake gateway drives (requests, responses, upgrades, fault injection). */
#include "lua/l_conn.h"
#include "lua/l_object.h"

#include <stdio.h>
#include <string.h>

#include "io/log.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/byte_queue.h"
#include "proto/defaults.h"
#include "proto/errors.h"
#include "proto/ws_handshake.h"

#define ITEM_HTTP 0x100

typedef struct item_s {
  gm_bqueue_item_t q; /* counts len */
  int kind; /* TEXT, BINARY, CLOSE (with code), ITEM_HTTP, or -err */
  int code;
  uint64_t at; /* when it was read off the socket (the loop's clock, ns) */
  size_t len;
  char data[];
} item_t;

struct lconn_s {
  gm_rt_t *rt;
  gm_conn_t *conn;
  gm_closable_t closable;
  gm_waiter_t connector, receiver, sender, closer;
  uint64_t send_target;
  /* received, not yet taken; over its limit reading stops (the whole
   * story: proto/byte_queue.h) */
  gm_bqueue_t queue;
  bool server;
  bool open;        /* connected and not ended */
  bool user_closed; /* close() was called */
  bool ended;       /* the connection is over; the queue may still hold items */
  bool received;        /* receive() returned an item */
  uint64_t received_at; /* when that item was read */
};

static lconn_t *check_conn(lua_State *L, int i) {
  return luaL_checkudata(L, i, GM_CONN_MT);
}

/* {=============== received items =============== */

/* An HTTP request, packed: method \0 target \0 (name \0 value \0)* \0 body */
static item_t *pack_http(const gm_http_message_t *m) {
  size_t n = 0;
  const char *method = m->method ? m->method : "";
  const char *target = m->target ? m->target : "";
  n += strlen(method) + 1 + strlen(target) + 1 + 1 + m->body.len;
  for (int i = 0; i < m->n_headers; i++)
    n += strlen(m->headers[i].name) + 1 + strlen(m->headers[i].value) + 1;
  item_t *it = gm_malloc(sizeof *it + n);
  if (it == NULL) return NULL;
  it->kind = ITEM_HTTP;
  it->code = m->status;
  it->len = n;
  char *p = it->data;
#define PUT(s)                      \
  do {                              \
    size_t l_ = strlen(s) + 1;      \
    memcpy(p, s, l_);               \
    p += l_;                        \
  } while (0)
  PUT(method);
  PUT(target);
  for (int i = 0; i < m->n_headers; i++) {
    PUT(m->headers[i].name);
    PUT(m->headers[i].value);
  }
#undef PUT
  *p++ = '\0';
  if (m->body.len) memcpy(p, m->body.data, m->body.len);
  return it;
}

static void push_http(lua_State *L, const item_t *it) {
  const char *p = it->data, *end = it->data + it->len;
  lua_createtable(L, 0, 6);
  lua_pushstring(L, p);
  lua_setfield(L, -2, "method");
  p += strlen(p) + 1;
  lua_pushstring(L, p);
  lua_setfield(L, -2, "target");
  const char *q = strchr(p, '?');
  if (q) {
    lua_pushlstring(L, p, (size_t)(q - p));
    lua_setfield(L, -2, "path");
    lua_pushstring(L, q + 1);
  } else {
    lua_pushstring(L, p);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
  }
  lua_setfield(L, -2, "query");
  p += strlen(p) + 1;
  lua_newtable(L);
  while (*p) {
    const char *name = p;
    p += strlen(p) + 1;
    lua_pushstring(L, p);
    lua_setfield(L, -2, name);
    p += strlen(p) + 1;
  }
  p++;
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, p, (size_t)(end - p));
  lua_setfield(L, -2, "body");
  if (it->code) {
    lua_pushinteger(L, it->code);
    lua_setfield(L, -2, "status");
  }
}

/* Pushes what receive() returns for an item; returns the count. */
static int push_item(lua_State *L, const item_t *it) {
  lua_checkstack(L, 3);
  switch (it->kind) {
  case GM_WS_OP_TEXT:
  case GM_WS_OP_BINARY:
    lua_pushlstring(L, it->data, it->len);
    lua_pushstring(L, it->kind == GM_WS_OP_BINARY ? "binary" : "text");
    return 2;
  case GM_WS_OP_CLOSE:
    lua_pushlstring(L, it->data, it->len);
    lua_pushliteral(L, "close");
    lua_pushinteger(L, it->code);
    return 3;
  case ITEM_HTTP:
    push_http(L, it);
    lua_pushliteral(L, "http");
    return 2;
  default:
    luaL_pushfail(L);
    lua_pushlstring(L, it->data, it->len);
    lua_pushstring(L, gm_err_name(-it->kind));
    return 3;
  }
}

static void item_free(item_t *it) { gm_free(it, sizeof *it + it->len); }

static void add_item(lconn_t *w, item_t *it) {
  if (w->user_closed) { /* nobody may receive it: reading goes on */
    item_free(it);
    return;
  }
  gm_task_t *t = gm_waiter_take(&w->receiver);
  if (t) { /* a waiting receiver takes it straight away */
    w->received = true;
    w->received_at = it->at;
    gm_task_wake(t, push_item(t->co, it));
    item_free(it);
    return;
  }
  if (gm_bqueue_push(&w->queue, &it->q, it->len) && w->conn)
    gm_conn_pause(w->conn);
}

/* The oldest item, out of the queue (NULL when empty); a queue drained
 * to half its limit lets the connection read again. */
static item_t *take_item(lconn_t *w) {
  bool resume = false;
  gm_bqueue_item_t *qi = gm_bqueue_pop(&w->queue, &resume);
  if (resume && w->conn) gm_conn_resume(w->conn);
  return qi ? gm_bqueue_entry(qi, item_t, q) : NULL;
}

static void add_bytes(lconn_t *w, int kind, int code, const void *data,
                      size_t len) {
  item_t *it = gm_malloc(sizeof *it + len);
  if (it == NULL) {
    gm_log(GM_LOG_ERROR, "ws", "out of memory: a message was lost");
    return;
  }
  it->kind = kind;
  it->code = code;
  /* read now, whenever a task gets to it: a peer that judges timing (the
   * fake's identify window) must not count its own scheduling delay */
  it->at = w->conn ? gm_loop_now(w->conn->loop) : 0;
  it->len = len;
  if (len) memcpy(it->data, data, len);
  add_item(w, it);
}

/* Drops what nobody will take. A connection paused for them reads again:
 * a close() waits for the peer's answer behind them. */
static void free_queue(lconn_t *w) {
  item_t *it;
  while ((it = take_item(w)) != NULL) item_free(it);
}

/* }=============== */

/* {=============== connection callbacks =============== */

static void release_conn(lconn_t *w) {
  if (w->conn) {
    gm_conn_release(w->conn);
    w->conn = NULL;
  }
  gm_closable_remove(&w->closable);
}

static void c_on_open(gm_conn_t *c, int err, const char *why) {
  lconn_t *w = c->data;
  gm_task_t *t = gm_waiter_take(&w->connector);
  if (err) {
    w->ended = true;
    release_conn(w);
    if (t) gm_task_fail(t, err, why);
    return;
  }
  w->open = true;
  /* The userdata sits on top of the connector's stack, where l_connect
   * left it: waking with one value returns it. */
  if (t) gm_task_wake(t, 1);
}

static void c_on_http(gm_conn_t *c, gm_http_message_t *m) {
  lconn_t *w = c->data;
  item_t *it = pack_http(m);
  if (it) {
    it->at = gm_loop_now(c->loop);
    add_item(w, it);
  }
  else
    gm_log(GM_LOG_ERROR, "ws", "out of memory: a request was lost");
}

static void c_on_message(gm_conn_t *c, int opcode, uint8_t *data, size_t len) {
  add_bytes(c->data, opcode, 0, data, len);
}

static void c_on_close(gm_conn_t *c, const gm_conn_close_t *info) {
  lconn_t *w = c->data;
  w->open = false;
  w->ended = true;
  if (info->err == GM_EPROTO || info->err == GM_EMSGSIZE ||
      info->err == GM_ECOMPRESS || info->err == GM_EHTTP) {
    add_bytes(w, -info->err, 0, info->why, strlen(info->why));
  } else if (!w->user_closed) {
    add_bytes(w, GM_WS_OP_CLOSE, info->code, info->reason,
              info->code == 1006 ? 0 : info->reason_len);
  }
  if (info->err == GM_ETIMEDOUT)
    gm_waiter_fail(&w->closer, GM_ETIMEDOUT, info->why);
  else
    gm_waiter_done(&w->closer);
  gm_waiter_fail(&w->sender, GM_ECLOSED, "closed");
}

static void c_on_written(gm_conn_t *c) {
  lconn_t *w = c->data;
  if (c->stream.written >= w->send_target) gm_waiter_done(&w->sender);
}

static const gm_conn_handler_t handler = {
    .on_open = c_on_open,
    .on_http = c_on_http,
    .on_message = c_on_message,
    .on_close = c_on_close,
    .on_written = c_on_written,
};

/* The run ends: the socket goes, the object stays (and says ECLOSED). */
static void on_loop_close(gm_closable_t *cl) {
  lconn_t *w = gm_container_of(cl, lconn_t, closable);
  w->ended = true;
  w->open = false;
  /* ended now, not after a close handshake: the loop is going */
  if (w->conn) gm_conn_abort(w->conn, false);
  release_conn(w);
}

/* }=============== */

/* A connect that timed out or was cancelled gives up the socket. */
static void connect_abandoned(gm_waiter_t *slot) {
  lconn_t *w = gm_container_of(slot, lconn_t, connector);
  w->ended = true;
  release_conn(w);
}

static lconn_t *new_lconn(lua_State *L, gm_rt_t *rt, size_t queue_limit) {
  lconn_t *w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->rt = rt;
  w->queue.limit = queue_limit;
  w->connector.on_detach = connect_abandoned;
  luaL_setmetatable(L, GM_CONN_MT);
  return w;
}

lconn_t *gm_lconn_accept(lua_State *L, gm_rt_t *rt, gm_tcp_t *tcp,
                         gm_tls_ctx_t *tls) {
  gm_loop_t *loop = gm_rt_loop(L, rt);
  lconn_t *w = new_lconn(L, rt, GM_DEFAULT_MAX_PAYLOAD);
  w->server = true;
  w->conn = gm_conn_accept(loop, tcp, tls, &handler, w);
  if (w->conn == NULL) {
    gm_tcp_close(tcp);
    w->ended = true;
    return w;
  }
  w->open = true;
  gm_closable_add(loop, &w->closable, on_loop_close);
  return w;
}

static size_t opt_size(lua_State *L, int t, const char *k, size_t dflt) {
  lua_getfield(L, t, k);
  lua_Integer v = luaL_optinteger(L, -1, (lua_Integer)dflt);
  lua_pop(L, 1);
  if (v <= 0) luaL_error(L, "%s must be a positive integer", k);
  return (size_t)v;
}

const char *gm_check_tls_opts(lua_State *L, int idx) {
  const char *ca_file = NULL;
  lua_getfield(L, idx, "tls");
  if (!lua_isnil(L, -1)) {
    luaL_argexpected(L, lua_istable(L, -1), idx, "tls = { ca_file = ... }");
    lua_getfield(L, -1, "ca_file");
    ca_file = luaL_optstring(L, -1, NULL);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ca_file;
}

/* ws_connect(url[, opts]) and http_connect(url[, opts]) */
static int connect_url(lua_State *L, bool websocket) {
  gm_rt_t *rt = gm_rt_of(L);
  size_t ulen;
  const char *url_s = luaL_checklstring(L, 1, &ulen);
  gm_conn_options_t o = {0};
  double timeout = GM_DEFAULT_CONNECT_TIMEOUT_S;
  const char *ca_file = NULL;
  o.max_message = GM_DEFAULT_MAX_MESSAGE;
  o.max_payload = GM_DEFAULT_MAX_PAYLOAD;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    ca_file = gm_check_tls_opts(L, 2);
    lua_getfield(L, 2, "compression");
    o.compression = gm_check_compress(L, -1);
    lua_pop(L, 1);
    o.max_message = opt_size(L, 2, "max_message", o.max_message);
    o.max_payload = opt_size(L, 2, "max_payload", o.max_payload);
    lua_getfield(L, 2, "timeout");
    timeout = luaL_optnumber(L, -1, GM_DEFAULT_CONNECT_TIMEOUT_S);
    lua_pop(L, 1);
    if (!(timeout >= 0)) return luaL_error(L, "timeout must be >= 0");
  }
  gm_task_t *t = gm_task_current(L, rt);
  gm_url_t url;
  const char *why = NULL;
  int r = gm_url_parse(url_s, ulen, &url, &why);
  if (r == GM_ENOMEM) return gm_raise_oom(L);
  if (r) return luaL_error(L, "bad %s URL: %s", websocket ? "websocket" : "HTTP", why);
  if (url.websocket != websocket) {
    gm_url_free(&url);
    return luaL_error(L, websocket ? "bad websocket URL: the scheme must be ws or wss"
                                   : "bad HTTP URL: the scheme must be http or https");
  }
  if (url.tls) {
    o.tls = gm_tls_client_ctx(ca_file, &why);
    if (o.tls == NULL) {
      gm_url_free(&url);
      return gm_push_fail(L, GM_ETLS, ca_file ? lua_pushfstring(L, "%s %s (tls.ca_file)", why, ca_file) : why);
    }
  }
  o.timeout_ns = gm_seconds_to_ns(timeout);
  lconn_t *w = new_lconn(L, rt, o.max_payload > o.max_message ? o.max_payload
                                                              : o.max_message);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  w->conn = gm_conn_connect(loop, &url, &o, &handler, w);
  gm_url_free(&url);
  if (o.tls) gm_tls_ctx_release(o.tls); /* the connection holds its own */
  if (w->conn == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
  gm_closable_add(loop, &w->closable, on_loop_close);
  return gm_waiter_wait(L, &w->connector, t, UINT64_MAX);
}

/* url_check(url) -> true | nil, why: the parser every connection uses,
 * so a config can refuse a URL when it is built. */
static int l_url_check(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  gm_url_t u;
  const char *why = NULL;
  int r = gm_url_parse(s, n, &u, &why);
  if (r) return gm_push_fail(L, r, why);
  lua_pushboolean(L, 1);
  lua_pushstring(L, u.scheme);
  gm_url_free(&u);
  return 2;
}

static int l_connect(lua_State *L) { return connect_url(L, true); }
static int l_http_connect(lua_State *L) { return connect_url(L, false); }


/* Closed by us (close()), by the peer or by the run's end: every
 * operation then returns nil, "closed", "ECLOSED", as on every object. */
static bool gone(const lconn_t *w) {
  return w->conn == NULL || !w->open || w->user_closed;
}

static void check_server(lua_State *L, lconn_t *w, const char *what) {
  if (!w->server)
    luaL_error(L, "%s is for server-side connections", what);
}

/* receive([timeout]): data, "text" | "binary" | reason, "close", code |
 * request, "http" (server) | nil, message, code */
static int conn_receive(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  /* after close(), as after the peer's end: every object says ECLOSED */
  if (w->user_closed) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (w->receiver.task) return luaL_error(L, "another task is already receiving");
  item_t *it = take_item(w);
  if (it) {
    w->received = true;
    w->received_at = it->at;
    int n = push_item(L, it);
    item_free(it);
    return n;
  }
  if (w->ended) return gm_push_fail(L, GM_ECLOSED, "closed");
  return gm_waiter_wait(L, &w->receiver, gm_task_current(L, w->rt), timeout);
}

/* Waits until what was queued so far reached the kernel. */
static int wait_written(lua_State *L, lconn_t *w, uint64_t timeout) {
  if (w->conn->stream.written >= w->conn->stream.queued) {
    lua_pushboolean(L, 1);
    return 1;
  }
  gm_task_t *t = gm_task_current(L, w->rt);
  w->send_target = w->conn->stream.queued;
  return gm_waiter_wait(L, &w->sender, t, timeout);
}

static int begin_send(lua_State *L, lconn_t *w) {
  if (gone(w)) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (w->sender.task) return luaL_error(L, "another task is already sending");
  return 0;
}

/* send(data[, "text" | "binary"][, timeout]) */
static int conn_send(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  static const char *kinds[] = {"text", "binary", NULL};
  int kind = luaL_checkoption(L, 3, "text", kinds);
  uint64_t timeout = gm_check_timeout(L, 4);
  int n = begin_send(L, w);
  if (n) return n;
  if (!w->conn->upgraded) return luaL_error(L, "send before the websocket upgrade");
  int r = gm_conn_send(w->conn, kind ? GM_WS_OP_BINARY : GM_WS_OP_TEXT, data,
                       len);
  if (r) return gm_push_fail(L, r, NULL);
  return wait_written(L, w, timeout);
}

/* close([code = 1000][, reason = ""][, timeout = 5]): waits for the peer */
static int conn_close(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t rlen = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rlen);
  /* checked as every timeout is (a negative or NaN one is misuse) */
  uint64_t timeout = lua_isnoneornil(L, 4) ? gm_seconds_to_ns(GM_DEFAULT_CLOSE_TIMEOUT_S)
                                           : gm_check_timeout(L, 4);
  if (w->user_closed || w->ended || w->conn == NULL) {
    w->user_closed = true;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!w->conn->upgraded) { /* HTTP: nothing to wait for */
    w->user_closed = true;
    w->ended = true;
    w->open = false;
    free_queue(w);
    gm_conn_close(w->conn, (int)code, reason, rlen, 0);
    release_conn(w);
    lua_pushboolean(L, 1);
    return 1;
  }
  gm_task_t *t = w->server ? NULL : gm_task_current(L, w->rt);
  w->user_closed = true;
  free_queue(w);
  gm_conn_close(w->conn, (int)code, reason, rlen, timeout);
  if (w->ended || t == NULL) { /* a server does not wait */
    lua_pushboolean(L, 1);
    return 1;
  }
  return gm_waiter_wait(L, &w->closer, t, UINT64_MAX);
}

/* {=============== server side =============== */

static const char *reason_phrase(int status) {
  static const struct {
    int status;
    const char *text;
  } phrases[] = {{200, "OK"}, {201, "Created"}, {204, "No Content"},
                 {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"},
                 {404, "Not Found"}, {405, "Method Not Allowed"},
                 {429, "Too Many Requests"}, {500, "Internal Server Error"},
                 {502, "Bad Gateway"}, {503, "Service Unavailable"}};
  for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
    if (phrases[i].status == status) return phrases[i].text;
  return status < 400 ? "OK" : "Error";
}

/* respond(status, headers, body): an HTTP response on a kept-alive
 * connection. */
static int conn_respond(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  check_server(L, w, "respond");
  lua_Integer status = luaL_checkinteger(L, 2);
  size_t blen = 0;
  const char *body = luaL_optlstring(L, 4, "", &blen);
  if (gone(w)) return gm_push_fail(L, GM_ECLOSED, "closed");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "HTTP/1.1 %d %s\r\n", (int)status, reason_phrase((int)status));
  luaL_addvalue(&b);
  /* RFC 9110 8.6: no Content-Length on 1xx and 204 */
  if (status >= 200 && status != 204) {
    lua_pushfstring(L, "Content-Length: %d\r\n", (int)blen);
    luaL_addvalue(&b);
  }
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      luaL_addvalue(&b);
      luaL_addstring(&b, ": ");
      luaL_addvalue(&b);
      luaL_addstring(&b, "\r\n");
    }
  }
  luaL_addstring(&b, "\r\n");
  luaL_addlstring(&b, body, blen);
  luaL_pushresult(&b);
  size_t n;
  const char *bytes = lua_tolstring(L, -1, &n);
  int r = gm_conn_write_raw(w->conn, bytes, n);
  if (r) return gm_push_fail(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* upgrade(request[, compression][, max_message]) */
static int conn_upgrade(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  check_server(L, w, "upgrade");
  luaL_checktype(L, 2, LUA_TTABLE);
  gm_compress_t kind = gm_check_compress(L, 3);
  size_t max_message = (size_t)luaL_optinteger(L, 4, GM_DEFAULT_MAX_MESSAGE);
  lua_getfield(L, 2, "headers");
  luaL_argexpected(L, lua_istable(L, -1), 2, "request");
  /* the request as gm_ws_server_check reads it; the strings stay on the stack */
  static const char *const names[] = {"host", "upgrade", "connection",
                                      "sec-websocket-key",
                                      "sec-websocket-version"};
  gm_http_header_t headers[sizeof names / sizeof *names];
  gm_http_message_t req = {0};
  req.headers = headers;
  int t = lua_gettop(L);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    lua_getfield(L, t, names[i]);
    const char *v = lua_tostring(L, -1);
    if (v) headers[req.n_headers++] = (gm_http_header_t){(char *)names[i], (char *)v};
  }
  lua_getfield(L, 2, "method");
  req.method = (char *)lua_tostring(L, -1);
  const char *key, *why;
  if (gm_ws_server_check(&req, &key, &why)) return gm_push_fail(L, GM_EHANDSHAKE, why);
  if (gone(w)) return gm_push_fail(L, GM_ECLOSED, "closed");
  int r = gm_conn_upgrade(w->conn, key, kind, max_message);
  if (r) return gm_push_fail(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* send_payload(json): compressed as negotiated at the upgrade */
static int conn_send_payload(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  check_server(L, w, "send_payload");
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (gone(w)) return gm_push_fail(L, GM_ECLOSED, "closed");
  int r = gm_conn_send_payload(w->conn, data, len);
  if (r) return gm_push_fail(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* encode_payloads(list): the frames send_payload would write, as bytes */
static int conn_encode_payloads(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  check_server(L, w, "encode_payloads");
  luaL_checktype(L, 2, LUA_TTABLE);
  if (gone(w)) return gm_push_fail(L, GM_ECLOSED, "closed");
  gm_buf_t out = GM_BUF_INIT;
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    if (p == NULL) {
      gm_buf_free(&out);
      return luaL_error(L, "payload %d is not a string", (int)i);
    }
    int r = gm_conn_encode_payload(w->conn, p, len, &out);
    lua_pop(L, 1);
    if (r) {
      gm_buf_free(&out);
      return gm_push_fail(L, r, NULL);
    }
  }
  lua_pushlstring(L, (const char *)out.data, out.len);
  gm_buf_free(&out);
  return 1;
}

/* write_raw(bytes): bytes as they are (fault injection, replays); queued
 * without waiting for the kernel to take them. */
static int conn_write_raw(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  size_t len;
  /* a Secret (an HTTP request with its Authorization header) is written
   * without ever becoming a Lua string */
  const char *data = luaL_testudata(L, 2, GM_SECRET_MT)
                         ? gm_secret_get(L, 2, &len)
                         : luaL_checklstring(L, 2, &len);
  if (gone(w)) return gm_push_fail(L, GM_ECLOSED, "closed");
  int r = gm_conn_write_raw(w->conn, data, len);
  if (r) return gm_push_fail(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* reset(): TCP reset, no close frame */
static int conn_reset(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  w->ended = true;
  w->open = false;
  if (w->conn) gm_conn_abort(w->conn, true);
  release_conn(w);
  return 0;
}

/* }=============== */

static int conn_is_open(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  lua_pushboolean(L, w->open && w->conn != NULL);
  return 1;
}

/* pending(): items received and not yet taken by receive(). An HTTP client
 * uses it to spot responses nobody asked for. */
static int conn_pending(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  lua_pushinteger(L, (lua_Integer)w->queue.count);
  return 1;
}

/* received_at(): gloaming.now() when what receive() last returned was read
 * off the socket (nil before anything was), however long a task took to
 * get to it: the fake gateway times Identifies by it. */
static int conn_received_at(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  if (!w->received) return 0;
  lua_pushnumber(L, (double)w->received_at / 1e9);
  return 1;
}

static int conn_memory(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  lua_pushinteger(L, w->conn ? (lua_Integer)gm_conn_memory(w->conn) : 0);
  return 1;
}

static int conn_gc(lua_State *L) {
  lconn_t *w = luaL_testudata(L, 1, GM_CONN_MT);
  if (w) {
    free_queue(w);
    release_conn(w);
  }
  return 0;
}

static int conn_tostring(lua_State *L) {
  lconn_t *w = check_conn(L, 1);
  lua_pushfstring(L, "gloaming.WebSocket (%s%s): %p",
                  w->server ? "server, " : "",
                  w->open ? "open" : w->ended ? "closed" : "connecting",
                  (void *)w);
  return 1;
}

int gm_open_conn(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"receive", conn_receive},
      {"send", conn_send},
      {"close", conn_close},
      {"respond", conn_respond},
      {"upgrade", conn_upgrade},
      {"send_payload", conn_send_payload},
      {"encode_payloads", conn_encode_payloads},
      {"write_raw", conn_write_raw},
      {"reset", conn_reset},
      {"is_open", conn_is_open},
      {"pending", conn_pending},
      {"memory", conn_memory},
      {"received_at", conn_received_at},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", conn_gc},
                                  {"__close", conn_gc},
                                  {"__tostring", conn_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"ws_connect", l_connect},
                                   {"http_connect", l_http_connect},
                                   {"url_check", l_url_check},
                                   {NULL, NULL}};
  gm_rt_newclass(L, GM_CONN_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
