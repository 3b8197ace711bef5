/* gloaming.ws: a coroutine websocket client over gm_conn_t. */
#include <string.h>

#include "io/conn.h"
#include "io/log.h"
#include "lua/rt.h"
#include "proto/alloc.h"
#include "proto/errors.h"

#define WS_MT "gloaming.WebSocket"
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_CLOSE_TIMEOUT_S 5

typedef struct item_s {
  struct item_s *next;
  int kind; /* TEXT, BINARY, CLOSE (then code), or -err for a failure */
  int code;
  size_t len;
  char data[];
} item_t;

typedef struct lws_s {
  gm_rt_t *rt;
  gm_conn_t *conn;
  gm_closable_t closable;
  gm_task_t *connector, *receiver, *sender, *closer;
  uint64_t send_target;
  item_t *head, *tail;
  size_t queued;       /* bytes waiting in the queue */
  size_t queue_limit;  /* above it, reading stops */
  bool open;           /* connected and not ended */
  bool user_closed;    /* close() was called */
  bool ended;          /* the connection is over; the queue may still hold items */
  int close_err;       /* result for a waiting close() */
} lws_t;

static lws_t *check_ws(lua_State *L, int i) {
  return luaL_checkudata(L, i, WS_MT);
}

static void push_item(lua_State *L, item_t *it, int *n) {
  if (it->kind > 0 && it->kind != GM_WS_OP_CLOSE) {
    lua_pushlstring(L, it->data, it->len);
    lua_pushstring(L, it->kind == GM_WS_OP_BINARY ? "binary" : "text");
    *n = 2;
  } else if (it->kind == GM_WS_OP_CLOSE) {
    lua_pushlstring(L, it->data, it->len);
    lua_pushliteral(L, "close");
    lua_pushinteger(L, it->code);
    *n = 3;
  } else {
    luaL_pushfail(L);
    lua_pushlstring(L, it->data, it->len);
    lua_pushstring(L, gm_err_name(-it->kind));
    *n = 3;
  }
}

static void enqueue_item(lws_t *w, int kind, int code, const void *data,
                         size_t len) {
  if (w->receiver) { /* a waiting receiver takes it straight away */
    gm_task_t *t = w->receiver;
    w->receiver = NULL;
    lua_State *co = t->co;
    int n;
    lua_checkstack(co, 3);
    if (kind > 0 && kind != GM_WS_OP_CLOSE) {
      lua_pushlstring(co, data, len);
      lua_pushstring(co, kind == GM_WS_OP_BINARY ? "binary" : "text");
      n = 2;
    } else if (kind == GM_WS_OP_CLOSE) {
      lua_pushlstring(co, data, len);
      lua_pushliteral(co, "close");
      lua_pushinteger(co, code);
      n = 3;
    } else {
      luaL_pushfail(co);
      lua_pushlstring(co, data, len);
      lua_pushstring(co, gm_err_name(-kind));
      n = 3;
    }
    gm_task_wake(t, n);
    return;
  }
  item_t *it = gm_malloc(sizeof *it + len);
  if (it == NULL) {
    gm_log(GM_LOG_ERROR, "ws", "out of memory: a message was lost");
    return;
  }
  it->next = NULL;
  it->kind = kind;
  it->code = code;
  it->len = len;
  memcpy(it->data, data, len);
  if (w->tail)
    w->tail->next = it;
  else
    w->head = it;
  w->tail = it;
  w->queued += len;
  if (w->queued > w->queue_limit && w->conn) gm_conn_pause(w->conn);
}

static void free_queue(lws_t *w) {
  while (w->head) {
    item_t *it = w->head;
    w->head = it->next;
    gm_free(it, sizeof *it + it->len);
  }
  w->tail = NULL;
  w->queued = 0;
}

/* {=============== connection callbacks =============== */

static void detach_conn(lws_t *w) {
  if (w->conn) {
    gm_conn_release(w->conn);
    w->conn = NULL;
  }
  gm_closable_remove(&w->closable);
}

static void c_on_open(gm_conn_t *c, int err, const char *why) {
  lws_t *w = c->data;
  gm_task_t *t = w->connector;
  w->connector = NULL;
  if (err) {
    w->ended = true;
    detach_conn(w);
    if (t) gm_task_fail(t, err, why);
    return;
  }
  w->open = true;
  /* The userdata sits on top of the connector's stack, where l_connect
   * left it: waking with one value returns it. */
  if (t) gm_task_wake(t, 1);
}

