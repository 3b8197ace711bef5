/* The Recorder userdata (l_record.c), for the shard binding. */
#ifndef GM_L_RECORD_H
#define GM_L_RECORD_H

#include <lua.h>

#include "io/record.h"

/* The recorder at idx, or NULL when idx is nil; raises on anything else
 * and on a closed recorder. */
gm_record_t *gm_record_opt(lua_State *L, int idx);

#endif
