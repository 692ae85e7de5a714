/*
 * test_codec.c -- unit tests of the compressed transports (src/codec.c):
 * round trips of every codec, wire bytes cut anywhere, streams as
 * carbon-c-relay makes them (built here with zlib, liblz4 and libsnappy
 * directly), corrupt streams, oversized snappy blocks, a gzip bomb, and
 * the decoder's bounds (never more than cap bytes per read).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>

#include "codec.h"

#define CANARY  16
#define MAXREAD (1u << 20)

static const codec_kind_t s_kinds[] = {CODEC_GZIP, CODEC_LZ4, CODEC_SNAPPY};
#define NKINDS (sizeof s_kinds / sizeof s_kinds[0])

/* xorshift64*: the tests' reproducible randomness. */
static uint64_t s_rand(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

/* n random bytes. */
static char *s_random(size_t n, uint64_t seed)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(s_rand(&seed) >> 56);
    return p;
}

/* n bytes of carbon lines, repetitive as a relay's traffic is. */
static char *s_lines(size_t n, uint64_t seed)
{
    char *p = malloc(n ? n : 1);
    size_t at = 0;
    assert_non_null(p);
    while (at < n) {
        char l[96];
        uint64_t r = s_rand(&seed);
        int k = snprintf(l, sizeof l, "servers.host%03u.cpu.load %u.%02u %u\n",
                         (unsigned)(r % 500), (unsigned)(r >> 20) % 100,
                         (unsigned)(r >> 30) % 100,
                         1700000000u + (unsigned)(at / 4000));
        size_t c = (size_t)k < n - at ? (size_t)k : n - at;
        memcpy(p + at, l, c);
        at += c;
    }
    return p;
}

/* ---- feeding a decoder ------------------------------------------------ */

/* How wire bytes reach the decoder and how its output is read. */
typedef struct {
    int cut;        /* 0: as much as fits, 1: a byte at a time, 2: random */
    size_t readcap; /* bytes per codec_dec_read; 0: random */
    uint64_t seed;
} feed_t;

/* Where the decoded bytes go: kept in buf (when not NULL), counted in n;
 * zeros says whether all of them were 0. */
typedef struct {
    codec_buf_t *buf;
    uint64_t n;
    int nonzero;
    char *rb; /* the read buffer: MAXREAD + CANARY bytes */
} sink_t;

static size_t s_cut(const feed_t *f, uint64_t *st, size_t room)
{
    size_t k = room;
    if (f->cut == 1)
        k = 1;
    else if (f->cut == 2)
        k = s_rand(st) % 8 == 0 ? 1 + s_rand(st) % 70000 : 1 + s_rand(st) % 300;
    return k < room ? k : room;
}

static size_t s_readcap(const feed_t *f, uint64_t *st)
{
    static const size_t caps[] = {1, 2, 3, 7, 64, 1000, 4096, 65536, MAXREAD};
    if (f->readcap)
        return f->readcap;
    return caps[s_rand(st) % (sizeof caps / sizeof caps[0])];
}

/* Read what d gives without new wire bytes.  0, or -1 (why set). */
static int s_drain(codec_dec_t *d, const feed_t *f, uint64_t *st, sink_t *s,
                   char *why, size_t whylen)
{
    for (;;) {
        size_t cap = s_readcap(f, st);
        assert_true(cap <= MAXREAD);
        memset(s->rb + cap, 0x5a, CANARY);
        ssize_t n = codec_dec_read(d, s->rb, cap, why, whylen);
        for (size_t i = 0; i < CANARY; i++)
            assert_int_equal((unsigned char)s->rb[cap + i], 0x5a);
        if (n < 0)
            return -1;
        if (n == 0) {
            /* it needs wire bytes: nothing pending, room for them */
            size_t room;
            assert_false(codec_dec_pending(d));
            assert_non_null(codec_dec_room(d, &room));
            assert_true(room > 0);
            return 0;
        }
        assert_true((size_t)n <= cap);
        if (s->buf)
            assert_int_equal(codec_buf_append(s->buf, s->rb, (size_t)n), 0);
        for (ssize_t i = 0; i < n && !s->nonzero; i++)
            s->nonzero = s->rb[i] != 0;
        s->n += (uint64_t)n;
    }
}

/* Give d the wire bytes p[0..len) as f says and read all it produces into
 * s.  0, or -1 (why set). */
static int s_feed(codec_dec_t *d, const void *p, size_t len, const feed_t *f,
                  sink_t *s, char *why, size_t whylen)
{
    uint64_t st = f->seed | 1;
    size_t at = 0;
    while (at < len) {
        size_t room;
        void *to = codec_dec_room(d, &room);
        if (room == 0) {
            /* a full input buffer: the read consumes it */
            if (s_drain(d, f, &st, s, why, whylen) < 0)
                return -1;
            to = codec_dec_room(d, &room);
            assert_true(room > 0);
        }
        size_t k = s_cut(f, &st, room);
        if (k > len - at)
            k = len - at;
        memcpy(to, (const char *)p + at, k);
        codec_dec_put(d, k);
        at += k;
        if (s_drain(d, f, &st, s, why, whylen) < 0)
            return -1;
    }
    return s_drain(d, f, &st, s, why, whylen);
}

static void s_sink_init(sink_t *s, codec_buf_t *buf)
{
    memset(s, 0, sizeof *s);
    s->buf = buf;
    s->rb = malloc(MAXREAD + CANARY);
    assert_non_null(s->rb);
}

/* Decode p[0..len) with a new decoder of kind k into got (appended).
 * 0, or -1 (why set). */
