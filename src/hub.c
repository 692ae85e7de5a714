/*
 * hub.c -- see hub.h.
 *
 * Ownership: the hub owns its sockets, the per-destination chunk buffers it
 * is filling, and the routed message it may be holding while the sender's
 * pipe is full.  A chunk buffer passes to zmq (zmq_msg_init_data) when the
 * message is built, and zmq frees it.
 */
#include "hub.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "aggregator.h"
#include "batch.h"
#include "clock.h"
#include "codec.h"
#include "ha.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "options.h"
#include "selfmetrics.h"
#include "stats.h"
#include "useall.h"
#include "zwatch.h"

/* Batches whose critical datapoints may be awaited at once. */
#define HUB_PENDING 1024

typedef struct {
    uint64_t received;   /* datapoints in batches */
    uint64_t batches;    /* batches routed */
    uint64_t bad;        /* malformed batches, and batches with bad lines */
    uint64_t badlines;   /* lines refused from batches (not canonical) */
    uint64_t blackholed; /* datapoints sent to the blackhole only */
    uint64_t unrouted;   /* datapoints no rule matched */
    uint64_t invalid;    /* datapoints a validate clause dropped */
    uint64_t reloads;    /* configurations reloaded */
    uint64_t reloads_refused; /* reloads refused (the old one stayed) */
    uint64_t route_changes;   /* route changes made here or taken from
                                 the active peer */
    uint64_t routes_refused;  /* the active peer's that did not apply */
    uint64_t aggr_behind;     /* datapoints for the aggregates dropped:
                                 the aggregator's pipe was full */
} hub_counters_t;

/* A configuration loaded by a reload.  Kept until the sender says that no
 * destination points into it any more (MSG_RETIRED, see msg.h). */
typedef struct gen {
    uint64_t gen;     /* its generation */
    config_t *cfg;    /* owned */
    router_t *r;      /* owned */
    struct gen *next; /* the next older one */
} gen_t;

struct hub {
    struct ev_loop *loop; /* owned */
    const config_t *cfg;  /* in force: the first is borrowed, later ones
                             are owned through gens */
    const router_t *r;    /* in force, likewise */
    gen_t *gens;          /* configurations loaded by reloads, newest
                             first, until retired */
    uint64_t gen;         /* generation in force (0: the first) */
    const config_t *boot; /* the first configuration: its listeners and
                             satellites endpoints are the ones running */
    char *config_path;    /* what a reload reads (owned) */
    selfmetrics_t *sm;    /* reset-mode state of the self metrics */
    hub_opts_t o;         /* options; strings owned below */
    char *hostname;
    void *router;     /* ROUTER: batches in, acks out */
    void *out;        /* PUSH to the sender */
    void *stats;      /* PULL of snapshots */
    void *ctl;        /* PAIR from main */
    void *control;    /* REP for orchester-ctl, or NULL */
    void *tls_reload; /* PUSH to the ingest thread, or NULL */
    zwatch_t *router_w, *stats_w, *ctl_w, *control_w;
    size_t ndests;
    /* the chunks being filled, two slots per destination: 2 * id for its
     * ordinary datapoints, 2 * id + 1 for its critical ones */
    char **obuf;
    size_t *olen, *ocap;
    uint32_t *ocount;  /* datapoints in it */
    uint32_t *touched; /* slots with data, in first-use order */
    size_t ntouched;
    /* the routed message held while the sender's pipe is full */
    zmq_msg_t held[1 + 2 * ROUTER_MAX_DESTS];
    size_t nheld;
    zmq_msg_t ack_to; /* identity to acknowledge once sent */
    int ack_pending;
    uint64_t ack_seq;
    uint64_t ack_token;  /* the held batch's critical token, or 0 */
    uint64_t next_token; /* the last token given out */
    /* batches with critical datapoints, acknowledged once the sender
     * says MSG_CRITICAL_DONE: token t sits at t % HUB_PENDING; reading
     * batches stops while the next token's slot is taken */
    struct {
        uint64_t token; /* 0: free */
        uint64_t seq;
        zmq_msg_t to; /* the satellite's identity (owned while taken) */
    } pending[HUB_PENDING];
    size_t npending;
    int pending_full;    /* reading stopped until a slot frees */
    ev_timer retry;      /* retries the held message */
    ev_timer statstimer; /* self metrics */
    int stopping;
    router_ctx_t *ctx;         /* routing scratch (owned) */
    int64_t invalid_logged_ms; /* when a validate failure was last logged */
    uint64_t invalid_unlogged; /* failures not logged since then */
    bool *alive;               /* per destination: up, as the sender's last
                                  event or snapshot said */
    const char *cur_rest;      /* the line being routed, after its name */
    char cur_src[CODEC_SOURCE_MAX + 1]; /* the address of its client, for
                                           `file ip` clusters */
    size_t cur_srclen;
    bool *fileip;   /* per destination: of a `file ip` cluster */
    int has_fileip; /* any is */
    size_t cur_restlen;
    hub_counters_t c;
    struct {
        uint64_t id;     /* satellite id from the batch header */
        int64_t seen_ms; /* when its last batch came */
    } sats[256];         /* satellites heard from recently */
    size_t nsats;
    stats_ingest_t ingest;   /* latest snapshot of the (one) ingest thread */
    stats_dest_t *dsnap;     /* latest sender snapshot, ndests */
    stats_buffer_t bsnap;    /* latest Redis buffer snapshot */
    stats_listener_t *lsnap; /* latest per-listener counters, boot->nlistens */
    char (*lnames)[10][400]; /* self metric names of each listener:
                                listeners.KEY.received, ...parseErrors,
                                ...refused, and of a TLS listener
                                ...tlsHandshakes, ...tlsFailures,
                                ...tlsTimeouts, ...decodeErrors,
                                ...tlsCertRefused, ...tls12Handshakes and
                                ...tls13Handshakes (see s_counters) */
    char *reply;             /* control reply buffer */
    size_t replycap;
    ha_t *ha;          /* this member of an HA pair (owned), or NULL */
    zap_t *zap;        /* the ZAP handler of CURVE (owned), or NULL */
    int ha_told;       /* the active flag the sender was last told (-1: none) */
    config_t *base;    /* the tree the file gave, before the route
                          changes (owned) */
    routes_t *routes;  /* the route changes in force (owned) */
    char *routes_path; /* their file (owned) */
    char skipped[2048];    /* the changes the last build skipped, a line
                              each */
    int64_t routes_err_ms; /* a peer's routes refused: logged then */
    /* the aggregator (src/aggregator.h) */
    void *agg_out;   /* PUSH: records, rules, HA state, STOP */
    void *agg_in;    /* PULL: outputs, DONE */
    zwatch_t *agg_w; /* on agg_in */
    char *abuf;      /* records being filled */
    size_t alen, acap;
    uint64_t arecs;      /* records in abuf */
    uint32_t agg_cur;    /* the rule of the open record (UINT32_MAX: none) */
    size_t agg_hdr;      /* its header's offset in abuf */
    int agg_told;        /* the active flag it was last told (-1: none) */
    const router_t *r0;  /* generation 0's router (borrowed) */
    stats_aggr_t *asnap; /* the aggregator's last snapshot */
    size_t nasnap;
    uint64_t asnap_gen;
    int agg_stopping;  /* STOP sent: waiting for its DONE */
    ev_timer agg_stop; /* bounds that wait */
};

/* ---- building routed messages ------------------------------------------- */

/* Append a datapoint to chunk slot id: name, then rest (the line from the
 * end of the routing name on). */
static int s_append(hub_t *h, uint32_t id, const char *name, size_t namelen,
                    const char *rest, size_t restlen)
{
    size_t len = namelen + restlen;
    if (h->olen[id] + len > h->ocap[id]) {
        size_t cap = h->ocap[id] ? h->ocap[id] * 2 : 16384;
        while (cap < h->olen[id] + len)
            cap *= 2;
        char *p = realloc(h->obuf[id], cap);
        if (p == NULL)
            return -1;
        h->obuf[id] = p;
        h->ocap[id] = cap;
    }
    if (h->ocount[id] == 0)
        h->touched[h->ntouched++] = id;
    memcpy(h->obuf[id] + h->olen[id], name, namelen);
    memcpy(h->obuf[id] + h->olen[id] + namelen, rest, restlen);
    h->olen[id] += len;
    h->ocount[id]++;
    return 0;
}

/* The client's address, to a `file ip` destination, before the line: the
 * name goes with the rest of the line. */
static int s_append_src(hub_t *h, uint32_t slot, const char *name,
                        size_t namelen)
{
    char buf[CODEC_SOURCE_MAX + 2 + 4096];
    if (h->cur_srclen + 1 + namelen > sizeof buf)
        return -1;
    memcpy(buf, h->cur_src, h->cur_srclen);
    buf[h->cur_srclen] = ' ';
    memcpy(buf + h->cur_srclen + 1, name, namelen);
    return s_append(h, slot, buf, h->cur_srclen + 1 + namelen, h->cur_rest,
                    h->cur_restlen);
}

static void s_emit_fn(void *arg, uint32_t id, const char *name, size_t namelen,
                      int critical)
{
    hub_t *h = arg;
    uint32_t slot = 2 * id + (critical != 0);
    int rc =
        h->has_fileip && h->fileip[id]
            ? s_append_src(h, slot, name, namelen)
            : s_append(h, slot, name, namelen, h->cur_rest, h->cur_restlen);
    if (rc != 0)
        log_err("hub: out of memory: datapoint dropped");
}

/* The source all datapoints routed next came from (CODEC_LINES_SRC). */
static void s_set_src(hub_t *h, const char *src, size_t len)
{
    if (len > CODEC_SOURCE_MAX)
        len = 0;
    memcpy(h->cur_src, src, len);
    h->cur_src[len] = '\0';
    h->cur_srclen = len;
}

/* A `validate ... else log` clause dropped a datapoint: log it, one line
 * a second at most, with how many were left out since the last. */
