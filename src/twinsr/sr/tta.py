"""Test-time augmentation (TTA): which cube symmetries, their inputs, and the way back to HR.

``tta=8`` uses the 8 axis reflections (every axis stays in place), ``tta=48`` the whole cube group
(:func:`twinsr.sr.symmetry.cube_symmetries`), ``tta=1`` the identity only. For each symmetry ``g``
the network runs on ``g·LR`` and its HR output is mapped back with ``g⁻¹``; the probabilities are
averaged and their spread is the uncertainty (:mod:`twinsr.sr.infer`).

Alignment. Training pairs keep the first voxel of every α-block, I_LR(j) = I_HR(α·j)
(:mod:`twinsr.sr.data`), and the augmented pairs keep that convention under every symmetry (the
HR window is shifted by −(α−1) on each reversed axis). So a network run on an LR image reversed
along an axis of n LR voxels predicts the HR image whose voxel i' corresponds to original HR voxel
``α·(n−1) − i'`` — a reversal of the HR axis *about the last LR sample*, not about the HR
volume's centre. :func:`map_back` applies exactly that. The last α − 1 HR voxels of the volume
along a reversed axis lie beyond the last LR sample on the original side and before the first LR
sample on the reversed side, outside the network's output: a transform that reverses an axis does
not cover them, and they are averaged over the transforms that keep that axis' direction (always
at least the identity). :func:`coverage` counts the transforms per voxel.

Diffusion inputs. A diffusion-input model expects channels solved along its transport axis ``t``
(u = 0 on the inlet face, u = 1 on the outlet face) *on the transformed image*. Axis ``t`` of
``g·LR`` is input axis ``b = g.perm[t]`` of LR, reversed or not; so the channels are solved once
per such axis on the untransformed LR (at most 3 solves, :func:`tta_input_channels`), changed to
u → 1 − u (outside floating clusters) where ``g`` reverses ``b``
(:func:`twinsr.sr.symmetry.transform_solution`), and transformed with ``g`` like the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import product

import numpy as np

from twinsr.exceptions import ConfigError
from twinsr.sr.symmetry import (
    Symmetry,
    apply_symmetry,
    compose_symmetries,
    cube_symmetries,
    reversed_input_axes,
    transform_solution,
)
from twinsr.transport.clusters import floating_mask

__all__ = [
    "IDENTITY",
    "TTA_SIZES",
    "check_tta",
    "coverage",
    "invert_symmetry",
    "map_back",
    "solution_variant",
    "tta_input_channels",
    "tta_symmetries",
]

TTA_SIZES = (1, 8, 48)
IDENTITY = Symmetry((0, 1, 2), (False, False, False))


def check_tta(tta: object) -> int:
    """Validate ``tta`` (1, 8 or 48).

    Raises
    ------
    ConfigError
        Anything else.

    Examples
    --------
    >>> check_tta(8)
    8
    """
    if isinstance(tta, bool) or not isinstance(tta, (int, np.integer)) or int(tta) not in TTA_SIZES:
        raise ConfigError(
            f"`tta` must be one of {TTA_SIZES}: 1 (no augmentation), 8 (the 8 axis "
            f"reflections) or 48 (all cube symmetries); got {tta!r}")
    return int(tta)


@lru_cache(maxsize=3)
def tta_symmetries(tta: int) -> tuple[Symmetry, ...]:
    """The symmetries averaged by ``tta`` = 1, 8 or 48; the identity first.

    Raises
    ------
    ConfigError
        ``tta`` not in (1, 8, 48).

    Examples
    --------
    >>> [len(tta_symmetries(n)) for n in (1, 8, 48)]
    [1, 8, 48]
    >>> all(s.perm == (0, 1, 2) for s in tta_symmetries(8))
    True
    """
    n = check_tta(tta)
    if n == 1:
        return (IDENTITY,)
    if n == 8:
        return tuple(Symmetry((0, 1, 2), f) for f in product((False, True), repeat=3))
    return cube_symmetries()


@lru_cache(maxsize=64)
def invert_symmetry(sym: Symmetry) -> Symmetry:
    """The symmetry ``g⁻¹`` with ``apply_symmetry(apply_symmetry(a, g), g⁻¹) == a``.

    Examples
    --------
    >>> g = cube_symmetries()[30]
    >>> a = np.arange(24).reshape(2, 3, 4)
    >>> bool(np.array_equal(apply_symmetry(apply_symmetry(a, g), invert_symmetry(g)), a))
    True
    """
    return next(s for s in cube_symmetries() if compose_symmetries(s, sym) == IDENTITY)


def map_back(
    piece: np.ndarray, sym: Symmetry, start: Sequence[int], lr_shape: Sequence[int], alpha: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Map an HR piece computed on ``sym·LR`` back to the frame of LR (see the module notes).

    Parameters
    ----------
    piece : ndarray, shape (..., p0, p1, p2)
        HR values on the transformed grid (leading channel axes are carried along).
    sym : Symmetry
        The symmetry the LR image was transformed with.
    start : three ints
        HR index of ``piece[..., 0, 0, 0]`` on the transformed grid, per transformed axis.
    lr_shape : three ints
        Shape of the *untransformed* LR image (a tile of it).
    alpha : int
        Scale factor.

    Returns
    -------
    (ndarray, (int, int, int))
        The piece in the orientation of LR (a view) and the HR index of its first voxel on the
        untransformed grid, per original axis. Along a reversed axis of ``n`` LR voxels,
        transformed HR voxel ``i'`` is original voxel ``α·(n−1) − i'``; the result may start
        at a negative index (voxels before the volume: not covered).

    Examples
    --------
    >>> rev = Symmetry((0, 1, 2), (True, False, False))
    >>> p, s = map_back(np.arange(4.0).reshape(4, 1, 1), rev, (0, 0, 0), (3, 1, 1), 2)
    >>> p.ravel().tolist(), s
    ([3.0, 2.0, 1.0, 0.0], (1, 0, 0))
    """
    out = apply_symmetry(piece, invert_symmetry(sym))
    origin = [0, 0, 0]
    for k in range(3):
        a, n_k = sym.perm[k], piece.shape[piece.ndim - 3 + k]
        origin[a] = (alpha * (int(lr_shape[a]) - 1) - int(start[k]) - n_k + 1 if sym.flips[k]
                     else int(start[k]))
    return out, (origin[0], origin[1], origin[2])


