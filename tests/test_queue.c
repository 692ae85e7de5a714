/*
 * test_queue.c -- unit tests of the destination queue (src/queue.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "queue.h"

static int s_released;
static int s_delivered; /* of them, released as delivered */

static void s_rel(void *owner, int delivered)
{
    (void)owner;
    s_released++;
    s_delivered += delivered != 0;
}

/* What queue_take_kept handed back. */
typedef struct {
    int n;
    const char *owner[8];
    size_t off[8];
    uint32_t lines[8];
} taken_t;

static void s_take(void *arg, void *owner, size_t off, uint32_t lines)
{
    taken_t *t = arg;
    t->owner[t->n] = owner;
    t->off[t->n] = off;
    t->lines[t->n] = lines;
    t->n++;
}

/* Kept chunks are never dropped to make room; ordinary ones make way. */
static void test_keep_not_dropped(void **state)
{
    (void)state;
    s_released = s_delivered = 0;
    queue_t *q = queue_new(4);
    const char *c = "a 1 1\nb 2 2\n";
    assert_int_equal(queue_push_flags(q, c, 12, 2, QUEUE_KEEP, s_rel, NULL), 0);
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 0);
    assert_int_equal(queue_kept_lines(q), 2);
    /* full: the ordinary chunk goes, never the kept one */
    assert_int_equal(queue_push_flags(q, c, 12, 2, QUEUE_KEEP, s_rel, NULL), 2);
    assert_int_equal(s_released, 1);
    assert_int_equal(queue_kept_lines(q), 4);
    /* nothing but kept chunks: an ordinary one cannot make room, and
     * nothing kept is dropped (the queue goes over its bound) */
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 0);
    assert_int_equal(queue_lines(q), 6);
    assert_int_equal(s_released, 1);
    /* the next ordinary push drops the ordinary one, kept ones stay */
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 2);
    assert_int_equal(queue_kept_lines(q), 4);
    /* delivered chunks say so */
    assert_int_equal(queue_consume(q, 24), 4);
    assert_int_equal(s_delivered, 2);
    assert_int_equal(queue_kept_lines(q), 0);
    queue_destroy(&q);
    assert_int_equal(s_released, 5);
    assert_int_equal(s_delivered, 2);
}

/* After a lost connection the kept chunks are handed back, the first from
 * the end of its delivered part; the ordinary ones stay queued. */
static void test_take_kept(void **state)
{
    (void)state;
    s_released = s_delivered = 0;
    queue_t *q = queue_new(100);
    const char *a = "a 1 1\nb 2 2\nc 3 3\n", *b = "d 4 4\n", *o = "o 1 1\n";
    queue_push_flags(q, a, strlen(a), 3, QUEUE_KEEP, s_rel, (void *)a);
    queue_push(q, o, strlen(o), 1, s_rel, (void *)o);
    queue_push_flags(q, b, strlen(b), 1, QUEUE_KEEP, s_rel, (void *)b);
    struct iovec iov[4];
    assert_int_equal(queue_iov(q, iov, 4, 1000), 3);
    queue_wrote(q, strlen(a) + strlen(o) + strlen(b));
    taken_t t = {0};
    /* in flight: nothing is handed back */
    assert_int_equal(queue_take_kept(q, s_take, &t), 0);
    assert_int_equal(t.n, 0);
    /* the peer had the first line and part of the second */
    queue_delivered(q, 8);
    queue_rewind(q, 0);
    assert_int_equal(queue_take_kept(q, s_take, &t), 3);
    assert_int_equal(t.n, 2);
    assert_ptr_equal(t.owner[0], a);
    assert_int_equal(t.off[0], 6);
    assert_int_equal(t.lines[0], 2);
    assert_ptr_equal(t.owner[1], b);
    assert_int_equal(t.off[1], 0);
    assert_int_equal(t.lines[1], 1);
    assert_int_equal(s_released, 0); /* handed back, not released */
    assert_int_equal(queue_lines(q), 1);
    assert_int_equal(queue_kept_lines(q), 0);
    assert_int_equal(queue_bytes(q), strlen(o));
    assert_int_equal(queue_iov(q, iov, 4, 1000), 1);
    assert_ptr_equal(iov[0].iov_base, o);
    queue_destroy(&q);
    assert_int_equal(s_released, 1);
    assert_int_equal(s_delivered, 0);
}

