/* One line of a recording (`record = path`): a payload a shard received
 * (after inflate) or sent, as a JSON object on one line:
 *
 *   {"time":1764940000.123456,"shard":[0,2],"dir":"recv","payload":"{\"op\":10,...}"}
 *
 * The payload is kept as a JSON string, byte for byte: a replay sends
 * exactly what was received, and a payload that was not valid JSON (a
 * faulty gateway, the very thing worth recording) still makes a valid line.
 * Sans-I/O and allocation-free: the writer thread formats into its own
 * buffer of gm_record_line_bound() bytes. */
#ifndef GM_RECORD_LINE_H
#define GM_RECORD_LINE_H

#include <stddef.h>
#include <stdint.h>

/* XX(NAME, label): the "dir" field. */
#define GM_RECORD_DIR_MAP(XX) \
  XX(RECV, "recv")            \
  XX(SEND, "send")

typedef enum {
#define GM_RECORD_DIR_ENUM(name, label) GM_RECORD_##name,
  GM_RECORD_DIR_MAP(GM_RECORD_DIR_ENUM)
#undef GM_RECORD_DIR_ENUM
  GM_RECORD_DIR_COUNT
} gm_record_dir_t;

const char *gm_record_dir_name(gm_record_dir_t dir);

/* Bytes gm_record_line_format may write for a payload of len bytes. */
size_t gm_record_line_bound(size_t len);

/* Writes the line (ending in '\n') into out (gm_record_line_bound(len)
 * bytes at least); returns its length. time: seconds since the epoch. */
size_t gm_record_line_format(char *out, double time, uint32_t shard,
                             uint32_t total, gm_record_dir_t dir,
                             const char *payload, size_t len);

#endif
