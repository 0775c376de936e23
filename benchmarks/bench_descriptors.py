"""Descriptors: time of each descriptor at 128³ and 256³ on a twin-like volume against PoreSpy's
equivalents in the same run (local thickness, porosimetry, chords, marching-cubes surface area),
agreement with PoreSpy, the distance-transform backends (edt vs scipy), and the surface-area bias
of both estimators (and PoreSpy's smoothed mesh) on voxelised spheres, cubes and rotated boxes.

The twin-like volume is periodic Gaussian noise smoothed with σ = 2.5 voxels and thresholded at 0
(about half solid, structure radius ~3–6 voxels, like the NMC twins); the 128³ correctness rows
also use a corner crop of ``nmc_nrel_xct``.

Run: .venv/bin/python benchmarks/bench_descriptors.py              (about 5–10 minutes)
     .venv/bin/python benchmarks/bench_descriptors.py --quick      (128³ only, prints only)
     .venv/bin/python benchmarks/bench_descriptors.py --no-write   (full run, prints only)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import measure, table, write_section

from twinsr import datasets
from twinsr import descriptors as D
from twinsr.exceptions import NonPercolatingWarning

SIGMA = 2.5


def twin_like(n: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal((n, n, n))
    return (ndimage.gaussian_filter(g, SIGMA, mode="wrap") > 0).astype(np.uint8)


def best_of(fn, repeat: int = 2) -> tuple[object, float]:
    """Result and the best wall time of ``repeat`` calls (the machine is shared)."""
    out, best = None, math.inf
    for _ in range(repeat):
        out, sec, _ = measure(fn)
        best = min(best, sec)
    return out, best


def _ps():
    import porespy as ps

    ps.settings.tqdm["disable"] = True
    ps.settings.ncores = os.cpu_count() or 1
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return ps


def _ps_r50(size_map: np.ndarray, mask: np.ndarray) -> float:
    """Median radius (largest r with share >= 1/2) of a PoreSpy size map over its reached voxels."""
    v = size_map[mask & (size_map > 0)]
    if v.size == 0:
        return 0.0
    r, c = np.unique(v, return_counts=True)
    cum = np.cumsum(c[::-1])[::-1] / v.size
    return float(r[np.nonzero(cum >= 0.5)[0][-1]])


def _ps_lines(shape: tuple[int, ...]) -> tuple[slice, np.ndarray, np.ndarray]:
    """The lines along axis 0 that PoreSpy's apply_chords(spacing=1, trim_edges=True) keeps:
    every 2nd line, minus the first and last sampled ones (the border of the sampled image)."""
    return slice(None), np.arange(0, shape[1], 2)[1:-1], np.arange(0, shape[2], 2)[1:-1]


def _warm() -> None:
    small = twin_like(24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        D.describe(small, device="cpu")
    ps = _ps()
    m = small == 0
    ps.filters.local_thickness(m)
    ps.filters.porosimetry(m, sizes=5)


def timing_rows(im: np.ndarray, label: str, *, transport: bool) -> list[list[object]]:
    """Our descriptors and PoreSpy's equivalents on one volume: rows (descriptor, ours, peer, ratio)."""
    ps = _ps()
    rows: list[list[object]] = []

    def row(name: str, ours: float, peer: float | None = None, note: str = "") -> None:
        ratio = f"{peer / ours:.1f}x" if peer is not None and ours > 0 else "–"
        rows.append([label, name, f"{ours:.3f}", "–" if peer is None else f"{peer:.3f}", ratio, note])

    row("volume fraction (both)", best_of(lambda: [D.volume_fraction(im, phase=p) for p in (0, 1)])[1])
    row("S₂ both phases, 3 axes, max_lag n/2", best_of(lambda: D.two_point_coverages(im))[1])
    row("surface area, Crofton 13", best_of(lambda: D.specific_surface_area(im))[1])
    mc = best_of(lambda: D.specific_surface_area(im, method="marching_cubes"), 1)[1]
    ps_mesh = best_of(lambda: ps.metrics.mesh_surface_area(ps.tools.mesh_region(im > 0)), 1)[1]
    row("surface area, marching cubes", mc, ps_mesh, "peer: mesh_region + mesh_surface_area")
    row("chords, both phases, 3 axes", best_of(lambda: [D.chord_length_distribution(
        im, phase=p, axis=a) for p in (0, 1) for a in range(3)])[1])
    sub = (slice(None), slice(None, None, 2), slice(None, None, 2))
    ours_ch = best_of(lambda: D.chord_lengths(im[sub], phase=0, axis=0))[1]
    ps_ch = best_of(lambda: ps.metrics.chord_counts(ps.filters.apply_chords(im == 0, spacing=1, axis=0)))[1]
    row("chords, pore, axis 0, every 2nd line", ours_ch, ps_ch, "peer: apply_chords + chord_counts")
    for p, name in ((0, "pore"), (1, "solid")):
        mask = im == p
        ours_lt = best_of(lambda mask=mask: D.local_thickness(mask, phase="solid"))[1]
        ps_lt = best_of(lambda mask=mask: ps.filters.local_thickness(mask), 1)[1]
        row(f"local thickness, {name}", ours_lt, ps_lt, "peer: method='bf', integer radii")
        ours_ir = best_of(lambda mask=mask: D.intrusion_radius(mask, phase="solid"))[1]
        ps_ir = best_of(lambda mask=mask: ps.filters.porosimetry(mask, sizes=25), 1)[1]
        row(f"intrusion, {name}, all faces", ours_ir, ps_ir, "peer: porosimetry, 25 radii")
    row("constrictivity, both phases", best_of(lambda: [D.constrictivity(im, phase=p) for p in (0, 1)], 1)[1])
    row("percolation shares, both phases", best_of(lambda: [D.percolation_shares(im, phase=p)
                                                            for p in (0, 1)])[1])
    row("describe(which='geometric')", best_of(lambda: D.describe(im, which="geometric"), 1)[1])
    if transport:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonPercolatingWarning)
            row("geodesic τ, both phases, 3 axes", best_of(lambda: D.geodesic_tortuosities(im), 1)[1])
            row("τ_eff, both phases, 3 axes (cpu)", best_of(lambda: D.effective_tortuosities(
                im, device="cpu"), 1)[1])
            row("describe(which='all')", best_of(lambda: D.describe(im, device="cpu"), 1)[1])
    return rows


