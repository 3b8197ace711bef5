/* Resolve and connect, bounded by the caller's timeout.
 *
 * Every address the name resolves to is tried in turn (IPv6 and IPv4);
 * IP literals skip the resolver. The result is an open uv_tcp_t that the
 * caller then owns. */
#ifndef GM_TCP_H
#define GM_TCP_H

#include "io/loop.h"

typedef struct gm_connect_s gm_connect_t;
/* err 0: tcp is connected and now the caller's (heap memory: close it with
 * gm_tcp_close). Otherwise a GM_E* code and a short explanation. */
typedef void (*gm_connect_cb)(void *data, int err, const char *why,
                              uv_tcp_t *tcp);

/* Starts connecting; the callback runs exactly once unless cancelled.
 * Returns the operation (for gm_connect_cancel) or NULL on ENOMEM. */
gm_connect_t *gm_connect_start(gm_loop_t *l, const char *host, uint16_t port,
                               uint64_t timeout_ns, gm_connect_cb cb,
                               void *data);
/* The callback will not run; resources are released when libuv is done. */
void gm_connect_cancel(gm_connect_t *c);

/* Closes and frees a uv_tcp_t from gm_connect_start or gm_tcp_accept. */
void gm_tcp_close(uv_tcp_t *tcp);
/* The same, with an RST instead of a FIN. */
void gm_tcp_reset(uv_tcp_t *tcp);
/* Maps a libuv error to a GM_E* code. */
int gm_uv_error(int uverr);

#endif
