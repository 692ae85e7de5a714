/*
 * ha.c -- see ha.h.
 */
#include "ha.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "log.h"
#include "zwatch.h"

#define HB_MAGIC     "orchester-ha 1 "
#define ROUTES_MAGIC "orchester-routes 1 "
#define ROUTES_MAX   (4 << 20) /* a larger routes message is refused */

struct ha {
    struct ev_loop *loop; /* borrowed */
    bstar_opts_t o;
    bstar_t bs;
    void *pub, *sub;  /* owned */
    zwatch_t *sub_w;  /* owned */
    ev_timer beat;    /* heartbeat and tick */
    uint64_t seq;     /* heartbeats published */
    ha_change_fn *fn; /* state changes */
    void *arg;
    uint64_t failovers, refused, heard, bad, peer_seq;
    int64_t rejected_logged_ms; /* a rejected heartbeat: logged then */
    char *routes;               /* this member's route changes (owned) */
    uint64_t routes_hash;       /* their hash (routes_hash) */
    uint64_t peer_routes;       /* the hash the peer's heartbeat carried */
    int peer_has_routes;        /* it carried one */
    int64_t routes_sent_ms;     /* routes last published then */
    uint64_t routes_sent, routes_taken;
    ha_routes_fn *routes_fn; /* the active peer's routes */
    void *routes_arg;
};

static const char *s_role(const ha_t *h)
{
    return h->o.backup ? "backup" : "primary";
}

/* Publish this member's state now. */
static void s_publish(ha_t *h)
{
    char buf[96];
    int n =
        snprintf(buf, sizeof buf, HB_MAGIC "%s %s %llu %016llx", s_role(h),
                 bstar_state_name(h->bs.state), (unsigned long long)++h->seq,
                 (unsigned long long)h->routes_hash);
    zmq_send(h->pub, buf, (size_t)n, ZMQ_DONTWAIT);
}

/* Publish this member's route changes, when it is active: at once after
 * a change, and once a heartbeat while the peer says it has others. */
static void s_publish_routes(ha_t *h)
{
    if (!bstar_accepts(&h->bs) || h->routes == NULL)
        return;
    char head[96];
    int n = snprintf(head, sizeof head, ROUTES_MAGIC "%s %016llx\n",
                     bstar_state_name(h->bs.state),
                     (unsigned long long)h->routes_hash);
    size_t tl = strlen(h->routes);
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, (size_t)n + tl) != 0)
        return;
    memcpy(zmq_msg_data(&m), head, (size_t)n);
    memcpy((char *)zmq_msg_data(&m) + n, h->routes, tl);
    if (zmq_msg_send(&m, h->pub, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&m);
    else
        h->routes_sent++;
    h->routes_sent_ms = clock_mono_ms();
}

/* Apply ev; log and tell a change, and publish it at once. */
static int s_event(ha_t *h, bstar_event_t ev, const char *why)
{
    bstar_state_t from = h->bs.state;
    int rc = bstar_event(&h->bs, &h->o, ev, clock_mono_ms());
    if (rc != 0 && ev <= BSTAR_PEER_PASSIVE) {
        int64_t now = clock_mono_ms();
        if (h->rejected_logged_ms == 0 ||
            now - h->rejected_logged_ms >= 60000) {
            log_err("ha: %s heartbeat refused: %s", why,
                    h->bs.err ? h->bs.err : "?");
            h->rejected_logged_ms = now;
        }
    }
    if (rc == 0 && h->bs.changed) {
        bstar_state_t to = h->bs.state;
        if (to == BSTAR_ACTIVE && from == BSTAR_PASSIVE)
            h->failovers++;
        log_warn("ha: %s: %s -> %s (%s)", s_role(h), bstar_state_name(from),
                 bstar_state_name(to), why);
        s_publish(h);
        if (h->fn)
            h->fn(h->arg, from, to);
    }
    return rc;
}

static void s_beat_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    ha_t *h = t->data;
    s_event(h, BSTAR_TICK, "time");
    s_publish(h);
}

/* The peer's routes: "orchester-routes 1 STATE HASH\nTEXT".  Taken only
 * from an active peer, by a member that is not active. */
