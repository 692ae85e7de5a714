/*
 * ingest.c -- see ingest.h.
 *
 * Ownership: the ingest_t owns its listeners, client connections, the
 * batch being filled, the window of sent batches, and its zmq sockets.
 * Every callback runs on the ingest thread.
 */
#include "ingest.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "batch.h"
#include "clock.h"
#include "codec.h"
#include "line.h"
#include "log.h"
#include "msg.h"
#include "options.h"
#include "net.h"
#include "pickle.h"
#include "stats.h"
#include "tls.h"
#include "zwatch.h"

#define READ_CHUNK   65536
#define ACCEPT_BURST 64
#define UDP_BURST    64
#define LOG_EVERY_MS 10000 /* at most one refusal log per listener */

typedef struct ingest ingest_t;

typedef struct {
    ingest_t *ig;          /* back pointer */
    config_proto_t proto;  /* tcp, udp or unix */
    config_wire_t wire;    /* linemode or pickle */
    int fd;                /* listening or bound socket */
    ev_io io;              /* readable: accept or recv */
    ev_timer retry;        /* re-enables accept after EMFILE */
    char name[320];        /* "tcp 127.0.0.1:2003" for logs */
    stats_listener_t st;   /* its counters */
    size_t nconns;         /* its connections open now */
    int64_t log_ms;        /* when a refusal was last logged */
    uint64_t log_refused;  /* st.refused at that log */
    config_transport_t tr; /* its transport clause (a copy, owned) */
    tls_server_t *tls;     /* a TLS listener's context (owned), or NULL */
    int64_t tls_log_ms;    /* when a TLS failure was last logged */
    uint64_t tls_logged;   /* st.tls_failed + st.tls_timeouts at that log */
} listener_t;

typedef struct conn {
    ingest_t *ig;                   /* back pointer */
    listener_t *l;                  /* the listener it came from */
    int fd;                         /* client socket */
    ev_io io;                       /* readable (writable during a TLS
                                       handshake that waits to write) */
    tls_session_t *tls;             /* a TLS client's session (owned), or
                                       NULL */
    ev_timer hs;                    /* a TLS client's handshake deadline,
                                       running until the handshake ends */
    codec_dec_t *dec;               /* a compressed stream's decoder
                                       (owned), or NULL */
    char *part;                     /* the unfinished line or frame, or NULL */
    size_t partlen;                 /* its length */
    size_t partcap;                 /* pickle: bytes allocated at part */
    int discarding;                 /* skipping an over-long line to '\n' */
    size_t held;                    /* bytes allocated at part, as counted
                                       in ig->held */
    char src[CODEC_SOURCE_MAX + 1]; /* the client's address ("" for a
                                       unix socket) */
    struct conn *prev, *next;       /* in ig->conns */
    struct conn *hprev, *hnext;     /* in ig's list of connections that hold
                                       bytes, most recent progress first */
} conn_t;

/* A batch a member that is not active refused is sent again this much
 * later (with one orchester), or to the other member at once. */
#define NACK_RETRY_MS 250

typedef struct pending {
    uint64_t seq;         /* its sequence number */
    uint32_t count;       /* datapoints */
    char *payload;        /* owned */
    size_t len;           /* payload bytes */
    int64_t sent_ms;      /* last send, 0 when not sent yet */
    int64_t made_ms;      /* when it was made */
    int64_t nack_ms;      /* when a member that is not active refused it
                             (0: never): sent again NACK_RETRY_MS later */
    struct pending *next; /* next newer batch */
} pending_t;

struct ingest {
    struct ev_loop *loop; /* owned */
    ingest_opts_t o;      /* options (endpoint strings owned below) */
    char *orchester;      /* the endpoint sent to now: eps[curep] */
    char *eps[2];         /* owned copies of o.orchester, o.orchester_alt */
    int neps;             /* 1, or 2 (a pair: switch when silent) */
    int curep;            /* index in eps */
    char *ctl_endpoint;   /* owned copy */
    char *stats_endpoint; /* owned copy or NULL */
    char *tls_ca;         /* owned copy of o.tls_ca, or NULL */
    void *dealer;         /* zmq DEALER to the orchester */
    void *ctl;            /* zmq PAIR from the owner */
    void *stats;          /* zmq PUSH of snapshots, or NULL */
    zwatch_t *dealer_w;   /* acks */
    zwatch_t *ctl_w;      /* commands */
    void *reload;         /* PULL: MSG_RELOAD from the hub, or NULL */
    zwatch_t *reload_w;
    void *control; /* zmq REP for orchester-ctl, or NULL */
    zwatch_t *control_w;
    char *control_ep;     /* owned copy */
    char *metrics_prefix; /* owned copy, or NULL */
    int64_t metrics_ms;   /* when self metrics were last sent */
    void *mon;            /* zmq PAIR: the DEALER's monitor events,
                             NULL when embedded */
    zwatch_t *mon_w;      /* connection events */
    int link_lost;        /* disconnected since the last handshake */
    int64_t switched_ms;  /* when it last changed orchester (0: never) */
    int cur_timeout_ms;   /* resend timeout now (backs off) */
    listener_t *ls;       /* nls listeners */
    size_t nls;
    conn_t *conns; /* open client connections */
    char *scratch; /* read buffer: maxline + READ_CHUNK */
    size_t scratchcap;
    char *batch; /* payload being filled */
    size_t batchlen;
    size_t batchcap;
    uint32_t batchcount;     /* datapoints in it */
    pending_t *head, *tail;  /* window, oldest first */
    size_t window;           /* payload bytes in the window */
    uint64_t nextseq;        /* next sequence number */
    int paused;              /* client reads stopped (window full) */
    int stopping;            /* STOP received */
    int64_t stop_deadline;   /* give up waiting for acks then */
    int64_t last_ack_ms;     /* when the last acknowledgement came */
    stats_ingest_t st;       /* counters */
    pickle_t *pickle;        /* decoder for pickle connections */
    listener_t *cur;         /* the listener whose input is parsed now */
    int64_t curve_logged_ms; /* a failed CURVE handshake: logged then */
    const char *cur_src;     /* the address of the client parsed now */
    char udp_src[CODEC_SOURCE_MAX + 1];   /* a datagram's sender */
    char batch_src[CODEC_SOURCE_MAX + 1]; /* the batch's last source line */
    int batch_has_src;                    /* it has one */
    stats_listener_t *lsnap; /* per-listener counters, for the stats */
    long long pickle_now;    /* time for -1 while a frame is decoded */
    ev_prepare flush;        /* sends the partial batch before blocking */
    ev_timer tick;           /* resend check, stats, stop check */
    int64_t last_stats_ms;   /* when stats were last sent */
    size_t held;             /* bytes all connections hold (budget) */
    conn_t *hhead, *htail;   /* connections with held > 0, most recent
                                progress first */
    int64_t evict_log_ms;    /* when an eviction was last logged */
    uint64_t evict_logged;   /* st.evicted at that log */
    int reserve_fd;          /* a spare descriptor (/dev/null), closed
                                to accept-and-close when accept
                                fails with EMFILE; -1 when none */
};

size_t ingest_conn_limit(long nofile, size_t nstream)
{
    if (nofile < 2)
        return 1;
    long reserve = nofile / 4 < 128 ? 128 : nofile / 4;
    if (reserve > nofile / 2)
        reserve = nofile / 2;
    long per = (nofile - reserve) / (long)(nstream ? nstream : 1);
    return per < 1 ? 1 : (size_t)per;
}