def agreement_rows(im: np.ndarray, label: str) -> list[list[object]]:
    """Values of ours and PoreSpy's on one volume (same definitions where they exist)."""
    ps = _ps()
    rows: list[list[object]] = []
    for p, name in ((0, "pore"), (1, "solid")):
        mask = im == p
        ours = D.local_thickness(mask, phase="solid")
        theirs = ps.filters.local_thickness(mask)
        same = float(np.mean(np.floor(ours[mask]) == theirs[mask]))
        rows.append([label, f"local thickness r50, {name}", f"{D.size_distribution(mask, phase=1).r50:.3f}",
                     f"{_ps_r50(theirs, mask):.3f}",
                     f"floor(ours) = PoreSpy on {100 * same:.1f} % of voxels"])
        ir = D.intrusion(mask, phase="solid")
        ps_ir = ps.filters.porosimetry(mask, sizes=25)
        rows.append([label, f"intrusion r50, {name} (all faces)", f"{ir.r50:.3f}",
                     f"{_ps_r50(ps_ir, mask):.3f}", "PoreSpy: 25 radii, floor(dt) seeds"])
        _, ys, xs = _ps_lines(im.shape)
        ours_c = np.sort(D.chord_lengths(im[:, ys][:, :, xs], phase=p, axis=0))
        theirs_c = np.sort(ps.metrics.chord_counts(ps.filters.apply_chords(mask, spacing=1, axis=0)))
        rows.append([label, f"chords {name} axis 0 (n, mean)", f"{ours_c.size}, {ours_c.mean():.3f}",
                     f"{theirs_c.size}, {theirs_c.mean():.3f}",
                     "identical lengths" if np.array_equal(ours_c, theirs_c) else "lengths differ"])
    mc = D.surface_area(im, method="marching_cubes")
    ps_area = ps.metrics.mesh_surface_area(ps.tools.mesh_region(im > 0))
    rows.append([label, "interface area (voxel²)", f"crofton {D.surface_area(im):.0f}, MC {mc:.0f}",
                 f"{ps_area:.0f}", "PoreSpy: ball(1)-smoothed, padded (adds the outer faces)"])
    return rows


