"""Reference diffusion maths for ditd, in numpy: the contract of docs/sampling.md.

- the DiT base schedule (1000 linear betas, float64) and its respacing ("K" and "ddimK"),
- the respaced tables that `dit schedule` writes,
- the Philox4x32-10 normal generator that gives every noise value from its coordinates,
- guidance and the three samplers (ddpm with learned-range variance, ddim, dpm++2m).

Schedules are float64. A coefficient is rounded to float32 when it meets a latent, and the
latent arithmetic is float32, as in the facebookresearch/DiT sampler.

The model is a callable model_fn(x, t, y) -> out: x (N, C, L, L) float32, t (N,) original
timesteps, y (N,) class ids; out (N, C or 2C, L, L) float32. Run `python3 diffusion.py` for
the self-test.
"""
import math

import numpy as np

NUM_TRAIN_STEPS = 1000

# Columns of `dit schedule`, in order.
SCHEDULE_COLUMNS = ("timestep", "beta", "alphas_cumprod", "alphas_cumprod_prev",
                    "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")


# ---------------------------------------------------------------------------------------------
# Schedule

def base_betas(steps=NUM_TRAIN_STEPS):
    """Linear betas of DiT (scale 1000/steps), float64."""
    scale = 1000.0 / steps
    return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)


def space_timesteps(num_timesteps, section_counts):
    """Kept original steps, as a sorted list, for a spacing string such as "250" or "ddim50".

    Mirrors the respacing of facebookresearch/DiT: one or more comma-separated section counts, each
    section strided by (size-1)/(count-1) with Python rounding of a running float sum; "ddimK" takes
    range(0, num_timesteps, s) for the first integer stride s giving exactly K steps.
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            want = int(section_counts[len("ddim"):])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == want:
                    return list(range(0, num_timesteps, stride))
            raise ValueError(f"cannot create exactly {want} steps with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start = 0
    kept = []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            kept.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(kept))


class Schedule:
    """Respaced tables for `steps` kept steps (spacing "" or "ddim"), all float64."""

    def __init__(self, steps, spacing=""):
        base = base_betas()
        base_ac = np.cumprod(1.0 - base)
        spec = ("ddim%d" % steps) if spacing == "ddim" else str(steps)
        self.timesteps = np.array(space_timesteps(NUM_TRAIN_STEPS, spec), dtype=np.int64)
        betas = []
        last = 1.0
        for i, ac in enumerate(base_ac):
            if i in set(self.timesteps.tolist()):
                betas.append(1.0 - ac / last)
                last = ac
        b = np.array(betas, dtype=np.float64)
        self.K = len(b)
        self.betas = b
        self.alphas = 1.0 - b
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        self.posterior_variance = b * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        pv = self.posterior_variance
        # Entry 0 of the posterior variance is 0; the clipped log takes entry 1 there.
        # With a single step there is no entry 1 (the reference leaves the array empty);
        # we write log(0) = -inf, which no sampler reads (no noise is added at j = 0).
        with np.errstate(divide="ignore"):
            if self.K > 1:
                self.posterior_log_variance_clipped = np.log(np.append(pv[1], pv[1:]))
            else:
                self.posterior_log_variance_clipped = np.log(pv)
        self.log_betas = np.log(b)
        self.posterior_mean_coef1 = (b * np.sqrt(self.alphas_cumprod_prev)
                                     / (1.0 - self.alphas_cumprod))
        self.posterior_mean_coef2 = ((1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas)
                                     / (1.0 - self.alphas_cumprod))

    def table(self):
        """(K, 8) float64 table in the column order of `dit schedule`."""
        cols = [self.timesteps.astype(np.float64), self.betas, self.alphas_cumprod,
                self.alphas_cumprod_prev, self.posterior_variance,
                self.posterior_log_variance_clipped, self.posterior_mean_coef1,
                self.posterior_mean_coef2]
        return np.stack(cols, axis=1)


# ---------------------------------------------------------------------------------------------
# Philox4x32-10 (Salmon et al. 2011), vectorised over numpy uint32 arrays.

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint32(0x9E3779B9)
PHILOX_W1 = np.uint32(0xBB67AE85)
_LO32 = np.uint64(0xFFFFFFFF)
_SH32 = np.uint64(32)


def philox4x32(counter, key, rounds=10):
    """counter: 4 uint32 arrays (broadcastable), key: 2 uint32 values or arrays.

    Returns the 4 output words as uint32 arrays.
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in counter)
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0 = np.asarray(key[0], dtype=np.uint32)
    k1 = np.asarray(key[1], dtype=np.uint32)
    with np.errstate(over="ignore"):
        for r in range(rounds):
            if r > 0:
                k0 = (k0 + PHILOX_W0).astype(np.uint32)
                k1 = (k1 + PHILOX_W1).astype(np.uint32)
            p0 = PHILOX_M0 * c0.astype(np.uint64)
            p1 = PHILOX_M1 * c2.astype(np.uint64)
            hi0 = (p0 >> _SH32).astype(np.uint32)
            lo0 = (p0 & _LO32).astype(np.uint32)
            hi1 = (p1 >> _SH32).astype(np.uint32)
            lo1 = (p1 & _LO32).astype(np.uint32)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox_normal(seed, stream, index, count):
    """`count` standard normals, float32, of noise stream `stream` (0 = starting noise, j+1 =
    the noise of step j) of image `index` for `seed`, per docs/sampling.md."""
    seed = int(seed)
    key = (np.uint32(seed & 0xFFFFFFFF), np.uint32((seed >> 32) & 0xFFFFFFFF))
    pairs = (count + 1) // 2
    e2 = np.arange(pairs, dtype=np.uint64).astype(np.uint32)
    w0, w1, _, _ = philox4x32((e2, np.uint32(stream), np.uint32(index), np.uint32(0)), key)
    u1 = (w0.astype(np.float64) + 0.5) * 2.0 ** -32
    u2 = (w1.astype(np.float64) + 0.5) * 2.0 ** -32
    r = np.sqrt(-2.0 * np.log(u1))
    theta = 2.0 * math.pi * u2
    out = np.empty(2 * pairs, dtype=np.float32)
    out[0::2] = (r * np.cos(theta)).astype(np.float32)
    out[1::2] = (r * np.sin(theta)).astype(np.float32)
    return out[:count]


