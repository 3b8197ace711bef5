/* The zstd-stream inflater on hostile bytes (the body is shared with the
 * zlib-stream target). */
#define FUZZ_KIND GM_COMPRESS_ZSTD_STREAM
#include "include/inflater_target.h"
