/*
 * pickle.c -- carbon pickle decoder: bounded, and it never executes anything.
 *
 * See pickle.h for the contract.  How it works: one pass over the opcodes
 * builds objects in an arena (an array of small fixed-size objects, list
 * and tuple elements in an array of linked cells, unescaped text in a byte
 * array), with the pickle stack, the MARK stack and the memo holding object
 * indexes.  Strings that need no unescaping are not copied: their objects
 * point into the frame.  Because the memo holds indexes, a list fetched from
 * the memo is the same list, appends included, as Python's is.  At STOP the
 * result's shape is checked, and only then are the datapoints formatted and
 * handed out.  Nothing recurses: the shape check looks three levels deep and
 * no further, so cyclic lists built through the memo are harmless.
 *
 * Every opcode takes at least one byte and makes at most one object and one
 * stack entry, so the arena grows with the frame; list and tuple elements
 * come from stack entries, so the cells grow with the frame too.
 */
#include "pickle.h"
#include "numfmt.h"
#include "pickle_ops.h"
#include "pyesc.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinds of arena objects. */
enum {
    K_NONE = 0, /* None */
    K_INT,      /* an integer that fits int64 (booleans too) */
    K_UINT,     /* an integer in INT64_MAX+1 .. UINT64_MAX */
    K_FLOAT,    /* a float, or an integer beyond 64 bits */
    K_BYTES,    /* a string held in the frame itself */
    K_TEXT,     /* a string held in the text arena (it was unescaped) */
    K_LIST,     /* a list: appends go to its tail */
    K_TUPLE     /* a tuple */
};

#define NIL        UINT32_MAX  /* no object, no cell, no memo entry */
#define MAX_LEN    0x7fffffffu /* frames must be shorter */
#define MAX_DEPTH  65535u      /* depth is kept in 16 bits */
#define MAX_DIGITS 4300        /* as Python's int() takes by default */
#define KEEP_BYTES (1u << 20)  /* larger arrays are freed after a frame */
#define NUMBUF     64          /* room for any formatted number */

/* One arena object: 16 bytes. */
typedef struct {
    uint8_t kind;   /* K_ */
    uint8_t spare;  /* unused, keeps the layout explicit */
    uint16_t depth; /* 0 for scalars; 1 + the deepest element as built */
    uint32_t n;     /* bytes of a string, elements of a container */
    union {
        int64_t i;    /* K_INT */
        uint64_t u;   /* K_UINT */
        double d;     /* K_FLOAT */
        uint32_t off; /* K_BYTES: offset in the frame; K_TEXT: in the text */
        struct {
            uint32_t head; /* first cell, NIL when empty */
            uint32_t tail; /* last cell, NIL when empty */
        } c;               /* K_LIST, K_TUPLE */
    } v;
} s_obj_t;

/* One element of a list or tuple. */
typedef struct {
    uint32_t obj;  /* the element */
    uint32_t next; /* the next cell of the same container, or NIL */
} s_cell_t;

struct _pickle_t {
    pickle_limits_t lim; /* limits, defaults filled in */
    uint32_t stack_max;  /* most stack entries: max_items + max_depth + 8 */
    const unsigned char *buf; /* the frame being decoded */
    s_obj_t *obj;             /* objects */
    uint32_t nobj;            /* objects in use */
    uint32_t cobj;            /* objects allocated */
    s_cell_t *cell;           /* container cells */
    uint32_t ncell;           /* cells in use */
    uint32_t ccell;           /* cells allocated */
    uint32_t *stack;          /* the pickle stack: object indexes */
    uint32_t sp;              /* stack entries in use */
    uint32_t cstack;          /* stack entries allocated */
    uint32_t fence;           /* stack position of the innermost MARK, or 0 */
    uint32_t *mark;           /* open MARKs: the stack positions */
    uint32_t nmark;           /* open MARKs */
    uint32_t cmark;           /* MARK entries allocated */
    uint32_t *memo;           /* memo: object index or NIL, per memo index */
    uint32_t cmemo;      /* memo entries allocated (all NIL past memo_hi) */
    uint32_t memo_hi;    /* 1 + the highest memo index set in this frame */
    uint32_t memo_count; /* distinct memo indexes set (for MEMOIZE) */
    unsigned char *text; /* unescaped strings */
    size_t ntext;        /* text bytes in use */
    size_t ctext;        /* text bytes allocated */
};

/* --- arena ------------------------------------------------------------- */

/* Grow arr (cap elements of size bytes) to hold need elements, doubling,
 * but to no more than max elements (need <= max).  Returns the new array,
 * or NULL (arr and cap untouched) when out of memory. */
static void *s_grow(void *arr, uint32_t *cap, size_t need, size_t max,
                    size_t size)
{
    size_t nc = *cap ? *cap : 256;
    void *p;

    while (nc < need)
        nc *= 2;
    if (nc > max)
        nc = max;
    p = realloc(arr, nc * size);
    if (p)
        *cap = (uint32_t)nc;
    return p;
}

