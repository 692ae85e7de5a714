/*
 * ha.h -- one member of an HA pair: the binary-star state machine
 * (src/bstar.c) fed by the peer's heartbeats, on the hub thread's loop.
 *
 * I/O shell.  It binds a PUB on the `ha ... publish` endpoint and publishes
 * this member's state every heartbeat and at once when it changes; it
 * connects a SUB to the peer's publish endpoint and turns each heartbeat
 * into a PEER_* event (which also refreshes the peer's expiry).  A tick per
 * heartbeat drives the automatic failback.  The hub asks ha_vote for every
 * satellite batch (the client vote): a member that is not active takes the
 * batch only when the vote makes it active (the peer expired); otherwise
 * the batch is not acknowledged, and the satellite turns to the other
 * member.
 *
 * A heartbeat is one frame of text: "orchester-ha 1 ROLE STATE SEQ" (ROLE
 * primary or backup, STATE as bstar_state_name, SEQ counting from 1 at each
 * start).  Anything else on the SUB is counted and ignored.
 *
 * Ownership: the ha_t owns its sockets, watchers and timer; it borrows the
 * loop and the configuration strings only while ha_new runs (copied).
 */
#ifndef ORCHESTER_HA_H
#define ORCHESTER_HA_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "bstar.h"
#include "config.h"
#include "curve.h"

typedef struct ha ha_t;

/* The state changed (from, to): for the hub to tell the sender (only the
 * active member replays the shared buffer).  On the loop. */
typedef void(ha_change_fn)(void *arg, bstar_state_t from, bstar_state_t to);

/* What `orchester-ctl ha` and the self metrics show. */
typedef struct {
    int backup;               /* the configured role is backup */
    bstar_state_t state;      /* this member's */
    bstar_state_t peer_state; /* as last heard (0: never) */
    int64_t peer_age_ms;      /* since the last heartbeat (-1: never) */
    int peer_alive;           /* heard within the expiry */
    uint64_t failovers;       /* times this member went active after it
                                 had been passive (took over) */
    uint64_t refused;         /* batches not acknowledged: not active */
    uint64_t heartbeats;      /* heartbeats heard */
    uint64_t bad;             /* messages on the SUB that were not one */
    uint64_t peer_seq;        /* the last heartbeat's number */
} ha_status_t;

/* ha_new: a member as cfg says (role, endpoints, heartbeat, failback),
 * sockets in zctx, timers on loop; with curve (NULL or not on: none) the
 * PUB is a CURVE server and the SUB its peer's client (the members share a
 * key pair).  NULL with a message in err. */
ha_t *ha_new(void *zctx, struct ev_loop *loop, const config_ha_t *cfg,
             const curve_conf_t *curve, ha_change_fn *fn, void *arg, char *err,
             size_t errlen);

/* ha_destroy: close, free *h, set it to NULL; safe on NULL. */
void ha_destroy(ha_t **h);

/* ha_start / ha_stop: the heartbeat timer and the SUB watcher. */
void ha_start(ha_t *h);
void ha_stop(ha_t *h);

/* ha_vote: a satellite batch arrived.  Returns 1 when it may be routed
 * and acknowledged (this member is active, or became active by this
 * vote), 0 when not (counted in refused). */
int ha_vote(ha_t *h);

/* ha_active: whether this member is active now. */
int ha_active(const ha_t *h);

/* ha_failback: `orchester-ctl ha failback`.  Returns 0 with "ok ..." in
 * msg, or -1 with "error ..." (the machine's reason). */
int ha_failback(ha_t *h, char *msg, size_t len);

/* ha_status: a snapshot. */
void ha_status(const ha_t *h, ha_status_t *out);

#endif
