/*
 * test_pickle_enc.c -- the pickle encoder's frames decode back, through
 * orchester's own decoder, to the datapoints they were made from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "pickle_enc.h"

typedef struct {
    char out[1 << 16];
    size_t len;
    int n;
} got_t;

static void s_point(void *arg, const char *name, size_t namelen,
                    const char *value, size_t valuelen, const char *ts,
                    size_t tslen)
{
    got_t *g = arg;
    g->len += (size_t)snprintf(g->out + g->len, sizeof g->out - g->len,
                               "%.*s %.*s %.*s\n", (int)namelen, name,
                               (int)valuelen, value, (int)tslen, ts);
    g->n++;
}

/* Decode every frame of buf; returns the frame count. */
static int s_decode_all(const char *buf, size_t len, got_t *g)
{
    pickle_t *d = pickle_new(NULL);
    int frames = 0;
    size_t off = 0;
    while (off < len) {
        assert_true(len - off >= 4);
        const unsigned char *p = (const unsigned char *)buf + off;
        size_t flen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) |
                      ((size_t)p[2] << 8) | p[3];
        assert_true(off + 4 + flen <= len);
        pickle_status_t why;
        assert_int_equal(pickle_run(d, p + 4, flen, s_point, g, &why, NULL), 0);
        off += 4 + flen;
        frames++;
    }
    pickle_destroy(&d);
    return frames;
}

static void test_roundtrip(void **state)
{
    (void)state;
    const char *in = "a.b 1.5 1700000000\n"
                     "c;tag=x -7 1700000001\n"
                     "big 1e300 1700000002.5\n"
                     "bad line\n"
                     "inf.v inf 1\n";
    size_t len;
    uint32_t points, skipped;
    char *buf = pickle_enc_lines(in, strlen(in), &len, &points, &skipped);
    assert_non_null(buf);
    assert_int_equal(points, 4);
    assert_int_equal(skipped, 1);
    got_t *g = calloc(1, sizeof *g);
    assert_int_equal(s_decode_all(buf, len, g), 1);
    assert_int_equal(g->n, 4);
    assert_string_equal(g->out, "a.b 1.5 1700000000\n"
                                "c;tag=x -7 1700000001\n"
                                "big 1e+300 1700000002.5\n"
                                "inf.v inf 1\n");
    free(g);
    free(buf);
}

static void test_frames_of_500(void **state)
{
    (void)state;
    size_t cap = 1201 * 40, l = 0;
    char *in = malloc(cap);
    for (int i = 0; i < 1201; i++)
        l += (size_t)snprintf(in + l, cap - l, "m.%d %d %d\n", i, i, 1000 + i);
    size_t len;
    uint32_t points, skipped;
    char *buf = pickle_enc_lines(in, l, &len, &points, &skipped);
    assert_int_equal(points, 1201);
    got_t *g = calloc(1, sizeof *g);
    assert_int_equal(s_decode_all(buf, len, g), 3); /* 500 + 500 + 201 */
    assert_int_equal(g->n, 1201);
    assert_non_null(strstr(g->out, "m.1200 1200 2200\n"));
    free(g);
    free(buf);
    free(in);
}

static void test_empty(void **state)
{
    (void)state;
    size_t len = 99;
    uint32_t points = 9, skipped = 9;
    char *buf = pickle_enc_lines("", 0, &len, &points, &skipped);
    assert_non_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(points, 0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_frames_of_500),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests_name("pickle_enc", tests, NULL, NULL);
}
