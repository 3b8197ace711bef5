/* The native JSON decoder: builds Lua values straight from the text, with
 * the lexical work (strings, numbers, UTF-8) in proto/json_read.c.
 *
 *   core.json_decode(text) -> value | nil, message, "EDECODE"
 *   core.json_decoders: the names a shard's spec.decoder may take
 *
 * Strings without escapes are pushed from the text itself; escaped ones are
 * unescaped into a scratch buffer kept with the decoder's state, so that a
 * decode allocates nothing but the values it returns. Tables are created at
 * their size: a small cache remembers, per depth and per member name (and
 * first key, for objects), how many entries such a container had lately;
 * gateway events repeat their shapes, so the guess is nearly always right
 * and a table is seldom rehashed. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/l_json.h"
#include "lua/rt.h"
#include "proto/errors.h"
#include "proto/json_read.h"

#define STATE_MT "gloaming.json_state"
#define HINTS 512 /* a power of two */
#define SCRATCH_MIN 4096

typedef struct jstate_s {
  uint32_t tag[HINTS];
  uint16_t count[HINTS];
  char *scratch;
  size_t cap;
} jstate_t;

static const char state_key = 0;

typedef struct dec_s {
  lua_State *L;
  jstate_t *st;
  const char *p, *end;
  gm_json_err_t err;
  const char *at;
} dec_t;

static bool fail(dec_t *d, gm_json_err_t e, const char *at) {
  d->err = e;
  d->at = at;
  return false;
}

static inline const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

/* What is wrong with the byte at p where a value or a delimiter belonged. */
static bool unexpected(dec_t *d, const char *p) {
  if (p >= d->end) return fail(d, GM_JSON_EEOF, p);
  return fail(d, *p == '\0' ? GM_JSON_ENUL : GM_JSON_ESYNTAX, p);
}

/* {=============== size hints =============== */

static inline uint32_t key_hash(const char *s, size_t n) {
  uint32_t h = (uint32_t)n * 0x9E3779B1u;
  size_t m = n < 8 ? n : 8;
  for (size_t i = 0; i < m; i++) h = (h ^ (unsigned char)s[i]) * 0x01000193u;
  return h | 1; /* 0: no key */
}

static inline unsigned hint_slot(uint32_t h, int depth) {
  return (h ^ ((uint32_t)depth * 0x85EBCA6Bu)) & (HINTS - 1);
}

static inline int hint_get(const jstate_t *st, uint32_t h, int depth) {
  unsigned s = hint_slot(h, depth);
  return st->tag[s] == (h ^ (uint32_t)depth) ? st->count[s] : 0;
}

/* The hint is the largest count seen lately: containers that share a
 * first key (the users of a mentions array) differ by a few optional
 * fields, and a table a little too large costs less than a rehash. A count
 * under a quarter of the hint replaces it, so one huge container does not
 * oversize the rest for ever. */
static inline void hint_put(jstate_t *st, uint32_t h, int depth, int n) {
  unsigned s = hint_slot(h, depth);
  uint32_t tag = h ^ (uint32_t)depth;
  if (n > 0xFFFF) n = 0xFFFF;
  if (st->tag[s] == tag && n <= st->count[s] && n >= st->count[s] / 4) return;
  st->tag[s] = tag;
  st->count[s] = (uint16_t)n;
}

/* }=============== */

static bool push_string(dec_t *d, const char *body, size_t len, bool escaped) {
  if (!escaped) {
    lua_pushlstring(d->L, body, len);
    return true;
  }
  jstate_t *st = d->st;
  if (len > st->cap) { /* grows to the longest escaped string seen, once */
    size_t cap = st->cap * 2 > len ? st->cap * 2 : len < SCRATCH_MIN ? SCRATCH_MIN : len;
    char *s = realloc(st->scratch, cap);
    if (s == NULL) luaL_error(d->L, "not enough memory");
    st->scratch = s;
    st->cap = cap;
  }
  long n = gm_json_unescape_body(body, len, st->scratch, &d->err, &d->at);
  if (n < 0) return false;
  lua_pushlstring(d->L, st->scratch, (size_t)n);
  return true;
}