static int s_decode(codec_kind_t k, uint64_t ratio, const void *p, size_t len,
                    const feed_t *f, codec_buf_t *got, char *why, size_t whylen)
{
    codec_dec_t *d = codec_dec_new(k, ratio);
    sink_t s;
    assert_non_null(d);
    s_sink_init(&s, got);
    int r = s_feed(d, p, len, f, &s, why, whylen);
    if (r == 0) {
        uint64_t in, out;
        codec_dec_totals(d, &in, &out);
        assert_int_equal(in, len);
        assert_int_equal(out, s.n);
    }
    free(s.rb);
    codec_dec_free(&d);
    assert_null(d);
    return r;
}

/* Encode the batch p[0..len), cut into iovecs of piece bytes (0: one). */
static void s_encode(codec_enc_t *e, const char *p, size_t len, size_t piece,
                     codec_buf_t *wire)
{
    size_t n = piece && len ? (len + piece - 1) / piece : 1;
    struct iovec *iov = calloc(n, sizeof *iov);
    char why[200];
    assert_non_null(iov);
    for (size_t i = 0; i < n; i++) {
        size_t off = piece ? i * piece : 0;
        iov[i].iov_base = (char *)p + off;
        iov[i].iov_len = piece && len - off > piece ? piece : len - off;
    }
    assert_int_equal(codec_enc_batch(e, iov, (int)n, wire, why, sizeof why), 0);
    free(iov);
}

/* Round trip p[0..len) as one batch through codec k, decoded as f says. */
static void s_roundtrip(codec_kind_t k, const char *p, size_t len, size_t piece,
                        const feed_t *f)
{
    codec_enc_t *e = codec_enc_new(k);
    codec_buf_t wire = {0}, got = {0};
    char why[200] = "";
    assert_non_null(e);
    s_encode(e, p, len, piece, &wire);
    int r = s_decode(k, 100, wire.data, wire.len, f, &got, why, sizeof why);
    if (r != 0)
        fail_msg("%s: %s", codec_name(k), why);
    assert_int_equal(got.len, len);
    if (len > 0)
        assert_memory_equal(got.data, p, len);
    codec_enc_free(&e);
    assert_null(e);
    codec_buf_free(&wire);
    codec_buf_free(&got);
}

/* Decode p[0..len) with codec k: it must fail, with a reason holding
 * want (when not NULL); the bytes before the fault may come out. */
static void s_must_fail(codec_kind_t k, const void *p, size_t len,
                        const feed_t *f, const char *want)
{
    codec_buf_t got = {0};
    char why[200] = "";
    assert_int_equal(s_decode(k, 0, p, len, f, &got, why, sizeof why), -1);
    assert_true(why[0] != '\0');
    if (want != NULL && strstr(why, want) == NULL)
        fail_msg("%s: reason '%s' does not name '%s'", codec_name(k), why,
                 want);
    codec_buf_free(&got);
}

/* ---- tests ------------------------------------------------------------ */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(codec_name(CODEC_PLAIN), "plain");
    assert_string_equal(codec_name(CODEC_GZIP), "gzip");
    assert_string_equal(codec_name(CODEC_LZ4), "lz4");
    assert_string_equal(codec_name(CODEC_SNAPPY), "snappy");
    assert_null(codec_enc_new(CODEC_PLAIN));
    assert_null(codec_dec_new(CODEC_PLAIN, 0));
    codec_enc_free(NULL);
    codec_dec_free(NULL);
}

static void test_buf(void **state)
{
    (void)state;
    codec_buf_t b = {0};
    assert_int_equal(codec_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(codec_buf_append(&b, "hello ", 6), 0);
    assert_int_equal(codec_buf_append(&b, "world", 5), 0);
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "hello world", 11);
    codec_buf_take(&b, 5); /* fewer taken than left: nothing moves */
    assert_int_equal(b.off, 5);
    codec_buf_take(&b, 1); /* as many taken as left: the rest moves */
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    /* all taken: emptied, memory kept */
    codec_buf_take(&b, 5);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);
    assert_non_null(b.data);
    size_t cap = b.cap;
    assert_true(cap >= 11);
    /* growing keeps what is not taken yet */
    char *big = s_random(200000, 7);
    assert_int_equal(codec_buf_append(&b, "abc", 3), 0);
    codec_buf_take(&b, 1);
    assert_int_equal(codec_buf_append(&b, big, 100000), 0);
    assert_int_equal(b.len - b.off, 100002);
    assert_memory_equal(b.data + b.off, "bc", 2);
    assert_memory_equal(b.data + b.off + 2, big, 100000);
    codec_buf_take(&b, 200000); /* more than there is: all of it */
    assert_int_equal(b.len, 0);
    /* as many taken as left: the rest moves to the front, so the memory
     * of what was taken is used again; an append only adds to len */
    cap = b.cap;
    assert_true(cap - 10 <= 200000);
    assert_int_equal(codec_buf_append(&b, big, cap - 10), 0);
    codec_buf_take(&b, cap - 100);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 90);
    assert_int_equal(codec_buf_append(&b, "tail", 4), 0);
    assert_int_equal(b.len, 94);
    assert_int_equal(codec_buf_append(&b, big, 1000), 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.len - b.off, 90 + 4 + 1000);
    assert_memory_equal(b.data + b.off, big + cap - 100, 90);
    assert_memory_equal(b.data + b.off + 90, "tail", 4);
    assert_memory_equal(b.data + b.off + 94, big, 1000);
    codec_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    codec_buf_free(&b);
    free(big);
}

