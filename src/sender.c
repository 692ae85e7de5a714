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
#include "zwatch.h"

#define MAX_PARTS ROUTER_MAX_DESTS

typedef struct {
    uint32_t id;     /* destination id */
    uint32_t lines;  /* datapoints in the frame */
} part_hdr_t;

typedef struct sender sender_t;

typedef struct {
    sender_t *s;     /* back pointer */
    dest_t *d;       /* owned */
    int overflow;    /* dropping without holding back, until below half */
} sdest_t;

/* A destination a reload left out: it writes what it holds until it is
 * empty or the drain time is over, then it is closed. */
typedef struct retired {
    dest_t *d;              /* owned */
    int64_t deadline;       /* close it then at the latest */
    struct retired *next;
} retired_t;

struct sender {
    struct ev_loop *loop;     /* owned */
    sender_opts_t o;          /* options; endpoint strings owned below */
    char *in_ep, *ctl_ep, *stats_ep;
    void *in;                 /* PULL */
    void *ctl;                /* PAIR */
    void *stats;              /* PUSH */
    zwatch_t *in_w, *ctl_w;
    const router_t *r;        /* borrowed */
    sdest_t *dests;           /* ndests */
    size_t ndests;
    stats_dest_t *snap;       /* ndests, for the stats message */
    /* the message being placed */
    part_hdr_t hdrs[MAX_PARTS];
    zmq_msg_t parts[MAX_PARTS];
    size_t nparts;            /* frames after the header frame */
    size_t next;              /* first part not placed yet */
    int64_t blocked_since;    /* 0 when not holding back */
    ev_timer stall;           /* fires when the hold-back is over */
    ev_idle retry;            /* try placing again after progress */
    ev_timer tick;            /* stats, drain check */
    int64_t last_stats_ms;
    int draining;
    int64_t drain_deadline;
    retired_t *retired;       /* destinations a reload left out */
};

void sender_opts_default(sender_opts_t *o)
{
    memset(o, 0, sizeof *o);
    dest_opts_default(&o->dest);
    o->stall_ms = 250;
    o->drain_ms = 10000;
}

static void s_release_fn(void *owner)
{
    zmq_msg_t *m = owner;
    zmq_msg_close(m);
    free(m);
}

static void s_push(sender_t *s, size_t i)
{
    sdest_t *sd = &s->dests[s->hdrs[i].id];
    zmq_msg_t *m = malloc(sizeof *m);
    if (m == NULL) {
        zmq_msg_close(&s->parts[i]);
        return;
    }
    zmq_msg_init(m);
    zmq_msg_move(m, &s->parts[i]);
    zmq_msg_close(&s->parts[i]);
    dest_push(sd->d, zmq_msg_data(m), zmq_msg_size(m), s->hdrs[i].lines,
              s_release_fn, m);
}

/* Place the parts of the held message; returns 1 when all are placed. */
static int s_place(sender_t *s)
{
    int64_t now = clock_mono_ms();
    while (s->next < s->nparts) {
        size_t i = s->next;
        sdest_t *sd = &s->dests[s->hdrs[i].id];
        if (!dest_room(sd->d, s->hdrs[i].lines) && !sd->overflow &&
            dest_up(sd->d) && !s->draining) {
            if (s->blocked_since == 0)
                s->blocked_since = now;
            if (now - s->blocked_since < s->o.stall_ms) {
                if (!ev_is_active(&s->stall)) {
                    ev_timer_set(&s->stall,
                                 (s->o.stall_ms - (now - s->blocked_since)) /
                                     1000.0, 0.0);
                    ev_timer_start(s->loop, &s->stall);
                }
                return 0;
            }
            sd->overflow = 1;
            log_warn("dest: %s %s: queue full for %d ms: dropping oldest",
                     dest_info(sd->d)->cluster->name, dest_info(sd->d)->addr,
                     s->o.stall_ms);
        }
        s_push(s, i);
        s->next++;
        s->blocked_since = 0;
    }
    ev_timer_stop(s->loop, &s->stall);
    s->nparts = 0;
    s->next = 0;
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

static void s_dest_fn(void *arg, dest_t *d)
{
    sdest_t *sd = arg;
    sender_t *s = sd->s;
    if (sd->overflow && dest_queued(d) < s->o.dest.queue_cap / 2)
        sd->overflow = 0;
    if (s->nparts > 0 && !ev_is_active(&s->retry))
        ev_idle_start(s->loop, &s->retry);
}

static void s_discard_message(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        zmq_msg_close(&m);
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    }
}

