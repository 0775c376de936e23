"""Steady conduction in labelled volumes: a conductivity per label, periodic sides, anisotropic voxels.

Discretisation
--------------
Cell-centred finite volumes as in :mod:`twinsr.transport.laplace`, with a conductivity D_p per
label. The conductance of the face shared by two voxels is the **harmonic mean** of their
conductivities, 2 D_a D_b / (D_a + D_b) (two half-voxel resistors in series; TauFactor's
``MultiPhaseSolver`` rule), times face area / centre distance of that axis: for voxel size
(h0, h1, h2) the weights are h1 h2 / h0, h0 h2 / h1, h0 h1 / h2. A face with an insulating voxel
(D = 0) carries nothing. Along ``axis`` the Dirichlet condition u = 0 / u = 1 sits either on the
outer face of the first / last layer, half a voxel from the centres (``dirichlet="face"``, boundary
conductance 2 D A / h, transport length L h: TauFactor's ``Solver``, ``PeriodicSolver`` and
``AnisotropicSolver``, and :func:`twinsr.transport.effective_tortuosity`), or at the centre of a
ghost voxel one voxel outside with the conductivity of its neighbour (``dirichlet="ghost"``,
conductance D A / h, length (L + 1) h: TauFactor's ``MultiPhaseSolver``). Both give τ = 1 for an
open block and differ by O(1/L) on other structures. With ``periodic=True`` the four faces
parallel to ``axis`` are periodic (the two Dirichlet faces stay).

Unknowns: the voxels of 6-connected clusters of conducting voxels (D > 0) that touch both
Dirichlet faces, with connectivity across the periodic faces when ``periodic``; clusters touching
one face take that face's value, the others 0. Insulating and cut-off voxels are therefore never
unknowns and the system is non-singular.

Effective diffusivity D_eff = F̄ L_eff / A (F̄ the mean flux through the L + 1 faces normal to
``axis`` for Δu = 1, A the cross-section), in the units of the conductivities; the multi-phase
tortuosity factor is TauFactor's τ = (Σ_p D_p ε_p) / D_eff with ε_p the volume fraction of label p.

Solver: flexible CG preconditioned by a geometric multigrid V-cycle with explicit face conductances
(:mod:`twinsr.transport._varcoef`), numba kernels on CPU. Peak memory:
:data:`VARCOEF_BYTES_PER_VOXEL` bytes per voxel (checked before allocating).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from twinsr._validation import check_axis, check_memory, check_volume
from twinsr.exceptions import ConfigError, ConvergenceWarning, NonPercolatingWarning, VolumeError
from twinsr.transport import _varcoef as vc
from twinsr.transport.clusters import OUTLET_DEAD_END, PERCOLATING, ClusterMap, classify_mask
from twinsr.transport.flux import flux_spread
from twinsr.transport.laplace import check_solver_options

__all__ = [
    "DIRICHLET_MODES",
    "VARCOEF_BYTES_PER_VOXEL",
    "MultiphaseResult",
    "check_voxel_size",
    "multiphase_tortuosity",
    "solve_conductivity",
]

log = logging.getLogger(__name__)

DIRICHLET_MODES = ("face", "ghost")
# Below this relative tolerance the CG vectors are float64.
_FLOAT32_TOL = 1e-7
# Peak memory of one solve in bytes per voxel (input excluded), by CG vector dtype: tracemalloc
# peaks of periodic multiphase_tortuosity on three-label blobs (D = 1, 0, 0.1) at 96^3 and 128^3:
# 54.1 / 53.8 B (float32 vectors) and 76.7 / 76.7 B (float64), rounded up. Face conductances (12),
# float64 solution (8), five CG vectors (20 / 40), coarse levels, conductivity map and phase
# index (5), cluster codes (1), float32 output field (4).
VARCOEF_BYTES_PER_VOXEL = {"float32": 55, "float64": 77}


def check_voxel_size(voxel_size: object) -> tuple[float, float, float] | None:
    """``voxel_size`` as (dz, dy, dx) positive finite floats (a number: cubic voxels), or None.

    Raises
    ------
    ConfigError
        Not a number or three numbers, or not positive and finite (NaN, 0, negative, inf).

    Examples
    --------
    >>> check_voxel_size(0.5), check_voxel_size([1, 2, 2]), check_voxel_size(None)
    ((0.5, 0.5, 0.5), (1.0, 2.0, 2.0), None)
    """
    if voxel_size is None:
        return None
    if isinstance(voxel_size, (int, float, np.integer, np.floating)) and not isinstance(
            voxel_size, bool):
        vals: tuple[float, ...] = (float(voxel_size),) * 3
    else:
        try:
            vals = tuple(float(v) for v in voxel_size)  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"`voxel_size` must be a number or 3 numbers (dz, dy, dx), got "
                              f"{voxel_size!r}") from exc
    if len(vals) != 3:
        raise ConfigError(f"`voxel_size` must be a number or 3 numbers (dz, dy, dx), got {vals}")
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise ConfigError(f"`voxel_size` must be positive and finite along every axis, got {vals}; "
                          "pass the voxel edge lengths (dz, dy, dx), e.g. (0.5, 0.4, 0.4)")
    return vals  # type: ignore[return-value]


def _spacing_t(voxel_size: tuple[float, float, float] | None, ax: int) -> tuple[float, float, float]:
    h = voxel_size or (1.0, 1.0, 1.0)
    order = [ax] + [a for a in range(3) if a != ax]
    return tuple(h[a] for a in order)  # type: ignore[return-value]


@dataclass(frozen=True)
class ConductionSolve:
    """One variable-coefficient solve with the transport axis first (see :func:`solve_conductivity`)."""

    field: np.ndarray  # float32, u at the voxel centres (dead-end values set)
    flux: np.ndarray  # float64, (L + 1,), conductance units for Δu = 1
    iterations: int
    residual: float
    converged: bool
    clusters: ClusterMap
    d_eff: float  # F̄ · L_eff / A
    phase_flux: np.ndarray | None  # volume-integrated axial flux per phase index


def solve_conductivity(
    g_t: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    periodic: bool,
    dirichlet: str,
    tol: float,
    max_iter: int,
    progress: object = None,
    phase_index: np.ndarray | None = None,
    n_phases: int = 0,
) -> ConductionSolve:
    """Solve -div(D grad u) = 0 on a float32 conductivity map with the transport axis first.

    ``g_t`` (C-contiguous, checked by the caller; overwritten: 0 off the unknowns on return) holds
    D per voxel; ``spacing`` the voxel size in that axis order. ``phase_index`` (uint8, same
    shape) and ``n_phases`` ask for the flux carried in each phase. Refuses (MemoryBudgetError) a
    solve that does not fit, before allocating; warns (ConvergenceWarning) at ``max_iter``.
    """
    dtype = np.float64 if tol < _FLOAT32_TOL else np.float32
    key = "float64" if dtype is np.float64 else "float32"
    check_memory(g_t.size * VARCOEF_BYTES_PER_VOXEL[key],
                 f"the conduction solve on {g_t.shape} voxels "
                 f"({VARCOEF_BYTES_PER_VOXEL[key]} bytes per voxel)")
    n0 = g_t.shape[0]
    cl = classify_mask(g_t > 0, 0, periodic=periodic)
    field_out = np.zeros(g_t.shape, np.float32)
    if cl.n_percolating == 0:
        field_out[cl.kind == OUTLET_DEAD_END] = 1.0
        return ConductionSolve(field_out, np.zeros(n0 + 1), 0, 0.0, True, cl, 0.0,
                               np.zeros(n_phases) if n_phases else None)
    g_t[cl.kind != PERCOLATING] = 0.0
    h0, h1, h2 = spacing
    weights = (h1 * h2 / h0, h0 * h2 / h1, h0 * h1 / h2)
    bf = 2.0 if dirichlet == "face" else 1.0
    fine = vc.build_fine_level(g_t, weights, boundary_factor=bf, periodic=periodic)
    length = n0 if dirichlet == "face" else n0 + 1
    off = 0.5 if dirichlet == "face" else 1.0
    x = np.zeros(g_t.shape, np.float64)
    x[...] = ((np.arange(n0, dtype=np.float64) + off) / length)[:, None, None]
    x[g_t == 0] = 0.0
    it, res, conv = vc.var_pcg(fine, x, tol=tol, max_iter=max_iter, progress=progress,
                               dtype=dtype)  # type: ignore[arg-type]
    flux = vc.face_fluxes_var(fine, x)
    shares = (vc.flux_by_phase(fine, x, phase_index, n_phases)
              if phase_index is not None and n_phases else None)
    del fine
    field_out[...] = x
    del x
    if cl.has_dead_end:
        field_out[cl.kind == OUTLET_DEAD_END] = 1.0
    if not conv:
        warnings.warn(f"the conduction solve stopped after {it} iterations with relative residual "
                      f"{res:.3g} > tol={tol:g}; raise `max_iter` or loosen `tol`",
                      ConvergenceWarning, stacklevel=3)
    area = g_t.shape[1] * h1 * g_t.shape[2] * h2
    d_eff = float(flux.mean()) * length * h0 / area
    log.debug("conduction solve: %d unknowns, %d iterations, residual %.3g", cl.n_percolating, it,
              res)
    return ConductionSolve(field_out, flux, it, res, conv, cl, d_eff, shares)


@dataclass(frozen=True)
class MultiphaseResult:
    """Effective conductivity of a labelled volume along one axis.

    Attributes
    ----------
    tau : float
        τ = (Σ_p D_p ε_p) / D_eff (TauFactor's multi-phase convention; inf if nothing percolates).
    d_eff : float
        Effective conductivity D_eff = F̄ L_eff / A in the units of ``conductivities``.
    d_mean : float
        Σ_p D_p ε_p, the volume-weighted mean conductivity.
    volume_fractions : dict[int, float]
        ε_p of every label in the volume.
    flux_shares : dict[int, float]
        Share of the volume-integrated axial flux carried inside each label (sums to 1 when the
        volume percolates; 0 for insulators).
    conductivities : dict[int, float]
        D_p used per label (labels not given conduct 0).
    percolating : bool
        Some cluster of conducting voxels touches both faces normal to ``axis``.
    converged : bool
        The solver reached ``tol``.
    iterations : int
        CG iterations.
    residual : float
        Final relative residual.
    flux_per_layer : ndarray of float64, shape (L + 1,)
        Flux through every face normal to ``axis`` (Δu = 1), conductance × physical units.
    flux_spread : float
        max |F_f − F̄| / F̄ over those faces (flux conservation check; 0 if not percolating).
    axis : int
        Transport axis.
    periodic : bool
        Periodic side faces.
    voxel_size : tuple of 3 floats
        (dz, dy, dx) used; (1, 1, 1) in voxel units when none was given.
    dirichlet : str
        "face" or "ghost" (see the module docstring).
    seconds : float
        Wall time.
    """

    tau: float
    d_eff: float
    d_mean: float
    volume_fractions: dict[int, float]
    flux_shares: dict[int, float]
    conductivities: dict[int, float]
    percolating: bool
    converged: bool
    iterations: int
    residual: float
    flux_per_layer: np.ndarray = field(repr=False)
    flux_spread: float
    axis: int
    periodic: bool
    voxel_size: tuple[float, float, float]
    dirichlet: str
    seconds: float


def _label_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct labels present, voxel counts, uint8 index of each voxel's label)."""
    if labels.dtype.itemsize <= 2 and labels.dtype.kind == "u":
        counts_all = np.bincount(labels.reshape(-1), minlength=1)
        present = np.flatnonzero(counts_all)
        if present.size > 255:
            raise VolumeError(f"`labels` holds {present.size} distinct labels; at most 255 are "
                              "supported")
        lut = np.zeros(counts_all.size, np.uint8)
        lut[present] = np.arange(present.size)
        return present, counts_all[present], lut[labels]
    present, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if present.size > 255:
        raise VolumeError(f"`labels` holds {present.size} distinct labels; at most 255 are "
                          "supported")
    return present, counts, inverse.reshape(labels.shape).astype(np.uint8)


def _check_labels(labels: object) -> np.ndarray:
    arr = check_volume(labels, "labels")
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or \
                not np.array_equal(arr, np.round(arr)):
            raise VolumeError(f"`labels` must hold integer labels, got dtype {arr.dtype} with "
                              "non-integer values; segment the volume first")
        arr = arr.astype(np.int64)
    return arr


def check_conductivities(conductivities: object, present: np.ndarray) -> dict[int, float]:
    """Validated {label: D} for the labels ``present`` (missing labels conduct 0).

    Raises
    ------
    ConfigError
        Not a mapping, a label not in the volume, a negative/NaN/inf conductivity, all zero.
    """
    if not isinstance(conductivities, Mapping) or not conductivities:
        raise ConfigError("`conductivities` must be a non-empty mapping {label: D}, e.g. "
                          f"{{1: 1.0, 2: 0.1}}, got {conductivities!r}")
    have = {int(p) for p in present}
    out: dict[int, float] = {}
    for key, val in conductivities.items():
        try:
            lab = int(key)
            d = float(val)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"`conductivities` must map integer labels to numbers, got "
                              f"{key!r}: {val!r}") from exc
        if lab not in have:
            raise ConfigError(f"`conductivities` names label {lab}, which is not in the volume "
                              f"(labels present: {sorted(have)}); remove it or check the labels")
        if not math.isfinite(d) or d < 0:
            raise ConfigError(f"the conductivity of label {lab} must be finite and >= 0, got {val!r}")
        out[lab] = d
    if not any(d > 0 for d in out.values()):
        raise ConfigError(f"every conductivity is 0 ({out}); give at least one label D > 0")
    return {lab: out.get(lab, 0.0) for lab in sorted(have)}


