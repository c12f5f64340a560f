"""Error handling: a model directory with a missing tensor or a tensor of the wrong shape must make
`dit forward` (and `dit decode` for the VAE) exit non-zero with a message naming the tensor and,
for a wrong shape, both shapes. A config value outside the contract names its key; a missing or
broken config file names the file and, if broken, the line and column."""
import os
import re

import numpy as np
import torch

from common import CheckFailed, Harness, save_npy
import models
from pyref import export

ARCH = dict(input_size=8, patch_size=2, hidden_size=48, depth=2, num_heads=2)


def shape_pattern(shape):
    """Regex matching a shape written as [a, b], (a,b), axb, a x b ..."""
    return r"\D+".join(str(s) for s in shape)


def run_case(h, tag, layout, cmd, dit_edit=None, vae_edit=None, vae_naming="diffusers",
             tensor=None, shapes=(), config=None, words=(), after=None):
    m = models.build_dit(31, **ARCH)
    vae = models.build_vae(31)
    d = h.path(tag, "x")[:-2]
    export.write_model(d, m, vae, layout=layout, dit_edit=dit_edit, vae_edit=vae_edit,
                       vae_naming=vae_naming, config_extra=config)
    if after:
        after(d)
    if cmd == "forward":
        x = save_npy(h.path(tag, "x.npy"), np.zeros((1, 4, 8, 8), np.float32))
        argv = ["forward", "--model", d, "--x", x, "--t", "10", "--y", "1", "-o",
                h.path(tag, "out.npy")]
    else:
        z = save_npy(h.path(tag, "z.npy"), np.zeros((1, 4, 8, 8), np.float32))
        argv = ["decode", "--model", d, "--latent", z, "-o", h.path(tag, "out.npy")]
    r = h.run_dit(argv, expect_ok=False)
    text = (r.err + r.out).strip()
    last = text.splitlines()[-1] if text else "(no output)"
    if r.returncode == 0:
        raise CheckFailed("dit %s exited 0 on a broken model dir" % cmd)
    if "Sanitizer" in text or "runtime error:" in text:
        raise CheckFailed("sanitizer report: %s" % text[-800:])
    if r.returncode < 0 or r.returncode > 125:
        raise CheckFailed("dit %s died with status %d (crash?): %s" % (cmd, r.returncode, last))
    for w in words:
        if w not in text:
            raise CheckFailed("message does not name %s: %r" % (w, text[-500:]))
    if tensor and tensor not in text:
        raise CheckFailed("message does not name %s: %r" % (tensor, text[-500:]))
    for s in shapes:
        if not re.search(shape_pattern(s), text):
            raise CheckFailed("message does not show shape %s: %r" % (list(s), text[-500:]))
    return "exit %d: %s" % (r.returncode, text[-300:].replace("\n", " | "))


def drop(key):
    def edit(sd):
        if key not in sd:
            raise CheckFailed("test bug: no tensor %s" % key)
        sd = dict(sd)
        del sd[key]
        return sd
    return edit


def reshape(key, new_shape):
    def edit(sd):
        sd = dict(sd)
        sd[key] = torch.zeros(new_shape)
        return sd
    return edit


def write_file(rel, text):
    """An edit of the written model directory: rel's contents replaced, or rel removed (None)."""
    def edit(d):
        p = os.path.join(d, rel)
        if text is None:
            os.remove(p)
        else:
            with open(p, "w") as f:
                f.write(text)
    return edit


def main():
    h = Harness("errors", __doc__)
    D = ARCH["hidden_size"]
    h.case("original: missing blocks.1.attn.proj.weight", run_case, h, "orig_missing",
           "original", "forward", dit_edit=drop("blocks.1.attn.proj.weight"),
           tensor="blocks.1.attn.proj.weight")
    h.case("original: wrong shape blocks.0.mlp.fc1.weight", run_case, h, "orig_shape",
           "original", "forward", dit_edit=reshape("blocks.0.mlp.fc1.weight", (D, 4 * D)),
           tensor="blocks.0.mlp.fc1.weight", shapes=[(D, 4 * D), (4 * D, D)])
    h.case("original: wrong shape y_embedder table", run_case, h, "orig_table",
           "original", "forward", dit_edit=reshape("y_embedder.embedding_table.weight", (10, D)),
           tensor="y_embedder.embedding_table.weight", shapes=[(10, D), (11, D)])
    h.case("diffusers: missing proj_out_2.bias", run_case, h, "diff_missing", "diffusers",
           "forward", dit_edit=drop("proj_out_2.bias"), tensor="proj_out_2.bias")
    h.case("diffusers: wrong shape attn1.to_k.weight", run_case, h, "diff_shape", "diffusers",
           "forward", dit_edit=reshape("transformer_blocks.1.attn1.to_k.weight", (D, D + 2)),
           tensor="transformer_blocks.1.attn1.to_k.weight", shapes=[(D, D + 2), (D, D)])
    h.case("vae: missing decoder.conv_out.bias", run_case, h, "vae_missing", "original",
           "decode", vae_edit=drop("decoder.conv_out.bias"), tensor="decoder.conv_out.bias")
    h.case("vae ldm: wrong shape mid attn q", run_case, h, "vae_ldm_shape", "original",
           "decode", vae_naming="ldm",
           vae_edit=reshape("decoder.mid.attn_1.q.weight", (16, 8, 1, 1)),
           tensor="attn_1.q.weight", shapes=[(16, 8, 1, 1)])
    # config values outside the contract of docs/models.md
    for tag, layout, cfg, word in (
            ("gc0", "original", {"ditd_guidance_channels": 0}, "ditd_guidance_channels"),
            ("gc5", "original", {"ditd_guidance_channels": 5}, "ditd_guidance_channels"),
            ("numerics", "original", {"ditd_numerics": "fast"}, "ditd_numerics"),
            ("block", "original", {"ditd_block": "adaln_single"}, "ditd_block"),
            ("diff_block", "diffusers", {"ditd_block": "in_context"}, "ditd_block")):
        h.case("config: %s layout with %s" % (layout, cfg), run_case, h, "cfg_" + tag, layout,
               "forward", config=cfg, words=[word])
    # A missing config names the file and what a model directory holds; broken JSON, where.
    h.case("config: vae/config.json missing", run_case, h, "cfg_missing", "original", "decode",
           after=write_file("vae/config.json", None),
           words=["vae/config.json: no such file", "docs/models.md"])
    h.case("config: transformer/config.json not JSON", run_case, h, "cfg_json", "original",
           "forward", after=write_file("transformer/config.json", '{"hidden_size": 48,\n'),
           words=["transformer/config.json: ", "(line 2, column"])
    h.finish()


if __name__ == "__main__":
    main()
