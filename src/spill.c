/*
 * spill.c -- see spill.h.
 *
 * Ownership: the spill owns the Redis connection, its streams (freed once
 * destroyed and no command of theirs is pending: refs), the items pushed to
 * it (until their release), the replay chunks it reads (rentry_t, owned by
 * the destination's queue while queued, by the spill otherwise) and the ids
 * it still has to delete (xdel_t).  It borrows the destinations.
 */
#include "spill.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "log.h"
#include "options.h"
#include "redis.h"

enum { K_LIVE = 0x5117e, K_REPLAY = 0x3e91a };  /* kinds of kept chunks */
enum { IT_WAIT = 0, IT_SENT = 1, IT_LIVE = 2 }; /* spill_item_t.state */

#define READ_COUNT  8    /* entries per XRANGE */
#define MAX_SENDING (64) /* XADDs in flight per stream */
#define IDLEN       48   /* "ms-seq" and a NUL, with room */

/* An entry id, "ms-seq". */
typedef struct {
    uint64_t ms, seq;
} sid_t;

/* A replay chunk: one entry read from the stream. */
typedef struct rentry {
    int kind; /* K_REPLAY */
    spill_stream_t *st;
    sid_t id;
    sid_t prev; /* the cursor before it */
    uint32_t lines;
    char *data; /* owned */
    size_t len;
} rentry_t;

/* An entry delivered and not deleted yet. */
typedef struct xdel {
    spill_stream_t *st;
    sid_t id;
    uint32_t lines;
    size_t len;
    int sent;
    struct xdel *next;
} xdel_t;

struct spill_stream {
    spill_t *sp;
    dest_t *d;                   /* borrowed */
    char *key, *curkey, *totkey; /* the stream, its cursor, its totals */
    int dead;                    /* destroyed: freed when refs is 0 */
    int refs;                    /* commands pending that point here */
    struct spill_stream *next;
    /* in memory, waiting for Redis: oldest first */
    spill_item_t *head, *tail;
    uint64_t mem_lines;
    int sending; /* XADDs in flight */
    /* wait N ms: one WAIT at a time, covering every XADD sent before it
     * (so that the connection is never blocked longer than N ms) */
    uint64_t wseq;       /* XADDs sent so far (each item takes the next) */
    int waiting;         /* a WAIT is out */
    uint64_t wupto;      /* the items it covers: wseq <= wupto */
    uint64_t sent_lines; /* their datapoints */
    /* the stream in Redis */
    int ready;  /* its totals were read since the connection came up */
    int asking; /* an XINFO is pending */
    int64_t asked_ms;
    uint64_t backlog, backlog_bytes;
    uint64_t entries;
    sid_t first, last; /* oldest and newest entry (0-0: none) */
    int has_stored;
    sid_t stored;   /* the cursor stored before this run */
    int got_stored; /* the GET of it was answered */
    /* replay */
    sid_t cursor; /* the last entry read (0-0: none yet) */
    int reading;  /* an XRANGE is pending */
    unsigned read_gen;
    int rewound;            /* while taking back: the cursor was set */
    uint64_t queued_replay; /* replay chunks in the destination's queue */
    double tokens;          /* replay budget, datapoints */
    int64_t tokens_ms;
    xdel_t *dels; /* delivered entries to delete, oldest first */
    /* counters */
    stats_dbuf_t c;
    uint64_t rate_base;
    int64_t rate_ms;
    int state_logged;
};

struct spill {
    struct ev_loop *loop; /* borrowed */
    spill_opts_t o;
    char *prefix;
    long long max, replay;
    int wait_ms; /* wait N ms: a replica must confirm a spill (0: not) */
    config_buffer_full_t full;
    redis_t *r; /* owned */
    spill_stream_t *streams;
    uint64_t mem_lines; /* in memory in all streams */
    uint64_t dropped;
    int refusing; /* the last XADD was refused: retry slowly */
    int64_t refused_ms;
    ev_timer tick;
    int stopping; /* spill_stop: nothing goes live any more */
    int passive;  /* a passive member of an HA pair: no replay */
    int64_t full_logged_ms;
    uint64_t full_unlogged;
};

/* ---- ids ----------------------------------------------------------------- */

static int s_sid_parse(const char *s, size_t len, sid_t *id)
{
    char buf[IDLEN];
    char *end;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    id->ms = strtoull(buf, &end, 10);
    if (*end != '-')
        return -1;
    id->seq = strtoull(end + 1, &end, 10);
    return *end ? -1 : 0;
}

