/* The line editor on the loop (see tty.h): libedit in unbuffered mode on
 * a uv_poll of the terminal.
 *
 * Why libedit's own API (histedit.h) and not its readline emulation:
 * Debian's lua5.4 executable links GNU libreadline, whose rl_* and
 * history functions then come first in symbol lookup. Calls to
 * rl_callback_read_char() from core.so, and the emulation's own
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
#include "io/tty.h"

#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include "io/log.h"
#include "proto/alloc.h"
#include "proto/container.h"
#include "proto/errors.h"

#define PROMPT_MAX 256
#define IN_MAX 4096

struct gm_tty_s {
  gm_loop_t *loop;
  gm_tty_cb cb;
  void *data;
  FILE *out, *err;
  int fd; /* the terminal's input */
  EditLine *el;
  History *hist;
  uv_poll_t poll;
  uv_signal_t winch;
  uv_timer_t kick; /* a read starts on what is already buffered */
  int open_handles;
  gm_closable_t closable;
  char *history;
  size_t history_len;
  char prompt[PROMPT_MAX];
  unsigned char in[IN_MAX]; /* read from the terminal, not yet given to libedit */
  size_t in_len;
  bool hangup;    /* the input ended: what is buffered is the last */
  int fd_flags;   /* the fd's flags before the poll changed them */
  int eof_char;   /* the tty's VEOF, what el_gets returns for Ctrl-D */
  bool open;
  bool released;
  bool installed; /* unbuffered mode: the prompt shows, a read is on */
  bool polling;
  bool eof;
  bool log_here;
};

static gm_tty_t *active; /* the open terminal, if any */

bool gm_tty_busy(void) { return active != NULL; }

static char *prompt_of(EditLine *el) {
  gm_tty_t *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  return t ? t->prompt : "";
}

static void write_out(gm_tty_t *t, const char *s, size_t n) {
  fwrite(s, 1, n, t->out);
}

