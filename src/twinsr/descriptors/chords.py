"""Chord-length distributions: runs of one phase along the lines of voxels parallel to an axis.

A chord is a maximal run of consecutive voxels of the phase along a line parallel to ``axis``;
its length is the number of voxels (times the voxel size). Chords that touch the first or last
voxel of their line are cut by the volume border; they are left out by default (their true
length is unknown) and kept with ``include_border=True``.

References
----------
Torquato, *Random Heterogeneous Materials* (2002), §2.2.6 (lineal-path and chord-length
functions); PoreSpy ``filters.apply_chords`` / ``metrics.chord_length_distribution``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinsr._validation import check_axis
from twinsr.descriptors.common import PHASE_NAMES, binary, phase_mask, resolve_phase, resolve_voxel_size

__all__ = ["ChordLengthDistribution", "chord_length_distribution", "chord_lengths",
           "mean_chord_length"]


@dataclass(frozen=True)
class ChordLengthDistribution:
    """Histogram of the chord lengths of one phase along one axis.

    Attributes
    ----------
    phase : int
        0 (pore) or 1 (solid).
    axis : int
        Direction of the lines.
    include_border : bool
        Whether chords cut by the volume border are counted.
    counts : numpy.ndarray of int64, shape (max_length + 1,)
        ``counts[k]`` is the number of chords of k voxels (``counts[0] == 0``).
    mean : float
        Number-weighted mean chord length in voxels times ``voxel_size``; 0 if the phase is
        absent, ``inf`` if it is present but no chord qualifies (every chord cut by the border).
    voxel_size : float or None
        Voxel edge length the lengths are scaled by (None: voxel units).
    """

    phase: int
    axis: int
    include_border: bool
    counts: np.ndarray
    mean: float
    voxel_size: float | None = None

    @property
    def n_chords(self) -> int:
        """Number of chords counted."""
        return int(self.counts.sum())

    @property
    def lengths(self) -> np.ndarray:
        """Chord length of each histogram bin (float64, shape of ``counts``)."""
        return np.arange(self.counts.size, dtype=np.float64) * (self.voxel_size or 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists; ``inf`` as the string "inf")."""
        return {"phase": PHASE_NAMES[self.phase], "axis": self.axis,
                "include_border": self.include_border, "n_chords": self.n_chords,
                "mean": self.mean if math.isfinite(self.mean) else "inf",
                "voxel_size": self.voxel_size, "counts": self.counts.tolist()}


def _runs(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Lengths (int64) and border flags of all runs of ones along ``axis`` of a uint8 mask."""
    n = mask.shape[axis]
    lines = np.moveaxis(mask, axis, -1).reshape(-1, n)
    padded = np.zeros((lines.shape[0], n + 2), dtype=np.int8)
    padded[:, 1:-1] = lines
    step = np.diff(padded, axis=1).ravel()
    starts = np.flatnonzero(step == 1)
    ends = np.flatnonzero(step == -1)
    col_s = starts % (n + 1)
    col_e = ends % (n + 1)
    return (ends - starts).astype(np.int64), (col_s == 0) | (col_e == n)


def chord_lengths(im: np.ndarray, *, phase: int | str, axis: int = 0,
                  include_border: bool = False) -> np.ndarray:
    """Lengths of all chords of ``phase`` along ``axis``, in voxels.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    phase : {'pore', 'solid', 0, 1}
        The phase.
    axis : int
        Direction of the lines.
    include_border : bool
        Keep the chords that touch the first or last voxel of their line.

    Returns
    -------
    numpy.ndarray of int64, shape (n_chords,)
        Line by line in C order of the other two axes, along each line in order.

    Raises
    ------
    VolumeError
        Not 3-D or binary, bad phase or axis.

    Examples
    --------
    >>> im = np.zeros((1, 1, 10), np.uint8); im[0, 0, [2, 3, 4, 7]] = 1
    >>> chord_lengths(im, phase="solid", axis=2).tolist()
    [3, 1]
    >>> chord_lengths(im, phase="pore", axis=2).tolist(), chord_lengths(im, phase=0, axis=2,
    ...                                                               include_border=True).tolist()
    ([2], [2, 2, 2])
    """
    b = binary(im)
    ph = resolve_phase(phase)
    ax = check_axis(axis)
    lengths, border = _runs(phase_mask(b, ph), ax)
    return lengths if include_border else lengths[~border]


def chord_length_distribution(im: np.ndarray, *, phase: int | str, axis: int = 0,
                              include_border: bool = False,
                              voxel_size: object = None) -> ChordLengthDistribution:
    """Histogram and mean of the chord lengths of ``phase`` along ``axis``.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    phase : {'pore', 'solid', 0, 1}
        The phase.
    axis : int
        Direction of the lines.
    include_border : bool
        Count the chords cut by the volume border too.
    voxel_size : float, optional
        Isotropic voxel edge length (scales ``mean`` and ``lengths``).

    Returns
    -------
    ChordLengthDistribution

    Raises
    ------
    VolumeError
        Not 3-D or binary, bad phase, axis or voxel size.

    Examples
    --------
    >>> im = np.zeros((6, 6, 12), np.uint8); im[..., 3:6] = 1     # a slab 3 voxels thick
    >>> d = chord_length_distribution(im, phase="solid", axis=2)
    >>> d.mean, d.n_chords, d.counts.tolist()
    (3.0, 36, [0, 0, 0, 36])
    """
    b = binary(im)
    ph = resolve_phase(phase)
    ax = check_axis(axis)
    s = resolve_voxel_size(voxel_size)
    mask = phase_mask(b, ph)
    lengths, border = _runs(mask, ax)
    kept = lengths if include_border else lengths[~border]
    counts = np.bincount(kept, minlength=1).astype(np.int64)
    if kept.size:
        mean = float(kept.mean())
    else:
        mean = math.inf if lengths.size else 0.0
    return ChordLengthDistribution(ph, ax, bool(include_border), counts,
                                   mean * (s if s is not None else 1.0), s)


def mean_chord_length(im: np.ndarray, *, phase: int | str, axis: int = 0,
                      include_border: bool = False, voxel_size: object = None) -> float:
    """Number-weighted mean chord length of ``phase`` along ``axis``.

    See :func:`chord_length_distribution` (this is its ``mean``): voxels, or units of
    ``voxel_size``; 0 if the phase is absent, ``inf`` if every chord is cut by the border and
    ``include_border`` is False.

    Examples
    --------
    >>> im = (np.indices((8, 8, 8)).sum(0) % 2).astype(np.uint8)    # 3-D checkerboard
    >>> mean_chord_length(im, phase="pore", axis=1)
    1.0
    """
    return chord_length_distribution(im, phase=phase, axis=axis, include_border=include_border,
                                     voxel_size=voxel_size).mean