void ingest_opts_default(ingest_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->maxline = (size_t)opt_default(OPT_MAXLINE);
    o->window_bytes = (size_t)opt_default(OPT_WINDOW);
    o->timeout_ms = (int)opt_default(OPT_ACK_TIMEOUT);
    o->timeout_max_ms = (int)opt_default(OPT_ACK_TIMEOUT_MAX);
    o->batch_bytes = BATCH_PAYLOAD_BYTES;
    o->stop_wait_ms = (int)opt_default(OPT_STOP_WAIT);
    o->max_frame = (size_t)opt_default(OPT_MAXFRAME);
    o->partial_budget = (size_t)opt_default(OPT_BUDGET);
    o->tls_handshake_ms = (int)opt_default(OPT_TLS_HANDSHAKE);
    o->max_ratio = (uint64_t)opt_default(OPT_INFLATE_RATIO);
}

/* ---- the window ---------------------------------------------------------- */

static int s_send_pending(ingest_t *ig, pending_t *p)
{
    unsigned char hdr[BATCH_HDR_LEN];
    batch_hdr_t h = {.type = BATCH_DATA,
                     .codec = CODEC_LINES_SRC,
                     .sat_id = ig->o.sat_id,
                     .seq = p->seq,
                     .count = p->count};
    batch_hdr_encode(&h, hdr);
    if (zmq_send(ig->dealer, hdr, sizeof hdr, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    if (zmq_send(ig->dealer, p->payload, p->len, ZMQ_DONTWAIT) < 0)
        return -1;
    p->sent_ms = clock_mono_ms();
    return 0;
}

static void s_pause(ingest_t *ig, int pause)
{
    if (ig->paused == pause)
        return;
    ig->paused = pause;
    for (conn_t *c = ig->conns; c; c = c->next) {
        if (ev_is_active(&c->hs))
            continue; /* a TLS handshake goes on: it brings no data */
        if (pause) {
            ev_io_stop(ig->loop, &c->io);
        } else {
            ev_io_start(ig->loop, &c->io);
            /* decrypted bytes the session holds, and what the decoder
             * holds, make no readiness */
            if ((c->tls && tls_pending(c->tls) > 0) ||
                (c->dec && codec_dec_pending(c->dec)))
                ev_feed_event(ig->loop, &c->io, EV_READ);
        }
    }
    for (size_t i = 0; i < ig->nls; i++) {
        listener_t *l = &ig->ls[i];
        if (l->proto != PROTO_UDP || l->fd < 0)
            continue;
        if (pause)
            ev_io_stop(ig->loop, &l->io);
        else
            ev_io_start(ig->loop, &l->io);
    }
}

/* Close the batch being filled and put it in the window. */
static void s_flush_batch(ingest_t *ig)
{
    ig->batch_has_src = 0;   /* each batch names its first source again */
    if (ig->batchcount == 0) /* source lines alone */
        ig->batchlen = 0;
    if (ig->batchlen == 0)
        return;
    pending_t *p = calloc(1, sizeof *p);
    char *payload = malloc(ig->batchlen);
    if (p == NULL || payload == NULL) {
        free(p);
        free(payload);
        log_err("ingest: batch: out of memory: %u datapoints lost",
                ig->batchcount);
        ig->batchlen = 0;
        ig->batchcount = 0;
        return;
    }
    memcpy(payload, ig->batch, ig->batchlen);
    p->seq = ig->nextseq++;
    p->made_ms = clock_mono_ms();
    p->count = ig->batchcount;
    p->payload = payload;
    p->len = ig->batchlen;
    ig->batchlen = 0;
    ig->batchcount = 0;
    if (ig->tail)
        ig->tail->next = p;
    else
        ig->head = p;
    ig->tail = p;
    ig->window += p->len;
    ig->st.batches++;
    /* in order: only send when everything older has gone out */
    int older_unsent = 0;
    for (pending_t *q = ig->head; q != p; q = q->next)
        if (q->sent_ms == 0) {
            older_unsent = 1;
            break;
        }
    if (!older_unsent)
        s_send_pending(ig, p);
    if (ig->window >= ig->o.window_bytes)
        s_pause(ig, 1);
}

static void s_ack(ingest_t *ig, uint64_t seq)
{
    pending_t *prev = NULL;
    for (pending_t *p = ig->head; p; prev = p, p = p->next) {
        if (p->seq != seq)
            continue;
        if (prev)
            prev->next = p->next;
        else
            ig->head = p->next;
        if (ig->tail == p)
            ig->tail = prev;
        ig->window -= p->len;
        free(p->payload);
        free(p);
        break;
    }
    if (ig->paused && !ig->stopping && ig->window < ig->o.window_bytes)
        s_pause(ig, 0);
}

static void s_switch(ingest_t *ig, int64_t now, const char *why);

/* A member of a pair that is not active refused batch seq: send it again
 * (after NACK_RETRY_MS, in order), or at once to the other member. */
static void s_nacked(ingest_t *ig, uint64_t seq)
{
    int64_t now = clock_mono_ms();
    for (pending_t *p = ig->head; p; p = p->next)
        if (p->seq == seq) {
            p->sent_ms = 0;
            p->nack_ms = now;
            ig->st.refused++;
            break;
        }
    if (ig->neps == 2 && now - ig->switched_ms >= NACK_RETRY_MS)
        s_switch(ig, now, "not active (it refused a batch)");
}

static void s_dealer_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    ingest_t *ig = arg;
    unsigned char buf[64];
    int n = zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT);
    if (n < 0)
        return;
    msg_discard_rest(sock); /* no multipart acks in this version */
    batch_hdr_t h;
    if (n > (int)sizeof buf || batch_hdr_decode(buf, (size_t)n, &h) != 0)
        return;
    if (h.type == BATCH_NACK) {
        s_nacked(ig, h.seq);
        return;
    }
    if (h.type != BATCH_ACK)
        return;
    ig->last_ack_ms = clock_mono_ms();
    ig->cur_timeout_ms = ig->o.timeout_ms; /* it is alive: no backoff */
    s_ack(ig, h.seq);
}

/* Mark every batch sent and not acknowledged for sending again (s_resend
 * sends them, oldest first).  Returns how many. */
static int s_requeue(ingest_t *ig)
{
    int k = 0;
    for (pending_t *p = ig->head; p; p = p->next) {
        p->nack_ms = 0;
        if (p->sent_ms != 0) {
            p->sent_ms = 0;
            k++;
        }
    }
    ig->st.resent += (uint64_t)k;
    return k;
}

/* A monitor event of the DEALER: [uint16 event, uint32 value][address].
 * A disconnect loses what the connection carried; once a connection is
 * up again (handshake done), everything unacknowledged goes out again. */
static void s_mon_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    ingest_t *ig = arg;
    unsigned char ev[6];
    int n = zmq_recv(sock, ev, sizeof ev, ZMQ_DONTWAIT);
    if (n < 0)
        return;
    /* the address: events of an endpoint this satellite left are old */
    char addr[256] = "";
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    if (more) {
        int k = zmq_recv(sock, addr, sizeof addr - 1, ZMQ_DONTWAIT);
        addr[k > 0 ? (k < (int)sizeof addr ? k : (int)sizeof addr - 1) : 0] =
            '\0';
    }
    msg_discard_rest(sock);
    if (n < 2 || (addr[0] && strcmp(addr, ig->orchester) != 0))
        return;
    uint16_t e;
    memcpy(&e, ev, sizeof e);
    if (e == ZMQ_EVENT_DISCONNECTED) {
        if (!ig->link_lost)
            log_warn("ingest: %s: connection lost", ig->orchester);
        ig->link_lost = 1;
    } else if (e == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
               e == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               e == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        /* zmq retries the connection by itself: count and say it, once a
         * minute at most */
        ig->st.curve_failed++;
        int64_t now = clock_mono_ms();
        if (ig->curve_logged_ms == 0 || now - ig->curve_logged_ms >= 60000) {
            log_err("ingest: %s: the CURVE handshake failed (%s): the "
                    "orchester's key is not the one of `curve ... server`, "
                    "or it does not admit this satellite's key (%llu so "
                    "far)",
                    ig->orchester,
                    e == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "refused"
                                                         : "protocol",
                    (unsigned long long)ig->st.curve_failed);
            ig->curve_logged_ms = now;
        }
    } else if (e == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && ig->link_lost) {
        ig->link_lost = 0;
        int k = s_requeue(ig);
        log_info("ingest: %s: connected again: resending %d unacknowledged "
                 "batches",
                 ig->orchester, k);
        ig->cur_timeout_ms = ig->o.timeout_ms;
        ev_feed_event(ig->loop, &ig->tick, EV_TIMER);
    }
}

