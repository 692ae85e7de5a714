/*
 * numfmt.h -- numbers as decimal text, without the locale.
 *
 * Pure core, used by the pickle decoder (src/pickle.c) to hand decoded
 * numbers to the plaintext validator as text.
 */
#ifndef ORCHESTER_NUMFMT_H
#define ORCHESTER_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

/* numfmt_u64 / numfmt_i64: v in decimal into out (room for 21 bytes);
 * returns the length (no NUL is written). */
size_t numfmt_u64(char *out, uint64_t v);
size_t numfmt_i64(char *out, int64_t v);

/* numfmt_double: the shortest decimal text that reads back to v ("0.1",
 * "1e-300", integral values as integers, "nan", "inf", "-inf") into out
 * (room for 64 bytes); returns the length. */
size_t numfmt_double(char *out, double v);

#endif
