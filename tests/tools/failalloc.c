/*
 * failalloc.c -- a test-only LD_PRELOAD library that makes chosen calloc()
 * calls fail, so tests can drive orchester's out-of-memory paths in a real
 * process.
 *
 *   LD_PRELOAD=tests/failalloc.so FAILALLOC_SIZE=N FAILALLOC_FILE=PATH ...
 *
 * While PATH exists and holds "SKIP COUNT", calloc calls of exactly N bytes
 * (nmemb * size) let SKIP of them through and then fail COUNT of them
 * (NULL, errno ENOMEM); every other call is untouched.  Writing the file
 * anew (a new modification time) starts the count again.  Only calls of
 * N bytes look at the file, so the cost elsewhere is one comparison.
 *
 * Not for sanitizer builds: ASan's allocator must come first.  Being a
 * preload library it keeps its state in file-scope variables, which the
 * project's modules never do.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef void *(calloc_fn)(size_t, size_t);

static calloc_fn *s_real; /* libc's calloc */
static int s_resolving;   /* inside dlsym: serve from s_boot */
static char s_boot[4096]; /* what dlsym asks for meanwhile */
static size_t s_boot_used;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t s_armed_size = (size_t)-1; /* FAILALLOC_SIZE */
static struct timespec s_seen_mtime;     /* the file version counted for */
static long s_skip, s_count;             /* left to let through, left to fail */

static void s_init(void)
{
    s_resolving = 1;
    s_real = (calloc_fn *)dlsym(RTLD_NEXT, "calloc");
    s_resolving = 0;
    const char *sz = getenv("FAILALLOC_SIZE");
    if (sz)
        s_armed_size = (size_t)strtoull(sz, NULL, 10);
}

/* Whether this call of the armed size is to fail. */
static int s_should_fail(void)
{
    const char *path = getenv("FAILALLOC_FILE");
    struct stat st;
    if (path == NULL || stat(path, &st) != 0)
        return 0;
    int fail = 0;
    pthread_mutex_lock(&s_lock);
    if (st.st_mtim.tv_sec != s_seen_mtime.tv_sec ||
        st.st_mtim.tv_nsec != s_seen_mtime.tv_nsec) {
        FILE *f = fopen(path, "r");
        long skip = 0, count = 0;
        if (f && fscanf(f, "%ld %ld", &skip, &count) == 2) {
            s_seen_mtime = st.st_mtim;
            s_skip = skip;
            s_count = count;
        }
        if (f)
            fclose(f);
    }
    if (s_skip > 0) {
        s_skip--;
    } else if (s_count > 0) {
        s_count--;
        fail = 1;
    }
    pthread_mutex_unlock(&s_lock);
    return fail;
}

void *calloc(size_t nmemb, size_t size)
{
    if (s_resolving) { /* dlsym's own allocation, before s_real is known */
        size_t n = (nmemb * size + 15) & ~(size_t)15;
        if (s_boot_used + n > sizeof s_boot)
            return NULL;
        void *p = s_boot + s_boot_used;
        s_boot_used += n;
        return p; /* zero: static storage */
    }
    if (s_real == NULL)
        s_init();
    size_t n = nmemb * size;
    if (n == s_armed_size && s_should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return s_real(nmemb, size);
}
