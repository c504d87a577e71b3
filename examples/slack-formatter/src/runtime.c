/* A tiny runtime for a freestanding formatter: a bump allocator over the linear memory and the
 * memory functions. The host instantiates a formatter afresh for every call, so nothing is ever
 * freed: the whole instance goes away after one event. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern unsigned char __heap_base;
static uintptr_t heap_top = 0;

void *malloc(size_t size) {
    if (heap_top == 0) heap_top = (uintptr_t)&__heap_base;
    uintptr_t p = (heap_top + 15) & ~(uintptr_t)15;
    uintptr_t end = p + size;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        size_t pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) abort();
    }
    heap_top = end;
    return (void *)p;
}

void *calloc(size_t n, size_t size) {
    void *p = malloc(n * size);
    memset(p, 0, n * size);
    return p;
}

void *realloc(void *ptr, size_t size) {
    void *p = malloc(size);
    /* The old block's size is unknown; copying `size` bytes reads at most into later blocks,
     * all inside the heap, and the caller uses only its old length of them. */
    if (ptr) memmove(p, ptr, size);
    return p;
}

void free(void *ptr) { (void)ptr; }

_Noreturn void abort(void) { __builtin_trap(); }

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
