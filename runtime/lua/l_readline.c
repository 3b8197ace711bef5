/* The REPL's terminal: libedit in unbuffered mode on a uv_poll of stdin,
 * so the loop (shards, timers, REST) keeps running while the prompt waits.
 *
 *   core.readline_open{ history = path, max_history = 1000 } -> rl
 *   rl:read(prompt) -> line | nil, "end of input", "ECLOSED" |
 *                      nil, "interrupted", "ECANCELED"        (waits)
 *   rl:interrupt() -> true when a read was interrupted: "^C" is shown,
 *                     the typed text dropped, and read() fails as above
 *   rl:print(text)  writes above the prompt, keeping the typed line intact
 *   rl:add_history(line) -> true | fail (saved to the history file at once)
 *   rl:log_here(on) log lines go through print while the REPL runs
 *   rl:close()      restores the terminal; also at the end of the run
 *
 * Why libedit's own API (histedit.h) and not its readline emulation:
 * Debian's lua5.4 executable links GNU libreadline, whose rl_* and
 * history functions then come first in symbol lookup. Calls to
 * rl_callback_read_char() from this module, and the emulation's own
 * internal references, land in GNU readline (GPL, and a different state
 * machine: it blocks in its own select). el_* and history() exist only in
 * libedit, so they bind to it.
 *
 * How it is driven (libedit's rl_callback_* emulation does the same):
 * EL_UNBUFFERED 1 prepares the terminal, clears the line and draws the
 * prompt; then each key gets one el_gets(), which edits and returns a
 * count of 0 until a line is complete (it ends with '\n') or Ctrl-D on an
 * empty line (the count is 1, the tty's EOF character). Keys come from
 * our own buffer (see "input" below), never from a blocking read.
 * EL_UNBUFFERED 0 then ends the read (see leave()): while a line runs
 * the prompt is gone and Ctrl-C raises SIGINT, which the REPL handles.
 * Output while the prompt shows: "\r\x1b[K", the text, then EL_REFRESH
 * (deps-probe.md, section 7). */
#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include "io/log.h"
#include "lua/rt.h"
#include "lua/waiter.h"
#include "proto/alloc.h"
#include "proto/errors.h"

#define READLINE_MT "gloaming.Readline"
#define PROMPT_MAX 256
#define IN_MAX 4096

typedef struct term_s {
  gm_rt_t *rt;
  EditLine *el;
  History *hist;
  uv_poll_t *poll;    /* heap: freed by its close callback */
  uv_signal_t *winch; /* heap, likewise */
  uv_timer_t *kick;   /* heap: a read starts on what is already buffered */
  gm_closable_t closable;
  gm_waiter_t reader;
  char *history;
  size_t history_len;
  char prompt[PROMPT_MAX];
  unsigned char in[IN_MAX]; /* read from stdin, not yet given to libedit */
  size_t in_len;
  bool hangup;              /* stdin ended: what is buffered is the last */
  int fd_flags;   /* stdin's flags before the poll changed them */
  int eof_char;   /* the tty's VEOF, what el_gets returns for Ctrl-D */
  bool open;
  bool installed; /* unbuffered mode: the prompt shows */
  bool polling;
  bool eof;
  bool log_here;
} term_t;

static term_t *active; /* the open terminal, if any */

static char *prompt_of(EditLine *el) {
  term_t *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  return t ? t->prompt : "";
}

static void free_handle(uv_handle_t *h) {
  size_t n = h->type == UV_POLL     ? sizeof(uv_poll_t)
             : h->type == UV_TIMER  ? sizeof(uv_timer_t)
                                    : sizeof(uv_signal_t);
  gm_free(h, n);
}

static void write_out(const char *s, size_t n) {
  fwrite(s, 1, n, stdout);
}

static void stop_polling(term_t *t) {
  if (t->polling) {
    uv_poll_stop(t->poll);
    t->polling = false;
  }
}

/* Leaves unbuffered mode. Between reads the terminal is in libedit's
 * cooked mode minus ICANON and ECHO: output is processed as usual, Ctrl-C
 * still raises SIGINT (ISIG), and what is typed ahead while a line runs
 * is neither echoed twice nor cooked. A Ctrl-D typed ahead stays a byte
 * that the next read takes as the end of input; in canonical mode the
 * line discipline would eat it, and the next raw read could block. The
 * next install starts from an empty line; el_end restores the terminal. */
