"""Argument checks and small helpers shared by the descriptor modules (package-public names)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from twinsr._validation import as_binary_volume, check_axis, check_phase, check_positive
from twinsr.exceptions import VolumeError

__all__ = [
    "PHASE_NAMES",
    "binary",
    "phase_mask",
    "resolve_axes",
    "resolve_phase",
    "resolve_phases",
    "resolve_voxel_size",
]

PHASE_NAMES = {0: "pore", 1: "solid"}


def binary(im: object) -> np.ndarray:
    """``im`` checked as a 3-D two-phase volume, uint8 with 1 = solid (see ``as_binary_volume``)."""
    return as_binary_volume(im, "im")


def resolve_phase(phase: object) -> int:
    """Phase label 0 (pore) or 1 (solid) from 0/1/'pore'/'solid'."""
    return check_phase(phase)


def resolve_phases(phases: object) -> tuple[int, ...]:
    """Distinct phase labels, in the given order, from one phase or a sequence of phases."""
    items = [phases] if isinstance(phases, (str, int, np.integer)) else phases
    if not isinstance(items, Iterable):
        raise VolumeError(f"`phases` must be a phase or a sequence of phases ('pore', 'solid'), "
                          f"got {phases!r}")
    out: list[int] = []
    for p in items:
        label = check_phase(p)
        if label not in out:
            out.append(label)
    if not out:
        raise VolumeError("`phases` is empty; pass ('pore',), ('solid',) or ('pore', 'solid')")
    return tuple(out)


def resolve_axes(axes: object, ndim: int = 3) -> tuple[int, ...]:
    """Distinct non-negative axes, in the given order, from one axis or a sequence of axes."""
    items = [axes] if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool) else axes
    if not isinstance(items, Iterable) or isinstance(items, str):
        raise VolumeError(f"`axes` must be an axis or a sequence of axes in 0..{ndim - 1}, "
                          f"got {axes!r}")
    out: list[int] = []
    for a in items:
        ax = check_axis(a, ndim)
        if ax not in out:
            out.append(ax)
    if not out:
        raise VolumeError(f"`axes` is empty; pass axes in 0..{ndim - 1}, e.g. (0, 1, 2)")
    return tuple(out)


def resolve_voxel_size(voxel_size: object) -> float | None:
    """Edge length of an isotropic voxel (None stays None: voxel units).

    Accepts a positive number or a sequence of three equal positive numbers (the form
    :func:`twinsr.io.read_volume` metadata uses).

    Raises
    ------
    VolumeError
        Not positive and finite, or an anisotropic voxel (resample to isotropic voxels first).
    """
    if voxel_size is None:
        return None
    if isinstance(voxel_size, (list, tuple, np.ndarray)):
        vals = [check_positive(v, "voxel_size") for v in np.asarray(voxel_size, dtype=object).ravel()]
        if len(vals) != 3:
            raise VolumeError(f"`voxel_size` must be a number or 3 numbers (z, y, x), got {voxel_size!r}")
        if max(vals) > min(vals) * (1 + 1e-9):
            raise VolumeError(
                f"`voxel_size` must be isotropic for descriptors, got {tuple(vals)}; resample the "
                "volume to cubic voxels first (e.g. twinsr.resample) or pass voxel_size=None"
            )
        return vals[0]
    return check_positive(voxel_size, "voxel_size")


def phase_mask(b: np.ndarray, phase: int) -> np.ndarray:
    """C-contiguous uint8 mask (1 where ``b == phase``) of a checked binary volume."""
    if phase == 1:
        return np.ascontiguousarray(b, dtype=np.uint8)
    return np.ascontiguousarray(1 - b, dtype=np.uint8)
