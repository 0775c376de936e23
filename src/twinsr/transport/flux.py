"""Discrete face fluxes of a potential field and the effective diffusivity they imply.

The discretisation is that of :mod:`twinsr.transport.laplace`: unit conductance across every face
shared by two conducting voxels, half-link conductance 2 between the first (last) layer and the
Dirichlet face u = 0 (u = 1) half a voxel outside it. For a field u on the conducting voxels of a
volume with L layers along ``axis``, the flux through face f (f = 0 … L, face f lies between
layers f − 1 and f) is

* f = 0 (inlet face):  F_0 = Σ 2 · u[0] over the conducting voxels of layer 0,
* 0 < f < L:           F_f = Σ (u[f] − u[f − 1]) over voxel pairs that both conduct,
* f = L (outlet face): F_L = Σ 2 · (1 − u[L − 1]) over the conducting voxels of layer L − 1,

in voxel units (Δu = 1 over the volume, D = 1). The solution of the Laplace problem carries the
same flux through every face; any other field (e.g. a network's prediction) does not, and the
mean over the L + 1 faces is then a summary, not an exact flux. The relative effective diffusivity
is D_eff / D = F̄ · L / A with A the cross-section in voxels, and τ_eff = ε / (D_eff / D).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from twinsr._validation import check_axis, check_finite, check_volume
from twinsr.exceptions import VolumeError
from twinsr.transport._multigrid import threads_for

__all__ = ["effective_diffusivity", "face_fluxes", "flux_spread"]


@nb.njit(parallel=True, cache=True)
def _face_fluxes(m, u, out):  # pragma: no cover - compiled
    """out[f] = flux through face f of ``u`` on conducting voxels ``m`` (axis 0), float64."""
    n0, n1, n2 = m.shape
    for f in nb.prange(n0 + 1):
        s = 0.0
        for j in range(n1):
            for k in range(n2):
                if f == 0:
                    if m[0, j, k]:
                        s += 2.0 * np.float64(u[0, j, k])
                elif f == n0:
                    if m[n0 - 1, j, k]:
                        s += 2.0 * (1.0 - np.float64(u[n0 - 1, j, k]))
                elif m[f - 1, j, k] and m[f, j, k]:
                    s += np.float64(u[f, j, k]) - np.float64(u[f - 1, j, k])
        out[f] = s


def transposed_face_fluxes(field_t: np.ndarray, conducting_t: np.ndarray) -> np.ndarray:
    """:func:`face_fluxes` along axis 0 without input checks (the solver's fast path).

    ``field_t`` and ``conducting_t`` may be views of any memory layout (e.g. the interior of a
    padded array); ``conducting_t`` is bool or uint8.
    """
    out = np.zeros(field_t.shape[0] + 1, dtype=np.float64)
    with threads_for(field_t.size):
        _face_fluxes(conducting_t, field_t, out)
    return out


def face_fluxes(field: np.ndarray, conducting: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Flux of the potential ``field`` through each of the L + 1 faces normal to ``axis``.

    Parameters
    ----------
    field : array_like of float, shape (Z, Y, X)
        Potential u at the voxel centres (u = 0 at the inlet face, u = 1 at the outlet face);
        only its values on ``conducting`` voxels are used.
    conducting : array_like of bool, shape (Z, Y, X)
        The conducting voxels, usually the percolating clusters of a phase
        (:attr:`twinsr.transport.clusters.ClusterMap.percolating`).
    axis : int
        Transport axis (0, 1, 2).

    Returns
    -------
    ndarray of float64, shape (L + 1,)
        Face 0 is the inlet face, face L the outlet face (L voxels along ``axis``); voxel units.

    Raises
    ------
    VolumeError
        Not 3-D, shapes differ, non-finite ``field``, bad ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.broadcast_to(((np.arange(4) + 0.5) / 4)[:, None, None], (4, 2, 3))
    >>> face_fluxes(u, np.ones((4, 2, 3), bool)).tolist()   # 6 columns, 1/4 each
    [1.5, 1.5, 1.5, 1.5, 1.5]
    """
    u = check_volume(field, "field")
    m = check_volume(conducting, "conducting")
    if u.shape != m.shape:
        raise VolumeError(f"`field` {u.shape} and `conducting` {m.shape} must have the same shape")
    if not np.issubdtype(u.dtype, np.floating):
        u = u.astype(np.float64)
    check_finite(u, "field")
    ax = check_axis(axis)
    return transposed_face_fluxes(np.moveaxis(u, ax, 0), np.moveaxis(m.astype(bool, copy=False),
                                                                      ax, 0))


def effective_diffusivity(flux: np.ndarray, shape: tuple[int, ...], *, axis: int = 0) -> float:
    """Relative effective diffusivity D_eff / D = F̄ · L / A from the face fluxes.

    Parameters
    ----------
    flux : array_like of float, shape (L + 1,)
        Face fluxes (:func:`face_fluxes`, or ``LaplaceSolution.flux_per_layer``).
    shape : (Z, Y, X)
        Shape of the volume (L = ``shape[axis]``, A = product of the two other sizes).
    axis : int
        Transport axis.

    Returns
    -------
    float
        F̄ · L / A (0 for zero flux).

    Raises
    ------
    VolumeError
        ``flux`` does not have L + 1 entries, bad ``axis``.

    Examples
    --------
    >>> effective_diffusivity([1.5] * 5, (4, 2, 3))   # open block: D_eff = D
    1.0
    """
    ax = check_axis(axis)
    f = np.asarray(flux, dtype=np.float64)
    n = int(shape[ax])
    if f.shape != (n + 1,):
        raise VolumeError(f"`flux` must have {n + 1} entries (one per face normal to axis {ax} "
                          f"of a volume of shape {tuple(shape)}), got shape {f.shape}")
    area = math.prod(int(s) for s in shape) // n
    return float(f.mean() * n / area)


def flux_spread(flux: np.ndarray) -> float:
    """max_f |F_f − F̄| / F̄: 0 for an exactly conservative field (inf if F̄ ≤ 0).

    Examples
    --------
    >>> flux_spread([1.0, 1.0, 1.0]), round(flux_spread([0.9, 1.0, 1.1]), 6)
    (0.0, 0.1)
    """
    f = np.asarray(flux, dtype=np.float64)
    fbar = float(f.mean())
    return float(np.max(np.abs(f - fbar)) / fbar) if fbar > 0 else math.inf