static void test_push_consume(void **state)
{
    (void)state;
    s_released = 0;
    queue_t *q = queue_new(10);
    assert_non_null(q);
    const char *a = "a 1 1\nb 2 2\n", *b = "c 3 3\n";
    assert_int_equal(queue_push(q, a, strlen(a), 2, s_rel, NULL), 0);
    assert_int_equal(queue_push(q, b, strlen(b), 1, s_rel, NULL), 0);
    assert_int_equal(queue_lines(q), 3);
    assert_int_equal(queue_bytes(q), strlen(a) + strlen(b));
    struct iovec iov[4];
    assert_int_equal(queue_iov(q, iov, 4, 1 << 20), 2);
    /* a partial write completes nothing */
    assert_int_equal(queue_consume(q, 3), 0);
    assert_int_equal(queue_iov(q, iov, 4, 1 << 20), 2);
    assert_int_equal(iov[0].iov_len, strlen(a) - 3);
    /* the rest of the first chunk and all of the second */
    assert_int_equal(queue_consume(q, strlen(a) - 3 + strlen(b)), 3);
    assert_int_equal(queue_lines(q), 0);
    assert_int_equal(s_released, 2);
    queue_destroy(&q);
    assert_null(q);
    queue_destroy(&q);
}

static void test_drop_oldest(void **state)
{
    (void)state;
    s_released = 0;
    queue_t *q = queue_new(4);
    const char *c = "x 1 1\ny 1 1\n";
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 0);
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 0);
    assert_false(queue_room(q, 1));
    /* a third chunk pushes out the oldest */
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 2);
    assert_int_equal(queue_lines(q), 4);
    assert_int_equal(s_released, 1);
    /* a half-written head is never dropped: the next one goes */
    queue_consume(q, 3);
    assert_int_equal(queue_push(q, c, 12, 2, s_rel, NULL), 2);
    struct iovec iov[4];
    assert_int_equal(queue_iov(q, iov, 4, 1 << 20), 2);
    assert_int_equal(iov[0].iov_len, 9);
    assert_int_equal(queue_clear(q), 4);
    assert_int_equal(s_released, 4);
    queue_destroy(&q);
}

static void test_rewind(void **state)
{
    (void)state;
    queue_t *q = queue_new(100);
    const char *c = "aa 1 1\nbb 2 2\n";
    queue_push(q, c, strlen(c), 2, NULL, NULL);
    queue_consume(q, 9); /* into the second line */
    queue_rewind(q, 0);
    struct iovec iov[2];
    assert_int_equal(queue_iov(q, iov, 2, 1 << 20), 1);
    assert_int_equal(iov[0].iov_len, 7);
    assert_memory_equal(iov[0].iov_base, "bb 2 2\n", 7);
    /* binary chunks go back to their start */
    queue_consume(q, 2);
    queue_rewind(q, 1);
    assert_int_equal(queue_bytes(q), strlen(c));
    queue_destroy(&q);
}

static void test_many_chunks_grow(void **state)
{
    (void)state;
    queue_t *q = queue_new(100000);
    const char *c = "m 1 1\n";
    for (int i = 0; i < 1000; i++)
        queue_push(q, c, 6, 1, NULL, NULL);
    assert_int_equal(queue_lines(q), 1000);
    struct iovec iov[64];
    assert_int_equal(queue_iov(q, iov, 64, 1 << 20), 64);
    assert_int_equal(queue_iov(q, iov, 64, 60), 10);
    assert_int_equal(queue_consume(q, 6000), 1000);
    queue_destroy(&q);
}

/* The delivery rule: a written chunk stays until it is delivered; a lost
 * connection writes again what was not delivered, from a line start. */
