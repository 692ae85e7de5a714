/*
 * aggregator.c -- see aggregator.h.
 */
#include "aggregator.h"

#include <ev.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "aggr.h"
#include "clock.h"
#include "log.h"
#include "msg.h"
#include "numfmt.h"
#include "options.h"
#include "routes.h"
#include "stats.h"
#include "zwatch.h"

struct aggregator_defs {
    size_t n;
    aggr_def_t *defs;          /* n */
    aggr_compute_t **computes; /* n arrays, owned */
    char **keys;               /* n rule texts, owned */
};

struct aggregator {
    struct ev_loop *loop; /* owned */
    void *in, *out, *stats, *ctl;
    zwatch_t *in_w, *ctl_w;
    ev_timer tick;
    aggr_opts_t core_opts;
    aggr_t *core;            /* owned */
    aggregator_defs_t *defs; /* the rules in force (owned) */
    uint64_t gen;
    /* lines to send, one buffer per rule */
    char **obuf;
    size_t *olen, *ocap, *ovals;
    uint64_t *handover; /* per rule: series dropped when not active */
    uint64_t *lost;     /* per rule: values the hub's pipe did not take */
    stats_aggr_t *base; /* per rule: counters of cores dropped since */
    size_t nbufs;
    int active;
    int64_t last_stats_ms;
    long stall_ms; /* tests: a stalled aggregator, once
                      (ORCHESTER_TEST_AGGR_STALL_MS) */
};

/* ---- definitions --------------------------------------------------------- */

void aggregator_defs_free(aggregator_defs_t **pd)
{
    if (pd == NULL || *pd == NULL)
        return;
    aggregator_defs_t *d = *pd;
    for (size_t i = 0; i < d->n; i++) {
        if (d->computes)
            free(d->computes[i]);
        if (d->keys)
            free(d->keys[i]);
    }
    free(d->computes);
    free(d->keys);
    free(d->defs);
    free(d);
    *pd = NULL;
}

static aggr_ts_t s_ts(config_ts_at_t t)
{
    return t == TS_AT_START    ? AGGR_TS_START
           : t == TS_AT_MIDDLE ? AGGR_TS_MIDDLE
                               : AGGR_TS_END;
}

aggregator_defs_t *aggregator_defs_new(const router_t *r)
{
    aggregator_defs_t *d = calloc(1, sizeof *d);
    size_t n = router_naggrs(r);
    if (d == NULL)
        return NULL;
    d->n = n;
    d->defs = calloc(n ? n : 1, sizeof *d->defs);
    d->computes = calloc(n ? n : 1, sizeof *d->computes);
    d->keys = calloc(n ? n : 1, sizeof *d->keys);
    if (!d->defs || !d->computes || !d->keys) {
        aggregator_defs_free(&d);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const config_rule_t *rule = router_aggr(r, i);
        const config_aggr_t *a = rule->aggr;
        size_t kl = routes_rule_text(rule, NULL, 0);
        aggr_compute_t *c = calloc(a->ncomputes, sizeof *c);
        char *key = malloc(kl + 1);
        d->computes[i] = c;
        d->keys[i] = key;
        if (c == NULL || key == NULL) {
            aggregator_defs_free(&d);
            return NULL;
        }
        routes_rule_text(rule, key, kl + 1);
        for (size_t j = 0; j < a->ncomputes; j++) {
            /* the same order: sum, count, max, min, average, median,
             * percentile, variance, stddev */
            c[j].type = (aggr_type_t)(AGGR_SUM + (int)a->computes[j].kind);
            c[j].percentile = a->computes[j].percentile;
        }
        d->defs[i] = (aggr_def_t){(uint32_t)a->interval, (uint32_t)a->expire,
                                  s_ts(a->ts_at),        c,
                                  a->ncomputes,          key};
    }
    return d;
}

int aggregator_send_defs(void *sock, uint64_t gen, aggregator_defs_t *d)
{
    if (msg_send(sock, MSG_AGGR_DEFS, gen, 0, &d, sizeof d, 0) != 0) {
        aggregator_defs_free(&d);
        return -1;
    }
    return 0;
}

/* ---- output -------------------------------------------------------------- */

