/*
 * sender.c -- see sender.h.
 *
 * Ownership: the sender owns its destinations, its zmq sockets, and the
 * message it is placing.  A queued chunk owns the zmq message its bytes
 * live in (released when written or dropped).
 */
#include "sender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "log.h"
#include "msg.h"
#include "options.h"
#include "spill.h"
#include "zwatch.h"

#define MAX_PARTS (2 * ROUTER_MAX_DESTS)

/* The critical chunks of one routed message not yet safe (delivered,
 * persisted, dropped or held while Redis cannot take them). */
typedef struct {
    uint64_t token; /* the hub's */
    uint32_t left;  /* chunks not safe yet */
} cbatch_t;

/* A critical chunk: owned by the spill once pushed (spill.h). */
typedef struct {
    spill_item_t item; /* first: the spill sees this */
    zmq_msg_t msg;     /* the lines */
    cbatch_t *batch;   /* NULL once safe */
    struct sender *s;
} crit_t;

typedef struct sender sender_t;

typedef struct {
    sender_t *s;        /* back pointer */
    size_t id;          /* its index in the sender's table */
    dest_t *d;          /* owned; NULL only when making it ran out of memory
                           (retried every tick; what is routed to it meanwhile
                           is dropped and counted in lost) */
    spill_stream_t *st; /* its critical datapoints (NULL: no buffer) */
    int overflow;       /* dropping without holding back, until below half */
    int up;             /* the state last reported to the hub */
    uint64_t lost;      /* datapoints dropped because d was NULL */
    uint64_t unlogged;  /* datapoints dropped since the last log line */
    int64_t logged_ms;  /* when a drop was last logged */
} sdest_t;

/* A destination a reload left out: it writes what it holds until it is
 * empty or the drain time is over, then it is closed.  It still points into
 * the router of its generation, which the hub keeps until told otherwise
 * (MSG_RETIRED). */
typedef struct retired {
    dest_t *d;          /* owned */
    spill_stream_t *st; /* owned, destroyed after d */
    uint64_t gen;       /* the generation it belonged to */
    int64_t deadline;   /* close it then at the latest */
    struct retired *next;
} retired_t;

struct sender {
    struct ev_loop *loop; /* owned */
    sender_opts_t o;      /* options; endpoint strings owned below */
    char *in_ep, *ctl_ep, *stats_ep;
    void *in;    /* PULL */
    void *ctl;   /* PAIR */
    void *stats; /* PUSH: snapshots, events, MSG_RETIRED */
    zwatch_t *in_w, *ctl_w;
    const router_t *r;      /* borrowed from the hub (see msg.h) */
    uint64_t gen;           /* generation of r */
    const router_t *next_r; /* a switch that ran out of memory, retried
                               every tick; NULL when none */
    uint64_t next_gen;      /* its generation */
    uint64_t retired_told;  /* the last MSG_RETIRED generation sent */
    uint64_t stale;         /* routed messages of another generation */
    int switching;          /* inside s_switch: no state events (ids and
                               generation do not agree yet) */
    sdest_t *dests;         /* ndests */
    size_t ndests;
    stats_dest_t *snap; /* ndests, for the stats message */
    /* the message being placed */
    msg_part_t hdrs[MAX_PARTS];
    zmq_msg_t parts[MAX_PARTS];
    size_t nparts;         /* frames after the header frame */
    size_t next;           /* first part not placed yet */
    cbatch_t *batch;       /* its critical chunks, or NULL */
    int blocked_crit;      /* waiting for room in a full buffer */
    int64_t blocked_since; /* 0 when not holding back */
    ev_timer stall;        /* fires when the hold-back is over */
    ev_idle retry;         /* try placing again after progress */
    ev_timer tick;         /* stats, drain check */
    int64_t last_stats_ms;
    int draining;
    int64_t drain_deadline;
    int drain_spilled;  /* at the deadline, live critical chunks were sent
                           to Redis */
    retired_t *retired; /* destinations a reload left out */
    spill_t *spill;     /* the Redis buffer, or NULL without one */
    uint64_t *done;     /* tokens whose batches are safe, to tell the hub */
    size_t ndone, donecap;
    ev_prepare flush;       /* tells them before the loop waits */
    uint64_t lost_critical; /* critical datapoints dropped without a
                               stream (out of memory) */
};

