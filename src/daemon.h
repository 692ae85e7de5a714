/*
 * daemon.h -- process life for the programs in relay/: signals, pid file,
 * descriptor limit, host name.
 *
 * Signals are never handled asynchronously: the main thread blocks them
 * before starting any thread (so every thread inherits the mask) and
 * collects them with daemon_wait_signal().  Modules never see a signal;
 * relay/ turns one into a command on a thread's control pipe.
 */
#ifndef ORCHESTER_DAEMON_H
#define ORCHESTER_DAEMON_H

#include <stddef.h>

/* daemon_block_signals: block SIGTERM, SIGINT, SIGHUP in this thread (and
 * the threads it starts); ignore SIGPIPE. */
void daemon_block_signals(void);

/* daemon_wait_signal: wait at most timeout_ms for a blocked signal.
 * Returns the signal number, or 0 on timeout. */
int daemon_wait_signal(int timeout_ms);

/* daemon_pidfile: write our pid to path; 0 or -1 (errno set). */
int daemon_pidfile(const char *path);

/* daemon_raise_nofile: raise the soft RLIMIT_NOFILE to the hard limit (to
 * the kernel's fs.nr_open when the hard limit is unlimited), so that a
 * default limit of 1,024 descriptors does not cap the client connections.
 * Writes a line for the log to msg (both limits, before and after), and
 * returns the soft limit now in force (the old one when raising failed;
 * msg then says why).  Call it in the main thread before any thread starts. */
long daemon_raise_nofile(char *msg, size_t msglen);

/* daemon_hostname: this host's name with '.' replaced by '_', as carbon
 * names relays in self metrics.  Writes at most len bytes. */
void daemon_hostname(char *buf, size_t len);

#endif
