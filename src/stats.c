/*
 * stats.c -- see stats.h.
 */
#include "stats.h"

uint64_t stats_parse_errors(const stats_ingest_t *s)
{
    uint64_t n = 0;
    for (int i = 0; i < LINE_NSTATUS; i++)
        if (i != LINE_OK && i != LINE_EMPTY)
            n += s->errors[i];
    return n;
}

void stats_metric_part(char *out, size_t outlen, const char *s)
{
    size_t i = 0;
    if (outlen == 0)
        return;
    for (; *s && i + 1 < outlen; s++, i++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}
