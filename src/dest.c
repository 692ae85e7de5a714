/*
 * dest.c -- see dest.h.
 *
 * TCP states: DOWN (backoff timer running) -> RESOLVING (only while a name
 * has no good answer yet: waiting for the resolver, resolve timer running)
 * -> CONNECTING (waiting for the socket to become writable, connect timer
 * running) -> UP (reading for EOF, writing while the queue has data; the
 * timer says when the connection has held for stable_ms) -> DOWN on any
 * error or EOF.  UDP goes from RESOLVING (names only) to UP.
 *
 * Names: every connection attempt of a TCP member starts a lookup in the
 * background (src/resolver.c) and connects at once to the last good answer;
 * only a member that never had an answer waits for one.  Each failed
 * attempt moves on to the next address of the answer.
 *
 * Backoff: the delay doubles with each failure in a row, and only a
 * connection that held for stable_ms starts it again from backoff_min_ms,
 * so a backend that accepts and then closes every connection is retried at
 * most every backoff_max_ms, not at once.
 *
 * Logging: the first failure is logged, then at most one failure line per
 * log_interval_ms, which counts the failures not logged before it.
 * "connected" is logged when a failure line told of the outage, or, for a
 * connection whose failures were not logged, once it has held for
 * stable_ms.  A connection that held for stable_ms also ends the quiet
 * interval: the next failure is logged at once.
 */
#include "dest.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "clock.h"
#include "link.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "pickle_enc.h"
#include "resolver.h"
#include "retry.h"

#define DEST_IOV 64

typedef enum {
    ST_DOWN,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_UP
} dstate_t;

#define LINK_BATCH     (256 * 1024) /* stream bytes per compressed batch */
#define MTLS_SETTLE_MS 500          /* see trust_ms */

struct dest {
    struct ev_loop *loop;    /* borrowed */
    const router_dest_t *rd; /* borrowed */
    dest_opts_t o;           /* options */
    dest_event_fn *fn;       /* event callback */
    void *arg;               /* its argument */
    queue_t *q;              /* owned */
    int is_file;             /* file destination */
    int is_pickle;           /* member says `type pickle` */
    int is_udp;              /* member says `proto udp` */
    dstate_t state;          /* connection state */
    int fd;                  /* socket or file, -1 when down */
    int io_events;           /* events the ev_io watches now */
    ev_io io;                /* socket readiness */
    ev_timer timer;          /* backoff, resolve or connect timeout, or
                                (UP) the stable_ms mark */
    resolver_t *res;         /* owned; the member's addresses (NULL for
                                files) */
    size_t addr_i;           /* address of the answer to try next */
    int want_addr;           /* down for want of an address: connect as
                                soon as an answer comes */
    retry_t retry;           /* backoff and failure lines */
    int told_down;           /* a failure line was logged since the last
                                "connected" line */
    int said_up;             /* "connected" was logged for this
                                connection */
    int is_tcp;              /* a TCP member: the delivery rule applies */
    uint64_t wrote;          /* bytes written on this connection */
    uint64_t acked;          /* of them, acknowledged by the peer */
    ev_timer ackpoll;        /* asks the kernel what was acknowledged,
                                while bytes are in flight */
    uint64_t sent;           /* datapoints delivered (TCP: acknowledged by
                                the peer; UDP and files: written) */
    uint64_t dropped;        /* datapoints dropped */
    /* a member with a compressed or encrypted transport */
    int has_link;        /* its transport is not plain */
    link_t *link;        /* owned: this connection's, or NULL */
    tls_client_t *tls;   /* owned: its TLS context, or NULL (no TLS,
                            or its files did not load: tls_err) */
    char tls_err[400];   /* why there is no context */
    uint64_t tls_ok;     /* handshakes completed */
    uint64_t tls_failed; /* handshakes that failed */
    int64_t trust_ms;    /* TLS 1.3 to a backend that asked for a client
                            certificate: it checks it after the client's
                            handshake ended, and says no with an alert; until this
                            time (0: none)    nothing written counts as delivered,
                            and    an alert    is a TLS failure */
    uint64_t wire_bytes; /* socket bytes written, all connections */
    uint64_t app_bytes;  /* stream bytes they carried (batched) */
};

