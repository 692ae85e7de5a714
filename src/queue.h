/*
 * queue.h -- a bounded queue of line chunks for one destination.
 *
 * Pure core (no I/O).  The sender (src/sender.c) pushes the chunks the router
 * made for a destination, the destination writer (src/dest.c) takes iovecs
 * from the head and reports what the socket took.  The bound is in
 * datapoints; when a push would pass it, whole chunks are dropped from the
 * oldest end and counted (never the chunk that is half written, so the
 * stream stays line-aligned).
 *
 * Ownership: a chunk's bytes stay owned by the pusher until the queue calls
 * the chunk's release function (once, when the chunk is written, dropped or
 * the queue destroyed).
 */
#ifndef ORCHESTER_QUEUE_H
#define ORCHESTER_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct queue queue_t;

/* Releases a chunk's bytes; owner is what was passed to queue_push. */
typedef void(queue_release_fn)(void *owner);

/* queue_new: an empty queue bounded at cap datapoints (cap >= 1). */
queue_t *queue_new(uint64_t cap);

/* queue_destroy: release every chunk, free *q, set it to NULL. */
void queue_destroy(queue_t **q);

/* queue_push: append a chunk of `lines` complete lines (len bytes, ending in
 * '\n').  Returns the number of datapoints dropped to make room.  On
 * allocation failure the new chunk itself is released and its lines are
 * returned as dropped. */
uint64_t queue_push(queue_t *q, const char *data, size_t len, uint32_t lines,
                    queue_release_fn *release, void *owner);

/* queue_room: whether `lines` more datapoints fit without dropping. */
int queue_room(const queue_t *q, uint64_t lines);

/* queue_lines / queue_bytes: what is queued (unsent bytes only). */
uint64_t queue_lines(const queue_t *q);
size_t queue_bytes(const queue_t *q);
uint64_t queue_cap(const queue_t *q);

/* queue_iov: fill up to max iovecs (at most max_bytes in all) from the head.
 * Returns the count. */
int queue_iov(const queue_t *q, struct iovec *iov, int max, size_t max_bytes);

/* queue_consume: n bytes were written.  Returns the datapoints of the
 * chunks that were completed (released) by it. */
uint64_t queue_consume(queue_t *q, size_t n);

/* queue_rewind: the connection was lost; move the head back to the start of
 * the line it was in the middle of (whole != 0: to the start of the chunk,
 * for chunks of binary frames), so the next connection gets whole lines or
 * frames (what was half sent may be sent twice). */
void queue_rewind(queue_t *q, int whole);

/* queue_clear: drop everything; returns the datapoints dropped. */
uint64_t queue_clear(queue_t *q);

#endif
