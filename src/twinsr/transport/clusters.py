"""The 6-connected clusters of one phase, classified against the two Dirichlet faces of an axis.

For transport along ``axis`` the inlet face is the outer face of the first layer (index 0) and
the outlet face that of the last layer (index −1). Every 6-connected cluster of the phase is one of

=====================  =====  ==============================================================
kind                   code   meaning for the Laplace problem (u = 0 inlet, u = 1 outlet)
=====================  =====  ==============================================================
``PERCOLATING``        1      touches both faces: its voxels are the unknowns of the solve
``INLET_DEAD_END``     2      touches only the inlet face: steady state u = 0
``OUTLET_DEAD_END``    3      touches only the outlet face: steady state u = 1
``FLOATING``           4      touches neither face: carries no flux, the solver sets u = 0
=====================  =====  ==============================================================

and voxels outside the phase have code ``NOT_IN_PHASE`` (0). This is the one classification used
by the Laplace solver (:mod:`twinsr.transport.laplace`), the effective tortuosity and the physics
outputs of the super-resolution networks.

Memory: the int32 labels of :func:`scipy.ndimage.label` (4 B/voxel) and the uint8 codes
(1 B/voxel); the per-label lookup runs in a numba kernel, without an index temporary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.ndimage as ndi

from twinsr._validation import as_binary_volume, check_axis, check_phase
from twinsr.transport._multigrid import threads_for

__all__ = [
    "FLOATING",
    "INLET_DEAD_END",
    "NOT_IN_PHASE",
    "OUTLET_DEAD_END",
    "PERCOLATING",
    "ClusterMap",
    "classify_clusters",
    "classify_mask",
    "floating_mask",
]

NOT_IN_PHASE, PERCOLATING, INLET_DEAD_END, OUTLET_DEAD_END, FLOATING = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class ClusterMap:
    """Cluster kind of every voxel of one phase along one transport axis.

    Attributes
    ----------
    kind : ndarray of uint8, shape (Z, Y, X)
        ``NOT_IN_PHASE`` (0), ``PERCOLATING`` (1), ``INLET_DEAD_END`` (2), ``OUTLET_DEAD_END`` (3)
        or ``FLOATING`` (4) per voxel.
    phase : int
        0 (pore) or 1 (solid); -1 when built from a mask by :func:`classify_mask`.
    axis : int
        Transport axis.
    n_phase : int
        Voxels of the phase.
    n_percolating : int
        Voxels of percolating clusters (the unknowns of the Laplace solve).
    has_dead_end : bool
        Some cluster touches exactly one of the two faces.
    has_floating : bool
        Some cluster touches neither face.
    """

    kind: np.ndarray
    phase: int
    axis: int
    n_phase: int
    n_percolating: int
    has_dead_end: bool
    has_floating: bool

    @property
    def percolating(self) -> np.ndarray:
        """bool, shape (Z, Y, X): voxels of clusters that touch both faces."""
        return self.kind == PERCOLATING

    @property
    def dead_end(self) -> np.ndarray:
        """bool, shape (Z, Y, X): voxels of clusters that touch exactly one face."""
        return (self.kind == INLET_DEAD_END) | (self.kind == OUTLET_DEAD_END)

    @property
    def floating(self) -> np.ndarray:
        """bool, shape (Z, Y, X): voxels of clusters that touch neither face."""
        return self.kind == FLOATING


@nb.njit(parallel=True, cache=True)
def _lookup(table, lab, out):  # pragma: no cover - compiled
    """out[i] = table[lab[i]] over the flat arrays (uint8 table, int32 labels)."""
    for i in nb.prange(lab.size):
        out[i] = table[lab[i]]


def _merge_periodic(lab: np.ndarray, n_lab: int, axis: int) -> np.ndarray:
    """Relabel (in place) clusters joined across the wrap faces of the two axes other than ``axis``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a_parts, b_parts = [], []
    for ax in range(3):
        if ax == axis or lab.shape[ax] < 2:
            continue
        first, last = np.take(lab, 0, axis=ax).ravel(), np.take(lab, -1, axis=ax).ravel()
        both = (first > 0) & (last > 0)
        a_parts.append(first[both])
        b_parts.append(last[both])
    a = np.concatenate(a_parts) if a_parts else np.zeros(0, np.int64)
    b = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int64)
    if a.size == 0:
        return np.arange(n_lab + 1)
    graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n_lab + 1, n_lab + 1))
    _, comp = connected_components(graph, directed=False)
    comp = comp + 1
    comp[0] = 0
    return comp


