/* URLs from users and from READY's resume_gateway_url: parse, rewrite the
 * query as a shard does, and format back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/alloc.h"
#include "proto/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
  memcpy(copy, data, size);
  gm_url_t u;
  const char *why = NULL;
  if (gm_url_parse(copy, size, &u, &why) == 0) {
    gm_url_set_query(&u, "v", "10");
    gm_url_set_query(&u, "encoding", "json");
    gm_url_set_query(&u, "compress", NULL);
    char v[8];
    gm_url_get_query(&u, "v", v, sizeof v);
    char *s = gm_url_format(&u);
    if (s) {
      gm_url_t again;
      if (gm_url_parse(s, strlen(s), &again, &why) != 0) abort(); /* round trip */
      gm_url_free(&again);
      gm_free(s, strlen(s) + 1);
    }
    char *t = gm_url_target(&u);
    if (t) gm_free(t, strlen(t) + 1);
    gm_url_free(&u);
  } else if (why == NULL) {
    abort();
  }
  free(copy);
  return 0;
}