static int s_sid_cmp(sid_t a, sid_t b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

static int s_sid_zero(sid_t a)
{
    return a.ms == 0 && a.seq == 0;
}

static void s_sid_fmt(sid_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

/* ---- commands ------------------------------------------------------------ */

/* Send a command whose callback gets st; counts the reference. */
static int s_cmd(spill_stream_t *st, void (*fn)(void *, redisReply *),
                 void *arg, int argc, const char **argv, const size_t *lens)
{
    if (redis_cmd(st->sp->r, fn, arg, argc, argv, lens) != 0)
        return -1;
    st->refs++;
    return 0;
}

static void s_stream_free(spill_stream_t *st);

/* A callback is done with st: drop the reference; 1 when st is gone (the
 * callback must not touch it). */
static int s_unref(spill_stream_t *st)
{
    st->refs--;
    if (st->dead && st->refs == 0) {
        s_stream_free(st);
        return 1;
    }
    return st->dead;
}

static int s_is_error(const redisReply *rp)
{
    return rp == NULL || rp->type == REDIS_REPLY_ERROR;
}

static void s_count_error(spill_stream_t *st, const redisReply *rp,
                          const char *what)
{
    st->c.errors++;
    if (rp && rp->type == REDIS_REPLY_ERROR)
        log_warn("spill: %s: %s refused: %.*s", st->key, what, (int)rp->len,
                 rp->str);
}

/* ---- items in memory ----------------------------------------------------- */

static void s_unlink(spill_stream_t *st, spill_item_t *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        st->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        st->tail = it->prev;
    it->next = it->prev = NULL;
    st->mem_lines -= it->lines;
    st->sp->mem_lines -= it->lines;
}

static void s_append(spill_stream_t *st, spill_item_t *it)
{
    it->state = IT_WAIT;
    it->st = st;
    it->prev = st->tail;
    it->next = NULL;
    if (st->tail)
        st->tail->next = it;
    else
        st->head = it;
    st->tail = it;
    st->mem_lines += it->lines;
    st->sp->mem_lines += it->lines;
}

static void s_safe(spill_item_t *it)
{
    if (!it->safe_told) {
        it->safe_told = 1;
        if (it->safe)
            it->safe(it);
    }
}

/* Drop an item (not in any list): counted, safe, released. */
static void s_drop(spill_stream_t *st, spill_item_t *it)
{
    st->c.dropped += it->lines;
    st->sp->dropped += it->lines;
    s_safe(it);
    it->release(it);
}

/* Whether Redis can take spills now. */
static int s_redis_ok(const spill_t *sp)
{
    return redis_up(sp->r) && !sp->refusing;
}

/* Log a full buffer's drops at most every 10 s. */
static void s_log_full(spill_t *sp, uint64_t lines, const char *why)
{
    int64_t now = clock_mono_ms();
    sp->full_unlogged += lines;
    if (sp->full_logged_ms && now - sp->full_logged_ms < 10000)
        return;
    log_warn("spill: %s: dropped %llu critical datapoints", why,
             (unsigned long long)sp->full_unlogged);
    sp->full_unlogged = 0;
    sp->full_logged_ms = now;
}

/* The oldest item of st that waits (is not being written), or NULL. */
static spill_item_t *s_oldest_waiting(spill_stream_t *st)
{
    spill_item_t *it = st->head;
    while (it && (it->state != IT_WAIT || it->pending > 0))
        it = it->next;
    return it;
}

/* Keep the datapoints in memory within mem_cap: drop the oldest waiting
 * items, of this stream first, then of the others. */
static void s_bound_memory(spill_t *sp, spill_stream_t *first)
{
    spill_stream_t *st = first;
    while (sp->mem_lines > sp->o.mem_cap && st) {
        spill_item_t *it = s_oldest_waiting(st);
        if (it == NULL) {
            st = st == first ? sp->streams : st->next;
            if (st == first)
                st = st->next;
            continue;
        }
        s_unlink(st, it);
        s_log_full(sp, it->lines,
                   "the memory bound (-R) was reached while Redis cannot "
                   "take them");
        s_drop(st, it);
    }
}

static void s_noop_fn(void *arg, redisReply *rp)
{
    (void)arg;
    (void)rp;
}

/* ---- live ---------------------------------------------------------------- */

static int s_would_live(const spill_stream_t *st, uint64_t lines)
{
    const dest_t *d = st->d;
    return d && !st->sp->stopping && dest_up(d) &&
           dest_kept(d) + lines <= st->sp->o.crit_queue &&
           dest_inflight_bytes(d) <= st->sp->o.crit_inflight;
}

static void s_live_release(void *owner, int delivered)
{
    spill_item_t *it = owner;
    spill_stream_t *st = it->st;
    if (!delivered) {
        /* the queue was destroyed (a reload removed the destination, or
         * the stop): lost, counted */
        st->c.dropped += it->lines;
        st->sp->dropped += it->lines;
    }
    s_safe(it);
    it->release(it);
}

static void s_go_live(spill_stream_t *st, spill_item_t *it)
{
    it->state = IT_LIVE;
    it->st = st;
    dest_push(st->d, it->data, it->len, it->lines, QUEUE_KEEP, s_live_release,
              it);
}

/* ---- spilling ------------------------------------------------------------ */

static void s_send_waiting(spill_stream_t *st);
static int s_send_wait(spill_stream_t *st);

static void s_xadd_fn(void *arg, redisReply *rp)
{
    spill_item_t *it = arg;
    spill_stream_t *st = it->st;
    spill_t *sp = st->sp;
    it->pending--;
    st->sending--;
    st->sent_lines -= it->lines;
    if (st->dead) {
        s_unlink(st, it);
        if (s_is_error(rp))
            s_drop(st, it);
        else {
            s_safe(it);
            it->release(it);
        }
        s_unref(st);
        return;
    }
    if (s_is_error(rp) || rp->type != REDIS_REPLY_STRING) {
        /* not stored: it waits in memory (and the batch may be
         * acknowledged: Redis cannot take it) */
        s_count_error(st, rp, "XADD");
        it->state = IT_WAIT;
        if (rp) {
            sp->refusing = 1;
            sp->refused_ms = clock_mono_ms();
        } else {
            /* unanswered (a frozen or killed Redis): it may have been
             * stored all the same, and is written again: at most that many
             * duplicates */
            st->c.again += it->lines;
        }
        s_safe(it);
        s_unref(st);
        return;
    }
    sp->refusing = 0;
    sid_t id;
    if (s_sid_parse(rp->str, rp->len, &id) == 0) {
        st->last = id;
        if (s_sid_zero(st->first))
            st->first = id;
    }
    st->c.buffered += it->lines;
    st->backlog += it->lines;
    st->backlog_bytes += it->len;
    st->entries++;
    if (sp->wait_ms > 0) {
        /* persisted once WAIT says a replica holds it (s_wait_fn) */
        it->stored = 1;
        if (!s_unref(st))
            s_send_wait(st);
        return;
    }
    s_unlink(st, it);
    s_safe(it);
    it->release(it);
    if (!s_unref(st))
        s_send_waiting(st);
}

/* WAIT 1 N: how many replicas hold every write before it; it confirms
 * the stored items it covers (wseq <= wupto). */
static void s_wait_fn(void *arg, redisReply *rp)
{
    spill_stream_t *st = arg;
    st->waiting = 0;
    int ok =
        st->dead || (rp && rp->type == REDIS_REPLY_INTEGER && rp->integer >= 1);
    int lost = !ok && (rp == NULL || rp->type != REDIS_REPLY_INTEGER);
    spill_item_t *next;
    for (spill_item_t *it = st->head; it; it = next) {
        next = it->next;
        if (!it->stored || it->wseq > st->wupto)
            continue;
        if (ok) {
            s_unlink(st, it);
            it->stored = 0;
            s_safe(it);
            it->release(it);
        } else if (lost) {
            /* the connection ended before a replica confirmed it: it is
             * written again (to the master a failover made), at most that
             * many duplicates */
            it->stored = 0;
            it->state = IT_WAIT;
            st->c.again += it->lines;
        }
    }
    if (lost)
        s_count_error(st, rp, "WAIT");
    if (!s_unref(st)) {
        s_send_wait(st); /* not confirmed yet, or written since */
        s_send_waiting(st);
    }
}

static int s_send_wait(spill_stream_t *st)
{
    if (st->waiting)
        return 0;
    uint64_t upto = 0;
    for (spill_item_t *it = st->head; it; it = it->next)
        if (it->stored && it->wseq > upto)
            upto = it->wseq;
    if (upto == 0)
        return 0; /* nothing stored awaits a confirmation */
    char ms[24];
    snprintf(ms, sizeof ms, "%d", st->sp->wait_ms);
    const char *argv[] = {"WAIT", "1", ms};
    size_t lens[] = {4, 1, strlen(ms)};
    if (s_cmd(st, s_wait_fn, st, 3, argv, lens) != 0)
        return -1;
    st->waiting = 1;
    st->wupto = upto;
    return 0;
}

/* Datapoints in Redis in all streams, and on their way there. */
static uint64_t s_backlog_all(const spill_t *sp)
{
    uint64_t n = 0;
    for (const spill_stream_t *st = sp->streams; st; st = st->next) {
        n += st->backlog;
        n += st->sent_lines;
    }
    return n;
}

static uint64_t s_sent_all(const spill_t *sp)
{
    uint64_t n = 0;
    for (const spill_stream_t *st = sp->streams; st; st = st->next)
        n += st->sent_lines;
    return n;
}

/* Send the waiting items, in order, as far as the pipeline allows. */
static void s_send_waiting(spill_stream_t *st)
{
    spill_t *sp = st->sp;
    if (!st->ready || !redis_up(sp->r))
        return;
    if (sp->refusing && clock_mono_ms() - sp->refused_ms < sp->o.refresh_ms)
        return;
    spill_item_t *next;
    for (spill_item_t *it = st->head; it && st->sending < MAX_SENDING;
         it = next) {
        next = it->next;
        if (it->state != IT_WAIT || it->pending > 0)
            continue;
        if (sp->max > 0 && s_backlog_all(sp) + it->lines > (uint64_t)sp->max) {
            /* it would pass max: the choice decides (block: spill_room
             * keeps new ones out; what is here already waits) */
            if (sp->full == BUFFER_FULL_BLOCK)
                break;
            s_unlink(st, it);
            s_log_full(sp, it->lines, "the buffer is full (max)");
            s_drop(st, it);
            continue;
        }
        /* the running totals are kept in Redis (the totals key), so that
         * every writer of the stream (both members of a pair) counts
         * alike; HINCRBY comes first: refused at maxmemory, nothing is
         * written */
        static const char script[] =
            "local c = redis.call('HINCRBY', KEYS[2], 'n', ARGV[1]) "
            "local b = redis.call('HINCRBY', KEYS[2], 'b', ARGV[2]) "
            "return redis.call('XADD', KEYS[1], '*', 'n', ARGV[1], 'c', c, "
            "'b', b, 'd', ARGV[3])";
        char n[24], b[24];
        snprintf(n, sizeof n, "%u", it->lines);
        snprintf(b, sizeof b, "%zu", it->len);
        const char *argv[] = {"EVAL",     script, "2", st->key,
                              st->totkey, n,      b,   it->data};
        size_t lens[] = {4,
                         sizeof script - 1,
                         1,
                         strlen(st->key),
                         strlen(st->totkey),
                         strlen(n),
                         strlen(b),
                         it->len};
        if (s_cmd(st, s_xadd_fn, it, 8, argv, lens) != 0)
            break;
        it->pending++;
        it->wseq = ++st->wseq;
        it->state = IT_SENT;
        st->sending++;
        st->sent_lines += it->lines;
        if (sp->refusing)
            break; /* one probe at a time while Redis refuses */
    }
}

/* ---- replay -------------------------------------------------------------- */

static void s_read(spill_stream_t *st, int64_t now);

static void s_xdel_fn(void *arg, redisReply *rp)
{
    xdel_t *x = arg;
    spill_stream_t *st = x->st;
    if (st->dead) {
        free(x);
        s_unref(st);
        return;
    }
    if (s_is_error(rp)) {
        s_count_error(st, rp, "XDEL");
        x->sent = 0; /* again later */
        x->next = st->dels;
        st->dels = x;
    } else {
        if (rp->type == REDIS_REPLY_INTEGER && rp->integer > 0) {
            st->backlog -= st->backlog >= x->lines ? x->lines : st->backlog;
            st->backlog_bytes -=
                st->backlog_bytes >= x->len ? x->len : st->backlog_bytes;
            if (st->entries)
                st->entries--;
            if (st->backlog == 0)
                st->asked_ms = 0; /* read it back soon: delete it if empty */
        }
        free(x);
    }
    s_unref(st);
}

static void s_send_dels(spill_stream_t *st)
{
    while (st->dels && redis_up(st->sp->r)) {
        xdel_t *x = st->dels;
        char id[IDLEN];
        s_sid_fmt(x->id, id, sizeof id);
        const char *argv[] = {"XDEL", st->key, id};
        size_t lens[] = {4, strlen(st->key), strlen(id)};
        if (s_cmd(st, s_xdel_fn, x, 3, argv, lens) != 0)
            break;
        st->dels = x->next;
        x->sent = 1;
    }
}

static void s_replay_release(void *owner, int delivered)
{
    rentry_t *re = owner;
    spill_stream_t *st = re->st;
    st->queued_replay--;
    if (delivered) {
        st->c.replayed += re->lines;
        xdel_t *x = calloc(1, sizeof *x);
        if (x) {
            *x = (xdel_t){st, re->id, re->lines, re->len, 0, NULL};
            /* oldest first: append */
            xdel_t **pp = &st->dels;
            while (*pp)
                pp = &(*pp)->next;
            *pp = x;
            s_send_dels(st);
        }
    } else if (!st->dead) {
        /* dropped from the queue: read it again later */
        if (s_sid_cmp(re->prev, st->cursor) < 0)
            st->cursor = re->prev;
        st->read_gen++;
    }
    free(re->data);
    free(re);
}

/* Count the complete lines of d; -1 when it does not end in '\n'. */
static long s_lines(const char *d, size_t len)
{
    long n = 0;
    if (len == 0 || d[len - 1] != '\n')
        return -1;
    for (size_t i = 0; i < len; i++)
        n += d[i] == '\n';
    return n;
}

/* One entry of an XRANGE answer: [id, [field, value, ...]]. */
static int s_entry(const redisReply *e, sid_t *id, const redisReply **data)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY ||
        s_sid_parse(e->element[0]->str, e->element[0]->len, id) != 0)
        return -1;
    const redisReply *f = e->element[1];
    *data = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING &&
            f->element[i]->len == 1 && f->element[i]->str[0] == 'd' &&
            f->element[i + 1]->type == REDIS_REPLY_STRING)
            *data = f->element[i + 1];
    return 0;
}

