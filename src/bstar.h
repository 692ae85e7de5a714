/*
 * bstar.h -- the binary-star state machine of an orchester HA pair.
 *
 * Pure core: no I/O, no clock reads, no allocation.  The caller passes the
 * time (monotonic milliseconds, src/clock.h) with every event.  The hub
 * thread is to own it (the HA pair's sockets are planned there, see
 * docs/architecture.rst): it feeds the machine the peer's heartbeats (each
 * carries the state the peer is in), the client votes (a satellite batch
 * arriving at this member), `orchester-ctl ha failback`, and a tick per
 * heartbeat; it acknowledges batches only while bstar_accepts() says so, and
 * publishes this member's state every heartbeat and at once when it changed.
 *
 * A member is configured primary or backup (bstar_opts_t.backup).  It starts
 * in the state of its role (PRIMARY or BACKUP) and goes on to ACTIVE or
 * PASSIVE; only ACTIVE acknowledges batches.  "Alive" below means the peer
 * was heard less than expiry_ms ago (bstar_peer_alive); a member that has
 * just started counts its peer alive for one expiry_ms, so it never votes
 * itself active before it could have heard an active peer.
 *
 * The transitions (role: the configured role of this member; "same role":
 * the peer announces PRIMARY while this member is the configured primary,
 * or BACKUP while it is the configured backup, i.e. both members were
 * configured alike):
 *
 *   state    event           result
 *   PRIMARY  PEER_PRIMARY    reject: same role (misconfiguration)
 *   PRIMARY  PEER_BACKUP     ACTIVE
 *   PRIMARY  PEER_ACTIVE     PASSIVE
 *   PRIMARY  PEER_PASSIVE    PRIMARY (the passive backup goes ACTIVE on
 *                            this member's PRIMARY heartbeat)
 *   PRIMARY  CLIENT_REQUEST  ACTIVE once the peer has expired, else reject
 *   PRIMARY  FAILBACK        reject: not active
 *   PRIMARY  TICK            PRIMARY
 *   BACKUP   PEER_PRIMARY    BACKUP (the primary goes ACTIVE on this
 *                            member's BACKUP heartbeat)
 *   BACKUP   PEER_BACKUP     reject: same role (misconfiguration)
 *   BACKUP   PEER_ACTIVE     PASSIVE
 *   BACKUP   PEER_PASSIVE    BACKUP (the passive primary goes ACTIVE on
 *                            this member's BACKUP heartbeat)
 *   BACKUP   CLIENT_REQUEST  reject, alive or not: a backup never takes over
 *                            before it has heard the primary
 *   BACKUP   FAILBACK        reject: not active
 *   BACKUP   TICK            BACKUP
 *   ACTIVE   PEER_PRIMARY    ACTIVE (the restarted primary goes PASSIVE);
 *                            reject (and stay ACTIVE) if same role
 *   ACTIVE   PEER_BACKUP     ACTIVE (the restarted backup goes PASSIVE);
 *                            reject (and stay ACTIVE) if same role
 *   ACTIVE   PEER_ACTIVE     split brain healed: the backup goes PASSIVE,
 *                            the primary stays ACTIVE (never both out)
 *   ACTIVE   PEER_PASSIVE    ACTIVE
 *   ACTIVE   CLIENT_REQUEST  ACTIVE
 *   ACTIVE   FAILBACK        backup, with the primary alive and heard
 *                            PASSIVE: PASSIVE; otherwise reject
 *   ACTIVE   TICK            backup with failback_ms > 0, the primary alive
 *                            and heard PASSIVE without a break for at least
 *                            failback_ms: PASSIVE (automatic failback);
 *                            otherwise ACTIVE
 *   PASSIVE  PEER_PRIMARY    ACTIVE (the primary restarted); reject (and
 *                            stay PASSIVE) if same role
 *   PASSIVE  PEER_BACKUP     ACTIVE (the backup restarted); reject (and
 *                            stay PASSIVE) if same role
 *   PASSIVE  PEER_ACTIVE     PASSIVE
 *   PASSIVE  PEER_PASSIVE    primary: ACTIVE (the backup failed back, or
 *                            nobody serves); backup: PASSIVE
 *   PASSIVE  CLIENT_REQUEST  ACTIVE once the peer has expired, else reject
 *   PASSIVE  FAILBACK        reject: not active
 *   PASSIVE  TICK            PASSIVE
 *
 * Failback (by hand, or automatic with failback_ms > 0): the active backup
 * goes PASSIVE first and stops acknowledging; its PASSIVE heartbeat makes
 * the passive primary ACTIVE (PASSIVE + PEER_PASSIVE); the backup then hears
 * PEER_ACTIVE and stays PASSIVE.  The primary becomes active only after the
 * backup has stopped, so there are never two actives; no member is active
 * for the time that heartbeat takes to arrive (the network's latency when
 * the change is published at once, one heartbeat more otherwise).
 *
 * Limits: a lone backup never becomes active (it must hear the primary
 * once).  A heartbeat announcing ACTIVE or PASSIVE does not say the peer's
 * role, so a pair configured alike is caught only while a member announces
 * PRIMARY or BACKUP; should two members both configured primary go active
 * in a split, neither gives way when it heals.
 *
 * Thread: the hub's.  A bstar_t is a plain value owned by its caller.
 */
