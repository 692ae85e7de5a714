/*
 * bstar.c -- see bstar.h.  One function per kind of event; each returns
 * through s_go (accepted) or s_reject (rejected), so b->changed and b->err
 * are always those of the last event.
 */
#include "bstar.h"

#include <stddef.h>

void bstar_opts_default(bstar_opts_t *o)
{
    *o = (bstar_opts_t){
        .backup = 0, .heartbeat_ms = 1000, .expiry_ms = 2000, .failback_ms = 0};
}

int bstar_opts_check(const bstar_opts_t *o, const char **err)
{
    const char *why = NULL;
    if (o->heartbeat_ms < 1)
        why = "the heartbeat must be at least 1 ms";
    else if (o->expiry_ms <= o->heartbeat_ms)
        why = "the peer's expiry must be longer than a heartbeat";
    else if (o->failback_ms < 0)
        why = "the failback time must not be negative";
    if (err != NULL)
        *err = why;
    return why == NULL ? 0 : -1;
}

void bstar_init(bstar_t *b, const bstar_opts_t *o, int64_t now_ms)
{
    *b = (bstar_t){.state = o->backup ? BSTAR_BACKUP : BSTAR_PRIMARY,
                   .peer_expiry = now_ms + o->expiry_ms};
}

int bstar_accepts(const bstar_t *b)
{
    return b->state == BSTAR_ACTIVE;
}

int bstar_peer_alive(const bstar_t *b, int64_t now_ms)
{
    return now_ms < b->peer_expiry;
}

/* Accept the event: the state becomes s. */
static int s_go(bstar_t *b, bstar_state_t s)
{
    b->changed = s != b->state;
    b->state = s;
    b->err = NULL;
    return 0;
}

/* Reject the event, the state unchanged, for the reason why. */
static int s_reject(bstar_t *b, const char *why)
{
    b->changed = 0;
    b->err = why;
    return -1;
}

/* Record a heartbeat of the peer, which is in state ps, at now_ms.  The
 * peer has been passive without a break if its last heartbeat said so and
 * it did not expire since. */
static void s_heard(bstar_t *b, const bstar_opts_t *o, bstar_state_t ps,
                    int64_t now_ms)
{
    if (ps == BSTAR_PASSIVE &&
        (b->peer_state != BSTAR_PASSIVE || !bstar_peer_alive(b, now_ms)))
        b->passive_since = now_ms;
    b->peer_state = ps;
    b->peer_seen = now_ms;
    b->peer_expiry = now_ms + o->expiry_ms;
}

/* A heartbeat of the peer, which is in state ps (already recorded). */
static int s_peer(bstar_t *b, const bstar_opts_t *o, bstar_state_t ps)
{
    if (!o->backup && ps == BSTAR_PRIMARY)
        return s_reject(b, "the peer is configured primary too: "
                           "one member of the pair must be the backup");
    if (o->backup && ps == BSTAR_BACKUP)
        return s_reject(b, "the peer is configured backup too: "
                           "one member of the pair must be the primary");
    switch (b->state) {
    case BSTAR_PRIMARY:
        /* PEER_PASSIVE: the backup goes active on our PRIMARY heartbeat,
         * then PEER_ACTIVE makes us passive */
        if (ps == BSTAR_BACKUP)
            return s_go(b, BSTAR_ACTIVE);
        if (ps == BSTAR_ACTIVE)
            return s_go(b, BSTAR_PASSIVE);
        return s_go(b, b->state);
    case BSTAR_BACKUP:
        /* PEER_PRIMARY, PEER_PASSIVE: the primary goes active on our
         * BACKUP heartbeat */
        if (ps == BSTAR_ACTIVE)
            return s_go(b, BSTAR_PASSIVE);
        return s_go(b, b->state);
    case BSTAR_ACTIVE:
        /* split brain: the backup gives way, the primary never does */
        if (ps == BSTAR_ACTIVE && o->backup)
            return s_go(b, BSTAR_PASSIVE);
        return s_go(b, b->state);
    case BSTAR_PASSIVE:
        /* the peer restarted; or both are passive (the backup failed
         * back): the primary takes over */
        if (ps == BSTAR_PRIMARY || ps == BSTAR_BACKUP)
            return s_go(b, BSTAR_ACTIVE);
        if (ps == BSTAR_PASSIVE && !o->backup)
            return s_go(b, BSTAR_ACTIVE);
        return s_go(b, b->state);
    }
    return s_reject(b, "this member's state is out of range");
}

