"""The bundled model in bf16 against fp32, judged by the project's classifier: a small version of
bench/precision/quality.py (the full run is 100 images per class and three samplers, an hour;
docs/performance.md, "Precision"). 10 images per class, dpm++2m 20 steps, cfg 4, the same seeds in
both precisions; bf16 must keep fp32's accuracy within 2 points and its Frechet distance within
10 %. On CPUs without bf16 instructions this is the emulation, whose numerics are the native
path's up to the order of float32 additions. Skipped (77) without the model or in a sanitizer
build (minutes per precision there)."""
import argparse
import os
import subprocess
import sys

import common

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dit", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    if not os.path.isdir(common.BUNDLED_MODEL):
        print("SKIP: no bundled model at %s" % common.BUNDLED_MODEL)
        return 77
    if common.sanitized(a.dit):
        print("SKIP: sanitizer build")
        return 77
    work = os.path.join(os.path.abspath(a.workdir), "bf16_quality")
    script = os.path.join(common.SRC_ROOT, "bench", "precision", "quality.py")
    r = subprocess.run([sys.executable, script, "--dit", a.dit, "--model", common.BUNDLED_MODEL,
                        "--samplers", "dpm++2m", "--per-class", "10", "--batch", "10",
                        "--work", os.path.join(work, "images"),
                        "--cache", os.path.join(work, "cache"),
                        "--results", os.path.join(work, "quality.jsonl"), "--check"],
                       timeout=540)   # within meson's 600 s
    print("bf16 quality %s" % ("met" if r.returncode == 0 else "NOT met"))
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
