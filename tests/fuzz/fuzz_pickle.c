/*
 * fuzz_pickle.c -- libFuzzer harness for the carbon pickle decoder
 * (src/pickle.c).
 *
 * The input is one frame's pickle (without the length prefix), copied to a
 * heap block of its exact length so ASan sees any read past the end.  It is
 * decoded three times: by pickle_decode() with the default limits, by a
 * decoder kept across inputs (so what one frame leaves in the arena meets
 * the next), and by a decoder with tiny limits.  The first two must agree
 * exactly; a frame the tiny limits accept must give the same datapoints
 * under the defaults.  Every byte handed to the callback is read.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/pickle.c \
 *       tests/fuzz/fuzz_pickle.c -lm -o fuzz_pickle
 *   cp -r tests/fuzz/corpus/pickle corpus-copy
 *   ./fuzz_pickle -max_total_time=30 corpus-copy/
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the callback saw: a count and a hash of every byte. */
typedef struct {
    size_t n;      /* datapoints */
    uint64_t hash; /* FNV-1a over the fields and their lengths */
} seen_t;

static void s_mix(seen_t *seen, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        seen->hash = (seen->hash ^ (unsigned char)s[i]) * 1099511628211ull;
    seen->hash = (seen->hash ^ len) * 1099511628211ull;
}

static void s_point(void *arg, const char *name, size_t namelen,
                    const char *value, size_t valuelen, const char *ts,
                    size_t tslen)
{
    seen_t *seen = arg;

    assert(name && value && ts);
    assert(namelen <= PICKLE_DEFAULT_MAX_STRING);
    assert(valuelen <= PICKLE_DEFAULT_MAX_STRING);
    assert(tslen <= PICKLE_DEFAULT_MAX_STRING);
    s_mix(seen, name, namelen);
    s_mix(seen, value, valuelen);
    s_mix(seen, ts, tslen);
    seen->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pickle_t *kept, *tiny;
    static const pickle_limits_t small = {
        .max_depth = 4, .max_items = 8, .max_memo = 16, .max_string = 16};
    unsigned char *buf = malloc(size ? size : 1);
    seen_t a = {0, 1469598103934665603ull}, b = a, c = a;
    pickle_status_t sa, sb, sc;
    size_t na = 7, nb = 7, nc = 7;
    int ra, rb, rc;

    assert(buf);
    if (!kept)
        kept = pickle_new(NULL);
    if (!tiny)
        tiny = pickle_new(&small);
    assert(kept && tiny);
    memcpy(buf, data, size);

    ra = pickle_decode(buf, size, NULL, s_point, &a, &sa, &na);
    rb = pickle_run(kept, buf, size, s_point, &b, &sb, &nb);
    rc = pickle_run(tiny, buf, size, s_point, &c, &sc, &nc);

    assert(ra == (sa == PICKLE_OK ? 0 : -1));
    assert((unsigned)sa < PICKLE_NSTATUS && pickle_status_str(sa));
    assert(ra == rb && sa == sb && na == nb);
    assert(a.n == na && b.n == nb && c.n == nc);
    assert(a.hash == b.hash);
    if (ra != 0)
        assert(na == 0);
    if (rc == 0) {
        assert(ra == 0 && nc == na && c.hash == a.hash);
    }
    free(buf);
    return 0;
}