void dest_opts_default(dest_opts_t *o)
{
    o->queue_cap = (uint64_t)opt_default(OPT_QUEUE);
    o->backoff_min_ms = (int)opt_default(OPT_BACKOFF_MIN);
    o->backoff_max_ms = (int)opt_default(OPT_BACKOFF_MAX);
    o->connect_timeout_ms = (int)opt_default(OPT_CONNECT_TIMEOUT);
    o->write_bytes = 1 << 20;
    o->resolve_timeout_ms = (int)opt_default(OPT_RESOLVE_WAIT);
    o->stable_ms = (int)opt_default(OPT_STABLE);
    o->log_interval_ms = (int)opt_default(OPT_FAIL_LOG);
    o->user_timeout_ms = (int)opt_default(OPT_USER_TIMEOUT);
    o->ack_poll_ms = (int)opt_default(OPT_ACK_POLL);
}

static void s_connect(dest_t *d);
static void s_write(dest_t *d);

static void s_set_io(dest_t *d, int events)
{
    if (d->io_events == events)
        return;
    ev_io_stop(d->loop, &d->io);
    d->io_events = events;
    if (events) {
        ev_io_set(&d->io, d->fd, events);
        ev_io_start(d->loop, &d->io);
    }
}

/* The delivery rule: what the peer's TCP stack acknowledged is the bytes
 * written on this connection less those still in the send queue
 * (SIOCOUTQ); those chunks are delivered.  While bytes are in flight the
 * ackpoll timer asks again. */
static void s_ack(dest_t *d)
{
    int outq = 0;
    if (!d->is_tcp || d->state != ST_UP)
        return;
    int settling = d->trust_ms && clock_mono_ms() < d->trust_ms;
    if (!settling && ioctl(d->fd, SIOCOUTQ, &outq) == 0 && outq >= 0 &&
        (uint64_t)outq <= d->wrote) {
        uint64_t acked = d->wrote - (uint64_t)outq;
        if (d->link) /* socket bytes to the stream bytes they carry */
            acked = link_acked(d->link, acked);
        if (acked > d->acked) {
            d->sent += queue_delivered(d->q, (size_t)(acked - d->acked));
            d->acked = acked;
        }
    }
    if (queue_inflight(d->q) > 0) {
        if (!ev_is_active(&d->ackpoll)) {
            ev_timer_set(&d->ackpoll, d->o.ack_poll_ms / 1000.0,
                         d->o.ack_poll_ms / 1000.0);
            ev_timer_start(d->loop, &d->ackpoll);
        }
    } else {
        ev_timer_stop(d->loop, &d->ackpoll);
    }
}

static void s_ackpoll_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    dest_t *d = t->data;
    uint64_t before = d->sent;
    s_ack(d);
    if (d->sent != before && d->fn)
        d->fn(d->arg, d); /* its queue has room again */
}

/* A dead path must not go unnoticed for the kernel's quarter of an hour of
 * retransmissions: written data unacknowledged for user_timeout_ms ends
 * the connection (TCP_USER_TIMEOUT), and an idle one is probed
 * (keepalives) within about the same time. */
