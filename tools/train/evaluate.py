"""Judge a DiT by its samples: generate per_class images of every class with the ddpm sampler,
decode with the VAE, classify with the project's Fashion-MNIST classifier.

Reports the accuracy (share of images classified as the requested class) and the Frechet distance
between the classifier's 128-d penultimate features of the samples and of the 10,000 test images
("FD"; the FID recipe with our classifier in place of Inception, so only comparable within this
project).

  /usr/bin/python3 tools/train/evaluate.py --model models/fashion-dit --cfg 4 --steps 250 \
      --per-class 100 [--grid out.png] [--philox]
"""
import argparse
import json
import os
import time

import numpy as np
import torch

from classifier import frechet_distance, load_classifier, predict
from common import CLASS_NAMES, load_fmnist, log, to_model_range
from gd import Diffusion
from pyref import st
from pyref.dit import from_config as dit_from_config
from pyref.vae import from_config as vae_from_config


def load_model_dir(path):
    with open(os.path.join(path, "transformer", "config.json")) as f:
        tcfg = json.load(f)
    dit = dit_from_config(tcfg)
    dit.load_state_dict(st.load(os.path.join(path, "transformer",
                                             "diffusion_pytorch_model.safetensors")))
    with open(os.path.join(path, "vae", "config.json")) as f:
        vcfg = json.load(f)
    vae = vae_from_config(vcfg)
    vae.load_state_dict(st.load(os.path.join(path, "vae", "diffusion_pytorch_model.safetensors")))
    return dit.eval(), vae.eval(), tcfg, vcfg


def save_grid(images, path, nrow):
    """images (N, C, H, W) in [-1, 1] -> PNG grid with 2 px padding (u8 = 127.5 x + 128)."""
    from PIL import Image
    x = images.clamp(-1, 1)
    n, c, h, w = x.shape
    ncol = (n + nrow - 1) // nrow
    u8 = np.clip(127.5 * x.numpy() + 128.0, 0, 255).astype(np.uint8)
    pad = 2
    canvas = np.zeros((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h,
               pad + q * (w + pad): pad + q * (w + pad) + w] = u8[i].transpose(1, 2, 0)
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    img.save(path)


class Evaluator:
    def __init__(self, vae_dir=None, vae=None, scaling_factor=None):
        if vae is None:
            with open(os.path.join(vae_dir, "config.json")) as f:
                vcfg = json.load(f)
            vae = vae_from_config(vcfg)
            vae.load_state_dict(st.load(os.path.join(vae_dir,
                                                     "diffusion_pytorch_model.safetensors")))
            scaling_factor = vcfg["scaling_factor"]
        self.vae = vae.eval()
        self.scale = scaling_factor
        self.clf = load_classifier()
        imgs, labels = load_fmnist("t10k")
        _, self.test_feats = predict(self.clf, to_model_range(imgs, pad=0))
        self.test_feats = self.test_feats.numpy()

    @torch.no_grad()
    def decode(self, latents, batch=250):
        return torch.cat([self.vae.decode(latents[i:i + batch] / self.scale)
                          for i in range(0, len(latents), batch)])

    @torch.no_grad()
    def generate(self, model, cfg, steps, per_class, guidance_channels, seed, batch=250):
        diffusion = Diffusion(steps)
        g = torch.Generator().manual_seed(seed)
        classes = torch.arange(model.num_classes).repeat_interleave(per_class)
        shape = (model.in_channels, model.input_size, model.input_size)
        lat = torch.cat([diffusion.sample(model, classes[i:i + batch], cfg, guidance_channels,
                                          shape, generator=g)
                         for i in range(0, len(classes), batch)])
        return self.decode(lat), classes

    @torch.no_grad()
    def judge(self, images, classes):
        logits, feats = predict(self.clf, images)
        pred = logits.argmax(1)
        per_class = [(pred[classes == k] == k).float().mean().item()
                     for k in range(int(classes.max()) + 1)]
        return {"accuracy": (pred == classes).float().mean().item(),
                "per_class": [round(v, 3) for v in per_class],
                "fd": frechet_distance(feats.numpy(), self.test_feats)}

    def evaluate(self, model, cfg, steps, per_class, guidance_channels, seed):
        was_training = model.training
        model.eval()
        images, classes = self.generate(model, cfg, steps, per_class, guidance_channels, seed)
        if was_training:
            model.train()
        return self.judge(images, classes)


def philox_generate(dit, tcfg, ev, classes, cfg, steps, seed):
    """Latents from the Philox-exact reference sampler of tools/pyref/diffusion.py."""
    from pyref import diffusion as ref

    def model_fn(x, t, y):
        with torch.no_grad():
            return dit(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
    sched = ref.Schedule(steps)
    gc = tcfg.get("ditd_guidance_channels", 3)
    shape = (dit.in_channels, dit.input_size, dit.input_size)
    out = []
    for i in range(0, len(classes), 100):
        out.append(ref.sample(model_fn, sched, "ddpm", classes[i:i + 100].tolist(), cfg, seed,
                              shape, dit.num_classes, gc, first_index=i))
    return ev.decode(torch.from_numpy(np.concatenate(out)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/fashion-dit")
    ap.add_argument("--cfg", type=float, nargs="+", default=[4.0])
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance-channels", type=int, default=None)
    ap.add_argument("--grid", help="PNG: a grid of the first 10 samples of every class")
    ap.add_argument("--philox", action="store_true",
                    help="use the Philox-exact numpy reference sampler (slower)")
    ap.add_argument("--json", help="append results to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    dit, vae, tcfg, vcfg = load_model_dir(args.model)
    ev = Evaluator(vae=vae, scaling_factor=vcfg["scaling_factor"])
    gc = args.guidance_channels or tcfg.get("ditd_guidance_channels", 3)
    results = []
    for cfg in args.cfg:
        t0 = time.time()
        if args.philox:
            classes = torch.arange(dit.num_classes).repeat_interleave(args.per_class)
            images = philox_generate(dit, tcfg, ev, classes, cfg, args.steps, args.seed)
        else:
            images, classes = ev.generate(dit, cfg, args.steps, args.per_class, gc, args.seed)
        r = ev.judge(images, classes)
        r.update(cfg=cfg, steps=args.steps, images_per_class=args.per_class, guidance_channels=gc,
                 sampler="ddpm-philox" if args.philox else "ddpm-torch", seconds=round(
                     time.time() - t0, 1))
        results.append(r)
        log(f"cfg {cfg:g}: accuracy {r['accuracy'] * 100:.1f}% FD {r['fd']:.2f} "
            f"per class {r['per_class']} ({r['seconds']:.0f}s)")
        if args.grid:
            k = min(10, args.per_class)
            sel = torch.cat([torch.nonzero(classes == c)[:k, 0] for c in range(dit.num_classes)])
            root, ext = os.path.splitext(args.grid)
            path = args.grid if len(args.cfg) == 1 else f"{root}-cfg{cfg:g}{ext}"
            save_grid(images[sel], path, nrow=k)
            log(f"grid ({', '.join(CLASS_NAMES)} by rows) -> {path}")
    if args.json:
        with open(args.json, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
