"""Resident memory after loading: at most 1.1x the bytes of the float32 weights the model uses.

A DiT-B/2 (130 M parameters) in the diffusers layout, whose file repeats the embedders in every
block, and a full Stable Diffusion AutoencoderKL (encoder included) are written as F32; `dit info
--json` reports the process's resident set after loading. The unused copies, the encoder and the
mapped pages of tensors ditd converts (the re-laid-out convolutions) must not stay resident.
A second case writes the DiT as F16, which ditd converts to F32 at load."""
import json
import sys

import torch

from common import CheckFailed, Harness, sanitized
from pyref import dit as pdit, export, vae as pvae

LIMIT = 1.10


def build(h, tag, dtype):
    torch.manual_seed(0)
    m = pdit.DiT(input_size=32, patch_size=2, hidden_size=768, depth=12, num_heads=12,
                 num_classes=1000)
    export.reinit_(m, seed=3)
    v = pvae.AutoencoderKL()   # the sd-vae-ft-* architecture
    d = h.path(tag, "model", "x")[:-2]
    export.write_model(d, m, v, layout="diffusers", dtype=dtype, vae_dtype="F32")
    return d


def check(h, tag, dtype):
    d = build(h, tag, dtype)
    info = json.loads(h.run_dit(["info", "--model", d, "--json"]).out)
    weights, rss = info["weight_bytes"], info["rss_after_load"]
    ratio = rss / weights
    msg = "resident %.1f MB after load for %.1f MB of weights in use: %.3fx (before load %.1f MB)" % (
        rss / 1e6, weights / 1e6, ratio, info["rss_before_load"] / 1e6)
    if ratio > LIMIT:
        raise CheckFailed(msg + " > %.2fx" % LIMIT)
    return msg


def main():
    h = Harness("memory", __doc__)
    # AddressSanitizer's shadow memory counts as resident: the bound means nothing there.
    if sanitized(h.dit):
        print("SKIP: %s is built with a sanitizer" % h.dit)
        sys.exit(77)
    h.case("B/2 diffusers layout F32 + SD VAE", check, h, "f32", "F32")
    h.case("B/2 diffusers layout F16 + SD VAE", check, h, "f16", "F16")
    h.finish()


if __name__ == "__main__":
    main()
