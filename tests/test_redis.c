/*
 * test_redis.c -- tests of the Redis connection (src/redis.c) against a
 * real redis-server.
 *
 * Each test that needs one starts its own redis-server
 * (/usr/bin/redis-server, or the one ORCHESTER_REDIS_SERVER names) with
 * fork and exec, in a fresh temporary directory: on a unix socket there,
 * or also on a free loopback TCP port.  It stops, freezes (SIGSTOP),
 * resumes and kills that server by its PID, and the fixture's teardown
 * kills it and removes the directory whatever the test's outcome.
 * Without a redis-server those tests fail.
 *
 * Every wait runs the libev loop until a condition holds, bounded by a
 * deadline; nothing sleeps in place of waiting.  Timeouts are short
 * (connect and command 300 ms, backoff 20 to 200 ms), so the program runs
 * in a few seconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "redis.h"

/* ---- the server ---------------------------------------------------------- */

/* One redis-server of a test, and the loop the test runs. */
typedef struct {
    char dir[64];          /* the temporary directory */
    char sock[128];        /* the unix socket in it */
    char unix_target[160]; /* "unix:" and the socket */
    char tcp_target[64];   /* "127.0.0.1:PORT", when tcp */
    int port;              /* the TCP port, or 0 (unix only) */
    pid_t pid;             /* the running server, or 0 */
    const char *bin;       /* the redis-server program */
    const char *pass;      /* a password the server requires, or NULL */
    struct ev_loop *loop;  /* the test's loop */
} fix_t;

static const char *s_server_bin(void)
{
    const char *b = getenv("ORCHESTER_REDIS_SERVER");
    return b && b[0] ? b : "/usr/bin/redis-server";
}

/* A TCP port on 127.0.0.1 that nothing listens on now. */
static int s_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Start the server (it must not be running). */
static void s_start(fix_t *f)
{
    char port[16], log[128];
    snprintf(port, sizeof port, "%d", f->port);
    snprintf(log, sizeof log, "%s/log", f->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[] = {"redis-server",
                              "--port",
                              port,
                              "--bind",
                              "127.0.0.1",
                              "-::1",
                              "--unixsocket",
                              f->sock,
                              "--save",
                              "",
                              "--appendonly",
                              "no",
                              "--daemonize",
                              "no",
                              "--dir",
                              f->dir,
                              f->pass ? "--requirepass" : NULL,
                              f->pass,
                              NULL};
        execv(f->bin, (char *const *)argv);
        _exit(127);
    }
    f->pid = pid;
}

/* Kill the server (SIGKILL, which also ends a stopped one) and reap it. */
static void s_kill(fix_t *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGKILL);
    while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    f->pid = 0;
}

/* Freeze or resume the server, and wait until it has. */
static void s_stop(fix_t *f)
{
    int st;
    assert_int_equal(kill(f->pid, SIGSTOP), 0);
    assert_int_equal(waitpid(f->pid, &st, WUNTRACED), f->pid);
    assert_true(WIFSTOPPED(st));
}

static void s_cont(fix_t *f)
{
    int st;
    assert_int_equal(kill(f->pid, SIGCONT), 0);
    assert_int_equal(waitpid(f->pid, &st, WCONTINUED), f->pid);
    assert_true(WIFCONTINUED(st));
}