static void test_small(void **state)
{
    (void)state;
    const char *l = "a.b.c 1 1700000000\nd.e 2.5 1700000001\n";
    for (size_t i = 0; i < NKINDS; i++) {
        for (int cut = 0; cut < 3; cut++) {
            feed_t f = {cut, 0, 42 + (uint64_t)cut};
            s_roundtrip(s_kinds[i], l, strlen(l), 0, &f);
            s_roundtrip(s_kinds[i], l, strlen(l), 5, &f);
            s_roundtrip(s_kinds[i], "x", 1, 0, &f);
        }
    }
}

/* An empty batch writes nothing; the stream around it is unharmed. */
static void test_empty(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKINDS; i++) {
        codec_enc_t *e = codec_enc_new(s_kinds[i]);
        codec_buf_t wire = {0}, got = {0};
        struct iovec iov[2] = {{(void *)"", 0}, {NULL, 0}};
        char why[200];
        assert_non_null(e);
        assert_int_equal(codec_enc_batch(e, iov, 0, &wire, why, sizeof why), 0);
        assert_int_equal(codec_enc_batch(e, iov, 2, &wire, why, sizeof why), 0);
        assert_int_equal(wire.len, 0);
        feed_t f = {0, 0, 1};
        assert_int_equal(
            s_decode(s_kinds[i], 0, wire.data, 0, &f, &got, why, sizeof why),
            0);
        assert_int_equal(got.len, 0);
        iov[1].iov_base = (void *)"m 1 1\n";
        iov[1].iov_len = 6;
        assert_int_equal(codec_enc_batch(e, iov, 2, &wire, why, sizeof why), 0);
        assert_int_equal(codec_enc_batch(e, iov, 1, &wire, why, sizeof why), 0);
        assert_int_equal(s_decode(s_kinds[i], 0, wire.data, wire.len, &f, &got,
                                  why, sizeof why),
                         0);
        assert_int_equal(got.len, 6);
        assert_memory_equal(got.data, "m 1 1\n", 6);
        codec_enc_free(&e);
        codec_buf_free(&wire);
        codec_buf_free(&got);
    }
}

/* An encoder appends: what the buffer held (taken or not) stays where it
 * is, and len grows by the wire bytes of the batch. */
static void test_enc_appends(void **state)
{
    (void)state;
    char *p = s_random(100000, 31);
    for (size_t i = 0; i < NKINDS; i++) {
        codec_enc_t *e = codec_enc_new(s_kinds[i]);
        codec_buf_t wire = {0}, alone = {0}, got = {0};
        char why[200] = "";
        assert_int_equal(codec_buf_append(&wire, "PREFIX", 6), 0);
        codec_buf_take(&wire, 2);
        s_encode(e, p, 100000, 3000, &wire);
        assert_int_equal(wire.off, 2);
        assert_memory_equal(wire.data, "PREFIX", 6);
        codec_enc_free(&e);
        e = codec_enc_new(s_kinds[i]);
        s_encode(e, p, 100000, 0, &alone);
        assert_int_equal(wire.len, 6 + alone.len);
        assert_memory_equal(wire.data + 6, alone.data, alone.len);
        feed_t f = {2, 0, 4};
        assert_int_equal(s_decode(s_kinds[i], 0, wire.data + 6, wire.len - 6,
                                  &f, &got, why, sizeof why),
                         0);
        assert_int_equal(got.len, 100000);
        assert_memory_equal(got.data, p, 100000);
        codec_enc_free(&e);
        codec_buf_free(&wire);
        codec_buf_free(&alone);
        codec_buf_free(&got);
    }
    free(p);
}

/* Many batches on one connection: after each one, all that was sent so
 * far decodes in full (each batch ends a flush, a frame, a block). */
static void test_many_batches(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKINDS; i++) {
        codec_enc_t *e = codec_enc_new(s_kinds[i]);
        codec_dec_t *d = codec_dec_new(s_kinds[i], 100);
        codec_buf_t wire = {0}, got = {0};
        uint64_t st = 99, total = 0;
        sink_t s;
        char why[200] = "";
        assert_non_null(e);
        assert_non_null(d);
        s_sink_init(&s, &got);
        for (int b = 0; b < 500; b++) {
            size_t len = s_rand(&st) % 3000;
            char *p = b % 3 ? s_lines(len, st) : s_random(len, st);
            feed_t f = {(int)(s_rand(&st) % 3), 0, st};
            s_encode(e, p, len, 1 + s_rand(&st) % 700, &wire);
            assert_int_equal(s_feed(d, wire.data + wire.off,
                                    wire.len - wire.off, &f, &s, why,
                                    sizeof why),
                             0);
            codec_buf_take(&wire, wire.len - wire.off);
            assert_int_equal(got.len, len);
            if (len > 0)
                assert_memory_equal(got.data, p, len);
            codec_buf_take(&got, got.len);
            total += len;
            free(p);
        }
        uint64_t in, out;
        codec_dec_totals(d, &in, &out);
        assert_int_equal(out, total);
        free(s.rb);
        codec_enc_free(&e);
        codec_dec_free(&d);
        codec_buf_free(&wire);
        codec_buf_free(&got);
    }
}

/* 5 MB of random and of repetitive bytes, as one iovec and as many. */
static void test_large(void **state)
{
    (void)state;
    const size_t n = 5u << 20;
    char *rnd = s_random(n, 5), *rep = s_lines(n, 5);
    for (size_t i = 0; i < NKINDS; i++) {
        feed_t all = {0, 0, 3}, cuts = {2, 0, 4};
        s_roundtrip(s_kinds[i], rnd, n, 0, &all);
        s_roundtrip(s_kinds[i], rep, n, 0, &cuts);
        s_roundtrip(s_kinds[i], rnd, n, 4097, &cuts);
        s_roundtrip(s_kinds[i], rep, n, 100003, &all);
    }
    free(rnd);
    free(rep);
}

