/* Redis URLs from users (gloaming.redis.connect, --redis) and INFO replies
 * from the server: the parsing gloaming owns on the Redis path. The first
 * byte picks the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/alloc.h"
#include "proto/redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size--;
  char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
  memcpy(copy, data + 1, size);
  if (data[0] & 1) {
    char out[41];
    int n = gm_redis_info_field(copy, size, "run_id", out, sizeof out);
    if (n >= (int)sizeof out || (n >= 0 && strlen(out) > (size_t)n)) abort();
  } else {
    gm_redis_url_t u;
    const char *why = NULL;
    if (gm_redis_url_parse(copy, size, &u, &why) == 0) {
      if (u.host == NULL) abort();
      char *d = gm_redis_url_display(&u);
      if (d) {
        /* the password is never shown: the text does not depend on it */
        if (u.password) {
          char *saved = u.password, other[] = "x";
          u.password = other;
          char *d2 = gm_redis_url_display(&u);
          u.password = saved;
          if (d2) {
            if (strcmp(d, d2) != 0) abort();
            gm_free(d2, strlen(d2) + 1);
          }
        }
        gm_free(d, strlen(d) + 1);
      }
      gm_redis_url_free(&u);
    } else if (why == NULL) {
      abort();
    }
  }
  free(copy);
  return 0;
}
