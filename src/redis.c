/*
 * redis.c -- see redis.h.
 *
 * States: WAIT (no context; the backoff timer runs) -> CONNECTING (a
 * context exists; the connect watchdog runs: first for the socket, then,
 * once hiredis says it is connected, for the answer to PING) -> UP (the
 * timer marks stable_ms; the command watchdog runs while commands are
 * pending) -> WAIT on any failure.
 *
 * What hiredis 0.14.1 does, and what this file relies on:
 *   - A connect that fails at once returns a context with err set, never
 *     attached: we free it (redisAsyncFree) before anything can call back.
 *   - A connect that fails later calls the connect callback with
 *     REDIS_ERR, then frees the context itself when the callback returns.
 *     The connect callback runs without hiredis's "in a callback" flag, so
 *     nothing may free the context from inside it.  The PING is sent from
 *     the connect callback (REDIS_OK): before that no command is queued,
 *     so a failed connect has no reply callback to run.
 *   - A connection that fails (EOF, a read or write error, a protocol
 *     error) is freed by hiredis: first every pending reply callback is
 *     called with a NULL reply, in order, then the disconnect callback
 *     (only for a context that had connected), then the context is gone.
 *   - redisAsyncFree called from outside hiredis does the same at once
 *     (the disconnect callback then gets REDIS_OK); called from inside a
 *     reply callback it sets a flag, and hiredis frees the context as soon
 *     as that callback returns: the documented way to end a connection
 *     from a reply callback, used here only for an error answer to PING.
 *   - Replies come in the order of the commands.
 * So at most one context exists at a time, and the pending-command ring
 * below holds exactly that context's unanswered commands: each reply
 * callback (NULL or not) takes the oldest entry.  A context we end
 * ourselves is detached first (r->ac = NULL), and its disconnect callback
 * is then ignored.
 *
 * hiredis 0.14.1 aborts on allocation failure (its hi_malloc) and asserts
 * on a reply nobody asked for outside pub/sub; that is why the commands
 * that change how replies flow are refused.
 */
#include "redis.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "clock.h"
#include "log.h"
#include "retry.h"

typedef enum { ST_WAIT, ST_CONNECTING, ST_UP } rstate_t;

/* One command sent and not yet answered. */
/* What a connection's own command is (pend_t.ping). */
enum { P_CALLER = 0, P_PING = 1, P_ASK = 2, P_ROLE = 3 };

#define MAX_SENTINELS 8

typedef struct {
    redis_reply_fn *fn; /* the caller's callback, or NULL */
    void *arg;          /* its argument */
    int64_t sent_ms;    /* when it was sent (clock_mono_ms) */
    int ping;           /* P_*: the connect's own PING, a sentinel's
                           question, the master's ROLE; or a caller's */
} pend_t;

struct redis {
    struct ev_loop *loop;        /* borrowed */
    char *target;                /* owned copy, for messages */
    char *path;                  /* owned; the unix socket, or NULL */
    char host[INET6_ADDRSTRLEN]; /* numeric address (TCP) */
    int port;                    /* TCP port */
    redis_opts_t o;              /* options */
    redis_state_fn *fn;          /* state callback, or NULL */
    void *arg;                   /* its argument */
    redisAsyncContext *ac;       /* the connection, or NULL; owned until
                                    hiredis or we free it */
    rstate_t state;              /* see the top of the file */
    int connected;               /* CONNECTING: hiredis said connected,
                                    the PING is out */
    int closing;                 /* the connection is ending: its pending
                                    callbacks are being told NULL */
    int destroying;              /* redis_destroy is running */
    int depth;                   /* caller's callbacks running now */
    ev_timer timer;              /* backoff, connect watchdog, or (UP)
                                    the stable_ms mark */
    ev_timer watchdog;           /* UP: the oldest command's deadline */
    pend_t *q;                   /* owned ring of pending commands (it
                                    keeps its largest size) */
    size_t qcap;                 /* its slots */
    size_t qhead;                /* slot of the oldest */
    size_t qlen;                 /* slots in use */
    size_t npending;             /* of them, the caller's */
    uint64_t lost;               /* caller's commands told NULL on this
                                    connection */
    retry_t retry;               /* backoff and failure lines */
    int told_down;               /* a failure line was logged since the
                                    last "connected" line */
    int said_up;                 /* "connected" was logged for this
                                    connection */
    char why[192];               /* the last failure */
    redis_stats_t stats;         /* counters */
    /* Sentinel: the master is asked of each sentinel in turn, at every
     * (re)connect; then its ROLE must say master */
    int nsentinels; /* 0: a plain target */
    struct {
        char host[INET6_ADDRSTRLEN];
        int port;
    } sentinels[MAX_SENTINELS];
    char master[128]; /* the master's name */
    int asking;       /* this connection is to sentinels[si] */
    int si;           /* the sentinel asked now */
    int tried;        /* sentinels asked in this round */
};

