"""Steady diffusion (Laplace) in one phase of a binary volume, and the two-channel diffusion image.

Discretisation (the voxel equivalent of the paper's finite-element solve, spec §2.1.4)
-------------------------------------------------------------------------------------
Cell-centred finite volumes on the voxel grid: one unknown per voxel of the phase at its centre,
7-point stencil, unit conductance across every face shared by two voxels of the phase. Along
``axis`` the outer face of the first layer holds u = 0 and the outer face of the last layer u = 1;
these faces lie half a voxel from the centres, so the boundary half-link has conductance 2. All
other faces (the remaining sides of the box and the solid/pore interface) carry zero flux. With
this scheme an open block and any straight channel along ``axis`` have the exact linear solution
u = (i + 1/2) / L at layer i (L voxels along ``axis``), and the flux through every layer is equal
at convergence. Like the FEM weak form, it is a conservative, symmetric positive definite
discretisation of -Δu = 0 with the same boundary conditions; it converges to the same continuum
solution as the voxels are refined.

Clusters (:mod:`twinsr.transport.clusters`): only 6-connected clusters of the phase that touch
both Dirichlet faces (percolating clusters) are unknowns. A cluster touching only the inlet face
takes u = 0, one touching only the outlet face takes u = 1 (their steady states), and a cluster
touching neither takes 0 and is reported as floating. Face fluxes: :mod:`twinsr.transport.flux`.

Solver: conjugate gradients preconditioned by a geometric multigrid V-cycle on the voxel grid
(see :mod:`twinsr.transport._multigrid`), numba kernels on CPU; on a CUDA device the same
algorithm in torch (:mod:`twinsr.transport._torch_solver`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twinsr._validation import (
    PHASE_NAMES,
    as_binary_volume,
    check_axis,
    check_int,
    check_memory,
    check_phase,
    check_positive,
    resolve_device,
)
from twinsr.exceptions import ConvergenceWarning, NonPercolatingWarning, VolumeError
from twinsr.transport import _multigrid as mg
from twinsr.transport.clusters import OUTLET_DEAD_END, PERCOLATING, ClusterMap, classify_mask
from twinsr.transport.flux import transposed_face_fluxes

__all__ = [
    "LAPLACE_BYTES_PER_VOXEL",
    "LaplaceSolution",
    "diffusion_channels",
    "laplace_bytes_per_voxel",
    "solve_laplace",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, float], object]

# Below this relative tolerance the CG vectors are float64 (float32 residuals stall near 1e-7).
FLOAT32_TOL = 1e-7
# Peak memory of one CPU solve in bytes per voxel of the bounding box (the input excluded), by CG
# vector dtype: tracemalloc peaks of solve_laplace on 128^3 volumes (37.5 / 57.7 B) and 160^3
# (36.5 / 56.5 B), blobs and open blocks alike, rounded up. During the CG iterations: float32 output
# (4), phase and cluster codes (2), the percolating mask and degree array (2), float64 solution (8),
# four CG vectors (16 / 32), coarse levels (3.4 / 6.9), the one-voxel halo of the padded arrays
# (+5 % at 128^3). diffusion_channels adds 4 (a second output channel). The memory check
# (check_memory before allocating) and every docstring quote these numbers; tests check them.
LAPLACE_BYTES_PER_VOXEL = {"float32": 38, "float64": 58}


def laplace_bytes_per_voxel(tol: float) -> int:
    """Peak bytes per voxel of one CPU solve at relative tolerance ``tol`` (see the constant).

    Examples
    --------
    >>> laplace_bytes_per_voxel(1e-6) == LAPLACE_BYTES_PER_VOXEL["float32"]
    True
    """
    return LAPLACE_BYTES_PER_VOXEL["float64" if tol < FLOAT32_TOL else "float32"]


@dataclass(frozen=True)
class LaplaceSolution:
    """Solution of the phase Laplace problem.

    Attributes
    ----------
    field : ndarray of float32, shape (Z, Y, X)
        u at the voxel centres; 0 outside the phase (and on floating clusters).
    flux_per_layer : ndarray of float64, shape (L + 1,)
        Flux through each face normal to ``axis`` (face 0 is the inlet face u = 0, face L the
        outlet face u = 1), in voxel units (conductance 1 per voxel face, Δu = 1); see
        :func:`twinsr.transport.flux.face_fluxes`.
    flux : float
        Mean of ``flux_per_layer`` (0 if the phase does not percolate).
    iterations : int
        CG iterations used.
    residual : float
        Final relative residual ||b - A u|| / ||b||.
    converged : bool
        ``residual <= tol``.
    percolating : bool
        Whether a 6-connected cluster of the phase touches both Dirichlet faces.
    n_unknowns : int
        Number of voxels solved for (voxels of percolating clusters).
    dead_end_clusters : bool
        Some cluster touches exactly one Dirichlet face (it takes that face's value).
    floating_clusters : bool
        Some cluster touches neither Dirichlet face (it takes 0).
    phase : int
        0 (pore) or 1 (solid).
    axis : int
        Transport axis.
    device : str
        Where it ran: "cpu" (numba), "cuda[:N]" or "torch-cpu" (torch).
    """

    field: np.ndarray
    flux_per_layer: np.ndarray
    flux: float
    iterations: int
    residual: float
    converged: bool
    percolating: bool
    n_unknowns: int
    dead_end_clusters: bool
    floating_clusters: bool
    phase: int
    axis: int
    device: str


def check_solver_options(tol: object, max_iter: object) -> tuple[float, int]:
    """Validated ``(tol, max_iter)`` of an iterative solve (0 < tol < 1, max_iter >= 1).

    Raises
    ------
    VolumeError
        ``tol`` not in (0, 1) or ``max_iter`` not a positive integer.
    """
    tol_f = check_positive(tol, "tol")
    if tol_f >= 1.0:
        raise VolumeError(f"`tol` must be < 1 (a relative residual), got {tol!r}")
    return tol_f, check_int(max_iter, "max_iter", minimum=1)


def resolve_backend(device: object) -> str:
    """'cpu' (numba), 'torch-cpu' (torch on CPU, a testing aid) or a CUDA device string."""
    if isinstance(device, str) and device.strip().lower() == "torch-cpu":
        return "torch-cpu"
    return resolve_device(device)  # type: ignore[arg-type]


def prepare_volume(im: object, axis: object) -> tuple[np.ndarray, int]:
    """Validated uint8 volume with ``axis`` moved first (C-contiguous), and the checked axis.

    Raises
    ------
    VolumeError
        Not a binary 3-D volume, bad ``axis``, fewer than 2 voxels along ``axis``.
    """
    vol = as_binary_volume(im)
    ax = check_axis(axis)
    if vol.shape[ax] < 2:
        raise VolumeError(
            f"`im` must have at least 2 voxels along axis {ax} (the transport axis), got shape "
            f"{vol.shape}; choose another axis or a thicker volume"
        )
    return np.ascontiguousarray(np.moveaxis(vol, ax, 0)), ax


def not_percolating_reason(clusters: ClusterMap) -> str:
    """Why a phase has no unknowns, for a NonPercolatingWarning."""
    return "has no voxels" if clusters.n_phase == 0 else "does not connect the two faces"


@dataclass(frozen=True)
class PhaseSolve:
    """One solve on a phase array with the transport axis first (see :func:`solve_transposed`)."""

    field: np.ndarray  # float32, shape of the phase array
    flux: np.ndarray  # float64, (L + 1,)
    iterations: int
    residual: float
    converged: bool
    clusters: ClusterMap


def _solve_cpu(mask: np.ndarray, lin: np.ndarray, *, tol: float, max_iter: int,
               progress: ProgressCallback | None, work: dict | None,
               field: np.ndarray) -> tuple[np.ndarray, int, float, bool]:
    deg = mg.padded_degree(mask)
    shape = deg.shape
    # float32 CG vectors unless the tolerance is below what float32 residuals can resolve
    wdtype = np.float64 if tol < FLOAT32_TOL else np.float32
    if work is not None and work.get("shape") == shape and work["vecs"][0].dtype == wdtype:
        x, vecs = work["x"], work["vecs"]
        for v in vecs:  # the kernels assume zeros outside this phase's unknowns
            v.fill(0.0)
    else:
        x = np.zeros(shape, np.float64)
        vecs = [np.zeros(shape, wdtype) for _ in range(4)]
        if work is not None:
            work.update(shape=shape, x=x, vecs=vecs)
    inner = x[1:-1, 1:-1, 1:-1]
    np.multiply(lin, mask, out=inner)
    it, res, conv = mg.pcg(deg, x, tol=tol, max_iter=max_iter, progress=progress, work=vecs)
    del deg
    flux = transposed_face_fluxes(inner, mask)
    field[...] = inner
    return flux, it, res, conv


def _solve_torch(mask: np.ndarray, lin: np.ndarray, *, tol: float, max_iter: int, backend: str,
                 progress: ProgressCallback | None,
                 field: np.ndarray) -> tuple[np.ndarray, int, float, bool]:
    from twinsr.transport._torch_solver import torch_pcg

    dev = "cpu" if backend == "torch-cpu" else backend
    sol, it, res, conv = torch_pcg(mask, lin * mask, device=dev, tol=tol, max_iter=max_iter,
                                   progress=progress, double=tol < FLOAT32_TOL)
    flux = transposed_face_fluxes(sol, mask)
    field[...] = sol
    return flux, it, res, conv


def solve_transposed(
    phase_t: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    backend: str,
    progress: ProgressCallback | None,
    out: np.ndarray | None = None,
    work: dict | None = None,
) -> PhaseSolve:
    """Solve on a boolean phase array with the transport axis first (inputs already checked).

    ``out`` (float32, shape of ``phase_t``) receives the field if given; ``work`` caches scratch
    vectors between calls of the same shape. Warns (ConvergenceWarning) when ``max_iter`` is
    reached; refuses (MemoryBudgetError) a solve that does not fit, before allocating.
    """
    n0 = phase_t.shape[0]
    check_memory(phase_t.size * laplace_bytes_per_voxel(tol),
                 f"the Laplace solve on {phase_t.shape} voxels")
    cl = classify_mask(phase_t, 0)
    field = out if out is not None else np.empty(phase_t.shape, np.float32)
    if cl.n_percolating == 0:
        field[...] = 0.0
        field[cl.kind == OUTLET_DEAD_END] = 1.0
        return PhaseSolve(field, np.zeros(n0 + 1), 0, 0.0, True, cl)
    mask = (cl.kind == PERCOLATING).view(np.uint8)
    lin = ((np.arange(n0, dtype=np.float64) + 0.5) / n0)[:, None, None]
    if backend == "cpu":
        flux, it, res, conv = _solve_cpu(mask, lin, tol=tol, max_iter=max_iter,
                                         progress=progress, work=work, field=field)
    else:
        flux, it, res, conv = _solve_torch(mask, lin, tol=tol, max_iter=max_iter, backend=backend,
                                           progress=progress, field=field)
    del mask
    if cl.has_dead_end:
        field[cl.kind == OUTLET_DEAD_END] = 1.0
    if not conv:
        warnings.warn(
            f"the Laplace solve stopped after {it} iterations with relative residual {res:.3g} "
            f"> tol={tol:g}; raise `max_iter` or loosen `tol`",
            ConvergenceWarning,
            stacklevel=3,
        )
    log.debug("solve: %d unknowns, %d iterations, residual %.3g", cl.n_percolating, it, res)
    return PhaseSolve(field, flux, it, res, conv, cl)


def solve_laplace(
    im: np.ndarray,
    *,
    phase: int | str,
    axis: int = 0,
    tol: float = 1e-6,
    max_iter: int = 500,
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> LaplaceSolution:
    """Solve steady diffusion -Δu = 0 in one phase, u = 0 / 1 on the inlet / outlet face.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore (bool, {0, 1} or {0, v}).
    phase : {0, 1, 'pore', 'solid'}
        The conducting phase.
    axis : int
        Transport axis (0, 1, 2); at least 2 voxels thick.
    tol : float
        Relative residual ||b - A u|| / ||b|| at which CG stops (0 < tol < 1).
    max_iter : int
        CG iteration limit; hitting it gives ``converged=False`` and a ConvergenceWarning.
    device : str
        "auto" (CUDA if available, else CPU), "cpu" (numba kernels), "cuda[:N]" (torch), or
        "torch-cpu" (the torch implementation on the CPU; a testing aid, slower than "cpu").
    progress : callable(iteration, relative_residual), optional
        Called after every CG iteration.

    Returns
    -------
    LaplaceSolution
        See the class; ``field`` is float32 of the input's shape.

    Raises
    ------
    VolumeError
        Not 3-D, not binary, NaN, fewer than 2 voxels along ``axis``, bad ``axis``/``phase``/
        ``tol``/``max_iter``/``device``.
    MemoryBudgetError
        The solve would need more memory than is available (checked before allocating).

    Warns
    -----
    NonPercolatingWarning
        The phase is empty or no cluster touches both faces (field of the dead-end clusters only,
        flux 0, ``percolating=False``).
    ConvergenceWarning
        ``max_iter`` reached before ``tol``.

    Notes
    -----
    Discretisation and cluster rules: see the module docstring (voxel finite-volume equivalent of
    the paper's FEM, spec §2.1.4, Eqs. (7)–(8)). Peak memory on CPU, output included:
    ``LAPLACE_BYTES_PER_VOXEL["float32"]`` = 38 bytes per voxel (measured; float64 solution, four
    float32 CG vectors, coarse levels, masks); ``tol < 1e-7`` switches the CG vectors to float64
    (``LAPLACE_BYTES_PER_VOXEL["float64"]`` = 58 bytes per voxel).

    References
    ----------
    Spec §2.1.4 (per-phase Laplace problem, Dirichlet 0/1 on opposite faces, zero flux elsewhere).

    Examples
    --------
    >>> import numpy as np
    >>> sol = solve_laplace(np.zeros((8, 4, 4), np.uint8), phase="pore")
    >>> bool(np.allclose(sol.field[:, 0, 0], (np.arange(8) + 0.5) / 8, atol=1e-6))
    True
    """
    ph = check_phase(phase)
    tol_f, max_it = check_solver_options(tol, max_iter)
    vol_t, ax = prepare_volume(im, axis)
    backend = resolve_backend(device)
    sol = solve_transposed(vol_t == ph, tol=tol_f, max_iter=max_it, backend=backend,
                           progress=progress)
    cl = sol.clusters
    percolating = cl.n_percolating > 0
    if not percolating:
        warnings.warn(
            f"the {PHASE_NAMES[ph]} phase {not_percolating_reason(cl)} along axis {ax}; the flux "
            "is 0",
            NonPercolatingWarning,
            stacklevel=2,
        )
    field = np.ascontiguousarray(np.moveaxis(sol.field, 0, ax))
    return LaplaceSolution(
        field=field,
        flux_per_layer=sol.flux,
        flux=float(sol.flux.mean()) if percolating else 0.0,
        iterations=sol.iterations,
        residual=sol.residual,
        converged=sol.converged,
        percolating=percolating,
        n_unknowns=cl.n_percolating,
        dead_end_clusters=cl.has_dead_end,
        floating_clusters=cl.has_floating,
        phase=ph,
        axis=ax,
        device=backend,
    )


def diffusion_channels(
    im: np.ndarray,
    *,
    axis: int = 0,
    tol: float = 1e-6,
    max_iter: int = 500,
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """The two-channel diffusion image Diffu(I): the pore and the solid solution.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    axis, tol, max_iter, device, progress
        As in :func:`solve_laplace` (``progress`` is called for both solves in turn).

    Returns
    -------
    ndarray of float32, shape (2, Z, Y, X)
        Channel 0: pore solution at the voxel centres (0 outside the pore); channel 1: solid
        solution (0 outside the solid). Values in [0, 1]. A phase with no voxels (or that does
        not percolate) gives the dead-end values / zeros with a NonPercolatingWarning.

    Raises
    ------
    VolumeError
        As :func:`solve_laplace`.

    Notes
    -----
    Input checks, the transposition to the transport axis and the CG scratch vectors are shared
    between the two solves; peak memory on CPU about 42 bytes per voxel (output included; 62 with
    ``tol < 1e-7``): :data:`LAPLACE_BYTES_PER_VOXEL` plus the second output channel.

    References
    ----------
    Spec §2.1.4, Eqs. (7)–(8) (channels of Diffu(I)).

    Examples
    --------
    >>> import numpy as np
    >>> im = np.zeros((6, 4, 4), np.uint8); im[:, :2] = 1
    >>> ch = diffusion_channels(im)
    >>> ch.shape, bool(ch[0][im == 1].max() == 0), bool(ch[1][im == 0].max() == 0)
    ((2, 6, 4, 4), True, True)
    """
    tol_f, max_it = check_solver_options(tol, max_iter)
    vol_t, ax = prepare_volume(im, axis)
    backend = resolve_backend(device)
    out_t = np.empty((2, *vol_t.shape), np.float32)
    work: dict = {}
    for ph in (0, 1):
        sol = solve_transposed(vol_t == ph, tol=tol_f, max_iter=max_it, backend=backend,
                               progress=progress, out=out_t[ph], work=work)
        if sol.clusters.n_percolating == 0:
            warnings.warn(
                f"the {PHASE_NAMES[ph]} phase {not_percolating_reason(sol.clusters)} along axis "
                f"{ax}; its channel holds only dead-end values (0 or 1) or zeros",
                NonPercolatingWarning,
                stacklevel=2,
            )
        del sol
    del work
    return np.ascontiguousarray(np.moveaxis(out_t, 1, ax + 1))
