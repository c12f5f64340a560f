#!/usr/bin/python3
"""Reproducibility, byte for byte, with the bundled model: the dit tool and the daemon write the
same PNG (metadata included) for the same parameters, the daemon's defaults are the tool's, image
k of a request can be made alone (`index`, `--index`), `dit generate --from` makes a PNG again from
its own metadata, the tool's output rules (--outdir --force, the BLAS line only with
--verbose), runs over many classes into --outdir and one --npz, and --resume after a kill. One
test per run:

    test_repro.py --dit build/src/cli/dit --ditd build/src/daemon/ditd --model models/fashion-dit NAME
"""
import argparse
import base64
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import Daemon, check, registry

TESTS, test = registry()
# Under AddressSanitizer (a debug build: about 1 s per denoising step of the bundled model) the
# same checks run on 1-3 steps; only the comparison of the defaults (50 steps) is left to the
# release build.
FAST = False


def st(k):
    """k steps, or a small stand-in (distinct for distinct k) in a sanitizer build."""
    return {9: 2, 10: 3, 12: 2, 6: 2, 3: 1, 4: 2, 2: 1}[k] if FAST else k


def nn(k):
    """k images, or one fewer (still more than the index checked) in a sanitizer build."""
    return k - 1 if FAST else k


def dit(a, *args, ok=True):
    p = subprocess.run([a.dit] + [str(x) for x in args], capture_output=True, text=True,
                       timeout=120)
    if ok:
        check(p.returncode == 0, "dit %s failed (%d): %s" % (" ".join(map(str, args)),
                                                              p.returncode, p.stderr))
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def png_text(png):
    """The tEXt chunks of a PNG, as a dict (stdlib only)."""
    out, pos = {}, 8
    while pos + 12 <= len(png):
        n = int.from_bytes(png[pos:pos + 4], "big")
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
        if kind == b"tEXt":
            k, _, v = data.partition(b"\0")
            out[k.decode("latin-1")] = v.decode("latin-1")
        pos += 12 + n
    return out


def daemon_images(d, body):
    """The PNGs of a request, through the JSON answer."""
    s, _, b = d.json("POST", "/generate", body, {"Accept": "application/json"}, timeout=120)
    check(s == 200, "POST /generate %s -> %d %s" % (body, s, b))
    return [(img["index"], base64.b64decode(img["b64"])) for img in b["images"]]


