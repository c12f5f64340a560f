#!/usr/bin/python3
"""Write a tiny random-weight model directory for the daemon's integration tests.

    make_tiny_model.py OUTDIR [--input-size 8] [--hidden 32] [--depth 2] [--heads 2] [--vae 8,8]

The DiT has an 8x8x4 latent, patch 2, 2 blocks of width 32 and 10 named classes; the VAE
decoder two levels of 8 channels, so images are 16x16 and a step takes about a millisecond.
The weights come from the PyTorch reference in tools/pyref (random, seeded), written in the
original key layout. Reuses an existing directory with the same recipe (a stamp file).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

RECIPE = {"input_size": 8, "patch_size": 2, "hidden_size": 32, "depth": 2, "num_heads": 2,
          "num_classes": 10, "vae": [8, 8], "seed": 7, "version": 1}
LABELS = ["tshirt, top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
          "bag", "ankle boot"]


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--input-size", type=int, default=RECIPE["input_size"])
    ap.add_argument("--hidden", type=int, default=RECIPE["hidden_size"])
    ap.add_argument("--depth", type=int, default=RECIPE["depth"])
    ap.add_argument("--heads", type=int, default=RECIPE["num_heads"])
    ap.add_argument("--vae", default=",".join(map(str, RECIPE["vae"])))
    a = ap.parse_args()
    RECIPE.update(input_size=a.input_size, hidden_size=a.hidden, depth=a.depth,
                  num_heads=a.heads, vae=[int(v) for v in a.vae.split(",")])
    out = a.out
    stamp = os.path.join(out, "recipe.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == RECIPE:
                return 0
    import torch
    from pyref import dit as pdit
    from pyref import export
    from pyref import vae as pvae

    torch.manual_seed(RECIPE["seed"])
    dit = pdit.DiT(input_size=RECIPE["input_size"], patch_size=RECIPE["patch_size"],
                   in_channels=4, hidden_size=RECIPE["hidden_size"], depth=RECIPE["depth"],
                   num_heads=RECIPE["num_heads"], num_classes=RECIPE["num_classes"],
                   learn_sigma=True).eval()
    export.reinit_(dit, RECIPE["seed"])
    vae = pvae.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                             block_out_channels=tuple(RECIPE["vae"]), layers_per_block=1,
                             norm_num_groups=4,
                             sample_size=RECIPE["input_size"] * 2 ** (len(RECIPE["vae"]) - 1)).eval()
    export.reinit_(vae, RECIPE["seed"] + 1000)
    export.write_model(out, dit, vae, id2label={str(i): n for i, n in enumerate(LABELS)})
    with open(stamp, "w") as f:
        json.dump(RECIPE, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
