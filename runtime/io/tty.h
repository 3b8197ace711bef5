/* The REPL's terminal: a line editor (libedit) whose keys come from the
 * loop, so shards, timers and REST keep running while the prompt waits.
 *
 * libedit lives here, in io, and not in the binding: it is terminal I/O
 * (it sets the tty's modes and writes the prompt and its redraws to the
 * terminal itself), and its key source is our poll's input buffer
 * (tty.c, "input"), so the editor and the poll are one state machine.
 * Split between layers, the binding would do terminal I/O again. What
 * stays in runtime/lua is Lua's: which task waits for the line, and the
 * errors it gets.
 *
 * One terminal per process (the tty's modes and stdin's flags are the
 * process's). A run that ends closes it like gm_tty_close; the owner lets
 * go with gm_tty_release. */
#ifndef GM_TTY_H
#define GM_TTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "io/loop.h"

typedef struct gm_tty_s gm_tty_t;

typedef enum {
  GM_TTY_LINE,  /* a line was entered (without its newline) */
  GM_TTY_EOF,   /* Ctrl-D on an empty line, or the input hung up */
  GM_TTY_CLOSED /* the terminal was closed while the read waited */
} gm_tty_event_t;

/* The end of a read: line and len for GM_TTY_LINE only. */
typedef void (*gm_tty_cb)(void *data, gm_tty_event_t ev, const char *line,
                          size_t len);

typedef struct gm_tty_opts_s {
  FILE *in, *out, *err;    /* in must be a terminal; log lines go to err */
  const char *history;     /* the history file, or NULL */
  int max_history;         /* entries kept; <= 0: 1000 */
} gm_tty_opts_t;

/* Whether a terminal is open in this process. */
bool gm_tty_busy(void);

/* Opens the terminal. NULL with *err (GM_EINVAL: not a terminal,
 * GM_ENOMEM, GM_EIO) and *why (a message, or NULL) on failure. */
gm_tty_t *gm_tty_open(gm_loop_t *l, const gm_tty_opts_t *o, gm_tty_cb cb,
                      void *data, int *err, const char **why);

/* Shows the prompt and reads one line: cb runs once, from the loop.
 * Returns 0, GM_ECLOSED once the input has ended or the terminal is
 * closed, or GM_EIO (*why). */
int gm_tty_read(gm_tty_t *t, const char *prompt, const char **why);
/* Whether the input has ended (a read would return GM_ECLOSED). */
bool gm_tty_ended(const gm_tty_t *t);
/* Abandons the read (cb does not run): the prompt's line is erased. */
void gm_tty_read_stop(gm_tty_t *t);
/* Ctrl-C at the prompt: shows "^C", drops what was typed and ends the
 * read (cb does not run). False when no read was on. */
bool gm_tty_interrupt(gm_tty_t *t);

/* Writes text above the prompt, keeping the typed line intact. */
void gm_tty_print(gm_tty_t *t, const char *s, size_t n);
/* Log lines go above the prompt (on err) while on. */
void gm_tty_log_here(gm_tty_t *t, bool on);
/* Adds line to the history, secrets scrubbed, and saves the file. 0,
 * GM_ENOMEM, GM_ECLOSED, or GM_EIO (*why) when the file cannot be
 * written. */
int gm_tty_add_history(gm_tty_t *t, const char *line, const char **why);

/* Restores the terminal (idempotent); a waiting read gets GM_TTY_CLOSED. */
void gm_tty_close(gm_tty_t *t);
bool gm_tty_closed(const gm_tty_t *t);
/* The owner is done with it: closed, and freed once its handles close. */
void gm_tty_release(gm_tty_t *t);

#endif
