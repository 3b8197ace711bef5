/* See publish_batch.h. The script's argument layout: KEYS are the streams
 * (the gap stream first) then the session hashes; ARGV is me, the stream
 * count, a MAXLEN per stream, then 8 values per operation: tag, session
 * key index, epoch, sid, url, stream index (0: not published), seq, d. */
#include "proto/publish_batch.h"

#include <stdbool.h>
#include <string.h>

#include "proto/alloc.h"
#include "proto/errors.h"

#define NUM_MAX 24 /* an int64 in decimal, with its sign and NUL */

static int reserve(gm_pub_batch_t *b, size_t text) {
  if (text <= b->text_cap) return 0;
  size_t n = b->text_cap ? b->text_cap : 1024;
  while (n < text) n *= 2;
  char *t = gm_realloc(b->text, b->text_cap, n);
  if (t == NULL) return GM_ENOMEM;
  b->text = t;
  b->text_cap = n;
  return 0;
}

typedef struct {
  gm_pub_batch_t *b;
  size_t used;
} writer_t;

static const char *put(writer_t *w, size_t *len, const char *a, size_t alen,
                       const char *b, size_t blen) {
  char *at = w->b->text + w->used;
  memcpy(at, a, alen);
  if (blen) memcpy(at + alen, b, blen);
  *len = alen + blen;
  w->used += *len;
  return at;
}

/* Decimal, by hand: snprintf was a tenth of the publisher's CPU. */
static size_t decimal(char *out, int64_t v) {
  char tmp[NUM_MAX];
  size_t n = 0, len = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) out[len++] = '-';
  while (n) out[len++] = tmp[--n];
  return len;
}

static const char *num(writer_t *w, size_t *len, int64_t v) {
  char *at = w->b->text + w->used;
  *len = decimal(at, v);
  w->used += *len;
  return at;
}

static void arg(gm_pub_batch_t *b, const char *s, size_t len) {
  b->args[b->nargs] = s;
  b->alens[b->nargs++] = len;
}

int gm_pub_batch_build(gm_pub_batch_t *b, const gm_pub_names_t *nm,
                       const gm_pub_op_view_t *ops, int n) {
  if (n > GM_PUB_BATCH_MAX) return GM_EINVAL;
  size_t evp = strlen(nm->ev_prefix), sessp = strlen(nm->sess_prefix);
  /* at most: a stream and a session key per op, and the gap stream */
  size_t text = evp + strlen(nm->gap_type) + 3 * NUM_MAX;
  for (int i = 0; i < n; i++)
    text += evp + ops[i].type_len + sessp + 5 * NUM_MAX;
  int r = reserve(b, text);
  if (r) return r;
  writer_t w = {b, 0};
  b->nkeys = b->nargs = b->nsess = 0;
  /* the streams: the gap stream, then each type once, in order of use;
   * their indexes are found by name among the few of a batch */
  b->keys[0] = put(&w, &b->klens[0], nm->ev_prefix, evp, nm->gap_type, strlen(nm->gap_type));
  b->nkeys = 1;
  int stream_of[n > 0 ? n : 1];
  for (int i = 0; i < n; i++) {
    stream_of[i] = 0;
    if (ops[i].type == NULL) continue;
    /* compare the type part only: every stream key shares the prefix */
    int k = -1;
    for (int j = 1; j < b->nkeys; j++)
      if (b->klens[j] == evp + ops[i].type_len &&
          memcmp(b->keys[j] + evp, ops[i].type, ops[i].type_len) == 0) {
        k = j;
        break;
      }
    if (k < 0) {
      k = b->nkeys++;
      b->keys[k] = put(&w, &b->klens[k], nm->ev_prefix, evp, ops[i].type, ops[i].type_len);
    }
    stream_of[i] = k + 1; /* Lua's index */
  }
  int streams = b->nkeys;
  arg(b, nm->me, strlen(nm->me));
  size_t len;
  const char *s = num(&w, &len, streams);
  arg(b, s, len);
  const char *ml = num(&w, &len, (int64_t)nm->maxlen);
  for (int i = 0; i < streams; i++) arg(b, ml, len);
  for (int i = 0; i < n; i++) {
    const gm_pub_op_view_t *op = &ops[i];
    int k = -1;
    for (int j = 0; j < b->nsess; j++)
      if (b->sess_shard[j] == op->shard) {
        k = streams + j;
        break;
      }
    if (k < 0) {
      char digits[NUM_MAX];
      size_t dl = decimal(digits, op->shard);
      k = b->nkeys++;
      b->keys[k] = put(&w, &b->klens[k], nm->sess_prefix, sessp, digits, dl);
      b->sess_shard[b->nsess++] = op->shard;
    }
    char tag = op->tag;
    arg(b, put(&w, &len, &tag, 1, NULL, 0), 1);
    s = num(&w, &len, k + 1);
    arg(b, s, len);
    s = num(&w, &len, op->epoch);
    arg(b, s, len);
    arg(b, op->sid ? op->sid : "", op->sid ? op->sid_len : 0);
    arg(b, op->url ? op->url : "", op->url ? op->url_len : 0);
    s = num(&w, &len, stream_of[i]);
    arg(b, s, len);
    s = num(&w, &len, op->seq);
    arg(b, s, len);
    arg(b, op->d ? op->d : "", op->d ? op->d_len : 0);
  }
  return 0;
}

void gm_pub_batch_free(gm_pub_batch_t *b) {
  gm_free(b->text, b->text_cap);
  b->text = NULL;
  b->text_cap = 0;
}

gm_pub_result_t gm_pub_result_of(const char *code, size_t len) {
  if (len == 2 && memcmp(code, "OK", 2) == 0) return GM_PUB_OK;
  if (len == 7 && memcmp(code, "MISSING", 7) == 0) return GM_PUB_MISSING;
  return GM_PUB_REFUSED;
}