/* Send to the other orchester of the pair: leave the current endpoint,
 * connect to the other, and send the whole window there again. */
static void s_switch(ingest_t *ig, int64_t now, const char *why)
{
    const char *from = ig->orchester;
    int next = 1 - ig->curep;
    zmq_disconnect(ig->dealer, from);
    if (zmq_connect(ig->dealer, ig->eps[next]) != 0) {
        log_err("ingest: %s: %s", ig->eps[next], zmq_strerror(zmq_errno()));
        zmq_connect(ig->dealer, from);
        ig->switched_ms = now;
        return;
    }
    ig->curep = next;
    ig->orchester = ig->eps[next];
    ig->switched_ms = now;
    ig->link_lost = 0;
    ig->cur_timeout_ms = ig->o.timeout_ms;
    ig->st.switches++;
    int k = s_requeue(ig);
    log_warn("ingest: %s: %s: sending to %s, %d unacknowledged batches "
             "again",
             from, why, ig->orchester, k);
}

/* Resend what is overdue, and send what could not be sent before (or was
 * marked for sending again after a reconnect).  Embedded, nothing is ever
 * overdue.  Standalone, the window is overdue when its oldest batch went
 * out more than the current timeout ago and no acknowledgement at all came
 * in that time: a link that acknowledges slowly (backpressure) is not
 * resent to, only a silent one, and each such resend doubles the timeout
 * up to its cap until an acknowledgement comes. */
static void s_resend(ingest_t *ig, int64_t now)
{
    if (ig->head == NULL)
        return;
    int overdue = !ig->o.embedded && ig->head->sent_ms != 0 &&
                  now - ig->head->sent_ms >= ig->cur_timeout_ms &&
                  now - ig->last_ack_ms >= ig->cur_timeout_ms;
    /* with two orchesters (a pair), a window that got no acknowledgement
     * for the timeout, sent or not (a dead member takes nothing), goes to
     * the other one */
    if (ig->neps == 2 && now - ig->head->made_ms >= ig->o.timeout_ms &&
        now - ig->last_ack_ms >= ig->o.timeout_ms &&
        now - ig->switched_ms >= ig->o.timeout_ms) {
        char why[64];
        snprintf(why, sizeof why, "no acknowledgement for %d ms",
                 ig->o.timeout_ms);
        s_switch(ig, now, why);
        return;
    }
    int k = 0;
    for (pending_t *p = ig->head; p; p = p->next) {
        if (p->sent_ms != 0 && !overdue)
            continue;
        if (p->sent_ms == 0 && p->nack_ms != 0 &&
            now - p->nack_ms < NACK_RETRY_MS)
            break; /* refused just now: again a little later, in order */
        if (s_send_pending(ig, p) != 0)
            break;
        if (overdue)
            ig->st.resent++;
        k++;
    }
    if (overdue && k > 0) {
        log_warn("ingest: %s: no acknowledgement for %d ms: resent %d batches",
                 ig->orchester, ig->cur_timeout_ms, k);
        ig->cur_timeout_ms = ig->cur_timeout_ms > ig->o.timeout_max_ms / 2
                                 ? ig->o.timeout_max_ms
                                 : ig->cur_timeout_ms * 2;
    }
}

/* ---- lines --------------------------------------------------------------- */

/* Make room in the batch for one more canonical line, and write the
 * address of its client before it when it is not the last one written
 * (CODEC_LINES_SRC: `file ip` clusters write it). */
static void s_room(ingest_t *ig)
{
    if (ig->batchcap - ig->batchlen < ig->o.maxline + 64 + CODEC_SOURCE_MAX + 2)
        s_flush_batch(ig);
    /* a batch starts with no address ("", as the orchester reads it) */
    const char *src = ig->cur_src ? ig->cur_src : "";
    if (strcmp(ig->batch_has_src ? ig->batch_src : "", src) == 0)
        return;
    size_t l = strlen(src);
    char *o = ig->batch + ig->batchlen;
    o[0] = '\0';
    memcpy(o + 1, src, l);
    o[1 + l] = '\n';
    ig->batchlen += l + 2;
    memcpy(ig->batch_src, src, l + 1);
    ig->batch_has_src = 1;
}

/* Account for a datapoint the parser wrote at the end of the batch (st ==
 * LINE_OK) or refused. */
static void s_counted(ingest_t *ig, line_status_t st, const line_result_t *res)
{
    if (st == LINE_OK) {
        ig->batchlen += res->len;
        ig->batchcount++;
        ig->st.received++;
        ig->cur->st.received++;
        if (ig->batchlen >= ig->o.batch_bytes)
            s_flush_batch(ig);
    } else if (st != LINE_EMPTY) {
        ig->st.errors[st]++;
        ig->cur->st.errors++;
    }
}

static void s_line(ingest_t *ig, const char *s, size_t len, long long now)
{
    if (len > ig->o.maxline) {
        ig->st.errors[LINE_TOOLONG]++;
        ig->cur->st.errors++;
        return;
    }
    s_room(ig);
    line_result_t res;
    s_counted(ig,
              line_parse(s, len, now, ig->batch + ig->batchlen,
                         ig->batchcap - ig->batchlen, &res),
              &res);
}

/* The stream of a connection ended with len bytes of a line and no '\n':
 * like carbon's line receiver, drop them, and count it unless they are
 * only white space. */
static void s_unterminated(ingest_t *ig, listener_t *l, const char *s,
                           size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            ig->st.errors[LINE_UNTERMINATED]++;
            l->st.errors++;
            return;
        }
}

/* Split buf on '\n'; returns the offset of the unfinished tail. */
static size_t s_lines(ingest_t *ig, const char *buf, size_t len)
{
    long long now = (long long)ev_now(ig->loop);
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(buf + start, '\n', len - start);
        if (nl == NULL)
            break;
        size_t end = (size_t)(nl - buf);
        s_line(ig, buf + start, end - start, now);
        start = end + 1;
    }
    return start;
}

/* ---- connections --------------------------------------------------------- */

static void s_hold_unlink(ingest_t *ig, conn_t *c)
{
    if (c->hprev)
        c->hprev->hnext = c->hnext;
    else if (ig->hhead == c)
        ig->hhead = c->hnext;
    if (c->hnext)
        c->hnext->hprev = c->hprev;
    else if (ig->htail == c)
        ig->htail = c->hprev;
    c->hprev = c->hnext = NULL;
}

/* Connection c made progress and now holds held bytes: account for them,
 * and put it first in the list of connections that hold bytes (or take it
 * out when it holds none). */
