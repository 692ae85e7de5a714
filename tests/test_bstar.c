/*
 * test_bstar.c -- unit tests of the HA pair's binary-star state machine
 * (src/bstar.c), with an injected clock: every (state, event) pair from a
 * table, scenarios of a pair's life (start, death and return of the
 * primary, failback by hand and automatic, split brain, a lone member,
 * misconfigured pairs, the clock's edges), and a simulation of two members
 * exchanging heartbeats over a network that is cut and healed, with
 * members that crash and restart and a satellite that votes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bstar.h"

#define NOW 100000 /* the time of the table's events */
#define EXP 2000   /* the default expiry */

/* The role of a member, as bstar_opts_t.backup. */
#define AS_PRIMARY 0
#define AS_BACKUP  1

/* What the peer last announced, in the table (S_NONE: never heard). */
#define S_NONE    0
#define S_PRIMARY BSTAR_PRIMARY
#define S_ACTIVE  BSTAR_ACTIVE
#define S_PASSIVE BSTAR_PASSIVE

#define OK  0
#define REJ -1

/* One row of the transition table: a member of a role, in state st, whose
 * peer is alive or not and last announced peer (heard PASSIVE for 5000 ms
 * if PASSIVE), with failback_ms fb, gets ev at NOW: bstar_event returns rc
 * and the state is res. */
typedef struct {
    int backup;         /* the role */
    bstar_state_t st;   /* the state before */
    int alive;          /* the peer is alive at NOW */
    bstar_state_t peer; /* what the peer last announced */
    int64_t fb;         /* failback_ms */
    bstar_event_t ev;   /* the event */
    int rc;             /* what bstar_event returns */
    bstar_state_t res;  /* the state after */
} row_t;

#define R(role, st, alive, peer, fb, ev, rc, res)                              \
    {                                                                          \
        AS_##role, BSTAR_##st, alive, S_##peer, fb, BSTAR_##ev, rc,            \
            BSTAR_##res                                                        \
    }

/* The base rows: every reachable (role, state) pair, every event, the peer
 * alive (1) and expired (0); the peer announced what it usually has in that
 * state (nothing yet in PRIMARY and BACKUP, PASSIVE when this member is
 * ACTIVE, ACTIVE when it is PASSIVE).  Then rows where what the peer
 * announced, or failback_ms, matters. */
static const row_t s_rows[] = {
    /* the configured primary, starting */
    R(PRIMARY, PRIMARY, 1, NONE, 0, PEER_PRIMARY, REJ, PRIMARY),
    R(PRIMARY, PRIMARY, 1, NONE, 0, PEER_BACKUP, OK, ACTIVE),
    R(PRIMARY, PRIMARY, 1, NONE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(PRIMARY, PRIMARY, 1, NONE, 0, PEER_PASSIVE, OK, PRIMARY),
    R(PRIMARY, PRIMARY, 1, NONE, 0, CLIENT_REQUEST, REJ, PRIMARY),
    R(PRIMARY, PRIMARY, 1, NONE, 0, FAILBACK, REJ, PRIMARY),
    R(PRIMARY, PRIMARY, 1, NONE, 0, TICK, OK, PRIMARY),
    R(PRIMARY, PRIMARY, 0, NONE, 0, PEER_PRIMARY, REJ, PRIMARY),
    R(PRIMARY, PRIMARY, 0, NONE, 0, PEER_BACKUP, OK, ACTIVE),
    R(PRIMARY, PRIMARY, 0, NONE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(PRIMARY, PRIMARY, 0, NONE, 0, PEER_PASSIVE, OK, PRIMARY),
    R(PRIMARY, PRIMARY, 0, NONE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(PRIMARY, PRIMARY, 0, NONE, 0, FAILBACK, REJ, PRIMARY),
    R(PRIMARY, PRIMARY, 0, NONE, 0, TICK, OK, PRIMARY),
    /* the configured primary, active */
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, PEER_PRIMARY, REJ, ACTIVE),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, PEER_BACKUP, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, PEER_ACTIVE, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, FAILBACK, REJ, ACTIVE),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 0, TICK, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, PEER_PRIMARY, REJ, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, PEER_BACKUP, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, PEER_ACTIVE, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, FAILBACK, REJ, ACTIVE),
    R(PRIMARY, ACTIVE, 0, PASSIVE, 0, TICK, OK, ACTIVE),
    /* the configured primary, passive */
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, PEER_PRIMARY, REJ, PASSIVE),
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, PEER_BACKUP, OK, ACTIVE),
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, CLIENT_REQUEST, REJ, PASSIVE),
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, FAILBACK, REJ, PASSIVE),
    R(PRIMARY, PASSIVE, 1, ACTIVE, 0, TICK, OK, PASSIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, PEER_PRIMARY, REJ, PASSIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, PEER_BACKUP, OK, ACTIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, FAILBACK, REJ, PASSIVE),
    R(PRIMARY, PASSIVE, 0, ACTIVE, 0, TICK, OK, PASSIVE),
    /* the configured backup, starting */
    R(BACKUP, BACKUP, 1, NONE, 0, PEER_PRIMARY, OK, BACKUP),
    R(BACKUP, BACKUP, 1, NONE, 0, PEER_BACKUP, REJ, BACKUP),
    R(BACKUP, BACKUP, 1, NONE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(BACKUP, BACKUP, 1, NONE, 0, PEER_PASSIVE, OK, BACKUP),
    R(BACKUP, BACKUP, 1, NONE, 0, CLIENT_REQUEST, REJ, BACKUP),
    R(BACKUP, BACKUP, 1, NONE, 0, FAILBACK, REJ, BACKUP),
    R(BACKUP, BACKUP, 1, NONE, 0, TICK, OK, BACKUP),
    R(BACKUP, BACKUP, 0, NONE, 0, PEER_PRIMARY, OK, BACKUP),
    R(BACKUP, BACKUP, 0, NONE, 0, PEER_BACKUP, REJ, BACKUP),
    R(BACKUP, BACKUP, 0, NONE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(BACKUP, BACKUP, 0, NONE, 0, PEER_PASSIVE, OK, BACKUP),
    R(BACKUP, BACKUP, 0, NONE, 0, CLIENT_REQUEST, REJ, BACKUP),
    R(BACKUP, BACKUP, 0, NONE, 0, FAILBACK, REJ, BACKUP),
    R(BACKUP, BACKUP, 0, NONE, 0, TICK, OK, BACKUP),
    /* the configured backup, active */
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, PEER_PRIMARY, OK, ACTIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, PEER_BACKUP, REJ, ACTIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, FAILBACK, OK, PASSIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 0, TICK, OK, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, PEER_PRIMARY, OK, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, PEER_BACKUP, REJ, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, FAILBACK, REJ, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 0, TICK, OK, ACTIVE),
    /* the configured backup, passive */
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, PEER_PRIMARY, OK, ACTIVE),
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, PEER_BACKUP, REJ, PASSIVE),
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, PEER_PASSIVE, OK, PASSIVE),
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, CLIENT_REQUEST, REJ, PASSIVE),
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, FAILBACK, REJ, PASSIVE),
    R(BACKUP, PASSIVE, 1, ACTIVE, 0, TICK, OK, PASSIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, PEER_PRIMARY, OK, ACTIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, PEER_BACKUP, REJ, PASSIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, PEER_PASSIVE, OK, PASSIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, FAILBACK, REJ, PASSIVE),
    R(BACKUP, PASSIVE, 0, ACTIVE, 0, TICK, OK, PASSIVE),

    /* failback by hand needs the primary alive and passive */
    R(BACKUP, ACTIVE, 1, ACTIVE, 0, FAILBACK, REJ, ACTIVE),
    R(BACKUP, ACTIVE, 1, PRIMARY, 0, FAILBACK, REJ, ACTIVE),
    R(BACKUP, ACTIVE, 1, NONE, 0, FAILBACK, REJ, ACTIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 5000, FAILBACK, OK, PASSIVE),
    /* automatic failback: the primary heard passive for 5000 ms */
    R(BACKUP, ACTIVE, 1, PASSIVE, 5000, TICK, OK, PASSIVE),
    R(BACKUP, ACTIVE, 1, PASSIVE, 5001, TICK, OK, ACTIVE),
    R(BACKUP, ACTIVE, 0, PASSIVE, 5000, TICK, OK, ACTIVE),
    R(BACKUP, ACTIVE, 1, ACTIVE, 5000, TICK, OK, ACTIVE),
    R(BACKUP, ACTIVE, 1, PRIMARY, 5000, TICK, OK, ACTIVE),
    R(BACKUP, PASSIVE, 1, PASSIVE, 5000, TICK, OK, PASSIVE),
    R(BACKUP, BACKUP, 1, PASSIVE, 5000, TICK, OK, BACKUP),
    R(PRIMARY, ACTIVE, 1, PASSIVE, 5000, TICK, OK, ACTIVE),
    R(PRIMARY, PASSIVE, 1, PASSIVE, 5000, TICK, OK, PASSIVE),
    /* a vote does not care what the peer last announced */
    R(PRIMARY, PASSIVE, 1, PASSIVE, 0, CLIENT_REQUEST, REJ, PASSIVE),
    R(PRIMARY, PASSIVE, 0, PASSIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    R(BACKUP, PASSIVE, 0, PASSIVE, 0, CLIENT_REQUEST, OK, ACTIVE),
    /* nor does a heartbeat */
    R(PRIMARY, PASSIVE, 1, PASSIVE, 0, PEER_PASSIVE, OK, ACTIVE),
    R(BACKUP, ACTIVE, 1, ACTIVE, 0, PEER_ACTIVE, OK, PASSIVE),
    R(PRIMARY, ACTIVE, 1, ACTIVE, 0, PEER_ACTIVE, OK, ACTIVE),
};

