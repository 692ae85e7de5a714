/*
 * zwatch.h -- a zmq socket in a libev loop.
 *
 * ZMQ_FD is edge-triggered and also fires for writability changes, so
 * reading only from an ev_io callback loses wake-ups.  A zwatch keeps an
 * ev_io on ZMQ_FD, re-reads ZMQ_EVENTS before the loop blocks (ev_prepare),
 * and drains through an ev_idle in bounded steps, so one busy socket never
 * starves the rest of the loop.  Used by every thread that owns a zmq socket.
 */
#ifndef ORCHESTER_ZWATCH_H
#define ORCHESTER_ZWATCH_H

#include <ev.h>

typedef struct zwatch zwatch_t;

/* Called when the socket has a message.  The callback must receive exactly
 * one whole message (non-blocking) or pause the watch.  It runs on the
 * loop's thread.  It may call zwatch_stop() but must not destroy the
 * watch. */
typedef void(zwatch_fn)(zwatch_t *w, void *sock, void *arg);

/* zwatch_new: watch sock (borrowed; the caller closes it after destroying
 * the watch) in loop, calling fn(w, sock, arg) per message, at most burst
 * messages per loop iteration.  Starts stopped.  Returns NULL on failure. */
zwatch_t *zwatch_new(struct ev_loop *loop, void *sock, int burst, zwatch_fn *fn,
                     void *arg);

/* zwatch_start / zwatch_stop: resume or pause delivery (backpressure). */
void zwatch_start(zwatch_t *w);
void zwatch_stop(zwatch_t *w);

/* zwatch_destroy: stop and free *w, set it to NULL.  Safe on NULL. */
void zwatch_destroy(zwatch_t **w);

#endif
