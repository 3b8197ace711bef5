#include "close_codes.h"

#include <stddef.h>

static const struct {
  int code;
  const char *name;
  const char *description;
  gm_close_action_t action;
  const char *hint;
} table[] = {
#define GM_CLOSE_ROW(code, name, reason, desc, action, hint) \
  {code, #name, desc, GM_CLOSE_##action, hint},
    GM_CLOSE_CODE_MAP(GM_CLOSE_ROW)
#undef GM_CLOSE_ROW
};

static int find(int code) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].code == code) return (int)i;
  return -1;
}

gm_close_action_t gm_close_action(int code) {
  int i = find(code);
  return i < 0 ? GM_CLOSE_RESUME : table[i].action;
}

const char *gm_close_description(int code) {
  int i = find(code);
  return i < 0 ? NULL : table[i].description;
}

const char *gm_close_hint(int code) {
  int i = find(code);
  return i < 0 ? NULL : table[i].hint;
}

bool gm_close_fatal(gm_close_action_t action) {
  return action == GM_CLOSE_FATAL || action == GM_CLOSE_FATAL_ALL;
}

const char *gm_close_name(int code) {
  int i = find(code);
  return i < 0 ? NULL : table[i].name;
}

bool gm_close_code_sendable(int code) {
  /* 1004-1006 and 1015 are reserved, 1016-2999 unassigned, and nothing
   * above 4999 is defined. */
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}
