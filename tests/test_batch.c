/*
 * test_batch.c -- unit tests of the batch protocol header and codecs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "line.h"

static void test_header_roundtrip(void **state)
{
    (void)state;
    batch_hdr_t h = {.type = BATCH_DATA,
                     .codec = CODEC_LINES,
                     .sat_id = 0x0102030405060708ULL,
                     .seq = 0xfffffffffffffffeULL,
                     .count = 0x89abcdef};
    unsigned char buf[BATCH_HDR_LEN];
    batch_hdr_encode(&h, buf);
    assert_memory_equal(buf, "ORCB", 4);
    assert_int_equal(buf[4], BATCH_VERSION);
    assert_int_equal(buf[8], 0x01);
    assert_int_equal(buf[27], 0xef);
    batch_hdr_t g;
    assert_int_equal(batch_hdr_decode(buf, sizeof buf, &g), 0);
    assert_int_equal(g.type, BATCH_DATA);
    assert_int_equal(g.codec, CODEC_LINES);
    assert_true(g.sat_id == h.sat_id);
    assert_true(g.seq == h.seq);
    assert_int_equal(g.count, h.count);
}

static void test_header_rejects(void **state)
{
    (void)state;
    batch_hdr_t h = {.type = BATCH_ACK, .seq = 7};
    unsigned char buf[BATCH_HDR_LEN + 1];
    batch_hdr_encode(&h, buf);
    batch_hdr_t g;
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN - 1, &g), -1);
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN + 1, &g), -1);
    buf[4] = 9; /* version */
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN, &g), -1);
    buf[4] = BATCH_VERSION;
    buf[5] = 77; /* type */
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN, &g), -1);
    buf[5] = BATCH_NACK; /* the answer of a member that is not active */
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN, &g), 0);
    assert_int_equal(g.type, BATCH_NACK);
    assert_true(g.seq == 7);
    buf[5] = BATCH_ACK;
    buf[0] = 'X';
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN, &g), -1);
}

#define MAXLINE 64 /* the satellites' -M in these tests */

typedef struct {
    int n;
    int stop_at;       /* return non-zero at this point (1-based); 0: never */
    char lines[8][64]; /* the lines delivered, NUL-terminated */
    size_t namelens[8];
} seen_t;

static int s_point(void *arg, const char *line, size_t len, size_t namelen)
{
    seen_t *s = arg;
    size_t cl;
    assert_true(len > namelen);
    assert_int_equal(line[len - 1], '\n');
    assert_int_equal(line_check(line, len, LINE_CANON_MAX(MAXLINE), &cl), 0);
    assert_int_equal(cl, namelen);
    if (s->n < 8 && len < sizeof s->lines[0]) {
        memcpy(s->lines[s->n], line, len);
        s->lines[s->n][len] = 0;
        s->namelens[s->n] = namelen;
    }
    s->n++;
    return s->n == s->stop_at;
}

static long s_decode(const char *p, size_t len, seen_t *s, long *refused)
{
    const codec_t *c = codec_find(CODEC_LINES);
    assert_non_null(c);
    *refused = -7;
    return c->decode(p, len, MAXLINE, s_point, s, refused);
}

static void test_lines_codec(void **state)
{
    (void)state;
    assert_non_null(codec_find(CODEC_LINES));
    assert_null(codec_find(0));
    const char *p = "a.b 1 2\nc;t=v 3 4\n";
    seen_t s = {0};
    long refused;
    assert_int_equal(s_decode(p, strlen(p), &s, &refused), 2);
    assert_int_equal(refused, 0);
    assert_string_equal(s.lines[0], "a.b 1 2\n");
    assert_int_equal(s.namelens[0], 3);
    assert_string_equal(s.lines[1], "c;t=v 3 4\n");
    assert_int_equal(s.namelens[1], 1);
    /* an empty payload is a batch of nothing */
    seen_t e = {0};
    assert_int_equal(s_decode("", 0, &e, &refused), 0);
    assert_int_equal(refused, 0);
    assert_int_equal(e.n, 0);
}

/* CODEC_LINES_SRC: "\0ADDRESS\n" before the lines of each client. */
typedef struct {
    int n;
    char got[16][80]; /* "@ADDR" for a source, else the line */
} srcseen_t;

static int s_srcpoint(void *arg, const char *line, size_t len, size_t namelen)
{
    srcseen_t *s = arg;
    if (s->n < 16)
        snprintf(s->got[s->n], sizeof s->got[0], "%s%.*s",
                 namelen == CODEC_SOURCE ? "@" : "", (int)len, line);
    s->n++;
    return 0;
}

