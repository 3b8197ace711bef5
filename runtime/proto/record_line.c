#include "proto/record_line.h"

#include "proto/json_write.h"

#include <stdio.h>
#include <string.h>

static const char *const dir_names[] = {
#define GM_RECORD_DIR_NAME(name, label) label,
    GM_RECORD_DIR_MAP(GM_RECORD_DIR_NAME)
#undef GM_RECORD_DIR_NAME
};

const char *gm_record_dir_name(gm_record_dir_t dir) {
  return (unsigned)dir < GM_RECORD_DIR_COUNT ? dir_names[dir] : "?";
}

/* The fixed part: {"time":<%.6f>,"shard":[<u32>,<u32>],"dir":"recv",
 * "payload":""}\n with room to spare. */
#define HEADER_MAX 160

size_t gm_record_line_bound(size_t len) {
  return HEADER_MAX + 6 * len; /* \u00XX is the longest escape */
}

size_t gm_record_line_format(char *out, double time, uint32_t shard,
                             uint32_t total, gm_record_dir_t dir,
                             const char *payload, size_t len) {
  int n = snprintf(out, HEADER_MAX,
                   "{\"time\":%.6f,\"shard\":[%u,%u],\"dir\":\"%s\",\"payload\":\"",
                   time, shard, total, gm_record_dir_name(dir));
  size_t o = n < 0 ? 0 : (size_t)n;
  o += gm_json_escape(out + o, 6 * len, payload, len, NULL);
  memcpy(out + o, "\"}\n", 3);
  return o + 3;
}
