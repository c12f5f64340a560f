"""Markdown tables of the study curves in bench/quality/curves/*.json (for docs/quality.md).

  /usr/bin/python3 tools/train/quality_table.py [NAME ...]
"""
import json
import os
import sys

from common import REPO

CURVES = os.path.join(REPO, "bench", "quality", "curves")


def load(name):
    with open(os.path.join(CURVES, name + ".json")) as f:
        return json.load(f)


def table(names):
    data = {n: load(n) for n in names if os.path.exists(os.path.join(CURVES, n + ".json"))}
    steps = sorted({p["step"] for d in data.values() for p in d["curve"]})
    out = ["| run | params | s/step | " + " | ".join(f"{s}" for s in steps) + " |",
           "|---|---:|---:|" + "---:|" * len(steps)]
    for name, d in data.items():
        pts = {p["step"]: p for p in d["curve"]}
        last = d["curve"][-1]
        sps = last["train_seconds"] / last["step"]
        cells = []
        for s in steps:
            p = pts.get(s)
            if p is None:
                cells.append("")
                continue
            c1, c4 = p.get("cfg1"), p.get("cfg4")
            cells.append(f"{c1['fd']:.1f} / {c1['accuracy'] * 100:.0f}% / "
                         f"{c4['accuracy'] * 100:.0f}%" if c4 else f"{c1['fd']:.1f}")
        out.append(f"| {name} | {d.get('params', '')} | {sps:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    names = sys.argv[1:] or sorted(f[:-5] for f in os.listdir(CURVES) if f.endswith(".json"))
    print(table(names))
