/*
 * test_resolver.c -- unit tests of the name resolver (src/resolver.c).
 *
 * Lookups go to a stand-in for getaddrinfo that answers with numeric
 * addresses, fails on demand, and can hold a lookup until the test lets it
 * return: so nothing here sends a DNS query, and "destroy does not wait"
 * is shown with a lookup that is still held.  One test resolves
 * "localhost", which /etc/hosts answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "resolver.h"

/* The stand-in's script and what it saw (reset by s_fake_reset). */
typedef struct {
    pthread_mutex_t mu; /* guards the rest */
    pthread_cond_t cv;  /* signalled on every change */
    int hold;           /* lookups wait until released */
    int released;       /* the test let held lookups return */
    int calls;          /* lookups that started */
    int returned;       /* lookups that returned */
    int rc;             /* what the next lookups return */
    char answer[64];    /* numeric address they answer with */
    char host[64];      /* the host the last lookup was asked for */
    char port[16];      /* and the port */
} fake_t;

static fake_t s_fake = {PTHREAD_MUTEX_INITIALIZER,
                        PTHREAD_COND_INITIALIZER,
                        0,
                        0,
                        0,
                        0,
                        0,
                        "",
                        "",
                        ""};

/* What the answer callback saw. */
typedef struct {
    int calls;        /* callbacks */
    int rc;           /* the last rc */
    pthread_t thread; /* the thread of the last one */
} seen_t;

static void s_fake_reset(int rc, const char *answer, int hold)
{
    pthread_mutex_lock(&s_fake.mu);
    s_fake.hold = hold;
    s_fake.released = 0;
    s_fake.calls = 0;
    s_fake.returned = 0;
    s_fake.rc = rc;
    snprintf(s_fake.answer, sizeof s_fake.answer, "%s", answer);
    s_fake.host[0] = s_fake.port[0] = '\0';
    pthread_mutex_unlock(&s_fake.mu);
}

static void s_fake_set(int rc, const char *answer)
{
    pthread_mutex_lock(&s_fake.mu);
    s_fake.rc = rc;
    snprintf(s_fake.answer, sizeof s_fake.answer, "%s", answer);
    pthread_mutex_unlock(&s_fake.mu);
}

static int s_lookup(void *ctx, const char *host, const char *port,
                    const struct addrinfo *hints, struct addrinfo **res)
{
    fake_t *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    snprintf(f->host, sizeof f->host, "%s", host);
    snprintf(f->port, sizeof f->port, "%s", port);
    pthread_cond_broadcast(&f->cv);
    while (f->hold && !f->released)
        pthread_cond_wait(&f->cv, &f->mu);
    int rc = f->rc;
    char answer[64];
    memcpy(answer, f->answer, sizeof answer);
    pthread_mutex_unlock(&f->mu);
    if (rc == 0) {
        struct addrinfo h = *hints;
        h.ai_flags |= AI_NUMERICHOST;
        rc = getaddrinfo(answer, port, &h, res);
    }
    pthread_mutex_lock(&f->mu);
    f->returned++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Wait (at most 10 s) until *counter of the stand-in reaches want. */
static int s_fake_wait(const int *counter, int want)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&s_fake.mu);
    int rc = 0;
    while (*counter < want && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s_fake.cv, &s_fake.mu, &ts);
    int ok = *counter >= want;
    pthread_mutex_unlock(&s_fake.mu);
    return ok;
}

static void s_release(void)
{
    pthread_mutex_lock(&s_fake.mu);
    s_fake.released = 1;
    pthread_cond_broadcast(&s_fake.cv);
    pthread_mutex_unlock(&s_fake.mu);
}

static void s_done_fn(void *arg, resolver_t *r, int rc)
{
    (void)r;
    seen_t *s = arg;
    s->calls++;
    s->rc = rc;
    s->thread = pthread_self();
}