static int s_same_dest(const router_dest_t *a, const router_dest_t *b)
{
    return strcmp(a->cluster->name, b->cluster->name) == 0 &&
           strcmp(a->addr, b->addr) == 0 &&
           a->member->type == b->member->type &&
           a->member->proto == b->member->proto &&
           (a->cluster->type == CLUSTER_FILE ||
            a->cluster->type == CLUSTER_FILE_IP) ==
               (b->cluster->type == CLUSTER_FILE ||
                b->cluster->type == CLUSTER_FILE_IP);
}

/* Switch to the destinations of router nr: those in both keep their queue
 * and connection, new ones start, the others retire. */
static void s_reload(sender_t *s, const router_t *nr)
{
    size_t n = router_ndests(nr);
    sdest_t *nd = calloc(n ? n : 1, sizeof *nd);
    stats_dest_t *snap = calloc(n ? n : 1, sizeof *snap);
    char *used = calloc(s->ndests ? s->ndests : 1, 1);
    if (!nd || !snap || !used) {
        log_err("sender: reload: out of memory: keeping the destinations");
        free(nd), free(snap), free(used);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const router_dest_t *rd = router_dest(nr, i);
        nd[i].s = s;
        for (size_t j = 0; j < s->ndests; j++) {
            if (!used[j] && s_same_dest(dest_info(s->dests[j].d), rd)) {
                used[j] = 1;
                nd[i].d = s->dests[j].d;
                nd[i].overflow = s->dests[j].overflow;
                dest_rebind(nd[i].d, rd, s_dest_fn, &nd[i]);
                break;
            }
        }
        if (nd[i].d == NULL)
            nd[i].d = dest_new(s->loop, rd, &s->o.dest, s_dest_fn, &nd[i]);
    }
    for (size_t j = 0; j < s->ndests; j++) {
        if (used[j])
            continue;
        retired_t *rt = calloc(1, sizeof *rt);
        if (rt == NULL) {
            dest_destroy(&s->dests[j].d);
            continue;
        }
        rt->d = s->dests[j].d;
        rt->deadline = clock_mono_ms() + s->o.drain_ms;
        dest_rebind(rt->d, dest_info(rt->d), NULL, NULL);
        rt->next = s->retired;
        s->retired = rt;
    }
    free(used);
    free(s->dests);
    free(s->snap);
    s->dests = nd;
    s->snap = snap;
    s->ndests = n;
    s->r = nr;
    for (size_t i = 0; i < n; i++)
        if (nd[i].d == NULL) {
            log_err("sender: reload: out of memory: destination %s lost",
                    router_dest(nr, i)->addr);
            nd[i].d = NULL;
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
            *pp = rt->next;
            free(rt);
        } else {
            pp = &rt->next;
        }
    }
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
    size_t hl = zmq_msg_size(&head);
    if (hl == 6 && zmq_msg_more(&head) &&
        memcmp(zmq_msg_data(&head), "RELOAD", 6) == 0) {
        zmq_msg_close(&head);
        const router_t *nr = NULL;
        zmq_msg_t ptr;
        zmq_msg_init(&ptr);
        if (zmq_msg_recv(&ptr, sock, ZMQ_DONTWAIT) == (int)sizeof nr) {
            memcpy(&nr, zmq_msg_data(&ptr), sizeof nr);
            s_reload(s, nr);
        }
        zmq_msg_close(&ptr);
        return;
    }
    if (!zmq_msg_more(&head)) {
        if (hl == 5 && memcmp(zmq_msg_data(&head), "DRAIN", 5) == 0) {
            s->draining = 1;
            s->drain_deadline = clock_mono_ms() + s->o.drain_ms;
            zwatch_stop(w);
            ev_feed_event(s->loop, &s->tick, EV_TIMER);
        }
        zmq_msg_close(&head);
        return;
    }
    size_t n = hl / sizeof(part_hdr_t);
    if (hl % sizeof(part_hdr_t) != 0 || n == 0 || n > MAX_PARTS) {
        log_err("sender: malformed message from the router: dropped");
        zmq_msg_close(&head);
        s_discard_message(sock);
        return;
    }
    memcpy(s->hdrs, zmq_msg_data(&head), hl);
    zmq_msg_close(&head);
    size_t k = 0;
    for (; k < n; k++) {
        zmq_msg_init(&s->parts[k]);
        if (zmq_msg_recv(&s->parts[k], sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&s->parts[k]);
            break;
        }
        if (s->hdrs[k].id >= s->ndests) {
            k++;
            break;
        }
    }
    if (k != n || s->hdrs[k - 1].id >= s->ndests) {
        log_err("sender: malformed message from the router: dropped");
        for (size_t i = 0; i < k; i++)
            zmq_msg_close(&s->parts[i]);
        s_discard_message(sock);
        return;
    }
    s->nparts = n;
    s->next = 0;
    if (!s_place(s))
        zwatch_stop(w);
}