/* The wire as codec.h says: snappy blocks of CODEC_SNAPPY_BLOCK bytes,
 * one lz4 frame with the library defaults, a gzip stream that ends each
 * batch with a sync flush and has no trailer. */
static void test_framing(void **state)
{
    (void)state;
    const size_t n = 2 * CODEC_SNAPPY_BLOCK + CODEC_SNAPPY_BLOCK / 2;
    char *p = s_lines(n, 11);
    codec_buf_t wire = {0}, want = {0};

    /* snappy: cut into blocks wherever the iovecs are cut */
    codec_enc_t *e = codec_enc_new(CODEC_SNAPPY);
    s_encode(e, p, n, 10007, &wire);
    for (size_t at = 0; at < n; at += CODEC_SNAPPY_BLOCK) {
        size_t k = n - at < CODEC_SNAPPY_BLOCK ? n - at : CODEC_SNAPPY_BLOCK;
        size_t clen = snappy_max_compressed_length(k);
        char *c = malloc(clen);
        assert_non_null(c);
        assert_int_equal(snappy_compress(p + at, k, c, &clen), SNAPPY_OK);
        assert_int_equal(codec_buf_append(&want, c, clen), 0);
        free(c);
    }
    assert_int_equal(wire.len, want.len);
    assert_memory_equal(wire.data, want.data, want.len);
    codec_enc_free(&e);
    codec_buf_take(&wire, wire.len);
    codec_buf_take(&want, want.len);

    /* lz4: one frame, library defaults */
    e = codec_enc_new(CODEC_LZ4);
    s_encode(e, p, n, 999, &wire);
    size_t bound = LZ4F_compressFrameBound(n, NULL);
    char *c = malloc(bound);
    assert_non_null(c);
    size_t clen = LZ4F_compressFrame(c, bound, p, n, NULL);
    assert_false(LZ4F_isError(clen));
    assert_int_equal(wire.len, clen);
    assert_memory_equal(wire.data, c, clen);
    free(c);
    codec_enc_free(&e);
    codec_buf_take(&wire, wire.len);

    /* gzip: a header, a sync flush after each batch, no trailer; zlib
     * reads each batch in full as it comes */
    e = codec_enc_new(CODEC_GZIP);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    char *o = malloc(n + 1);
    assert_non_null(o);
    for (int b = 0; b < 3; b++) {
        s_encode(e, p, n, 0, &wire);
        if (b == 0)
            assert_memory_equal(wire.data, "\x1f\x8b", 2);
        assert_memory_equal(wire.data + wire.len - 4, "\0\0\xff\xff", 4);
        z.next_in = (Bytef *)wire.data;
        z.avail_in = (uInt)wire.len;
        z.next_out = (Bytef *)o;
        z.avail_out = (uInt)n + 1;
        assert_int_equal(inflate(&z, Z_SYNC_FLUSH), Z_OK);
        assert_int_equal(z.avail_in, 0);
        assert_int_equal(z.avail_out, 1);
        assert_memory_equal(o, p, n);
        codec_buf_take(&wire, wire.len);
    }
    inflateEnd(&z);
    free(o);
    codec_enc_free(&e);
    codec_buf_free(&wire);
    codec_buf_free(&want);
    free(p);
}

/* Wire bytes one at a time; output read a byte at a time and in large
 * reads. */
static void test_bytewise(void **state)
{
    (void)state;
    const size_t n = 150000;
    char *p = s_lines(n, 21), *q = s_random(40000, 22);
    for (size_t i = 0; i < NKINDS; i++) {
        feed_t one = {1, 1, 0}, big = {1, 4096, 0}, any = {1, 0, 9};
        s_roundtrip(s_kinds[i], p, n, 0, &one);
        s_roundtrip(s_kinds[i], p, n, 777, &big);
        s_roundtrip(s_kinds[i], q, 40000, 0, &any);
    }
    free(p);
    free(q);
}

static void test_random_cuts(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        uint64_t st = seed;
        size_t n = s_rand(&st) % 300000;
        char *p = seed % 2 ? s_lines(n, seed) : s_random(n, seed);
        for (size_t i = 0; i < NKINDS; i++) {
            feed_t f = {2, 0, seed * 31};
            s_roundtrip(s_kinds[i], p, n, 1 + s_rand(&st) % 50000, &f);
        }
        free(p);
    }
}

/* carbon-c-relay's gzip: one stream, Z_PARTIAL_FLUSH after each write,
 * never finished. */
static void test_ccr_gzip(void **state)
{
    (void)state;
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                                  15 + 16, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    codec_dec_t *d = codec_dec_new(CODEC_GZIP, 100);
    codec_buf_t got = {0};
    sink_t s;
    char why[200] = "", o[65536];
    uint64_t st = 5;
    s_sink_init(&s, &got);
    for (int b = 0; b < 200; b++) {
        size_t len = 1 + s_rand(&st) % 20000;
        char *p = s_lines(len, st);
        z.next_in = (Bytef *)p;
        z.avail_in = (uInt)len;
        size_t wl = 0;
        char *w = NULL;
        do {
            z.next_out = (Bytef *)o;
            z.avail_out = sizeof o;
            assert_int_not_equal(deflate(&z, Z_PARTIAL_FLUSH), Z_STREAM_ERROR);
            size_t k = sizeof o - z.avail_out;
            w = realloc(w, wl + k + 1);
            assert_non_null(w);
            memcpy(w + wl, o, k);
            wl += k;
        } while (z.avail_out == 0);
        feed_t f = {(int)(b % 3), 0, st};
        assert_int_equal(s_feed(d, w, wl, &f, &s, why, sizeof why), 0);
        /* everything written so far decodes */
        assert_int_equal(got.len, len);
        assert_memory_equal(got.data, p, len);
        codec_buf_take(&got, got.len);
        free(w);
        free(p);
    }
    deflateEnd(&z);
    free(s.rb);
    codec_dec_free(&d);
    codec_buf_free(&got);
}

