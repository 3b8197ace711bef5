/* A hiredis reply tree as Lua values: the one conversion of gloaming.redis
 * (l_redis.c), apart from the loop so that tests/fuzz/fuzz_redis_reply.c
 * can drive it with trees from hiredis' own reader.
 *
 * Status and bulk strings are strings, integers integers, arrays tables; a
 * nil reply is nil at the top and false inside an array (as in Redis' own
 * Lua); an error reply is { err = msg } (push_top: nil, msg, "EREDIS").
 * Arrays deeper than GM_REDIS_REPLY_MAX_DEPTH (hiredis 0.14's reader stops
 * at 7; this bound does not rely on it) become { err = "..." }, so the C
 * stack and Lua stack used are bounded whatever the tree. */
#ifndef GM_REDIS_REPLY_H
#define GM_REDIS_REPLY_H

#include <stdbool.h>

#include <hiredis/hiredis.h>
#include <lua.h>

#define GM_REDIS_REPLY_MAX_DEPTH 16
#define GM_REDIS_REPLY_TOO_DEEP "redis reply nested too deep"

/* Pushes r's value (nested: inside an array or a pipeline's list). */
void gm_redis_push_value(lua_State *L, const redisReply *r, bool nested);
/* A top-level reply: its value (1), or nil, msg, "EREDIS" (3). */
int gm_redis_push_top(lua_State *L, const redisReply *r);

#endif
