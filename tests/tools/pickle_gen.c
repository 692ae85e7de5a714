/*
 * pickle_gen.c -- load generator for orchester's pickle listener.
 *
 *   pickle_gen HOST PORT NFRAMES [POINTS_PER_FRAME]
 *
 * Connects to HOST:PORT over TCP and sends NFRAMES carbon pickle frames (a
 * 4-byte big-endian length, then a protocol-2 pickle of a list of
 * (path, (timestamp, value)) tuples, memoized as Python's pickle writes
 * it) of POINTS_PER_FRAME datapoints each (default 500).  Paths are
 * bench.gen.N.metric_M, N in 0..15 (one frame template each) and M the
 * datapoint's place in its frame, so 16 * POINTS_PER_FRAME distinct
 * metrics; values are multiples of 0.25; frame F carries timestamp
 * START + F, START being the time the program starts.  Exits 0 once every
 * frame is written to the socket, 1 on an error, 2 on bad arguments.  A
 * summary goes to stderr.
 *
 * For speed the frames are built once: a batch of them (about 2 MiB) is
 * laid out in one buffer, and for each batch only the timestamps are
 * patched in place before the whole batch goes out in large writes.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* getaddrinfo, clock_gettime */
#endif

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define TEMPLATES   16         /* distinct frames (the N in the paths) */
#define BATCH_BYTES (2u << 20) /* aim for batches about this big */
#define MAX_POINTS  1000000    /* most datapoints per frame */

/* A growable byte buffer. */
typedef struct {
    unsigned char *b; /* the bytes */
    size_t n;         /* bytes in use */
    size_t cap;       /* bytes allocated */
} buf_t;

static int s_put(buf_t *f, const void *p, size_t n)
{
    if (f->n + n > f->cap) {
        size_t cap = f->cap ? f->cap : 65536;
        unsigned char *b;

        while (cap < f->n + n)
            cap *= 2;
        b = realloc(f->b, cap);
        if (!b)
            return -1;
        f->b = b;
        f->cap = cap;
    }
    memcpy(f->b + f->n, p, n);
    f->n += n;
    return 0;
}

static int s_byte(buf_t *f, unsigned c)
{
    unsigned char b = (unsigned char)c;

    return s_put(f, &b, 1);
}

static int s_le32(buf_t *f, uint32_t v)
{
    unsigned char b[4] = {v & 0xff, v >> 8 & 0xff, v >> 16 & 0xff,
                          v >> 24 & 0xff};

    return s_put(f, b, 4);
}

/* A memo PUT of index *memo, as Python writes it; *memo advances. */
static int s_memo(buf_t *f, uint32_t *memo)
{
    int rc = *memo < 256 ? s_byte(f, 'q') | s_byte(f, *memo)
                         : s_byte(f, 'r') | s_le32(f, *memo);

    (*memo)++;
    return rc;
}

/*
 * Append frame template t of npoints datapoints to f.  The offset of each
 * datapoint's 4-byte timestamp (relative to the frame's start) goes to
 * tsoff[0 .. npoints).  Returns 0, or -1 when out of memory.
 */
static int s_frame(buf_t *f, unsigned t, size_t npoints, size_t *tsoff)
{
    size_t start = f->n, i;
    uint32_t memo = 0;
    int rc = 0;

    rc |= s_le32(f, 0);             /* the length, filled in below */
    rc |= s_put(f, "\x80\x02]", 3); /* PROTO 2, EMPTY_LIST */
    rc |= s_memo(f, &memo);
    for (i = 0; i < npoints && rc == 0; i++) {
        char name[64];
        int nl = snprintf(name, sizeof name, "bench.gen.%u.metric_%zu", t, i);
        double v = (double)((i * 7 + t) % 4000) * 0.25;
        uint64_t u;
        unsigned char g[9];
        int k;

        if (i % 1000 == 0)
            rc |= s_byte(f, '('); /* MARK: APPENDS in batches */
        rc |= s_byte(f, 'X') | s_le32(f, (uint32_t)nl) |
              s_put(f, name, (size_t)nl);
        rc |= s_memo(f, &memo);
        rc |= s_byte(f, 'J'); /* BININT timestamp, patched later */
        tsoff[i] = f->n - start;
        rc |= s_le32(f, 0);
        memcpy(&u, &v, sizeof u);
        g[0] = 'G'; /* BINFLOAT, big-endian */
        for (k = 0; k < 8; k++)
            g[1 + k] = (unsigned char)(u >> (56 - 8 * k));
        rc |= s_put(f, g, sizeof g);
        rc |= s_byte(f, 0x86) | s_memo(f, &memo); /* (ts, value) */
        rc |= s_byte(f, 0x86) | s_memo(f, &memo); /* (path, (ts, value)) */
        if (i % 1000 == 999 || i == npoints - 1)
            rc |= s_byte(f, 'e'); /* APPENDS */
    }
    rc |= s_byte(f, '.');
    if (rc == 0) {
        uint32_t len = (uint32_t)(f->n - start - 4);

        f->b[start] = (unsigned char)(len >> 24);
        f->b[start + 1] = (unsigned char)(len >> 16);
        f->b[start + 2] = (unsigned char)(len >> 8);
        f->b[start + 3] = (unsigned char)len;
    }
    return rc ? -1 : 0;
}

