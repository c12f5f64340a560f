"""Gaussian diffusion for training and fast evaluation, in torch (float64 tables, float32 maths).

Training follows the DiT/ADM recipe: 1000-step linear schedule (beta 1e-4 .. 0.02), uniform t,
loss = L_simple (MSE on eps) + L_vlb for the learned-range variance, where the VLB term sees the
eps prediction through a stop-gradient so that it only trains the variance channels.

The sampler here is the ddpm sampler of docs/sampling.md with torch's own RNG (fast, batched), for
the quality curves. The Philox-exact reference is tools/pyref/diffusion.py.
"""
import math

import numpy as np
import torch

from pyref.diffusion import Schedule


def _f32(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).float()


class Diffusion:
    def __init__(self, steps=1000):
        s = Schedule(steps)
        self.K = s.K
        self.timesteps = torch.from_numpy(s.timesteps)
        ac = s.alphas_cumprod
        self.sqrt_ac = _f32(np.sqrt(ac))
        self.sqrt_1mac = _f32(np.sqrt(1.0 - ac))
        self.sqrt_recip_ac = _f32(s.sqrt_recip_alphas_cumprod)
        self.sqrt_recipm1_ac = _f32(s.sqrt_recipm1_alphas_cumprod)
        self.coef1 = _f32(s.posterior_mean_coef1)
        self.coef2 = _f32(s.posterior_mean_coef2)
        self.post_logvar = _f32(s.posterior_log_variance_clipped)
        self.log_betas = _f32(s.log_betas)

    @staticmethod
    def _g(table, j):
        return table[j][:, None, None, None]

    def q_sample(self, x0, j, noise):
        return self._g(self.sqrt_ac, j) * x0 + self._g(self.sqrt_1mac, j) * noise

    def q_posterior(self, x0, xt, j):
        mean = self._g(self.coef1, j) * x0 + self._g(self.coef2, j) * xt
        return mean, self._g(self.post_logvar, j)

    def p_mean_logvar(self, eps, v, xt, j):
        frac = (v + 1) / 2
        log_var = frac * self._g(self.log_betas, j) + (1 - frac) * self._g(self.post_logvar, j)
        x0 = self._g(self.sqrt_recip_ac, j) * xt - self._g(self.sqrt_recipm1_ac, j) * eps
        mean, _ = self.q_posterior(x0, xt, j)
        return mean, log_var, x0

    def training_losses(self, model, x0, y, generator=None, min_snr=0.0):
        """Per-sample loss terms for latents x0 (N, C, L, L) and labels y; model(x, t, y).

        min_snr > 0 weights the eps MSE by min(SNR_t, min_snr) / SNR_t (Min-SNR-gamma weighting,
        Hang et al. 2023, in its form for eps prediction): the easy low-noise steps count less.
        The VLB term is not weighted."""
        n, c = x0.shape[:2]
        j = torch.randint(0, self.K, (n,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        xt = self.q_sample(x0, j, noise)
        out = model(xt, self.timesteps[j], y)
        eps, v = out[:, :c], out[:, c:]
        mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
        mse_w = mse
        if min_snr > 0:
            snr = self.sqrt_ac[j] ** 2 / self.sqrt_1mac[j] ** 2
            mse_w = mse * torch.clamp(snr, max=min_snr) / snr
        # VLB term: gradient only through the variance values (stop-grad on the mean)
        true_mean, true_logvar = self.q_posterior(x0, xt, j)
        mean, log_var, _ = self.p_mean_logvar(eps.detach(), v, xt, j)
        kl = normal_kl(true_mean, true_logvar, mean, log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)
        nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
        vb = torch.where(j == 0, nll, kl)
        return {"loss": mse_w + vb, "mse": mse, "vb": vb}

    @torch.no_grad()
    def sample(self, model, classes, cfg=4.0, guidance_channels=4, shape=(4, 8, 8),
               generator=None, null_class=None):
        """DDPM (learned-range variance) over this diffusion's kept steps; returns latents.

        Guidance as in docs/sampling.md: conditional and null rows on the same latent, the first
        guidance_channels eps channels guided, the rest and the variance from the conditional row.
        """
        classes = torch.as_tensor(classes, dtype=torch.long)
        n = len(classes)
        c = shape[0]
        if null_class is None:
            null_class = model.num_classes
        x = torch.randn((n,) + tuple(shape), generator=generator)
        for j in range(self.K - 1, -1, -1):
            jj = torch.full((n,), j, dtype=torch.long)
            t = self.timesteps[jj]
            if cfg > 1:
                out = model(torch.cat([x, x]), torch.cat([t, t]),
                            torch.cat([classes, torch.full_like(classes, null_class)]))
                cond, unc = out[:n], out[n:]
                eps = cond[:, :c].clone()
                g = guidance_channels
                eps[:, :g] = unc[:, :g] + cfg * (cond[:, :g] - unc[:, :g])
            else:
                cond = model(x, t, classes)
                eps = cond[:, :c]
            mean, log_var, _ = self.p_mean_logvar(eps, cond[:, c:], x, jj)
            if j > 0:
                x = mean + torch.exp(0.5 * log_var) * torch.randn(x.shape, generator=generator)
            else:
                x = mean
        return x


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of x under a Gaussian discretised to 256 bins on [-1, 1] (the ADM decoder
    term; DiT applies it unchanged to latents)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