void sender_opts_default(sender_opts_t *o)
{
    memset(o, 0, sizeof *o);
    dest_opts_default(&o->dest);
    spill_opts_default(&o->spill);
    o->stall_ms = (int)opt_default(OPT_STALL);
    o->drain_ms = (int)opt_default(OPT_DRAIN) * 1000;
}

static void s_release_fn(void *owner, int delivered)
{
    (void)delivered;
    zmq_msg_t *m = owner;
    zmq_msg_close(m);
    free(m);
}

/* One more of b's chunks is safe (or its placing is over: s_place holds
 * one count while it places the message).  When none is left, the hub may
 * acknowledge the batch (told by s_flush_fn). */
static void s_settle(sender_t *s, cbatch_t *b)
{
    if (b == NULL || --b->left > 0)
        return;
    if (s->ndone == s->donecap) {
        size_t cap = s->donecap ? s->donecap * 2 : 64;
        uint64_t *p = realloc(s->done, cap * sizeof *p);
        if (p == NULL) {
            /* the batch stays unacknowledged: a standalone satellite
             * sends it again */
            log_err("sender: out of memory: a batch is not acknowledged");
            free(b);
            return;
        }
        s->done = p;
        s->donecap = cap;
    }
    s->done[s->ndone++] = b->token;
    free(b);
    if (!ev_is_active(&s->flush))
        ev_prepare_start(s->loop, &s->flush);
}

static void s_crit_safe(spill_item_t *it)
{
    crit_t *c = (crit_t *)it;
    cbatch_t *b = c->batch;
    c->batch = NULL;
    s_settle(c->s, b);
}

static void s_crit_release(spill_item_t *it)
{
    crit_t *c = (crit_t *)it;
    if (c->batch)
        s_crit_safe(it); /* never left unsaid */
    zmq_msg_close(&c->msg);
    free(c);
}

/* Tell the hub which batches are safe. */
static void s_flush_done(sender_t *s)
{
    if (s->ndone == 0)
        return;
    if (msg_send(s->stats, MSG_CRITICAL_DONE, s->gen, (uint32_t)s->ndone,
                 s->done, s->ndone * sizeof *s->done, ZMQ_DONTWAIT) == 0)
        s->ndone = 0; /* else again at the next tick */
}

static void s_flush_fn(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    ev_prepare_stop(loop, w);
    s_flush_done(w->data);
}

/* Hand part i of the held message, a critical chunk of batch b, to its
 * destination's spill stream. */
static void s_push_critical(sender_t *s, size_t i, cbatch_t *b)
{
    sdest_t *sd = &s->dests[s->hdrs[i].id];
    crit_t *c = sd->d ? calloc(1, sizeof *c) : NULL;
    if (c == NULL || sd->st == NULL) {
        free(c);
        sd->lost += s->hdrs[i].lines;
        sd->unlogged += s->hdrs[i].lines;
        s->lost_critical += s->hdrs[i].lines;
        zmq_msg_close(&s->parts[i]);
        return; /* lost, counted: nothing to wait for */
    }
    if (b)
        b->left++;
    zmq_msg_init(&c->msg);
    zmq_msg_move(&c->msg, &s->parts[i]);
    zmq_msg_close(&s->parts[i]);
    c->s = s;
    c->batch = b;
    c->item.data = zmq_msg_data(&c->msg);
    c->item.len = zmq_msg_size(&c->msg);
    c->item.lines = s->hdrs[i].lines;
    c->item.safe = s_crit_safe;
    c->item.release = s_crit_release;
    spill_push(sd->st, &c->item);
}

/* Queue part i of the held message at its destination; b: the message's
 * critical chunks (NULL when it has none). */
