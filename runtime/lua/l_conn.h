/* The connection object shared by gloaming.ws and the listener. */
#ifndef GM_L_CONN_H
#define GM_L_CONN_H

#include "io/conn.h"
#include "lua/rt.h"

#define GM_CONN_MT "gloaming.WebSocket"

typedef struct lconn_s lconn_t;

/* Wraps an accepted socket as a server-side connection object, left on the
 * stack. */
lconn_t *gm_lconn_accept(lua_State *L, gm_rt_t *rt, gm_tcp_t *tcp,
                         gm_tls_ctx_t *tls);
/* Reads opts.tls.ca_file from the options table at idx (NULL: none). */
const char *gm_check_tls_opts(lua_State *L, int idx);

#endif
