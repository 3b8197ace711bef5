/* core.write_file_atomic(path, data[, mode = 0600]): writes a temporary
 * file beside path (a fresh random name, O_EXCL | O_NOFOLLOW) with the
 * given mode, syncs it, and renames it over path, so a reader sees the old file or the new one, never half of one.
 * Session files hold resumable sessions: they are private by default. */
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

static int l_write_file_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int mode = (int)luaL_optinteger(L, 3, 0600);
  char tmp[4096];
  int fd = -1;
  /* A random name, created here and nowhere else: a predictable one let a
   * planted symlink redirect the write (and the chmod) to its target. */
  for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
    uint8_t r[8];
    if (gm_random_bytes(r, sizeof r)) return gm_push_fail(L, GM_EIO, "no randomness");
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.", path);
    if (n < 0 || (size_t)n + 2 * sizeof r >= sizeof tmp)
      return gm_push_fail(L, GM_EINVAL, "path too long");
    for (size_t i = 0; i < sizeof r; i++)
      snprintf(tmp + n + 2 * i, 3, "%02x", r[i]);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) return gm_push_fail(L, GM_EIO, strerror(errno));
  }
  if (fd < 0) return gm_push_fail(L, GM_EIO, "cannot create a temporary file");
  fchmod(fd, (mode_t)mode); /* whatever the umask says */
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      return gm_push_fail(L, GM_EIO, strerror(e));
    }
    off += (size_t)n;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return gm_push_fail(L, GM_EIO, strerror(e));
  }
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
                                   {"file_mode", l_file_mode},
                                   {NULL, NULL}};
  gm_rt_setfuncs(L, funcs);
  return 0;
}
