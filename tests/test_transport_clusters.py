"""Cluster classification (percolating / dead end / floating) and the face-flux routine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from twinsr.exceptions import VolumeError
from twinsr.transport import (
    classify_clusters,
    effective_diffusivity,
    face_fluxes,
    flux_spread,
    solve_laplace,
)
from twinsr.transport.clusters import (
    FLOATING,
    INLET_DEAD_END,
    NOT_IN_PHASE,
    OUTLET_DEAD_END,
    PERCOLATING,
)


def _kinds_reference(im: np.ndarray, phase: int, axis: int) -> np.ndarray:
    """Independent reference: one cluster at a time, touching tested with np.any on the faces."""
    lab, n = ndi.label(im == phase)
    out = np.zeros(im.shape, np.uint8)
    for c in range(1, n + 1):
        m = lab == c
        t_in = np.take(m, 0, axis=axis).any()
        t_out = np.take(m, -1, axis=axis).any()
        out[m] = (PERCOLATING if t_in and t_out else INLET_DEAD_END if t_in
                  else OUTLET_DEAD_END if t_out else FLOATING)
    return out


def test_known_volume_every_kind() -> None:
    im = np.ones((6, 4, 4), np.uint8)
    im[:, 0, 0] = 0          # percolating channel (6 voxels)
    im[0:3, 3, 3] = 0        # open to the inlet only
    im[4:6, 3, 0] = 0        # open to the outlet only
    im[2:4, 2, 1] = 0        # floating (2 voxels)
    cm = classify_clusters(im, phase="pore", axis=0)
    assert cm.kind.dtype == np.uint8 and cm.kind.shape == im.shape
    assert int(cm.percolating.sum()) == 6 and cm.n_percolating == 6
    assert (cm.kind == INLET_DEAD_END).sum() == 3 and (cm.kind == OUTLET_DEAD_END).sum() == 2
    assert int(cm.floating.sum()) == 2 and cm.has_floating and cm.has_dead_end
    assert int(cm.dead_end.sum()) == 5
    assert cm.n_phase == int((im == 0).sum()) == 13
    assert (cm.kind[im == 1] == NOT_IN_PHASE).all()
    assert cm.phase == 0 and cm.axis == 0
    # along axis 1 the channel touches neither y-face except at y = 0: it becomes a dead end
    cm1 = classify_clusters(im, phase=0, axis=1)
    assert cm1.kind[0, 0, 0] == INLET_DEAD_END


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("phase", [0, 1])
def test_random_volumes_match_reference(axis: int, phase: int) -> None:
    rng = np.random.default_rng(7 + axis + 3 * phase)
    im = (ndi.gaussian_filter(rng.standard_normal((14, 12, 10)), 1.2) > 0.1).astype(np.uint8)
    cm = classify_clusters(im, phase=phase, axis=axis)
    ref = _kinds_reference(im, phase, axis)
    np.testing.assert_array_equal(cm.kind, ref)
    assert cm.has_floating == bool((ref == FLOATING).any())
    assert cm.has_dead_end == bool(((ref == INLET_DEAD_END) | (ref == OUTLET_DEAD_END)).any())


def test_same_classes_as_the_solver_uses() -> None:
    """The solver's unknowns are exactly the percolating voxels; dead ends at the outlet get 1."""
    rng = np.random.default_rng(3)
    im = (ndi.gaussian_filter(rng.standard_normal((16, 12, 12)), 1.0) > 0.0).astype(np.uint8)
    sol = solve_laplace(im, phase="pore", axis=0, device="cpu")
    cm = classify_clusters(im, phase="pore", axis=0)
    assert sol.n_unknowns == cm.n_percolating
    assert sol.floating_clusters == cm.has_floating and sol.dead_end_clusters == cm.has_dead_end
    assert (sol.field[cm.kind == OUTLET_DEAD_END] == 1).all()
    assert (sol.field[(cm.kind == INLET_DEAD_END) | (cm.kind == FLOATING)] == 0).all()