static int s_setup(void **state, int tcp)
{
    fix_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->bin = s_server_bin();
    snprintf(f->dir, sizeof f->dir, "/tmp/test_redis.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->sock, sizeof f->sock, "%s/sock", f->dir);
    snprintf(f->unix_target, sizeof f->unix_target, "unix:%s", f->sock);
    if (tcp) {
        f->port = s_free_port();
        if (f->port <= 0) {
            rmdir(f->dir);
            free(f);
            return -1;
        }
        snprintf(f->tcp_target, sizeof f->tcp_target, "127.0.0.1:%d", f->port);
    }
    f->loop = ev_loop_new(EVFLAG_AUTO);
    *state = f;
    return 0;
}

static int s_setup_unix(void **state)
{
    return s_setup(state, 0);
}

static int s_setup_tcp(void **state)
{
    return s_setup(state, 1);
}

static int s_teardown(void **state)
{
    fix_t *f = *state;
    s_kill(f);
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *de;
        char path[384];
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(f->dir);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* Fail the test when there is no redis-server to run (bootstrap.sh
 * installs it: a test that checks nothing must not pass). */
#define NEED_SERVER(f)                                                         \
    do {                                                                       \
        if (access((f)->bin, X_OK) != 0)                                       \
            fail_msg("no %s (apt-get install redis-server)", (f)->bin);        \
    } while (0)

/* ---- waiting ---------------------------------------------------------------
 */

typedef int(cond_fn)(void *ctx);

static void s_guard_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
}

/* Run the loop until cond(ctx), for at most ms; returns cond(ctx). */
static int s_wait(struct ev_loop *loop, cond_fn *cond, void *ctx, int ms)
{
    ev_timer guard;
    ev_timer_init(&guard, s_guard_fn, ms / 1000.0, 0.0);
    ev_timer_start(loop, &guard);
    while (!cond(ctx) && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    return cond(ctx);
}

typedef struct {
    const int *v; /* the counter */
    int want;     /* at least this */
} ge_t;

static int s_ge_fn(void *ctx)
{
    const ge_t *g = ctx;
    return *g->v >= g->want;
}

/* Run the loop until *v >= want, for at most ms. */
static int s_wait_ge(struct ev_loop *loop, const int *v, int want, int ms)
{
    ge_t g = {v, want};
    return s_wait(loop, s_ge_fn, &g, ms);
}

static int s_never_fn(void *ctx)
{
    (void)ctx;
    return 0;
}

/* Run the loop for ms (to let a duration pass with the loop live). */
static void s_run_for(struct ev_loop *loop, int ms)
{
    s_wait(loop, s_never_fn, NULL, ms);
}

/* Run the loop without blocking a few times: writes go out. */
static void s_spin(struct ev_loop *loop)
{
    for (int i = 0; i < 10; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

typedef struct {
    const redis_t *r; /* the connection */
    uint64_t want;    /* at least this many */
    int which;        /* 0: connect_failures, 1: connect_timeouts */
    int64_t at[16];   /* when each failure was seen */
    uint64_t seen;    /* failures seen so far */
} fails_t;

static uint64_t s_fails(const fails_t *w)
{
    redis_stats_t st;
    redis_stats(w->r, &st);
    return w->which ? st.connect_timeouts : st.connect_failures;
}

static int s_fails_fn(void *ctx)
{
    fails_t *w = ctx;
    uint64_t n = s_fails(w);
    int64_t now = clock_mono_ms();
    while (w->seen < n) {
        if (w->seen < 16)
            w->at[w->seen] = now;
        w->seen++;
    }
    return n >= w->want;
}

/* ---- the caller's side -----------------------------------------------------
 */

/* What one test saw of its connection. */
typedef struct {
    redis_t *r;       /* the connection (set after redis_new) */
    int ups;          /* up events */
    int downs;        /* down events */
    char why[192];    /* the last event's why */
    int64_t down_ms;  /* when the last down came */
    int cmd_in_down;  /* what redis_cmd returned from the down event */
    int pending_down; /* redis_pending at the down event */
    int replies;      /* reply callbacks, in all */
} seen_t;

/* One command's callback record. */
typedef struct reply {
    seen_t *s;          /* the test's */
    int calls;          /* times called */
    int nulls;          /* of them, with NULL */
    int order;          /* s->replies when it was called */
    int type;           /* the reply's type */
    long long integer;  /* an integer reply */
    char str[64];       /* a string, status or error reply (cut) */
    size_t len;         /* its full length */
    struct reply *next; /* send this one's command from the callback */
    int cmd_rc;         /* what redis_cmd returned from the callback */
    int tried;          /* redis_cmd was tried from the callback */
} reply_t;

static void s_state_fn(void *arg, int up, const char *why)
{
    seen_t *s = arg;
    if (up)
        s->ups++;
    else
        s->downs++;
    snprintf(s->why, sizeof s->why, "%s", why);
    if (!up) {
        const char *argv[] = {"PING"};
        s->down_ms = clock_mono_ms();
        s->pending_down = (int)redis_pending(s->r);
        s->cmd_in_down = redis_cmd(s->r, NULL, NULL, 1, argv, NULL);
    }
}

static int s_send(redis_t *r, reply_t *rp, const char *a0, const char *a1,
                  const char *a2);

static void s_reply_fn(void *arg, redisReply *reply)
{
    reply_t *rp = arg;
    rp->calls++;
    rp->order = ++rp->s->replies;
    if (reply == NULL) {
        rp->nulls++;
    } else {
        rp->type = reply->type;
        rp->integer = reply->integer;
        rp->len = reply->len;
        if (reply->str)
            snprintf(rp->str, sizeof rp->str, "%.*s", (int)reply->len,
                     reply->str);
    }
    if (rp->next) {
        rp->tried = 1;
        rp->cmd_rc = s_send(rp->s->r, rp->next, "INCR", "chain", NULL);
    }
}

/* Send a command of up to three arguments, replies to rp. */
static int s_send(redis_t *r, reply_t *rp, const char *a0, const char *a1,
                  const char *a2)
{
    const char *argv[3] = {a0, a1, a2};
    int argc = a2 ? 3 : a1 ? 2 : 1;
    return redis_cmd(r, s_reply_fn, rp, argc, argv, NULL);
}

static void s_opts(redis_opts_t *o)
{
    redis_opts_default(o);
    o->connect_timeout_ms = 300;
    o->command_timeout_ms = 300;
    o->backoff_min_ms = 20;
    o->backoff_max_ms = 200;
}

/* A connection to target, up (the server runs). */
static redis_t *s_connect_up(fix_t *f, const char *target,
                             const redis_opts_t *o, seen_t *s)
{
    char err[128];
    redis_t *r = redis_new(f->loop, target, o, s_state_fn, s, err, sizeof err);
    assert_non_null(r);
    s->r = r;
    int ups = s->ups;
    assert_true(s_wait_ge(f->loop, &s->ups, ups + 1, 5000));
    assert_int_equal(redis_up(r), 1);
    return r;
}

/* ---- the tests -------------------------------------------------------------
 */

static void test_targets(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[128], longpath[300];
    redis_opts_t o;
    redis_opts_default(&o);
    assert_int_equal(o.connect_timeout_ms, 1000);
    assert_int_equal(o.command_timeout_ms, 2000);
    assert_int_equal(o.backoff_min_ms, 100);
    assert_int_equal(o.backoff_max_ms, 5000);
    assert_int_equal(o.stable_ms, 5000);

    memset(longpath, 'a', sizeof longpath - 1);
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof longpath - 1] = '\0';
    const char *bad[] = {"",
                         "unix:",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:12x",
                         ":6379",
                         "redis.example:6379",
                         "::1:6379",
                         "[::1]",
                         "[::1]6379",
                         "[127.0.0.1]:6379",
                         "[zz::1]:6379",
                         "1.2.3:6379",
                         longpath,
                         NULL};
    for (const char **t = bad; *t; t++) {
        err[0] = '\0';
        redis_t *r = redis_new(loop, *t, NULL, NULL, NULL, err, sizeof err);
        if (r != NULL)
            fail_msg("'%s' was taken", *t);
        assert_true(err[0] != '\0');
    }
    assert_null(redis_new(loop, NULL, NULL, NULL, NULL, NULL, 0));

    /* well formed: they start connecting, and fail (nothing listens) */
    const char *good[] = {"unix:/nonexistent.orchester/sock", "localhost:1",
                          "127.0.0.1:1", "[::1]:1", NULL};
    for (const char **t = good; *t; t++) {
        seen_t s = {0};
        redis_t *r = redis_new(loop, *t, NULL, s_state_fn, &s, err, sizeof err);
        assert_non_null(r);
        s.r = r;
        assert_int_equal(redis_up(r), 0);
        assert_int_equal(redis_pending(r), 0);
        const char *argv[] = {"PING"};
        assert_int_equal(redis_cmd(r, NULL, NULL, 1, argv, NULL), -1);
        fails_t w = {r, 1, 0, {0}, 0};
        assert_true(s_wait(loop, s_fails_fn, &w, 2000));
        assert_non_null(strstr(redis_why(r), "connect: "));
        assert_int_equal(s.ups + s.downs, 0);
        redis_destroy(&r);
        assert_null(r);
        redis_destroy(&r); /* safe twice */
    }
    ev_loop_destroy(loop);
}

/* 1. up, then commands answered in order, each callback once. */
static void test_up_in_order(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    seen_t s = {0};
    s_start(f);
    redis_t *r = s_connect_up(f, f->unix_target, &o, &s);
    assert_string_equal(s.why, "connected");

    reply_t rp[8];
    memset(rp, 0, sizeof rp);
    for (int i = 0; i < 8; i++)
        rp[i].s = &s;
    assert_int_equal(s_send(r, &rp[0], "SET", "k", "v"), 0);
    assert_int_equal(s_send(r, &rp[1], "GET", "k", NULL), 0);
    for (int i = 2; i < 7; i++)
        assert_int_equal(s_send(r, &rp[i], "INCR", "n", NULL), 0);
    /* binary-safe arguments, and a command nobody waits for */
    const char *argv[] = {"SET", "bin", "a\0b"};
    const size_t argvlen[] = {3, 3, 3};
    assert_int_equal(redis_cmd(r, NULL, NULL, 3, argv, argvlen), 0);
    assert_int_equal(s_send(r, &rp[7], "STRLEN", "bin", NULL), 0);
    assert_int_equal(redis_pending(r), 9);

    /* refused: no argument, and commands that break one reply each */
    assert_int_equal(redis_cmd(r, NULL, NULL, 0, argv, NULL), -1);
    assert_int_equal(s_send(r, &rp[0], "SUBSCRIBE", "ch", NULL), -1);
    assert_int_equal(s_send(r, &rp[0], "psubscribe", "c*", NULL), -1);
    assert_int_equal(s_send(r, &rp[0], "Monitor", NULL, NULL), -1);
    assert_int_equal(redis_pending(r), 9);

    assert_true(s_wait_ge(f->loop, &s.replies, 8, 3000));
    assert_int_equal(redis_pending(r), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(rp[i].calls, 1);
        assert_int_equal(rp[i].nulls, 0);
        assert_int_equal(rp[i].order, i + 1);
    }
    assert_int_equal(rp[0].type, REDIS_REPLY_STATUS);
    assert_string_equal(rp[0].str, "OK");
    assert_int_equal(rp[1].type, REDIS_REPLY_STRING);
    assert_string_equal(rp[1].str, "v");
    for (int i = 2; i < 7; i++) {
        assert_int_equal(rp[i].type, REDIS_REPLY_INTEGER);
        assert_int_equal(rp[i].integer, i - 1);
    }
    assert_int_equal(rp[7].integer, 3);

    redis_stats_t st;
    redis_stats(r, &st);
    assert_int_equal(st.connects, 1); /* (attempts before the server
                                         listened count as failures) */
    assert_int_equal(st.disconnects, 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(s.downs, 0);
    redis_destroy(&r);
    assert_int_equal(s.downs, 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(rp[i].calls, 1);
}

/* 1 over TCP: numeric IPv4, localhost and IPv6. */
static void test_tcp(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    s_start(f);
    char targets[3][64];
    snprintf(targets[0], sizeof targets[0], "%s", f->tcp_target);
    snprintf(targets[1], sizeof targets[1], "localhost:%d", f->port);
    snprintf(targets[2], sizeof targets[2], "[::1]:%d", f->port);
    int n = 3;
    int fd6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sa6;
    memset(&sa6, 0, sizeof sa6);
    sa6.sin6_family = AF_INET6;
    sa6.sin6_addr = in6addr_loopback;
    if (fd6 < 0 || bind(fd6, (struct sockaddr *)&sa6, sizeof sa6) != 0)
        n = 2; /* no IPv6 loopback here */
    if (fd6 >= 0)
        close(fd6);
    for (int i = 0; i < n; i++) {
        seen_t s = {0};
        reply_t rp[2];
        memset(rp, 0, sizeof rp);
        rp[0].s = rp[1].s = &s;
        redis_t *r = s_connect_up(f, targets[i], &o, &s);
        assert_int_equal(s_send(r, &rp[0], "SET", "t", targets[i]), 0);
        assert_int_equal(s_send(r, &rp[1], "GET", "t", NULL), 0);
        assert_true(s_wait_ge(f->loop, &s.replies, 2, 3000));
        assert_string_equal(rp[1].str, targets[i]);
        assert_int_equal(rp[1].order, 2);
        redis_destroy(&r);
    }
}

/* 2. not running: failures counted, retried with rising delays; then the
 * server starts, and the connection comes up by itself. */
static void test_not_running_then_started(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    seen_t s = {0};
    char err[128];
    int64_t t0 = clock_mono_ms();
    redis_t *r =
        redis_new(f->loop, f->unix_target, &o, s_state_fn, &s, err, sizeof err);
    assert_non_null(r);
    s.r = r;
    /* the first attempt failed in redis_new (no socket) */
    fails_t w = {r, 6, 0, {0}, 0};
    s_fails_fn(&w);
    assert_int_equal(w.seen, 1);
    w.at[0] = t0;
    assert_true(s_wait(f->loop, s_fails_fn, &w, 3000));
    assert_non_null(strstr(redis_why(r), "connect: "));
    /* delay k is 50-100% of min(20 * 2^(k-1), 200) ms */
    int64_t gap[5];
    for (int k = 0; k < 5; k++) {
        gap[k] = w.at[k + 1] - w.at[k];
        fprintf(stderr, "retry %d after %lld ms\n", k + 1, (long long)gap[k]);
    }
    assert_true(gap[0] >= 9 && gap[0] <= 20 + 100);
    assert_true(gap[1] >= 19 && gap[1] <= 40 + 100);
    assert_true(gap[2] >= 39 && gap[2] <= 80 + 100);
    assert_true(gap[3] >= 79 && gap[3] <= 160 + 100);
    assert_true(gap[4] >= 99 && gap[4] <= 200 + 100);
    assert_true(gap[2] > gap[0] && gap[3] > gap[1]);
    assert_int_equal(s.ups + s.downs, 0);
    assert_int_equal(redis_up(r), 0);

    s_start(f);
    assert_true(s_wait_ge(f->loop, &s.ups, 1, 5000));
    assert_int_equal(redis_up(r), 1);
    reply_t rp = {.s = &s};
    assert_int_equal(s_send(r, &rp, "PING", NULL, NULL), 0);
    assert_true(s_wait_ge(f->loop, &rp.calls, 1, 3000));
    assert_string_equal(rp.str, "PONG");
    redis_stats_t st;
    redis_stats(r, &st);
    assert_int_equal(st.connects, 1);
    assert_true(st.connect_failures >= 6);
    redis_destroy(&r);
}

/* 3. frozen with commands pending: the watchdog ends the connection;
 * connecting while frozen fails by the connect watchdog; resumed, it
 * comes back up by itself. */
static void test_sigstop(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    seen_t s = {0};
    s_start(f);
    redis_t *r = s_connect_up(f, f->unix_target, &o, &s);

    s_stop(f);
    reply_t rp[3];
    memset(rp, 0, sizeof rp);
    int64_t t_send = clock_mono_ms();
    for (int i = 0; i < 3; i++) {
        rp[i].s = &s;
        assert_int_equal(s_send(r, &rp[i], "INCR", "n", NULL), 0);
    }
    assert_int_equal(redis_pending(r), 3);
    assert_true(s_wait_ge(f->loop, &s.downs, 1, 300 + 1000));
    int64_t took = s.down_ms - t_send;
    fprintf(stderr, "watchdog after %lld ms\n", (long long)took);
    assert_true(took >= 300 - 2);
    assert_non_null(strstr(s.why, "no answer"));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rp[i].calls, 1);
        assert_int_equal(rp[i].nulls, 1);
    }
    assert_int_equal(s.pending_down, 0);
    assert_int_equal(s.cmd_in_down, -1);
    assert_int_equal(redis_up(r), 0);
    redis_stats_t st;
    redis_stats(r, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.disconnects, 1);

    /* frozen: the kernel takes the connection, PING goes unanswered */
    fails_t w = {r, 1, 1, {0}, 0};
    assert_true(s_wait(f->loop, s_fails_fn, &w, 200 + 300 + 1000));
    assert_non_null(strstr(redis_why(r), "PING"));
    assert_int_equal(s.ups, 1);
    assert_int_equal(redis_up(r), 0);

    s_cont(f);
    assert_true(s_wait_ge(f->loop, &s.ups, 2, 3000));
    assert_int_equal(redis_up(r), 1);
    reply_t again = {.s = &s};
    assert_int_equal(s_send(r, &again, "INCR", "n", NULL), 0);
    assert_true(s_wait_ge(f->loop, &again.calls, 1, 3000));
    assert_int_equal(again.nulls, 0);
    assert_int_equal(again.type, REDIS_REPLY_INTEGER);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rp[i].calls, 1);
    redis_destroy(&r);
}

/* 4. killed mid-reply with commands pending: each callback once (NULL for
 * those unanswered), a down event, no crash; restarted, up again. */
static void test_sigkill(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    o.command_timeout_ms = 5000; /* only the kill ends it */
    seen_t s = {0};
    s_start(f);
    redis_t *r = s_connect_up(f, f->tcp_target, &o, &s);

    size_t big = 4u << 20;
    char *val = malloc(big);
    assert_non_null(val);
    memset(val, 'x', big);
    const char *argv[] = {"SET", "big", val};
    const size_t argvlen[] = {3, 3, big};
    reply_t set = {.s = &s};
    assert_int_equal(redis_cmd(r, s_reply_fn, &set, 3, argv, argvlen), 0);
    free(val); /* copied by redis_cmd */
    assert_true(s_wait_ge(f->loop, &set.calls, 1, 5000));
    assert_string_equal(set.str, "OK");

    enum { N = 20 };
    reply_t rp[N];
    memset(rp, 0, sizeof rp);
    for (int i = 0; i < N; i++) {
        rp[i].s = &s;
        assert_int_equal(s_send(r, &rp[i], "GET", "big", NULL), 0);
    }
    /* one 4 MB answer is in, the others are on their way: kill */
    assert_true(s_wait_ge(f->loop, &rp[0].calls, 1, 5000));
    s_kill(f);
    assert_true(s_wait_ge(f->loop, &s.downs, 1, 3000));
    int answered = 0, nulls = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(rp[i].calls, 1);
        if (rp[i].nulls)
            nulls++;
        else {
            assert_int_equal(rp[i].len, big);
            answered++;
        }
    }
    fprintf(stderr, "killed: %d answered, %d not (%s)\n", answered, nulls,
            s.why);
    assert_true(answered >= 1);
    assert_true(nulls >= 1);
    assert_true(s.why[0] != '\0');
    assert_int_equal(s.cmd_in_down, -1);
    assert_int_equal(redis_pending(r), 0);
    assert_int_equal(redis_up(r), 0);

    s_start(f);
    assert_true(s_wait_ge(f->loop, &s.ups, 2, 5000));
    reply_t again = {.s = &s};
    assert_int_equal(s_send(r, &again, "EXISTS", "big", NULL), 0);
    assert_true(s_wait_ge(f->loop, &again.calls, 1, 3000));
    assert_int_equal(again.type, REDIS_REPLY_INTEGER);
    assert_int_equal(again.integer, 0); /* a new, empty server */
    redis_stats_t st;
    redis_stats(r, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.disconnects, 1);
    assert_int_equal(st.timeouts, 0);
    redis_destroy(&r);
}

/* 5. an error reply is passed through and counted. */
static void test_error_reply(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    seen_t s = {0};
    s_start(f);
    redis_t *r = s_connect_up(f, f->unix_target, &o, &s);
    reply_t rp[4];
    memset(rp, 0, sizeof rp);
    for (int i = 0; i < 4; i++)
        rp[i].s = &s;
    assert_int_equal(s_send(r, &rp[0], "SET", "k", "text"), 0);
    assert_int_equal(s_send(r, &rp[1], "LPUSH", "k", "x"), 0);
    assert_int_equal(s_send(r, &rp[2], "NOSUCHCOMMAND", NULL, NULL), 0);
    assert_int_equal(s_send(r, &rp[3], "GET", "k", NULL), 0);
    assert_true(s_wait_ge(f->loop, &s.replies, 4, 3000));
    assert_int_equal(rp[1].type, REDIS_REPLY_ERROR);
    assert_memory_equal(rp[1].str, "WRONGTYPE", 9);
    assert_int_equal(rp[2].type, REDIS_REPLY_ERROR);
    assert_int_equal(rp[3].type, REDIS_REPLY_STRING);
    assert_string_equal(rp[3].str, "text");
    for (int i = 0; i < 4; i++)
        assert_int_equal(rp[i].calls, 1);
    redis_stats_t st;
    redis_stats(r, &st);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.disconnects, 0);
    assert_int_equal(redis_up(r), 1);
    redis_destroy(&r);
    assert_int_equal(s.downs, 0);
}

