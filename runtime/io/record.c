#include "io/record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#include "io/log.h"
#include "proto/alloc.h"

#define MARKER "<redacted>"

/* What the hook queues before each payload's bytes. */
typedef struct {
  double time;
  uint32_t shard, total;
  uint32_t len;
  uint32_t dir;
} entry_t;

/* Buffers the writer thread touches are plain malloc: gm_malloc may be a
 * counting allocator (the tests'), which is not thread-safe. */
typedef struct {
  char *data;
  size_t len, cap;
} vec_t;

struct gm_record_s {
  int refs;           /* loop thread only */
  bool closed;        /* loop thread only */
  bool warned_drop, warned_error;
  char *path;
  uint64_t max_bytes;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t wake; /* pending is not empty, or stopping */
  uv_cond_t idle; /* the writer finished a batch */
  /* under mu */
  vec_t pending;
  bool writing, stopping;
  bool failed;
  char error[200];
  gm_record_stats_t stats;
  /* writer thread only */
  gzFile file;
  bool gz;
  vec_t batch;
  char *line;
  size_t line_cap;
};

static int vec_append(vec_t *v, const void *p, size_t n) {
  if (v->len + n > v->cap) {
    size_t cap = v->cap ? v->cap : 4096;
    while (cap < v->len + n) cap *= 2;
    char *d = realloc(v->data, cap);
    if (d == NULL) return -1;
    v->data = d;
    v->cap = cap;
  }
  memcpy(v->data + v->len, p, n);
  v->len += n;
  return 0;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* x.jsonl.gz -> x.jsonl.1.gz (still a .gz to every tool); x -> x.1 */
static void rotated_name(const char *path, bool gz, char *out, size_t cap) {
  if (gz)
    snprintf(out, cap, "%.*s.1.gz", (int)(strlen(path) - 3), path);
  else
    snprintf(out, cap, "%s.1", path);
}

static gzFile open_file(const char *path, bool gz) {
  /* 0600: a recording holds what users wrote, as a sessions file does */
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  /* "T": zlib's transparent mode, the same calls write a plain file */
  /* level 1: most of the ratio for a third of level 6's CPU */
  gzFile f = gzdopen(fd, gz ? "ab1" : "abT");
  if (f == NULL) {
    close(fd);
    errno = ENOMEM;
  }
  return f;
}

/* A .gz whose writer was killed (kill -9, the OOM killer) ends with the
 * writer's last sync flush (00 00 ff ff) where a closed one ends with its
 * trailer: its last gzip member has no end. Appending a new member after
 * it made the whole file unreadable (inflate reads the new member's header
 * as data), the crashed run's lines with it. So before appending, that
 * member is finished as gzip would have: an empty final block (03 00) and
 * the trailer, the CRC and length of what the member inflates to. Returns
 * 0 (finished, or nothing to do), or -1 with errno. A kill in the middle of
 * a write (rare: the writer is idle between batches) is not repaired. */
static int finish_killed_member(const char *path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  static const unsigned char sync_end[4] = {0x00, 0x00, 0xff, 0xff};
  unsigned char tail[4];
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 4 ||
      pread(fd, tail, 4, st.st_size - 4) != 4 || memcmp(tail, sync_end, 4) != 0) {
    close(fd);
    return 0;
  }
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 16) != Z_OK) {
    close(fd);
    errno = ENOMEM;
    return -1;
  }
  unsigned char in[16384], out[16384];
  uLong crc = crc32(0, NULL, 0), len = 0;
  bool open_member = false, corrupt = false;
  int rc = 0;
  for (;;) {
    if (z.avail_in == 0) {
      ssize_t n = read(fd, in, sizeof in);
      if (n < 0) rc = -1;
      if (n <= 0) break;
      z.next_in = in;
      z.avail_in = (uInt)n;
    }
    z.next_out = out;
    z.avail_out = sizeof out;
    int ret = inflate(&z, Z_NO_FLUSH);
    size_t got = sizeof out - z.avail_out;
    crc = crc32(crc, out, (uInt)got);
    len += got;
    open_member = true;
    if (ret == Z_STREAM_END) { /* a closed member: the next one starts */
      inflateReset(&z);
      crc = crc32(0, NULL, 0);
      len = 0;
      open_member = false;
    } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
      corrupt = true; /* not ours to mend */
      break;
    }
  }
  inflateEnd(&z);
  if (rc == 0 && open_member && !corrupt) {
    unsigned char end[10] = {0x03, 0x00};
    for (int i = 0; i < 4; i++) {
      end[2 + i] = (unsigned char)(crc >> (8 * i));
      end[6 + i] = (unsigned char)(len >> (8 * i));
    }
    if (pwrite(fd, end, sizeof end, st.st_size) != (ssize_t)sizeof end) rc = -1;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

/* A plain recording whose writer was killed may end inside a line (zlib's
 * transparent mode writes when its buffer fills, not at line ends); lines
 * appended after it would be glued to it, one corrupt line that fails the
 * whole load. A line the recorder wrote ends with the payload's closing
 * quote and the object's brace ("}, the quote not escaped): a tail that
 * does not is the cut part of a line, and goes; one that does only lacks
 * its newline (an edited file), which is added. Returns 0 or -1 with errno. */
static int end_at_whole_line(const char *path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  struct stat st;
  char buf[4096];
  int rc = 0;
  if (fstat(fd, &st) != 0) rc = -1;
  off_t end = rc == 0 ? st.st_size : 0, at = end;
  char last = '\n';
  if (end > 0 && pread(fd, &last, 1, end - 1) != 1) rc = -1;
  while (rc == 0 && last != '\n' && at > 0) { /* the start of the tail */
    size_t n = at > (off_t)sizeof buf ? sizeof buf : (size_t)at;
    if (pread(fd, buf, n, at - (off_t)n) != (ssize_t)n) { rc = -1; break; }
    const char *nl = memrchr(buf, '\n', n);
    if (nl) { at = at - (off_t)n + (nl - buf) + 1; break; }
    at -= (off_t)n;
  }
  if (rc == 0 && last != '\n') {
    size_t tail = (size_t)(end - at);
    bool whole = false;
    if (tail >= 2 && pread(fd, buf, 3, end - 3) == 3) {
      size_t slashes = 0; /* before the quote: an odd count escapes it */
      for (off_t i = end - 3; i >= at && slashes < sizeof buf; i--) {
        char c;
        if (pread(fd, &c, 1, i) != 1 || c != '\\') break;
        slashes++;
      }
      whole = buf[1] == '"' && buf[2] == '}' && slashes % 2 == 0;
    }
    if (whole ? pwrite(fd, "\n", 1, end) != 1 : ftruncate(fd, at) != 0) rc = -1;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

static void fail_locked(gm_record_t *r, const char *what) {
  r->failed = true;
  snprintf(r->error, sizeof r->error, "recording to %s stopped: %s", r->path,
           what);
}

/* Writer thread: returns false once the file failed. */
static bool write_line(gm_record_t *r, const char *line, size_t n) {
  if (r->stats.bytes > 0 && r->stats.bytes + n > r->max_bytes) {
    char rotated[4096];
    rotated_name(r->path, r->gz, rotated, sizeof rotated);
    gzclose(r->file);
    r->file = NULL;
    if (rename(r->path, rotated) != 0 || !(r->file = open_file(r->path, r->gz))) {
      uv_mutex_lock(&r->mu);
      fail_locked(r, strerror(errno));
      uv_mutex_unlock(&r->mu);
      return false;
    }
    uv_mutex_lock(&r->mu);
    r->stats.rotations++;
    r->stats.bytes = 0;
    uv_mutex_unlock(&r->mu);
  }
  if (gzwrite(r->file, line, (unsigned)n) != (int)n) {
    int zerr;
    const char *why = gzerror(r->file, &zerr);
    uv_mutex_lock(&r->mu);
    fail_locked(r, zerr == Z_ERRNO ? strerror(errno) : why);
    uv_mutex_unlock(&r->mu);
    return false;
  }
  uv_mutex_lock(&r->mu);
  r->stats.bytes += n;
  r->stats.lines++;
  uv_mutex_unlock(&r->mu);
  return true;
}

static void write_batch(gm_record_t *r) {
  size_t at = 0;
  bool ok = r->file != NULL;
  while (ok && at + sizeof(entry_t) <= r->batch.len) {
    entry_t e;
    memcpy(&e, r->batch.data + at, sizeof e);
    at += sizeof e;
    size_t need = gm_record_line_bound(e.len);
    if (need > r->line_cap) {
      char *grown = realloc(r->line, need);
      if (grown == NULL) break; /* this line is lost; the next may fit */
      r->line = grown;
      r->line_cap = need;
    }
    size_t n = gm_record_line_format(r->line, e.time, e.shard, e.total,
                                     (gm_record_dir_t)e.dir,
                                     r->batch.data + at, e.len);
    at += e.len;
    ok = write_line(r, r->line, n);
  }
  /* a reader of the live file (tail, a crash) sees whole batches */
  if (ok && gzflush(r->file, Z_SYNC_FLUSH) != Z_OK) {
    uv_mutex_lock(&r->mu);
    fail_locked(r, strerror(errno));
    uv_mutex_unlock(&r->mu);
  }
  r->batch.len = 0;
}

static void writer(void *arg) {
  gm_record_t *r = arg;
  uv_mutex_lock(&r->mu);
  for (;;) {
    while (r->pending.len == 0 && !r->stopping) uv_cond_wait(&r->wake, &r->mu);
    if (r->pending.len == 0) break; /* stopping, and everything written */
    vec_t t = r->batch;
    r->batch = r->pending;
    r->pending = t;
    r->writing = true;
    bool failed = r->failed;
    uv_mutex_unlock(&r->mu);
    if (!failed) write_batch(r);
    r->batch.len = 0;
    uv_mutex_lock(&r->mu);
    r->writing = false;
    uv_cond_broadcast(&r->idle);
  }
  uv_mutex_unlock(&r->mu);
  if (r->file) gzclose(r->file);
  r->file = NULL;
}

gm_record_t *gm_record_open(const char *path, uint64_t max_bytes, char *why,
                            size_t why_len) {
  bool gz = ends_with(path, ".gz");
  errno = 0;
  gzFile f = (gz ? finish_killed_member(path) : end_at_whole_line(path)) != 0
                ? NULL
                : open_file(path, gz);
  if (f == NULL) {
    snprintf(why, why_len, "cannot record to %s: %s", path,
             errno ? strerror(errno) : "out of memory");
    return NULL;
  }
  gm_record_t *r = gm_calloc(1, sizeof *r);
  char *p = r ? gm_strndup(path, strlen(path)) : NULL;
  if (p == NULL) {
    gzclose(f);
    if (r) gm_free(r, sizeof *r);
    snprintf(why, why_len, "out of memory");
    return NULL;
  }
  struct stat st;
  r->stats.bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
  r->refs = 1;
  r->path = p;
  r->max_bytes = max_bytes ? max_bytes : GM_RECORD_DEFAULT_MAX_BYTES;
  r->file = f;
  r->gz = gz;
  uv_mutex_init(&r->mu);
  uv_cond_init(&r->wake);
  uv_cond_init(&r->idle);
  if (uv_thread_create(&r->thread, writer, r) != 0) {
    gzclose(f);
    uv_cond_destroy(&r->wake);
    uv_cond_destroy(&r->idle);
    uv_mutex_destroy(&r->mu);
    gm_free(p, strlen(p) + 1);
    gm_free(r, sizeof *r);
    snprintf(why, why_len, "cannot record to %s: no thread for the writer",
             path);
    return NULL;
  }
  return r;
}

void gm_record_retain(gm_record_t *r) { r->refs++; }

void gm_record_release(gm_record_t *r) {
  if (--r->refs > 0) return;
  gm_record_close(r);
  uv_cond_destroy(&r->wake);
  uv_cond_destroy(&r->idle);
  uv_mutex_destroy(&r->mu);
  free(r->pending.data);
  free(r->batch.data);
  free(r->line);
  gm_free(r->path, strlen(r->path) + 1);
  gm_free(r, sizeof *r);
}

void gm_record_close(gm_record_t *r) {
  if (r->closed) return;
  r->closed = true;
  uv_mutex_lock(&r->mu);
  r->stopping = true;
  uv_cond_signal(&r->wake);
  uv_mutex_unlock(&r->mu);
  uv_thread_join(&r->thread);
}

/* Says once (on the loop thread: the log is not thread-safe) why the
 * recording stopped or lost payloads. */
static void report(gm_record_t *r, bool failed, bool dropped) {
  if (failed && !r->warned_error) {
    r->warned_error = true;
    gm_log(GM_LOG_ERROR, "record", "%s", r->error);
  }
  if (dropped && !r->warned_drop) {
    r->warned_drop = true;
    gm_log(GM_LOG_WARN, "record",
           "recording to %s: the disk is slower than the gateway; payloads "
           "are dropped from the recording while %u MiB wait",
           r->path, GM_RECORD_MAX_PENDING >> 20);
  }
}

static void add_locked(gm_record_t *r, const entry_t *e, const char *data) {
  if (r->pending.len + sizeof *e + e->len > GM_RECORD_MAX_PENDING ||
      vec_append(&r->pending, e, sizeof *e) != 0) {
    r->stats.dropped++;
    return;
  }
  if (vec_append(&r->pending, data, e->len) != 0) {
    r->pending.len -= sizeof *e;
    r->stats.dropped++;
    return;
  }
  if (r->pending.len == sizeof *e + e->len) uv_cond_signal(&r->wake);
}

void gm_record_add(gm_record_t *r, uint32_t shard, uint32_t total,
                   gm_record_dir_t dir, const char *data, size_t len,
                   const char *secret) {
  if (r->closed || len > UINT32_MAX) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  entry_t e = {(double)ts.tv_sec + (double)ts.tv_nsec / 1e9, shard, total,
               (uint32_t)len, (uint32_t)dir};
  /* Identify and Resume carry the token: it must never reach the file.
   * Only sends are searched, and they are rare (120 a minute at most). */
  char *scrubbed = NULL;
  size_t slen = secret ? strlen(secret) : 0;
  if (slen && memmem(data, len, secret, slen)) {
    scrubbed = malloc(len + len / slen * sizeof MARKER + 1);
    if (scrubbed == NULL) return;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
      if (i + slen <= len && memcmp(data + i, secret, slen) == 0) {
        memcpy(scrubbed + o, MARKER, sizeof MARKER - 1);
        o += sizeof MARKER - 1;
        i += slen;
      } else {
        scrubbed[o++] = data[i++];
      }
    }
    data = scrubbed;
    e.len = (uint32_t)o;
  }
  uv_mutex_lock(&r->mu);
  uint64_t dropped = r->stats.dropped;
  if (!r->failed) add_locked(r, &e, data);
  bool failed = r->failed, more_dropped = r->stats.dropped > dropped;
  uv_mutex_unlock(&r->mu);
  free(scrubbed);
  report(r, failed, more_dropped);
}

void gm_record_flush(gm_record_t *r) {
  if (r->closed) return;
  uv_mutex_lock(&r->mu);
  while (r->pending.len > 0 || r->writing) uv_cond_wait(&r->idle, &r->mu);
  bool failed = r->failed;
  uv_mutex_unlock(&r->mu);
  report(r, failed, false);
}

void gm_record_stats(gm_record_t *r, gm_record_stats_t *out) {
  uv_mutex_lock(&r->mu);
  *out = r->stats;
  uv_mutex_unlock(&r->mu);
}

const char *gm_record_error(gm_record_t *r) {
  uv_mutex_lock(&r->mu);
  const char *e = r->failed ? r->error : NULL;
  uv_mutex_unlock(&r->mu);
  return e;
}
