/* core.log(level, context, message), core.log_level([spec]),
 * core.log_levels(), core.log_format([name]): the C logger (secrets
 * scrubbed) for Lua code.
 *
 * core.log_handler(deliver | nil) and core.log_take(): records for the
 * Lua log handler (lua/gloaming/log.lua). Records come from anywhere in C,
 * libuv callbacks and the shard machine's own steps included, where
 * calling Lua is unsafe: a handler that touched the shard (shard:close(),
 * a command) would re-enter its machine half-way through a step, and it
 * could not wait (no yield across those C frames). So the hook only
 * copies each record into a queue here, and a daemon task (deliver,
 * spawned on the first record of each run) takes them with log_take and
 * calls the handler, where it may wait, fail or be slow: the shard goes on
 * and the queue holds the records (at most MAX_QUEUED; beyond, they are
 * counted and the handler is told how many it missed).
 *
 * The task keeps the run going while it has records to deliver (a task
 * like the script's own, not a daemon) and only while it waits for more
 * (a daemon): the run ends once the handler took the last record, so a
 * handler that ships logs gets the lines logged just before the end (why a
 * bot stopped) instead of losing them. */
#include <stdlib.h>
#include <string.h>

#include "io/log.h"
#include "lua/rt.h"
#include "proto/alloc.h"

#define MAX_QUEUED 4096

static int l_log(lua_State *L) {
  const char *level = luaL_checkstring(L, 1);
  const char *context = luaL_optstring(L, 2, NULL);
  const char *message = luaL_checkstring(L, 3);
  int lv = gm_log_level_parse(level);
  if (lv < 0 || lv == GM_LOG_OFF) return luaL_argerror(L, 1, "unknown level");
  gm_log((gm_log_level_t)lv, context, "%s", message);
  return 0;
}

/* log_level([spec]): "debug" or "warn,shard=debug"; returns the default
 * level's name. */
static int l_log_level(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    char why[160];
    if (gm_log_apply_spec(luaL_checkstring(L, 1), why, sizeof why) != 0)
      return luaL_argerror(L, 1, why);
  }
  lua_pushstring(L, gm_log_level_name(gm_log_level));
  return 1;
}

/* { default = "info", shard = "debug", ... }: the components with a level
 * of their own. */
static int l_log_levels(lua_State *L) {
  lua_newtable(L);
  lua_pushstring(L, gm_log_level_name(gm_log_level));
  lua_setfield(L, -2, "default");
  for (int c = 0; c < GM_LOG_COMPONENT_COUNT; c++) {
    int l = gm_log_component_level((gm_log_component_t)c);
    if (l < 0) continue;
    lua_pushstring(L, gm_log_level_name((gm_log_level_t)l));
    lua_setfield(L, -2, gm_log_component_name((gm_log_component_t)c));
  }
  return 1;
}

static int l_log_format(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    int f = gm_log_format_parse(luaL_checkstring(L, 1));
    if (f < 0) return luaL_argerror(L, 1, "expected \"text\", \"json\" or \"none\"");
    gm_log_set_format((gm_log_format_t)f);
  }
  lua_pushstring(L, gm_log_format_name(gm_log_format()));
  return 1;
}

static int l_add_secret(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  gm_log_add_secret(s, n);
  return 0;
}

static int l_scrub(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  size_t cap = gm_log_scrub_bound(n);
  char *out = luaL_buffinitsize(L, &b, cap);
  size_t len = gm_log_scrub(s, n, out, cap);
  luaL_pushresultsize(&b, len);
  return 1;
}

/* {=============== records for the Lua handler =============== */

typedef struct qrec_s {
  struct qrec_s *next;
  gm_log_level_t level;
  double time;
  size_t clen, mlen, size;
  char data[]; /* context, NUL, message, NUL */
} qrec_t;

