#!/usr/bin/python3
"""The bundled model in bf16 against fp32, judged by the project's Fashion-MNIST classifier.

For each sampler at cfg 4, `dit generate --precision P` writes 100 PNGs per class in fp32 and in
bf16 (same seeds, so image k of a class starts from the same noise in both); the images go through
bench/quality/c_engine_eval.py's pipeline: accuracy against the requested class and Frechet
distance of the classifier's features against the 10,000 test images. The issue's bar: bf16
accuracy at least fp32's minus 2 points, bf16 FD within 10 % of fp32's.

  /usr/bin/python3 bench/precision/quality.py [--samplers ddim,dpm++2m,ddpm] [--per-class 100]

Writes bench/precision/results/quality.jsonl and prints a markdown table (docs/performance.md).
On CPUs without bf16 instructions `--precision bf16` is ditd's emulation: the same numerics as
native bf16 up to the order of float32 additions.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "quality"))

import c_engine_eval as ce  # noqa: E402

STEPS = {"ddpm": 250, "ddim": 50, "dpm++2m": 20}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dit", default=os.path.join(REPO, "build", "src", "cli", "dit"))
    ap.add_argument("--model", default="models/fashion-dit")
    ap.add_argument("--samplers", default="ddim,dpm++2m,ddpm")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--work", default="/tmp/ditd-precision-quality")
    ap.add_argument("--cache", default=os.path.join(REPO, "build", "quality-cache"))
    ap.add_argument("--results", default=os.path.join(HERE, "results", "quality.jsonl"))
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every sampler meets the bar (tests/parity/test_bf16_quality.py)")
    args = ap.parse_args()
    os.chdir(REPO)
    ce.torch.set_num_threads(1)
    clf = ce.load_classifier()
    test_feats = ce.test_features(clf, args.cache)
    classes = np.repeat(np.arange(10), args.per_class)
    info = json.loads(subprocess.run([args.dit, "info", "--model", args.model, "--json",
                                      "--precision", "bf16"], check=True, capture_output=True,
                                     text=True).stdout)
    head = {"kind": "run", "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip(),
            "model": args.model, "model_id": ce.model_id(args.model),
            "images_per_class": args.per_class, "seed": args.seed, "isa": info["isa"],
            "bf16_note": info["precision_note"]}
    results = [head]
    for sampler in args.samplers.split(","):
        for precision in ("fp32", "bf16"):
            work = os.path.join(args.work, f"{sampler}-{precision}")
            shutil.rmtree(work, ignore_errors=True)
            t0 = time.time()
            paths = [p for k in range(10) for p in ce.generate(
                args.dit, args.model, sampler, STEPS[sampler], 4.0, k, args.per_class,
                args.seed, args.batch, os.path.join(work, f"class{k}"), precision)]
            r = ce.judge(clf, ce.png_to_input(paths), classes, test_feats)
            r.update(kind="c-engine", sampler=sampler, steps=STEPS[sampler], cfg=4.0,
                     precision=precision, generate_seconds=round(time.time() - t0, 1))
            results.append(r)
            ce.log(f"{sampler} {STEPS[sampler]} cfg 4 {precision}: accuracy "
                   f"{r['accuracy'] * 100:.1f} % FD {r['fd']:.2f} ({r['generate_seconds']:.0f} s)")
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(f"\nRun of {head['date']} at {head['commit']}, {head['isa']}: {head['bf16_note']}\n")
    print("| sampler | steps | fp32 accuracy | bf16 accuracy | Δ points | fp32 FD | bf16 FD | "
          "FD ratio | bar met |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    missed = []
    for sampler in args.samplers.split(","):
        a, b = (next(r for r in results[1:] if r["sampler"] == sampler and r["precision"] == p)
                for p in ("fp32", "bf16"))
        d = (b["accuracy"] - a["accuracy"]) * 100
        ratio = b["fd"] / a["fd"]
        ok = d >= -2.0 and ratio <= 1.10
        if not ok:
            missed.append(sampler)
        print(f"| {sampler} | {STEPS[sampler]} | {a['accuracy'] * 100:.1f} % | "
              f"{b['accuracy'] * 100:.1f} % | {d:+.1f} | {a['fd']:.1f} | {b['fd']:.1f} | "
              f"{ratio:.3f} | {'yes' if ok else 'NO'} |")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
