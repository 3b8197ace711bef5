/* Shared helpers of the bindings: secrets and event flags. */
#ifndef GM_L_OBJECT_H
#define GM_L_OBJECT_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "proto/compress.h"
#include "proto/event_types.h"

#define GM_SECRET_MT "gloaming.Secret"
#define GM_FLAGS_MT "gloaming.EventTypeFlags"

/* The text in a secret box at idx (raises if it is not one). */
const char *gm_secret_get(lua_State *L, int idx, size_t *len);
/* Pushes a new secret holding text (made from secrets already scrubbed
 * from logs, as an Identify from its token). */
void gm_secret_push(lua_State *L, const char *text, size_t n);
/* 16 hex digits of SHA-256: tells secrets apart without showing them. */
const char *gm_fingerprint(const char *text, size_t len, char out[65]);

/* Reads flags at idx: an EventTypeFlags, a name, or a list of names.
 * nil/none gives all(). */
void gm_check_flags(lua_State *L, int idx, gm_event_flags_t *out);
/* Reads a compression name at idx ("zlib-stream", "zstd-stream"); nil or
 * none gives GM_COMPRESS_NONE; anything else raises. */
gm_compress_t gm_check_compress(lua_State *L, int idx);
void gm_push_flags(lua_State *L, const gm_event_flags_t *f);
/* A shard id argument (0 .. UINT32_MAX; raises otherwise). */
uint32_t gm_check_shard_id(lua_State *L, int idx);

#endif
