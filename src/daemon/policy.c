/*
 * policy.c - batch selection and admission for fairness (see policy.h).
 */
#include "policy.h"

void policy_init(struct policy *p, int max_rows)
{
    p->max_rows = max_rows;
    p->credit_ns = 0;
}

int policy_select(const struct policy *p, const struct policy_image *img, int n, bool *sel,
                  enum policy_kind *kind)
{
    int64_t min = INT64_MAX, max = 0;
    int rows = 0;

    for (int i = 0; i < n; i++) {
        if (img[i].size < min)
            min = img[i].size;
        if (img[i].size > max)
            max = img[i].size;
    }
    if (n == 0 || max <= POLICY_RATIO * min)
        *kind = POLICY_ALL;
    else
        *kind = p->credit_ns > 0 ? POLICY_BACK : POLICY_FORE;
    /* Admission order, skipping what does not fit: an image that does not
     * fit does not keep smaller ones behind it out. */
    for (int i = 0; i < n; i++) {
        bool eligible = *kind != POLICY_FORE || img[i].size <= POLICY_RATIO * min;

        sel[i] = eligible && rows + img[i].rows <= p->max_rows;
        if (sel[i])
            rows += img[i].rows;
    }
    return rows;
}

void policy_account(struct policy *p, enum policy_kind kind, int64_t ns)
{
    switch (kind) {
    case POLICY_ALL:
        p->credit_ns = 0;   /* nothing is owed while nobody waits */
        break;
    case POLICY_FORE:
        /* Foreground time T earns the background T / (SHARE - 1): its turns
         * then take at least 1 / SHARE of the time. */
        p->credit_ns += ns / (POLICY_SHARE - 1);
        break;
    case POLICY_BACK:
        p->credit_ns -= ns;
        break;
    }
}

bool policy_admit(int max_rows, int resident_rows, int64_t max_size, int rows, int64_t size)
{
    if (resident_rows + rows <= max_rows)
        return true;
    return resident_rows + rows <= 2 * max_rows && POLICY_RATIO * size <= max_size;
}
