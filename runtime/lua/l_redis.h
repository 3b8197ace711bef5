/* What other binding files need of the Redis client userdata (l_redis.c). */
#ifndef GM_L_REDIS_H
#define GM_L_REDIS_H

#include "io/redis.h"
#include "lua/rt.h"

/* The C client of the gloaming.redis client at index i (raises when it is
 * not one, or when it is closed). */
gm_redis_t *gm_lredis_check(lua_State *L, int i);

#endif