/* 6. destroy with commands pending (not yet written; written and
 * unanswered), and while connecting: each callback NULL once, no state
 * callback. */
static void test_destroy_pending(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    s_start(f);

    seen_t s = {0};
    redis_t *r = s_connect_up(f, f->unix_target, &o, &s);
    reply_t rp[10];
    memset(rp, 0, sizeof rp);
    for (int i = 0; i < 10; i++) {
        rp[i].s = &s;
        assert_int_equal(s_send(r, &rp[i], "INCR", "d", NULL), 0);
    }
    redis_destroy(&r);
    assert_null(r);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rp[i].calls, 1);
        assert_int_equal(rp[i].nulls, 1);
        assert_int_equal(rp[i].order, i + 1);
    }
    assert_int_equal(s.downs, 0);

    /* written, and the server frozen: unanswered */
    seen_t s2 = {0};
    r = s_connect_up(f, f->unix_target, &o, &s2);
    s_stop(f);
    reply_t rq[5];
    memset(rq, 0, sizeof rq);
    for (int i = 0; i < 5; i++) {
        rq[i].s = &s2;
        assert_int_equal(s_send(r, &rq[i], "INCR", "d", NULL), 0);
    }
    s_spin(f->loop);
    assert_int_equal(redis_pending(r), 5);
    redis_destroy(&r);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rq[i].calls, 1);
        assert_int_equal(rq[i].nulls, 1);
    }
    assert_int_equal(s2.downs, 0);

    /* while connecting to the frozen server (waiting for PONG) */
    seen_t s3 = {0};
    char err[128];
    r = redis_new(f->loop, f->unix_target, &o, s_state_fn, &s3, err,
                  sizeof err);
    assert_non_null(r);
    s3.r = r;
    s_spin(f->loop);
    assert_int_equal(redis_up(r), 0);
    redis_destroy(&r);
    assert_int_equal(s3.ups + s3.downs, 0);
    s_cont(f);
}

