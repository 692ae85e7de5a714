/*
 * ere.c -- POSIX extended regular expressions on TRE: the reading glibc
 * gives them, the refusals, and the bound on the automaton.  See ere.h.
 *
 * Two passes run before tre_regcomp.  s_translate rewrites the expression
 * into the syntax TRE reads the way glibc reads the original (and refuses
 * what must not be compiled).  s_cost then walks the result the way TRE
 * builds its automaton: bounded repetitions are copied (x{2,4} is
 * x x (x (x)?)?), each concatenation links the last positions of its left
 * part to the first positions of its right part, each loop links its own
 * last positions to its first ones.  The counts it keeps (positions,
 * transitions, the position sets built on the way, the groups and their
 * copies) bound what tre_regcomp allocates and what tre_regexec does per
 * byte of a name, so an expression over the bounds is refused before TRE
 * sees it.
 */
#include "ere.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERE_MAX_LEN    65536   /* bytes of one expression */
#define ERE_MAX_DEPTH  64      /* groups one expression may nest */
#define ERE_MAX_REPEAT 255     /* the largest count in {m,n} (TRE's) */
#define ERE_MAX_POS    20000   /* positions of the automaton */
#define ERE_MAX_SETS   2000000 /* position set entries built by TRE */
#define ERE_MAX_WORK                                                           \
    400000                   /* (positions + transitions) times the            \
                                tags each one carries */
#define ERE_SAT (1ULL << 40) /* where the counts saturate */

/* What s_cost knows of a part of an expression. */
typedef struct {
    uint64_t pos;    /* positions (characters, brackets) after copying */
    uint64_t first;  /* entries of its set of first positions */
    uint64_t last;   /* entries of its set of last positions */
    uint64_t trans;  /* transitions between its positions */
    uint64_t sets;   /* position set entries built for it */
    uint64_t groups; /* groups in it, every copy counted */
    bool nullable;   /* it matches the empty string */
} cost_t;

/* The cursor of s_cost over a translated expression. */
typedef struct {
    const char *s; /* the next character */
    size_t depth;  /* groups open around it */
    bool over;     /* a count passed its bound: give up */
} scan_t;

/* ------------------------------------------------------------------ */
/* Translation                                                        */
/* ------------------------------------------------------------------ */

/* s_bracket_end: the ']' closing the bracket expression that opens at s
 * ("]" first is a member, "[:alpha:]" and the like are skipped whole), or
 * the terminating NUL when it is not closed. */
static const char *s_bracket_end(const char *s)
{
    const char *p = s + 1, *end;

    p += *p == '^';
    p += *p == ']';
    while (*p && *p != ']') {
        if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            char close[3] = {p[1], ']', '\0'};
            if (!(end = strstr(p + 2, close)))
                return p + strlen(p);
            p = end + 1;
        }
        p++;
    }
    return p;
}

/* s_interval: read "{m}", "{m,}", "{,n}", "{m,n}" or "{,}" at s.
 * Returns the bytes read, with the counts in *m and *n (-1: no upper
 * bound), or 0 when s holds no interval.  Counts saturate past 100000. */
static size_t s_interval(const char *s, long *m, long *n)
{
    size_t i = 1;
    bool digits = false;

    *m = 0;
    *n = -1;
    for (; s[i] >= '0' && s[i] <= '9'; i++, digits = true)
        *m = *m > 100000 ? *m : *m * 10 + (s[i] - '0');
    if (s[i] == '}' && digits) {
        *n = *m;
        return i + 1;
    }
    if (s[i] != ',')
        return 0;
    i++;
    if (s[i] >= '0' && s[i] <= '9') {
        *n = 0;
        for (; s[i] >= '0' && s[i] <= '9'; i++)
            *n = *n > 100000 ? *n : *n * 10 + (s[i] - '0');
    }
    return s[i] == '}' ? i + 1 : 0;
}

/*
 * s_translate: write to out (at least 5 * strlen(expr) + 1 bytes: a "?"
 * may become "{0,1}") the expression TRE must compile to match as glibc
 * matches expr.  Returns 0,
 * or -1 with a message in err for what is refused.
 */