static void s_log_invalid(hub_t *h)
{
    const router_invalid_t *iv = router_ctx_invalid(h->ctx);
    int64_t now = clock_mono_ms();
    if (iv == NULL)
        return;
    if (h->invalid_logged_ms != 0 && now - h->invalid_logged_ms < 1000) {
        h->invalid_unlogged++;
        return;
    }
    log_warn("router: %s:%d: validate failed, dropped: %s %s (%llu more "
             "since the last report)",
             iv->rule->pos.file, iv->rule->pos.line, iv->name, iv->data,
             (unsigned long long)h->invalid_unlogged);
    h->invalid_logged_ms = now;
    h->invalid_unlogged = 0;
}

/* Room for n more bytes of records. */
static int s_agg_room(hub_t *h, size_t n)
{
    if (h->alen + n <= h->acap)
        return 0;
    size_t cap = h->acap ? h->acap * 2 : 65536;
    while (cap < h->alen + n)
        cap *= 2;
    char *p = realloc(h->abuf, cap);
    if (p == NULL)
        return -1;
    h->abuf = p;
    h->acap = cap;
    return 0;
}

/* An aggregate rule took the datapoint being routed (router_aggr_fn): its
 * record gets the name of this compute. */
static void s_aggr_fn(void *arg, uint32_t rule, uint32_t compute,
                      const char *name, size_t namelen)
{
    hub_t *h = arg;
    aggregator_name_t nm = {(uint16_t)compute, (uint16_t)namelen};
    if (h->agg_out == NULL || namelen > UINT16_MAX || compute > UINT16_MAX ||
        s_agg_room(h, sizeof(aggregator_rec_t) + sizeof nm + namelen) != 0)
        return;
    aggregator_rec_t rec;
    if (rule != h->agg_cur) {
        /* the value and the timestamp: after the name (and its tags) */
        const char *v = memchr(h->cur_rest, ' ', h->cur_restlen);
        char *end = NULL;
        memset(&rec, 0, sizeof rec);
        rec.rule = rule;
        rec.value = v ? strtod(v + 1, &end) : 0;
        rec.ts = end ? strtoll(end, NULL, 10) : 0;
        h->agg_hdr = h->alen;
        memcpy(h->abuf + h->alen, &rec, sizeof rec);
        h->alen += sizeof rec;
        h->agg_cur = rule;
        h->arecs++;
    }
    memcpy(&rec, h->abuf + h->agg_hdr, sizeof rec);
    rec.nnames++;
    memcpy(h->abuf + h->agg_hdr, &rec, sizeof rec);
    memcpy(h->abuf + h->alen, &nm, sizeof nm);
    memcpy(h->abuf + h->alen + sizeof nm, name, namelen);
    h->alen += sizeof nm + namelen;
}

/* Hand the records to the aggregator, never waiting: when its pipe is full
 * they are dropped, counted. */
static void s_agg_flush(hub_t *h)
{
    if (h->alen == 0)
        return;
    if (msg_send(h->agg_out, MSG_AGGR_DATA, h->gen, 0, h->abuf, h->alen,
                 ZMQ_DONTWAIT) != 0)
        h->c.aggr_behind += h->arecs;
    h->alen = 0;
    h->arecs = 0;
}

static int s_route_line(void *arg, const char *line, size_t len, size_t namelen)
{
    hub_t *h = arg;
    if (namelen == CODEC_SOURCE) { /* the client of the next datapoints */
        s_set_src(h, line, len);
        return 0;
    }
    h->cur_rest = line + namelen;
    h->cur_restlen = len - namelen;
    h->agg_cur = UINT32_MAX;
    int how = router_route(h->r, h->ctx, line, len, namelen, h->alive,
                           s_emit_fn, h, NULL, NULL);
    if (how & ROUTE_AGGREGATED)
        how |= ROUTE_SENT; /* taken, not lost */
    if (how & ROUTE_INVALID_LOG)
        s_log_invalid(h);
    if (!(how & ROUTE_SENT)) {
        if (how & ROUTE_BLACKHOLE)
            h->c.blackholed++;
        else if (how & ROUTE_INVALID)
            h->c.invalid++;
        else
            h->c.unrouted++;
    }
    return 0;
}

static void s_free_fn(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Turn the filled chunks into the held message; its critical chunks carry
 * a new token (h->ack_token), 0 when there are none.  The aggregator gets
 * its records at the same time. */
static void s_build(hub_t *h)
{
    s_agg_flush(h);
    size_t n = h->ntouched;
    zmq_msg_init_size(&h->held[0], sizeof(msg_hdr_t) + n * sizeof(msg_part_t));
    msg_hdr_t mh = {.type = MSG_ROUTED, .count = (uint32_t)n, .gen = h->gen};
    char *head = zmq_msg_data(&h->held[0]);
    memcpy(head, &mh, sizeof mh);
    h->ack_token = 0;
    for (size_t i = 0; i < n; i++)
        if (h->touched[i] & 1) {
            h->ack_token = ++h->next_token;
            break;
        }
    for (size_t i = 0; i < n; i++) {
        uint32_t id = h->touched[i];
        msg_part_t ph = {.id = id / 2,
                         .lines = h->ocount[id],
                         .token = (id & 1) ? h->ack_token : 0};
        memcpy(head + sizeof mh + i * sizeof ph, &ph, sizeof ph);
        zmq_msg_init_data(&h->held[1 + i], h->obuf[id], h->olen[id], s_free_fn,
                          NULL);
        h->obuf[id] = NULL;
        h->olen[id] = h->ocap[id] = 0;
        h->ocount[id] = 0;
    }
    h->nheld = 1 + n;
    h->ntouched = 0;
}

/* Answer batch seq (BATCH_ACK, or BATCH_NACK: not taken) to the satellite
 * whose identity is *to (closed). */
static void s_answer(hub_t *h, zmq_msg_t *to, uint64_t seq, uint8_t type)
{
    unsigned char buf[BATCH_HDR_LEN];
    batch_hdr_t a = {.type = type, .seq = seq, .count = 64};
    batch_hdr_encode(&a, buf);
    /* EHOSTUNREACH: the satellite is gone; it resends elsewhere */
    if (zmq_msg_send(to, h->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(h->router, buf, sizeof buf, ZMQ_DONTWAIT);
    zmq_msg_close(to);
}

static void s_ack_to(hub_t *h, zmq_msg_t *to, uint64_t seq)
{
    s_answer(h, to, seq, BATCH_ACK);
}

/* The sender has the held batch: acknowledge it now, or, when it carries
 * critical datapoints, once the sender says they are safe (s_critical_done). */
static void s_send_ack(hub_t *h)
{
    if (!h->ack_pending)
        return;
    h->ack_pending = 0;
    if (h->ack_token == 0) {
        s_ack_to(h, &h->ack_to, h->ack_seq);
        return;
    }
    size_t k = h->ack_token % HUB_PENDING; /* free: s_router_fn checked */
    h->pending[k].token = h->ack_token;
    h->pending[k].seq = h->ack_seq;
    zmq_msg_init(&h->pending[k].to);
    zmq_msg_move(&h->pending[k].to, &h->ack_to);
    zmq_msg_close(&h->ack_to);
    h->npending++;
}

/* Whether the next batch's token would find its slot taken. */
static int s_pending_full(const hub_t *h)
{
    return h->pending[(h->next_token + 1) % HUB_PENDING].token != 0;
}

/* MSG_CRITICAL_DONE: acknowledge the batches of these tokens. */
static void s_critical_done(hub_t *h, const uint64_t *tokens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = tokens[i] % HUB_PENDING;
        if (tokens[i] == 0 || h->pending[k].token != tokens[i])
            continue; /* never: each token is said once */
        s_ack_to(h, &h->pending[k].to, h->pending[k].seq);
        h->pending[k].token = 0;
        h->npending--;
    }
    if (h->pending_full && !s_pending_full(h)) {
        h->pending_full = 0;
        if (!h->stopping && h->nheld == 0)
            zwatch_start(h->router_w);
    }
}

/* Tell the sender whether this member is active (in a pair only the
 * active one replays the shared buffer; alone it always is).  Retried
 * after every batch until the pipe takes it. */
static void s_tell_ha(hub_t *h)
{
    int active = h->ha ? ha_active(h->ha) : 1;
    if (h->agg_out && active != h->agg_told &&
        msg_send(h->agg_out, MSG_HA_STATE, h->gen, (uint32_t)active, NULL, 0,
                 ZMQ_DONTWAIT) == 0)
        h->agg_told = active;
    if (active != h->ha_told &&
        msg_send(h->out, MSG_HA_STATE, h->gen, (uint32_t)active, NULL, 0,
                 ZMQ_DONTWAIT) == 0)
        h->ha_told = active;
}

static void s_ha_fn(void *arg, bstar_state_t from, bstar_state_t to)
{
    (void)from;
    (void)to;
    s_tell_ha(arg);
}

/* Send the held message; returns 0 when sent (or nothing held). */
static int s_flush_held(hub_t *h, int flags)
{
    if (h->nheld == 0)
        return 0;
    if (h->nheld == 1) { /* nothing routed anywhere */
        zmq_msg_close(&h->held[0]);
        h->nheld = 0;
        s_send_ack(h);
        return 0;
    }
    for (size_t i = 0; i < h->nheld; i++) {
        int more = i + 1 < h->nheld ? ZMQ_SNDMORE : 0;
        if (zmq_msg_send(&h->held[i], h->out, more | flags) < 0) {
            if (i == 0 && errno == EAGAIN)
                return -1;
            log_err("hub: sender pipe: %s", zmq_strerror(errno));
        }
    }
    for (size_t i = 0; i < h->nheld; i++)
        zmq_msg_close(&h->held[i]);
    h->nheld = 0;
    s_send_ack(h);
    return 0;
}

static void s_retry_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    hub_t *h = t->data;
    if (s_flush_held(h, ZMQ_DONTWAIT) == 0) {
        ev_timer_stop(loop, t);
        if (!h->stopping && !h->pending_full)
            zwatch_start(h->router_w);
        if (h->agg_w)
            zwatch_start(h->agg_w);
    }
}

/* ---- batches ------------------------------------------------------------- */

static void s_recv_rest(void *sock, zmq_msg_t *parts, int max, int *n)
{
    int more = 1;
    size_t sz = sizeof more;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_t *m = *n < max ? &parts[*n] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            return;
        }
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
        if (m == &tmp)
            zmq_msg_close(m);
        (*n)++;
    }
}

