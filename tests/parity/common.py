"""Shared harness of the parity tests: run the `dit` tool, read and write .npy files, compare.

Every test script takes
    --dit PATH       the dit executable (build/src/cli/dit)
    --workdir DIR    scratch directory for model dirs and tensors (under the build dir)
    --only SUBSTR    run only the cases whose name contains SUBSTR (repeatable)
    -v               print the dit command lines
and exits 0 when every case passed, 1 otherwise (77 = skipped, meson's convention).
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC_ROOT, "tools"))
BUNDLED_MODEL = os.path.join(SRC_ROOT, "models", "fashion-dit")   # the project's trained model

REL_TOL = 1e-4          # max|ours - ref| <= REL_TOL * max|ref| for float32 outputs


class DitError(Exception):
    """The dit tool could not be run or exited with an error."""


class CheckFailed(Exception):
    pass


class Harness:
    def __init__(self, name, description=""):
        p = argparse.ArgumentParser(description=description)
        p.add_argument("--dit", required=True, help="path of the dit executable")
        p.add_argument("--workdir", default=None, help="scratch directory")
        p.add_argument("--only", action="append", default=[], help="run cases matching this")
        p.add_argument("-v", "--verbose", action="store_true")
        p.add_argument("--timeout", type=float, default=120.0, help="seconds per dit call")
        self.args = p.parse_args()
        self.name = name
        self.dit = self.args.dit
        base = self.args.workdir or os.path.join(os.getcwd(), "parity-work")
        self.workdir = os.path.join(os.path.abspath(base), name)
        if os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir)
        os.makedirs(self.workdir)
        self.results = []          # (case, ok, message)
        self.t0 = time.time()
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            pass

    # -----------------------------------------------------------------------------------------
    def path(self, *parts):
        p = os.path.join(self.workdir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def wanted(self, case):
        return not self.args.only or any(s in case for s in self.args.only)

    def run_dit(self, argv, expect_ok=True):
        """Run `dit argv...`; returns the CompletedProcess. Raises DitError when the binary is
        missing or (with expect_ok) exits non-zero, quoting its stderr."""
        if not (os.path.isfile(self.dit) and os.access(self.dit, os.X_OK)):
            raise DitError("dit binary not found: %s (build it with meson compile)" % self.dit)
        cmd = [self.dit] + [str(a) for a in argv]
        if self.args.verbose:
            print("  $", " ".join(shlex.quote(c) for c in cmd))
        t = time.time()
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            raise DitError("dit timed out after %.0f s: %s" % (self.args.timeout, " ".join(cmd)))
        r.elapsed = time.time() - t
        r.out = r.stdout.decode("utf-8", "replace")
        r.err = r.stderr.decode("utf-8", "replace")
        if expect_ok and r.returncode != 0:
            raise DitError("dit exited %d: %s\n    command: %s" % (
                r.returncode, (r.err.strip() or r.out.strip() or "(no output)")[-2000:],
                " ".join(shlex.quote(c) for c in cmd)))
        return r

    # -----------------------------------------------------------------------------------------
    def case(self, name, fn, *a, **kw):
        """Run one case; any exception marks it failed with its message."""
        if not self.wanted(name):
            return
        t = time.time()
        try:
            msg = fn(*a, **kw) or ""
            ok = True
        except (CheckFailed, DitError) as e:
            ok, msg = False, str(e)
        except Exception:   # a bug in the test or the reference: report it the same way
            ok, msg = False, traceback.format_exc()
        dt = time.time() - t
        print("%s %-58s %6.2fs  %s" % ("PASS" if ok else "FAIL", name, dt, msg), flush=True)
        self.results.append((name, ok, msg))

    def finish(self):
        bad = [r for r in self.results if not r[1]]
        print("%s: %d cases, %d passed, %d failed, %.1f s" % (
            self.name, len(self.results), len(self.results) - len(bad), len(bad),
            time.time() - self.t0))
        for name, _, msg in bad:
            print("  failed:", name, "-", msg.splitlines()[0] if msg else "")
        sys.exit(1 if bad or not self.results else 0)


def sanitized(dit):
    """True when the dit binary is built with AddressSanitizer or ThreadSanitizer."""
    out = subprocess.run(["ldd", dit], capture_output=True, text=True).stdout
    return "libasan" in out or "libtsan" in out


# ---------------------------------------------------------------------------------------------
# .npy files

def save_npy(path, a, dtype=np.float32):
    """Write a version 1.0, little-endian, C-order .npy file."""
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=(1, 0))
    return path


def load_npy(path, dtype="<f4", ndim=None):
    """Read a .npy written by dit and check its format (version 1.0, dtype, C order)."""
    if not os.path.isfile(path):
        raise CheckFailed("dit did not write %s" % path)
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version != (1, 0):
            raise CheckFailed("%s: npy version %s, expected 1.0" % (path, version))
        shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
        if fortran:
            raise CheckFailed("%s: fortran_order True" % path)
        if dt != np.dtype(dtype):
            raise CheckFailed("%s: dtype %s, expected %s" % (path, dt.str, np.dtype(dtype).str))
    a = np.load(path)
    if ndim is not None and a.ndim != ndim:
        raise CheckFailed("%s: shape %s, expected %d dims" % (path, a.shape, ndim))
    return a


# ---------------------------------------------------------------------------------------------
# Comparison

def where(idx, shape, names=None):
    names = names or ["n", "c", "h", "w"][-len(shape):] if len(shape) <= 4 else None
    if not names:
        return str(idx)
    return "[" + ",".join("%s=%d" % (k, i) for k, i in zip(names, idx)) + "]"


def compare(ours, ref, rel=REL_TOL, what="output", names=None):
    """Check max|ours - ref| <= rel * max|ref|; returns a one-line summary or raises."""
    ours = np.asarray(ours)
    ref = np.asarray(ref)
    if ours.shape != ref.shape:
        raise CheckFailed("%s shape %s, reference %s" % (what, ours.shape, ref.shape))
    if not np.all(np.isfinite(ours)):
        bad = np.argwhere(~np.isfinite(ours))[0]
        raise CheckFailed("%s has non-finite values, first at %s" % (what, where(tuple(bad), ours.shape, names)))
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    scale = float(np.abs(ref).max())
    err = float(diff.max())
    idx = np.unravel_index(int(diff.argmax()), diff.shape)
    summary = "max|err| %.3g at %s (ours %.6g, ref %.6g), max|ref| %.4g, rel %.2g" % (
        err, where(idx, diff.shape, names), float(ours[idx]), float(ref[idx]), scale,
        err / scale if scale else float("inf"))
    if scale == 0 or err > rel * scale:
        # locate the error more precisely: worst channel / sample
        extra = ""
        if diff.ndim == 4:
            per_c = diff.max(axis=(0, 2, 3))
            per_n = diff.max(axis=(1, 2, 3))
            extra = "; per-channel max err %s; per-sample %s" % (
                np.array2string(per_c, precision=3), np.array2string(per_n, precision=3))
        raise CheckFailed("%s: %s > %.0e%s" % (what, summary, rel, extra))
    return summary


def compare_l2(ours, ref, limit, what="output", floor=0.0):
    """Relative L2 error ||ours - ref|| / ||ref|| over the whole array and over each sample
    (first axis): the worst must be <= limit, and the whole-array one >= floor (the variant
    under test must really differ, e.g. bf16 from float32). Returns a one-line summary."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        raise CheckFailed("%s shape %s, reference %s" % (what, ours.shape, ref.shape))
    if not np.all(np.isfinite(ours)):
        raise CheckFailed("%s has non-finite values" % what)
    whole = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    per = [float(np.linalg.norm(o - r) / np.linalg.norm(r)) for o, r in zip(ours, ref)]
    summary = "relative L2 %.3g (worst sample %.3g, limit %.0e)" % (whole, max(per), limit)
    if max(whole, max(per)) > limit:
        raise CheckFailed("%s: %s" % (what, summary))
    if whole < floor:
        raise CheckFailed("%s: %s is below %.0e: the variant does not show" % (what, summary, floor))
    return summary


def distinct(a, b, rel=REL_TOL, factor=100.0, what=""):
    """Check that two reference outputs differ by far more than the tolerance, so the test has
    power to tell the variants apart. Returns a summary; raises when they are too close."""
    scale = float(np.abs(a).max())
    d = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    if d < factor * rel * scale:
        raise CheckFailed("test has no power: %s changes the reference by only %.3g (max|ref| %.3g)"
                          % (what, d, scale))
    return "%s shifts the reference by %.2g" % (what, d / scale)