static void test_delivery(void **state)
{
    (void)state;
    s_released = 0;
    queue_t *q = queue_new(100);
    const char *a = "a.x 1 1\na.y 2 2\n", *b = "b.x 3 3\n", *c = "c.x 4 4\n";
    queue_push(q, a, strlen(a), 2, s_rel, NULL);
    queue_push(q, b, strlen(b), 1, s_rel, NULL);
    struct iovec iov[4];
    /* everything written: nothing to write, all in flight, still queued */
    queue_wrote(q, strlen(a) + strlen(b));
    assert_int_equal(queue_bytes(q), 0);
    assert_int_equal(queue_inflight(q), strlen(a) + strlen(b));
    assert_int_equal(queue_lines(q), 3);
    assert_int_equal(queue_iov(q, iov, 4, 1 << 20), 0);
    assert_int_equal(s_released, 0);
    /* the peer acknowledged a's first line and part of its second */
    assert_int_equal(queue_delivered(q, 11), 0);
    assert_int_equal(queue_inflight(q), strlen(a) + strlen(b) - 11);
    /* c joins, not written yet */
    queue_push(q, c, strlen(c), 1, s_rel, NULL);
    assert_int_equal(queue_lines(q), 4);
    /* the connection breaks: from the start of a's second line again */
    queue_rewind(q, 0);
    assert_int_equal(queue_inflight(q), 0);
    assert_int_equal(queue_bytes(q), strlen(a) - 8 + strlen(b) + strlen(c));
    assert_int_equal(queue_iov(q, iov, 4, 1 << 20), 3);
    assert_memory_equal(iov[0].iov_base, "a.y 2 2\n", 8);
    assert_memory_equal(iov[1].iov_base, b, strlen(b));
    /* written and delivered on the next connection: all released */
    queue_wrote(q, 8 + strlen(b));
    assert_int_equal(queue_delivered(q, 8), 2);
    assert_int_equal(s_released, 1);
    assert_int_equal(queue_delivered(q, strlen(b)), 1);
    /* more than is in flight: only what was written counts */
    assert_int_equal(queue_delivered(q, 1000), 0);
    assert_int_equal(queue_lines(q), 1);
    assert_int_equal(queue_consume(q, strlen(c)), 1);
    assert_int_equal(s_released, 3);
    assert_int_equal(queue_lines(q), 0);
    queue_destroy(&q);
}

/* In flight is never dropped to make room, and does not count against the
 * bound (the socket's send buffer holds as much); what was never written
 * is dropped, oldest first. */
static void test_inflight_not_dropped(void **state)
{
    (void)state;
    s_released = 0;
    queue_t *q = queue_new(2);
    const char *c = "x 1 1\n";
    queue_push(q, c, 6, 1, s_rel, NULL);
    queue_wrote(q, 6);
    assert_int_equal(queue_inflight_lines(q), 1);
    /* two more fit: the one in flight is not counted */
    assert_int_equal(queue_push(q, c, 6, 1, s_rel, NULL), 0);
    assert_int_equal(queue_push(q, c, 6, 1, s_rel, NULL), 0);
    assert_true(queue_room(q, 0));
    assert_false(queue_room(q, 1));
    /* full: the oldest unwritten goes, the one in flight stays */
    assert_int_equal(queue_push(q, c, 6, 1, s_rel, NULL), 1);
    assert_int_equal(queue_inflight(q), 6);
    assert_int_equal(queue_lines(q), 3);
    /* half written: kept too; the next unwritten goes instead */
    queue_wrote(q, 3);
    assert_int_equal(queue_push(q, c, 6, 1, s_rel, NULL), 1);
    assert_int_equal(queue_lines(q), 3);
    assert_int_equal(queue_delivered(q, 6), 1);
    assert_int_equal(queue_inflight_lines(q), 0);
    /* a lost connection puts the half-written one back: unwritten again */
    queue_rewind(q, 0);
    assert_int_equal(queue_inflight(q), 0);
    assert_int_equal(queue_bytes(q), 12);
    assert_int_equal(queue_clear(q), 2);
    queue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_consume),
        cmocka_unit_test(test_drop_oldest),
        cmocka_unit_test(test_rewind),
        cmocka_unit_test(test_many_chunks_grow),
        cmocka_unit_test(test_delivery),
        cmocka_unit_test(test_inflight_not_dropped),
        cmocka_unit_test(test_keep_not_dropped),
        cmocka_unit_test(test_take_kept),
    };
    return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
