#include "redis_command.h"

#include <strings.h>

/* XX(first word, second word or NULL, why) */
#define GM_REDIS_REFUSED_MAP(XX)                                                             \
  XX("SUBSCRIBE", NULL, "pub/sub needs a connection of its own; gloaming.redis has none yet")  \
  XX("PSUBSCRIBE", NULL, "pub/sub needs a connection of its own; gloaming.redis has none yet") \
  XX("SSUBSCRIBE", NULL, "pub/sub needs a connection of its own; gloaming.redis has none yet") \
  XX("UNSUBSCRIBE", NULL, "pub/sub is not supported")                                        \
  XX("PUNSUBSCRIBE", NULL, "pub/sub is not supported")                                       \
  XX("SUNSUBSCRIBE", NULL, "pub/sub is not supported")                                       \
  XX("MONITOR", NULL, "MONITOR turns the connection into a stream; use redis-cli")           \
  XX("SELECT", NULL, "the database is chosen in the URL (redis://host/2, unix:///s?db=2)")   \
  XX("RESET", NULL, "RESET would undo the connection's setup")                               \
  XX("QUIT", NULL, "use client:close()")                                                     \
  XX("HELLO", NULL, "hiredis 0.14 speaks RESP2 only")                                        \
  XX("CLIENT", "REPLY", "replies are how calls are answered: CLIENT REPLY would break them")

static const struct {
  const char *word1, *word2, *why;
} refused[] = {
#define GM_REDIS_REFUSED_ROW(w1, w2, why) {w1, w2, why},
    GM_REDIS_REFUSED_MAP(GM_REDIS_REFUSED_ROW)
#undef GM_REDIS_REFUSED_ROW
};

static int same(const char *word, size_t len, const char *name) {
  size_t n = 0;
  while (name[n]) n++;
  return word && len == n && strncasecmp(word, name, n) == 0;
}

const char *gm_redis_refused(const char *word1, size_t len1, const char *word2,
                             size_t len2) {
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    if (same(word1, len1, refused[i].word1) &&
        (refused[i].word2 == NULL || same(word2, len2, refused[i].word2)))
      return refused[i].why;
  return NULL;
}
