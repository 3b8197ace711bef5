/* The REPL's terminal, from Lua: io/tty.c edits the line (libedit on the
 * loop); this file parks the reading task and turns the ends of a read
 * into Lua values.
 *
 *   core.readline_open{ history = path, max_history = 1000 } -> rl
 *   rl:read(prompt) -> line | nil, "end of input", "ECLOSED" |
 *                      nil, "interrupted", "ECANCELED"        (waits)
 *   rl:interrupt() -> true when a read was interrupted: "^C" is shown,
 *                     the typed text dropped, and read() fails as above
 *   rl:print(text)  writes above the prompt, keeping the typed line intact
 *   rl:add_history(line) -> true | fail (saved to the history file at once)
 *   rl:log_here(on) log lines go through print while the REPL runs
 *   rl:close()      restores the terminal; also at the end of the run */
#include <string.h>

#include "io/tty.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/container.h"
#include "proto/errors.h"

#define READLINE_MT "gloaming.Readline"

typedef struct term_s {
  gm_tty_t *tty; /* NULL once released */
  gm_rt_t *rt;
  gm_waiter_t reader;
} term_t;

static void on_read(void *data, gm_tty_event_t ev, const char *line, size_t len) {
  term_t *t = data;
  gm_task_t *r = gm_waiter_take(&t->reader);
  if (r == NULL) return;
  if (ev == GM_TTY_LINE) {
    lua_checkstack(r->co, 1);
    lua_pushlstring(r->co, line, len);
    gm_task_wake(r, 1);
  } else {
    gm_task_fail(r, GM_ECLOSED,
                 ev == GM_TTY_EOF ? "end of input" : "the terminal is closed");
  }
}

static term_t *check_term(lua_State *L, int i) {
  return luaL_checkudata(L, i, READLINE_MT);
}

/* After close(), as on every object: nil, "closed", "ECLOSED". */
#define RETURN_IF_CLOSED(L, t) \
  if ((t)->tty == NULL || gm_tty_closed((t)->tty)) return gm_push_fail((L), GM_ECLOSED, "closed")

static int l_readline_open(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  gm_tty_opts_t o = {.in = stdin, .out = stdout, .err = stderr, .max_history = 1000};
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "history");
    o.history = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "max_history");
    o.max_history = (int)luaL_optinteger(L, -1, 1000);
    lua_pop(L, 2); /* the path stays referenced by the options table */
  }
  if (gm_tty_busy()) return luaL_error(L, "a terminal is already open");
  term_t *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  t->rt = rt;
  luaL_setmetatable(L, READLINE_MT);
  int err = 0;
  const char *why = NULL;
  t->tty = gm_tty_open(loop, &o, on_read, t, &err, &why);
  if (t->tty == NULL) return gm_push_fail(L, err, why);
  return 1;
}

/* A read that was cancelled takes its prompt away. */
static void read_abandoned(gm_waiter_t *slot) {
  gm_tty_read_stop(gm_container_of(slot, term_t, reader)->tty);
}

static int term_read(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  const char *prompt = luaL_optstring(L, 2, "> ");
  if (t->reader.task) return luaL_error(L, "another task is already reading");
  if (gm_tty_ended(t->tty)) return gm_push_fail(L, GM_ECLOSED, "end of input");
  gm_task_t *task = gm_task_current(L, t->rt);
  /* a cancellation pending fails the wait at once: show no prompt */
  if (task->cancel_pending || task->rt->sticky_cancel)
    return gm_task_wait(L, task, NULL, NULL, UINT64_MAX);
  const char *why = NULL;
  int err = gm_tty_read(t->tty, prompt, &why);
  if (err) return gm_push_fail(L, err, why);
  t->reader.on_detach = read_abandoned;
  return gm_waiter_wait(L, &t->reader, task, UINT64_MAX);
}

static int term_interrupt(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  if (t->reader.task == NULL || !gm_tty_interrupt(t->tty)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  gm_task_fail(gm_waiter_take(&t->reader), GM_ECANCELED, "interrupted");
  lua_pushboolean(L, 1);
  return 1;
}

static int term_print(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  gm_tty_print(t->tty, s, n);
  return 0;
}

static int term_add_history(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  const char *line = luaL_checkstring(L, 2);
  if (*line == '\0') {
    lua_pushboolean(L, 0);
    return 1;
  }
  const char *why = NULL;
  int err = gm_tty_add_history(t->tty, line, &why);
  if (err) return gm_push_fail(L, err, why);
  lua_pushboolean(L, 1);
  return 1;
}

static int term_log_here(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  gm_tty_log_here(t->tty, lua_toboolean(L, 2));
  return 0;
}

static int term_l_close(lua_State *L) {
  term_t *t = luaL_checkudata(L, 1, READLINE_MT);
  if (t->tty) gm_tty_close(t->tty);
  return 0;
}

static int term_gc(lua_State *L) {
  term_t *t = luaL_checkudata(L, 1, READLINE_MT);
  if (t->tty) gm_tty_release(t->tty);
  t->tty = NULL;
  return 0;
}

int gm_open_readline(lua_State *L) {
  static const luaL_Reg methods[] = {{"read", term_read},
                                     {"interrupt", term_interrupt},
                                     {"print", term_print},
                                     {"add_history", term_add_history},
                                     {"log_here", term_log_here},
                                     {"close", term_l_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", term_gc}, {"__close", term_l_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"readline_open", l_readline_open},
                                   {NULL, NULL}};
  gm_rt_newclass(L, READLINE_MT, methods, meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  return 0;
}
