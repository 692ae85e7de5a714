/*
 * zwatch.c -- see zwatch.h.
 */
#include "zwatch.h"

#include <stdlib.h>
#include <zmq.h>

struct zwatch {
    struct ev_loop *loop; /* borrowed */
    void *sock;           /* borrowed zmq socket */
    int burst;            /* messages per step */
    int active;           /* delivery wanted */
    zwatch_fn *fn;        /* per-message callback */
    void *arg;            /* its argument */
    ev_io io;             /* on ZMQ_FD */
    ev_prepare prep;      /* re-check ZMQ_EVENTS before blocking */
    ev_idle idle;         /* keeps draining without blocking */
};

static int s_readable(zwatch_t *w)
{
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(w->sock, ZMQ_EVENTS, &ev, &sz) != 0)
        return 0;
    return (ev & ZMQ_POLLIN) != 0;
}

/* Deliver up to burst messages; keep the idle watcher running while more
 * are ready. */
static void s_drain(zwatch_t *w)
{
    int n = 0;
    while (w->active && n < w->burst && s_readable(w)) {
        w->fn(w, w->sock, w->arg);
        n++;
    }
    if (w->active && s_readable(w))
        ev_idle_start(w->loop, &w->idle);
    else
        ev_idle_stop(w->loop, &w->idle);
}

static void s_io_fn(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    s_drain(io->data);
}

static void s_idle_fn(struct ev_loop *loop, ev_idle *idle, int revents)
{
    (void)loop;
    (void)revents;
    s_drain(idle->data);
}

static void s_prep_fn(struct ev_loop *loop, ev_prepare *prep, int revents)
{
    (void)revents;
    zwatch_t *w = prep->data;
    if (w->active && s_readable(w))
        ev_idle_start(loop, &w->idle);
}

zwatch_t *zwatch_new(struct ev_loop *loop, void *sock, int burst, zwatch_fn *fn,
                     void *arg)
{
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) != 0)
        return NULL;
    zwatch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->loop = loop;
    w->sock = sock;
    w->burst = burst > 0 ? burst : 1;
    w->fn = fn;
    w->arg = arg;
    ev_io_init(&w->io, s_io_fn, fd, EV_READ);
    w->io.data = w;
    ev_prepare_init(&w->prep, s_prep_fn);
    w->prep.data = w;
    ev_idle_init(&w->idle, s_idle_fn);
    w->idle.data = w;
    return w;
}

void zwatch_start(zwatch_t *w)
{
    if (w->active)
        return;
    w->active = 1;
    ev_io_start(w->loop, &w->io);
    ev_prepare_start(w->loop, &w->prep);
    ev_idle_start(w->loop, &w->idle);
}

void zwatch_stop(zwatch_t *w)
{
    if (!w->active)
        return;
    w->active = 0;
    ev_io_stop(w->loop, &w->io);
    ev_prepare_stop(w->loop, &w->prep);
    ev_idle_stop(w->loop, &w->idle);
}

void zwatch_destroy(zwatch_t **pw)
{
    if (pw == NULL || *pw == NULL)
        return;
    zwatch_stop(*pw);
    free(*pw);
    *pw = NULL;
}
