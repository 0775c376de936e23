"""Tortuosity of your volume, and TauFactor's

Effective and geodesic tortuosity of both phases of a measured block, along each axis, with
twinsr, and the effective tortuosity of the same block with TauFactor's `Solver` where TauFactor
is installed (`pip install taufactor`; without it that part is skipped). Both put the Dirichlet
planes on the outer faces and use the whole phase's volume fraction, so they solve the same
discrete problem; TauFactor stops at its default 1 % flux spread (see [Concepts](../concepts.md)).
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

import twinsr

im = twinsr.read_volume("builtin:nmc_nrel_xct")[:64, 100:164, 100:164]  # a 64³ block, 1 = solid
rows = []
for phase in ("pore", "solid"):
    for axis in (0, 1, 2):
        eff = twinsr.effective_tortuosity(im, phase=phase, axis=axis, tol=1e-6, device="cpu")
        geo = twinsr.geodesic_tortuosity(im, phase=phase, axis=axis)
        rows.append((phase, axis, eff.volume_fraction, eff.tau, geo.tau, eff.seconds))
print(f"{'phase':6s} {'axis':>4s} {'eps':>6s} {'tau_eff':>8s} {'tau_geod':>8s} {'s':>6s}")
for phase, axis, eps, tau, geod, sec in rows:
    print(f"{phase:6s} {axis:4d} {eps:6.3f} {tau:8.4f} {geod:8.4f} {sec:6.2f}")

try:
    import taufactor
except ImportError:
    taufactor = None
    print("TauFactor is not installed: comparison skipped (pip install taufactor)")
if taufactor is not None:
    print("\nTauFactor (Solver, CPU, its default conv_crit 1e-2), axis 0:")
    for phase, value in (("pore", 0), ("solid", 1)):
        ours = next(r[3] for r in rows if r[0] == phase and r[1] == 0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = taufactor.Solver((im == value).astype(np.float32), device="cpu")
            solver.solve(verbose=False)
        tf = float(np.asarray(solver.tau).ravel()[0])
        print(f"  {phase:5s} tau TauFactor {tf:.4f}  twinsr {ours:.4f}  relative difference "
              f"{abs(tf - ours) / ours:.1e}  ({time.perf_counter() - t0:.1f} s)")

fig, ax = plt.subplots(figsize=(6, 3.5))
x = np.arange(3)
for k, phase in enumerate(("pore", "solid")):
    vals = [r for r in rows if r[0] == phase]
    ax.bar(x + 0.2 * (2 * k - 1) - 0.1, [r[3] for r in vals], 0.2, label=f"{phase} τ_eff")
    ax.bar(x + 0.2 * (2 * k - 1) + 0.1, [r[4] for r in vals], 0.2, label=f"{phase} τ_geod",
           alpha=0.6)
ax.set_xticks(x, ["axis 0 (z)", "axis 1 (y)", "axis 2 (x)"])
ax.set_ylabel("tortuosity")
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
fig.savefig("tortuosity.png", dpi=90)