def coverage(shape: Sequence[int], alpha: int, symmetries: Sequence[Symmetry]) -> np.ndarray:
    """Number of ``symmetries`` whose output covers each HR voxel of an LR image of ``shape``.

    A transform covers every HR voxel except the last α − 1 along each axis it reverses.

    Returns
    -------
    ndarray of uint8, shape (α·Z, α·Y, α·X)

    Examples
    --------
    >>> c = coverage((2, 2, 2), 2, tta_symmetries(8))
    >>> int(c[0, 0, 0]), int(c[3, 0, 0]), int(c[3, 3, 3])
    (8, 4, 1)
    """
    out = np.zeros(tuple(alpha * int(s) for s in shape), dtype=np.uint8)
    for sym in symmetries:
        rev = reversed_input_axes(sym)
        sl = tuple(slice(0, alpha * (int(s) - 1) + 1) if r else slice(None)
                   for s, r in zip(shape, rev, strict=True))
        out[sl] += 1
    return out


def solution_variant(lr: np.ndarray, sol: np.ndarray, *, axis: int, reverse: bool,
                     floating: np.ndarray | None = None) -> np.ndarray:
    """Diffusion channels of ``lr`` along ``axis``, with inlet and outlet swapped if ``reverse``.

    Swapping is u → 1 − u on each channel's phase outside floating clusters, in the orientation
    of ``lr`` (:func:`twinsr.sr.symmetry.transform_solution` applied with the reflection of
    ``axis`` and mapped back); without ``reverse`` the channels are returned as they are.

    Parameters
    ----------
    lr : ndarray (Z, Y, X)
        Binary image, 1 = solid.
    sol : ndarray (2, Z, Y, X)
        :func:`twinsr.transport.diffusion_channels` of ``lr`` along ``axis``.
    axis : int
    reverse : bool
    floating : ndarray of bool, optional
        :func:`twinsr.transport.floating_mask` of ``lr`` along ``axis`` (computed if None).

    Returns
    -------
    ndarray of float32, shape (2, Z, Y, X)

    Examples
    --------
    >>> im = np.zeros((3, 1, 1), np.uint8)
    >>> sol = np.stack([np.array([1, 3, 5], np.float32).reshape(3, 1, 1) / 6,
    ...                 np.zeros((3, 1, 1), np.float32)])
    >>> (solution_variant(im, sol, axis=0, reverse=True)[0].ravel() * 6).round(3).tolist()
    [5.0, 3.0, 1.0]
    """
    sol = np.asarray(sol, dtype=np.float32)
    if not reverse:
        return sol
    flip = Symmetry((0, 1, 2), tuple(k == axis for k in range(3)))  # type: ignore[arg-type]
    fm = floating_mask(lr, axis=axis) if floating is None else floating
    return np.ascontiguousarray(apply_symmetry(
        transform_solution(sol, lr, flip, axis=axis, floating=fm), flip))


