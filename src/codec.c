/*
 * codec.c -- see codec.h.  The compressed transports of a link: gzip
 * (zlib), lz4 (liblz4's frame API) and snappy (libsnappy's C API, raw
 * blocks), each direction as carbon-c-relay frames it.
 *
 * Pure core: no I/O, no globals.  Each encoder and decoder owns its library
 * state and its buffers; the caller owns the iovecs it passes in, the
 * codec_buf_t the encoder appends to and the buffer a decoder reads into.
 *
 * Encoders append to the caller's codec_buf_t.  An empty batch appends
 * nothing (no empty sync flush, no empty frame, no empty block): there is
 * nothing for the peer to decode.  On failure the bytes of the failed batch
 * are taken back off out (out->len as before the call).
 *
 * Decoders read wire bytes into an input buffer of their own (the caller
 * writes into it through codec_dec_room / codec_dec_put) and produce the
 * stream into the caller's buffer:
 *   gzip    64 KiB of input; inflate writes straight into the caller's
 *           buffer (zlib's own state: a 32 KiB window).
 *   lz4     64 KiB of input; LZ4F_decompress writes straight into the
 *           caller's buffer (liblz4 buffers a block of the frame's block
 *           size when the caller's buffer is smaller: 64 KiB for the
 *           frames the encoder makes, at most 4 MiB as the format allows).
 *   snappy  the input buffer grows, as blocks need it, from 64 KiB up to
 *           snappy_max_compressed_length(CODEC_SNAPPY_MAX); a block that
 *           is still incomplete when it fills that is refused.  A block is
 *           uncompressed straight into the caller's buffer when it fits,
 *           else into an output buffer of the block's size (at most
 *           CODEC_SNAPPY_MAX) that codec_dec_read then hands out.
 * An error found after some bytes were produced in the same call is kept:
 * the call returns those bytes and the next call returns -1.
 */
#include "codec.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>

#define S_INBUF      (64u << 10) /* gzip and lz4 input; snappy's first */
#define S_ZCHUNK     (1u << 30)  /* bytes per zlib call (avail_* is uInt) */
#define S_ZOUT       (64u << 10) /* spare room per deflate call */
#define S_KEEP       (4u << 20)  /* lz4 scratch kept between batches */
#define S_REASON_MAX 192

const char *codec_name(codec_kind_t k)
{
    switch (k) {
    case CODEC_PLAIN: return "plain";
    case CODEC_GZIP: return "gzip";
    case CODEC_LZ4: return "lz4";
    case CODEC_SNAPPY: return "snappy";
    }
    return "unknown";
}

/* ---- codec_buf_t ------------------------------------------------------ */

void codec_buf_free(codec_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = b->off = 0;
}

/* When at least as many bytes are taken as are left, the ones left move to
 * the front (off becomes 0): a buffer the caller never quite empties does
 * not grow for ever, and the bytes moved never outnumber the bytes taken
 * since the last move.  An append never moves anything: it only adds n to
 * len (a caller may count what an encoder appended by len). */
void codec_buf_take(codec_buf_t *b, size_t n)
{
    b->off = n > b->len - b->off ? b->len : b->off + n;
    if (b->off == b->len) {
        b->len = b->off = 0;
    } else if (b->off >= b->len - b->off) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
}

/* Make room for n more bytes after data[len).  0, or -1 (out of
 * memory). */
