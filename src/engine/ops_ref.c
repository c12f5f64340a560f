/*
 * ops_ref.c - the layer operations written the obvious way, one loop nest
 * per formula, in double where it helps. Tests compare the fast versions in
 * ops.c against these; nothing in the engine calls them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "ops.h"

void ops_ref_linear(float *out, int ldo, const float *in, int ldi,
                    const float *w, const float *b, int M, int K, int N)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)in[(size_t)i * ldi + k] * w[(size_t)j * K + k];
            out[(size_t)i * ldo + j] = (float)acc;
        }
}

/* Float32 sums in k order from the bias: with bf16 operands every product
 * is exact, so the panel kernel, which adds in the same order, must give
 * these bits exactly. */
void ops_ref_linear_bf16(float *out, int ldo, const float *in, int ldi,
                         const uint16_t *w, const float *b, int M, int K, int N)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = b ? b[j] : 0.0f;
            for (int k = 0; k < K; k++)
                acc += bf16_round(in[(size_t)i * ldi + k]) * bf16_to_f32(w[(size_t)j * K + k]);
            out[(size_t)i * ldo + j] = acc;
        }
}

void ops_ref_silu(float *out, const float *in, long n)
{
    for (long i = 0; i < n; i++)
        out[i] = (float)(in[i] / (1.0 + exp(-(double)in[i])));
}

void ops_ref_gelu_tanh(float *x, long n)
{
    for (long i = 0; i < n; i++) {
        double u = x[i];
        x[i] = (float)(0.5 * u * (1.0 + tanh(sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u))));
    }
}

void ops_ref_layernorm_modulate(float *out, const float *in, const float *shift,
                                const float *scale, int mod_stride, int samples,
                                int tokens, int D, float eps)
{
    for (int s = 0; s < samples; s++)
        for (int t = 0; t < tokens; t++) {
            const float *x = in + ((size_t)s * tokens + t) * D;
            float *y = out + ((size_t)s * tokens + t) * D;
            double mean = 0, var = 0;
            for (int i = 0; i < D; i++)
                mean += x[i];
            mean /= D;
            for (int i = 0; i < D; i++)
                var += (x[i] - mean) * (x[i] - mean);
            var /= D;
            for (int i = 0; i < D; i++) {
                double v = (x[i] - mean) / sqrt(var + eps);
                if (shift)
                    v = v * (1.0 + scale[(size_t)s * mod_stride + i]) + shift[(size_t)s * mod_stride + i];
                y[i] = (float)v;
            }
        }
}

/* rnd: the bf16 variant, operands of both products rounded to bf16. */
static float ref_operand(float x, int rnd)
{
    return rnd ? bf16_round(x) : x;
}

static void ref_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, int samples, int Tq, int Tk, int heads,
                          int hd, int rnd)
{
    double *p = malloc(sizeof(double) * (size_t)Tk);
    if (!p)
        return;
    for (int s = 0; s < samples; s++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)s * Tq + i) * ldq + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < Tk; j++) {
                    const float *kj = k + ((size_t)s * Tk + j) * ldk + h * hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += (double)ref_operand(qi[e], rnd) * ref_operand(kj[e], rnd);
                    p[j] = d / sqrt((double)hd);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < Tk; j++) {
                    p[j] = exp(p[j] - mx);
                    sum += p[j];
                }
                for (int j = 0; j < Tk; j++)
                    p[j] = rnd ? bf16_round((float)(p[j] / sum)) : p[j] / sum;
                float *o = out + ((size_t)s * Tq + i) * ldo + h * hd;
                for (int e = 0; e < hd; e++) {
                    double acc = 0;
                    for (int j = 0; j < Tk; j++)
                        acc += p[j] * ref_operand(v[((size_t)s * Tk + j) * ldv + h * hd + e], rnd);
                    o[e] = (float)acc;
                }
            }
    free(p);
}

void ops_ref_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                       const float *v, int ldv, int samples, int Tq, int Tk, int heads, int hd)
{
    ref_attention(out, ldo, q, ldq, k, ldk, v, ldv, samples, Tq, Tk, heads, hd, 0);
}

void ops_ref_attention_bf16(float *out, int ldo, const float *q, int ldq, const float *k,
                            int ldk, const float *v, int ldv, int samples, int Tq, int Tk,
                            int heads, int hd)
{
    ref_attention(out, ldo, q, ldq, k, ldk, v, ldv, samples, Tq, Tk, heads, hd, 1);
}

void ops_ref_groupnorm(float *out, const float *in, const float *gamma, const float *beta,
                       long HW, int C, int groups, float eps, int silu)
{
    const int cg = C / groups;
    for (int g = 0; g < groups; g++) {
        double mean = 0, var = 0, n = (double)HW * cg;
        for (long p = 0; p < HW; p++)
            for (int c = g * cg; c < (g + 1) * cg; c++)
                mean += in[p * C + c];
        mean /= n;
        for (long p = 0; p < HW; p++)
            for (int c = g * cg; c < (g + 1) * cg; c++)
                var += (in[p * C + c] - mean) * (in[p * C + c] - mean);
        var /= n;
        for (long p = 0; p < HW; p++)
            for (int c = g * cg; c < (g + 1) * cg; c++) {
                double v = (in[p * C + c] - mean) / sqrt(var + eps) * gamma[c] + beta[c];
                if (silu)
                    v = v / (1.0 + exp(-v));
                out[p * C + c] = (float)v;
            }
    }
}

void ops_ref_conv3x3(float *out, const float *in, const float *w, const float *b,
                     int H, int W, int Cin, int Cout)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int o = 0; o < Cout; o++) {
                double acc = b[o];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int sy = y + ky - 1, sx = x + kx - 1;
                        if (sy < 0 || sy >= H || sx < 0 || sx >= W)
                            continue;
                        for (int i = 0; i < Cin; i++)
                            acc += (double)in[((size_t)sy * W + sx) * Cin + i] *
                                   w[(((size_t)o * Cin + i) * 3 + ky) * 3 + kx];
                    }
                out[((size_t)y * W + x) * Cout + o] = (float)acc;
            }
}