/* An entry that cannot be replayed: deleted, counted, logged. */
static void s_corrupt(spill_stream_t *st, sid_t id)
{
    char buf[IDLEN];
    s_sid_fmt(id, buf, sizeof buf);
    log_err("spill: %s: entry %s is not lines this version wrote: deleted",
            st->key, buf);
    st->c.errors++;
    xdel_t *x = calloc(1, sizeof *x);
    if (x) {
        *x = (xdel_t){st, id, 0, 0, 0, st->dels};
        st->dels = x;
    }
}

typedef struct {
    spill_stream_t *st;
    unsigned gen;
} readctx_t;

static void s_xrange_fn(void *arg, redisReply *rp)
{
    readctx_t *rc = arg;
    spill_stream_t *st = rc->st;
    unsigned gen = rc->gen;
    free(rc);
    st->reading = 0;
    if (st->dead) {
        s_unref(st);
        return;
    }
    if (s_is_error(rp) || rp->type != REDIS_REPLY_ARRAY) {
        s_count_error(st, rp, "XRANGE");
        s_unref(st);
        return;
    }
    /* a take-back or a drop moved the cursor since: read again */
    int stale = gen != st->read_gen || !st->d || !dest_up(st->d);
    sid_t last = st->cursor;
    for (size_t i = 0; !stale && i < rp->elements; i++) {
        sid_t id;
        const redisReply *data;
        if (s_entry(rp->element[i], &id, &data) != 0)
            continue;
        long lines = data ? s_lines(data->str, data->len) : -1;
        if (lines <= 0) {
            s_corrupt(st, id);
            last = id;
            continue;
        }
        rentry_t *re = calloc(1, sizeof *re);
        char *copy = re ? malloc(data->len) : NULL;
        if (copy == NULL) {
            free(re);
            break; /* read it again later */
        }
        memcpy(copy, data->str, data->len);
        *re = (rentry_t){K_REPLAY,        st,   id,       last,
                         (uint32_t)lines, copy, data->len};
        if (st->has_stored && s_sid_cmp(id, st->stored) <= 0)
            st->c.again += (uint64_t)lines;
        st->tokens -= (double)lines;
        st->queued_replay++;
        last = id;
        st->cursor = id;
        dest_push(st->d, re->data, re->len, re->lines, QUEUE_KEEP,
                  s_replay_release, re);
    }
    if (!stale && s_sid_cmp(last, st->cursor) >= 0 && !s_sid_zero(last)) {
        st->cursor = last;
        char id[IDLEN];
        s_sid_fmt(last, id, sizeof id);
        const char *argv[] = {"SET", st->curkey, id};
        size_t lens[] = {3, strlen(st->curkey), strlen(id)};
        redis_cmd(st->sp->r, s_noop_fn, NULL, 3, argv, lens);
    }
    s_send_dels(st);
    if (!s_unref(st) && !stale)
        s_read(st, clock_mono_ms()); /* more, as the budget allows */
}

