/*
 * daemon.c -- see daemon.h.
 */
#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void s_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

void daemon_block_signals(void)
{
    sigset_t set;
    s_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int daemon_wait_signal(int timeout_ms)
{
    sigset_t set;
    s_set(&set);
    struct timespec ts = {timeout_ms / 1000,
                          (long)(timeout_ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    return sig < 0 ? 0 : sig;
}

int daemon_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f);
}

void daemon_hostname(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0 || buf[0] == '\0')
        snprintf(buf, len, "localhost");
    buf[len - 1] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '.')
            *p = '_';
}

/* The kernel's ceiling for RLIMIT_NOFILE, or a safe value. */
static rlim_t s_nr_open(void)
{
    rlim_t n = 1048576; /* the kernel's default fs.nr_open */
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f != NULL) {
        unsigned long long v;
        if (fscanf(f, "%llu", &v) == 1 && v > 0)
            n = (rlim_t)v;
        fclose(f);
    }
    return n;
}

long daemon_raise_nofile(char *msg, size_t msglen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(msg, msglen, "descriptors: getrlimit: %s", strerror(errno));
        return 1024;
    }
    rlim_t old = rl.rlim_cur;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY)
        want = s_nr_open();
    if (want <= old) {
        snprintf(msg, msglen, "descriptors: soft limit %llu, hard limit %llu",
                 (unsigned long long)old, (unsigned long long)rl.rlim_max);
        return (long)old;
    }
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(msg, msglen,
                 "descriptors: soft limit %llu, hard limit %llu: "
                 "raising the soft limit: %s",
                 (unsigned long long)old, (unsigned long long)rl.rlim_max,
                 strerror(errno));
        return (long)old;
    }
    snprintf(msg, msglen,
             "descriptors: soft limit raised from %llu to %llu "
             "(hard limit %llu)",
             (unsigned long long)old, (unsigned long long)want,
             (unsigned long long)rl.rlim_max);
    return (long)want;
}
