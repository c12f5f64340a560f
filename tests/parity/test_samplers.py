"""Parity, end to end: `dit generate --latent-out` vs the reference sampler of
tools/pyref/diffusion.py driving the PyTorch DiT with the same Philox noise.

Samplers ddpm, ddim (eta 0 and 0.5) and dpm++2m; cfg 1 and 4; n = 2 so image 1 checks noise
stream 1; original numerics (3 guidance channels) and diffusers numerics (all 4)."""
import os

import numpy as np

from common import CheckFailed, Harness, compare, distinct, load_npy
import models
from models import ORIGINAL, DIFFUSERS
from pyref import diffusion, export

ARCH = dict(input_size=8, patch_size=2, hidden_size=48, depth=2, num_heads=2, num_classes=10)
SEED = 20231
CLASS = 7


def make_model(h, layout, tag="", learn_sigma=True, config=None, arch=ARCH):
    m = models.build_dit(21, learn_sigma=learn_sigma, **arch)
    vae = models.build_vae(21, latent_channels=m.in_channels)
    d = h.path("model_" + layout + tag, "x")[:-2]
    export.write_model(d, m, vae, layout=layout, config_extra=config)
    return m, d


def run_case(h, model, layout, sampler, eta, cfg, steps, spacing="", gc=None, seed=SEED):
    m, d = model
    numerics, default_gc = (ORIGINAL, 3) if layout == "original" else (DIFFUSERS, 4)
    gc = gc or default_gc
    ref_m = models.with_numerics(m, numerics)
    tag = "%s_%s_eta%g_cfg%g_%s%d_gc%d_s%d_%s" % (layout, sampler, eta, cfg, spacing, steps, gc,
                                                 seed, os.path.basename(d))
    lat = h.path(tag, "z.npy")
    png = h.path(tag, "out.png")
    argv = ["generate", "--model", d, "--class", CLASS, "--cfg", cfg, "--steps", steps,
            "--sampler", sampler, "--seed", seed, "--n", 2, "--latent-out", lat, "-o", png]
    if sampler == "ddim":
        argv += ["--eta", eta]
    if spacing:
        argv += ["--spacing", spacing]
    h.run_dit(argv)
    ours = load_npy(lat, ndim=4)
    sched = diffusion.Schedule(steps, spacing)
    shape = (m.in_channels, m.input_size, m.input_size)
    ref = diffusion.sample(models.model_fn(ref_m), sched, sampler, [CLASS, CLASS], cfg, seed,
                           shape, m.num_classes, gc, eta=eta)
    # the two images of the request must differ (distinct noise streams)
    if np.allclose(ref[0], ref[1]):
        raise CheckFailed("reference images 0 and 1 are equal: noise stream index unused?")
    msg = compare(ours, ref, what="latents")
    if cfg > 1:
        C = m.in_channels
        other = next(g for g in (default_gc, C, C - 1) if g != gc and 1 <= g <= C)
        alt = diffusion.sample(models.model_fn(ref_m), sched, sampler, [CLASS, CLASS], cfg, seed,
                               shape, m.num_classes, other, eta=eta)
        msg += "; " + distinct(ref, alt, what="%d guidance channels" % other)
    return msg


def main():
    h = Harness("samplers", __doc__)
    built = {}
    for layout in ("original", "diffusers"):
        for sampler, eta, steps in (("ddpm", 0.0, 12), ("ddim", 0.0, 12), ("ddim", 0.5, 12),
                                    ("dpm++2m", 0.0, 12)):
            for cfg in (1.0, 4.0):
                name = "%s %s%s cfg %g, %d steps" % (
                    layout, sampler, " eta %g" % eta if sampler == "ddim" else "", cfg, steps)
                if not h.wanted(name):
                    continue
                if layout not in built:
                    built[layout] = make_model(h, layout)
                h.case(name, run_case, h, built[layout], layout, sampler, eta, cfg, steps)
    # ddim spacing and a longer run for the ancestral sampler
    name = "original ddim spacing ddim20 cfg 4"
    if h.wanted(name):
        built.setdefault("original", make_model(h, "original"))
        h.case(name, run_case, h, built["original"], "original", "ddim", 0.0, 4.0, 20, "ddim")
    name = "original ddpm cfg 4, 50 steps"
    if h.wanted(name):
        built.setdefault("original", make_model(h, "original"))
        h.case(name, run_case, h, built["original"], "original", "ddpm", 0.0, 4.0, 50)
    # a model without learned sigma (ddpm uses the clipped posterior variance)
    name = "original no learned sigma: ddpm cfg 4"
    if h.wanted(name):
        h.case(name, run_case, h, make_model(h, "original", "_nosigma", learn_sigma=False),
               "original", "ddpm", 0.0, 4.0, 12)
    # ditd_guidance_channels overrides the numerics default
    name = "original ditd_guidance_channels 1: ddim cfg 4"
    if h.wanted(name):
        h.case(name, run_case, h, make_model(h, "original", "_gc1",
                                             config={"ditd_guidance_channels": 1}),
               "original", "ddim", 0.0, 4.0, 12, gc=1)
    # edge cases: one and two steps, eta 1, guidance scales around 1, a seed above 2^32
    orig = lambda: built.setdefault("original", make_model(h, "original"))  # noqa: E731
    for sampler, eta in (("ddpm", 0.0), ("ddim", 0.0), ("dpm++2m", 0.0)):
        for steps in (1, 2):
            name = "edge %s %d step(s) cfg 4" % (sampler, steps)
            if h.wanted(name):
                h.case(name, run_case, h, orig(), "original", sampler, eta, 4.0, steps)
    for name, args, kw in (("edge ddim eta 1 cfg 4", ("ddim", 1.0, 4.0, 12), {}),
                           ("edge cfg 0.5 (no guidance) ddpm", ("ddpm", 0.0, 0.5, 12), {}),
                           ("edge cfg 1.5 ddpm", ("ddpm", 0.0, 1.5, 12), {}),
                           ("edge seed 2^40+5 ddpm cfg 4", ("ddpm", 0.0, 4.0, 12),
                            {"seed": 2 ** 40 + 5})):
        if h.wanted(name):
            h.case(name, run_case, h, orig(), "original", *args, **kw)
    # an odd number of latent elements (3 x 5 x 5): the last Philox pair is cut in half
    name = "edge odd latent size 3x5x5, patch 5: ddpm cfg 4"
    if h.wanted(name):
        odd = dict(ARCH, input_size=5, patch_size=5, in_channels=3)
        h.case(name, run_case, h, make_model(h, "original", "_odd", arch=odd), "original",
               "ddpm", 0.0, 4.0, 12)
    h.finish()


if __name__ == "__main__":
    main()
