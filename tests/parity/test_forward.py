"""Parity: `dit forward` (raw DiT output) vs the PyTorch reference tools/pyref/dit.py.

Covers odd shapes (depth 3, hidden 96, 3 heads, patch 2/4/8, 3 latent channels), learn_sigma on
and off, both key layouts with their numerics, the ditd_numerics override and norm_eps, all four
block designs, a batch with mixed t and y including the null class, and F16/BF16 weight files.

Cases marked bf16 also run `dit forward --precision bf16` on the same model and inputs: relative
L2 error ||ours - ref|| / ||ref|| against the float32 reference at most 1e-2 per forward (and per
row), and at least 1e-5 (bf16 must show). On CPUs without bf16 instructions this is the portable
emulation (ops_bf16.c); on AVX512-BF16/AMX CPUs with oneDNN, the native path.
"""
import numpy as np

from common import Harness, compare, compare_l2, distinct, load_npy, save_npy
import models
from models import ORIGINAL, DIFFUSERS
from pyref import export

T = [999, 0, 17, 500, 999]
BF16_L2 = 1e-2


def batch(m, seed, rows=len(T)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, m.in_channels, m.input_size, m.input_size)).astype(np.float32)
    nc = m.num_classes
    y = [3 % nc, nc, 0, nc - 1, nc]
    if rows == len(T):
        return x, np.array(T), np.array(y)
    return x, rng.integers(0, 1000, rows), rng.integers(0, nc + 1, rows)


def run_case(h, name, arch, layout="original", numerics=ORIGINAL, config=None, dtype="F32",
             pos_embed=True, power=None, seed=1, rows=len(T), bf16=False):
    """Export a random DiT, run `dit forward`, compare with the reference computed with
    `numerics`. `power`: (label, other numerics) -- a variant the test must be able to tell
    apart from the expected one. `bf16`: also run it in bf16 against the same reference."""
    m = models.build_dit(seed, **arch)
    vae = models.build_vae(seed, latent_channels=m.in_channels)
    if dtype != "F32":
        m = models.rounded(m, dtype, keep_pos_embed=layout == "diffusers" or not pos_embed)
    d = h.path(name.replace(" ", "_"), "model")[:-len("/model")]
    export.write_model(d, m, vae, layout=layout, dtype=dtype, config_extra=config,
                       pos_embed=pos_embed)
    x, t, y = batch(m, seed, rows)
    xin = save_npy(h.path(name.replace(" ", "_"), "x.npy"), x)
    out = h.path(name.replace(" ", "_"), "out.npy")
    argv = ["forward", "--model", d, "--x", xin, "--t", ",".join(map(str, t)),
            "--y", ",".join(map(str, y)), "-o", out]
    h.run_dit(argv)
    ours = load_npy(out, ndim=4)
    ref = models.dit_forward(models.with_numerics(m, numerics), x, t, y)
    msg = compare(ours, ref)
    if bf16:
        h.run_dit(argv + ["--precision", "bf16"])
        msg += "; bf16: " + compare_l2(load_npy(out, ndim=4), ref, BF16_L2, floor=1e-5)
    if power:
        label, other = power
        alt = models.dit_forward(models.with_numerics(m, other), x, t, y)
        msg += "; " + distinct(ref, alt, what=label)
    return msg


def run_dtype_case(h, name, arch, layout, dtype, numerics):
    """A half-precision file: the reference uses the rounded weights; check the rounding is
    visible at all (else the test would not tell F16 from F32 handling)."""
    msg = run_case(h, name, arch, layout=layout, numerics=numerics, dtype=dtype)
    m = models.build_dit(1, **arch)
    x, t, y = batch(m, 1)
    full = models.dit_forward(models.with_numerics(m, numerics), x, t, y)
    half = models.dit_forward(models.with_numerics(
        models.rounded(m, dtype, keep_pos_embed=layout == "diffusers"), numerics), x, t, y)
    return msg + "; " + distinct(half, full, factor=3, what="rounding to " + dtype)


