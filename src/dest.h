/*
 * dest.h -- one destination writer: a carbon backend over TCP, or a file.
 *
 * I/O shell around a queue (src/queue.c).  Runs on the sender thread's loop.
 * A TCP destination resolves its member's name off the loop (src/resolver.c;
 * a numeric address needs no lookup, and the last good answer serves while
 * a new lookup is pending or failing), connects without blocking, writes its
 * queue with writev, notices a closed peer at once (it watches the socket
 * for EOF), and reconnects with exponential backoff and jitter; only a
 * connection that held for stable_ms resets the backoff.  Failures are
 * logged once, then at most once per log_interval_ms, with a count of those
 * not logged.
 * A file destination appends to its file (opened with O_APPEND, re-opened
 * after an error).  It never blocks the loop; a dead or slow destination
 * only fills its own queue, which drops its oldest data when full.
 */
#ifndef ORCHESTER_DEST_H
#define ORCHESTER_DEST_H

#include <ev.h>
#include <stdint.h>

#include "queue.h"
#include "router.h"
#include "stats.h"

typedef struct {
    uint64_t queue_cap;     /* datapoints (100000) */
    int backoff_min_ms;     /* first reconnect delay (100) */
    int backoff_max_ms;     /* longest reconnect delay (5000) */
    int connect_timeout_ms; /* give up a connect after (3000) */
    size_t write_bytes;     /* most bytes per writev (1 MiB) */
    int resolve_timeout_ms; /* give up waiting for a first answer (5000) */
    int stable_ms;          /* a connection held this long resets the
                               backoff and the log interval (5000) */
    int log_interval_ms;    /* at most one failure line per (60000) */
    int user_timeout_ms;    /* TCP: written data unacknowledged this long
                               ends the connection (10000) */
    int ack_poll_ms;        /* TCP: how often to ask the kernel what was
                               acknowledged while bytes are in flight (200) */
    const char *tls_ca;     /* -C: the CA that verifies TLS members
                               (borrowed: it outlives the destinations), or
                               NULL: the system's */
    int tls_handshake_ms;   /* a TLS handshake must end within (10000) */
} dest_opts_t;

typedef struct dest dest_t;

/* Called after the destination wrote something (its queue has room again)
 * and on every up/down transition.  Runs on the loop; must not destroy the
 * dest. */
typedef void(dest_event_fn)(void *arg, dest_t *d);

/* dest_opts_default: fill o with the defaults above. */
void dest_opts_default(dest_opts_t *o);

/* dest_new: a writer for rd (borrowed; the router outlives it).  Starts
 * connecting at once; a name is looked up on a thread of its own, never on
 * the caller's.  Returns NULL on allocation failure.  The loop's thread. */
dest_t *dest_new(struct ev_loop *loop, const router_dest_t *rd,
                 const dest_opts_t *o, dest_event_fn *fn, void *arg);

/* dest_destroy: close, release the queue, free *d, set it to NULL.  A
 * lookup of the member's name still in flight is abandoned, not waited
 * for. */
void dest_destroy(dest_t **d);

/* dest_push: queue a chunk (see queue_push for ownership; flags:
 * QUEUE_KEEP or 0).  Returns the datapoints dropped to make room.  A
 * pickle member encodes the lines at once; a kept chunk keeps the lines
 * (released with its frames) so that they can be handed back. */
uint64_t dest_push(dest_t *d, const char *data, size_t len, uint32_t lines,
                   unsigned flags, queue_release_fn *release, void *owner);

/* dest_take_kept: while the destination is down, hand every kept chunk
 * back to fn (queue_take_kept), oldest first; for a pickle member, off and
 * lines are 0: the whole chunk of lines is to be sent again.  Returns the
 * datapoints handed back (0 while up). */
uint64_t dest_take_kept(dest_t *d, queue_take_fn *fn, void *arg);

/* dest_kept: datapoints queued in kept chunks.  dest_inflight_bytes:
 * bytes written and not acknowledged. */
uint64_t dest_kept(const dest_t *d);
size_t dest_inflight_bytes(const dest_t *d);

/* dest_room: whether lines more datapoints fit without dropping. */
int dest_room(const dest_t *d, uint64_t lines);

/* dest_up: connected (TCP) or open (file). */
int dest_up(const dest_t *d);

/* dest_queued: datapoints waiting. */
uint64_t dest_queued(const dest_t *d);

/* dest_stats: a snapshot of the counters. */
void dest_stats(const dest_t *d, stats_dest_t *out);

/* dest_rebind: after a reload, the destination is described by rd (of the
 * new router) and reports to fn/arg; its queue and connection stay. */
void dest_rebind(dest_t *d, const router_dest_t *rd, dest_event_fn *fn,
                 void *arg);

/* dest_abort: a TCP destination that is up closes its connection now, as
 * if it had failed (why goes to the log); what it did not deliver is
 * queued again, and its kept chunks can be taken back.  It reconnects as
 * after a failure.  Nothing for other destinations. */
void dest_abort(dest_t *d, const char *why);

/* dest_info: the router's description (borrowed). */
const router_dest_t *dest_info(const dest_t *d);

#endif