void redis_opts_default(redis_opts_t *o)
{
    o->connect_timeout_ms = 1000;
    o->command_timeout_ms = 2000;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 5000;
    o->stable_ms = 5000;
    o->log_interval_ms = 60000;
}

/* ---- the ring of pending commands ---------------------------------------- */

/* Room for one more entry; -1 when it cannot grow. */
static int s_reserve(redis_t *r)
{
    if (r->qlen < r->qcap)
        return 0;
    size_t cap = r->qcap ? r->qcap * 2 : 16;
    pend_t *q = malloc(cap * sizeof *q);
    if (q == NULL)
        return -1;
    for (size_t i = 0; i < r->qlen; i++)
        q[i] = r->q[(r->qhead + i) % r->qcap];
    free(r->q);
    r->q = q;
    r->qcap = cap;
    r->qhead = 0;
    return 0;
}

/* Append e (s_reserve made room). */
static void s_push(redis_t *r, const pend_t *e)
{
    r->q[(r->qhead + r->qlen) % r->qcap] = *e;
    r->qlen++;
}

/* Take the oldest entry into *e; -1 when there is none. */
static int s_pop(redis_t *r, pend_t *e)
{
    if (r->qlen == 0)
        return -1;
    *e = r->q[r->qhead];
    r->qhead = (r->qhead + 1) % r->qcap;
    r->qlen--;
    return 0;
}

/* ---- calling the caller ------------------------------------------------- */

static void s_call_reply(redis_t *r, const pend_t *e, redisReply *reply)
{
    if (e->fn == NULL)
        return;
    r->depth++;
    e->fn(e->arg, reply);
    r->depth--;
}

static void s_call_state(redis_t *r, int up, const char *why)
{
    if (r->fn == NULL || r->destroying)
        return;
    r->depth++;
    r->fn(r->arg, up, why);
    r->depth--;
}

/* Tell every entry still in the ring NULL.  hiredis has told them all by
 * the time a context is gone; this is for the case it has not. */
static void s_flush(redis_t *r)
{
    pend_t e;
    while (s_pop(r, &e) == 0) {
        if (e.ping)
            continue;
        r->npending--;
        r->lost++;
        s_call_reply(r, &e, NULL);
    }
}

/* ---- logging and backoff ---------------------------------------------- */

/* ---- the connection's life ---------------------------------------------- */

/* The connection or attempt ended: its context is gone or going (r->ac is
 * NULL), and hiredis has told its commands, or is about to.  Counts, logs
 * (rate-limited), schedules the next attempt, and tells the caller when
 * it was up.  why is copied (never r->why itself). */
static void s_connect(redis_t *r);

