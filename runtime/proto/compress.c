#include "compress.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#define ZLIB_CONST /* next_in takes const bytes */
#include <zlib.h>
/* ZSTD_customMem and the *_advanced constructors sit in zstd's "static
 * linking only" section, but have been stable since 1.0 and are exported by
 * the shared library. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "alloc.h"
#include "errors.h"
#include "utf8.h"

/* --- names -------------------------------------------------------------- */

static const struct {
  const char *name;
  size_t len;
} names[] = {
#define GM_COMPRESS_ROW(suffix, name) \
  [GM_COMPRESS_##suffix] = {name, sizeof(name) - 1},
    GM_COMPRESS_MAP(GM_COMPRESS_ROW)
#undef GM_COMPRESS_ROW
};

#define NKINDS (sizeof(names) / sizeof(names[0]))

const char *gm_compress_name(gm_compress_t kind) {
  return (size_t)kind < NKINDS ? names[kind].name : NULL;
}

int gm_compress_parse(const char *name, size_t len, gm_compress_t *kind) {
  for (size_t i = 1; i < NKINDS; i++) {
    if (len == names[i].len && memcmp(name, names[i].name, len) == 0) {
      *kind = (gm_compress_t)i;
      return 0;
    }
  }
  return GM_EINVAL;
}

/* --- allocation --------------------------------------------------------- */

/* zlib and zstd free without a size but gm_free wants one, so each block
 * carries its size in a header that keeps malloc's alignment. The owner's
 * counter is what gm_*_memory reports. */
typedef union {
  size_t size;
  max_align_t align;
} block_t;

static void *tracked_alloc(size_t *mem, size_t size) {
  if (size > SIZE_MAX - sizeof(block_t)) return NULL;
  block_t *b = gm_malloc(sizeof(block_t) + size);
  if (b == NULL) return NULL;
  b->size = sizeof(block_t) + size;
  *mem += b->size;
  return b + 1;
}

static void tracked_free(size_t *mem, void *p) {
  if (p == NULL) return;
  block_t *b = (block_t *)p - 1;
  *mem -= b->size;
  gm_free(b, b->size);
}

static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size) {
  if (size != 0 && items > SIZE_MAX / size) return Z_NULL;
  return tracked_alloc(opaque, (size_t)items * size);
}

static void zlib_free(voidpf opaque, voidpf p) { tracked_free(opaque, p); }

static void *zstd_alloc(void *opaque, size_t size) {
  return tracked_alloc(opaque, size);
}

static void zstd_free(void *opaque, void *p) { tracked_free(opaque, p); }

/* --- inflater ----------------------------------------------------------- */

struct gm_inflater_s {
  gm_compress_t kind;
  int err;            /* sticky: 0 or a GM_E* code */
  const char *reason; /* static text for err */
  size_t max_payload; /* SIZE_MAX when uncapped */
  size_t payload_len; /* output of the payload in progress so far */
  size_t mem;         /* bytes held through tracked_alloc */
  uint64_t total_in;
  uint64_t total_out;
  gm_utf8_t utf8;     /* validation of the payload in progress */
  uint32_t tail;      /* zlib: the payload's last compressed bytes... */
  uint8_t tail_len;   /* ...and how many of them there are, up to 4 */
  bool ended;         /* zlib: the server ended the stream */
  union {
    z_stream zs; /* inflate keeps a pointer back to it: z never moves */
    ZSTD_DCtx *zd;
  } u;
};

/* Less spare room than ROOM_MIN is hardly worth a decompressor call (zlib's
 * fast loop wants 258 bytes of it): grow first, by ROOM_FIRST at least. */
#define ROOM_MIN 1024
#define ROOM_FIRST 4096

static int fail(gm_inflater_t *z, int err, const char *reason) {
  z->err = err;
  z->reason = reason;
  return err;
}

/* How much output the payload may still grow by, plus one byte so that
 * going over the cap shows; at most `most`. */
static size_t room_limit(const gm_inflater_t *z, size_t most) {
  size_t left = z->max_payload - z->payload_len;
  return left < most ? left + 1 : most;
}

/* Decompressors write into out's spare capacity, so output is never copied
 * twice. It grows geometrically (or to four times the compressed input left,
 * JSON's usual ratio, if that is more), but never past `limit` bytes of
 * spare, so a decompression bomb cannot make us allocate far beyond
 * max_payload. gm_buf_reserve rounds up to a power of two, which near the
 * cap could double memory: hence the hand-made growth. Returns the room for
 * the next call, 0 on ENOMEM. */