static int s_translate(const char *expr, char *out, char *err, size_t errlen)
{
    /* what the last item was: nothing a repetition may apply to (the
     * start, "(", "|", "^"), an atom, or a repetition */
    enum { NONE, ATOM, REPEAT } prev = NONE;
    const char *s = expr;
    char *o = out;
    long m, n;
    size_t k, depth = 0; /* groups open */

    while (*s) {
        char c = *s;
        switch (c) {
        case '\\':
            c = s[1];
            if (c >= '1' && c <= '9') {
                snprintf(err, errlen,
                         "back reference \\%c: back references are refused "
                         "(they cannot be matched in time linear in the "
                         "name)",
                         c);
                return -1;
            }
            if (c == '\0') {
                *o++ = '\\'; /* TRE refuses it, as glibc does */
                s++;
                break;
            }
            if (c == '`') {
                *o++ = '^';
            } else if (c == '\'') {
                *o++ = '$';
            } else if (strchr("wWsSbB<>.[]()*+?{}|^$\\", c)) {
                *o++ = '\\';
                *o++ = c;
            } else {
                *o++ = c; /* "\c" is c, as in glibc */
            }
            s += 2;
            prev = strchr("bB<>`'", c) ? NONE : ATOM;
            break;
        case '[': {
            const char *end = s_bracket_end(s);
            k = (size_t)(end - s) + (*end != '\0');
            memcpy(o, s, k);
            o += k;
            s += k;
            prev = ATOM;
            break;
        }
        case '(':
            if (s[1] == '?') {
                snprintf(err, errlen, "'(?' is not POSIX syntax");
                return -1;
            }
            *o++ = *s++;
            depth++;
            prev = NONE;
            break;
        case ')':
            /* an unmatched ')' is a literal, as glibc reads it; handed to
             * TRE as it is, "\\)" makes tre_regcomp allocate without
             * bound */
            if (depth == 0)
                *o++ = '\\';
            else
                depth--;
            *o++ = *s++;
            prev = ATOM;
            break;
        case '|':
        case '^':
            *o++ = *s++;
            prev = NONE;
            break;
        case '*':
        case '+':
        case '?':
            s++;
            if (prev == REPEAT) {
                /* the brace form repeats the repetition before it, where
                 * TRE reads "+?" as a lazy "+" and refuses "**" */
                const char *brace = c == '*'   ? "{0,}"
                                    : c == '+' ? "{1,}"
                                               : "{0,1}";
                memcpy(o, brace, strlen(brace));
                o += strlen(brace);
            } else {
                *o++ = c;
            }
            prev = prev == NONE ? ATOM : REPEAT;
            break;
        case '{':
            if ((k = s_interval(s, &m, &n)) == 0) {
                *o++ = *s++; /* no interval: TRE decides */
                prev = ATOM;
                break;
            }
            if (m > ERE_MAX_REPEAT || n > ERE_MAX_REPEAT) {
                snprintf(err, errlen, "repetition count %ld is more than %d",
                         m > ERE_MAX_REPEAT ? m : n, ERE_MAX_REPEAT);
                return -1;
            }
            if (n < 0)
                o += sprintf(o, "{%ld,}", m);
            else
                o += sprintf(o, "{%ld,%ld}", m, n);
            s += k;
            prev = REPEAT;
            break;
        default:
            *o++ = *s++;
            prev = ATOM;
            break;
        }
    }
    *o = '\0';
    return 0;
}

/* ------------------------------------------------------------------ */
/* The size of the automaton                                          */
/* ------------------------------------------------------------------ */

/* s_add, s_mul: saturating at ERE_SAT. */
static uint64_t s_add(uint64_t a, uint64_t b)
{
    return a >= ERE_SAT || b >= ERE_SAT - a ? ERE_SAT : a + b;
}

static uint64_t s_mul(uint64_t a, uint64_t b)
{
    if (a == 0 || b == 0)
        return 0;
    return a >= ERE_SAT || b >= ERE_SAT / a ? ERE_SAT : a * b;
}

