/*
 * test_batch.c -- unit tests of the batch protocol header and codecs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "batch.h"

static void test_header_roundtrip(void **state)
{
    (void)state;
    batch_hdr_t h = {.type = BATCH_DATA, .codec = CODEC_LINES,
                     .sat_id = 0x0102030405060708ULL,
                     .seq = 0xfffffffffffffffeULL, .count = 0x89abcdef};
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
    buf[5] = BATCH_ACK;
    buf[0] = 'X';
    assert_int_equal(batch_hdr_decode(buf, BATCH_HDR_LEN, &g), -1);
}

typedef struct {
    int n;
    char names[4][32];
} seen_t;

static int s_point(void *arg, const char *line, size_t len, size_t namelen)
{
    seen_t *s = arg;
    assert_true(len > namelen);
    assert_int_equal(line[len - 1], '\n');
    if (s->n < 4)
        memcpy(s->names[s->n], line, namelen), s->names[s->n][namelen] = 0;
    s->n++;
    return 0;
}

static void test_lines_codec(void **state)
{
    (void)state;
    const codec_t *c = codec_find(CODEC_LINES);
    assert_non_null(c);
    assert_null(codec_find(0));
    const char *p = "a.b 1 2\nc;t=v 3 4\n";
    seen_t s = {0};
    assert_int_equal(c->decode(p, strlen(p), s_point, &s), 2);
    assert_string_equal(s.names[0], "a.b");
    assert_string_equal(s.names[1], "c");
    /* a payload cut mid-line is malformed; the whole lines before count */
    seen_t t = {0};
    assert_int_equal(c->decode(p, strlen(p) - 2, s_point, &t), -1);
    assert_int_equal(t.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_lines_codec),
    };
    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