#define NROWS (sizeof s_rows / sizeof s_rows[0])
#define NBASE 84 /* 2 roles x 3 states x 7 events x alive or not */

/* Put b in the state row r describes, at NOW. */
static void s_setup(bstar_t *b, bstar_opts_t *o, const row_t *r)
{
    bstar_opts_default(o);
    o->backup = r->backup;
    o->failback_ms = r->fb;
    bstar_init(b, o, NOW - 10 * EXP);
    b->state = r->st;
    b->peer_state = r->peer;
    /* alive: heard 500 ms ago (or, never heard, started 500 ms ago);
     * expired: heard (started) exactly EXP ago */
    b->peer_expiry = r->alive ? NOW + EXP - 500 : NOW;
    b->peer_seen = r->peer ? b->peer_expiry - EXP : 0;
    b->passive_since = r->peer == BSTAR_PASSIVE ? NOW - 5000 : 0;
}

/* The state a PEER_* event announces (0 for the other events). */
static bstar_state_t s_announced(bstar_event_t ev)
{
    switch (ev) {
    case BSTAR_PEER_PRIMARY: return BSTAR_PRIMARY;
    case BSTAR_PEER_BACKUP: return BSTAR_BACKUP;
    case BSTAR_PEER_ACTIVE: return BSTAR_ACTIVE;
    case BSTAR_PEER_PASSIVE: return BSTAR_PASSIVE;
    default: return 0;
    }
}

/* The heartbeat event that announces state s. */
static bstar_event_t s_heartbeat(bstar_state_t s)
{
    switch (s) {
    case BSTAR_PRIMARY: return BSTAR_PEER_PRIMARY;
    case BSTAR_BACKUP: return BSTAR_PEER_BACKUP;
    case BSTAR_ACTIVE: return BSTAR_PEER_ACTIVE;
    case BSTAR_PASSIVE: return BSTAR_PEER_PASSIVE;
    }
    fail_msg("state %d out of range", (int)s);
    return BSTAR_TICK;
}

/* Every row of the table: the result, the report (changed, err), whether
 * batches are acknowledged, and what a heartbeat records even when it is
 * rejected. */
static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const row_t *r = &s_rows[i];
        bstar_t b, before;
        bstar_opts_t o;
        s_setup(&b, &o, r);
        before = b;
        int rc = bstar_event(&b, &o, r->ev, NOW);
        const char *what = bstar_event_name(r->ev);
        if (rc != r->rc || b.state != r->res)
            fail_msg(
                "row %zu: %s %s (peer %s, %s) + %s: got %d %s, want %d %s", i,
                r->backup ? "backup" : "primary", bstar_state_name(r->st),
                r->peer ? bstar_state_name(r->peer) : "unheard",
                r->alive ? "alive" : "expired", what, rc,
                bstar_state_name(b.state), r->rc, bstar_state_name(r->res));
        assert_int_equal(b.changed, rc == 0 && r->res != r->st);
        if (rc == 0)
            assert_null(b.err);
        else
            assert_non_null(b.err);
        assert_int_equal(bstar_accepts(&b), r->res == BSTAR_ACTIVE);
        bstar_state_t ps = s_announced(r->ev);
        if (ps) {
            /* a heartbeat is recorded, accepted or not */
            assert_int_equal(b.peer_state, ps);
            assert_true(b.peer_seen == NOW);
            assert_true(b.peer_expiry == NOW + EXP);
            assert_true(bstar_peer_alive(&b, NOW + EXP - 1));
            int kept =
                ps == BSTAR_PASSIVE && r->peer == BSTAR_PASSIVE && r->alive;
            assert_true(b.passive_since == (ps != BSTAR_PASSIVE
                                                ? before.passive_since
                                            : kept ? before.passive_since
                                                   : NOW));
        } else {
            assert_int_equal(b.peer_state, before.peer_state);
            assert_true(b.peer_seen == before.peer_seen);
            assert_true(b.peer_expiry == before.peer_expiry);
            assert_true(b.passive_since == before.passive_since);
        }
    }
}

