/*
 * config_lex.h -- the tokenizer of the configuration language.
 *
 * Pure core: no I/O, no global state.  src/config.c reads a file (or takes
 * text from memory), hands the bytes here, and parses the token array this
 * module returns, statement by statement (a statement ends at a ';' token).
 *
 * Tokens:
 *   - words: runs of characters up to white space or ';' (so "stop;" is the
 *     word "stop" and a terminator).  A backslash keeps the character after
 *     it in the word, and both stay as written: "^[0-9]+\ [0-9]+$" is one
 *     word;
 *   - quoted strings: '...' or "...", for expressions and replacements that
 *     hold spaces, ';' or '#'.  Inside, a backslash before the quote that
 *     opened the string stands for that quote, and "\\" stays two
 *     backslashes (so regular expressions keep their escapes); everything
 *     else is taken as written.  A string ends on its line;
 *   - ';' terminators.
 * A '#' where a token would start begins a comment up to the end of the line
 * (inside a word it is an ordinary character, since metric names may hold
 * '#').  Lines are counted from 1.
 *
 * Above the tokenizer sits the statement cursor (config_lex_stmt_t): typed
 * reads of one statement's tokens (keywords, numbers, ports, host:port,
 * endpoints, regular expressions) that record "FILE:LINE: message" errors,
 * so config.c holds only the grammar of each statement.
 */
#ifndef ORCHESTER_CONFIG_LEX_H
#define ORCHESTER_CONFIG_LEX_H

#include <stdbool.h>
#include <stddef.h>

/* One token. */
typedef struct {
    char *text;  /* the word or the string's contents, NUL-terminated; ";" for a
                    terminator */
    int line;    /* line the token starts on, 1-based */
    bool quoted; /* written as a quoted string: never a keyword */
    bool semi;   /* a ';' terminator */
} config_lex_tok_t;

/* The tokens of one text, in order. */
typedef struct {
    config_lex_tok_t *toks; /* array of ntoks tokens */
    size_t ntoks;           /* tokens in toks */
    size_t cap;             /* allocated slots in toks */
} config_lex_t;

/*
 * config_lex_run: split len bytes of text into tokens.
 * Returns 0 and fills *out (the caller frees it with config_lex_free()), or
 * -1 with *out empty, the line of the fault in *errline and a message
 * without position in msg (msglen bytes, always NUL-terminated): an
 * unterminated string, text glued to a closing quote, a NUL byte, or out of
 * memory.  Any thread may call it.
 */
int config_lex_run(const char *text, size_t len, config_lex_t *out,
                   int *errline, char *msg, size_t msglen);

/* config_lex_free: free the tokens in lex and empty it.  Safe twice. */
void config_lex_free(config_lex_t *lex);

/* config_lex_read: the whole file at path into *out (NUL-terminated, the
 * caller frees it) and *outlen.  Returns 0, or an errno value (EFBIG past
 * 16 MiB, so a config naming /dev/zero fails instead of eating memory). */
int config_lex_read(const char *path, char **out, size_t *outlen);

/*
 * config_lex_paths: the files "include rel" names, from a file in dir (NULL:
 * the cwd).  rel is taken relative to dir unless it is absolute.  When rel
 * holds a glob(3) character (* ? [) it is expanded in sorted order,
 * directories skipped, and matching nothing gives no path; otherwise it is
 * the one path, whether or not it exists (reading it reports that).
 * Returns 0 with *paths (n copies; the caller frees each and the array), or
 * an errno value: ENOMEM, or EIO when glob(3) could not read a directory.
 */
int config_lex_paths(const char *dir, const char *rel, char ***paths,
                     size_t *n);

/* Where errors go: the caller's buffer and whether it holds one. */
typedef struct {
    char *buf;   /* the caller's message buffer, or NULL */
    size_t len;  /* bytes in buf */
    bool failed; /* an error was recorded (only the first one is kept) */
} config_lex_err_t;

/* A cursor over one statement: its tokens without the ';'. */
typedef struct {
    const config_lex_tok_t *tok; /* the tokens; tok[0] is the keyword */
    size_t n;                    /* tokens in tok */
    size_t i;                    /* next token to read */
    const char *file;            /* file name for messages (borrowed) */
    int endline;                 /* line of the ';', for "missing X" */
    const char *name;            /* the keyword, prefixed to messages */
    config_lex_err_t *err;       /* where errors go */
    void *ctx;                   /* the parser's own state (config.c) */
} config_lex_stmt_t;

#if defined(__GNUC__)
#define CONFIG_LEX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CONFIG_LEX_PRINTF(f, a)
#endif

/* config_lex_fail: record "file:line: message" ("file: message" when line
 * is 0) in e unless it holds an error already.  Returns -1. */
