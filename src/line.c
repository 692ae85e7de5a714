/*
 * line.c -- carbon plaintext line parser: validation and name cleansing.
 *
 * Pure core (no I/O, no allocation, no global state, no locale).  The ingest
 * shell (src/ingest.c) calls line_parse() for every line it reads; the pickle
 * decoder calls line_canon() for every datapoint it decodes.  Both write the
 * canonical line "name value timestamp\n" into a caller-owned buffer, which
 * the ingest shell packs into a batch for the router.  line_check() is the
 * other direction: the batch codec (src/batch.c) asks it whether a line a
 * satellite sent is exactly what these functions write.
 *
 * This is the hot path (millions of lines a second): every check is a
 * hand-written scan over the bytes, the value and timestamp are validated
 * and copied as text, never converted, and the name is cleansed in one pass
 * through a byte table straight into the output buffer.
 *
 * When a line is bad in several ways the first bad field wins, in line order
 * (fields, name, value, timestamp); LINE_TOOLONG comes last, so a line that
 * is both malformed and too long is counted as malformed.
 */
#include "line.h"

#include <assert.h>
#include <string.h>

/*
 * Name bytes before the first ';': the byte to write for each input byte.
 * Letters, digits and "-_:#" map to themselves, every other byte to '_',
 * except the three bytes the loop handles itself, marked 0: '\r' (ignored),
 * '.' (collapsed and trimmed) and ';' (start of the tags).  One more byte
 * than the table for the literal's own NUL.
 */
static const char s_path_map[256 + 1] =
    "_____________\0__"
    "________________" /* 0x00: '\r' */
    "___#_________-\0_"
    "0123456789:\0____" /* 0x20: '.', 0x30: ';' */
    "_ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZ_____" /* 0x40 */
    "_abcdefghijklmno"
    "pqrstuvwxyz_____" /* 0x60 */
    "________________"
    "________________" /* 0x80 */
    "________________"
    "________________"
    "________________"
    "________________"
    "________________"
    "________________";

/* The next byte of p[0..n) from *i on, skipping '\r'; -1 at the end. */
static int s_next(const char *p, size_t n, size_t *i)
{
    while (*i < n && p[*i] == '\r')
        (*i)++;
    return *i < n ? (unsigned char)p[(*i)++] : -1;
}

static int s_digit(int c)
{
    return c >= '0' && c <= '9';
}

/*
 * Check a value as carbon's float() takes it in decimal: [sign] then either
 * digits with an optional '.' (at least one digit overall) and an optional
 * exponent, or inf / infinity / nan in any case.  Returns LINE_OK, LINE_NAN
 * or LINE_VALUE.
 */
static line_status_t s_value(const char *p, size_t n)
{
    size_t i = 0, nd = 0, k = 0;
    int c = s_next(p, n, &i);
    char w[9];

    if (c == '+' || c == '-')
        c = s_next(p, n, &i);
    if ((c | 0x20) == 'i' || (c | 0x20) == 'n') {
        for (; c != -1 && k < sizeof w; c = s_next(p, n, &i))
            w[k++] = (char)(c | 0x20);
        if (c != -1)
            return LINE_VALUE;
        if (k == 3 && memcmp(w, "nan", 3) == 0)
            return LINE_NAN;
        if ((k == 3 && memcmp(w, "inf", 3) == 0) ||
            (k == 8 && memcmp(w, "infinity", 8) == 0))
            return LINE_OK;
        return LINE_VALUE;
    }
    for (; s_digit(c); c = s_next(p, n, &i))
        nd++;
    if (c == '.')
        for (c = s_next(p, n, &i); s_digit(c); c = s_next(p, n, &i))
            nd++;
    if (nd == 0)
        return LINE_VALUE;
    if (c == 'e' || c == 'E') {
        c = s_next(p, n, &i);
        if (c == '+' || c == '-')
            c = s_next(p, n, &i);
        if (!s_digit(c))
            return LINE_VALUE;
        while (s_digit(c))
            c = s_next(p, n, &i);
    }
    return c == -1 ? LINE_OK : LINE_VALUE;
}

/*
 * Check a timestamp: [sign] digits with an optional '.' and fraction (at
 * least one digit overall).  Returns 1 for exactly "-1" (meaning now), 0 for
 * any other valid timestamp, -1 for a bad one.
 */
static int s_stamp(const char *p, size_t n)
{
    size_t i = 0, nd = 0;
    int c = s_next(p, n, &i), neg = 0, first = 0, dot = 0;

    if (c == '+' || c == '-') {
        neg = c == '-';
        c = s_next(p, n, &i);
    }
    first = c;
    for (; s_digit(c); c = s_next(p, n, &i))
        nd++;
    if (c == '.') {
        dot = 1;
        for (c = s_next(p, n, &i); s_digit(c); c = s_next(p, n, &i))
            nd++;
    }
    if (nd == 0 || c != -1)
        return -1;
    return neg && !dot && nd == 1 && first == '1';
}

/*
 * Cleanse the name p[0..n) into out[0..cap) from offset 0.  On LINE_OK sets
 * *o to the bytes written and *namelen to the bytes before the ';'.  Returns
 * LINE_NAME when nothing is left before the ';', LINE_TOOLONG when out is
 * full (the name is then known not to be empty).
 */