/* Read the next entries when the destination is up and has room, within
 * the replay rate. */
static void s_read(spill_stream_t *st, int64_t now)
{
    spill_t *sp = st->sp;
    double burst = (double)sp->replay / 5.0 + READ_COUNT;
    st->tokens += (double)(now - st->tokens_ms) * (double)sp->replay / 1000.0;
    st->tokens_ms = now;
    if (st->tokens > burst)
        st->tokens = burst;
    if (st->reading || !st->ready || st->backlog == 0 || st->tokens <= 0 ||
        sp->passive || !st->d || !dest_up(st->d) || !redis_up(sp->r) ||
        dest_kept(st->d) > sp->o.crit_queue / 2)
        return;
    /* the entries after the last one read, or in flight: not re-read
     * while any of them is queued (a new read after a take-back starts
     * from the cursor it set) */
    readctx_t *rc = malloc(sizeof *rc);
    if (rc == NULL)
        return;
    rc->st = st;
    rc->gen = st->read_gen;
    char start[IDLEN + 1] = "-", count[24];
    if (!s_sid_zero(st->cursor)) {
        start[0] = '(';
        s_sid_fmt(st->cursor, start + 1, sizeof start - 1);
    }
    /* fewer entries while the budget is small: one at the least */
    long k = (long)(st->tokens / 1000.0) + 1;
    snprintf(count, sizeof count, "%ld", k < READ_COUNT ? k : READ_COUNT);
    const char *argv[] = {"XRANGE", st->key, start, "+", "COUNT", count};
    size_t lens[] = {6, strlen(st->key), strlen(start), 1, 5, strlen(count)};
    if (s_cmd(st, s_xrange_fn, rc, 6, argv, lens) != 0) {
        free(rc);
        return;
    }
    st->reading = 1;
}

