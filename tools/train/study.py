"""Item 4: the paper's comparisons at Fashion-MNIST scale, all on the bundled VAE's latents.

  * block designs (paper Fig. 5): adaln_zero, adaln, cross_attention, in_context, same model size
    (D=128, depth 4, 4 heads, patch 2) and the same budget (steps x batch);
  * patch size and depth (paper Fig. 2/6 in small): adaLN-Zero with patch 2 / 4 and depth 2 / 4.

Each run trains with train_dit.py's defaults (the bundled model's recipe) for --steps steps,
evaluates its EMA weights every --eval-every steps
(ddpm, --eval-steps sampling steps, no guidance and cfg 4, --eval-per-class images per class,
classifier accuracy and feature Frechet distance), writes the curve to bench/quality/curves/NAME.json
and exports the final EMA transformer (original layout, ditd_block in config.json) to
bench/quality/models/NAME/transformer with a vae symlink to models/fashion-dit/vae.

  /usr/bin/python3 tools/train/study.py --latents WORK/latents.pt [--only NAME ...] [--jobs 2]
"""
import argparse
import os
import subprocess
import sys
import time

from common import HERE, REPO

RUNS = {
    # name: (block, hidden, depth, heads, patch)
    "adaln_zero": ("adaln_zero", 128, 4, 4, 2),
    "adaln": ("adaln", 128, 4, 4, 2),
    "cross_attention": ("cross_attention", 128, 4, 4, 2),
    "in_context": ("in_context", 128, 4, 4, 2),
    "adaln_zero_p4": ("adaln_zero", 128, 4, 4, 4),
    "adaln_zero_d2": ("adaln_zero", 128, 2, 4, 2),
    "adaln_zero_d2_p4": ("adaln_zero", 128, 2, 4, 4),
}


def command(name, args):
    block, hidden, depth, heads, patch = RUNS[name]
    out = os.path.join(REPO, "bench", "quality", "models", name)
    os.makedirs(out, exist_ok=True)
    # the bundled model's VAE and class names, so `dit generate --class bag` works on it
    for shared in ("vae", "model_index.json"):
        link = os.path.join(out, shared)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "..", "..", "..", "models", "fashion-dit", shared), link)
    return [sys.executable, os.path.join(HERE, "train_dit.py"), "--latents", args.latents,
            "--out", os.path.join(out, "transformer"), "--block", block, "--hidden", str(hidden),
            "--depth", str(depth), "--heads", str(heads), "--patch", str(patch),
            "--steps", str(args.steps), "--batch", str(args.batch), "--seed", "0",
            "--eval-every", str(args.eval_every), "--eval-steps", str(args.eval_steps),
            "--eval-per-class", str(args.eval_per_class), "--eval-cfg", "1", "4",
            "--vae", args.vae,
            "--curve", os.path.join(REPO, "bench", "quality", "curves", name + ".json")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", required=True)
    ap.add_argument("--vae", default=os.path.join(REPO, "models", "fashion-dit", "vae"))
    ap.add_argument("--only", nargs="*", default=list(RUNS))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--eval-every", type=int, default=300)
    ap.add_argument("--eval-steps", type=int, default=50)
    ap.add_argument("--eval-per-class", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (1 thread each if >1)")
    args = ap.parse_args()
    os.makedirs(os.path.join(REPO, "bench", "quality", "curves"), exist_ok=True)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if args.jobs > 1:
        env["TRAIN_THREADS"] = "1"
    pending = list(args.only)
    running = []
    logdir = os.path.join(REPO, "tmp", "study-logs")
    os.makedirs(logdir, exist_ok=True)
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            log = open(os.path.join(logdir, name + ".log"), "w")
            print(f"start {name}", flush=True)
            running.append((name, subprocess.Popen(command(name, args), stdout=log,
                                                   stderr=subprocess.STDOUT, env=env), time.time()))
        time.sleep(5)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is not None:
                print(f"done {name}: rc {proc.returncode} in {time.time() - t0:.0f}s", flush=True)
                running.remove(item)


if __name__ == "__main__":
    main()
