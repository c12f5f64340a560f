"""Resident memory after loading: at most 1.1x the bytes of the float32 weights the model uses,
and at most 0.55x of them when the DiT runs in bf16 (its weights held in bf16 only).

A DiT-B/2 (130 M parameters) in the diffusers layout, whose file repeats the embedders in every
block, and a full Stable Diffusion AutoencoderKL (encoder included) are written as F32; `dit info
--json` reports the process's resident set after loading. The unused copies, the encoder and the
mapped pages of tensors ditd converts (the re-laid-out convolutions) must not stay resident.
A second case writes the DiT as F16, which ditd converts to F32 at load. The bf16 cases load a
DiT-B/2 (tiles of (out, in) weights) and a DiT with 16 tokens per image (weights in panels) with
`--precision bf16`, next to a small VAE (the decoder's weights stay float32: with the full SD VAE
the bound would be about the decoder, not the DiT)."""
import json
import sys

import torch

from common import CheckFailed, Harness, sanitized
from pyref import dit as pdit, export, vae as pvae

LIMIT = 1.10
LIMIT_BF16 = 0.55


def build(h, tag, dtype, input_size=32, patch_size=2, depth=12, small_vae=False):
    torch.manual_seed(0)
    m = pdit.DiT(input_size=input_size, patch_size=patch_size, hidden_size=768, depth=depth,
                 num_heads=12, num_classes=1000)
    export.reinit_(m, seed=3)
    if small_vae:
        v = pvae.AutoencoderKL(block_out_channels=(32, 32), layers_per_block=1,
                               norm_num_groups=8)
    else:
        v = pvae.AutoencoderKL()   # the sd-vae-ft-* architecture
    d = h.path(tag, "model", "x")[:-2]
    export.write_model(d, m, v, layout="diffusers", dtype=dtype, vae_dtype="F32")
    return d


def check(h, tag, dtype, precision="fp32", limit=LIMIT, **arch):
    d = build(h, tag, dtype, **arch)
    info = json.loads(h.run_dit(["info", "--model", d, "--json", "--precision", precision]).out)
    if info["precision"] != precision:
        raise CheckFailed("asked for %s, the model runs in %s" % (precision, info["precision"]))
    weights, rss = info["weight_bytes"], info["rss_after_load"]
    ratio = rss / weights
    msg = "%s: resident %.1f MB after load for %.1f MB of float32 weights: %.3fx (before load " \
          "%.1f MB)" % (precision, rss / 1e6, weights / 1e6, ratio, info["rss_before_load"] / 1e6)
    if ratio > limit:
        raise CheckFailed(msg + " > %.2fx" % limit)
    return msg


def main():
    h = Harness("memory", __doc__)
    # AddressSanitizer's shadow memory counts as resident: the bound means nothing there.
    if sanitized(h.dit):
        print("SKIP: %s is built with a sanitizer" % h.dit)
        sys.exit(77)
    h.case("B/2 diffusers layout F32 + SD VAE", check, h, "f32", "F32")
    h.case("B/2 diffusers layout F16 + SD VAE", check, h, "f16", "F16")
    h.case("B/2 diffusers layout F32 in bf16 + small VAE", check, h, "bf16", "F32",
           precision="bf16", limit=LIMIT_BF16, small_vae=True)
    h.case("16 tokens (panels) F16 in bf16 + small VAE", check, h, "bf16_panels", "F16",
           precision="bf16", limit=LIMIT_BF16, small_vae=True, input_size=16, patch_size=4,
           depth=8)
    h.finish()


if __name__ == "__main__":
    main()
