"""Parity: `dit decode` (raw VAE decoder output) vs the PyTorch AutoencoderKL of tools/pyref/vae.py,
for a few small decoder configurations in each accepted key naming (diffusers, legacy attention
names, CompVis/ldm, ldm under `first_stage_model.`); latents of other sizes than the DiT's (square
and not, small enough for the direct convolutions and large enough for Winograd's); the same bytes
with 1 or 3 threads and with one or several latents per call; and the size limits.

`--precision bf16` (bf16 convolutions, projections and attention; norms, SiLU, softmax and the
residual stream in float32) against the same float32 reference: relative L2 error at most 1e-2
per image and at least 1e-5 (bf16 must show); the same bytes with 1 or 3 threads and alone or
beside other latents. On CPUs without bf16 instructions this is the portable emulation; on
AVX512-BF16/AMX CPUs with oneDNN, the native path."""
import numpy as np

from common import CheckFailed, Harness, compare, compare_l2, load_npy, save_npy

BF16_L2 = 1e-2
import models
from pyref import export

CONFIGS = {
    # name: (vae kwargs, latent size)
    "b32-64 lpb1 g8 rgb": (dict(block_out_channels=(32, 64), layers_per_block=1,
                                norm_num_groups=8), 8),
    "b32-64-64-64 lpb2 g16 gray": (dict(block_out_channels=(32, 64, 64, 64), layers_per_block=2,
                                        norm_num_groups=16, out_channels=1), 4),
    "b32-64 lpb2 g32 sf0.5": (dict(block_out_channels=(32, 64), layers_per_block=2,
                                   norm_num_groups=32, scaling_factor=0.5), 6),
    "sd-like b64-128-128-128 lpb2 g32": (dict(block_out_channels=(64, 128, 128, 128),
                                              layers_per_block=2, norm_num_groups=32), 8),
    "b32-64 lpb1 g8 no-attn": (dict(block_out_channels=(32, 64), layers_per_block=1,
                                    norm_num_groups=8, mid_block_add_attention=False), 8),
    # more latent cells than one attention block of queries (128): the mid attention is then
    # spread over several threads, each with its own score buffer
    "b32-64 lpb1 g8 latent 20": (dict(block_out_channels=(32, 64), layers_per_block=1,
                                      norm_num_groups=8), 20),
}
NAMINGS = export.VAE_NAMINGS


def run_case(h, cname, naming, seed, dtype="F32"):
    kw, lat = CONFIGS[cname]
    vae = models.build_vae(seed, **kw)
    if dtype != "F32":
        vae = models.rounded(vae, dtype)
    dit = models.build_dit(seed, input_size=lat, patch_size=2, hidden_size=32, depth=1,
                           num_heads=2)
    tag = "%s_%s_%s" % (cname.replace(" ", "_"), naming, dtype)
    d = h.path(tag, "model")[:-len("/model")]
    export.write_model(d, dit, vae, vae_naming=naming, vae_dtype=dtype)
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((2, 4, lat, lat)) * 0.8).astype(np.float32)
    zin = save_npy(h.path(tag, "z.npy"), z)
    out = h.path(tag, "out.npy")
    h.run_dit(["decode", "--model", d, "--latent", zin, "-o", out])
    ours = load_npy(out, ndim=4)
    ref = models.vae_decode(vae, z)
    return compare(ours, ref)


def write_case_model(h, cname, seed, tag):
    kw, lat = CONFIGS[cname]
    vae = models.build_vae(seed, **kw)
    dit = models.build_dit(seed, input_size=lat, patch_size=2, hidden_size=32, depth=1,
                           num_heads=2)
    d = h.path(tag, "model")[:-len("/model")]
    export.write_model(d, dit, vae)
    return d, vae


def decode(h, d, z, tag, threads=None, precision=None):
    zin = save_npy(h.path(tag, "z.npy"), z)
    out = h.path(tag, "out.npy")
    h.run_dit(["decode", "--model", d, "--latent", zin, "-o", out] +
              (["--threads", str(threads)] if threads else []) +
              (["--precision", precision] if precision else []))
    return load_npy(out, ndim=4)


def other_size(h, cname, lh, lw, seed):
    """A latent of another size than the DiT's: same decoder, PyTorch at that size."""
    tag = "size_%s_%dx%d" % (cname.replace(" ", "_"), lh, lw)
    d, vae = write_case_model(h, cname, seed, tag)
    z = (np.random.default_rng(seed).standard_normal((1, 4, lh, lw)) * 0.8).astype(np.float32)
    return compare(decode(h, d, z, tag), models.vae_decode(vae, z))


