"""Parity: `dit schedule` tables vs tools/pyref/diffusion.py (float64, 1e-12 relative; timesteps
exact)."""
import numpy as np

from common import Harness, CheckFailed, load_npy
from pyref import diffusion

REL = 1e-12


def check_schedule(h, steps, spacing):
    out = h.path("sched_%s%d.npy" % (spacing, steps))
    argv = ["schedule", "--steps", steps, "-o", out]
    if spacing:
        argv += ["--spacing", spacing]
    h.run_dit(argv)
    ours = load_npy(out, dtype="<f8", ndim=2)
    sched = diffusion.Schedule(steps, spacing)
    ref = sched.table()
    if ours.shape != ref.shape:
        raise CheckFailed("table shape %s, reference %s" % (ours.shape, ref.shape))
    if not np.array_equal(ours[:, 0], ref[:, 0]):
        i = int(np.argmax(ours[:, 0] != ref[:, 0]))
        raise CheckFailed("timestep row %d: ours %r, ref %r" % (i, ours[i, 0], ref[i, 0]))
    worst = (0.0, None)
    notes = []
    for c in range(1, 8):
        name = diffusion.SCHEDULE_COLUMNS[c]
        o, r = ours[:, c], ref[:, c]
        fin = np.isfinite(r)
        if not np.array_equal(np.isfinite(o), fin):
            i = int(np.argmax(np.isfinite(o) != fin))
            if steps == 1 and name == "posterior_log_variance_clipped":
                # K = 1 has no entry 1 to copy into entry 0; no sampler reads the value.
                notes.append("K=1 %s = %r (ref %r; undefined by the contract)" % (name, o[i], r[i]))
                continue
            raise CheckFailed("%s row %d: ours %r, ref %r" % (name, i, o[i], r[i]))
        if not np.array_equal(o[~fin], r[~fin]):
            raise CheckFailed("%s: non-finite entries differ" % name)
        o, r = o[fin], r[fin]
        if o.size == 0:
            continue
        scale = np.maximum(np.abs(r), 1e-300)
        rel = np.abs(o - r) / scale
        # an entry that is exactly 0 in the reference must be (near) 0 in ours
        zero = r == 0
        if np.any(zero) and np.abs(o[zero]).max() > 1e-15:
            raise CheckFailed("%s: ref 0 but ours %r" % (name, np.abs(o[zero]).max()))
        rel[zero] = 0
        i = int(rel.argmax())
        if rel[i] > worst[0]:
            worst = (float(rel[i]), "%s row %d" % (name, i))
        if rel[i] > REL:
            raise CheckFailed("%s row %d: ours %.17g, ref %.17g, rel err %.3g > %g" % (
                name, i, o[i], r[i], rel[i], REL))
    return ("worst rel %.2g (%s)" % worst if worst[1] else "exact") + (
        "; " + "; ".join(notes) if notes else "")


def check_ddim_impossible(h):
    """ddimK with no integer stride giving K steps must be an error."""
    r = h.run_dit(["schedule", "--steps", 1, "--spacing", "ddim", "-o",
                   h.path("sched_ddim1.npy")], expect_ok=False)
    if r.returncode == 0:
        raise CheckFailed("--steps 1 --spacing ddim succeeded; space_timesteps raises there")
    return "exit %d: %s" % (r.returncode, r.err.strip().splitlines()[-1] if r.err.strip() else "")


def main():
    h = Harness("schedule", __doc__)
    for k in (1, 2, 10, 25, 50, 100, 250, 1000):
        h.case("schedule K=%d" % k, check_schedule, h, k, "")
    for k in (25, 50, 10):
        h.case("schedule ddim%d" % k, check_schedule, h, k, "ddim")
    h.case("schedule ddim1 is an error", check_ddim_impossible, h)
    h.finish()


if __name__ == "__main__":
    main()
