#include "io/listener.h"

#include <string.h>

#include "io/log.h"
#include "io/tcp.h"
#include "proto/alloc.h"
#include "proto/errors.h"

static void on_connection(uv_stream_t *server, int status) {
  gm_listener_t *l = server->data;
  if (l == NULL) return;
  gm_loop_progress(l->loop);
  if (status < 0) {
    gm_log(GM_LOG_WARN, "listener", "accept failed: %s", uv_strerror(status));
    return;
  }
  uv_tcp_t *client = gm_malloc(sizeof *client);
  if (client == NULL) return;
  uv_tcp_init(&l->loop->uv, client);
  if (uv_accept(server, (uv_stream_t *)client) != 0) {
    gm_tcp_close(client);
    return;
  }
  uv_tcp_nodelay(client, 1);
  l->on_accept(l, client);
}

int gm_listener_start(gm_listener_t *l, gm_loop_t *loop, const char *host,
                      int port, gm_accept_cb cb, void *data) {
  memset(l, 0, sizeof *l);
  l->loop = loop;
  l->on_accept = cb;
  l->data = data;
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)
    return GM_EINVAL;
  l->tcp = gm_malloc(sizeof *l->tcp);
  if (l->tcp == NULL) return GM_ENOMEM;
  uv_tcp_init(&loop->uv, l->tcp);
  l->tcp->data = l;
  int r = uv_tcp_bind(l->tcp, (struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)l->tcp, 1024, on_connection);
  if (r) {
    gm_tcp_close(l->tcp);
    l->tcp = NULL;
    return gm_uv_error(r);
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(l->tcp, (struct sockaddr *)&bound, &len);
  l->port = ntohs(bound.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&bound)->sin6_port
                      : ((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

void gm_listener_stop(gm_listener_t *l) {
  if (l->tcp) {
    l->tcp->data = NULL;
    gm_tcp_close(l->tcp);
    l->tcp = NULL;
  }
}