def main():
    h = Harness("forward", __doc__)
    odd = dict(input_size=16, patch_size=4, hidden_size=96, depth=3, num_heads=3)
    p2 = dict(input_size=16, patch_size=2, hidden_size=64, depth=2, num_heads=4,
              learn_sigma=False)
    p8 = dict(input_size=16, patch_size=8, hidden_size=128, depth=2, num_heads=2)
    c3 = dict(input_size=8, patch_size=2, in_channels=3, hidden_size=48, depth=2, num_heads=2)
    eps_big = {"norm_eps": 0.5}
    hd72 = dict(input_size=32, patch_size=2, hidden_size=144, depth=2, num_heads=2,
                num_classes=1000)
    p3 = dict(input_size=9, patch_size=3, in_channels=3, hidden_size=40, depth=2, num_heads=5)

    # original layout, original numerics
    h.case("original odd p4 D96 h3 depth3 + bf16", run_case, h, "orig_odd", odd,
           power=("t divisor 127", (127, 1e-6)), bf16=True)
    h.case("original p2 no sigma + bf16", run_case, h, "orig_p2", p2, bf16=True)
    h.case("original p8 + bf16", run_case, h, "orig_p8", p8, bf16=True)
    h.case("original 3 latent channels + bf16", run_case, h, "orig_c3", c3, bf16=True)
    h.case("original head_dim 72, 256 tokens, 1000 classes + bf16", run_case, h, "orig_hd72",
           hd72, bf16=True)
    xl = dict(input_size=32, patch_size=2, hidden_size=1152, depth=1, num_heads=16,
              num_classes=1000)
    h.case("original XL width (1152, 16 heads), depth 1, 256 tokens + bf16", run_case, h,
           "orig_xl", xl, bf16=True)
    h.case("original batch of 21 rows, random t and y + bf16", run_case, h, "orig_rows21", odd,
           rows=21, bf16=True)
    h.case("original patch 3, 9x9 latent, head_dim 8 + bf16", run_case, h, "orig_p3", p3,
           bf16=True)
    h.case("diffusers head_dim 72, 256 tokens, 1000 classes + bf16", run_case, h, "diff_hd72",
           hd72, layout="diffusers", numerics=DIFFUSERS, bf16=True)
    h.case("original without pos_embed (recomputed)", run_case, h, "orig_nopos", odd,
           pos_embed=False)
    # diffusers layout, diffusers numerics
    h.case("diffusers odd + bf16", run_case, h, "diff_odd", odd, layout="diffusers",
           numerics=DIFFUSERS, power=("t divisor 128", (128, 1e-5)), bf16=True)
    h.case("diffusers p2 no sigma", run_case, h, "diff_p2", p2, layout="diffusers",
           numerics=DIFFUSERS)
    h.case("diffusers norm_eps 0.5", run_case, h, "diff_eps", odd, layout="diffusers",
           numerics=(127, 0.5), config=eps_big, power=("norm_eps", DIFFUSERS))
    # the ditd_numerics override
    h.case("diffusers layout + ditd_numerics original", run_case, h, "diff_as_orig", odd,
           layout="diffusers", numerics=ORIGINAL,
           config={"ditd_numerics": "original", "norm_eps": 0.5},
           power=("diffusers numerics", (127, 0.5)))
    h.case("original layout + ditd_numerics diffusers", run_case, h, "orig_as_diff", odd,
           numerics=DIFFUSERS, config={"ditd_numerics": "diffusers"},
           power=("original numerics", ORIGINAL))
    h.case("original layout + ditd_numerics diffusers, norm_eps 0.5", run_case, h,
           "orig_as_diff_eps", odd, numerics=(127, 0.5),
           config={"ditd_numerics": "diffusers", "norm_eps": 0.5})
    # block designs
    for block in ("adaln", "cross_attention", "in_context"):
        h.case("block %s + bf16" % block, run_case, h, "block_" + block,
               dict(odd, block=block), seed=3, bf16=True)
        h.case("block %s p2 no sigma + bf16" % block, run_case, h, "block2_" + block,
               dict(p2, block=block), seed=4, bf16=True)
        h.case("block %s + diffusers numerics, norm_eps 0.5" % block, run_case, h,
               "blockd_" + block, dict(odd, block=block), numerics=(127, 0.5),
               config={"ditd_numerics": "diffusers", "norm_eps": 0.5},
               power=("norm_eps", (127, 1e-6)), seed=5)
    # weight file dtypes
    for dtype in ("F16", "BF16"):
        h.case("%s original" % dtype, run_dtype_case, h, "orig_" + dtype, odd, "original",
               dtype, ORIGINAL)
        h.case("%s diffusers" % dtype, run_dtype_case, h, "diff_" + dtype, odd, "diffusers",
               dtype, DIFFUSERS)
    h.finish()


if __name__ == "__main__":
    main()
