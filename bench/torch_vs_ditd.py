#!/usr/bin/python3
"""Side-by-side speed of one DiT forward pass: PyTorch eager (fp32) against ditd, same weights.

    /usr/bin/python3 bench/torch_vs_ditd.py [--config XL/2] [--image-size 256] [--batch 1,4,8]
                                            [--threads 2] [--iterations 3] [--dit build/src/cli/dit]

Writes one random-weight model directory (original DiT layout, float32) with the PyTorch
reference in tools/pyref, then times on the same weights and inputs:
  * PyTorch 1.13 eager, float32, `threads` threads, in a fresh process with OpenBLAS forced to its
    best kernel for this CPU (the kernel ditd picks; PyTorch's default on unknown CPUs is the
    generic one), and once more with the library's default kernel for reference;
  * ditd (`dit bench --model DIR`), which also measures OpenBLAS sgemm alone on the forward's
    matrix shapes in the same run.
Prints a table and a JSON line (for docs/performance.md). Medians over the iterations; the machine
is shared, so read the ratios, not the absolute times.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

PAPER = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}

TORCH_TIMER = r"""
import json, sys, time, torch
sys.path.insert(0, %(tools)r)
from pyref import dit as pdit
torch.set_num_threads(%(threads)d)
cfg = json.load(open(%(cfg)r))
m = pdit.DiT(input_size=cfg["sample_size"], patch_size=cfg["patch_size"], in_channels=4,
             hidden_size=cfg["num_attention_heads"] * cfg["attention_head_dim"],
             depth=cfg["num_layers"], num_heads=cfg["num_attention_heads"], num_classes=1000,
             device="meta")
m = m.to_empty(device="cpu")
from pyref import st
m.load_state_dict(st.load(%(weights)r), strict=True)
m.eval()
out = {}
with torch.no_grad():
    for b in %(batches)r:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(b, 4, cfg["sample_size"], cfg["sample_size"], generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        y = torch.randint(0, 1000, (b,), generator=g)
        m(x, t, y)
        times = []
        for _ in range(%(iterations)d):
            t0 = time.perf_counter()
            m(x, t, y)
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        out[b] = times[len(times) // 2]
print(json.dumps({"ms": out}))
"""


def best_core():
    flags = open("/proc/cpuinfo").read()
    if "avx512_bf16" in flags:
        return "Cooperlake"
    if "avx512f" in flags and "avx512bw" in flags and "avx512vl" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def write_model(path, config, image_size):
    import torch
    from pyref import dit as pdit, export, vae as pvae
    size, patch = config.split("/")
    depth, hidden, heads = PAPER[size.upper()]
    torch.manual_seed(0)
    m = pdit.DiT(input_size=image_size // 8, patch_size=int(patch), hidden_size=hidden,
                 depth=depth, num_heads=heads, num_classes=1000)
    export.reinit_(m, seed=1)
    # A small VAE: the benchmark times the transformer only.
    v = pvae.AutoencoderKL(block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                           norm_num_groups=8)
    export.write_model(path, m, v)
    return path


def torch_times(model_dir, batches, threads, iterations, core):
    script = TORCH_TIMER % {
        "tools": os.path.join(ROOT, "tools"), "threads": threads, "batches": batches,
        "iterations": iterations,
        "cfg": os.path.join(model_dir, "transformer", "config.json"),
        "weights": os.path.join(model_dir, "transformer", "diffusion_pytorch_model.safetensors"),
    }
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if core:
        env["OPENBLAS_CORETYPE"] = core
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                         capture_output=True, text=True)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1])["ms"].items()}


def ditd_times(dit, model_dir, batches, threads, iterations):
    out = subprocess.run([dit, "bench", "--model", model_dir, "--batch",
                          ",".join(map(str, batches)), "--threads", str(threads),
                          "--iterations", str(iterations), "--json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="XL/2")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--batch", default="1,4,8")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--dit", default=os.path.join(ROOT, "build", "src", "cli", "dit"))
    ap.add_argument("--workdir", default=None, help="where to write the model (default: a temp dir)")
    ap.add_argument("--skip-default-kernel", action="store_true",
                    help="do not also time PyTorch with OpenBLAS's default kernel")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model_dir = write_model(os.path.join(tmp, "model"), args.config, args.image_size)
        core = best_core()
        t0 = time.time()
        ours = ditd_times(args.dit, model_dir, batches, args.threads, args.iterations)
        torch_best = torch_times(model_dir, batches, args.threads, args.iterations, core)
        torch_default = None
        if not args.skip_default_kernel:
            torch_default = torch_times(model_dir, batches, args.threads, args.iterations, None)
        elapsed = time.time() - t0

    print("DiT-%s at %d px, %d threads, fp32; OpenBLAS kernel for PyTorch: %s; ditd: %s"
          % (args.config, args.image_size, args.threads, core, ours["blas_core"]))
    print("batch  torch ms/img  ditd ms/img  speed-up  ditd GFLOP/s  sgemm GFLOP/s  efficiency")
    rows = []
    for r in ours["results"]:
        b = r["batch"]
        t = torch_best[b] / b
        d = r["ms_per_forward"] / b
        rows.append({"batch": b, "torch_ms_per_image": round(t, 1),
                     "torch_default_kernel_ms_per_image":
                         round(torch_default[b] / b, 1) if torch_default else None,
                     "ditd_ms_per_image": round(d, 1), "speedup": round(t / d, 2),
                     "ditd_gflops": r["gflops"], "sgemm_gflops": r["sgemm_gflops"],
                     "efficiency": r["efficiency"]})
        print("%5d  %12.1f  %11.1f  %7.2fx  %12.1f  %13.1f  %9.1f%%"
              % (b, t, d, t / d, r["gflops"], r["sgemm_gflops"], 100 * r["efficiency"]))
    print(json.dumps({"config": args.config, "image_size": args.image_size,
                      "threads": args.threads, "torch_core": core, "rows": rows,
                      "seconds": round(elapsed)}))


if __name__ == "__main__":
    main()
