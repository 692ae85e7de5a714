/*
 * test_msg.c -- unit tests of the messages between threads (src/msg.h):
 * the layouts are pinned, the control words round-trip over a real inproc
 * pipe, and malformed first frames are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <zmq.h>

#include "msg.h"

static void test_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(msg_hdr_t), 16);
    assert_int_equal(offsetof(msg_hdr_t, type), 0);
    assert_int_equal(offsetof(msg_hdr_t, count), 4);
    assert_int_equal(offsetof(msg_hdr_t, gen), 8);
    assert_int_equal(sizeof(msg_part_t), 16);
    assert_int_equal(offsetof(msg_part_t, id), 0);
    assert_int_equal(offsetof(msg_part_t, lines), 4);
    assert_int_equal(offsetof(msg_part_t, token), 8);
    assert_int_equal(sizeof(msg_dest_state_t), 8);
    /* the type numbers are part of the layout */
    assert_int_equal(MSG_STOP, 1);
    assert_int_equal(MSG_RELOAD, 2);
    assert_int_equal(MSG_DRAIN, 3);
    assert_int_equal(MSG_ROUTED, 4);
    assert_int_equal(MSG_SWITCH, 5);
    assert_int_equal(MSG_RETIRED, 6);
    assert_int_equal(MSG_DEST_STATE, 7);
    assert_int_equal(MSG_STATS_SENDER, 8);
    assert_int_equal(MSG_STATS_INGEST, 9);
    assert_int_equal(MSG_STATS_LISTENERS, 10);
    assert_int_equal(MSG_CRITICAL_DONE, 11);
    assert_int_equal(MSG_STATS_BUFFER, 12);
    assert_int_equal(MSG_HA_STATE, 13);
    assert_int_equal(MSG_AGGR_DEFS, 14);
    assert_int_equal(MSG_AGGR_DATA, 15);
    assert_int_equal(MSG_AGGR_OUT, 16);
    assert_int_equal(MSG_AGGR_DONE, 17);
    assert_int_equal(MSG_STATS_AGGR, 18);
}

static void test_parse(void **state)
{
    (void)state;
    unsigned char buf[40];
    memset(buf, 0, sizeof buf);
    msg_hdr_t h;
    size_t extra = 99;
    assert_int_equal(msg_hdr_parse(buf, sizeof buf, &h, &extra), -1);
    buf[0] = MSG_ROUTED;
    buf[4] = 3; /* count 3, little or big endian: only checked as read */
    assert_int_equal(msg_hdr_parse(buf, 15, &h, &extra), -1);
    assert_int_equal(msg_hdr_parse(buf, sizeof buf, &h, &extra), 0);
    assert_int_equal(h.type, MSG_ROUTED);
    assert_int_equal(extra, sizeof buf - 16);
    buf[0] = MSG_NTYPES;
    assert_int_equal(msg_hdr_parse(buf, sizeof buf, &h, &extra), -1);
    buf[0] = 0xff;
    assert_int_equal(msg_hdr_parse(buf, sizeof buf, &h, &extra), -1);
}

static void test_pipe(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://test-msg"), 0);
    assert_int_equal(zmq_connect(b, "inproc://test-msg"), 0);
    msg_hdr_t h;
    assert_int_equal(msg_recv_ctl(b, &h), -1); /* nothing yet */
    assert_int_equal(msg_send_ctl(a, MSG_STOP, 7, 0), 0);
    assert_int_equal(msg_recv_ctl(b, &h), MSG_STOP);
    assert_true(h.gen == 7);
    /* a control pipe refuses a multipart message, and takes the next */
    uint64_t v = 42;
    assert_int_equal(msg_send(a, MSG_STATS_INGEST, 1, 1, &v, sizeof v, 0), 0);
    assert_int_equal(msg_send_ctl(a, MSG_RELOAD, 0, 0), 0);
    assert_int_equal(msg_recv_ctl(b, &h), -1);
    assert_int_equal(msg_recv_ctl(b, &h), MSG_RELOAD);
    /* an old-style text control word is refused */
    assert_int_equal(zmq_send(a, "STOP", 4, 0), 4);
    assert_int_equal(msg_recv_ctl(b, &h), -1);
    /* a message with a body: header frame, then the bytes */
    assert_int_equal(msg_send(a, MSG_RETIRED, 3, 5, &v, sizeof v, 0), 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_int_equal(zmq_msg_recv(&m, b, 0), 16);
    size_t extra;
    assert_int_equal(
        msg_hdr_parse(zmq_msg_data(&m), zmq_msg_size(&m), &h, &extra), 0);
    assert_int_equal(h.type, MSG_RETIRED);
    assert_int_equal(h.count, 5);
    assert_true(h.gen == 3);
    assert_true(zmq_msg_more(&m));
    zmq_msg_close(&m);
    msg_discard_rest(b);
    assert_int_equal(msg_recv_ctl(b, &h), -1);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