static void test_lines_src_codec(void **state)
{
    (void)state;
    const codec_t *c = codec_find(CODEC_LINES_SRC);
    assert_non_null(c);
    static const char p[] = "a.b 1 2\n\0"
                            "10.0.0.1\nc.d 3 4\ne.f 5 6\n"
                            "\0\ng.h 7 8\n\0::1\ni.j 9 10\n"
                            "\0bad addr\nk.l 1 1\n\0"
                            "10.0.0.2";
    srcseen_t s = {0};
    long refused = -1;
    long k = c->decode(p, sizeof p - 1, MAXLINE, s_srcpoint, &s, &refused);
    assert_int_equal(k, 6);       /* the datapoints, not the sources */
    assert_int_equal(refused, 2); /* a source with a space, one unended */
    assert_int_equal(s.n, 9);
    assert_string_equal(s.got[0], "a.b 1 2\n");
    assert_string_equal(s.got[1], "@10.0.0.1");
    assert_string_equal(s.got[2], "c.d 3 4\n");
    assert_string_equal(s.got[3], "e.f 5 6\n");
    assert_string_equal(s.got[4], "@"); /* none: a unix socket */
    assert_string_equal(s.got[5], "g.h 7 8\n");
    assert_string_equal(s.got[6], "@::1");
    assert_string_equal(s.got[8], "k.l 1 1\n");
    /* the plain codec takes a source line for a bad line */
    srcseen_t t = {0};
    k = codec_find(CODEC_LINES)
            ->decode(p, sizeof p - 1, MAXLINE, s_srcpoint, &t, &refused);
    assert_int_equal(k, 6);
    assert_int_equal(refused, 5);
    /* a source may take a batch past the plain limit by itself */
    size_t max = BATCH_PAYLOAD_MAX(MAXLINE) + CODEC_SOURCE_MAX + 2;
    char *big = malloc(max + 1);
    assert_non_null(big);
    memset(big, 'x', max + 1);
    assert_int_equal(c->decode(big, max + 1, MAXLINE, s_srcpoint, &t, &refused),
                     -1);
    free(big);
}

static void test_lines_cut(void **state)
{
    (void)state;
    /* a payload cut mid-line: its last line is refused, the rest goes on */
    const char *p = "a.b 1 2\nc;t=v 3 4\n";
    seen_t t = {0};
    long refused;
    assert_int_equal(s_decode(p, strlen(p) - 2, &t, &refused), 1);
    assert_int_equal(refused, 1);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.lines[0], "a.b 1 2\n");
}

static void test_lines_bad_mixed(void **state)
{
    (void)state;
    /* good lines around bad ones: only the bad ones are dropped */
    static const char p[] = "good.one 1 1700000000\n"
                            "bad\0nul 1 1700000000\n" /* NUL in the name */
                            "bad\x01"
                            "ctl 1 1700000000\n" /* a control byte */
                            "bad.nots 1\n"       /* no timestamp */
                            "good.two 2.5 1700000001\n"
                            "bad.value x 1700000000\n" /* garbage value */
                            "bad.nan nan 1700000000\n"
                            "bad..dots 1 1700000000\n" /* not cleansed */
                            "bad.now 1 -1\n" /* the parser writes now */
                            "\n"
                            "bad.cr 1 1700000000\r\n"
                            "good.three;k=v -inf 1700000002\n";
    seen_t s = {0};
    long refused;
    assert_int_equal(s_decode(p, sizeof p - 1, &s, &refused), 3);
    assert_int_equal(refused, 9);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.lines[0], "good.one 1 1700000000\n");
    assert_string_equal(s.lines[1], "good.two 2.5 1700000001\n");
    assert_string_equal(s.lines[2], "good.three;k=v -inf 1700000002\n");
    assert_int_equal(s.namelens[2], 10);
}

static void test_lines_toolong(void **state)
{
    (void)state;
    /* a line longer than a satellite with this -M writes is refused */
    char p[256];
    size_t max = LINE_CANON_MAX(MAXLINE);
    memset(p, 'a', max - 5); /* "aa...a 1 2\n": max bytes */
    memcpy(p + max - 5, " 1 2\n", 5);
    seen_t s = {0};
    long refused;
    assert_int_equal(s_decode(p, max, &s, &refused), 1);
    assert_int_equal(refused, 0);
    memset(p, 'a', max - 4); /* max + 1 bytes */
    memcpy(p + max - 4, " 1 2\n", 5);
    memcpy(p + max + 1, "x 1 3\n", 6); /* then a good line */
    seen_t t = {0};
    assert_int_equal(s_decode(p, max + 7, &t, &refused), 1);
    assert_int_equal(refused, 1);
    assert_string_equal(t.lines[0], "x 1 3\n");
}

static void test_lines_oversize(void **state)
{
    (void)state;
    /* a payload no satellite makes is refused whole: nothing delivered */
    size_t max = BATCH_PAYLOAD_MAX(MAXLINE);
    char *p = malloc(max + 6);
    assert_non_null(p);
    for (size_t i = 0; i + 6 <= max + 6; i += 6)
        memcpy(p + i, "a 1 2\n", 6);
    seen_t s = {0};
    long refused;
    size_t fits = max - max % 6;
    assert_int_equal(s_decode(p, fits, &s, &refused), (long)(fits / 6));
    assert_int_equal(refused, 0);
    seen_t t = {0};
    assert_int_equal(s_decode(p, fits + 6, &t, &refused), -1);
    assert_int_equal(refused, 0);
    assert_int_equal(t.n, 0);
    free(p);
    /* a satellite closes a batch at 64 KiB, then adds at most one line */
    assert_int_equal(BATCH_PAYLOAD_MAX(16384), 65535 + 16384 + 19);
}

static void test_lines_stop(void **state)
{
    (void)state;
    /* fn stops the decoder: the count includes the point it stopped at */
    const char *p = "a 1 2\nbad 1\nb 1 2\nc 1 2\n";
    seen_t s = {.stop_at = 2};
    long refused;
    assert_int_equal(s_decode(p, strlen(p), &s, &refused), 2);
    assert_int_equal(refused, 1);
    assert_string_equal(s.lines[1], "b 1 2\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_lines_codec),
        cmocka_unit_test(test_lines_src_codec),
        cmocka_unit_test(test_lines_cut),
        cmocka_unit_test(test_lines_bad_mixed),
        cmocka_unit_test(test_lines_toolong),
        cmocka_unit_test(test_lines_oversize),
        cmocka_unit_test(test_lines_stop),
    };
    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
