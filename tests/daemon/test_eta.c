/*
 * test_eta.c - the cost model and the queue replay (eta.h) against cases
 * worked out by hand.
 */
#include <string.h>

#include "eta.h"
#include "test.h"

#define MS 1000000.0

static struct eta_image store[4][64];
static struct eta_image *run[4] = { store[0], store[1], store[2], store[3] };
static int nrun[4];

int main(void)
{
    struct eta_model m;
    int64_t start[8], done[8];

    /* The fit: forwards of t = 1 ms + 0.2 ms x rows at mixed batch sizes. */
    eta_model_init(&m);
    CHECK(eta_replay(&m, 4, 1, run, nrun, NULL, 0, start, done) == -1);   /* no model yet */
    for (int i = 0; i < 400; i++) {
        int r = 2 << (i % 4);

        eta_model_forward(&m, r, (int64_t)(1 * MS + 0.2 * MS * r));
    }
    CHECK_NEAR(eta_forward_ns(&m, 10), 3 * MS, 0.01 * MS);
    CHECK_NEAR(eta_forward_ns(&m, 1), 1.2 * MS, 0.01 * MS);

    /* One batch size only: a line through the origin, 0.5 ms per row. */
    eta_model_init(&m);
    for (int i = 0; i < 10; i++)
        eta_model_forward(&m, 2, (int64_t)(1 * MS));
    CHECK_NEAR(eta_forward_ns(&m, 2), 1 * MS, 1);

    /* max_rows 2: a running image with 10 steps left, then A (5 steps) and
     * B (5 steps) one after the other; decodes take 0.5 ms. */
    eta_model_decode(&m, 2, (int64_t)(1 * MS));
    {
        struct eta_job q[2] = { { 2, 5, 1 }, { 2, 5, 1 } };

        nrun[0] = 1;
        run[0][0] = (struct eta_image){ 2, 10, -1 };
        CHECK(eta_replay(&m, 2, 1, run, nrun, q, 2, start, done) == 0);
        CHECK_NEAR(start[0], 10.5 * MS, 1);
        CHECK_NEAR(done[0], 16 * MS, 1);
        CHECK_NEAR(start[1], 16 * MS, 1);
        CHECK_NEAR(done[1], 21.5 * MS, 1);
    }
    /* Continuous batching: max_rows 4 holds the running image and A at once;
     * A (3 images of 1 row, 10 steps) is admitted image by image. */
    {
        struct eta_job q[1] = { { 1, 10, 3 } };

        nrun[0] = 1;
        run[0][0] = (struct eta_image){ 2, 4, -1 };
        CHECK(eta_replay(&m, 4, 1, run, nrun, q, 1, start, done) == 0);
        CHECK_NEAR(start[0], 0, 1);
        /* 4 forwards of 4 rows (2 ms), a decode, then one more image... */
        CHECK(done[0] > 10 * 1.5 * MS && done[0] < 14 * 2 * MS + 2 * MS);
    }
    /* The tail of a longer queue starts later: the estimate grows with the
     * work queued ahead. */
    {
        struct eta_job q[4] = { { 2, 50, 1 }, { 2, 50, 1 }, { 2, 50, 1 }, { 2, 10, 1 } };
        int64_t t3, t4;

        nrun[0] = 0;
        CHECK(eta_replay(&m, 2, 1, run, nrun, q + 1, 3, start, done) == 0);
        t3 = start[2];
        nrun[0] = 0;
        CHECK(eta_replay(&m, 2, 1, run, nrun, q, 4, start, done) == 0);
        t4 = start[3];
        CHECK(t4 > t3 && t4 - t3 > 40 * MS);
        /* Two workers halve it, about. */
        nrun[0] = nrun[1] = 0;
        CHECK(eta_replay(&m, 2, 2, run, nrun, q, 4, start, done) == 0);
        CHECK(start[3] < t4 * 0.6);
        CHECK_NEAR(start[1], 0, 1);
    }
    return test_status();
}
