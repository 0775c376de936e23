"""Tests of the per-phase Laplace solve and the diffusion image (twinsr.transport.laplace)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from twinsr.exceptions import ConvergenceWarning, NonPercolatingWarning, VolumeError
from twinsr.transport import LaplaceSolution, diffusion_channels, solve_laplace


def blobs(shape: tuple[int, int, int], seed: int = 0, sigma: float = 2.0,
          porosity: float = 0.5) -> np.ndarray:
    """Smooth random two-phase volume (uint8, 1 = solid)."""
    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f > np.quantile(f, porosity)).astype(np.uint8)


def test_open_block_is_linear_with_equal_flux() -> None:
    im = np.zeros((12, 5, 7), np.uint8)
    sol = solve_laplace(im, phase="pore", device="cpu")
    assert isinstance(sol, LaplaceSolution)
    assert sol.field.dtype == np.float32 and sol.field.shape == im.shape
    expected = (np.arange(12) + 0.5) / 12
    np.testing.assert_allclose(sol.field, np.broadcast_to(expected[:, None, None], im.shape),
                               atol=1e-6)
    np.testing.assert_allclose(sol.flux_per_layer, 35 / 12, rtol=1e-6)
    assert sol.percolating and sol.converged and sol.n_unknowns == im.size
    assert not sol.dead_end_clusters and not sol.floating_clusters


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_open_block_along_each_axis(axis: int) -> None:
    shape = (20, 22, 24)  # > 4096 voxels: the multigrid path
    sol = solve_laplace(np.ones(shape, np.uint8), phase="solid", axis=axis, device="cpu")
    n = shape[axis]
    prof = np.moveaxis(sol.field, axis, 0)
    np.testing.assert_allclose(prof, np.broadcast_to(((np.arange(n) + 0.5) / n)[:, None, None],
                                                     prof.shape), atol=2e-6)
    assert sol.axis == axis and sol.phase == 1


def test_flux_equal_on_every_layer_random_medium() -> None:
    im = blobs((40, 36, 32), seed=3)
    sol = solve_laplace(im, phase=0, tol=1e-8, device="cpu")
    assert sol.converged and sol.percolating
    f = sol.flux_per_layer
    assert f.shape == (41,)
    assert np.max(np.abs(f - f.mean())) / f.mean() < 1e-5
    assert sol.residual <= 1e-8
    # zero outside the phase, within [0, 1] inside
    assert np.all(sol.field[im == 1] == 0)
    assert sol.field.min() >= 0 and sol.field.max() <= 1


def test_discrete_equations_hold() -> None:
    """The solution satisfies the finite-volume balance at every unknown (independent check)."""
    im = blobs((18, 20, 22), seed=5)
    sol = solve_laplace(im, phase=0, tol=1e-10, device="cpu")
    lab, _ = ndi.label(im == 0)
    perc = np.intersect1d(lab[0][lab[0] > 0], lab[-1][lab[-1] > 0])
    m = np.isin(lab, perc)
    u = np.pad(sol.field.astype(np.float64), 1)
    mp = np.pad(m, 1)
    bal = np.zeros(im.shape)
    c = (slice(1, -1),) * 3
    for ax in range(3):
        for s in (-1, 1):
            nb_u = np.roll(u, s, axis=ax)[c]
            nb_m = np.roll(mp, s, axis=ax)[c]
            bal += np.where(nb_m, nb_u - u[c], 0.0)
    bal[0] += 2 * (0.0 - u[c][0])
    bal[-1] += 2 * (1.0 - u[c][-1])
    assert np.max(np.abs(bal[m])) < 1e-5


def test_dead_end_and_floating_clusters() -> None:
    im = np.ones((10, 9, 9), np.uint8)
    im[:, 1, 1] = 0  # percolating channel
    im[:4, 5, 5] = 0  # touches only the inlet -> 0
    im[6:, 7, 7] = 0  # touches only the outlet -> 1
    im[4:6, 3, 7] = 0  # floating -> 0
    sol = solve_laplace(im, phase="pore", device="cpu")
    assert sol.percolating and sol.dead_end_clusters and sol.floating_clusters
    assert sol.n_unknowns == 10
    assert np.all(sol.field[:4, 5, 5] == 0)
    assert np.all(sol.field[6:, 7, 7] == 1)
    assert np.all(sol.field[4:6, 3, 7] == 0)
    np.testing.assert_allclose(sol.field[:, 1, 1], (np.arange(10) + 0.5) / 10, atol=1e-6)


def test_non_percolating_phase_warns_and_keeps_dead_end_values() -> None:
    im = np.ones((8, 6, 6), np.uint8)
    im[4, :, :] = 0  # a pore layer across the axis
    im[6:, 2, 2] = 0  # a dead end on the outlet side
    with pytest.warns(NonPercolatingWarning, match="does not connect"):
        sol = solve_laplace(im, phase="pore", device="cpu")
    assert not sol.percolating and sol.flux == 0.0 and sol.n_unknowns == 0
    assert np.all(sol.field[6:, 2, 2] == 1) and np.all(sol.field[4] == 0)


def test_empty_phase_warns() -> None:
    with pytest.warns(NonPercolatingWarning, match="has no voxels"):
        sol = solve_laplace(np.ones((6, 6, 6), np.uint8), phase="pore", device="cpu")
    assert not sol.percolating and np.all(sol.field == 0)


def test_max_iter_gives_convergence_warning() -> None:
    im = blobs((24, 24, 24), seed=1)
    with pytest.warns(ConvergenceWarning, match="stopped after 1 iterations"):
        sol = solve_laplace(im, phase=0, max_iter=1, tol=1e-12, device="cpu")
    assert not sol.converged and sol.iterations == 1 and sol.residual > 1e-12


def test_progress_callback_is_called() -> None:
    seen: list[tuple[int, float]] = []
    solve_laplace(blobs((20, 20, 20), seed=2), phase=1, device="cpu",
                  progress=lambda i, r: seen.append((i, r)))
    assert seen and seen[0][0] == 0 and seen[-1][1] <= 1e-6
    assert [i for i, _ in seen] == list(range(len(seen)))


def test_torch_backend_matches_numba() -> None:
    im = blobs((28, 26, 24), seed=7)
    a = solve_laplace(im, phase=0, device="cpu", tol=1e-8)
    b = solve_laplace(im, phase=0, device="torch-cpu", tol=1e-8)
    assert b.device == "torch-cpu" and b.converged
    np.testing.assert_allclose(b.field, a.field, atol=1e-5)
    assert abs(b.flux - a.flux) / a.flux < 1e-6


def test_diffusion_channels_properties() -> None:
    im = blobs((22, 20, 18), seed=4)
    ch = diffusion_channels(im, axis=1, device="cpu")
    assert ch.shape == (2, *im.shape) and ch.dtype == np.float32
    assert np.all(ch[0][im == 1] == 0) and np.all(ch[1][im == 0] == 0)
    assert ch.min() >= 0 and ch.max() <= 1
    pore = solve_laplace(im, phase=0, axis=1, device="cpu").field
    solid = solve_laplace(im, phase=1, axis=1, device="cpu").field
    np.testing.assert_allclose(ch[0], pore, atol=1e-6)
    np.testing.assert_allclose(ch[1], solid, atol=1e-6)


def test_diffusion_channels_empty_phase_gives_zero_channel() -> None:
    im = np.zeros((6, 5, 4), np.uint8)
    with pytest.warns(NonPercolatingWarning, match="solid phase has no voxels"):
        ch = diffusion_channels(im, device="cpu")
    assert np.all(ch[1] == 0)
    np.testing.assert_allclose(ch[0][:, 0, 0], (np.arange(6) + 0.5) / 6, atol=1e-6)


@pytest.mark.parametrize(
    ("im", "kwargs", "match"),
    [
        (np.full((4, 4, 4), 3, np.uint8) * np.arange(4)[:, None, None], {}, "must be binary"),
        (np.full((4, 4, 4), np.nan), {}, "NaN"),
        (np.zeros((4, 4), np.uint8), {}, "must be 3-D"),
        (np.zeros((1, 4, 4), np.uint8), {}, "at least 2 voxels along axis 0"),
        (np.zeros((4, 4, 4), np.uint8), {"axis": 3}, "axis"),
        (np.zeros((4, 4, 4), np.uint8), {"phase": 2}, "phase"),
        (np.zeros((4, 4, 4), np.uint8), {"tol": 0}, "tol"),
        (np.zeros((4, 4, 4), np.uint8), {"tol": 2.0}, "tol"),
        (np.zeros((4, 4, 4), np.uint8), {"max_iter": 0}, "max_iter"),
        (np.zeros((4, 4, 4), np.uint8), {"device": "tpu"}, "device"),
    ],
)
def test_bad_input(im: np.ndarray, kwargs: dict, match: str) -> None:
    args = {"phase": 0, **kwargs}
    with pytest.raises(VolumeError, match=match):
        solve_laplace(im, **args)


def test_bad_input_diffusion_channels() -> None:
    with pytest.raises(VolumeError, match="at least 2 voxels along axis 2"):
        diffusion_channels(np.zeros((4, 4, 1), np.uint8), axis=2)
    with pytest.raises(VolumeError, match="must be binary"):
        diffusion_channels(np.arange(27).reshape(3, 3, 3))


@pytest.mark.gpu
def test_cuda_backend_matches_numba() -> None:
    im = blobs((48, 40, 44), seed=9)
    a = solve_laplace(im, phase=1, device="cpu", tol=1e-8)
    b = solve_laplace(im, phase=1, device="cuda", tol=1e-8)
    assert b.device.startswith("cuda") and b.converged
    np.testing.assert_allclose(b.field, a.field, atol=1e-5)
    assert abs(b.flux - a.flux) / a.flux < 1e-6


@pytest.mark.parametrize("tol, key", [(1e-6, "float32"), (1e-8, "float64")])
def test_memory_per_voxel_is_the_stated_constant(tol: float, key: str) -> None:
    """The measured tracemalloc peak of a 128^3 solve is within 10 % below the constant that the
    memory check and the docs use (an open block: the arrays are bounding-box sized, so the peak
    does not depend on the geometry, and it converges at once)."""
    import tracemalloc

    from twinsr.transport.laplace import LAPLACE_BYTES_PER_VOXEL, laplace_bytes_per_voxel

    n = 128
    im = np.zeros((n, n, n), np.uint8)
    solve_laplace(im[:72, :72, :72], phase="pore", tol=tol, device="cpu")  # JIT + thread pool
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        sol = solve_laplace(im, phase="pore", tol=tol, device="cpu")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_voxel = (peak - base) / im.size
    assert laplace_bytes_per_voxel(tol) == LAPLACE_BYTES_PER_VOXEL[key]
    assert 0.9 * LAPLACE_BYTES_PER_VOXEL[key] <= per_voxel <= LAPLACE_BYTES_PER_VOXEL[key], per_voxel
    assert sol.converged


def test_memory_check_uses_the_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    """The solve is refused before allocating when constant x voxels exceeds what is available."""
    import twinsr._validation as validation
    from twinsr.exceptions import MemoryBudgetError
    from twinsr.transport.laplace import LAPLACE_BYTES_PER_VOXEL

    im = np.zeros((20, 10, 10), np.uint8)
    need = im.size * LAPLACE_BYTES_PER_VOXEL["float32"]
    monkeypatch.setattr(validation, "available_memory_bytes", lambda: need - 1)
    with pytest.raises(MemoryBudgetError, match="Laplace solve"):
        solve_laplace(im, phase="pore", device="cpu")
    monkeypatch.setattr(validation, "available_memory_bytes", lambda: need)
    assert solve_laplace(im, phase="pore", device="cpu").converged
    monkeypatch.setattr(validation, "available_memory_bytes",
                        lambda: im.size * LAPLACE_BYTES_PER_VOXEL["float64"] - 1)
    with pytest.raises(MemoryBudgetError, match="Laplace solve"):
        solve_laplace(im, phase="pore", tol=1e-8, device="cpu")