def multiphase_tortuosity(
    labels: np.ndarray,
    *,
    conductivities: Mapping[int, float],
    axis: int = 0,
    periodic: bool = False,
    voxel_size: object = None,
    dirichlet: str = "face",
    tol: float = 1e-6,
    max_iter: int = 1000,
    progress: object = None,
) -> MultiphaseResult:
    """Effective conductivity and tortuosity factor of a labelled volume with one D per label.

    Parameters
    ----------
    labels : array_like of int, shape (Z, Y, X)
        Label per voxel (any integers; at most 255 distinct values).
    conductivities : mapping {label: D}
        D ≥ 0 per label present in the volume; labels left out conduct 0 (insulators).
    axis : int
        Transport axis (at least 2 voxels thick).
    periodic : bool
        Periodic faces parallel to ``axis`` (the Dirichlet faces stay).
    voxel_size : float or (dz, dy, dx), optional
        Voxel edge lengths; face conductance = D × area / length per axis. None: cubic voxels.
    dirichlet : {"face", "ghost"}
        Where u = 0 / 1 holds: the outer face of the end layers (default) or a ghost voxel
        centre one voxel outside (TauFactor's ``MultiPhaseSolver``); see the module docstring.
    tol : float
        Relative residual at which CG stops (0 < tol < 1; below 1e-7 the vectors are float64).
    max_iter : int
        CG iteration limit (ConvergenceWarning, ``converged=False`` when reached).
    progress : callable(iteration, relative_residual), optional
        Called after every CG iteration.

    Returns
    -------
    MultiphaseResult

    Raises
    ------
    VolumeError
        Not 3-D, non-integer labels, more than 255 labels, fewer than 2 voxels along ``axis``.
    ConfigError
        Bad conductivities (a label not in the volume, negative, NaN, all zero), bad
        ``voxel_size``, ``dirichlet``, ``tol`` or ``max_iter``.
    MemoryBudgetError
        The solve needs more memory than is available (55 bytes per voxel at ``tol`` ≥ 1e-7,
        77 below; checked before allocating).

    Warns
    -----
    NonPercolatingWarning
        No conducting cluster joins the two faces (τ = inf, D_eff = 0).
    ConvergenceWarning
        ``max_iter`` reached.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((8, 4, 4), np.uint8); lab[:, :2] = 1          # two parallel slabs
    >>> r = multiphase_tortuosity(lab, conductivities={0: 1.0, 1: 0.25})
    >>> round(r.d_eff, 6), round(r.tau, 6)                            # arithmetic mean, τ = 1
    (0.625, 1.0)
    """
    t0 = time.perf_counter()
    arr = _check_labels(labels)
    ax = check_axis(axis)
    n_axis = arr.shape[ax]
    if n_axis < 2:
        raise VolumeError(f"`labels` must have at least 2 voxels along the transport axis {ax}, "
                          f"got shape {arr.shape}; choose another axis or a thicker volume")
    if dirichlet not in DIRICHLET_MODES:
        raise ConfigError(f"`dirichlet` must be one of {DIRICHLET_MODES}, got {dirichlet!r}")
    tol_f, max_it = _check_solver(tol, max_iter)
    vs = check_voxel_size(voxel_size)
    present, counts, idx = _label_index(arr)
    cond = check_conductivities(conductivities, present)
    eps = {int(p): float(c) / arr.size for p, c in zip(present, counts, strict=True)}
    d_mean = sum(cond[p] * eps[p] for p in eps)
    lut = np.array([cond[int(p)] for p in present], np.float32)
    idx_t = np.ascontiguousarray(np.moveaxis(idx, ax, 0))
    del idx
    g_t = lut[idx_t]
    sol = solve_conductivity(g_t, spacing=_spacing_t(vs, ax), periodic=bool(periodic),
                             dirichlet=dirichlet, tol=tol_f, max_iter=max_it, progress=progress,
                             phase_index=idx_t, n_phases=present.size)
    del g_t, idx_t
    perc = sol.clusters.n_percolating > 0
    if not perc:
        warnings.warn(f"no conducting cluster joins the two faces normal to axis {ax}: tau = inf",
                      NonPercolatingWarning, stacklevel=2)
    pf = sol.phase_flux if sol.phase_flux is not None else np.zeros(present.size)
    total = float(pf.sum())
    shares = {int(p): (float(pf[i]) / total if total > 0 else 0.0) for i, p in enumerate(present)}
    tau = d_mean / sol.d_eff if perc and sol.d_eff > 0 else math.inf
    return MultiphaseResult(
        tau=float(tau), d_eff=float(sol.d_eff) if perc else 0.0, d_mean=float(d_mean),
        volume_fractions=eps, flux_shares=shares, conductivities=cond, percolating=perc,
        converged=sol.converged, iterations=sol.iterations, residual=sol.residual,
        flux_per_layer=sol.flux, flux_spread=flux_spread(sol.flux) if perc else 0.0, axis=ax,
        periodic=bool(periodic), voxel_size=vs or (1.0, 1.0, 1.0), dirichlet=dirichlet,
        seconds=time.perf_counter() - t0)


def _check_solver(tol: object, max_iter: object) -> tuple[float, int]:
    try:
        return check_solver_options(tol, max_iter)
    except VolumeError as exc:
        raise ConfigError(str(exc)) from None