@test
def cli_vs_daemon(a):
    """Same parameters, same bytes: defaults only (so the defaults are shared), then every
    parameter set to a non-default value, n images against two --outdir runs of dit with other
    batch sizes and thread counts."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        # The defaults, or in a sanitizer build the same with 2 steps given to both.
        body, flags = ({"class": 7, "seed": 5, "steps": 2}, ["--steps", 2]) if FAST else \
            ({"class": 7, "seed": 5}, [])
        s, h, plain = d.request("POST", "/generate", body)
        check(s == 200 and h["content-type"] == "image/png", "plain answer %d" % s)
        dit(a, "generate", "--model", a.model, "--class", 7, "--seed", 5, "--quiet",
            "-o", a.path("defaults.png"), *flags)
        check(read(a.path("defaults.png")) == plain,
              "dit and ditd defaults give different PNGs: %s vs %s"
              % (png_text(read(a.path("defaults.png"))), png_text(plain)))
        meta = png_text(plain)
        want = {"class": "7", "class_name": "sneaker", "cfg": "4", "steps": "2" if FAST else "50",
                "sampler": "ddpm", "spacing": "uniform", "eta": "0", "seed": "5", "index": "0",
                "precision": "fp32", "model": os.path.basename(a.model)}
        for k, v in want.items():
            check(meta.get(k) == v, "metadata %s = %r, expected %r" % (k, meta.get(k), v))
        check(meta["Software"].startswith("ditd ") and len(meta["model_id"]) == 16,
              "software / model id: %s" % meta)
        s, _, info = d.json("GET", "/info")
        check(s == 200 and info["model"]["id"] == meta["model_id"],
              "/info model.id %s, PNG model_id %s" % (info["model"].get("id"), meta["model_id"]))
        xxhsum = shutil.which("xxhsum")
        if xxhsum:   # the id is what docs/models.md says it is
            files = ["transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
                     "vae/config.json", "vae/diffusion_pytorch_model.safetensors"]
            blob = b"".join(read(os.path.join(a.model, f)) for f in files)
            out = subprocess.run([xxhsum, "-H1"], input=blob, capture_output=True, timeout=60)
            check(out.stdout.split()[0].decode() == meta["model_id"],
                  "model_id %s, xxhsum says %s" % (meta["model_id"], out.stdout))

        body = {"class": "bag", "cfg": 2.5, "steps": st(12), "sampler": "ddim", "spacing": "ddim",
                "eta": 0.5, "seed": 9, "n": nn(3)}
        images = daemon_images(d, body)
        same = ["generate", "--model", a.model, "--class", "bag", "--cfg", 2.5, "--steps", st(12),
                "--sampler", "ddim", "--spacing", "ddim", "--eta", 0.5, "--seed", 9, "--n", nn(3),
                "--quiet"]
        dit(a, *same, "--batch", 3, "--threads", 2, "--outdir", a.path("set"))
        dit(a, *same, "--batch", 1, "--threads", 1, "--outdir", a.path("set1"))
        for k, png in images:
            check(read(a.path("set", "%06d.png" % k)) == png, "image %d differs" % k)
            check(read(a.path("set1", "%06d.png" % k)) == png,
                  "image %d differs between dit runs with other --batch/--threads" % k)
    return "defaults and a full parameter set: byte-identical (dit twice, ditd)"


@test
def index_alone(a):
    """Image k of an n-image request, made alone, is the k-th image: daemon index vs daemon
    n, the tool's --index vs the daemon, and --index with --n in the tool."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        full = dict(daemon_images(d, {"class": 3, "seed": 21, "steps": st(9), "n": nn(4)}))
        check(sorted(full) == list(range(nn(4))), "indices %s" % sorted(full))
        alone = daemon_images(d, {"class": 3, "seed": 21, "steps": st(9), "index": 2})
        check(alone[0][0] == 2 and alone[0][1] == full[2], "daemon index 2 differs from image 2")
        s, _, job = d.json("POST", "/jobs", {"class": 3, "seed": 21, "steps": st(9), "index": 3})
        check(s == 202 and job["request"]["index"] == 3, "POST /jobs index: %d %s" % (s, job))
        d.request("DELETE", "/jobs/" + job["id"])     # its images are not needed
        s, _, bad = d.json("POST", "/generate", {"class": 3, "index": -1})
        check(s == 400 and bad["error"]["param"] == "index", "index -1 -> %d %s" % (s, bad))
        dit(a, "generate", "--model", a.model, "--class", 3, "--seed", 21, "--steps", st(9),
            "--index", 2, "--quiet", "-o", a.path("two.png"))
        check(read(a.path("two.png")) == full[2], "dit --index 2 differs from image 2")
        dit(a, "generate", "--model", a.model, "--class", 3, "--seed", 21, "--steps", st(9),
            "--index", 1, "--n", 2, "--quiet", "--outdir", a.path("pair"))
        check(sorted(os.listdir(a.path("pair"))) == ["000001.png", "000002.png"],
              "--index 1 --n 2 wrote %s" % os.listdir(a.path("pair")))
        for k in (1, 2):
            check(read(a.path("pair", "%06d.png" % k)) == full[k], "--outdir image %d" % k)
    return "image 2 of 4 alone: identical from ditd and dit; --index 1 --n 2 gives images 1, 2"