def noise(seed, stream, index, shape):
    """Noise of one image, reshaped to `shape` (C, L, L) in C order."""
    return philox_normal(seed, stream, index, int(np.prod(shape))).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Guidance and samplers

def guided_eps(model_fn, x, t, classes, cfg, num_classes, guidance_channels, C):
    """Run the model for latents x (n, C, L, L) at original step t and return (eps, var) float32.

    With cfg > 1 every image takes a conditional and a null-class row on the same latent; the
    first `guidance_channels` eps channels are eps_u + cfg*(eps_c - eps_u), the rest of eps and
    the variance channels come from the conditional row. var is None without learned sigma.
    """
    n = x.shape[0]
    classes = np.asarray(classes, dtype=np.int64)
    tt = np.full(n, t, dtype=np.int64)
    if cfg > 1:
        out = model_fn(np.concatenate([x, x]), np.concatenate([tt, tt]),
                       np.concatenate([classes, np.full(n, num_classes, dtype=np.int64)]))
        cond, unc = out[:n], out[n:]
        eps = cond[:, :C].copy()
        g = guidance_channels
        s = np.float32(cfg)
        eps[:, :g] = unc[:, :g] + s * (cond[:, :g] - unc[:, :g])
    else:
        cond = model_fn(x, tt, classes)
        eps = cond[:, :C].copy()
    var = cond[:, C:2 * C] if cond.shape[1] >= 2 * C else None
    return eps.astype(np.float32), (None if var is None else var.astype(np.float32))


def f32(v):
    return np.float32(v)


