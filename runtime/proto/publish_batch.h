/* One call of the ev_publish script (lua/gloaming/cluster/publish_scripts.lua
 * says what it takes and answers), built from a publisher's operations,
 * and its answer read back. Sans-I/O: io/publisher.c sends what this
 * builds and hands it the reply's codes. */
#ifndef GM_PUBLISH_BATCH_H
#define GM_PUBLISH_BATCH_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  GM_PUB_EVENT = 'E', /* a dispatch of session sid */
  GM_PUB_READY = 'R', /* session sid begins (url: its resume URL) */
  GM_PUB_CLEAR = 'C'  /* the session ended; d: why */
} gm_pub_tag_t;

/* An operation as the script takes it (strings borrowed). */
typedef struct gm_pub_op_view_s {
  char tag;
  uint32_t shard;
  int64_t epoch;
  const char *sid; size_t sid_len; /* "" when none */
  const char *url; size_t url_len;
  const char *type; size_t type_len; /* the stream's; NULL: not published */
  int64_t seq;
  const char *d; size_t d_len;
} gm_pub_op_view_t;

/* Names the keys and the caller (strings borrowed). */
typedef struct gm_pub_names_s {
  const char *me;
  const char *ev_prefix;   /* a stream's key is ev_prefix .. type */
  const char *sess_prefix; /* a shard's session hash is sess_prefix .. n */
  const char *gap_type;    /* the gap markers' stream type (always KEYS[1]) */
  uint64_t maxlen;         /* MAXLEN ~ of every stream (0: no trimming) */
} gm_pub_names_t;

/* Operations per call at most. */
#define GM_PUB_BATCH_MAX 64
#define GM_PUB_KEYS_MAX (2 * GM_PUB_BATCH_MAX + 1)
#define GM_PUB_ARGS_MAX (2 + GM_PUB_KEYS_MAX + 8 * GM_PUB_BATCH_MAX)

/* The built call: EVALSHA's keys (unprefixed) and args, and which shard
 * each session key is (the reply has one code per session key, in order). */
typedef struct gm_pub_batch_s {
  int nkeys, nargs, nsess;
  const char *keys[GM_PUB_KEYS_MAX], *args[GM_PUB_ARGS_MAX];
  size_t klens[GM_PUB_KEYS_MAX], alens[GM_PUB_ARGS_MAX];
  uint32_t sess_shard[GM_PUB_BATCH_MAX];
  char *text; /* numbers and key names */
  size_t text_cap;
} gm_pub_batch_t;

/* Builds the call for ops[0..n) (n <= GM_PUB_BATCH_MAX) into b, reusing
 * its storage. 0, GM_EINVAL (n too large) or GM_ENOMEM. */
int gm_pub_batch_build(gm_pub_batch_t *b, const gm_pub_names_t *names,
                       const gm_pub_op_view_t *ops, int n);
void gm_pub_batch_free(gm_pub_batch_t *b);

/* A session key's code in the reply. */
typedef enum {
  GM_PUB_OK,       /* written (or skipped as a replay) */
  GM_PUB_MISSING,  /* the hash is gone (Redis lost its data): not written */
  GM_PUB_REFUSED   /* NOTOWNER (or anything else): not written, never will */
} gm_pub_result_t;

gm_pub_result_t gm_pub_result_of(const char *code, size_t len);

#endif