static void s_guard_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until the callback ran want times, for at most 10 s. */
static int s_run_until(struct ev_loop *loop, const seen_t *s, int want)
{
    ev_timer guard;
    ev_timer_init(&guard, s_guard_fn, 10.0, 0.0);
    ev_timer_start(loop, &guard);
    while (s->calls < want && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    return s->calls >= want;
}

static int s_port(const resolver_addr_t *a)
{
    if (a->family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

static void test_numeric_v4(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char err[128], buf[64];
    resolver_t *r =
        resolver_new(loop, "127.0.0.1", 2003, SOCK_STREAM, s_done_fn, &seen);
    assert_non_null(r);
    assert_int_equal(resolver_numeric(r), 1);
    assert_int_equal(resolver_naddrs(r), 1);
    const resolver_addr_t *a = resolver_addr(r, 0);
    assert_int_equal(a->family, AF_INET);
    assert_int_equal(a->socktype, SOCK_STREAM);
    assert_int_equal(s_port(a), 2003);
    assert_string_equal(resolver_addr_str(a, buf, sizeof buf), "127.0.0.1");
    assert_null(resolver_addr(r, 1));
    /* nothing to look up: no thread, no callback */
    resolver_set_lookup(r, s_lookup, &s_fake);
    s_fake_reset(0, "127.0.0.9", 0);
    assert_int_equal(resolver_start(r, err, sizeof err), 1);
    assert_int_equal(resolver_pending(r), 0);
    assert_int_equal(s_fake.calls, 0);
    resolver_destroy(&r);
    assert_null(r);
    resolver_destroy(&r); /* safe twice */
    assert_int_equal(seen.calls, 0);
    ev_loop_destroy(loop);
}

static void test_numeric_v6_udp(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char buf[64];
    resolver_t *r =
        resolver_new(loop, "::1", 2004, SOCK_DGRAM, s_done_fn, &seen);
    assert_non_null(r);
    assert_int_equal(resolver_numeric(r), 1);
    assert_int_equal(resolver_naddrs(r), 1);
    const resolver_addr_t *a = resolver_addr(r, 0);
    assert_int_equal(a->family, AF_INET6);
    assert_int_equal(a->socktype, SOCK_DGRAM);
    assert_int_equal(s_port(a), 2004);
    assert_string_equal(resolver_addr_str(a, buf, sizeof buf), "::1");
    resolver_destroy(&r);
    ev_loop_destroy(loop);
}

static void test_name_answered_on_the_loop(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char err[128], buf[64];
    resolver_t *r = resolver_new(loop, "backend.example", 2003, SOCK_STREAM,
                                 s_done_fn, &seen);
    assert_non_null(r);
    assert_int_equal(resolver_numeric(r), 0);
    assert_int_equal(resolver_naddrs(r), 0);
    resolver_set_lookup(r, s_lookup, &s_fake);
    s_fake_reset(0, "127.0.0.2", 0);
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_int_equal(resolver_pending(r), 1);
    assert_true(s_run_until(loop, &seen, 1));
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.rc, 0);
    assert_true(pthread_equal(seen.thread, pthread_self()));
    assert_int_equal(resolver_pending(r), 0);
    assert_string_equal(s_fake.host, "backend.example");
    assert_string_equal(s_fake.port, "2003");
    assert_int_equal(resolver_naddrs(r), 1);
    assert_string_equal(resolver_addr_str(resolver_addr(r, 0), buf, sizeof buf),
                        "127.0.0.2");
    assert_int_equal(s_port(resolver_addr(r, 0)), 2003);
    resolver_destroy(&r);
    ev_loop_destroy(loop);
}

static void test_keeps_the_last_good_answer(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char err[128], buf[64];
    resolver_t *r = resolver_new(loop, "backend.example", 2003, SOCK_STREAM,
                                 s_done_fn, &seen);
    resolver_set_lookup(r, s_lookup, &s_fake);
    s_fake_reset(0, "127.0.0.2", 0);
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_run_until(loop, &seen, 1));
    assert_int_equal(seen.rc, 0);

    /* a failing lookup reports its error and leaves the answer alone */
    s_fake_set(EAI_AGAIN, "");
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_run_until(loop, &seen, 2));
    assert_int_equal(seen.rc, EAI_AGAIN);
    assert_int_equal(resolver_naddrs(r), 1);
    assert_string_equal(resolver_addr_str(resolver_addr(r, 0), buf, sizeof buf),
                        "127.0.0.2");

    s_fake_set(EAI_NONAME, "");
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_run_until(loop, &seen, 3));
    assert_int_equal(seen.rc, EAI_NONAME);
    assert_int_equal(resolver_naddrs(r), 1);

    /* a good answer replaces it */
    s_fake_set(0, "::1");
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_run_until(loop, &seen, 4));
    assert_int_equal(seen.rc, 0);
    assert_int_equal(resolver_naddrs(r), 1);
    assert_int_equal(resolver_addr(r, 0)->family, AF_INET6);
    assert_string_equal(resolver_addr_str(resolver_addr(r, 0), buf, sizeof buf),
                        "::1");
    assert_int_equal(s_fake.calls, 4);
    resolver_destroy(&r);
    ev_loop_destroy(loop);
}