static line_status_t s_name(const char *p, size_t n, char *out, size_t cap,
                            size_t *o, size_t *namelen)
{
    size_t i, w = 0;
    int dot = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char m = s_path_map[c];

        if (m != 0) {
            if (w + dot >= cap)
                return LINE_TOOLONG;
            if (dot)
                out[w++] = '.';
            out[w++] = m;
            dot = 0;
        } else if (c == '.') {
            dot = w > 0; /* leading dots vanish, runs become one */
        } else if (c == ';') {
            break; /* a pending trailing dot is dropped */
        }
    }
    if (w == 0)
        return LINE_NAME;
    *namelen = w;
    for (; i < n; i++) { /* the tags, from the ';' on */
        unsigned char c = (unsigned char)p[i];

        if (c == '\r')
            continue;
        if (w == cap)
            return LINE_TOOLONG;
        out[w++] = c > ' ' && c < 0x7f ? (char)c : '_';
    }
    *o = w;
    return LINE_OK;
}

/* Append p[0..n) without its '\r' bytes.  Returns 0, or -1 when full. */
static int s_copy(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    const char *end = p + n;

    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        size_t k = (size_t)((cr ? cr : end) - p);

        if (k > cap - *o)
            return -1;
        if (k > 0)
            memcpy(out + *o, p, k);
        *o += k;
        p += k + (cr != NULL);
    }
    return 0;
}

/* Append one byte.  Returns 0, or -1 when full. */
static int s_putc(char *out, size_t cap, size_t *o, char c)
{
    if (*o == cap)
        return -1;
    out[(*o)++] = c;
    return 0;
}

/* Append v in decimal.  Returns 0, or -1 when full. */
static int s_putll(char *out, size_t cap, size_t *o, long long v)
{
    char tmp[24];
    size_t k = sizeof tmp;
    unsigned long long u =
        v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        tmp[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--k] = '-';
    return s_copy(out, cap, o, tmp + k, sizeof tmp - k);
}

/* Validate the three fields and write the canonical line (see line_canon). */
static line_status_t s_build(const char *name, size_t namelen,
                             const char *value, size_t valuelen, const char *ts,
                             size_t tslen, long long now, char *out,
                             size_t outcap, line_result_t *res)
{
    size_t o = 0, path = 0, full;
    line_status_t st = s_name(name, namelen, out, outcap, &o, &path);
    line_status_t vs;
    int t;

    if (st == LINE_NAME)
        return st;
    vs = s_value(value, valuelen);
    if (vs != LINE_OK)
        return vs;
    t = s_stamp(ts, tslen);
    if (t < 0)
        return LINE_TIMESTAMP;
    if (st == LINE_TOOLONG)
        return st;
    full = o;
    if (s_putc(out, outcap, &o, ' ') != 0 ||
        s_copy(out, outcap, &o, value, valuelen) != 0 ||
        s_putc(out, outcap, &o, ' ') != 0 ||
        (t ? s_putll(out, outcap, &o, now)
           : s_copy(out, outcap, &o, ts, tslen)) != 0 ||
        s_putc(out, outcap, &o, '\n') != 0)
        return LINE_TOOLONG;
    res->len = o;
    res->namelen = path;
    res->fulllen = full;
    return LINE_OK;
}

line_status_t line_parse(const char *buf, size_t len, long long now, char *out,
                         size_t outcap, line_result_t *res)
{
    const char *f[4];
    size_t fl[4], nf = 0, i = 0;

    assert(res != NULL && (out != NULL || outcap == 0));
    assert(buf != NULL || len == 0);
    while (nf < 4) {
        size_t s;

        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'))
            i++;
        if (i == len)
            break;
        for (s = i; i < len && buf[i] != ' ' && buf[i] != '\t'; i++)
            ;
        f[nf] = buf + s;
        fl[nf++] = i - s;
    }
    if (nf == 0)
        return LINE_EMPTY;
    if (nf != 3)
        return LINE_FIELDS;
    return s_build(f[0], fl[0], f[1], fl[1], f[2], fl[2], now, out, outcap,
                   res);
}

line_status_t line_canon(const char *name, size_t namelen, const char *value,
                         size_t valuelen, const char *ts, size_t tslen,
                         long long now, char *out, size_t outcap,
                         line_result_t *res)
{
    assert(res != NULL && (out != NULL || outcap == 0));
    assert((name != NULL || namelen == 0) && (value != NULL || valuelen == 0) &&
           (ts != NULL || tslen == 0));
    return s_build(name, namelen, value, valuelen, ts, tslen, now, out, outcap,
                   res);
}

int line_check(const char *line, size_t len, size_t maxlen, size_t *namelen)
{
    size_t i, path;
    const char *value, *sp;

    assert(line != NULL || len == 0);
    if (len < 6 || len > maxlen || line[len - 1] != '\n' ||
        memchr(line, '\r', len) != NULL)
        return -1;
    len--;                      /* the '\n' */
    for (i = 0; i < len; i++) { /* the routing name */
        unsigned char c = (unsigned char)line[i];

        if (c == '.') {
            if (i == 0 || line[i - 1] == '.')
                return -1;
        } else if (s_path_map[c] != (char)c) {
            break;
        }
    }
    if (i == 0 || line[i - 1] == '.')
        return -1;
    path = i;
    if (i < len && line[i] == ';') /* the tags */
        for (i++; i < len && (unsigned char)line[i] > ' ' &&
                  (unsigned char)line[i] < 0x7f;
             i++)
            ;
    if (i == len || line[i] != ' ')
        return -1;
    value = line + i + 1;
    sp = memchr(value, ' ', len - (i + 1));
    if (sp == NULL || s_value(value, (size_t)(sp - value)) != LINE_OK ||
        s_stamp(sp + 1, (size_t)(line + len - (sp + 1))) != 0)
        return -1;
    *namelen = path;
    return 0;
}

const char *line_status_str(line_status_t st)
{
    static const char *const names[LINE_NSTATUS] = {
        "ok",  "empty",     "fields",  "name",         "value",
        "nan", "timestamp", "toolong", "unterminated",
    };

    if ((unsigned)st >= LINE_NSTATUS)
        return "unknown";
    return names[st];
}