static void s_push(sender_t *s, size_t i, cbatch_t *b)
{
    sdest_t *sd = &s->dests[s->hdrs[i].id];
    if (s->hdrs[i].token != 0) {
        s_push_critical(s, i, b);
        return;
    }
    zmq_msg_t *m = sd->d ? malloc(sizeof *m) : NULL;
    if (m == NULL) {
        sd->lost += s->hdrs[i].lines;
        sd->unlogged += s->hdrs[i].lines;
        zmq_msg_close(&s->parts[i]);
        return;
    }
    zmq_msg_init(m);
    zmq_msg_move(m, &s->parts[i]);
    zmq_msg_close(&s->parts[i]);
    sd->unlogged += dest_push(sd->d, zmq_msg_data(m), zmq_msg_size(m),
                              s->hdrs[i].lines, 0, s_release_fn, m);
}

/* Place the parts of the held message; returns 1 when all are placed. */
static int s_place(sender_t *s)
{
    int64_t now = clock_mono_ms();
    while (s->next < s->nparts) {
        size_t i = s->next;
        sdest_t *sd = &s->dests[s->hdrs[i].id];
        if (s->hdrs[i].token != 0) {
            /* a full buffer that says `when full block` holds intake back
             * until there is room (retried at every tick) */
            if (sd->st && !spill_room(sd->st, s->hdrs[i].lines) &&
                !s->draining) {
                s->blocked_crit = 1;
                return 0;
            }
            s->blocked_crit = 0;
            s_push(s, i, s->batch);
            s->next++;
            continue;
        }
        if (sd->d && !dest_room(sd->d, s->hdrs[i].lines) && !sd->overflow &&
            dest_up(sd->d) && !s->draining) {
            if (s->blocked_since == 0)
                s->blocked_since = now;
            if (now - s->blocked_since < s->o.stall_ms) {
                if (!ev_is_active(&s->stall)) {
                    ev_timer_set(&s->stall,
                                 (s->o.stall_ms - (now - s->blocked_since)) /
                                     1000.0,
                                 0.0);
                    ev_timer_start(s->loop, &s->stall);
                }
                return 0;
            }
            /* it did not make room in time: it drops its oldest from now
             * on (logged by s_log_drops when something is dropped) */
            sd->overflow = 1;
        }
        s_push(s, i, s->batch);
        s->next++;
        s->blocked_since = 0;
    }
    ev_timer_stop(s->loop, &s->stall);
    s->nparts = 0;
    s->next = 0;
    cbatch_t *b = s->batch;
    s->batch = NULL;
    s_settle(s, b); /* placing is over */
    return 1;
}

static void s_resume(sender_t *s)
{
    if (s_place(s) && !s->draining)
        zwatch_start(s->in_w);
}

static void s_stall_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    s_resume(t->data);
}

static void s_retry_fn(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    ev_idle_stop(loop, w);
    s_resume(w->data);
}

/* Tell the hub at once that destination id went up or down, so placement
 * (any_of, failover, dynamic) moves its share without waiting for the next
 * snapshot.  A lost event (full pipe) is mended by the next snapshot. */
static void s_tell_state(sender_t *s, size_t id, int up)
{
    if (s->switching)
        return;
    msg_dest_state_t ev = {.id = (uint32_t)id, .up = (uint32_t)up};
    if (msg_send(s->stats, MSG_DEST_STATE, s->gen, 0, &ev, sizeof ev,
                 ZMQ_DONTWAIT) == 0)
        s->dests[id].up = up;
}

static void s_dest_fn(void *arg, dest_t *d)
{
    sdest_t *sd = arg;
    sender_t *s = sd->s;
    if (sd->st)
        spill_dest_event(sd->st);
    if (sd->overflow && dest_queued(d) < s->o.dest.queue_cap / 2)
        sd->overflow = 0;
    if (dest_up(d) != sd->up)
        s_tell_state(s, sd->id, dest_up(d));
    if (s->nparts > 0 && !ev_is_active(&s->retry))
        ev_idle_start(s->loop, &s->retry);
}