/* The base rows cover every reachable (role, state, event, alive) once. */
static void test_table_complete(void **state)
{
    (void)state;
    static const bstar_state_t starts[2] = {BSTAR_PRIMARY, BSTAR_BACKUP};
    int n = 0;
    for (int role = 0; role < 2; role++) {
        bstar_state_t sts[3] = {starts[role], BSTAR_ACTIVE, BSTAR_PASSIVE};
        for (int s = 0; s < 3; s++)
            for (int ev = BSTAR_PEER_PRIMARY; ev <= BSTAR_TICK; ev++)
                for (int alive = 0; alive < 2; alive++) {
                    int found = 0;
                    for (size_t i = 0; i < NBASE; i++) {
                        const row_t *r = &s_rows[i];
                        found += r->backup == role && r->st == sts[s] &&
                                 (int)r->ev == ev && r->alive == alive;
                    }
                    if (found != 1)
                        fail_msg("%s %s %s %s: %d base rows",
                                 role ? "backup" : "primary",
                                 bstar_state_name(sts[s]),
                                 bstar_event_name((bstar_event_t)ev),
                                 alive ? "alive" : "expired", found);
                    n++;
                }
    }
    assert_int_equal(n, NBASE);
    assert_true(NROWS > NBASE);
}

/* Defaults, the check of the options, and the names. */
static void test_opts_names(void **state)
{
    (void)state;
    bstar_opts_t o;
    const char *err = "x";
    bstar_opts_default(&o);
    assert_int_equal(o.backup, 0);
    assert_true(o.heartbeat_ms == 1000);
    assert_true(o.expiry_ms == 2 * o.heartbeat_ms);
    assert_true(o.failback_ms == 0);
    assert_int_equal(bstar_opts_check(&o, &err), 0);
    assert_null(err);
    o.expiry_ms = o.heartbeat_ms; /* would expire between heartbeats */
    assert_int_equal(bstar_opts_check(&o, &err), -1);
    assert_non_null(err);
    bstar_opts_default(&o);
    o.heartbeat_ms = 0;
    assert_int_equal(bstar_opts_check(&o, NULL), -1);
    bstar_opts_default(&o);
    o.failback_ms = -1;
    assert_int_equal(bstar_opts_check(&o, &err), -1);
    assert_non_null(err);

    assert_string_equal(bstar_state_name(BSTAR_PRIMARY), "primary");
    assert_string_equal(bstar_state_name(BSTAR_BACKUP), "backup");
    assert_string_equal(bstar_state_name(BSTAR_ACTIVE), "active");
    assert_string_equal(bstar_state_name(BSTAR_PASSIVE), "passive");
    assert_string_equal(bstar_state_name((bstar_state_t)0), "unknown");
    assert_string_equal(bstar_event_name(BSTAR_PEER_PRIMARY), "peer-primary");
    assert_string_equal(bstar_event_name(BSTAR_PEER_BACKUP), "peer-backup");
    assert_string_equal(bstar_event_name(BSTAR_PEER_ACTIVE), "peer-active");
    assert_string_equal(bstar_event_name(BSTAR_PEER_PASSIVE), "peer-passive");
    assert_string_equal(bstar_event_name(BSTAR_CLIENT_REQUEST),
                        "client-request");
    assert_string_equal(bstar_event_name(BSTAR_FAILBACK), "failback");
    assert_string_equal(bstar_event_name(BSTAR_TICK), "tick");
    assert_string_equal(bstar_event_name((bstar_event_t)99), "unknown");
}

/* An event out of range is rejected and records nothing. */
static void test_bad_event(void **state)
{
    (void)state;
    bstar_opts_t o;
    bstar_t b, before;
    bstar_opts_default(&o);
    bstar_init(&b, &o, 0);
    before = b;
    assert_int_equal(bstar_event(&b, &o, (bstar_event_t)0, 10), -1);
    assert_non_null(b.err);
    assert_int_equal(bstar_event(&b, &o, (bstar_event_t)(BSTAR_TICK + 1), 10),
                     -1);
    assert_int_equal(b.state, before.state);
    assert_int_equal(b.peer_state, before.peer_state);
    assert_true(b.peer_seen == before.peer_seen);
    assert_true(b.peer_expiry == before.peer_expiry);
    assert_true(b.passive_since == before.passive_since);
    assert_false(b.changed);
}

/* ---- scenarios: a pair driven by hand ----------------------------------- */

/* A member of a test pair. */
typedef struct {
    bstar_t b;      /* its state */
    bstar_opts_t o; /* its options */
} member_t;

/* m starts at now in role backup, with failback_ms fb. */
static void s_start(member_t *m, int backup, int64_t fb, int64_t now)
{
    bstar_opts_default(&m->o);
    m->o.backup = backup;
    m->o.failback_ms = fb;
    assert_int_equal(bstar_opts_check(&m->o, NULL), 0);
    bstar_init(&m->b, &m->o, now);
}

/* m hears a heartbeat of peer (its current state) at now. */
static int s_hear(member_t *m, const member_t *peer, int64_t now)
{
    return bstar_event(&m->b, &m->o, s_heartbeat(peer->b.state), now);
}

/* ev for m at now. */
static int s_ev(member_t *m, bstar_event_t ev, int64_t now)
{
    return bstar_event(&m->b, &m->o, ev, now);
}

/* The pair starts at 0 and exchanges its first heartbeats at 1000: the
 * primary becomes active, the backup passive. */
