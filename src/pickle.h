/*
 * pickle.h -- carbon pickle decoder: bounded, and it never executes anything.
 *
 * Pure core (no I/O, no logging, no global state).  The ingest shell
 * (src/ingest.c) reads a pickle frame from a client (a 4-byte big-endian
 * length, then the pickle), hands the pickle bytes here, and gets one
 * callback per datapoint with the path, the value and the timestamp as text.
 * It hands each of them to line_canon() (src/line.h), so pickle and plaintext
 * datapoints get the same validation and cleansing.
 *
 * What is accepted: a pickle (protocols 0 to 5) whose result is a list of
 * (path, (timestamp, value)) items, lists standing for tuples anywhere (and a
 * tuple for the outer list), as carbon's receiver iterates them.  The path
 * is a string; the timestamp and the value are numbers, booleans or strings.
 * Only the opcodes that build strings, numbers, lists and tuples, the memo,
 * and the stack and framing opcodes are known; anything that imports, calls
 * or builds an object (GLOBAL, REDUCE, BUILD, ...), dicts, sets, out-of-band
 * buffers and unknown opcodes refuse the frame.  A refused frame gives no
 * datapoint at all: the whole frame is decoded into a per-decoder arena
 * first, its shape is checked, and only then are the datapoints handed out.
 *
 * Nesting: the decoder never recurses.  A container's depth is fixed by what
 * it holds when it is built or appended to (a list filled after it was put
 * in another, through the memo, does not deepen the other), so max_depth is
 * a sanity bound; the safety comes from never walking more than three
 * levels, which also makes cycles built through the memo harmless.
 *
 * Memory: the arena grows with the frame (at most about 30 bytes per frame
 * byte, far less for real frames) and the memo is at most
 * 4 * max_memo bytes; the caller bounds the frame length.  A decoder keeps
 * its arena between frames and releases it when a frame made it large.
 * Python's pickler spends 3 memo entries per datapoint, so the default
 * memo limit admits Python-written frames of up to 33333 datapoints
 * (carbon's senders write 500 or so per frame).
 *
 * Numbers and strtod/snprintf: the decoder relies on the "C" LC_NUMERIC
 * locale (the default until a program calls setlocale).
 */
#ifndef ORCHESTER_PICKLE_H
#define ORCHESTER_PICKLE_H

#include <stddef.h>

#define PICKLE_DEFAULT_MAX_DEPTH  64     /* nesting of containers and marks */
#define PICKLE_DEFAULT_MAX_ITEMS  100000 /* elements of one list or tuple */
#define PICKLE_DEFAULT_MAX_MEMO   100000 /* memo indexes 0 .. max - 1 */
#define PICKLE_DEFAULT_MAX_STRING 65536  /* bytes of one decoded string */

/* Limits of one decoder.  A field left 0 takes its PICKLE_DEFAULT_ value. */
typedef struct {
    size_t max_depth;  /* deepest nesting of containers, and most open
                          MARKs; capped at 65535 */
    size_t max_items;  /* most elements in any one list or tuple (so most
                          datapoints per frame); the stack holds at most
                          max_items + max_depth + 8 entries */
    size_t max_memo;   /* memo indexes must be below this */
    size_t max_string; /* most bytes of one string (after unescaping) and
                          of one LONG1/LONG4 integer */
} pickle_limits_t;