/* ---- the stream's totals ------------------------------------------------- */

/* A field of a flat [name, value, ...] array, or NULL. */
static const redisReply *s_field(const redisReply *a, const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; a && i + 1 < a->elements; i += 2)
        if (a->element[i]->type == REDIS_REPLY_STRING &&
            a->element[i]->len == l && memcmp(a->element[i]->str, name, l) == 0)
            return a->element[i + 1];
    return NULL;
}

static uint64_t s_num(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING) {
        char buf[32];
        size_t l = r->len < sizeof buf - 1 ? r->len : sizeof buf - 1;
        memcpy(buf, r->str, l);
        buf[l] = 0;
        return strtoull(buf, NULL, 10);
    }
    return 0;
}

/* An entry's id and numeric fields n, c, b, and the length of d. */
static int s_entry_totals(const redisReply *e, sid_t *id, uint64_t *n,
                          uint64_t *c, uint64_t *b, size_t *dlen)
{
    const redisReply *data;
    if (e == NULL || s_entry(e, id, &data) != 0)
        return -1;
    const redisReply *f = e->element[1];
    *n = s_num(s_field(f, "n"));
    *c = s_num(s_field(f, "c"));
    *b = s_num(s_field(f, "b"));
    *dlen = data ? data->len : 0;
    return 0;
}

