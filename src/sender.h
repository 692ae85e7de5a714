/*
 * sender.h -- the sender thread: every destination of the config.
 *
 * I/O shell.  It receives routed chunks from the router thread over an
 * inproc PULL socket (one message per input batch: a frame of
 * {destination id, datapoints} pairs, then one frame of lines per pair),
 * queues each chunk at its destination (src/dest.c), and reports counter
 * snapshots every second on the stats pipe.
 *
 * Backpressure: when a chunk does not fit in the queue of a destination that
 * is up, the sender stops taking messages (so the router stops
 * acknowledging, and satellites stop reading their clients) for at most
 * stall_ms while that destination writes.  A destination that is down
 * drops its oldest data instead.  One that did not make room in time drops
 * too, and does not hold back intake again until its queue is below half.
 *
 * The messages it takes and sends are those of src/msg.h: MSG_ROUTED chunks
 * and MSG_SWITCH (a reload) from the hub; MSG_DEST_STATE the moment a
 * destination goes up or down, a MSG_STATS_SENDER snapshot every second and
 * MSG_RETIRED when an old generation is no longer used, to the hub.  Drops
 * are logged with their count, at most once per 10 s per destination.
 *
 * MSG_DRAIN starts the shutdown: the sender writes what it can for at most
 * drain_ms, then its run returns.
 */
#ifndef ORCHESTER_SENDER_H
#define ORCHESTER_SENDER_H

#include "dest.h"
#include "router.h"
#include "spill.h"

typedef struct {
    dest_opts_t dest;        /* per-destination options */
    spill_opts_t spill;      /* the Redis buffer's (when configured) */
    int stall_ms;            /* longest hold-back for a full live queue (250) */
    int drain_ms;            /* longest drain on shutdown (10000) */
    const char *in_endpoint; /* PULL binds here */
    const char *ctl_endpoint;   /* PAIR connects here (commands) */
    const char *stats_endpoint; /* PUSH connects here */
} sender_opts_t;

typedef struct sender sender_t;

/* sender_opts_default: defaults above, endpoints NULL. */
void sender_opts_default(sender_opts_t *o);

/* sender_new: one writer per destination of r (generation 0, borrowed; it
 * outlives the sender).  Endpoint strings are copied.  NULL with err on
 * failure. */
sender_t *sender_new(void *zctx, const router_t *r, const sender_opts_t *o,
                     char *err, size_t errlen);

/* sender_run: the thread body; returns after a DRAIN completes or a STOP
 * arrives on the control pipe. */
int sender_run(sender_t *s);

/* sender_destroy: free *s (after the thread was joined), set it NULL. */
void sender_destroy(sender_t **s);

#endif
