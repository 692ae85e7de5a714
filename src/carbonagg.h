/*
 * carbonagg.h -- Graphite carbon-aggregator's aggregation-rules.conf, read
 * into orchester aggregate rules.
 *
 * Pure core: no I/O.  src/config.c reads the file named by the
 * `aggregation rules FILE ... ;` statement and hands its text here; each
 * rule line
 *
 *     output_template (frequency) = method input_pattern
 *
 * becomes one config_rule_t of kind RULE_AGGREGATE, which the router, the
 * aggregator (src/aggregator.c) and its core (src/aggr.c) then run as any
 * `aggregate` statement.  The translation reads a line as
 * carbon-aggregator 1.1.7 reads it (carbon/aggregator/rules.py) and gives
 * the rule the window of its buffers (carbon/aggregator/buffers.py):
 *
 *   - exprs[0]: one POSIX extended expression, anchored, built from the
 *     input pattern field by field: "<name>" is ([^.]+), "<<name>>" is
 *     (.+), a field "*" is [^.]+, a '*' in any other field [^.]*, the
 *     rest literal; group k is the k-th placeholder;
 *   - the compute: sum, average (avg), min, max, count; pNN as carbon
 *     computes it (COMPUTE_QUANTILE: interpolated between ranks), or, with
 *     opts->nearest_rank, as orchester's nearest-rank percentileNN;
 *   - write_to: the output template, each "<name>" as \g{k};
 *   - interval = the frequency; expire = (max_intervals + 1) * frequency;
 *     timestamp at start of bucket.
 *
 * What carbon-aggregator would read differently from any POSIX
 * expression, or not at all, is refused with "FILE:LINE: what" (see
 * docs/aggregation.rst, "carbon-aggregator's rules").
 *
 * Threads: no state; any thread may call it.
 */
#ifndef ORCHESTER_CARBONAGG_H
#define ORCHESTER_CARBONAGG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* How the rules are read (the statement's clauses). */
typedef struct {
    int max_intervals; /* carbon.conf's MAX_AGGREGATION_INTERVALS (its
                          default: 5), >= 1 */
    bool nearest_rank; /* "percentiles by nearest rank": pNN as orchester's
                          nearest-rank percentileNN, not carbon's
                          interpolated quantile */
} carbonagg_opts_t;

#define CARBONAGG_MAX_INTERVALS 5 /* carbon-aggregator's default */

/*
 * carbonagg_parse: the rules of text (len bytes, the contents of file)
 * into *rules, an array of *n rules the caller owns (free it with
 * carbonagg_free).  Each rule's pos is (file, its line): file is borrowed
 * and must outlive the rules.  dests and stop are left empty.  Returns 0,
 * or -1 with *rules NULL, *n 0 and "FILE:LINE: what" in err (errlen
 * bytes, always NUL-terminated; "FILE: out of memory" without a line).
 */
int carbonagg_parse(const char *text, size_t len, const char *file,
                    const carbonagg_opts_t *opts, config_rule_t **rules,
                    size_t *n, char *err, size_t errlen);

/* carbonagg_free: free n rules (what each holds) and the array.  Safe on
 * NULL. */
void carbonagg_free(config_rule_t *rules, size_t n);

#endif
