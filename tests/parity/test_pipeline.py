"""End-to-end properties of `dit generate` beyond the sampler maths:

- an image is a function of (model, class, cfg, steps, sampler, seed, index) only: the latents
  of image k are bit-identical whatever --n, --batch and --threads are (docs/sampling.md);
- the PNG pixels are the reference VAE decode of the latents, mapped by
  u8 = trunc(clamp(127.5 x + 128, 0, 255)) (docs/sampling.md, "Pixels"), for --outdir files and
  for `dit decode -o x.png`.
"""
import os

import numpy as np
from PIL import Image

from common import CheckFailed, Harness, load_npy, save_npy
import models
from pyref import export

ARCH = dict(input_size=8, patch_size=2, hidden_size=48, depth=2, num_heads=2, num_classes=10)


def make_model(h):
    m = models.build_dit(41, **ARCH)
    vae = models.build_vae(41)
    d = h.path("model", "x")[:-2]
    export.write_model(d, m, vae)
    return m, vae, d


def generate(h, d, tag, n, extra, sampler="ddpm", cfg=4.0, steps=10):
    lat = h.path(tag, "z.npy")
    argv = ["generate", "--model", d, "--class", 3, "--cfg", cfg, "--steps", steps,
            "--sampler", sampler, "--seed", 77, "--n", n, "--latent-out", lat, "--quiet"] + extra
    if "--outdir" not in extra:
        argv += ["-o", h.path(tag, "out.png")]
    h.run_dit(argv)
    return load_npy(lat, ndim=4)


def check_invariance(h, model, sampler):
    _, _, d = model
    runs = {
        "n=3 batch=3 threads=2": generate(h, d, sampler + "_a", 3, ["--batch", 3, "--threads", 2],
                                          sampler),
        "n=3 batch=1 threads=1": generate(h, d, sampler + "_b", 3, ["--batch", 1, "--threads", 1],
                                          sampler),
        "n=3 batch=2 threads=2": generate(h, d, sampler + "_c", 3, ["--batch", 2, "--threads", 2],
                                          sampler),
    }
    one = generate(h, d, sampler + "_d", 1, ["--threads", 1], sampler)
    base_name, base = next(iter(runs.items()))
    for name, z in runs.items():
        if not np.array_equal(z, base):
            diff = np.abs(z - base)
            k = int(np.unravel_index(diff.argmax(), diff.shape)[0])
            raise CheckFailed("%s differs from %s: max|diff| %.3g (image %d)" % (
                name, base_name, diff.max(), k))
    if not np.array_equal(one[0], base[0]):
        raise CheckFailed("n=1 differs from image 0 of n=3: max|diff| %.3g" %
                          np.abs(one[0] - base[0]).max())
    if np.array_equal(base[0], base[1]):
        raise CheckFailed("images 0 and 1 are identical")
    return "bit-identical across n, batch and threads"


def expected_pixels(vae, z):
    x = models.vae_decode(vae, z)                                    # (n, 3, H, W)
    v = np.clip(np.float32(127.5) * x + np.float32(128.0), 0, 255)
    return np.trunc(v).astype(np.uint8).transpose(0, 2, 3, 1), v.transpose(0, 2, 3, 1)


def compare_pixels(got, want, vals, what):
    if got.shape != want.shape:
        raise CheckFailed("%s: image shape %s, expected %s" % (what, got.shape, want.shape))
    diff = np.abs(got.astype(int) - want.astype(int))
    # float32 differences may move a value across an integer boundary: allow +-1 there only
    frac = vals - np.floor(vals)
    near = (frac < 1e-3) | (frac > 1 - 1e-3)
    bad = (diff > 1) | ((diff == 1) & ~near)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise CheckFailed("%s: %d pixel values differ, first at %s: got %d, want %d (float %.4f)"
                          % (what, int(bad.sum()), i, got[i], want[i], vals[i]))
    return int((diff == 1).sum())


def check_png_outdir(h, model):
    _, vae, d = model
    outdir = h.path("png", "outdir", "x")[:-2]
    z = generate(h, d, "png", 2, ["--outdir", outdir])
    want, vals = expected_pixels(vae, z)
    files = sorted(f for f in os.listdir(outdir) if f.endswith(".png"))
    if len(files) != 2:
        raise CheckFailed("--outdir wrote %s, expected 2 PNG files" % files)
    off = 0
    for k, f in enumerate(files):
        img = np.array(Image.open(os.path.join(outdir, f)).convert("RGB"))
        off += compare_pixels(img[None], want[k:k + 1], vals[k:k + 1], f)
    return "%s match (%d values off by one at a rounding boundary)" % (", ".join(files), off)


def check_decode_png(h, model):
    _, vae, d = model
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((1, 4, 8, 8)) * 0.5).astype(np.float32)
    zin = save_npy(h.path("decode_png", "z.npy"), z)
    out = h.path("decode_png", "x.png")
    h.run_dit(["decode", "--model", d, "--latent", zin, "-o", out])
    want, vals = expected_pixels(vae, z)
    img = np.array(Image.open(out).convert("RGB"))
    off = compare_pixels(img[None], want, vals, "decode png")
    return "match (%d values off by one at a rounding boundary)" % off


def main():
    h = Harness("pipeline", __doc__)
    model = None
    for sampler in ("ddpm", "dpm++2m"):
        name = "invariance %s: n, --batch, --threads" % sampler
        if h.wanted(name):
            model = model or make_model(h)
            h.case(name, check_invariance, h, model, sampler)
    if h.wanted("png --outdir pixels"):
        model = model or make_model(h)
        h.case("png --outdir pixels", check_png_outdir, h, model)
    if h.wanted("decode -o png pixels"):
        model = model or make_model(h)
        h.case("decode -o png pixels", check_decode_png, h, model)
    h.finish()


if __name__ == "__main__":
    main()
