#include "errors.h"

static const struct {
  const char *name;
  const char *message;
} table[] = {
#define GM_ERRNO_ROW(name, msg) {#name, msg},
    GM_ERRNO_MAP(GM_ERRNO_ROW)
#undef GM_ERRNO_ROW
};

static int index_of(int err) {
  if (err <= GM__ERRNO_FIRST || err >= GM__ERRNO_LAST) return -1;
  return err - GM__ERRNO_FIRST - 1;
}

const char *gm_err_name(int err) {
  int i = index_of(err);
  return i < 0 ? "EUNKNOWN" : table[i].name;
}

const char *gm_strerror(int err) {
  int i = index_of(err);
  return i < 0 ? "unknown error" : table[i].message;
}
