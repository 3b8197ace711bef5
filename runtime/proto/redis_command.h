/* Commands gloaming.redis refuses, and why: one table.
 *
 * hiredis 0.14 matches each reply to the oldest pending call. Commands
 * that make the server send more (or fewer) replies than calls break that
 * pairing: SUBSCRIBE and MONITOR switch hiredis into modes where one
 * callback gets many replies, and a reply with no call (SSUBSCRIBE, which
 * 0.14 does not know) trips an assert in hiredis. Others would change one
 * connection's state behind the client's back (SELECT, RESET, HELLO 3). */
#ifndef GM_REDIS_COMMAND_H
#define GM_REDIS_COMMAND_H

#include <stddef.h>

/* Why the command (its first two words; word2 may be NULL) is refused,
 * or NULL when it may be sent. */
const char *gm_redis_refused(const char *word1, size_t len1, const char *word2,
                             size_t len2);

#endif
