/*
 * retry.h -- how a connection is tried again, and how its failures are
 * logged: exponential backoff with jitter, and at most one failure line per
 * interval with a count of those left out.
 *
 * Pure core (the caller passes the time).  Used by the destination writers
 * (src/dest.c) and the Redis connection (src/redis.c).
 */
#ifndef ORCHESTER_RETRY_H
#define ORCHESTER_RETRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int min_ms, max_ms;  /* first and longest delay */
    int lo_pct, hi_pct;  /* each delay is taken times lo..hi percent */
    int log_interval_ms; /* at most one failure line per */
    int attempts;        /* failures since the last stable connection */
    unsigned int seed;   /* jitter */
    int64_t log_next_ms; /* no failure line before then (0: now) */
    uint64_t unlogged;   /* failures not logged since the last line */
} retry_t;

/* retry_init: no failures yet. */
void retry_init(retry_t *r, int min_ms, int max_ms, int lo_pct, int hi_pct,
                int log_interval_ms, unsigned int seed);

/* retry_delay: the delay before the next attempt (min_ms doubled per
 * failure in a row, at most max_ms, then jittered; at least 1), and one
 * more failure counted. */
int64_t retry_delay(retry_t *r);

/* retry_may_log: whether a failure line may be logged now (then the quiet
 * interval starts again); when not, the failure is counted for the next
 * line. */
int retry_may_log(retry_t *r, int64_t now);

/* retry_unlogged: the suffix of a failure line that counts the failures
 * not logged ("" when none), into buf; resets the count. */
const char *retry_unlogged(retry_t *r, char *buf, size_t len);

/* retry_stable: the connection held: the next failure starts from the
 * first delay and is logged at once. */
void retry_stable(retry_t *r);

#endif
