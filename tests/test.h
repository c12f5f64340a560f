/*
 * test.h - the few assertions the C tests use. A failed check prints where
 * and why and marks the test failed; the test keeps going so one run shows
 * every failure. main() returns test_status().
 */
#ifndef DITD_TEST_H
#define DITD_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_failures;

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++; \
        } \
    } while (0)

#define CHECK_EQ_INT(a, b) do { \
        long long a_ = (long long)(a), b_ = (long long)(b); \
        if (a_ != b_) { \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_); \
            test_failures++; \
        } \
    } while (0)

#define CHECK_NEAR(a, b, tol) do { \
        double a_ = (double)(a), b_ = (double)(b); \
        if (!(fabs(a_ - b_) <= (tol))) { \
            fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g (tol %g)\n", \
                    __FILE__, __LINE__, #a, a_, b_, (double)(tol)); \
            test_failures++; \
        } \
    } while (0)

#define CHECK_STR_CONTAINS(s, sub) do { \
        const char *s_ = (s); \
        if (!s_ || !strstr(s_, (sub))) { \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", \
                    __FILE__, __LINE__, s_ ? s_ : "(null)", (sub)); \
            test_failures++; \
        } \
    } while (0)

static inline int test_status(void)
{
    if (test_failures)
        fprintf(stderr, "%d check(s) failed\n", test_failures);
    return test_failures ? 1 : 0;
}

#endif /* DITD_TEST_H */