static int s_buf_reserve(codec_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + n, cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int codec_buf_append(codec_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (s_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* The reason, where the caller wants it. */
static void s_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    if (why == NULL || whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* ---- encoder ---------------------------------------------------------- */

struct codec_enc {
    codec_kind_t kind;
    int failed;    /* a batch failed: the encoder is unusable */
    z_stream zs;   /* gzip: the connection's deflate stream */
    char *scratch; /* lz4: a batch gathered; snappy: a block gathered */
    size_t scap;   /* bytes at scratch */
};

codec_enc_t *codec_enc_new(codec_kind_t k)
{
    if (k != CODEC_GZIP && k != CODEC_LZ4 && k != CODEC_SNAPPY)
        return NULL;
    codec_enc_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->kind = k;
    if (k == CODEC_GZIP) {
        if (deflateInit2(&e->zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(e);
            return NULL;
        }
    } else if (k == CODEC_SNAPPY) {
        e->scap = CODEC_SNAPPY_BLOCK;
        if ((e->scratch = malloc(e->scap)) == NULL) {
            free(e);
            return NULL;
        }
    }
    return e;
}

void codec_enc_free(codec_enc_t **pe)
{
    if (pe == NULL || *pe == NULL)
        return;
    codec_enc_t *e = *pe;
    if (e->kind == CODEC_GZIP)
        deflateEnd(&e->zs);
    free(e->scratch);
    free(e);
    *pe = NULL;
}

/* Run deflate with flush until zlib takes no more input (Z_NO_FLUSH) or
 * has written all its output (Z_SYNC_FLUSH), growing out as it goes. */
static int s_deflate(codec_enc_t *e, int flush, codec_buf_t *out, char *why,
                     size_t whylen)
{
    z_stream *z = &e->zs;
    for (;;) {
        if (s_buf_reserve(out, S_ZOUT) < 0) {
            s_why(why, whylen, "out of memory");
            return -1;
        }
        size_t room = out->cap - out->len;
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = room > S_ZCHUNK ? S_ZCHUNK : (uInt)room;
        uInt given = z->avail_out;
        int r = deflate(z, flush);
        out->len += given - z->avail_out;
        if (r == Z_BUF_ERROR) /* nothing left to do */
            return 0;
        if (r != Z_OK) {
            s_why(why, whylen, "gzip: deflate failed: %s",
                  z->msg ? z->msg : zError(r));
            return -1;
        }
        if (z->avail_out > 0 && (flush != Z_NO_FLUSH || z->avail_in == 0))
            return 0;
    }
}

static int s_gzip_batch(codec_enc_t *e, const struct iovec *iov, int n,
                        codec_buf_t *out, char *why, size_t whylen)
{
    z_stream *z = &e->zs;
    for (int i = 0; i < n; i++) {
        const Bytef *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t k = left > S_ZCHUNK ? S_ZCHUNK : left;
            z->next_in = (Bytef *)p;
            z->avail_in = (uInt)k;
            if (s_deflate(e, Z_NO_FLUSH, out, why, whylen) < 0)
                return -1;
            p += k;
            left -= k;
        }
    }
    z->next_in = NULL;
    z->avail_in = 0;
    return s_deflate(e, Z_SYNC_FLUSH, out, why, whylen);
}

/* Gather iov[0..n) (total bytes) into the scratch buffer, grown to fit
 * (a single iovec is used where it is).  NULL when out of memory. */
static const char *s_gather(codec_enc_t *e, const struct iovec *iov, int n,
                            size_t total)
{
    if (n == 1)
        return iov[0].iov_base;
    if (e->scap < total) {
        char *p = realloc(e->scratch, total);
        if (p == NULL)
            return NULL;
        e->scratch = p;
        e->scap = total;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > 0)
            memcpy(e->scratch + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    return e->scratch;
}

static int s_lz4_batch(codec_enc_t *e, const struct iovec *iov, int n,
                       size_t total, codec_buf_t *out, char *why, size_t whylen)
{
    const char *src = s_gather(e, iov, n, total);
    size_t bound = LZ4F_compressFrameBound(total, NULL);
    if (src == NULL || s_buf_reserve(out, bound) < 0) {
        s_why(why, whylen, "out of memory");
        return -1;
    }
    size_t r =
        LZ4F_compressFrame(out->data + out->len, bound, src, total, NULL);
    if (LZ4F_isError(r)) {
        s_why(why, whylen, "lz4: %s", LZ4F_getErrorName(r));
        return -1;
    }
    out->len += r;
    if (e->scap > S_KEEP) { /* a rare large batch: do not keep its copy */
        free(e->scratch);
        e->scratch = NULL;
        e->scap = 0;
    }
    return 0;
}

/* Compress one snappy block of p[0..n) onto out. */
static int s_snappy_block(const char *p, size_t n, codec_buf_t *out, char *why,
                          size_t whylen)
{
    size_t room = snappy_max_compressed_length(n);
    if (s_buf_reserve(out, room) < 0) {
        s_why(why, whylen, "out of memory");
        return -1;
    }
    snappy_status st = snappy_compress(p, n, out->data + out->len, &room);
    if (st != SNAPPY_OK) {
        s_why(why, whylen, "snappy: compress failed (%d)", (int)st);
        return -1;
    }
    out->len += room;
    return 0;
}

/* Cut the batch into blocks of CODEC_SNAPPY_BLOCK bytes (the last one
 * shorter): a block that lies within one iovec is compressed from there,
 * one that spans iovecs is gathered into the scratch block first. */
static int s_snappy_batch(codec_enc_t *e, const struct iovec *iov, int n,
                          codec_buf_t *out, char *why, size_t whylen)
{
    size_t have = 0; /* bytes gathered in scratch */
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            if (have == 0 && left >= CODEC_SNAPPY_BLOCK) {
                if (s_snappy_block(p, CODEC_SNAPPY_BLOCK, out, why, whylen) < 0)
                    return -1;
                p += CODEC_SNAPPY_BLOCK;
                left -= CODEC_SNAPPY_BLOCK;
                continue;
            }
            size_t k = CODEC_SNAPPY_BLOCK - have;
            if (k > left)
                k = left;
            memcpy(e->scratch + have, p, k);
            have += k;
            p += k;
            left -= k;
            if (have == CODEC_SNAPPY_BLOCK) {
                if (s_snappy_block(e->scratch, have, out, why, whylen) < 0)
                    return -1;
                have = 0;
            }
        }
    }
    if (have > 0)
        return s_snappy_block(e->scratch, have, out, why, whylen);
    return 0;
}

int codec_enc_batch(codec_enc_t *e, const struct iovec *iov, int n,
                    codec_buf_t *out, char *why, size_t whylen)
{
    if (e->failed) {
        s_why(why, whylen, "%s: the encoder failed before",
              codec_name(e->kind));
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > SIZE_MAX - total) {
            s_why(why, whylen, "%s: batch too large", codec_name(e->kind));
            e->failed = 1;
            return -1;
        }
        total += iov[i].iov_len;
    }
    if (total == 0)
        return 0;
    size_t len0 = out->len; /* to take back what a failed batch appended */
    int r;
    switch (e->kind) {
    case CODEC_GZIP: r = s_gzip_batch(e, iov, n, out, why, whylen); break;
    case CODEC_LZ4: r = s_lz4_batch(e, iov, n, total, out, why, whylen); break;
    default: r = s_snappy_batch(e, iov, n, out, why, whylen); break;
    }
    if (r < 0) {
        e->failed = 1;
        out->len = len0;
    }
    return r;
}

/* ---- decoder ---------------------------------------------------------- */

struct codec_dec {
    codec_kind_t kind;
    uint64_t max_ratio; /* 0: no limit */
    uint64_t in, out;   /* wire bytes given, bytes produced */
    int failed;         /* the stream is corrupt or a bomb */
    int stalled; /* the last read wants new wire bytes before it can go on */
    char reason[S_REASON_MAX]; /* why it failed */

    unsigned char *ib; /* wire bytes: ib[ioff..ilen) not yet consumed */
    size_t icap, ilen, ioff;

    /* gzip */
    z_stream zs;
    int more; /* the library may hold output (it filled the last buffer) */
    /* lz4 */
    LZ4F_dctx *lz;
    int lz_mid; /* inside a frame (its header was read) */
    /* snappy: the block at ib[ioff..), as far as it was walked */
    size_t s_pos;   /* bytes of the block walked (0: its length unread) */
    uint64_t s_len; /* the length it inflates to */
    uint64_t s_sum; /* the length of the elements walked */
    char *ob;       /* a block uncompressed: ob[ooff..olen) not handed out */
    size_t ocap, olen, ooff;
};

/* The largest snappy block accepted, compressed. */
static size_t s_snappy_inmax(void)
{
    return snappy_max_compressed_length(CODEC_SNAPPY_MAX);
}

codec_dec_t *codec_dec_new(codec_kind_t k, uint64_t max_ratio)
{
    if (k != CODEC_GZIP && k != CODEC_LZ4 && k != CODEC_SNAPPY)
        return NULL;
    codec_dec_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->kind = k;
    d->max_ratio = max_ratio;
    d->icap = S_INBUF;
    if ((d->ib = malloc(d->icap)) == NULL) {
        free(d);
        return NULL;
    }
    if (k == CODEC_GZIP) {
        if (inflateInit2(&d->zs, 15 + 16) != Z_OK) {
            free(d->ib);
            free(d);
            return NULL;
        }
    } else if (k == CODEC_LZ4) {
        if (LZ4F_isError(
                LZ4F_createDecompressionContext(&d->lz, LZ4F_VERSION))) {
            free(d->ib);
            free(d);
            return NULL;
        }
    }
    return d;
}

void codec_dec_free(codec_dec_t **pd)
{
    if (pd == NULL || *pd == NULL)
        return;
    codec_dec_t *d = *pd;
    if (d->kind == CODEC_GZIP)
        inflateEnd(&d->zs);
    else if (d->kind == CODEC_LZ4)
        LZ4F_freeDecompressionContext(d->lz);
    free(d->ib);
    free(d->ob);
    free(d);
    *pd = NULL;
}

void *codec_dec_room(codec_dec_t *d, size_t *room)
{
    if (d->ioff == d->ilen) {
        d->ioff = d->ilen = 0;
    } else if (d->ioff > 0 &&
               (d->ilen == d->icap || d->ioff >= d->ilen - d->ioff)) {
        /* the move costs no more than what was consumed, or the buffer
         * is full */
        memmove(d->ib, d->ib + d->ioff, d->ilen - d->ioff);
        d->ilen -= d->ioff;
        d->ioff = 0;
    }
    *room = d->icap - d->ilen;
    return d->ib + d->ilen;
}

void codec_dec_put(codec_dec_t *d, size_t n)
{
    if (n > d->icap - d->ilen)
        n = d->icap - d->ilen;
    d->ilen += n;
    d->in += n;
    if (n > 0)
        d->stalled = 0;
}

/* The decoder failed: keep the reason.  -1. */
static int s_fail(codec_dec_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
    d->failed = 1;
    return -1;
}

/* The most bytes produced before the ratio is exceeded. */
static uint64_t s_limit(const codec_dec_t *d)
{
    if (d->max_ratio == 0)
        return UINT64_MAX;
    uint64_t lim =
        d->in > UINT64_MAX / d->max_ratio ? UINT64_MAX : d->in * d->max_ratio;
    return lim < CODEC_BOMB_FLOOR ? CODEC_BOMB_FLOOR : lim;
}

static int s_bomb(codec_dec_t *d)
{
    if (d->out > s_limit(d))
        return s_fail(d,
                      "%s: inflates more than %llu times "
                      "(decompression bomb?)",
                      codec_name(d->kind), (unsigned long long)d->max_ratio);
    return 0;
}

static int s_gzip_read(codec_dec_t *d, unsigned char *out, size_t cap,
                       size_t *got)
{
    z_stream *z = &d->zs;
    while (*got < cap) {
        size_t ain = d->ilen - d->ioff, aout = cap - *got;
        if (ain == 0 && !d->more)
            break;
        z->next_in = d->ib + d->ioff;
        z->avail_in = (uInt)ain; /* at most S_INBUF */
        z->next_out = out + *got;
        z->avail_out = aout > S_ZCHUNK ? S_ZCHUNK : (uInt)aout;
        uInt given = z->avail_out;
        int r = inflate(z, Z_SYNC_FLUSH);
        d->ioff += ain - z->avail_in;
        *got += given - z->avail_out;
        d->more = z->avail_out == 0;
        switch (r) {
        case Z_OK: break;
        case Z_STREAM_END:
            /* a member ended with its trailer: another may follow */
            d->more = 0;
            if (inflateReset(z) != Z_OK)
                return s_fail(d, "gzip: inflateReset failed");
            break;
        case Z_BUF_ERROR: return 0; /* no progress: wants input */
        case Z_MEM_ERROR: return s_fail(d, "gzip: out of memory");
        case Z_NEED_DICT:
            return s_fail(d, "gzip: corrupt stream (%s)",
                          z->msg ? z->msg : "needs a preset dictionary");
        default:
            return s_fail(d, "gzip: corrupt stream (%s)",
                          z->msg ? z->msg : zError(r));
        }
    }
    return 0;
}

static int s_lz4_read(codec_dec_t *d, unsigned char *out, size_t cap,
                      size_t *got)
{
    while (*got < cap) {
        size_t ain = d->ilen - d->ioff, aout = cap - *got;
        if (ain == 0 && !d->more)
            break;
        if (!d->lz_mid) {
            /* a frame's header names its block size, which liblz4 buffers
             * whole: 4 MiB blocks (id 7) are refused, memory stays bounded */
            const unsigned char *h = d->ib + d->ioff;
            if (ain < 6)
                break; /* its header is not all here yet */
            uint32_t magic = (uint32_t)h[0] | (uint32_t)h[1] << 8 |
                             (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
            if (magic == 0x184D2204u && ((h[5] >> 4) & 7) > 6)
                return s_fail(d, "lz4: a frame of 4 MiB blocks (at most "
                                 "1 MiB accepted)");
            d->lz_mid = 1;
        }
        size_t sn = ain, dn = aout;
        size_t r =
            LZ4F_decompress(d->lz, out + *got, &dn, d->ib + d->ioff, &sn, NULL);
        if (LZ4F_isError(r))
            return s_fail(d, "lz4: corrupt stream (%s)", LZ4F_getErrorName(r));
        if (r == 0) /* the frame ended: the next bytes start another */
            d->lz_mid = 0;
        d->ioff += sn;
        *got += dn;
        d->more = dn == aout;
        if (sn == 0 && dn == 0)
            break;
    }
    return 0;
}

/* Walk the snappy block at ib[ioff..ilen) as far as its bytes go, from
 * where the last walk stopped.  1 when the block is all there (its
 * compressed length in s_pos), 0 when it needs more bytes, -1 when it is
 * corrupt or too large. */
static int s_snappy_walk(codec_dec_t *d)
{
    const unsigned char *p = d->ib + d->ioff;
    size_t n = d->ilen - d->ioff;

    if (d->s_pos == 0) {
        uint64_t v = 0;
        size_t i;
        for (i = 0; i < n && i < 5; i++) {
            v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
            if ((p[i] & 0x80) == 0)
                break;
        }
        if (i == 5)
            return s_fail(d, "snappy: corrupt block (bad length)");
        if (i == n)
            return 0;
        if (v > CODEC_SNAPPY_MAX)
            return s_fail(d,
                          "snappy: a block inflates to %llu bytes (more "
                          "than %u)",
                          (unsigned long long)v, (unsigned)CODEC_SNAPPY_MAX);
        d->s_pos = i + 1;
        d->s_len = v;
        d->s_sum = 0;
    }
    while (d->s_sum < d->s_len) {
        size_t pos = d->s_pos;
        uint64_t len, elen;
        if (pos >= n)
            return 0;
        unsigned tag = p[pos];
        switch (tag & 3) {
        case 0:
            if ((tag >> 2) < 60) {
                len = (tag >> 2) + 1;
                elen = 1 + len;
            } else {
                size_t k = (tag >> 2) - 59;
                if (n - pos < 1 + k)
                    return 0;
                len = 0;
                for (size_t j = 0; j < k; j++)
                    len |= (uint64_t)p[pos + 1 + j] << (8 * j);
                len += 1;
                elen = 1 + k + len;
            }
            break;
        case 1:
            len = ((tag >> 2) & 7) + 4;
            elen = 2;
            break;
        case 2:
            len = (tag >> 2) + 1;
            elen = 3;
            break;
        default:
            len = (tag >> 2) + 1;
            elen = 5;
            break;
        }
        if (len > d->s_len - d->s_sum)
            return s_fail(d, "snappy: corrupt block (inflates past its "
                             "length)");
        if (elen > n - pos)
            return 0;
        d->s_sum += len;
        d->s_pos += (size_t)elen;
    }
    return 1;
}

/* Decode the next snappy block into out (room bytes) when it fits there,
 * else into ob.  1 when a block was decoded, 0 when it needs more bytes
 * first, -1 on failure. */
static int s_snappy_next(codec_dec_t *d, unsigned char *out, size_t room,
                         size_t *got)
{
    int r = s_snappy_walk(d);
    if (r < 0)
        return -1;
    if (r == 0) {
        /* a full buffer that holds less than a block: grow it, to the
         * largest block's compressed size */
        if (d->ioff == 0 && d->ilen == d->icap) {
            size_t max = s_snappy_inmax();
            if (d->icap >= max)
                return s_fail(d,
                              "snappy: a block is longer than %zu "
                              "bytes compressed",
                              max);
            size_t ncap = d->icap * 2 > max ? max : d->icap * 2;
            unsigned char *p = realloc(d->ib, ncap);
            if (p == NULL)
                return s_fail(d, "snappy: out of memory");
            d->ib = p;
            d->icap = ncap;
        }
        return 0;
    }
    size_t clen = d->s_pos, ulen = (size_t)d->s_len;
    const char *src = (const char *)d->ib + d->ioff;
    if (ulen > 0) {
        char *dst = (char *)out;
        if (ulen > room) {
            if (d->ocap < ulen) {
                char *p = realloc(d->ob, ulen);
                if (p == NULL)
                    return s_fail(d, "snappy: out of memory");
                d->ob = p;
                d->ocap = ulen;
            }
            dst = d->ob;
        }
        size_t olen = ulen;
        if (snappy_uncompress(src, clen, dst, &olen) != SNAPPY_OK ||
            olen != ulen)
            return s_fail(d, "snappy: corrupt block");
        if (dst == d->ob) {
            d->olen = ulen;
            d->ooff = 0;
        } else {
            *got += ulen;
        }
    }
    d->ioff += clen;
    d->s_pos = 0;
    return 1;
}

static int s_snappy_read(codec_dec_t *d, unsigned char *out, size_t cap,
                         size_t *got)
{
    while (*got < cap) {
        if (d->ooff < d->olen) {
            size_t k = d->olen - d->ooff;
            if (k > cap - *got)
                k = cap - *got;
            memcpy(out + *got, d->ob + d->ooff, k);
            *got += k;
            d->ooff += k;
            if (d->ooff == d->olen)
                d->ooff = d->olen = 0;
            continue;
        }
        int r = s_snappy_next(d, out + *got, cap - *got, got);
        if (r <= 0)
            return r;
    }
    return 0;
}

ssize_t codec_dec_read(codec_dec_t *d, void *out, size_t cap, char *why,
                       size_t whylen)
{
    size_t got = 0;

    if (!d->failed)
        s_bomb(d);
    if (d->failed) {
        s_why(why, whylen, "%s", d->reason);
        return -1;
    }
    if (cap > SSIZE_MAX)
        cap = SSIZE_MAX;
    /* produce no more than one byte past the limit */
    uint64_t lim = s_limit(d), left = lim - d->out;
    if (left < UINT64_MAX && cap > left + 1)
        cap = (size_t)(left + 1);
    if (cap == 0)
        return 0;
    switch (d->kind) {
    case CODEC_GZIP: s_gzip_read(d, out, cap, &got); break;
    case CODEC_LZ4: s_lz4_read(d, out, cap, &got); break;
    default: s_snappy_read(d, out, cap, &got); break;
    }
    d->out += got;
    d->stalled = !d->failed && got < cap;
    if (!d->failed)
        s_bomb(d);
    if (got > 0)
        return (ssize_t)got;
    if (d->failed) {
        s_why(why, whylen, "%s", d->reason);
        return -1;
    }
    return 0;
}

int codec_dec_pending(const codec_dec_t *d)
{
    if (d->failed)
        return 1;
    if (d->ooff < d->olen)
        return 1;
    if (d->stalled)
        return 0;
    return d->ioff < d->ilen || d->more;
}

void codec_dec_totals(const codec_dec_t *d, uint64_t *in, uint64_t *out)
{
    if (in != NULL)
        *in = d->in;
    if (out != NULL)
        *out = d->out;
}