static void s_normal_start(member_t *p, member_t *k, int64_t fb)
{
    s_start(p, AS_PRIMARY, 0, 0);
    s_start(k, AS_BACKUP, fb, 0);
    assert_int_equal(p->b.state, BSTAR_PRIMARY);
    assert_int_equal(k->b.state, BSTAR_BACKUP);
    assert_false(bstar_accepts(&p->b));
    assert_false(bstar_accepts(&k->b));
    /* the backup hears PRIMARY first: it waits */
    assert_int_equal(s_hear(k, p, 1000), 0);
    assert_int_equal(k->b.state, BSTAR_BACKUP);
    assert_false(k->b.changed);
    /* the primary hears BACKUP: active, and publishes it at once */
    assert_int_equal(s_hear(p, k, 1000), 0);
    assert_int_equal(p->b.state, BSTAR_ACTIVE);
    assert_true(p->b.changed);
    assert_int_equal(s_hear(k, p, 1001), 0);
    assert_int_equal(k->b.state, BSTAR_PASSIVE);
    assert_true(k->b.changed);
    assert_true(bstar_accepts(&p->b));
    assert_false(bstar_accepts(&k->b));
    /* votes: the active member takes them, the passive one refuses */
    assert_int_equal(s_ev(p, BSTAR_CLIENT_REQUEST, 1100), 0);
    assert_int_equal(s_ev(k, BSTAR_CLIENT_REQUEST, 1100), -1);
    assert_non_null(k->b.err);
    assert_int_equal(k->b.state, BSTAR_PASSIVE);
}

static void test_normal_start(void **state)
{
    (void)state;
    member_t p, k;
    s_normal_start(&p, &k, 0);
    /* the other order: the primary's BACKUP heartbeat comes first */
    s_start(&p, AS_PRIMARY, 0, 0);
    s_start(&k, AS_BACKUP, 0, 0);
    assert_int_equal(s_hear(&p, &k, 1000), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_int_equal(s_hear(&k, &p, 1000), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
    /* heartbeats go on: nothing changes */
    for (int64_t t = 2000; t < 60000; t += 1000) {
        assert_int_equal(s_hear(&p, &k, t), 0);
        assert_int_equal(s_hear(&k, &p, t), 0);
        assert_int_equal(s_ev(&p, BSTAR_TICK, t), 0);
        assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
        assert_false(p.b.changed || k.b.changed);
    }
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
}

/* The primary dies after its heartbeat at 1001: the backup takes over on
 * the first vote once the primary has expired (at 3001), never by itself.
 * Returns with the backup active at 3001. */
static void s_primary_dies(member_t *p, member_t *k, int64_t fb)
{
    s_normal_start(p, k, fb);
    for (int64_t t = 1001; t < 3001; t += 500) {
        assert_int_equal(s_ev(k, BSTAR_TICK, t), 0);
        assert_int_equal(s_ev(k, BSTAR_CLIENT_REQUEST, t), -1);
        assert_int_equal(k->b.state, BSTAR_PASSIVE);
    }
    assert_true(bstar_peer_alive(&k->b, 3000));
    assert_int_equal(s_ev(k, BSTAR_CLIENT_REQUEST, 3000), -1);
    assert_false(bstar_peer_alive(&k->b, 3001));
    /* expired: time alone does not make it active (a cut peer link is not
     * a dead primary); tried on a copy, the clock never goes back */
    member_t idle = *k;
    for (int64_t t = 3001; t < 600000; t += 1000)
        assert_int_equal(s_ev(&idle, BSTAR_TICK, t), 0);
    assert_int_equal(idle.b.state, BSTAR_PASSIVE);
    assert_int_equal(s_ev(k, BSTAR_TICK, 3001), 0);
    assert_int_equal(k->b.state, BSTAR_PASSIVE);
    /* the vote does */
    assert_int_equal(s_ev(k, BSTAR_CLIENT_REQUEST, 3001), 0);
    assert_int_equal(k->b.state, BSTAR_ACTIVE);
    assert_true(k->b.changed);
    assert_true(bstar_accepts(&k->b));
    assert_int_equal(s_ev(k, BSTAR_CLIENT_REQUEST, 3002), 0);
    assert_false(k->b.changed);
}

static void test_primary_dies(void **state)
{
    (void)state;
    member_t p, k;
    s_primary_dies(&p, &k, 0);
}

/* The primary comes back at 10000 and hears the active backup: it goes
 * passive.  Returns with the backup active and the primary passive, the
 * last heartbeats exchanged at *t. */
static void s_primary_returns(member_t *p, member_t *k, int64_t fb, int64_t *t)
{
    s_primary_dies(p, k, fb);
    s_start(p, AS_PRIMARY, 0, 10000);
    /* no vote before it could have heard the peer */
    assert_int_equal(s_ev(p, BSTAR_CLIENT_REQUEST, 10100), -1);
    assert_int_equal(s_hear(k, p, 10100), 0); /* PRIMARY: stays active */
    assert_int_equal(k->b.state, BSTAR_ACTIVE);
    assert_false(k->b.changed);
    /* the backup cannot fail back to a primary that is not passive yet */
    assert_int_equal(s_ev(k, BSTAR_FAILBACK, 10200), -1);
    assert_non_null(strstr(k->b.err, "not passive"));
    assert_int_equal(s_hear(p, k, 10500), 0);
    assert_int_equal(p->b.state, BSTAR_PASSIVE);
    assert_true(p->b.changed);
    assert_int_equal(s_hear(k, p, 10500), 0);
    assert_int_equal(k->b.state, BSTAR_ACTIVE);
    *t = 10500;
}

static void test_primary_returns(void **state)
{
    (void)state;
    member_t p, k;
    int64_t t;
    s_primary_returns(&p, &k, 0, &t);
    /* no automatic failback by default: an hour of healthy primary */
    for (t += 1000; t < 3600 * 1000; t += 1000) {
        assert_int_equal(s_hear(&k, &p, t), 0);
        assert_int_equal(s_hear(&p, &k, t), 0);
        assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
        assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, t), -1);
    }
    assert_int_equal(k.b.state, BSTAR_ACTIVE);
    assert_int_equal(p.b.state, BSTAR_PASSIVE);
}

/* orchester-ctl ha failback: refused on the primary, and on a backup whose
 * primary is gone; on the active backup with the primary alive and passive,
 * the backup stops, then the primary takes over on its heartbeat. */