/* Note that satellite id sent a batch (for satellites.connected). */
static void s_seen(hub_t *h, uint64_t id)
{
    int64_t now = (int64_t)(ev_now(h->loop) * 1000.0);
    size_t oldest = 0;
    for (size_t i = 0; i < h->nsats; i++) {
        if (h->sats[i].id == id) {
            h->sats[i].seen_ms = now;
            return;
        }
        if (h->sats[i].seen_ms < h->sats[oldest].seen_ms)
            oldest = i;
    }
    size_t k =
        h->nsats < sizeof h->sats / sizeof h->sats[0] ? h->nsats++ : oldest;
    h->sats[k].id = id;
    h->sats[k].seen_ms = now;
}

/* Satellites that sent a batch within the last 10 seconds. */
static uint64_t s_connected(const hub_t *h)
{
    int64_t now = (int64_t)(ev_now(h->loop) * 1000.0);
    uint64_t n = 0;
    for (size_t i = 0; i < h->nsats; i++)
        n += now - h->sats[i].seen_ms <= 10000;
    return n;
}

static void s_router_fn(zwatch_t *w, void *sock, void *arg)
{
    hub_t *h = arg;
    zmq_msg_t parts[3];
    int n = 0;
    s_recv_rest(sock, parts, 3, &n);
    if (n == 0)
        return;
    batch_hdr_t bh;
    if (n < 2 ||
        batch_hdr_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]),
                         &bh) != 0 ||
        bh.type != BATCH_DATA) {
        /* no sequence number to acknowledge: count it and drop it */
        h->c.bad++;
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&parts[i]);
        return;
    }
    /* in a pair, only the active member takes batches (the client vote
     * may make this one active); the satellite turns to the other one */
    if (h->ha && !ha_vote(h->ha)) {
        /* not taken: say so, so that the satellite turns to the other
         * member at once instead of waiting for its timeout */
        zmq_msg_t to;
        zmq_msg_init(&to);
        zmq_msg_copy(&to, &parts[0]);
        s_answer(h, &to, bh.seq, BATCH_NACK);
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&parts[i]);
        return;
    }
    const codec_t *codec = codec_find(bh.codec);
    long k = -1, refused = 0;
    /* `file ip`: a batch names its clients' addresses (CODEC_LINES_SRC);
     * of one that does not, the address is the satellite's */
    const char *peer = n == 3 && bh.codec != CODEC_LINES_SRC
                           ? zmq_msg_gets(&parts[2], "Peer-Address")
                           : NULL;
    s_set_src(h, peer ? peer : "", peer ? strlen(peer) : 0);
    if (n == 3 && codec != NULL)
        k = codec->decode(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                          h->o.maxline, s_route_line, h, &refused);
    /* a malformed batch is acknowledged too: sending it again would not
     * mend it; its good lines are routed, its bad lines dropped */
    if (k < 0 || refused > 0)
        h->c.bad++;
    if (k > 0)
        h->c.received += (uint64_t)k;
    h->c.badlines += (uint64_t)refused;
    h->c.batches++;
    s_seen(h, bh.sat_id);
    s_build(h);
    zmq_msg_init(&h->ack_to);
    zmq_msg_move(&h->ack_to, &parts[0]);
    h->ack_pending = 1;
    h->ack_seq = bh.seq;
    for (int i = 0; i < n && i < 3; i++)
        zmq_msg_close(&parts[i]);
    if (s_flush_held(h, ZMQ_DONTWAIT) != 0) {
        zwatch_stop(w);
        double every = (double)opt_default(OPT_HELD_RETRY) / 1000.0;
        ev_timer_set(&h->retry, every, every);
        ev_timer_start(h->loop, &h->retry);
    }
    s_tell_ha(h);
    /* too many batches wait for their critical datapoints: take no more
     * until one is safe (the satellites hold theirs) */
    if (s_pending_full(h)) {
        h->pending_full = 1;
        zwatch_stop(w);
    }
}

/* ---- counters ------------------------------------------------------------ */

/* Free the configurations older than gen: the sender said that none of its
 * destinations points into them (MSG_RETIRED).  The one in force stays. */
static void s_retire(hub_t *h, uint64_t gen)
{
    gen_t **pp = &h->gens;
    int freed = 0;
    while (*pp) {
        gen_t *g = *pp;
        if (g->gen < gen && g->gen != h->gen) {
            *pp = g->next;
            router_destroy(&g->r);
            config_destroy(&g->cfg);
            free(g);
            freed = 1;
        } else {
            pp = &g->next;
        }
    }
#ifdef __GLIBC__
    /* a configuration is many small blocks; give their pages back, so that
     * a process reloaded in a loop keeps the footprint of one config */
    if (freed)
        malloc_trim(0);
#else
    (void)freed;
#endif
}

/* Snapshots and events from the other threads (msg.h); what belongs to a
 * generation other than the one in force is stale and dropped. */
