/*
 * routes.h -- routing changed at run time (`orchester-ctl route`): the list
 * of changes, its file, and applying it over a configuration.
 *
 * Pure core: it reads and writes the one file it is given, and nothing
 * else.  A change is one of
 *   add POS RULE       a match or rewrite rule, before the rule now at POS
 *                      (1-based) of the rules in force; past the end: last
 *   remove RULE        the first rule in force that reads RULE (a rule of
 *                      the config file, written as routes_rule_text writes
 *                      it)
 *   drain CLUSTER M    member M (host:port) leaves the cluster: its share
 *                      goes to the others, as when it is down
 *   redirect CLUSTER MEMBERS...
 *                      the cluster's members are these instead
 * The changes are applied in order over the rules and clusters the config
 * file gave, at every start, reload and change: they survive both.  A
 * change that no longer fits the file (its rule or member is gone) is
 * skipped, and the skip is said; an added rule that names a cluster the
 * file does not have is an error, so the configuration is refused.
 *
 * The file (by default the config file's name with ".routes" after it):
 * one change a line, as above, after two comment lines; '#' lines and
 * empty lines are skipped.  It is written whole, to a temporary file that
 * is then renamed over it, so a crash leaves the old or the new one.
 *
 * Ownership: a routes_t owns its changes and their strings.  Functions that
 * return a new routes_t or string give it to the caller.
 */
#ifndef ORCHESTER_ROUTES_H
#define ORCHESTER_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum {
    ROUTE_ADD = 0,
    ROUTE_REMOVE,
    ROUTE_DRAIN,
    ROUTE_REDIRECT
} route_kind_t;

typedef struct {
    route_kind_t kind;
    int pos;       /* add: 1-based position */
    char *text;    /* add, remove: the rule; drain: the member; redirect:
                      the members, as the config language writes them */
    char *cluster; /* drain, redirect */
    int line;      /* its line in the file */
} route_change_t;

typedef struct {
    route_change_t *v;
    size_t n;
} routes_t;

/* routes_new: an empty list (NULL when out of memory). */
routes_t *routes_new(void);

/* routes_destroy: free *r, set it NULL; safe on NULL. */
void routes_destroy(routes_t **r);

/* routes_dup: a copy, or NULL. */
routes_t *routes_dup(const routes_t *r);

/* routes_parse: the changes in text (len bytes); NULL with
 * "NAME:LINE: what is wrong" in err. */
routes_t *routes_parse(const char *text, size_t len, const char *name,
                       char *err, size_t errlen);

/* routes_format: the file's text (malloc'd, NUL-terminated), or NULL. */
char *routes_format(const routes_t *r);

/* routes_hash: FNV-1a 64 of the formatted text: the same changes give the
 * same hash (the members of a pair compare them). */
uint64_t routes_hash(const routes_t *r);

/* routes_load: the file at path; a file that does not exist is an empty
 * list.  NULL with a message in err. */
routes_t *routes_load(const char *path, char *err, size_t errlen);

/* routes_save: write the file (temporary file, fsync, rename).  0, or -1
 * with a message in err. */
int routes_save(const routes_t *r, const char *path, char *err, size_t errlen);

/* routes_path: the default file for a config file: CONFIG.routes
 * (malloc'd), or NULL. */
char *routes_path(const char *config);

/* Told once for each change that was skipped (it no longer fits). */
typedef void(routes_skip_fn)(void *arg, const route_change_t *c,
                             const char *why);

/* routes_apply: apply r over cfg (the tree its file gave, not yet
 * expanded by useall).  name is the routes file: added rules' positions
 * name it (config_add_file) and their lines.  Returns 0, or -1 with
 * "NAME:LINE: what is wrong" in err; cfg is then in no state to use
 * (destroy it). */
int routes_apply(const routes_t *r, config_t *cfg, const char *name,
                 routes_skip_fn *skip, void *arg, char *err, size_t errlen);

/* routes_rule_text: rule in the config language, on one line, with a
 * final ';' (quoted where a word needs it).  Returns the length it needs
 * (as snprintf). */
size_t routes_rule_text(const config_rule_t *rule, char *buf, size_t len);

/* routes_command: the change `orchester-ctl route WORDS` asks for, made to
 * cur, evaluated against base (the tree the config file gave).  words is
 * the rest of the command line after "route":
 *   add POS|first|last RULE...     remove POS     drain CLUSTER MEMBER
 *   back CLUSTER MEMBER            redirect CLUSTER MEMBER...
 *   restore CLUSTER                clear
 * On success returns 0 with the new list in *out and "ok ..." in msg; else
 * -1 with "error ..." in msg.  The new list is checked by applying it to a
 * copy of base. */
int routes_command(const routes_t *cur, const config_t *base, const char *name,
                   const char *words, routes_t **out, char *msg, size_t msglen);

/* routes_list: what `orchester-ctl route list` prints for cfg (the tree in
 * force, changes applied) and r: the rules numbered, each with where it
 * came from, then the changes.  Appends to buf (NUL-terminated, within
 * len); returns the length it needed. */
size_t routes_list(const routes_t *r, const config_t *cfg, const char *name,
                   char *buf, size_t len);

#endif
