/*
 * test_schedule.c - respacing and tables against figures of the DiT
 * reference (docs and code of facebookresearch/DiT): kept steps, respaced
 * betas, alphas_cumprod at both ends; the error for impossible ddim counts.
 */
#include "../test.h"
#include "ditd.h"
#include "schedule.h"

int main(void)
{
    struct schedule s;
    char err[DITD_ERR_LEN];

    CHECK(schedule_init(&s, 1000, false, err, sizeof(err)) == 0);
    CHECK_NEAR(s.alphas_cumprod[0], 0.9999, 1e-15);
    CHECK_NEAR(s.alphas_cumprod[999], 4.0358e-05, 1e-8);
    CHECK_EQ_INT(s.timestep[999], 999);
    schedule_free(&s);

    CHECK(schedule_init(&s, 250, false, err, sizeof(err)) == 0);
    const int head[] = { 0, 4, 8, 12 }, tail[] = { 987, 991, 995, 999 };
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(s.timestep[i], head[i]);
        CHECK_EQ_INT(s.timestep[246 + i], tail[i]);
    }
    CHECK_NEAR(s.beta[0], 1e-4, 1e-15);
    CHECK_NEAR(s.beta[1], 5.9907e-4, 1e-8);
    CHECK_NEAR(s.beta[249], 0.077519, 1e-6);
    /* The posterior variance is zero at the first step; its log is clipped. */
    CHECK(s.posterior_variance[0] == 0.0);
    CHECK(s.posterior_log_var[0] == s.posterior_log_var[1]);
    CHECK_NEAR(s.posterior_mean_coef1[0], 1.0, 1e-12);
    CHECK_NEAR(s.posterior_mean_coef2[0], 0.0, 1e-12);
    schedule_free(&s);

    CHECK(schedule_init(&s, 50, false, err, sizeof(err)) == 0);
    const int k50[] = { 0, 20, 41, 61, 82, 102 };
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(s.timestep[i], k50[i]);
    CHECK_EQ_INT(s.timestep[49], 999);
    schedule_free(&s);

    CHECK(schedule_init(&s, 50, true, err, sizeof(err)) == 0);
    CHECK_EQ_INT(s.timestep[1], 20);
    CHECK_EQ_INT(s.timestep[49], 980);
    schedule_free(&s);

    CHECK(schedule_init(&s, 1, false, err, sizeof(err)) == 0);
    CHECK_EQ_INT(s.timestep[0], 0);
    schedule_free(&s);

    CHECK(schedule_init(&s, 1, true, err, sizeof(err)) == DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "ddim");
    CHECK(schedule_init(&s, 0, false, err, sizeof(err)) == DITD_EINVAL);
    CHECK(schedule_init(&s, 1001, false, err, sizeof(err)) == DITD_EINVAL);
    CHECK_STR_CONTAINS(err, "steps");
    return test_status();
}