def sample(model_fn, sched, sampler, classes, cfg, seed, shape, num_classes,
           guidance_channels, eta=0.0, first_index=0, trace=None):
    """Run one request of len(classes) images and return the final latents (n, C, L, L) float32.

    Image k of the request uses noise stream index first_index + k. `shape` is (C, L, L).
    If `trace` is a list, (j, x) after each step is appended to it.
    """
    C = shape[0]
    n = len(classes)
    x = np.stack([noise(seed, 0, first_index + k, shape) for k in range(n)]).astype(np.float32)
    K = sched.K
    ac = sched.alphas_cumprod
    acp = sched.alphas_cumprod_prev
    lam = 0.5 * np.log(ac / (1.0 - ac))  # ln(alpha/sigma), float64
    prev_x0 = None
    for j in range(K - 1, -1, -1):
        t = int(sched.timesteps[j])
        eps, var = guided_eps(model_fn, x, t, classes, cfg, num_classes, guidance_channels, C)
        x0 = f32(sched.sqrt_recip_alphas_cumprod[j]) * x - f32(sched.sqrt_recipm1_alphas_cumprod[j]) * eps
        if sampler == "ddpm":
            mean = f32(sched.posterior_mean_coef1[j]) * x0 + f32(sched.posterior_mean_coef2[j]) * x
            if j > 0:
                min_log = f32(sched.posterior_log_variance_clipped[j])
                if var is not None:
                    max_log = f32(sched.log_betas[j])
                    frac = (var + f32(1)) / f32(2)
                    log_var = frac * max_log + (f32(1) - frac) * min_log
                else:
                    log_var = np.full_like(x, min_log)
                xi = np.stack([noise(seed, j + 1, first_index + k, shape) for k in range(n)])
                x = mean + np.exp(f32(0.5) * log_var) * xi
            else:
                x = mean
        elif sampler == "ddim":
            eps2 = (f32(sched.sqrt_recip_alphas_cumprod[j]) * x - x0) / f32(sched.sqrt_recipm1_alphas_cumprod[j])
            a = f32(ac[j])
            ap = f32(acp[j])
            sigma = f32(eta) * np.sqrt((f32(1) - ap) / (f32(1) - a)) * np.sqrt(f32(1) - a / ap)
            x_new = x0 * np.sqrt(ap) + np.sqrt(f32(1) - ap - sigma * sigma) * eps2
            if j > 0:
                xi = np.stack([noise(seed, j + 1, first_index + k, shape) for k in range(n)])
                x_new = x_new + sigma * xi
            x = x_new.astype(np.float32)
        elif sampler == "dpm++2m":
            if j == 0:
                x = x0
            else:
                h = lam[j - 1] - lam[j]
                if prev_x0 is None:
                    D = x0
                else:
                    r = (lam[j] - lam[j + 1]) / h
                    D = f32(1.0 + 1.0 / (2.0 * r)) * x0 - f32(1.0 / (2.0 * r)) * prev_x0
                sig_j = math.sqrt(1.0 - ac[j])
                sig_p = math.sqrt(1.0 - ac[j - 1])
                alpha_p = math.sqrt(ac[j - 1])
                x = f32(sig_p / sig_j) * x - f32(alpha_p * math.expm1(-h)) * D
            prev_x0 = x0
        else:
            raise ValueError("unknown sampler " + sampler)
        x = x.astype(np.float32)
        if trace is not None:
            trace.append((j, x.copy()))
    return x


# ---------------------------------------------------------------------------------------------
# Self-test