/* Buffers for n rules, the old ones' pending lines sent first. */
static int s_bufs(aggregator_t *a, size_t n)
{
    char **ob = calloc(n ? n : 1, sizeof *ob);
    size_t *ol = calloc(n ? n : 1, sizeof *ol);
    size_t *oc = calloc(n ? n : 1, sizeof *oc);
    size_t *ov = calloc(n ? n : 1, sizeof *ov);
    uint64_t *ho = calloc(n ? n : 1, sizeof *ho);
    uint64_t *lo = calloc(n ? n : 1, sizeof *lo);
    stats_aggr_t *ba = calloc(n ? n : 1, sizeof *ba);
    if (!ob || !ol || !oc || !ov || !ho || !lo || !ba) {
        free(ba);
        free(ob);
        free(ol);
        free(oc);
        free(ov);
        free(ho);
        free(lo);
        return -1;
    }
    for (size_t i = 0; i < a->nbufs; i++)
        free(a->obuf[i]);
    free(a->obuf);
    free(a->olen);
    free(a->ocap);
    free(a->ovals);
    free(a->handover);
    free(a->lost);
    free(a->base);
    a->base = ba;
    a->obuf = ob;
    a->olen = ol;
    a->ocap = oc;
    a->ovals = ov;
    a->handover = ho;
    a->lost = lo;
    a->nbufs = n;
    return 0;
}

static void s_emit_fn(void *arg, const char *name, size_t len, double value,
                      int64_t ts, size_t rule, size_t compute)
{
    (void)compute;
    aggregator_t *a = arg;
    if (rule >= a->nbufs)
        return;
    size_t need = len + 64 + 24 + 3;
    if (a->olen[rule] + need > a->ocap[rule]) {
        size_t cap = a->ocap[rule] ? a->ocap[rule] * 2 : 4096;
        while (cap < a->olen[rule] + need)
            cap *= 2;
        char *p = realloc(a->obuf[rule], cap);
        if (p == NULL) {
            a->lost[rule]++;
            return;
        }
        a->obuf[rule] = p;
        a->ocap[rule] = cap;
    }
    char *o = a->obuf[rule] + a->olen[rule];
    memcpy(o, name, len);
    o += len;
    *o++ = ' ';
    o += numfmt_double(o, value);
    *o++ = ' ';
    o += numfmt_i64(o, ts);
    *o++ = '\n';
    a->olen[rule] = (size_t)(o - a->obuf[rule]);
    a->ovals[rule]++;
}

/* Send what the rules emitted to the hub, a message per rule. */
static void s_send_out(aggregator_t *a)
{
    for (size_t i = 0; i < a->nbufs; i++) {
        if (a->olen[i] == 0)
            continue;
        if (msg_send(a->out, MSG_AGGR_OUT, a->gen, (uint32_t)i, a->obuf[i],
                     a->olen[i], ZMQ_DONTWAIT) != 0)
            a->lost[i] += a->ovals[i]; /* the hub is that far behind */
        a->olen[i] = 0;
        a->ovals[i] = 0;
    }
}

/* ---- input --------------------------------------------------------------- */

static void s_data(aggregator_t *a, const char *p, size_t len)
{
    int64_t now = clock_wall_s();
    const char *end = p + len;
    const char *names[256];
    size_t lens[256];
    while ((size_t)(end - p) >= sizeof(aggregator_rec_t)) {
        aggregator_rec_t rec;
        memcpy(&rec, p, sizeof rec);
        p += sizeof rec;
        size_t nc =
            rec.rule < a->defs->n ? a->defs->defs[rec.rule].ncomputes : 0;
        for (size_t i = 0; i < nc && i < 256; i++)
            names[i] = NULL;
        int ok = nc > 0 && nc <= 256;
        for (uint16_t k = 0; k < rec.nnames; k++) {
            aggregator_name_t nm;
            if ((size_t)(end - p) < sizeof nm) {
                ok = 0;
                p = end;
                break;
            }
            memcpy(&nm, p, sizeof nm);
            p += sizeof nm;
            if ((size_t)(end - p) < nm.len) {
                ok = 0;
                p = end;
                break;
            }
            if (nm.compute < nc && nc <= 256) {
                names[nm.compute] = p;
                lens[nm.compute] = nm.len;
            }
            p += nm.len;
        }
        if (ok)
            aggr_put(a->core, rec.rule, names, lens, rec.value, rec.ts, now);
    }
}

/* A new set of rules (a reload): unchanged ones keep their series. */
static void s_defs(aggregator_t *a, uint64_t gen, aggregator_defs_t *d)
{
    const char *err = NULL;
    aggr_t *core = aggr_new(d->defs, d->n, &a->core_opts, &err);
    if (core == NULL) {
        log_err("aggregator: reload: %s: the old rules stay",
                err ? err : "out of memory");
        aggregator_defs_free(&d);
        return;
    }
    s_send_out(a); /* what the old rules emitted, under their generation */
    if (s_bufs(a, d->n) != 0) {
        log_err("aggregator: reload: out of memory: the old rules stay");
        aggr_destroy(&core);
        aggregator_defs_free(&d);
        return;
    }
    size_t moved = aggr_take_over(core, a->core);
    aggr_stats_t left;
    aggr_stats_total(a->core, &left);
    if (left.series > 0)
        log_info("aggregator: reload: %zu series go on, %llu of changed "
                 "rules start clean",
                 moved, (unsigned long long)left.series);
    aggr_destroy(&a->core);
    a->core = core;
    aggregator_defs_free(&a->defs);
    a->defs = d;
    a->gen = gen;
}