def edt_rows(ns: list[int]) -> list[list[object]]:
    rows = []
    for n in ns:
        mask = twin_like(n) == 0
        a, t_edt = best_of(lambda mask=mask: D.squared_distance_transform(mask, backend="edt"))
        b, t_sp = best_of(lambda mask=mask: D.squared_distance_transform(mask, backend="scipy"), 1)
        rows.append([f"{n}³", f"{t_edt:.3f}", f"{t_sp:.3f}", f"{t_sp / t_edt:.1f}x",
                     "identical" if np.array_equal(a, b) else "DIFFER"])
    return rows


def _sphere(n: int, radius: float, centre: np.ndarray) -> np.ndarray:
    g = np.indices((n, n, n)).astype(float)
    return (((g - centre[:, None, None, None]) ** 2).sum(0) <= radius**2).astype(np.uint8)


def bias_rows() -> list[list[object]]:
    """Relative error of the area of voxelised spheres, cubes and rotated boxes (mean of jitters)."""
    ps = _ps()
    rng = np.random.default_rng(0)
    rows: list[list[object]] = []

    def errors(ims: list[np.ndarray], area: float) -> list[str]:
        vals = [[D.surface_area(im) / area - 1, D.surface_area(im, method="marching_cubes") / area - 1,
                 ps.metrics.mesh_surface_area(ps.tools.mesh_region(im > 0)) / area - 1] for im in ims]
        m = np.mean(vals, axis=0)
        return [f"{100 * v:+.1f} %" for v in m]

    for r in (2, 3, 4, 6, 8, 12, 16, 24, 32):
        n = 2 * r + 8
        ims = [_sphere(n, r, (n - 1) / 2 + rng.uniform(-0.5, 0.5, 3)) for _ in range(4)]
        rows.append([f"sphere R = {r}", *errors(ims, 4 * math.pi * r * r)])
    for a in (8, 16, 32):
        im = np.zeros((a + 6,) * 3, np.uint8)
        im[3:3 + a, 3:3 + a, 3:3 + a] = 1
        rows.append([f"cube side {a}", *errors([im], 6.0 * a * a)])
    from scipy.spatial.transform import Rotation

    n, half = 64, np.array([20.0, 12.0, 8.0])
    pts = np.indices((n, n, n)).reshape(3, -1).T - (n - 1) / 2
    boxes = [(np.abs(pts @ Rotation.random(random_state=k).as_matrix()) <= half).all(1)
             .reshape(n, n, n).astype(np.uint8) for k in range(6)]
    rows.append(["box 40×24×16, 6 random rotations", *errors(boxes, 8 * (20 * 12 + 12 * 8 + 20 * 8))])
    return rows


def main(quick: bool = False, write: bool = True) -> None:
    t0 = time.time()
    load0 = os.getloadavg()
    _warm()
    sizes = [128] if quick else [128, 256]
    t_rows: list[list[object]] = []
    for n in sizes:
        t_rows += timing_rows(twin_like(n), f"twin-like {n}³", transport=(n == 128))
    nmc = np.ascontiguousarray(datasets.load("nmc_nrel_xct")[:128, :128, :128])
    a_rows = agreement_rows(twin_like(128), "twin-like 128³") + agreement_rows(nmc, "nmc_nrel_xct 128³")
    e_rows = edt_rows(sizes)
    b_rows = bias_rows()
    load1 = os.getloadavg()
    body = [
        "Seconds (best of 2 for the fast ones, wall clock, 2 threads where the code is parallel); "
        f"load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end; "
        f"run took {(time.time() - t0) / 60:.1f} min.",
        "",
        table(["volume", "descriptor", "twinsr (s)", "PoreSpy (s)", "PoreSpy / twinsr", "note"], t_rows),
        "",
        "Agreement with PoreSpy (r50 = median radius over the phase / over the intruded part):",
        "",
        table(["volume", "quantity", "twinsr", "PoreSpy", "note"], a_rows),
        "",
        "Squared Euclidean distance transform of the pore phase:",
        "",
        table(["size", "edt package (s)", "scipy (s)", "scipy / edt", "values"], e_rows),
        "",
        "Surface-area bias (estimate / true area − 1; spheres {|p − c| ≤ R}, mean of 4 jittered "
        "centres):",
        "",
        table(["shape", "Crofton 13 (default)", "marching cubes", "PoreSpy mesh_region"], b_rows),
    ]
    text = "\n".join(body)
    cmd = "python benchmarks/bench_descriptors.py" + (" --quick" if quick else "")
    if write and not quick:
        write_section("descriptors", text, command=cmd)
    print(text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128³ only; prints only")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md")
    args = ap.parse_args()
    main(quick=args.quick, write=not args.no_write)