static void s_ended(redis_t *r, const char *why)
{
    int was_up = r->state == ST_UP;
    char more[64];
    if (!was_up && r->nsentinels && r->asking && ++r->tried < r->nsentinels) {
        /* this sentinel did not answer: ask the next one at once */
        log_info("redis: %s: sentinel %s:%d: %s: asking the next one",
                 r->target, r->sentinels[r->si].host, r->sentinels[r->si].port,
                 why);
        r->si = (r->si + 1) % r->nsentinels;
        r->ac = NULL;
        r->closing = 0;
        ev_timer_stop(r->loop, &r->timer);
        s_connect(r);
        return;
    }
    r->ac = NULL;
    r->closing = 1;
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_stop(r->loop, &r->watchdog);
    s_flush(r);
    r->closing = 0;
    r->state = ST_WAIT;
    r->connected = 0;
    snprintf(r->why, sizeof r->why, "%s", why);
    if (was_up)
        r->stats.disconnects++;
    else
        r->stats.connect_failures++;
    int64_t delay = retry_delay(&r->retry);
    if (retry_may_log(&r->retry, clock_mono_ms())) {
        if (was_up)
            log_warn("redis: %s: down: %s (%llu commands unanswered): "
                     "retrying in %lld ms%s",
                     r->target, r->why, (unsigned long long)r->lost,
                     (long long)delay,
                     retry_unlogged(&r->retry, more, sizeof more));
        else
            log_warn("redis: %s: %s: retrying in %lld ms%s", r->target, r->why,
                     (long long)delay,
                     retry_unlogged(&r->retry, more, sizeof more));
        r->told_down = 1;
    }
    ev_timer_set(&r->timer, (double)delay / 1000.0, 0.0);
    ev_timer_start(r->loop, &r->timer);
    if (was_up)
        s_call_state(r, 0, r->why);
}

/* End the connection ourselves: detach the context, so that its
 * disconnect callback is ignored, and free it; its pending callbacks get
 * NULL (now, or, from inside a reply callback, as soon as that returns,
 * which hiredis does before it goes back to the loop). */
static void s_drop(redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->closing = 1;
    if (ac)
        redisAsyncFree(ac);
    s_ended(r, why);
}

static void s_up(redis_t *r)
{
    ev_timer_stop(r->loop, &r->timer);
    r->state = ST_UP;
    r->stats.connects++;
    r->said_up = r->told_down || r->stats.connects == 1;
    if (r->said_up)
        log_info("redis: %s: connected", r->target);
    r->told_down = 0;
    ev_timer_set(&r->timer, r->o.stable_ms / 1000.0, 0.0);
    ev_timer_start(r->loop, &r->timer);
    s_call_state(r, 1, "connected");
}

/* Up for stable_ms: the next failure starts a new outage (backoff from
 * the start, logged at once). */
static void s_stable(redis_t *r)
{
    if (!r->said_up && r->retry.unlogged > 0)
        log_info("redis: %s: connected, and held for %d ms (%llu earlier "
                 "failures not logged)",
                 r->target, r->o.stable_ms,
                 (unsigned long long)r->retry.unlogged);
    retry_stable(&r->retry);
}

static void s_drop(redis_t *r, const char *why);
static void s_reply_fn(redisAsyncContext *ac, void *rep, void *priv);

/* Leave this connection (from inside one of its reply callbacks: hiredis
 * frees it when the callback returns) and start the next step of the same
 * attempt at once. */
static void s_next_step(redis_t *r)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
    r->closing = 0;
    ev_timer_stop(r->loop, &r->timer);
    s_connect(r);
}