/* This member of a pair is active, or no longer: one that is not drops
 * its open buckets (counted), so that no aggregate is split between the
 * members. */
static void s_ha(aggregator_t *a, int active)
{
    if (active == a->active)
        return;
    a->active = active;
    if (active)
        return;
    aggr_t *core = aggr_new(a->defs->defs, a->defs->n, &a->core_opts, NULL);
    if (core == NULL)
        return;
    uint64_t total = 0;
    for (size_t i = 0; i < a->defs->n; i++) {
        aggr_stats_t st;
        aggr_stats(a->core, i, &st);
        a->handover[i] += st.series;
        a->base[i].received += st.received;
        a->base[i].sent += st.sent;
        a->base[i].dropped += st.dropped_old + st.dropped_new +
                              st.dropped_limit + st.dropped_nomem;
        total += st.series;
    }
    aggr_destroy(&a->core);
    a->core = core;
    if (total > 0)
        log_warn("aggregator: this member is no longer active: %llu open "
                 "series dropped (the active member aggregates)",
                 (unsigned long long)total);
}

static void s_stats(aggregator_t *a)
{
    size_t n = a->defs->n;
    stats_aggr_t *s = calloc(n ? n : 1, sizeof *s);
    if (s == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        aggr_stats_t st;
        aggr_stats(a->core, i, &st);
        s[i] = (stats_aggr_t){
            a->base[i].received + st.received, a->base[i].sent + st.sent,
            a->base[i].dropped + st.dropped_old + st.dropped_new +
                st.dropped_limit + st.dropped_nomem + a->handover[i] +
                a->lost[i],
            st.series, st.buckets};
    }
    msg_send(a->stats, MSG_STATS_AGGR, a->gen, (uint32_t)n, s, n * sizeof *s,
             ZMQ_DONTWAIT);
    free(s);
}

static void s_in_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    aggregator_t *a = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    msg_hdr_t h;
    size_t extra;
    int more = zmq_msg_more(&m);
    int ok = msg_hdr_parse(zmq_msg_data(&m), zmq_msg_size(&m), &h, &extra);
    zmq_msg_close(&m);
    zmq_msg_t body;
    zmq_msg_init(&body);
    int has_body = more && zmq_msg_recv(&body, sock, ZMQ_DONTWAIT) >= 0;
    if (has_body && zmq_msg_more(&body))
        msg_discard_rest(sock);
    if (ok != 0) {
        zmq_msg_close(&body);
        return;
    }
    if (h.type == MSG_AGGR_DATA && has_body && h.gen == a->gen && a->active) {
        s_data(a, zmq_msg_data(&body), zmq_msg_size(&body));
        if (a->stall_ms > 0) { /* a test's stalled aggregator, once */
            struct timespec ts = {a->stall_ms / 1000,
                                  (a->stall_ms % 1000) * 1000000L};
            a->stall_ms = 0;
            nanosleep(&ts, NULL);
        }
    } else if (h.type == MSG_AGGR_DEFS && has_body &&
               zmq_msg_size(&body) == sizeof(aggregator_defs_t *)) {
        aggregator_defs_t *d;
        memcpy(&d, zmq_msg_data(&body), sizeof d);
        s_defs(a, h.gen, d);
    } else if (h.type == MSG_HA_STATE)
        s_ha(a, h.count != 0);
    else if (h.type == MSG_STOP) {
        /* what is complete goes out, as carbon-c-relay does at its end */
        aggr_flush(a->core, clock_wall_s(), s_emit_fn, a);
        s_send_out(a);
        s_stats(a);
        msg_send_ctl(a->out, MSG_AGGR_DONE, a->gen, 0);
        ev_break(a->loop, EVBREAK_ALL);
    }
    zmq_msg_close(&body);
}

/* The control pipe from main: MSG_STOP once the hub is done. */
static void s_ctl_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    aggregator_t *a = arg;
    msg_hdr_t h;
    if (msg_recv_ctl(sock, &h) == MSG_STOP) {
        aggr_flush(a->core, clock_wall_s(), s_emit_fn, a);
        s_send_out(a);
        ev_break(a->loop, EVBREAK_ALL);
    }
}

static void s_tick_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    aggregator_t *a = t->data;
    aggr_expire(a->core, clock_wall_s(), s_emit_fn, a);
    s_send_out(a);
    int64_t now = clock_mono_ms();
    if (now - a->last_stats_ms >= opt_default(OPT_SNAPSHOT)) {
        a->last_stats_ms = now;
        s_stats(a);
    }
}

