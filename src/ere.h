/*
 * ere.h -- the regular expressions of the config language: POSIX extended
 * regular expressions, matched in time linear in the name.
 *
 * Pure core.  The expressions of `match`, `rewrite` and `validate` are
 * compiled by TRE (Debian libtre-dev), whose matcher runs the whole name
 * through a tagged automaton once, so no metric name, however hostile, can
 * make a match backtrack.  A backtracking matcher (glibc's regexec) spends
 * seconds on a name such as "aaaa...b" against (a+)+$, and holds up every
 * metric queued behind it.
 *
 * ere_compile is the one door to tre_regcomp: src/config_lex.c checks each
 * expression of a config through it, and src/router.c compiles the rules
 * with it and matches them with tre_regexec.  It reads an expression as
 * carbon-c-relay (glibc) reads it, where TRE's own syntax differs, and it
 * refuses:
 *   - back references (\1 .. \9): TRE matches them with a backtracking
 *     matcher, whose time grows exponentially with the name;
 *   - TRE's extensions that are not POSIX: "(?" flags and approximate
 *     matching ("{~1}");
 *   - repetition counts above 255 (RE_DUP_MAX);
 *   - expressions whose automaton would be so large that compiling them
 *     takes too much memory or time, or matching one name too long
 *     (nested or stacked repetitions, long runs of optional parts).
 *
 * What it reads as glibc does, where TRE alone would not:
 *   - "\c" for an ordinary character c is c (\d is "d", \t is "t"); \w \W
 *     \s \S \b \B \< \> keep their GNU meaning; \` and \' are ^ and $;
 *   - a repetition operator right after another applies to the repetition
 *     before it: "a+?" is (a+)? and never a lazy a+; "a**" is (a*)*;
 *   - "{,n}" is "{0,n}".
 *
 * Threads: no state; any thread may call it.
 */
#ifndef ORCHESTER_ERE_H
#define ORCHESTER_ERE_H

#include <stddef.h>

#include <tre/tre.h>

/*
 * ere_compile: compile the POSIX extended regular expression expr into
 * *re with tre_regcomp(REG_EXTENDED | cflags) (cflags: 0 or REG_NOSUB).
 * Returns 0, and the caller then owns *re (free it with tre_regfree), or
 * -1 with *re untouched and a message (no file or line; the caller adds
 * them) in err.
 */
int ere_compile(regex_t *re, const char *expr, int cflags, char *err,
                size_t errlen);

#endif
