/*
 * msg.h -- the messages between the threads of one process.
 *
 * Pure core (the layouts, and a few helpers that send and check them).  Every
 * message between the ingest, router (hub) and sender threads, and on the
 * control pipes from main, starts with a msg_hdr_t frame: a type byte, the
 * configuration generation it belongs to, and a count.  The frames are raw
 * struct bytes: these messages never leave the process (inproc), unlike the
 * satellite protocol of batch.h, which is big-endian on the wire.
 * tests/test_msg.c pins the layouts.  docs/architecture.rst describes who
 * sends what, and the ownership rules below.
 *
 *   type            from -> to             frames after the header frame
 *   MSG_STOP        main -> ingest, hub    none (the sender stops after
 *                                          MSG_DRAIN; main says STOP to it
 *                                          only if the hub never started)
 *   MSG_RELOAD      main -> hub            none (re-read the config file)
 *   MSG_DRAIN       hub -> sender          none (write what is queued, end)
 *   MSG_ROUTED      hub -> sender          the header frame carries count
 *                                          msg_part_t after the header; then
 *                                          count frames of lines, one each
 *   MSG_SWITCH      hub -> sender          one frame: a const router_t * of
 *                                          generation gen (see below)
 *   MSG_RETIRED     sender -> hub          none: every generation below gen
 *                                          is no longer used by the sender
 *   MSG_DEST_STATE  sender -> hub          one frame: a msg_dest_state_t
 *   MSG_STATS_SENDER sender -> hub         one frame: count stats_dest_t
 *   MSG_STATS_INGEST ingest -> hub         one frame: a stats_ingest_t
 *   MSG_STATS_LISTENERS ingest -> hub      one frame: count stats_listener_t
 *   MSG_CRITICAL_DONE sender -> hub        one frame: count uint64_t tokens
 *                                          (see msg_part_t)
 *   MSG_STATS_BUFFER sender -> hub         one frame: a stats_buffer_t
 *   MSG_HA_STATE    hub -> sender          none: count is 1 when this member
 *                                          of an HA pair is active (it
 *                                          replays the shared buffer), 0
 *                                          when not; also hub ->
 *                                          aggregator (src/aggregator.h)
 *   MSG_AGGR_DEFS   hub -> aggregator      one frame: an aggregator_defs_t
 *                                          * of generation gen, passed
 *                                          (the aggregator frees it)
 *   MSG_AGGR_DATA   hub -> aggregator      one frame of records
 *                                          (aggregator_rec_t, names)
 *   MSG_AGGR_OUT    aggregator -> hub      count: the aggregate rule of
 *                                          generation gen; one frame of
 *                                          lines "NAME VALUE TS\n"
 *   MSG_AGGR_DONE   aggregator -> hub      none: it emitted what it had at
 *                                          MSG_STOP, and ends
 *   MSG_STATS_AGGR  aggregator -> hub      one frame: count stats_aggr_t
 *
 * Generations: the configuration the process started with is generation 0;
 * each reload that the hub accepts is the next.  Destination ids are only
 * meaningful within one generation, so every message that names a
 * destination carries its generation, and a receiver drops what belongs to a
 * generation other than the one it is on (a stale snapshot or event).
 *
 * Ownership across threads: a MSG_SWITCH lends the router of generation gen
 * (and the configuration it was built from) to the sender.  The hub frees a
 * generation only after the sender said MSG_RETIRED with a higher gen: by
 * then no destination of the sender points into it.  Every other message
 * carries its data by value (zmq owns the bytes), so nothing a thread
 * receives points into memory that another thread may free.
 */
#ifndef ORCHESTER_MSG_H
#define ORCHESTER_MSG_H

#include <stddef.h>
#include <stdint.h>

enum {
    MSG_STOP = 1,
    MSG_RELOAD = 2,
    MSG_DRAIN = 3,
    MSG_ROUTED = 4,
    MSG_SWITCH = 5,
    MSG_RETIRED = 6,
    MSG_DEST_STATE = 7,
    MSG_STATS_SENDER = 8,
    MSG_STATS_INGEST = 9,
    MSG_STATS_LISTENERS = 10,
    MSG_CRITICAL_DONE = 11,
    MSG_STATS_BUFFER = 12,
    MSG_HA_STATE = 13,
    MSG_AGGR_DEFS = 14,
    MSG_AGGR_DATA = 15,
    MSG_AGGR_OUT = 16,
    MSG_AGGR_DONE = 17,
    MSG_STATS_AGGR = 18,
    MSG_NTYPES
};

/* The first frame of every message (16 bytes). */
typedef struct {
    uint8_t type;   /* MSG_* */
    uint8_t pad[3]; /* zero */
    uint32_t count; /* parts, elements or 0, as the type says */
    uint64_t gen;   /* configuration generation (0: the first) */
} msg_hdr_t;

/* One part of a MSG_ROUTED: a chunk of lines for one destination.
 * token is 0 for ordinary datapoints.  A chunk of critical datapoints
 * carries the token of the batch it came from (the same in every critical
 * part of one message, never 0): once each critical chunk of the message
 * is delivered, persisted in the Redis buffer, or dropped (counted), the
 * sender says MSG_CRITICAL_DONE with the token, and only then does the hub
 * acknowledge the batch. */
typedef struct {
    uint32_t id;    /* destination id in generation gen */
    uint32_t lines; /* datapoints in the chunk */
    uint64_t token; /* 0, or the batch of a critical chunk */
} msg_part_t;

/* A destination went up or down (MSG_DEST_STATE). */
typedef struct {
    uint32_t id; /* destination id in generation gen */
    uint32_t up; /* 1 connected (files: open), 0 down */
} msg_dest_state_t;

/* msg_send: send a message of header h and, when len > 0, one more frame
 * of len bytes at data (copied).  flags as zmq_send (ZMQ_DONTWAIT or 0).
 * Returns 0, or -1 with zmq's errno.  Any thread, on a socket it owns. */
int msg_send(void *sock, uint8_t type, uint64_t gen, uint32_t count,
             const void *data, size_t len, int flags);

/* msg_send_ctl: a message of the header alone (STOP, RELOAD, DRAIN,
 * RETIRED). */
int msg_send_ctl(void *sock, uint8_t type, uint64_t gen, int flags);

/* msg_hdr_parse: check a received first frame of len bytes: returns the
 * header in *h and the bytes after it in *extra (0 when none), or -1 when
 * the frame is too short or its type unknown.  Pure. */
int msg_hdr_parse(const void *frame, size_t len, msg_hdr_t *h, size_t *extra);

/* msg_recv_ctl: receive one message (non-blocking) on sock and return its
 * type, or -1 when there is none or it is malformed; the frames of a
 * malformed or unexpected multipart message are discarded.  For control
 * pipes, whose messages are a header alone. */
int msg_recv_ctl(void *sock, msg_hdr_t *h);

/* msg_discard_rest: receive and drop the remaining frames of a multipart
 * message whose first frame was taken. */
void msg_discard_rest(void *sock);

#endif