static void test_failback_by_hand(void **state)
{
    (void)state;
    member_t p, k;
    int64_t t;
    s_primary_returns(&p, &k, 0, &t);
    assert_int_equal(s_ev(&p, BSTAR_FAILBACK, t + 1), -1);
    assert_non_null(strstr(p.b.err, "primary"));
    assert_int_equal(p.b.state, BSTAR_PASSIVE);
    /* (on a copy) the primary's heartbeat is EXP old: gone */
    member_t late = k;
    assert_int_equal(s_ev(&late, BSTAR_FAILBACK, t + EXP), -1);
    assert_non_null(strstr(late.b.err, "not alive"));
    assert_int_equal(late.b.state, BSTAR_ACTIVE);
    /* alive and passive */
    assert_int_equal(s_ev(&k, BSTAR_FAILBACK, t + EXP - 1), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
    assert_true(k.b.changed);
    assert_false(bstar_accepts(&k.b)); /* stopped before the primary starts */
    assert_false(bstar_accepts(&p.b)); /* no one, until the heartbeat */
    assert_int_equal(s_ev(&k, BSTAR_CLIENT_REQUEST, t + EXP - 1), -1);
    /* a second failback is refused: not active */
    assert_int_equal(s_ev(&k, BSTAR_FAILBACK, t + EXP - 1), -1);
    assert_non_null(strstr(k.b.err, "not active"));
    /* the backup publishes PASSIVE at once; the primary takes over */
    t += EXP - 1;
    assert_int_equal(s_hear(&p, &k, t), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_true(p.b.changed);
    assert_int_equal(s_hear(&k, &p, t), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
    assert_false(k.b.changed);
    /* and it stays so */
    for (int64_t u = t + 1000; u < t + 30000; u += 1000) {
        assert_int_equal(s_hear(&k, &p, u), 0);
        assert_int_equal(s_hear(&p, &k, u), 0);
        assert_int_equal(s_ev(&k, BSTAR_TICK, u), 0);
        assert_int_equal(s_ev(&p, BSTAR_TICK, u), 0);
    }
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
}

/* failback_ms = 10000: the backup fails back once the primary has been
 * heard passive for 10 s without a break; a break starts the count again. */
static void test_failback_auto(void **state)
{
    (void)state;
    member_t p, k;
    int64_t t;
    s_primary_returns(&p, &k, 10000, &t);
    int64_t since = t; /* the first PASSIVE heard */
    assert_true(k.b.passive_since == since);
    /* 5 s, then a silence of EXP: expired, the count starts again */
    for (t += 1000; t <= since + 5000; t += 1000) {
        assert_int_equal(s_hear(&k, &p, t), 0);
        assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
    }
    t = since + 5000 + EXP; /* exactly at expiry: gone */
    assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
    assert_int_equal(k.b.state, BSTAR_ACTIVE);
    assert_int_equal(s_hear(&k, &p, t), 0);
    since = t;
    assert_true(k.b.passive_since == since);
    /* a restart of the primary (PRIMARY, then PASSIVE) starts it again */
    assert_int_equal(s_ev(&k, BSTAR_PEER_PRIMARY, since + 1000), 0);
    assert_int_equal(s_ev(&k, BSTAR_PEER_PASSIVE, since + 2000), 0);
    since += 2000;
    assert_true(k.b.passive_since == since);
    for (t = since + 1000; t < since + 10000; t += 1000) {
        assert_int_equal(s_hear(&k, &p, t), 0);
        assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
        assert_int_equal(k.b.state, BSTAR_ACTIVE);
    }
    assert_int_equal(s_hear(&k, &p, since + 9999), 0);
    assert_int_equal(s_ev(&k, BSTAR_TICK, since + 9999), 0);
    assert_int_equal(k.b.state, BSTAR_ACTIVE);
    /* due */
    assert_int_equal(s_ev(&k, BSTAR_TICK, since + 10000), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
    assert_true(k.b.changed);
    assert_false(bstar_accepts(&k.b));
    assert_int_equal(s_hear(&p, &k, since + 10000), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_int_equal(s_hear(&k, &p, since + 10001), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
    /* later ticks do nothing more */
    assert_int_equal(s_ev(&k, BSTAR_TICK, since + 20000), 0);
    assert_false(k.b.changed);
}

/* Both active after a partition (the backup took a vote while it could not
 * hear the primary); the heal leaves the primary active. */
static void test_split_brain(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        member_t p, k;
        s_normal_start(&p, &k, 0);
        /* the peer link is cut after 1001 */
        assert_int_equal(s_ev(&k, BSTAR_CLIENT_REQUEST, 3001), 0);
        assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, 3001), 0);
        assert_true(bstar_accepts(&p.b) && bstar_accepts(&k.b));
        /* healed at 5000 */
        if (order == 0) {
            assert_int_equal(s_hear(&p, &k, 5000), 0);
            assert_int_equal(p.b.state, BSTAR_ACTIVE);
            assert_false(p.b.changed);
            assert_int_equal(s_hear(&k, &p, 5000), 0);
            assert_int_equal(k.b.state, BSTAR_PASSIVE);
            assert_true(k.b.changed);
        } else {
            assert_int_equal(s_hear(&k, &p, 5000), 0);
            assert_int_equal(k.b.state, BSTAR_PASSIVE);
            assert_int_equal(s_hear(&p, &k, 5000), 0);
            assert_int_equal(p.b.state, BSTAR_ACTIVE);
        }
        assert_true(bstar_accepts(&p.b));
        assert_false(bstar_accepts(&k.b));
    }
    /* the same when the primary was the passive one */
    member_t p, k;
    int64_t t;
    s_primary_returns(&p, &k, 0, &t);
    t += EXP;
    assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, t), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_int_equal(k.b.state, BSTAR_ACTIVE);
    assert_int_equal(s_hear(&k, &p, t + 100), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
    assert_int_equal(s_hear(&p, &k, t + 100), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
}

/* A member with no peer at all: the primary takes the first vote after one
 * expiry from its start; the backup never does. */
static void test_lone_member(void **state)
{
    (void)state;
    member_t p, k;
    s_start(&p, AS_PRIMARY, 0, 0);
    assert_true(bstar_peer_alive(&p.b, 0));
    assert_int_equal(p.b.peer_state, 0);
    for (int64_t t = 0; t < EXP; t += 250) {
        assert_int_equal(s_ev(&p, BSTAR_TICK, t), 0);
        assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, t), -1);
    }
    assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, EXP - 1), -1);
    assert_int_equal(p.b.state, BSTAR_PRIMARY);
    assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, EXP), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);
    assert_true(bstar_accepts(&p.b));
    s_start(&k, AS_BACKUP, 10000, 0);
    for (int64_t t = 0; t < 3600 * 1000; t += 997) {
        assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
        assert_int_equal(s_ev(&k, BSTAR_CLIENT_REQUEST, t), -1);
        assert_int_equal(s_ev(&k, BSTAR_FAILBACK, t), -1);
    }
    assert_int_equal(k.b.state, BSTAR_BACKUP);
    assert_false(bstar_accepts(&k.b));
}