static void s_routes_msg(ha_t *h, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    char head[96], state[16];
    unsigned long long hash;
    size_t hl = nl ? (size_t)(nl - data) : 0;
    if (nl == NULL || hl >= sizeof head || len > ROUTES_MAX) {
        h->bad++;
        return;
    }
    memcpy(head, data, hl);
    head[hl] = '\0';
    if (sscanf(head + sizeof ROUTES_MAGIC - 1, "%15s %llx", state, &hash) !=
        2) {
        h->bad++;
        return;
    }
    if (strcmp(state, bstar_state_name(BSTAR_ACTIVE)) != 0 ||
        bstar_accepts(&h->bs) || hash == h->routes_hash || !h->routes_fn)
        return;
    h->routes_taken++;
    h->routes_fn(h->routes_arg, nl + 1, len - hl - 1);
}

/* A message of the peer: a heartbeat, "orchester-ha 1 ROLE STATE SEQ
 * [ROUTES]", or its route changes. */
static void s_sub_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    ha_t *h = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    int more = zmq_msg_more(&m);
    size_t n = zmq_msg_size(&m);
    const char *data = zmq_msg_data(&m);
    char buf[128], role[16], state[16];
    unsigned long long seq, routes = 0;
    int got = 0;
    if (!more && n > sizeof ROUTES_MAGIC - 1 &&
        memcmp(data, ROUTES_MAGIC, sizeof ROUTES_MAGIC - 1) == 0) {
        s_routes_msg(h, data, n);
        zmq_msg_close(&m);
        return;
    }
    if (n < sizeof buf) {
        memcpy(buf, data, n);
        buf[n] = '\0';
        if (strncmp(buf, HB_MAGIC, sizeof HB_MAGIC - 1) == 0)
            got = sscanf(buf + sizeof HB_MAGIC - 1, "%15s %15s %llu %llx", role,
                         state, &seq, &routes);
    }
    zmq_msg_close(&m);
    if (more || got < 3) {
        h->bad++;
        while (more) { /* a multipart message is no heartbeat */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0)
                more = 0;
            else
                more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        return;
    }
    bstar_event_t ev = 0;
    for (int s = BSTAR_PRIMARY; s <= BSTAR_PASSIVE; s++)
        if (strcmp(state, bstar_state_name((bstar_state_t)s)) == 0)
            ev = (bstar_event_t)s; /* PEER_* follow the states' order */
    if (ev == 0) {
        h->bad++;
        return;
    }
    h->heard++;
    h->peer_seq = seq;
    h->peer_has_routes = got == 4;
    h->peer_routes = routes;
    char why[64];
    snprintf(why, sizeof why, "the %s peer is %s", role, state);
    s_event(h, ev, why);
    /* the peer routes otherwise: tell it ours, once a heartbeat at most */
    if (h->peer_has_routes && h->peer_routes != h->routes_hash &&
        clock_mono_ms() - h->routes_sent_ms >= h->o.heartbeat_ms)
        s_publish_routes(h);
}