/* Who holds a value, for its size hint: a member's key (hashed only when the
 * value is a container), or an array's hint (key == NULL). */
typedef struct holder_s {
  const char *key;
  size_t len;
  uint32_t h;
} holder_t;

static inline uint32_t holder_hash(const holder_t *w) {
  return w->key ? key_hash(w->key, w->len) : w->h;
}

static bool value(dec_t *d, int depth, const holder_t *w);

static bool object(dec_t *d, int depth, uint32_t name) {
  lua_State *L = d->L;
  const char *p = skip_ws(d->p + 1, d->end), *end = d->end;
  if (p < end && *p == '}') {
    lua_createtable(L, 0, 0);
    d->p = p + 1;
    return true;
  }
  if (p >= end || *p != '"') return unexpected(d, p);
  size_t klen;
  bool kesc;
  const char *key = p + 1;
  p = gm_json_scan_string(key, end, &klen, &kesc, &d->err, &d->at);
  if (p == NULL) return false;
  uint32_t h = key_hash(key, klen) ^ (name * 0x27D4EB2Du); /* the user under "author" */
  lua_createtable(L, 0, hint_get(d->st, h, depth));
  int n = 0;
  for (;;) {
    if (!push_string(d, key, klen, kesc)) return false;
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return unexpected(d, p);
    d->p = skip_ws(p + 1, end);
    holder_t w = {key, klen, 0};
    if (!value(d, depth, &w)) return false;
    lua_rawset(L, -3);
    n++;
    p = skip_ws(d->p, end);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
      if (p >= end || *p != '"') return unexpected(d, p);
      key = p + 1;
      p = gm_json_scan_string(key, end, &klen, &kesc, &d->err, &d->at);
      if (p == NULL) return false;
      continue;
    }
    if (p < end && *p == '}') break;
    return unexpected(d, p);
  }
  hint_put(d->st, h, depth, n);
  d->p = p + 1;
  return true;
}

static bool array(dec_t *d, int depth, uint32_t name) {
  lua_State *L = d->L;
  const char *p = skip_ws(d->p + 1, d->end), *end = d->end;
  uint32_t h = name ^ 0x5bd1e995u; /* an array and an object may share a key */
  if (p < end && *p == ']') {
    lua_createtable(L, 0, 0);
    d->p = p + 1;
    return true;
  }
  lua_createtable(L, hint_get(d->st, h, depth), 0);
  int n = 0;
  d->p = p;
  holder_t w = {NULL, 0, h}; /* its elements: "mentions" users */
  for (;;) {
    if (!value(d, depth, &w)) return false;
    lua_rawseti(L, -2, ++n);
    p = skip_ws(d->p, end);
    if (p < end && *p == ',') {
      d->p = skip_ws(p + 1, end);
      continue;
    }
    if (p < end && *p == ']') break;
    return unexpected(d, p);
  }
  hint_put(d->st, h, depth, n);
  d->p = p + 1;
  return true;
}

static bool literal(dec_t *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) {
    const char *p = d->p;
    size_t i = 0;
    while (p + i < d->end && i < n && p[i] == word[i]) i++;
    return unexpected(d, p + i);
  }
  d->p += n;
  return true;
}