/* A sentinel's answer to SENTINEL get-master-addr-by-name: [ip, port]. */
static void s_asked(redis_t *r, const redisReply *rp)
{
    char why[192];
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 &&
        rp->element[0]->type == REDIS_REPLY_STRING &&
        rp->element[1]->type == REDIS_REPLY_STRING &&
        rp->element[0]->len < sizeof r->host) {
        unsigned char buf[sizeof(struct in6_addr)];
        char host[INET6_ADDRSTRLEN];
        memcpy(host, rp->element[0]->str, rp->element[0]->len);
        host[rp->element[0]->len] = '\0';
        int port = atoi(rp->element[1]->str);
        if ((inet_pton(AF_INET, host, buf) == 1 ||
             inet_pton(AF_INET6, host, buf) == 1) &&
            port > 0 && port < 65536) {
            if (strcmp(host, r->host) != 0 || port != r->port)
                log_info("redis: %s: sentinel %s:%d says the master is "
                         "%s:%d",
                         r->target, r->sentinels[r->si].host,
                         r->sentinels[r->si].port, host, port);
            snprintf(r->host, sizeof r->host, "%s", host);
            r->port = port;
            r->asking = 0;
            s_next_step(r);
            return;
        }
    }
    snprintf(why, sizeof why, "sentinel: no master named '%s'", r->master);
    s_drop(r, why);
}

/* The master's answer to ROLE: it must still say master. */
static void s_role(redis_t *r, const redisReply *rp)
{
    char why[192];
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements >= 1 &&
        rp->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rp->element[0]->str, "master") == 0) {
        s_up(r);
        return;
    }
    snprintf(why, sizeof why, "ROLE: %s:%d is not the master (%s)", r->host,
             r->port,
             rp->type == REDIS_REPLY_ARRAY && rp->elements >= 1 &&
                     rp->element[0]->type == REDIS_REPLY_STRING
                 ? rp->element[0]->str
                 : "no answer");
    s_drop(r, why);
}

/* Every reply callback, the PING's and the caller's commands'. */
static void s_reply_fn(redisAsyncContext *ac, void *rep, void *priv)
{
    (void)priv;
    redis_t *r = ac->data;
    redisReply *reply = rep;
    pend_t e;
    if (s_pop(r, &e) != 0)
        return; /* not ours: cannot happen (see the top of the file) */
    if (reply == NULL && ac == r->ac)
        r->closing = 1; /* hiredis is ending it: the disconnect follows */
    if (e.ping) {
        if (reply == NULL || ac != r->ac || r->closing)
            return;
        if (e.ping == P_ASK) {
            s_asked(r, reply);
            return;
        }
        if (e.ping == P_ROLE) {
            s_role(r, reply);
            return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            char why[192];
            snprintf(why, sizeof why, "PING: %.*s", (int)reply->len,
                     reply->str ? reply->str : "");
            s_drop(r, why);
        } else if (r->nsentinels) {
            /* through Sentinel: it must be the master still */
            pend_t q = {NULL, NULL, clock_mono_ms(), P_ROLE};
            if (s_reserve(r) == 0 &&
                redisAsyncCommand(r->ac, s_reply_fn, NULL, "ROLE") == REDIS_OK)
                s_push(r, &q);
        } else {
            s_up(r);
        }
        return;
    }
    r->npending--;
    if (reply == NULL)
        r->lost++;
    else if (reply->type == REDIS_REPLY_ERROR)
        r->stats.errors++;
    s_call_reply(r, &e, reply);
}

static void s_connect_fn(const redisAsyncContext *ac, int status)
{
    redis_t *r = ac->data;
    char why[192];
    if (ac != r->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns */
        snprintf(why, sizeof why, "connect: %s",
                 ac->c.errstr[0] ? ac->c.errstr : "failed");
        r->ac = NULL;
        s_ended(r, why);
        return;
    }
    r->connected = 1;
    /* not freed from here (see the top of the file): when the PING cannot
     * be queued, the connect watchdog ends the attempt */
    if (r->nsentinels && r->asking) {
        pend_t e = {NULL, NULL, clock_mono_ms(), P_ASK};
        if (s_reserve(r) == 0 &&
            redisAsyncCommand(r->ac, s_reply_fn, NULL,
                              "SENTINEL get-master-addr-by-name %s",
                              r->master) == REDIS_OK)
            s_push(r, &e);
        return;
    }
    pend_t e = {NULL, NULL, clock_mono_ms(), P_PING};
    if (s_reserve(r) == 0 &&
        redisAsyncCommand(r->ac, s_reply_fn, NULL, "PING") == REDIS_OK)
        s_push(r, &e);
}