static void s_tcp_timeouts(dest_t *d)
{
    int one = 1, ut = d->o.user_timeout_ms;
    int idle = ut / 2000 > 0 ? ut / 2000 : 1, intvl = 1, cnt = 3;
    setsockopt(d->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
    setsockopt(d->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(d->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(d->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(d->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* Close the connection and schedule the next attempt; what failed and why
 * go to the log (rate-limited). */
static void s_fail(dest_t *d, const char *what, const char *why)
{
    int was_up = d->state == ST_UP;
    s_ack(d); /* what was acknowledged before the end is delivered */
    s_set_io(d, 0);
    ev_timer_stop(d->loop, &d->timer);
    ev_timer_stop(d->loop, &d->ackpoll);
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    link_free(&d->link); /* what it held is written again (the queue) */
    d->trust_ms = 0;
    d->state = ST_DOWN;
    queue_rewind(d->q, d->is_pickle);
    int64_t delay = retry_delay(&d->retry);
    if (retry_may_log(&d->retry, clock_mono_ms())) {
        char more[64];
        log_warn("dest: %s %s: %s: %s: retrying in %lld ms (%llu queued%s)",
                 d->rd->cluster->name, d->rd->addr, what, why, (long long)delay,
                 (unsigned long long)queue_lines(d->q),
                 retry_unlogged(&d->retry, more, sizeof more));
        d->told_down = 1;
    }
    ev_timer_set(&d->timer, (double)delay / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
    if (was_up && d->fn)
        d->fn(d->arg, d);
}

static void s_fail_errno(dest_t *d, const char *what, int err)
{
    s_fail(d, what, err ? strerror(err) : "closed");
}

static void s_up(dest_t *d)
{
    ev_timer_stop(d->loop, &d->timer);
    d->state = ST_UP;
    d->want_addr = 0;
    if (d->link == NULL) /* a link counts from its handshake's first byte */
        d->wrote = 0;
    d->acked = 0;
    d->said_up = d->told_down;
    if (d->said_up)
        log_info("dest: %s %s: connected", d->rd->cluster->name, d->rd->addr);
    d->told_down = 0;
    ev_timer_set(&d->timer, d->o.stable_ms / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
    if (d->is_file || d->is_udp)
        s_write(d);
    else
        s_set_io(d, EV_READ | (queue_bytes(d->q) ? EV_WRITE : 0));
    if (d->fn)
        d->fn(d->arg, d);
}

/* The connection held for stable_ms: the next failure starts a new outage
 * (backoff from the start, logged at once).  A connection that was not
 * logged, after failures that were not either, says so now. */
static void s_stable(dest_t *d)
{
    if (!d->said_up && d->retry.unlogged > 0)
        log_info("dest: %s %s: connected, and held for %d ms (%llu earlier "
                 "failures not logged)",
                 d->rd->cluster->name, d->rd->addr, d->o.stable_ms,
                 (unsigned long long)d->retry.unlogged);
    retry_stable(&d->retry);
}

/* UDP: datagrams of whole lines, at most UDP_DATAGRAM bytes unless one line
 * is longer.  A datagram the kernel takes counts as sent; UDP has no
 * delivery to wait for. */
#define UDP_DATAGRAM 1400
static void s_write_udp(dest_t *d)
{
    struct iovec iov[1];
    for (int k = 0; k < 64 && d->state == ST_UP; k++) {
        if (queue_iov(d->q, iov, 1, (size_t)1 << 30) == 0)
            break;
        const char *base = iov[0].iov_base;
        size_t len = iov[0].iov_len;
        if (len > UDP_DATAGRAM) {
            size_t cut = UDP_DATAGRAM;
            while (cut > 0 && base[cut - 1] != '\n')
                cut--;
            if (cut == 0) { /* one long line: alone */
                const char *nl = memchr(base, '\n', len);
                cut = nl ? (size_t)(nl - base) + 1 : len;
            }
            len = cut;
        }
        ssize_t w = send(d->fd, base, len, 0);
        if (w < 0 && errno == ECONNREFUSED) /* an earlier datagram's error */
            w = send(d->fd, base, len, 0);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        /* sent, or refused by the network: either way it is gone */
        d->sent += queue_consume(d->q, len);
    }
    s_set_io(d, queue_bytes(d->q) ? EV_WRITE : 0);
}

/* Write the socket bytes the link holds: 1 written (some or all), 0 the
 * socket is full, -1 failed (the destination is down). */
static int s_write_wire(dest_t *d)
{
    size_t len;
    const char *p = link_wire(d->link, &len);
    if (len == 0)
        return 1;
    ssize_t w;
    do
        w = write(d->fd, p, len);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        if (errno == EAGAIN)
            return 0;
        s_fail_errno(d, "write", errno);
        return -1;
    }
    link_wrote(d->link, (size_t)w);
    d->wrote += (uint64_t)w;
    d->wire_bytes += (uint64_t)w;
    return 1;
}

/* A compressed or encrypted member: batches of the queue through the link,
 * its socket bytes to the socket.  The queue counts a batch written once
 * the link has it; it is delivered once the socket bytes that carry it are
 * acknowledged (s_ack). */
static void s_write_link(dest_t *d)
{
    struct iovec iov[DEST_IOV];
    char why[300];
    for (int k = 0; k < 4 && d->state == ST_UP; k++) {
        size_t pending;
        link_wire(d->link, &pending);
        if (pending == 0) {
            int n = queue_iov(d->q, iov, DEST_IOV, LINK_BATCH);
            if (n == 0)
                break;
            size_t total = 0;
            for (int i = 0; i < n; i++)
                total += iov[i].iov_len;
            if (link_batch(d->link, iov, n, why, sizeof why) != 0) {
                s_fail(d, "encode", why);
                return;
            }
            queue_wrote(d->q, total);
            d->app_bytes += total;
        }
        int rc = s_write_wire(d);
        if (rc < 0)
            return;
        s_ack(d);
        if (rc == 0)
            break;
    }
    if (d->state == ST_UP) {
        size_t pending;
        link_wire(d->link, &pending);
        s_set_io(d, EV_READ | (pending || queue_bytes(d->q) ? EV_WRITE : 0));
    }
    if (d->fn)
        d->fn(d->arg, d);
}

static void s_write(dest_t *d)
{
    struct iovec iov[DEST_IOV];
    if (d->link) {
        s_write_link(d);
        return;
    }
    if (d->is_udp) {
        s_write_udp(d);
        if (d->fn)
            d->fn(d->arg, d);
        return;
    }
    while (d->state == ST_UP) {
        int n = queue_iov(d->q, iov, DEST_IOV, d->o.write_bytes);
        if (n == 0)
            break;
        ssize_t w = writev(d->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            s_fail_errno(d, "write", errno);
            return;
        }
        if (d->is_tcp) {
            queue_wrote(d->q, (size_t)w);
            d->wrote += (uint64_t)w;
            s_ack(d);
        } else {
            d->sent += queue_consume(d->q, (size_t)w);
        }
        if (!d->is_file)
            break; /* one writev per readiness; the loop comes back */
    }
    if (d->state == ST_UP && !d->is_file)
        s_set_io(d, EV_READ | (queue_bytes(d->q) ? EV_WRITE : 0));
    if (d->fn)
        d->fn(d->arg, d);
}

/* A step of the TLS handshake with the backend: write what it made, and
 * wait for what it needs; once done the destination is up. */
static void s_handshake(dest_t *d)
{
    char why[400];
    tls_step_t st = link_handshake(d->link, why, sizeof why);
    if (st == TLS_FAILED || st == TLS_CERT_REFUSED) {
        /* the alert TLS made tells the backend why; a socket that cannot
         * take it now is closed without it */
        size_t len;
        const char *p = link_wire(d->link, &len);
        if (len > 0 && write(d->fd, p, len) < 0)
            (void)errno;
        d->tls_failed++;
        s_fail(d, "tls", why);
        return;
    }
    if (s_write_wire(d) < 0)
        return;
    if (st == TLS_DONE) {
        d->tls_ok++;
        /* TLS 1.3: a backend that asked for a client certificate judges
         * it after this end's handshake is over */
        if ((d->rd->member->tr.tls == TLS_MUTUAL ||
             link_tls_cert_asked(d->link)) &&
            link_tls_version(d->link) == 13)
            d->trust_ms = clock_mono_ms() + MTLS_SETTLE_MS;
        s_up(d);
        return;
    }
    size_t pending;
    link_wire(d->link, &pending);
    s_set_io(d, EV_READ | (pending ? EV_WRITE : 0));
}

/* The TCP connection is up: plain members are up; the others start their
 * link (a new compressed stream, a TLS handshake). */
static void s_connected(dest_t *d)
{
    if (!d->has_link) {
        s_up(d);
        return;
    }
    const config_transport_t *tr = &d->rd->member->tr;
    d->link =
        link_new(tr->codec, d->tls, tr->name ? tr->name : d->rd->member->host);
    if (d->link == NULL) {
        s_fail(d, "connect", "out of memory");
        return;
    }
    d->wrote = 0;
    if (d->tls == NULL) {
        s_up(d);
        return;
    }
    d->state = ST_HANDSHAKE;
    ev_timer_stop(d->loop, &d->timer);
    ev_timer_set(&d->timer, d->o.tls_handshake_ms / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
    s_handshake(d);
}

static void s_io_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    dest_t *d = io->data;
    if (d->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            d->addr_i++; /* the next attempt tries the next address */
            s_fail_errno(d, "connect", err);
        } else {
            s_connected(d);
        }
        return;
    }
    if (revents & EV_READ) {
        char buf[16384], why[300];
        ssize_t n = read(d->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            if (d->state == ST_HANDSHAKE)
                d->tls_failed++;
            s_fail_errno(d, d->state == ST_HANDSHAKE ? "tls" : "peer",
                         n == 0 ? 0 : errno);
            return;
        }
        if (n > 0 && d->link) {
            int rc = link_in(d->link, buf, (size_t)n, why, sizeof why);
            if (rc < 0 && d->trust_ms && clock_mono_ms() < d->trust_ms) {
                d->tls_failed++; /* refused by the backend, e.g. its mtls */
                s_fail(d, "tls", why);
                return;
            }
            if (rc != 0) {
                s_fail(d, "peer", rc > 0 ? "closed the TLS stream" : why);
                return;
            }
            if (d->state == ST_HANDSHAKE) {
                s_handshake(d);
                return;
            }
            size_t pending;
            link_wire(d->link, &pending);
            if (pending) /* TLS answered something */
                revents |= EV_WRITE;
        }
    }
    if (revents & EV_WRITE) {
        if (d->state == ST_HANDSHAKE) {
            if (s_write_wire(d) >= 0)
                s_handshake(d);
            return;
        }
        s_write(d);
    }
}

static void s_timer_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    dest_t *d = t->data;
    if (d->state == ST_CONNECTING) {
        d->addr_i++;
        s_fail_errno(d, "connect", ETIMEDOUT);
    } else if (d->state == ST_HANDSHAKE) {
        char why[96];
        snprintf(why, sizeof why, "handshake not done within %d ms (-E)",
                 d->o.tls_handshake_ms);
        d->tls_failed++;
        s_fail(d, "tls", why);
    } else if (d->state == ST_RESOLVING) {
        char why[64];
        snprintf(why, sizeof why, "no answer within %d ms",
                 d->o.resolve_timeout_ms);
        d->want_addr = 1;
        s_fail(d, "resolve", why);
    } else if (d->state == ST_DOWN) {
        s_connect(d);
    } else if (d->state == ST_UP) {
        s_stable(d);
    }
}

/* Connect to the next address of the last good answer (there is one). */
static void s_connect_addr(dest_t *d)
{
    char err[256];
    if (d->addr_i >= resolver_naddrs(d->res))
        d->addr_i = 0;
    const resolver_addr_t *a = resolver_addr(d->res, d->addr_i);
    d->want_addr = 0;
    d->fd = net_connect_addr((const struct sockaddr *)&a->sa, a->len,
                             a->socktype, err, sizeof err);
    if (d->fd < 0) {
        d->addr_i++;
        s_fail(d, "connect", err);
        return;
    }
    if (d->is_udp) {
        s_up(d);
        return;
    }
    d->state = ST_CONNECTING;
    s_tcp_timeouts(d);
    s_set_io(d, EV_WRITE);
    ev_timer_set(&d->timer, d->o.connect_timeout_ms / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
}

/* The TLS context of a member, from its transport clause and -C. */
static tls_client_t *s_tls_client(const dest_t *d, const router_dest_t *rd,
                                  char *err, size_t errlen)
{
    const config_transport_t *tr = &rd->member->tr;
    tls_conf_t tc = {
        .cert = tr->cert,
        .key = tr->key,
        .ca = tr->ca ? tr->ca : d->o.tls_ca,
        .protomin = tr->protomin,
        .protomax = tr->protomax,
        .ciphers = tr->ciphers,
        .suites = tr->suites,
    };
    return tls_client_new(&tc, err, errlen);
}

static void s_connect(dest_t *d)
{
    char err[256];
    if (d->has_link && d->rd->member->tr.tls && d->tls == NULL &&
        (d->tls = s_tls_client(d, d->rd, d->tls_err, sizeof d->tls_err)) ==
            NULL) {
        s_fail(d, "tls", d->tls_err);
        return;
    }
    if (d->is_file) {
        /* O_NONBLOCK: a FIFO nobody reads fails to open (ENXIO) instead of
         * blocking the loop; on a regular file it changes nothing */
        d->fd =
            open(d->rd->addr,
                 O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
        if (d->fd < 0) {
            s_fail_errno(d, "open", errno);
            return;
        }
        s_up(d);
        return;
    }
    /* a name is looked up again at every TCP attempt (UDP: until the first
     * answer), in the background; the attempt uses the last good answer */
    int have = resolver_naddrs(d->res) > 0;
    if (!resolver_numeric(d->res) && (!d->is_udp || !have) &&
        resolver_start(d->res, err, sizeof err) < 0 && !have) {
        d->want_addr = 1;
        s_fail(d, "resolve", err);
        return;
    }
    if (have) {
        s_connect_addr(d);
        return;
    }
    d->state = ST_RESOLVING;
    ev_timer_set(&d->timer, d->o.resolve_timeout_ms / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
}

/* A lookup ended (resolver callback, on the loop). */
static void s_resolved_fn(void *arg, resolver_t *r, int rc)
{
    dest_t *d = arg;
    if (rc != 0) {
        if (d->state == ST_RESOLVING) {
            d->want_addr = 1;
            s_fail(d, "resolve", gai_strerror(rc));
        } else if (retry_may_log(&d->retry, clock_mono_ms())) {
            char more[64], a[INET6_ADDRSTRLEN + 8];
            if (resolver_naddrs(r) > 0)
                log_warn("dest: %s %s: resolve: %s: keeping the last good "
                         "answer (%s)%s",
                         d->rd->cluster->name, d->rd->addr, gai_strerror(rc),
                         resolver_addr_str(resolver_addr(r, 0), a, sizeof a),
                         retry_unlogged(&d->retry, more, sizeof more));
            else
                log_warn("dest: %s %s: resolve: %s (%llu queued%s)",
                         d->rd->cluster->name, d->rd->addr, gai_strerror(rc),
                         (unsigned long long)queue_lines(d->q),
                         retry_unlogged(&d->retry, more, sizeof more));
            if (d->state != ST_UP)
                d->told_down = 1;
        }
        return;
    }
    if (d->state == ST_RESOLVING || (d->state == ST_DOWN && d->want_addr)) {
        /* waiting for this answer: connect now, not at the next attempt */
        ev_timer_stop(d->loop, &d->timer);
        s_connect_addr(d);
    }
}

dest_t *dest_new(struct ev_loop *loop, const router_dest_t *rd,
                 const dest_opts_t *o, dest_event_fn *fn, void *arg)
{
    dest_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->q = queue_new(o->queue_cap);
    if (d->q == NULL) {
        free(d);
        return NULL;
    }
    d->loop = loop;
    d->rd = rd;
    d->o = *o;
    d->fn = fn;
    d->arg = arg;
    d->fd = -1;
    d->is_file = rd->cluster->type == CLUSTER_FILE ||
                 rd->cluster->type == CLUSTER_FILE_IP;
    d->is_pickle = !d->is_file && rd->member->type == WIRE_PICKLE;
    d->is_udp = !d->is_file && rd->member->proto == PROTO_UDP;
    d->is_tcp = !d->is_file && !d->is_udp;
    d->has_link =
        d->is_tcp && (rd->member->tr.codec != 0 || rd->member->tr.tls != 0);
    /* jitter: 75% to 125% of each delay */
    retry_init(&d->retry, o->backoff_min_ms, o->backoff_max_ms, 75, 125,
               o->log_interval_ms,
               (unsigned int)(clock_mono_ms() ^ (intptr_t)d));
    ev_init(&d->io, s_io_fn);
    d->io.data = d;
    ev_init(&d->timer, s_timer_fn);
    d->timer.data = d;
    ev_init(&d->ackpoll, s_ackpoll_fn);
    d->ackpoll.data = d;
    if (!d->is_file) {
        d->res = resolver_new(loop, rd->member->host, rd->member->port,
                              d->is_udp ? SOCK_DGRAM : SOCK_STREAM,
                              s_resolved_fn, d);
        if (d->res == NULL) {
            queue_destroy(&d->q);
            free(d);
            return NULL;
        }
    }
    s_connect(d);
    return d;
}

void dest_destroy(dest_t **pd)
{
    if (pd == NULL || *pd == NULL)
        return;
    dest_t *d = *pd;
    s_set_io(d, 0);
    ev_timer_stop(d->loop, &d->timer);
    ev_timer_stop(d->loop, &d->ackpoll);
    if (d->fd >= 0)
        close(d->fd);
    link_free(&d->link);
    tls_client_free(&d->tls);
    resolver_destroy(&d->res);
    queue_destroy(&d->q);
    free(d);
    *pd = NULL;
}

static void s_free_frames(void *owner, int delivered)
{
    (void)delivered;
    free(owner);
}

/* A kept chunk of a pickle member: its frames, and the router's lines they
 * were made from, released (delivered or not) with them, or handed back
 * by dest_take_kept. */
typedef struct {
    char *frames;              /* owned */
    queue_release_fn *release; /* of the lines */
    void *owner;
} kept_frames_t;

static void s_release_kept(void *owner, int delivered)
{
    kept_frames_t *k = owner;
    free(k->frames);
    if (k->release)
        k->release(k->owner, delivered);
    free(k);
}

uint64_t dest_push(dest_t *d, const char *data, size_t len, uint32_t lines,
                   unsigned flags, queue_release_fn *release, void *owner)
{
    if (d->is_pickle) {
        /* the queue holds this member's frames, not the router's lines */
        size_t flen;
        uint32_t points, skipped;
        char *frames = pickle_enc_lines(data, len, &flen, &points, &skipped);
        kept_frames_t *k = NULL;
        if (frames && (flags & QUEUE_KEEP) && !(k = malloc(sizeof *k))) {
            free(frames);
            frames = NULL;
        }
        if (frames == NULL) {
            if (release)
                release(owner, 0);
            d->dropped += lines;
            return lines;
        }
        d->dropped += skipped;
        if (k) {
            *k = (kept_frames_t){frames, release, owner};
            release = s_release_kept;
            owner = k;
        } else {
            if (release)
                release(owner, 0);
            release = s_free_frames;
            owner = frames;
        }
        data = frames;
        len = flen;
        lines = points;
    }
    uint64_t dropped =
        queue_push_flags(d->q, data, len, lines, flags, release, owner);
    d->dropped += dropped;
    if (d->state == ST_UP) {
        if (d->is_file || d->is_udp)
            s_write(d);
        else if (!(d->io_events & EV_WRITE))
            s_set_io(d, EV_READ | EV_WRITE);
    }
    return dropped;
}

/* What dest_take_kept hands on. */
typedef struct {
    dest_t *d;
    queue_take_fn *fn;
    void *arg;
} take_t;

static void s_take_fn(void *arg, void *owner, size_t off, uint32_t lines)
{
    take_t *t = arg;
    if (t->d->is_pickle) {
        /* frames are written again whole (queue_rewind): all the lines */
        kept_frames_t *k = owner;
        owner = k->owner;
        free(k->frames);
        free(k);
        off = 0;
        lines = 0; /* the caller knows the chunk's lines */
    }
    t->fn(t->arg, owner, off, lines);
}

uint64_t dest_take_kept(dest_t *d, queue_take_fn *fn, void *arg)
{
    if (d->state == ST_UP)
        return 0;
    take_t t = {d, fn, arg};
    return queue_take_kept(d->q, s_take_fn, &t);
}

uint64_t dest_kept(const dest_t *d)
{
    return queue_kept_lines(d->q);
}

size_t dest_inflight_bytes(const dest_t *d)
{
    return queue_inflight(d->q);
}

int dest_room(const dest_t *d, uint64_t lines)
{
    return queue_room(d->q, lines);
}

int dest_up(const dest_t *d)
{
    return d->state == ST_UP;
}

uint64_t dest_queued(const dest_t *d)
{
    return queue_lines(d->q);
}

void dest_stats(const dest_t *d, stats_dest_t *out)
{
    memset(out, 0, sizeof *out);
    out->sent = d->sent;
    out->inflight = queue_inflight_lines(d->q);
    out->queued = queue_lines(d->q) - out->inflight;
    out->dropped = d->dropped;
    out->up = d->state == ST_UP;
    out->tls =
        d->link && d->state == ST_UP ? (uint32_t)link_tls_version(d->link) : 0;
    out->tls_on = d->has_link && d->rd->member->tr.tls != 0;
    out->tls_ok = d->tls_ok;
    out->tls_failed = d->tls_failed;
    out->wire_bytes = d->wire_bytes;
    out->app_bytes = d->app_bytes;
}

const router_dest_t *dest_info(const dest_t *d)
{
    return d->rd;
}

void dest_rebind(dest_t *d, const router_dest_t *rd, dest_event_fn *fn,
                 void *arg)
{
    if (d->has_link && rd->member->tr.tls) {
        /* a reload reads the certificates again: the next connection uses
         * them, the one up now keeps its session */
        char err[400];
        tls_client_t *t = s_tls_client(d, rd, err, sizeof err);
        if (t == NULL) {
            log_err("dest: %s %s: reload: tls: %s: keeping the files loaded "
                    "before",
                    rd->cluster->name, rd->addr, err);
        } else {
            tls_client_free(&d->tls);
            d->tls = t;
        }
    }
    d->rd = rd;
    d->fn = fn;
    d->arg = arg;
}

void dest_abort(dest_t *d, const char *why)
{
    if (d->state == ST_UP && d->is_tcp)
        s_fail(d, "closed", why);
}
