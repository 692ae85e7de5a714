/*
 * stats.h -- counter snapshots that threads send to the router thread.
 *
 * Threads share no counters.  Every second the ingest and sender threads
 * send a snapshot of their own counters on the stats pipe, as the messages
 * MSG_STATS_* of msg.h (inproc, same process, so the structs travel as raw
 * bytes).  The router thread keeps the latest of each and serves them to
 * orchester-ctl and the self metrics.
 */
#ifndef ORCHESTER_STATS_H
#define ORCHESTER_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "line.h"

/* Counters of one listener (cumulative since start); an ingest thread sends
 * an array of them, one per listen address in config order. */
typedef struct {
    uint64_t received;      /* datapoints accepted */
    uint64_t errors;        /* datapoints refused (parse errors), and pickle
                               frames refused or over the size limit */
    uint64_t refused;       /* connections closed at accept: over the
                               listener's connection limit, or shed when the
                               process ran out of descriptors */
    uint64_t tls_ok;        /* TLS handshakes completed (TLS listeners) */
    uint64_t tls_failed;    /* TLS handshakes that failed (no TLS, a
                               protocol below the minimum, garbage) */
    uint64_t tls_timeouts;  /* TLS handshakes not done within -E */
    uint64_t tls12, tls13;  /* completed handshakes by protocol version */
    uint64_t tls_refused;   /* of tls_failed, an mtls client whose
                               certificate was missing or did not verify */
    uint64_t decode_errors; /* compressed streams closed: corrupt, or a
                               decompression bomb */
} stats_listener_t;

/* Counters of one ingest thread (cumulative since start). */
typedef struct {
    uint64_t received;             /* lines/datapoints accepted */
    uint64_t errors[LINE_NSTATUS]; /* refused, by reason (LINE_OK unused) */
    uint64_t batches;              /* batches sent */
    uint64_t resent;               /* batches sent again (reconnect or
                                      acknowledgement timeout) */
    uint64_t refused;              /* batches a member of a pair that is
                                      not active refused (BATCH_NACK) */
    uint64_t switches;             /* changes to the other orchester of a
                                      pair */
    uint64_t window_bytes;         /* unacknowledged bytes now */
    uint64_t connections;          /* client connections open now */
    uint64_t shed;                 /* connections accepted and closed at
                                      once because descriptors ran out */
    uint64_t partial_bytes;        /* bytes held now for unfinished
                                      lines and pickle frames */
    uint64_t evicted;              /* connections closed because those
                                      bytes passed the budget (the one
                                      with the least recent progress) */
    uint64_t pickle_frames;        /* pickle frames accepted */
    uint64_t pickle_refused;       /* pickle frames refused whole */
    uint64_t pickle_toobig;        /* frames over the limit (closed) */
    uint64_t curve_failed;         /* CURVE handshakes with the orchester
                                      that failed (a wrong server key, or
                                      a key the orchester does not admit) */
} stats_ingest_t;

/* What one destination's Redis buffer holds and did (all zero when there
 * is no buffer statement).  Counters are cumulative since start. */
enum {
    SPILL_LIVE = 0,      /* critical datapoints go out live */
    SPILL_SPILLING = 1,  /* they go to Redis (down, slow, or full) */
    SPILL_REPLAYING = 2, /* up, with a backlog being replayed */
    SPILL_WAITING = 3    /* Redis cannot take them: held in memory */
};

typedef struct {
    uint64_t buffered;      /* datapoints persisted in Redis */
    uint64_t replayed;      /* datapoints delivered from Redis */
    uint64_t dropped;       /* critical datapoints dropped (memory bound,
                               buffer full, or lost at a reload or stop) */
    uint64_t again;         /* datapoints replayed a second time (read
                               before a restart or a lost connection):
                               at most that many duplicates */
    uint64_t errors;        /* Redis commands refused or not answered */
    uint64_t backlog;       /* datapoints in Redis now */
    uint64_t backlog_bytes; /* their bytes */
    uint64_t memory;        /* critical datapoints in memory waiting for
                               Redis */
    int64_t oldest_ms;      /* when the oldest entry was spilled (Unix ms),
                               0 when none */
    int64_t newest_ms;      /* and the newest */
    uint64_t rate;          /* datapoints replayed in the last second */
    uint32_t state;         /* SPILL_* */
    uint32_t on;            /* 1 when the destination has a buffer */
} stats_dbuf_t;

/* Counters of one destination (cumulative since start). */
typedef struct {
    uint64_t sent;       /* datapoints delivered: acknowledged by a TCP
                            peer, or written to a UDP socket or a file */
    uint64_t queued;     /* datapoints waiting to be written now */
    uint64_t inflight;   /* datapoints written and not yet acknowledged */
    uint64_t dropped;    /* datapoints dropped (queue full) */
    uint32_t up;         /* 1 when connected (files: open) */
    uint32_t tls_on;     /* 1 when the member's transport has TLS */
    uint32_t tls;        /* TLS version of the connection now: 12, 13, or 0 */
    uint64_t tls_ok;     /* TLS handshakes completed */
    uint64_t tls_failed; /* TLS handshakes that failed (the log says why) */
    uint64_t wire_bytes; /* bytes written to the socket (compressed,
                            encrypted) */
    uint64_t app_bytes;  /* of the stream they carry */
    uint32_t pad;        /* explicit padding */
    stats_dbuf_t buf;    /* its Redis buffer */
} stats_dest_t;

/* tests/integration/test_reload_oom.py fails a calloc of this size times
 * its destinations: change its SIZE with the struct */
_Static_assert(
    sizeof(stats_dest_t) == 184,
    "stats_dest_t's size is in tests/integration/test_reload_oom.py");

/* The Redis connection of the buffer (MSG_STATS_BUFFER). */
typedef struct {
    uint32_t on; /* 1 when there is a buffer statement */
    uint32_t up; /* 1 while Redis answers */
    uint64_t connects, connect_failures, timeouts;
    uint64_t errors;  /* commands refused or unanswered, all streams */
    uint64_t memory;  /* datapoints waiting in memory for Redis */
    uint64_t dropped; /* critical datapoints dropped, in all */
} stats_buffer_t;

/* Counters of one aggregate rule (MSG_STATS_AGGR), cumulative since
 * start; series and buckets are what is held now. */
typedef struct {
    uint64_t received; /* datapoints the rule took */
    uint64_t sent;     /* values it emitted */
    uint64_t dropped;  /* (datapoint, compute) dropped: too old, too new,
                          past a bound, out of memory, or open buckets
                          dropped when the member stopped being active */
    uint64_t series;   /* series alive */
    uint64_t buckets;  /* bucket slots held */
} stats_aggr_t;

/* stats_parse_errors: sum of the refusal counters, LINE_EMPTY excluded. */
uint64_t stats_parse_errors(const stats_ingest_t *s);

/* stats_metric_part: copy s into out, replacing every byte outside
 * [A-Za-z0-9_-] with '_' (so "127.0.0.1:2003" becomes "127_0_0_1_2003").
 * out is always NUL-terminated. */
void stats_metric_part(char *out, size_t outlen, const char *s);

#endif
