"""Train the small KL autoencoder (SD AutoencoderKL architecture) on Fashion-MNIST.

32x32 one-channel images (28x28 padded with -1) in [-1, 1] -> 8x8x4 latents. Loss: L1 + MSE
reconstruction plus a small KL term. Writes a diffusers-layout vae/ directory (config.json +
diffusion_pytorch_model.safetensors with encoder and decoder); scaling_factor and the latent
preview factors are filled in later by cache_latents.py.

  /usr/bin/python3 tools/train/train_vae.py --out DIR/vae [--minutes 12]
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

from common import load_fmnist, log, to_model_range
from pyref import st
from pyref.vae import AutoencoderKL

VAE_CONFIG = dict(in_channels=1, out_channels=1, latent_channels=4,
                  block_out_channels=(32, 32, 64), layers_per_block=1, norm_num_groups=16,
                  sample_size=32)


def save_vae(vae, outdir):
    os.makedirs(outdir, exist_ok=True)
    st.save({k: v.detach().float().contiguous() for k, v in vae.state_dict().items()},
            os.path.join(outdir, "diffusion_pytorch_model.safetensors"),
            metadata={"format": "pt"})
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(vae.config_json(), f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, nargs="+", default=list(VAE_CONFIG["block_out_channels"]))
    ap.add_argument("--groups", type=int, default=VAE_CONFIG["norm_num_groups"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--kl", type=float, default=1e-3,
                    help="weight of the per-image KL sum relative to the per-pixel mean L1")
    ap.add_argument("--grad-loss", type=float, default=0.0,
                    help="weight of an L1 loss on the horizontal and vertical pixel differences "
                         "(edges), against the blur of a pure L1/L2 loss")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    imgs, _ = load_fmnist("train")
    x_all = to_model_range(imgs)                                   # (60000, 1, 32, 32)
    test_imgs, _ = load_fmnist("t10k")
    x_test = to_model_range(test_imgs[:500])
    vae = AutoencoderKL(**dict(VAE_CONFIG, block_out_channels=tuple(args.channels),
                               norm_num_groups=args.groups))
    log(f"vae: {sum(p.numel() for p in vae.parameters()):,} params")
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    warm = 100

    def lr_at(i):  # linear warm-up then cosine decay to 5 %
        if i < warm:
            return args.lr * (i + 1) / warm
        p = (i - warm) / max(1, args.steps - warm)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    n = len(x_all)
    perm = torch.randperm(n, generator=g)
    pos = 0
    for i in range(args.steps):
        if pos + args.batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        xb = x_all[perm[pos:pos + args.batch]]
        pos += args.batch
        flip = torch.rand(len(xb), generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        for group in opt.param_groups:
            group["lr"] = lr_at(i)
        rec, post = vae(xb, sample=True, generator=g)
        l1 = (rec - xb).abs().mean()
        l2 = ((rec - xb) ** 2).mean()
        kl = post.kl().mean()
        loss = l1 + l2 + args.kl * kl / xb[0].numel()
        if args.grad_loss:
            ge = ((rec.diff(dim=-1) - xb.diff(dim=-1)).abs().mean()
                  + (rec.diff(dim=-2) - xb.diff(dim=-2)).abs().mean())
            loss = loss + args.grad_loss * ge
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 200 == 0 or i == args.steps - 1:
            with torch.no_grad():
                vae.eval()
                r = vae.decode(vae.encode(x_test).mode())
                vae.train()
                tl1 = (r - x_test).abs().mean().item()
            log(f"vae step {i}/{args.steps} l1 {l1.item():.4f} l2 {l2.item():.4f} "
                f"kl {kl.item():.1f} test-l1(mode) {tl1:.4f} ({time.time() - t0:.0f}s)")
    vae.eval()
    save_vae(vae, args.out)
    log(f"vae saved to {args.out} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
