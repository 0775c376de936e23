"""Tests of effective and mean geodesic tortuosity (twinsr.transport.tortuosity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from twinsr.exceptions import ConvergenceWarning, NonPercolatingWarning, VolumeError
from twinsr.transport import (
    GeodesicResult,
    TortuosityResult,
    effective_tortuosity,
    geodesic_tortuosity,
)
from twinsr.transport._geodesic import neighbour_offsets


def blobs(shape: tuple[int, int, int], seed: int = 0, sigma: float = 2.0,
          porosity: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f > np.quantile(f, porosity)).astype(np.uint8)


def staircase_chain(n0: int) -> np.ndarray:
    """A single 6-connected chain of pore voxels: (0,0), then (z, z-1), (z, z) for 0 < z < n0-1,
    then (n0-1, n0-2). It has P = 2 n0 - 2 voxels and one voxel in each Dirichlet layer."""
    im = np.ones((n0, n0, 3), np.uint8)
    im[0, 0, 1] = 0
    for z in range(1, n0 - 1):
        im[z, z - 1, 1] = 0
        im[z, z, 1] = 0
    im[n0 - 1, n0 - 2, 1] = 0
    return im


# ---------------------------------------------------------------- effective tortuosity
def test_open_block_tau_is_one() -> None:
    r = effective_tortuosity(np.zeros((16, 10, 12), np.uint8), phase="pore", device="cpu")
    assert isinstance(r, TortuosityResult)
    assert r.tau == pytest.approx(1.0, abs=1e-6) and r.d_eff == pytest.approx(1.0, abs=1e-6)
    assert r.volume_fraction == 1.0 and r.percolating and r.converged and r.flux_spread < 1e-6


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channels_along_axis_tau_one(axis: int) -> None:
    im = np.ones((18, 18, 18), np.uint8)
    idx: list = [slice(None)] * 3
    others = [a for a in range(3) if a != axis]
    for lo, hi in ((2, 4), (8, 13)):  # two channels of different cross-sections
        idx[others[0]] = slice(lo, hi)
        idx[others[1]] = slice(3, 3 + hi - lo)
        im[tuple(idx)] = 0
    r = effective_tortuosity(im, phase=0, axis=axis, device="cpu")
    assert r.tau == pytest.approx(1.0, abs=1e-6)
    assert r.volume_fraction == pytest.approx((4 + 25) / 18**2)
    g = geodesic_tortuosity(im, phase=0, axis=axis)
    assert g.tau == pytest.approx(1.0, abs=1e-12) and g.connected_fraction == 1.0


def test_channels_across_axis_do_not_percolate() -> None:
    im = np.ones((12, 12, 12), np.uint8)
    im[3:5, :, 4:6] = 0  # channel along axis 1
    im[8:10, 2:4, :] = 0  # channel along axis 2
    with pytest.warns(NonPercolatingWarning, match="does not connect"):
        r = effective_tortuosity(im, phase="pore", axis=0, device="cpu")
    assert r.tau == math.inf and not r.percolating and r.d_eff == 0.0
    with pytest.warns(NonPercolatingWarning, match="no voxels in the inlet plane"):
        g = geodesic_tortuosity(im, phase="pore", axis=0)
    assert g.tau == math.inf and g.connected_fraction == 0.0
    assert effective_tortuosity(im, phase="pore", axis=1, device="cpu").tau > 0


def test_staircase_chain_series_of_links() -> None:
    """A 1-D chain of P voxels is a series of P-1 unit links and two half-links of conductance 2:
    resistance P, flux 1/P, so τ = ε A / (F L) = (P / L)^2 exactly."""
    n0 = 14
    im = staircase_chain(n0)
    p = 2 * n0 - 2
    assert np.count_nonzero(im == 0) == p
    r = effective_tortuosity(im, phase=0, device="cpu", tol=1e-10)
    assert r.tau == pytest.approx((p / n0) ** 2, rel=1e-7)


def test_series_segments_harmonic_mean() -> None:
    """Series of a straight segment (l1 layers, 1 link per layer) and a staircase segment (l2
    layers, 2 links per layer) in 3 identical parallel chains: resistances add (harmonic mean of
    the segment conductances), τ = ε A / (F L) with F = 3 / R, R = l1 + 2 l2 - 1 + 1."""
    l1, l2 = 7, 9
    n0 = l1 + l2
    im = np.ones((n0, l2 + 2, 7), np.uint8)
    for x in (1, 3, 5):  # separated by solid columns
        im[:l1, 0, x] = 0
        y = 0
        for z in range(l1, n0):
            im[z, y, x] = 0
            if z < n0 - 1:
                im[z, y + 1, x] = 0
                y += 1
    n_voxels = np.count_nonzero(im == 0)
    assert n_voxels == 3 * (l1 + 2 * l2 - 1)
    resistance = (l1 + 2 * l2 - 1) - 1 + 1  # links between consecutive voxels + two half-links
    flux = 3 / resistance
    eps = n_voxels / im.size
    expected = eps * (im.shape[1] * im.shape[2]) / (flux * n0)
    r = effective_tortuosity(im, phase=0, device="cpu", tol=1e-10)
    assert r.tau == pytest.approx(expected, rel=1e-7)


def test_narrowing_channel_between_series_bounds() -> None:
    """A channel 6x6 wide that narrows to 2x2 in a middle slab. Restricting the potential to be
    constant on each layer gives the harmonic-mean (series) value, a lower bound on τ (Dirichlet
    principle); the narrow columns alone give an upper bound (Thomson principle)."""
    n0, w, a = 30, 6, 2
    im = np.ones((n0, w, w), np.uint8)
    im[:, :, :] = 0
    im[10:20] = 1
    im[10:20, :a, :a] = 0
    n_open = np.array([np.count_nonzero(im[z] == 0) for z in range(n0)], float)
    links = np.array([np.count_nonzero((im[z] == 0) & (im[z + 1] == 0)) for z in range(n0 - 1)])
    r_series = 1 / (2 * n_open[0]) + 1 / (2 * n_open[-1]) + np.sum(1 / links)
    eps = n_open.sum() / im.size
    tau_low = eps * w * w * r_series / n0
    tau_high = eps * w * w * (n0 / a**2) / n0
    r = effective_tortuosity(im, phase=0, device="cpu", tol=1e-10)
    assert tau_low < r.tau < tau_high
    assert r.tau / tau_low - 1 < 0.15  # spreading resistance at the two junctions only


def test_dead_end_counts_in_volume_fraction_only() -> None:
    """Dead-end branches and floating clusters carry no flux: τ = (all phase voxels) / (channel)."""
    im = np.ones((12, 10, 10), np.uint8)
    im[:, 2:4, 2:4] = 0  # straight channel, 48 voxels
    im[5, 4:8, 2] = 0  # dead-end side branch attached to the channel, 4 voxels
    im[5:7, 7:9, 7:9] = 0  # floating cluster, 8 voxels
    im[:3, 8, 1] = 0  # cluster touching only the inlet, 3 voxels
    r = effective_tortuosity(im, phase=0, device="cpu", tol=1e-10)
    assert r.tau == pytest.approx((48 + 4 + 8 + 3) / 48, rel=1e-7)
    assert r.volume_fraction == pytest.approx(63 / im.size)


def test_flux_equal_and_flip_invariance() -> None:
    im = blobs((36, 30, 30), seed=11)
    a = effective_tortuosity(im, phase="solid", device="cpu")
    b = effective_tortuosity(im[::-1], phase="solid", device="cpu")
    assert a.percolating and a.converged and a.flux_spread < 1e-4
    assert b.tau == pytest.approx(a.tau, rel=1e-5)
    assert 1.0 < a.tau < 10.0


def test_axis_is_a_transposition() -> None:
    im = blobs((20, 26, 22), seed=12)
    a = effective_tortuosity(im, phase=0, axis=1, device="cpu", tol=1e-9)
    b = effective_tortuosity(np.swapaxes(im, 0, 1), phase=0, axis=0, device="cpu", tol=1e-9)
    assert a.tau == pytest.approx(b.tau, rel=1e-6) and a.axis == 1


def test_torch_path_same_tau() -> None:
    im = blobs((24, 24, 24), seed=13)
    a = effective_tortuosity(im, phase=0, device="cpu")
    b = effective_tortuosity(im, phase=0, device="torch-cpu")
    assert b.tau == pytest.approx(a.tau, rel=1e-5)


def test_effective_bad_input() -> None:
    with pytest.warns(NonPercolatingWarning, match="has no voxels"):
        r = effective_tortuosity(np.zeros((5, 5, 5), np.uint8), phase="solid")
    assert r.tau == math.inf and r.volume_fraction == 0.0
    with pytest.raises(VolumeError, match="must be binary"):
        effective_tortuosity(np.arange(64).reshape(4, 4, 4), phase=0)
    with pytest.raises(VolumeError, match="NaN"):
        effective_tortuosity(np.array([[[np.nan, 0], [0, 1]]] * 2), phase=0)
    with pytest.raises(VolumeError, match="must be 3-D"):
        effective_tortuosity(np.zeros((4, 4), np.uint8), phase=0)
    with pytest.raises(VolumeError, match="at least 2 voxels along axis 1"):
        effective_tortuosity(np.zeros((4, 1, 4), np.uint8), phase=0, axis=1)
    with pytest.raises(VolumeError, match="axis"):
        effective_tortuosity(np.zeros((4, 4, 4), np.uint8), phase=0, axis=-4)
    with pytest.raises(VolumeError, match="phase"):
        effective_tortuosity(np.zeros((4, 4, 4), np.uint8), phase="gas")
    with pytest.warns(ConvergenceWarning, match="raise `max_iter`"):
        r = effective_tortuosity(blobs((24, 24, 24), seed=2), phase=0, max_iter=1, tol=1e-12)
    assert not r.converged


# ---------------------------------------------------------------- geodesic tortuosity
@pytest.mark.parametrize("metric", ["graph26", "graph18", "graph6", "fmm"])
def test_geodesic_open_block_is_one(metric: str) -> None:
    g = geodesic_tortuosity(np.zeros((9, 7, 5), np.uint8), phase=0, metric=metric)
    assert isinstance(g, GeodesicResult)
    assert g.tau == pytest.approx(1.0, abs=1e-12) and g.connected_fraction == 1.0
    assert g.lengths.shape == (7, 5) and g.lengths.dtype == np.float32


def test_geodesic_diagonals() -> None:
    n = 10
    im = np.ones((n, n, 3), np.uint8)
    for i in range(n):
        im[i, i, 1] = 0  # 45° line of voxels (18-connected)
    assert geodesic_tortuosity(im, phase=0).tau == pytest.approx(math.sqrt(2), abs=1e-12)
    assert geodesic_tortuosity(im, phase=0, metric="graph18").tau == pytest.approx(math.sqrt(2))
    with pytest.warns(NonPercolatingWarning):
        assert geodesic_tortuosity(im, phase=0, metric="graph6").tau == math.inf
    im3 = np.ones((n, n, n), np.uint8)
    for i in range(n):
        im3[i, i, i] = 0  # body diagonal (26-connected only)
    assert geodesic_tortuosity(im3, phase=0).tau == pytest.approx(math.sqrt(3), abs=1e-12)


def test_geodesic_staircase_exact_discrete_value() -> None:
    """The 6-connected staircase chain: from the single inlet voxel (0, 0) the 26-graph path
    takes n0-2 diagonal steps and one straight step: ((n0-2)√2 + 1) / (n0-1)."""
    n0 = 12
    g = geodesic_tortuosity(staircase_chain(n0), phase=0)
    assert g.tau == pytest.approx(((n0 - 2) * math.sqrt(2) + 1) / (n0 - 1), abs=1e-12)
    g6 = geodesic_tortuosity(staircase_chain(n0), phase=0, metric="graph6")
    assert g6.tau == pytest.approx((2 * n0 - 3) / (n0 - 1), abs=1e-12)


def test_geodesic_map_nan_and_inf() -> None:
    im = np.ones((8, 6, 6), np.uint8)
    im[:, 1, 1] = 0  # connected
    im[:3, 4, 4] = 0  # dead end from the inlet
    g = geodesic_tortuosity(im, phase=0)
    assert g.lengths[1, 1] == 1.0 and g.lengths[4, 4] == np.inf and np.isnan(g.lengths[0, 0])
    assert g.connected_fraction == 0.5 and g.tau == 1.0


def _scipy_reference(phase_t: np.ndarray, metric: str) -> np.ndarray:
    """Independent multi-source Dijkstra with scipy.sparse.csgraph on the same voxel graph."""
    n0, n1, n2 = phase_t.shape
    idx = np.arange(phase_t.size).reshape(phase_t.shape)
    offs, wts = neighbour_offsets(metric)
    rows, cols, vals = [], [], []
    for (di, dj, dk), w in zip(offs, wts, strict=True):
        src = idx[max(0, -di): n0 - max(0, di), max(0, -dj): n1 - max(0, dj),
                  max(0, -dk): n2 - max(0, dk)]
        dst = idx[max(0, di): n0 - max(0, -di), max(0, dj): n1 - max(0, -dj),
                  max(0, dk): n2 - max(0, -dk)]
        ok = phase_t.reshape(-1)[src.reshape(-1)] & phase_t.reshape(-1)[dst.reshape(-1)]
        rows.append(src.reshape(-1)[ok])
        cols.append(dst.reshape(-1)[ok])
        vals.append(np.full(int(ok.sum()), w))
    g = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(phase_t.size, phase_t.size))
    sources = idx[-1][phase_t[-1]]
    d = dijkstra(g, directed=False, indices=sources, min_only=True)
    out = d.reshape(phase_t.shape)[0].copy()
    out[~phase_t[0]] = np.nan
    return out / (n0 - 1)


@pytest.mark.parametrize("metric", ["graph26", "graph18", "graph6"])
def test_geodesic_equals_scipy_dijkstra(metric: str) -> None:
    im = blobs((20, 18, 16), seed=21, sigma=1.5)
    g = geodesic_tortuosity(im, phase="pore", metric=metric)
    ref = _scipy_reference(im == 0, metric)
    np.testing.assert_array_equal(np.isnan(g.lengths), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(g.lengths), np.isinf(ref))
    fin = np.isfinite(ref)
    assert fin.any()
    np.testing.assert_allclose(g.lengths[fin], ref[fin], rtol=1e-6)
    assert g.tau == pytest.approx(float(np.mean(ref[fin])), rel=1e-12)


def test_geodesic_metric_order_on_random_medium() -> None:
    im = blobs((40, 40, 40), seed=5, sigma=3.0)
    t = {m: geodesic_tortuosity(im, phase=0, metric=m).tau for m in ("graph6", "graph18",
                                                                        "graph26", "fmm")}
    assert t["graph6"] > t["graph18"] >= t["graph26"] > 1.0
    assert t["fmm"] < t["graph6"]


def test_geodesic_bad_input() -> None:
    with pytest.raises(VolumeError, match="metric"):
        geodesic_tortuosity(np.zeros((4, 4, 4), np.uint8), phase=0, metric="euclid")
    with pytest.raises(VolumeError, match="at least 2 voxels"):
        geodesic_tortuosity(np.zeros((1, 4, 4), np.uint8), phase=0)
    with pytest.raises(VolumeError, match="must be binary"):
        geodesic_tortuosity(np.full((3, 3, 3), 0.5), phase=0)
    with pytest.warns(NonPercolatingWarning, match="no voxels in the inlet plane"):
        g = geodesic_tortuosity(np.ones((4, 4, 4), np.uint8), phase=0)
    assert g.tau == math.inf and g.connected_fraction == 0.0


def test_torch_path_tight_tol_matches_cpu() -> None:
    """Below float32 resolution (tol < 1e-7) the torch path, like the numba one, keeps the initial
    residual, the CG vectors and the returned solution in float64: both give the same τ."""
    im = blobs((40, 40, 40), seed=14)
    a = effective_tortuosity(im, phase=0, device="cpu", tol=1e-10, max_iter=300)
    b = effective_tortuosity(im, phase=0, device="torch-cpu", tol=1e-10, max_iter=300)
    assert a.converged and b.converged
    assert b.tau == pytest.approx(a.tau, rel=1e-9)
    assert b.flux_spread < 1e-7
