/*
 * testmode.h -- `orchester -t`: where each metric line on a stream would go.
 *
 * Reads plaintext lines, parses them as ingest would (src/line.c), routes
 * them with the router (src/router.c) and prints every decision: the rule
 * (with its file and line), the cluster, each member as host:port, the
 * blackhole, and where evaluation stops.  Runs on the main thread only.
 */
#ifndef ORCHESTER_TESTMODE_H
#define ORCHESTER_TESTMODE_H

#include <stdio.h>

#include "router.h"

/* testmode_run: read lines from in until EOF, print to out.  maxline bounds
 * a line.  Returns 0. */
int testmode_run(const router_t *r, FILE *in, FILE *out, size_t maxline);

#endif
