#!/usr/bin/python3
"""The precision work's targets (docs/performance.md "Precision") against the newest results.

    /usr/bin/python3 bench/precision/targets.py [--results bench/precision/results]

Reads the last JSON line of the newest speed-*.txt, vae-*.txt and image-*.txt that run.sh wrote,
and the newest fp32 and bf16 rows of quality.jsonl, and prints one line per target: the figure,
the target, and whether it is met. A bf16 speed figure only counts where bf16 ran natively
(dit's precision note says "through oneDNN"); on other CPUs the line says the target was not measured, as
the emulation is no measure of it. Exits 0 whatever the verdicts: it reports, it does not judge a
build.
"""
import argparse
import glob
import json
import os


def last_json(path):
    """The last line of the file that parses as a JSON object, or None."""
    found = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    found = json.loads(line)
                except ValueError:
                    pass
    return found


def newest(results, prefix):
    """(file name, last JSON object) of the newest results/prefix-*.txt with one, or (None, None)."""
    for path in sorted(glob.glob(os.path.join(results, prefix + "-*.txt")), reverse=True):
        obj = last_json(path)
        if obj:
            return os.path.basename(path), obj
    return None, None


def native(note):
    """Whether dit's precision note says bf16 ran natively (isa_choose_precision's wording)."""
    return "through oneDNN" in note


class Report:
    def __init__(self):
        self.lines = []

    def add(self, what, figure, target, met, source):
        verdict = "not measured" if met is None else ("met" if met else "NOT MET")
        self.lines.append((what, figure, target, verdict, source or "-"))

    def show(self):
        widths = [max(len(line[i]) for line in self.lines) for i in range(4)]
        for line in self.lines:
            print("  ".join(line[i].ljust(widths[i]) for i in range(4)) + "  " + line[4])


def speed(report, results):
    name, obj = newest(results, "speed")
    runs = {r["precision"]: r for r in (obj or {}).get("runs", [])}
    for r in runs.get("fp32", {}).get("rows", []):
        report.add("fp32 DiT-XL/2 forward, batch %d, of sgemm" % r["batch"],
                   "%.1f %%" % (100 * r["of_sgemm"]), ">= 75 %", r["of_sgemm"] >= 0.75, name)
    bf16 = runs.get("bf16")
    if not bf16 or not native(bf16.get("note", "")):
        why = "no native bf16 in %s" % name if bf16 else "no bf16 run"
        for what in ("bf16 forward against PyTorch bf16", "bf16 forward of the bf16 matmul rate"):
            report.add(what, why, "", None, name)
        return
    for r in bf16["rows"]:
        report.add("bf16 forward, batch %d, against PyTorch bf16" % r["batch"],
                   "%.2fx" % r["speedup"], ">= 3x", r["speedup"] >= 3, name)
        report.add("bf16 forward, batch %d, of the bf16 matmul rate" % r["batch"],
                   "%.1f %%" % (100 * r["efficiency"]), ">= 50 %", r["efficiency"] >= 0.5, name)


def vae(report, results):
    name, obj = newest(results, "vae")
    obj = obj or {}
    if "ratio_fp32_median" in obj:
        r = obj["ratio_fp32_median"]
        report.add("fp32 VAE decode against PyTorch fp32", "%.2fx" % r, ">= 1.5x", r >= 1.5, name)
    else:
        report.add("fp32 VAE decode against PyTorch fp32", "no result", "", None, name)
    if "ratio_bf16_median" in obj:
        r = obj["ratio_bf16_median"]
        report.add("bf16 VAE decode against PyTorch bf16", "%.2fx" % r, ">= 3x", r >= 3, name)
    else:
        report.add("bf16 VAE decode against PyTorch bf16", "no bf16 run (no native bf16)", "",
                   None, name)


def image(report, results):
    name, obj = newest(results, "image")
    rows = [r for r in (obj or {}).get("rows", []) if r["precision"] == "bf16"]
    if rows and native(rows[0].get("ditd_note", "")):
        s = rows[0]["ditd_s"]
        report.add("one XL/2-256 image in bf16, ddim 50, cfg 4", "%.1f s" % s, "<= 10 s", s <= 10,
                   name)
    else:
        report.add("one XL/2-256 image in bf16, ddim 50, cfg 4", "no native bf16 run", "", None,
                   name)


def quality(report, results):
    path = os.path.join(results, "quality.jsonl")
    latest = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line) if line.strip() else {}
                if "sampler" in r:   # the file also holds a line per run saying what ran
                    latest[(r["sampler"], r["steps"], r["precision"])] = r
    for (sampler, steps, precision), b in sorted(latest.items()):
        f = latest.get((sampler, steps, "fp32"))
        if precision != "bf16" or not f:
            continue
        what = "bf16 images, %s %d" % (sampler, steps)
        acc = 100 * (b["accuracy"] - f["accuracy"])
        report.add(what + ": accuracy against fp32", "%+.1f points" % acc, ">= -2 points",
                   acc >= -2, "quality.jsonl")
        fd = b["fd"] / f["fd"]
        report.add(what + ": FD against fp32", "%.3fx" % fd, "within 10 %", abs(fd - 1) <= 0.1,
                   "quality.jsonl")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(here, "results"))
    a = ap.parse_args()
    report = Report()
    speed(report, a.results)
    vae(report, a.results)
    image(report, a.results)
    quality(report, a.results)
    report.show()


if __name__ == "__main__":
    main()