/* The value at d->p (no space before it); w: what holds it. */
static bool value(dec_t *d, int depth, const holder_t *w) {
  lua_State *L = d->L;
  const char *p = d->p;
  if (p >= d->end) return fail(d, GM_JSON_EEOF, p);
  switch (*p) {
  case '"': {
    size_t len;
    bool esc;
    const char *q = gm_json_scan_string(p + 1, d->end, &len, &esc, &d->err, &d->at);
    if (q == NULL || !push_string(d, p + 1, len, esc)) return false;
    d->p = q;
    return true;
  }
  case '{':
  case '[':
    /* lua-cjson's limit, and its check of the Lua stack: table, key, value */
    if (depth >= GM_JSON_MAX_DEPTH || !lua_checkstack(L, 3))
      return fail(d, GM_JSON_EDEPTH, p);
    return *p == '{' ? object(d, depth + 1, holder_hash(w))
                     : array(d, depth + 1, holder_hash(w));
  case 't':
    if (!literal(d, "true", 4)) return false;
    lua_pushboolean(L, 1);
    return true;
  case 'f':
    if (!literal(d, "false", 5)) return false;
    lua_pushboolean(L, 0);
    return true;
  case 'n':
    if (!literal(d, "null", 4)) return false;
    lua_pushlightuserdata(L, NULL); /* cjson.null, gloaming.json.null */
    return true;
  default: {
    if (*p != '-' && (*p < '0' || *p > '9')) return unexpected(d, p);
    gm_json_number_t num;
    const char *q = gm_json_scan_number(p, d->end, &num, &d->err, &d->at);
    if (q == NULL) return false;
    if (num.is_int) lua_pushinteger(L, (lua_Integer)num.i);
    else lua_pushnumber(L, (lua_Number)num.d);
    d->p = q;
    return true;
  }
  }
}

static int state_gc(lua_State *L) {
  jstate_t *st = luaL_checkudata(L, 1, STATE_MT);
  free(st->scratch);
  st->scratch = NULL;
  st->cap = 0;
  return 0;
}

static jstate_t *get_state(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) == LUA_TUSERDATA) {
    jstate_t *st = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return st;
  }
  lua_pop(L, 1);
  jstate_t *st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  if (luaL_newmetatable(L, STATE_MT)) {
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
  return st;
}

int gm_json_decode(lua_State *L, const char *text, size_t len) {
  int top = lua_gettop(L);
  dec_t d = {L, get_state(L), text, text + len, GM_JSON_EOK, NULL};
  d.p = skip_ws(d.p, d.end);
  holder_t top_holder = {NULL, 0, 0};
  if (value(&d, 0, &top_holder)) {
    const char *p = skip_ws(d.p, d.end);
    if (p == d.end) return 1;
    fail(&d, *p == '\0' ? GM_JSON_ENUL : GM_JSON_ETRAILING, p);
  }
  lua_settop(L, top);
  lua_pushfstring(L, "%s at byte %I", gm_json_err_message(d.err),
                  (lua_Integer)(d.at - text) + 1);
  return 0;
}

/* json_decode(text) -> value | nil, message, "EDECODE" */
static int l_json_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  if (gm_json_decode(L, text, len)) return 1;
  luaL_pushfail(L);
  lua_insert(L, -2);
  lua_pushstring(L, gm_err_name(GM_EDECODE));
  return 3;
}

static const char *const decoder_names[] = {
#define GM_JSON_DECODER_NAME(e, name) name,
    GM_JSON_DECODER_MAP(GM_JSON_DECODER_NAME)
#undef GM_JSON_DECODER_NAME
};
#define NDECODERS (sizeof decoder_names / sizeof decoder_names[0])

gm_json_decoder_t gm_json_check_decoder(lua_State *L, int i) {
  if (lua_isnil(L, i)) return GM_JSON_DECODER_NATIVE;
  const char *name = lua_tostring(L, i);
  for (size_t k = 0; name && lua_type(L, i) == LUA_TSTRING && k < NDECODERS; k++)
    if (strcmp(name, decoder_names[k]) == 0) return (gm_json_decoder_t)k;
  luaL_error(L, "decoder must be \"native\" or \"cjson\"");
  return GM_JSON_DECODER_NATIVE;
}

int gm_open_json(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"json_decode", l_json_decode},
      {NULL, NULL},
  };
  luaL_setfuncs(L, funcs, 0); /* no runtime: the fuzz targets link this file alone */
  lua_createtable(L, (int)NDECODERS, 0);
  for (size_t k = 0; k < NDECODERS; k++) {
    lua_pushstring(L, decoder_names[k]);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  lua_setfield(L, -2, "json_decoders");
  return 0;
}
