/*
 * line.h -- carbon plaintext line parser: validation and name cleansing.
 *
 * Pure core (no I/O, no allocation, no global state).  The ingest shell
 * (src/ingest.c) splits its input on '\n', hands each line here, and packs
 * the canonical line this module writes into a batch for the orchester.
 * The pickle decoder hands each decoded datapoint to line_canon() so both
 * protocols get the same validation and cleansing.  The orchester checks
 * that every line of a satellite's batch is canonical with line_check().
 */
#ifndef ORCHESTER_LINE_H
#define ORCHESTER_LINE_H

#include <stddef.h>

/* Why a line was refused (LINE_OK when it was accepted). */
typedef enum {
    LINE_OK = 0,       /* accepted; the canonical line is in out */
    LINE_EMPTY,        /* nothing but white space: skipped, not an error */
    LINE_FIELDS,       /* not exactly three fields */
    LINE_NAME,         /* the name is empty after cleansing */
    LINE_VALUE,        /* the value is not a number */
    LINE_NAN,          /* the value is NaN: dropped, as carbon drops it */
    LINE_TIMESTAMP,    /* the timestamp is not a number */
    LINE_TOOLONG,      /* the canonical line does not fit in outcap */
    LINE_UNTERMINATED, /* the stream ended inside a line (no '\n'): the
                          part is discarded.  Set by the ingest shell,
                          never returned by the parser */
    LINE_NSTATUS       /* number of statuses, for counter arrays */
} line_status_t;

/* Result of a successful parse. */
typedef struct {
    size_t len;     /* bytes of the canonical line in out, '\n' included */
    size_t namelen; /* bytes of the routing name: up to the first ';' */
    size_t fulllen; /* bytes of the whole name, tags included */
} line_result_t;

/*
 * line_parse: validate and cleanse one plaintext line.
 *   buf/len  one line without its '\n'; '\r' anywhere is ignored.
 *   now      the current time in seconds, used for the timestamp -1.
 *   out      caller-owned buffer of outcap bytes; on LINE_OK it holds the
 *            canonical line "name value timestamp\n" (not NUL-terminated).
 *   res      filled on LINE_OK.
 * Rules: runs of spaces/tabs separate fields; exactly three fields; the value
 * is a float as carbon's float() takes it (1e3, -7.5, inf, infinity, in any
 * case); NaN is LINE_NAN; the timestamp is a decimal number (integer or
 * float), and -1 means now.  The value and timestamp are copied as written
 * (except -1).  Name cleansing: runs of '.' collapse to one, leading and
 * trailing '.' are stripped, bytes outside [A-Za-z0-9] and "-_:#" become '_';
 * from the first ';' on (the tags) the text is kept, except bytes outside
 * printable ASCII (and space) which become '_'.  A name with nothing left
 * before its ';' is LINE_NAME.  Only the exact text "-1" means now.
 * When a line is bad in several ways, the first bad field in line order
 * wins (fields, name, value or nan, timestamp), and LINE_TOOLONG comes last.
 * On any status but LINE_OK, out holds unspecified bytes (never past outcap)
 * and res is untouched.
 * Any thread may call it; it is reentrant.
 */
line_status_t line_parse(const char *buf, size_t len, long long now, char *out,
                         size_t outcap, line_result_t *res);

/*
 * line_canon: the same validation and cleansing for a datapoint that comes
 * already split (the pickle decoder's path).  name/namelen is the metric path,
 * value and ts the textual value and timestamp (the decoder formats numbers
 * it decoded; it must write the timestamp -1 as "-1" to mean now).  A space
 * or tab in the name is cleansed like any other byte; a value or timestamp
 * holding one is refused; '\r' is ignored as in line_parse.  Returns as
 * line_parse does, but never LINE_EMPTY or LINE_FIELDS.
 */
line_status_t line_canon(const char *name, size_t namelen, const char *value,
                         size_t valuelen, const char *ts, size_t tslen,
                         long long now, char *out, size_t outcap,
                         line_result_t *res);

/* LINE_CANON_MAX: the longest canonical line, its '\n' included, that
 * line_parse() or line_canon() writes for input of at most maxline bytes:
 * the timestamp "-1" may grow into the 20 characters of a long long. */
#define LINE_CANON_MAX(maxline) ((size_t)(maxline) + 19)

/*
 * line_check: whether line/len is exactly a canonical line as line_parse()
 * and line_canon() write it, at most maxlen bytes with its '\n' (the
 * orchester checks every line of a satellite's batch with it, maxlen being
 * LINE_CANON_MAX of -M).  Canonical means:
 *   - one '\n', the last byte; no '\r', no tab, exactly two spaces;
 *   - the routing name: one or more runs of [A-Za-z0-9] and "-_:#", joined
 *     by single '.' (none first or last);
 *   - optionally the tags: a ';', then any bytes of printable ASCII but
 *     space (0x21 to 0x7e);
 *   - ' ', the value as line_parse() takes it (a decimal float, inf or
 *     infinity in any case; never nan);
 *   - ' ', the timestamp: [sign] digits, optionally '.' and a fraction (at
 *     least one digit), but not exactly "-1", which the parser replaces.
 * Such a line is its own canonical form: line_parse() of it (without its
 * '\n') writes the same bytes back, whatever now is.
 * Returns 0 and sets *namelen to the routing name's length, or -1 (then
 * *namelen is untouched).  Pure; any thread may call it.
 */
int line_check(const char *line, size_t len, size_t maxlen, size_t *namelen);

/* line_status_str: a short lower-case name for a status ("fields", ...).
 * Returns a static string; never NULL. */
const char *line_status_str(line_status_t st);

#endif