/* Log what destinations dropped, with the count, at most once per 10 s
 * each; nothing when nothing was dropped. */
static void s_log_drops(sender_t *s, int64_t now)
{
    for (size_t i = 0; i < s->ndests; i++) {
        sdest_t *sd = &s->dests[i];
        if (sd->unlogged == 0 ||
            (sd->logged_ms != 0 && now - sd->logged_ms < 10000))
            continue;
        const router_dest_t *rd = router_dest(s->r, i);
        if (sd->d == NULL)
            log_err("dest: %s %s: out of memory: %llu datapoints dropped",
                    rd->cluster->name, rd->addr,
                    (unsigned long long)sd->unlogged);
        else
            log_warn("dest: %s %s: queue full (%s): dropped the oldest "
                     "%llu datapoints",
                     rd->cluster->name, rd->addr,
                     dest_up(sd->d) ? "it does not keep up" : "down",
                     (unsigned long long)sd->unlogged);
        sd->unlogged = 0;
        sd->logged_ms = now;
    }
}

/* Give sd a spill stream when there is a buffer and it has none (a
 * stream that cannot be made is made again at the next tick). */
static void s_make_stream(sender_t *s, sdest_t *sd)
{
    if (s->spill && sd->d && sd->st == NULL)
        sd->st = spill_stream_new(s->spill, sd->d);
}

static int s_same_dest(const router_dest_t *a, const router_dest_t *b)
{
    return strcmp(a->cluster->name, b->cluster->name) == 0 &&
           strcmp(a->addr, b->addr) == 0 &&
           a->member->type == b->member->type &&
           a->member->proto == b->member->proto &&
           /* a new transport is a new destination (a new link) */
           config_transport_eq(&a->member->tr, &b->member->tr) &&
           (a->cluster->type == CLUSTER_FILE ||
            a->cluster->type == CLUSTER_FILE_IP) ==
               (b->cluster->type == CLUSTER_FILE ||
                b->cluster->type == CLUSTER_FILE_IP);
}

/* The oldest generation a destination of the sender still points into; the
 * hub may free every one before it. */
static uint64_t s_oldest_gen(const sender_t *s)
{
    uint64_t g = s->gen;
    for (const retired_t *rt = s->retired; rt; rt = rt->next)
        if (rt->gen < g)
            g = rt->gen;
    return g;
}

/* Say MSG_RETIRED when the oldest generation in use moved on; retried at
 * every tick until the pipe takes it. */
static void s_tell_retired(sender_t *s)
{
    uint64_t g = s_oldest_gen(s);
    if (g > s->retired_told &&
        msg_send_ctl(s->stats, MSG_RETIRED, g, ZMQ_DONTWAIT) == 0)
        s->retired_told = g;
}

static void s_send_stats(sender_t *s);

/* Switch to the destinations of router nr (generation gen): those in both
 * keep their queue and connection, new ones start, the others retire.
 * Everything that can fail is done before anything changes: returns -1
 * (nothing changed) when the new tables cannot be had; a destination that
 * cannot be made is left NULL and made again at the next tick. */
