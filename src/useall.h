/*
 * useall.h -- `useall`: a forward cluster whose members are every address
 * its hosts resolve to.
 *
 * The one step between parsing and routing that talks to the network: the
 * config parser (src/config.c) only reads the statement, and the router
 * (src/router.c) stays pure by being handed members that are already
 * addresses.  relay/orchester.c and the hub's reload call useall_expand()
 * after config_load() and before router_new(); it resolves names with
 * getaddrinfo, so it may block (as loading a config may), and runs on the
 * thread that loads the config, never on the sender's.
 */
#ifndef ORCHESTER_USEALL_H
#define ORCHESTER_USEALL_H

#include <stddef.h>

#include "config.h"

/* useall_expand: for each cluster of cfg that says `useall`, replace its
 * members by one member per distinct address (and port) their hosts resolve
 * to, in order, and mark the cluster resolved.  The new members are owned
 * by cfg, as the old ones were (config_destroy frees them).  Returns 0, or
 * -1 with "FILE:LINE: ..." in err when a host does not resolve or memory
 * runs out (cfg is then unchanged). */
int useall_expand(config_t *cfg, char *err, size_t errlen);

#endif
