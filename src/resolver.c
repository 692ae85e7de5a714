/*
 * resolver.c -- see resolver.h.
 *
 * Why a detached thread per lookup, and not one resolver thread with a
 * queue or getaddrinfo_a: a lookup that hangs must hold up nothing but its
 * own destination.  One shared thread would serve names one at a time, so a
 * hung name would stall every other destination's lookups behind it (the
 * defect this module removes, moved to another thread).  getaddrinfo_a runs
 * on glibc's own threads and still needs its request kept alive until it
 * completes, plus a notification thread of its own; it buys nothing here.
 * Lookups are rare (a connection attempt of a named destination, paced by
 * the reconnect backoff) and at most one per destination is in flight, so
 * a thread each costs little, and a detached thread is never joined: exit
 * never waits for it.
 *
 * Sharing: a lookup_t is shared by the resolver and its thread, under its
 * mutex, and freed by whichever lets go last.  The thread wakes the loop
 * (ev_async_send) only while the resolver has not abandoned the lookup, and
 * it checks that under the mutex, so resolver_destroy, which sets
 * abandoned under the same mutex, never races with a wake-up.
 */
#include "resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One lookup in flight, shared by the resolver and the lookup's thread. */
typedef struct {
    pthread_mutex_t mu;     /* guards refs, abandoned, done, rc, res */
    int refs;               /* holders: the thread and (until it takes the
                               answer or lets go) the resolver */
    int abandoned;          /* the resolver let go: wake nobody */
    int done;               /* the lookup returned: rc and res are set */
    int rc;                 /* its return (0 or EAI_*) */
    struct addrinfo *res;   /* its answer, owned; NULL unless rc == 0 */
    struct ev_loop *loop;   /* the resolver's loop, while !abandoned */
    ev_async *wake;         /* the resolver's watcher, while !abandoned */
    resolver_lookup_fn *fn; /* stand-in for getaddrinfo, or NULL */
    void *ctx;              /* its argument (borrowed) */
    char *host;             /* owned copy of the name */
    char port[8];           /* the port, in decimal */
    int socktype;           /* for the hints */
} lookup_t;

struct resolver {
    struct ev_loop *loop;          /* borrowed; the loop the callback runs on */
    char *host;                    /* owned copy of the name or address */
    int port;                      /* the port every address gets */
    int socktype;                  /* SOCK_STREAM or SOCK_DGRAM */
    int numeric;                   /* host is a numeric address */
    resolver_done_fn *fn;          /* answer callback */
    void *arg;                     /* its argument */
    resolver_lookup_fn *lookup_fn; /* tests' stand-in for getaddrinfo */
    void *lookup_ctx;              /* its argument */
    ev_async wake;                 /* started while a lookup is in flight */
    lookup_t *lk;                  /* the lookup in flight (shared), or NULL */
    resolver_addr_t addrs[RESOLVER_MAX_ADDRS]; /* the last good answer */
    size_t naddrs;                             /* addresses in it */
};

static void s_lookup_free(lookup_t *lk)
{
    if (lk->res)
        freeaddrinfo(lk->res);
    pthread_mutex_destroy(&lk->mu);
    free(lk->host);
    free(lk);
}

/* Let go of lk; the last holder frees it.  Any thread. */
static void s_lookup_release(lookup_t *lk)
{
    pthread_mutex_lock(&lk->mu);
    int left = --lk->refs;
    pthread_mutex_unlock(&lk->mu);
    if (left == 0)
        s_lookup_free(lk);
}

static void *s_lookup_main(void *p)
{
    lookup_t *lk = p;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = lk->socktype;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = lk->fn ? lk->fn(lk->ctx, lk->host, lk->port, &hints, &res)
                    : getaddrinfo(lk->host, lk->port, &hints, &res);
    pthread_mutex_lock(&lk->mu);
    lk->rc = rc;
    lk->res = rc == 0 ? res : NULL;
    lk->done = 1;
    if (!lk->abandoned)
        ev_async_send(lk->loop, lk->wake);
    pthread_mutex_unlock(&lk->mu);
    s_lookup_release(lk);
    return NULL;
}

/* Replace the last good answer with the usable addresses of res; returns
 * 0, or EAI_NONAME when res has none (the old answer then stays). */