static void s_hold(conn_t *c, size_t held)
{
    ingest_t *ig = c->ig;
    ig->held = ig->held - c->held + held;
    c->held = held;
    s_hold_unlink(ig, c);
    if (held == 0)
        return;
    c->hnext = ig->hhead;
    if (ig->hhead)
        ig->hhead->hprev = c;
    ig->hhead = c;
    if (ig->htail == NULL)
        ig->htail = c;
}

static void s_conn_close(conn_t *c);

/* While the connections hold more than the budget, close the one whose
 * progress is least recent.  Returns -1 when that closed cur itself. */
static int s_budget(ingest_t *ig, conn_t *cur)
{
    int closed_cur = 0;
    while (ig->held > ig->o.partial_budget && ig->htail != NULL) {
        conn_t *v = ig->htail;
        closed_cur |= v == cur;
        ig->st.evicted++;
        int64_t now = clock_mono_ms();
        if (ig->evict_log_ms == 0 || now - ig->evict_log_ms >= LOG_EVERY_MS) {
            log_warn("ingest: %s: unfinished lines and frames of all "
                     "connections over %zu bytes: closed %llu stalled "
                     "connections since the last report",
                     v->l->name, ig->o.partial_budget,
                     (unsigned long long)(ig->st.evicted - ig->evict_logged));
            ig->evict_log_ms = now;
            ig->evict_logged = ig->st.evicted;
        }
        s_conn_close(v);
    }
    return closed_cur ? -1 : 0;
}

static void s_conn_close(conn_t *c)
{
    ingest_t *ig = c->ig;
    s_hold_unlink(ig, c);
    ig->held -= c->held;
    ev_io_stop(ig->loop, &c->io);
    ev_timer_stop(ig->loop, &c->hs);
    tls_session_free(&c->tls);
    codec_dec_free(&c->dec);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        ig->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ig->st.connections--;
    c->l->nconns--;
    free(c->part);
    free(c);
}

/* Read from a client connection's socket: plain, or through its TLS
 * session (a stream error is logged and reads as the end of the
 * connection). */
static ssize_t s_read_raw(conn_t *c, void *buf, size_t n)
{
    if (c->tls == NULL)
        return read(c->fd, buf, n);
    char why[200];
    ssize_t got = tls_read(c->tls, buf, n, why, sizeof why);
    if (got < 0 && errno == EPROTO) {
        log_warn("ingest: %s: TLS client %s: %s: closing the connection",
                 c->l->name, c->src[0] ? c->src : "?", why);
        return 0;
    }
    return got;
}

/* Read the stream of a client connection: what the socket gives, through
 * its TLS session and its decoder where it has them.  A corrupt stream or
 * a bomb is counted, logged and reads as the end of the connection. */
static ssize_t s_read(conn_t *c, void *buf, size_t n)
{
    ssize_t got;
    if (c->l->tr.codec && c->dec == NULL) {
        /* made at the first read, not at accept: a connection that sends
         * nothing (or never ends its TLS handshake) holds no decoder */
        c->dec = codec_dec_new(c->l->tr.codec, c->ig->o.max_ratio);
        if (c->dec == NULL) {
            log_warn("ingest: %s: client %s: out of memory for its decoder: "
                     "closing the connection",
                     c->l->name, c->src[0] ? c->src : "?");
            return 0;
        }
    }
    if (c->dec == NULL) {
        got = s_read_raw(c, buf, n);
    } else {
        char why[200];
        for (;;) {
            got = codec_dec_read(c->dec, buf, n, why, sizeof why);
            if (got != 0)
                break;
            size_t room;
            void *p = codec_dec_room(c->dec, &room);
            ssize_t r = s_read_raw(c, p, room);
            if (r <= 0)
                return r; /* again, or the end (a cut block is lost) */
            codec_dec_put(c->dec, (size_t)r);
        }
        if (got < 0) {
            uint64_t in, out;
            codec_dec_totals(c->dec, &in, &out);
            c->l->st.decode_errors++;
            log_warn("ingest: %s: %s client %s: %s (after %llu bytes in, "
                     "%llu out): closing the connection",
                     c->l->name, codec_name(c->l->tr.codec),
                     c->src[0] ? c->src : "?", why, (unsigned long long)in,
                     (unsigned long long)out);
            return 0;
        }
        if (codec_dec_pending(c->dec)) {
            ev_feed_event(c->ig->loop, &c->io, EV_READ);
            return got;
        }
    }
    /* a read that filled buf may leave decrypted bytes behind */
    if (got > 0 && c->tls && tls_pending(c->tls) > 0)
        ev_feed_event(c->ig->loop, &c->io, EV_READ);
    return got;
}

static void s_conn_fn(struct ev_loop *loop, ev_io *io, int revents);
static void s_pickle_conn_fn(struct ev_loop *loop, ev_io *io, int revents);

/* A TLS handshake failed or timed out: count it, log at most once per
 * LOG_EVERY_MS per listener (with the latest reason), close c. */
static void s_tls_fail(conn_t *c, const char *why)
{
    listener_t *l = c->l;
    int64_t now = clock_mono_ms();
    uint64_t bad = l->st.tls_failed + l->st.tls_timeouts;
    if (l->tls_log_ms == 0 || now - l->tls_log_ms >= LOG_EVERY_MS) {
        log_warn("ingest: %s: TLS handshake of %s failed: %s (%llu failed "
                 "since the last report)",
                 l->name, c->src[0] ? c->src : "?", why,
                 (unsigned long long)(bad - l->tls_logged));
        l->tls_log_ms = now;
        l->tls_logged = bad;
    }
    s_conn_close(c);
}

static void s_hs_timeout_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    conn_t *c = t->data;
    c->l->st.tls_timeouts++;
    s_tls_fail(c, "not done within the handshake timeout (-E)");
}

/* A step of a TLS client's handshake; once done, the connection reads
 * lines or frames. */
static void s_hs_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    conn_t *c = io->data;
    char why[200];
    int want;
    switch (tls_handshake(c->tls, why, sizeof why)) {
    case TLS_DONE:
        ev_timer_stop(loop, &c->hs);
        c->l->st.tls_ok++;
        if (tls_version(c->tls) == 13)
            c->l->st.tls13++;
        else
            c->l->st.tls12++;
        ev_io_stop(loop, &c->io);
        ev_io_init(&c->io,
                   c->l->wire == WIRE_PICKLE ? s_pickle_conn_fn : s_conn_fn,
                   c->fd, EV_READ);
        c->io.data = c;
        if (!c->ig->paused) {
            ev_io_start(loop, &c->io);
            /* the client's first data may have come with its Finished */
            ev_feed_event(loop, &c->io, EV_READ);
        }
        return;
    case TLS_WANT_READ: want = EV_READ; break;
    case TLS_WANT_WRITE: want = EV_WRITE; break;
    case TLS_CERT_REFUSED:
        c->l->st.tls_refused++;
        c->l->st.tls_failed++;
        s_tls_fail(c, why);
        return;
    default:
        c->l->st.tls_failed++;
        s_tls_fail(c, why);
        return;
    }
    if ((io->events & (EV_READ | EV_WRITE)) != want) {
        int active = ev_is_active(io);
        ev_io_stop(loop, io);
        ev_io_set(io, c->fd, want);
        if (active)
            ev_io_start(loop, io);
    }
}

