#include "event_types.h"

#include <stdlib.h>
#include <string.h>

#include "opcodes.h"

static const char *const names[] = {
#define GM_EVENT_NAME(name, groups) #name,
    GM_EVENT_TYPE_MAP(GM_EVENT_NAME)
#undef GM_EVENT_NAME
};

static const uint32_t group_masks[] = {
#define GM_EVENT_GROUPS(name, groups) groups,
    GM_EVENT_TYPE_MAP(GM_EVENT_GROUPS)
#undef GM_EVENT_GROUPS
};

uint32_t gm_event_type_groups(gm_event_type_t t) {
  return (unsigned)t < GM_EVENT_COUNT ? group_masks[t] : 0;
}

/* Dispatch names sorted once, for binary search: a lookup per received
 * dispatch must cost little. */
static gm_event_type_t sorted[GM_EVENT_COUNT];
static int n_sorted = -1;

static int by_name(const void *a, const void *b) {
  return strcmp(names[*(const gm_event_type_t *)a],
                names[*(const gm_event_type_t *)b]);
}

static void build_index(void) {
  int n = 0;
  for (int i = 0; i < GM_EVENT_COUNT; i++)
    if (i != GM_EVENT_UNKNOWN && strncmp(names[i], "GATEWAY_", 8) != 0)
      sorted[n++] = (gm_event_type_t)i;
  qsort(sorted, (size_t)n, sizeof sorted[0], by_name);
  n_sorted = n;
}

const char *gm_event_type_name(gm_event_type_t t) {
  return (unsigned)t < GM_EVENT_COUNT ? names[t] : "UNKNOWN";
}

gm_event_type_t gm_event_type_of_dispatch(const char *name, size_t len) {
  if (n_sorted < 0) build_index();
  int lo = 0, hi = n_sorted - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const char *m = names[sorted[mid]];
    int c = strncmp(name, m, len);
    if (c == 0) c = m[len] == '\0' ? 0 : -1;
    if (c == 0) return sorted[mid];
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return GM_EVENT_UNKNOWN;
}

int gm_event_type_of_opcode(int op) {
  switch (op) {
  case GM_OP_HELLO:
    return GM_EVENT_GATEWAY_HELLO;
  case GM_OP_HEARTBEAT:
    return GM_EVENT_GATEWAY_HEARTBEAT;
  case GM_OP_HEARTBEAT_ACK:
    return GM_EVENT_GATEWAY_HEARTBEAT_ACK;
  case GM_OP_RECONNECT:
    return GM_EVENT_GATEWAY_RECONNECT;
  case GM_OP_INVALID_SESSION:
    return GM_EVENT_GATEWAY_INVALIDATE_SESSION;
  default:
    return -1;
  }
}

void gm_event_flags_all(gm_event_flags_t *f) {
  memset(f, 0, sizeof *f);
  for (int i = 0; i < GM_EVENT_COUNT; i++) gm_event_flags_add(f, (gm_event_type_t)i);
}

int gm_event_classify(const gm_envelope_t *env) {
  if (env->op != GM_OP_DISPATCH) return gm_event_type_of_opcode(env->op);
  /* an escaped name is none we know */
  return env->t && !env->t_escaped
             ? (int)gm_event_type_of_dispatch(env->t, env->t_len)
             : GM_EVENT_UNKNOWN;
}
