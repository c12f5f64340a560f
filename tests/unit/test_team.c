/*
 * test_team.c - every task runs exactly once, on a valid thread id, for
 * many loops in a row and for uneven task counts.
 */
#include <stdatomic.h>

#include "../test.h"
#include "team.h"

struct count {
    atomic_int hits[1000];
    atomic_int bad_thread;
    int threads;
};

static void task(void *arg, int i, int thread)
{
    struct count *c = arg;
    atomic_fetch_add(&c->hits[i], 1);
    if (thread < 0 || thread >= c->threads)
        atomic_fetch_add(&c->bad_thread, 1);
}

int main(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        struct team *t;
        CHECK(team_new(&t, threads) == 0);
        CHECK_EQ_INT(team_size(t), threads);
        for (int loop = 0; loop < 200; loop++) {
            static struct count c;
            const int n = (loop * 37) % 1000;
            memset(&c, 0, sizeof(c));
            c.threads = threads;
            team_run(t, task, &c, n);
            int wrong = 0;
            for (int i = 0; i < 1000; i++)
                wrong += atomic_load(&c.hits[i]) != (i < n);
            CHECK_EQ_INT(wrong, 0);
            CHECK_EQ_INT(atomic_load(&c.bad_thread), 0);
        }
        team_free(t);
    }
    long b, e, total = 0;
    for (int task = 0; task < 7; task++) {
        team_chunk(100, 7, task, &b, &e);
        CHECK(e - b == 14 || e - b == 15);
        total += e - b;
    }
    CHECK_EQ_INT(total, 100);
    return test_status();
}
