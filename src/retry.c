/* retry.c -- see retry.h. */
#include "retry.h"

#include <stdio.h>
#include <stdlib.h>

void retry_init(retry_t *r, int min_ms, int max_ms, int lo_pct, int hi_pct,
                int log_interval_ms, unsigned int seed)
{
    *r = (retry_t){.min_ms = min_ms,
                   .max_ms = max_ms,
                   .lo_pct = lo_pct,
                   .hi_pct = hi_pct,
                   .log_interval_ms = log_interval_ms,
                   .seed = seed};
}

int64_t retry_delay(retry_t *r)
{
    int64_t d = r->min_ms;
    for (int i = 0; i < r->attempts && d < r->max_ms; i++)
        d *= 2;
    if (d > r->max_ms)
        d = r->max_ms;
    d = d * (r->lo_pct + rand_r(&r->seed) % (r->hi_pct - r->lo_pct + 1)) / 100;
    if (d < 1)
        d = 1;
    if (r->attempts < 64)
        r->attempts++;
    return d;
}

int retry_may_log(retry_t *r, int64_t now)
{
    if (r->log_next_ms != 0 && now < r->log_next_ms) {
        r->unlogged++;
        return 0;
    }
    r->log_next_ms = now + r->log_interval_ms;
    return 1;
}

const char *retry_unlogged(retry_t *r, char *buf, size_t len)
{
    if (r->unlogged == 0)
        snprintf(buf, len, "%s", "");
    else
        snprintf(buf, len, "; %llu earlier failures not logged",
                 (unsigned long long)r->unlogged);
    r->unlogged = 0;
    return buf;
}

void retry_stable(retry_t *r)
{
    r->unlogged = 0;
    r->attempts = 0;
    r->log_next_ms = 0;
}
