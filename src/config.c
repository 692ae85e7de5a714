/*
 * config.c -- the configuration parser: statements, includes and checks.
 *
 * Pure core: it reads the config file and the files it includes, and
 * nothing else.  src/config_lex.c turns each file into tokens and reads
 * typed values from them; this file cuts the tokens into statements at ';',
 * parses each statement into the config_t tree of config.h and, once
 * everything is read, checks what needs the whole tree (the clusters that
 * match and statistics name exist).  relay/ calls config_load() at start
 * and on SIGHUP, then hands the tree to the router, the ingest threads and
 * the sender.
 *
 * Every object is attached to the tree as soon as it is allocated, so an
 * error anywhere frees everything with one config_destroy().  Errors read
 * "FILE:LINE: message"; only the first one is kept.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "carbonagg.h"
#include "config.h"
#include "config_lex.h"
#include "options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_MAX_DEPTH 16 /* include nesting limit */

/* State of one config_load() or config_parse_string() call. */
typedef struct {
    config_t *cfg;              /* the tree being built */
    config_lex_err_t err;       /* the caller's message buffer */
    int flags;                  /* CONFIG_* flags */
    const char *dir;            /* base of relative includes of the file
                                   being read; NULL: the cwd */
    int depth;                  /* include depth of that file (main: 0) */
    config_pos_t orchester_pos; /* first "orchester" (file NULL: none) */
    config_pos_t control_pos;   /* first "control" (file NULL: none) */
} parser_t;

/* Parses one statement; st->i is past the keyword.  Returns 0 or -1. */
typedef int (*stmt_parse_fn)(config_lex_stmt_t *st);

static int s_parse_file(parser_t *p, const char *path, int depth,
                        const config_lex_stmt_t *from);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* s_parser: the parser a statement belongs to. */
static parser_t *s_parser(const config_lex_stmt_t *st)
{
    return st->ctx;
}

/* s_pos: the position of the statement. */
static config_pos_t s_pos(const config_lex_stmt_t *st)
{
    config_pos_t pos = {st->file, st->tok[0].line};
    return pos;
}

/* s_once: for statements allowed once: -1 with an error when one was given
 * already at *first, else record this one there. */
static int s_once(config_lex_stmt_t *st, config_pos_t *first)
{
    if (first->file)
        return config_lex_fail(st->err, st->file, st->tok[0].line,
                               "'%s' given twice (first at %s:%d)", st->name,
                               first->file, first->line);
    *first = s_pos(st);
    return 0;
}

/* s_index: the index of t among the unquoted words of the NULL-terminated
 * words, or -1. */
static int s_index(const config_lex_tok_t *t, const char *const *words)
{
    for (int k = 0; words[k]; k++)
        if (config_lex_tok_is(t, words[k]))
            return k;
    return -1;
}

/* s_clause: consume the next token, which must be one of the clause words
 * and not seen before (bit k of *seen); returns its index k, or -1 with an
 * error. */
static int s_clause(config_lex_stmt_t *st, const char *const *words,
                    unsigned *seen)
{
    const config_lex_tok_t *t = config_lex_peek(st);
    int k = s_index(t, words);

    if (k < 0)
        return config_lex_error(st, t, "unexpected '%s'%s", t ? t->text : ";",
                                config_lex_hint(t));
    if (*seen & (1u << k))
        return config_lex_twice(st, t);
    *seen |= 1u << k;
    st->i++;
    return k;
}

/* s_grow: arr (n elements of size bytes) with room for one more, zeroed;
 * NULL with an error when out of memory (arr is then untouched). */
static void *s_grow(config_lex_stmt_t *st, void *arr, size_t n, size_t size)
{
    char *grown = NULL;

    if (n < ((size_t)-1) / size - 1)
        grown = realloc(arr, (n + 1) * size);
    if (!grown) {
        config_lex_oom(st);
        return NULL;
    }
    memset(grown + n * size, 0, size);
    return grown;
}

/* s_strv_add: append a copy of s to the string array *v of *n. */
static int s_strv_add(config_lex_stmt_t *st, char ***v, size_t *n,
                      const char *s)
{
    char **grown = s_grow(st, *v, *n, sizeof **v);

    if (!grown)
        return -1;
    *v = grown;
    if (!(grown[*n] = strdup(s)))
        return config_lex_oom(st);
    (*n)++;
    return 0;
}

/* s_set: *dst = a copy of s, freeing what was there. */
static int s_set(config_lex_stmt_t *st, char **dst, const char *s)
{
    char *copy = strdup(s);

    if (!copy)
        return config_lex_oom(st);
    free(*dst);
    *dst = copy;
    return 0;
}

/* s_take_set: take the next token (what names it in errors) into *dst. */
static int s_take_set(config_lex_stmt_t *st, const char *what, char **dst)
{
    const config_lex_tok_t *t = config_lex_take(st, what);

    return t ? s_set(st, dst, t->text) : -1;
}

/* s_take_endpoint: take the next token as a zmq endpoint into *dst. */
static int s_take_endpoint(config_lex_stmt_t *st, const char *what, char **dst)
{
    const config_lex_tok_t *t = config_lex_take(st, what);

    if (!t || config_lex_endpoint(st, t) != 0)
        return -1;
    return s_set(st, dst, t->text);
}

/* s_take_int: take "N UNIT" with N in min..INT_MAX into *out. */
static int s_take_int(config_lex_stmt_t *st, const char *what, long long min,
                      const char *unit, int *out)
{
    long long v;

    if (config_lex_take_num(st, what, min, INT_MAX, &v) != 0 ||
        config_lex_expect(st, unit) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* s_strv_free: free n strings of v and v. */
static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* s_strerror: the text for errno value e, in buf. */
static const char *s_strerror(int e, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, len);
#else
    if (strerror_r(e, buf, len) != 0)
        snprintf(buf, len, "error %d", e);
    return buf;
#endif
}

void config_transport_free(config_transport_t *tr)
{
    free(tr->pem);
    free(tr->cert);
    free(tr->key);
    free(tr->ca);
    free(tr->name);
    free(tr->ciphers);
    free(tr->suites);
    memset(tr, 0, sizeof *tr);
}

static bool s_streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0 && (a == NULL) == (b == NULL);
}

bool config_transport_eq(const config_transport_t *a,
                         const config_transport_t *b)
{
    return a->codec == b->codec && a->tls == b->tls &&
           a->protomin == b->protomin && a->protomax == b->protomax &&
           s_streq(a->pem, b->pem) && s_streq(a->cert, b->cert) &&
           s_streq(a->key, b->key) && s_streq(a->ca, b->ca) &&
           s_streq(a->name, b->name) && s_streq(a->ciphers, b->ciphers) &&
           s_streq(a->suites, b->suites);
}

