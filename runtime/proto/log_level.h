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

#endif