static size_t out_room(gm_buf_t *out, size_t in_left, size_t limit) {
  size_t spare = out->cap - out->len;
  if (spare < ROOM_MIN && spare < limit) {
    size_t grow = out->cap;
    size_t guess = in_left > SIZE_MAX / 4 ? SIZE_MAX : in_left * 4;
    if (grow < guess) grow = guess;
    if (grow < ROOM_FIRST) grow = ROOM_FIRST;
    if (grow > limit) grow = limit;
    if (grow > SIZE_MAX - out->len) return 0;
    uint8_t *p = gm_realloc(out->data, out->cap, out->len + grow);
    if (p == NULL) return 0;
    out->data = p;
    out->cap = out->len + grow;
    spare = grow;
  }
  return spare < limit ? spare : limit;
}

/* Accounts for n bytes just written at out->data + out->len. */
static int took(gm_inflater_t *z, gm_buf_t *out, size_t n) {
  if (n == 0) return 0;
  const uint8_t *p = out->data + out->len;
  out->len += n;
  z->payload_len += n;
  z->total_out += n;
  if (z->payload_len > z->max_payload)
    return fail(z, GM_EMSGSIZE, "payload exceeds the size limit");
  /* Checked while the bytes are still in cache, not in a second pass. */
  if (!gm_utf8_feed(&z->utf8, p, n)) return fail(z, GM_ECOMPRESS, "not UTF-8");
  return 0;
}

static int payload_done(gm_inflater_t *z) {
  bool whole = gm_utf8_done(&z->utf8);
  z->utf8 = (gm_utf8_t)GM_UTF8_INIT;
  z->payload_len = 0;
  z->tail = 0;
  z->tail_len = 0;
  return whole ? 1 : fail(z, GM_ECOMPRESS, "not UTF-8");
}

#define AFTER_END "data after the end of the zlib stream"

/* The sync-flush marker may straddle two messages, so the test looks at
 * the payload's last four bytes, not the message's. */
static bool zlib_marker(gm_inflater_t *z, const uint8_t *in, size_t len) {
  for (size_t i = len > 4 ? len - 4 : 0; i < len; i++)
    z->tail = z->tail << 8 | in[i];
  size_t seen = z->tail_len + (len < 4 ? len : 4);
  z->tail_len = (uint8_t)(seen < 4 ? seen : 4);
  return z->tail_len == 4 && z->tail == 0x0000FFFFu;
}

static int zlib_feed(gm_inflater_t *z, const uint8_t *in, size_t len,
                     gm_buf_t *out) {
  if (len == 0) return 0; /* a marker would have completed the last call */
  if (z->ended) return fail(z, GM_ECOMPRESS, AFTER_END);
  z->total_in += len;
  bool complete = zlib_marker(z, in, len);
  z_stream *s = &z->u.zs;
  size_t left = len;
  s->next_in = in;
  for (;;) {
    uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
    size_t room = out_room(out, left, room_limit(z, UINT_MAX));
    if (room == 0) return fail(z, GM_ENOMEM, "out of memory");
    s->avail_in = chunk;
    s->next_out = out->data + out->len;
    s->avail_out = (uInt)room;
    /* Sync flush: emit all output that the input allows, now. */
    int r = inflate(s, Z_SYNC_FLUSH);
    left -= chunk - s->avail_in;
    int e = took(z, out, room - s->avail_out);
    if (e) return e;
    if (r == Z_STREAM_END) {
      /* Discord never ends the stream; if a server does, that ends the
       * payload, and anything after it is an error. */
      z->ended = true;
      if (left) return fail(z, GM_ECOMPRESS, AFTER_END);
      return payload_done(z);
    }
    if (r == Z_MEM_ERROR) return fail(z, GM_ENOMEM, "out of memory");
    if (r == Z_NEED_DICT)
      return fail(z, GM_ECOMPRESS, "zlib stream needs a dictionary");
    if (r == Z_DATA_ERROR)
      return fail(z, GM_ECOMPRESS, s->msg ? s->msg : "corrupt zlib data");
    if (r != Z_OK && r != Z_BUF_ERROR)
      return fail(z, GM_ECOMPRESS, "zlib failure");
    /* A full output buffer may hide more output: go round again. Z_BUF_ERROR
     * means that round found nothing more. */
    if (left == 0 && (s->avail_out != 0 || r == Z_BUF_ERROR)) break;
    if (r == Z_BUF_ERROR) return fail(z, GM_ECOMPRESS, "zlib made no progress");
  }
  return complete ? payload_done(z) : 0;
}