static void s_disconnect_fn(const redisAsyncContext *ac, int status)
{
    (void)status;
    redis_t *r = ac->data;
    char why[192];
    if (ac != r->ac)
        return; /* one we ended ourselves */
    const char *what = r->state == ST_UP ? "" : "connect: ";
    if (ac->c.err == REDIS_ERR_EOF)
        snprintf(why, sizeof why, "%sserver closed the connection", what);
    else if (ac->c.err != 0 && ac->c.errstr[0])
        snprintf(why, sizeof why, "%s%s", what, ac->c.errstr);
    else
        snprintf(why, sizeof why, "%sdisconnected", what);
    r->ac = NULL;
    s_ended(r, why);
}

static void s_connect(redis_t *r)
{
    char why[192];
    r->state = ST_CONNECTING;
    r->connected = 0;
    r->lost = 0;
    redisAsyncContext *ac = r->nsentinels && r->asking
                                ? redisAsyncConnect(r->sentinels[r->si].host,
                                                    r->sentinels[r->si].port)
                            : r->path ? redisAsyncConnectUnix(r->path)
                                      : redisAsyncConnect(r->host, r->port);
    if (ac == NULL) {
        s_ended(r, "connect: out of memory");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof why, "connect: %s", ac->c.errstr);
        redisAsyncFree(ac);
        s_ended(r, why);
        return;
    }
    ac->data = r;
    if (redisLibevAttach(r->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        s_ended(r, "connect: cannot attach to the loop");
        return;
    }
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, s_connect_fn);
    redisAsyncSetDisconnectCallback(ac, s_disconnect_fn);
    ev_timer_set(&r->timer, r->o.connect_timeout_ms / 1000.0, 0.0);
    ev_timer_start(r->loop, &r->timer);
}

static void s_timer_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    redis_t *r = t->data;
    char why[192];
    if (r->state == ST_WAIT) {
        if (r->nsentinels) { /* discover the master again at every
                                reconnect */
            r->asking = 1;
            r->tried = 0;
        }
        s_connect(r);
    } else if (r->state == ST_CONNECTING) {
        r->stats.connect_timeouts++;
        if (r->connected)
            snprintf(why, sizeof why, "connect: no answer to PING within %d ms",
                     r->o.connect_timeout_ms);
        else
            snprintf(why, sizeof why, "connect: timed out after %d ms",
                     r->o.connect_timeout_ms);
        s_drop(r, why);
    } else {
        s_stable(r);
    }
}

/* The oldest command's deadline passed, or that of one answered since:
 * then wait for the oldest one's. */
static void s_watchdog_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    redis_t *r = t->data;
    char why[192];
    if (r->state != ST_UP || r->closing || r->qlen == 0)
        return;
    int64_t deadline = r->q[r->qhead].sent_ms + r->o.command_timeout_ms;
    int64_t now = clock_mono_ms();
    if (now < deadline) {
        ev_timer_set(t, (double)(deadline - now) / 1000.0, 0.0);
        ev_timer_start(loop, t);
        return;
    }
    r->stats.timeouts++;
    snprintf(why, sizeof why, "no answer for %d ms", r->o.command_timeout_ms);
    s_drop(r, why);
}

/* ---- the target ---------------------------------------------------------- */

/* Parse target into r->path or r->host and r->port; -1 with err. */
static int s_target(redis_t *r, const char *target, char *err, size_t errlen);

/* "sentinel:HOST:PORT[,HOST:PORT...]/NAME" into r->sentinels and
 * r->master; -1 with err. */