def tta_input_channels(
    lr: np.ndarray,
    symmetries: Sequence[Symmetry],
    *,
    axis: int,
    solve: object,
    given: np.ndarray | None = None,
) -> tuple[list[np.ndarray], tuple[tuple[int, int, int], ...]]:
    """The network input channels of a diffusion-input model for each TTA symmetry.

    Parameters
    ----------
    lr : ndarray (Z, Y, X)
        Binary LR image (untransformed).
    symmetries : sequence of Symmetry
    axis : int
        The model's transport axis.
    solve : callable(lr, axis) -> ndarray (2, Z, Y, X)
        The diffusion solver, e.g. ``lambda im, ax: diffusion_channels(im, axis=ax)``.
    given : ndarray (2, Z, Y, X), optional
        Channels already solved along ``axis`` (reused instead of solving along it).

    Returns
    -------
    (list of ndarray, tuple of (int, int, int))
        ``chans``: ``[lr, pore_0, solid_0, pore_1, solid_1, ...]``, one pair per distinct
        (input axis, reversed) variant; and for each symmetry the indices into ``chans`` of its
        three input channels. ``apply_symmetry(np.stack([chans[i] for i in idx[k]]),
        symmetries[k])`` is the input of the network for symmetry k: the image and its
        channels solved along ``axis`` on the transformed image.

    Examples
    --------
    >>> from twinsr.transport import diffusion_channels
    >>> im = np.zeros((4, 3, 3), np.uint8); im[:, 0] = 1
    >>> chans, idx = tta_input_channels(
    ...     im, tta_symmetries(8), axis=0,
    ...     solve=lambda a, ax: diffusion_channels(a, axis=ax, device="cpu"))
    >>> len(chans), sorted(set(idx))
    (5, [(0, 1, 2), (0, 3, 4)])
    """
    solved: dict[int, np.ndarray] = {}
    floating: dict[int, np.ndarray] = {}
    chans: list[np.ndarray] = [lr]
    where: dict[tuple[int, bool], tuple[int, int, int]] = {}
    idx = []
    for sym in symmetries:
        b = sym.perm[axis]
        key = (b, reversed_input_axes(sym)[b])
        if key not in where:
            if b not in solved:
                solved[b] = (np.asarray(given, np.float32) if given is not None and b == axis
                             else np.asarray(solve(lr, b), np.float32))  # type: ignore[operator]
            if key[1] and b not in floating:
                floating[b] = floating_mask(lr, axis=b)
            var = solution_variant(lr, solved[b], axis=b, reverse=key[1],
                                   floating=floating.get(b))
            where[key] = (0, len(chans), len(chans) + 1)
            chans += [var[0], var[1]]
        idx.append(where[key])
    return chans, tuple(idx)
