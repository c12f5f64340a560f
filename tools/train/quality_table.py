"""Markdown tables of the study curves in bench/quality/curves/*.json (for docs/quality.md), and
optionally a plot of FD (no guidance) against training steps, one line per run, like the
paper's Figure 5 (drawn with PIL: matplotlib is not among Debian's packages we use).

  /usr/bin/python3 tools/train/quality_table.py [--plot OUT.png] [NAME ...]
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


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194)]


def plot(names, path, w=640, h=400, margin=60):
    from PIL import Image, ImageDraw
    data = {n: load(n)["curve"] for n in names if os.path.exists(os.path.join(CURVES, n + ".json"))}
    pts = [(p["step"], p["cfg1"]["fd"]) for c in data.values() for p in c]
    smax, fmax = max(s for s, _ in pts), max(f for _, f in pts)
    fmin = min(f for _, f in pts)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)

    def xy(step, fd):
        x = margin + (w - 2 * margin) * step / smax
        y = h - margin - (h - 2 * margin) * (fd - fmin) / max(fmax - fmin, 1e-9)
        return x, y

    d.rectangle([margin, margin, w - margin, h - margin], outline="black")
    for step in sorted({s for s, _ in pts}):
        x, _ = xy(step, fmin)
        d.text((x - 10, h - margin + 5), str(step), fill="black")
    for fd in (fmin, (fmin + fmax) / 2, fmax):
        _, y = xy(0, fd)
        d.text((5, y - 5), f"{fd:.0f}", fill="black")
    d.text((w // 2 - 60, h - 25), "training steps", fill="black")
    d.text((5, 10), "FD (no guidance), lower is better", fill="black")
    for i, (name, curve) in enumerate(data.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(p["step"], p["cfg1"]["fd"]) for p in curve]
        d.line(line, fill=colour, width=3)
        for x, y in line:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        d.text((w - margin - 150, margin + 8 + 14 * i), name, fill=colour)
    img.save(path)


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if args[:1] == ["--plot"]:
        out, args = args[1], args[2:]
    names = args or sorted(f[:-5] for f in os.listdir(CURVES) if f.endswith(".json"))
    print(table(names))
    if out:
        plot(names, out)