static void s_conn_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    conn_t *c = io->data;
    ingest_t *ig = c->ig;
    ig->cur = c->l;
    ig->cur_src = c->src;
    char *buf = ig->scratch;
    size_t have = c->partlen;
    if (have)
        memcpy(buf, c->part, have);
    ssize_t n = s_read(c, buf + have, READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* EOF or error: a final line without '\n' is cut short */
        if (have && !c->discarding)
            s_unterminated(ig, c->l, buf, have);
        s_conn_close(c);
        return;
    }
    size_t len = have + (size_t)n;
    size_t start = 0;
    if (c->discarding) {
        const char *nl = memchr(buf, '\n', len);
        if (nl == NULL) {
            c->partlen = 0;
            free(c->part);
            c->part = NULL;
            s_hold(c, 0);
            return;
        }
        c->discarding = 0;
        start = (size_t)(nl - buf) + 1;
    }
    start += s_lines(ig, buf + start, len - start);
    size_t rest = len - start;
    if (rest > ig->o.maxline) {
        /* an over-long line: count it once, skip to its end */
        ig->st.errors[LINE_TOOLONG]++;
        c->l->st.errors++;
        c->discarding = 1;
        rest = 0;
    }
    if (rest > 0) {
        char *p = realloc(c->part, rest);
        if (p == NULL) {
            s_conn_close(c);
            return;
        }
        memcpy(p, buf + start, rest);
        c->part = p;
    } else {
        free(c->part);
        c->part = NULL;
    }
    c->partlen = rest;
    s_hold(c, rest);
    s_budget(ig, c);
}

/* One datapoint of an accepted pickle frame: the plaintext rules apply. */
static void s_pickle_point(void *arg, const char *name, size_t namelen,
                           const char *value, size_t valuelen, const char *ts,
                           size_t tslen)
{
    ingest_t *ig = arg;
    s_room(ig);
    line_result_t res;
    s_counted(ig,
              line_canon(name, namelen, value, valuelen, ts, tslen,
                         ig->pickle_now, ig->batch + ig->batchlen,
                         ig->o.maxline + 1, &res),
              &res);
}

/* Decode every whole frame at the start of the connection's buffer.
 * Returns -1 when the connection must be closed (a frame over the limit). */
static int s_pickle_frames(conn_t *c)
{
    ingest_t *ig = c->ig;
    size_t off = 0;
    ig->pickle_now = (long long)ev_now(ig->loop);
    while (c->partlen - off >= 4) {
        const unsigned char *p = (const unsigned char *)c->part + off;
        size_t flen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) |
                      ((size_t)p[2] << 8) | p[3];
        if (flen > ig->o.max_frame) {
            ig->st.pickle_toobig++;
            c->l->st.errors++;
            return -1;
        }
        if (c->partlen - off - 4 < flen)
            break;
        pickle_status_t why;
        size_t n = 0;
        if (pickle_run(ig->pickle, p + 4, flen, s_pickle_point, ig, &why, &n) ==
            0)
            ig->st.pickle_frames++;
        else {
            ig->st.pickle_refused++;
            c->l->st.errors++;
        }
        off += 4 + flen;
    }
    if (off > 0) {
        memmove(c->part, c->part + off, c->partlen - off);
        c->partlen -= off;
    }
    return 0;
}

static void s_pickle_conn_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    conn_t *c = io->data;
    ingest_t *ig = c->ig;
    ig->cur = c->l;
    ig->cur_src = c->src;
    /* room for a READ_CHUNK read; the buffer grows with what arrived
     * (doubling), never past the end of the current frame by more than a
     * read, so an announced frame costs only the bytes really sent */
    if (c->partcap - c->partlen < READ_CHUNK) {
        size_t cap = c->partcap * 2;
        if (cap < c->partlen + READ_CHUNK)
            cap = c->partlen + READ_CHUNK;
        if (c->partlen >= 4) {
            const unsigned char *p = (const unsigned char *)c->part;
            size_t flen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) |
                          ((size_t)p[2] << 8) | p[3];
            if (flen <= ig->o.max_frame &&
                flen + 4 >= c->partlen + READ_CHUNK && cap > flen + 4)
                cap = flen + 4;
        }
        char *np = realloc(c->part, cap);
        if (np == NULL) {
            s_conn_close(c);
            return;
        }
        c->part = np;
        c->partcap = cap;
    }
    ssize_t n = s_read(c, c->part + c->partlen, c->partcap - c->partlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (c->partlen > 0) { /* a frame cut short by the close */
            ig->st.pickle_refused++;
            c->l->st.errors++;
        }
        s_conn_close(c);
        return;
    }
    c->partlen += (size_t)n;
    if (s_pickle_frames(c) != 0) {
        log_warn("ingest: %s: pickle frame over %zu bytes: closing the "
                 "connection",
                 c->l->name, ig->o.max_frame);
        s_conn_close(c);
        return;
    }
    /* an idle connection keeps no buffer, and holds nothing */
    if (c->partlen == 0) {
        free(c->part);
        c->part = NULL;
        c->partcap = 0;
    }
    s_hold(c, c->partcap);
    s_budget(ig, c);
}

static void s_accept_retry_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    listener_t *l = t->data;
    ev_io_start(loop, &l->io);
}

/* Log refused connections, at most once per LOG_EVERY_MS per listener. */
static void s_refuse_log(ingest_t *ig, listener_t *l, const char *why)
{
    int64_t now = clock_mono_ms();
    if (l->log_ms != 0 && now - l->log_ms < LOG_EVERY_MS)
        return;
    log_warn("ingest: %s: %s: %llu connections refused since the last "
             "report (connection limit %zu, %zu open)",
             l->name, why, (unsigned long long)(l->st.refused - l->log_refused),
             ig->o.max_conns, l->nconns);
    l->log_ms = now;
    l->log_refused = l->st.refused;
}

/* accept() failed with EMFILE or ENFILE: give up the spare descriptor for
 * a moment to accept one connection and close it, so that a full backlog
 * does not keep the listener readable for ever.  Returns 0 when a
 * connection was shed, -1 (errno set) when not. */
static int s_shed(ingest_t *ig, listener_t *l)
{
    if (ig->reserve_fd < 0)
        return -1;
    close(ig->reserve_fd);
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int e = errno;
    if (fd >= 0)
        close(fd);
    ig->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    l->st.refused++;
    ig->st.shed++;
    s_refuse_log(ig, l, "out of file descriptors: shedding connections");
    return 0;
}

/* A peer's address as carbon-c-relay writes it into `file ip` files:
 * the IP address alone; "" for a unix socket. */
static void s_addr_text(const struct sockaddr_storage *ss, socklen_t sl,
                        char *out, size_t len)
{
    out[0] = '\0';
    if (ss->ss_family == AF_INET && sl >= sizeof(struct sockaddr_in))
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out,
                  (socklen_t)len);
    else if (ss->ss_family == AF_INET6 && sl >= sizeof(struct sockaddr_in6))
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
                  (socklen_t)len);
}

static void s_accept_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    listener_t *l = io->data;
    ingest_t *ig = l->ig;
    if (ig->reserve_fd < 0) /* lost to another thread: try again */
        ig->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE) &&
            s_shed(ig, l) == 0)
            continue;
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                log_warn("ingest: %s: accept: %s: pausing 1 s", l->name,
                         strerror(errno));
                ev_io_stop(loop, &l->io);
                ev_timer_set(&l->retry,
                             (double)opt_default(OPT_ACCEPT_PAUSE) / 1000.0,
                             0.0);
                ev_timer_start(loop, &l->retry);
            }
            return;
        }
        if (l->nconns >= ig->o.max_conns) {
            close(fd);
            l->st.refused++;
            s_refuse_log(ig, l, "connection limit reached");
            continue;
        }
        conn_t *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->ig = ig;
        c->l = l;
        c->fd = fd;
        s_addr_text(&ss, sl, c->src, sizeof c->src);
        ev_io_init(&c->io,
                   l->wire == WIRE_PICKLE ? s_pickle_conn_fn : s_conn_fn, fd,
                   EV_READ);
        c->io.data = c;
        ev_timer_init(&c->hs, s_hs_timeout_fn,
                      (double)ig->o.tls_handshake_ms / 1000.0, 0.0);
        c->hs.data = c;
        if (l->tls) {
            if ((c->tls = tls_session_new(l->tls, fd)) == NULL) {
                close(fd);
                free(c);
                return;
            }
            ev_io_init(&c->io, s_hs_fn, fd, EV_READ);
            c->io.data = c;
            ev_timer_start(loop, &c->hs);
            ev_io_start(loop, &c->io);
        }
        c->next = ig->conns;
        if (ig->conns)
            ig->conns->prev = c;
        ig->conns = c;
        ig->st.connections++;
        l->nconns++;
        if (!ig->paused && !c->tls)
            ev_io_start(loop, &c->io);
    }
}

