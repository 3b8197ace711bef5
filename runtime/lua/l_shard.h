/* What other binding files need of the Shard userdata (l_shard.c). */
#ifndef GM_L_SHARD_H
#define GM_L_SHARD_H

#include <stdint.h>

#include "io/shard.h"
#include "lua/rt.h"

/* The C shard of the Shard at index i (raises when it is not one; NULL once
 * freed); *id and *total: its ShardId's numbers. */
gm_shard_t *gm_lshard_check(lua_State *L, int i, uint32_t *id, uint32_t *total);

#endif