static void s_delete_if_empty(spill_stream_t *st)
{
    static const char script[] =
        "if redis.call('XLEN', KEYS[1]) == 0 then "
        "return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) end return 0";
    const char *argv[] = {"EVAL", script, "3", st->key, st->curkey, st->totkey};
    size_t lens[] = {4,
                     sizeof script - 1,
                     1,
                     strlen(st->key),
                     strlen(st->curkey),
                     strlen(st->totkey)};
    redis_cmd(st->sp->r, s_noop_fn, NULL, 6, argv, lens);
}

static void s_xinfo_fn(void *arg, redisReply *rp)
{
    spill_stream_t *st = arg;
    st->asking = 0;
    if (st->dead) {
        s_unref(st);
        return;
    }
    if (rp && rp->type == REDIS_REPLY_ERROR) {
        /* no such key: an empty stream */
        st->backlog = st->backlog_bytes = st->entries = 0;
        st->first = st->last = (sid_t){0, 0};
        st->ready = 1;
    } else if (rp && rp->type == REDIS_REPLY_ARRAY) {
        st->entries = s_num(s_field(rp, "length"));
        sid_t fid, lid;
        uint64_t fn, fc, fb, ln, lc, lb;
        size_t fl, ll;
        if (st->entries > 0 &&
            s_entry_totals(s_field(rp, "first-entry"), &fid, &fn, &fc, &fb,
                           &fl) == 0 &&
            s_entry_totals(s_field(rp, "last-entry"), &lid, &ln, &lc, &lb,
                           &ll) == 0) {
            st->first = fid;
            st->last = lid;
            st->backlog = lc >= fc ? lc - fc + fn : fn;
            st->backlog_bytes = lb >= fb ? lb - fb + fl : fl;
        } else {
            st->backlog = st->backlog_bytes = 0;
            st->first = st->last = (sid_t){0, 0};
            if (st->entries == 0 && st->sending == 0 &&
                st->queued_replay == 0 && st->dels == NULL)
                s_delete_if_empty(st);
        }
        st->ready = 1;
    }
    s_unref(st);
}

static void s_get_fn(void *arg, redisReply *rp)
{
    spill_stream_t *st = arg;
    if (!st->dead && rp && rp->type == REDIS_REPLY_STRING &&
        s_sid_parse(rp->str, rp->len, &st->stored) == 0)
        st->has_stored = 1;
    if (!st->dead && rp)
        st->got_stored = 1;
    s_unref(st);
}

/* Read the stream's totals back: at the start of each connection (before
 * anything is spilled on it), then every refresh_ms while it holds
 * anything. */
static void s_ask(spill_stream_t *st, int64_t now)
{
    spill_t *sp = st->sp;
    if (st->asking || !redis_up(sp->r))
        return;
    if (st->ready && (now - st->asked_ms < sp->o.refresh_ms ||
                      (st->entries == 0 && st->backlog == 0 &&
                       st->sending == 0 && now - st->asked_ms < 10000)))
        return;
    if (!st->got_stored) {
        const char *gv[] = {"GET", st->curkey};
        size_t gl[] = {3, strlen(st->curkey)};
        s_cmd(st, s_get_fn, st, 2, gv, gl);
    }
    const char *argv[] = {"XINFO", "STREAM", st->key};
    size_t lens[] = {5, 6, strlen(st->key)};
    if (s_cmd(st, s_xinfo_fn, st, 3, argv, lens) == 0) {
        st->asking = 1;
        st->asked_ms = now;
    }
}

/* ---- the loop ------------------------------------------------------------ */

static void s_log_state(spill_stream_t *st)
{
    int s = st->c.state;
    if (s == st->state_logged)
        return;
    if (s == SPILL_SPILLING)
        log_warn("spill: %s: the destination is %s: critical datapoints go "
                 "to Redis",
                 st->key, st->d && dest_up(st->d) ? "slow" : "down");
    else if (s == SPILL_REPLAYING)
        log_info("spill: %s: replaying %llu datapoints", st->key,
                 (unsigned long long)st->backlog);
    else if (s == SPILL_WAITING)
        log_warn("spill: %s: Redis cannot take critical datapoints: %llu "
                 "held in memory",
                 st->key, (unsigned long long)st->mem_lines);
    else if (st->state_logged == SPILL_REPLAYING)
        log_info("spill: %s: replay done", st->key);
    st->state_logged = s;
}

static void s_pump(spill_stream_t *st, int64_t now)
{
    spill_t *sp = st->sp;
    /* waiting items go out live once the destination takes them again */
    while (st->head && st->head->state == IT_WAIT && st->head->pending == 0 &&
           s_would_live(st, st->head->lines)) {
        spill_item_t *it = st->head;
        s_unlink(st, it);
        s_go_live(st, it);
    }
    s_ask(st, now);
    s_send_waiting(st);
    s_send_dels(st);
    s_read(st, now);
    if (now - st->rate_ms >= 1000) {
        st->c.rate = st->c.replayed - st->rate_base;
        st->rate_base = st->c.replayed;
        st->rate_ms = now;
    }
    if (st->mem_lines > 0 && !s_redis_ok(sp))
        st->c.state = SPILL_WAITING;
    else if (st->mem_lines > 0 || !st->d || !dest_up(st->d))
        st->c.state =
            st->mem_lines || st->backlog ? SPILL_SPILLING : SPILL_LIVE;
    else if (st->backlog > 0)
        st->c.state = SPILL_REPLAYING;
    else
        st->c.state = SPILL_LIVE;
    s_log_state(st);
}

