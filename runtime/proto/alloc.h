/* Allocation hooks for the sans-I/O core.
 *
 * Nothing in runtime/proto calls malloc directly: every allocation goes
 * through these hooks, so an embedder (or a test) can count bytes, cap them,
 * or make the Nth allocation fail. The defaults are the C library's. */
#ifndef GM_ALLOC_H
#define GM_ALLOC_H

#include <stddef.h>

typedef struct gm_allocator_s {
  void *(*realloc)(void *ud, void *ptr, size_t old_size, size_t new_size);
  void *ud;
} gm_allocator_t;

/* Replaces the process-wide allocator; NULL restores the default. */
void gm_set_allocator(const gm_allocator_t *allocator);

void *gm_malloc(size_t size);
void *gm_calloc(size_t count, size_t size);
void *gm_realloc(void *ptr, size_t old_size, size_t new_size);
void gm_free(void *ptr, size_t size);
char *gm_strndup(const char *s, size_t len);

#endif