#ifndef ORCHESTER_BSTAR_H
#define ORCHESTER_BSTAR_H

#include <stdint.h>

/* The state of a member.  PRIMARY and BACKUP: started in that role, not
 * yet active or passive (the backup waits for an active primary). */
typedef enum {
    BSTAR_PRIMARY = 1, /* the configured primary, starting */
    BSTAR_BACKUP,      /* the configured backup, starting */
    BSTAR_ACTIVE,      /* acknowledges batches */
    BSTAR_PASSIVE      /* stands by; acknowledges nothing */
} bstar_state_t;

/* What happens to a member.  A PEER_* event is a heartbeat of the peer,
 * carrying the state the peer is in (the same order as bstar_state_t). */
typedef enum {
    BSTAR_PEER_PRIMARY = 1, /* the peer is in PRIMARY */
    BSTAR_PEER_BACKUP,      /* the peer is in BACKUP */
    BSTAR_PEER_ACTIVE,      /* the peer is in ACTIVE */
    BSTAR_PEER_PASSIVE,     /* the peer is in PASSIVE */
    BSTAR_CLIENT_REQUEST,   /* a satellite batch arrived (the client vote) */
    BSTAR_FAILBACK,         /* orchester-ctl ha failback */
    BSTAR_TICK              /* time passes: automatic failback */
} bstar_event_t;

/* The configuration of a member (from the `ha` statement). */
typedef struct {
    int backup;           /* this member is the configured backup (else
                             the primary) */
    int64_t heartbeat_ms; /* heartbeat interval (the caller's timer) */
    int64_t expiry_ms;    /* the peer expires after this much silence */
    int64_t failback_ms;  /* 0: failback by hand only; else automatic
                             failback once the primary has been heard
                             PASSIVE this long without a break */
} bstar_opts_t;

/* The whole state of a member.  The caller owns it; bstar_event changes it.
 * Every field may be read. */
typedef struct {
    bstar_state_t state;      /* this member's state */
    bstar_state_t peer_state; /* what the peer last announced (0: never
                                 heard) */
    int64_t peer_seen;        /* when it was heard last (if peer_state) */
    int64_t peer_expiry;      /* from then on the peer counts as gone */
    int64_t passive_since;    /* since when the peer has been heard PASSIVE
                                 without a break (if peer_state is
                                 PASSIVE) */
    int changed;              /* the last bstar_event changed state */
    const char *err;          /* why the last bstar_event was rejected
                                 (static text), or NULL */
} bstar_t;

/* bstar_opts_default: a primary with a heartbeat of 1000 ms, an expiry of
 * 2 heartbeats and failback by hand. */
void bstar_opts_default(bstar_opts_t *o);

/* bstar_opts_check: 0 if o is usable (heartbeat_ms >= 1, expiry_ms greater
 * than heartbeat_ms so that the peer does not expire between two
 * heartbeats, failback_ms >= 0), else -1 with *err (static text, if err is
 * not NULL) saying why. */
int bstar_opts_check(const bstar_opts_t *o, const char **err);

/* bstar_init: a member that starts at now_ms: PRIMARY or BACKUP by its
 * role, the peer unheard and counted alive until now_ms + expiry_ms. */
void bstar_init(bstar_t *b, const bstar_opts_t *o, int64_t now_ms);

/* bstar_event: apply ev at now_ms (the table above).  Returns 0 when the
 * event is accepted: b->state is the new state, b->changed says whether it
 * differs from the old one, b->err is NULL.  Returns -1 when it is
 * rejected: b->state is unchanged, b->changed is 0 and b->err says why
 * (for a CLIENT_REQUEST: the batch must not be acknowledged; for a peer
 * event: the pair is misconfigured; for FAILBACK: the command is refused).
 * Either way a peer event first records the heartbeat: peer_state,
 * peer_seen, passive_since, and peer_expiry = now_ms + expiry_ms.  An
 * event out of range is rejected and changes nothing else. */
int bstar_event(bstar_t *b, const bstar_opts_t *o, bstar_event_t ev,
                int64_t now_ms);

/* bstar_accepts: whether batches may be acknowledged (only in ACTIVE). */
int bstar_accepts(const bstar_t *b);

/* bstar_peer_alive: whether the peer counts as alive at now_ms: heard less
 * than expiry_ms ago (or, never heard, less than expiry_ms after
 * bstar_init).  At now_ms == peer_expiry it has expired. */
int bstar_peer_alive(const bstar_t *b, int64_t now_ms);

/* bstar_state_name: "primary", "backup", "active", "passive", or "unknown"
 * (static text). */
const char *bstar_state_name(bstar_state_t s);

/* bstar_event_name: "peer-primary", "peer-backup", "peer-active",
 * "peer-passive", "client-request", "failback", "tick", or "unknown"
 * (static text). */
const char *bstar_event_name(bstar_event_t ev);

#endif
