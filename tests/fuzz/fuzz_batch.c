/*
 * fuzz_batch.c -- libFuzzer harness for the batch payload codec
 * (src/batch.c, CODEC_LINES) and the line check it applies (line_check in
 * src/line.c).
 *
 * The input is a payload as the orchester receives it from the satellites
 * endpoint.  It is copied to a heap block of its exact length (so ASan sees
 * any read past the payload) and decoded with two line limits (-M).  The
 * property: every line the decoder delivers is canonical -- it passes
 * line_check, has the shape of a canonical line by an independent check,
 * and line_parse of it gives back the same bytes -- and the decoder refuses
 * exactly the lines that are not, counting each.  The lines are split on
 * '\n' here independently of the decoder, and the delivered lines must be
 * exactly the canonical ones among them, in order.  A third decode stops
 * early at a point chosen by the input; when the first byte is 0xff, the
 * input is also tiled into a payload one byte over BATCH_PAYLOAD_MAX, which
 * must be refused whole.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/batch.c \
 *       src/line.c tests/fuzz/fuzz_batch.c -o fuzz_batch
 *   ./fuzz_batch -max_total_time=20 corpus-copy/
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "line.h"

#define NOW 1700000123LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the decoder delivered, checked as it goes. */
typedef struct {
    const char *payload; /* the decoded payload */
    size_t len;          /* its length */
    size_t maxline;      /* the -M it was decoded with */
    size_t pos;          /* where the next piece starts */
    long n;              /* lines delivered */
    long stop_at;        /* stop after this many (0: never) */
    long skipped;        /* pieces before each delivered one, summed, that
                            are not canonical */
} run_t;

/* A byte that may stand in the routing name of a canonical line. */
static int s_path_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == ':' ||
           c == '#';
}

/* Whether p[0..len) has the shape of a canonical line, checked without
 * line.c: "name[;tags] value timestamp\n" with a cleansed name, two spaces,
 * no control bytes. */
static int s_shape(const char *p, size_t len, size_t namelen)
{
    size_t i, spaces = 0, end;

    if (len < 6 || p[len - 1] != '\n' || namelen == 0)
        return 0;
    for (i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c < ' ' || c >= 0x7f)
            return 0;
        spaces += c == ' ';
    }
    if (spaces != 2 || p[0] == '.' || p[namelen - 1] == '.')
        return 0;
    for (i = 0; i < namelen; i++)
        if (!s_path_byte((unsigned char)p[i]) &&
            !(p[i] == '.' && p[i - 1] != '.'))
            return 0;
    end = (size_t)((const char *)memchr(p, ' ', len) - p);
    return end == namelen || p[namelen] == ';';
}

/* Whether piece p[0..len) (its '\n' included, if any) is a line a
 * satellite with this maxline writes: its own canonical form. */
static int s_canonical(const char *p, size_t len, size_t maxline)
{
    char *out;
    line_result_t res;
    int ok;

    if (len == 0 || len > LINE_CANON_MAX(maxline) || p[len - 1] != '\n')
        return 0;
    out = malloc(len);
    assert(out != NULL);
    ok = line_parse(p, len - 1, NOW, out, len, &res) == LINE_OK &&
         res.len == len && memcmp(out, p, len) == 0;
    free(out);
    return ok;
}

/* The length of the piece of the payload at pos: up to and with the next
 * '\n', or to the end. */
static size_t s_piece(const run_t *r, size_t pos)
{
    const char *nl = memchr(r->payload + pos, '\n', r->len - pos);

    return nl ? (size_t)(nl - (r->payload + pos)) + 1 : r->len - pos;
}

static int s_point_fn(void *arg, const char *line, size_t len, size_t namelen)
{
    run_t *r = arg;
    size_t nl, l;
    line_result_t res;
    char *out;

    /* the pieces before this one were refused: none may be canonical */
    while (r->payload + r->pos < line) {
        l = s_piece(r, r->pos);
        assert(!s_canonical(r->payload + r->pos, l, r->maxline));
        r->skipped++;
        r->pos += l;
    }
    assert(line == r->payload + r->pos);
    assert(len == s_piece(r, r->pos));
    r->pos += len;
    /* the property: what is delivered is canonical */
    assert(line_check(line, len, LINE_CANON_MAX(r->maxline), &nl) == 0);
    assert(nl == namelen);
    assert(s_shape(line, len, namelen));
    out = malloc(len);
    assert(out != NULL);
    assert(line_parse(line, len - 1, NOW, out, len, &res) == LINE_OK);
    assert(res.len == len && memcmp(out, line, len) == 0);
    assert(res.namelen == namelen);
    free(out);
    r->n++;
    return r->n == r->stop_at;
}

/* Decode payload[0..len) with maxline, stopping after stop_at lines (0:
 * never), and check the result against an independent split. */
static void s_run(const char *payload, size_t len, size_t maxline, long stop_at)
{
    const codec_t *c = codec_find(CODEC_LINES);
    run_t r = {payload, len, maxline, 0, 0, stop_at, 0};
    long refused = -1;
    long k;

    assert(c != NULL);
    k = c->decode(payload, len, maxline, s_point_fn, &r, &refused);
    if (len > BATCH_PAYLOAD_MAX(maxline)) {
        assert(k == -1 && refused == 0 && r.n == 0);
        return;
    }
    assert(k == r.n && refused >= 0);
    if (stop_at == 0 || r.n < stop_at) {
        /* it went to the end: the rest is refused pieces */
        while (r.pos < len) {
            size_t l = s_piece(&r, r.pos);

            assert(!s_canonical(payload + r.pos, l, maxline));
            r.skipped++;
            r.pos += l;
        }
    }
    assert(refused == r.skipped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);

    assert(p != NULL);
    if (size > 0)
        memcpy(p, data, size);
    s_run(p, size, 64, 0);
    s_run(p, size, 16384, 0);
    s_run(p, size, 16384, size > 0 ? 1 + data[size - 1] % 4 : 1);
    free(p);
    if (size > 0 && data[0] == 0xff) {
        size_t big = BATCH_PAYLOAD_MAX(64) + 1, i;
        char *q = malloc(big);

        assert(q != NULL);
        for (i = 0; i < big; i++)
            q[i] = (char)data[i % size];
        s_run(q, big, 64, 0);
        free(q);
    }
    return 0;
}
