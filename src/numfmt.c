/*
 * numfmt.c -- numbers as the shortest decimal text (see numfmt.h).
 *
 * Moved out of the pickle decoder (src/pickle.c), which formats every
 * number it decodes for the plaintext validator.
 */
#include "numfmt.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUMBUF 64 /* room for any formatted number */

/* "00" .. "99", for two digits per division. */
static const char s_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

/* Write v in decimal to out (room for 20 bytes); returns the length. */
size_t numfmt_u64(char *out, uint64_t v)
{
    char tmp[20], *p = tmp + sizeof tmp;
    size_t n;

    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);

        v /= 100;
        p -= 2;
        memcpy(p, s_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, s_pairs + 2 * v, 2);
    } else
        *--p = (char)('0' + v);
    n = (size_t)(tmp + sizeof tmp - p);
    memcpy(out, p, n);
    return n;
}

size_t numfmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return numfmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + numfmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 s_u128;

/* 10^0 .. 10^19: the powers of ten that fit 64 bits. */
static const uint64_t s_p10[20] = {1ull,
                                   10ull,
                                   100ull,
                                   1000ull,
                                   10000ull,
                                   100000ull,
                                   1000000ull,
                                   10000000ull,
                                   100000000ull,
                                   1000000000ull,
                                   10000000000ull,
                                   100000000000ull,
                                   1000000000000ull,
                                   10000000000000ull,
                                   100000000000000ull,
                                   1000000000000000ull,
                                   10000000000000000ull,
                                   100000000000000000ull,
                                   1000000000000000000ull,
                                   10000000000000000000ull};

/* 10^k for 0 <= k <= 22. */
static inline s_u128 s_pow10(int k)
{
    return k <= 19 ? (s_u128)s_p10[k] : (s_u128)s_p10[19] * s_p10[k - 19];
}

/*
 * For v = m * 2^-s (m a normal double's 53-bit significand): *q = v * 10^k
 * rounded to the nearest integer (ties to even), computed exactly.  Returns
 * whether the decimal q * 10^-k reads back to v: whether it lies inside v's
 * rounding interval (half an ulp either side, a quarter ulp below a power
 * of two), or on its edge when m is even, since strtod rounds ties to even.
 * Needs 0 <= k <= 22 and 1 <= s <= 125, so that m * 10^k fits 128 bits.
 */
static bool s_round_trip(uint64_t m, int s, int k, uint64_t *q)
{
    s_u128 ten = s_pow10(k), x = (s_u128)m * ten;
    s_u128 r = x >> s, rem = x - (r << s), half = (s_u128)1 << (s - 1), d;
    bool below;

    if (rem > half || (rem == half && (r & 1)))
        r++;
    *q = (uint64_t)r;
    below = (r << s) < x;
    d = below ? x - (r << s) : (r << s) - x;
    d *= below && m == (1ull << 52) ? 4 : 2;
    return d < ten || (d == ten && !(m & 1));
}

/*
 * The shortest decimal for 1e-5 <= v < 1e15: the 15-digit rounding of v if
 * it reads back (for a normal double whose shortest text has at most 15
 * digits it is that text, trailing zeros aside: any other 15-digit decimal
 * is farther from v than half an ulp), else the 16-digit one, else the
 * 17-digit one, which always does.  Writes positional text ("0.000123",
 * "123.5") to o; returns its length.
 */
static size_t s_fmt_exact(char *o, double v)
{
    uint64_t bits, m, q = 0;
    int s, e2, t, d, p, k = 0;
    char dig[24];
    size_t nd, w = 0;

    memcpy(&bits, &v, sizeof bits);
    m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    s = 1075 - (int)(bits >> 52); /* v = m * 2^-s, 3 <= s <= 69 */
    e2 = 52 - s;                  /* 2^e2 <= v < 2^(e2 + 1) */
    t = e2 * 78913;               /* floor(e2 * log10(2)) */
    d = t >= 0 ? t >> 18 : -((-t + 262143) >> 18);
    /* d is now floor(log10(v)) or one less: is v >= 10^(d + 1)? */
    if (d + 1 >= 0 ? (s_u128)m >= s_pow10(d + 1) << s
                   : (s_u128)m * s_pow10(-d - 1) >= (s_u128)1 << s)
        d++;
    for (p = 15; p <= 17; p++) {
        k = p - 1 - d; /* 0 <= k <= 21: q has p digits */
        if (s_round_trip(m, s, k, &q))
            break;
    }
    /* q * 10^-k, without trailing zeros, point placed */
    if (q % 100000000 == 0) {
        q /= 100000000;
        k -= 8;
    }
    if (q % 10000 == 0) {
        q /= 10000;
        k -= 4;
    }
    if (q % 100 == 0) {
        q /= 100;
        k -= 2;
    }
    if (q % 10 == 0) {
        q /= 10;
        k--;
    }
    nd = numfmt_u64(dig, q);
    if (k <= 0) {
        memcpy(o, dig, nd);
        memset(o + nd, '0', (size_t)-k);
        return nd + (size_t)-k;
    }
    if ((size_t)k < nd) {
        memcpy(o, dig, nd - (size_t)k);
        o[nd - (size_t)k] = '.';
        memcpy(o + nd - (size_t)k + 1, dig + nd - (size_t)k, (size_t)k);
        return nd + 1;
    }
    o[w++] = '0';
    o[w++] = '.';
    memset(o + w, '0', (size_t)k - nd);
    w += (size_t)k - nd;
    memcpy(o + w, dig, nd);
    return w + nd;
}
#endif

/*
 * Format v as the shortest decimal that reads back to v: "nan", "inf",
 * "-inf", "-0"; integers below 2^53 as integers; between 1e-5 and 1e15 by
 * exact integer arithmetic (s_fmt_exact); otherwise, or without 128-bit
 * integers, %.15g, %.16g, then %.17g, whichever reads back first (from
 * %.1g for subnormals, where fewer than 15 digits may be the shortest).
 * out has NUMBUF bytes; returns the length.
 */
size_t numfmt_double(char *out, double v)
{
    char *o = out;
    int prec;

    if (isnan(v)) {
        memcpy(out, "nan", 3);
        return 3;
    }
    if (signbit(v)) {
        *o++ = '-';
        v = -v;
    }
    if (isinf(v)) {
        memcpy(o, "inf", 3);
        return (size_t)(o - out) + 3;
    }
    if (v == 0) {
        *o++ = '0';
        return (size_t)(o - out);
    }
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
        return (size_t)(o - out) + numfmt_u64(o, (uint64_t)v);
#ifdef __SIZEOF_INT128__
    if (v >= 1e-5 && v < 1e15)
        return (size_t)(o - out) + s_fmt_exact(o, v);
#endif
    for (prec = v < 2.2250738585072014e-308 ? 1 : 15; prec <= 17; prec++) {
        int w = snprintf(o, NUMBUF - 1, "%.*g", prec, v);

        if (prec == 17 || strtod(o, NULL) == v)
            return (size_t)(o - out) + (size_t)w;
    }
    return 0; /* not reached */
}
