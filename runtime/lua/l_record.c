/* Recordings from Lua (lua/gloaming/record.lua wraps them):
 *
 *   core.record_open(path, max_bytes) -> recorder | nil, msg, code
 *   recorder:flush() recorder:close() recorder:stats() -> table
 *   core.read_lines(path) -> reader      reader:next() -> line[, true: no "\n" after it] | nil | nil, msg, code
 *                                        reader:truncated() -> true when a .gz stopped short
 *   core.payload_parts(json) -> op, s, t, d (text)
 *
 * read_lines reads through zlib's gz reader, which takes a plain file as
 * it is: one reader for path.jsonl and path.jsonl.gz. */
#include "lua/l_record.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "lua/rt.h"
#include "proto/envelope.h"
#include "proto/errors.h"

#define RECORDER_MT "gloaming.Recorder"
#define READER_MT "gloaming.RecordReader"

typedef struct {
  gm_record_t *r; /* NULL once closed */
} lrec_t;

gm_record_t *gm_record_opt(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return NULL;
  lrec_t *lr = luaL_checkudata(L, idx, RECORDER_MT);
  if (lr->r == NULL) luaL_error(L, "the recorder is closed");
  return lr->r;
}

static int l_record_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 0);
  if (max < 0) return luaL_argerror(L, 2, "must not be negative");
  char why[512];
  lrec_t *lr = lua_newuserdatauv(L, sizeof *lr, 0);
  lr->r = NULL;
  luaL_setmetatable(L, RECORDER_MT);
  errno = 0;
  lr->r = gm_record_open(path, (uint64_t)max, why, sizeof why);
  if (lr->r == NULL) return gm_push_fail(L, GM_EIO, why);
  return 1;
}

static int rec_flush(lua_State *L) {
  gm_record_t *r = gm_record_opt(L, 1);
  gm_record_flush(r);
  const char *err = gm_record_error(r);
  if (err) return gm_push_fail(L, GM_EIO, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int rec_close(lua_State *L) {
  lrec_t *lr = luaL_checkudata(L, 1, RECORDER_MT);
  if (lr->r) {
    gm_record_close(lr->r); /* shards that hold it write no more */
    gm_record_release(lr->r);
    lr->r = NULL;
  }
  return 0;
}

/* Collected: only this reference goes; shards that hold the recorder go
 * on writing, and the last of them closes it. */
static int rec_gc(lua_State *L) {
  lrec_t *lr = luaL_checkudata(L, 1, RECORDER_MT);
  if (lr->r) gm_record_release(lr->r);
  lr->r = NULL;
  return 0;
}

static int rec_stats(lua_State *L) {
  gm_record_stats_t st;
  gm_record_stats(gm_record_opt(L, 1), &st);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)st.lines);
  lua_setfield(L, -2, "lines");
  lua_pushinteger(L, (lua_Integer)st.dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)st.rotations);
  lua_setfield(L, -2, "rotations");
  lua_pushinteger(L, (lua_Integer)st.bytes);
  lua_setfield(L, -2, "bytes");
  return 1;
}

static int rec_tostring(lua_State *L) {
  lrec_t *lr = luaL_checkudata(L, 1, RECORDER_MT);
  lua_pushfstring(L, "gloaming.Recorder (%s)", lr->r ? "open" : "closed");
  return 1;
}

/* {=============== reading =============== */

typedef struct {
  gzFile f;       /* NULL once closed */
  bool truncated; /* the .gz ended without its end: see reader_next */
} lreader_t;

static int l_read_lines(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lreader_t *rd = lua_newuserdatauv(L, sizeof *rd, 0);
  rd->f = NULL;
  rd->truncated = false;
  luaL_setmetatable(L, READER_MT);
  errno = 0;
  rd->f = gzopen(path, "rb");
  if (rd->f == NULL) {
    lua_pushfstring(L, "cannot read %s: %s", path,
                    errno ? strerror(errno) : "out of memory");
    return gm_push_fail(L, GM_EIO, lua_tostring(L, -1));
  }
  return 1;
}

