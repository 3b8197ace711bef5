/* A child program on the loop: its stdin is fed from memory, its stdout
 * and stderr are collected in memory, and a real-time limit kills it.
 *
 * The owner gets one callback when the process has exited and every pipe
 * is closed, so the results are final. A run that ends takes its children
 * with it (SIGKILL). An owner that lets go of a running process kills it;
 * the memory is released once libuv is done with the handles. */
#ifndef GM_PROCESS_H
#define GM_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "proto/buf.h"

typedef struct gm_process_s gm_process_t;
typedef void (*gm_process_cb)(gm_process_t *p);

typedef struct gm_process_opts_s {
  const char *const *argv; /* NULL-terminated; argv[0] is the program */
  const char *const *env;  /* NULL-terminated NAME=value strings */
  const void *input;       /* copied: written to stdin, which then closes */
  size_t input_len;
  uint64_t timeout_ns;     /* real time, then SIGKILL; UINT64_MAX: none */
} gm_process_opts_t;

struct gm_process_s {
  gm_loop_t *loop;
  gm_process_cb on_finished;
  void *data;
  gm_buf_t out, err; /* what it wrote to stdout and stderr */
  int pid;
  int code;          /* exit status, or 128 + the signal that killed it */
  bool timed_out;    /* killed by the time limit */
  bool exited;
  bool finished;     /* every handle closed: the fields above are final */
  /* private */
  bool released;     /* the owner let go: free when finished */
  int open_handles;
  int64_t status;
  int term_signal;
  char *input;
  size_t input_len;
  uv_process_t process;
  uv_pipe_t pipes[3];
  uv_write_t write_req;
  uv_timer_t kill_timer; /* real time: a process does not run on our clock */
  gm_closable_t closable;
};

/* Starts opts->argv. Returns the process, or NULL with *err set (a GM_E*
 * code: GM_ENOMEM, or GM_EIO when the program cannot start) and *why (when
 * why is not NULL) the system's static reason ("no such file or
 * directory", "permission denied"). */
gm_process_t *gm_process_spawn(gm_loop_t *l, const gm_process_opts_t *opts,
                               gm_process_cb on_finished, void *data,
                               int *err, const char **why);
/* Sends a signal (a SIG* number) unless it has exited. */
void gm_process_kill(gm_process_t *p, int signum);
/* The owner is done with it: a running process is killed, and p is freed
 * now or when it finishes (on_finished no longer runs). */
void gm_process_release(gm_process_t *p);

#endif