/* carbon-c-relay's lz4: frames back to back; some other frame options
 * (checksums, independent and 4 MiB blocks), an empty frame and a
 * streamed frame are read as well. */
static void test_ccr_lz4(void **state)
{
    (void)state;
    codec_buf_t wire = {0}, want = {0}, got = {0};
    uint64_t st = 77;
    char why[200] = "";
    for (int b = 0; b < 60; b++) {
        size_t len = b == 7 ? 0 : s_rand(&st) % 200000;
        char *p = b % 4 ? s_lines(len, st) : s_random(len, st);
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof prefs);
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
        prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        prefs.frameInfo.blockSizeID = b % 2 ? LZ4F_max1MB : LZ4F_max256KB;
        prefs.frameInfo.contentSize = len;
        const LZ4F_preferences_t *pp = b % 3 == 1 ? &prefs : NULL;
        size_t bound = LZ4F_compressFrameBound(len, pp);
        char *c = malloc(bound);
        assert_non_null(c);
        size_t clen = LZ4F_compressFrame(c, bound, p, len, pp);
        assert_false(LZ4F_isError(clen));
        assert_int_equal(codec_buf_append(&wire, c, clen), 0);
        assert_int_equal(codec_buf_append(&want, p, len), 0);
        free(c);
        free(p);
    }
    /* a frame written with the streaming calls, in pieces */
    LZ4F_cctx *cc;
    assert_false(
        LZ4F_isError(LZ4F_createCompressionContext(&cc, LZ4F_VERSION)));
    char *p = s_lines(300000, 3);
    size_t bound = LZ4F_compressBound(300000, NULL) + 64;
    char *c = malloc(bound);
    assert_non_null(c);
    size_t at = LZ4F_compressBegin(cc, c, bound, NULL);
    assert_false(LZ4F_isError(at));
    for (size_t i = 0; i < 300000; i += 10000) {
        size_t r =
            LZ4F_compressUpdate(cc, c + at, bound - at, p + i, 10000, NULL);
        assert_false(LZ4F_isError(r));
        at += r;
    }
    size_t r = LZ4F_compressEnd(cc, c + at, bound - at, NULL);
    assert_false(LZ4F_isError(r));
    at += r;
    assert_int_equal(codec_buf_append(&wire, c, at), 0);
    assert_int_equal(codec_buf_append(&want, p, 300000), 0);
    LZ4F_freeCompressionContext(cc);
    free(c);
    free(p);

    for (int cut = 0; cut < 3; cut++) {
        feed_t f = {cut, cut == 1 ? 333 : 0, 8};
        assert_int_equal(s_decode(CODEC_LZ4, 100, wire.data, wire.len, &f, &got,
                                  why, sizeof why),
                         0);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        codec_buf_take(&got, got.len);
    }
    codec_buf_free(&wire);
    codec_buf_free(&want);
    codec_buf_free(&got);
}

/* carbon-c-relay's snappy: raw blocks back to back, of any size up to
 * CODEC_SNAPPY_MAX (an empty one too). */
static void test_ccr_snappy(void **state)
{
    (void)state;
    static const size_t sizes[] = {0,     1,      100,   CODEC_SNAPPY_BLOCK,
                                   65536, 200000, 0,     CODEC_SNAPPY_MAX,
                                   7,     999999, 123456};
    codec_buf_t wire = {0}, want = {0}, got = {0};
    char why[200] = "";
    for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
        size_t len = sizes[b];
        char *p = b % 2 ? s_lines(len, b) : s_random(len, b);
        size_t clen = snappy_max_compressed_length(len);
        char *c = malloc(clen);
        assert_non_null(c);
        assert_int_equal(snappy_compress(p, len, c, &clen), SNAPPY_OK);
        assert_int_equal(codec_buf_append(&wire, c, clen), 0);
        assert_int_equal(codec_buf_append(&want, p, len), 0);
        free(c);
        free(p);
    }
    for (int cut = 0; cut < 3; cut++) {
        feed_t f = {cut, cut == 2 ? 0 : 5000, 12};
        assert_int_equal(s_decode(CODEC_SNAPPY, 100, wire.data, wire.len, &f,
                                  &got, why, sizeof why),
                         0);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        codec_buf_take(&got, got.len);
    }
    codec_buf_free(&wire);
    codec_buf_free(&want);
    codec_buf_free(&got);
}

/* gzip members with trailers, back to back (as gzip -c a b), then a
 * stream of our own that has none. */