int config_lex_fail(config_lex_err_t *e, const char *file, int line,
                    const char *fmt, ...) CONFIG_LEX_PRINTF(4, 5);

/* config_lex_error: record "file:line: NAME: message" for statement st at
 * token at (NULL: at the ';').  Returns -1. */
int config_lex_error(config_lex_stmt_t *st, const config_lex_tok_t *at,
                     const char *fmt, ...) CONFIG_LEX_PRINTF(3, 4);

/* config_lex_oom: record "out of memory" for st.  Returns -1. */
int config_lex_oom(config_lex_stmt_t *st);

/* config_lex_keyword: true when s is a word that begins a statement. */
bool config_lex_keyword(const char *s);

/* config_lex_hint: " (missing ';' before it?)" when t is an unquoted
 * statement keyword, else "".  Static text. */
const char *config_lex_hint(const config_lex_tok_t *t);

/* config_lex_tok_is: true when t is the unquoted word kw (t may be NULL). */
bool config_lex_tok_is(const config_lex_tok_t *t, const char *kw);

/* config_lex_peek: the next token of st, or NULL at its end.  Borrowed. */
const config_lex_tok_t *config_lex_peek(const config_lex_stmt_t *st);

/* config_lex_is: true when the next token is the unquoted word kw. */
bool config_lex_is(const config_lex_stmt_t *st, const char *kw);

/* config_lex_accept: consume the next token when it is the word kw. */
bool config_lex_accept(config_lex_stmt_t *st, const char *kw);

/* config_lex_expect: consume the word kw, or record an error.  Returns 0
 * or -1. */
int config_lex_expect(config_lex_stmt_t *st, const char *kw);

/* config_lex_take: consume and return the next token, whatever it is, or
 * record "missing WHAT" and return NULL. */
const config_lex_tok_t *config_lex_take(config_lex_stmt_t *st,
                                        const char *what);

/* config_lex_choose: take the next token, which must be one of the
 * unquoted words of the NULL-terminated words; returns its index, or -1
 * with "expected WHAT, found 'x'" (or "missing WHAT"). */
int config_lex_choose(config_lex_stmt_t *st, const char *what,
                      const char *const *words);

/* config_lex_end: 0 when every token of st was read, else -1 with an error
 * naming the first one left. */
int config_lex_end(config_lex_stmt_t *st);

/* config_lex_twice: record "'WORD' given twice" at t.  Returns -1. */
int config_lex_twice(config_lex_stmt_t *st, const config_lex_tok_t *t);

/* config_lex_refuse: -1 with an error when t, about to be taken as a name
 * or an address, is an unquoted statement keyword (a ';' is likely
 * missing) or one of the words in opts (NULL-terminated, may be NULL). */
int config_lex_refuse(config_lex_stmt_t *st, const config_lex_tok_t *t,
                      const char *const *opts);

/* config_lex_num: parse t as a decimal number in min..max into *out;
 * errors name what.  Returns 0 or -1. */
int config_lex_num(config_lex_stmt_t *st, const config_lex_tok_t *t,
                   const char *what, long long min, long long max,
                   long long *out);

/* config_lex_take_num: config_lex_take then config_lex_num. */
int config_lex_take_num(config_lex_stmt_t *st, const char *what, long long min,
                        long long max, long long *out);

/* config_lex_regex: check that t compiles as a POSIX extended regular
 * expression with ere_compile (src/ere.h: back references and expressions
 * too large for its bounds are refused; the error says why); its group
 * count goes to *nsub unless nsub is NULL.  Returns 0 or -1. */
int config_lex_regex(config_lex_stmt_t *st, const config_lex_tok_t *t,
                     size_t *nsub);

/* config_lex_endpoint: check that t looks like a zmq endpoint
 * (scheme://address).  Returns 0 or -1. */
int config_lex_endpoint(config_lex_stmt_t *st, const config_lex_tok_t *t);

/* config_lex_port: parse the n bytes at s (part of t) as a port
 * 1..65535 into *port.  Returns 0 or -1. */
int config_lex_port(config_lex_stmt_t *st, const config_lex_tok_t *t,
                    const char *s, size_t n, int *port);

/*
 * config_lex_hostport: split t, one of "host[:port][=instance]",
 * "[v6addr][:port][=instance]" or a bare IPv6 address (which takes no
 * port), into *host (a copy the caller owns; left alone when the host is
 * empty, which is an error unless empty_ok; host may be NULL to only
 * check), *port (0 when not given) and *instance (a copy, left alone when
 * there is none; '=' is only special when instance is not NULL).  Returns
 * 0 or -1; on -1 what was stored still belongs to the caller.
 */
int config_lex_hostport(config_lex_stmt_t *st, const config_lex_tok_t *t,
                        bool empty_ok, char **host, int *port, char **instance);

#endif
