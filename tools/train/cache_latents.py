"""Encode the training set with the trained VAE and cache the posterior (mean, std) of every image
and of its horizontal flip. Computes scaling_factor = 1 / std of sampled latents and least-squares
latent -> RGB preview factors, and writes both into vae/config.json.

  /usr/bin/python3 tools/train/cache_latents.py --vae DIR/vae --cache WORK/latents.pt
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from common import load_fmnist, log, to_model_range
from pyref import st
from pyref.vae import from_config


def load_vae(vdir):
    with open(os.path.join(vdir, "config.json")) as f:
        cfg = json.load(f)
    vae = from_config(cfg)
    vae.load_state_dict(st.load(os.path.join(vdir, "diffusion_pytorch_model.safetensors")))
    return vae.eval(), cfg


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flip", action="store_true",
                    help="do not add the mirror images (halves the encoding time)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    vae, cfg = load_vae(args.vae)
    imgs, labels = load_fmnist("train")
    x = to_model_range(imgs)
    means, stds = [], []
    for flip in (False,) if args.no_flip else (False, True):
        for i in range(0, len(x), 100):
            xb = x[i:i + 100]
            post = vae.encode(xb.flip(-1) if flip else xb)
            means.append(post.mean.clone())
            stds.append(post.std.clone())
        log(f"encoded flip={flip} ({time.time() - t0:.0f}s)")
    mean = torch.cat(means)
    std = torch.cat(stds)
    y = torch.from_numpy(labels).repeat(len(mean) // len(labels))
    z = mean + std * torch.randn(mean.shape, generator=g)
    scale = 1.0 / z.std().item()
    log(f"latent mean {z.mean().item():.4f} std {z.std().item():.4f} -> scaling_factor "
        f"{scale:.5f}; per-channel std {[round(v, 3) for v in z.std(dim=(0, 2, 3)).tolist()]}")
    # preview factors: scaled latent cell (C) -> RGB of the 4x4 image block it covers
    n = 20000
    zc = (mean[:n] * scale).permute(0, 2, 3, 1).reshape(-1, mean.shape[1]).double()
    f = 2 ** (len(cfg["block_out_channels"]) - 1)
    img = F.avg_pool2d(x[:n], f).permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double()
    if img.shape[1] == 1:
        img = img.repeat(1, 3)
    a = torch.cat([zc, torch.ones(len(zc), 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(a, img).solution                  # (C+1, 3)
    resid = (a @ sol - img).pow(2).mean().sqrt().item()
    log(f"latent_rgb fit rms error {resid:.3f}")
    cfg["scaling_factor"] = round(scale, 6)
    cfg["latent_rgb_factors"] = [[round(v, 5) for v in row] for row in sol[:-1].tolist()]
    cfg["latent_rgb_bias"] = [round(v, 5) for v in sol[-1].tolist()]
    with open(os.path.join(args.vae, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
        fh.write("\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.cache)), exist_ok=True)
    torch.save({"mean": mean * scale, "std": std * scale, "y": y, "scaling_factor": scale},
               args.cache)
    log(f"cached {len(mean)} latents (scaled) to {args.cache} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
