#include "io/unix.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/log.h"
#include "io/tcp.h"
#include "proto/alloc.h"
#include "proto/container.h"
#include "proto/errors.h"

#define BACKLOG 16

/* {=============== streams =============== */

static void ustream_free(gm_ustream_t *u) {
  gm_buf_free(&u->in);
  gm_free(u, sizeof *u);
}

/* The owner hears nothing once it has let go. */
#define NOTIFY(u, cb, ...) \
  do { \
    if (!(u)->released && (u)->h->cb) (u)->h->cb((u), ##__VA_ARGS__); \
  } while (0)

static void s_on_read(gm_stream_t *s, uint8_t *data, size_t len) {
  gm_ustream_t *u = s->data;
  if (gm_buf_append(&u->in, data, len)) {
    u->in_err = GM_ENOMEM;
    gm_stream_pause(s);
  } else if (u->in.len >= GM_USTREAM_READ_AHEAD) {
    gm_stream_pause(s); /* until the owner takes the buffer */
  }
  NOTIFY(u, on_input);
}

/* The peer's end of input, a read error or a failed write. */
static void s_on_end(gm_stream_t *s, int err, const char *why) {
  (void)why;
  gm_ustream_t *u = s->data;
  if (u->in_err == 0) u->in_err = err;
  if (err != GM_ECLOSED && u->write_err == 0) {
    u->write_err = err;
    NOTIFY(u, on_flushed);
  }
  NOTIFY(u, on_input);
}

static void s_on_written(gm_stream_t *s) {
  gm_ustream_t *u = s->data;
  NOTIFY(u, on_flushed);
}

static void s_on_closed(gm_stream_t *s) {
  gm_ustream_t *u = s->data;
  u->handle_closed = true;
  gm_closable_remove(&u->closable);
  if (u->released) ustream_free(u);
}

static const gm_stream_handler_t stream_handler = {
    .on_read = s_on_read,
    .on_end = s_on_end,
    .on_written = s_on_written,
    .on_closed = s_on_closed,
};

/* A run that ends closes what is left, even a graceful close under way. */
static void on_loop_close(gm_closable_t *c) {
  gm_ustream_t *u = gm_container_of(c, gm_ustream_t, closable);
  gm_ustream_close(u, false);
  gm_stream_reset(&u->stream);
}

gm_ustream_t *gm_ustream_new(gm_loop_t *l, const gm_ustream_handler_t *h,
                             void *data) {
  gm_ustream_t *u = gm_calloc(1, sizeof *u);
  uv_pipe_t *pipe = gm_malloc(sizeof *pipe);
  if (u == NULL || pipe == NULL) {
    gm_free(u, sizeof *u);
    gm_free(pipe, sizeof *pipe);
    return NULL;
  }
  u->loop = l;
  u->h = h;
  u->data = data;
  uv_pipe_init(&l->uv, pipe, 0);
  gm_stream_init_pipe(&u->stream, l, pipe, &stream_handler, u);
  u->stream.half_close = true;
  gm_closable_add(l, &u->closable, on_loop_close);
  return u;
}

static void opened(gm_ustream_t *u) {
  u->open = true;
  gm_stream_resume(&u->stream);
}

static void on_connected(uv_connect_t *req, int status) {
  gm_ustream_t *u = req->data;
  if (!u->connecting) return; /* closed meanwhile: the handle is going */
  u->connecting = false;
  gm_loop_progress(u->loop);
  if (status == 0) {
    opened(u);
    NOTIFY(u, on_connected, 0, NULL);
    return;
  }
  int e = status == UV_ENOENT || status == UV_ECONNREFUSED ? GM_ECONNREFUSED
                                                           : gm_uv_error(status);
  NOTIFY(u, on_connected, e, uv_strerror(status));
}

void gm_ustream_connect(gm_ustream_t *u, const char *path) {
  u->connecting = true;
  u->connect_req.data = u;
  uv_pipe_connect(&u->connect_req, (uv_pipe_t *)u->stream.handle, path,
                  on_connected);
}

int gm_ustream_open_fd(gm_ustream_t *u, int fd, const char **why) {
  int r = uv_pipe_open((uv_pipe_t *)u->stream.handle, fd);
  if (r) {
    *why = uv_strerror(r);
    return gm_uv_error(r);
  }
  opened(u);
  return 0;
}

int gm_ustream_write(gm_ustream_t *u, const void *data, size_t len,
                     const char **why) {
  *why = NULL;
  if (!u->open) {
    *why = "the stream is closed";
    return GM_ECLOSED;
  }
  if (u->write_err) return u->write_err;
  if (len == 0) return 0;
  int r = gm_stream_write(&u->stream, data, len, NULL, 0);
  if (r && u->write_err == 0) u->write_err = r; /* a flush fails with it */
  return r;
}

bool gm_ustream_flushed(const gm_ustream_t *u) {
  return u->stream.written == u->stream.queued;
}

void gm_ustream_consumed(gm_ustream_t *u) {
  gm_buf_clear(&u->in);
  gm_buf_compact(&u->in);
  if (u->open && u->in_err == 0) gm_stream_resume(&u->stream);
}

void gm_ustream_close(gm_ustream_t *u, bool graceful) {
  if (u->closed) return;
  u->closed = true;
  bool was_open = u->open;
  u->open = false;
  u->connecting = false;
  if (u->in_err == 0) u->in_err = GM_ECLOSED;
  /* Shut down (FIN after the queued writes) only when writes are queued:
   * an inherited socket may be stdout too, which a shutdown would end.
   * The closable stays until the handle is closed: a run that ends during
   * a graceful close still closes it, abruptly. */
  if (graceful && was_open && !gm_ustream_flushed(u))
    gm_stream_close(&u->stream);
  else
    gm_stream_reset(&u->stream); /* for a pipe: a plain close */
}

void gm_ustream_release(gm_ustream_t *u) {
  u->released = true;
  gm_ustream_close(u, true);
  if (u->handle_closed) ustream_free(u);
}

static int peer_cred(const gm_ustream_t *u, struct ucred *cred) {
  uv_os_fd_t fd;
  socklen_t n = sizeof *cred;
  if (uv_fileno((const uv_handle_t *)u->stream.handle, &fd) != 0) return GM_ECLOSED;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &n) != 0) return GM_EIO;
  return 0;
}