static void c_on_message(gm_conn_t *c, int opcode, uint8_t *data, size_t len) {
  enqueue_item(c->data, opcode, 0, data, len);
}

static void c_on_close(gm_conn_t *c, const gm_conn_close_t *info) {
  lws_t *w = c->data;
  w->open = false;
  w->ended = true;
  if (info->err == GM_EPROTO || info->err == GM_EMSGSIZE ||
      info->err == GM_ECOMPRESS) {
    enqueue_item(w, -info->err, 0, info->why, strlen(info->why));
  } else if (!w->user_closed) {
    enqueue_item(w, GM_WS_OP_CLOSE, info->code, info->reason,
                 info->code == 1006 ? 0 : info->reason_len);
  }
  if (w->closer) {
    gm_task_t *t = w->closer;
    w->closer = NULL;
    if (info->err == GM_ETIMEDOUT)
      gm_task_fail(t, GM_ETIMEDOUT, info->why);
    else {
      lua_pushboolean(t->co, 1);
      gm_task_wake(t, 1);
    }
  }
  if (w->sender) {
    gm_task_t *t = w->sender;
    w->sender = NULL;
    gm_task_fail(t, GM_ECLOSED, "closed");
  }
}

static void c_on_written(gm_conn_t *c) {
  lws_t *w = c->data;
  if (w->sender && c->stream.written >= w->send_target) {
    gm_task_t *t = w->sender;
    w->sender = NULL;
    lua_pushboolean(t->co, 1);
    gm_task_wake(t, 1);
  }
}

static const gm_conn_handler_t handler = {
    .on_open = c_on_open,
    .on_message = c_on_message,
    .on_close = c_on_close,
    .on_written = c_on_written,
};

/* The run ends: the socket goes, the object stays (and says ECLOSED). */
static void on_loop_close(gm_closable_t *cl) {
  lws_t *w = (lws_t *)((char *)cl - offsetof(lws_t, closable));
  w->ended = true;
  w->open = false;
  detach_conn(w);
}

/* }=============== */

static void detach_waiter(gm_task_t *t, void *object) {
  lws_t *w = object;
  if (w->receiver == t) w->receiver = NULL;
  if (w->sender == t) w->sender = NULL;
  if (w->closer == t) w->closer = NULL;
  if (w->connector == t) { /* a cancelled connect gives up the socket */
    w->connector = NULL;
    w->ended = true;
    detach_conn(w);
  }
}

static size_t opt_size(lua_State *L, int t, const char *k, size_t dflt) {
  lua_getfield(L, t, k);
  lua_Integer v = luaL_optinteger(L, -1, (lua_Integer)dflt);
  lua_pop(L, 1);
  if (v <= 0) luaL_error(L, "%s must be a positive integer", k);
  return (size_t)v;
}

/* connect(url[, opts]) */
static int l_connect(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  size_t ulen;
  const char *url_s = luaL_checklstring(L, 1, &ulen);
  gm_conn_options_t o = {0};
  double timeout = DEFAULT_TIMEOUT_S;
  const char *ca_file = NULL;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "tls");
    if (!lua_isnil(L, -1)) {
      luaL_argexpected(L, lua_istable(L, -1), 2, "tls = { ca_file = ... }");
      lua_getfield(L, -1, "ca_file");
      ca_file = luaL_optstring(L, -1, NULL);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "compression");
    if (!lua_isnil(L, -1)) {
      size_t n;
      const char *c = luaL_checklstring(L, -1, &n);
      if (gm_compress_parse(c, n, &o.compression))
        return luaL_error(L, "bad compression '%s' (expected \"zlib-stream\" "
                             "or \"zstd-stream\")", c);
    }
    lua_pop(L, 1);
    o.max_message = opt_size(L, 2, "max_message", 16u << 20);
    o.max_payload = opt_size(L, 2, "max_payload", 64u << 20);
    lua_getfield(L, 2, "timeout");
    timeout = luaL_optnumber(L, -1, DEFAULT_TIMEOUT_S);
    lua_pop(L, 1);
    if (timeout < 0) return luaL_error(L, "timeout must be >= 0");
  }
  gm_task_t *t = gm_task_current(L, rt);
  gm_url_t url;
  const char *why = NULL;
  if (gm_url_parse(url_s, ulen, &url, &why))
    return luaL_error(L, "bad websocket URL: %s", why);
  if (!url.websocket) {
    gm_url_free(&url);
    return luaL_error(L, "bad websocket URL: the scheme must be ws or wss");
  }
  if (url.tls) {
    o.tls = gm_tls_client_ctx(ca_file, &why);
    if (o.tls == NULL) {
      gm_url_free(&url);
      return gm_push_fail(L, GM_ETLS, why);
    }
  }
  o.timeout_ns = gm_seconds_to_ns(timeout);
  lws_t *w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->rt = rt;
  w->queue_limit = o.max_payload > o.max_message ? o.max_payload : o.max_message;
  luaL_setmetatable(L, WS_MT);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  w->conn = gm_conn_connect(loop, &url, &o, &handler, w);
  gm_url_free(&url);
  if (o.tls) gm_tls_ctx_release(o.tls); /* the connection holds its own */
  if (w->conn == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
  gm_closable_add(loop, &w->closable, on_loop_close);
  w->connector = t;
  return gm_task_wait(L, t, w, detach_waiter, UINT64_MAX);
}

