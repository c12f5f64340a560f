"""Parity: `dit decode` (raw VAE decoder output) vs the PyTorch AutoencoderKL of tools/pyref/vae.py,
for a few small decoder configurations in each accepted key naming (diffusers, legacy attention
names, CompVis/ldm, ldm under `first_stage_model.`)."""
import numpy as np

from common import Harness, compare, load_npy, save_npy
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
    h.finish()


if __name__ == "__main__":
    main()
