/* Log levels: one table for the shard machine's log effect, io/log and
 * Lua (core.log_levels, in order). The machine names a level; the driver
 * writes the line. */
#ifndef GM_LOG_LEVEL_H
#define GM_LOG_LEVEL_H

/* XX(name, label); OFF is a threshold only, never a line's level. */
#define GM_LOG_LEVEL_MAP(XX) \
  XX(DEBUG, "debug")         \
  XX(INFO, "info")           \
  XX(WARN, "warn")           \
  XX(ERROR, "error")         \
  XX(OFF, "off")

typedef enum {
#define GM_LOG_ENUM(name, label) GM_LOG_##name,
  GM_LOG_LEVEL_MAP(GM_LOG_ENUM)
#undef GM_LOG_ENUM
} gm_log_level_t;

/* Components with a level of their own (GLOAMING_LOG=warn,shard=debug).
 * A line's component is the first word of its context: "shard=0/2" is
 * the shard's, "http" the REST client's. XX(NAME, label) */
#define GM_LOG_COMPONENT_MAP(XX) \
  XX(SHARD, "shard")             \
  XX(HTTP, "http")               \
  XX(BOT, "bot")                 \
  XX(REDIS, "redis")             \
  XX(CLUSTER, "cluster")         \
  XX(PUBLISH, "publish")         \
  XX(GATEWAY, "gateway")         \
  XX(WORKER, "worker")

typedef enum {
#define GM_LOG_COMPONENT_ENUM(name, label) GM_LOG_COMPONENT_##name,
  GM_LOG_COMPONENT_MAP(GM_LOG_COMPONENT_ENUM)
#undef GM_LOG_COMPONENT_ENUM
  GM_LOG_COMPONENT_COUNT
} gm_log_component_t;

/* How lines are written: XX(NAME, label). NONE writes nothing (a Lua log
 * handler still gets every record). */
#define GM_LOG_FORMAT_MAP(XX) \
  XX(TEXT, "text")            \
  XX(JSON, "json")            \
  XX(NONE, "none")

typedef enum {
#define GM_LOG_FORMAT_ENUM(name, label) GM_LOG_FORMAT_##name,
  GM_LOG_FORMAT_MAP(GM_LOG_FORMAT_ENUM)
#undef GM_LOG_FORMAT_ENUM
  GM_LOG_FORMAT_COUNT
} gm_log_format_t;

#endif