static int s_switch(sender_t *s, const router_t *nr, uint64_t gen)
{
    size_t n = router_ndests(nr);
    sdest_t *nd = calloc(n ? n : 1, sizeof *nd);
    stats_dest_t *snap = calloc(n ? n : 1, sizeof *snap);
    char *used = calloc(s->ndests ? s->ndests : 1, 1);
    retired_t **rts = calloc(s->ndests ? s->ndests : 1, sizeof *rts);
    int ok = nd && snap && used && rts;
    for (size_t j = 0; ok && j < s->ndests; j++)
        ok = (rts[j] = calloc(1, sizeof *rts[j])) != NULL;
    if (!ok) {
        for (size_t j = 0; rts && j < s->ndests; j++)
            free(rts[j]);
        free(nd), free(snap), free(used), free(rts);
        return -1;
    }
    s->switching = 1;
    for (size_t i = 0; i < n; i++) {
        const router_dest_t *rd = router_dest(nr, i);
        nd[i].s = s;
        nd[i].id = i;
        for (size_t j = 0; j < s->ndests; j++) {
            if (!used[j] && s->dests[j].d &&
                s_same_dest(dest_info(s->dests[j].d), rd)) {
                used[j] = 1;
                nd[i] = s->dests[j];
                nd[i].id = i;
                nd[i].lost = 0;
                dest_rebind(nd[i].d, rd, s_dest_fn, &nd[i]);
                break;
            }
        }
        if (nd[i].d == NULL) {
            nd[i].d = dest_new(s->loop, rd, &s->o.dest, s_dest_fn, &nd[i]);
            nd[i].up = nd[i].d ? dest_up(nd[i].d) : 0;
            nd[i].st = NULL;
        }
        s_make_stream(s, &nd[i]);
    }
    int64_t now = clock_mono_ms();
    for (size_t j = 0; j < s->ndests; j++) {
        if (used[j] || s->dests[j].d == NULL) {
            free(rts[j]);
            continue;
        }
        retired_t *rt = rts[j];
        rt->d = s->dests[j].d;
        rt->st = s->dests[j].st;
        rt->gen = s->gen;
        rt->deadline = now + s->o.drain_ms;
        dest_rebind(rt->d, dest_info(rt->d), NULL, NULL);
        rt->next = s->retired;
        s->retired = rt;
    }
    free(rts);
    free(used);
    free(s->dests);
    free(s->snap);
    s->dests = nd;
    s->snap = snap;
    s->ndests = n;
    s->r = nr;
    s->gen = gen;
    s->switching = 0;
    if (s->spill)
        spill_set(s->spill, &router_config(nr)->buffer);
    /* the hub starts the new generation with every destination alive:
     * tell it the truth now */
    s_send_stats(s);
    s_tell_retired(s);
    return 0;
}

/* Make the destinations that ran out of memory, and a switch that did. */
static void s_mend(sender_t *s)
{
    if (s->next_r != NULL && s_switch(s, s->next_r, s->next_gen) == 0) {
        log_info("sender: reload to generation %llu done after running out "
                 "of memory",
                 (unsigned long long)s->next_gen);
        s->next_r = NULL;
        if (!s->draining)
            zwatch_start(s->in_w);
    }
    for (size_t i = 0; i < s->ndests; i++) {
        if (s->dests[i].d == NULL)
            s->dests[i].d = dest_new(s->loop, router_dest(s->r, i), &s->o.dest,
                                     s_dest_fn, &s->dests[i]);
        s_make_stream(s, &s->dests[i]);
    }
}

/* Close the retired destinations that are empty or out of time. */
static void s_reap(sender_t *s, int64_t now)
{
    retired_t **pp = &s->retired;
    while (*pp) {
        retired_t *rt = *pp;
        uint64_t left = dest_queued(rt->d);
        if (left == 0 || now >= rt->deadline) {
            if (left)
                log_warn("sender: %s %s left the configuration: %llu "
                         "datapoints not delivered",
                         dest_info(rt->d)->cluster->name,
                         dest_info(rt->d)->addr, (unsigned long long)left);
            dest_destroy(&rt->d);
            spill_stream_destroy(&rt->st);
            *pp = rt->next;
            free(rt);
        } else {
            pp = &rt->next;
        }
    }
    s_tell_retired(s);
}