/* Exactly at expiry the peer is gone; one millisecond before it is not. */
static void test_clock_edges(void **state)
{
    (void)state;
    member_t p;
    /* a clock far from 0 */
    int64_t t0 = (int64_t)1 << 40;
    s_start(&p, AS_PRIMARY, 0, t0);
    assert_true(bstar_peer_alive(&p.b, t0 + EXP - 1));
    assert_false(bstar_peer_alive(&p.b, t0 + EXP));
    assert_int_equal(s_ev(&p, BSTAR_PEER_ACTIVE, t0 + 500), 0);
    assert_int_equal(p.b.state, BSTAR_PASSIVE);
    assert_true(p.b.peer_seen == t0 + 500);
    assert_true(p.b.peer_expiry == t0 + 500 + EXP);
    assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, t0 + 500 + EXP - 1), -1);
    assert_int_equal(p.b.state, BSTAR_PASSIVE);
    assert_int_equal(s_ev(&p, BSTAR_CLIENT_REQUEST, t0 + 500 + EXP), 0);
    assert_int_equal(p.b.state, BSTAR_ACTIVE);

    /* a heartbeat exactly at expiry revives the peer, but breaks the run
     * of PASSIVE heartbeats; one a millisecond earlier does not */
    member_t k;
    s_start(&k, AS_BACKUP, 1500, 0);
    k.b.state = BSTAR_ACTIVE;
    assert_int_equal(s_ev(&k, BSTAR_PEER_PASSIVE, 1000), 0);
    assert_true(k.b.passive_since == 1000);
    assert_int_equal(s_ev(&k, BSTAR_PEER_PASSIVE, 1000 + EXP - 1), 0);
    assert_true(k.b.passive_since == 1000);
    assert_int_equal(s_ev(&k, BSTAR_PEER_PASSIVE, 1000 + 2 * (EXP - 1)), 0);
    assert_true(k.b.passive_since == 1000);
    int64_t t = 1000 + 2 * (EXP - 1) + EXP; /* exactly at expiry */
    assert_int_equal(s_ev(&k, BSTAR_TICK, t), 0);
    assert_int_equal(k.b.state, BSTAR_ACTIVE);
    assert_int_equal(s_ev(&k, BSTAR_PEER_PASSIVE, t), 0);
    assert_true(k.b.passive_since == t);
    /* failback_ms exactly: due */
    assert_int_equal(s_ev(&k, BSTAR_TICK, t + 1499), 0);
    assert_int_equal(k.b.state, BSTAR_ACTIVE);
    assert_int_equal(s_ev(&k, BSTAR_TICK, t + 1500), 0);
    assert_int_equal(k.b.state, BSTAR_PASSIVE);
}

/* Both members configured alike: every heartbeat is rejected (and says
 * so), neither becomes active while the other is heard, and one that is
 * left alone takes a vote after expiry. */
static void test_misconfigured(void **state)
{
    (void)state;
    for (int backup = 0; backup < 2; backup++) {
        member_t a, c;
        s_start(&a, backup, 0, 0);
        s_start(&c, backup, 0, 0);
        for (int64_t t = 1000; t < 20000; t += 1000) {
            assert_int_equal(s_hear(&a, &c, t), -1);
            assert_non_null(strstr(a.b.err, backup ? "backup" : "primary"));
            assert_int_equal(s_hear(&c, &a, t), -1);
            assert_int_equal(s_ev(&a, BSTAR_CLIENT_REQUEST, t + 1), -1);
            assert_int_equal(s_ev(&c, BSTAR_CLIENT_REQUEST, t + 1), -1);
            assert_true(bstar_peer_alive(&a.b, t + 1));
        }
        assert_false(bstar_accepts(&a.b) || bstar_accepts(&c.b));
        /* c dies: a primary takes over, a backup never does */
        assert_int_equal(s_ev(&a, BSTAR_CLIENT_REQUEST, 19000 + EXP),
                         backup ? -1 : 0);
        assert_int_equal(bstar_accepts(&a.b), !backup);
    }
}

/* From every pair of states the roles allow, with both members alive and
 * heartbeats exchanged in either order, exactly one member is active
 * within two rounds, and a round never makes a second member active. */
static void test_convergence(void **state)
{
    (void)state;
    static const bstar_state_t ps[3] = {BSTAR_PRIMARY, BSTAR_ACTIVE,
                                        BSTAR_PASSIVE};
    static const bstar_state_t ks[3] = {BSTAR_BACKUP, BSTAR_ACTIVE,
                                        BSTAR_PASSIVE};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int order = 0; order < 2; order++) {
                member_t p, k;
                s_start(&p, AS_PRIMARY, 0, 0);
                s_start(&k, AS_BACKUP, 0, 0);
                p.b.state = ps[i];
                k.b.state = ks[j];
                int64_t t = 1000;
                for (int round = 0; round < 4; round++, t += 1000) {
                    int before = bstar_accepts(&p.b) + bstar_accepts(&k.b);
                    member_t *first = order ? &k : &p;
                    member_t *second = order ? &p : &k;
                    assert_int_equal(s_hear(first, second, t), 0);
                    assert_int_equal(s_hear(second, first, t), 0);
                    int after = bstar_accepts(&p.b) + bstar_accepts(&k.b);
                    assert_true(after <= 1 || before == 2);
                    if (round >= 1 && after != 1)
                        fail_msg("primary %s, backup %s (order %d): %d "
                                 "active after round %d",
                                 bstar_state_name(ps[i]),
                                 bstar_state_name(ks[j]), order, after, round);
                }
                /* where both were active, the primary stays so */
                if (ps[i] == BSTAR_ACTIVE)
                    assert_int_equal(p.b.state, BSTAR_ACTIVE);
            }
}

/* A small deterministic generator for the tests below. */
static uint64_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Random events at random times: a result is always reported as the
 * contract says, and no member ever returns to a starting state or takes
 * the other role's. */