static int s_take(resolver_t *r, const struct addrinfo *res)
{
    size_t n = 0;
    resolver_addr_t tmp[RESOLVER_MAX_ADDRS];
    for (const struct addrinfo *ai = res; ai && n < RESOLVER_MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addr == NULL || ai->ai_addrlen > sizeof tmp[n].sa)
            continue;
        memset(&tmp[n], 0, sizeof tmp[n]);
        tmp[n].family = ai->ai_family;
        tmp[n].socktype = r->socktype;
        tmp[n].protocol = ai->ai_protocol;
        tmp[n].len = ai->ai_addrlen;
        memcpy(&tmp[n].sa, ai->ai_addr, ai->ai_addrlen);
        n++;
    }
    if (n == 0)
        return EAI_NONAME;
    memcpy(r->addrs, tmp, n * sizeof tmp[0]);
    r->naddrs = n;
    return 0;
}

static void s_wake_fn(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    resolver_t *r = w->data;
    lookup_t *lk = r->lk;
    if (lk == NULL)
        return;
    pthread_mutex_lock(&lk->mu);
    int done = lk->done, rc = lk->rc;
    struct addrinfo *res = lk->res;
    lk->res = NULL;
    pthread_mutex_unlock(&lk->mu);
    if (!done)
        return;
    r->lk = NULL;
    ev_async_stop(loop, &r->wake);
    s_lookup_release(lk);
    if (rc == 0)
        rc = s_take(r, res);
    if (res)
        freeaddrinfo(res);
    r->fn(r->arg, r, rc);
}

resolver_t *resolver_new(struct ev_loop *loop, const char *host, int port,
                         int socktype, resolver_done_fn *fn, void *arg)
{
    resolver_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->host = strdup(host ? host : "");
    if (r->host == NULL) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->port = port;
    r->socktype = socktype;
    r->fn = fn;
    r->arg = arg;
    ev_async_init(&r->wake, s_wake_fn);
    r->wake.data = r;
    /* a numeric address needs no lookup: AI_NUMERICHOST never blocks */
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (r->host[0] != '\0' &&
        getaddrinfo(r->host, portstr, &hints, &res) == 0) {
        r->numeric = s_take(r, res) == 0;
        freeaddrinfo(res);
    }
    return r;
}

void resolver_destroy(resolver_t **pr)
{
    if (pr == NULL || *pr == NULL)
        return;
    resolver_t *r = *pr;
    if (r->lk) {
        pthread_mutex_lock(&r->lk->mu);
        r->lk->abandoned = 1;
        pthread_mutex_unlock(&r->lk->mu);
        s_lookup_release(r->lk);
        r->lk = NULL;
    }
    ev_async_stop(r->loop, &r->wake);
    free(r->host);
    free(r);
    *pr = NULL;
}

int resolver_numeric(const resolver_t *r)
{
    return r->numeric;
}

int resolver_pending(const resolver_t *r)
{
    return r->lk != NULL;
}

int resolver_start(resolver_t *r, char *err, size_t errlen)
{
    if (r->numeric || r->lk)
        return 1;
    lookup_t *lk = calloc(1, sizeof *lk);
    if (lk == NULL || (lk->host = strdup(r->host)) == NULL) {
        free(lk);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&lk->mu, NULL) != 0) {
        free(lk->host);
        free(lk);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    lk->refs = 2;
    lk->loop = r->loop;
    lk->wake = &r->wake;
    lk->fn = r->lookup_fn;
    lk->ctx = r->lookup_ctx;
    lk->socktype = r->socktype;
    snprintf(lk->port, sizeof lk->port, "%d", r->port);
    ev_async_start(r->loop, &r->wake);
    /* the thread takes no signal: the process's are for relay/ to wait for */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_t th;
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&th, &attr, s_lookup_main, lk);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (e != 0) {
        ev_async_stop(r->loop, &r->wake);
        s_lookup_free(lk);
        snprintf(err, errlen, "lookup thread: %s", strerror(e));
        return -1;
    }
    r->lk = lk;
    return 0;
}

size_t resolver_naddrs(const resolver_t *r)
{
    return r->naddrs;
}

const resolver_addr_t *resolver_addr(const resolver_t *r, size_t i)
{
    return i < r->naddrs ? &r->addrs[i] : NULL;
}

void resolver_set_lookup(resolver_t *r, resolver_lookup_fn *fn, void *ctx)
{
    r->lookup_fn = fn;
    r->lookup_ctx = ctx;
}

char *resolver_addr_str(const resolver_addr_t *a, char *buf, size_t len)
{
    const void *src = NULL;
    if (a->family == AF_INET)
        src = &((const struct sockaddr_in *)&a->sa)->sin_addr;
    else if (a->family == AF_INET6)
        src = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
    if (len > 0 &&
        (src == NULL || inet_ntop(a->family, src, buf, (socklen_t)len) == NULL))
        snprintf(buf, len, "?");
    return buf;
}