/* Take the frames of a MSG_ROUTED whose header frame said h/extra. */
static void s_routed(sender_t *s, void *sock, const msg_hdr_t *h,
                     const void *table, size_t extra)
{
    size_t n = h->count;
    if (n == 0 || n > MAX_PARTS || extra != n * sizeof(msg_part_t)) {
        log_err("sender: malformed message from the router: dropped");
        msg_discard_rest(sock);
        return;
    }
    memcpy(s->hdrs, table, extra);
    size_t k = 0;
    for (; k < n; k++) {
        zmq_msg_init(&s->parts[k]);
        if (zmq_msg_recv(&s->parts[k], sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&s->parts[k]);
            break;
        }
        if (s->hdrs[k].id >= s->ndests ||
            zmq_msg_more(&s->parts[k]) != (k + 1 < n)) {
            k++;
            break;
        }
    }
    if (k != n || s->hdrs[k - 1].id >= s->ndests || h->gen != s->gen ||
        zmq_msg_more(&s->parts[k - 1])) {
        if (h->gen != s->gen) /* never: the pipe is in order, and a switch
                                 that failed stops the reading */
            s->stale++;
        else
            log_err("sender: malformed message from the router: dropped");
        for (size_t i = 0; i < k; i++)
            zmq_msg_close(&s->parts[i]);
        msg_discard_rest(sock);
        return;
    }
    s->nparts = n;
    s->next = 0;
    for (size_t i = 0; i < n; i++)
        if (s->hdrs[i].token != 0) {
            s->batch = malloc(sizeof *s->batch);
            if (s->batch) {
                s->batch->token = s->hdrs[i].token;
                s->batch->left = 1; /* held while placing */
            } else {
                log_err("sender: out of memory: a batch is not "
                        "acknowledged");
            }
            break;
        }
    if (!s_place(s))
        zwatch_stop(s->in_w);
}

static void s_in_fn(zwatch_t *w, void *sock, void *arg)
{
    sender_t *s = arg;
    zmq_msg_t head;
    zmq_msg_init(&head);
    if (zmq_msg_recv(&head, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&head);
        return;
    }
    msg_hdr_t h;
    size_t extra = 0;
    if (msg_hdr_parse(zmq_msg_data(&head), zmq_msg_size(&head), &h, &extra) !=
        0) {
        log_err("sender: malformed message from the router: dropped");
        zmq_msg_close(&head);
        msg_discard_rest(sock);
        return;
    }
    int more = zmq_msg_more(&head);
    if (h.type == MSG_ROUTED && more) {
        s_routed(s, sock, &h, (const char *)zmq_msg_data(&head) + sizeof h,
                 extra);
    } else if (h.type == MSG_SWITCH && more) {
        const router_t *nr = NULL;
        zmq_msg_t ptr;
        zmq_msg_init(&ptr);
        if (zmq_msg_recv(&ptr, sock, ZMQ_DONTWAIT) == (int)sizeof nr &&
            !zmq_msg_more(&ptr)) {
            memcpy(&nr, zmq_msg_data(&ptr), sizeof nr);
            if (s_switch(s, nr, h.gen) != 0) {
                /* what follows in the pipe is routed for the new table:
                 * take nothing more until the switch is made (the hub
                 * then stops acknowledging, and satellites hold it) */
                log_err("sender: reload: out of memory: retrying");
                s->next_r = nr;
                s->next_gen = h.gen;
                zwatch_stop(w);
            }
        }
        zmq_msg_close(&ptr);
        msg_discard_rest(sock);
    } else if (h.type == MSG_HA_STATE && !more) {
        if (s->spill)
            spill_set_active(s->spill, h.count != 0);
    } else if (h.type == MSG_DRAIN && !more) {
        s->draining = 1;
        s->drain_deadline = clock_mono_ms() + s->o.drain_ms;
        zwatch_stop(w);
        ev_feed_event(s->loop, &s->tick, EV_TIMER);
    } else {
        log_err("sender: unexpected message type %u from the router: "
                "dropped",
                h.type);
        msg_discard_rest(sock);
    }
    zmq_msg_close(&head);
}

