/*
 * batch.h -- the satellite to orchester batch protocol (docs/protocol.rst).
 *
 * Pure core.  A batch is a zmq multipart message: a fixed 28-byte header
 * frame, then one payload frame encoded by a codec.  The orchester answers
 * each batch with an acknowledgement: a header frame alone, type BATCH_ACK,
 * carrying the sequence number it acknowledges and a credit.  A member of an
 * HA pair that is not active answers BATCH_NACK instead (same layout): the
 * batch was not taken; the satellite sends it to the other member.
 *
 * Header layout (all integers big-endian):
 *   0  magic "ORCB"      4 bytes
 *   4  version           1 byte  (BATCH_VERSION)
 *   5  type              1 byte  (BATCH_DATA, BATCH_ACK or BATCH_NACK)
 *   6  codec             1 byte  (CODEC_LINES; 0 in an ack)
 *   7  flags             1 byte  (0; reserved)
 *   8  satellite id      8 bytes
 *  16  sequence number   8 bytes
 *  24  count             4 bytes (datapoints in a batch; credit in an ack)
 */
#ifndef ORCHESTER_BATCH_H
#define ORCHESTER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "line.h"

#define BATCH_HDR_LEN 28
#define BATCH_VERSION 1

/* A satellite closes a batch once its payload reaches BATCH_PAYLOAD_BYTES,
 * so a payload is shorter than that before its last line, and holds at most
 * BATCH_PAYLOAD_MAX bytes for satellites whose line limit (-M) is maxline. */
#define BATCH_PAYLOAD_BYTES 65536
#define BATCH_PAYLOAD_MAX(maxline)                                             \
    (BATCH_PAYLOAD_BYTES - 1 + LINE_CANON_MAX(maxline))

enum { BATCH_DATA = 1, BATCH_ACK = 2, BATCH_NACK = 3 };
enum {
    CODEC_LINES = 1,    /* canonical lines */
    CODEC_LINES_SRC = 2 /* canonical lines, and before the lines of each
                           client a line "\0ADDRESS\n": the address of the
                           client they came from (for `file ip` clusters) */
};

/* CODEC_LINES_SRC: the namelen fn is called with for a source line: line
 * and len are then the address (0 to CODEC_SOURCE_MAX bytes, no '\n'; 0:
 * none, a unix socket).  A batch starts with none. */
#define CODEC_SOURCE     ((size_t)-1)
#define CODEC_SOURCE_MAX 63

typedef struct {
    uint8_t type;    /* BATCH_DATA, BATCH_ACK or BATCH_NACK */
    uint8_t codec;   /* codec of the payload frame */
    uint8_t flags;   /* reserved, 0 */
    uint64_t sat_id; /* the sending satellite's id */
    uint64_t seq;    /* sequence number, per satellite, from 1 */
    uint32_t count;  /* datapoints (data) or credit in batches (ack) */
} batch_hdr_t;

/* batch_hdr_encode: write h into out (BATCH_HDR_LEN bytes). */
void batch_hdr_encode(const batch_hdr_t *h, unsigned char *out);

/* batch_hdr_decode: parse a header frame.  Returns 0, or -1 when the frame
 * has the wrong length, magic, version or type. */
int batch_hdr_decode(const void *buf, size_t len, batch_hdr_t *h);

/* One datapoint of a decoded payload: the canonical line (with its '\n')
 * and the length of its routing name (up to the first ' ' or ';'); or,
 * with namelen CODEC_SOURCE, the address of the client the next
 * datapoints came from. */
typedef int (*codec_point_fn)(void *arg, const char *line, size_t len,
                              size_t namelen);

/* A payload codec.  Adding a codec means adding an entry to the table in
 * batch.c; the router and the sender never look inside a payload. */
typedef struct {
    uint8_t id;       /* CODEC_* */
    const char *name; /* for logs */
    /* decode: check every datapoint of the payload and call fn for each good
     * one, in payload order; stop early if fn returns non-zero.  A
     * datapoint is good when it is exactly what a satellite whose line
     * limit (-M) is maxline writes (for the lines codec: line_check() with
     * LINE_CANON_MAX(maxline)); a bad one is skipped and counted in
     * *refused, and the datapoints after it are still delivered.  Returns
     * the number of datapoints delivered (the one fn stopped at included),
     * or -1 when the payload as a whole is malformed (for the lines codec:
     * longer than BATCH_PAYLOAD_MAX(maxline)); then nothing is delivered
     * and *refused is 0.  payload is borrowed for the call; fn's line
     * points into it.  Pure; any thread may call it. */
    long (*decode)(const void *payload, size_t len, size_t maxline,
                   codec_point_fn fn, void *arg, long *refused);
} codec_t;

/* codec_find: the codec with this id, or NULL.  Static table; borrowed. */
const codec_t *codec_find(uint8_t id);

/* batch_name_len: length of the routing name at the start of a canonical
 * line: up to the first ' ' or ';'. */
size_t batch_name_len(const char *line, size_t len);

#endif
