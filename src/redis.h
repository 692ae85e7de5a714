/*
 * redis.h -- one Redis connection for the sender thread, with timeouts and
 * reconnect.
 *
 * I/O shell around a hiredis 0.14 async context on the sender thread's
 * libev loop (hiredis's own libev adapter).  hiredis 0.14 has neither
 * timeouts nor reconnect; this module adds both:
 *
 *   - connect: without blocking (a numeric address or a unix socket; no
 *     name is ever looked up here), then PING; the connection is "up" only
 *     once the PING is answered.  The connect watchdog (connect_timeout_ms)
 *     covers both, so a Redis whose kernel accepts the connection but which
 *     never answers (stopped, hung) is a failed connect.
 *   - commands: answered in order; when the oldest unanswered one is older
 *     than command_timeout_ms the connection is ended, and every pending
 *     callback is called with NULL.
 *   - reconnect: forever, until redis_destroy, with exponential backoff
 *     and jitter; only a connection that was up for stable_ms starts the
 *     backoff again from backoff_min_ms.
 *
 * Failures are logged ("redis: TARGET: ...") once, then at most once per
 * log_interval_ms with a count of those not logged.
 *
 * Memory: what is sent and not yet written sits in hiredis's output buffer,
 * which has no bound of its own.  The caller bounds it: redis_pending says
 * how many commands are sent and not answered.
 *
 * The process must ignore SIGPIPE (daemon_block_signals does): hiredis
 * writes with write(2), and a Redis that dies mid-write would otherwise
 * kill it.
 *
 * Everything here runs on the loop's thread.
 */
#ifndef ORCHESTER_REDIS_H
#define ORCHESTER_REDIS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

typedef struct {
    int connect_timeout_ms; /* connect + first PING answered within (1000) */
    int command_timeout_ms; /* oldest unanswered command older than this
                               ends the connection (2000) */
    int backoff_min_ms;     /* first reconnect delay (100) */
    int backoff_max_ms;     /* longest reconnect delay (5000); the delay
                               doubles per failure in a row, and each is
                               jittered to 50-100% of it */
    int stable_ms;          /* up this long resets the backoff and the
                               log interval (5000) */
    int log_interval_ms;    /* at most one failure line per (60000) */
} redis_opts_t;

typedef struct redis redis_t;

/* One reply or none: called exactly once per redis_cmd that returned 0.
 * reply is NULL when the command was not answered (connection lost, the
 * watchdog ended the connection, redis_destroy); a Redis error reply is
 * passed as is (type REDIS_REPLY_ERROR).  reply is borrowed: valid only
 * during the call.  The callback may call redis_cmd (which returns -1
 * while the connection is going down) but never redis_destroy.  The
 * loop's thread. */
typedef void(redis_reply_fn)(void *arg, redisReply *reply);

/* The connection went up (a PING was answered; why is "connected") or
 * down after being up (why: a short text, e.g. "no answer for 2000 ms",
 * "server closed the connection").  Only transitions are told: a failed
 * attempt while down is not (see redis_why and redis_stats).  When down
 * is told, every pending callback has had its NULL.  May call redis_cmd
 * (up: it works; down: -1), never redis_destroy.  why is borrowed. */
typedef void(redis_state_fn)(void *arg, int up, const char *why);

/* Counters since redis_new. */
typedef struct {
    uint64_t connects;         /* connections that went up */
    uint64_t connect_failures; /* attempts that never went up */
    uint64_t connect_timeouts; /* of those, ended by the connect watchdog */
    uint64_t timeouts;         /* connections ended by the command
                                  watchdog */
    uint64_t disconnects;      /* connections that went down after up
                                  (timeouts included) */
    uint64_t errors;           /* error replies to commands */
} redis_stats_t;

/* redis_opts_default: fill o with the defaults above. */
void redis_opts_default(redis_opts_t *o);

/* redis_new: a connection to target, on loop (borrowed; it outlives the
 * redis_t), telling fn(arg, ...) of its transitions (fn may be NULL).
 * target is copied; it is "unix:PATH" or "HOST:PORT" where HOST is a
 * numeric IPv4 address, a numeric IPv6 address in brackets ("[::1]:6379")
 * or "localhost" (taken as 127.0.0.1).  Other names are refused, not
 * looked up: a lookup could block the loop (resolve them first, e.g.
 * with src/resolver.c).  o NULL: the defaults; a value <= 0 takes its
 * default, and backoff_max_ms below backoff_min_ms is raised to it.
 * Starts connecting at once (a failure then is counted and retried, not
 * returned).  Returns NULL on allocation failure or a malformed target,
 * with why in err (errlen bytes; err may be NULL).  The loop's thread. */
redis_t *redis_new(struct ev_loop *loop, const char *target,
                   const redis_opts_t *o, redis_state_fn *fn, void *arg,
                   char *err, size_t errlen);

/* redis_destroy: close the connection, free *r and set it NULL; safe on
 * NULL and twice.  Every pending reply callback is called with NULL, once,
 * before it returns; the state callback is not called.  Never from inside
 * one of r's callbacks.  The loop's thread. */
void redis_destroy(redis_t **r);

/* redis_up: 1 while up (a PING was answered and the connection is not
 * going down), else 0. */
int redis_up(const redis_t *r);

/* redis_cmd: send one command of argc arguments (as redisAsyncCommandArgv:
 * argv[i] of argvlen[i] bytes, or of strlen when argvlen is NULL; both are
 * copied before it returns).  Returns 0 when it was sent: fn(arg, ...)
 * will be called exactly once (fn may be NULL: no call).  Returns -1, and
 * fn is never called, when the connection is not up, when argc < 1, or
 * for a command that changes how replies flow and would break the one
 * reply per command rule: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, UNSUBSCRIBE,
 * PUNSUBSCRIBE, SUNSUBSCRIBE, MONITOR.  (CLIENT REPLY OFF|SKIP is not
 * refused, but its commands go unanswered, and the watchdog ends the
 * connection.)  The loop's thread; may be called from r's callbacks. */
int redis_cmd(redis_t *r, redis_reply_fn *fn, void *arg, int argc,
              const char **argv, const size_t *argvlen);

/* redis_pending: commands sent and not yet answered (their callbacks are
 * still to come).  The caller bounds what it sends with it. */
size_t redis_pending(const redis_t *r);

/* redis_why: why the last attempt or connection failed ("" before any
 * failure), e.g. "connect: Connection refused"; borrowed until r's next
 * event. */
const char *redis_why(const redis_t *r);

/* redis_stats: a snapshot of the counters into out. */
void redis_stats(const redis_t *r, redis_stats_t *out);

#endif
