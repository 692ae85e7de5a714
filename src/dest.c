/*
 * dest.c -- see dest.h.
 *
 * TCP states: DOWN (backoff timer running) -> CONNECTING (waiting for the
 * socket to become writable, connect timer running) -> UP (reading for EOF,
 * writing while the queue has data) -> DOWN on any error or EOF.
 */
#include "dest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "pickle_enc.h"

#define DEST_IOV 64

typedef enum { ST_DOWN, ST_CONNECTING, ST_UP } dstate_t;

struct dest {
    struct ev_loop *loop;       /* borrowed */
    const router_dest_t *rd;    /* borrowed */
    dest_opts_t o;              /* options */
    dest_event_fn *fn;          /* event callback */
    void *arg;                  /* its argument */
    queue_t *q;                 /* owned */
    int is_file;                /* file destination */
    int is_pickle;              /* member says `type pickle` */
    int is_udp;                 /* member says `proto udp` */
    dstate_t state;             /* connection state */
    int fd;                     /* socket or file, -1 when down */
    int io_events;              /* events the ev_io watches now */
    ev_io io;                   /* socket readiness */
    ev_timer timer;             /* backoff or connect timeout */
    int attempts;               /* failed attempts in a row */
    unsigned int seed;          /* jitter */
    uint64_t sent;              /* datapoints written */
    uint64_t dropped;           /* datapoints dropped */
};

void dest_opts_default(dest_opts_t *o)
{
    o->queue_cap = (uint64_t)opt_default(OPT_QUEUE);
    o->backoff_min_ms = (int)opt_default(OPT_BACKOFF_MIN);
    o->backoff_max_ms = (int)opt_default(OPT_BACKOFF_MAX);
    o->connect_timeout_ms = (int)opt_default(OPT_CONNECT_TIMEOUT);
    o->write_bytes = 1 << 20;
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

/* Close the connection and schedule the next attempt. */
static void s_fail(dest_t *d, const char *what, int err)
{
    int was_up = d->state == ST_UP;
    s_set_io(d, 0);
    ev_timer_stop(d->loop, &d->timer);
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    d->state = ST_DOWN;
    queue_rewind(d->q, d->is_pickle);
    int64_t delay = d->o.backoff_min_ms;
    for (int i = 0; i < d->attempts && delay < d->o.backoff_max_ms; i++)
        delay *= 2;
    if (delay > d->o.backoff_max_ms)
        delay = d->o.backoff_max_ms;
    /* jitter: 75% to 125% of the delay */
    delay = delay * (75 + rand_r(&d->seed) % 51) / 100;
    d->attempts++;
    if (was_up || d->attempts == 1)
        log_warn("dest: %s %s: %s: %s: retrying in %lld ms (%llu queued)",
                 d->rd->cluster->name, d->rd->addr, what,
                 err ? strerror(err) : "closed", (long long)delay,
                 (unsigned long long)queue_lines(d->q));
    ev_timer_set(&d->timer, (double)delay / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
    if (was_up && d->fn)
        d->fn(d->arg, d);
}

static void s_up(dest_t *d)
{
    ev_timer_stop(d->loop, &d->timer);
    d->state = ST_UP;
    if (d->attempts > 0)
        log_info("dest: %s %s: connected", d->rd->cluster->name, d->rd->addr);
    d->attempts = 0;
    if (d->is_file || d->is_udp)
        s_write(d);
    else
        s_set_io(d, EV_READ | (queue_bytes(d->q) ? EV_WRITE : 0));
    if (d->fn)
        d->fn(d->arg, d);
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

static void s_write(dest_t *d)
{
    struct iovec iov[DEST_IOV];
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
            s_fail(d, "write", errno);
            return;
        }
        d->sent += queue_consume(d->q, (size_t)w);
        if (!d->is_file)
            break; /* one writev per readiness; the loop comes back */
    }
    if (d->state == ST_UP && !d->is_file)
        s_set_io(d, EV_READ | (queue_bytes(d->q) ? EV_WRITE : 0));
    if (d->fn)
        d->fn(d->arg, d);
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
        if (err != 0)
            s_fail(d, "connect", err);
        else
            s_up(d);
        return;
    }
    if (revents & EV_READ) {
        char buf[4096];
        ssize_t n = read(d->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            s_fail(d, "peer", n == 0 ? 0 : errno);
            return;
        }
    }
    if (revents & EV_WRITE)
        s_write(d);
}

