"""Faithful twins: calibrated models against the measured volumes, on the descriptors that matter.

For every shipped measured volume, in one run:

1. the paper's fit (χ² family, ``objective="s2"``) and the descriptor-matched fit of the chosen
   family (``objective="descriptors"``; ``--family auto`` fits every family and keeps the best on
   held-out realizations), timed;
2. a validation of each fit at the data's own shape (``--n`` twins): τ_eff of both phases along
   every axis, mean geodesic τ of both phases along every axis, specific surface area and mean
   chord length per phase, each twins-mean vs data, and whether it lies within the goal
   (5 % for the NMC volumes, 10 % for the rocks and FiberForm);
3. the S₂ rms of every fit (goal: no worse than the χ² S₂ fit);
4. calibration time at 256³ (goal ≤ 2 min) and one 800³ realization of every family (goal
   ≤ 30 s, ≤ 12 GB).

Run: .venv/bin/python benchmarks/bench_twins.py             (about 1–2 h on 2 cores)
     .venv/bin/python benchmarks/bench_twins.py --quick     (n = 2 twins, no 800³)
     .venv/bin/python benchmarks/bench_twins.py --only nmc_nrel_xct
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import measure, table, write_section

from twinsr import datasets
from twinsr.stochastic import (
    ChiSquareModel,
    FibreModel,
    GrainModel,
    calibrate,
    validate,
)

GOALS = {"nmc_nrel_xct": 0.05, "nmc_superres_xct": 0.05, "berea_sandstone": 0.10,
         "ketton_limestone": 0.10, "fiberform_puma": 0.10}
FAMILY = {"nmc_nrel_xct": "grains", "nmc_superres_xct": "grains", "berea_sandstone": "auto",
          "ketton_limestone": "auto", "fiberform_puma": "auto"}
GROUPS = ("s2", "surface_area", "chords", "tau_eff", "geodesic")
OUT = Path(__file__).resolve().parent / "out" / "twins"


def goal_keys(rows: list) -> list:
    """The descriptors the goal names: τ_eff and geodesic τ per phase and axis, SSA, chords."""
    return [r for r in rows if r.name == "ssa" or r.name.startswith(("tau_eff.", "geodesic."))
            or r.name.startswith("chord_mean.")]


def chord_means_per_phase(rows: list) -> list:
    """Mean chord length per phase (mean over axes), twins against data."""
    out = []
    for ph in ("pore", "solid"):
        rr = [r for r in rows if r.name.startswith(f"chord_mean.{ph}.")]
        d = float(np.mean([r.data for r in rr]))
        t = float(np.mean([r.twin_mean for r in rr]))
        out.append((f"chord_mean.{ph} (mean of axes)", d, t, (t - d) / d))
    return out


def run_volume(name: str, n: int, log: list[str]) -> dict:
    im = datasets.load(name)
    res: dict = {"name": name, "shape": im.shape, "goal": GOALS[name]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        s2fit = calibrate(im, covariance="auto", excursion_phase="auto")
        res["s2_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dfit = calibrate(im, family=FAMILY[name], objective="descriptors")
        res["d_seconds"] = time.perf_counter() - t0
    res["s2_model"], res["d_model"] = s2fit.model.to_dict(), dfit.model.to_dict()
    res["s2_rms"], res["d_rms"] = s2fit.residual, dfit.residual
    res["d_family"], res["held_out"] = dfit.family, dfit.objectives_by_family
    log.append(f"{name}: s2 fit {res['s2_seconds']:.0f} s, descriptor fit ({dfit.family}) "
               f"{res['d_seconds']:.0f} s")
    print(log[-1], flush=True)
    for key, model in (("s2", s2fit.model), ("d", dfit.model)):
        t0 = time.perf_counter()
        v = validate(model, im, n=n, rng=1000, groups=GROUPS, tolerance=GOALS[name])
        res[f"{key}_validation"] = v
        res[f"{key}_val_seconds"] = time.perf_counter() - t0
        print(f"  validated {key}: {v.counts} in {res[f'{key}_val_seconds']:.0f} s", flush=True)
    return res


def volume_section(r: dict) -> str:
    g = r["goal"]
    vs2, vd = r["s2_validation"], r["d_validation"]
    by = {row.name: row for row in vd.rows}
    rows = []
    for row in goal_keys(vs2.rows):
        d = by[row.name]
        rows.append([row.name, f"{row.data:.4g}", f"{row.twin_mean:.4g} ({row.deviation:+.1%})",
                     f"{d.twin_mean:.4g} ({d.deviation:+.1%})",
                     "met" if abs(d.deviation) <= g else "MISS"])
    for (nm, dat, t2, e2), (_, _, td, ed) in zip(chord_means_per_phase(vs2.rows),
                                                  chord_means_per_phase(vd.rows), strict=True):
        rows.append([nm, f"{dat:.4g}", f"{t2:.4g} ({e2:+.1%})", f"{td:.4g} ({ed:+.1%})",
                     "met" if abs(ed) <= g else "MISS"])
    met = sum(1 for x in rows if x[-1] == "met")
    head = (f"#### {r['name']} {tuple(r['shape'])}: goal ±{g:.0%}\n\n"
            f"χ² S₂ fit ({r['s2_seconds']:.0f} s): {json.dumps(_short(r['s2_model']))}  \n"
            f"descriptor fit, family {r['d_family']} ({r['d_seconds']:.0f} s): "
            f"{json.dumps(_short(r['d_model']))}  \n"
            + (f"held-out discrepancy per family: "
               f"{ {k: round(v, 4) for k, v in r['held_out'].items()} }  \n" if r["held_out"]
               else "")
            + f"S₂ rms: χ² S₂ fit {r['s2_rms']:.4f}, descriptor fit {r['d_rms']:.4f}  \n"
            f"{vd.n} twins of the data's shape each; descriptor fit within the goal on "
            f"**{met}/{len(rows)}** descriptors.\n\n")
    return head + table(["descriptor", "data", "χ² S₂ fit twins", "descriptor-fit twins", "goal"],
                        rows)


def _short(d: dict) -> dict:
    skip = {"format", "format_version", "twinsr_version", "calibration", "voxel_size_unit",
            "radius_unit", "length_unit", "gamma_unit", "gamma_physical_unit", "voxel_size",
            "gamma_physical"}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()
            if k not in skip and v is not None}


def calibration_time_256() -> str:
    im = datasets.load("nmc_nrel_xct")[:251, :256, :256]
    rows = []
    for fam in ("grains", "chi_square"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res, dt, peak = measure(lambda fam=fam: calibrate(im, family=fam,
                                                              objective="descriptors"))
        rows.append([fam, f"{dt:.0f}", f"{peak:.2f}", res.evaluations,
                     "met" if dt <= 120 else "MISS"])
    return ("#### Descriptor calibration time (nmc_nrel_xct, 251×256×256; goal ≤ 120 s)\n\n"
            + table(["family", "seconds", "peak GiB", "evaluations", "goal"], rows))


def realization_800() -> str:
    models = {
        "chi_square gaussian": ChiSquareModel.from_volume_fraction(0.5, 0.07, "gaussian"),
        "chi_square exponential": ChiSquareModel.from_volume_fraction(0.5, 0.07, "exponential"),
        "chi_square matern": ChiSquareModel.from_volume_fraction(0.5, 0.07, "matern"),
        "grains (NMC-like)": GrainModel(0.52, 11.2, radius_cv=0.21, overlap=0.16, neck=0.29,
                                        neck_range=0.1, aspect=0.71),
        "fibres (FiberForm-like)": FibreModel(0.15, 4.0, 120.0, orientation=(0.3, 1.0, 0.5)),
    }
    rows = []
    for name, m in models.items():
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im, dt, peak = measure(lambda m=m: m.sample((800, 800, 800), rng=0))
        rows.append([name, f"{dt:.1f}", f"{peak:.2f}", f"{im.mean():.3f}",
                     "met" if dt <= 30 and peak <= 12 else "MISS"])
        del im
    return ("#### One 800³ realization per family (goal ≤ 30 s, ≤ 12 GB)\n\n"
            + table(["family", "seconds", "peak GiB", "solid fraction", "goal"], rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (2 if args.quick else 4)
    names = args.only or list(GOALS)
    log: list[str] = []
    parts = [f"{n} twins per validation, each of the data's shape (seeds [1000, i]); the "
             "descriptor fits use blocks of 112³ (the data's smallest edge if smaller)."]
    for name in names:
        parts.append(volume_section(run_volume(name, n, log)))
    if not args.quick and not args.only:
        parts.append(calibration_time_256())
        parts.append(realization_800())
    cmd = "python benchmarks/bench_twins.py" + (" --quick" if args.quick else "") + \
        (f" --only {' '.join(args.only)}" if args.only else "") + \
        (f" --n {args.n}" if args.n else "")
    write_section("twins", "## Faithful twins (issue: model validation, descriptor-matched "
                  "calibration, model families)\n\n" + "\n\n".join(parts), command=cmd)
    print("\n\n".join(parts))


if __name__ == "__main__":
    main()