static void test_gzip_members(void **state)
{
    (void)state;
    codec_buf_t wire = {0}, want = {0}, got = {0};
    char why[200] = "";
    for (int m = 0; m < 4; m++) {
        size_t len = m == 2 ? 0 : 5000 + (size_t)m * 30000;
        char *p = s_lines(len, (uint64_t)m + 1);
        z_stream z;
        memset(&z, 0, sizeof z);
        assert_int_equal(
            deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
        size_t bound = deflateBound(&z, len);
        char *c = malloc(bound);
        assert_non_null(c);
        z.next_in = (Bytef *)p;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)c;
        z.avail_out = (uInt)bound;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        assert_int_equal(codec_buf_append(&wire, c, bound - z.avail_out), 0);
        assert_int_equal(codec_buf_append(&want, p, len), 0);
        deflateEnd(&z);
        free(c);
        free(p);
    }
    codec_enc_t *e = codec_enc_new(CODEC_GZIP);
    char *p = s_lines(70000, 9);
    s_encode(e, p, 70000, 0, &wire);
    assert_int_equal(codec_buf_append(&want, p, 70000), 0);
    codec_enc_free(&e);
    free(p);
    for (int cut = 0; cut < 3; cut++) {
        feed_t f = {cut, 0, 13};
        assert_int_equal(s_decode(CODEC_GZIP, 100, wire.data, wire.len, &f,
                                  &got, why, sizeof why),
                         0);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        codec_buf_take(&got, got.len);
    }
    codec_buf_free(&wire);
    codec_buf_free(&want);
    codec_buf_free(&got);
}

/* A snappy varint for v, at p; its length. */
static size_t s_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* Corrupt streams fail with a reason; none crashes. */
static void test_corrupt(void **state)
{
    (void)state;
    feed_t all = {0, 0, 1}, one = {1, 1, 2}, any = {2, 0, 3};
    const feed_t *feeds[] = {&all, &one, &any};
    for (size_t fi = 0; fi < 3; fi++) {
        const feed_t *f = feeds[fi];
        s_must_fail(CODEC_GZIP, "not a gzip stream at all", 24, f, "gzip");
        s_must_fail(CODEC_LZ4, "not an lz4 frame at all", 23, f, "lz4");
        /* snappy: a literal longer than the block */
        s_must_fail(CODEC_SNAPPY, "\x03\x10hello", 7, f, "snappy");
        /* snappy: a copy from before the start */
        s_must_fail(CODEC_SNAPPY,
                    "\x08\x0c"
                    "abcd\x01\x09",
                    8, f, "corrupt");
        /* snappy: a varint of more than five bytes */
        s_must_fail(CODEC_SNAPPY, "\xff\xff\xff\xff\xff\x01", 6, f, "corrupt");
    }

    /* gzip: a member whose trailer check fails, after good data */
    char *p = s_lines(50000, 4);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(
        deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t bound = deflateBound(&z, 50000);
    char *c = malloc(bound);
    assert_non_null(c);
    z.next_in = (Bytef *)p;
    z.avail_in = 50000;
    z.next_out = (Bytef *)c;
    z.avail_out = (uInt)bound;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t clen = bound - z.avail_out;
    deflateEnd(&z);
    c[clen - 6] ^= 0x40; /* the CRC */
    s_must_fail(CODEC_GZIP, c, clen, &all, "incorrect data check");
    s_must_fail(CODEC_GZIP, c, clen, &one, "incorrect data check");
    c[clen - 6] ^= 0x40;
    c[clen / 2] ^= 0x55; /* the body */
    s_must_fail(CODEC_GZIP, c, clen, &any, "gzip");
    free(c);

    /* lz4: a frame with a content checksum, one byte of it changed */
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    bound = LZ4F_compressFrameBound(50000, &prefs);
    c = malloc(bound);
    assert_non_null(c);
    clen = LZ4F_compressFrame(c, bound, p, 50000, &prefs);
    assert_false(LZ4F_isError(clen));
    c[clen / 2] ^= 0x21;
    s_must_fail(CODEC_LZ4, c, clen, &all, "lz4");
    s_must_fail(CODEC_LZ4, c, clen, &any, "lz4");
    free(c);

    /* snappy: a good block, then one with a copy at offset 0 */
    clen = snappy_max_compressed_length(50000);
    c = malloc(clen + 16);
    assert_non_null(c);
    assert_int_equal(snappy_compress(p, 50000, c, &clen), SNAPPY_OK);
    memcpy(c + clen,
           "\x08\x0c"
           "abcd\x01\x00",
           8);
    codec_buf_t got = {0};
    char why[200] = "";
    assert_int_equal(
        s_decode(CODEC_SNAPPY, 0, c, clen + 8, &all, &got, why, sizeof why),
        -1);
    assert_non_null(strstr(why, "snappy"));
    assert_int_equal(got.len, 50000); /* the good block came out */
    assert_memory_equal(got.data, p, 50000);
    codec_buf_free(&got);
    free(c);
    free(p);

    /* garbage: whatever it gives, no crash and the bounds hold */
    for (uint64_t seed = 1; seed <= 60; seed++) {
        size_t n = 1 + seed * 97;
        char *g = s_random(n, seed);
        if (seed % 3 == 0)
            memcpy(g, "\x1f\x8b\x08\x00", 4);
        else if (seed % 3 == 1)
            memcpy(g, "\x04\x22\x4d\x18", 4);
        for (size_t i = 0; i < NKINDS; i++) {
            feed_t f = {(int)(seed % 3), 0, seed};
            codec_buf_t out = {0};
            s_decode(s_kinds[i], 0, g, n, &f, &out, why, sizeof why);
            codec_buf_free(&out);
        }
        free(g);
    }
}

/* A snappy block that says it inflates to 2 MiB is refused, naming the
 * size, as soon as its length is read. */
static void test_snappy_too_big(void **state)
{
    (void)state;
    unsigned char b[16];
    size_t n = s_varint(b, 2u << 20);
    b[n++] = 0; /* a one-byte literal follows */
    b[n++] = 'x';
    feed_t all = {0, 0, 1}, one = {1, 1, 1};
    s_must_fail(CODEC_SNAPPY, b, n, &all, "2097152");
    s_must_fail(CODEC_SNAPPY, b, n, &one, "2097152");
    /* refused from the length alone */
    s_must_fail(CODEC_SNAPPY, b, n - 2, &one, "2097152");
    /* one byte over the largest */
    n = s_varint(b, CODEC_SNAPPY_MAX + 1);
    s_must_fail(CODEC_SNAPPY, b, n, &all, "1048577");
}

/* A block within the size limit whose compressed form outgrows the input
 * buffer's bound (copies of one byte, 5 bytes each) is refused. */
static void test_snappy_too_long(void **state)
{
    (void)state;
    size_t n = CODEC_SNAPPY_MAX, len = 0;
    unsigned char *b = malloc(16 + 5 * n);
    assert_non_null(b);
    len = s_varint(b, n);
    b[len++] = 0; /* literal "x" */
    b[len++] = 'x';
    for (size_t i = 1; i < n; i++) {
        memcpy(b + len, "\x03\x01\x00\x00\x00", 5);
        len += 5;
    }
    feed_t all = {0, 0, 1}, any = {2, 0, 5};
    s_must_fail(CODEC_SNAPPY, b, len, &all, "longer than");
    s_must_fail(CODEC_SNAPPY, b, len, &any, "longer than");
    /* the same output as one valid block decodes */
    char *x = malloc(n);
    assert_non_null(x);
    memset(x, 'x', n);
    size_t clen = snappy_max_compressed_length(n);
    char *c = malloc(clen);
    assert_non_null(c);
    assert_int_equal(snappy_compress(x, n, c, &clen), SNAPPY_OK);
    codec_buf_t got = {0};
    char why[200] = "";
    assert_int_equal(
        s_decode(CODEC_SNAPPY, 0, c, clen, &all, &got, why, sizeof why), 0);
    assert_int_equal(got.len, n);
    assert_memory_equal(got.data, x, n);
    codec_buf_free(&got);
    free(c);
    free(x);
    free(b);
}

/* 64 MiB of zeros, deflated: a bomb at max_ratio 100, fine with no
 * limit. */
/* A frame whose header says 4 MiB blocks (liblz4 would buffer a block
 * that big per connection) is refused; 1 MiB blocks are read. */
static void test_lz4_block_size(void **state)
{
    (void)state;
    const LZ4F_blockSizeID_t ids[2] = {LZ4F_max4MB, LZ4F_max1MB};
    for (int i = 0; i < 2; i++) {
        LZ4F_cctx *cc = NULL;
        assert_false(
            LZ4F_isError(LZ4F_createCompressionContext(&cc, LZ4F_VERSION)));
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof prefs);
        prefs.frameInfo.blockSizeID = ids[i];
        const char *text = "lz4.big.blocks 1 1700000000\n";
        size_t bound = LZ4F_compressBound(strlen(text), &prefs) + 64;
        char *c = malloc(bound);
        assert_non_null(c);
        size_t n = LZ4F_compressBegin(cc, c, bound, &prefs);
        assert_false(LZ4F_isError(n));
        size_t m =
            LZ4F_compressUpdate(cc, c + n, bound - n, text, strlen(text), NULL);
        assert_false(LZ4F_isError(m));
        n += m;
        m = LZ4F_compressEnd(cc, c + n, bound - n, NULL);
        assert_false(LZ4F_isError(m));
        n += m;
        LZ4F_freeCompressionContext(cc);
        feed_t f = {0, 4096, 1};
        if (i == 0) {
            s_must_fail(CODEC_LZ4, c, n, &f, "4 MiB blocks");
        } else {
            codec_buf_t got = {0};
            char why[200] = "";
            assert_int_equal(
                s_decode(CODEC_LZ4, 0, c, n, &f, &got, why, sizeof why), 0);
            assert_int_equal(got.len, strlen(text));
            assert_memory_equal(got.data, text, got.len);
            codec_buf_free(&got);
        }
        free(c);
    }
}

