/*
 * test_curve.c -- unit tests of the CURVE key files (src/curve.c): parsing
 * key pairs and lists of public keys, and orchester-ctl keygen's files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"

static void test_keypair(void **state)
{
    (void)state;
    char pub[41], sec[41], text[256], err[256];
    curve_keypair_t kp;
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "# a comment\n  \npublic %s\nsecret %s\n", pub,
             sec);
    assert_int_equal(curve_parse_keypair(text, &kp, err, sizeof err), 0);
    assert_string_equal(kp.pub, pub);
    assert_string_equal(kp.sec, sec);
    /* the public key is derived when absent */
    snprintf(text, sizeof text, "secret %s\n", sec);
    assert_int_equal(curve_parse_keypair(text, &kp, err, sizeof err), 0);
    assert_string_equal(kp.pub, pub);
    /* a public file is no key pair */
    snprintf(text, sizeof text, "public %s\n", pub);
    assert_int_equal(curve_parse_keypair(text, &kp, err, sizeof err), -1);
    assert_non_null(strstr(err, "no 'secret KEY'"));
    /* a public key of another pair */
    char pub2[41], sec2[41];
    zmq_curve_keypair(pub2, sec2);
    snprintf(text, sizeof text, "public %s\nsecret %s\n", pub2, sec);
    assert_int_equal(curve_parse_keypair(text, &kp, err, sizeof err), -1);
    assert_non_null(strstr(err, "not the secret key's"));
    /* a line that is no key */
    assert_int_equal(
        curve_parse_keypair("secret short\n", &kp, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 1"));
}

/* Keys hold '#' at times: only a line starting with it is a comment. */
static void test_hash_in_key(void **state)
{
    (void)state;
    char pub[41], sec[41], text[256], err[256];
    for (int i = 0; i < 2000; i++) {
        zmq_curve_keypair(pub, sec);
        if (strchr(pub, '#'))
            break;
    }
    assert_non_null(strchr(pub, '#'));
    snprintf(text, sizeof text, "%s\n", pub);
    char keys[2][CURVE_KEYLEN + 1];
    size_t n = 0;
    assert_int_equal(curve_parse_public(text, keys, 2, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0], pub);
}

static void test_public_list(void **state)
{
    (void)state;
    char p1[41], p2[41], s1[41], s2[41], text[512], err[256];
    zmq_curve_keypair(p1, s1);
    zmq_curve_keypair(p2, s2);
    /* bare keys, public lines, a key pair file's public line; comments */
    snprintf(text, sizeof text, "# allowed\n%s\npublic %s\nsecret %s\n", p1, p2,
             s2);
    char keys[3][CURVE_KEYLEN + 1];
    size_t n = 0;
    assert_int_equal(curve_parse_public(text, keys, 3, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], p1);
    assert_string_equal(keys[1], p2);
    /* more than fit */
    n = 2;
    assert_int_equal(curve_parse_public(text, keys, 3, &n, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "more than 3"));
    /* not a key */
    n = 0;
    assert_int_equal(
        curve_parse_public("public nope\n", keys, 3, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 1"));
}

static void test_keygen(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_curve.XXXXXX", path[256], pubpath[300], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k", dir);
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    assert_int_equal(curve_keygen(path, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    curve_keypair_t kp;
    assert_int_equal(curve_read_keypair(path, &kp, err, sizeof err), 0);
    char keys[1][CURVE_KEYLEN + 1];
    size_t n = 0;
    assert_int_equal(curve_read_public(pubpath, keys, 1, &n, err, sizeof err),
                     0);
    assert_string_equal(keys[0], kp.pub);
    /* never over an existing key */
    assert_int_equal(curve_keygen(path, err, sizeof err), -1);
    assert_non_null(strstr(err, "exists"));
    unlink(path);
    unlink(pubpath);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keypair),
        cmocka_unit_test(test_hash_in_key),
        cmocka_unit_test(test_public_list),
        cmocka_unit_test(test_keygen),
    };
    return cmocka_run_group_tests_name("curve", tests, NULL, NULL);
}