static void s_send_stats(sender_t *s)
{
    for (size_t i = 0; i < s->ndests; i++) {
        sdest_t *sd = &s->dests[i];
        if (sd->d)
            dest_stats(sd->d, &s->snap[i]);
        else
            memset(&s->snap[i], 0, sizeof s->snap[i]);
        if (sd->st)
            spill_stream_stats(sd->st, &s->snap[i]);
        s->snap[i].dropped += sd->lost;
        sd->up = (int)s->snap[i].up;
    }
    msg_send(s->stats, MSG_STATS_SENDER, s->gen, (uint32_t)s->ndests, s->snap,
             s->ndests * sizeof *s->snap, ZMQ_DONTWAIT);
    if (s->spill) {
        stats_buffer_t b;
        spill_stats(s->spill, &b);
        b.dropped += s->lost_critical;
        msg_send(s->stats, MSG_STATS_BUFFER, s->gen, 0, &b, sizeof b,
                 ZMQ_DONTWAIT);
    }
}

static void s_tick_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    sender_t *s = t->data;
    int64_t now = clock_mono_ms();
    if (s->stale) {
        log_err("sender: %llu routed messages of another generation "
                "dropped",
                (unsigned long long)s->stale);
        s->stale = 0;
    }
    s_mend(s);
    s_flush_done(s);
    if (s->blocked_crit && s->nparts > 0)
        s_resume(s);
    if (now - s->last_stats_ms >= opt_default(OPT_SNAPSHOT)) {
        s->last_stats_ms = now;
        s_send_stats(s);
        s_log_drops(s, now);
    }
    s_reap(s, now);
    if (s->draining) {
        uint64_t left = 0;
        for (size_t i = 0; i < s->ndests; i++)
            left += s->dests[i].d ? dest_queued(s->dests[i].d) : 0;
        for (retired_t *rt = s->retired; rt; rt = rt->next)
            left += dest_queued(rt->d);
        /* what waits for Redis, while Redis answers */
        left += s->spill ? spill_busy(s->spill) : 0;
        if (left > 0 && now >= s->drain_deadline && s->spill &&
            !s->drain_spilled) {
            /* critical chunks still live at destinations that did not take
             * them: close those connections, so that they go to Redis, and
             * give Redis its answer time */
            s->drain_spilled = 1;
            spill_stop(s->spill);
            int n = 0;
            for (size_t i = 0; i < s->ndests; i++) {
                dest_t *d = s->dests[i].d;
                if (d && dest_up(d) && dest_kept(d) > 0) {
                    dest_abort(d, "drain time over: critical datapoints go "
                                  "to Redis");
                    n++;
                }
            }
            if (n > 0) {
                s->drain_deadline = now + opt_default(OPT_REDIS_COMMAND);
                return;
            }
        }
        if (left == 0 || now >= s->drain_deadline) {
            if (left)
                log_warn("sender: drain time over: %llu datapoints not "
                         "delivered",
                         (unsigned long long)left);
            s_send_stats(s);
            s_log_drops(s, now + 10000);
            ev_break(loop, EVBREAK_ALL);
        }
    }
}

static void s_ctl_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    sender_t *s = arg;
    msg_hdr_t h;
    if (msg_recv_ctl(sock, &h) == MSG_STOP)
        ev_break(s->loop, EVBREAK_ALL);
}