ha_t *ha_new(void *zctx, struct ev_loop *loop, const config_ha_t *cfg,
             const curve_conf_t *curve, ha_change_fn *fn, void *arg, char *err,
             size_t errlen)
{
    ha_t *h = calloc(1, sizeof *h);
    const char *failed = "";
    if (h == NULL) {
        snprintf(err, errlen, "ha: out of memory");
        return NULL;
    }
    h->loop = loop;
    h->fn = fn;
    h->arg = arg;
    bstar_opts_default(&h->o);
    h->o.backup = cfg->role == HA_BACKUP;
    h->o.heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 1000;
    h->o.expiry_ms = 2 * h->o.heartbeat_ms;
    h->o.failback_ms = cfg->failback_ms;
    bstar_init(&h->bs, &h->o, clock_mono_ms());
    int linger = 0;
    h->pub = zmq_socket(zctx, ZMQ_PUB);
    h->sub = zmq_socket(zctx, ZMQ_SUB);
    if (!h->pub || !h->sub)
        goto zerr;
    zmq_setsockopt(h->pub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(h->sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(h->sub, ZMQ_SUBSCRIBE, "", 0);
    if (curve && curve->on &&
        (curve_server(h->pub, &curve->kp) != 0 ||
         curve_client(h->sub, &curve->kp, curve->kp.pub) != 0))
        goto zerr;
    failed = cfg->publish;
    if (zmq_bind(h->pub, cfg->publish) != 0)
        goto zerr;
    failed = cfg->peer_publish;
    if (zmq_connect(h->sub, cfg->peer_publish) != 0)
        goto zerr;
    failed = "";
    h->sub_w = zwatch_new(loop, h->sub, 16, s_sub_fn, h);
    if (h->sub_w == NULL)
        goto zerr;
    ev_timer_init(&h->beat, s_beat_fn, h->o.heartbeat_ms / 1000.0,
                  h->o.heartbeat_ms / 1000.0);
    h->beat.data = h;
    return h;
zerr:
    snprintf(err, errlen, "ha: %s%s%s", failed, *failed ? ": " : "",
             zmq_strerror(zmq_errno()));
    ha_destroy(&h);
    return NULL;
}

void ha_destroy(ha_t **ph)
{
    if (ph == NULL || *ph == NULL)
        return;
    ha_t *h = *ph;
    ha_stop(h);
    zwatch_destroy(&h->sub_w);
    if (h->pub)
        zmq_close(h->pub);
    if (h->sub)
        zmq_close(h->sub);
    free(h->routes);
    free(h);
    *ph = NULL;
}

void ha_start(ha_t *h)
{
    log_info("ha: %s: starting as %s, heartbeat %lld ms, the peer expires "
             "after %lld ms, failback %s",
             s_role(h), bstar_state_name(h->bs.state),
             (long long)h->o.heartbeat_ms, (long long)h->o.expiry_ms,
             !h->o.backup       ? "(the backup's)"
             : h->o.failback_ms ? "automatic"
                                : "by hand");
    zwatch_start(h->sub_w);
    ev_timer_start(h->loop, &h->beat);
    s_publish(h);
}

void ha_stop(ha_t *h)
{
    if (h->sub_w)
        zwatch_stop(h->sub_w);
    ev_timer_stop(h->loop, &h->beat);
}

int ha_vote(ha_t *h)
{
    if (bstar_accepts(&h->bs))
        return 1;
    if (s_event(h, BSTAR_CLIENT_REQUEST, "a satellite voted") == 0 &&
        bstar_accepts(&h->bs))
        return 1;
    h->refused++;
    return 0;
}

int ha_active(const ha_t *h)
{
    return bstar_accepts(&h->bs);
}

int ha_failback(ha_t *h, char *msg, size_t len)
{
    if (s_event(h, BSTAR_FAILBACK, "failback by hand") != 0) {
        snprintf(msg, len, "error %s\n",
                 h->bs.err ? h->bs.err : "failback: refused");
        return -1;
    }
    snprintf(msg, len, "ok %s is %s: the primary takes over\n", s_role(h),
             bstar_state_name(h->bs.state));
    return 0;
}

void ha_status(const ha_t *h, ha_status_t *out)
{
    int64_t now = clock_mono_ms();
    memset(out, 0, sizeof *out);
    out->backup = h->o.backup;
    out->state = h->bs.state;
    out->peer_state = h->bs.peer_state;
    out->peer_age_ms = h->bs.peer_state ? now - h->bs.peer_seen : -1;
    out->peer_alive = bstar_peer_alive(&h->bs, now);
    out->failovers = h->failovers;
    out->refused = h->refused;
    out->heartbeats = h->heard;
    out->bad = h->bad;
    out->peer_seq = h->peer_seq;
    out->routes_hash = h->routes_hash;
    out->peer_routes = h->peer_has_routes ? h->peer_routes : 0;
    out->peer_has_routes = h->peer_has_routes;
    out->routes_sent = h->routes_sent;
    out->routes_taken = h->routes_taken;
}

void ha_on_routes(ha_t *h, ha_routes_fn *fn, void *arg)
{
    h->routes_fn = fn;
    h->routes_arg = arg;
}

int ha_set_routes(ha_t *h, uint64_t hash, const char *text)
{
    char *copy = strdup(text ? text : "");
    if (copy == NULL)
        return -1;
    free(h->routes);
    h->routes = copy;
    h->routes_hash = hash;
    s_publish(h);
    s_publish_routes(h);
    return 0;
}
