/* core.write_file_atomic(path, data[, mode = 0600]): writes a temporary
 * file beside path (a fresh random name, O_EXCL | O_NOFOLLOW) with the
 * given mode, syncs it, and renames it over path, so a reader sees the old file or the new one, never half of one.
 * Session files hold resumable sessions: they are private by default.
 * core.check_writable(path): whether write_file_atomic could write path,
 * found by doing its first step, so a bad path is reported at start.
 * Failures say which step failed and why (strerror of that step). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/crypto.h"
#include "lua/rt.h"
#include "proto/errors.h"

/* Pushes "<what> <path's folder>: <strerror(e)>" as a failure. */
static int fail_in_dir(lua_State *L, const char *what, const char *path, int e) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    lua_pushfstring(L, "%s .: %s", what, strerror(e));
  else
    lua_pushfstring(L, "%s %s: %s", what,
                    slash == path ? "/" : lua_pushlstring(L, path, (size_t)(slash - path)),
                    strerror(e));
  return gm_push_fail(L, GM_EIO, lua_tostring(L, -1));
}

/* Opens a fresh temporary file beside path into tmp; -1 after pushing a
 * failure (3 values), else the descriptor. */
static int open_temp(lua_State *L, const char *path, int mode, char *tmp, size_t size) {
  struct stat st;
  /* renaming over a folder fails only after the write: say it first */
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    gm_push_fail(L, GM_EIO, "is a directory");
    return -1;
  }
  /* A random name, created here and nowhere else: a predictable one let a
   * planted symlink redirect the write (and the chmod) to its target. */
  for (int attempt = 0; attempt < 8; attempt++) {
    uint8_t r[8];
    if (gm_random_bytes(r, sizeof r)) {
      gm_push_fail(L, GM_EIO, "no randomness");
      return -1;
    }
    int n = snprintf(tmp, size, "%s.tmp.", path);
    if (n < 0 || (size_t)n + 2 * sizeof r >= size) {
      gm_push_fail(L, GM_EINVAL, "path too long");
      return -1;
    }
    for (size_t i = 0; i < sizeof r; i++)
      snprintf(tmp + n + 2 * i, 3, "%02x", r[i]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
      fail_in_dir(L, "cannot create a temporary file in", path, errno);
      return -1;
    }
  }
  gm_push_fail(L, GM_EIO, "cannot create a temporary file");
  return -1;
}

/* Pushes "<step>: <strerror(e)>" as a failure after removing tmp. */
static int fail_step(lua_State *L, const char *step, const char *tmp, int e) {
  unlink(tmp);
  lua_pushfstring(L, "%s: %s", step, strerror(e));
  return gm_push_fail(L, GM_EIO, lua_tostring(L, -1));
}

static int l_write_file_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int mode = (int)luaL_optinteger(L, 3, 0600);
  char tmp[4096];
  int fd = open_temp(L, path, mode, tmp, sizeof tmp);
  if (fd < 0) return 3;
  fchmod(fd, (mode_t)mode); /* whatever the umask says */
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return fail_step(L, "cannot write", tmp, e);
    }
    off += (size_t)n;
  }
  if (fsync(fd) != 0) {
    int e = errno;
    close(fd);
    return fail_step(L, "cannot sync", tmp, e);
  }
  if (close(fd) != 0) return fail_step(L, "cannot write", tmp, errno);
  if (rename(tmp, path) != 0) return fail_step(L, "cannot replace the file", tmp, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_check_writable(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char tmp[4096];
  int fd = open_temp(L, path, 0600, tmp, sizeof tmp);
  if (fd < 0) return 3;
  close(fd);
  unlink(tmp);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.file_mode(path) -> the permission bits, or nil */
static int l_file_mode(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) != 0) return gm_push_fail(L, GM_EIO, strerror(errno));
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

int gm_open_fs(lua_State *L) {
  static const luaL_Reg funcs[] = {{"write_file_atomic", l_write_file_atomic},
                                   {"check_writable", l_check_writable},
                                   {"file_mode", l_file_mode},
                                   {NULL, NULL}};
  gm_rt_setfuncs(L, funcs);
  return 0;
}
