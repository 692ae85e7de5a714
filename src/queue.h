/*
 * queue.h -- a bounded queue of line chunks for one destination.
 *
 * Pure core (no I/O).  The sender (src/sender.c) pushes the chunks the router
 * made for a destination, the destination writer (src/dest.c) takes iovecs
 * from the head, reports what the socket took (queue_wrote), and later what
 * the peer acknowledged (queue_delivered).  A chunk stays queued until it is
 * delivered: when a connection breaks, what was written and not delivered
 * is written again on the next one (queue_rewind).  The bound is in
 * datapoints not written yet (those in flight are held besides, as many as
 * the socket's send buffer takes); when a push would pass it, the oldest
 * chunks nothing of which was written are dropped and counted (never one
 * in flight or half written, so the stream stays line-aligned).
 *
 * A chunk pushed with QUEUE_KEEP (a critical chunk) is never dropped to make
 * room: it counts against the bound, so ordinary chunks make way for it,
 * and it leaves the queue only delivered, taken back (queue_take_kept, to
 * be kept elsewhere while the connection is down) or at queue_clear.
 *
 * Ownership: a chunk's bytes stay owned by the pusher until the queue calls
 * the chunk's release function (once, when the chunk is delivered, dropped
 * or the queue destroyed), or hands the chunk back (queue_take_kept).
 */
#ifndef ORCHESTER_QUEUE_H
#define ORCHESTER_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct queue queue_t;

/* Releases a chunk's bytes; owner is what was passed to queue_push.
 * delivered: 1 when the chunk left the queue delivered (the peer
 * acknowledged every byte, or a file or UDP socket took it), 0 when it was
 * dropped or the queue destroyed. */
typedef void(queue_release_fn)(void *owner, int delivered);

/* Takes a kept chunk back (queue_take_kept): the callee owns owner now
 * (the queue will not release it); the bytes from off on, `lines` complete
 * lines, were not delivered. */
typedef void(queue_take_fn)(void *arg, void *owner, size_t off, uint32_t lines);

enum { QUEUE_KEEP = 1 };

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

/* queue_push_flags: queue_push with flags (QUEUE_KEEP or 0). */
uint64_t queue_push_flags(queue_t *q, const char *data, size_t len,
                          uint32_t lines, unsigned flags,
                          queue_release_fn *release, void *owner);

/* queue_kept_lines: datapoints queued in kept chunks. */
uint64_t queue_kept_lines(const queue_t *q);

/* queue_take_kept: hand every kept chunk back to fn, oldest first, and
 * remove it from the queue.  Only while nothing is in flight (after
 * queue_rewind): a chunk whose first part was delivered is handed back
 * with off at the end of that part.  Returns the datapoints handed
 * back. */
uint64_t queue_take_kept(queue_t *q, queue_take_fn *fn, void *arg);

/* queue_room: whether `lines` more datapoints fit without dropping (those
 * in flight do not count against the bound). */
int queue_room(const queue_t *q, uint64_t lines);

/* queue_lines: datapoints queued, those in flight included;
 * queue_inflight_lines: those in chunks written to their end and not
 * delivered.  queue_bytes: bytes not written yet.  queue_inflight: bytes
 * written and not delivered. */
uint64_t queue_lines(const queue_t *q);
uint64_t queue_inflight_lines(const queue_t *q);
size_t queue_bytes(const queue_t *q);
size_t queue_inflight(const queue_t *q);
uint64_t queue_cap(const queue_t *q);

/* queue_iov: fill up to max iovecs (at most max_bytes in all) with the bytes
 * not written yet, oldest first.  Returns the count. */
int queue_iov(const queue_t *q, struct iovec *iov, int max, size_t max_bytes);

/* queue_wrote: n more bytes (of what queue_iov offered) were written. */
void queue_wrote(queue_t *q, size_t n);

/* queue_delivered: the oldest n bytes in flight were delivered (the peer
 * acknowledged them).  Returns the datapoints of the chunks that were
 * completed (released) by it. */
uint64_t queue_delivered(queue_t *q, size_t n);

/* queue_consume: n bytes were written and count as delivered at once (UDP,
 * files, where there is no acknowledgement to wait for).  Returns as
 * queue_delivered. */
uint64_t queue_consume(queue_t *q, size_t n);

/* queue_rewind: the connection was lost; everything written and not
 * delivered is to be written again, from the start of the line the
 * delivered part ended in (whole != 0: from the start of that chunk, for
 * chunks of binary frames), so the next connection gets whole lines or
 * frames (what was sent before the loss may be sent twice). */
void queue_rewind(queue_t *q, int whole);

/* queue_clear: drop everything; returns the datapoints dropped. */
uint64_t queue_clear(queue_t *q);

#endif