/* Why a frame was refused (PICKLE_OK when it was accepted). */
typedef enum {
    PICKLE_OK = 0,      /* decoded; every datapoint was handed out */
    PICKLE_TRUNCATED,   /* no STOP, or an operand runs past the end */
    PICKLE_UNSAFE,      /* an opcode that imports, calls or builds objects:
                           GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ,
                           NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID */
    PICKLE_UNSUPPORTED, /* a type carbon data never holds: dict, set,
                           frozenset, out-of-band buffer */
    PICKLE_OPCODE,      /* an unknown opcode */
    PICKLE_PROTOCOL,    /* PROTO names a protocol above 5 */
    PICKLE_OPERAND,     /* a malformed operand: number text, quoting, escape,
                           negative length */
    PICKLE_STACK,       /* stack underflow, no MARK where one is needed,
                           APPEND to a non-list, or not exactly one object
                           left at STOP */
    PICKLE_MEMO,        /* GET of a memo index that was never PUT */
    PICKLE_MEMO_LIMIT,  /* a memo index at or above max_memo */
    PICKLE_DEPTH,       /* nesting or open MARKs over max_depth */
    PICKLE_ITEMS,       /* a container or the stack over its limit */
    PICKLE_STRING,      /* a string or big integer over max_string */
    PICKLE_SHAPE,       /* the result is not a list of
                           (path, (timestamp, value)): a non-string path,
                           None or a container as timestamp or value, ... */
    PICKLE_TOOBIG,      /* the frame is 2 GiB or more */
    PICKLE_NOMEM,       /* out of memory */
    PICKLE_NSTATUS      /* number of statuses, for counter arrays */
} pickle_status_t;

/* Called once per datapoint of an accepted frame, in frame order.  The
 * fields are text, not NUL-terminated, and valid only during the call:
 *   name/namelen    the path as sent (any bytes; str paths in UTF-8);
 *   value/valuelen  the value: integers in decimal ("-42",
 *                   "18446744073709551615"), booleans as "1"/"0", floats
 *                   as the shortest decimal that reads back to the same
 *                   double (integral ones below 2^53 as integers, "42";
 *                   from 1e-5 to 1e15 positional, "0.1", "0.00001";
 *                   others as %g does, "1e-300", "1e+22"), "nan", "inf",
 *                   "-inf", "-0"; integers beyond 64 bits as floats;
 *                   strings as sent (NaN and non-numbers are the caller's
 *                   to refuse, as line_canon() does);
 *   ts/tslen        the timestamp, formatted the same way.
 * The callback runs on the decoding thread and must not call back into the
 * same decoder. */
typedef void (*pickle_point_fn)(void *arg, const char *name, size_t namelen,
                                const char *value, size_t valuelen,
                                const char *ts, size_t tslen);

/* An opaque decoder: limits plus an arena kept between frames. */
typedef struct _pickle_t pickle_t;

/* pickle_limits_default: fill *lim with the PICKLE_DEFAULT_ values. */
void pickle_limits_default(pickle_limits_t *lim);

/*
 * pickle_new: a decoder with the limits *lim (NULL for the defaults; a 0
 * field takes its default).  Returns it, or NULL when out of memory.  The
 * caller owns it and frees it with pickle_destroy().  One decoder serves one
 * thread at a time.
 */
pickle_t *pickle_new(const pickle_limits_t *lim);

/* pickle_destroy: free *self_p and set it to NULL.  Safe on NULL and twice. */
void pickle_destroy(pickle_t **self_p);

/*
 * pickle_run: decode one frame's pickle, buf/len (without the length
 * prefix), with self's arena.  Returns 0 when the frame was accepted: fn was
 * then called once per datapoint and *npoints is their number.  Returns -1
 * when it was refused: fn was not called and *npoints is 0.  *why (when why
 * is not NULL) says which.  fn may be NULL (the datapoints are only
 * counted), and npoints may be NULL.  Bytes after STOP are ignored, as
 * Python's pickle.loads ignores them.  buf is only read, and only while
 * pickle_run runs.
 */
int pickle_run(pickle_t *self, const unsigned char *buf, size_t len,
               pickle_point_fn fn, void *arg, pickle_status_t *why,
               size_t *npoints);

/*
 * pickle_decode: pickle_run() with a decoder made for this one call, with
 * the limits *lim (NULL for the defaults).  Returns as pickle_run.  Any
 * thread may call it; it is reentrant.  A caller that decodes many frames
 * should keep a pickle_t instead, which spares the allocations.
 */
int pickle_decode(const unsigned char *buf, size_t len,
                  const pickle_limits_t *lim, pickle_point_fn fn, void *arg,
                  pickle_status_t *why, size_t *npoints);

/* pickle_status_str: a short lower-case name for a status ("truncated",
 * "unsafe", ...).  Returns a static string; never NULL. */
const char *pickle_status_str(pickle_status_t st);

#endif