@pytest.mark.parametrize("bad, match", [
    (dict(phase="air"), "phase"), (dict(phase="pore", axis=3), "axis"),
])
def test_bad_options(bad: dict, match: str) -> None:
    with pytest.raises(VolumeError, match=match):
        classify_clusters(np.zeros((4, 4, 4), np.uint8), **bad)


def test_not_binary_or_not_3d() -> None:
    with pytest.raises(VolumeError, match="binary"):
        classify_clusters(np.arange(27).reshape(3, 3, 3), phase=0)
    with pytest.raises(VolumeError, match="3-D"):
        classify_clusters(np.zeros((4, 4)), phase=0)


# ---- face fluxes ------------------------------------------------------------------------------
def _mean_flux_reference(u: np.ndarray, perc: np.ndarray) -> np.ndarray:
    """The numpy formula the physics module used before (transport axis first)."""
    uu = np.where(perc, u.astype(np.float64), 0.0)
    both = perc[1:] & perc[:-1]
    inner = np.where(both, uu[1:] - uu[:-1], 0.0).sum(axis=(1, 2))
    inlet = 2.0 * uu[0][perc[0]].sum()
    outlet = 2.0 * (1.0 - uu[-1][perc[-1]]).sum()
    return np.concatenate([[inlet], inner, [outlet]])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_face_fluxes_of_any_field_match_the_formula(axis: int) -> None:
    rng = np.random.default_rng(11)
    u = rng.random((9, 7, 8)).astype(np.float32)
    perc = rng.random((9, 7, 8)) < 0.6
    got = face_fluxes(u, perc, axis=axis)
    ref = _mean_flux_reference(np.moveaxis(u, axis, 0), np.moveaxis(perc, axis, 0))
    assert got.shape == (u.shape[axis] + 1,) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_face_fluxes_of_the_solution_equal_the_solver_fluxes(axis: int) -> None:
    rng = np.random.default_rng(5)
    im = (ndi.gaussian_filter(rng.standard_normal((14, 14, 14)), 1.0) > 0.2).astype(np.uint8)
    sol = solve_laplace(im, phase="pore", axis=axis, tol=1e-8, device="cpu")
    perc = classify_clusters(im, phase="pore", axis=axis).percolating
    f = face_fluxes(sol.field, perc, axis=axis)
    # the solver takes its fluxes from the float64 iterate; the field is stored as float32
    np.testing.assert_allclose(f, sol.flux_per_layer, rtol=1e-5, atol=1e-6)
    assert flux_spread(sol.flux_per_layer) < 1e-4


def test_open_block_and_channel_known_answers() -> None:
    n = 8
    lin = np.broadcast_to(((np.arange(n) + 0.5) / n)[:, None, None], (n, 3, 5))
    f = face_fluxes(lin, np.ones((n, 3, 5), bool))
    np.testing.assert_allclose(f, np.full(n + 1, 15 / n))
    assert effective_diffusivity(f, (n, 3, 5)) == pytest.approx(1.0)
    # one straight channel of the 15 columns: D_eff = 1/15, flux 1/n per face
    one = np.zeros((n, 3, 5), bool)
    one[:, 1, 2] = True
    f1 = face_fluxes(lin, one)
    np.testing.assert_allclose(f1, np.full(n + 1, 1 / n))
    assert effective_diffusivity(f1, (n, 3, 5)) == pytest.approx(1 / 15)
    assert flux_spread(f1) == pytest.approx(0.0, abs=1e-12)
    assert flux_spread(np.zeros(3)) == np.inf


def test_face_flux_bad_input() -> None:
    u = np.zeros((4, 4, 4))
    with pytest.raises(VolumeError, match="same shape"):
        face_fluxes(u, np.ones((4, 4, 3), bool))
    bad = u.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(VolumeError, match="NaN"):
        face_fluxes(bad, np.ones((4, 4, 4), bool))
    with pytest.raises(VolumeError, match="axis"):
        face_fluxes(u, np.ones((4, 4, 4), bool), axis=5)
    with pytest.raises(VolumeError, match="5 entries"):
        effective_diffusivity(np.ones(4), (4, 4, 4))