static void s_stats_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    hub_t *h = arg;
    zmq_msg_t parts[2];
    int n = 0;
    s_recv_rest(sock, parts, 2, &n);
    msg_hdr_t mh;
    size_t extra = 0;
    if (n < 1 || n > 2 ||
        msg_hdr_parse(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &mh,
                      &extra) != 0 ||
        extra != 0) {
        for (int i = 0; i < n && i < 2; i++)
            zmq_msg_close(&parts[i]);
        return;
    }
    const void *body = n == 2 ? zmq_msg_data(&parts[1]) : NULL;
    size_t bl = n == 2 ? zmq_msg_size(&parts[1]) : 0;
    switch (mh.type) {
    case MSG_STATS_INGEST:
        if (bl == sizeof h->ingest)
            memcpy(&h->ingest, body, bl);
        break;
    case MSG_STATS_LISTENERS:
        if (mh.count == h->boot->nlistens &&
            bl == mh.count * sizeof *h->lsnap && bl > 0)
            memcpy(h->lsnap, body, bl);
        break;
    case MSG_STATS_SENDER:
        if (mh.gen == h->gen && mh.count == h->ndests &&
            bl == h->ndests * sizeof *h->dsnap && bl > 0) {
            memcpy(h->dsnap, body, bl);
            for (size_t i = 0; i < h->ndests; i++)
                h->alive[i] = h->dsnap[i].up != 0;
        }
        s_tell_ha(h); /* a state the pipe did not take: again now */
        break;
    case MSG_DEST_STATE: {
        msg_dest_state_t ev;
        if (mh.gen == h->gen && bl == sizeof ev) {
            memcpy(&ev, body, sizeof ev);
            if (ev.id < h->ndests) {
                h->alive[ev.id] = ev.up != 0;
                h->dsnap[ev.id].up = ev.up != 0;
            }
        }
        break;
    }
    case MSG_RETIRED:
        if (n == 1)
            s_retire(h, mh.gen);
        break;
    case MSG_STATS_BUFFER:
        if (bl == sizeof h->bsnap)
            memcpy(&h->bsnap, body, bl);
        break;
    case MSG_STATS_AGGR:
        if (bl == (size_t)mh.count * sizeof *h->asnap) {
            stats_aggr_t *a = realloc(h->asnap, bl ? bl : 1);
            if (a != NULL) {
                if (bl > 0) /* none: no aggregate rules */
                    memcpy(a, body, bl);
                h->asnap = a;
                h->nasnap = mh.count;
                h->asnap_gen = mh.gen;
            }
        }
        break;
    case MSG_CRITICAL_DONE:
        if (bl == (size_t)mh.count * sizeof(uint64_t) && bl > 0) {
            uint64_t tokens[256];
            for (size_t off = 0; off < mh.count;) {
                size_t k = mh.count - off < 256 ? mh.count - off : 256;
                memcpy(tokens, (const uint64_t *)body + off,
                       k * sizeof *tokens);
                s_critical_done(h, tokens, k);
                off += k;
            }
        }
        break;
    default: break;
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

/* The appliance's counters, named as the self metrics name them. */
static size_t s_counters(const hub_t *h, selfmetrics_counter_t *c, size_t max,
                         int listeners)
{
    uint64_t sent = 0, queued = 0, dropped = 0;
    stats_dbuf_t b = {0};
    int64_t oldest = 0;
    for (size_t i = 0; i < h->ndests; i++) {
        const stats_dbuf_t *db = &h->dsnap[i].buf;
        sent += h->dsnap[i].sent;
        queued += h->dsnap[i].queued + h->dsnap[i].inflight;
        dropped += h->dsnap[i].dropped;
        b.buffered += db->buffered;
        b.replayed += db->replayed;
        b.again += db->again;
        b.errors += db->errors;
        b.backlog += db->backlog;
        b.backlog_bytes += db->backlog_bytes;
        if (db->oldest_ms && (!oldest || db->oldest_ms < oldest))
            oldest = db->oldest_ms;
    }
    size_t k = 0;
#define C(n, v) G(n, v, 0)
#define G(n, v, g)                                                             \
    do {                                                                       \
        if (k < max)                                                           \
            c[k++] = (selfmetrics_counter_t){n, v, g};                         \
    } while (0)
    C("metricsReceived", h->c.received);
    C("metricsSent", sent);
    G("metricsQueued", queued, 1);
    C("metricsDropped", dropped);
    C("metricsBlackholed", h->c.blackholed);
    C("metricsUnrouted", h->c.unrouted);
    C("metricsInvalid", h->c.invalid);
    C("parseErrors", stats_parse_errors(&h->ingest));
    C("parseErrors.fields", h->ingest.errors[LINE_FIELDS]);
    C("parseErrors.name", h->ingest.errors[LINE_NAME]);
    C("parseErrors.value", h->ingest.errors[LINE_VALUE]);
    C("parseErrors.nan", h->ingest.errors[LINE_NAN]);
    C("parseErrors.timestamp", h->ingest.errors[LINE_TIMESTAMP]);
    C("parseErrors.toolong", h->ingest.errors[LINE_TOOLONG]);
    C("parseErrors.unterminated", h->ingest.errors[LINE_UNTERMINATED]);
    C("pickle.frames", h->ingest.pickle_frames);
    C("pickle.refused", h->ingest.pickle_refused);
    C("pickle.tooBig", h->ingest.pickle_toobig);
    C("satellites.batches", h->c.batches);
    C("satellites.badBatches", h->c.bad);
    C("satellites.badLines", h->c.badlines);
    C("satellites.resent", h->ingest.resent);
    C("satellites.switches", h->ingest.switches);
    C("satellites.curveFailed", h->ingest.curve_failed);
    C("satellites.refused", h->ingest.refused);
    G("satellites.connected", s_connected(h), 1);
    G("satellites.window", h->ingest.window_bytes, 1);
    G("connections", h->ingest.connections, 1);
    C("reloads", h->c.reloads);
    C("reloadsRefused", h->c.reloads_refused);
    if (router_naggrs(h->r) > 0 || h->nasnap > 0) {
        stats_aggr_t at = {0};
        for (size_t i = 0; i < h->nasnap; i++) {
            at.received += h->asnap[i].received;
            at.sent += h->asnap[i].sent;
            at.dropped += h->asnap[i].dropped;
            at.series += h->asnap[i].series;
        }
        C("aggregators.metricsReceived", at.received);
        C("aggregators.metricsSent", at.sent);
        C("aggregators.metricsDropped", at.dropped + h->c.aggr_behind);
        G("aggregators.series", at.series, 1);
    }
    C("routes.changes", h->c.route_changes);
    C("routes.refused", h->c.routes_refused);
    G("routes.inForce", h->routes ? h->routes->n : 0, 1);
    C("connections.shed", h->ingest.shed);
    G("connections.partialBytes", h->ingest.partial_bytes, 1);
    C("connections.evicted", h->ingest.evicted);
    if (h->zap) {
        uint64_t ad, re;
        zap_counts(h->zap, &ad, &re);
        C("curve.admitted", ad);
        C("curve.refused", re);
    }
    if (h->ha) {
        ha_status_t hs;
        ha_status(h->ha, &hs);
        G("ha.state", (uint64_t)hs.state, 1);
        G("ha.active", hs.state == BSTAR_ACTIVE, 1);
        C("ha.failovers", hs.failovers);
        C("ha.refused", hs.refused);
        G("ha.peerAge", hs.peer_age_ms >= 0 ? (uint64_t)hs.peer_age_ms : 0, 1);
        G("ha.peerAlive", (uint64_t)hs.peer_alive, 1);
        C("ha.badHeartbeats", hs.bad);
    }
    if (h->bsnap.on) {
        int64_t now = clock_wall_ms();
        C("buffered", b.buffered);
        C("replayed", b.replayed);
        C("replayedAgain", b.again);
        C("bufferDropped", h->bsnap.dropped);
        C("redisErrors", b.errors);
        C("redisTimeouts", h->bsnap.timeouts);
        G("redisUp", h->bsnap.up, 1);
        G("backlog", b.backlog, 1);
        G("backlogBytes", b.backlog_bytes, 1);
        G("backlogAge",
          oldest && now > oldest ? (uint64_t)(now - oldest) / 1000 : 0, 1);
        G("bufferMemory", h->bsnap.memory, 1);
    }
    for (size_t i = 0; listeners && i < h->boot->nlistens; i++) {
        C(h->lnames[i][0], h->lsnap[i].received);
        C(h->lnames[i][1], h->lsnap[i].errors);
        C(h->lnames[i][2], h->lsnap[i].refused);
        if (h->boot->listens[i].tr.codec)
            C(h->lnames[i][6], h->lsnap[i].decode_errors);
        if (!h->boot->listens[i].tr.tls)
            continue;
        C(h->lnames[i][3], h->lsnap[i].tls_ok);
        C(h->lnames[i][4], h->lsnap[i].tls_failed);
        C(h->lnames[i][5], h->lsnap[i].tls_timeouts);
        C(h->lnames[i][7], h->lsnap[i].tls_refused);
        C(h->lnames[i][8], h->lsnap[i].tls12);
        C(h->lnames[i][9], h->lsnap[i].tls13);
    }
#undef C
#undef G
    return k;
}

static void s_statstimer_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    hub_t *h = t->data;
    if (h->nheld > 0 || h->stopping)
        return; /* the pipe is full: skip this round */
    const config_stats_t *st = &h->cfg->stats;
    char prefix[512];
    if (st->prefix)
        snprintf(prefix, sizeof prefix, "%s", st->prefix);
    else
        snprintf(prefix, sizeof prefix, "carbon.relays.%s", h->hostname);
    size_t cmax = 96 + 10 * h->boot->nlistens;
    selfmetrics_counter_t *c = calloc(cmax, sizeof *c);
    if (c == NULL)
        return;
    size_t n = s_counters(h, c, cmax, 1);
    const char **keys = calloc(h->ndests ? h->ndests : 1, sizeof *keys);
    if (keys == NULL) {
        free(c);
        return;
    }
    for (size_t i = 0; i < h->ndests; i++)
        keys[i] = router_dest(h->r, i)->key;
    size_t len = 0;
    char *buf =
        selfmetrics_render(h->sm, prefix, (long long)clock_wall_s(), st->reset,
                           c, n, keys, h->dsnap, h->ndests, &len);
    free(keys);
    free(c);
    if (buf == NULL)
        return;
    const char *p = buf, *end = buf + len;
    s_set_src(h, "127.0.0.1", 9); /* its own, as carbon-c-relay writes them */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)(nl - p) + 1;
        size_t nlen = batch_name_len(p, l - 1);
        if (st->ndests > 0) {
            /* `send to`: those clusters only */
            h->cur_rest = p + nlen;
            h->cur_restlen = l - nlen;
            router_to_clusters(h->r, h->ctx, st->dests, st->ndests, p, nlen,
                               h->alive, s_emit_fn, h);
        } else {
            s_route_line(h, p, l, nlen);
        }
        p = nl + 1;
    }
    free(buf);
    s_build(h);
    if (s_flush_held(h, ZMQ_DONTWAIT) != 0) {
        for (size_t i = 0; i < h->nheld; i++)
            zmq_msg_close(&h->held[i]);
        h->nheld = 0;
    }
}

/* ---- the aggregator's outputs ------------------------------------------ */

/* The aggregate rule number id of generation gen, or NULL. */
static const config_rule_t *s_agg_rule(const hub_t *h, uint64_t gen,
                                       uint32_t id)
{
    if (gen == h->gen)
        return router_aggr(h->r, id);
    if (gen == 0)
        return router_aggr(h->r0, id);
    for (const gen_t *g = h->gens; g; g = g->next)
        if (g->gen == gen)
            return router_aggr(g->r, id);
    return NULL;
}

static void s_stop_now(hub_t *h);

/* Outputs of an aggregate rule: to its clusters, or routed from the top
 * when it names none (as carbon-c-relay routes them: match and aggregate
 * rules apply to them). */
