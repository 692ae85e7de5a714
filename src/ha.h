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
 * A heartbeat is one frame of text: "orchester-ha 1 ROLE STATE SEQ ROUTES"
 * (ROLE primary or backup, STATE as bstar_state_name, SEQ counting from 1
 * at each start, ROUTES the hash of the member's route changes, 16 hex
 * digits; a heartbeat without it is taken too).  Route changes
 * (src/routes.h) travel as "orchester-routes 1 STATE HASH\n" and the
 * routes file's text: the active member publishes them at once after each
 * change, and again (once a heartbeat at most) while the peer's heartbeats
 * carry another hash.  A member that is not active hands those of an
 * active peer to the hub (ha_on_routes), so both route alike after a
 * failover.  Anything else on the SUB is counted and ignored.
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
    uint64_t routes_hash;     /* this member's route changes */
    uint64_t peer_routes;     /* the peer's, as its heartbeat said */
    int peer_has_routes;      /* the peer's heartbeat said */
    uint64_t routes_sent;     /* route messages published */
    uint64_t routes_taken;    /* route messages of an active peer taken */
} ha_status_t;

/* The route changes of an active peer (the routes file's text, len bytes,
 * not NUL-terminated), when this member is not active and has others.  On
 * the loop. */
typedef void(ha_routes_fn)(void *arg, const char *text, size_t len);

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

/* ha_on_routes: who is told of an active peer's route changes. */
void ha_on_routes(ha_t *h, ha_routes_fn *fn, void *arg);

/* ha_set_routes: this member's route changes now (text copied; hash:
 * routes_hash), published at once when it is active.  0, or -1 when out
 * of memory (the old ones stay). */
int ha_set_routes(ha_t *h, uint64_t hash, const char *text);

/* ha_status: a snapshot. */
void ha_status(const ha_t *h, ha_status_t *out);

#endif