/* Make room for one more object and one more stack entry (every opcode
 * needs at most that).  The stack is refused past stack_max entries. */
static pickle_status_t s_room(pickle_t *self)
{
    void *p;

    if (self->nobj >= self->cobj) {
        p = s_grow(self->obj, &self->cobj, (size_t)self->nobj + 1, MAX_LEN,
                   sizeof *self->obj);
        if (!p)
            return PICKLE_NOMEM;
        self->obj = p;
    }
    if (self->sp >= self->cstack) {
        /* the capacity never passes stack_max + 1, so a stack over
         * stack_max always comes here */
        if (self->sp > self->stack_max)
            return PICKLE_ITEMS;
        p = s_grow(self->stack, &self->cstack, (size_t)self->sp + 1,
                   (size_t)self->stack_max + 1, sizeof *self->stack);
        if (!p)
            return PICKLE_NOMEM;
        self->stack = p;
    }
    return PICKLE_OK;
}

/* Make room for k more cells. */
static pickle_status_t s_cells(pickle_t *self, uint32_t k)
{
    if ((size_t)self->ncell + k > self->ccell) {
        void *p = s_grow(self->cell, &self->ccell, (size_t)self->ncell + k,
                         MAX_LEN, sizeof *self->cell);

        if (!p)
            return PICKLE_NOMEM;
        self->cell = p;
    }
    return PICKLE_OK;
}

/* Make room for n more text bytes. */
static pickle_status_t s_text(pickle_t *self, size_t n)
{
    if (self->ctext - self->ntext < n) {
        size_t nc = self->ctext ? self->ctext : 4096;
        unsigned char *p;

        while (nc - self->ntext < n)
            nc *= 2;
        p = realloc(self->text, nc);
        if (!p)
            return PICKLE_NOMEM;
        self->text = p;
        self->ctext = nc;
    }
    return PICKLE_OK;
}

/* A new object of kind k pushed on the stack (room made by s_room). */
static inline s_obj_t *s_push_new(pickle_t *self, int kind)
{
    uint32_t i = self->nobj++;
    s_obj_t *o = &self->obj[i];

    o->kind = (uint8_t)kind;
    o->spare = 0;
    o->depth = 0;
    o->n = 0;
    self->stack[self->sp++] = i;
    return o;
}

static inline void s_push_int(pickle_t *self, int64_t v)
{
    s_push_new(self, K_INT)->v.i = v;
}

static inline void s_push_uint(pickle_t *self, uint64_t v)
{
    if (v <= INT64_MAX)
        s_push_int(self, (int64_t)v);
    else
        s_push_new(self, K_UINT)->v.u = v;
}

static inline void s_push_float(pickle_t *self, double v)
{
    s_push_new(self, K_FLOAT)->v.d = v;
}

/* Push a string of n bytes at off (in the frame, or in the text arena). */
static inline pickle_status_t s_push_str(pickle_t *self, int kind, size_t off,
                                         size_t n)
{
    s_obj_t *o;

    if (n > self->lim.max_string)
        return PICKLE_STRING;
    o = s_push_new(self, kind);
    o->n = (uint32_t)n;
    o->v.off = (uint32_t)off;
    return PICKLE_OK;
}

/* Move stack[from .. sp) into a new container of kind, pushed in their
 * place.  from must not be below the fence. */
static pickle_status_t s_seq(pickle_t *self, int kind, uint32_t from)
{
    uint32_t k = self->sp - from, i, base, depth = 0;
    pickle_status_t st;
    s_obj_t *o;

    if (k > self->lim.max_items)
        return PICKLE_ITEMS;
    if ((st = s_cells(self, k)) != PICKLE_OK)
        return st;
    base = self->ncell;
    for (i = 0; i < k; i++) {
        uint32_t e = self->stack[from + i];
        uint32_t d = self->obj[e].depth;

        if (d > depth)
            depth = d;
        self->cell[base + i].obj = e;
        self->cell[base + i].next = base + i + 1;
    }
    if (depth + 1 > self->lim.max_depth)
        return PICKLE_DEPTH;
    self->ncell += k;
    self->sp = from;
    o = s_push_new(self, kind);
    o->depth = (uint16_t)(depth + 1);
    o->n = k;
    if (k) {
        self->cell[base + k - 1].next = NIL;
        o->v.c.head = base;
        o->v.c.tail = base + k - 1;
    } else
        o->v.c.head = o->v.c.tail = NIL;
    return PICKLE_OK;
}

