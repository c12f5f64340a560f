"""Parity: the .npz writer (src/engine/npz.c) read by NumPy and zipfile, as the ADM evaluator
reads dit's samples.npz. `test_npz --write PATH` (tests/unit/test_npz.c) writes a uint8
(3, 5, 7, 3) image batch appended in odd-sized pieces as arr_0, int64 labels as arr_1 and a
float32 (2, 3) array as arr_2; numpy.load must give them back exactly, every member must pass
zipfile's CRC check, and every member must be Zip64 like numpy.savez's.

Takes --test-npz PATH (the test_npz executable) and --workdir DIR; exits 0 when every case
passed, 1 otherwise.
"""
import argparse
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np

EXPECTED = {
    "arr_0": (np.arange(3 * 5 * 7 * 3) * 7 + 3).astype(np.uint8).reshape(3, 5, 7, 3),
    "arr_1": np.array([7, 0, 999], dtype=np.int64),
    "arr_2": np.array([[-1.0, -0.5, 0.0], [0.5, 1.0, 1.5]], dtype=np.float32),
}


class CheckFailed(Exception):
    pass


def check_numpy(path):
    with np.load(path) as z:
        if sorted(z.files) != sorted(EXPECTED):
            raise CheckFailed("members %s, expected %s" % (z.files, sorted(EXPECTED)))
        for name, want in EXPECTED.items():
            got = z[name]
            if got.dtype != want.dtype or got.shape != want.shape:
                raise CheckFailed("%s: %s %s, expected %s %s" % (
                    name, got.dtype, got.shape, want.dtype, want.shape))
            if not np.array_equal(got, want):
                i = int(np.argmax(got.ravel() != want.ravel()))
                raise CheckFailed("%s element %d: %r, expected %r" % (
                    name, i, got.ravel()[i], want.ravel()[i]))
    return "dtypes, shapes and values exact"


def check_zipfile(path):
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            raise CheckFailed("testzip: %s fails its CRC check" % bad)
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.extract_version != 45:
                raise CheckFailed("%s: method %d, version needed %d; expected stored, 45" % (
                    info.filename, info.compress_type, info.extract_version))
            if info.date_time != (1980, 1, 1, 0, 0, 0) or info.flag_bits != 0:
                raise CheckFailed("%s: date %s, flags %#x" % (
                    info.filename, info.date_time, info.flag_bits))
        return "%d members, CRCs good" % len(z.infolist())


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--test-npz", required=True, help="path of the test_npz executable")
    p.add_argument("--workdir", default=os.path.join(os.getcwd(), "parity-work"))
    args = p.parse_args()
    workdir = os.path.join(os.path.abspath(args.workdir), "npz")
    if os.path.isdir(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    path = os.path.join(workdir, "samples.npz")
    r = subprocess.run([args.test_npz, "--write", path], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        print("FAIL test_npz --write exited %d: %s" % (r.returncode, r.stderr.strip()))
        sys.exit(1)
    failed = 0
    for name, fn in (("numpy.load", check_numpy), ("zipfile", check_zipfile)):
        try:
            print("PASS %-12s %s" % (name, fn(path)))
        except (CheckFailed, zipfile.BadZipFile, ValueError, OSError) as e:
            print("FAIL %-12s %s" % (name, e))
            failed += 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
