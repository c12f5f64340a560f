/*
 * gnorm.h - GroupNorm of the VAE decoder on HWC maps, split in two so that
 * the convolution after it can apply it while reading its input (wino.h):
 * gnorm_fold() measures the groups and folds them with gamma and beta into
 * one affine per channel, y = (x - center[c]) * scale[c] + shift[c] (center
 * the group's mean: subtracting it first keeps the precision of maps whose
 * mean is large against their spread); gnorm_apply()
 * writes the normalised map where a whole map is needed (the attention's
 * input). ops_ref_groupnorm (ops_ref.c) is the naive reference.
 *
 * Statistics are summed in double over fixed chunks of pixels, the chunks
 * then added in order: the same bits whatever the thread count.
 */
#ifndef DITD_GNORM_H
#define DITD_GNORM_H

#include <stddef.h>

struct ops_ctx;

/* center, scale, shift (C) from the map x (HW, C) with `groups` groups;
 * partial holds gnorm_partial_doubles(HW, C) doubles. */
void gnorm_fold(const struct ops_ctx *c, float *center, float *scale, float *shift,
                const float *x, const float *gamma, const float *beta, long HW, int C,
                int groups, float eps, double *partial);
size_t gnorm_partial_doubles(long HW, int C);

/* out (HW, C) = (x - center) * scale + shift, then SiLU when silu is non-zero. */
void gnorm_apply(const struct ops_ctx *c, float *out, const float *x, const float *center,
                 const float *scale, const float *shift, long HW, int C, int silu);

#endif /* DITD_GNORM_H */
