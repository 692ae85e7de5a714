/*
 * config_lex.c -- the tokenizer of the configuration language, and the
 * statement cursor over its tokens.
 *
 * Pure core: turns the bytes of one config file into words, quoted strings
 * and ';' terminators with their line numbers, finds the files an include
 * names, and reads typed values (numbers, ports, host:port, endpoints,
 * regular expressions) from a statement's tokens with "FILE:LINE: message"
 * errors.  src/config.c holds the grammar of each statement on top.  The
 * rules and the contracts are in config_lex.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "config_lex.h"
#include "ere.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_LEX_MAX_FILE (16 * 1024 * 1024) /* bytes read from one file */

/* Words that begin a statement, for the "missing ';'?" hint. */
static const char *const s_keywords[] = {
    "cluster", "match",     "rewrite",    "listen",    "statistics",
    "include", "aggregate", "satellites", "orchester", "control",
    "buffer",  "ha",        NULL};

/* ------------------------------------------------------------------ */
/* Tokenizer                                                          */
/* ------------------------------------------------------------------ */

/* s_space: true for the white space that separates tokens. */
static bool s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* s_push: append a token owning text (taken over only on success).
 * Returns 0, or -1 when out of memory. */
static int s_push(config_lex_t *lex, char *text, int line, bool quoted,
                  bool semi)
{
    if (lex->ntoks == lex->cap) {
        size_t cap = lex->cap ? lex->cap * 2 : 64;
        config_lex_tok_t *grown;
        if (cap > ((size_t)-1) / sizeof *grown)
            return -1;
        grown = realloc(lex->toks, cap * sizeof *grown);
        if (!grown)
            return -1;
        lex->toks = grown;
        lex->cap = cap;
    }
    lex->toks[lex->ntoks].text = text;
    lex->toks[lex->ntoks].line = line;
    lex->toks[lex->ntoks].quoted = quoted;
    lex->toks[lex->ntoks].semi = semi;
    lex->ntoks++;
    return 0;
}

