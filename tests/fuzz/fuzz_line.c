/*
 * fuzz_line.c -- libFuzzer harness for the plaintext line parser
 * (src/line.c).
 *
 * The input is split on '\n' as the ingest shell splits it.  Each line is
 * copied to a heap block of its exact length (so ASan sees any read past
 * len) and parsed into exact-size heap outputs with a small and a large
 * capacity (so ASan sees any write past outcap).  The two results must agree,
 * and every accepted line must be canonical.  The same line is also fed
 * whole to line_canon() as a name, so that space and tab reach the name
 * cleanser too.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/line.c \
 *       tests/fuzz/fuzz_line.c -o fuzz_line
 *   ./fuzz_line -max_total_time=20 corpus-copy/
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"

#define SMALL 24
#define LARGE 8192
#define NOW   1700000123LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A byte that may stand in the routing name of a canonical line. */
static int s_path_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == ':' ||
           c == '#' || c == '.';
}

/* Check that out/res is a canonical line that fits in cap. */
static void s_check(const char *out, size_t cap, const line_result_t *res)
{
    size_t i, spaces = 0;

    assert(res->len <= cap);
    assert(res->len >= 6); /* "n v t\n" at the least */
    assert(out[res->len - 1] == '\n');
    assert(memchr(out, '\n', res->len - 1) == NULL);
    assert(memchr(out, '\r', res->len) == NULL);
    for (i = 0; i < res->len; i++)
        spaces += out[i] == ' ';
    assert(spaces == 2);
    assert(res->namelen > 0 && res->namelen <= res->fulllen);
    assert(res->fulllen + 1 < res->len && out[res->fulllen] == ' ');
    assert(res->namelen == res->fulllen || out[res->namelen] == ';');

    /* the routing name: allowed bytes, single dots, none at either end */
    assert(out[0] != '.' && out[res->namelen - 1] != '.');
    for (i = 0; i < res->namelen; i++) {
        assert(s_path_byte((unsigned char)out[i]));
        assert(i == 0 || out[i] != '.' || out[i - 1] != '.');
    }
    /* the tags: printable ASCII without space */
    for (i = res->namelen; i < res->fulllen; i++)
        assert(out[i] > ' ' && out[i] < 0x7f);
}

/* Parse with both capacities and check that the results agree. */
static void s_parse(const char *line, size_t len, char *small, char *large)
{
    line_result_t rs, rl;
    line_status_t ss = line_parse(line, len, NOW, small, SMALL, &rs);
    line_status_t sl = line_parse(line, len, NOW, large, LARGE, &rl);

    assert((unsigned)ss < LINE_NSTATUS && (unsigned)sl < LINE_NSTATUS);
    if (ss == LINE_OK)
        s_check(small, SMALL, &rs);
    if (sl == LINE_OK) {
        s_check(large, LARGE, &rl);
        if (rl.len <= SMALL) {
            assert(ss == LINE_OK && rs.len == rl.len &&
                   rs.namelen == rl.namelen && rs.fulllen == rl.fulllen);
            assert(memcmp(small, large, rl.len) == 0);
        } else {
            assert(ss == LINE_TOOLONG);
        }
    } else if (sl == LINE_TOOLONG) {
        assert(ss == LINE_TOOLONG);
    } else {
        assert(ss == sl);
    }

    /* the whole line as a pre-split name */
    sl = line_canon(line, len, "1", 1, "-1", 2, NOW, large, LARGE, &rl);
    assert(sl == LINE_OK || sl == LINE_NAME || sl == LINE_TOOLONG);
    if (sl == LINE_OK)
        s_check(large, LARGE, &rl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *small = malloc(SMALL), *large = malloc(LARGE);

    assert(small != NULL && large != NULL);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        char *line = malloc(len ? len : 1);

        assert(line != NULL);
        if (len > 0)
            memcpy(line, p, len);
        s_parse(line, len, small, large);
        free(line);
        p += len + (nl != NULL);
    }
    free(small);
    free(large);
    return 0;
}
