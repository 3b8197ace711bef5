/* Defaults that more than one layer needs: one place, exported to Lua as
 * core.defaults (sizes in bytes, times in seconds) so the Lua side reads
 * them instead of keeping its own copy. */
#ifndef GM_DEFAULTS_H
#define GM_DEFAULTS_H

#define GM_VERSION "0.1.0"
#define GM_USER_AGENT "gloaming/" GM_VERSION " (https://github.com/gloaming)"

/* Websocket limits: one message, and one message once inflated. */
#define GM_DEFAULT_MAX_MESSAGE (16u << 20)
#define GM_DEFAULT_MAX_PAYLOAD (64u << 20)
/* Bytes a shard subscription may hold before the shard stops reading. */
#define GM_DEFAULT_EVENT_BUFFER (32u << 20)

/* Seconds: a connection's TCP+TLS+upgrade, and the wait for the peer's
 * close frame after ours. */
#define GM_DEFAULT_CONNECT_TIMEOUT_S 10
#define GM_DEFAULT_CLOSE_TIMEOUT_S 5
/* Seconds shards and handlers get to finish when a bot, the REPL or the
 * CLI shuts down. */
#define GM_DEFAULT_SHUTDOWN_GRACE_S 5

#endif