static struct {
  gm_rt_t *rt;
  qrec_t *head, *tail;
  size_t n;
  uint64_t dropped;
  gm_task_t *task;   /* the deliver task (registry "gloaming.log_task") */
  gm_task_t *waiter; /* the task in log_take, waiting */
} q;

static void queue_clear(void) {
  qrec_t *r;
  while ((r = q.head) != NULL) {
    q.head = r->next;
    gm_free(r, r->size);
  }
  q.tail = NULL;
  q.n = 0;
}

/* The deliver task has records to deliver: it keeps the run going. */
static void set_busy(gm_rt_t *rt, gm_task_t *t, bool busy) {
  if (t->daemon == !busy) return;
  t->daemon = !busy;
  if (busy) rt->live++; else rt->live--;
}

/* The deliver task of this run, spawned (busy) when none is alive. */
static void ensure_task(gm_rt_t *rt) {
  if (!rt->in_run) return;
  if (q.task && q.task->state != GM_TASK_DONE) return;
  lua_State *L = rt->L;
  lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.log_deliver");
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  q.task = gm_task_spawn(L, rt, 0, false);
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.log_task");
}

static void on_record(void *ud, const gm_log_record_t *rec) {
  gm_rt_t *rt = ud;
  /* the handler's own lines (its failure too) go to the output only: a
   * handler that logs must not feed itself forever */
  if (q.task && rt->current == q.task) return;
  if (q.n >= MAX_QUEUED) {
    q.dropped++;
    return;
  }
  size_t clen = strlen(rec->context);
  size_t size = sizeof(qrec_t) + clen + rec->message_len + 2;
  qrec_t *r = gm_malloc(size);
  if (r == NULL) {
    q.dropped++;
    return;
  }
  r->next = NULL;
  r->level = rec->level;
  r->time = rec->time;
  r->clen = clen;
  r->mlen = rec->message_len;
  r->size = size;
  memcpy(r->data, rec->context, clen + 1);
  memcpy(r->data + clen + 1, rec->message, rec->message_len);
  r->data[clen + 1 + rec->message_len] = '\0';
  if (q.tail) q.tail->next = r; else q.head = r;
  q.tail = r;
  q.n++;
  if (q.waiter) {
    gm_task_t *t = q.waiter;
    q.waiter = NULL;
    set_busy(rt, t, true);
    gm_task_wake(t, 0);
  } else {
    ensure_task(rt);
  }
}

/* log_handler(deliver | nil): deliver is the task function that calls
 * log_take in a loop. nil stops the records (those queued are dropped). */
static int l_log_handler(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  if (lua_isnoneornil(L, 1)) {
    gm_log_set_hook(NULL, NULL);
    queue_clear();
    q.dropped = 0;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.log_deliver");
    if (q.waiter) { /* its log_take returns nil: the task ends */
      gm_task_t *t = q.waiter;
      q.waiter = NULL;
      lua_pushnil(t->co);
      gm_task_wake(t, 1);
    }
    return 0;
  }
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.log_deliver");
  q.rt = rt;
  gm_log_set_hook(on_record, rt);
  if (q.head) ensure_task(rt);
  return 0;
}

/* { level =, time =, message =, component =, fields = { k = v } } */
static void push_record(lua_State *L, const qrec_t *r) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, gm_log_level_name(r->level));
  lua_setfield(L, -2, "level");
  lua_pushnumber(L, r->time);
  lua_setfield(L, -2, "time");
  lua_pushlstring(L, r->data + r->clen + 1, r->mlen);
  lua_setfield(L, -2, "message");
  lua_newtable(L);
  const char *k, *v;
  size_t kl, vl;
  size_t comp;
  luaL_Buffer b;
  const char *ctext = gm_log_component(r->data, &comp);
  if (ctext) {
    lua_pushlstring(L, ctext, comp);
    lua_setfield(L, -3, "component");
  }
  for (const char *p = r->data; (p = gm_log_next_field(p, &k, &kl, &v, &vl));) {
    if (v == NULL) continue; /* the component */
    lua_pushlstring(L, k, kl);
    if (gm_log_field_is_integer(v, vl))
      lua_pushinteger(L, strtol(v, NULL, 10)); /* close_code=4000 */
    else {
      char *plain = luaL_buffinitsize(L, &b, vl);
      luaL_pushresultsize(&b, gm_log_field_unquote(v, vl, plain));
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "fields");
}