static void s_tick_fn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    spill_t *sp = t->data;
    int64_t now = clock_mono_ms();
    for (spill_stream_t *st = sp->streams; st; st = st->next)
        s_pump(st, now);
}

static void s_redis_state_fn(void *arg, int up, const char *why)
{
    spill_t *sp = arg;
    (void)why;
    for (spill_stream_t *st = sp->streams; st; st = st->next) {
        st->ready = 0; /* read the totals again: Redis may have restarted */
        st->got_stored = st->has_stored;
        if (!up)
            for (spill_item_t *it = st->head; it; it = it->next)
                s_safe(it);
    }
    if (up)
        sp->refusing = 0;
    ev_feed_event(sp->loop, &sp->tick, EV_TIMER);
}

/* ---- public -------------------------------------------------------------- */

void spill_opts_default(spill_opts_t *o)
{
    o->crit_queue = (uint64_t)opt_default(OPT_CRIT_QUEUE);
    o->crit_inflight = (size_t)opt_default(OPT_CRIT_INFLIGHT);
    o->mem_cap = (uint64_t)opt_default(OPT_CRIT_MEMORY);
    o->connect_timeout_ms = (int)opt_default(OPT_REDIS_CONNECT);
    o->command_timeout_ms = (int)opt_default(OPT_REDIS_COMMAND);
    o->backoff_min_ms = (int)opt_default(OPT_BACKOFF_MIN);
    o->backoff_max_ms = (int)opt_default(OPT_BACKOFF_MAX);
    o->refresh_ms = (int)opt_default(OPT_BUFFER_REFRESH);
}

spill_t *spill_new(struct ev_loop *loop, const config_buffer_t *cfg,
                   const spill_opts_t *o, char *err, size_t errlen)
{
    spill_t *sp = calloc(1, sizeof *sp);
    if (sp == NULL || !(sp->prefix = strdup(cfg->prefix))) {
        free(sp);
        snprintf(err, errlen, "spill: out of memory");
        return NULL;
    }
    sp->loop = loop;
    sp->o = *o;
    spill_set(sp, cfg);
    redis_opts_t ro;
    redis_opts_default(&ro);
    ro.connect_timeout_ms = o->connect_timeout_ms;
    ro.command_timeout_ms = o->command_timeout_ms;
    ro.backoff_min_ms = o->backoff_min_ms;
    ro.backoff_max_ms = o->backoff_max_ms;
    sp->r =
        redis_new(loop, cfg->target, &ro, s_redis_state_fn, sp, err, errlen);
    if (sp->r == NULL) {
        free(sp->prefix);
        free(sp);
        return NULL;
    }
    ev_timer_init(&sp->tick, s_tick_fn, 0.05, 0.05);
    sp->tick.data = sp;
    ev_timer_start(loop, &sp->tick);
    return sp;
}

void spill_set(spill_t *sp, const config_buffer_t *cfg)
{
    sp->max = cfg->max;
    sp->replay = cfg->replay;
    sp->wait_ms = cfg->wait_ms;
    sp->full = cfg->full;
}

void spill_destroy(spill_t **psp)
{
    if (psp == NULL || *psp == NULL)
        return;
    spill_t *sp = *psp;
    ev_timer_stop(sp->loop, &sp->tick);
    /* pending callbacks run (with no answer) and drop their references */
    redis_destroy(&sp->r);
    while (sp->streams) {
        spill_stream_t *st = sp->streams;
        sp->streams = st->next;
        st->next = NULL;
        s_stream_free(st);
    }
    free(sp->prefix);
    free(sp);
    *psp = NULL;
}

spill_stream_t *spill_stream_new(spill_t *sp, dest_t *d)
{
    spill_stream_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    const router_dest_t *rd = dest_info(d);
    size_t l =
        strlen(sp->prefix) + strlen(rd->cluster->name) + strlen(rd->addr) + 16;
    st->key = malloc(l);
    st->curkey = malloc(l);
    st->totkey = malloc(l);
    if (!st->key || !st->curkey || !st->totkey) {
        free(st->key);
        free(st->curkey);
        free(st->totkey);
        free(st);
        return NULL;
    }
    snprintf(st->key, l, "%s:buf:%s:%s", sp->prefix, rd->cluster->name,
             rd->addr);
    snprintf(st->curkey, l, "%s:cur:%s:%s", sp->prefix, rd->cluster->name,
             rd->addr);
    snprintf(st->totkey, l, "%s:tot:%s:%s", sp->prefix, rd->cluster->name,
             rd->addr);
    st->sp = sp;
    st->d = d;
    st->c.on = 1;
    st->tokens_ms = st->rate_ms = clock_mono_ms();
    st->state_logged = SPILL_LIVE;
    st->next = sp->streams;
    sp->streams = st;
    return st;
}

/* Free a stream that no command points to any more. */
static void s_stream_free(spill_stream_t *st)
{
    while (st->head) {
        spill_item_t *it = st->head;
        s_unlink(st, it);
        it->release(it);
    }
    while (st->dels) {
        xdel_t *x = st->dels;
        st->dels = x->next;
        free(x);
    }
    free(st->key);
    free(st->curkey);
    free(st->totkey);
    free(st);
}

