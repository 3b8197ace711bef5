/* listen{ host =, port =, tls = { cert_file =, key_file = } }: a TCP (or
 * TLS) listener whose accept() hands out server-side connections. */
#include <string.h>

#include "io/listener.h"
#include "io/tcp.h"
#include "lua/l_conn.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/errors.h"
#include "proto/fifo.h"

#define LISTENER_MT "gloaming.Listener"

typedef struct pending_s {
  gm_fifo_link_t link;
  gm_tcp_t *tcp;
} pending_t;

typedef struct llistener_s {
  gm_rt_t *rt;
  gm_listener_t l;
  gm_tls_ctx_t *tls;
  gm_closable_t closable;
  gm_fifo_t pending; /* accepted before anyone asked */
  gm_waiter_t acceptor;
  bool open;
} llistener_t;

static llistener_t *check_listener(lua_State *L, int i) {
  return luaL_checkudata(L, i, LISTENER_MT);
}

static void give(llistener_t *s, gm_task_t *t, gm_tcp_t *tcp) {
  gm_lconn_accept(t->co, s->rt, tcp, s->tls);
  gm_task_wake(t, 1);
}

static void on_accept(gm_listener_t *l, gm_tcp_t *client) {
  llistener_t *s = l->data;
  gm_task_t *t = gm_waiter_take(&s->acceptor);
  if (t) {
    give(s, t, client);
    return;
  }
  pending_t *p = gm_malloc(sizeof *p);
  if (p == NULL) {
    gm_tcp_close(client);
    return;
  }
  p->tcp = client;
  gm_fifo_push(&s->pending, &p->link);
}

/* The oldest pending connection (NULL when none). */
static gm_tcp_t *take_pending(llistener_t *s) {
  gm_fifo_link_t *l = gm_fifo_pop(&s->pending);
  if (l == NULL) return NULL;
  pending_t *p = gm_fifo_entry(l, pending_t, link);
  gm_tcp_t *tcp = p->tcp;
  gm_free(p, sizeof *p);
  return tcp;
}

static void stop(llistener_t *s) {
  if (!s->open) return;
  s->open = false;
  gm_listener_stop(&s->l);
  gm_tcp_t *tcp;
  while ((tcp = take_pending(s)) != NULL) gm_tcp_close(tcp);
  if (s->tls) {
    gm_tls_ctx_release(s->tls);
    s->tls = NULL;
  }
  gm_closable_remove(&s->closable);
  gm_waiter_fail(&s->acceptor, GM_ECLOSED, "closed");
}

static void on_loop_close(gm_closable_t *c) {
  stop(gm_container_of(c, llistener_t, closable));
}

static int l_listen(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 1, "port");
  int port = (int)luaL_optinteger(L, -1, 0);
  lua_pop(L, 2);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  gm_tls_ctx_t *tls = NULL;
  lua_getfield(L, 1, "tls");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "cert_file");
    lua_getfield(L, -2, "key_file");
    const char *cert = luaL_checkstring(L, -2), *key = luaL_checkstring(L, -1);
    const char *why = NULL;
    tls = gm_tls_server_ctx(cert, key, &why);
    if (tls == NULL) return gm_push_fail(L, GM_ETLS, why);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  llistener_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->rt = rt;
  s->tls = tls;
  luaL_setmetatable(L, LISTENER_MT);
  int r = gm_listener_start(&s->l, loop, host, port, on_accept, s);
  if (r) {
    if (tls) gm_tls_ctx_release(tls);
    s->tls = NULL;
    return gm_push_fail(L, r, NULL);
  }
  s->open = true;
  gm_closable_add(loop, &s->closable, on_loop_close);
  return 1;
}

/* accept([timeout]): the next connection */
static int listener_accept(lua_State *L) {
  llistener_t *s = check_listener(L, 1);
  uint64_t timeout = gm_check_timeout(L, 2);
  if (!s->open) return gm_push_fail(L, GM_ECLOSED, "closed");
  if (s->acceptor.task) return luaL_error(L, "another task is already accepting");
  gm_tcp_t *tcp = take_pending(s);
  if (tcp) {
    gm_lconn_accept(L, s->rt, tcp, s->tls);
    return 1;
  }
  return gm_waiter_wait(L, &s->acceptor, gm_task_current(L, s->rt), timeout);
}

static int listener_port(lua_State *L) {
  lua_pushinteger(L, check_listener(L, 1)->l.port);
  return 1;
}

static int listener_close(lua_State *L) {
  stop(check_listener(L, 1));
  return 0;
}

int gm_open_listener(lua_State *L) {
  static const luaL_Reg methods[] = {{"accept", listener_accept},
                                     {"port", listener_port},
                                     {"close", listener_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", listener_close},
                                  {"__close", listener_close},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"listen", l_listen}, {NULL, NULL}};
  gm_rt_newclass(L, LISTENER_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