static int s_sentinels(redis_t *r, const char *spec, char *err, size_t errlen)
{
    const char *slash = strrchr(spec, '/');
    if (slash == NULL || slash[1] == '\0' ||
        strlen(slash + 1) >= sizeof r->master) {
        snprintf(err, errlen, "'%s': expected sentinel:HOST:PORT,.../NAME",
                 spec);
        return -1;
    }
    snprintf(r->master, sizeof r->master, "%s", slash + 1);
    const char *p = spec + 9;
    while (p < slash) {
        const char *e = memchr(p, ',', (size_t)(slash - p));
        if (e == NULL)
            e = slash;
        char one[INET6_ADDRSTRLEN + 16];
        if (r->nsentinels == MAX_SENTINELS || (size_t)(e - p) >= sizeof one) {
            snprintf(err, errlen, "'%s': at most %d sentinels", spec,
                     MAX_SENTINELS);
            return -1;
        }
        memcpy(one, p, (size_t)(e - p));
        one[e - p] = '\0';
        redis_t tmp;
        memset(&tmp, 0, sizeof tmp);
        if (s_target(&tmp, one, err, errlen) != 0 || tmp.path) {
            free(tmp.path);
            return -1;
        }
        snprintf(r->sentinels[r->nsentinels].host, sizeof r->sentinels[0].host,
                 "%s", tmp.host);
        r->sentinels[r->nsentinels++].port = tmp.port;
        p = e + 1;
    }
    if (r->nsentinels == 0) {
        snprintf(err, errlen, "'%s': no sentinel", spec);
        return -1;
    }
    r->asking = 1;
    return 0;
}

static int s_target(redis_t *r, const char *target, char *err, size_t errlen)
{
    const char *hs, *he, *ps;
    char host[INET6_ADDRSTRLEN];
    if (strncmp(target, "sentinel:", 9) == 0)
        return s_sentinels(r, target, err, errlen);
    if (strncmp(target, "unix:", 5) == 0) {
        const char *path = target + 5;
        if (path[0] == '\0' ||
            strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(err, errlen, "'%s': the socket path is empty or too long",
                     target);
            return -1;
        }
        r->path = strdup(path);
        if (r->path == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (target[0] == '[') {
        hs = target + 1;
        he = strchr(hs, ']');
        if (he == NULL || he[1] != ':') {
            snprintf(err, errlen, "'%s': expected [IPV6]:PORT", target);
            return -1;
        }
        ps = he + 2;
    } else {
        hs = target;
        he = strrchr(target, ':');
        if (he == NULL || memchr(hs, ':', (size_t)(he - hs)) != NULL) {
            snprintf(err, errlen,
                     "'%s': expected unix:PATH, HOST:PORT or [IPV6]:PORT",
                     target);
            return -1;
        }
        ps = he + 1;
    }
    long port = 0;
    const char *p = ps;
    for (; *p >= '0' && *p <= '9' && port <= 65535; p++)
        port = port * 10 + (*p - '0');
    if (p == ps || *p != '\0' || port < 1 || port > 65535) {
        snprintf(err, errlen, "'%s': the port must be 1 to 65535", target);
        return -1;
    }
    size_t hlen = (size_t)(he - hs);
    if (hlen == 0 || hlen >= sizeof host) {
        snprintf(err, errlen, "'%s': bad host", target);
        return -1;
    }
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    unsigned char buf[sizeof(struct in6_addr)];
    int v6 = target[0] == '[';
    if (!v6 && strcasecmp(host, "localhost") == 0) {
        snprintf(host, sizeof host, "127.0.0.1");
    } else if (inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) != 1) {
        snprintf(err, errlen,
                 "'%s': the host must be a numeric address or localhost "
                 "(names are not looked up)",
                 target);
        return -1;
    }
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = (int)port;
    return 0;
}

/* ---- the interface ----------------------------------------------------- */

redis_t *redis_new(struct ev_loop *loop, const char *target,
                   const redis_opts_t *o, redis_state_fn *fn, void *arg,
                   char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (target == NULL) {
        snprintf(err, errlen, "no target");
        return NULL;
    }
    redis_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s_target(r, target, err, errlen) != 0)
        goto fail;
    r->target = strdup(target);
    if (r->target == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    redis_opts_t d;
    redis_opts_default(&d);
    r->o = o ? *o : d;
    if (r->o.connect_timeout_ms <= 0)
        r->o.connect_timeout_ms = d.connect_timeout_ms;
    if (r->o.command_timeout_ms <= 0)
        r->o.command_timeout_ms = d.command_timeout_ms;
    if (r->o.backoff_min_ms <= 0)
        r->o.backoff_min_ms = d.backoff_min_ms;
    if (r->o.backoff_max_ms <= 0)
        r->o.backoff_max_ms = d.backoff_max_ms;
    if (r->o.backoff_max_ms < r->o.backoff_min_ms)
        r->o.backoff_max_ms = r->o.backoff_min_ms;
    if (r->o.stable_ms <= 0)
        r->o.stable_ms = d.stable_ms;
    if (r->o.log_interval_ms <= 0)
        r->o.log_interval_ms = d.log_interval_ms;
    r->loop = loop;
    r->fn = fn;
    r->arg = arg;
    /* jitter: 50% to 100% of each delay */
    retry_init(&r->retry, r->o.backoff_min_ms, r->o.backoff_max_ms, 50, 100,
               r->o.log_interval_ms,
               (unsigned int)(clock_mono_ms() ^ (intptr_t)r));
    ev_init(&r->timer, s_timer_fn);
    r->timer.data = r;
    ev_init(&r->watchdog, s_watchdog_fn);
    r->watchdog.data = r;
    s_connect(r);
    return r;
fail:
    free(r->path);
    free(r->target);
    free(r);
    return NULL;
}

void redis_destroy(redis_t **pr)
{
    if (pr == NULL || *pr == NULL)
        return;
    redis_t *r = *pr;
    assert(r->depth == 0); /* never from inside one of r's callbacks */
    r->destroying = 1;
    r->closing = 1;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac)
        redisAsyncFree(ac); /* its pending callbacks get NULL now */
    s_flush(r);
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_stop(r->loop, &r->watchdog);
    free(r->q);
    free(r->path);
    free(r->target);
    free(r);
    *pr = NULL;
}

