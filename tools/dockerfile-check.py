#!/usr/bin/python3
"""Build the repository's Dockerfile without a Docker engine, then run and check its final stage.

    sudo /usr/bin/python3 tools/dockerfile-check.py [--keep] [--no-cache] [--workdir DIR]

The Dockerfile is interpreted, not handed to an engine. Only the instructions ditd's Dockerfile
uses are known (FROM, RUN, WORKDIR, COPY, ENV, USER, EXPOSE, STOPSIGNAL, HEALTHCHECK,
ENTRYPOINT); anything else is refused. Each stage is a directory tree:

* FROM debian:12 is a `debootstrap --variant=minbase bookworm` tree (the official image is made
  with the same variant) with the image's apt sources, no package lists and no host identity;
  FROM debian:12-slim is that tree with the slim image's dpkg path excludes applied as well
  (documentation, man pages, locales; copyright files are kept). The debootstrap result is kept
  under the work directory, so only the first run pays for it.
* RUN runs `chroot ROOT /bin/sh -c CMD` with /proc, /dev and /sys bind-mounted (and the host's
  resolv.conf, as an engine provides one), as the stage's USER, in its WORKDIR, with its ENV.
* COPY copies from the build context (minus .dockerignore) or from an earlier stage; new files
  are owned by 0:0 as with an engine. A layer cache keyed on the instruction chain (and on the
  content of copied files) keeps a snapshot after each RUN, so unchanged steps are skipped.

Then the final stage runs as its container would (ENTRYPOINT as USER with ENV and WORKDIR,
/proc, /dev and /sys mounted, PID 1 of its own PID namespace) except that
`--listen 127.0.0.1:PORT` is appended: the container listens on 0.0.0.0, which on a host
without a network namespace would mean every interface.
The checks print one PASS/FAIL line each; the exit status is 1 if any fails, 2 for usage errors.
Needs root, debootstrap, curl and a reachable Debian mirror. See docs/operations.md.

The code is in the dockerfile_check package next to this file; this file parses the
arguments, holds the lock on the work directory and cleans up.
"""
import argparse
import fcntl
import os
import signal
import sys
import time

# The package sits next to this file; put its directory on sys.path explicitly so that the tool
# also works under `python3 -P` / `-I`, which leave the script's directory out.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# It runs as root: leave no root-owned __pycache__ in the working tree.
sys.dont_write_bytecode = True

from dockerfile_check.build import Builder, split_stages  # noqa: E402
from dockerfile_check.common import CheckError, Interrupted, UsageError, say  # noqa: E402
from dockerfile_check.context import Context  # noqa: E402
from dockerfile_check.dockerfile import parse_dockerfile  # noqa: E402
from dockerfile_check.final import Checks, run_final  # noqa: E402
from dockerfile_check.rootfs import (kill_processes_in, mounts_under, remove_tree,  # noqa: E402
                                     unmount)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dockerfile", default=os.path.join(REPO, "Dockerfile"))
    ap.add_argument("--context", default=REPO, help="build context (default: the repository)")
    ap.add_argument("--workdir", default=os.path.join(REPO, "tmp", "dockerfile-check"),
                    help="cache, layers, stage trees and logs (default: tmp/dockerfile-check);"
                    " the layer cache keeps the last successful build's steps only, so give"
                    " another Dockerfile its own")
    ap.add_argument("--keep", action="store_true",
                    help="keep the stage trees under WORKDIR/stages for inspection")
    ap.add_argument("--no-cache", action="store_true",
                    help="run every step (the debootstrap tree is still reused)")
    ap.add_argument("--build-only", action="store_true", help="build, do not run the checks")
    ap.add_argument("--port", type=int, default=0,
                    help="port for the run (default: any free one; never the EXPOSE port, so the "
                         "HEALTHCHECK has to follow the --listen given at run time)")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--security-mirror", default="http://deb.debian.org/debian-security")
    args = ap.parse_args()

    if os.geteuid() != 0:
        say("dockerfile-check: needs root (debootstrap, chroot, mount)")
        return 2
    work = os.path.realpath(args.workdir)
    os.makedirs(work, exist_ok=True)
    lock = open(os.path.join(work, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        say(f"dockerfile-check: another run holds {work}/lock")
        return 2

    def interrupted(signum, frame):
        raise Interrupted(signal.Signals(signum).name)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, interrupted)

    started = time.monotonic()
    say(f"dockerfile-check: {args.dockerfile}, context {args.context}, work {work}; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    # A killed earlier run may have left mounts or processes behind.
    for point in sorted(mounts_under(work), key=len, reverse=True):
        say(f"note: unmounting {point} (left by an earlier run)")
        unmount(point)
    stages_dir = os.path.join(work, "stages")
    kill_processes_in(work)

    checks, status = Checks(), 0
    try:
        stages = split_stages(parse_dockerfile(args.dockerfile))
        ctx = Context(args.context, work)
        say(f"context: {len(ctx.entries())} entries after .dockerignore")
        t = time.monotonic()
        try:
            Builder(stages, ctx, work, args).build()
            checks.report("build", True, f"{len(stages)} stages built in "
                                         f"{time.monotonic() - t:.0f} s")
        except CheckError as e:
            checks.report("build", False, str(e))
        if checks.results[-1][1] and not args.build_only:
            run_final(stages[-1], ctx, work, args, checks)
    except UsageError as e:
        say(f"dockerfile-check: {e}")
        status = 2
    except CheckError as e:
        checks.report("run", False, str(e))
    except Interrupted as e:
        say(f"dockerfile-check: interrupted by {e}")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_processes_in(work)
        for point in sorted(mounts_under(work), key=len, reverse=True):
            unmount(point)
        if not args.keep:
            try:
                remove_tree(stages_dir, work)
            except CheckError as e:
                say(f"warning: {e}")
    if status == 2:
        return status
    failed = [name for name, ok in checks.results if not ok]
    wall = time.monotonic() - started
    if status == 0:
        status = 1 if failed or not checks.results else 0
    say(f"dockerfile-check: {len(checks.results) - len(failed)}/{len(checks.results)} checks "
        f"passed{' (failed: ' + ', '.join(failed) + ')' if failed else ''}; wall time "
        f"{wall / 60:.1f} min" + (f"; stage trees kept under {stages_dir}" if args.keep else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