static void leave(term_t *t) {
  if (!t->installed) return;
  el_set(t->el, EL_UNBUFFERED, 0);
  t->installed = false;
  stop_polling(t);
  struct termios tio;
  if (tcgetattr(STDIN_FILENO, &tio) == 0) {
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON);
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &tio);
  }
}

/* Takes the prompt away: its line is erased. */
static void uninstall(term_t *t) {
  if (!t->installed) return;
  leave(t);
  write_out("\r\x1b[K", 4);
  fflush(stdout);
}

static void deliver(term_t *t, const char *line, size_t len) {
  gm_task_t *r = gm_waiter_take(&t->reader);
  if (r == NULL) return;
  if (line) {
    lua_checkstack(r->co, 1);
    lua_pushlstring(r->co, line, len);
    gm_task_wake(r, 1);
  } else {
    gm_task_fail(r, GM_ECLOSED, "end of input");
  }
}

static void on_eof(term_t *t) {
  leave(t);
  t->eof = true;
  write_out("\n", 1);
  fflush(stdout);
  deliver(t, NULL, 0);
}

/* {=============== input ===============
 *
 * libedit reads through get_char() from t->in, never from the terminal:
 * its own reader would block the whole loop in read(2) in the middle of
 * a key sequence (a lone ESC waits for the key it prefixes). Bytes are
 * read when stdin is readable, and libedit gets them one key at a time,
 * only once a key is complete. */

/* Whether the buffer starts with a whole key: a character (UTF-8 in a
 * UTF-8 locale), ESC and the key it prefixes, or a whole CSI or SS3
 * sequence. */
static bool key_complete(const unsigned char *b, size_t n) {
  if (n == 0) return false;
  if (b[0] != 0x1b) {
    mbstate_t st;
    memset(&st, 0, sizeof st);
    return mbrtowc(NULL, (const char *)b, n, &st) != (size_t)-2;
  }
  if (n == 1) return false;
  if (b[1] == '[') { /* parameters and intermediates, then a final byte */
    for (size_t i = 2; i < n; i++)
      if (b[i] >= 0x40 && b[i] <= 0x7e) return true;
    return false;
  }
  if (b[1] == 'O') return n >= 3;
  return true;
}

static void consume(term_t *t, size_t n) {
  memmove(t->in, t->in + n, t->in_len - n);
  t->in_len -= n;
}

/* EL_GETCFN: the next character from the buffer. Should libedit want more
 * than a whole key (a binding longer than the sequence), the terminal is
 * read, blocking: a rare and short wait. */
static int get_char(EditLine *el, wchar_t *wc) {
  term_t *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  if (t == NULL) return -1;
  while (t->in_len == 0 || !key_complete(t->in, t->in_len)) {
    if (t->hangup || t->in_len == sizeof t->in) break;
    ssize_t r = read(STDIN_FILENO, t->in + t->in_len, 1);
    if (r <= 0) {
      t->hangup = true;
      break;
    }
    t->in_len += (size_t)r;
  }
  if (t->in_len == 0) return 0; /* end of input */
  mbstate_t st;
  memset(&st, 0, sizeof st);
  wchar_t c;
  size_t n = mbrtowc(&c, (const char *)t->in, t->in_len, &st);
  if (n == (size_t)-1 || n == (size_t)-2 || n == 0) { /* not a character here: the byte */
    c = (wchar_t)t->in[0];
    n = 1;
  }
  consume(t, n);
  *wc = c;
  return 1;
}

/* One key: el_gets edits, and returns a count once a line is done.
 * Returns false when the read is over (a line, or the end of input). */