static void s_agg_in_fn(zwatch_t *w, void *sock, void *arg)
{
    hub_t *h = arg;
    if (h->nheld > 0) { /* the sender's pipe is full: later */
        zwatch_stop(w);
        return;
    }
    zmq_msg_t parts[2];
    int n = 0;
    s_recv_rest(sock, parts, 2, &n);
    msg_hdr_t mh;
    size_t extra = 0;
    if (n >= 1 && msg_hdr_parse(zmq_msg_data(&parts[0]),
                                zmq_msg_size(&parts[0]), &mh, &extra) == 0) {
        if (mh.type == MSG_AGGR_OUT && n == 2) {
            s_set_src(h, "", 0); /* carbon-c-relay writes no address */
            const config_rule_t *rule = s_agg_rule(h, mh.gen, mh.count);
            const char *p = zmq_msg_data(&parts[1]);
            const char *end = p + zmq_msg_size(&parts[1]);
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                if (nl == NULL)
                    break;
                size_t l = (size_t)(nl - p) + 1;
                size_t nlen = batch_name_len(p, l - 1);
                if (rule && rule->ndests > 0) {
                    h->cur_rest = p + nlen;
                    h->cur_restlen = l - nlen;
                    router_to_clusters(h->r, h->ctx, rule->dests, rule->ndests,
                                       p, nlen, h->alive, s_emit_fn, h);
                } else {
                    s_route_line(h, p, l, nlen);
                }
                p = nl + 1;
            }
            s_build(h);
            if (s_flush_held(h, h->agg_stopping ? 0 : ZMQ_DONTWAIT) != 0) {
                zwatch_stop(w);
                zwatch_stop(h->router_w);
                double every = (double)opt_default(OPT_HELD_RETRY) / 1000.0;
                ev_timer_set(&h->retry, every, every);
                ev_timer_start(h->loop, &h->retry);
            }
        } else if (mh.type == MSG_AGGR_DONE && h->agg_stopping) {
            s_stop_now(h);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

static void s_agg_stop_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    hub_t *h = t->data;
    log_warn("hub: the aggregator did not finish within %d ms: stopping "
             "without its last outputs",
             (int)opt_default(OPT_STOP_WAIT));
    s_stop_now(h);
}

/* ---- reload -------------------------------------------------------------- */

static int s_strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static int s_listens_eq(const config_t *a, const config_t *b)
{
    if (a->nlistens != b->nlistens)
        return 0;
    for (size_t i = 0; i < a->nlistens; i++) {
        const config_listen_t *x = &a->listens[i], *y = &b->listens[i];
        if (x->type != y->type || x->proto != y->proto || x->port != y->port ||
            strcmp(x->host ? x->host : "", y->host ? y->host : "") != 0 ||
            strcmp(x->path ? x->path : "", y->path ? y->path : "") != 0 ||
            !config_transport_eq(&x->tr, &y->tr))
            return 0;
    }
    return 1;
}

/* The per-destination arrays of one generation. */
typedef struct {
    size_t n;            /* destinations */
    char **obuf;         /* chunk being filled, per slot (see hub_t) */
    size_t *olen, *ocap; /* its length and allocation */
    uint32_t *ocount;    /* datapoints in it */
    uint32_t *touched;   /* slots with data */
    stats_dest_t *dsnap; /* latest sender snapshot */
    bool *alive;         /* up, as the sender last said */
} tables_t;

static void s_tables_free(tables_t *t)
{
    for (size_t i = 0; t->obuf && i < 2 * t->n; i++)
        free(t->obuf[i]);
    free(t->obuf), free(t->olen), free(t->ocap), free(t->ocount);
    free(t->touched), free(t->dsnap), free(t->alive);
    memset(t, 0, sizeof *t);
}

/* Allocate empty tables for n destinations, every one alive until the
 * sender says otherwise.  Returns 0, or -1 (nothing allocated). */
static int s_tables_new(tables_t *t, size_t n)
{
    size_t nd = n ? n : 1;
    memset(t, 0, sizeof *t);
    /* chunks: two slots per destination (see hub_t) */
    t->obuf = calloc(2 * nd, sizeof *t->obuf);
    t->olen = calloc(2 * nd, sizeof *t->olen);
    t->ocap = calloc(2 * nd, sizeof *t->ocap);
    t->ocount = calloc(2 * nd, sizeof *t->ocount);
    t->touched = calloc(2 * nd, sizeof *t->touched);
    t->dsnap = calloc(nd, sizeof *t->dsnap);
    t->alive = calloc(nd, sizeof *t->alive);
    if (!t->obuf || !t->olen || !t->ocap || !t->ocount || !t->touched ||
        !t->dsnap || !t->alive) {
        s_tables_free(t);
        return -1;
    }
    t->n = n;
    for (size_t i = 0; i < n; i++)
        t->alive[i] = true;
    return 0;
}

/* Put tables t in force (the hub's chunks are all empty: s_build took
 * them) and free the old ones.  Cannot fail. */
static void s_tables_swap(hub_t *h, tables_t *t)
{
    tables_t old = {h->ndests, h->obuf,    h->olen,  h->ocap,
                    h->ocount, h->touched, h->dsnap, h->alive};
    s_tables_free(&old);
    h->ndests = t->n;
    h->obuf = t->obuf, h->olen = t->olen, h->ocap = t->ocap;
    h->ocount = t->ocount, h->touched = t->touched;
    h->dsnap = t->dsnap, h->alive = t->alive;
    h->ntouched = 0;
    memset(t, 0, sizeof *t);
}

/* Which destinations of the router in force are `file ip` files. */
static void s_fileip_build(hub_t *h)
{
    size_t n = router_ndests(h->r);
    bool *f = realloc(h->fileip, (n ? n : 1) * sizeof *f);
    h->has_fileip = 0;
    if (f == NULL) {
        log_err("hub: out of memory: `file ip` files get no addresses");
        return;
    }
    h->fileip = f;
    for (size_t i = 0; i < n; i++) {
        f[i] = router_dest(h->r, i)->cluster->type == CLUSTER_FILE_IP;
        h->has_fileip |= f[i];
    }
}

static int s_interval(const hub_t *h)
{
    int i =
        h->o.stats_interval > 0 ? h->o.stats_interval : h->cfg->stats.interval;
    return i > 0 ? i : 60;
}

/* A change that no longer fits the file: said in the log and in `route
 * list`. */
static void s_skip_fn(void *arg, const route_change_t *c, const char *why)
{
    char *buf = arg;
    size_t l = strlen(buf);
    log_warn("hub: route change at line %d skipped: %s", c->line, why);
    if (l < 2000)
        snprintf(buf + l, 2048 - l, "skipped line %d: %s\n", c->line, why);
}

/* The routing of base with routes applied: a new tree (*cfgp) and its
 * router, or NULL with err.  skipped gets the skipped changes. */
static router_t *s_make(const hub_t *h, const config_t *base,
                        const routes_t *routes, config_t **cfgp,
                        char skipped[2048], char *err, size_t errlen)
{
    config_t *cfg = config_dup(base);
    router_t *r = NULL;
    skipped[0] = '\0';
    if (cfg == NULL)
        snprintf(err, errlen, "out of memory");
    else if (routes_apply(routes, cfg, h->routes_path, s_skip_fn, skipped, err,
                          errlen) == 0 &&
             useall_expand(cfg, err, errlen) == 0)
        r = router_new(cfg, err, errlen);
    if (r == NULL)
        config_destroy(&cfg);
    *cfgp = cfg;
    return r;
}

/* Switch to cfg and r (taken: freed when refused).  Every step that can
 * fail comes before the first that cannot be undone (the switch: from then
 * on the sender uses the new router).  The old rules route everything
 * taken so far: the held message goes to the sender before the
 * MSG_SWITCH, and the sender switches at that point of its pipe.  0, or -1
 * with the reason in err. */
static int s_switch(hub_t *h, config_t *cfg, router_t *r, char *err,
                    size_t errlen)
{
    gen_t *g = calloc(1, sizeof *g);
    tables_t t = {0};
    if (g != NULL && s_tables_new(&t, router_ndests(r)) != 0) {
        free(g);
        g = NULL;
    }
    if (g == NULL)
        snprintf(err, errlen, "out of memory");
    const config_buffer_t *ob = &h->cfg->buffer, *nb = &cfg->buffer;
    if (g != NULL &&
        (strcmp(ob->target ? ob->target : "", nb->target ? nb->target : "") ||
         strcmp(ob->prefix, nb->prefix))) {
        snprintf(err, errlen,
                 "%s:%d: the buffer's Redis and prefix are read at the start: "
                 "restart to change them",
                 nb->target ? nb->pos.file : h->config_path,
                 nb->target ? nb->pos.line : 0);
        s_tables_free(&t);
        free(g);
        g = NULL;
    }
    if (g == NULL) {
        router_destroy(&r);
        config_destroy(&cfg);
        return -1;
    }
    const config_ha_t *oha = &h->boot->ha, *nha = &cfg->ha;
    if (oha->role != nha->role || oha->heartbeat_ms != nha->heartbeat_ms ||
        oha->failback_ms != nha->failback_ms ||
        strcmp(oha->publish ? oha->publish : "",
               nha->publish ? nha->publish : "") != 0 ||
        strcmp(oha->peer_publish ? oha->peer_publish : "",
               nha->peer_publish ? nha->peer_publish : "") != 0 ||
        strcmp(oha->peer_satellites ? oha->peer_satellites : "",
               nha->peer_satellites ? nha->peer_satellites : "") != 0 ||
        strcmp(h->boot->curve.key ? h->boot->curve.key : "",
               cfg->curve.key ? cfg->curve.key : "") != 0 ||
        !s_strv_eq(h->boot->curve.allow, h->boot->curve.nallow,
                   cfg->curve.allow, cfg->curve.nallow) ||
        strcmp(h->boot->curve.server ? h->boot->curve.server : "",
               cfg->curve.server ? cfg->curve.server : "") != 0)
        log_warn("hub: reload: ha and curve changes take effect at the next "
                 "restart");
    if (!s_listens_eq(h->boot, cfg) ||
        !s_strv_eq(h->boot->satellites_bind, h->boot->nsatellites_bind,
                   cfg->satellites_bind, cfg->nsatellites_bind) ||
        strcmp(h->boot->control ? h->boot->control : "",
               cfg->control ? cfg->control : "") != 0)
        log_warn("hub: reload: listen, satellites and control changes take "
                 "effect at the next restart");
    s_flush_held(h, 0);
    s_agg_flush(h); /* the records of the old rules, under their numbers */
    ev_timer_stop(h->loop, &h->retry);
    const router_t *rp = r;
    aggregator_defs_t *defs = h->agg_out ? aggregator_defs_new(r) : NULL;
    if (h->agg_out && defs == NULL) {
        snprintf(err, errlen, "out of memory");
        s_tables_free(&t);
        free(g);
        router_destroy(&r);
        config_destroy(&cfg);
        if (!h->stopping)
            zwatch_start(h->router_w);
        return -1;
    }
    if (msg_send(h->out, MSG_SWITCH, h->gen + 1, 0, &rp, sizeof rp, 0) != 0) {
        aggregator_defs_free(&defs);
        /* the sender did not get it: keep the old rules */
        snprintf(err, errlen, "%s", zmq_strerror(zmq_errno()));
        s_tables_free(&t);
        free(g);
        router_destroy(&r);
        config_destroy(&cfg);
        if (!h->stopping)
            zwatch_start(h->router_w);
        return -1;
    }
    s_tables_swap(h, &t);
    g->gen = ++h->gen;
    /* the aggregator takes the new rules before any record of them */
    if (defs && aggregator_send_defs(h->agg_out, h->gen, defs) != 0)
        log_err("hub: aggregator: %s: the aggregates stop until the next "
                "reload",
                zmq_strerror(zmq_errno()));
    g->cfg = cfg;
    g->r = r;
    g->next = h->gens;
    h->gens = g;
    int before = s_interval(h);
    h->cfg = cfg;
    h->r = r;
    s_fileip_build(h);
    if (s_interval(h) != before) {
        ev_timer_stop(h->loop, &h->statstimer);
        ev_timer_set(&h->statstimer, s_interval(h), s_interval(h));
        ev_timer_start(h->loop, &h->statstimer);
    }
    if (!h->stopping)
        zwatch_start(h->router_w);
    return 0;
}

/* Read the configuration again, apply the route changes over it, and
 * switch to it when it is good.  msg gets "ok ..." or "error ...". */
static int s_reload_config(hub_t *h, char *msg, size_t cap);

/* A reload: the configuration file, and (whatever came of that) the TLS
 * listeners' certificate files, which the ingest thread reads again. */
static int s_reload(hub_t *h, char *msg, size_t cap)
{
    int rc = s_reload_config(h, msg, cap);
    if (h->tls_reload)
        msg_send_ctl(h->tls_reload, MSG_RELOAD, 0, ZMQ_DONTWAIT);
    return rc;
}

static int s_reload_config(hub_t *h, char *msg, size_t cap)
{
    char err[1024], skipped[2048];
    config_t *base = config_load(h->config_path, err, sizeof err), *cfg = NULL;
    router_t *r =
        base ? s_make(h, base, h->routes, &cfg, skipped, err, sizeof err)
             : NULL;
    if (r == NULL || s_switch(h, cfg, r, err, sizeof err) != 0) {
        snprintf(msg, cap, "error %s: the running configuration stays\n", err);
        log_err("hub: reload refused: %s: the running configuration stays",
                err);
        h->c.reloads_refused++;
        config_destroy(&base);
        return -1;
    }
    config_destroy(&h->base);
    h->base = base;
    memcpy(h->skipped, skipped, sizeof skipped);
    h->c.reloads++;
    snprintf(msg, cap, "ok reloaded %s: %zu destinations, %zu rules\n",
             h->config_path, router_ndests(h->r), h->cfg->nrules);
    log_info("hub: reloaded %s: %zu destinations, %zu rules", h->config_path,
             router_ndests(h->r), h->cfg->nrules);
    return 0;
}

/* Put routes (taken) in force: written to the file, then switched to.
 * 0, or -1 with "error ..." in msg (routes freed). */
static int s_routes_commit(hub_t *h, routes_t *routes, char *msg, size_t cap)
{
    char err[1024], skipped[2048];
    config_t *cfg = NULL;
    router_t *r = s_make(h, h->base, routes, &cfg, skipped, err, sizeof err);
    if (r == NULL) {
        snprintf(msg, cap, "error %.1000s\n", err);
        routes_destroy(&routes);
        return -1;
    }
    if (routes_save(routes, h->routes_path, err, sizeof err) != 0) {
        snprintf(msg, cap, "error %.900s: nothing changed\n", err);
        router_destroy(&r);
        config_destroy(&cfg);
        routes_destroy(&routes);
        return -1;
    }
    if (s_switch(h, cfg, r, err, sizeof err) != 0) {
        char e2[512];
        snprintf(msg, cap, "error %.900s: nothing changed\n", err);
        if (routes_save(h->routes, h->routes_path, e2, sizeof e2) != 0)
            log_err("hub: route: %s", e2);
        routes_destroy(&routes);
        return -1;
    }
    routes_destroy(&h->routes);
    h->routes = routes;
    memcpy(h->skipped, skipped, sizeof skipped);
    h->c.route_changes++;
    if (h->ha) {
        char *text = routes_format(routes);
        if (text == NULL || ha_set_routes(h->ha, routes_hash(routes), text))
            log_err("hub: route: out of memory: the peer is not told");
        free(text);
    }
    return 0;
}

/* `route WORDS`. */
static size_t s_route(hub_t *h, const char *words)
{
    h->reply[0] = '\0';
    while (*words == ' ')
        words++;
    if (*words == '\0' || strcmp(words, "list") == 0) {
        size_t n = routes_list(h->routes, h->cfg, h->routes_path, h->reply,
                               h->replycap);
        if (n + strlen(h->skipped) < h->replycap)
            strcat(h->reply, h->skipped);
        return strlen(h->reply);
    }
    if (h->ha && !ha_active(h->ha))
        return (size_t)snprintf(h->reply, h->replycap,
                                "error this member is not active: change "
                                "routes on the active one (its changes "
                                "reach this one over the pair's link)\n");
    routes_t *nr = NULL;
    char msg[1024];
    if (routes_command(h->routes, h->base, h->routes_path, words, &nr, msg,
                       sizeof msg) != 0 ||
        s_routes_commit(h, nr, msg, sizeof msg) != 0) {
        log_warn("hub: route %.200s: %.*s", words, (int)strcspn(msg, "\n"),
                 msg);
        return (size_t)snprintf(h->reply, h->replycap, "%s", msg);
    }
    log_info("hub: route %.200s: %.*s", words, (int)strcspn(msg, "\n"), msg);
    return (size_t)snprintf(h->reply, h->replycap, "%s", msg);
}

/* The route changes of the active peer (src/ha.c). */
static void s_peer_routes_fn(void *arg, const char *text, size_t len)
{
    hub_t *h = arg;
    char err[1024], msg[1024];
    routes_t *nr =
        routes_parse(text, len, "the peer's route changes", err, sizeof err);
    if (nr != NULL && routes_hash(nr) == routes_hash(h->routes)) {
        routes_destroy(&nr);
        return;
    }
    if (nr != NULL && s_routes_commit(h, nr, msg, sizeof msg) == 0) {
        log_warn("hub: took the active peer's route changes (%zu)",
                 h->routes->n);
        return;
    }
    h->c.routes_refused++;
    int64_t now = clock_mono_ms();
    if (h->routes_err_ms == 0 || now - h->routes_err_ms >= 60000) {
        log_err("hub: the active peer's route changes do not apply here: %s",
                nr ? msg : err);
        h->routes_err_ms = now;
    }
}

/* ---- control ------------------------------------------------------------- */

static void s_reply_add(hub_t *h, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_reply_add(hub_t *h, size_t *len, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(h->reply + *len, h->replycap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < h->replycap - *len) {
            *len += (size_t)n;
            return;
        }
        char *p = realloc(h->reply, h->replycap * 2 + (size_t)n);
        if (p == NULL)
            return;
        h->reply = p;
        h->replycap = h->replycap * 2 + (size_t)n;
    }
}

static const char *s_spill_state(uint32_t st)
{
    static const char *const names[] = {"live", "spilling", "replaying",
                                        "waiting"};
    return st < 4 ? names[st] : "?";
}

/* The buffer fields of a destination; inline: in place of the status
 * line's newline. */
static void s_reply_buffer(hub_t *h, size_t *len, const stats_dest_t *s,
                           int inline_)
{
    if (inline_ && *len > 0 && h->reply[*len - 1] == '\n')
        h->reply[--*len] = '\0';
    s_reply_add(
        h, len,
        " buffer=%s buffered=%llu replayed=%llu again=%llu "
        "backlog=%llu bytes=%llu memory=%llu oldest=%lld newest=%lld "
        "rate=%llu bufferDropped=%llu redisErrors=%llu\n",
        s_spill_state(s->buf.state), (unsigned long long)s->buf.buffered,
        (unsigned long long)s->buf.replayed, (unsigned long long)s->buf.again,
        (unsigned long long)s->buf.backlog,
        (unsigned long long)s->buf.backlog_bytes,
        (unsigned long long)s->buf.memory, (long long)s->buf.oldest_ms,
        (long long)s->buf.newest_ms, (unsigned long long)s->buf.rate,
        (unsigned long long)s->buf.dropped, (unsigned long long)s->buf.errors);
}

/* `ha` and `ha failback`. */
static size_t s_ha_reply(hub_t *h, int failback)
{
    if (h->ha == NULL)
        return (size_t)snprintf(h->reply, h->replycap,
                                "error no ha statement in the "
                                "configuration\n");
    if (failback) {
        ha_failback(h->ha, h->reply, h->replycap);
        s_tell_ha(h);
        return strlen(h->reply);
    }
    ha_status_t st;
    ha_status(h->ha, &st);
    return (size_t)snprintf(
        h->reply, h->replycap,
        "ha %s state=%s peer=%s peerAge=%lld peerAlive=%d failovers=%llu "
        "refused=%llu heartbeats=%llu peerSeq=%llu\n",
        st.backup ? "backup" : "primary", bstar_state_name(st.state),
        st.peer_state ? bstar_state_name(st.peer_state) : "unknown",
        (long long)st.peer_age_ms, st.peer_alive,
        (unsigned long long)st.failovers, (unsigned long long)st.refused,
        (unsigned long long)st.heartbeats, (unsigned long long)st.peer_seq);
}

/* `buffer`: the Redis buffer, a line per destination. */
static size_t s_buffer(hub_t *h)
{
    size_t len = 0;
    h->reply[0] = '\0';
    const config_buffer_t *b = &h->cfg->buffer;
    if (!b->target) {
        s_reply_add(h, &len,
                    "error no buffer statement in the "
                    "configuration\n");
        return len;
    }
    /* a relative socket path is relative to this process's working
     * directory: say where it is for a client that runs elsewhere */
    char cwd[4096] = "";
    const char *t = b->target;
    if (strncmp(t, "unix:", 5) == 0 && t[5] != '/' && getcwd(cwd, sizeof cwd))
        s_reply_add(h, &len, "redis unix:%s/%s", cwd, t + 5);
    else
        s_reply_add(h, &len, "redis %s", t);
    s_reply_add(h, &len, " prefix=%s state=%s max=%lld replay=%lld\n",
                b->prefix, h->bsnap.up ? "up" : "down", b->max, b->replay);
    for (size_t i = 0; i < h->ndests; i++) {
        const router_dest_t *d = router_dest(h->r, i);
        s_reply_add(h, &len, "destination %s %s key=%s:buf:%s:%s",
                    d->cluster->name, d->addr, b->prefix, d->cluster->name,
                    d->addr);
        s_reply_buffer(h, &len, &h->dsnap[i], 0);
    }
    return len;
}

static size_t s_status(hub_t *h)
{
    size_t len = 0;
    h->reply[0] = '\0';
    for (size_t i = 0; i < h->boot->nlistens; i++) {
        const config_listen_t *l = &h->boot->listens[i];
        const char *type = l->type == WIRE_PICKLE ? "pickle" : "linemode";
        if (l->proto == PROTO_UNIX) {
            s_reply_add(h, &len, "listener %s unix %s", type, l->path);
        } else {
            char a[300];
            net_addr_str(a, sizeof a, l->host, l->port);
            s_reply_add(h, &len, "listener %s %s %s", type,
                        l->proto == PROTO_UDP ? "udp" : "tcp", a);
        }
        const stats_listener_t *ls = &h->lsnap[i];
        s_reply_add(h, &len, " received=%llu errors=%llu refused=%llu",
                    (unsigned long long)ls->received,
                    (unsigned long long)ls->errors,
                    (unsigned long long)ls->refused);
        if (l->tr.codec)
            s_reply_add(h, &len, " transport=%s decodeErrors=%llu",
                        codec_name(l->tr.codec),
                        (unsigned long long)ls->decode_errors);
        if (l->tr.tls)
            s_reply_add(h, &len,
                        " tls=%s mtls=%s handshakes=%llu tlsFailures=%llu "
                        "tlsCertRefused=%llu tlsTimeouts=%llu tls1.2=%llu "
                        "tls1.3=%llu",
                        l->tr.pem, l->tr.tls == TLS_MUTUAL ? "yes" : "no",
                        (unsigned long long)ls->tls_ok,
                        (unsigned long long)ls->tls_failed,
                        (unsigned long long)ls->tls_refused,
                        (unsigned long long)ls->tls_timeouts,
                        (unsigned long long)ls->tls12,
                        (unsigned long long)ls->tls13);
        s_reply_add(h, &len, "\n");
    }
    for (size_t i = 0; i < h->boot->nsatellites_bind; i++)
        s_reply_add(h, &len, "satellites %s\n", h->boot->satellites_bind[i]);
    for (size_t i = 0; i < h->ndests; i++) {
        const router_dest_t *d = router_dest(h->r, i);
        const stats_dest_t *s = &h->dsnap[i];
        s_reply_add(
            h, &len,
            "destination %s %s state=%s queued=%llu inflight=%llu "
            "sent=%llu dropped=%llu\n",
            d->cluster->name, d->addr, s->up ? "up" : "down",
            (unsigned long long)s->queued, (unsigned long long)s->inflight,
            (unsigned long long)s->sent, (unsigned long long)s->dropped);
        const config_transport_t *tr =
            d->member ? &d->member->tr : NULL; /* files have none */
        if (tr && (tr->codec || tr->tls)) {
            if (len > 0 && h->reply[len - 1] == '\n')
                h->reply[--len] = '\0'; /* on the same line */
            s_reply_add(h, &len, " transport=%s%s", codec_name(tr->codec),
                        tr->tls == TLS_MUTUAL ? "+mtls"
                        : tr->tls             ? "+ssl"
                                              : "");
            if (tr->tls)
                s_reply_add(h, &len, " tls=%s handshakes=%llu tlsFailures=%llu",
                            s->tls == 13   ? "1.3"
                            : s->tls == 12 ? "1.2"
                                           : "none",
                            (unsigned long long)s->tls_ok,
                            (unsigned long long)s->tls_failed);
            s_reply_add(h, &len, " wireBytes=%llu streamBytes=%llu\n",
                        (unsigned long long)s->wire_bytes,
                        (unsigned long long)s->app_bytes);
        }
        if (s->buf.on) /* on the same line, before its end */
            s_reply_buffer(h, &len, s, 1);
    }
    if (h->bsnap.on)
        s_reply_add(h, &len,
                    "buffer redis %s state=%s connects=%llu timeouts=%llu "
                    "errors=%llu memory=%llu dropped=%llu\n",
                    h->cfg->buffer.target, h->bsnap.up ? "up" : "down",
                    (unsigned long long)h->bsnap.connects,
                    (unsigned long long)h->bsnap.timeouts,
                    (unsigned long long)h->bsnap.errors,
                    (unsigned long long)h->bsnap.memory,
                    (unsigned long long)h->bsnap.dropped);
    for (size_t i = 0; i < h->nasnap && h->asnap_gen == h->gen; i++) {
        const config_rule_t *ar = router_aggr(h->r, i);
        const stats_aggr_t *a = &h->asnap[i];
        if (ar == NULL)
            break;
        s_reply_add(
            h, &len,
            "aggregator %zu %s:%d series=%llu buckets=%llu "
            "received=%llu sent=%llu dropped=%llu\n",
            i + 1, ar->pos.file, ar->pos.line, (unsigned long long)a->series,
            (unsigned long long)a->buckets, (unsigned long long)a->received,
            (unsigned long long)a->sent, (unsigned long long)a->dropped);
    }
    selfmetrics_counter_t c[128];
    size_t n = s_counters(h, c, 128, 0); /* the listeners' are on their lines */
    if (h->routes && h->routes->n > 0)   /* orchester-ctl route list */
        s_reply_add(h, &len, "routes %s changes=%zu\n", h->routes_path,
                    h->routes->n);
    for (size_t i = 0; i < n; i++)
        s_reply_add(h, &len, "counter %s %llu\n", c[i].name,
                    (unsigned long long)c[i].value);
    return len;
}

static void s_control_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    hub_t *h = arg;
    zmq_msg_t parts[1];
    int n = 0;
    s_recv_rest(sock, parts, 1, &n);
    if (n == 0)
        return;
    char cmd[8192] = "";
    size_t l = zmq_msg_size(&parts[0]);
    if (l < sizeof cmd && memchr(zmq_msg_data(&parts[0]), 0, l) == NULL) {
        memcpy(cmd, zmq_msg_data(&parts[0]), l);
        cmd[l] = '\0';
    }
    zmq_msg_close(&parts[0]);
    size_t len;
    if (strcmp(cmd, "status") == 0) {
        len = s_status(h);
    } else if (strcmp(cmd, "buffer") == 0) {
        len = s_buffer(h);
    } else if (strcmp(cmd, "ha") == 0 || strcmp(cmd, "ha failback") == 0) {
        len = s_ha_reply(h, cmd[2] != '\0');
    } else if (strcmp(cmd, "reload") == 0) {
        s_reload(h, h->reply, h->replycap);
        len = strlen(h->reply);
    } else if (strcmp(cmd, "route") == 0 || strncmp(cmd, "route ", 6) == 0) {
        len = s_route(h, cmd + 5);
    } else
        len = (size_t)snprintf(h->reply, h->replycap,
                               "error unknown command '%.40s'\n", cmd);
    zmq_send(sock, h->reply, len, ZMQ_DONTWAIT);
}

