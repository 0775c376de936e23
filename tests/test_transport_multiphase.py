"""Multi-phase, periodic and anisotropic transport: known answers, conservation, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from twinsr.exceptions import ConfigError, NonPercolatingWarning, VolumeError
from twinsr.transport import (
    classify_clusters,
    effective_tortuosity,
    geodesic_tortuosity,
    multiphase_tortuosity,
)


def _blobs(shape, seed=0, sigma=2.5, level=0.0):
    f = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return (f > level).astype(np.uint8)


def _three_phase(shape, seed=0):
    f = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 2.0)
    return np.digitize(f, np.quantile(f, [0.35, 0.7])).astype(np.uint8)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_series_layers_give_the_thickness_weighted_harmonic_mean(axis):
    lab = np.zeros((12, 10, 8), np.uint8)
    lab = np.moveaxis(lab, axis, 0).copy()
    lab[5:] = 1                                  # 5 layers of D = 2, then 7 of D = 0.3
    lab = np.moveaxis(lab, 0, axis)
    n = lab.shape[axis]
    r = multiphase_tortuosity(lab, conductivities={0: 2.0, 1: 0.3}, axis=axis, tol=1e-9)
    expected = n / (5 / 2.0 + (n - 5) / 0.3)
    assert r.d_eff == pytest.approx(expected, rel=1e-6)
    d_mean = (5 * 2.0 + (n - 5) * 0.3) / n
    assert r.tau == pytest.approx(d_mean / expected, rel=1e-6)
    assert r.flux_spread < 1e-5 and r.converged


def test_series_layers_ghost_dirichlet_matches_its_resistor_chain():
    lab = np.zeros((10, 6, 6), np.uint8)
    lab[4:] = 1
    r = multiphase_tortuosity(lab, conductivities={0: 1.0, 1: 0.2}, dirichlet="ghost", tol=1e-9)
    resistance = (4 + 0.5) / 1.0 + (6 + 0.5) / 0.2      # ghost links D, end layers, interface
    assert r.d_eff == pytest.approx(11 / resistance, rel=1e-6)
    open_block = multiphase_tortuosity(np.ones((9, 4, 5), np.uint8), conductivities={1: 3.0},
                                       dirichlet="ghost")
    assert open_block.tau == pytest.approx(1.0, abs=1e-6)
    assert open_block.d_eff == pytest.approx(3.0, rel=1e-6)


def test_parallel_layers_give_the_area_weighted_arithmetic_mean_and_flux_shares():
    lab = np.zeros((10, 9, 4), np.uint8)
    lab[:, :3] = 1
    lab[:, 3:5] = 2                              # 2/9 of the area insulates
    r = multiphase_tortuosity(lab, conductivities={0: 1.0, 1: 0.1, 2: 0.0}, tol=1e-9)
    expected = (4 * 1.0 + 3 * 0.1) / 9
    assert r.d_eff == pytest.approx(expected, rel=1e-6)
    assert r.tau == pytest.approx(1.0, rel=1e-6)
    assert r.flux_shares[0] == pytest.approx(4.0 / 4.3, rel=1e-6)
    assert r.flux_shares[1] == pytest.approx(0.3 / 4.3, rel=1e-6)
    assert r.flux_shares[2] == 0.0
    assert r.volume_fractions == pytest.approx({0: 4 / 9, 1: 3 / 9, 2: 2 / 9})


def test_binary_multiphase_equals_the_fast_single_phase_solver():
    im = _blobs((40, 36, 32), seed=1)
    fast = effective_tortuosity(im, phase="pore", device="cpu", tol=1e-9)
    var = multiphase_tortuosity(im, conductivities={0: 1.0}, tol=1e-9)
    assert var.tau == pytest.approx(fast.tau, rel=1e-6)
    assert var.flux_shares[0] == pytest.approx(1.0)


def test_periodic_equals_non_periodic_on_a_mirror_doubled_volume():
    a = _blobs((24, 12, 10), seed=2)
    m = np.concatenate([a, a[:, ::-1]], axis=1)
    m = np.concatenate([m, m[:, :, ::-1]], axis=2)      # periodic by construction (no wrap flux)
    lab = _three_phase(m.shape, seed=3)
    lab = np.concatenate([lab[:, :12], lab[:, :12][:, ::-1]], axis=1)
    lab = np.concatenate([lab[:, :, :10], lab[:, :, :10][:, :, ::-1]], axis=2)
    cond = {0: 1.0, 1: 0.05, 2: 0.4}
    for vol, kw in ((m, {0: 1.0}), (lab, cond)):
        p = multiphase_tortuosity(vol, conductivities=kw, periodic=True, tol=1e-9)
        q = multiphase_tortuosity(vol, conductivities=kw, periodic=False, tol=1e-9)
        assert p.tau == pytest.approx(q.tau, rel=1e-6)
    e_p = effective_tortuosity(m, phase="pore", periodic=True, tol=1e-9)
    e_q = effective_tortuosity(m, phase="pore", tol=1e-9, device="cpu")
    assert e_p.tau == pytest.approx(e_q.tau, rel=1e-6) and e_p.periodic


def test_periodic_sides_change_tau_on_a_generic_volume():
    im = _blobs((32, 24, 24), seed=4)
    p = effective_tortuosity(im, phase="pore", periodic=True)
    q = effective_tortuosity(im, phase="pore", device="cpu")
    assert p.percolating and abs(p.tau - q.tau) > 1e-3


def test_channel_split_across_the_seam_percolates_only_when_periodic():
    im = np.ones((10, 7, 5), np.uint8)
    im[:6, 0, 2] = 0          # first half of the channel at y = 0, layers 0-5
    im[5:, 6, 2] = 0          # second half at y = 6, layers 5-9: joined only across the seam
    with pytest.warns(NonPercolatingWarning):
        closed = effective_tortuosity(im, phase="pore", device="cpu")
    assert not closed.percolating and math.isinf(closed.tau)
    opened = effective_tortuosity(im, phase="pore", periodic=True, tol=1e-9)
    assert opened.percolating
    # one line of 11 voxels, resistance 1/2 + 5 + 1 (wrap face) + 4 + 1/2 = 11: F = 1/11
    assert opened.d_eff == pytest.approx((1 / 11) * 10 / 35, rel=1e-6)
    cm = classify_clusters(im, phase="pore", periodic=True)
    assert int(cm.percolating.sum()) == 11
    assert int(classify_clusters(im, phase="pore").dead_end.sum()) == 11


@pytest.mark.parametrize("vs", [(1.0, 2.0, 0.5), (0.3, 0.3, 1.7), (5.0, 1.0, 1.0)])
def test_anisotropic_open_block_has_tau_one(vs):
    block = np.zeros((9, 7, 6), np.uint8)
    for axis in range(3):
        r = effective_tortuosity(block, phase="pore", axis=axis, voxel_size=vs)
        assert r.tau == pytest.approx(1.0, abs=1e-6) and r.voxel_size == vs
        m = multiphase_tortuosity(block, conductivities={0: 2.0}, axis=axis, voxel_size=vs,
                                  periodic=True)
        assert m.tau == pytest.approx(1.0, abs=1e-6) and m.d_eff == pytest.approx(2.0, rel=1e-6)


def test_anisotropic_spacing_known_invariances():
    # a structure extruded along axis 2 carries no flux along it: its spacing cannot matter
    im2d = _blobs((28, 26, 1), seed=7)[:, :, 0]
    im = np.repeat(im2d[:, :, None], 6, axis=2)
    iso = effective_tortuosity(im, phase="pore", tol=1e-10, device="cpu")
    assert iso.percolating
    for dx in (0.25, 3.0):
        ani = effective_tortuosity(im, phase="pore", voxel_size=(1.0, 1.0, dx), tol=1e-10)
        assert ani.tau == pytest.approx(iso.tau, rel=1e-6)
    # the spacing along the other axes enters the answer; only ratios matter
    a = effective_tortuosity(im, phase="pore", voxel_size=(1.0, 2.0, 3.0), tol=1e-10)
    b = effective_tortuosity(im, phase="pore", voxel_size=(0.5, 1.0, 1.5), tol=1e-10)
    assert abs(a.tau - iso.tau) > 1e-3 and a.tau == pytest.approx(b.tau, rel=1e-6)
    # equal spacing is the isotropic solve, whatever the unit
    same = effective_tortuosity(im, phase="pore", voxel_size=(2.5, 2.5, 2.5), tol=1e-10)
    assert same.tau == pytest.approx(iso.tau, rel=1e-9) and same.voxel_size == (2.5, 2.5, 2.5)


def test_geodesic_staircase_scales_with_the_step_length():
    im = np.ones((10, 10, 3), np.uint8)
    for k in range(10):
        im[k, k, 1] = 0
        if k < 9:
            im[k, k + 1, 1] = 0          # 6-connected 45° staircase
    # inlet voxel (0, 0): 9 diagonal steps; (0, 1): 8 diagonal steps, then one along axis 0
    iso = geodesic_tortuosity(im, phase="pore")
    assert iso.tau == pytest.approx((17 * math.sqrt(2) + 1) / 2 / 9)
    line = np.ones((10, 10, 3), np.uint8)
    for k in range(10):
        line[k, k, 1] = 0                 # digital 45° line (26-connected)
    for dz, dy in ((1.0, 2.0), (0.5, 1.5), (3.0, 1.0)):
        hyp = math.hypot(dz, dy)
        ani = geodesic_tortuosity(im, phase="pore", voxel_size=(dz, dy, 7.0))
        assert ani.tau == pytest.approx((17 * hyp + dz) / 2 / (9 * dz))
        assert ani.voxel_size == (dz, dy, 7.0)
        diag = geodesic_tortuosity(line, phase="pore", voxel_size=(dz, dy, 7.0))
        assert diag.tau == pytest.approx(hyp / dz)
    straight = geodesic_tortuosity(np.zeros((8, 4, 4), np.uint8), phase="pore", metric="fmm",
                                   voxel_size=(0.2, 3.0, 1.0))
    assert straight.tau == pytest.approx(1.0)


def test_fmm_anisotropic_update_measures_the_physical_diagonal():
    im = np.zeros((41, 41, 3), np.uint8)
    iso = geodesic_tortuosity(im, phase="pore", metric="fmm")
    ani = geodesic_tortuosity(im, phase="pore", metric="fmm", voxel_size=(1.0, 2.0, 1.0))
    assert iso.tau == pytest.approx(1.0) and ani.tau == pytest.approx(1.0)
    # a slanted slot: paths must move sideways one voxel per layer
    slot = np.ones((30, 40, 3), np.uint8)
    for k in range(30):
        slot[k, k:k + 6, :] = 0
    g1 = geodesic_tortuosity(slot, phase="pore", metric="fmm").tau
    g2 = geodesic_tortuosity(slot, phase="pore", metric="fmm", voxel_size=(1.0, 2.0, 1.0)).tau
    assert 1.0 < g1 < g2 < math.sqrt(5) * 1.05


@pytest.mark.parametrize("kw", [
    {}, {"periodic": True}, {"voxel_size": (1.0, 0.5, 2.0)},
    {"periodic": True, "voxel_size": (2.0, 1.0, 1.0), "dirichlet": "ghost"},
])
def test_flux_is_conserved_through_every_layer(kw):
    lab = _three_phase((36, 30, 28), seed=5)
    r = multiphase_tortuosity(lab, conductivities={0: 1.0, 1: 0.0, 2: 0.1}, tol=1e-11,
                              max_iter=2000, **kw)
    assert r.converged and r.percolating
    assert r.flux_spread < 1e-6
    assert sum(r.flux_shares.values()) == pytest.approx(1.0)
    assert r.flux_shares[1] == 0.0


def test_insulating_dead_ends_and_floating_clusters_keep_the_system_regular():
    lab = np.full((16, 8, 8), 0, np.uint8)
    lab[:, :4] = 1                          # conducting slab through the volume
    lab[:6, 5:7, 5:7] = 2                   # dead end open to the inlet
    lab[8:10, 5:7, 5:7] = 2                 # floating
    lab[12:, 5:7, 5:7] = 2                  # dead end open to the outlet
    r = multiphase_tortuosity(lab, conductivities={1: 1.0, 2: 0.5}, tol=1e-9)
    assert r.converged and r.d_eff == pytest.approx(0.5, rel=1e-6)
    assert r.flux_shares[2] == pytest.approx(0.0, abs=1e-9)


def test_no_conducting_path_warns_and_gives_inf():
    lab = np.zeros((8, 5, 5), np.uint8)
    lab[4] = 1
    with pytest.warns(NonPercolatingWarning):
        r = multiphase_tortuosity(lab, conductivities={0: 1.0, 1: 0.0})
    assert math.isinf(r.tau) and r.d_eff == 0.0 and not r.percolating


def test_matches_taufactor_multiphase_solver_on_a_small_volume():
    tf = pytest.importorskip("taufactor")
    lab = _three_phase((24, 20, 20), seed=6) + 1        # TauFactor: label 0 is the insulator
    cond = {1: 1.0, 2: 0.2, 3: 0.05}
    s = tf.MultiPhaseSolver(lab, cond=cond, device="cpu")
    s.solve(verbose=False, conv_crit=1e-5, iter_limit=50000)
    ours = multiphase_tortuosity(lab, conductivities=cond, dirichlet="ghost", tol=1e-9)
    assert ours.tau == pytest.approx(float(np.asarray(s.tau).reshape(-1)[0]), rel=2e-3)


@pytest.mark.parametrize(("cond", "match"), [
    ({7: 1.0}, "label 7, which is not in the volume"),
    ({0: -1.0}, "finite and >= 0"),
    ({0: float("nan")}, "finite and >= 0"),
    ({0: 0.0, 1: 0.0}, "every conductivity is 0"),
    ({}, "non-empty mapping"),
    ([1, 2], "non-empty mapping"),
])
def test_bad_conductivities_are_config_errors(cond, match):
    lab = np.zeros((6, 4, 4), np.uint8)
    lab[3:] = 1
    with pytest.raises(ConfigError, match=match):
        multiphase_tortuosity(lab, conductivities=cond)


@pytest.mark.parametrize("vs", [0.0, -1.0, float("nan"), (1.0, 0.0, 1.0), (1.0, 2.0), "abc",
                                (1.0, float("inf"), 1.0)])
def test_bad_voxel_size_is_a_config_error(vs):
    lab = np.zeros((6, 4, 4), np.uint8)
    with pytest.raises(ConfigError, match="voxel_size"):
        multiphase_tortuosity(lab, conductivities={0: 1.0}, voxel_size=vs)
    with pytest.raises(ConfigError, match="voxel_size"):
        effective_tortuosity(lab, phase="pore", voxel_size=vs)
    with pytest.raises(ConfigError, match="voxel_size"):
        geodesic_tortuosity(lab, phase="pore", voxel_size=vs)


def test_bad_volume_and_options():
    with pytest.raises(VolumeError, match="at least 2 voxels along the transport axis"):
        multiphase_tortuosity(np.zeros((1, 5, 5), np.uint8), conductivities={0: 1.0},
                              periodic=True)
    with pytest.raises(VolumeError, match="at least 2 voxels"):
        effective_tortuosity(np.zeros((4, 1, 5), np.uint8), phase=0, axis=1, periodic=True)
    with pytest.raises(VolumeError, match="integer labels"):
        multiphase_tortuosity(np.full((4, 4, 4), 0.5), conductivities={0: 1.0})
    with pytest.raises(ConfigError, match="dirichlet"):
        multiphase_tortuosity(np.zeros((4, 4, 4), np.uint8), conductivities={0: 1.0},
                              dirichlet="wall")
    with pytest.raises(ConfigError, match="tol"):
        multiphase_tortuosity(np.zeros((4, 4, 4), np.uint8), conductivities={0: 1.0}, tol=2.0)


def test_memory_check_names_the_size_needed(monkeypatch):
    from twinsr.exceptions import MemoryBudgetError
    from twinsr.transport import multiphase

    monkeypatch.setattr("twinsr._validation.available_memory_bytes", lambda: 1000)
    with pytest.raises(MemoryBudgetError, match=r"55 bytes per voxel"):
        multiphase_tortuosity(np.zeros((10, 10, 10), np.uint8), conductivities={0: 1.0})
    assert multiphase.VARCOEF_BYTES_PER_VOXEL["float32"] == 55
