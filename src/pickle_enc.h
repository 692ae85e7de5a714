/*
 * pickle_enc.h -- canonical lines to carbon pickle frames (protocol 2).
 *
 * Pure core.  A destination whose member says `type pickle` (src/dest.c)
 * turns each chunk of canonical lines the router made for it into frames
 * for carbon's pickle receiver: a 4-byte big-endian length, then a
 * protocol-2 pickle of a list of (path, (timestamp, value)) tuples, at most
 * PICKLE_ENC_POINTS datapoints per frame.  Paths are unicode strings,
 * timestamps integers (floats when they have a fraction), values floats.
 */
#ifndef ORCHESTER_PICKLE_ENC_H
#define ORCHESTER_PICKLE_ENC_H

#include <stddef.h>
#include <stdint.h>

#define PICKLE_ENC_POINTS 500

/*
 * pickle_enc_lines: encode the canonical lines in lines/len ("name value
 * timestamp\n" each) into a new buffer of frames.  Returns it (the caller
 * frees it) with its size in *outlen and the datapoints it holds in
 * *points, or NULL when out of memory.  A line that is not canonical (not
 * three fields, or a value that is not a number) is skipped and counted in
 * *skipped.
 */
char *pickle_enc_lines(const char *lines, size_t len, size_t *outlen,
                       uint32_t *points, uint32_t *skipped);

#endif
