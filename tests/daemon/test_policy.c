/*
 * test_policy.c - the fairness policy (policy.h): equal jobs batch as
 * before, a small job runs alone next to a large one, the large one keeps
 * its share of the time, and admission lets small jobs past a full worker.
 */
#include <string.h>

#include "policy.h"
#include "test.h"

/* A forward's cost in this test, ms: fixed part + per row (about the
 * bundled model on 2 cores). */
static double cost(int rows)
{
    return 0.35 + 0.36 * rows;
}

int main(void)
{
    struct policy p;
    struct policy_image img[40];
    bool sel[40];
    enum policy_kind kind;
    int rows;

    policy_init(&p, 16);

    /* Nine equal guided images: plain continuous batching, 8 fit. */
    for (int i = 0; i < 9; i++)
        img[i] = (struct policy_image){ 2, 100 };
    rows = policy_select(&p, img, 9, sel, &kind);
    CHECK_EQ_INT(kind, POLICY_ALL);
    CHECK_EQ_INT(rows, 16);
    CHECK(sel[0] && sel[7] && !sel[8]);

    /* An image that does not fit does not keep a smaller one out. */
    img[0] = (struct policy_image){ 2, 100 };
    img[1] = (struct policy_image){ 2, 100 };
    img[2] = (struct policy_image){ 1, 60 };
    p.max_rows = 3;
    rows = policy_select(&p, img, 3, sel, &kind);
    CHECK(sel[0] && !sel[1] && sel[2] && rows == 3);
    p.max_rows = 16;

    /* A large job (8 guided images of 1000 steps) and a small one (1 x 50). */
    for (int i = 0; i < 8; i++)
        img[i] = (struct policy_image){ 2, 8 * 1000 * 2 };
    img[8] = (struct policy_image){ 2, 50 * 2 };
    rows = policy_select(&p, img, 9, sel, &kind);
    CHECK_EQ_INT(kind, POLICY_FORE);
    CHECK_EQ_INT(rows, 2);
    CHECK(sel[8] && !sel[0]);

    /* Over many forwards the background gets about 1/SHARE of the time, in
     * full forwards, and the small job is in every foreground forward. */
    {
        double fore = 0, back = 0;
        int small_steps = 0, forwards = 0;

        while (fore + back < 10000) {
            double ms;

            rows = policy_select(&p, img, 9, sel, &kind);
            ms = cost(rows);
            if (kind == POLICY_FORE) {
                fore += ms;
                CHECK(sel[8] && rows == 2);
            } else {
                CHECK_EQ_INT(kind, POLICY_BACK);
                CHECK(sel[0] && sel[7] && rows == 16);
                back += ms;
            }
            small_steps += sel[8];
            forwards++;
            policy_account(&p, kind, (int64_t)(ms * 1e6));
        }
        CHECK(back / (fore + back) >= 1.0 / POLICY_SHARE - 0.01);
        CHECK(back / (fore + back) <= 1.0 / POLICY_SHARE + 0.01);
        /* The small job's time per step, against cost(2) alone: <= 1/(1 - 1/SHARE) plus
         * one background forward per cycle, well under 2x. */
        CHECK((fore + back) / small_steps < 1.2 * cost(2));
        CHECK(forwards > small_steps);
    }
    /* Once the small job is gone the large one has the worker again. */
    rows = policy_select(&p, img, 8, sel, &kind);
    CHECK_EQ_INT(kind, POLICY_ALL);
    CHECK_EQ_INT(rows, 16);
    policy_account(&p, kind, 1000000);
    CHECK(p.credit_ns == 0);

    /* Admission: anything while rows fit; past max_rows only a job at least
     * RATIO times smaller than the largest resident one, up to 2 x max_rows. */
    CHECK(policy_admit(16, 14, 100, 2, 100));
    CHECK(!policy_admit(16, 16, 100, 2, 100));          /* equal: waits its turn */
    CHECK(policy_admit(16, 16, 16000, 2, 100));         /* small next to large */
    CHECK(policy_admit(16, 30, 16000, 2, 4000));
    CHECK(!policy_admit(16, 30, 16000, 2, 4001));       /* not RATIO times smaller */
    CHECK(!policy_admit(16, 31, 16000, 2, 100));        /* 2 x max_rows at most */
    return test_status();
}