static void s_timer_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    dest_t *d = t->data;
    if (d->state == ST_CONNECTING)
        s_fail(d, "connect", ETIMEDOUT);
    else if (d->state == ST_DOWN)
        s_connect(d);
}

static void s_connect(dest_t *d)
{
    char err[256];
    if (d->is_file) {
        d->fd = open(d->rd->addr, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                     0644);
        if (d->fd < 0) {
            s_fail(d, "open", errno);
            return;
        }
        s_up(d);
        return;
    }
    if (d->is_udp) {
        d->fd = net_connect_udp(d->rd->member->host, d->rd->member->port, err,
                                sizeof err);
        if (d->fd < 0) {
            s_fail(d, "connect", errno);
            return;
        }
        s_up(d);
        return;
    }
    d->fd = net_connect_tcp(d->rd->member->host, d->rd->member->port, err,
                            sizeof err);
    if (d->fd < 0) {
        s_fail(d, "connect", errno);
        return;
    }
    d->state = ST_CONNECTING;
    s_set_io(d, EV_WRITE);
    ev_timer_set(&d->timer, d->o.connect_timeout_ms / 1000.0, 0.0);
    ev_timer_start(d->loop, &d->timer);
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
    d->seed = (unsigned int)(clock_mono_ms() ^ (intptr_t)d);
    ev_init(&d->io, s_io_fn);
    d->io.data = d;
    ev_init(&d->timer, s_timer_fn);
    d->timer.data = d;
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
    if (d->fd >= 0)
        close(d->fd);
    queue_destroy(&d->q);
    free(d);
    *pd = NULL;
}

uint64_t dest_push(dest_t *d, const char *data, size_t len, uint32_t lines,
                   queue_release_fn *release, void *owner)
{
    if (d->is_pickle) {
        /* the queue holds this member's frames, not the router's lines */
        size_t flen;
        uint32_t points, skipped;
        char *frames = pickle_enc_lines(data, len, &flen, &points, &skipped);
        if (release)
            release(owner);
        if (frames == NULL) {
            d->dropped += lines;
            return lines;
        }
        d->dropped += skipped;
        data = frames;
        len = flen;
        lines = points;
        release = free;
        owner = frames;
    }
    uint64_t dropped = queue_push(d->q, data, len, lines, release, owner);
    d->dropped += dropped;
    if (d->state == ST_UP) {
        if (d->is_file || d->is_udp)
            s_write(d);
        else if (!(d->io_events & EV_WRITE))
            s_set_io(d, EV_READ | EV_WRITE);
    }
    return dropped;
}

int dest_room(const dest_t *d, uint64_t lines)
{
    return queue_room(d->q, lines);
}

int dest_up(const dest_t *d) { return d->state == ST_UP; }

uint64_t dest_queued(const dest_t *d) { return queue_lines(d->q); }

void dest_stats(const dest_t *d, stats_dest_t *out)
{
    memset(out, 0, sizeof *out);
    out->sent = d->sent;
    out->queued = queue_lines(d->q);
    out->dropped = d->dropped;
    out->up = d->state == ST_UP;
}

const router_dest_t *dest_info(const dest_t *d) { return d->rd; }

void dest_rebind(dest_t *d, const router_dest_t *rd, dest_event_fn *fn,
                 void *arg)
{
    d->rd = rd;
    d->fn = fn;
    d->arg = arg;
}
