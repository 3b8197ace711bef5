/* The zlib-stream inflater on hostile bytes (the body is shared with the
 * zstd-stream target). */
#define FUZZ_KIND GM_COMPRESS_ZLIB_STREAM
#include "include/inflater_target.h"