/* ---- life ---------------------------------------------------------------- */

void aggregator_opts_default(aggregator_opts_t *o)
{
    aggr_opts_t c;
    aggr_opts_default(&c);
    memset(o, 0, sizeof *o);
    o->max_series = c.max_series;
    o->max_buckets = c.max_buckets;
    o->max_values = c.max_values;
}

static void *s_sock(void *zctx, int type, int hwm)
{
    void *s = zmq_socket(zctx, type);
    int linger = 0;
    if (s == NULL)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    return s;
}

aggregator_t *aggregator_new(void *zctx, const router_t *r,
                             const aggregator_opts_t *o, char *err,
                             size_t errlen)
{
    aggregator_t *a = calloc(1, sizeof *a);
    const char *why = NULL, *failed = "";
    if (a == NULL)
        goto nomem;
    aggr_opts_default(&a->core_opts);
    a->core_opts.max_series = o->max_series;
    a->core_opts.max_buckets = o->max_buckets;
    a->core_opts.max_values = o->max_values;
    a->active = 1;
    const char *stall = getenv("ORCHESTER_TEST_AGGR_STALL_MS");
    a->stall_ms = stall ? strtol(stall, NULL, 10) : 0;
    a->defs = aggregator_defs_new(r);
    if (a->defs == NULL || s_bufs(a, a->defs->n) != 0)
        goto nomem;
    a->core = aggr_new(a->defs->defs, a->defs->n, &a->core_opts, &why);
    if (a->core == NULL) {
        snprintf(err, errlen, "aggregator: %s", why ? why : "out of memory");
        goto fail;
    }
    a->loop = ev_loop_new(EVFLAG_AUTO);
    a->in = s_sock(zctx, ZMQ_PULL, AGGREGATOR_PIPE);
    a->out = s_sock(zctx, ZMQ_PUSH, 1000);
    a->stats = s_sock(zctx, ZMQ_PUSH, 0);
    a->ctl = s_sock(zctx, ZMQ_PAIR, 0);
    if (!a->loop || !a->in || !a->out || !a->stats || !a->ctl)
        goto nomem;
    failed = o->ctl_endpoint;
    if (zmq_connect(a->ctl, o->ctl_endpoint) != 0)
        goto zerr;
    failed = o->in_endpoint;
    if (zmq_bind(a->in, o->in_endpoint) != 0)
        goto zerr;
    failed = o->out_endpoint;
    if (zmq_connect(a->out, o->out_endpoint) != 0)
        goto zerr;
    failed = o->stats_endpoint;
    if (zmq_connect(a->stats, o->stats_endpoint) != 0)
        goto zerr;
    a->in_w = zwatch_new(a->loop, a->in, 64, s_in_fn, a);
    a->ctl_w = zwatch_new(a->loop, a->ctl, 1, s_ctl_fn, a);
    if (a->in_w == NULL || a->ctl_w == NULL)
        goto nomem;
    ev_timer_init(&a->tick, s_tick_fn, AGGREGATOR_TICK_MS / 1000.0,
                  AGGREGATOR_TICK_MS / 1000.0);
    a->tick.data = a;
    return a;
zerr:
    snprintf(err, errlen, "aggregator: %s: %s", failed,
             zmq_strerror(zmq_errno()));
    goto fail;
nomem:
    snprintf(err, errlen, "aggregator: out of memory");
fail:
    aggregator_destroy(&a);
    return NULL;
}

int aggregator_run(aggregator_t *a)
{
    zwatch_start(a->in_w);
    zwatch_start(a->ctl_w);
    ev_timer_start(a->loop, &a->tick);
    ev_run(a->loop, 0);
    ev_timer_stop(a->loop, &a->tick);
    zwatch_stop(a->in_w);
    zwatch_stop(a->ctl_w);
    return 0;
}

void aggregator_destroy(aggregator_t **pa)
{
    if (pa == NULL || *pa == NULL)
        return;
    aggregator_t *a = *pa;
    zwatch_destroy(&a->in_w);
    zwatch_destroy(&a->ctl_w);
    void *socks[] = {a->in, a->out, a->stats, a->ctl};
    for (size_t i = 0; i < 4; i++)
        if (socks[i])
            zmq_close(socks[i]);
    aggr_destroy(&a->core);
    aggregator_defs_free(&a->defs);
    for (size_t i = 0; i < a->nbufs; i++)
        free(a->obuf[i]);
    free(a->obuf);
    free(a->olen);
    free(a->ocap);
    free(a->ovals);
    free(a->handover);
    free(a->lost);
    free(a->base);
    if (a->loop)
        ev_loop_destroy(a->loop);
    free(a);
    *pa = NULL;
}
