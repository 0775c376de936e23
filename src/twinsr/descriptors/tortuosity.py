"""Tortuosity descriptors: thin wrappers over :mod:`twinsr.transport` (no solver code here).

* :func:`effective_tortuosities` – τ_eff of each phase along each axis
  (:func:`twinsr.transport.effective_tortuosity`).
* :func:`geodesic_tortuosities` – mean geodesic tortuosity of each phase along each axis with its
  per-inlet-voxel distribution (:func:`twinsr.transport.geodesic_tortuosity`).
* :func:`geodesic_lengths` – the finite per-voxel path-length ratios of one result.

A phase that does not percolate gives τ = inf (``percolating=False`` for τ_eff, connected
fraction 0 for the geodesic), never NaN; the transport module's :class:`NonPercolatingWarning`
is passed through.
"""

from __future__ import annotations

import numpy as np

from twinsr.descriptors.common import PHASE_NAMES, binary, resolve_axes, resolve_phases
from twinsr.transport import GeodesicResult, TortuosityResult, effective_tortuosity, geodesic_tortuosity

__all__ = ["effective_tortuosities", "geodesic_lengths", "geodesic_tortuosities"]


def effective_tortuosities(im: np.ndarray, *, phases: object = ("pore", "solid"),
                           axes: object = (0, 1, 2), tol: float = 1e-6, max_iter: int = 500,
                           device: str = "auto") -> dict[str, dict[int, TortuosityResult]]:
    """τ_eff = ε D / D_eff of each phase along each axis.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    phases : phase or sequence of phases
        'pore', 'solid' (or 0, 1).
    axes : int or sequence of int
        Transport axes.
    tol, max_iter, device
        Solver options of :func:`twinsr.transport.effective_tortuosity`.

    Returns
    -------
    dict[str, dict[int, TortuosityResult]]
        ``out[phase_name][axis]``.

    Raises
    ------
    VolumeError
        Bad volume, phase, axis or solver option.

    Warns
    -----
    NonPercolatingWarning
        For each phase and axis that does not percolate (τ = inf).

    Examples
    --------
    >>> im = np.ones((10, 6, 6), np.uint8); im[:, 2:4, 2:4] = 0     # straight pore channel
    >>> round(effective_tortuosities(im, phases="pore", axes=0)["pore"][0].tau, 6)
    1.0
    """
    b = binary(im)
    phs = resolve_phases(phases)
    ax = resolve_axes(axes)
    return {PHASE_NAMES[p]: {a: effective_tortuosity(b, phase=p, axis=a, tol=tol, max_iter=max_iter,
                                                     device=device) for a in ax} for p in phs}


def geodesic_tortuosities(im: np.ndarray, *, phases: object = ("pore", "solid"),
                          axes: object = (0, 1, 2),
                          metric: str = "graph26") -> dict[str, dict[int, GeodesicResult]]:
    """Mean geodesic tortuosity (and per-inlet-voxel lengths) of each phase along each axis.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    phases : phase or sequence of phases
        'pore', 'solid' (or 0, 1).
    axes : int or sequence of int
        Transport axes.
    metric : {"graph26", "graph18", "graph6", "fmm"}
        Path metric of :func:`twinsr.transport.geodesic_tortuosity`.

    Returns
    -------
    dict[str, dict[int, GeodesicResult]]
        ``out[phase_name][axis]``; ``.lengths`` holds the per-voxel distribution.

    Raises
    ------
    VolumeError
        Bad volume, phase, axis or metric.

    Warns
    -----
    NonPercolatingWarning
        For each phase and axis with no connected inlet voxel (τ = inf).

    Examples
    --------
    >>> im = np.ones((10, 6, 6), np.uint8); im[:, 2:4, 2:4] = 0
    >>> geodesic_tortuosities(im, phases="pore", axes=0)["pore"][0].tau
    1.0
    """
    b = binary(im)
    phs = resolve_phases(phases)
    ax = resolve_axes(axes)
    return {PHASE_NAMES[p]: {a: geodesic_tortuosity(b, phase=p, axis=a, metric=metric) for a in ax}
            for p in phs}


def geodesic_lengths(result: GeodesicResult) -> np.ndarray:
    """Per-voxel geodesic tortuosity of the connected inlet voxels of one result (1-D float64).

    Examples
    --------
    >>> im = np.ones((10, 6, 6), np.uint8); im[:, 2:4, 2:4] = 0
    >>> geodesic_lengths(geodesic_tortuosities(im, phases=0, axes=0)["pore"][0]).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    lengths = np.asarray(result.lengths, dtype=np.float64).ravel()
    return lengths[np.isfinite(lengths)]