/* The queued records, then (when some were dropped: the newest ones) a
 * warn record saying how many, where they would have been. */
static int take(lua_State *L) {
  lua_createtable(L, (int)q.n + (q.dropped ? 1 : 0), 0);
  int i = 0;
  double last = 0;
  qrec_t *r;
  while ((r = q.head) != NULL) {
    push_record(L, r);
    lua_rawseti(L, -2, ++i);
    last = r->time;
    q.head = r->next;
    gm_free(r, r->size);
  }
  q.tail = NULL;
  q.n = 0;
  if (q.dropped) {
    lua_createtable(L, 0, 5);
    lua_pushliteral(L, "warn");
    lua_setfield(L, -2, "level");
    lua_pushnumber(L, last);
    lua_setfield(L, -2, "time");
    lua_pushfstring(L, "%I log records were dropped: the log handler is slower "
                       "than the logs", (lua_Integer)q.dropped);
    lua_setfield(L, -2, "message");
    lua_pushliteral(L, "log");
    lua_setfield(L, -2, "component");
    lua_newtable(L);
    lua_setfield(L, -2, "fields");
    lua_rawseti(L, -2, ++i);
    q.dropped = 0;
  }
  return 1;
}

static void detach_taker(gm_task_t *t, void *object) {
  (void)object;
  if (q.waiter == t) q.waiter = NULL;
}

static int take_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gm_task_t *t = (gm_task_t *)ctx;
  if (t->nresume > 0) return t->nresume; /* cancelled, or turned off */
  return take(L);
}

/* log_take(): the records queued since the last call (waits for one);
 * nil, msg, code when cancelled (the run ends), nil when turned off. */
static int l_log_take(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_task_t *t = gm_task_current(L, rt);
  if (q.head || q.dropped) return take(L);
  set_busy(rt, t, false); /* all delivered: the run may end */
  q.waiter = t;
  return gm_task_wait_k(L, t, &q, detach_taker, UINT64_MAX, take_k);
}

/* }=============== */

/* The Lua state closes: no record may reach its runtime anymore. Made
 * when the module opens, so finalized after what was made later (shards,
 * whose end may still log). */
static int log_state_gc(lua_State *L) {
  (void)L;
  gm_log_set_hook(NULL, NULL);
  queue_clear();
  q.task = q.waiter = NULL;
  return 0;
}

int gm_open_log(lua_State *L) {
  static const luaL_Reg funcs[] = {{"log", l_log},
                                   {"log_level", l_log_level},
                                   {"log_levels_set", l_log_levels},
                                   {"log_format", l_log_format},
                                   {"log_handler", l_log_handler},
                                   {"log_take", l_log_take},
                                   {"add_secret", l_add_secret},
                                   {"scrub", l_scrub},
                                   {NULL, NULL}};
  gm_log_init();
  gm_rt_setfuncs(L, funcs);
  /* once per state: the module may be opened again (busted reloads it
   * for each spec file), and a replaced guard's collection would remove
   * the hook the new one set */
  if (lua_getfield(L, LUA_REGISTRYINDEX, "gloaming.log_guard") == LUA_TNIL) {
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, log_state_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "gloaming.log_guard");
  }
  lua_pop(L, 1);
  lua_createtable(L, GM_LOG_COMPONENT_COUNT, 0);
  for (int c = 0; c < GM_LOG_COMPONENT_COUNT; c++) {
    lua_pushstring(L, gm_log_component_name((gm_log_component_t)c));
    lua_rawseti(L, -2, c + 1);
  }
  lua_setfield(L, -2, "log_components");
  return 0;
}