/* s_tags: the tags each position of c may carry, bounded above: two per
 * group, and one for each of the loops and alternatives around them. */
static uint64_t s_tags(const cost_t *c)
{
    return s_add(1, s_mul(4, c->groups));
}

/* s_heavy: true when c passed a bound. */
static bool s_heavy(const cost_t *c)
{
    return c->pos > ERE_MAX_POS || c->sets > ERE_MAX_SETS ||
           s_mul(s_add(c->pos, c->trans), s_tags(c)) > ERE_MAX_WORK;
}

/* s_cat: a then b. */
static cost_t s_cat(const cost_t *a, const cost_t *b)
{
    cost_t r;

    r.pos = s_add(a->pos, b->pos);
    r.first = a->nullable ? s_add(a->first, b->first) : a->first;
    r.last = b->nullable ? s_add(b->last, a->last) : b->last;
    r.trans = s_add(s_add(a->trans, b->trans), s_mul(a->last, b->first));
    r.sets = s_add(a->sets, b->sets);
    if (a->nullable)
        r.sets = s_add(r.sets, r.first);
    if (b->nullable)
        r.sets = s_add(r.sets, r.last);
    r.groups = s_add(a->groups, b->groups);
    r.nullable = a->nullable && b->nullable;
    return r;
}

/* s_alt: a or b. */
static cost_t s_alt(const cost_t *a, const cost_t *b)
{
    cost_t r;

    r.pos = s_add(a->pos, b->pos);
    r.first = s_add(a->first, b->first);
    r.last = s_add(a->last, b->last);
    r.trans = s_add(a->trans, b->trans);
    r.sets = s_add(s_add(a->sets, b->sets), s_add(r.first, r.last));
    r.groups = s_add(a->groups, b->groups);
    r.nullable = a->nullable || b->nullable;
    return r;
}

/* s_loop: a repeated min..unbounded times (min 0 or 1). */
static cost_t s_loop(const cost_t *a, long min)
{
    cost_t r = *a;

    r.trans = s_add(r.trans, s_mul(a->last, a->first));
    r.nullable = min == 0 || a->nullable;
    return r;
}

/* s_repeat: a{m,n} (n -1: unbounded) as TRE builds it: m copies, then
 * an unbounded loop or n - m nested optional copies. */
static cost_t s_repeat(scan_t *sc, const cost_t *a, long m, long n)
{
    const cost_t empty = {.nullable = true};
    cost_t seq1 = empty, seq2 = empty, t;

    if (m <= 1 && n <= 1) { /* not copied: a loop, an option, or a */
        if (n < 0)
            return s_loop(a, m);
        seq1 = *a;
        seq1.nullable = a->nullable || m == 0;
        return seq1;
    }
    for (long i = 0; i < m && !sc->over; i++) {
        seq1 = i == 0 ? *a : s_cat(&seq1, a);
        sc->over = s_heavy(&seq1);
    }
    if (n < 0) {
        seq2 = s_loop(a, 0);
    } else {
        for (long i = m; i < n && !sc->over; i++) {
            t = i == m ? *a : s_cat(a, &seq2);
            seq2 = s_alt(&empty, &t);
            sc->over = s_heavy(&seq2);
        }
    }
    if (m == 0)
        return seq2;
    return n == m ? seq1 : s_cat(&seq1, &seq2);
}

/* s_bracket: the cost of the bracket expression at sc->s, which it
 * passes: one position, with an entry per member or range. */
static cost_t s_bracket(scan_t *sc)
{
    const char *end = s_bracket_end(sc->s);
    uint64_t w = 1;

    for (const char *p = sc->s + 1; p < end; p++)
        w += *p != '-';
    sc->s = *end ? end + 1 : end;
    return (cost_t){.pos = 1, .first = w, .last = w, .sets = 2 * w};
}

static cost_t s_branches(scan_t *sc);