static bool edit_one(term_t *t) {
  int count = 0;
  const char *buf = el_gets(t->el, &count);
  /* NULL is no end of input here: in unbuffered mode a key that failed
   * (a beep: Ctrl-U on an empty line) returns it too. The end is Ctrl-D,
   * or stdin's hang-up, which edit_buffered() sees. */
  if (buf == NULL || count <= 0) return true; /* still editing */
  if (count == 1 && (unsigned char)buf[0] == t->eof_char) {
    on_eof(t);
    return false;
  }
  size_t len = (size_t)count;
  if (buf[len - 1] != '\n' && buf[len - 1] != '\r') return true;
  /* copy first: leaving unbuffered mode resets libedit's line */
  char *line = gm_malloc(len);
  if (line == NULL) return true;
  memcpy(line, buf, len - 1);
  leave(t);
  fflush(stdout);
  deliver(t, line, len - 1);
  gm_free(line, len);
  return false;
}

/* Gives libedit every whole key buffered, up to the end of a line: the
 * rest waits for the next read. */
static void edit_buffered(term_t *t) {
  while (t->installed && key_complete(t->in, t->in_len))
    if (!edit_one(t)) return;
  if (t->installed && t->hangup) on_eof(t);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  term_t *t = h->data;
  gm_loop_progress(t->rt->loop);
  if (!t->installed) {
    stop_polling(t);
    return;
  }
  if (status < 0) {
    t->hangup = true;
  } else if (t->in_len < sizeof t->in) {
    /* readable: this read does not block */
    ssize_t r = read(STDIN_FILENO, t->in + t->in_len, sizeof t->in - t->in_len);
    if (r > 0)
      t->in_len += (size_t)r;
    else if (r == 0 || (errno != EAGAIN && errno != EINTR))
      t->hangup = true;
  }
  edit_buffered(t);
}

static void on_kick(uv_timer_t *h) {
  term_t *t = h->data;
  gm_loop_progress(t->rt->loop);
  edit_buffered(t);
}

/* }=============== */

static void on_winch(uv_signal_t *h, int signum) {
  (void)signum;
  term_t *t = h->data;
  if (t->installed) {
    el_resize(t->el);
    el_set(t->el, EL_REFRESH);
  }
}

/* Text above the prompt: the prompt's line is erased, the text written,
 * and libedit draws the prompt and the typed line again below it. */
static void above_prompt(term_t *t, FILE *f, const char *s, size_t n) {
  if (t->installed) {
    write_out("\r\x1b[K", 4);
    fflush(stdout);
  }
  fwrite(s, 1, n, f);
  if (t->installed && n > 0 && s[n - 1] != '\n') fwrite("\n", 1, 1, f);
  fflush(f);
  if (t->installed) el_set(t->el, EL_REFRESH);
}

/* Log lines while the REPL runs: above the prompt, on stderr. */
static void log_sink(void *ud, gm_log_level_t level, const char *line, size_t len) {
  (void)level;
  above_prompt(ud, stderr, line, len);
}

static void term_close(term_t *t) {
  if (!t->open) return;
  t->open = false;
  gm_closable_remove(&t->closable);
  if (t->log_here) {
    gm_log_set_sink(NULL, NULL);
    t->log_here = false;
  }
  uninstall(t);
  gm_waiter_fail(&t->reader, GM_ECLOSED, "the terminal is closed");
  uv_close((uv_handle_t *)t->poll, free_handle);
  uv_close((uv_handle_t *)t->winch, free_handle);
  uv_close((uv_handle_t *)t->kick, free_handle);
  t->poll = NULL;
  t->winch = NULL;
  t->kick = NULL;
  el_end(t->el); /* restores the terminal */
  history_end(t->hist);
  t->el = NULL;
  t->hist = NULL;
  if (t->fd_flags >= 0) fcntl(STDIN_FILENO, F_SETFL, t->fd_flags);
  fflush(stdout);
  if (active == t) active = NULL;
}

static void on_loop_close(gm_closable_t *c) {
  term_close(gm_container_of(c, term_t, closable));
}

static term_t *check_term(lua_State *L, int i) {
  return luaL_checkudata(L, i, READLINE_MT);
}

/* After close(), as on every object: nil, "closed", "ECLOSED". */
#define RETURN_IF_CLOSED(L, t) \
  if (!(t)->open) return gm_push_fail((L), GM_ECLOSED, "closed")

/* Key bindings readline users expect, as libedit's readline emulation
 * sets them; ~/.editrc (el_source) may change them after. */