static void s_udp_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    listener_t *l = io->data;
    ingest_t *ig = l->ig;
    ig->cur = l;
    ig->cur_src = ig->udp_src;
    for (int i = 0; i < UDP_BURST && !ig->paused; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n = recvfrom(l->fd, ig->scratch, ig->scratchcap, 0,
                             (struct sockaddr *)&ss, &sl);
        if (n <= 0)
            return;
        s_addr_text(&ss, sl, ig->udp_src, sizeof ig->udp_src);
        size_t start = s_lines(ig, ig->scratch, (size_t)n);
        /* a datagram ends its last line */
        if (start < (size_t)n)
            s_line(ig, ig->scratch + start, (size_t)n - start,
                   (long long)ev_now(ig->loop));
    }
}

/* ---- loop plumbing ------------------------------------------------------- */

static void s_send_stats(ingest_t *ig)
{
    if (ig->stats == NULL)
        return;
    ig->st.window_bytes = ig->window;
    ig->st.partial_bytes = ig->held;
    msg_send(ig->stats, MSG_STATS_INGEST, 0, 1, &ig->st, sizeof ig->st,
             ZMQ_DONTWAIT);
    for (size_t i = 0; i < ig->nls; i++)
        ig->lsnap[i] = ig->ls[i].st;
    if (ig->nls > 0)
        msg_send(ig->stats, MSG_STATS_LISTENERS, 0, (uint32_t)ig->nls,
                 ig->lsnap, ig->nls * sizeof *ig->lsnap, ZMQ_DONTWAIT);
}

static void s_close_clients(ingest_t *ig)
{
    while (ig->conns) {
        conn_t *c = ig->conns;
        ig->cur = c->l;
        if (c->partlen && !c->discarding && c->l->wire == WIRE_LINEMODE)
            s_unterminated(ig, c->l, c->part, c->partlen);
        s_conn_close(c);
    }
    for (size_t i = 0; i < ig->nls; i++) {
        listener_t *l = &ig->ls[i];
        ev_io_stop(ig->loop, &l->io);
        ev_timer_stop(ig->loop, &l->retry);
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
    }
}

static void s_tls_reload(ingest_t *ig);

static void s_ctl_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    ingest_t *ig = arg;
    msg_hdr_t h;
    int type = msg_recv_ctl(sock, &h);
    if (type == MSG_RELOAD) {
        s_tls_reload(ig);
        return;
    }
    if (type == MSG_STOP && !ig->stopping) {
        ig->stopping = 1;
        ig->stop_deadline = clock_mono_ms() + ig->o.stop_wait_ms;
        s_close_clients(ig);
        s_flush_batch(ig);
        ev_feed_event(ig->loop, &ig->tick, EV_TIMER);
    }
}

static void s_flush_fn(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    s_flush_batch(w->data);
}

/* Batches in the window (unacknowledged). */
static size_t s_unacked(const ingest_t *ig)
{
    size_t n = 0;
    for (const pending_t *p = ig->head; p; p = p->next)
        n++;
    return n;
}

/* The counters a standalone satellite reports (status and self metrics). */
static size_t s_counters(const ingest_t *ig, const char **names, uint64_t *vals,
                         size_t max)
{
    size_t k = 0;
#define S_C(n, v)                                                              \
    do {                                                                       \
        if (k < max) {                                                         \
            names[k] = n;                                                      \
            vals[k++] = (uint64_t)(v);                                         \
        }                                                                      \
    } while (0)
    S_C("received", ig->st.received);
    S_C("parseErrors", stats_parse_errors(&ig->st));
    S_C("batches", ig->st.batches);
    S_C("resent", ig->st.resent);
    S_C("switches", ig->st.switches);
    S_C("curveFailed", ig->st.curve_failed);
    S_C("refused", ig->st.refused);
    S_C("window", ig->window);
    S_C("connections", ig->st.connections);
    S_C("orchester", ig->curep);
#undef S_C
    return k;
}

/* `status` on the satellite's control socket. */
static void s_control_fn(zwatch_t *w, void *sock, void *arg)
{
    (void)w;
    ingest_t *ig = arg;
    char cmd[64] = "";
    int n = zmq_recv(sock, cmd, sizeof cmd - 1, ZMQ_DONTWAIT);
    if (n < 0)
        return;
    cmd[n < (int)sizeof cmd ? n : (int)sizeof cmd - 1] = '\0';
    msg_discard_rest(sock);
    char out[8192];
    size_t len = 0;
    if (strcmp(cmd, "status") != 0) {
        len = (size_t)snprintf(out, sizeof out,
                               "error unknown command '%.40s'\n", cmd);
    } else {
        len += (size_t)snprintf(
            out + len, sizeof out - len,
            "satellite orchester=%s other=%s window=%zu unacknowledged=%zu\n",
            ig->orchester, ig->neps == 2 ? ig->eps[1 - ig->curep] : "-",
            ig->window, s_unacked(ig));
        for (size_t i = 0; i < ig->nls && len < sizeof out - 1024; i++) {
            const listener_t *l = &ig->ls[i];
            len += (size_t)snprintf(
                out + len, sizeof out - len,
                "listener %s received=%llu errors=%llu refused=%llu", l->name,
                (unsigned long long)l->st.received,
                (unsigned long long)l->st.errors,
                (unsigned long long)l->st.refused);
            if (l->tr.codec)
                len += (size_t)snprintf(
                    out + len, sizeof out - len, " decodeErrors=%llu",
                    (unsigned long long)l->st.decode_errors);
            if (l->tr.tls)
                len += (size_t)snprintf(
                    out + len, sizeof out - len,
                    " handshakes=%llu tlsFailures=%llu tlsCertRefused=%llu "
                    "tlsTimeouts=%llu tls1.2=%llu tls1.3=%llu",
                    (unsigned long long)l->st.tls_ok,
                    (unsigned long long)l->st.tls_failed,
                    (unsigned long long)l->st.tls_refused,
                    (unsigned long long)l->st.tls_timeouts,
                    (unsigned long long)l->st.tls12,
                    (unsigned long long)l->st.tls13);
            len += (size_t)snprintf(out + len, sizeof out - len, "\n");
        }
        const char *names[16];
        uint64_t vals[16];
        size_t k = s_counters(ig, names, vals, 16);
        for (size_t i = 0; i < k && len < sizeof out - 128; i++)
            len += (size_t)snprintf(out + len, sizeof out - len,
                                    "counter %s %llu\n", names[i],
                                    (unsigned long long)vals[i]);
    }
    zmq_send(sock, out, len < sizeof out ? len : sizeof out - 1, ZMQ_DONTWAIT);
}

/* A standalone satellite's self metrics: datapoints in its own batches,
 * routed by the orchester like any other. */
