/* gloaming's error codes: one table for C and Lua.
 *
 * C functions return 0 or a negative GM_E* value. Lua sees the name
 * ("ETIMEDOUT") as the third value of a failure triple
 * `nil, message, code`. */
#ifndef GM_ERRORS_H
#define GM_ERRORS_H

/* XX(name, message) */
#define GM_ERRNO_MAP(XX)                                            \
  XX(ENOMEM, "out of memory")                                       \
  XX(EINVAL, "invalid argument")                                    \
  XX(ECANCELED, "cancelled")                                        \
  XX(ETIMEDOUT, "timed out")                                        \
  XX(ECLOSED, "closed")                                             \
  XX(EAGAIN, "resource temporarily unavailable")                    \
  XX(EIO, "input/output error")                                     \
  XX(EDNS, "host name could not be resolved")                       \
  XX(ECONNREFUSED, "connection refused")                            \
  XX(ECONNRESET, "connection reset by peer")                        \
  XX(EADDRINUSE, "address already in use")                          \
  XX(ETLS, "TLS failure")                                           \
  XX(ETLSVERIFY, "certificate verification failed")                 \
  XX(ETLSHOST, "certificate does not match the host name")          \
  XX(EHANDSHAKE, "websocket handshake failed")                      \
  XX(EHTTP, "malformed HTTP message")                               \
  XX(EURL, "malformed URL")                                         \
  XX(EPROTO, "protocol error")                                      \
  XX(EMSGSIZE, "message too large")                                 \
  XX(ECOMPRESS, "decompression failed")                             \
  XX(EDECODE, "payload could not be decoded")                       \
  XX(ERECONNECT, "connection lost, reconnecting")                   \
  XX(ERELOAD, "module reload failed")                               \
  XX(ETASK, "task raised an error")                                 \
  XX(ENOBUFS, "the queue is full")                                  \
  XX(EREDIS, "Redis answered with an error")

enum {
  GM_OK = 0,
  GM__ERRNO_FIRST = -1000,
#define GM_ERRNO_ENUM(name, msg) GM_##name,
  GM_ERRNO_MAP(GM_ERRNO_ENUM)
#undef GM_ERRNO_ENUM
  GM__ERRNO_LAST
};

/* "ETIMEDOUT" for GM_ETIMEDOUT; "EUNKNOWN" for anything else. */
const char *gm_err_name(int err);
/* "timed out" for GM_ETIMEDOUT. */
const char *gm_strerror(int err);

#endif