/* Append stack[from .. sp) to the list at stack[from - 1], and pop them. */
static pickle_status_t s_append(pickle_t *self, uint32_t from)
{
    uint32_t k = self->sp - from, i, base, depth;
    pickle_status_t st;
    s_obj_t *list;

    if (from == 0 || from - 1 < self->fence)
        return PICKLE_STACK;
    list = &self->obj[self->stack[from - 1]];
    if (list->kind != K_LIST)
        return PICKLE_STACK;
    if (k == 0)
        return PICKLE_OK;
    if (k > self->lim.max_items - list->n)
        return PICKLE_ITEMS;
    if ((st = s_cells(self, k)) != PICKLE_OK)
        return st;
    depth = list->depth;
    base = self->ncell;
    for (i = 0; i < k; i++) {
        uint32_t e = self->stack[from + i];
        uint32_t d = self->obj[e].depth + 1u;

        if (d > depth)
            depth = d;
        self->cell[base + i].obj = e;
        self->cell[base + i].next = base + i + 1;
    }
    if (depth > self->lim.max_depth)
        return PICKLE_DEPTH;
    self->cell[base + k - 1].next = NIL;
    if (list->n)
        self->cell[list->v.c.tail].next = base;
    else
        list->v.c.head = base;
    list->v.c.tail = base + k - 1;
    list->n += k;
    list->depth = (uint16_t)depth;
    self->ncell += k;
    self->sp = from;
    return PICKLE_OK;
}

/* The stack position of the innermost MARK, which is then closed. */
static pickle_status_t s_pop_mark(pickle_t *self, uint32_t *pos)
{
    if (self->nmark == 0)
        return PICKLE_STACK;
    *pos = self->mark[--self->nmark];
    self->fence = self->nmark ? self->mark[self->nmark - 1] : 0;
    return PICKLE_OK;
}

static pickle_status_t s_push_mark(pickle_t *self)
{
    if (self->nmark >= self->lim.max_depth)
        return PICKLE_DEPTH;
    if (self->nmark >= self->cmark) {
        void *p = s_grow(self->mark, &self->cmark, (size_t)self->nmark + 1,
                         self->lim.max_depth, sizeof *self->mark);

        if (!p)
            return PICKLE_NOMEM;
        self->mark = p;
    }
    self->mark[self->nmark++] = self->sp;
    self->fence = self->sp;
    return PICKLE_OK;
}

/* --- memo -------------------------------------------------------------- */

/* memo[idx] = the top of the stack. */
static pickle_status_t s_memo_put(pickle_t *self, uint64_t idx)
{
    if (idx >= self->lim.max_memo)
        return PICKLE_MEMO_LIMIT;
    if (self->sp <= self->fence)
        return PICKLE_STACK;
    if (idx >= self->cmemo) {
        uint32_t old = self->cmemo;
        uint32_t *p = s_grow(self->memo, &self->cmemo, (size_t)idx + 1,
                             self->lim.max_memo, sizeof *self->memo);

        if (!p)
            return PICKLE_NOMEM;
        memset(p + old, 0xff, (size_t)(self->cmemo - old) * sizeof *p);
        self->memo = p;
    }
    if (self->memo[idx] == NIL)
        self->memo_count++;
    self->memo[idx] = self->stack[self->sp - 1];
    if (idx >= self->memo_hi)
        self->memo_hi = (uint32_t)idx + 1;
    return PICKLE_OK;
}

/* Push memo[idx] (room made by s_room). */
static pickle_status_t s_memo_get(pickle_t *self, uint64_t idx)
{
    if (idx >= self->memo_hi || self->memo[idx] == NIL)
        return PICKLE_MEMO;
    self->stack[self->sp++] = self->memo[idx];
    return PICKLE_OK;
}

/* --- operands ---------------------------------------------------------- */

static inline uint32_t s_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t s_le64(const unsigned char *p)
{
    return (uint64_t)s_le32(p) | (uint64_t)s_le32(p + 4) << 32;
}

