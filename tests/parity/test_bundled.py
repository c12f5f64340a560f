"""Parity on the bundled trained model (models/fashion-dit): trained weights have statistics the
random test models lack. `dit forward`, `dit decode` and a short `dit generate` are compared
with the PyTorch reference loaded from the same directory. Skipped (exit 77) when the model is
not there. --model DIR tests another model directory instead."""
import os
import sys

import numpy as np

import common
from common import Harness, compare, load_npy, save_npy
import fake_dit   # its model-directory reader loads the reference modules
import models
from pyref import diffusion


def model_dir():
    for i, a in enumerate(sys.argv):
        if a == "--model" and i + 1 < len(sys.argv):
            d = sys.argv[i + 1]
            del sys.argv[i:i + 2]
            return d
    return os.path.join(common.SRC_ROOT, "models", "fashion-dit")


def check_forward(h, d, m):
    rng = np.random.default_rng(0)
    C, L = m.in_channels, m.input_size
    x = rng.standard_normal((4, C, L, L)).astype(np.float32)
    t = np.array([999, 500, 40, 0])
    y = np.array([0, m.num_classes - 1, m.num_classes, 1 % m.num_classes])
    xin = save_npy(h.path("x.npy"), x)
    out = h.path("forward.npy")
    h.run_dit(["forward", "--model", d, "--x", xin, "--t", ",".join(map(str, t)),
               "--y", ",".join(map(str, y)), "-o", out])
    return compare(load_npy(out, ndim=4), models.dit_forward(m, x, t, y))


def check_decode(h, d, vae, m):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, m.in_channels, m.input_size, m.input_size)).astype(np.float32)
    zin = save_npy(h.path("z.npy"), z)
    out = h.path("decode.npy")
    h.run_dit(["decode", "--model", d, "--latent", zin, "-o", out])
    return compare(load_npy(out, ndim=4), models.vae_decode(vae, z))


def check_generate(h, d, m, gc, sampler, steps, cfg):
    lat = h.path("gen_%s.npy" % sampler)
    h.run_dit(["generate", "--model", d, "--class", 1, "--cfg", cfg, "--steps", steps,
               "--sampler", sampler, "--seed", 3, "--n", 2, "--latent-out", lat, "--quiet",
               "-o", h.path("gen_%s.png" % sampler)])
    ref = diffusion.sample(models.model_fn(m), diffusion.Schedule(steps), sampler, [1, 1], cfg,
                           3, (m.in_channels, m.input_size, m.input_size), m.num_classes, gc)
    return compare(load_npy(lat, ndim=4), ref, what="latents")


def main():
    d = model_dir()
    if not os.path.isfile(os.path.join(d, "transformer", "config.json")):
        print("skipped: no model at %s" % d)
        sys.exit(77)
    h = Harness("bundled", __doc__)
    m, gc = fake_dit.load_dit(d)
    vae = fake_dit.load_vae(d)
    h.case("bundled forward", check_forward, h, d, m)
    h.case("bundled decode", check_decode, h, d, vae, m)
    h.case("bundled generate ddim 20 steps cfg 4", check_generate, h, d, m, gc, "ddim", 20, 4.0)
    h.case("bundled generate ddpm 20 steps cfg 1.5", check_generate, h, d, m, gc, "ddpm", 20,
           1.5)
    h.finish()


if __name__ == "__main__":
    main()
