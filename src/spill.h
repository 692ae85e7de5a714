/*
 * spill.h -- the critical datapoints of the sender's destinations: sent
 * live, spilled to the Redis buffer, replayed from it in order.
 *
 * I/O shell on the sender thread's loop, over one Redis connection
 * (src/redis.c).  Every critical chunk of a destination goes through its
 * spill stream (spill_push):
 *
 *   - live: into the destination's queue as a kept chunk (never dropped to
 *     make room), while the destination is up, holds fewer than crit_queue
 *     critical datapoints and fewer than crit_inflight unacknowledged
 *     bytes;
 *   - otherwise spilled: XADD to the stream <prefix>:buf:<cluster>:<addr>,
 *     one entry per chunk (fields n: datapoints, c and b: the stream's
 *     running totals of datapoints and bytes through this entry, kept in
 *     the hash <prefix>:tot:<cluster>:<addr> by the same script, so that
 *     both members of a pair count alike; d: the lines), pipelined; the
 *     chunk stays in memory until Redis replied with an id.  When the
 * destination goes down, the critical chunks its queue holds are taken back and
 * spilled the same way.
 *
 * While the destination is up, the backlog is read from a cursor
 * (XRANGE, exclusive of the last entry read, which is also kept in
 * <prefix>:cur:<cluster>:<addr>), at most `replay` datapoints a second,
 * into the same queue behind the live data; an entry is deleted (XDEL)
 * only once the destination acknowledged it.  Entries that were read
 * before a restart and are still there are replayed again, and counted
 * (replayed again: at most that many duplicates).  An empty stream is
 * deleted with its cursor.
 *
 * The buffer's `max` is enforced by counting (the entries' running
 * totals, read back with XINFO STREAM once a second): a spill that would
 * pass it is dropped, counted, or (when full block) held, and the sender
 * holds intake back (spill_room).  While Redis is down, slow or refusing
 * (an error reply such as OOM), chunks wait in memory, at most mem_cap
 * datapoints in all; past it the oldest that are not being written are
 * dropped, counted.
 *
 * Safe: a chunk's owner is told (safe_fn) once the chunk is delivered,
 * persisted, dropped, or waiting in memory because Redis cannot take it;
 * the sender then lets the hub acknowledge the batch it came from.
 */
#ifndef ORCHESTER_SPILL_H
#define ORCHESTER_SPILL_H

#include <ev.h>
#include <stdint.h>

#include "config.h"
#include "dest.h"
#include "stats.h"

typedef struct spill spill_t;
typedef struct spill_stream spill_stream_t;

/* A critical chunk, made by the caller.  The caller fills data, len,
 * lines, safe and release, and owns the item until spill_push; from then
 * on the spill owns it and calls safe (at most once) and release (exactly
 * once, after which it is never touched again). */
typedef struct spill_item {
    int kind;         /* the spill's own (set by spill_push) */
    const char *data; /* lines, each ending in '\n' */
    size_t len;
    uint32_t lines;
    void (*safe)(struct spill_item *it);
    void (*release)(struct spill_item *it);
    /* the spill's own */
    struct spill_item *next, *prev;
    spill_stream_t *st;
    int state;
    int safe_told;
    int stored;    /* in Redis, a replica's confirmation awaited (wait N ms) */
    int pending;   /* Redis commands whose answer will name it */
    uint64_t wseq; /* its XADD's number in its stream (wait N ms) */
} spill_item_t;

typedef struct {
    uint64_t crit_queue;  /* critical datapoints a live destination may hold */
    size_t crit_inflight; /* unacknowledged bytes past which they spill */
    uint64_t mem_cap;     /* datapoints waiting in memory for Redis, in all */
    int connect_timeout_ms, command_timeout_ms; /* Redis watchdogs */
    int backoff_min_ms, backoff_max_ms;         /* Redis reconnect */
    int refresh_ms; /* how often a stream's totals are read back */
} spill_opts_t;

void spill_opts_default(spill_opts_t *o);

/* spill_new: a buffer for cfg (copied: target, prefix, max, replay,
 * full).  Connects at once.  NULL with a message in err. */
spill_t *spill_new(struct ev_loop *loop, const config_buffer_t *cfg,
                   const spill_opts_t *o, char *err, size_t errlen);

/* spill_destroy: every item still held is released (not safe: the
 * caller reports what was lost); the streams must be gone. */
void spill_destroy(spill_t **sp);

/* spill_set: after a reload, take max, replay and full from cfg (the
 * target and prefix stay: the hub refuses a reload that changes them). */
void spill_set(spill_t *sp, const config_buffer_t *cfg);

/* spill_stream_new: the stream of destination d (borrowed; rebind with
 * spill_stream_bind when it changes), named after its cluster and
 * address. */
spill_stream_t *spill_stream_new(spill_t *sp, dest_t *d);

/* spill_stream_destroy: release what it holds in memory; returns the
 * datapoints that were neither delivered nor persisted. */
uint64_t spill_stream_destroy(spill_stream_t **st);

/* spill_stream_bind: d is the destination now. */
void spill_stream_bind(spill_stream_t *st, dest_t *d);

/* spill_push: take a critical chunk (see spill_item_t). */
void spill_push(spill_stream_t *st, spill_item_t *it);

/* spill_room: whether `lines` more critical datapoints can be taken now;
 * 0 only under `when full block` with the buffer at its max. */
int spill_room(const spill_stream_t *st, uint64_t lines);

/* spill_dest_event: the destination went up or down, or made room. */
void spill_dest_event(spill_stream_t *st);

/* spill_set_active: whether this member of an HA pair is active; only
 * the active member replays (both share one Redis).  Active until told
 * otherwise. */
void spill_set_active(spill_t *sp, int active);

/* spill_stop: the stop's drain time is over: from now on every critical
 * chunk goes to Redis, none live. */
void spill_stop(spill_t *sp);

/* spill_busy: datapoints in memory that still wait for Redis (drain). */
uint64_t spill_busy(const spill_t *sp);

/* spill_stream_stats: the stream's counters into out->buf;
 * spill_stats: the connection's into *b. */
void spill_stream_stats(const spill_stream_t *st, stats_dest_t *out);
void spill_stats(const spill_t *sp, stats_buffer_t *b);

#endif
