#include "alloc.h"

#include <stdlib.h>
#include <string.h>

static void *default_realloc(void *ud, void *ptr, size_t old_size,
                             size_t new_size) {
  (void)ud;
  (void)old_size;
  if (new_size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, new_size);
}

static gm_allocator_t current = {default_realloc, NULL};

void gm_set_allocator(const gm_allocator_t *allocator) {
  if (allocator == NULL) {
    current.realloc = default_realloc;
    current.ud = NULL;
  } else {
    current = *allocator;
  }
}

void *gm_malloc(size_t size) {
  return size ? current.realloc(current.ud, NULL, 0, size) : NULL;
}

void *gm_calloc(size_t count, size_t size) {
  if (size != 0 && count > (size_t)-1 / size) return NULL;
  void *p = gm_malloc(count * size);
  if (p) memset(p, 0, count * size);
  return p;
}

void *gm_realloc(void *ptr, size_t old_size, size_t new_size) {
  if (new_size == 0) {
    gm_free(ptr, old_size);
    return NULL;
  }
  return current.realloc(current.ud, ptr, old_size, new_size);
}

void gm_free(void *ptr, size_t size) {
  if (ptr) current.realloc(current.ud, ptr, size, 0);
}

char *gm_strndup(const char *s, size_t len) {
  char *p = gm_malloc(len + 1);
  if (p) {
    memcpy(p, s, len);
    p[len] = '\0';
  }
  return p;
}