/* s_dup: a NUL-terminated copy of n bytes at s, or NULL. */
static char *s_dup(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

/*
 * s_string: read the quoted string starting at text[*pos] (the quote).
 * Returns the unescaped contents (caller owns) and moves *pos past the
 * closing quote, or NULL with msg set.
 */
static char *s_string(const char *text, size_t len, size_t *pos, char *msg,
                      size_t msglen)
{
    char quote = text[*pos];
    size_t i = *pos + 1;
    size_t n = 0;
    char *out;

    /* First pass: find the end and the unescaped length. */
    for (;;) {
        if (i >= len || text[i] == '\n' || text[i] == '\0') {
            snprintf(msg, msglen, "%s",
                     i < len && text[i] == '\0' ? "NUL byte in a quoted string"
                                                : "unterminated quoted string");
            return NULL;
        }
        if (text[i] == quote)
            break;
        if (text[i] == '\\' && i + 1 < len &&
            (text[i + 1] == quote || text[i + 1] == '\\')) {
            n += text[i + 1] == quote ? 1 : 2;
            i += 2;
            continue;
        }
        n++;
        i++;
    }
    if (i + 1 < len && !s_space(text[i + 1]) && text[i + 1] != ';' &&
        text[i + 1] != '#') {
        snprintf(msg, msglen, "text glued to the end of a quoted string");
        return NULL;
    }
    out = malloc(n + 1);
    if (!out) {
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    /* Second pass: copy. */
    n = 0;
    for (size_t j = *pos + 1; j < i; j++) {
        if (text[j] == '\\' && text[j + 1] == quote) {
            out[n++] = quote;
            j++;
        } else if (text[j] == '\\' && text[j + 1] == '\\') {
            out[n++] = '\\';
            out[n++] = '\\';
            j++;
        } else {
            out[n++] = text[j];
        }
    }
    out[n] = '\0';
    *pos = i + 1;
    return out;
}

int config_lex_run(const char *text, size_t len, config_lex_t *out,
                   int *errline, char *msg, size_t msglen)
{
    size_t i = 0;
    int line = 1;
    char *tok = NULL;

    memset(out, 0, sizeof *out);
    while (i < len) {
        char c = text[i];
        bool quoted = false;
        int start = line;

        if (c == '\n') {
            line++;
            i++;
            continue;
        }
        if (s_space(c)) {
            i++;
            continue;
        }
        if (c == '\0') {
            snprintf(msg, msglen, "NUL byte in the text");
            goto err;
        }
        if (c == '#') {
            while (i < len && text[i] != '\n')
                i++;
            continue;
        }
        if (c == ';') {
            tok = s_dup(";", 1);
            i++;
            if (!tok || s_push(out, tok, line, false, true) != 0)
                goto oom;
            tok = NULL;
            continue;
        }
        if (c == '"' || c == '\'') {
            tok = s_string(text, len, &i, msg, msglen);
            if (!tok)
                goto err;
            quoted = true;
        } else {
            size_t j = i;
            while (j < len && !s_space(text[j]) && text[j] != ';' &&
                   text[j] != '\0') {
                /* a backslash keeps the next character in the word */
                if (text[j] == '\\' && j + 1 < len && text[j + 1] != '\n' &&
                    text[j + 1] != '\r' && text[j + 1] != '\0')
                    j++;
                j++;
            }
            tok = s_dup(text + i, j - i);
            i = j;
            if (!tok)
                goto oom;
        }
        if (s_push(out, tok, start, quoted, false) != 0)
            goto oom;
        tok = NULL;
    }
    return 0;

oom:
    snprintf(msg, msglen, "out of memory");
err:
    free(tok);
    *errline = line;
    config_lex_free(out);
    return -1;
}

void config_lex_free(config_lex_t *lex)
{
    if (!lex)
        return;
    for (size_t i = 0; i < lex->ntoks; i++)
        free(lex->toks[i].text);
    free(lex->toks);
    memset(lex, 0, sizeof *lex);
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

int config_lex_read(const char *path, char **out, size_t *outlen)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL, *grown;
    size_t len = 0, cap = 0, n;
    int e = 0;

    if (!f)
        return errno ? errno : ENOENT;
    for (;;) {
        if (len == cap) {
            if (cap >= CONFIG_LEX_MAX_FILE) {
                e = EFBIG;
                goto err;
            }
            cap = cap ? cap * 2 : 4096;
            if (!(grown = realloc(buf, cap + 1))) {
                e = ENOMEM;
                goto err;
            }
            buf = grown;
        }
        errno = 0;
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                e = errno ? errno : EIO;
                goto err;
            }
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;

err:
    fclose(f);
    free(buf);
    return e;
}

/* s_join: dir "/" rel (a copy of rel when dir is NULL or rel is absolute),
 * with the glob(3) characters of dir escaped when escape.  Caller frees. */
static char *s_join(const char *dir, const char *rel, bool escape)
{
    size_t n = 0;
    char *out, *o;

    if (!dir || rel[0] == '/')
        return strdup(rel);
    if (!(out = malloc(2 * strlen(dir) + strlen(rel) + 2)))
        return NULL;
    o = out;
    for (const char *d = dir; *d; d++, n++) {
        if (escape && strchr("*?[\\", *d))
            *o++ = '\\';
        *o++ = *d;
    }
    if (n > 0 && dir[n - 1] != '/')
        *o++ = '/';
    strcpy(o, rel);
    return out;
}

int config_lex_paths(const char *dir, const char *rel, char ***paths, size_t *n)
{
    bool pattern = strpbrk(rel, "*?[") != NULL;
    char *path = s_join(dir, rel, pattern);
    char **out = NULL;
    size_t k, count = 0;
    glob_t g;
    int rc;

    *paths = NULL;
    *n = 0;
    if (!path)
        return ENOMEM;
    if (!pattern) {
        if (!(out = malloc(sizeof *out))) {
            free(path);
            return ENOMEM;
        }
        out[0] = path;
        *paths = out;
        *n = 1;
        return 0;
    }
    memset(&g, 0, sizeof g);
    rc = glob(path, GLOB_MARK, NULL, &g);
    free(path);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        rc = 0;
        goto done;
    }
    if (rc != 0) {
        rc = rc == GLOB_NOSPACE ? ENOMEM : EIO;
        goto done;
    }
    if (!(out = calloc(g.gl_pathc, sizeof *out))) {
        rc = ENOMEM;
        goto done;
    }
    for (k = 0; k < g.gl_pathc; k++) {
        size_t len = strlen(g.gl_pathv[k]);
        if (len > 0 && g.gl_pathv[k][len - 1] == '/')
            continue; /* a directory, marked by GLOB_MARK */
        if (!(out[count] = strdup(g.gl_pathv[k]))) {
            rc = ENOMEM;
            goto done;
        }
        count++;
    }
    *paths = out;
    *n = count;
    out = NULL;

done:
    if (out) {
        for (k = 0; k < count; k++)
            free(out[k]);
        free(out);
    }
    globfree(&g);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

int config_lex_fail(config_lex_err_t *e, const char *file, int line,
                    const char *fmt, ...)
{
    va_list ap;
    int n;

    if (e->failed || !e->buf || e->len == 0) {
        e->failed = true;
        return -1;
    }
    e->failed = true;
    if (line > 0)
        n = snprintf(e->buf, e->len, "%s:%d: ", file, line);
    else
        n = snprintf(e->buf, e->len, "%s: ", file);
    if (n < 0 || (size_t)n >= e->len)
        return -1;
    va_start(ap, fmt);
    vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int config_lex_error(config_lex_stmt_t *st, const config_lex_tok_t *at,
                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return config_lex_fail(st->err, st->file, at ? at->line : st->endline,
                           "%s: %s", st->name, msg);
}

int config_lex_oom(config_lex_stmt_t *st)
{
    return config_lex_error(st, NULL, "out of memory");
}

bool config_lex_keyword(const char *s)
{
    for (size_t k = 0; s_keywords[k]; k++)
        if (strcmp(s, s_keywords[k]) == 0)
            return true;
    return false;
}

const char *config_lex_hint(const config_lex_tok_t *t)
{
    return t && !t->quoted && config_lex_keyword(t->text)
               ? " (missing ';' before it?)"
               : "";
}

/* ------------------------------------------------------------------ */
/* Reading a statement                                                */
/* ------------------------------------------------------------------ */

bool config_lex_tok_is(const config_lex_tok_t *t, const char *kw)
{
    return t && !t->quoted && strcmp(t->text, kw) == 0;
}

const config_lex_tok_t *config_lex_peek(const config_lex_stmt_t *st)
{
    return st->i < st->n ? &st->tok[st->i] : NULL;
}

bool config_lex_is(const config_lex_stmt_t *st, const char *kw)
{
    return config_lex_tok_is(config_lex_peek(st), kw);
}

bool config_lex_accept(config_lex_stmt_t *st, const char *kw)
{
    if (!config_lex_is(st, kw))
        return false;
    st->i++;
    return true;
}

int config_lex_expect(config_lex_stmt_t *st, const char *kw)
{
    const config_lex_tok_t *t = config_lex_peek(st);

    if (config_lex_accept(st, kw))
        return 0;
    if (!t)
        return config_lex_error(st, NULL, "expected '%s' before ';'", kw);
    return config_lex_error(st, t, "expected '%s', found '%s'%s", kw, t->text,
                            config_lex_hint(t));
}

const config_lex_tok_t *config_lex_take(config_lex_stmt_t *st, const char *what)
{
    if (st->i < st->n)
        return &st->tok[st->i++];
    config_lex_error(st, NULL, "missing %s before ';'", what);
    return NULL;
}

int config_lex_choose(config_lex_stmt_t *st, const char *what,
                      const char *const *words)
{
    const config_lex_tok_t *t = config_lex_take(st, what);

    if (!t)
        return -1;
    for (int k = 0; words[k]; k++)
        if (config_lex_tok_is(t, words[k]))
            return k;
    return config_lex_error(st, t, "expected %s, found '%s'%s", what, t->text,
                            config_lex_hint(t));
}

int config_lex_end(config_lex_stmt_t *st)
{
    const config_lex_tok_t *t = config_lex_peek(st);

    if (!t)
        return 0;
    return config_lex_error(st, t, "unexpected '%s'%s", t->text,
                            config_lex_hint(t));
}

int config_lex_twice(config_lex_stmt_t *st, const config_lex_tok_t *t)
{
    return config_lex_error(st, t, "'%s' given twice", t->text);
}

int config_lex_refuse(config_lex_stmt_t *st, const config_lex_tok_t *t,
                      const char *const *opts)
{
    if (t->quoted)
        return 0;
    if (config_lex_keyword(t->text))
        return config_lex_error(st, t, "unexpected '%s'%s", t->text,
                                config_lex_hint(t));
    for (size_t k = 0; opts && opts[k]; k++)
        if (strcmp(t->text, opts[k]) == 0)
            return config_lex_error(st, t, "unexpected '%s'", t->text);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Values: numbers, endpoints, regular expressions                    */
/* ------------------------------------------------------------------ */

int config_lex_num(config_lex_stmt_t *st, const config_lex_tok_t *t,
                   const char *what, long long min, long long max,
                   long long *out)
{
    long long v = 0;
    const char *s = t->text;

    if (!*s)
        return config_lex_error(st, t, "%s '' is not a number", what);
    for (; *s; s++) {
        int d = *s - '0';
        if (d < 0 || d > 9)
            return config_lex_error(st, t, "%s '%s' is not a number", what,
                                    t->text);
        if (v > (LLONG_MAX - d) / 10)
            return config_lex_error(st, t, "%s %s is out of range (%lld..%lld)",
                                    what, t->text, min, max);
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return config_lex_error(st, t, "%s %s is out of range (%lld..%lld)",
                                what, t->text, min, max);
    *out = v;
    return 0;
}

int config_lex_take_num(config_lex_stmt_t *st, const char *what, long long min,
                        long long max, long long *out)
{
    const config_lex_tok_t *t = config_lex_take(st, what);

    return t ? config_lex_num(st, t, what, min, max, out) : -1;
}

int config_lex_endpoint(config_lex_stmt_t *st, const config_lex_tok_t *t)
{
    const char *sep = strstr(t->text, "://");
    const char *c;

    if (sep && sep > t->text && sep[3]) {
        for (c = t->text; c < sep; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
                break;
        if (c == sep)
            return 0;
    }
    return config_lex_error(
        st, t,
        "'%s' is not a zmq endpoint (tcp://HOST:PORT, ipc://PATH, "
        "inproc://NAME)%s",
        t->text, config_lex_hint(t));
}

int config_lex_regex(config_lex_stmt_t *st, const config_lex_tok_t *t,
                     size_t *nsub)
{
    regex_t re;
    char buf[256];

    if (ere_compile(&re, t->text, 0, buf, sizeof buf) != 0)
        return config_lex_error(st, t, "bad regular expression '%.200s': %s",
                                t->text, buf);
    if (nsub)
        *nsub = re.re_nsub;
    tre_regfree(&re);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                          */
/* ------------------------------------------------------------------ */

/* s_hostchars: true when h..end is a plausible host name or, when v6, an
 * IPv6 address (with an optional %zone). */
static bool s_hostchars(const char *h, const char *end, bool v6)
{
    for (; h < end; h++) {
        char c = *h;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
            continue;
        if (v6 && (c == ':' || c == '%'))
            continue;
        return false;
    }
    return true;
}

int config_lex_port(config_lex_stmt_t *st, const config_lex_tok_t *t,
                    const char *s, size_t n, int *port)
{
    long v = 0;

    if (n == 0)
        return config_lex_error(st, t, "'%s': missing port after ':'", t->text);
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return config_lex_error(st, t, "port '%.*s' is not a number",
                                    (int)n, s);
        if (v <= 65535)
            v = v * 10 + (s[k] - '0');
    }
    if (v < 1 || v > 65535)
        return config_lex_error(st, t, "port %.*s is out of range (1..65535)",
                                (int)n, s);
    *port = (int)v;
    return 0;
}

int config_lex_hostport(config_lex_stmt_t *st, const config_lex_tok_t *t,
                        bool empty_ok, char **host, int *port, char **instance)
{
    const char *s = t->text;
    const char *eq = instance ? strchr(s, '=') : NULL;
    const char *end = eq ? eq : s + strlen(s);
    const char *h = s, *hend = end, *ps = NULL;
    bool v6 = false;

    *port = 0;
    if (*s == '[') {
        const char *close = memchr(s, ']', (size_t)(end - s));
        if (!close)
            return config_lex_error(st, t, "'%s': missing ']'", s);
        h = s + 1;
        hend = close;
        v6 = true;
        if (close + 1 < end) {
            if (close[1] != ':')
                return config_lex_error(st, t,
                                        "'%s': expected ':PORT' after ']'", s);
            ps = close + 2;
        }
        if (!memchr(h, ':', (size_t)(hend - h)))
            return config_lex_error(st, t, "'%s' is not an IPv6 address", s);
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
            v6 = true; /* a bare IPv6 address: no port */
        } else if (colon) {
            hend = colon;
            ps = colon + 1;
        }
    }
    if (h == hend && !empty_ok)
        return config_lex_error(st, t, "'%s': missing host%s", s,
                                config_lex_hint(t));
    if (!s_hostchars(h, hend, v6))
        return config_lex_error(st, t, "'%s' is not a valid host%s", s,
                                config_lex_hint(t));
    if (ps && config_lex_port(st, t, ps, (size_t)(end - ps), port) != 0)
        return -1;
    if (eq && !eq[1])
        return config_lex_error(st, t, "'%s': empty instance after '='", s);
    if (host && h < hend && !(*host = strndup(h, (size_t)(hend - h))))
        return config_lex_oom(st);
    if (eq && !(*instance = strdup(eq + 1)))
        return config_lex_oom(st);
    return 0;
}