/* s_atom: the cost of the atom at sc->s, which it passes. */
static cost_t s_atom(scan_t *sc)
{
    const cost_t one = {.pos = 1, .first = 1, .last = 1, .sets = 2};
    const cost_t assertion = {.nullable = true};
    cost_t r;
    char c = *sc->s;

    switch (c) {
    case '(':
        if (++sc->depth > ERE_MAX_DEPTH) {
            sc->over = true;
            return assertion;
        }
        sc->s++;
        r = s_branches(sc);
        sc->s += *sc->s == ')';
        sc->depth--;
        r.groups = s_add(r.groups, 1);
        return r;
    case '[': return s_bracket(sc);
    case '^':
    case '$': sc->s++; return assertion;
    case '\\':
        c = sc->s[1];
        sc->s += 1 + (c != '\0');
        if (c && strchr("bB<>", c))
            return assertion;
        if (c && strchr("wWsS", c)) /* a class, and maybe '_' */
            return (cost_t){.pos = 1, .first = 3, .last = 3, .sets = 6};
        return one;
    default:
        sc->s++;
        return c == '.' ? (cost_t){.pos = 1, .first = 2, .last = 2, .sets = 4}
                        : one;
    }
}

/* s_piece: an atom and the repetitions after it. */
static cost_t s_piece(scan_t *sc)
{
    cost_t r = s_atom(sc);
    long m, n;
    size_t k;

    while (!sc->over) {
        char c = *sc->s;
        if (c == '*' || c == '+' || c == '?') {
            sc->s++;
            r = s_repeat(sc, &r, c == '+', c == '?' ? 1 : -1);
        } else if (c == '{' && (k = s_interval(sc->s, &m, &n)) > 0) {
            sc->s += k;
            r = s_repeat(sc, &r, m, n);
        } else {
            break;
        }
        sc->over = sc->over || s_heavy(&r);
    }
    return r;
}

/* s_branches: the alternatives up to the ')' or the end at sc->s. */
static cost_t s_branches(scan_t *sc)
{
    cost_t alt = {.nullable = true}, seq = {.nullable = true}, p;
    bool any = false;

    while (!sc->over) {
        if (*sc->s == '\0' || *sc->s == ')' || *sc->s == '|') {
            alt = any ? s_alt(&alt, &seq) : seq;
            any = true;
            if (*sc->s != '|')
                break;
            sc->s++;
            seq = (cost_t){.nullable = true};
            continue;
        }
        p = s_piece(sc);
        seq = s_cat(&seq, &p);
        sc->over = sc->over || s_heavy(&seq);
    }
    return alt;
}

/* ------------------------------------------------------------------ */
/* Compiling                                                          */
/* ------------------------------------------------------------------ */

int ere_compile(regex_t *re, const char *expr, int cflags, char *err,
                size_t errlen)
{
    size_t len = strlen(expr);
    scan_t sc = {0};
    cost_t c;
    char *tre;
    regex_t out;
    int rc;

    if (len > ERE_MAX_LEN) {
        snprintf(err, errlen, "longer than %d bytes", ERE_MAX_LEN);
        return -1;
    }
    if (!(tre = malloc(5 * len + 1))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (s_translate(expr, tre, err, errlen) != 0)
        goto fail;
    sc.s = tre;
    c = s_branches(&sc);
    while (*sc.s && !sc.over) { /* an unmatched ')': TRE decides */
        sc.s++;
        c = s_branches(&sc);
    }
    if (sc.over || s_heavy(&c)) {
        snprintf(err, errlen,
                 "too complex (too many nested or optional repetitions "
                 "or alternatives; split it into several expressions)");
        goto fail;
    }
    if ((rc = tre_regcomp(&out, tre, REG_EXTENDED | cflags)) != 0) {
        tre_regerror(rc, &out, err, errlen);
        goto fail;
    }
    if ((rc = tre_have_approx(&out)) || tre_have_backrefs(&out)) {
        snprintf(err, errlen, "%s",
                 rc ? "approximate matching ('{~1}') is not POSIX syntax"
                    : "back references are refused");
        tre_regfree(&out);
        goto fail;
    }
    free(tre);
    *re = out;
    return 0;

fail:
    free(tre);
    return -1;
}
