/*
 * test_selfmetrics.c -- self metric names, values and reset mode.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "selfmetrics.h"

static void test_render_and_reset(void **state)
{
    (void)state;
    selfmetrics_t *sm = selfmetrics_new();
    selfmetrics_counter_t c[2] = {{"metricsReceived", 100, 0},
                                  {"metricsQueued", 7, 1}};
    const char *keys[1] = {"127_0_0_1_2003"};
    stats_dest_t d[1] = {{.sent = 90, .queued = 7, .dropped = 3}};
    size_t len;
    char *out = selfmetrics_render(sm, "carbon.relays.h", 1000, 1, c, 2, keys,
                                   d, 1, &len);
    assert_non_null(out);
    const char *want1 =
        "carbon.relays.h.metricsReceived 100 1000\n"
        "carbon.relays.h.metricsQueued 7 1000\n"
        "carbon.relays.h.destinations.127_0_0_1_2003.sent 90 1000\n"
        "carbon.relays.h.destinations.127_0_0_1_2003.queued 7 1000\n"
        "carbon.relays.h.destinations.127_0_0_1_2003.dropped 3 1000\n";
    assert_int_equal(len, strlen(want1));
    assert_memory_equal(out, want1, len);
    free(out);
    /* reset: counts since last time; the gauge as it is */
    c[0].value = 150;
    c[1].value = 2;
    d[0].sent = 140;
    d[0].queued = 2;
    out = selfmetrics_render(sm, "p", 1060, 1, c, 2, keys, d, 1, &len);
    const char *want2 = "p.metricsReceived 50 1060\n"
                        "p.metricsQueued 2 1060\n"
                        "p.destinations.127_0_0_1_2003.sent 50 1060\n"
                        "p.destinations.127_0_0_1_2003.queued 2 1060\n"
                        "p.destinations.127_0_0_1_2003.dropped 0 1060\n";
    assert_int_equal(len, strlen(want2));
    assert_memory_equal(out, want2, len);
    free(out);
    /* cumulative mode reports the totals */
    out = selfmetrics_render(sm, "p", 1120, 0, c, 2, keys, d, 1, &len);
    assert_non_null(strstr(out, "p.metricsReceived 150 1120\n"));
    free(out);
    selfmetrics_destroy(&sm);
    assert_null(sm);
}

/* A TLS destination has its handshakes and failures (counters, reset)
 * and the TLS version of its connection (a gauge). */
static void test_tls_metrics(void **state)
{
    (void)state;
    selfmetrics_t *sm = selfmetrics_new();
    const char *keys[2] = {"a", "b"};
    stats_dest_t d[2] = {
        {.sent = 1, .tls_on = 1, .tls = 13, .tls_ok = 4, .tls_failed = 2},
        {.sent = 2}};
    size_t len;
    char *out = selfmetrics_render(sm, "p", 1000, 1, NULL, 0, keys, d, 2, &len);
    const char *want1 = "p.destinations.a.sent 1 1000\n"
                        "p.destinations.a.queued 0 1000\n"
                        "p.destinations.a.dropped 0 1000\n"
                        "p.destinations.a.tlsHandshakes 4 1000\n"
                        "p.destinations.a.tlsFailures 2 1000\n"
                        "p.destinations.a.tlsVersion 13 1000\n"
                        "p.destinations.b.sent 2 1000\n"
                        "p.destinations.b.queued 0 1000\n"
                        "p.destinations.b.dropped 0 1000\n";
    assert_non_null(out);
    assert_int_equal(len, strlen(want1));
    assert_memory_equal(out, want1, len);
    free(out);
    d[0].tls_ok = 5;
    d[0].tls_failed = 7;
    d[0].tls = 0;
    out = selfmetrics_render(sm, "p", 1060, 1, NULL, 0, keys, d, 2, &len);
    assert_non_null(strstr(out, "p.destinations.a.tlsHandshakes 1 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.tlsFailures 5 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.tlsVersion 0 1060\n"));
    assert_null(strstr(out, "p.destinations.b.tls"));
    free(out);
    selfmetrics_destroy(&sm);
}

/* A destination with a Redis buffer has its buffer's metrics too: the
 * counters reset, the backlog and its age are gauges. */
static void test_buffer_metrics(void **state)
{
    (void)state;
    selfmetrics_t *sm = selfmetrics_new();
    const char *keys[2] = {"a", "b"};
    stats_dest_t d[2] = {{.sent = 1}, {.sent = 2}};
    d[0].buf = (stats_dbuf_t){.on = 1,
                              .buffered = 500,
                              .replayed = 200,
                              .dropped = 7,
                              .errors = 1,
                              .backlog = 300,
                              .oldest_ms = 940500};
    size_t len;
    char *out = selfmetrics_render(sm, "p", 1000, 1, NULL, 0, keys, d, 2, &len);
    assert_non_null(out);
    const char *want1 = "p.destinations.a.sent 1 1000\n"
                        "p.destinations.a.queued 0 1000\n"
                        "p.destinations.a.dropped 0 1000\n"
                        "p.destinations.a.buffered 500 1000\n"
                        "p.destinations.a.replayed 200 1000\n"
                        "p.destinations.a.bufferDropped 7 1000\n"
                        "p.destinations.a.backlog 300 1000\n"
                        "p.destinations.a.backlogAge 59 1000\n"
                        "p.destinations.a.redisErrors 1 1000\n"
                        "p.destinations.b.sent 2 1000\n"
                        "p.destinations.b.queued 0 1000\n"
                        "p.destinations.b.dropped 0 1000\n";
    assert_int_equal(len, strlen(want1));
    assert_memory_equal(out, want1, len);
    free(out);
    d[0].buf.buffered = 600;
    d[0].buf.replayed = 500;
    d[0].buf.backlog = 100;
    out = selfmetrics_render(sm, "p", 1060, 1, NULL, 0, keys, d, 2, &len);
    assert_non_null(strstr(out, "p.destinations.a.buffered 100 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.replayed 300 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.bufferDropped 0 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.redisErrors 0 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.backlog 100 1060\n"));
    assert_non_null(strstr(out, "p.destinations.a.backlogAge 119 1060\n"));
    free(out);
    selfmetrics_destroy(&sm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_and_reset),
        cmocka_unit_test(test_buffer_metrics),
        cmocka_unit_test(test_tls_metrics),
    };
    return cmocka_run_group_tests_name("selfmetrics", tests, NULL, NULL);
}
