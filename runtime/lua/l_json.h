/* The native JSON decoder's Lua half: JSON text to Lua values. */
#ifndef GM_L_JSON_H
#define GM_L_JSON_H

#include <lua.h>
#include <stddef.h>

/* Pushes the value of a JSON text (objects as tables, arrays as sequences,
 * null as the lightuserdata NULL that is cjson.null, integers that fit as
 * integers, other numbers as floats) and returns 1; or pushes a message
 * ("invalid UTF-8 in string at byte 12") instead and returns 0. Allocates
 * nothing but the Lua values (a reused scratch buffer holds unescaped
 * strings). Raises only on a memory error. */
int gm_json_decode(lua_State *L, const char *text, size_t len);

/* The event decoders a shard may use (core.json_decoders, in this order):
 * XX(enum suffix, name). */
#define GM_JSON_DECODER_MAP(XX) \
  XX(NATIVE, "native")          \
  XX(CJSON, "cjson")

typedef enum {
#define GM_JSON_DECODER_ENUM(e, name) GM_JSON_DECODER_##e,
  GM_JSON_DECODER_MAP(GM_JSON_DECODER_ENUM)
#undef GM_JSON_DECODER_ENUM
} gm_json_decoder_t;

/* The decoder named at index i (nil: native); raises on another name. */
gm_json_decoder_t gm_json_check_decoder(lua_State *L, int i);

#endif