int redis_up(const redis_t *r)
{
    return r->state == ST_UP && !r->closing && r->ac != NULL;
}

/* Commands after which Redis answers other than once per command. */
static int s_refused(const char *name, size_t len)
{
    static const char *const names[] = {
        "subscribe",    "psubscribe",   "ssubscribe", "unsubscribe",
        "punsubscribe", "sunsubscribe", "monitor",    NULL};
    for (const char *const *n = names; *n; n++)
        if (strlen(*n) == len && strncasecmp(*n, name, len) == 0)
            return 1;
    return 0;
}

int redis_cmd(redis_t *r, redis_reply_fn *fn, void *arg, int argc,
              const char **argv, const size_t *argvlen)
{
    if (!redis_up(r) || r->destroying || argc < 1 || argv == NULL ||
        argv[0] == NULL)
        return -1;
    if (s_refused(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
        return -1;
    if (s_reserve(r) != 0)
        return -1;
    if (redisAsyncCommandArgv(r->ac, s_reply_fn, NULL, argc, argv, argvlen) !=
        REDIS_OK)
        return -1;
    pend_t e = {fn, arg, clock_mono_ms(), 0};
    s_push(r, &e);
    r->npending++;
    if (!ev_is_active(&r->watchdog)) {
        ev_timer_set(&r->watchdog, r->o.command_timeout_ms / 1000.0, 0.0);
        ev_timer_start(r->loop, &r->watchdog);
    }
    return 0;
}

size_t redis_pending(const redis_t *r)
{
    return r->npending;
}

const char *redis_why(const redis_t *r)
{
    return r->why;
}

void redis_stats(const redis_t *r, redis_stats_t *out)
{
    *out = r->stats;
}
