/* Who ended a connection: one table for the conn, the shard machine and the
 * GATEWAY_CLOSE event's `initiator` field (exported as core.closed_by).
 * GATEWAY is the peer, SHARD is our side, TRANSPORT is neither (EOF, reset,
 * a timeout with no close frame). */
#ifndef GM_CLOSED_BY_H
#define GM_CLOSED_BY_H

/* XX(NAME, label) */
#define GM_CLOSED_BY_MAP(XX)  \
  XX(GATEWAY, "gateway")      \
  XX(SHARD, "shard")          \
  XX(TRANSPORT, "transport")

typedef enum {
#define GM_CLOSED_BY_ENUM(name, label) GM_CLOSED_BY_##name,
  GM_CLOSED_BY_MAP(GM_CLOSED_BY_ENUM)
#undef GM_CLOSED_BY_ENUM
  GM_CLOSED_BY_COUNT
} gm_closed_by_t;

static inline const char *gm_closed_by_name(gm_closed_by_t by) {
  static const char *const names[] = {
#define GM_CLOSED_BY_NAME(name, label) label,
      GM_CLOSED_BY_MAP(GM_CLOSED_BY_NAME)
#undef GM_CLOSED_BY_NAME
  };
  return (unsigned)by < GM_CLOSED_BY_COUNT ? names[by] : "?";
}

#endif
