/*
 * fuzz_codec.c -- libFuzzer harness for the compressed transports
 * (src/codec.c).
 *
 * The first byte picks the codec (byte % 3: gzip, lz4, snappy) and how the
 * bytes are cut (byte / 3 % 4: as much as fits, one byte at a time, pieces
 * of pseudo-random length, seven bytes).  The rest is fed as wire bytes to
 * a decoder in those pieces; its output is read into exact-size heap
 * buffers of a small and a large capacity in turn (so ASan sees any write
 * past cap).  A read must never return more than cap, a read of 0 must
 * leave nothing pending and room for more wire bytes, and the totals must
 * add up.  Then the same bytes go the other way: encoded with the chosen
 * codec as a few batches of a few iovecs, decoded (cut the same way) and
 * compared with the input exactly; when the first byte is 128 or more the
 * bytes are repeated REPEAT times first, so that a batch spans several
 * snappy blocks and lz4 blocks.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/codec.c \
 *       tests/fuzz/fuzz_codec.c -o fuzz_codec -lz -llz4 -lsnappy
 *   ./fuzz_codec -max_total_time=20 corpus-copy/
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define SMALL  13
#define LARGE  65536
#define RATIO  1000 /* a bomb may come out of the fuzzer: this one is fine */
#define REPEAT 40

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    codec_dec_t *d;
    int cut;      /* 0: all that fits, 1: a byte, 2: pseudo-random, 3: 7 */
    uint32_t st;  /* the pseudo-random cuts */
    char *small;  /* SMALL bytes */
    char *large;  /* LARGE bytes */
    int turn;     /* which buffer reads next */
    uint64_t in;  /* wire bytes given */
    uint64_t out; /* bytes read */
    char *keep;   /* the output, when kept (cap bytes) */
    size_t kept;  /* bytes at keep */
    size_t keepcap;
    int failed;
} run_t;

static size_t s_cut(run_t *r, size_t room)
{
    size_t k = room;
    switch (r->cut) {
    case 1: k = 1; break;
    case 2:
        r->st = r->st * 1103515245u + 12345u;
        k = 1 + (r->st >> 16) % 600;
        break;
    case 3: k = 7; break;
    default: break;
    }
    return k < room ? k : room;
}

/* Read what the decoder gives without new wire bytes.  0, or -1. */
static int s_drain(run_t *r)
{
    char why[128];
    for (;;) {
        size_t cap = r->turn ? LARGE : SMALL;
        char *buf = r->turn ? r->large : r->small;
        r->turn ^= 1;
        ssize_t n = codec_dec_read(r->d, buf, cap, why, sizeof why);
        if (n < 0) {
            assert(why[0] != '\0');
            assert(codec_dec_read(r->d, buf, cap, why, sizeof why) == -1);
            r->failed = 1;
            return -1;
        }
        if (n == 0) {
            size_t room;
            assert(!codec_dec_pending(r->d));
            assert(codec_dec_room(r->d, &room) != NULL && room > 0);
            return 0;
        }
        assert((size_t)n <= cap);
        if (r->keep != NULL) {
            assert(r->kept + (size_t)n <= r->keepcap);
            memcpy(r->keep + r->kept, buf, (size_t)n);
            r->kept += (size_t)n;
        }
        r->out += (uint64_t)n;
    }
}

/* Feed p[0..n) as r->cut says, reading after each piece.  0, or -1. */
static int s_feed(run_t *r, const uint8_t *p, size_t n)
{
    size_t at = 0;
    while (at < n) {
        size_t room;
        void *to = codec_dec_room(r->d, &room);
        if (room == 0) {
            if (s_drain(r) < 0)
                return -1;
            to = codec_dec_room(r->d, &room);
            assert(room > 0);
        }
        size_t k = s_cut(r, room);
        if (k > n - at)
            k = n - at;
        memcpy(to, p + at, k);
        codec_dec_put(r->d, k);
        r->in += k;
        at += k;
        if (s_drain(r) < 0)
            return -1;
    }
    return s_drain(r);
}

static void s_run_init(run_t *r, codec_kind_t k, int cut, uint32_t seed,
                       uint64_t ratio)
{
    memset(r, 0, sizeof *r);
    r->d = codec_dec_new(k, ratio);
    r->cut = cut;
    r->st = seed;
    r->small = malloc(SMALL);
    r->large = malloc(LARGE);
    assert(r->d != NULL && r->small != NULL && r->large != NULL);
}

static void s_run_free(run_t *r)
{
    uint64_t in, out;
    codec_dec_totals(r->d, &in, &out);
    assert(in == r->in);
    assert(out == r->out);
    codec_dec_free(&r->d);
    assert(r->d == NULL);
    free(r->small);
    free(r->large);
    free(r->keep);
}

/* Encode p[0..n) as up to three batches of up to three iovecs each, cut
 * where the bytes say, then decode and compare. */
static void s_roundtrip(codec_kind_t k, int cut, const uint8_t *p, size_t n)
{
    codec_enc_t *e = codec_enc_new(k);
    codec_buf_t wire = {0};
    char why[128];
    size_t at = 0;
    assert(e != NULL);
    for (int b = 0; b < 3 && at < n; b++) {
        struct iovec iov[3];
        int ni = 0;
        for (; ni < 3 && at < n; ni++) {
            size_t len = b == 2 && ni == 2 ? n - at : 1 + p[at] * 3u;
            if (len > n - at)
                len = n - at;
            iov[ni].iov_base = (void *)(p + at);
            iov[ni].iov_len = len;
            at += len;
        }
        assert(codec_enc_batch(e, iov, ni, &wire, why, sizeof why) == 0);
    }
    if (at < n) {
        struct iovec iov = {(void *)(p + at), n - at};
        assert(codec_enc_batch(e, &iov, 1, &wire, why, sizeof why) == 0);
    }
    codec_enc_free(&e);

    run_t r;
    s_run_init(&r, k, cut, (uint32_t)n, 0);
    r.keepcap = n;
    r.keep = malloc(n ? n : 1);
    assert(r.keep != NULL);
    assert(s_feed(&r, (const uint8_t *)wire.data, wire.len) == 0);
    assert(r.kept == n);
    assert(n == 0 || memcmp(r.keep, p, n) == 0);
    s_run_free(&r);
    codec_buf_free(&wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    codec_kind_t k = (codec_kind_t)(CODEC_GZIP + data[0] % 3);
    int cut = data[0] / 3 % 4;
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    /* the bytes as wire bytes: whatever they are, no crash, bounds kept */
    run_t r;
    s_run_init(&r, k, cut, data[0], RATIO);
    s_feed(&r, p, n);
    s_run_free(&r);

    /* the bytes as a stream: they come back exactly */
    if (data[0] < 128 || n == 0) {
        s_roundtrip(k, cut, p, n);
        return 0;
    }
    uint8_t *rep = malloc(n * REPEAT);
    assert(rep != NULL);
    for (size_t i = 0; i < REPEAT; i++)
        memcpy(rep + i * n, p, n);
    s_roundtrip(k, cut, rep, n * REPEAT);
    free(rep);
    return 0;
}
