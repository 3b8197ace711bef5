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

#endif
