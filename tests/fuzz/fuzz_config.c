/*
 * fuzz_config.c -- libFuzzer harness for the configuration parser
 * (src/config.c, src/config_lex.c).
 *
 * The input is copied to a NUL-terminated heap block of its exact length
 * (so ASan sees any read past the end) and parsed with includes disabled,
 * so fuzz input never opens a file.  A parse either gives a tree, which is
 * walked and freed, or NULL with a "NAME:LINE: " message; both are checked.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/config.c \
 *       src/config_lex.c tests/fuzz/fuzz_config.c -o fuzz_config
 *   ./fuzz_config -max_total_time=20 corpus-copy/
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Check what a good tree promises: counts match arrays, strings are set,
 * ports are in range, and every referenced cluster exists. */
static void s_check(const config_t *cfg)
{
    assert(cfg->nfiles == 1 && strcmp(cfg->files[0], "fuzz.conf") == 0);
    for (size_t i = 0; i < cfg->nlistens; i++) {
        const config_listen_t *l = &cfg->listens[i];
        if (l->proto == PROTO_UNIX)
            assert(l->path && l->path[0] && !l->host);
        else
            assert(l->port >= 1 && l->port <= 65535 && !l->path);
    }
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const config_cluster_t *c = &cfg->clusters[i];
        assert(c->name && c->nmembers > 0);
        assert(c->replication >= 1 && (size_t)c->replication <= c->nmembers);
        assert(config_find_cluster(cfg, c->name) == c);
        for (size_t j = 0; j < c->nmembers; j++) {
            assert(c->members[j].host && c->members[j].pos.line > 0);
            if (c->type != CLUSTER_FILE && c->type != CLUSTER_FILE_IP)
                assert(c->members[j].port >= 1 && c->members[j].port <= 65535);
        }
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        const config_rule_t *r = &cfg->rules[i];
        assert(r->pos.file == cfg->files[0] && r->pos.line > 0);
        if (r->kind == RULE_REWRITE)
            assert(r->nexprs == 1 && r->replacement);
        else
            assert(r->match_all != (r->nexprs > 0));
        for (size_t j = 0; j < r->ndests; j++)
            assert(strcmp(r->dests[j], "blackhole") == 0 ||
                   config_find_cluster(cfg, r->dests[j]));
    }
    assert(cfg->norchesters <= 2);
    assert(cfg->buffer.prefix && cfg->buffer.max >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char err[256];
    config_t *cfg;

    assert(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    cfg = config_parse_string_flags(text, "fuzz.conf", CONFIG_NO_INCLUDE, err,
                                    sizeof err);
    if (cfg) {
        s_check(cfg);
        config_destroy(&cfg);
        config_destroy(&cfg);
        assert(cfg == NULL);
    } else {
        assert(strncmp(err, "fuzz.conf:", 10) == 0);
        assert(memchr(err, '\0', sizeof err) != NULL);
    }
    free(text);
    return 0;
}
