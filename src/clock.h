/*
 * clock.h -- the one place time comes from.
 *
 * Monotonic milliseconds for timeouts, backoff and stall bounds; wall-clock
 * seconds for metric timestamps.  Modules that must be testable with a
 * driven clock take a timestamp argument instead of calling these.
 */
#ifndef ORCHESTER_CLOCK_H
#define ORCHESTER_CLOCK_H

#include <stdint.h>

/* clock_mono_ms: milliseconds since an arbitrary start; never goes back. */
int64_t clock_mono_ms(void);

/* clock_wall_s: seconds since the epoch. */
int64_t clock_wall_s(void);

/* clock_wall_ms: milliseconds since the epoch. */
int64_t clock_wall_ms(void);

#endif