static int zstd_feed(gm_inflater_t *z, const uint8_t *in, size_t len,
                     gm_buf_t *out) {
  z->total_in += len;
  ZSTD_inBuffer ib = {in, len, 0};
  for (;;) {
    size_t room = out_room(out, ib.size - ib.pos, room_limit(z, SIZE_MAX));
    if (room == 0) return fail(z, GM_ENOMEM, "out of memory");
    ZSTD_outBuffer ob = {out->data + out->len, room, 0};
    /* A non-zero result is a hint about the frame, which never ends here. */
    size_t r = ZSTD_decompressStream(z->u.zd, &ob, &ib);
    if (ZSTD_isError(r)) {
      switch (ZSTD_getErrorCode(r)) {
      case ZSTD_error_memory_allocation:
        return fail(z, GM_ENOMEM, "out of memory");
      case ZSTD_error_frameParameter_windowTooLarge:
        return fail(z, GM_ECOMPRESS, "zstd window too large");
      default:
        return fail(z, GM_ECOMPRESS, ZSTD_getErrorName(r));
      }
    }
    int e = took(z, out, ob.pos);
    if (e) return e;
    /* Output that filled the room may have more behind it. */
    if (ib.pos == ib.size && ob.pos < ob.size) break;
  }
  return payload_done(z);
}

gm_inflater_t *gm_inflater_new(gm_compress_t kind, size_t max_payload) {
  if (kind != GM_COMPRESS_ZLIB_STREAM && kind != GM_COMPRESS_ZSTD_STREAM)
    return NULL;
  gm_inflater_t *z = gm_calloc(1, sizeof(*z));
  if (z == NULL) return NULL;
  z->kind = kind;
  z->max_payload = max_payload ? max_payload : SIZE_MAX;
  z->utf8 = (gm_utf8_t)GM_UTF8_INIT;
  if (kind == GM_COMPRESS_ZLIB_STREAM) {
    z->u.zs.zalloc = zlib_alloc;
    z->u.zs.zfree = zlib_free;
    z->u.zs.opaque = &z->mem;
    /* windowBits 15 with the zlib header, as Discord sends. The 32 KiB
     * window is allocated on the first output. */
    if (inflateInit(&z->u.zs) != Z_OK) {
      gm_free(z, sizeof(*z));
      return NULL;
    }
  } else {
    ZSTD_customMem cm = {zstd_alloc, zstd_free, &z->mem};
    z->u.zd = ZSTD_createDCtx_advanced(cm);
    if (z->u.zd == NULL ||
        ZSTD_isError(ZSTD_DCtx_setParameter(z->u.zd, ZSTD_d_windowLogMax,
                                            GM_ZSTD_WINDOW_LOG_MAX))) {
      ZSTD_freeDCtx(z->u.zd);
      gm_free(z, sizeof(*z));
      return NULL;
    }
  }
  return z;
}

void gm_inflater_free(gm_inflater_t *z) {
  if (z == NULL) return;
  if (z->kind == GM_COMPRESS_ZLIB_STREAM) inflateEnd(&z->u.zs);
  else ZSTD_freeDCtx(z->u.zd);
  gm_free(z, sizeof(*z));
}

int gm_inflater_feed(gm_inflater_t *z, const uint8_t *in, size_t len,
                     gm_buf_t *out) {
  if (z->err) return z->err;
  if (z->kind == GM_COMPRESS_ZLIB_STREAM) return zlib_feed(z, in, len, out);
  return zstd_feed(z, in, len, out);
}

const char *gm_inflater_error(const gm_inflater_t *z) { return z->reason; }

size_t gm_inflater_memory(const gm_inflater_t *z) {
  return sizeof(*z) + z->mem;
}

void gm_inflater_totals(const gm_inflater_t *z, uint64_t *in, uint64_t *out) {
  if (in) *in = z->total_in;
  if (out) *out = z->total_out;
}

/* --- deflater ----------------------------------------------------------- */

struct gm_deflater_s {
  gm_compress_t kind;
  size_t mem;
  union {
    z_stream zs;
    ZSTD_CCtx *zc;
  } u;
};

/* Discord's zstd frames declare a 256 KiB window: the fake gateway does the
 * same, so clients' memory in tests and benchmarks matches production. */
#define ZSTD_SERVER_WINDOW_LOG 18

