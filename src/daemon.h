/*
 * daemon.h -- process life for the programs in relay/: signals, pid file,
 * host name.
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

/* daemon_hostname: this host's name with '.' replaced by '_', as carbon
 * names relays in self metrics.  Writes at most len bytes. */
void daemon_hostname(char *buf, size_t len);

#endif
