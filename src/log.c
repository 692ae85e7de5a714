/*
 * log.c -- see log.h.  Stateless: the program name comes from
 * program_invocation_short_name, the time from the wall clock.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void s_vlog(const char *level, const char *fmt, va_list ap)
{
    char buf[2048];
    int saved = errno;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(buf, sizeof buf,
                 "%04d-%02d-%02d %02d:%02d:%02d %s[%d] %s: ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 program_invocation_short_name, (int)getpid(), level);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof buf - 1) {
        int m = vsnprintf(buf + n, sizeof buf - 1 - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
    errno = saved;
}

void log_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog("error", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog("warn", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog("info", fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    if (getenv("ORCHESTER_DEBUG") == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    s_vlog("debug", fmt, ap);
    va_end(ap);
}