static void check_usable(lua_State *L, lws_t *w, const char *what) {
  if (w->user_closed)
    luaL_error(L, "%s after close(): the websocket is closed", what);
}

/* receive([timeout]) */
static int ws_receive(lua_State *L) {
  lws_t *w = check_ws(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  check_usable(L, w, "receive");
  if (w->receiver) return luaL_error(L, "another task is already receiving");
  if (w->head) {
    item_t *it = w->head;
    w->head = it->next;
    if (w->head == NULL) w->tail = NULL;
    w->queued -= it->len;
    int n;
    push_item(L, it, &n);
    gm_free(it, sizeof *it + it->len);
    if (w->conn && w->queued <= w->queue_limit / 2) gm_conn_resume(w->conn);
    return n;
  }
  if (w->ended) return gm_push_fail(L, GM_ECLOSED, "closed");
  gm_task_t *t = gm_task_current(L, w->rt);
  w->receiver = t;
  return gm_task_wait(L, t, w, detach_waiter, timeout);
}

/* send(data[, "text" | "binary"][, timeout]) */
static int ws_send(lua_State *L) {
  lws_t *w = check_ws(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  static const char *kinds[] = {"text", "binary", NULL};
  int kind = luaL_checkoption(L, 3, "text", kinds);
  uint64_t timeout = gm_check_timeout(L, 4);
  check_usable(L, w, "send");
  if (w->sender) return luaL_error(L, "another task is already sending");
  if (!w->open || w->conn == NULL) return gm_push_fail(L, GM_ECLOSED, "closed");
  gm_task_t *t = gm_task_current(L, w->rt);
  int r = gm_conn_send(w->conn, kind ? GM_WS_OP_BINARY : GM_WS_OP_TEXT, data,
                       len);
  if (r) return gm_push_fail(L, r, NULL);
  if (w->conn->stream.written >= w->conn->stream.queued) {
    lua_pushboolean(L, 1);
    return 1;
  }
  w->send_target = w->conn->stream.queued;
  w->sender = t;
  return gm_task_wait(L, t, w, detach_waiter, timeout);
}

/* close([code = 1000][, reason = ""][, timeout = 5]) */
static int ws_close(lua_State *L) {
  lws_t *w = check_ws(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t rlen = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rlen);
  double timeout = luaL_optnumber(L, 4, DEFAULT_CLOSE_TIMEOUT_S);
  if (w->user_closed || w->ended || w->conn == NULL) {
    w->user_closed = true;
    lua_pushboolean(L, 1);
    return 1;
  }
  gm_task_t *t = gm_task_current(L, w->rt);
  w->user_closed = true;
  free_queue(w);
  gm_conn_close(w->conn, (int)code, reason, rlen, gm_seconds_to_ns(timeout));
  if (w->ended) {
    lua_pushboolean(L, 1);
    return 1;
  }
  w->closer = t;
  return gm_task_wait(L, t, w, detach_waiter, UINT64_MAX);
}

static int ws_gc(lua_State *L) {
  lws_t *w = luaL_testudata(L, 1, WS_MT);
  if (w) {
    free_queue(w);
    detach_conn(w);
  }
  return 0;
}

static int ws_tostring(lua_State *L) {
  lws_t *w = check_ws(L, 1);
  lua_pushfstring(L, "gloaming.WebSocket (%s): %p",
                  w->open ? "open" : w->ended ? "closed" : "connecting",
                  (void *)w);
  return 1;
}

int gm_open_ws(lua_State *L) {
  static const luaL_Reg methods[] = {{"receive", ws_receive},
                                     {"send", ws_send},
                                     {"close", ws_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", ws_gc},
                                  {"__tostring", ws_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"ws_connect", l_connect}, {NULL, NULL}};
  gm_rt_newclass(L, WS_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