def bf16_case(h, cname, lh, lw, seed):
    """--precision bf16 against the float32 reference."""
    tag = "bf16_%s_%dx%d" % (cname.replace(" ", "_"), lh, lw)
    d, vae = write_case_model(h, cname, seed, tag)
    z = (np.random.default_rng(seed).standard_normal((2, 4, lh, lw)) * 0.8).astype(np.float32)
    return compare_l2(decode(h, d, z, tag, precision="bf16"), models.vae_decode(vae, z),
                      BF16_L2, floor=1e-5)


def invariance(h, cname, lh, lw, seed, precision=None):
    """The same bytes with 1 and 3 threads, and for a latent decoded alone or beside others."""
    tag = "inv_%s_%dx%d_%s" % (cname.replace(" ", "_"), lh, lw, precision)
    d, _ = write_case_model(h, cname, seed, tag)
    z = (np.random.default_rng(seed).standard_normal((3, 4, lh, lw)) * 0.8).astype(np.float32)
    all3 = decode(h, d, z, tag + "_3t", threads=3, precision=precision)
    one = decode(h, d, z, tag + "_1t", threads=1, precision=precision)
    alone = decode(h, d, z[1:2], tag + "_alone", threads=2, precision=precision)
    if all3.tobytes() != one.tobytes():
        raise CheckFailed("3 threads and 1 thread give different bytes (max diff %.3g)"
                          % float(np.abs(all3 - one).max()))
    if all3[1:2].tobytes() != alone.tobytes():
        raise CheckFailed("the second of three latents differs from the same latent alone")
    return "3 latents x 1/3 threads and one alone: identical bytes"


def limits(h):
    d, _ = write_case_model(h, "b32-64 lpb1 g8 rgb", 10, "limits")
    for shape, want in (((1, 4, 129, 8), "1 to 128 cells per side"),
                        ((1, 3, 8, 8), "expected float32 of shape (N, 4, h, w)")):
        zin = save_npy(h.path("limits", "z%d.npy" % shape[2]), np.zeros(shape, np.float32))
        r = h.run_dit(["decode", "--model", d, "--latent", zin, "-o",
                       h.path("limits", "out.npy")], expect_ok=False)
        if r.returncode == 0 or want not in r.err:
            raise CheckFailed("latent %s: exit %d, stderr %r (want %r)" % (
                shape, r.returncode, r.err.strip(), want))
    return "129 cells and 3 channels refused with their reasons"


def main():
    h = Harness("vae", __doc__)
    for i, cname in enumerate(CONFIGS):
        for naming in NAMINGS:
            if (cname.endswith(("no-attn", "latent 20")) or cname.startswith("sd-like")) and naming not in (
                    "diffusers", "ldm_prefixed"):
                continue
            h.case("vae %s %s" % (cname, naming), run_case, h, cname, naming, 10 + i)
    h.case("vae b32-64 lpb1 g8 rgb diffusers F16", run_case, h, "b32-64 lpb1 g8 rgb",
           "diffusers", 10, "F16")
    h.case("vae b32-64 lpb1 g8 rgb ldm BF16", run_case, h, "b32-64 lpb1 g8 rgb", "ldm", 10,
           "BF16")
    # The DiT's latent is 8 (6 for sf0.5); f = 2 or 8. 3x5: direct convolutions only; 12x20 and
    # 30x18: the larger stages through Winograd.
    for cname, lh, lw in (("b32-64 lpb1 g8 rgb", 12, 20), ("b32-64 lpb1 g8 rgb", 3, 5),
                          ("b32-64 lpb2 g32 sf0.5", 30, 18),
                          ("sd-like b64-128-128-128 lpb2 g32", 6, 10)):
        h.case("vae %s latent %dx%d" % (cname, lh, lw), other_size, h, cname, lh, lw, 40 + lh)
    h.case("vae invariance threads and batch 14x10", invariance, h, "b32-64 lpb1 g8 rgb", 14, 10,
           50)
    h.case("vae invariance threads and batch sd-like 8x8", invariance, h,
           "sd-like b64-128-128-128 lpb2 g32", 8, 8, 51)
    h.case("vae size limits", limits, h)
    for cname, lh, lw in (("b32-64 lpb1 g8 rgb", 8, 8), ("sd-like b64-128-128-128 lpb2 g32", 8, 8),
                          ("b32-64 lpb1 g8 latent 20", 20, 20), ("b32-64 lpb1 g8 rgb", 12, 20)):
        h.case("vae bf16 %s latent %dx%d" % (cname, lh, lw), bf16_case, h, cname, lh, lw,
               60 + lh + lw)
    h.case("vae bf16 invariance threads and batch 14x10", invariance, h, "b32-64 lpb1 g8 rgb",
           14, 10, 52, "bf16")
    h.case("vae bf16 invariance threads and batch sd-like 8x8", invariance, h,
           "sd-like b64-128-128-128 lpb2 g32", 8, 8, 53, "bf16")
    h.finish()


if __name__ == "__main__":
    main()