/* The control pipe from main.  Every request queued there is taken at once:
 * reloads asked for while one ran (a SIGHUP storm) are served by one more
 * reading of the file, not one each, and a STOP behind them is not kept
 * waiting. */
static void s_ctl_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    hub_t *h = arg;
    msg_hdr_t mh;
    int reload = 0, stop = 0;
    for (int i = 0; i < 100000; i++) {
        int type = msg_recv_ctl(sock, &mh);
        if (type == MSG_RELOAD)
            reload = 1;
        else if (type == MSG_STOP)
            stop = 1;
        int ev = 0;
        size_t sz = sizeof ev;
        if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) != 0 ||
            !(ev & ZMQ_POLLIN))
            break;
    }
    if (reload && !stop) {
        char msg[1200];
        s_reload(h, msg, sizeof msg);
    }
    if (!stop || h->stopping)
        return;
    h->stopping = 1;
    zwatch_stop(h->router_w);
    ev_timer_stop(h->loop, &h->retry);
    /* what was taken is acknowledged only once the sender has it */
    s_flush_held(h, 0);
    /* the aggregator emits its complete buckets first (bounded) */
    s_agg_flush(h);
    if (h->agg_out &&
        msg_send_ctl(h->agg_out, MSG_STOP, h->gen, ZMQ_DONTWAIT) == 0) {
        h->agg_stopping = 1;
        if (h->agg_w)
            zwatch_start(h->agg_w);
        ev_timer_set(&h->agg_stop, opt_default(OPT_STOP_WAIT) / 1000.0, 0);
        ev_timer_start(h->loop, &h->agg_stop);
        return;
    }
    s_stop_now(h);
}