static void test_random_walk(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int backup = 0; backup < 2; backup++)
        for (int64_t fb = 0; fb <= 3000; fb += 3000) {
            member_t m;
            s_start(&m, backup, fb, 0);
            bstar_state_t start = m.b.state;
            int left = 0;
            int64_t t = 0;
            for (int i = 0; i < 200000; i++) {
                t += (int64_t)(s_rand(&x) % 1500);
                bstar_event_t ev =
                    (bstar_event_t)(BSTAR_PEER_PRIMARY + s_rand(&x) % 7);
                bstar_t before = m.b;
                int rc = s_ev(&m, ev, t);
                if (rc == 0) {
                    assert_null(m.b.err);
                    assert_int_equal(m.b.changed, m.b.state != before.state);
                } else {
                    assert_int_equal(rc, -1);
                    assert_non_null(m.b.err);
                    assert_int_equal(m.b.state, before.state);
                    assert_false(m.b.changed);
                }
                assert_true(m.b.state == start || m.b.state == BSTAR_ACTIVE ||
                            m.b.state == BSTAR_PASSIVE);
                if (m.b.state != start)
                    left = 1;
                else
                    assert_false(left);
                assert_int_equal(bstar_accepts(&m.b),
                                 m.b.state == BSTAR_ACTIVE);
            }
            assert_true(left);
        }
}

/* ---- a simulated pair ------------------------------------------------------
 */

#define SIM_HB      1000 /* heartbeat interval */
#define SIM_LAT     200  /* longest one-way latency of the peer link */
#define SIM_BATCH   100  /* the satellite sends a batch every */
#define SIM_ACK_TO  1500 /* the satellite switches after this long unacked */
#define SIM_SECONDS 600  /* simulated time per run */
#define SIM_RUNS    40   /* runs (seeds) */
#define SIM_QUEUE   64   /* heartbeats in flight, per direction */

/* A heartbeat in flight. */
typedef struct {
    int64_t at;          /* when it arrives */
    bstar_state_t state; /* what it announces */
} sim_msg_t;

/* One direction of the peer link: in order, as a TCP connection. */
typedef struct {
    sim_msg_t q[SIM_QUEUE]; /* a ring */
    int head, n;            /* the oldest, how many */
    int64_t last_at;        /* arrival of the newest */
} sim_dir_t;

/* A member of the simulated pair. */
typedef struct {
    member_t m;       /* its machine */
    int up;           /* running */
    int64_t up_since; /* started */
    int64_t down_til; /* crashed until */
    int64_t next_hb;  /* its next heartbeat */
} sim_member_t;

/* The whole simulation. */
typedef struct {
    uint64_t rng;         /* the generator */
    int64_t now;          /* the clock */
    sim_member_t s[2];    /* 0: the primary, 1: the backup */
    sim_dir_t to[2];      /* to[i]: heartbeats to member i */
    int link_up;          /* the peer link works */
    int64_t link_since;   /* since when */
    int64_t link_til;     /* cut until */
    int reach[2];         /* the satellite reaches member i */
    int target;           /* the member the satellite sends to */
    int64_t waiting;      /* since when its batches go unacknowledged */
    int64_t failback_at;  /* the last failback (zero actives, briefly) */
    uint64_t acks;        /* batches acknowledged */
    uint64_t batches;     /* batches sent */
    uint64_t takeovers;   /* votes that made a member active */
    uint64_t splits;      /* split brains healed */
    uint64_t failbacks;   /* failbacks, by hand or automatic */
    uint64_t restarts;    /* member restarts */
    uint64_t partitions;  /* peer link cuts */
    uint64_t zero_checks; /* checks with both up and stable */
} sim_t;

/* Member i publishes its state: it arrives after a random latency, in
 * order, if the link works. */
static void s_sim_send(sim_t *sm, int i)
{
    if (!sm->link_up || !sm->s[i].up)
        return;
    sim_dir_t *d = &sm->to[1 - i];
    assert_true(d->n < SIM_QUEUE);
    int64_t at = sm->now + (int64_t)(s_rand(&sm->rng) % (SIM_LAT + 1));
    if (at < d->last_at)
        at = d->last_at;
    d->last_at = at;
    d->q[(d->head + d->n) % SIM_QUEUE] =
        (sim_msg_t){.at = at, .state = sm->s[i].m.b.state};
    d->n++;
}

/* ev for member i; a change is published at once. */
static int s_sim_event(sim_t *sm, int i, bstar_event_t ev)
{
    member_t *m = &sm->s[i].m;
    bstar_state_t old = m->b.state;
    int rc = s_ev(m, ev, sm->now);
    if (!m->b.changed)
        return rc;
    if (i == 1 && old == BSTAR_ACTIVE && m->b.state == BSTAR_PASSIVE) {
        if (ev == BSTAR_PEER_ACTIVE)
            sm->splits++;
        else {
            sm->failbacks++;
            sm->failback_at = sm->now;
        }
    }
    if (ev == BSTAR_CLIENT_REQUEST)
        sm->takeovers++;
    s_sim_send(sm, i);
    return rc;
}

/* Member i (re)starts now. */
static void s_sim_start(sim_t *sm, int i, int64_t fb)
{
    sim_member_t *s = &sm->s[i];
    s_start(&s->m, i, fb, sm->now);
    s->up = 1;
    s->up_since = sm->now;
    s->next_hb = sm->now; /* a member publishes its state as it starts */
}

/* Faults, once a second: the peer link cut and healed, what the satellite
 * reaches, crashes and restarts, failback commands. */
static void s_sim_faults(sim_t *sm, int64_t fb)
{
    uint64_t r = s_rand(&sm->rng) % 1000;
    if (sm->link_up && r < 30) {
        sm->link_up = 0;
        sm->link_til = sm->now + 1000 + (int64_t)(s_rand(&sm->rng) % 9000);
        sm->to[0].n = sm->to[1].n = 0; /* what was in flight is lost */
        sm->partitions++;
    } else if (!sm->link_up && sm->now >= sm->link_til) {
        sm->link_up = 1;
        sm->link_since = sm->now;
    }
    r = s_rand(&sm->rng) % 1000;
    if (r < 30) {
        int which = (int)(s_rand(&sm->rng) % 3);
        sm->reach[0] = which != 2;
        sm->reach[1] = which != 1;
    } else if (r < 80) {
        sm->reach[0] = sm->reach[1] = 1;
    }
    for (int i = 0; i < 2; i++) {
        sim_member_t *s = &sm->s[i];
        if (s->up && s_rand(&sm->rng) % 1000 < 10) {
            s->up = 0;
            s->down_til = sm->now + 1000 + (int64_t)(s_rand(&sm->rng) % 14000);
        } else if (!s->up && sm->now >= s->down_til) {
            s_sim_start(sm, i, fb);
            sm->restarts++;
        }
    }
    if (s_rand(&sm->rng) % 1000 < 20) {
        int i = (int)(s_rand(&sm->rng) % 2);
        if (sm->s[i].up) {
            int rc = s_sim_event(sm, i, BSTAR_FAILBACK);
            if (i == 0)
                assert_int_equal(rc, -1); /* never on the primary */
        }
    }
}