static void bind_keys(EditLine *el) {
  static const char *const binds[][2] = {
      {"^R", "em-inc-search-prev"},    {"\\e[1~", "ed-move-to-beg"},
      {"\\e[4~", "ed-move-to-end"},     {"\\e[7~", "ed-move-to-beg"},
      {"\\e[8~", "ed-move-to-end"},     {"\\e[H", "ed-move-to-beg"},
      {"\\e[F", "ed-move-to-end"},      {"\\e[3~", "ed-delete-next-char"},
      {"\\e[1;5C", "em-next-word"},     {"\\e[1;5D", "ed-prev-word"},
  };
  for (size_t i = 0; i < sizeof binds / sizeof binds[0]; i++)
    el_set(el, EL_BIND, binds[i][0], binds[i][1], NULL);
}

static int l_readline_open(lua_State *L) {
  gm_rt_t *rt = gm_rt_of(L);
  gm_loop_t *loop = gm_rt_loop(L, rt);
  const char *path = NULL;
  lua_Integer max_history = 1000;
  size_t path_len = 0;
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "history");
    path = luaL_optlstring(L, -1, NULL, &path_len);
    lua_getfield(L, 1, "max_history");
    max_history = luaL_optinteger(L, -1, 1000);
    lua_pop(L, 2);
  }
  if (active) return luaL_error(L, "a terminal is already open");
  struct termios tio;
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &tio) != 0)
    return gm_push_fail(L, GM_EINVAL, "stdin is not a terminal");
  term_t *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  t->rt = rt;
  t->fd_flags = -1;
  t->eof_char = tio.c_cc[VEOF] ? tio.c_cc[VEOF] : 4;
  luaL_setmetatable(L, READLINE_MT);
  if (path) {
    t->history = gm_strndup(path, path_len);
    if (t->history == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
    t->history_len = path_len;
  }
  /* UTF-8 input needs the user's character set (libedit reads it at
   * el_init); the rest of the C locale stays. */
  setlocale(LC_CTYPE, "");
  t->el = el_init("gloaming", stdin, stdout, stderr);
  t->hist = history_init();
  t->poll = gm_malloc(sizeof *t->poll);
  t->winch = gm_malloc(sizeof *t->winch);
  t->kick = gm_malloc(sizeof *t->kick);
  int flags = fcntl(STDIN_FILENO, F_GETFL);
  int r = t->poll ? uv_poll_init(&loop->uv, t->poll, STDIN_FILENO) : UV_ENOMEM;
  /* uv_poll_init made stdin non-blocking, and a terminal's stdin and
   * stdout are one open file: stdio would drop output that does not fit
   * the tty's buffer. Only readiness is polled, so stdin stays blocking. */
  if (flags >= 0) {
    t->fd_flags = flags;
    fcntl(STDIN_FILENO, F_SETFL, flags & ~O_NONBLOCK);
  }
  if (t->el == NULL || t->hist == NULL || t->winch == NULL || t->kick == NULL || r) {
    if (t->el) el_end(t->el);
    if (t->hist) history_end(t->hist);
    t->el = NULL;
    t->hist = NULL;
    if (r == 0) {
      uv_close((uv_handle_t *)t->poll, free_handle);
    } else {
      gm_free(t->poll, sizeof *t->poll);
    }
    gm_free(t->winch, sizeof *t->winch);
    gm_free(t->kick, sizeof *t->kick);
    t->poll = NULL;
    t->winch = NULL;
    t->kick = NULL;
    return gm_push_fail(L, r ? GM_EIO : GM_ENOMEM, r ? uv_strerror(r) : NULL);
  }
  t->poll->data = t;
  uv_signal_init(&loop->uv, t->winch);
  t->winch->data = t;
  uv_signal_start(t->winch, on_winch, SIGWINCH);
  uv_unref((uv_handle_t *)t->winch);
  uv_timer_init(&loop->uv, t->kick);
  t->kick->data = t;

  HistEvent ev;
  history(t->hist, &ev, H_SETSIZE, max_history > 0 ? (int)max_history : 1000);
  history(t->hist, &ev, H_SETUNIQUE, 1);
  if (t->history) history(t->hist, &ev, H_LOAD, t->history);
  el_set(t->el, EL_CLIENTDATA, t);
  el_set(t->el, EL_GETCFN, get_char);
  el_set(t->el, EL_PROMPT, prompt_of);
  el_set(t->el, EL_EDITOR, "emacs");
  el_set(t->el, EL_SIGNAL, 0); /* SIGINT and the others are the REPL's */
  el_set(t->el, EL_HIST, history, t->hist);
  bind_keys(t->el);
  el_source(t->el, NULL);
  t->open = true;
  active = t;
  gm_closable_add(loop, &t->closable, on_loop_close);
  return 1;
}