static void s_self_metrics(ingest_t *ig, int64_t now)
{
    if (ig->metrics_prefix == NULL || ig->o.metrics_s <= 0 || ig->stopping ||
        now - ig->metrics_ms < (int64_t)ig->o.metrics_s * 1000)
        return;
    ig->metrics_ms = now;
    const char *names[16];
    uint64_t vals[16];
    size_t k = s_counters(ig, names, vals, 16);
    long long ts = (long long)clock_wall_s();
    ig->cur_src = "127.0.0.1"; /* its own, as carbon-c-relay writes them */
    for (size_t i = 0; i < k; i++) {
        s_room(ig);
        int n = snprintf(ig->batch + ig->batchlen, ig->batchcap - ig->batchlen,
                         "%s.%s %llu %lld\n", ig->metrics_prefix, names[i],
                         (unsigned long long)vals[i], ts);
        if (n > 0 && (size_t)n < ig->batchcap - ig->batchlen) {
            ig->batchlen += (size_t)n;
            ig->batchcount++;
        }
    }
    s_flush_batch(ig);
}

static void s_tick_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    ingest_t *ig = t->data;
    int64_t now = clock_mono_ms();
    s_self_metrics(ig, now);
    s_resend(ig, now);
    if (now - ig->last_stats_ms >= opt_default(OPT_SNAPSHOT)) {
        ig->last_stats_ms = now;
        s_send_stats(ig);
    }
    if (ig->stopping && (ig->head == NULL || now >= ig->stop_deadline)) {
        if (ig->head != NULL)
            log_warn("ingest: %s: stopping with %zu bytes unacknowledged",
                     ig->orchester, ig->window);
        s_send_stats(ig);
        ev_break(loop, EVBREAK_ALL);
    }
}

/* A TLS listener's context, from its transport clause and -C. */
static tls_server_t *s_tls_server(const ingest_t *ig, const listener_t *l,
                                  char *err, size_t errlen)
{
    tls_conf_t tc = {
        .pem = l->tr.pem,
        .ca = l->tr.ca ? l->tr.ca : ig->o.tls_ca,
        .mutual = l->tr.tls == TLS_MUTUAL,
        .protomin = l->tr.protomin,
        .protomax = l->tr.protomax,
        .ciphers = l->tr.ciphers,
        .suites = l->tr.suites,
    };
    return tls_server_new(&tc, err, errlen);
}

/* A reload: every TLS listener reads its certificate, key and CA again.
 * New connections get the new context; those established keep theirs.  A
 * listener whose files do not load keeps the old one, and says why. */
static void s_tls_reload(ingest_t *ig)
{
    for (size_t i = 0; i < ig->nls; i++) {
        listener_t *l = &ig->ls[i];
        char why[600];
        if (l->tls == NULL)
            continue;
        tls_server_t *t = s_tls_server(ig, l, why, sizeof why);
        if (t == NULL) {
            log_err("ingest: %s: reload: %s: keeping the certificate "
                    "loaded before",
                    l->name, why);
            continue;
        }
        tls_server_free(&l->tls);
        l->tls = t;
        log_info("ingest: %s: reload: certificate and key read again from "
                 "%s",
                 l->name, l->tr.pem);
    }
}

/* ---- life ---------------------------------------------------------------- */