int config_transport_dup(config_transport_t *dst, const config_transport_t *src)
{
    char **d[] = {&dst->pem,  &dst->cert,    &dst->key,   &dst->ca,
                  &dst->name, &dst->ciphers, &dst->suites};
    *dst = *src;
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if (*d[i] && (*d[i] = strdup(*d[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(*d[j]);
            for (size_t j = i; j < sizeof d / sizeof d[0]; j++)
                *d[j] = NULL;
            memset(dst, 0, sizeof *dst);
            return -1;
        }
    return 0;
}

/* The TLS versions "protomin"/"protomax" name, as OpenSSL numbers them. */
static const char *const s_tls_words[] = {"ssl3",   "tls1.0", "tls1.1",
                                          "tls1.2", "tls1.3", NULL};
static const int s_tls_versions[] = {0x0300, 0x0301, 0x0302, 0x0303, 0x0304};

static const char *const s_codec_words[] = {"plain", "gzip", "lz4", "snappy",
                                            NULL};

/* s_tls_opts: after "ssl PEM" or "mtls ..." the TLS options, in any order:
 * "protomin V", "protomax V", "ciphers S", "ciphersuites S" (as
 * carbon-c-relay spells them) and orchester's "ca PATH", and on a member
 * "name N". */
static int s_tls_opts(config_lex_stmt_t *st, config_transport_t *tr, int member)
{
    static const char *const opts[] = {
        "protomin", "protomax", "ciphers", "ciphersuites", "ca", "name", NULL};
    int k;

    while ((k = s_index(config_lex_peek(st), opts)) >= 0 &&
           (k != 5 || member)) {
        const config_lex_tok_t *kw = config_lex_take(st, opts[k]);
        if (k <= 1) {
            int v = config_lex_choose(st,
                                      "ssl3, tls1.0, tls1.1, tls1.2 or "
                                      "tls1.3 after the protocol keyword",
                                      s_tls_words);
            if (v < 0)
                return -1;
            *(k == 0 ? &tr->protomin : &tr->protomax) = s_tls_versions[v];
            continue;
        }
        char **dst = k == 2   ? &tr->ciphers
                     : k == 3 ? &tr->suites
                     : k == 4 ? &tr->ca
                              : &tr->name;
        const config_lex_tok_t *t = config_lex_take(st, "a value");
        if (!t)
            return -1;
        if (!t->text[0])
            return config_lex_error(st, t, "empty value after '%s'", kw->text);
        if (s_set(st, dst, t->text) != 0)
            return -1;
    }
    if (tr->protomin && tr->protomax && tr->protomin > tr->protomax)
        return config_lex_error(st, NULL, "protomin is newer than protomax");
    return 0;
}

/* s_transport: "transport plain|gzip|lz4|snappy" and then, on a listener,
 * "ssl PEMFILE" or "mtls PEMFILE" (certificate chain and key in one file),
 * or on a member "ssl" or "mtls CERTFILE KEYFILE"; each followed by the
 * TLS options (s_tls_opts).  Into tr; member says which. */
static int s_transport(config_lex_stmt_t *st, config_transport_t *tr,
                       int member)
{
    const config_lex_tok_t *t = config_lex_peek(st);
    int k;

    if (!config_lex_accept(st, "transport")) {
        if (config_lex_tok_is(t, "ssl") || config_lex_tok_is(t, "mtls"))
            return config_lex_error(st, t,
                                    "'%s' comes after 'transport plain' (or "
                                    "gzip, lz4, snappy)",
                                    t->text);
        return 0;
    }
    if ((k = config_lex_choose(st,
                               "plain, gzip, lz4 or snappy after 'transport'",
                               s_codec_words)) < 0)
        return -1;
    tr->codec = k;
    t = config_lex_peek(st);
    if (!config_lex_tok_is(t, "ssl") && !config_lex_tok_is(t, "mtls"))
        return 0;
    config_lex_take(st, "ssl");
    tr->tls = config_lex_tok_is(t, "ssl") ? TLS_ON : TLS_MUTUAL;
    if (!member || tr->tls == TLS_MUTUAL) {
        const char *what = !member ? "a PEM file (certificate "
                                     "and key) after 'ssl' or "
                                     "'mtls'"
                                   : "a certificate file after 'mtls'";
        if (!(t = config_lex_take(st, what)))
            return -1;
        if (!t->text[0])
            return config_lex_error(st, t, "empty file name");
        if (s_set(st, member ? &tr->cert : &tr->pem, t->text) != 0)
            return -1;
        if (member) {
            if (!(t = config_lex_take(st, "a key file after the certificate")))
                return -1;
            if (!t->text[0])
                return config_lex_error(st, t, "empty file name");
            if (s_set(st, &tr->key, t->text) != 0)
                return -1;
        }
    }
    return s_tls_opts(st, tr, member);
}

/* ------------------------------------------------------------------ */
/* cluster                                                             */
/* ------------------------------------------------------------------ */

/* Cluster types, in config_cluster_type_t order. */
static const char *const s_cluster_types[] = {
    "forward",  "any_of",        "failover", "carbon_ch",
    "fnv1a_ch", "jump_fnv1a_ch", "file",     NULL};

/* Protocols and wire formats, in config_proto_t and config_wire_t order. */
static const char *const s_protos[] = {"tcp", "udp", "unix", NULL};
static const char *const s_wires[] = {"linemode", "pickle", NULL};

_Static_assert(CLUSTER_FILE == 6 && PROTO_UNIX == 2 && WIRE_PICKLE == 1,
               "the word tables above follow the enums of config.h");

/* Words that cannot be a member: a missing ';' or a misplaced option. */
static const char *const s_member_words[] = {
    "proto",  "type",        "transport", "ssl",      "mtls",
    "useall", "replication", "dynamic",   "graphite", NULL};

/* s_new_member: a zeroed member written at token t appended to c. */
static config_member_t *s_new_member(config_lex_stmt_t *st, config_cluster_t *c,
                                     const config_lex_tok_t *t)
{
    config_member_t *m;

    if (config_lex_refuse(st, t, s_member_words) != 0 ||
        !(m = s_grow(st, c->members, c->nmembers, sizeof *m)))
        return NULL;
    c->members = m;
    m = &c->members[c->nmembers++];
    m->pos.file = st->file;
    m->pos.line = t->line;
    return m;
}

/* s_member: "host[:port][=instance] [proto P] [type T] [transport plain]"
 * into a new member of c. */
static int s_member(config_lex_stmt_t *st, config_cluster_t *c)
{
    static const char *const opts[] = {"proto", "type", "transport",
                                       "ssl",   "mtls", NULL};
    const config_lex_tok_t *spec = config_lex_take(st, "a member");
    const config_lex_tok_t *trt = NULL;
    config_member_t *m;
    unsigned seen = 0;
    int k, port;

    if (!spec || !(m = s_new_member(st, c, spec)) ||
        config_lex_hostport(st, spec, false, &m->host, &port, &m->instance))
        return -1;
    while ((k = s_index(config_lex_peek(st), opts)) >= 0) {
        if (k >= 2) {
            if (trt && k == 2)
                return config_lex_error(st, config_lex_peek(st),
                                        "'transport' given twice");
            trt = config_lex_peek(st);
            if (s_transport(st, &m->tr, 1) != 0)
                return -1;
            continue;
        }
        if (s_clause(st, opts, &seen) < 0)
            return -1;
        if (k == 0) {
            if ((k = config_lex_choose(st, "tcp or udp after 'proto'",
                                       s_protos)) < 0)
                return -1;
            if (k == PROTO_UNIX)
                return config_lex_error(st, &st->tok[st->i - 1],
                                        "member '%s': proto must be tcp or "
                                        "udp",
                                        spec->text);
            m->proto = (config_proto_t)k;
        } else {
            if ((k = config_lex_choose(st, "linemode or pickle after 'type'",
                                       s_wires)) < 0)
                return -1;
            m->type = (config_wire_t)k;
        }
    }
    if (m->type == WIRE_PICKLE && m->proto == PROTO_UDP)
        return config_lex_error(
            st, spec, "member '%s': pickle is sent over tcp only", spec->text);
    if (m->proto == PROTO_UDP && (m->tr.codec || m->tr.tls))
        return config_lex_error(st, spec,
                                "member '%s': a compressed or encrypted "
                                "stream needs proto tcp",
                                spec->text);
    m->port = port ? port : m->type == WIRE_PICKLE ? 2004 : 2003;
    return 0;
}

/* s_cluster_opts: "[useall]" for forward, any_of and failover, or
 * "[replication N] [dynamic]" for the hashes, and "[graphite]" for
 * carbon_ch (Python carbon's collision-bumping ring); *rep gets the token
 * of "replication" for the later bound check. */
static int s_cluster_opts(config_lex_stmt_t *st, config_cluster_t *c,
                          const config_lex_tok_t **rep)
{
    static const char *const opts[] = {"useall", "replication", "dynamic",
                                       "graphite", NULL};
    bool hashed = c->type == CLUSTER_CARBON_CH || c->type == CLUSTER_FNV1A_CH ||
                  c->type == CLUSTER_JUMP_FNV1A_CH;
    const config_lex_tok_t *t;
    unsigned seen = 0;
    long long v;
    int k;

    while ((k = s_index(t = config_lex_peek(st), opts)) >= 0) {
        if (k == 3 && c->type != CLUSTER_CARBON_CH)
            return config_lex_error(st, t,
                                    "graphite applies to carbon_ch "
                                    "clusters only");
        if (k != 3 && (k == 0) == hashed)
            return config_lex_error(st, t, "%s applies to %s clusters only",
                                    t->text,
                                    k == 0 ? "forward, any_of and failover"
                                           : "carbon_ch, fnv1a_ch and "
                                             "jump_fnv1a_ch");
        if (s_clause(st, opts, &seen) < 0)
            return -1;
        if (k == 0) {
            c->useall = true;
        } else if (k == 3) {
            c->graphite = true;
        } else if (k == 2) {
            c->dynamic = true;
        } else {
            *rep = t;
            if (config_lex_take_num(st, "replication", 1, INT_MAX, &v) != 0)
                return -1;
            c->replication = (int)v;
        }
    }
    return 0;
}

/* cluster NAME TYPE [options] MEMBERS ; */
static int s_stmt_cluster(config_lex_stmt_t *st)
{
    config_t *cfg = s_parser(st)->cfg;
    const config_lex_tok_t *name, *t, *rep = NULL;
    const config_cluster_t *old;
    config_cluster_t *c;
    config_member_t *m;
    int type;

    if (!(name = config_lex_take(st, "a cluster name")))
        return -1;
    if (!name->text[0] || strcmp(name->text, "blackhole") == 0)
        return config_lex_error(st, name, "'%s' cannot be a cluster name%s",
                                name->text,
                                name->text[0] ? " (it is built in)" : "");
    if ((old = config_find_cluster(cfg, name->text)))
        return config_lex_error(st, name, "'%s' is already defined at %s:%d",
                                name->text, old->pos.file, old->pos.line);
    if ((type = config_lex_choose(st,
                                  "a cluster type (forward, any_of, "
                                  "failover, carbon_ch, fnv1a_ch, "
                                  "jump_fnv1a_ch, file)",
                                  s_cluster_types)) < 0)
        return -1;
    if (!(c = s_grow(st, cfg->clusters, cfg->nclusters, sizeof *c)))
        return -1;
    cfg->clusters = c;
    c = &cfg->clusters[cfg->nclusters++];
    c->type = (config_cluster_type_t)type;
    c->replication = 1;
    c->pos = s_pos(st);
    if (!(c->name = strdup(name->text)))
        return config_lex_oom(st);

    if (c->type == CLUSTER_FILE) {
        if (config_lex_accept(st, "ip"))
            c->type = CLUSTER_FILE_IP;
        while ((t = config_lex_peek(st))) {
            st->i++;
            if (!t->text[0])
                return config_lex_error(st, t, "empty file name");
            if (!(m = s_new_member(st, c, t)) || s_set(st, &m->host, t->text))
                return -1;
        }
    } else if (s_cluster_opts(st, c, &rep) != 0) {
        return -1;
    }
    while (config_lex_peek(st))
        if (s_member(st, c) != 0)
            return -1;
    if (c->nmembers == 0)
        return config_lex_error(st, NULL, "'%s' has no members", c->name);
    if ((size_t)c->replication > c->nmembers)
        return config_lex_error(st, rep,
                                "'%s': replication %d is more than its %zu "
                                "member%s",
                                c->name, c->replication, c->nmembers,
                                c->nmembers == 1 ? "" : "s");
    return 0;
}

/* ------------------------------------------------------------------ */
/* match, rewrite                                                      */
/* ------------------------------------------------------------------ */

/* s_new_rule: a zeroed rule of kind appended to the tree, or NULL. */
static config_rule_t *s_new_rule(config_lex_stmt_t *st, config_rule_kind_t kind)
{
    config_t *cfg = s_parser(st)->cfg;
    config_rule_t *r = s_grow(st, cfg->rules, cfg->nrules, sizeof *r);

    if (!r)
        return NULL;
    cfg->rules = r;
    r = &cfg->rules[cfg->nrules++];
    r->kind = kind;
    r->pos = s_pos(st);
    return r;
}

/* s_dests: after "send to": cluster names up to "stop" or the end, at least
 * one.  "critical" there is refused: it belongs before "send to". */
static int s_dests(config_lex_stmt_t *st, char ***v, size_t *n)
{
    const config_lex_tok_t *t;

    if (config_lex_expect(st, "to") != 0)
        return -1;
    while ((t = config_lex_peek(st)) && !config_lex_tok_is(t, "stop")) {
        st->i++;
        if (config_lex_tok_is(t, "critical"))
            return config_lex_error(st, t,
                                    "'critical' must come before 'send to'");
        if (s_strv_add(st, v, n, t->text) != 0)
            return -1;
    }
    if (*n == 0)
        return config_lex_error(st, t, "'send to' names no cluster");
    return 0;
}

/* s_match_clauses: "[validate E else log|drop] [route using T] [critical]"
 * in any order, each once. */
static int s_match_clauses(config_lex_stmt_t *st, config_rule_t *r)
{
    static const char *const opts[] = {"validate", "route", "critical", NULL};
    static const char *const actions[] = {"log", "drop", NULL};
    const config_lex_tok_t *t;
    unsigned seen = 0;
    int k;

    while (s_index(config_lex_peek(st), opts) >= 0) {
        if ((k = s_clause(st, opts, &seen)) < 0)
            return -1;
        if (k == 0) {
            if (!(t = config_lex_take(st, "an expression after 'validate'")) ||
                config_lex_regex(st, t, NULL) != 0 ||
                s_set(st, &r->validate, t->text) != 0 ||
                config_lex_expect(st, "else") != 0 ||
                (k = config_lex_choose(st, "log or drop after 'else'",
                                       actions)) < 0)
                return -1;
            r->validate_action = k == 0 ? VALIDATE_LOG : VALIDATE_DROP;
        } else if (k == 1) {
            if (config_lex_expect(st, "using") != 0 ||
                s_take_set(st, "a template after 'route using'",
                           &r->route_using) != 0)
                return -1;
        } else {
            r->critical = true;
        }
    }
    return 0;
}

/* match <*|EXPR...> [clauses] send to DEST... [stop] ; */
static int s_stmt_match(config_lex_stmt_t *st)
{
    static const char *const ends[] = {"validate", "route", "critical", "send",
                                       NULL};
    config_rule_t *r = s_new_rule(st, RULE_MATCH);
    const config_lex_tok_t *t;
    bool all;

    if (!r)
        return -1;
    while ((t = config_lex_peek(st)) && s_index(t, ends) < 0) {
        st->i++;
        all = strcmp(t->text, "*") == 0;
        if (r->match_all || (all && r->nexprs > 0))
            return config_lex_error(st, t, "'*' must be the only expression");
        if (all)
            r->match_all = true;
        else if (config_lex_regex(st, t, NULL) != 0 ||
                 s_strv_add(st, &r->exprs, &r->nexprs, t->text) != 0)
            return -1;
    }
    if (!r->match_all && r->nexprs == 0)
        return config_lex_error(st, t, "expected an expression or '*'");
    if (s_match_clauses(st, r) != 0)
        return -1;
    t = config_lex_peek(st);
    if (config_lex_accept(st, "send")) {
        if (s_dests(st, &r->dests, &r->ndests) != 0)
            return -1;
    } else if (!r->validate || r->critical) {
        /* only a validating rule may go without destinations */
        return config_lex_expect(st, "send");
    }
    r->stop = config_lex_accept(st, "stop");
    return config_lex_end(st);
}

static const char *const s_compute_words[] = {
    "sum",    "count",      "max",      "min",    "average",
    "median", "percentile", "variance", "stddev", NULL};

void config_compute_name(const config_compute_t *c, char *buf, size_t len)
{
    if (c->kind == COMPUTE_PERCENTILE)
        snprintf(buf, len, "percentile%d", c->percentile);
    else if (c->kind == COMPUTE_QUANTILE)
        snprintf(buf, len, "p%d",
                 c->percentile % 10 ? c->percentile : c->percentile / 10);
    else
        snprintf(buf, len, "%s", s_compute_words[c->kind]);
}

void config_aggr_free(config_aggr_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->ncomputes; i++)
        free(a->computes[i].write_to);
    free(a->computes);
    free(a);
}

/* s_compute: after "compute": a kind, "write to", a template. */
static int s_compute(config_lex_stmt_t *st, config_aggr_t *a)
{
    const config_lex_tok_t *t = config_lex_take(st, "what to compute");
    if (t == NULL)
        return -1;
    config_compute_t c = {0};
    const char *w = t->text;
    int k = -1;
    for (int i = 0; s_compute_words[i]; i++)
        if (i != COMPUTE_PERCENTILE && strcmp(w, s_compute_words[i]) == 0)
            k = i;
    if (strcmp(w, "avg") == 0) /* carbon-c-relay's other spellings */
        k = COMPUTE_AVERAGE;
    else if (strcmp(w, "cnt") == 0)
        k = COMPUTE_COUNT;
    const char *d = w + 10;
    if (k < 0 && strncmp(w, "percentile", 10) == 0 &&
        strspn(d, "0123456789") == strlen(d)) {
        long pv = strlen(d) <= 3 ? strtol(d, NULL, 10) : 0;
        if (pv < 1 || pv > 99)
            return config_lex_error(st, t,
                                    "percentile<x>: value x must be between "
                                    "1 and 99");
        k = COMPUTE_PERCENTILE;
        c.percentile = (int)pv;
    }
    if (k < 0)
        return config_lex_error(st, t,
                                "'%s': expected sum, count, max, min, "
                                "average, median, percentile<1..99>, "
                                "variance or stddev",
                                w);
    c.kind = (config_compute_kind_t)k;
    if (config_lex_expect(st, "write") != 0 || config_lex_expect(st, "to") != 0)
        return -1;
    config_compute_t *v =
        s_grow(st, a->computes, a->ncomputes, sizeof *a->computes);
    if (v == NULL)
        return -1;
    a->computes = v;
    v[a->ncomputes] = c;
    if (s_take_set(st, "a metric after 'write to'",
                   &v[a->ncomputes].write_to) != 0)
        return -1;
    a->ncomputes++;
    return 0;
}

/* aggregate EXPR... every N seconds expire after N seconds [timestamp at
 * start|middle|end of bucket] compute K write to T [compute ...] [send to
 * CLUSTER...] [stop] ; -- in this order, as carbon-c-relay reads it. */
static int s_stmt_aggregate(config_lex_stmt_t *st)
{
    static const char *const positions[] = {"start", "middle", "end", NULL};
    config_rule_t *r = s_new_rule(st, RULE_AGGREGATE);
    const config_lex_tok_t *t;
    long long v;

    if (!r)
        return -1;
    if (!(r->aggr = calloc(1, sizeof *r->aggr)))
        return config_lex_oom(st);
    config_aggr_t *a = r->aggr;
    while ((t = config_lex_peek(st)) && !config_lex_tok_is(t, "every")) {
        st->i++;
        if (config_lex_regex(st, t, NULL) != 0 ||
            s_strv_add(st, &r->exprs, &r->nexprs, t->text) != 0)
            return -1;
    }
    if (r->nexprs == 0)
        return config_lex_error(st, t, "expected an expression");
    if (config_lex_expect(st, "every") != 0 ||
        config_lex_take_num(st, "interval", 0, INT_MAX, &v) != 0)
        return -1;
    const config_lex_tok_t *every = &st->tok[st->i - 1];
    a->interval = (int)v;
    if (config_lex_expect(st, "seconds") != 0 ||
        config_lex_expect(st, "expire") != 0 ||
        config_lex_expect(st, "after") != 0 ||
        config_lex_take_num(st, "expiration", 0, INT_MAX, &v) != 0)
        return -1;
    const config_lex_tok_t *expire = &st->tok[st->i - 1];
    a->expire = (int)v;
    if (config_lex_expect(st, "seconds") != 0)
        return -1;
    if (a->interval <= 0)
        return config_lex_error(st, every, "interval must be > 0");
    if (a->expire <= a->interval)
        return config_lex_error(st, expire,
                                "expire must be greater than interval");
    if (config_lex_accept(st, "timestamp")) {
        int k;
        if (config_lex_expect(st, "at") != 0 ||
            (k = config_lex_choose(st, "start, middle or end", positions)) <
                0 ||
            config_lex_expect(st, "of") != 0 ||
            config_lex_expect(st, "bucket") != 0)
            return -1;
        a->ts_at = k == 0 ? TS_AT_START : k == 1 ? TS_AT_MIDDLE : TS_AT_END;
    }
    if (config_lex_expect(st, "compute") != 0 || s_compute(st, a) != 0)
        return -1;
    while (config_lex_accept(st, "compute"))
        if (s_compute(st, a) != 0)
            return -1;
    if (config_lex_accept(st, "send") &&
        s_dests(st, &r->dests, &r->ndests) != 0)
        return -1;
    /* carbon-c-relay 3.7.3 takes `stop` only after `send to` */
    if (r->ndests == 0 && config_lex_tok_is(config_lex_peek(st), "stop"))
        return config_lex_error(st, config_lex_peek(st),
                                "'stop' comes only after 'send to' in an "
                                "aggregate (carbon-c-relay reads it so)");
    r->stop = config_lex_accept(st, "stop");
    return config_lex_end(st);
}

/* aggregation rules FILE [max intervals N] [percentiles by nearest rank]
 *     send to CLUSTER... [stop] ; -- carbon-aggregator's
 * aggregation-rules.conf read by src/carbonagg.c: its rules become
 * aggregate rules here, in its order, positioned at its lines, their
 * outputs sent to the clusters (never routed from the top, where these
 * rules would aggregate them again: carbon-aggregator never does).  stop:
 * a metric any of them matched goes no further, by a rule after them
 * (match <their expressions> send to blackhole stop).  A relative FILE is
 * found as include finds it: the working directory, then the including
 * file's directory. */
static int s_stmt_aggregation(config_lex_stmt_t *st)
{
    static const char *const opts[] = {"max", "percentiles", NULL};
    parser_t *p = s_parser(st);
    config_t *cfg = p->cfg;
    carbonagg_opts_t o = {CARBONAGG_MAX_INTERVALS, false};
    const config_lex_tok_t *t;
    char **dests = NULL, *path = NULL, *text = NULL, ebuf[128], msg[640];
    size_t ndests = 0, len = 0, n = 0, first = p->cfg->nrules;
    config_rule_t *rules = NULL, *grown = NULL;
    const char *file;
    unsigned seen = 0;
    bool stop;
    long long v;
    int k, e, rc = -1;

    if (config_lex_expect(st, "rules") != 0 ||
        !(t = config_lex_take(st, "a rules file")))
        return -1;
    while (s_index(config_lex_peek(st), opts) >= 0) {
        if ((k = s_clause(st, opts, &seen)) < 0)
            goto done;
        if (k == 0) {
            if (config_lex_expect(st, "intervals") != 0 ||
                config_lex_take_num(st, "max intervals", 1, 1000000, &v) != 0)
                goto done;
            o.max_intervals = (int)v;
        } else if (config_lex_expect(st, "by") != 0 ||
                   config_lex_expect(st, "nearest") != 0 ||
                   config_lex_expect(st, "rank") != 0) {
            goto done;
        } else {
            o.nearest_rank = true;
        }
    }
    if (config_lex_expect(st, "send") != 0 || s_dests(st, &dests, &ndests) != 0)
        goto done;
    stop = config_lex_accept(st, "stop");
    if (config_lex_end(st) != 0)
        goto done;
    if (p->flags & CONFIG_NO_INCLUDE) {
        config_lex_error(st, t, "reading files is disabled here");
        goto done;
    }
    if (!t->text[0]) {
        config_lex_error(st, t, "empty file name");
        goto done;
    }
    if (t->text[0] != '/' && p->dir && access(t->text, F_OK) != 0) {
        size_t dl = strlen(p->dir), tl = strlen(t->text);
        if ((path = malloc(dl + tl + 2)))
            snprintf(path, dl + tl + 2, "%s/%s", p->dir, t->text);
    } else {
        path = strdup(t->text);
    }
    if (!path) {
        config_lex_oom(st);
        goto done;
    }
    if ((e = config_lex_read(path, &text, &len)) != 0) {
        config_lex_error(st, t, "cannot read '%s': %s", path,
                         s_strerror(e, ebuf, sizeof ebuf));
        goto done;
    }
    if (!(file = config_add_file(cfg, path))) {
        config_lex_oom(st);
        goto done;
    }
    if (carbonagg_parse(text, len, file, &o, &rules, &n, msg, sizeof msg) !=
        0) {
        if (!st->err->failed && st->err->buf && st->err->len)
            snprintf(st->err->buf, st->err->len, "%s", msg);
        st->err->failed = true;
        goto done;
    }
    first = cfg->nrules;
    if (n > 0 && cfg->nrules < ((size_t)-1) / sizeof *grown - n - 1)
        grown = realloc(cfg->rules, (cfg->nrules + n) * sizeof *grown);
    if (n > 0 && !grown) {
        config_lex_oom(st);
        goto done;
    }
    if (n > 0) {
        cfg->rules = grown;
        memcpy(&cfg->rules[first], rules, n * sizeof *rules);
        cfg->nrules += n;
        free(rules);
        rules = NULL;
    }
    for (size_t i = first; i < first + n; i++)
        for (size_t d = 0; d < ndests; d++)
            if (s_strv_add(st, &cfg->rules[i].dests, &cfg->rules[i].ndests,
                           dests[d]) != 0)
                goto done;
    if (stop && n > 0) {
        config_rule_t *r = s_new_rule(st, RULE_MATCH);
        if (!r || s_strv_add(st, &r->dests, &r->ndests, "blackhole") != 0)
            goto done;
        r->stop = true;
        for (size_t i = first; i < first + n; i++)
            if (s_strv_add(st, &r->exprs, &r->nexprs, cfg->rules[i].exprs[0]) !=
                0)
                goto done;
    }
    rc = 0;

done:
    carbonagg_free(rules, n);
    s_strv_free(dests, ndests);
    free(path);
    free(text);
    return rc;
}

/* rewrite EXPR into REPLACEMENT ; */
static int s_stmt_rewrite(config_lex_stmt_t *st)
{
    config_rule_t *r = s_new_rule(st, RULE_REWRITE);
    const config_lex_tok_t *t, *rep;
    size_t nsub = 0;

    if (!r || !(t = config_lex_take(st, "an expression")))
        return -1;
    if (config_lex_tok_is(t, "into"))
        return config_lex_error(st, t, "expected an expression before 'into'");
    if (config_lex_regex(st, t, &nsub) != 0 ||
        s_strv_add(st, &r->exprs, &r->nexprs, t->text) != 0 ||
        config_lex_expect(st, "into") != 0 ||
        !(rep = config_lex_take(st, "a replacement after 'into'")) ||
        s_set(st, &r->replacement, rep->text) != 0 || config_lex_end(st) != 0)
        return -1;
    /* Back references: \N, with any of _ ^ . between (case and dot
     * conversions); "\\" is a backslash. */
    for (const char *s = rep->text; *s; s++) {
        const char *q = s + 1;
        if (*s != '\\')
            continue;
        if (*q == '\\') {
            s++;
            continue;
        }
        while (*q == '_' || *q == '^' || *q == '.')
            q++;
        if (*q >= '1' && *q <= '9' && (size_t)(*q - '0') > nsub)
            return config_lex_error(st, rep,
                                    "replacement uses \\%c but the "
                                    "expression has %zu group%s",
                                    *q, nsub, nsub == 1 ? "" : "s");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* listen                                                              */
/* ------------------------------------------------------------------ */

/* s_listen_addr: "ADDR [proto tcp|udp|unix]" into a new listen entry. */
static int s_listen_addr(config_lex_stmt_t *st, config_wire_t type)
{
    static const char *const opts[] = {"proto", "type", "transport",
                                       "ssl",   "mtls", NULL};
    config_t *cfg = s_parser(st)->cfg;
    const config_lex_tok_t *addr = config_lex_take(st, "an address");
    const char *s;
    config_listen_t *l;
    int k, port = 0;

    if (!addr || config_lex_refuse(st, addr, opts) != 0 ||
        !(l = s_grow(st, cfg->listens, cfg->nlistens, sizeof *l)))
        return -1;
    cfg->listens = l;
    l = &cfg->listens[cfg->nlistens++];
    l->type = type;
    l->pos.file = st->file;
    l->pos.line = addr->line;
    if (config_lex_accept(st, "proto")) {
        if ((k = config_lex_choose(st, "tcp, udp or unix after 'proto'",
                                   s_protos)) < 0)
            return -1;
        l->proto = (config_proto_t)k;
    }
    if (l->proto == PROTO_UNIX) {
        if (!addr->text[0])
            return config_lex_error(st, addr, "empty socket path");
        return s_set(st, &l->path, addr->text);
    }
    if (addr->text[0] == '/')
        return config_lex_error(st, addr,
                                "'%s' looks like a socket path: add "
                                "'proto unix'",
                                addr->text);
    for (s = addr->text; *s >= '0' && *s <= '9'; s++)
        ;
    if (s > addr->text && !*s) { /* a port alone */
        if (config_lex_port(st, addr, addr->text, (size_t)(s - addr->text),
                            &port) != 0)
            return -1;
    } else if (config_lex_hostport(st, addr, true, &l->host, &port, NULL)) {
        return -1;
    }
    if (type == WIRE_PICKLE && l->proto == PROTO_UDP)
        return config_lex_error(st, addr, "pickle is received over tcp only");
    l->port = port ? port : type == WIRE_PICKLE ? 2004 : 2003;
    return 0;
}

/* listen type linemode|pickle [transport T [ssl|mtls PEMFILE [TLS
 * options]]] ADDR [proto P] ... ; */
static int s_stmt_listen(config_lex_stmt_t *st)
{
    config_t *cfg = s_parser(st)->cfg;
    config_transport_t tr = {0};
    int type, rc = 0;

    if (config_lex_expect(st, "type") != 0 ||
        (type = config_lex_choose(st, "linemode or pickle after 'type'",
                                  s_wires)) < 0 ||
        s_transport(st, &tr, 0) != 0) {
        config_transport_free(&tr);
        return -1;
    }
    if (!config_lex_peek(st))
        rc = config_lex_error(st, NULL, "no address given");
    while (rc == 0 && config_lex_peek(st)) {
        const config_lex_tok_t *addr = config_lex_peek(st);
        if ((rc = s_listen_addr(st, (config_wire_t)type)) != 0)
            break;
        config_listen_t *l = &cfg->listens[cfg->nlistens - 1];
        if ((tr.codec || tr.tls) && l->proto == PROTO_UDP)
            rc = config_lex_error(st, addr,
                                  "a compressed or encrypted stream needs "
                                  "proto tcp or unix (this is udp)");
        else if (config_transport_dup(&l->tr, &tr) != 0)
            rc = config_lex_error(st, addr, "out of memory");
    }
    config_transport_free(&tr);
    return rc;
}

/* ------------------------------------------------------------------ */
/* statistics, include                                                 */
/* ------------------------------------------------------------------ */

/* statistics [submit every N seconds] [reset counters after interval]
 * [prefix with P] [send to CLUSTER...] [stop] ; */
/* Destinations of the statistics given twice (in carbon-c-relay's words). */
static int s_dup_stats_dests(config_lex_stmt_t *st)
{
    return config_lex_error(st, &st->tok[st->i - 1],
                            "duplicate 'statistics send to' not allowed, use "
                            "multiple destinations instead");
}

static int s_stmt_statistics(config_lex_stmt_t *st)
{
    static const char *const opts[] = {"submit", "reset", "prefix",
                                       "send",   "stop",  NULL};
    config_stats_t *s = &s_parser(st)->cfg->stats;
    unsigned seen = 0;
    int k, rc = 0;

    if (s_once(st, &s->pos) != 0)
        return -1;
    s->given = true;
    while (rc == 0 && config_lex_peek(st)) {
        if ((k = s_clause(st, opts, &seen)) < 0)
            return -1;
        if (k == 0)
            rc = config_lex_expect(st, "every") ||
                 s_take_int(st, "interval", 1, "seconds", &s->interval);
        else if (k == 1)
            rc = config_lex_expect(st, "counters") ||
                 config_lex_expect(st, "after") ||
                 config_lex_expect(st, "interval");
        else if (k == 2)
            rc = config_lex_expect(st, "with") ||
                 s_take_set(st, "a prefix after 'prefix with'", &s->prefix);
        else if (k == 3 && s->ndests > 0)
            return s_dup_stats_dests(st);
        else if (k == 3) {
            s->dests_pos = s_pos(st);
            rc = s_dests(st, &s->dests, &s->ndests);
        }
        s->reset = s->reset || k == 1;
        s->stop = s->stop || k == 4;
    }
    return rc ? -1 : 0;
}

/* send statistics to CLUSTER... [stop] ; -- the older spelling of
 * "statistics send to ... [stop]" (deprecated, still in real configs). */
static int s_stmt_send(config_lex_stmt_t *st)
{
    config_stats_t *s = &s_parser(st)->cfg->stats;
    if (config_lex_expect(st, "statistics") != 0)
        return -1;
    if (s->ndests > 0)
        return s_dup_stats_dests(st);
    s->dests_pos = s_pos(st);
    if (s_dests(st, &s->dests, &s->ndests) != 0)
        return -1;
    s->stop = s->stop || config_lex_accept(st, "stop");
    return config_lex_end(st);
}

/* include PATH_OR_GLOB ; */
static int s_stmt_include(config_lex_stmt_t *st)
{
    parser_t *p = s_parser(st);
    const config_lex_tok_t *t = config_lex_take(st, "a file or pattern");
    char **paths = NULL;
    size_t n = 0;
    int e, rc = 0;

    if (!t || config_lex_end(st) != 0)
        return -1;
    if (p->flags & CONFIG_NO_INCLUDE)
        return config_lex_error(st, t, "include is disabled here");
    if (!t->text[0])
        return config_lex_error(st, t, "empty file name");
    if (p->depth >= CONFIG_MAX_DEPTH)
        return config_lex_error(st, t,
                                "'%s': includes nested deeper than %d files "
                                "(an include loop?)",
                                t->text, CONFIG_MAX_DEPTH);
    /* a relative path: against the working directory first, as
     * carbon-c-relay reads it, then against the including file's
     * directory when that finds nothing (no file, or a pattern that
     * matches none) */
    e = config_lex_paths(NULL, t->text, &paths, &n);
    if (e == 0 && t->text[0] != '/' && p->dir &&
        (n == 0 || (!strpbrk(t->text, "*?[") && access(paths[0], F_OK) != 0))) {
        s_strv_free(paths, n);
        paths = NULL;
        n = 0;
        e = config_lex_paths(p->dir, t->text, &paths, &n);
    }
    if (e != 0)
        return e == ENOMEM
                   ? config_lex_oom(st)
                   : config_lex_error(st, t, "'%s': cannot read a directory",
                                      t->text);
    for (size_t k = 0; k < n && rc == 0; k++)
        rc = s_parse_file(p, paths[k], p->depth + 1, st);
    s_strv_free(paths, n);
    return rc;
}

/* ------------------------------------------------------------------ */
/* orchester extensions                                                */
/* ------------------------------------------------------------------ */

/* satellites bind EP [EP...] ; */
static int s_stmt_satellites(config_lex_stmt_t *st)
{
    config_t *cfg = s_parser(st)->cfg;
    const config_lex_tok_t *t;

    if (config_lex_expect(st, "bind") != 0)
        return -1;
    if (!config_lex_peek(st))
        return config_lex_error(st, NULL, "expected an endpoint after 'bind'");
    do {
        if (!(t = config_lex_take(st, "an endpoint")) ||
            config_lex_endpoint(st, t) != 0 ||
            s_strv_add(st, &cfg->satellites_bind, &cfg->nsatellites_bind,
                       t->text) != 0)
            return -1;
    } while (config_lex_peek(st));
    return 0;
}

/* orchester EP [EP] [timeout N ms] ; */
static int s_stmt_orchester(config_lex_stmt_t *st)
{
    config_t *cfg = s_parser(st)->cfg;
    const config_lex_tok_t *t;

    if (s_once(st, &s_parser(st)->orchester_pos) != 0)
        return -1;
    while ((t = config_lex_peek(st)) && !config_lex_tok_is(t, "timeout")) {
        if (cfg->norchesters == 2)
            return config_lex_error(st, t,
                                    "at most two endpoints (the primary, "
                                    "then the backup)%s",
                                    config_lex_hint(t));
        st->i++;
        if (config_lex_endpoint(st, t) != 0 ||
            s_strv_add(st, &cfg->orchesters, &cfg->norchesters, t->text))
            return -1;
    }
    if (cfg->norchesters == 0)
        return config_lex_error(st, t, "expected an endpoint");
    if (config_lex_accept(st, "timeout") &&
        s_take_int(st, "timeout", 1, "ms", &cfg->orchester_timeout_ms) != 0)
        return -1;
    return config_lex_end(st);
}

/* control EP ; */
/* Whether a tcp:// endpoint listens on a loopback address only. */
static int s_loopback_tcp(const char *ep)
{
    const char *h = ep + 6; /* after "tcp://" */
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
           strncmp(h, "[::1]:", 6) == 0;
}

/* control EP [exposed] ; -- the control socket stays on this host unless
 * `exposed` says otherwise. */
static int s_stmt_control(config_lex_stmt_t *st)
{
    config_t *cfg = s_parser(st)->cfg;
    const config_lex_tok_t *t;
    if (s_once(st, &s_parser(st)->control_pos) != 0)
        return -1;
    t = config_lex_peek(st); /* NULL at ';': s_take_endpoint says what lacks */
    if (s_take_endpoint(st, "an endpoint", &cfg->control) != 0)
        return -1;
    int exposed = config_lex_accept(st, "exposed");
    if (!exposed && strncmp(cfg->control, "tcp://", 6) == 0 &&
        !s_loopback_tcp(cfg->control))
        return config_lex_error(st, t,
                                "control %s can be reached from other hosts: "
                                "use ipc:// or a loopback address, or say "
                                "'control %s exposed ;' to mean it",
                                cfg->control, cfg->control);
    return config_lex_end(st);
}

/* Whether HOST:PORT's host is numeric (IPv4, [IPv6]) or localhost. */
static int s_numeric_host(const char *hp)
{
    char host[256];
    const char *colon = strrchr(hp, ':');
    size_t l = colon ? (size_t)(colon - hp) : strlen(hp);
    if (l == 0 || l >= sizeof host)
        return 0;
    memcpy(host, hp, l);
    host[l] = '\0';
    if (strcmp(host, "localhost") == 0)
        return 1;
    unsigned char buf[16];
    if (host[0] == '[' && l > 2 && host[l - 1] == ']') {
        host[l - 1] = '\0';
        return inet_pton(AF_INET6, host + 1, buf) == 1;
    }
    return inet_pton(AF_INET, host, buf) == 1;
}

/* buffer redis TARGET [prefix P] [max N datapoints] [replay N per second]
 *     [when full drop|block] [all critical] ; */
static int s_buffer_sentinel(config_lex_stmt_t *st, config_buffer_t *b);
static int s_buffer_clauses(config_lex_stmt_t *st, config_buffer_t *b);

static int s_stmt_buffer(config_lex_stmt_t *st)
{
    static const char *const kinds[] = {"redis", NULL};
    config_buffer_t *b = &s_parser(st)->cfg->buffer;
    const config_lex_tok_t *t;
    int port = 0;

    if (s_once(st, &b->pos) != 0 ||
        config_lex_choose(st, "'redis'", kinds) < 0 ||
        !(t = config_lex_take(st, "a target (unix:PATH or HOST:PORT)")))
        return -1;
    if (config_lex_tok_is(t, "sentinel"))
        return s_buffer_sentinel(st, b) || s_buffer_clauses(st, b) ? -1 : 0;
    if (strncmp(t->text, "unix:", 5) == 0
            ? !t->text[5]
            : config_lex_hostport(st, t, false, NULL, &port, NULL) || !port)
        return config_lex_error(
            st, t, "target '%s' must be unix:PATH or HOST:PORT", t->text);
    if (strncmp(t->text, "unix:", 5) != 0 && !s_numeric_host(t->text))
        return config_lex_error(st, t,
                                "target '%s': the host must be an IP address "
                                "or localhost (Redis is never looked up by "
                                "name)",
                                t->text);
    if (s_set(st, &b->target, t->text) != 0)
        return -1;
    return s_buffer_clauses(st, b);
}

/* buffer redis sentinel HOST:PORT[,HOST:PORT...] master NAME ...: the
 * target "sentinel:LIST/NAME" (src/redis.c asks the sentinels). */
static int s_buffer_sentinel(config_lex_stmt_t *st, config_buffer_t *b)
{
    const config_lex_tok_t *t, *n;
    if (!(t = config_lex_take(st, "the sentinels (HOST:PORT[,HOST:PORT...])")))
        return -1;
    char one[300];
    for (const char *p = t->text; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        int port = 0;
        snprintf(one, sizeof one, "%.*s", (int)l, p);
        if (l == 0 || l >= sizeof one || !s_numeric_host(one) ||
            !strchr(one, ':') || (port = atoi(strrchr(one, ':') + 1)) <= 0 ||
            port > 65535)
            return config_lex_error(st, t,
                                    "sentinel '%s' must be IP:PORT (or "
                                    "localhost:PORT), the sentinels separated "
                                    "by commas",
                                    one);
        p += l + (e ? 1 : 0);
    }
    if (config_lex_expect(st, "master") != 0 ||
        !(n = config_lex_take(st, "the master's name after 'master'")))
        return -1;
    size_t len = strlen(t->text) + strlen(n->text) + 16;
    char *target = malloc(len);
    if (target == NULL)
        return config_lex_error(st, t, "out of memory");
    snprintf(target, len, "sentinel:%s/%s", t->text, n->text);
    int rc = s_set(st, &b->target, target);
    free(target);
    return rc;
}

/* The clauses of a buffer statement after its target. */
static int s_buffer_clauses(config_lex_stmt_t *st, config_buffer_t *b)
{
    static const char *const opts[] = {"prefix", "max",  "replay", "when",
                                       "all",    "wait", NULL};
    static const char *const fulls[] = {"drop", "block", NULL};
    const config_lex_tok_t *t;
    unsigned seen = 0;
    int k, rc = 0;
    while (rc == 0 && config_lex_peek(st)) {
        if ((k = s_clause(st, opts, &seen)) < 0)
            return -1;
        if (k == 0) {
            if (!(t = config_lex_take(st, "a prefix after 'prefix'")))
                return -1;
            rc = !t->text[0] ? config_lex_error(st, t, "empty prefix")
                             : s_set(st, &b->prefix, t->text);
        } else if (k == 1) {
            rc = config_lex_take_num(st, "max", 1, LLONG_MAX, &b->max) ||
                 config_lex_expect(st, "datapoints");
        } else if (k == 2) {
            rc = config_lex_take_num(st, "replay", 1, LLONG_MAX, &b->replay) ||
                 config_lex_expect(st, "per") ||
                 config_lex_expect(st, "second");
        } else if (k == 3) {
            int f;
            rc = config_lex_expect(st, "full") ||
                 (f = config_lex_choose(st, "drop or block after 'when full'",
                                        fulls)) < 0;
            if (!rc)
                b->full = f == 0 ? BUFFER_FULL_DROP : BUFFER_FULL_BLOCK;
        } else if (k == 4) {
            rc = config_lex_expect(st, "critical");
            b->all_critical = true;
        } else {
            t = config_lex_peek(st);
            rc = s_take_int(st, "wait", 1, "ms", &b->wait_ms);
            if (rc == 0 && b->wait_ms > 1000)
                rc = config_lex_error(st, t,
                                      "wait %d ms: at most 1000 ms (a Redis "
                                      "command unanswered for 2000 ms ends "
                                      "the connection)",
                                      b->wait_ms);
        }
    }
    return rc ? -1 : 0;
}

/* curve key FILE [allow FILE...] [server FILE] ; */
static int s_stmt_curve(config_lex_stmt_t *st)
{
    static const char *const opts[] = {"key", "allow", "server", NULL};
    config_curve_t *c = &s_parser(st)->cfg->curve;
    const config_lex_tok_t *t;
    unsigned seen = 0;
    int k, rc = 0;
    if (s_once(st, &c->pos) != 0)
        return -1;
    while (rc == 0 && config_lex_peek(st)) {
        if ((k = s_clause(st, opts, &seen)) < 0)
            return -1;
        if (k == 0) {
            rc = s_take_set(st, "a key file after 'key'", &c->key);
        } else if (k == 1) {
            while ((t = config_lex_peek(st)) && s_index(t, opts) < 0) {
                st->i++;
                if (s_strv_add(st, &c->allow, &c->nallow, t->text) != 0)
                    return -1;
            }
            if (c->nallow == 0)
                return config_lex_error(st, t, "'allow' names no file");
        } else {
            rc = s_take_set(st, "a public key file after 'server'", &c->server);
        }
    }
    if (rc)
        return -1;
    if (!c->key)
        return config_lex_error(st, NULL, "missing 'key FILE'");
    return 0;
}

/* ha primary|backup publish EP peer PUB_EP SAT_EP [heartbeat N ms] ; */
static int s_stmt_ha(config_lex_stmt_t *st)
{
    static const char *const roles[] = {"primary", "backup", NULL};
    static const char *const opts[] = {"publish", "peer", "heartbeat",
                                       "failback", NULL};
    config_ha_t *ha = &s_parser(st)->cfg->ha;
    unsigned seen = 0;
    int k, rc = 0;

    if (s_once(st, &ha->pos) != 0 ||
        (k = config_lex_choose(st, "primary or backup", roles)) < 0)
        return -1;
    ha->role = k == 0 ? HA_PRIMARY : HA_BACKUP;
    while (rc == 0 && config_lex_peek(st)) {
        if ((k = s_clause(st, opts, &seen)) < 0)
            return -1;
        if (k == 0)
            rc = s_take_endpoint(st, "an endpoint after 'publish'",
                                 &ha->publish);
        else if (k == 1)
            rc = s_take_endpoint(st, "the peer's publish endpoint",
                                 &ha->peer_publish) ||
                 s_take_endpoint(st, "the peer's satellites endpoint",
                                 &ha->peer_satellites);
        else if (k == 2)
            rc = s_take_int(st, "heartbeat", 1, "ms", &ha->heartbeat_ms);
        else
            rc = config_lex_expect(st, "after") ||
                 s_take_int(st, "failback after", 1, "ms", &ha->failback_ms);
    }
    if (rc)
        return -1;
    if (!ha->publish)
        return config_lex_error(st, NULL, "missing 'publish ENDPOINT'");
    if (!ha->peer_publish)
        return config_lex_error(st, NULL,
                                "missing 'peer PUBLISH_ENDPOINT "
                                "SATELLITES_ENDPOINT'");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Files and statements                                                */
/* ------------------------------------------------------------------ */

/* Statement keywords and their parsers. */
static const struct {
    const char *word; /* the keyword */
    stmt_parse_fn fn; /* its parser */
} s_statements[] = {
    {"cluster", s_stmt_cluster},
    {"match", s_stmt_match},
    {"rewrite", s_stmt_rewrite},
    {"listen", s_stmt_listen},
    {"statistics", s_stmt_statistics},
    {"aggregate", s_stmt_aggregate},
    {"aggregation", s_stmt_aggregation},
    {"send", s_stmt_send},
    {"include", s_stmt_include},
    {"satellites", s_stmt_satellites},
    {"orchester", s_stmt_orchester},
    {"control", s_stmt_control},
    {"buffer", s_stmt_buffer},
    {"ha", s_stmt_ha},
    {"curve", s_stmt_curve},
};

/* s_statement: dispatch on the statement's first word. */
static int s_statement(config_lex_stmt_t *st)
{
    const config_lex_tok_t *t = &st->tok[0];
    size_t n = sizeof s_statements / sizeof s_statements[0];

    if ((s_parser(st)->flags & CONFIG_RULES_ONLY) &&
        !config_lex_tok_is(t, "match") && !config_lex_tok_is(t, "rewrite") &&
        !config_lex_tok_is(t, "aggregate"))
        return config_lex_fail(st->err, st->file, t->line,
                               "'%s': only a match, rewrite or aggregate rule "
                               "here",
                               t->text);
    for (size_t k = 0; k < n; k++) {
        if (config_lex_tok_is(t, s_statements[k].word)) {
            st->name = s_statements[k].word;
            st->i = 1;
            return s_statements[k].fn(st);
        }
    }
    return config_lex_fail(st->err, st->file, t->line, "unknown statement '%s'",
                           t->text);
}

/* s_parse_text: parse len bytes of text, read from file (borrowed from
 * cfg->files), into the tree.  dir is the base of relative includes in it
 * and depth its include depth. */
static int s_parse_text(parser_t *p, const char *text, size_t len,
                        const char *file, const char *dir, int depth)
{
    const char *outer_dir = p->dir;
    int outer_depth = p->depth;
    config_lex_t lex;
    config_lex_stmt_t st;
    char msg[128];
    int errline = 0, rc = -1;
    size_t start = 0;

    if (config_lex_run(text, len, &lex, &errline, msg, sizeof msg) != 0)
        return config_lex_fail(&p->err, file, errline, "%s", msg);
    p->dir = dir;
    p->depth = depth;
    for (size_t i = 0; i < lex.ntoks; i++) {
        if (!lex.toks[i].semi)
            continue;
        if (i > start) { /* a lone ';' is an empty statement */
            memset(&st, 0, sizeof st);
            st.tok = &lex.toks[start];
            st.n = i - start;
            st.file = file;
            st.endline = lex.toks[i].line;
            st.err = &p->err;
            st.ctx = p;
            if (s_statement(&st) != 0)
                goto done;
        }
        start = i + 1;
    }
    if (start < lex.ntoks) {
        config_lex_fail(&p->err, file, lex.toks[lex.ntoks - 1].line,
                        "missing ';' at end of file (the '%.40s' statement "
                        "of line %d is not terminated)",
                        lex.toks[start].text, lex.toks[start].line);
        goto done;
    }
    rc = 0;

done:
    p->dir = outer_dir;
    p->depth = outer_depth;
    config_lex_free(&lex);
    return rc;
}

const char *config_add_file(config_t *cfg, const char *path)
{
    char **grown = NULL;
    char *copy = strdup(path);

    if (copy && cfg->nfiles < ((size_t)-1) / sizeof *grown - 1)
        grown = realloc(cfg->files, (cfg->nfiles + 1) * sizeof *grown);
    if (!grown) {
        free(copy);
        return NULL;
    }
    cfg->files = grown;
    grown[cfg->nfiles++] = copy;
    return copy;
}

/* s_parse_file: read path and parse it into the tree at include depth.
 * from is the include statement, or NULL for the main file (errors then
 * name path without a line). */
static int s_parse_file(parser_t *p, const char *path, int depth,
                        const config_lex_stmt_t *from)
{
    char *text = NULL, *dir = NULL;
    const char *file, *slash;
    char ebuf[128];
    size_t len = 0;
    int e, rc = -1;

    if ((e = config_lex_read(path, &text, &len)) != 0) {
        if (from)
            return config_lex_fail(&p->err, from->file,
                                   from->tok[from->i - 1].line,
                                   "include: cannot read '%s': %s", path,
                                   s_strerror(e, ebuf, sizeof ebuf));
        return config_lex_fail(&p->err, path, 0, "cannot read: %s",
                               s_strerror(e, ebuf, sizeof ebuf));
    }
    if (!(file = config_add_file(p->cfg, path)) ||
        ((slash = strrchr(file, '/')) &&
         !(dir = strndup(file, slash == file ? 1 : (size_t)(slash - file))))) {
        config_lex_fail(&p->err, path, 0, "out of memory");
        goto done;
    }
    rc = s_parse_text(p, text, len, file, dir, depth);

done:
    free(dir);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Whole-tree checks, construction, destruction                        */
/* ------------------------------------------------------------------ */

/* s_check_dests: every name in dests is a cluster or "blackhole". */
static int s_check_dests(parser_t *p, const char *what, char **dests, size_t n,
                         config_pos_t pos)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(dests[i], "blackhole") != 0 &&
            !config_find_cluster(p->cfg, dests[i]))
            return config_lex_fail(&p->err, pos.file, pos.line,
                                   "%s: unknown cluster '%s'%s", what, dests[i],
                                   config_lex_keyword(dests[i])
                                       ? " (missing ';' before it?)"
                                       : "");
    return 0;
}

/* s_check: the checks that need the whole tree. */
static int s_check(parser_t *p)
{
    const config_t *cfg = p->cfg;

    for (size_t i = 0; i < cfg->nrules; i++)
        if (s_check_dests(p, "match", cfg->rules[i].dests, cfg->rules[i].ndests,
                          cfg->rules[i].pos) != 0)
            return -1;
    return s_check_dests(p, "statistics", cfg->stats.dests, cfg->stats.ndests,
                         cfg->stats.dests_pos);
}

/* s_begin: set up p with a new tree holding the defaults.  Returns 0, or
 * -1 with "name: out of memory" in err. */
static int s_begin(parser_t *p, const char *name, int flags, char *err,
                   size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->err.buf = err;
    p->err.len = errlen;
    p->flags = flags;
    if (err && errlen)
        err[0] = '\0';
    if (!(p->cfg = calloc(1, sizeof *p->cfg)) ||
        !(p->cfg->buffer.prefix = strdup("orchester"))) {
        free(p->cfg);
        p->cfg = NULL;
        return config_lex_fail(&p->err, name, 0, "out of memory");
    }
    p->cfg->orchester_timeout_ms = (int)opt_default(OPT_ACK_TIMEOUT);
    p->cfg->stats.interval = 60;
    p->cfg->buffer.max = 50000000;
    p->cfg->buffer.replay = 200000;
    p->cfg->ha.heartbeat_ms = 1000;
    return 0;
}

config_t *config_load(const char *file, char *err, size_t errlen)
{
    parser_t p;

    if (!file)
        file = "(null)";
    if (s_begin(&p, file, 0, err, errlen) != 0)
        return NULL;
    if (s_parse_file(&p, file, 0, NULL) != 0 || s_check(&p) != 0)
        goto err;
    return p.cfg;

err:
    config_destroy(&p.cfg);
    return NULL;
}

config_t *config_parse_string_flags(const char *text, const char *name,
                                    int flags, char *err, size_t errlen)
{
    parser_t p;
    const char *file;

    if (!name)
        name = "(string)";
    if (!text)
        text = "";
    if (s_begin(&p, name, flags, err, errlen) != 0)
        return NULL;
    if (!(file = config_add_file(p.cfg, name))) {
        config_lex_fail(&p.err, name, 0, "out of memory");
        goto err;
    }
    if (s_parse_text(&p, text, strlen(text), file, NULL, 0) != 0 ||
        (!(flags & CONFIG_NO_CHECK) && s_check(&p) != 0))
        goto err;
    return p.cfg;

err:
    config_destroy(&p.cfg);
    return NULL;
}

config_t *config_parse_string(const char *text, const char *name, char *err,
                              size_t errlen)
{
    return config_parse_string_flags(text, name, 0, err, errlen);
}

void config_destroy(config_t **cfgp)
{
    config_t *cfg;

    if (!cfgp || !*cfgp)
        return;
    cfg = *cfgp;
    for (size_t i = 0; i < cfg->nlistens; i++) {
        free(cfg->listens[i].host);
        free(cfg->listens[i].path);
        config_transport_free(&cfg->listens[i].tr);
    }
    free(cfg->listens);
    for (size_t i = 0; i < cfg->nclusters; i++) {
        config_cluster_t *c = &cfg->clusters[i];
        for (size_t j = 0; j < c->nmembers; j++) {
            free(c->members[j].host);
            free(c->members[j].instance);
            config_transport_free(&c->members[j].tr);
        }
        free(c->members);
        free(c->name);
    }
    free(cfg->clusters);
    for (size_t i = 0; i < cfg->nrules; i++) {
        config_rule_t *r = &cfg->rules[i];
        s_strv_free(r->exprs, r->nexprs);
        s_strv_free(r->dests, r->ndests);
        free(r->validate);
        free(r->route_using);
        free(r->replacement);
        config_aggr_free(r->aggr);
    }
    free(cfg->rules);
    s_strv_free(cfg->satellites_bind, cfg->nsatellites_bind);
    s_strv_free(cfg->orchesters, cfg->norchesters);
    free(cfg->control);
    free(cfg->stats.prefix);
    s_strv_free(cfg->stats.dests, cfg->stats.ndests);
    free(cfg->curve.key);
    s_strv_free(cfg->curve.allow, cfg->curve.nallow);
    free(cfg->curve.server);
    free(cfg->buffer.target);
    free(cfg->buffer.prefix);
    free(cfg->ha.publish);
    free(cfg->ha.peer_publish);
    free(cfg->ha.peer_satellites);
    s_strv_free(cfg->files, cfg->nfiles);
    free(cfg);
    *cfgp = NULL;
}

const config_cluster_t *config_find_cluster(const config_t *cfg,
                                            const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->nclusters; i++)
        if (cfg->clusters[i].name && strcmp(cfg->clusters[i].name, name) == 0)
            return &cfg->clusters[i];
    return NULL;
}