/* A satellite batch arrived: the client vote. */
static int s_client(bstar_t *b, int64_t now_ms)
{
    switch (b->state) {
    case BSTAR_ACTIVE: return s_go(b, b->state);
    case BSTAR_BACKUP:
        return s_reject(b, "the backup takes no batch before it has heard "
                           "the primary");
    case BSTAR_PRIMARY:
    case BSTAR_PASSIVE:
        if (bstar_peer_alive(b, now_ms))
            return s_reject(b, "not active, and the peer is alive");
        return s_go(b, BSTAR_ACTIVE);
    }
    return s_reject(b, "this member's state is out of range");
}

/* Whether the primary (the peer of this backup) is alive and passive. */
static int s_primary_passive(const bstar_t *b, int64_t now_ms)
{
    return bstar_peer_alive(b, now_ms) && b->peer_state == BSTAR_PASSIVE;
}

/* orchester-ctl ha failback. */
static int s_failback(bstar_t *b, const bstar_opts_t *o, int64_t now_ms)
{
    if (!o->backup)
        return s_reject(b, "failback: this member is the primary");
    if (b->state != BSTAR_ACTIVE)
        return s_reject(b, "failback: this member is not active");
    if (!bstar_peer_alive(b, now_ms))
        return s_reject(b, "failback: the primary is not alive");
    if (!s_primary_passive(b, now_ms))
        return s_reject(b, "failback: the primary is not passive");
    return s_go(b, BSTAR_PASSIVE);
}

/* Time passes: the automatic failback, if configured and due. */
static int s_tick(bstar_t *b, const bstar_opts_t *o, int64_t now_ms)
{
    if (o->backup && o->failback_ms > 0 && b->state == BSTAR_ACTIVE &&
        s_primary_passive(b, now_ms) &&
        now_ms - b->passive_since >= o->failback_ms)
        return s_go(b, BSTAR_PASSIVE);
    return s_go(b, b->state);
}

int bstar_event(bstar_t *b, const bstar_opts_t *o, bstar_event_t ev,
                int64_t now_ms)
{
    switch (ev) {
    case BSTAR_PEER_PRIMARY:
    case BSTAR_PEER_BACKUP:
    case BSTAR_PEER_ACTIVE:
    case BSTAR_PEER_PASSIVE: {
        /* the PEER_* events are in the order of the states */
        bstar_state_t ps =
            (bstar_state_t)(BSTAR_PRIMARY + (ev - BSTAR_PEER_PRIMARY));
        s_heard(b, o, ps, now_ms);
        return s_peer(b, o, ps);
    }
    case BSTAR_CLIENT_REQUEST: return s_client(b, now_ms);
    case BSTAR_FAILBACK: return s_failback(b, o, now_ms);
    case BSTAR_TICK: return s_tick(b, o, now_ms);
    }
    return s_reject(b, "event out of range");
}

const char *bstar_state_name(bstar_state_t s)
{
    switch (s) {
    case BSTAR_PRIMARY: return "primary";
    case BSTAR_BACKUP: return "backup";
    case BSTAR_ACTIVE: return "active";
    case BSTAR_PASSIVE: return "passive";
    }
    return "unknown";
}

const char *bstar_event_name(bstar_event_t ev)
{
    switch (ev) {
    case BSTAR_PEER_PRIMARY: return "peer-primary";
    case BSTAR_PEER_BACKUP: return "peer-backup";
    case BSTAR_PEER_ACTIVE: return "peer-active";
    case BSTAR_PEER_PASSIVE: return "peer-passive";
    case BSTAR_CLIENT_REQUEST: return "client-request";
    case BSTAR_FAILBACK: return "failback";
    case BSTAR_TICK: return "tick";
    }
    return "unknown";
}
