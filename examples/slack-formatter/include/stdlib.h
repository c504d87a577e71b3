/* The few libc functions the generated bindings call, for a freestanding wasm32 build
 * (clang --target=wasm32 -nostdlib). Implemented in src/runtime.c. */
#ifndef WRENN_FORMATTER_STDLIB_H
#define WRENN_FORMATTER_STDLIB_H
#include <stddef.h>
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
_Noreturn void abort(void);
#endif