static void test_one_lookup_in_flight(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char err[128];
    resolver_t *r = resolver_new(loop, "backend.example", 2003, SOCK_STREAM,
                                 s_done_fn, &seen);
    resolver_set_lookup(r, s_lookup, &s_fake);
    s_fake_reset(0, "127.0.0.3", 1);
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_fake_wait(&s_fake.calls, 1));
    /* held: still pending, and a second start starts nothing */
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(seen.calls, 0);
    assert_int_equal(resolver_pending(r), 1);
    assert_int_equal(resolver_start(r, err, sizeof err), 1);
    s_release();
    assert_true(s_run_until(loop, &seen, 1));
    assert_int_equal(seen.rc, 0);
    assert_int_equal(s_fake.calls, 1);
    assert_int_equal(resolver_pending(r), 0);
    resolver_destroy(&r);
    ev_loop_destroy(loop);
}

static void test_destroy_does_not_wait(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char err[128];
    resolver_t *r =
        resolver_new(loop, "hung.example", 2003, SOCK_STREAM, s_done_fn, &seen);
    resolver_set_lookup(r, s_lookup, &s_fake);
    s_fake_reset(0, "127.0.0.4", 1);
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_fake_wait(&s_fake.calls, 1));
    /* the lookup is held: destroy must return without it */
    resolver_destroy(&r);
    assert_null(r);
    pthread_mutex_lock(&s_fake.mu);
    int returned = s_fake.returned;
    pthread_mutex_unlock(&s_fake.mu);
    assert_int_equal(returned, 0);
    /* once it returns, its answer goes nowhere */
    s_release();
    assert_true(s_fake_wait(&s_fake.returned, 1));
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(seen.calls, 0);
    /* a new resolver on the same loop works as before */
    r = resolver_new(loop, "next.example", 2003, SOCK_STREAM, s_done_fn, &seen);
    resolver_set_lookup(r, s_lookup, &s_fake);
    s_fake_reset(0, "127.0.0.5", 0);
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_run_until(loop, &seen, 1));
    assert_int_equal(seen.rc, 0);
    resolver_destroy(&r);
    ev_loop_destroy(loop);
}

static void test_localhost_with_getaddrinfo(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    seen_t seen = {0};
    char err[128];
    resolver_t *r =
        resolver_new(loop, "localhost", 2003, SOCK_STREAM, s_done_fn, &seen);
    assert_int_equal(resolver_numeric(r), 0);
    assert_int_equal(resolver_start(r, err, sizeof err), 0);
    assert_true(s_run_until(loop, &seen, 1));
    assert_int_equal(seen.rc, 0);
    assert_true(resolver_naddrs(r) >= 1);
    for (size_t i = 0; i < resolver_naddrs(r); i++) {
        const resolver_addr_t *a = resolver_addr(r, i);
        assert_true(a->family == AF_INET || a->family == AF_INET6);
        assert_int_equal(s_port(a), 2003);
    }
    resolver_destroy(&r);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_v4),
        cmocka_unit_test(test_numeric_v6_udp),
        cmocka_unit_test(test_name_answered_on_the_loop),
        cmocka_unit_test(test_keeps_the_last_good_answer),
        cmocka_unit_test(test_one_lookup_in_flight),
        cmocka_unit_test(test_destroy_does_not_wait),
        cmocka_unit_test(test_localhost_with_getaddrinfo),
    };
    return cmocka_run_group_tests_name("resolver", tests, NULL, NULL);
}