static void test_gzip_bomb(void **state)
{
    (void)state;
    const size_t chunk = 1u << 20;
    char *zero = calloc(1, chunk);
    codec_buf_t wire = {0};
    z_stream z;
    char o[65536];
    assert_non_null(zero);
    memset(&z, 0, sizeof z);
    assert_int_equal(
        deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (int i = 0; i < 64; i++) {
        z.next_in = (Bytef *)zero;
        z.avail_in = (uInt)chunk;
        int r;
        do {
            z.next_out = (Bytef *)o;
            z.avail_out = sizeof o;
            r = deflate(&z, i == 63 ? Z_FINISH : Z_NO_FLUSH);
            assert_int_not_equal(r, Z_STREAM_ERROR);
            assert_int_equal(codec_buf_append(&wire, o, sizeof o - z.avail_out),
                             0);
        } while (z.avail_out == 0 || (i == 63 && r != Z_STREAM_END));
    }
    deflateEnd(&z);
    free(zero);
    assert_true(wire.len < (1u << 20));

    feed_t f = {2, 0, 17};
    char why[200] = "";
    static const uint64_t ratios[] = {100, 0};
    for (size_t ri = 0; ri < 2; ri++) {
        uint64_t ratio = ratios[ri];
        codec_dec_t *d = codec_dec_new(CODEC_GZIP, ratio);
        sink_t s;
        uint64_t in, out;
        assert_non_null(d);
        s_sink_init(&s, NULL);
        int r = s_feed(d, wire.data, wire.len, &f, &s, why, sizeof why);
        codec_dec_totals(d, &in, &out);
        if (ratio) {
            assert_int_equal(r, -1);
            assert_non_null(strstr(why, "inflates more than 100 times "
                                        "(decompression bomb?)"));
            /* it stopped at the floor, barely past it */
            assert_true(out > CODEC_BOMB_FLOOR);
            assert_true(out <= CODEC_BOMB_FLOOR + 1);
            /* and stays failed */
            assert_int_equal(codec_dec_read(d, s.rb, 10, why, sizeof why), -1);
            assert_true(codec_dec_pending(d));
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(out, 64u << 20);
            assert_int_equal(s.n, 64u << 20);
            assert_false(s.nonzero);
        }
        free(s.rb);
        codec_dec_free(&d);
    }
    codec_buf_free(&wire);
}

/* A read gives at most cap bytes, the rest stays pending; totals add
 * up. */
static void test_read_cap(void **state)
{
    (void)state;
    const size_t n = 300000;
    char *p = s_lines(n, 8);
    for (size_t i = 0; i < NKINDS; i++) {
        codec_enc_t *e = codec_enc_new(s_kinds[i]);
        codec_dec_t *d = codec_dec_new(s_kinds[i], 0);
        codec_buf_t wire = {0};
        char why[200] = "", *o = malloc(n + CANARY);
        assert_non_null(o);
        /* a snappy block larger than the read: it waits in the decoder */
        s_encode(e, p, n, 0, &wire);
        size_t at = 0, room, got = 0;
        while (at < wire.len) {
            void *to = codec_dec_room(d, &room);
            assert_true(room > 0);
            size_t k = room < wire.len - at ? room : wire.len - at;
            memcpy(to, wire.data + at, k);
            codec_dec_put(d, k);
            at += k;
            /* a small read: at most cap, and the rest is pending */
            memset(o + 10, 0x5a, CANARY);
            ssize_t r = codec_dec_read(d, o, 10, why, sizeof why);
            assert_true(r >= 0 && r <= 10);
            for (size_t c = 0; c < CANARY; c++)
                assert_int_equal((unsigned char)o[10 + c], 0x5a);
            assert_memory_equal(o, p + got, (size_t)r);
            got += (size_t)r;
            while (codec_dec_pending(d)) {
                size_t cap = 1 + (got % 5000);
                memset(o + cap, 0x5a, CANARY);
                r = codec_dec_read(d, o, cap, why, sizeof why);
                assert_true(r >= 0 && (size_t)r <= cap);
                for (size_t c = 0; c < CANARY; c++)
                    assert_int_equal((unsigned char)o[cap + c], 0x5a);
                if (r == 0)
                    break;
                assert_memory_equal(o, p + got, (size_t)r);
                got += (size_t)r;
            }
        }
        assert_int_equal(codec_dec_read(d, o, n, why, sizeof why), 0);
        assert_false(codec_dec_pending(d));
        assert_int_equal(got, n);
        uint64_t in, out;
        codec_dec_totals(d, &in, &out);
        assert_int_equal(in, wire.len);
        assert_int_equal(out, n);
        codec_dec_totals(d, NULL, NULL);
        free(o);
        codec_buf_free(&wire);
        codec_enc_free(&e);
        codec_dec_free(&d);
    }
    free(p);
}

/* The input buffer fills up when nothing is read: room says 0 and the
 * next read consumes it. */
static void test_full_input(void **state)
{
    (void)state;
    char *p = s_random(400000, 6);
    for (size_t i = 0; i < NKINDS; i++) {
        codec_enc_t *e = codec_enc_new(s_kinds[i]);
        codec_dec_t *d = codec_dec_new(s_kinds[i], 0);
        codec_buf_t wire = {0}, got = {0};
        char why[200] = "", o[4096];
        s_encode(e, p, 400000, 0, &wire);
        size_t at = 0, room;
        while (at < wire.len) {
            void *to = codec_dec_room(d, &room);
            if (room == 0) {
                ssize_t r = codec_dec_read(d, o, sizeof o, why, sizeof why);
                assert_true(r >= 0);
                assert_int_equal(codec_buf_append(&got, o, (size_t)r), 0);
                to = codec_dec_room(d, &room);
                if (room == 0) /* the read made output, not room */
                    continue;
            }
            size_t k = room < wire.len - at ? room : wire.len - at;
            memcpy(to, wire.data + at, k);
            codec_dec_put(d, k);
            at += k;
        }
        for (;;) {
            ssize_t r = codec_dec_read(d, o, sizeof o, why, sizeof why);
            assert_true(r >= 0);
            if (r == 0)
                break;
            assert_int_equal(codec_buf_append(&got, o, (size_t)r), 0);
        }
        assert_int_equal(got.len, 400000);
        assert_memory_equal(got.data, p, 400000);
        codec_buf_free(&wire);
        codec_buf_free(&got);
        codec_enc_free(&e);
        codec_dec_free(&d);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_enc_appends),
        cmocka_unit_test(test_many_batches),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_bytewise),
        cmocka_unit_test(test_random_cuts),
        cmocka_unit_test(test_ccr_gzip),
        cmocka_unit_test(test_ccr_lz4),
        cmocka_unit_test(test_ccr_snappy),
        cmocka_unit_test(test_gzip_members),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_snappy_too_big),
        cmocka_unit_test(test_snappy_too_long),
        cmocka_unit_test(test_lz4_block_size),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_read_cap),
        cmocka_unit_test(test_full_input),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
