/*
 * log.h -- logging for every module and thread.
 *
 * Messages go to stderr, one line each, with a timestamp and a level:
 * "2026-11-27 19:00:00 orchester[pid] warn: module: peer: what: why".
 * Writes are single write(2) calls, so lines from several threads never
 * interleave.  Debug messages are printed only when the environment variable
 * ORCHESTER_DEBUG is set (read at each call: debug logging is never on the
 * hot path).  No state is kept.
 */
#ifndef ORCHESTER_LOG_H
#define ORCHESTER_LOG_H

#define LOG_FMT(a, b) __attribute__((format(printf, a, b)))

/* log_err/warn/info/debug: format and write one line; any thread. */
void log_err(const char *fmt, ...) LOG_FMT(1, 2);
void log_warn(const char *fmt, ...) LOG_FMT(1, 2);
void log_info(const char *fmt, ...) LOG_FMT(1, 2);
void log_debug(const char *fmt, ...) LOG_FMT(1, 2);

#endif