uint64_t spill_stream_destroy(spill_stream_t **pst)
{
    if (pst == NULL || *pst == NULL)
        return 0;
    spill_stream_t *st = *pst;
    spill_t *sp = st->sp;
    *pst = NULL;
    for (spill_stream_t **pp = &sp->streams; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    /* what waits (not being written) is lost; what is being written is
     * released when Redis answers */
    uint64_t lost = 0;
    for (spill_item_t *it = st->head; it;) {
        spill_item_t *next = it->next;
        if (it->state == IT_WAIT) {
            lost += it->lines;
            s_unlink(st, it);
            s_drop(st, it);
        }
        it = next;
    }
    if (st->backlog)
        log_warn("spill: %s: the destination left the configuration with "
                 "%llu datapoints in its buffer: they stay in Redis, not "
                 "replayed",
                 st->key, (unsigned long long)st->backlog);
    st->d = NULL;
    st->dead = 1;
    if (st->refs == 0)
        s_stream_free(st);
    return lost;
}

void spill_stream_bind(spill_stream_t *st, dest_t *d)
{
    st->d = d;
}

void spill_push(spill_stream_t *st, spill_item_t *it)
{
    spill_t *sp = st->sp;
    it->kind = K_LIVE;
    it->st = st;
    it->safe_told = 0;
    /* live, unless it must wait behind what waits already */
    if (st->head == NULL && s_would_live(st, it->lines)) {
        s_go_live(st, it);
        return;
    }
    s_append(st, it);
    if (!s_redis_ok(sp))
        s_safe(it); /* Redis cannot take it: it waits in memory */
    s_bound_memory(sp, st);
    s_send_waiting(st);
}

int spill_room(const spill_stream_t *st, uint64_t lines)
{
    const spill_t *sp = st->sp;
    if (sp->full != BUFFER_FULL_BLOCK || sp->max <= 0 ||
        (st->head == NULL && s_would_live(st, lines)))
        return 1;
    return s_backlog_all(sp) + (sp->mem_lines - s_sent_all(sp)) + lines <=
           (uint64_t)sp->max;
}

/* A kept chunk the destination gave back (it went down). */
static void s_take_fn(void *arg, void *owner, size_t off, uint32_t lines)
{
    spill_stream_t *st = arg;
    int kind = *(int *)owner;
    if (kind == K_REPLAY) {
        rentry_t *re = owner;
        st->queued_replay--;
        if (!st->rewound) {
            /* read again from here once the destination is back */
            st->cursor = re->prev;
            st->rewound = 1;
            st->read_gen++;
        }
        if (off > 0 || lines == 0)
            st->c.again += re->lines; /* part of it may have arrived */
        free(re->data);
        free(re);
        return;
    }
    spill_item_t *it = owner;
    if (off > 0) {
        it->data += off;
        it->len -= off;
        it->lines = lines;
    }
    s_append(st, it);
    if (!s_redis_ok(st->sp))
        s_safe(it);
}

void spill_dest_event(spill_stream_t *st)
{
    if (st->d && !dest_up(st->d) && dest_kept(st->d) > 0) {
        st->rewound = 0;
        dest_take_kept(st->d, s_take_fn, st);
        s_bound_memory(st->sp, st);
        s_send_waiting(st);
    }
}

void spill_set_active(spill_t *sp, int active)
{
    if (sp->passive == !active)
        return;
    sp->passive = !active;
    /* read every stream's totals back now: the other member may have
     * spilled into them */
    for (spill_stream_t *st = sp->streams; st; st = st->next)
        st->asked_ms = 0;
    log_info("spill: %s", active ? "this member is active: it replays the "
                                   "buffer"
                                 : "this member is passive: the active "
                                   "member replays the buffer");
}

void spill_stop(spill_t *sp)
{
    sp->stopping = 1;
}

uint64_t spill_busy(const spill_t *sp)
{
    return redis_up(sp->r) ? sp->mem_lines : 0;
}

void spill_stream_stats(const spill_stream_t *st, stats_dest_t *out)
{
    out->buf = st->c;
    out->buf.backlog = st->backlog;
    out->buf.backlog_bytes = st->backlog_bytes;
    out->buf.memory = st->mem_lines;
    out->buf.oldest_ms = st->backlog ? (int64_t)st->first.ms : 0;
    out->buf.newest_ms = st->backlog ? (int64_t)st->last.ms : 0;
}

void spill_stats(const spill_t *sp, stats_buffer_t *b)
{
    redis_stats_t rs;
    redis_stats(sp->r, &rs);
    memset(b, 0, sizeof *b);
    b->on = 1;
    b->up = (uint32_t)redis_up(sp->r);
    b->connects = rs.connects;
    b->connect_failures = rs.connect_failures;
    b->timeouts = rs.timeouts;
    /* commands refused or unanswered, as the streams count them (not
     * every error reply: "no such key" for a stream not made yet is an
     * answer) */
    for (const spill_stream_t *st = sp->streams; st; st = st->next)
        b->errors += st->c.errors;
    b->memory = sp->mem_lines;
    b->dropped = sp->dropped;
}
