#!/usr/bin/python3
"""Side-by-side speed of the Stable Diffusion VAE decoder: PyTorch eager against ditd, one run.

    /usr/bin/python3 bench/vae/torch_vs_ditd_vae.py [--image-size 256] [--threads 2]
                                                    [--iterations 3] [--rounds 2]
                                                    [--dit build/src/cli/dit] [--bf16 auto|yes|no]

Decodes one latent of image_size/8 x image_size/8 with the sd-vae-ft-* architecture
(block_out_channels 128, 256, 512, 512, two layers per block, 32 groups, mid-block attention) and
random weights:
  * PyTorch 1.13 eager (tools/pyref/vae.py, the parity tests' reference), float32, and bfloat16
    (the model and latent cast to torch.bfloat16) where the CPU has native bf16 (avx512_bf16 or
    amx_bf16 in /proc/cpuinfo; --bf16 yes forces it), each in a fresh process with `threads`
    OpenMP threads;
  * ditd: `dit bench --vae --image-size S --precision fp32 --json` (its own random weights: the
    speed of these kernels does not depend on the values), and `--precision bf16` where PyTorch
    bf16 runs (on CPUs without bf16 instructions ditd's bf16 is an emulation, not faster).
The runs alternate (PyTorch, ditd, PyTorch, ditd, ...) so that a busy machine slows both alike.
Prints a table and one JSON line with medians over all timed decodes, best times, CPU time per
decode and the ratios PyTorch / ditd (above 1: ditd is faster). Read the ratios, not the absolute
times: the machine is shared.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from torch_vs_ditd import cpu_name  # noqa: E402

TORCH_TIMER = r"""
import json, sys, time, torch
sys.path.insert(0, %(tools)r)
from pyref import vae as pvae
torch.set_num_threads(%(threads)d)
torch.manual_seed(0)
v = pvae.AutoencoderKL().eval()
dtype = getattr(torch, %(dtype)r)
v = v.to(dtype)
z = (torch.randn(1, 4, %(latent)d, %(latent)d) / 0.18215).to(dtype)
ms, cpu = [], []
with torch.no_grad():
    v.decode(z)
    for _ in range(%(iterations)d):
        t0, c0 = time.perf_counter(), time.process_time()
        v.decode(z)
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
print(json.dumps({"ms": ms, "cpu_ms": cpu}))
"""


def native_bf16():
    flags = open("/proc/cpuinfo").read()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def torch_run(dtype, latent, threads, iterations):
    script = TORCH_TIMER % {"tools": os.path.join(ROOT, "tools"), "threads": threads,
                            "dtype": dtype, "latent": latent, "iterations": iterations}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ditd_run(dit, size, threads, iterations, precision):
    out = subprocess.run([dit, "bench", "--vae", "--image-size", str(size), "--threads",
                          str(threads), "--iterations", str(iterations), "--precision",
                          precision, "--json"], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    # dit bench reports the median; with one iteration per round that is the time itself.
    return {"ms": [r["ms_per_decode"]], "best": r["ms_best"], "cpu_ms": [r["cpu_ms_per_decode"]]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=3, help="timed decodes per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dit", default=os.path.join(ROOT, "build", "src", "cli", "dit"))
    ap.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto")
    args = ap.parse_args()
    latent = args.image_size // 8
    bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and native_bf16())
    cpu = cpu_name()

    runs = {"torch_fp32": {"ms": [], "cpu_ms": []}, "ditd_fp32": {"ms": [], "cpu_ms": []}}
    if bf16:
        runs["torch_bf16"] = {"ms": [], "cpu_ms": []}
        runs["ditd_bf16"] = {"ms": [], "cpu_ms": []}
    for rnd in range(args.rounds):
        for name in runs:
            if name.startswith("torch"):
                r = torch_run(name.split("_")[1].replace("fp32", "float32").replace(
                    "bf16", "bfloat16"), latent, args.threads, args.iterations)
                runs[name]["ms"] += r["ms"]
                runs[name]["cpu_ms"] += r["cpu_ms"]
            else:
                for _ in range(args.iterations):
                    r = ditd_run(args.dit, args.image_size, args.threads, 1, name.split("_")[1])
                    runs[name]["ms"] += r["ms"]
                    runs[name]["cpu_ms"] += r["cpu_ms"]
            print("round %d %-11s %s ms" % (rnd + 1, name, " ".join(
                "%.0f" % t for t in runs[name]["ms"][-args.iterations:])), flush=True)

    summary = {"cpu": cpu, "image_size": args.image_size, "latent": latent,
               "threads": args.threads, "decodes_each": args.rounds * args.iterations}
    print("\n%-11s %10s %10s %12s" % ("", "median ms", "best ms", "CPU ms/dec"))
    for name, r in runs.items():
        summary[name] = {"median_ms": round(statistics.median(r["ms"]), 1),
                         "best_ms": round(min(r["ms"]), 1),
                         "cpu_ms": round(statistics.median(r["cpu_ms"]), 1)}
        print("%-11s %10.0f %10.0f %12.0f" % (name, summary[name]["median_ms"],
                                             summary[name]["best_ms"], summary[name]["cpu_ms"]))
    for name in [n for n in runs if n.startswith("torch")]:
        t = summary[name]
        key = name.replace("torch_", "")
        d = summary["ditd_" + key]
        summary["ratio_%s_median" % key] = round(t["median_ms"] / d["median_ms"], 2)
        summary["ratio_%s_best" % key] = round(t["best_ms"] / d["best_ms"], 2)
        print("PyTorch %s / ditd %s: %.2fx (medians), %.2fx (best)" % (
            key, key, t["median_ms"] / d["median_ms"], t["best_ms"] / d["best_ms"]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