PHILOX_KAT = [  # Random123 kat_vectors, philox4x32 10 rounds: counter, key, expected output
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


def self_test():
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)

    for ctr, key, want in PHILOX_KAT:
        got = tuple(int(w) for w in philox4x32(ctr, key))
        check(got == want, "philox %s %s: got %s" % (ctr, key, [hex(g) for g in got]))
    # vectorised evaluation agrees with one-at-a-time evaluation
    c = np.array([0, 1, 0xffffffff, 12345], dtype=np.uint32)
    vec = philox4x32((c, 7, 3, 0), (11, 13))
    for i in range(4):
        one = philox4x32((c[i], 7, 3, 0), (11, 13))
        check(all(int(vec[w][i]) == int(one[w]) for w in range(4)), "philox vector lane %d" % i)
    z = philox_normal(1234, 0, 0, 200000)
    check(abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01, "normal moments")
    check(philox_normal(5, 0, 0, 7).shape == (7,), "odd count")
    check(np.array_equal(philox_normal(5, 0, 0, 7), philox_normal(5, 0, 0, 8)[:7]), "odd prefix")
    check(not np.array_equal(philox_normal(5, 0, 0, 8), philox_normal(5, 0, 1, 8)), "index")
    check(not np.array_equal(philox_normal(5, 0, 0, 8), philox_normal(5, 1, 0, 8)), "stream")
    check(not np.array_equal(philox_normal(5, 0, 0, 8), philox_normal(5 + 2 ** 32, 0, 0, 8)),
          "seed high word")

    base_ac = np.cumprod(1.0 - base_betas())
    check(abs(base_ac[0] - 0.9999) < 1e-15, "alphas_cumprod[0]")
    check(abs(base_ac[999] - 4.0358e-05) < 5e-9, "alphas_cumprod[999] = %r" % base_ac[999])

    k250 = space_timesteps(1000, "250")
    check(len(k250) == 250 and k250[:4] == [0, 4, 8, 12] and k250[-3:] == [991, 995, 999],
          "K=250 steps")
    check(space_timesteps(1000, "50")[:6] == [0, 20, 41, 61, 82, 102]
          and space_timesteps(1000, "50")[-4:] == [938, 958, 979, 999], "K=50 steps")
    check(space_timesteps(1000, "100")[:3] == [0, 10, 20]
          and space_timesteps(1000, "100")[-2:] == [989, 999], "K=100 steps")
    k25 = space_timesteps(1000, "25")
    check(k25[:4] == [0, 42, 83, 125] and k25[-2:] == [957, 999], "K=25 steps")
    check(space_timesteps(1000, "ddim50") == list(range(0, 1000, 20)), "ddim50")
    check(space_timesteps(1000, "ddim25") == list(range(0, 1000, 40)), "ddim25")
    check(space_timesteps(1000, "1") == [0], "K=1")
    check(space_timesteps(1000, "1000") == list(range(1000)), "K=1000")
    try:
        space_timesteps(1000, "ddim1")
        check(False, "ddim1 must fail")
    except ValueError:
        pass

    s = Schedule(250)
    check(abs(s.betas[0] - 1e-4) < 1e-15, "beta'_0")
    check(abs(s.betas[1] - 5.9907e-4) < 5e-9, "beta'_1 = %r" % s.betas[1])
    check(abs(s.betas[249] - 0.077519) < 5e-7, "beta'_249 = %r" % s.betas[249])
    check(np.allclose(s.alphas_cumprod, base_ac[s.timesteps], rtol=1e-12, atol=0),
          "respaced alphas_cumprod equal the kept ones")
    full = Schedule(1000)
    check(np.allclose(full.betas, base_betas(), rtol=1e-9, atol=0), "K=1000 is the base")
    t = s.table()
    check(t.shape == (250, 8) and t.dtype == np.float64, "table shape")
    check(abs(s.posterior_mean_coef1[0] - 1.0) < 1e-12 and s.posterior_mean_coef2[0] == 0.0,
          "coef at j=0")
    check(s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1], "clipped")
    one = Schedule(1)
    check(one.K == 1 and one.table().shape == (1, 8), "K=1 table")

    # Samplers on an analytic model: with a model that predicts the true noise of a fixed x0,
    # ddim (eta 0) and dpm++2m must recover x0 exactly up to float32 rounding.
    shape = (2, 4, 4)
    x0_true = np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, *shape)
    for sampler in ("ddim", "dpm++2m"):
        sch = Schedule(10)
        tmap = {int(tt): jj for jj, tt in enumerate(sch.timesteps)}

        def oracle(x, tt, y, sch=sch, tmap=tmap):
            jj = np.array([tmap[int(v)] for v in tt])
            a = sch.alphas_cumprod[jj].reshape(-1, 1, 1, 1)
            return ((x - np.sqrt(a) * x0_true) / np.sqrt(1 - a)).astype(np.float32)
        out = sample(oracle, sch, sampler, [0], 1.0, 3, shape, 10, 2)
        check(np.abs(out - x0_true).max() < 1e-4, "%s oracle error %g" % (
            sampler, np.abs(out - x0_true).max()))
    if fails:
        for f in fails:
            print("FAIL:", f)
        return 1
    print("diffusion.py self-test: all checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(self_test())
