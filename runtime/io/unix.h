/* Unix-domain sockets and inherited descriptors as buffered byte streams
 * for a local peer (the REPL's attach socket, stdin when it is a pipe).
 *
 * A gm_ustream_t is a gm_stream_t over a uv_pipe_t plus an input buffer.
 * Backpressure, all of it: the stream reads ahead into `in` while its
 * reader is busy; when `in` holds GM_USTREAM_READ_AHEAD bytes or more the
 * socket is paused (gm_stream_pause: libuv stops reading, so the kernel's
 * buffer fills and the peer's writes block). The owner takes the buffer
 * whole with gm_ustream_consumed, which empties it and resumes reading.
 * Nothing else pauses or resumes the socket. Writes are queued without a
 * bound: the peer is local and the owner flushes when it must.
 *
 * The peer's end of input leaves writing open (half close), and a graceful
 * close sends what is queued before the socket goes. */
#ifndef GM_UNIX_H
#define GM_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "io/loop.h"
#include "io/stream.h"
#include "proto/buf.h"

#define GM_USTREAM_READ_AHEAD (1024 * 1024)

typedef struct gm_ustream_s gm_ustream_t;

typedef struct gm_ustream_handler_s {
  /* gm_ustream_connect finished: err 0, or a GM_E* code and why. */
  void (*on_connected)(gm_ustream_t *u, int err, const char *why);
  /* Bytes arrived in `in`, or input ended (in_err set). */
  void (*on_input)(gm_ustream_t *u);
  /* Every queued byte reached the kernel, or writing failed (write_err). */
  void (*on_flushed)(gm_ustream_t *u);
} gm_ustream_handler_t;

struct gm_ustream_s {
  gm_loop_t *loop;
  const gm_ustream_handler_t *h;
  void *data;
  gm_buf_t in;    /* read ahead, waiting for its reader */
  int in_err;     /* input ended: GM_ECLOSED or another GM_E* code */
  int write_err;  /* the first failed write */
  bool open;      /* connected (or opened) and not closed by us */
  /* private */
  bool connecting;
  bool closed; /* gm_ustream_close ran */
  bool handle_closed;
  bool released;
  gm_stream_t stream;
  uv_connect_t connect_req;
  gm_closable_t closable;
};

/* A stream that is not connected yet; NULL when out of memory. The run's
 * end closes it (abruptly). */
gm_ustream_t *gm_ustream_new(gm_loop_t *l, const gm_ustream_handler_t *h,
                             void *data);
/* Connects to the socket at path; on_connected follows (unless the stream
 * is closed first). A refused or missing socket is GM_ECONNREFUSED. */
void gm_ustream_connect(gm_ustream_t *u, const char *path);
/* Adopts an inherited pipe or socket; 0 or a GM_E* code (why: a message). */
int gm_ustream_open_fd(gm_ustream_t *u, int fd, const char **why);
/* Queues bytes (copied). 0, or a GM_E* code (why: a message or NULL). */
int gm_ustream_write(gm_ustream_t *u, const void *data, size_t len,
                     const char **why);
/* Every queued byte reached the kernel. */
bool gm_ustream_flushed(const gm_ustream_t *u);
/* The owner took every byte of `in`: it is emptied and reading resumes. */
void gm_ustream_consumed(gm_ustream_t *u);
/* Ends the stream; graceful sends what is queued first. Idempotent. */
void gm_ustream_close(gm_ustream_t *u, bool graceful);
/* The owner lets go: closes gracefully; u is freed once the handle is. */
void gm_ustream_release(gm_ustream_t *u);
/* The peer's user id (SO_PEERCRED); 0 or a GM_E* code. */
int gm_ustream_peer_uid(const gm_ustream_t *u, uid_t *uid, const char **why);

/* A listening socket. Every peer is checked with SO_PEERCRED: one of
 * another user is refused (and logged). It does not keep a run going. */
typedef struct gm_ulistener_s gm_ulistener_t;
/* u is accepted, open and reading; the callee owns it. */
typedef void (*gm_uaccept_cb)(gm_ulistener_t *l, gm_ustream_t *u);

struct gm_ulistener_s {
  gm_loop_t *loop;
  uv_pipe_t *pipe; /* heap: it outlives the listener until closed */
  gm_uaccept_cb on_accept;
  const gm_ustream_handler_t *h; /* for accepted streams */
  void *data;
  char *path;
  size_t path_len;
  dev_t dev; /* the socket file we made, so stop removes only it */
  ino_t ino;
  bool open;
  gm_closable_t closable;
};

/* Creates the socket under umask 077 (mode 0600). An existing file that
 * is not a socket is never replaced; an existing socket is replaced only
 * when nobody listens on it (a stale one). 0, or a GM_E* code with a
 * message in why. */
int gm_ulistener_start(gm_ulistener_t *l, gm_loop_t *loop, const char *path,
                       const gm_ustream_handler_t *h, gm_uaccept_cb cb,
                       void *data, char *why, size_t cap);
/* Stops listening and removes the socket file (if it is still ours). */
void gm_ulistener_stop(gm_ulistener_t *l);
/* Releases the path; the listener must be stopped. */
void gm_ulistener_free(gm_ulistener_t *l);

/* Whether a Unix socket path fits in sockaddr_un. */
bool gm_unix_path_fits(const char *path);
/* What fd is: "tty", "pipe", "file", "tcp", "udp" or "unknown". */
const char *gm_fd_kind(int fd);

#endif
