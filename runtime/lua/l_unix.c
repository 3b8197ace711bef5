/* Placeholder: filled in by the REPL work (issue 7). */
#include "lua/rt.h"

int gm_open_unix(lua_State *L) {
  (void)L;
  return 0;
}
