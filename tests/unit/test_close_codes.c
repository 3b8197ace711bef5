/* Close code texts against Discord's "Gateway Close Event Codes" table
 * (discord-api-docs, topics/opcodes-and-status-codes): each starts with
 * Discord's short description and says what was sent that Discord refused,
 * and the codes Discord says not to reconnect after are the fatal ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/close_codes.h"

static const struct {
  int code;
  const char *starts; /* Discord's description, lower case */
  const char *says;   /* the gist of Discord's explanation */
  bool reconnect;
} discord[] = {
    {4000, "unknown error", "Discord", true},
    {4001, "unknown opcode", "invalid payload", true},
    {4002, "decode error", "payload that was sent", true},
    {4003, "not authenticated", "before Identify", true},
    {4004, "authentication failed", "token is incorrect", false},
    {4005, "already authenticated", "more than one Identify", true},
    {4007, "invalid seq", "sent in Resume", true},
    {4008, "rate limited", "too quickly", true},
    {4009, "session timed out", "timed out", true},
    {4010, "invalid shard", "sent in Identify", false},
    {4011, "sharding required", "too many guilds", false},
    {4012, "invalid api version", "version", false},
    {4013, "invalid intents", "not a valid bit set", false},
    {4014, "disallowed intents", "not approved", false},
};

static void lower(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

static void texts_follow_discord(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof discord / sizeof discord[0]; i++) {
    const char *d = gm_close_description(discord[i].code);
    assert_non_null(d);
    char low[256];
    strncpy(low, d, sizeof low - 1);
    low[sizeof low - 1] = '\0';
    lower(low);
    if (strncmp(low, discord[i].starts, strlen(discord[i].starts)) != 0 ||
        strstr(d, discord[i].says) == NULL)
      fail_msg("%d: \"%s\" does not say \"%s ... %s\"", discord[i].code, d,
               discord[i].starts, discord[i].says);
    assert_int_equal(discord[i].reconnect,
                     !gm_close_fatal(gm_close_action(discord[i].code)));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(texts_follow_discord),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
