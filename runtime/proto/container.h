/* The struct that embeds a member, from a pointer to that member (libuv's
 * container_of): how an intrusive link or a callback's handle leads back
 * to its owner without a cast written out by hand at each site. */
#ifndef GM_CONTAINER_H
#define GM_CONTAINER_H

#include <stddef.h>

#define gm_container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
