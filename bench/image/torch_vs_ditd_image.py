#!/usr/bin/python3
"""One whole image, side by side: the PyTorch reference pipeline against `dit generate`, on the same
random weights (a DiT of the paper and the full Stable Diffusion VAE decoder), the same noise and
the same parameters, and the two images compared pixel by pixel.

    /usr/bin/python3 bench/image/torch_vs_ditd_image.py [--config XL/2] [--image-size 256]
        [--sampler ddim] [--steps 50] [--cfg 4] [--threads 2] [--precision fp32[,bf16]]
        [--skip-torch] [--dit build/src/cli/dit] [--workdir DIR]

What is timed, from a model directory written once (original DiT layout, float32 safetensors):
  * ditd: the whole `dit generate --class 1 --seed 0 ... -o x.png` process (load, sampling with
    classifier-free guidance, two rows per forward at cfg > 1, VAE decode, PNG), wall time;
  * PyTorch 1.13 eager in a fresh process with OpenBLAS forced to its best kernel for this CPU:
    the reference sampler of tools/pyref (diffusion.sample, the same Philox noise) with the
    tools/pyref DiT, then the tools/pyref VAE decoder and the 8-bit mapping of sample_ddp.py; the
    load is timed apart and left out. bf16: DiT and VAE cast to torch.bfloat16.
The issue's end-to-end target is one DiT-XL/2-256 image, ddim 50 steps, cfg 4, in at most 10 s
on 2 cores in bf16 (docs/performance.md). Prints a table and a JSON line. The machine is shared:
read the ratio.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from torch_vs_ditd import best_core, cpu_name, write_model  # noqa: E402

CLASS, SEED = 1, 0

TORCH_PIPELINE = r"""
import json, sys, time, numpy as np, torch
sys.path.insert(0, %(tools)r)
from pyref import diffusion, dit as pdit, st, vae as pvae
torch.set_num_threads(%(threads)d)
t0 = time.perf_counter()
cfg = json.load(open(%(dir)r + "/transformer/config.json"))
m = pdit.DiT(input_size=cfg["sample_size"], patch_size=cfg["patch_size"], in_channels=4,
             hidden_size=cfg["num_attention_heads"] * cfg["attention_head_dim"],
             depth=cfg["num_layers"], num_heads=cfg["num_attention_heads"], num_classes=1000,
             device="meta").to_empty(device="cpu")
m.load_state_dict(st.load(%(dir)r + "/transformer/diffusion_pytorch_model.safetensors"), strict=True)
v = pvae.from_config(json.load(open(%(dir)r + "/vae/config.json")))
v.load_state_dict(st.load(%(dir)r + "/vae/diffusion_pytorch_model.safetensors"), strict=True)
m.eval(); v.eval()
dtype = torch.bfloat16 if %(bf16)r else torch.float32
if %(bf16)r:
    m = m.to(dtype); v = v.to(dtype)
    m.t_embedder.mlp.register_forward_pre_hook(lambda mod, inp: tuple(i.to(dtype) for i in inp))
load = time.perf_counter() - t0

@torch.no_grad()
def model_fn(x, t, y):
    out = m(torch.from_numpy(np.ascontiguousarray(x)).to(dtype), torch.as_tensor(np.asarray(t)),
            torch.as_tensor(np.asarray(y)))
    return out.float().numpy()

t0 = time.perf_counter()
L = cfg["sample_size"]
lat = diffusion.sample(model_fn, diffusion.Schedule(%(steps)d), %(sampler)r, [%(cls)d], %(cfg)r,
                       %(seed)d, (4, L, L), 1000, 3)
t1 = time.perf_counter()
with torch.no_grad():
    x = v.decode((torch.from_numpy(lat) / v.scaling_factor).to(dtype)).float()
u8 = torch.clamp(127.5 * x + 128.0, 0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()[0]
t2 = time.perf_counter()
np.save(%(out)r, u8)
print(json.dumps({"load_s": load, "sample_s": t1 - t0, "decode_s": t2 - t1, "image_s": t2 - t0}))
"""


def ditd_image(dit, model_dir, a, precision, png):
    argv = [dit, "generate", "--model", model_dir, "--class", str(CLASS), "--seed", str(SEED),
            "--cfg", str(a.cfg), "--sampler", a.sampler, "--steps", str(a.steps),
            "--threads", str(a.threads), "--precision", precision, "--quiet", "-o", png]
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("dit generate failed: %s" % p.stderr)
    return seconds, p.stderr


def torch_image(model_dir, a, bf16, out):
    script = TORCH_PIPELINE % {
        "tools": os.path.join(ROOT, "tools"), "threads": a.threads, "dir": model_dir,
        "bf16": bf16, "steps": a.steps, "sampler": a.sampler, "cls": CLASS, "cfg": a.cfg,
        "seed": SEED, "out": out}
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    env.pop("OPENBLAS_CORETYPE", None)
    if best_core():
        env["OPENBLAS_CORETYPE"] = best_core()
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("the PyTorch pipeline failed: %s" % p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def pixels(png):
    from PIL import Image
    return np.asarray(Image.open(png).convert("RGB"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="XL/2")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32", help="fp32, bf16 or fp32,bf16")
    ap.add_argument("--skip-torch", action="store_true", help="time ditd only")
    ap.add_argument("--dit", default=os.path.join(ROOT, "build", "src", "cli", "dit"))
    ap.add_argument("--workdir", default=None, help="where to write the model (default: a temp dir)")
    a = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        model_dir = write_model(os.path.join(tmp, "model"), a.config, a.image_size, full_vae=True)
        for p in a.precision.split(","):
            png = os.path.join(tmp, "ditd-%s.png" % p)
            ours, note = ditd_image(a.dit, model_dir, a, p, png)
            row = {"precision": p, "ditd_s": round(ours, 2), "ditd_note": note.strip()}
            if not a.skip_torch:
                ref = os.path.join(tmp, "torch-%s.npy" % p)
                t = torch_image(model_dir, a, p == "bf16", ref)
                diff = np.abs(pixels(png).astype(int) - np.load(ref).astype(int))
                row.update({"torch_s": round(t["image_s"], 2),
                            "torch_sample_s": round(t["sample_s"], 2),
                            "torch_decode_s": round(t["decode_s"], 2),
                            "torch_load_s": round(t["load_s"], 2),
                            "speedup": round(t["image_s"] / ours, 2),
                            "max_pixel_diff": int(diff.max()),
                            "pixels_within_1": round(float((diff <= 1).mean()), 4)})
            rows.append(row)

    cpu = cpu_name()
    print("DiT-%s at %d px, one image: %s %d steps, cfg %g, %d threads; CPU %s"
          % (a.config, a.image_size, a.sampler, a.steps, a.cfg, a.threads, cpu))
    print("precision  ditd s  torch s (sampling + decode)  speed-up  max |pixel diff|  within 1")
    for r in rows:
        if "torch_s" in r:
            print("%-9s  %6.1f  %7.1f (%.1f + %.1f)  %18.2fx  %16d  %7.1f%%"
                  % (r["precision"], r["ditd_s"], r["torch_s"], r["torch_sample_s"],
                     r["torch_decode_s"], r["speedup"], r["max_pixel_diff"],
                     100 * r["pixels_within_1"]))
        else:
            print("%-9s  %6.1f" % (r["precision"], r["ditd_s"]))
    print(json.dumps({"config": a.config, "image_size": a.image_size, "sampler": a.sampler,
                      "steps": a.steps, "cfg": a.cfg, "threads": a.threads, "cpu": cpu,
                      "torch_core": best_core(), "rows": rows}))


if __name__ == "__main__":
    main()