def classify_mask(mask: np.ndarray, axis: int = 0, *, periodic: bool = False) -> ClusterMap:
    """Classify the 6-connected clusters of a boolean 3-D ``mask`` (the kernel; no input checks).

    Parameters
    ----------
    mask : ndarray of bool, shape (Z, Y, X)
        The phase (True on its voxels).
    axis : int
        Transport axis (already checked, 0..2).
    periodic : bool
        The faces parallel to ``axis`` are periodic: clusters that meet across a wrap face (the
        first and last layer of one of the two other axes) are one cluster.

    Returns
    -------
    ClusterMap
        With ``phase=-1`` (the caller knows which phase ``mask`` is).
    """
    lab, n_lab = ndi.label(mask)
    merged = _merge_periodic(lab, n_lab, axis) if periodic else None
    first = np.take(lab, 0, axis=axis)
    last = np.take(lab, -1, axis=axis)
    touch_in = np.zeros(n_lab + 1, dtype=bool)
    touch_out = np.zeros(n_lab + 1, dtype=bool)
    touch_in[first] = True
    touch_out[last] = True
    touch_in[0] = touch_out[0] = False
    table = np.full(n_lab + 1, FLOATING, dtype=np.uint8)
    table[touch_in & touch_out] = PERCOLATING
    table[touch_in & ~touch_out] = INLET_DEAD_END
    table[touch_out & ~touch_in] = OUTLET_DEAD_END
    table[0] = NOT_IN_PHASE
    if merged is not None:  # a wrap-joined cluster touches a face if any of its parts does
        t_in = np.zeros(n_lab + 2, dtype=bool)
        t_out = np.zeros(n_lab + 2, dtype=bool)
        np.logical_or.at(t_in, merged, touch_in)
        np.logical_or.at(t_out, merged, touch_out)
        touch_in, touch_out = t_in[merged], t_out[merged]
        touch_in[0] = touch_out[0] = False
        table[1:] = FLOATING
        table[touch_in & touch_out] = PERCOLATING
        table[touch_in & ~touch_out] = INLET_DEAD_END
        table[touch_out & ~touch_in] = OUTLET_DEAD_END
    kind = np.empty(mask.shape, dtype=np.uint8)
    with threads_for(lab.size):
        _lookup(table, lab.reshape(-1), kind.reshape(-1))  # both freshly allocated, C order
    del lab
    sizes = np.bincount(kind.reshape(-1), minlength=FLOATING + 1)
    kinds = table[1:]
    return ClusterMap(
        kind=kind, phase=-1, axis=axis,
        n_phase=int(sizes[1:].sum()), n_percolating=int(sizes[PERCOLATING]),
        has_dead_end=bool(np.any((kinds == INLET_DEAD_END) | (kinds == OUTLET_DEAD_END))),
        has_floating=bool(np.any(kinds == FLOATING)),
    )


def classify_clusters(im: np.ndarray, *, phase: int | str, axis: int = 0,
                      periodic: bool = False) -> ClusterMap:
    """Classify the 6-connected clusters of one phase as percolating, dead end or floating.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore (bool, {0, 1} or {0, v}).
    phase : {0, 1, 'pore', 'solid'}
        The phase whose clusters are classified.
    axis : int
        Transport axis (0, 1, 2): the inlet face is at index 0, the outlet face at index −1.
    periodic : bool
        Periodic side faces (the faces parallel to ``axis``): clusters joined across them are one.

    Returns
    -------
    ClusterMap
        ``kind`` (uint8, shape of ``im``) holds one code per voxel (see the module docstring);
        ``percolating``, ``dead_end`` and ``floating`` give the boolean masks.

    Raises
    ------
    VolumeError
        Not 3-D, not binary, NaN, bad ``phase`` or ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> im = np.ones((5, 3, 3), np.uint8)
    >>> im[:, 0, 0] = 0            # pore channel through the volume: percolating
    >>> im[0:2, 2, 2] = 0          # pore pocket open to the inlet face only: dead end
    >>> im[2, 1, 1] = 0            # isolated pore voxel: floating
    >>> cm = classify_clusters(im, phase="pore", axis=0)
    >>> int(cm.percolating.sum()), int(cm.dead_end.sum()), int(cm.floating.sum())
    (5, 2, 1)
    >>> int(cm.kind[0, 2, 2]) == INLET_DEAD_END, cm.has_floating
    (True, True)
    """
    vol = as_binary_volume(im)
    ph = check_phase(phase)
    ax = check_axis(axis)
    cm = classify_mask(vol == ph, ax, periodic=bool(periodic))
    return ClusterMap(cm.kind, ph, ax, cm.n_phase, cm.n_percolating, cm.has_dead_end,
                      cm.has_floating)


def floating_mask(im: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Voxels of 6-connected clusters of either phase that touch neither face along ``axis``.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    axis : int
        Transport axis.

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
        True on floating voxels (the Laplace solver gives them u = 0 in their phase's channel).

    Raises
    ------
    VolumeError
        Non-binary ``im`` or a bad ``axis``.

    Examples
    --------
    >>> im = np.zeros((5, 3, 3), np.uint8); im[2, 1, 1] = 1
    >>> int(floating_mask(im).sum())
    1
    """
    vol = as_binary_volume(im)
    ax = check_axis(axis)
    return classify_mask(vol == 0, ax).floating | classify_mask(vol == 1, ax).floating