sender_t *sender_new(void *zctx, const router_t *r, const sender_opts_t *o,
                     char *err, size_t errlen)
{
    sender_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto nomem;
    s->o = *o;
    s->r = r;
    s->in_ep = strdup(o->in_endpoint);
    s->ctl_ep = strdup(o->ctl_endpoint);
    s->stats_ep = strdup(o->stats_endpoint);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    s->ndests = router_ndests(r);
    s->dests = calloc(s->ndests ? s->ndests : 1, sizeof *s->dests);
    s->snap = calloc(s->ndests ? s->ndests : 1, sizeof *s->snap);
    if (!s->in_ep || !s->ctl_ep || !s->stats_ep || !s->loop || !s->dests ||
        !s->snap)
        goto nomem;
    int linger = 0, hwm = 64;
    s->in = zmq_socket(zctx, ZMQ_PULL);
    s->ctl = zmq_socket(zctx, ZMQ_PAIR);
    s->stats = zmq_socket(zctx, ZMQ_PUSH);
    if (!s->in || !s->ctl || !s->stats)
        goto zerr;
    zmq_setsockopt(s->in, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->in, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s->ctl, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s->stats, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s->in, s->in_ep) != 0 || zmq_connect(s->ctl, s->ctl_ep) != 0 ||
        zmq_connect(s->stats, s->stats_ep) != 0)
        goto zerr;
    s->in_w = zwatch_new(s->loop, s->in, 64, s_in_fn, s);
    s->ctl_w = zwatch_new(s->loop, s->ctl, 1, s_ctl_fn, s);
    if (!s->in_w || !s->ctl_w)
        goto zerr;
    ev_init(&s->stall, s_stall_fn);
    s->stall.data = s;
    ev_idle_init(&s->retry, s_retry_fn);
    s->retry.data = s;
    ev_timer_init(&s->tick, s_tick_fn, 0.05, 0.05);
    s->tick.data = s;
    ev_prepare_init(&s->flush, s_flush_fn);
    s->flush.data = s;
    const config_t *cfg = router_config(r);
    if (cfg->buffer.target) {
        s->spill = spill_new(s->loop, &cfg->buffer, &o->spill, err, errlen);
        if (s->spill == NULL) {
            sender_destroy(&s);
            return NULL;
        }
    }
    for (size_t i = 0; i < s->ndests; i++) {
        s->dests[i].s = s;
        s->dests[i].id = i;
        s->dests[i].d = dest_new(s->loop, router_dest(r, i), &o->dest,
                                 s_dest_fn, &s->dests[i]);
        if (s->dests[i].d == NULL)
            goto nomem;
        s->dests[i].up = dest_up(s->dests[i].d);
        s_make_stream(s, &s->dests[i]);
    }
    return s;
zerr:
    snprintf(err, errlen, "sender: zmq: %s", zmq_strerror(zmq_errno()));
    sender_destroy(&s);
    return NULL;
nomem:
    snprintf(err, errlen, "sender: out of memory");
    sender_destroy(&s);
    return NULL;
}

int sender_run(sender_t *s)
{
    zwatch_start(s->in_w);
    zwatch_start(s->ctl_w);
    ev_timer_start(s->loop, &s->tick);
    ev_run(s->loop, 0);
    zwatch_stop(s->in_w);
    zwatch_stop(s->ctl_w);
    ev_timer_stop(s->loop, &s->tick);
    ev_timer_stop(s->loop, &s->stall);
    ev_idle_stop(s->loop, &s->retry);
    ev_prepare_stop(s->loop, &s->flush);
    return 0;
}

void sender_destroy(sender_t **ps)
{
    if (ps == NULL || *ps == NULL)
        return;
    sender_t *s = *ps;
    for (size_t i = s->next; i < s->nparts; i++)
        zmq_msg_close(&s->parts[i]);
    free(s->batch);
    /* the destinations first: their queues release the critical chunks
     * into their streams; then the streams, then the buffer */
    for (size_t i = 0; s->dests && i < s->ndests; i++)
        dest_destroy(&s->dests[i].d);
    while (s->retired) {
        retired_t *rt = s->retired;
        s->retired = rt->next;
        dest_destroy(&rt->d);
        spill_stream_destroy(&rt->st);
        free(rt);
    }
    for (size_t i = 0; s->dests && i < s->ndests; i++)
        spill_stream_destroy(&s->dests[i].st);
    spill_destroy(&s->spill);
    free(s->done);
    zwatch_destroy(&s->in_w);
    zwatch_destroy(&s->ctl_w);
    if (s->in)
        zmq_close(s->in);
    if (s->ctl)
        zmq_close(s->ctl);
    if (s->stats)
        zmq_close(s->stats);
    if (s->loop)
        ev_loop_destroy(s->loop);
    free(s->dests);
    free(s->snap);
    free(s->in_ep);
    free(s->ctl_ep);
    free(s->stats_ep);
    free(s);
    *ps = NULL;
}