int gm_ustream_peer_uid(const gm_ustream_t *u, uid_t *uid, const char **why) {
  struct ucred cred;
  int r = u->open ? peer_cred(u, &cred) : GM_ECLOSED;
  if (r == GM_ECLOSED) *why = "the stream is closed";
  else if (r) *why = strerror(errno);
  else *uid = cred.uid;
  return r;
}

/* }=============== */

/* {=============== listening =============== */

bool gm_unix_path_fits(const char *path) {
  struct sockaddr_un a;
  return strlen(path) < sizeof a.sun_path;
}

static void free_pipe(uv_handle_t *h) { gm_free(h, sizeof(uv_pipe_t)); }

static void on_connection(uv_stream_t *server, int status) {
  gm_ulistener_t *l = server->data;
  if (status < 0) {
    gm_log(GM_LOG_WARN, NULL, "REPL socket %s: %s", l->path, uv_strerror(status));
    return;
  }
  gm_loop_progress(l->loop);
  gm_ustream_t *u = gm_ustream_new(l->loop, l->h, NULL);
  if (u == NULL) {
    gm_log(GM_LOG_WARN, NULL, "REPL socket %s: out of memory", l->path);
    return;
  }
  if (uv_accept(server, u->stream.handle) != 0) {
    gm_ustream_release(u);
    return;
  }
  u->open = true;
  struct ucred cred = {.pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1};
  if (peer_cred(u, &cred) != 0 || cred.uid != geteuid()) {
    gm_log(GM_LOG_WARN, NULL,
           "REPL socket %s: refused a peer of another user (uid %ld, pid %ld)",
           l->path, (long)cred.uid, (long)cred.pid);
    u->released = true;
    gm_ustream_close(u, false);
    return;
  }
  gm_stream_resume(&u->stream);
  l->on_accept(l, u);
}