gm_deflater_t *gm_deflater_new(gm_compress_t kind, int level) {
  if (kind != GM_COMPRESS_ZLIB_STREAM && kind != GM_COMPRESS_ZSTD_STREAM)
    return NULL;
  gm_deflater_t *c = gm_calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->kind = kind;
  if (kind == GM_COMPRESS_ZLIB_STREAM) {
    if (level <= 0) level = 6;
    if (level > 9) level = 9;
    c->u.zs.zalloc = zlib_alloc;
    c->u.zs.zfree = zlib_free;
    c->u.zs.opaque = &c->mem;
    if (deflateInit(&c->u.zs, level) != Z_OK) {
      gm_free(c, sizeof(*c));
      return NULL;
    }
  } else {
    if (level <= 0) level = 3;
    if (level > 19) level = 19;
    ZSTD_customMem cm = {zstd_alloc, zstd_free, &c->mem};
    c->u.zc = ZSTD_createCCtx_advanced(cm);
    if (c->u.zc == NULL ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c->u.zc, ZSTD_c_compressionLevel,
                                            level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c->u.zc, ZSTD_c_windowLog,
                                            ZSTD_SERVER_WINDOW_LOG))) {
      ZSTD_freeCCtx(c->u.zc);
      gm_free(c, sizeof(*c));
      return NULL;
    }
  }
  return c;
}

void gm_deflater_free(gm_deflater_t *c) {
  if (c == NULL) return;
  if (c->kind == GM_COMPRESS_ZLIB_STREAM) deflateEnd(&c->u.zs);
  else ZSTD_freeCCtx(c->u.zc);
  gm_free(c, sizeof(*c));
}

/* Spare room in out for a compressor: at least 64 bytes, doubling. */
static int spare(gm_buf_t *out, size_t *room) {
  if (out->cap - out->len < 64) {
    int e = gm_buf_reserve(out, out->cap > 64 ? out->cap : 64);
    if (e) return e;
  }
  *room = out->cap - out->len;
  return 0;
}

static int zlib_compress(gm_deflater_t *c, const uint8_t *in, size_t len,
                         gm_buf_t *out) {
  z_stream *s = &c->u.zs;
  /* Room for the whole payload at once, plus the flush marker. */
  int e = gm_buf_reserve(out, deflateBound(s, len) + 16);
  if (e) return e;
  size_t left = len;
  s->next_in = in;
  for (;;) {
    size_t room;
    if ((e = spare(out, &room))) return e;
    if (room > UINT_MAX) room = UINT_MAX;
    uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
    s->avail_in = chunk;
    s->next_out = out->data + out->len;
    s->avail_out = (uInt)room;
    int r = deflate(s, Z_SYNC_FLUSH);
    left -= chunk - s->avail_in;
    out->len += room - s->avail_out;
    if (r == Z_BUF_ERROR && left == 0 && room == s->avail_out) {
      /* deflate declines a second flush with no new input. Our last call
       * flushed, so the stream is byte-aligned: an empty payload gets the
       * empty stored block that Z_SYNC_FLUSH would have written. */
      static const uint8_t empty[] = {0x00, 0x00, 0x00, 0xFF, 0xFF};
      return len == 0 ? gm_buf_append(out, empty, sizeof(empty)) : 0;
    }
    if (r == Z_MEM_ERROR) return GM_ENOMEM;
    if (r != Z_OK) return GM_ECOMPRESS;
    /* With Z_SYNC_FLUSH, a full output buffer may hide more output. */
    if (left == 0 && s->avail_out != 0) return 0;
  }
}

static int zstd_compress(gm_deflater_t *c, const uint8_t *in, size_t len,
                         gm_buf_t *out) {
  int e = gm_buf_reserve(out, ZSTD_compressBound(len) + 64);
  if (e) return e;
  ZSTD_inBuffer ib = {in, len, 0};
  for (;;) {
    size_t room;
    if ((e = spare(out, &room))) return e;
    ZSTD_outBuffer ob = {out->data + out->len, room, 0};
    size_t r = ZSTD_compressStream2(c->u.zc, &ob, &ib, ZSTD_e_flush);
    out->len += ob.pos;
    if (ZSTD_isError(r)) {
      bool oom = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation;
      return oom ? GM_ENOMEM : GM_ECOMPRESS;
    }
    if (r == 0) return 0; /* all input taken and flushed */
  }
}

int gm_deflater_compress(gm_deflater_t *c, const uint8_t *in, size_t len,
                         gm_buf_t *out) {
  if (c->kind == GM_COMPRESS_ZLIB_STREAM) return zlib_compress(c, in, len, out);
  return zstd_compress(c, in, len, out);
}

size_t gm_deflater_memory(const gm_deflater_t *c) {
  return sizeof(*c) + c->mem;
}
