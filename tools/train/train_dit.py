"""Train a class-conditional DiT on cached VAE latents, the paper's way: adaLN-Zero (or another
block design), learned sigma, 1000-step linear schedule, L_simple + L_vlb, class dropout 0.1,
AdamW (wd 0), EMA of the weights. Exports the EMA weights in the original key layout:

  OUT/config.json + OUT/diffusion_pytorch_model.safetensors

  /usr/bin/python3 tools/train/train_dit.py --latents WORK/latents.pt --out DIR/transformer
Optional --eval-every N with --vae DIR/vae evaluates the EMA model during training (classifier
accuracy and Frechet distance of generated images) and writes the curve as JSON (--curve PATH).
"""
import argparse
import copy
import json
import math
import os
import time

import torch

from common import log
from gd import Diffusion
from pyref import st
from pyref.dit import DiT


def save_transformer(model, outdir, guidance_channels=None, extra=None, dtype=torch.float32):
    os.makedirs(outdir, exist_ok=True)
    # the fixed position table stays F32 (it is not a learned weight)
    st.save({k: v.detach().to(torch.float32 if k == "pos_embed" else dtype).contiguous()
             for k, v in model.state_dict().items()},
            os.path.join(outdir, "diffusion_pytorch_model.safetensors"),
            metadata={"format": "pt"})
    cfg = model.config_json()
    if guidance_channels is not None:
        cfg["ditd_guidance_channels"] = guidance_channels
    if extra:
        cfg.update(extra)
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--block", default="adaln_zero")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--patch", type=int, default=2)
    # defaults: the bundled model's recipe (docs/models.md), used by train.sh and study.py
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine",
                    help="after the linear warm-up: constant, or cosine decay to --lr-final "
                         "x lr at --steps")
    ap.add_argument("--lr-final", type=float, default=0.1)
    ap.add_argument("--min-snr", type=float, default=5.0,
                    help="weight the eps MSE by min(SNR, gamma)/SNR (Min-SNR-gamma; 0 = off)")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance-channels", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--eval-steps", type=int, default=50, help="sampling steps for the curve")
    ap.add_argument("--eval-per-class", type=int, default=50)
    ap.add_argument("--eval-cfg", type=float, nargs="+", default=[1.0, 4.0])
    ap.add_argument("--vae", help="vae dir, for --eval-every")
    ap.add_argument("--curve", help="JSON file for the evaluation curve")
    ap.add_argument("--f16", action="store_true", help="export the EMA weights as F16")
    ap.add_argument("--state", help="save model, EMA, optimizer and step here at the end")
    ap.add_argument("--resume", help="continue from a --state file (step counts continue)")
    ap.add_argument("--save-every", type=int, default=0,
                    help="also export the EMA weights every N steps to OUT-stepN")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.time()

    cache = torch.load(args.latents)
    mean, std, labels = cache["mean"], cache["std"], cache["y"]
    n, c, L, _ = mean.shape
    num_classes = int(labels.max()) + 1
    model = DiT(input_size=L, patch_size=args.patch, in_channels=c, hidden_size=args.hidden,
                depth=args.depth, num_heads=args.heads, num_classes=num_classes,
                learn_sigma=True, block=args.block, class_dropout_prob=0.1)
    n_params = sum(p.numel() for p in model.parameters())
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    log(f"DiT {args.block} D={args.hidden} depth={args.depth} heads={args.heads} "
        f"p={args.patch}: {sum(p.numel() for p in model.parameters()):,} params; "
        f"{n} latents {tuple(mean.shape[1:])}, {num_classes} classes")
    diffusion = Diffusion(1000)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    evaluator = None
    curve = []
    if args.eval_every:
        from evaluate import Evaluator
        evaluator = Evaluator(args.vae)

    def run_eval(step):
        res = {"step": step, "train_seconds": round(train_time, 1)}
        for cfg in args.eval_cfg:
            r = evaluator.evaluate(ema, cfg=cfg, steps=args.eval_steps,
                                   per_class=args.eval_per_class,
                                   guidance_channels=args.guidance_channels, seed=1234)
            res[f"cfg{cfg:g}"] = r
            log(f"  eval step {step} cfg {cfg:g}: acc {r['accuracy'] * 100:.1f}% "
                f"FD {r['fd']:.2f}")
        curve.append(res)
        if args.curve:
            with open(args.curve, "w") as f:
                json.dump({"args": vars(args), "params": n_params, "curve": curve}, f,
                          indent=1)

    start_step = 1
    if args.resume:
        state = torch.load(args.resume)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"])
        start_step = state["step"] + 1
        log(f"resumed from {args.resume} at step {state['step']}")
    model.train()
    train_time = 0.0
    perm = torch.randperm(n, generator=g)
    pos = 0
    run_loss = run_mse = run_vb = 0.0
    for step in range(start_step, args.steps + 1):
        ts = time.time()
        if pos + args.batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        x0 = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g)
        lr = args.lr * min(1.0, step / args.warmup)
        if args.lr_schedule == "cosine" and step > args.warmup:
            p = (step - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.lr * (args.lr_final + (1 - args.lr_final) * 0.5 * (1 + math.cos(math.pi * p)))
        for group in opt.param_groups:
            group["lr"] = lr
        terms = diffusion.training_losses(model, x0, labels[idx], generator=g,
                                          min_snr=args.min_snr)
        loss = terms["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # EMA with a short warm-up so that early exports are not dominated by the init
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        train_time += time.time() - ts
        run_loss += loss.item()
        run_mse += terms["mse"].mean().item()
        run_vb += terms["vb"].mean().item()
        if step % 100 == 0 or step == args.steps:
            k = 100 if step % 100 == 0 else step % 100
            log(f"step {step}/{args.steps} loss {run_loss / k:.4f} mse {run_mse / k:.4f} "
                f"vb {run_vb / k:.4f} ({train_time:.0f}s train, {time.time() - t0:.0f}s total)")
            run_loss = run_mse = run_vb = 0.0
        if evaluator and (step % args.eval_every == 0 or step == args.steps):
            run_eval(step)
            model.train()
        if args.save_every and step % args.save_every == 0 and step < args.steps:
            save_transformer(ema, f"{args.out}-step{step}", args.guidance_channels)
    save_transformer(ema, args.out, args.guidance_channels,
                     dtype=torch.float16 if args.f16 else torch.float32)
    if args.state:
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(),
                    "opt": opt.state_dict(), "rng": g.get_state(), "step": args.steps},
                   args.state)
    log(f"saved EMA transformer to {args.out} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