/* What is at path: nothing (0), a stale socket that was removed (0), or
 * a reason not to touch it (GM_E* code, message in why). */
static int clear_path(const char *path, char *why, size_t cap) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    snprintf(why, cap, "%s: %s", path, strerror(errno));
    return GM_EIO;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(why, cap, "%s exists and is not a socket: not replacing it", path);
    return GM_EADDRINUSE;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, cap, "socket: %s", strerror(errno));
    return GM_EIO;
  }
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path, strlen(path) + 1);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  if (r == 0) {
    snprintf(why, cap, "another process is listening on %s", path);
    return GM_EADDRINUSE;
  }
  if (e != ECONNREFUSED) {
    snprintf(why, cap, "%s: %s", path, strerror(e));
    return GM_EIO;
  }
  if (unlink(path) != 0 && errno != ENOENT) {
    snprintf(why, cap, "cannot remove the stale socket %s: %s", path, strerror(errno));
    return GM_EIO;
  }
  return 0;
}

static void listener_on_loop_close(gm_closable_t *c) {
  gm_ulistener_stop(gm_container_of(c, gm_ulistener_t, closable));
}

int gm_ulistener_start(gm_ulistener_t *l, gm_loop_t *loop, const char *path,
                       const gm_ustream_handler_t *h, gm_uaccept_cb cb,
                       void *data, char *why, size_t cap) {
  memset(l, 0, sizeof *l);
  l->loop = loop;
  l->h = h;
  l->on_accept = cb;
  l->data = data;
  if (!gm_unix_path_fits(path)) {
    snprintf(why, cap, "socket path too long");
    return GM_EINVAL;
  }
  int err = clear_path(path, why, cap);
  if (err) return err;
  l->path_len = strlen(path);
  l->path = gm_strndup(path, l->path_len);
  l->pipe = gm_malloc(sizeof *l->pipe);
  if (l->path == NULL || l->pipe == NULL) {
    gm_ulistener_free(l);
    gm_free(l->pipe, sizeof *l->pipe);
    l->pipe = NULL;
    snprintf(why, cap, "out of memory");
    return GM_ENOMEM;
  }
  uv_pipe_init(&loop->uv, l->pipe, 0);
  l->pipe->data = l;
  mode_t old = umask(077);
  int r = uv_pipe_bind(l->pipe, path);
  umask(old);
  if (r == 0) r = uv_listen((uv_stream_t *)l->pipe, BACKLOG, on_connection);
  if (r) {
    uv_close((uv_handle_t *)l->pipe, free_pipe);
    l->pipe = NULL;
    snprintf(why, cap, "%s: %s", path, uv_strerror(r));
    gm_ulistener_free(l);
    return gm_uv_error(r);
  }
  struct stat st;
  if (lstat(path, &st) == 0) {
    l->dev = st.st_dev;
    l->ino = st.st_ino;
  }
  chmod(path, 0600);
  uv_unref((uv_handle_t *)l->pipe);
  l->open = true;
  gm_closable_add(loop, &l->closable, listener_on_loop_close);
  return 0;
}

void gm_ulistener_stop(gm_ulistener_t *l) {
  if (!l->open) return;
  l->open = false;
  gm_closable_remove(&l->closable);
  uv_close((uv_handle_t *)l->pipe, free_pipe);
  l->pipe = NULL;
  struct stat st;
  if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
    unlink(l->path);
}

void gm_ulistener_free(gm_ulistener_t *l) {
  if (l->path) gm_free(l->path, l->path_len + 1);
  l->path = NULL;
}

/* }=============== */

const char *gm_fd_kind(int fd) {
  switch (uv_guess_handle(fd)) {
  case UV_TTY:
    return "tty";
  case UV_NAMED_PIPE:
    return "pipe";
  case UV_FILE:
    return "file";
  case UV_TCP:
    return "tcp";
  case UV_UDP:
    return "udp";
  default:
    return "unknown";
  }
}