static int reader_close(lua_State *L) {
  lreader_t *rd = luaL_checkudata(L, 1, READER_MT);
  if (rd->f) gzclose(rd->f);
  rd->f = NULL;
  return 0;
}

/* The next line without its "\n"; nil at the end; nil, msg, EIO when the
 * file is not readable gzip (corrupt). A .gz that stops short (a recorder
 * killed before it closed the file: what it flushed ends at a whole line,
 * only gzip's end is missing) ends after its last whole line, and
 * reader:truncated() says so: the part of a line it cut is dropped. */
static int reader_next(lua_State *L) {
  lreader_t *rd = luaL_checkudata(L, 1, READER_MT);
  if (rd->f == NULL) return 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  bool any = false;
  for (;;) {
    char *p = luaL_prepbuffsize(&b, 65536);
    if (gzgets(rd->f, p, 65536) == NULL) break;
    size_t n = strlen(p);
    any = true;
    if (n > 0 && p[n - 1] == '\n') {
      luaL_addsize(&b, n - 1);
      luaL_pushresult(&b);
      return 1;
    }
    luaL_addsize(&b, n);
  }
  int zerr = Z_OK;
  const char *why = gzerror(rd->f, &zerr);
  if (zerr == Z_BUF_ERROR) { /* "unexpected end of file" */
    rd->truncated = true;
    luaL_pushresult(&b);
    lua_pop(L, 1);
    return 0;
  }
  if (zerr != Z_OK && zerr != Z_STREAM_END) {
    luaL_pushresult(&b);
    lua_pop(L, 1);
    return gm_push_fail(L, GM_EIO, zerr == Z_ERRNO ? strerror(errno) : why);
  }
  if (!any) return 0;
  luaL_pushresult(&b); /* the last line had no "\n": perhaps cut */
  lua_pushboolean(L, 1);
  return 2;
}

static int reader_truncated(lua_State *L) {
  lreader_t *rd = luaL_checkudata(L, 1, READER_MT);
  lua_pushboolean(L, rd->truncated);
  return 1;
}

/* payload_parts(json) -> op, s | nil, t | nil, d text | nil: a recorded
 * payload's envelope, d as the exact text (a replay sends it unchanged). */
static int l_payload_parts(lua_State *L) {
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  gm_envelope_t e;
  if (gm_envelope_scan(json, len, &e) != 0 || e.op < 0)
    return gm_push_fail(L, GM_EDECODE, "not a gateway payload");
  lua_pushinteger(L, e.op);
  if (e.has_s) lua_pushinteger(L, e.s); else lua_pushnil(L);
  if (e.t && !e.t_escaped) lua_pushlstring(L, e.t, e.t_len); else lua_pushnil(L);
  if (e.d_len) lua_pushlstring(L, json + e.d_off, e.d_len); else lua_pushnil(L);
  return 4;
}

/* }=============== */

int gm_open_record(lua_State *L) {
  static const luaL_Reg rec_methods[] = {{"flush", rec_flush},
                                         {"close", rec_close},
                                         {"stats", rec_stats},
                                         {NULL, NULL}};
  static const luaL_Reg rec_meta[] = {{"__gc", rec_gc},
                                      {"__close", rec_close},
                                      {"__tostring", rec_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg reader_methods[] = {{"next", reader_next},
                                            {"close", reader_close},
                                            {"truncated", reader_truncated},
                                            {NULL, NULL}};
  static const luaL_Reg reader_meta[] = {{"__gc", reader_close},
                                         {"__close", reader_close},
                                         {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"record_open", l_record_open},
                                   {"read_lines", l_read_lines},
                                   {"payload_parts", l_payload_parts},
                                   {NULL, NULL}};
  gm_rt_newclass(L, RECORDER_MT, rec_methods, rec_meta);
  lua_pop(L, 1);
  gm_rt_newclass(L, READER_MT, reader_methods, reader_meta);
  lua_pop(L, 1);
  gm_rt_setfuncs(L, funcs);
  lua_pushinteger(L, (lua_Integer)GM_RECORD_DEFAULT_MAX_BYTES);
  lua_setfield(L, -2, "record_default_max_bytes");
  return 0;
}