/* Connect to host:port over TCP.  Returns the socket, or -1. */
static int s_connect(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, rc, sndbuf = 4 << 20;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "pickle_gen: %s:%s: %s\n", host, port,
                gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "pickle_gen: %s:%s: connect: %s\n", host, port,
                strerror(errno));
    else
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    freeaddrinfo(res);
    return fd;
}

/* Write all of b/n to fd.  Returns 0, or -1 with errno. */
static int s_write_all(int fd, const unsigned char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A whole non-negative decimal number in [min, max], or -1. */
static long long s_arg(const char *s, long long min, long long max)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    long long nframes, npoints = 500;
    size_t per_batch, frame_len, i, j, *tsoff = NULL, *fstart = NULL;
    buf_t batch = {0};
    struct timespec t0, t1;
    long long sent = 0;
    double bytes = 0;
    uint32_t start;
    double secs;
    int fd, rc = 1;

    if (argc < 4 || argc > 5) {
        fprintf(stderr,
                "usage: pickle_gen HOST PORT NFRAMES [POINTS_PER_FRAME]\n");
        return 2;
    }
    nframes = s_arg(argv[3], 0, INT32_MAX);
    if (argc == 5)
        npoints = s_arg(argv[4], 1, MAX_POINTS);
    if (nframes < 0 || npoints < 0) {
        fprintf(stderr,
                "pickle_gen: NFRAMES must be 0 .. %d and "
                "POINTS_PER_FRAME 1 .. %d\n",
                INT32_MAX, MAX_POINTS);
        return 2;
    }
    start = (uint32_t)time(NULL);
    if ((long long)start + nframes > INT32_MAX) {
        fprintf(stderr, "pickle_gen: timestamps would pass 2^31\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* one frame first, to size the batch */
    tsoff = malloc((size_t)npoints * sizeof *tsoff);
    if (!tsoff || s_frame(&batch, 0, (size_t)npoints, tsoff) < 0)
        goto nomem;
    frame_len = batch.n;
    per_batch = BATCH_BYTES / frame_len;
    if (per_batch < TEMPLATES)
        per_batch = TEMPLATES;
    per_batch -= per_batch % TEMPLATES;
    batch.n = 0;
    fstart = malloc(per_batch * sizeof *fstart);
    if (!fstart)
        goto nomem;
    /* the batch: templates 0 .. TEMPLATES-1, over and over; the
     * timestamp offsets are kept per template, as the names' lengths (and
     * so the frames') differ between templates */
    free(tsoff);
    tsoff = malloc(TEMPLATES * (size_t)npoints * sizeof *tsoff);
    if (!tsoff)
        goto nomem;
    for (i = 0; i < per_batch; i++) {
        unsigned t = (unsigned)(i % TEMPLATES);

        fstart[i] = batch.n;
        if (s_frame(&batch, t, (size_t)npoints,
                    tsoff + (size_t)t * (size_t)npoints) < 0)
            goto nomem;
    }

    fd = s_connect(argv[1], argv[2]);
    if (fd < 0)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sent < nframes) {
        size_t n = (size_t)(nframes - sent) < per_batch
                       ? (size_t)(nframes - sent)
                       : per_batch;
        size_t len = n < per_batch ? fstart[n] : batch.n;

        for (i = 0; i < n; i++) {
            uint32_t ts = start + (uint32_t)(sent + (long long)i);
            unsigned char le[4] = {ts & 0xff, ts >> 8 & 0xff, ts >> 16 & 0xff,
                                   ts >> 24 & 0xff};
            const size_t *off = tsoff + (i % TEMPLATES) * (size_t)npoints;

            for (j = 0; j < (size_t)npoints; j++)
                memcpy(batch.b + fstart[i] + off[j], le, 4);
        }
        if (s_write_all(fd, batch.b, len) < 0) {
            fprintf(stderr, "pickle_gen: %s:%s: write: %s\n", argv[1], argv[2],
                    strerror(errno));
            close(fd);
            goto out;
        }
        sent += (long long)n;
        bytes += (double)len;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (close(fd) < 0) {
        fprintf(stderr, "pickle_gen: close: %s\n", strerror(errno));
        goto out;
    }
    secs = (double)(t1.tv_sec - t0.tv_sec) +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr,
            "pickle_gen: %lld frames, %lld datapoints, %.1f MB in "
            "%.3f s (%.2f M datapoints/s)\n",
            nframes, nframes * npoints, bytes / 1e6, secs,
            secs > 0 ? (double)(nframes * npoints) / secs / 1e6 : 0.0);
    rc = 0;
    goto out;
nomem:
    fprintf(stderr, "pickle_gen: out of memory\n");
out:
    free(batch.b);
    free(tsoff);
    free(fstart);
    return rc;
}