/* 7. redis_cmd from a reply callback: works while up, -1 during
 * teardown (destroy, and a connection lost). */
static void test_cmd_from_callback(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    seen_t s = {0};
    s_start(f);
    redis_t *r = s_connect_up(f, f->unix_target, &o, &s);

    /* a chain: each reply sends the next command */
    enum { N = 5 };
    reply_t rp[N];
    memset(rp, 0, sizeof rp);
    for (int i = 0; i < N; i++) {
        rp[i].s = &s;
        rp[i].next = i + 1 < N ? &rp[i + 1] : NULL;
    }
    assert_int_equal(s_send(r, &rp[0], "INCR", "chain", NULL), 0);
    assert_true(s_wait_ge(f->loop, &rp[N - 1].calls, 1, 3000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(rp[i].calls, 1);
        assert_int_equal(rp[i].nulls, 0);
        assert_int_equal(rp[i].integer, i + 1);
        if (i + 1 < N)
            assert_int_equal(rp[i].cmd_rc, 0);
    }
    assert_int_equal(redis_pending(r), 0);

    /* destroy: the callbacks get NULL, and their redis_cmd -1 */
    reply_t spare[3], td[3];
    memset(spare, 0, sizeof spare);
    memset(td, 0, sizeof td);
    for (int i = 0; i < 3; i++) {
        td[i].s = spare[i].s = &s;
        td[i].next = &spare[i];
        assert_int_equal(s_send(r, &td[i], "INCR", "chain", NULL), 0);
    }
    redis_destroy(&r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(td[i].calls, 1);
        assert_int_equal(td[i].nulls, 1);
        assert_int_equal(td[i].tried, 1);
        assert_int_equal(td[i].cmd_rc, -1);
        assert_int_equal(spare[i].calls, 0);
    }
    assert_int_equal(s.downs, 0);

    /* a lost connection: the same, and the down event's redis_cmd too */
    seen_t s2 = {0};
    r = s_connect_up(f, f->unix_target, &o, &s2);
    s_stop(f);
    memset(spare, 0, sizeof spare);
    memset(td, 0, sizeof td);
    for (int i = 0; i < 3; i++) {
        td[i].s = spare[i].s = &s2;
        td[i].next = &spare[i];
        assert_int_equal(s_send(r, &td[i], "INCR", "chain", NULL), 0);
    }
    s_kill(f);
    assert_true(s_wait_ge(f->loop, &s2.downs, 1, 3000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(td[i].calls, 1);
        assert_int_equal(td[i].nulls, 1);
        assert_int_equal(td[i].cmd_rc, -1);
        assert_int_equal(spare[i].calls, 0);
    }
    assert_int_equal(s2.cmd_in_down, -1);
    assert_int_equal(redis_pending(r), 0);
    redis_destroy(&r);
}

/* A connection up for stable_ms starts the backoff again from the
 * minimum; failures in a row had raised it. */
static void test_stable_resets_backoff(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    o.backoff_max_ms = 2000;
    o.stable_ms = 150;
    seen_t s = {0};
    char err[128];
    redis_t *r =
        redis_new(f->loop, f->unix_target, &o, s_state_fn, &s, err, sizeof err);
    assert_non_null(r);
    s.r = r;
    /* six failures: the next delay would be 640 to 1280 ms */
    fails_t w = {r, 6, 0, {0}, 0};
    assert_true(s_wait(f->loop, s_fails_fn, &w, 3000));
    s_start(f);
    assert_true(s_wait_ge(f->loop, &s.ups, 1, 5000));
    s_run_for(f->loop, o.stable_ms + 50);
    assert_int_equal(redis_up(r), 1);

    s_kill(f); /* the socket file stays: the next attempt is refused */
    assert_true(s_wait_ge(f->loop, &s.downs, 1, 3000));
    fails_t w2 = {r, 0, 0, {0}, 0};
    w2.seen = (uint64_t)s_fails(&w2);
    w2.want = w2.seen + 1;
    assert_true(s_wait(f->loop, s_fails_fn, &w2, 3000));
    int64_t gap = w2.at[w2.want - 1] - s.down_ms;
    fprintf(stderr, "first retry after a stable connection: %lld ms\n",
            (long long)gap);
    assert_true(gap < 300);
    redis_destroy(&r);
}

/* An error answer to PING (here: the server wants a password) is a failed
 * connect: the connection never goes up, and is retried. */
static void test_ping_refused(void **state)
{
    fix_t *f = *state;
    NEED_SERVER(f);
    redis_opts_t o;
    s_opts(&o);
    seen_t s = {0};
    char err[128];
    f->pass = "secret";
    s_start(f);
    redis_t *r =
        redis_new(f->loop, f->unix_target, &o, s_state_fn, &s, err, sizeof err);
    assert_non_null(r);
    s.r = r;
    for (int i = 0; i < 50 && !strstr(redis_why(r), "NOAUTH"); i++) {
        fails_t w = {r, 0, 0, {0}, 0};
        w.seen = (uint64_t)s_fails(&w);
        w.want = w.seen + 1;
        assert_true(s_wait(f->loop, s_fails_fn, &w, 3000));
    }
    assert_non_null(strstr(redis_why(r), "PING: NOAUTH"));
    /* and again: each attempt ends the same way */
    fails_t w = {r, 0, 0, {0}, 0};
    w.seen = (uint64_t)s_fails(&w);
    w.want = w.seen + 2;
    assert_true(s_wait(f->loop, s_fails_fn, &w, 3000));
    assert_non_null(strstr(redis_why(r), "PING: NOAUTH"));
    redis_stats_t st;
    redis_stats(r, &st);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.connect_timeouts, 0);
    assert_int_equal(s.ups + s.downs, 0);
    assert_int_equal(redis_up(r), 0);
    redis_destroy(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as daemon_block_signals does */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test_setup_teardown(test_up_in_order, s_setup_unix,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_tcp, s_setup_tcp, s_teardown),
        cmocka_unit_test_setup_teardown(test_not_running_then_started,
                                        s_setup_unix, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigstop, s_setup_unix, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigkill, s_setup_tcp, s_teardown),
        cmocka_unit_test_setup_teardown(test_error_reply, s_setup_unix,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_pending, s_setup_unix,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cmd_from_callback, s_setup_unix,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_stable_resets_backoff,
                                        s_setup_unix, s_teardown),
        cmocka_unit_test_setup_teardown(test_ping_refused, s_setup_unix,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