static int s_listener(ingest_t *ig, listener_t *l, const config_listen_t *cl,
                      char *err, size_t errlen)
{
    char addr[300];
    l->ig = ig;
    l->proto = cl->proto;
    l->fd = -1;
    l->wire = cl->type;
    switch (cl->proto) {
    case PROTO_TCP:
        net_addr_str(addr, sizeof addr, cl->host, cl->port);
        snprintf(l->name, sizeof l->name, "%s tcp %s",
                 cl->type == WIRE_PICKLE ? "pickle" : "linemode", addr);
        l->fd = net_listen_tcp(cl->host, cl->port, 512, err, errlen);
        break;
    case PROTO_UDP:
        net_addr_str(addr, sizeof addr, cl->host, cl->port);
        snprintf(l->name, sizeof l->name, "udp %s", addr);
        l->fd = net_bind_udp(cl->host, cl->port, 4 << 20, err, errlen);
        break;
    case PROTO_UNIX:
        snprintf(l->name, sizeof l->name, "unix %s", cl->path);
        l->fd = net_listen_unix(cl->path, 512, err, errlen);
        break;
    }
    if (l->fd < 0)
        return -1;
    if (config_transport_dup(&l->tr, &cl->tr) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (l->tr.codec || l->tr.tls)
        snprintf(l->name + strlen(l->name), sizeof l->name - strlen(l->name),
                 " (%s%s)", codec_name(l->tr.codec),
                 l->tr.tls == TLS_MUTUAL ? " mtls"
                 : l->tr.tls             ? " ssl"
                                         : "");
    if (l->tr.tls) {
        char why[600];
        if ((l->tls = s_tls_server(ig, l, why, sizeof why)) == NULL) {
            snprintf(err, errlen, "%s: %s", l->name, why);
            config_transport_free(&l->tr);
            return -1;
        }
    }
    ev_io_init(&l->io, cl->proto == PROTO_UDP ? s_udp_fn : s_accept_fn, l->fd,
               EV_READ);
    l->io.data = l;
    ev_timer_init(&l->retry, s_accept_retry_fn,
                  (double)opt_default(OPT_ACCEPT_PAUSE) / 1000.0, 0.0);
    l->retry.data = l;
    return 0;
}

static char *s_strdup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

ingest_t *ingest_new(void *zctx, const config_listen_t *listens, size_t n,
                     const ingest_opts_t *o, char *err, size_t errlen)
{
    ingest_t *ig = calloc(1, sizeof *ig);
    if (ig == NULL)
        goto nomem;
    ig->o = *o;
    if (ig->o.timeout_max_ms < ig->o.timeout_ms)
        ig->o.timeout_max_ms = ig->o.timeout_ms;
    ig->cur_timeout_ms = ig->o.timeout_ms;
    ig->nextseq = 1;
    ig->reserve_fd = -1;
    ig->eps[0] = s_strdup0(o->orchester);
    ig->eps[1] = o->orchester_alt ? s_strdup0(o->orchester_alt) : NULL;
    ig->neps = o->orchester_alt ? 2 : 1;
    ig->orchester = ig->eps[0];
    ig->ctl_endpoint = s_strdup0(o->ctl_endpoint);
    ig->stats_endpoint = s_strdup0(o->stats_endpoint);
    ig->o.orchester = ig->orchester;
    ig->o.ctl_endpoint = ig->ctl_endpoint;
    ig->o.stats_endpoint = ig->stats_endpoint;
    ig->tls_ca = s_strdup0(o->tls_ca);
    ig->o.tls_ca = ig->tls_ca;
    ig->loop = ev_loop_new(EVFLAG_AUTO);
    ig->scratchcap = o->maxline + READ_CHUNK;
    ig->scratch = malloc(ig->scratchcap);
    ig->batchcap = o->batch_bytes + o->maxline + 128;
    ig->batch = malloc(ig->batchcap);
    ig->ls = calloc(n ? n : 1, sizeof *ig->ls);
    ig->lsnap = calloc(n ? n : 1, sizeof *ig->lsnap);
    ig->pickle = pickle_new(NULL);
    if (ig->loop == NULL || ig->scratch == NULL || ig->batch == NULL ||
        ig->ls == NULL || ig->orchester == NULL || ig->ctl_endpoint == NULL ||
        ig->pickle == NULL || ig->lsnap == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (s_listener(ig, &ig->ls[i], &listens[i], err, errlen) != 0) {
            ig->nls = i;
            goto err;
        }
        ig->nls = i + 1;
    }
    if (ig->o.max_conns == 0) {
        struct rlimit rl;
        long nofile = 1024;
        size_t nstream = 0;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
            nofile = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1L << 30)
                         ? 1L << 30
                         : (long)rl.rlim_cur;
        for (size_t i = 0; i < n; i++)
            nstream += listens[i].proto != PROTO_UDP;
        ig->o.max_conns = ingest_conn_limit(nofile, nstream);
    }
    log_info("ingest: at most %zu connections per TCP or unix listener",
             ig->o.max_conns);
    ig->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (ig->reserve_fd < 0) {
        snprintf(err, errlen, "ingest: /dev/null: %s", strerror(errno));
        goto err;
    }
    int linger = 0, hwm = 100000, one = 1;
    ig->dealer = zmq_socket(zctx, ZMQ_DEALER);
    ig->ctl = zmq_socket(zctx, ZMQ_PAIR);
    if (ig->dealer == NULL || ig->ctl == NULL)
        goto zerr;
    zmq_setsockopt(ig->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(ig->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(ig->dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(ig->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(ig->ctl, ZMQ_LINGER, &linger, sizeof linger);
    if (o->curve_kp && o->curve_server &&
        curve_client(ig->dealer, o->curve_kp, o->curve_server) != 0)
        goto zerr;
    if (zmq_connect(ig->dealer, ig->orchester) != 0 ||
        zmq_connect(ig->ctl, ig->ctl_endpoint) != 0)
        goto zerr;
    if (ig->stats_endpoint) {
        ig->stats = zmq_socket(zctx, ZMQ_PUSH);
        if (ig->stats == NULL)
            goto zerr;
        zmq_setsockopt(ig->stats, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(ig->stats, ig->stats_endpoint) != 0)
            goto zerr;
    }
    if (!ig->o.embedded) {
        char ep[64];
        snprintf(ep, sizeof ep, "inproc://ingest-monitor-%p", (void *)ig);
        if (zmq_socket_monitor(ig->dealer, ep,
                               ZMQ_EVENT_DISCONNECTED |
                                   ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
            goto zerr;
        ig->mon = zmq_socket(zctx, ZMQ_PAIR);
        if (ig->mon == NULL)
            goto zerr;
        zmq_setsockopt(ig->mon, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(ig->mon, ep) != 0)
            goto zerr;
        ig->mon_w = zwatch_new(ig->loop, ig->mon, 64, s_mon_fn, ig);
        if (ig->mon_w == NULL)
            goto zerr;
    }
    if (o->control_endpoint) {
        ig->control_ep = s_strdup0(o->control_endpoint);
        ig->control = zmq_socket(zctx, ZMQ_REP);
        if (ig->control_ep == NULL || ig->control == NULL)
            goto zerr;
        zmq_setsockopt(ig->control, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_bind(ig->control, ig->control_ep) != 0) {
            snprintf(err, errlen, "ingest: control %s: %s", ig->control_ep,
                     zmq_strerror(zmq_errno()));
            goto err;
        }
        if (strncmp(ig->control_ep, "ipc://", 6) == 0 &&
            chmod(ig->control_ep + 6, 0600) != 0)
            log_warn("ingest: control %s: chmod: %s", ig->control_ep,
                     strerror(errno));
        ig->control_w = zwatch_new(ig->loop, ig->control, 8, s_control_fn, ig);
        if (ig->control_w == NULL)
            goto zerr;
    }
    if (o->metrics_prefix && o->metrics_s > 0) {
        ig->metrics_prefix = s_strdup0(o->metrics_prefix);
        ig->metrics_ms = clock_mono_ms();
    }
    ig->dealer_w = zwatch_new(ig->loop, ig->dealer, 256, s_dealer_fn, ig);
    ig->ctl_w = zwatch_new(ig->loop, ig->ctl, 1, s_ctl_fn, ig);
    if (o->reload_endpoint) {
        ig->reload = zmq_socket(zctx, ZMQ_PULL);
        if (ig->reload == NULL)
            goto zerr;
        zmq_setsockopt(ig->reload, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_bind(ig->reload, o->reload_endpoint) != 0 ||
            (ig->reload_w =
                 zwatch_new(ig->loop, ig->reload, 8, s_ctl_fn, ig)) == NULL)
            goto zerr;
    }
    if (ig->dealer_w == NULL || ig->ctl_w == NULL)
        goto zerr;
    ev_prepare_init(&ig->flush, s_flush_fn);
    ig->flush.data = ig;
    double every = (double)opt_default(OPT_RESEND_CHECK) / 1000.0;
    ev_timer_init(&ig->tick, s_tick_fn, every, every);
    ig->tick.data = ig;
    return ig;
zerr:
    snprintf(err, errlen, "ingest: zmq: %s", zmq_strerror(zmq_errno()));
    goto err;
nomem:
    snprintf(err, errlen, "ingest: out of memory");
err:
    ingest_destroy(&ig);
    return NULL;
}

int ingest_run(ingest_t *ig)
{
    for (size_t i = 0; i < ig->nls; i++)
        ev_io_start(ig->loop, &ig->ls[i].io);
    zwatch_start(ig->dealer_w);
    zwatch_start(ig->ctl_w);
    if (ig->reload_w)
        zwatch_start(ig->reload_w);
    if (ig->mon_w)
        zwatch_start(ig->mon_w);
    if (ig->control_w)
        zwatch_start(ig->control_w);
    ev_prepare_start(ig->loop, &ig->flush);
    ev_timer_start(ig->loop, &ig->tick);
    ev_run(ig->loop, 0);
    zwatch_stop(ig->dealer_w);
    zwatch_stop(ig->ctl_w);
    if (ig->mon_w)
        zwatch_stop(ig->mon_w);
    if (ig->control_w)
        zwatch_stop(ig->control_w);
    ev_prepare_stop(ig->loop, &ig->flush);
    ev_timer_stop(ig->loop, &ig->tick);
    return 0;
}

void ingest_destroy(ingest_t **pig)
{
    if (pig == NULL || *pig == NULL)
        return;
    ingest_t *ig = *pig;
    if (ig->loop)
        s_close_clients(ig);
    zwatch_destroy(&ig->dealer_w);
    zwatch_destroy(&ig->ctl_w);
    zwatch_destroy(&ig->reload_w);
    if (ig->reload)
        zmq_close(ig->reload);
    zwatch_destroy(&ig->mon_w);
    zwatch_destroy(&ig->control_w);
    if (ig->control)
        zmq_close(ig->control);
    free(ig->control_ep);
    free(ig->metrics_prefix);
    if (ig->dealer)
        zmq_socket_monitor(ig->dealer, NULL, 0);
    if (ig->mon)
        zmq_close(ig->mon);
    if (ig->dealer)
        zmq_close(ig->dealer);
    if (ig->ctl)
        zmq_close(ig->ctl);
    if (ig->stats)
        zmq_close(ig->stats);
    while (ig->head) {
        pending_t *p = ig->head;
        ig->head = p->next;
        free(p->payload);
        free(p);
    }
    if (ig->loop)
        ev_loop_destroy(ig->loop);
    for (size_t i = 0; ig->ls && i < ig->nls; i++) {
        tls_server_free(&ig->ls[i].tls);
        config_transport_free(&ig->ls[i].tr);
    }
    free(ig->ls);
    free(ig->lsnap);
    pickle_destroy(&ig->pickle);
    free(ig->scratch);
    free(ig->batch);
    free(ig->eps[0]);
    free(ig->eps[1]);
    free(ig->ctl_endpoint);
    free(ig->stats_endpoint);
    free(ig->tls_ca);
    if (ig->reserve_fd >= 0)
        close(ig->reserve_fd);
    free(ig);
    *pig = NULL;
}
