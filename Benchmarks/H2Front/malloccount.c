// LD_PRELOAD malloc counter: SIGUSR2 writes "mallocs=N frees=N" to stderr.
#define _GNU_SOURCE
#include <stddef.h>
#include <signal.h>
#include <unistd.h>
#include <stdatomic.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static atomic_ulong nmalloc, nfree;
void *malloc(size_t n) { atomic_fetch_add_explicit(&nmalloc, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&nmalloc, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&nmalloc, 1, memory_order_relaxed); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { atomic_fetch_add_explicit(&nmalloc, 1, memory_order_relaxed); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **r, size_t a, size_t n) { void *p = memalign(a, n); if (!p) return 12; *r = p; return 0; }
void free(void *p) { if (p) atomic_fetch_add_explicit(&nfree, 1, memory_order_relaxed); __libc_free(p); }
static void put(unsigned long v) { char b[32]; int i = 31; b[i] = 0; do { b[--i] = '0' + v % 10; v /= 10; } while (v); write(2, b + i, 31 - i); }
static void onsig(int s) { (void)s; write(2, "mallocs=", 8); put(nmalloc); write(2, " frees=", 7); put(nfree); write(2, "\n", 1); }
__attribute__((constructor)) static void init(void) { signal(SIGUSR2, onsig); }
