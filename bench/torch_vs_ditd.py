#!/usr/bin/python3
"""Side-by-side speed of one DiT forward pass: PyTorch eager against ditd, same weights, in fp32
and (with --precision fp32,bf16) in bf16.

    /usr/bin/python3 bench/torch_vs_ditd.py [--config XL/2] [--image-size 256] [--batch 1,4,8]
                                            [--threads 2] [--iterations 3] [--dit build/src/cli/dit]
                                            [--precision fp32[,bf16]]

Writes one random-weight model directory (original DiT layout, float32) with the PyTorch
reference in tools/pyref, then times on the same weights and inputs, for each precision:
  * PyTorch 1.13 eager, `threads` threads, in a fresh process with OpenBLAS forced to its best
    kernel for this CPU (the kernel ditd picks; PyTorch's default on unknown CPUs is the generic
    one), and in fp32 once more with the library's default kernel for reference. bf16: the
    model and input cast to torch.bfloat16 (its products go to oneDNN, as PyTorch does on
    AVX512-BF16/AMX CPUs; elsewhere PyTorch has only slow bf16 code: --torch-bf16-iterations);
  * ditd (`dit bench --model DIR --precision P`), which also measures the matrix product of the
    precision alone on the forward's shapes in the same run (sgemm; in bf16 oneDNN's bf16 matmul,
    or ditd's emulated bf16 product on CPUs without bf16) and sgemm in every case.
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
dtype = torch.bfloat16 if %(bf16)r else torch.float32
if %(bf16)r:
    m = m.to(dtype)
    # the sinusoidal timestep features are made in float32
    m.t_embedder.mlp.register_forward_pre_hook(lambda mod, inp: tuple(i.to(dtype) for i in inp))
out = {}
with torch.no_grad():
    for b in %(batches)r:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(b, 4, cfg["sample_size"], cfg["sample_size"], generator=g).to(dtype)
        t = torch.randint(0, 1000, (b,), generator=g)
        y = torch.randint(0, 1000, (b,), generator=g)
        if %(warmup)r:
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


def cpu_name():
    """The CPU's model name as /proc/cpuinfo gives it, for the benchmarks' reports."""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def best_core():
    flags = open("/proc/cpuinfo").read()
    if "avx512_bf16" in flags:
        return "Cooperlake"
    if "avx512f" in flags and "avx512bw" in flags and "avx512vl" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def write_model(path, config, image_size, full_vae=False):
    """A random-weight model directory: the DiT of `config`, and a small VAE (the forward
    benchmark times the transformer only) or with full_vae the SD-VAE's own shape."""
    import torch
    from pyref import dit as pdit, export, vae as pvae
    size, patch = config.split("/")
    depth, hidden, heads = PAPER[size.upper()]
    torch.manual_seed(0)
    m = pdit.DiT(input_size=image_size // 8, patch_size=int(patch), hidden_size=hidden,
                 depth=depth, num_heads=heads, num_classes=1000)
    export.reinit_(m, seed=1)
    v = pvae.AutoencoderKL() if full_vae else \
        pvae.AutoencoderKL(block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                           norm_num_groups=8)
    export.write_model(path, m, v)
    return path


def torch_times(model_dir, batches, threads, iterations, core, bf16=False, warmup=True):
    script = TORCH_TIMER % {
        "tools": os.path.join(ROOT, "tools"), "threads": threads, "batches": batches,
        "iterations": iterations, "bf16": bf16, "warmup": warmup,
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


def ditd_times(dit, model_dir, batches, threads, iterations, precision):
    out = subprocess.run([dit, "bench", "--model", model_dir, "--batch",
                          ",".join(map(str, batches)), "--threads", str(threads),
                          "--iterations", str(iterations), "--json", "--precision", precision],
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
    ap.add_argument("--precision", default="fp32", help="fp32, bf16 or fp32,bf16")
    ap.add_argument("--torch-bf16-iterations", type=int, default=None,
                    help="timed PyTorch bf16 forwards per batch, without a warm-up forward when "
                         "given (PyTorch's bf16 takes minutes per DiT-XL forward on CPUs "
                         "without AVX512-BF16/AMX)")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    precisions = args.precision.split(",")

    runs = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model_dir = write_model(os.path.join(tmp, "model"), args.config, args.image_size)
        core = best_core()
        t0 = time.time()
        for p in precisions:
            ours = ditd_times(args.dit, model_dir, batches, args.threads, args.iterations, p)
            bf16 = p == "bf16"
            its = args.torch_bf16_iterations if bf16 and args.torch_bf16_iterations else None
            torch_best = torch_times(model_dir, batches, args.threads, its or args.iterations,
                                     core, bf16=bf16, warmup=its is None)
            torch_default = None
            if not args.skip_default_kernel and not bf16:
                torch_default = torch_times(model_dir, batches, args.threads, args.iterations,
                                            None)
            runs.append((p, ours, torch_best, torch_default, its))
        elapsed = time.time() - t0

    out = {"config": args.config, "image_size": args.image_size, "threads": args.threads,
           "torch_core": core, "runs": [], "seconds": round(elapsed)}
    for p, ours, torch_best, torch_default, its in runs:
        print("DiT-%s at %d px, %d threads, %s; OpenBLAS kernel for PyTorch: %s; ditd: %s\n%s"
              % (args.config, args.image_size, args.threads, p, core, ours["blas_core"],
                 ours["precision_note"]))
        print("batch  torch ms/img  ditd ms/img  speed-up  ditd GFLOP/s  %s GFLOP/s  efficiency"
              "  sgemm GFLOP/s  of sgemm" % ("bf16 gemm" if ours["precision"] == "bf16" else "    sgemm"))
        rows = []
        for r in ours["results"]:
            b = r["batch"]
            t = torch_best[b] / b
            d = r["ms_per_forward"] / b
            rows.append({"batch": b, "torch_ms_per_image": round(t, 1),
                         "torch_default_kernel_ms_per_image":
                             round(torch_default[b] / b, 1) if torch_default else None,
                         "ditd_ms_per_image": round(d, 1), "speedup": round(t / d, 2),
                         "ditd_gflops": r["gflops"], "gemm_gflops": r["gemm_gflops"],
                         "sgemm_gflops": r["sgemm_gflops"], "efficiency": r["efficiency"],
                         "of_sgemm": round(r["gflops"] / r["sgemm_gflops"], 3)})
            print("%5d  %12.1f  %11.1f  %7.2fx  %12.1f  %14.1f  %9.1f%%  %13.1f  %7.1f%%"
                  % (b, t, d, t / d, r["gflops"], r["gemm_gflops"], 100 * r["efficiency"],
                     r["sgemm_gflops"], 100 * r["gflops"] / r["sgemm_gflops"]))
        out["runs"].append({"precision": ours["precision"], "asked": p,
                            "note": ours["precision_note"],
                            "torch_iterations": its or args.iterations,
                            "torch_warmup": its is None, "rows": rows})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