static void s_send_stats(sender_t *s)
{
    for (size_t i = 0; i < s->ndests; i++)
        dest_stats(s->dests[i].d, &s->snap[i]);
    if (zmq_send(s->stats, STATS_TAG_SENDER, strlen(STATS_TAG_SENDER),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(s->stats, s->snap, s->ndests * sizeof *s->snap,
                 ZMQ_DONTWAIT);
}

static void s_tick_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    sender_t *s = t->data;
    int64_t now = clock_mono_ms();
    if (now - s->last_stats_ms >= 1000) {
        s->last_stats_ms = now;
        s_send_stats(s);
    }
    s_reap(s, now);
    if (s->draining) {
        uint64_t left = 0;
        for (size_t i = 0; i < s->ndests; i++)
            left += dest_queued(s->dests[i].d);
        for (retired_t *rt = s->retired; rt; rt = rt->next)
            left += dest_queued(rt->d);
        if (left == 0 || now >= s->drain_deadline) {
            if (left)
                log_warn("sender: drain time over: %llu datapoints not "
                         "delivered",
                         (unsigned long long)left);
            s_send_stats(s);
            ev_break(loop, EVBREAK_ALL);
        }
    }
}

static void s_ctl_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    sender_t *s = arg;
    char cmd[32];
    int n = zmq_recv(sock, cmd, sizeof cmd, ZMQ_DONTWAIT);
    if (n == 4 && memcmp(cmd, "STOP", 4) == 0)
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
    for (size_t i = 0; i < s->ndests; i++) {
        s->dests[i].s = s;
        s->dests[i].d = dest_new(s->loop, router_dest(r, i), &o->dest,
                                 s_dest_fn, &s->dests[i]);
        if (s->dests[i].d == NULL)
            goto nomem;
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
    return 0;
}

void sender_destroy(sender_t **ps)
{
    if (ps == NULL || *ps == NULL)
        return;
    sender_t *s = *ps;
    for (size_t i = s->next; i < s->nparts; i++)
        zmq_msg_close(&s->parts[i]);
    for (size_t i = 0; s->dests && i < s->ndests; i++)
        dest_destroy(&s->dests[i].d);
    while (s->retired) {
        retired_t *rt = s->retired;
        s->retired = rt->next;
        dest_destroy(&rt->d);
        free(rt);
    }
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
