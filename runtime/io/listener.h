/* A TCP listener on the loop: accepted sockets go to a callback. */
#ifndef GM_LISTENER_H
#define GM_LISTENER_H

#include "io/loop.h"

typedef struct gm_listener_s gm_listener_t;
typedef void (*gm_accept_cb)(gm_listener_t *l, uv_tcp_t *client);

struct gm_listener_s {
  gm_loop_t *loop;
  uv_tcp_t *tcp; /* heap: it outlives the listener until closed */
  gm_accept_cb on_accept;
  void *data;
  int port;
};

/* Binds host:port (0: any free port) and listens. 0 or a GM_E* code. */
int gm_listener_start(gm_listener_t *l, gm_loop_t *loop, const char *host,
                      int port, gm_accept_cb cb, void *data);
void gm_listener_stop(gm_listener_t *l);

#endif