/* A read that was cancelled takes its prompt away. */
static void read_abandoned(gm_waiter_t *slot) {
  uninstall(gm_container_of(slot, term_t, reader));
}

static int term_read(lua_State *L) {
  term_t *t = check_term(L, 1);
  size_t n;
  const char *prompt = luaL_optlstring(L, 2, "> ", &n);
  RETURN_IF_CLOSED(L, t);
  if (t->reader.task) return luaL_error(L, "another task is already reading");
  if (t->eof) return gm_push_fail(L, GM_ECLOSED, "end of input");
  gm_task_t *task = gm_task_current(L, t->rt);
  /* a cancellation pending fails the wait at once: show no prompt */
  if (task->cancel_pending || task->rt->sticky_cancel)
    return gm_task_wait(L, task, NULL, NULL, UINT64_MAX);
  if (n >= sizeof t->prompt) n = sizeof t->prompt - 1;
  memcpy(t->prompt, prompt, n);
  t->prompt[n] = '\0';
  fflush(stdout);
  int r = uv_poll_start(t->poll, UV_READABLE, on_poll);
  if (r) return gm_push_fail(L, GM_EIO, uv_strerror(r));
  t->polling = true;
  el_set(t->el, EL_UNBUFFERED, 1); /* draws the prompt */
  t->installed = true;
  /* keys typed ahead (a paste) are edited once this task waits */
  if (t->in_len > 0 || t->hangup) uv_timer_start(t->kick, on_kick, 0, 0);
  t->reader.on_detach = read_abandoned;
  return gm_waiter_wait(L, &t->reader, task, UINT64_MAX);
}

static int term_interrupt(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  if (!t->installed || t->reader.task == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  write_out("^C\n", 3);
  fflush(stdout);
  leave(t);
  t->in_len = 0; /* what was typed ahead goes too */
  gm_waiter_fail(&t->reader, GM_ECANCELED, "interrupted");
  lua_pushboolean(L, 1);
  return 1;
}

static int term_print(lua_State *L) {
  term_t *t = check_term(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  RETURN_IF_CLOSED(L, t);
  if (n > 0) above_prompt(t, stdout, s, n);
  return 0;
}

static int term_add_history(lua_State *L) {
  term_t *t = check_term(L, 1);
  const char *line = luaL_checkstring(L, 2);
  RETURN_IF_CLOSED(L, t);
  if (*line == '\0') {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* what was typed may hold a registered secret (a token): scrubbed */
  size_t len = strlen(line), cap = gm_log_scrub_bound(len);
  char *clean = gm_malloc(cap);
  if (clean == NULL) return gm_push_fail(L, GM_ENOMEM, NULL);
  gm_log_scrub(line, len, clean, cap);
  HistEvent ev;
  history(t->hist, &ev, H_ENTER, clean);
  gm_free(clean, cap);
  if (t->history) {
    int e = history(t->hist, &ev, H_SAVE, t->history);
    chmod(t->history, 0600); /* what was typed may be private */
    if (e < 0) return gm_push_fail(L, GM_EIO, ev.str ? ev.str : "cannot save the history");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int term_log_here(lua_State *L) {
  term_t *t = check_term(L, 1);
  RETURN_IF_CLOSED(L, t);
  bool on = lua_toboolean(L, 2);
  if (on != t->log_here) gm_log_set_sink(on ? log_sink : NULL, on ? t : NULL);
  t->log_here = on;
  return 0;
}

static int term_l_close(lua_State *L) {
  term_close(luaL_checkudata(L, 1, READLINE_MT));
  return 0;
}

static int term_gc(lua_State *L) {
  term_t *t = luaL_checkudata(L, 1, READLINE_MT);
  term_close(t);
  if (t->history) gm_free(t->history, t->history_len + 1);
  t->history = NULL;
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
