/*
 * codec.h -- the compressed transports of a link: gzip, lz4 and snappy,
 * framed as carbon-c-relay frames them.
 *
 * Pure core: no I/O, no globals.  An encoder turns batches of bytes into
 * wire bytes; a decoder turns wire bytes back into the stream, with bounded
 * memory.  TLS (tls.h), when the link has it, wraps what the encoder makes.
 *
 * Framing (each direction works against carbon-c-relay):
 *   gzip    one gzip stream (deflate, gzip header) per connection; every
 *           batch ends with a sync flush, so whatever has been sent so far
 *           decodes in full.  No trailer is written: the stream ends with
 *           the connection.  The decoder also reads concatenated gzip
 *           members (a stream that ended with a trailer, then another).
 *   lz4     every batch is one complete LZ4 frame (library defaults: 64 KiB
 *           blocks, no checksum); the stream is frames back to back.
 *   snappy  every batch is cut into raw snappy blocks of at most
 *           CODEC_SNAPPY_BLOCK uncompressed bytes, with no framing around
 *           them.  The decoder finds where a block ends by walking its
 *           elements (the leading varint says how long it inflates to); a
 *           block that says it inflates to more than CODEC_SNAPPY_MAX is
 *           refused.
 *
 * Bombs: a decoder fails once it has produced more than CODEC_BOMB_FLOOR
 * bytes and more than max_ratio times the bytes it was given.
 *
 * Ownership: encoder and decoder own their library state and buffers;
 * the caller owns what it passes in and the codec_buf_t it appends to.
 */
#ifndef ORCHESTER_CODEC_H
#define ORCHESTER_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef enum {
    CODEC_PLAIN = 0,
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_SNAPPY
} codec_kind_t;

#define CODEC_SNAPPY_BLOCK 32768       /* uncompressed bytes per block sent */
#define CODEC_SNAPPY_MAX   (1 << 20)   /* largest block accepted */
#define CODEC_BOMB_FLOOR   (16u << 20) /* bytes out before the ratio counts */

/* The name of k as the config spells it ("plain", "gzip", "lz4",
 * "snappy"). */
const char *codec_name(codec_kind_t k);

/* A growable byte buffer: data[0..len) holds bytes, data[0..off) of them
 * already taken by the caller.  Owned by whoever made it. */
typedef struct {
    char *data;
    size_t len, cap, off;
} codec_buf_t;

void codec_buf_free(codec_buf_t *b);
/* codec_buf_take: the caller took n more bytes; when all are taken the
 * buffer is emptied (len = off = 0), the memory kept. */
void codec_buf_take(codec_buf_t *b, size_t n);
/* codec_buf_append: copy n bytes to the end.  0, or -1 (out of memory). */
int codec_buf_append(codec_buf_t *b, const void *p, size_t n);

/* ---- encoder ---------------------------------------------------------- */

typedef struct codec_enc codec_enc_t;

/* codec_enc_new: an encoder for one connection (k is not CODEC_PLAIN).
 * NULL when out of memory. */
codec_enc_t *codec_enc_new(codec_kind_t k);
void codec_enc_free(codec_enc_t **e);

/* codec_enc_batch: encode the bytes of iov[0..n) as one batch (see the
 * framing above) and append the wire bytes to out.  Everything given is
 * consumed.  0, or -1 with the reason in why (out of memory, a library
 * error); after -1 the encoder is unusable (close the connection). */
int codec_enc_batch(codec_enc_t *e, const struct iovec *iov, int n,
                    codec_buf_t *out, char *why, size_t whylen);

/* ---- decoder ---------------------------------------------------------- */

typedef struct codec_dec codec_dec_t;

/* codec_dec_new: a decoder for one connection (k is not CODEC_PLAIN);
 * max_ratio as above (0: no ratio limit).  NULL when out of memory. */
codec_dec_t *codec_dec_new(codec_kind_t k, uint64_t max_ratio);
void codec_dec_free(codec_dec_t **d);

/* codec_dec_room: where the next wire bytes go, and how many fit (at
 * least 1 unless the decoder holds a whole input buffer it has not
 * consumed, which codec_dec_read then consumes).  The caller writes up to
 * *room bytes there, then calls codec_dec_put with how many it wrote. */
void *codec_dec_room(codec_dec_t *d, size_t *room);
void codec_dec_put(codec_dec_t *d, size_t n);

/* codec_dec_read: decoded bytes into out (at most cap): >0 bytes written,
 * 0 when it needs more wire bytes first, -1 on a corrupt stream or a bomb
 * (the reason in why; the decoder is then unusable). */
ssize_t codec_dec_read(codec_dec_t *d, void *out, size_t cap, char *why,
                       size_t whylen);

/* codec_dec_pending: whether codec_dec_read may produce more without new
 * wire bytes (unconsumed input or buffered output). */
int codec_dec_pending(const codec_dec_t *d);

/* codec_dec_totals: wire bytes given and bytes produced so far. */
void codec_dec_totals(const codec_dec_t *d, uint64_t *in, uint64_t *out);

#endif