static inline int s_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Trim white space from both ends of s/n. */
static void s_trim(const unsigned char **s, size_t *n)
{
    while (*n && s_space((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n && s_space((*s)[*n - 1]))
        (*n)--;
}

/* A decimal memo index (PUT, GET).  Returns 0, or -1 when malformed. */
static int s_index_text(const unsigned char *s, size_t n, uint64_t *idx)
{
    uint64_t v = 0;
    size_t i;

    s_trim(&s, &n);
    if (n == 0 || n > 18)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *idx = v;
    return 0;
}

/* Push the integer in the text s/n (INT, LONG): optional sign, decimal
 * digits, an optional trailing 'L'.  "00" and "01" (False, True) need no
 * special case.  Past 64 bits the value becomes a float. */
static pickle_status_t s_int_text(pickle_t *self, const unsigned char *s,
                                  size_t n)
{
    bool neg = false, over = false;
    uint64_t v = 0;
    size_t i, nd;

    s_trim(&s, &n);
    if (n && s[n - 1] == 'L')
        n--;
    if (n && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s++;
        n--;
    }
    if (n == 0 || n > MAX_DIGITS)
        return PICKLE_OPERAND;
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)s[i] - '0';

        if (d > 9)
            return PICKLE_OPERAND;
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (!over) {
        if (!neg)
            s_push_uint(self, v);
        else if (v <= (uint64_t)INT64_MAX + 1)
            s_push_int(self,
                       v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v);
        else
            s_push_float(self, -(double)v);
    } else {
        /* the first 40 digits and the count of the rest give the float */
        char tmp[NUMBUF];
        size_t w = 0;

        while (n > 1 && s[0] == '0') {
            s++;
            n--;
        }
        nd = n < 40 ? n : 40;
        tmp[w++] = neg ? '-' : '+';
        memcpy(tmp + w, s, nd);
        w += nd;
        w += (size_t)snprintf(tmp + w, sizeof tmp - w, "e%zu", n - nd);
        s_push_float(self, strtod(tmp, NULL));
    }
    return PICKLE_OK;
}

/* Push the float in the text s/n (FLOAT), as Python's float() reads it. */
static pickle_status_t s_float_text(pickle_t *self, const unsigned char *s,
                                    size_t n)
{
    char tmp[128], *end;
    size_t i;
    double d;

    s_trim(&s, &n);
    if (n == 0 || n >= sizeof tmp)
        return PICKLE_OPERAND;
    for (i = 0; i < n; i++) {
        /* no hexadecimal floats, no "nan(...)", no NUL */
        if (s[i] == 'x' || s[i] == 'X' || s[i] == '(' || s[i] == 0)
            return PICKLE_OPERAND;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    d = strtod(tmp, &end);
    if (end != tmp + n)
        return PICKLE_OPERAND;
    s_push_float(self, d);
    return PICKLE_OK;
}

/* Push the little-endian two's-complement integer of n bytes at s (LONG1,
 * LONG4).  Up to 64 bits it is exact; past that it becomes a float. */
static pickle_status_t s_long_bin(pickle_t *self, const unsigned char *s,
                                  size_t n)
{
    bool neg = n && (s[n - 1] & 0x80);
    unsigned char ext = neg ? 0xff : 0x00;
    size_t used = n, i, low;
    uint64_t v = 0;
    double d = 0;

    if (n > self->lim.max_string)
        return PICKLE_STRING;
    /* drop the sign-extension bytes */
    while (used > 0 && s[used - 1] == ext)
        used--;
    if (!neg && used <= 8) {
        for (i = used; i-- > 0;)
            v = v << 8 | s[i];
        s_push_uint(self, v);
        return PICKLE_OK;
    }
    if (neg && (used < 8 || (used == 8 && (s[7] & 0x80)))) {
        for (i = 8; i-- > 0;)
            v = v << 8 | (i < n ? s[i] : 0xff);
        s_push_int(self, (int64_t)v);
        return PICKLE_OK;
    }
    if (!neg) {
        for (i = used; i-- > 0;)
            d = d * 256.0 + s[i];
        s_push_float(self, d);
        return PICKLE_OK;
    }
    /* negative: the magnitude is ~x + 1; the +1 carries through the low
     * zero bytes into the first nonzero one */
    for (low = 0; low < n && s[low] == 0; low++)
        ;
    for (i = n; i-- > 0;) {
        unsigned m = i < low    ? 0
                     : i == low ? 256u - s[i]
                                : (unsigned char)~s[i];

        d = d * 256.0 + m;
    }
    s_push_float(self, -d);
    return PICKLE_OK;
}

/* Push the quoted Python 2 string literal s/n (STRING): 'abc' or "abc",
 * with backslash escapes as Python's escape_decode reads them
 * (src/pyesc.c). */
static pickle_status_t s_string_text(pickle_t *self, const unsigned char *s,
                                     size_t n)
{
    pickle_status_t st;
    long w;

    if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
        return PICKLE_OPERAND;
    s++;
    n -= 2;
    if (!memchr(s, '\\', n))
        return s_push_str(self, K_BYTES, (size_t)(s - self->buf), n);
    /* unescaping never makes the text longer, except unknown escapes,
     * which stay as written */
    if ((st = s_text(self, n)) != PICKLE_OK)
        return st;
    if ((w = pyesc_string(s, n, self->text + self->ntext)) < 0)
        return PICKLE_OPERAND;
    if ((st = s_push_str(self, K_TEXT, self->ntext, (size_t)w)) != PICKLE_OK)
        return st;
    self->ntext += (size_t)w;
    return PICKLE_OK;
}

/* Push the raw-unicode-escape text s/n (UNICODE) as UTF-8 (src/pyesc.c). */
static pickle_status_t s_unicode_text(pickle_t *self, const unsigned char *s,
                                      size_t n)
{
    size_t j;
    pickle_status_t st;
    long w;

    for (j = 0; j < n && s[j] < 0x80 && s[j] != '\\'; j++)
        ;
    if (j == n)
        return s_push_str(self, K_BYTES, (size_t)(s - self->buf), n);
    /* at most 2 bytes out per byte in */
    if ((st = s_text(self, 2 * n)) != PICKLE_OK)
        return st;
    if ((w = pyesc_raw_unicode(s, n, self->text + self->ntext)) < 0)
        return PICKLE_OPERAND;
    if ((st = s_push_str(self, K_TEXT, self->ntext, (size_t)w)) != PICKLE_OK)
        return st;
    self->ntext += (size_t)w;
    return PICKLE_OK;
}

/* --- the opcode loop --------------------------------------------------- */

/* Within the opcode functions, p is the next byte and end the frame's end.
 * NEED: the operand must have k more bytes.  LINE: the text operand up to
 * '\n' into line/linelen, p past the '\n'.  TRY: return the status of e
 * unless it is PICKLE_OK.  ABOVE: the stack must hold k entries above the
 * innermost MARK. */
#define NEED(k)                                                                \
    do {                                                                       \
        if ((uint64_t)(end - p) < (uint64_t)(k))                               \
            return PICKLE_TRUNCATED;                                           \
    } while (0)
#define LINE()                                                                 \
    do {                                                                       \
        const unsigned char *nl_ = memchr(p, '\n', (size_t)(end - p));         \
        if (!nl_)                                                              \
            return PICKLE_TRUNCATED;                                           \
        line = p;                                                              \
        linelen = (size_t)(nl_ - p);                                           \
        p = nl_ + 1;                                                           \
    } while (0)
#define TRY(e)                                                                 \
    do {                                                                       \
        pickle_status_t st_ = (e);                                             \
        if (st_ != PICKLE_OK)                                                  \
            return st_;                                                        \
    } while (0)
#define ABOVE(k)                                                               \
    do {                                                                       \
        if (self->sp - self->fence < (uint32_t)(k))                            \
            return PICKLE_STACK;                                               \
    } while (0)

/* Run one opcode op that pushes a number or a string, or refuses the frame;
 * *pp is past op and is moved past its operand. */
static pickle_status_t s_value_op(pickle_t *self, unsigned op,
                                  const unsigned char **pp,
                                  const unsigned char *end)
{
    const unsigned char *p = *pp, *line;
    size_t linelen;
    uint64_t n;

    switch (op) {
    case OP_NONE: s_push_new(self, K_NONE); break;
    case OP_NEWTRUE:
    case OP_NEWFALSE: s_push_int(self, op == OP_NEWTRUE); break;
    case OP_INT:
    case OP_LONG:
        LINE();
        TRY(s_int_text(self, line, linelen));
        break;
    case OP_BININT:
        NEED(4);
        s_push_int(self, (int32_t)s_le32(p));
        p += 4;
        break;
    case OP_BININT1:
        NEED(1);
        s_push_int(self, *p++);
        break;
    case OP_BININT2:
        NEED(2);
        s_push_int(self, p[0] | p[1] << 8);
        p += 2;
        break;
    case OP_LONG1:
    case OP_LONG4:
        NEED(op == OP_LONG1 ? 1 : 4);
        n = op == OP_LONG1 ? *p : s_le32(p);
        p += op == OP_LONG1 ? 1 : 4;
        if (n & 0x80000000u)
            return PICKLE_OPERAND; /* a negative LONG4 length */
        if (n > self->lim.max_string)
            return PICKLE_STRING;
        NEED(n);
        TRY(s_long_bin(self, p, n));
        p += n;
        break;
    case OP_FLOAT:
        LINE();
        TRY(s_float_text(self, line, linelen));
        break;
    case OP_BINFLOAT: {
        uint64_t u = 0;
        double d;
        int i;

        NEED(8);
        for (i = 0; i < 8; i++)
            u = u << 8 | p[i];
        p += 8;
        memcpy(&d, &u, sizeof d);
        s_push_float(self, d);
        break;
    }
    case OP_STRING:
        LINE();
        TRY(s_string_text(self, line, linelen));
        break;
    case OP_UNICODE:
        LINE();
        TRY(s_unicode_text(self, line, linelen));
        break;
    case OP_SHORT_BINSTRING:
    case OP_SHORT_BINBYTES:
    case OP_SHORT_BINUNICODE:
    case OP_BINSTRING:
    case OP_BINBYTES:
    case OP_BINUNICODE:
    case OP_BINUNICODE8:
    case OP_BINBYTES8:
    case OP_BYTEARRAY8:
        if (op == OP_SHORT_BINSTRING || op == OP_SHORT_BINBYTES ||
            op == OP_SHORT_BINUNICODE) {
            NEED(1);
            n = *p++;
        } else if (op == OP_BINSTRING || op == OP_BINBYTES ||
                   op == OP_BINUNICODE) {
            NEED(4);
            n = s_le32(p);
            p += 4;
            if (op == OP_BINSTRING && (n & 0x80000000u))
                return PICKLE_OPERAND; /* a negative BINSTRING length */
        } else {
            NEED(8);
            n = s_le64(p);
            p += 8;
        }
        if (n > self->lim.max_string)
            return PICKLE_STRING;
        NEED(n);
        TRY(s_push_str(self, K_BYTES, (size_t)(p - self->buf), n));
        p += n;
        break;

    /* refused: they import, call or build objects */
    case OP_GLOBAL:
    case OP_STACK_GLOBAL:
    case OP_REDUCE:
    case OP_BUILD:
    case OP_INST:
    case OP_OBJ:
    case OP_NEWOBJ:
    case OP_NEWOBJ_EX:
    case OP_EXT1:
    case OP_EXT2:
    case OP_EXT4:
    case OP_PERSID:
    case OP_BINPERSID: return PICKLE_UNSAFE;
    /* refused: types carbon data never holds */
    case OP_EMPTY_DICT:
    case OP_DICT:
    case OP_SETITEM:
    case OP_SETITEMS:
    case OP_EMPTY_SET:
    case OP_ADDITEMS:
    case OP_FROZENSET:
    case OP_NEXT_BUFFER:
    case OP_READONLY_BUFFER: return PICKLE_UNSUPPORTED;
    default: return PICKLE_OPCODE;
    }
    *pp = p;
    return PICKLE_OK;
}

/* Decode buf/len into the arena: the framing, stack, memo and container
 * opcodes here, the rest in s_value_op.  Returns PICKLE_OK with *top the
 * index of the result, or why not. */
static pickle_status_t s_load(pickle_t *self, const unsigned char *buf,
                              size_t len, uint32_t *top)
{
    const unsigned char *p = buf, *end = buf + len, *line;
    size_t linelen;
    uint64_t n;
    uint32_t from;
    unsigned op;

    self->buf = buf;
    for (;;) {
        if (p >= end)
            return PICKLE_TRUNCATED;
        if (self->nobj >= self->cobj || self->sp >= self->cstack)
            TRY(s_room(self));
        op = *p++;
        switch (op) {
        /* framing */
        case OP_PROTO:
            NEED(1);
            if (*p++ > 5)
                return PICKLE_PROTOCOL;
            break;
        case OP_FRAME:
            NEED(8);
            n = s_le64(p);
            p += 8;
            NEED(n);
            break;
        case OP_STOP:
            if (self->nmark || self->sp != 1)
                return PICKLE_STACK;
            *top = self->stack[0];
            return PICKLE_OK;

        /* stack */
        case OP_MARK: TRY(s_push_mark(self)); break;
        case OP_POP:
            /* with nothing above the innermost MARK, POP takes the MARK */
            if (self->nmark && self->mark[self->nmark - 1] == self->sp)
                TRY(s_pop_mark(self, &from));
            else {
                ABOVE(1);
                self->sp--;
            }
            break;
        case OP_POP_MARK:
            TRY(s_pop_mark(self, &from));
            self->sp = from;
            break;
        case OP_DUP:
            ABOVE(1);
            self->stack[self->sp] = self->stack[self->sp - 1];
            self->sp++;
            break;

        /* memo */
        case OP_PUT:
        case OP_GET:
            LINE();
            if (s_index_text(line, linelen, &n) < 0)
                return PICKLE_OPERAND;
            TRY(op == OP_PUT ? s_memo_put(self, n) : s_memo_get(self, n));
            break;
        case OP_BINPUT:
            NEED(1);
            TRY(s_memo_put(self, *p++));
            break;
        case OP_LONG_BINPUT:
            NEED(4);
            n = s_le32(p);
            p += 4;
            TRY(s_memo_put(self, n));
            break;
        case OP_MEMOIZE: TRY(s_memo_put(self, self->memo_count)); break;
        case OP_BINGET:
            NEED(1);
            TRY(s_memo_get(self, *p++));
            break;
        case OP_LONG_BINGET:
            NEED(4);
            n = s_le32(p);
            p += 4;
            TRY(s_memo_get(self, n));
            break;

        /* containers */
        case OP_EMPTY_LIST:
        case OP_EMPTY_TUPLE:
            TRY(s_seq(self, op == OP_EMPTY_LIST ? K_LIST : K_TUPLE, self->sp));
            break;
        case OP_LIST:
        case OP_TUPLE:
            TRY(s_pop_mark(self, &from));
            TRY(s_seq(self, op == OP_LIST ? K_LIST : K_TUPLE, from));
            break;
        case OP_TUPLE1:
        case OP_TUPLE2:
        case OP_TUPLE3:
            from = op - OP_TUPLE1 + 1;
            ABOVE(from);
            TRY(s_seq(self, K_TUPLE, self->sp - from));
            break;
        case OP_APPEND:
            ABOVE(2);
            TRY(s_append(self, self->sp - 1));
            break;
        case OP_APPENDS:
            TRY(s_pop_mark(self, &from));
            TRY(s_append(self, from));
            break;

        /* numbers, strings, and the refused */
        default: TRY(s_value_op(self, op, &p, end));
        }
    }
}

#undef NEED
#undef LINE
#undef TRY
#undef ABOVE

/* --- output: numbers are formatted by src/numfmt.c ----------------- */

/* The text of scalar o: the string itself, or the number formatted into
 * tmp (NUMBUF bytes). */
static const char *s_scalar(const pickle_t *self, const s_obj_t *o, char *tmp,
                            size_t *len)
{
    switch (o->kind) {
    case K_INT: *len = numfmt_i64(tmp, o->v.i); return tmp;
    case K_UINT: *len = numfmt_u64(tmp, o->v.u); return tmp;
    case K_FLOAT: *len = numfmt_double(tmp, o->v.d); return tmp;
    case K_BYTES: *len = o->n; return (const char *)self->buf + o->v.off;
    default: /* K_TEXT */
        *len = o->n;
        return (const char *)self->text + o->v.off;
    }
}

static inline bool s_is_seq(const s_obj_t *o)
{
    return o->kind == K_LIST || o->kind == K_TUPLE;
}

static inline bool s_is_str(const s_obj_t *o)
{
    return o->kind == K_BYTES || o->kind == K_TEXT;
}

static inline bool s_is_scalar(const s_obj_t *o)
{
    return o->kind >= K_INT && o->kind <= K_TEXT;
}

/* Check that top is a sequence of (path, (timestamp, value)), each a
 * sequence of two, the path a string, timestamp and value scalars. */
static pickle_status_t s_check(const pickle_t *self, uint32_t top)
{
    const s_obj_t *list = &self->obj[top];
    uint32_t c;

    if (!s_is_seq(list))
        return PICKLE_SHAPE;
    for (c = list->v.c.head; c != NIL; c = self->cell[c].next) {
        const s_obj_t *item = &self->obj[self->cell[c].obj], *pair;
        uint32_t c0, c1;

        if (!s_is_seq(item) || item->n != 2)
            return PICKLE_SHAPE;
        c0 = item->v.c.head;
        c1 = self->cell[c0].next;
        pair = &self->obj[self->cell[c1].obj];
        if (!s_is_str(&self->obj[self->cell[c0].obj]) || !s_is_seq(pair) ||
            pair->n != 2)
            return PICKLE_SHAPE;
        c0 = pair->v.c.head;
        c1 = self->cell[c0].next;
        if (!s_is_scalar(&self->obj[self->cell[c0].obj]) ||
            !s_is_scalar(&self->obj[self->cell[c1].obj]))
            return PICKLE_SHAPE;
    }
    return PICKLE_OK;
}

/* Hand out the datapoints of top (checked by s_check). */
static size_t s_emit(const pickle_t *self, uint32_t top, pickle_point_fn fn,
                     void *arg)
{
    const s_obj_t *list = &self->obj[top];
    char vbuf[NUMBUF], tbuf[NUMBUF];
    size_t count = 0;
    uint32_t c;

    if (!fn)
        return list->n;
    for (c = list->v.c.head; c != NIL; c = self->cell[c].next) {
        const s_obj_t *item = &self->obj[self->cell[c].obj], *name, *pair;
        const char *ntxt, *vtxt, *ttxt;
        size_t nlen, vlen, tlen;
        uint32_t c0 = item->v.c.head, c1 = self->cell[c0].next;

        name = &self->obj[self->cell[c0].obj];
        pair = &self->obj[self->cell[c1].obj];
        c0 = pair->v.c.head;
        c1 = self->cell[c0].next;
        ntxt = s_scalar(self, name, NULL, &nlen);
        ttxt = s_scalar(self, &self->obj[self->cell[c0].obj], tbuf, &tlen);
        vtxt = s_scalar(self, &self->obj[self->cell[c1].obj], vbuf, &vlen);
        fn(arg, ntxt, nlen, vtxt, vlen, ttxt, tlen);
        count++;
    }
    return count;
}

/* --- the decoder ------------------------------------------------------- */

void pickle_limits_default(pickle_limits_t *lim)
{
    lim->max_depth = PICKLE_DEFAULT_MAX_DEPTH;
    lim->max_items = PICKLE_DEFAULT_MAX_ITEMS;
    lim->max_memo = PICKLE_DEFAULT_MAX_MEMO;
    lim->max_string = PICKLE_DEFAULT_MAX_STRING;
}

/* Set up self with the limits *lim (defaults for NULL or 0 fields). */
static void s_init(pickle_t *self, const pickle_limits_t *lim)
{
    memset(self, 0, sizeof *self);
    pickle_limits_default(&self->lim);
    if (lim) {
        if (lim->max_depth)
            self->lim.max_depth = lim->max_depth;
        if (lim->max_items)
            self->lim.max_items = lim->max_items;
        if (lim->max_memo)
            self->lim.max_memo = lim->max_memo;
        if (lim->max_string)
            self->lim.max_string = lim->max_string;
    }
    if (self->lim.max_depth > MAX_DEPTH)
        self->lim.max_depth = MAX_DEPTH;
    if (self->lim.max_items > MAX_LEN)
        self->lim.max_items = MAX_LEN;
    if (self->lim.max_memo > MAX_LEN)
        self->lim.max_memo = MAX_LEN;
    if (self->lim.max_string > MAX_LEN)
        self->lim.max_string = MAX_LEN;
    self->stack_max = (uint32_t)(self->lim.max_items + self->lim.max_depth + 8);
}

/* Free the arrays of self (not self). */
static void s_fini(pickle_t *self)
{
    free(self->obj);
    free(self->cell);
    free(self->stack);
    free(self->mark);
    free(self->memo);
    free(self->text);
    memset(self, 0, sizeof *self);
}

/* Empty the arena for the next frame; free what a large frame grew. */
static void s_reset(pickle_t *self)
{
    if (self->memo_hi)
        memset(self->memo, 0xff, (size_t)self->memo_hi * sizeof *self->memo);
    self->memo_hi = self->memo_count = 0;
    self->nobj = self->ncell = self->sp = self->fence = self->nmark = 0;
    self->ntext = 0;
    self->buf = NULL;
    if ((size_t)self->cobj * sizeof *self->obj > KEEP_BYTES) {
        free(self->obj);
        self->obj = NULL;
        self->cobj = 0;
    }
    if ((size_t)self->ccell * sizeof *self->cell > KEEP_BYTES) {
        free(self->cell);
        self->cell = NULL;
        self->ccell = 0;
    }
    if (self->ctext > KEEP_BYTES) {
        free(self->text);
        self->text = NULL;
        self->ctext = 0;
    }
}

pickle_t *pickle_new(const pickle_limits_t *lim)
{
    pickle_t *self = malloc(sizeof *self);

    if (self)
        s_init(self, lim);
    return self;
}

void pickle_destroy(pickle_t **self_p)
{
    if (self_p && *self_p) {
        s_fini(*self_p);
        free(*self_p);
        *self_p = NULL;
    }
}

int pickle_run(pickle_t *self, const unsigned char *buf, size_t len,
               pickle_point_fn fn, void *arg, pickle_status_t *why,
               size_t *npoints)
{
    pickle_status_t st;
    uint32_t top = NIL;
    size_t count = 0;

    assert(self);
    assert(buf || len == 0);
    if (len > MAX_LEN)
        st = PICKLE_TOOBIG;
    else {
        st = s_load(self, buf, len, &top);
        if (st == PICKLE_OK)
            st = s_check(self, top);
        if (st == PICKLE_OK)
            count = s_emit(self, top, fn, arg);
    }
    s_reset(self);
    if (why)
        *why = st;
    if (npoints)
        *npoints = count;
    return st == PICKLE_OK ? 0 : -1;
}

int pickle_decode(const unsigned char *buf, size_t len,
                  const pickle_limits_t *lim, pickle_point_fn fn, void *arg,
                  pickle_status_t *why, size_t *npoints)
{
    pickle_t self;
    int rc;

    s_init(&self, lim);
    rc = pickle_run(&self, buf, len, fn, arg, why, npoints);
    s_fini(&self);
    return rc;
}

const char *pickle_status_str(pickle_status_t st)
{
    static const char *const names[PICKLE_NSTATUS] = {
        [PICKLE_OK] = "ok",           [PICKLE_TRUNCATED] = "truncated",
        [PICKLE_UNSAFE] = "unsafe",   [PICKLE_UNSUPPORTED] = "unsupported",
        [PICKLE_OPCODE] = "opcode",   [PICKLE_PROTOCOL] = "protocol",
        [PICKLE_OPERAND] = "operand", [PICKLE_STACK] = "stack",
        [PICKLE_MEMO] = "memo",       [PICKLE_MEMO_LIMIT] = "memo_limit",
        [PICKLE_DEPTH] = "depth",     [PICKLE_ITEMS] = "items",
        [PICKLE_STRING] = "string",   [PICKLE_SHAPE] = "shape",
        [PICKLE_TOOBIG] = "toobig",   [PICKLE_NOMEM] = "nomem",
    };

    if ((unsigned)st >= PICKLE_NSTATUS)
        return "unknown";
    return names[st];
}