/* One millisecond of the simulation. */
static void s_sim_step(sim_t *sm, int64_t fb)
{
    if (sm->now % 1000 == 0)
        s_sim_faults(sm, fb);
    /* heartbeats arrive */
    for (int i = 0; i < 2; i++) {
        sim_dir_t *d = &sm->to[i];
        while (d->n > 0 && d->q[d->head].at <= sm->now) {
            bstar_state_t st = d->q[d->head].state;
            d->head = (d->head + 1) % SIM_QUEUE;
            d->n--;
            if (sm->s[i].up)
                s_sim_event(sm, i, s_heartbeat(st));
        }
    }
    /* each member's heartbeat timer: a tick, then its state */
    for (int i = 0; i < 2; i++) {
        sim_member_t *s = &sm->s[i];
        if (s->up && sm->now >= s->next_hb) {
            s_sim_event(sm, i, BSTAR_TICK);
            s_sim_send(sm, i);
            s->next_hb += SIM_HB;
        }
    }
    /* the satellite: a batch to its target, which acknowledges it only if
     * it is active; after SIM_ACK_TO without acknowledgement it switches */
    if (sm->now % SIM_BATCH == 0) {
        int t = sm->target;
        int acked = 0;
        sm->batches++;
        if (sm->s[t].up && sm->reach[t]) {
            int rc = s_sim_event(sm, t, BSTAR_CLIENT_REQUEST);
            acked = bstar_accepts(&sm->s[t].m.b);
            assert_int_equal(rc == 0, acked);
            if (acked)
                assert_int_equal(sm->s[t].m.b.state, BSTAR_ACTIVE);
        }
        if (acked) {
            sm->acks++;
            sm->waiting = sm->now;
        } else if (sm->now - sm->waiting >= SIM_ACK_TO) {
            sm->target = 1 - t;
            sm->waiting = sm->now;
        }
    }
    /* invariants */
    int active = 0;
    for (int i = 0; i < 2; i++) {
        const bstar_t *b = &sm->s[i].m.b;
        if (!sm->s[i].up)
            continue;
        assert_int_equal(bstar_accepts(b), b->state == BSTAR_ACTIVE);
        if (b->state == BSTAR_PASSIVE)
            assert_false(bstar_accepts(b));
        active += b->state == BSTAR_ACTIVE;
    }
    if (sm->link_up && sm->s[0].up && sm->s[1].up) {
        int64_t since = sm->link_since;
        for (int i = 0; i < 2; i++)
            if (sm->s[i].up_since > since)
                since = sm->s[i].up_since;
        if (sm->now >= since + 2 * SIM_HB) {
            sm->zero_checks++;
            if (active > 1 ||
                (active == 0 && sm->now > sm->failback_at + SIM_LAT))
                fail_msg("t=%lld: %d active, %lld ms after the pair could "
                         "hear itself (primary %s, backup %s)",
                         (long long)sm->now, active,
                         (long long)(sm->now - since),
                         bstar_state_name(sm->s[0].m.b.state),
                         bstar_state_name(sm->s[1].m.b.state));
        }
    }
    sm->now++;
}

/* Two members, a peer link that is cut and healed, members that crash and
 * restart, a satellite whose reach changes, failback commands (and, every
 * other run, automatic failback).  Whenever both members have been up and
 * have heard each other for 2 heartbeats, exactly one is active (none only
 * for the latency after a failback); no member acknowledges unless
 * active. */
static void test_simulation(void **state)
{
    (void)state;
    sim_t total = {0};
    for (int run = 0; run < SIM_RUNS; run++) {
        int64_t fb = run % 2 ? 5000 : 0;
        sim_t sm = {.rng = 0x2545f4914f6cdd1dULL + (uint64_t)run * 7919,
                    .link_up = 1,
                    .reach = {1, 1},
                    .failback_at = -SIM_LAT - 1};
        s_sim_start(&sm, 0, fb);
        s_sim_start(&sm, 1, fb);
        while (sm.now < SIM_SECONDS * 1000)
            s_sim_step(&sm, fb);
        total.acks += sm.acks;
        total.batches += sm.batches;
        total.takeovers += sm.takeovers;
        total.splits += sm.splits;
        total.failbacks += sm.failbacks;
        total.restarts += sm.restarts;
        total.partitions += sm.partitions;
        total.zero_checks += sm.zero_checks;
    }
    /* the runs went through what they are meant to */
    assert_true(total.partitions > 100);
    assert_true(total.restarts > 100);
    assert_true(total.takeovers > 100);
    assert_true(total.splits > 10);
    assert_true(total.failbacks > 10);
    assert_true(total.zero_checks > 1000000);
    assert_true(total.acks > total.batches / 2);
    print_message(
        "bstar simulation: %d runs of %d s: %llu partitions, "
        "%llu restarts, %llu takeovers, %llu split brains healed, "
        "%llu failbacks, %llu of %llu batches acknowledged\n",
        SIM_RUNS, SIM_SECONDS, (unsigned long long)total.partitions,
        (unsigned long long)total.restarts, (unsigned long long)total.takeovers,
        (unsigned long long)total.splits, (unsigned long long)total.failbacks,
        (unsigned long long)total.acks, (unsigned long long)total.batches);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_opts_names),
        cmocka_unit_test(test_bad_event),
        cmocka_unit_test(test_normal_start),
        cmocka_unit_test(test_primary_dies),
        cmocka_unit_test(test_primary_returns),
        cmocka_unit_test(test_failback_by_hand),
        cmocka_unit_test(test_failback_auto),
        cmocka_unit_test(test_split_brain),
        cmocka_unit_test(test_lone_member),
        cmocka_unit_test(test_clock_edges),
        cmocka_unit_test(test_misconfigured),
        cmocka_unit_test(test_convergence),
        cmocka_unit_test(test_random_walk),
        cmocka_unit_test(test_simulation),
    };
    return cmocka_run_group_tests_name("bstar", tests, NULL, NULL);
}