static void stop_polling(gm_tty_t *t) {
  if (t->polling) {
    uv_poll_stop(&t->poll);
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
static void leave(gm_tty_t *t) {
  if (!t->installed) return;
  el_set(t->el, EL_UNBUFFERED, 0);
  t->installed = false;
  stop_polling(t);
  struct termios tio;
  if (tcgetattr(t->fd, &tio) == 0) {
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON);
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    tcsetattr(t->fd, TCSANOW, &tio);
  }
}

/* Takes the prompt away: its line is erased. */
static void uninstall(gm_tty_t *t) {
  if (!t->installed) return;
  leave(t);
  write_out(t, "\r\x1b[K", 4);
  fflush(t->out);
}

/* The read is over (leave() ran): the owner hears how. */
static void deliver(gm_tty_t *t, gm_tty_event_t ev, const char *line, size_t len) {
  t->cb(t->data, ev, line, len);
}

static void on_eof(gm_tty_t *t) {
  leave(t);
  t->eof = true;
  write_out(t, "\n", 1);
  fflush(t->out);
  deliver(t, GM_TTY_EOF, NULL, 0);
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

static void consume(gm_tty_t *t, size_t n) {
  memmove(t->in, t->in + n, t->in_len - n);
  t->in_len -= n;
}

/* EL_GETCFN: the next character from the buffer. Should libedit want more
 * than a whole key (a binding longer than the sequence), the terminal is
 * read, blocking: a rare and short wait. */
static int get_char(EditLine *el, wchar_t *wc) {
  gm_tty_t *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  if (t == NULL) return -1;
  while (t->in_len == 0 || !key_complete(t->in, t->in_len)) {
    if (t->hangup || t->in_len == sizeof t->in) break;
    ssize_t r = read(t->fd, t->in + t->in_len, 1);
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
static bool edit_one(gm_tty_t *t) {
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
  fflush(t->out);
  deliver(t, GM_TTY_LINE, line, len - 1);
  gm_free(line, len);
  return false;
}

/* Gives libedit every whole key buffered, up to the end of a line: the
 * rest waits for the next read. */
static void edit_buffered(gm_tty_t *t) {
  while (t->installed && key_complete(t->in, t->in_len))
    if (!edit_one(t)) return;
  if (t->installed && t->hangup) on_eof(t);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  gm_tty_t *t = h->data;
  gm_loop_progress(t->loop);
  if (!t->installed) {
    stop_polling(t);
    return;
  }
  if (status < 0) {
    t->hangup = true;
  } else if (t->in_len < sizeof t->in) {
    /* readable: this read does not block */
    ssize_t r = read(t->fd, t->in + t->in_len, sizeof t->in - t->in_len);
    if (r > 0)
      t->in_len += (size_t)r;
    else if (r == 0 || (errno != EAGAIN && errno != EINTR))
      t->hangup = true;
  }
  edit_buffered(t);
}

static void on_kick(uv_timer_t *h) {
  gm_tty_t *t = h->data;
  gm_loop_progress(t->loop);
  edit_buffered(t);
  /* libuv runs timers before it polls: a line delivered here must not
   * wait in that poll for unrelated I/O (as loop.c's wakeup does) */
  uv_stop(h->loop);
}

/* }=============== */

static void on_winch(uv_signal_t *h, int signum) {
  (void)signum;
  gm_tty_t *t = h->data;
  if (t->installed) {
    el_resize(t->el);
    el_set(t->el, EL_REFRESH);
  }
}

/* Text above the prompt: the prompt's line is erased, the text written,
 * and libedit draws the prompt and the typed line again below it. */
static void above_prompt(gm_tty_t *t, FILE *f, const char *s, size_t n) {
  if (t->installed) {
    write_out(t, "\r\x1b[K", 4);
    fflush(t->out);
  }
  fwrite(s, 1, n, f);
  if (t->installed && n > 0 && s[n - 1] != '\n') fwrite("\n", 1, 1, f);
  fflush(f);
  if (t->installed) el_set(t->el, EL_REFRESH);
}

/* Log lines while the REPL runs: above the prompt, on stderr. */
static void log_sink(void *ud, gm_log_level_t level, const char *line, size_t len) {
  (void)level;
  gm_tty_t *t = ud;
  above_prompt(t, t->err, line, len);
}


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

static void free_tty(gm_tty_t *t) {
  if (t->history) gm_free(t->history, t->history_len + 1);
  gm_free(t, sizeof *t);
}

static void on_closed(uv_handle_t *h) {
  gm_tty_t *t = h->data;
  if (--t->open_handles == 0 && t->released) free_tty(t);
}

static void close_handle(gm_tty_t *t, void *h) {
  ((uv_handle_t *)h)->data = t;
  uv_close(h, on_closed);
}

void gm_tty_close(gm_tty_t *t) {
  if (!t->open) return;
  t->open = false;
  gm_closable_remove(&t->closable);
  if (t->log_here) {
    gm_log_set_sink(NULL, NULL);
    t->log_here = false;
  }
  bool reading = t->installed;
  uninstall(t);
  close_handle(t, &t->poll);
  close_handle(t, &t->winch);
  close_handle(t, &t->kick);
  el_end(t->el); /* restores the terminal */
  history_end(t->hist);
  t->el = NULL;
  t->hist = NULL;
  if (t->fd_flags >= 0) fcntl(t->fd, F_SETFL, t->fd_flags);
  fflush(t->out);
  if (active == t) active = NULL;
  if (reading) deliver(t, GM_TTY_CLOSED, NULL, 0);
}

bool gm_tty_closed(const gm_tty_t *t) { return !t->open; }

void gm_tty_release(gm_tty_t *t) {
  gm_tty_close(t);
  if (t->open_handles == 0) {
    free_tty(t);
    return;
  }
  t->released = true;
}

static void on_loop_close(gm_closable_t *c) {
  gm_tty_close(gm_container_of(c, gm_tty_t, closable));
}

gm_tty_t *gm_tty_open(gm_loop_t *l, const gm_tty_opts_t *o, gm_tty_cb cb,
                      void *data, int *err, const char **why) {
  *why = NULL;
  int fd = fileno(o->in);
  struct termios tio;
  if (fd < 0 || !isatty(fd) || tcgetattr(fd, &tio) != 0) {
    *err = GM_EINVAL;
    *why = "stdin is not a terminal";
    return NULL;
  }
  gm_tty_t *t = gm_malloc(sizeof *t);
  if (t == NULL) {
    *err = GM_ENOMEM;
    return NULL;
  }
  memset(t, 0, sizeof *t);
  t->loop = l;
  t->cb = cb;
  t->data = data;
  t->out = o->out;
  t->err = o->err;
  t->fd = fd;
  t->fd_flags = -1;
  t->eof_char = tio.c_cc[VEOF] ? tio.c_cc[VEOF] : 4;
  if (o->history) {
    t->history_len = strlen(o->history);
    t->history = gm_strndup(o->history, t->history_len);
    if (t->history == NULL) {
      free_tty(t);
      *err = GM_ENOMEM;
      return NULL;
    }
  }
  /* UTF-8 input needs the user's character set (libedit reads it at
   * el_init); the rest of the C locale stays. */
  setlocale(LC_CTYPE, "");
  t->el = el_init("gloaming", o->in, o->out, o->err);
  t->hist = history_init();
  int flags = fcntl(fd, F_GETFL);
  int r = t->el && t->hist ? uv_poll_init(&l->uv, &t->poll, fd) : UV_ENOMEM;
  /* uv_poll_init made the fd non-blocking, and a terminal's stdin and
   * stdout are one open file: stdio would drop output that does not fit
   * the tty's buffer. Only readiness is polled, so it stays blocking. */
  if (r == 0 && flags >= 0) {
    t->fd_flags = flags;
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  if (r) {
    if (t->el) el_end(t->el);
    if (t->hist) history_end(t->hist);
    free_tty(t);
    *err = r == UV_ENOMEM ? GM_ENOMEM : GM_EIO;
    if (r != UV_ENOMEM) *why = uv_strerror(r);
    return NULL;
  }
  t->open_handles = 3;
  t->poll.data = t;
  uv_signal_init(&l->uv, &t->winch);
  t->winch.data = t;
  uv_signal_start(&t->winch, on_winch, SIGWINCH);
  uv_unref((uv_handle_t *)&t->winch);
  uv_timer_init(&l->uv, &t->kick);
  t->kick.data = t;

  HistEvent ev;
  history(t->hist, &ev, H_SETSIZE, o->max_history > 0 ? o->max_history : 1000);
  history(t->hist, &ev, H_SETUNIQUE, 1);
  if (t->history) history(t->hist, &ev, H_LOAD, t->history);
  el_set(t->el, EL_CLIENTDATA, t);
  el_set(t->el, EL_GETCFN, get_char);
  el_set(t->el, EL_PROMPT, prompt_of);
  el_set(t->el, EL_EDITOR, "emacs");
  el_set(t->el, EL_SIGNAL, 0); /* SIGINT and the others are the owner's */
  el_set(t->el, EL_HIST, history, t->hist);
  bind_keys(t->el);
  el_source(t->el, NULL);
  t->open = true;
  active = t;
  gm_closable_add(l, &t->closable, on_loop_close);
  return t;
}

int gm_tty_read(gm_tty_t *t, const char *prompt, const char **why) {
  *why = NULL;
  if (!t->open) {
    *why = "the terminal is closed";
    return GM_ECLOSED;
  }
  if (t->eof) return GM_ECLOSED;
  size_t n = strlen(prompt);
  if (n >= sizeof t->prompt) n = sizeof t->prompt - 1;
  memcpy(t->prompt, prompt, n);
  t->prompt[n] = '\0';
  fflush(t->out);
  int r = uv_poll_start(&t->poll, UV_READABLE, on_poll);
  if (r) {
    *why = uv_strerror(r);
    return GM_EIO;
  }
  t->polling = true;
  el_set(t->el, EL_UNBUFFERED, 1); /* draws the prompt */
  t->installed = true;
  /* keys typed ahead (a paste) are edited from the loop, not inside the
   * caller: cb never runs before gm_tty_read returns */
  if (t->in_len > 0 || t->hangup) uv_timer_start(&t->kick, on_kick, 0, 0);
  return 0;
}

bool gm_tty_ended(const gm_tty_t *t) { return t->eof; }

void gm_tty_read_stop(gm_tty_t *t) { uninstall(t); }

bool gm_tty_interrupt(gm_tty_t *t) {
  if (!t->installed) return false;
  write_out(t, "^C\n", 3);
  fflush(t->out);
  leave(t);
  t->in_len = 0; /* what was typed ahead goes too */
  return true;
}

void gm_tty_print(gm_tty_t *t, const char *s, size_t n) {
  if (n > 0) above_prompt(t, t->out, s, n);
}

void gm_tty_log_here(gm_tty_t *t, bool on) {
  if (!t->open) return; /* closing took the sink away */
  if (on != t->log_here) gm_log_set_sink(on ? log_sink : NULL, on ? t : NULL);
  t->log_here = on;
}

int gm_tty_add_history(gm_tty_t *t, const char *line, const char **why) {
  *why = NULL;
  if (!t->open) {
    *why = "the terminal is closed";
    return GM_ECLOSED;
  }
  /* what was typed may hold a registered secret (a token): scrubbed */
  size_t len = strlen(line), cap = gm_log_scrub_bound(len);
  char *clean = gm_malloc(cap);
  if (clean == NULL) return GM_ENOMEM;
  gm_log_scrub(line, len, clean, cap);
  HistEvent ev;
  history(t->hist, &ev, H_ENTER, clean);
  gm_free(clean, cap);
  if (t->history) {
    int e = history(t->hist, &ev, H_SAVE, t->history);
    chmod(t->history, 0600); /* what was typed may be private */
    if (e < 0) {
      *why = ev.str ? ev.str : "cannot save the history";
      return GM_EIO;
    }
  }
  return 0;
}