@test
def from_png(a):
    """dit generate --from remakes a PNG from its own metadata (a daemon image, a grid), flags
    override it, and a PNG of other weights or another precision is refused unless --any-model."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        s, _, png = d.request("POST", "/generate", {"class": "dress", "cfg": 3, "steps": st(9),
                                                    "sampler": "dpm++2m", "seed": 4, "index": 6})
        check(s == 200, "generate %d" % s)
    with open(a.path("made.png"), "wb") as f:
        f.write(png)
    dit(a, "generate", "--model", a.model, "--from", a.path("made.png"), "-o", a.path("again.png"))
    check(read(a.path("again.png")) == png, "--from gave other bytes")

    dit(a, "generate", "--model", a.model, "--class", 1, "--steps", st(6), "--seed", 2, "--n", nn(3),
        "--quiet", "-o", a.path("grid.png"))
    dit(a, "generate", "--model", a.model, "--from", a.path("grid.png"), "-o", a.path("grid2.png"))
    check(read(a.path("grid2.png")) == read(a.path("grid.png")), "--from a grid gave other bytes")

    dit(a, "generate", "--model", a.model, "--from", a.path("made.png"), "--steps", st(10),
        "-o", a.path("more.png"))
    check(png_text(read(a.path("more.png")))["steps"] == str(st(10)),
          "a flag did not override --from")

    # The same weights under another config file: another model id.
    other = a.path("other-model")
    shutil.copytree(a.model, other)
    with open(os.path.join(other, "vae", "config.json"), "a") as f:
        f.write("\n")
    p = dit(a, "generate", "--model", other, "--from", a.path("made.png"), "-o", a.path("x.png"),
            ok=False)
    check(p.returncode == 1 and "--any-model" in p.stderr and "model_id" in p.stderr,
          "other model not refused: %d %s" % (p.returncode, p.stderr))
    check(not os.path.exists(a.path("x.png")), "refused but wrote a file")
    p = dit(a, "generate", "--model", other, "--from", a.path("made.png"), "--any-model",
            "-o", a.path("x.png"))
    check("warning" in p.stderr, "no warning with --any-model: %s" % p.stderr)
    check(read(a.path("x.png")) != png and png_text(read(a.path("x.png")))["seed"] == "4",
          "--any-model image")

    # The same weights at another precision: also other pixels.
    p = dit(a, "generate", "--model", a.model, "--from", a.path("made.png"), "--precision", "bf16",
            "-o", a.path("z.png"), ok=False)
    check(p.returncode == 1 and "--precision fp32" in p.stderr,
          "other precision not refused: %d %s" % (p.returncode, p.stderr))

    with open(a.path("plain.png"), "wb") as f:
        f.write(png[:33] + png[-12:])    # signature, IHDR, IEND: no text at all
    p = dit(a, "generate", "--model", a.model, "--from", a.path("plain.png"), "-o", a.path("y.png"),
            ok=False)
    check(p.returncode == 2 and "text chunk" in p.stderr, "PNG without metadata: %s" % p.stderr)
    return "daemon PNG and grid remade byte for byte; other weights refused"


@test
def cli_output_rules(a):
    """--outdir keeps existing files unless --force; it and --npz make missing folders; the
    OpenBLAS line only with --verbose; a random seed is reported; --help and --quiet print
    nothing else."""
    args = ["generate", "--model", a.model, "--class", 0, "--steps", st(3), "--seed", 1, "--n", 2]
    dit(a, *args, "--quiet", "--outdir", a.path("out"))
    first = read(a.path("out", "000001.png"))
    os.utime(a.path("out", "000001.png"), (1, 1))
    p = dit(a, *args, "--quiet", "--steps", st(4), "--outdir", a.path("out"), ok=False)
    check(p.returncode == 1 and "000000.png already exists" in p.stderr and "--force" in p.stderr,
          "overwrite not refused: %d %s" % (p.returncode, p.stderr))
    check(os.stat(a.path("out", "000001.png")).st_mtime == 1, "a refused run touched a file")
    dit(a, *args, "--quiet", "--steps", st(4), "--outdir", a.path("out"), "--force")
    check(read(a.path("out", "000001.png")) != first, "--force did not overwrite")
    deep = os.path.join(os.path.dirname(a.path("x")), "new", "er", "dir")
    dit(a, *args, "--quiet", "--outdir", deep)
    check(read(os.path.join(deep, "000001.png")) == first, "--outdir with new parents")
    npz = os.path.join(os.path.dirname(a.path("x")), "new2", "er", "s.npz")
    dit(a, *args, "--quiet", "--npz", npz)
    check(read(npz)[:4] == b"PK\x03\x04", "--npz with new parent folders")
    with open(a.path("plain"), "w") as f:
        f.write("a file")
    p = dit(a, *args, "--quiet", "--outdir", os.path.join(a.path("plain"), "sub"), ok=False)
    check(p.returncode == 1 and "cannot create" in p.stderr and "Not a directory" in p.stderr,
          "--outdir under a file: %d %s" % (p.returncode, p.stderr))

    p = dit(a, *args, "--quiet", "-o", a.path("q.png"))
    check(p.stderr == "", "--quiet printed: %r" % p.stderr)
    p = dit(a, *args, "--quiet", "--verbose", "-o", a.path("q.png"))
    check("OpenBLAS kernel" in p.stderr and "(id " in p.stderr,
          "--verbose: %r" % p.stderr)
    p = dit(a, "--verbose", "info", "--model", a.model)
    check("OpenBLAS kernel" in p.stderr, "dit --verbose info: %r" % p.stderr)
    p = dit(a, "generate", "--help")
    check(p.stderr == "" and "--force" in p.stdout, "generate --help stderr %r" % p.stderr)
    p = dit(a, "generate", "--model", a.model, "--class", 0, "--steps", st(2), "-o", a.path("r.png"))
    seed = png_text(read(a.path("r.png")))["seed"]
    check(p.stderr.startswith("dit: seed %s " % seed) and "OpenBLAS" not in p.stderr,
          "random seed line: %r (PNG seed %s)" % (p.stderr, seed))
    check(int(seed) < 2 ** 53, "random seed %s" % seed)
    return "refused, forced, quiet"


@test
def many_classes(a):
    """--class with a list, a name and a range makes --n images of each in that order, written
    batch by batch to --outdir and to one --npz (arr_0 the PNGs' pixels, arr_1 the labels); any of
    them is made again alone from its index or its PNG; `all` covers every class; an existing
    archive is kept without --force; bad lists and -o with several classes are refused."""
    import numpy as np          # Debian's python3-numpy and python3-pil, as the parity suite
    from PIL import Image
    out = os.path.dirname(a.path("many", "x"))    # the directory, made
    flags = ["--model", a.model, "--steps", st(4), "--seed", 11, "--sampler", "ddim", "--quiet"]
    dit(a, "generate", *flags, "--class", "1,sneaker,3-4", "--n", 2, "--batch", 3,
        "--outdir", out, "--npz", a.path("many.npz"))
    labels = [1, 1, 7, 7, 3, 3, 4, 4]
    z = np.load(a.path("many.npz"))
    check(sorted(z.files) == ["arr_0", "arr_1"], "archive members %s" % z.files)
    x, y = z["arr_0"], z["arr_1"]
    check(x.dtype == np.uint8 and x.ndim == 4 and x.shape[0] == 8 and x.shape[3] == 3,
          "arr_0 %s %s" % (x.dtype, x.shape))
    check(y.dtype == np.int64 and y.tolist() == labels, "arr_1 %s %s" % (y.dtype, y.tolist()))
    for g in range(8):
        png = read(os.path.join(out, "%06d.png" % g))
        t = png_text(png)
        check(t["class"] == str(labels[g]) and t["index"] == str(g),
              "image %d: class %s index %s" % (g, t["class"], t["index"]))
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        check(np.array_equal(pixels, x[g]), "arr_0[%d] is not the pixels of its PNG" % g)
    check(len(set(x[g].tobytes() for g in range(8))) == 8, "two images are the same")

    # Image 5 is class 3's second: alone by its index, and from its PNG.
    alone = os.path.dirname(a.path("alone", "x"))
    dit(a, "generate", *flags, "--class", 3, "--index", 5, "--outdir", alone)
    check(read(os.path.join(alone, "000005.png")) == read(os.path.join(out, "000005.png")),
          "image 5 alone differs")
    dit(a, "generate", "--model", a.model, "--from", os.path.join(out, "000006.png"),
        "-o", a.path("again6.png"))
    check(read(a.path("again6.png")) == read(os.path.join(out, "000006.png")),
          "--from image 6 differs")

    dit(a, "generate", *flags, "--class", "all", "--npz", a.path("all.npz"))
    y = np.load(a.path("all.npz"))["arr_1"].tolist()
    check(y == list(range(len(y))) and len(y) >= 2, "--class all labels %s" % y)
    before = read(a.path("all.npz"))
    p = dit(a, "generate", *flags, "--class", 0, "--npz", a.path("all.npz"), ok=False)
    check(p.returncode == 1 and "--force" in p.stderr and read(a.path("all.npz")) == before,
          "existing --npz not kept: %d %s" % (p.returncode, p.stderr))

    for cls, where, says in (("3,99", ["--npz", a.path("b.npz")], 'unknown class "99"'),
                             ("5-2", ["--npz", a.path("b.npz")], "low to high"),
                             ("1,,2", ["--npz", a.path("b.npz")], "empty"),
                             ("1,3", ["-o", a.path("b.png")], "--outdir")):
        p = dit(a, "generate", *flags, "--class", cls, *where, ok=False)
        check(p.returncode == 1 and says in p.stderr,
              "--class %s: %d %s" % (cls, p.returncode, p.stderr))
        check(not os.path.exists(where[1]), "--class %s refused but wrote %s" % (cls, where[1]))
    return "4 classes x 2 images in batches of 3: PNGs and npz agree, image 5 and 6 remade alone"


@test
def resume(a):
    """Ctrl-C stops an --outdir --npz run cleanly (whole PNGs, no archive, status 130). A run
    killed part way and run again with --resume makes only what is
    missing (files there are not rewritten, a PNG cut short is made again): the directory then
    holds exactly the images of an uninterrupted run, and the archive, written afresh from the
    PNGs, is byte for byte that run's. A resume with other parameters is refused and changes
    nothing; without --resume the files are kept; --resume with -o is refused."""
    n = 3 if FAST else 10

    def run_flags(seed=21):
        return ["--model", a.model, "--steps", st(3) if FAST else 50, "--seed", seed,
                "--class", "all", "--n", n, "--batch", 4]
    flags = run_flags() + ["--quiet"]
    ref = os.path.dirname(a.path("ref", "x"))
    dit(a, "generate", *flags, "--outdir", ref, "--npz", a.path("ref.npz"))
    names = sorted(os.listdir(ref))
    check(len(names) >= 2 * n and names[0] == "000000.png", "reference run: %s" % names[:3])

    def interrupted(name, files, sig):
        """(exit status, stderr) of the run into outdir `name` and name.npz, sent `sig` once
        `files` PNGs are there."""
        outdir = os.path.dirname(a.path(name, "x"))
        proc = subprocess.Popen([a.dit, "generate"] + [str(x) for x in flags] +
                                ["--outdir", outdir, "--npz", a.path(name + ".npz")],
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 100
            while len(os.listdir(outdir)) < files and proc.poll() is None and \
                    time.time() < deadline:
                time.sleep(0.01)
            proc.send_signal(sig)
            err = proc.communicate(timeout=60)[1]
        finally:
            proc.kill()
            proc.wait(30)
        return proc.returncode, err

    # Ctrl-C stops the run after the step under way: whole PNGs only, no archive left, 130.
    rc, err = interrupted("stop", 4, signal.SIGINT)
    stop = os.path.dirname(a.path("stop", "x"))
    got = sorted(os.listdir(stop))
    check(rc == 130 and "with --resume makes the rest" in err and
          "%d of %d images are in" % (len(got), len(names)) in err, "SIGINT: %s %r" % (rc, err))
    check(not os.path.exists(a.path("stop.npz")), "SIGINT left the archive")
    check(len(got) < len(names) and all(read(os.path.join(stop, f)) == read(os.path.join(ref, f))
                                        for f in got), "SIGINT left %s" % got)

    rc, _ = interrupted("run", 8, signal.SIGKILL)
    run = os.path.dirname(a.path("run", "x"))
    check(rc == -signal.SIGKILL, "the run ended (%s) before it could be killed" % rc)

    def complete(path):
        data = read(path)
        return data.endswith(b"\0\0\0\0IEND\xaeB`\x82")
    # A kill between two writes leaves whole files: cut one short, and drop one, as a kill
    # in the middle of a write would.
    have = sorted(os.listdir(run))
    check(len(have) >= 8, "only %d files before the kill" % len(have))
    os.remove(os.path.join(run, have[1]))
    whole = os.path.join(run, have[2])
    with open(whole, "r+b") as f:
        f.truncate(len(read(whole)) // 2)
    kept = {f: os.stat(os.path.join(run, f)).st_mtime_ns for f in os.listdir(run)
            if complete(os.path.join(run, f))}
    cut = len(os.listdir(run)) - len(kept)
    time.sleep(0.02)            # a rewrite would show in the modification times

    before = {f: read(os.path.join(run, f)) for f in os.listdir(run)}
    p = dit(a, "generate", *run_flags(22), "--outdir", run, "--resume", ok=False)
    check(p.returncode == 1 and "seed 21, this run 22" in p.stderr, "other seed: %d %s"
          % (p.returncode, p.stderr))
    p = dit(a, "generate", *flags, "--outdir", run, ok=False)
    check(p.returncode == 1 and "--resume" in p.stderr, "without --resume: %s" % p.stderr)
    p = dit(a, "generate", *flags, "--outdir", run, "--resume", "-o", a.path("r.png"), ok=False)
    check(p.returncode == 2 and "(-o)" in p.stderr, "--resume -o: %s" % p.stderr)
    check({f: read(os.path.join(run, f)) for f in os.listdir(run)} == before,
          "a refused run changed the directory")
    # A whole PNG that dit did not write is not taken for a cut one and overwritten.
    from PIL import Image
    alien = os.path.dirname(a.path("alien", "x"))
    Image.new("RGB", (8, 8)).save(os.path.join(alien, "000001.png"))
    p = dit(a, "generate", *flags, "--outdir", alien, "--resume", ok=False)
    check(p.returncode == 1 and "did not write" in p.stderr and len(os.listdir(alien)) == 1,
          "a foreign PNG: %d %s" % (p.returncode, p.stderr))

    p = dit(a, "generate", *run_flags(), "--outdir", run, "--resume", "--npz", a.path("run.npz"),
            ok=False)
    want = "%d of %d images already in %s; %d to make (some over PNGs cut short)" % (
        len(kept), len(names), run, len(names) - len(kept))
    check(p.returncode == 0 and want in p.stderr, "resume: %d %s (expected %r)"
          % (p.returncode, p.stderr, want))
    check(sorted(os.listdir(run)) == names, "files after the resume: %s" % sorted(os.listdir(run)))
    for f in names:
        check(read(os.path.join(run, f)) == read(os.path.join(ref, f)), "%s differs" % f)
    for f, t in kept.items():
        check(os.stat(os.path.join(run, f)).st_mtime_ns == t, "%s was written again" % f)
    check(read(a.path("run.npz")) == read(a.path("ref.npz")), "the resumed archive differs")
    p = dit(a, "generate", *run_flags(), "--outdir", run, "--resume")
    check("; 0 to make" in p.stderr, "a finished run resumed: %s" % p.stderr)
    return "killed after %d of %d images; resumed: %d made (%d over a PNG cut short), all equal " \
        "to an uninterrupted run, and so is the archive" % (len(have), len(names),
                                                           len(names) - len(kept), cut)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit", required=True)
    ap.add_argument("--ditd", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("name", choices=sorted(TESTS))
    a = ap.parse_args()
    global FAST
    FAST = "libasan" in subprocess.run(["ldd", a.dit], capture_output=True, text=True).stdout
    if not os.path.isfile(os.path.join(a.model, "transformer", "config.json")):
        print("SKIP: no model at %s" % a.model)
        return 77
    # meson stops a test that runs out of time with SIGTERM: clean up (and stop the
    # daemon) on the way out then too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    work = tempfile.mkdtemp(prefix="ditd-repro-")

    def path(*parts):
        p = os.path.join(work, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p
    a.path = path
    try:
        print(TESTS[a.name](a))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