/* The last step of a stop: the sender drains, the loop ends. */
static void s_stop_now(hub_t *h)
{
    ev_timer_stop(h->loop, &h->agg_stop);
    h->agg_stopping = 0;
    s_flush_held(h, 0);
    msg_send_ctl(h->out, MSG_DRAIN, h->gen, 0);
    ev_break(h->loop, EVBREAK_ALL);
}

/* ---- life ---------------------------------------------------------------- */

static void *s_sock(void *zctx, int type, int hwm)
{
    void *s = zmq_socket(zctx, type);
    if (s == NULL)
        return NULL;
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (hwm > 0) {
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    return s;
}

hub_t *hub_new(void *zctx, const config_t *cfg, const router_t *r,
               const hub_opts_t *o, char *err, size_t errlen)
{
    const char *failed = "";
    hub_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        config_t *b = o->base;
        routes_t *rt = o->routes;
        config_destroy(&b);
        routes_destroy(&rt);
        goto nomem;
    }
    h->base = o->base;
    h->routes = o->routes;
    h->routes_path = strdup(o->routes_path ? o->routes_path : "routes");
    h->cfg = cfg;
    h->boot = cfg;
    h->r = r;
    h->r0 = r;
    h->agg_cur = UINT32_MAX;
    h->agg_told = -1;
    h->o = *o;
    h->hostname = strdup(o->hostname);
    h->config_path = strdup(o->config_path ? o->config_path : "");
    h->sm = selfmetrics_new();
    tables_t t;
    if (s_tables_new(&t, router_ndests(r)) != 0)
        goto nomem;
    s_tables_swap(h, &t);
    s_fileip_build(h);
    h->lsnap = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof *h->lsnap);
    h->lnames = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof *h->lnames);
    h->ctx = router_ctx_new();
    h->replycap = 65536;
    h->reply = malloc(h->replycap);
    h->loop = ev_loop_new(EVFLAG_AUTO);
    if (!h->base && !(h->base = config_dup(cfg)))
        goto nomem;
    if (!h->routes && !(h->routes = routes_new()))
        goto nomem;
    if (!h->routes_path || !h->hostname || !h->config_path || !h->sm ||
        !h->obuf || !h->olen || !h->ocap || !h->ocount || !h->touched ||
        !h->dsnap || !h->reply || !h->loop || !h->alive || !h->ctx ||
        !h->lsnap || !h->lnames)
        goto nomem;
    for (size_t i = 0; i < cfg->nlistens; i++) {
        const config_listen_t *l = &cfg->listens[i];
        char a[320], key[340];
        if (l->proto == PROTO_UNIX)
            snprintf(a, sizeof a, "unix_%s", l->path);
        else {
            char hp[300];
            net_addr_str(hp, sizeof hp, l->host, l->port);
            snprintf(a, sizeof a, "%s_%s",
                     l->proto == PROTO_UDP ? "udp" : "tcp", hp);
        }
        stats_metric_part(key, sizeof key, a);
        snprintf(h->lnames[i][0], sizeof h->lnames[i][0],
                 "listeners.%s.received", key);
        snprintf(h->lnames[i][1], sizeof h->lnames[i][1],
                 "listeners.%s.parseErrors", key);
        snprintf(h->lnames[i][2], sizeof h->lnames[i][2],
                 "listeners.%s.refused", key);
        snprintf(h->lnames[i][3], sizeof h->lnames[i][3],
                 "listeners.%s.tlsHandshakes", key);
        snprintf(h->lnames[i][4], sizeof h->lnames[i][4],
                 "listeners.%s.tlsFailures", key);
        snprintf(h->lnames[i][5], sizeof h->lnames[i][5],
                 "listeners.%s.tlsTimeouts", key);
        snprintf(h->lnames[i][6], sizeof h->lnames[i][6],
                 "listeners.%s.decodeErrors", key);
        snprintf(h->lnames[i][7], sizeof h->lnames[i][7],
                 "listeners.%s.tlsCertRefused", key);
        snprintf(h->lnames[i][8], sizeof h->lnames[i][8],
                 "listeners.%s.tls12Handshakes", key);
        snprintf(h->lnames[i][9], sizeof h->lnames[i][9],
                 "listeners.%s.tls13Handshakes", key);
    }
    int one = 1;
    if (o->ingest_reload_endpoint &&
        ((h->tls_reload = s_sock(zctx, ZMQ_PUSH, 4)) == NULL ||
         zmq_connect(h->tls_reload, o->ingest_reload_endpoint) != 0)) {
        snprintf(err, errlen, "hub: ingest reload pipe: %s",
                 zmq_strerror(zmq_errno()));
        goto err;
    }
    h->router = s_sock(zctx, ZMQ_ROUTER, 1000);
    h->out = s_sock(zctx, ZMQ_PUSH, 64);
    h->stats = s_sock(zctx, ZMQ_PULL, 0);
    h->ctl = s_sock(zctx, ZMQ_PAIR, 0);
    if (!h->router || !h->out || !h->stats || !h->ctl)
        goto zerr;
    zmq_setsockopt(h->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* a satellite's batch is at most BATCH_PAYLOAD_MAX bytes: a peer that
     * sends a frame of twice that is not a satellite, and zmq drops its
     * connection before it takes more memory (one a little over is
     * refused by the codec, counted and acknowledged) */
    size_t maxline = o->maxline ? o->maxline : (size_t)opt_default(OPT_MAXLINE);
    int64_t maxmsg = 2 * (int64_t)BATCH_PAYLOAD_MAX(maxline);
    zmq_setsockopt(h->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* CURVE: the satellites endpoints admit only the listed keys (the
     * inproc one of the embedded satellite has no handshake) */
    if (o->curve && o->curve->on) {
        h->zap = zap_new(zctx, h->loop,
                         (const char(*)[CURVE_KEYLEN + 1]) o->curve->keys,
                         o->curve->nkeys, err, errlen);
        if (h->zap == NULL)
            goto err;
        if (curve_server(h->router, &o->curve->kp) != 0)
            goto zerr;
    }
    failed = o->batches_endpoint;
    if (zmq_bind(h->router, o->batches_endpoint) != 0)
        goto zerr;
    for (size_t i = 0; i < cfg->nsatellites_bind; i++) {
        failed = cfg->satellites_bind[i];
        if (zmq_bind(h->router, cfg->satellites_bind[i]) != 0)
            goto zerr;
    }
    failed = o->sender_endpoint;
    if (zmq_connect(h->out, o->sender_endpoint) != 0)
        goto zerr;
    failed = o->stats_endpoint;
    if (zmq_bind(h->stats, o->stats_endpoint) != 0)
        goto zerr;
    failed = o->ctl_endpoint;
    if (zmq_connect(h->ctl, o->ctl_endpoint) != 0)
        goto zerr;
    if (o->agg_endpoint) {
        h->agg_out = s_sock(zctx, ZMQ_PUSH, AGGREGATOR_PIPE);
        h->agg_in = s_sock(zctx, ZMQ_PULL, 1000);
        if (!h->agg_out || !h->agg_in)
            goto zerr;
        failed = o->agg_out_endpoint;
        if (zmq_bind(h->agg_in, o->agg_out_endpoint) != 0)
            goto zerr;
        failed = o->agg_endpoint;
        if (zmq_connect(h->agg_out, o->agg_endpoint) != 0)
            goto zerr;
        router_ctx_set_aggr(h->ctx, s_aggr_fn, h);
    }
    if (cfg->control) {
        failed = cfg->control;
        h->control = s_sock(zctx, ZMQ_REP, 0);
        if (!h->control || zmq_bind(h->control, cfg->control) != 0)
            goto zerr;
        /* an ipc socket file: this user only (orchester-ctl runs as the
         * service's user, or root) */
        if (strncmp(cfg->control, "ipc://", 6) == 0 &&
            chmod(cfg->control + 6, 0600) != 0)
            log_warn("hub: control %s: chmod: %s", cfg->control,
                     strerror(errno));
    }
    failed = "";
    h->router_w = zwatch_new(h->loop, h->router, 64, s_router_fn, h);
    h->stats_w = zwatch_new(h->loop, h->stats, 64, s_stats_fn, h);
    h->ctl_w = zwatch_new(h->loop, h->ctl, 1, s_ctl_fn, h);
    if (!h->router_w || !h->stats_w || !h->ctl_w)
        goto zerr;
    if (h->control) {
        h->control_w = zwatch_new(h->loop, h->control, 8, s_control_fn, h);
        if (!h->control_w)
            goto zerr;
    }
    if (h->agg_in &&
        !(h->agg_w = zwatch_new(h->loop, h->agg_in, 16, s_agg_in_fn, h)))
        goto zerr;
    ev_init(&h->agg_stop, s_agg_stop_fn);
    h->agg_stop.data = h;
    h->ha_told = -1;
    if (cfg->ha.role != HA_NONE &&
        !(h->ha = ha_new(zctx, h->loop, &cfg->ha, o->curve, s_ha_fn, h, err,
                         errlen)))
        goto err;
    if (h->ha) {
        char *text = routes_format(h->routes);
        if (text == NULL ||
            ha_set_routes(h->ha, routes_hash(h->routes), text) != 0) {
            free(text);
            goto nomem;
        }
        free(text);
        ha_on_routes(h->ha, s_peer_routes_fn, h);
    }
    ev_init(&h->retry, s_retry_fn);
    h->retry.data = h;
    ev_timer_init(&h->statstimer, s_statstimer_fn, s_interval(h),
                  s_interval(h));
    h->statstimer.data = h;
    return h;
zerr:
    snprintf(err, errlen, "hub: %s%s%s", failed, *failed ? ": " : "",
             zmq_strerror(zmq_errno()));
    goto err;
nomem:
    snprintf(err, errlen, "hub: out of memory");
err:
    hub_destroy(&h);
    return NULL;
}

int hub_run(hub_t *h)
{
    if (h->zap)
        zap_start(h->zap);
    if (h->ha)
        ha_start(h->ha);
    s_tell_ha(h);
    zwatch_start(h->router_w);
    zwatch_start(h->stats_w);
    zwatch_start(h->ctl_w);
    if (h->control_w)
        zwatch_start(h->control_w);
    if (h->agg_w)
        zwatch_start(h->agg_w);
    ev_timer_start(h->loop, &h->statstimer);
    ev_run(h->loop, 0);
    zwatch_stop(h->router_w);
    zwatch_stop(h->stats_w);
    zwatch_stop(h->ctl_w);
    if (h->control_w)
        zwatch_stop(h->control_w);
    if (h->agg_w)
        zwatch_stop(h->agg_w);
    ev_timer_stop(h->loop, &h->agg_stop);
    ev_timer_stop(h->loop, &h->statstimer);
    ev_timer_stop(h->loop, &h->retry);
    if (h->ha)
        ha_stop(h->ha);
    return 0;
}

void hub_destroy(hub_t **ph)
{
    if (ph == NULL || *ph == NULL)
        return;
    hub_t *h = *ph;
    for (size_t i = 0; i < h->nheld; i++)
        zmq_msg_close(&h->held[i]);
    if (h->ack_pending)
        zmq_msg_close(&h->ack_to);
    for (size_t i = 0; i < HUB_PENDING; i++)
        if (h->pending[i].token)
            zmq_msg_close(&h->pending[i].to);
    ha_destroy(&h->ha);
    zap_destroy(&h->zap);
    zwatch_destroy(&h->router_w);
    zwatch_destroy(&h->stats_w);
    zwatch_destroy(&h->ctl_w);
    zwatch_destroy(&h->control_w);
    zwatch_destroy(&h->agg_w);
    void *socks[] = {h->router,  h->out,     h->stats,  h->ctl,
                     h->control, h->agg_out, h->agg_in, h->tls_reload};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (socks[i])
            zmq_close(socks[i]);
    tables_t t = {h->ndests, h->obuf,    h->olen,  h->ocap,
                  h->ocount, h->touched, h->dsnap, h->alive};
    s_tables_free(&t);
    free(h->lsnap);
    free(h->lnames);
    router_ctx_destroy(&h->ctx);
    free(h->reply);
    free(h->hostname);
    free(h->config_path);
    free(h->routes_path);
    free(h->abuf);
    free(h->asnap);
    free(h->fileip);
    config_destroy(&h->base);
    routes_destroy(&h->routes);
    selfmetrics_destroy(&h->sm);
    while (h->gens) {
        gen_t *g = h->gens;
        h->gens = g->next;
        router_destroy(&g->r);
        config_destroy(&g->cfg);
        free(g);
    }
    if (h->loop)
        ev_loop_destroy(h->loop);
    free(h);
    *ph = NULL;
}
