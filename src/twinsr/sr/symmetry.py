"""The 48 symmetries of the cube, and how they act on images and on transport solutions.

A leaf module of :mod:`twinsr.sr` (it imports only numpy, scipy and twinsr's checks): the crop
sampler, the physics-output networks and test-time augmentation all use it.

A symmetry is ``(perm, flips)``: ``out = flip(transpose(arr, perm), axes where flips)`` on the
three spatial axes. :func:`cube_symmetries` lists the 24 rotations (determinant +1) first, then the
24 rotation-reflections, so "mirror with p = ½ and a uniform random rotation" (the paper's
augmentation, spec §2.2.3) is index ``k + 24·mirror``.

A transport problem along an axis (u = 0 on the inlet face, u = 1 on the outlet face, spec §2.1.4)
is kept by the 16 symmetries that map that axis onto itself (:func:`axis_symmetries`).

A per-axis scale factor α = (az, ay, ax) is kept by the symmetries that move an axis only onto an
axis of the same factor (:func:`anisotropy_symmetries`): all mirrors, and permutations only within
axes of equal α (for (4, 1, 1): the 16 that keep z in place). When one of
them reverses the axis, inlet and outlet swap and the solution becomes u → 1 − u on the voxels of
clusters that touch a face; voxels of floating clusters (:func:`twinsr.transport.floating_mask`,
touching neither face, where the solver puts u = 0) and voxels outside the phase stay 0
(:func:`transform_solution`). The result is again the discrete solution for the transformed image.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from twinsr._validation import check_alpha_axes, check_axis
from twinsr.exceptions import DatasetError, VolumeError

__all__ = [
    "Symmetry",
    "aligned_hr_window",
    "anisotropy_symmetries",
    "apply_symmetry",
    "axis_symmetries",
    "compose_symmetries",
    "cube_symmetries",
    "reversed_input_axes",
    "reverses_axis",
    "symmetry_matrix",
    "transform_solution",
]


@dataclass(frozen=True)
class Symmetry:
    """One element of the cube's symmetry group: axis permutation, then reversal of axes.

    ``perm[k]`` is the input axis that becomes output axis ``k``; ``flips[k]`` reverses output
    axis ``k`` afterwards.

    Examples
    --------
    >>> Symmetry((1, 0, 2), (False, False, True)).is_rotation
    True
    """

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @property
    def is_rotation(self) -> bool:
        """True for the 24 proper rotations (determinant +1)."""
        return bool(round(np.linalg.det(symmetry_matrix(self))) == 1)


def symmetry_matrix(sym: Symmetry) -> np.ndarray:
    """Signed permutation matrix ``M`` with ``out_index = M @ in_index`` (about the centre).

    Examples
    --------
    >>> symmetry_matrix(Symmetry((1, 0, 2), (True, False, False))).tolist()
    [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    """
    m = np.zeros((3, 3), dtype=int)
    for k, (p, f) in enumerate(zip(sym.perm, sym.flips, strict=True)):
        m[k, p] = -1 if f else 1
    return m


def _from_matrix(m: np.ndarray) -> Symmetry:
    perm = tuple(int(np.flatnonzero(m[k])[0]) for k in range(3))
    flips = tuple(bool(m[k, perm[k]] < 0) for k in range(3))
    return Symmetry(perm, flips)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def cube_symmetries() -> tuple[Symmetry, ...]:
    """The 48 symmetries of the cube: 24 rotations first, then the 24 rotation-reflections.

    Element ``k + 24`` equals element ``k`` followed by a mirror of the first axis, so a mirror
    with probability ½ and a uniform rotation give a uniform draw from all 48.

    Examples
    --------
    >>> syms = cube_symmetries()
    >>> len(syms), syms[0]
    (48, Symmetry(perm=(0, 1, 2), flips=(False, False, False)))
    """
    all_syms = [Symmetry(p, f)  # type: ignore[arg-type]
                for p in itertools.permutations(range(3))
                for f in itertools.product((False, True), repeat=3)]
    rotations = sorted((s for s in all_syms if s.is_rotation), key=lambda s: (s.perm, s.flips))
    mirror = np.diag([-1, 1, 1])
    reflections = [_from_matrix(mirror @ symmetry_matrix(r)) for r in rotations]
    return tuple(rotations + reflections)


def compose_symmetries(a: Symmetry, b: Symmetry) -> Symmetry:
    """The symmetry "apply ``b``, then ``a``".

    Examples
    --------
    >>> s = cube_symmetries()[5]
    >>> compose_symmetries(s, cube_symmetries()[0]) == s
    True
    """
    return _from_matrix(symmetry_matrix(a) @ symmetry_matrix(b))


def apply_symmetry(
    arr: np.ndarray, sym: Symmetry, *, spatial_axes: Sequence[int] = (-3, -2, -1)
) -> np.ndarray:
    """Apply a cube symmetry to the three ``spatial_axes`` of ``arr`` (a view, no copy).

    Leading channel axes are carried along unchanged, so all channels of an input and its
    target transform identically.

    Parameters
    ----------
    arr : numpy.ndarray
        Array with at least three axes.
    sym : Symmetry
        Element of :func:`cube_symmetries`.
    spatial_axes : three ints
        The axes to transform (default the last three).

    Returns
    -------
    numpy.ndarray
        Transformed view (``np.ascontiguousarray`` it before heavy use).

    Raises
    ------
    DatasetError
        ``spatial_axes`` does not name three distinct axes.

    Examples
    --------
    >>> a = np.arange(8).reshape(2, 2, 2)
    >>> apply_symmetry(a, Symmetry((0, 1, 2), (True, False, False)))[0].tolist()
    [[4, 5], [6, 7]]
    """
    axes = [int(a) % arr.ndim for a in spatial_axes]
    if len(set(axes)) != 3:
        raise DatasetError(f"`spatial_axes` must name three distinct axes, got {spatial_axes}")
    order = list(range(arr.ndim))
    for k in range(3):
        order[axes[k]] = axes[sym.perm[k]]
    out = np.transpose(arr, order)
    flip_axes = tuple(axes[k] for k in range(3) if sym.flips[k])
    return np.flip(out, axis=flip_axes) if flip_axes else out


@lru_cache(maxsize=64)
def _anisotropy_symmetries(alpha: tuple[int, int, int]) -> tuple[Symmetry, ...]:
    return tuple(s for s in cube_symmetries()
                 if all(alpha[s.perm[k]] == alpha[k] for k in range(3)))


def anisotropy_symmetries(alpha: int | Sequence[int]) -> tuple[Symmetry, ...]:
    """The cube symmetries that keep a per-axis scale factor α = (az, ay, ax).

    Output axis ``k`` must come from an input axis with the same factor (``alpha[perm[k]] ==
    alpha[k]``): every mirror is kept, axes are permuted only among equal factors. A subgroup of
    :func:`cube_symmetries`, in its order (rotations first): 48 elements for an isotropic α,
    16 for (4, 1, 1) (z fixed, y and x may swap), 8 (the mirrors) when all factors differ.

    Parameters
    ----------
    alpha : int or (az, ay, ax)
        Scale factor; an integer means the same factor on every axis.

    Raises
    ------
    VolumeError
        α not an integer >= 1 or a valid triple (entries in {1, 2, 4, 8}, not all 1).

    Examples
    --------
    >>> len(anisotropy_symmetries(2)), len(anisotropy_symmetries((4, 1, 1)))
    (48, 16)
    >>> len(anisotropy_symmetries((2, 1, 4)))
    8
    """
    return _anisotropy_symmetries(check_alpha_axes(alpha, scalar_allowed=None))


def aligned_hr_window(lr_start: Sequence[int], lr_shape: Sequence[int], alpha: int | Sequence[int],
                      sym: Symmetry) -> tuple[slice, slice, slice]:
    """HR window that pairs with an LR window so that the pair stays aligned after ``sym``.

    The LR window ``lr[o_k : o_k + n_k]`` pairs with ``hr[a_k o_k - s_k : a_k (o_k + n_k) - s_k]``
    with ``s_k = a_k - 1`` on the input axes that ``sym`` reverses, else 0; then
    ``apply_symmetry(lr_win, sym)[j] == apply_symmetry(hr_win, sym)[a' j]`` with
    ``a'_k = alpha[perm[k]]`` (which is α itself for the :func:`anisotropy_symmetries`).

    Parameters
    ----------
    lr_start, lr_shape : three ints
        Start and size of the LR window per axis (start >= 1 on reversed axes with a_k > 1).
    alpha : int or (az, ay, ax)
        Scale factor.
    sym : Symmetry
        The transform.

    Returns
    -------
    tuple of three slices
        The HR window.

    Raises
    ------
    VolumeError
        Invalid α, or a window that would start before HR index 0.

    Examples
    --------
    >>> flip_z = Symmetry((0, 1, 2), (True, False, False))
    >>> aligned_hr_window((1, 0, 0), (2, 3, 3), (4, 1, 1), flip_z)
    (slice(1, 9, None), slice(0, 3, None), slice(0, 3, None))
    """
    a = check_alpha_axes(alpha, scalar_allowed=None)
    rev = reversed_input_axes(sym)
    out = []
    for k in range(3):
        shift = a[k] - 1 if rev[k] else 0
        start = a[k] * int(lr_start[k]) - shift
        if start < 0:
            raise VolumeError(f"the LR window starts at {int(lr_start[k])} on axis {k}, which "
                              f"{sym} reverses; start it at >= 1 so the HR window fits")
        out.append(slice(start, start + a[k] * int(lr_shape[k])))
    return tuple(out)  # type: ignore[return-value]


def reversed_input_axes(sym: Symmetry) -> tuple[bool, bool, bool]:
    """Which *input* axes end up reversed by ``sym``.

    Examples
    --------
    >>> reversed_input_axes(Symmetry((1, 0, 2), (True, False, False)))
    (False, True, False)
    """
    rev = [False, False, False]
    for k in range(3):
        if sym.flips[k]:
            rev[sym.perm[k]] = True
    return tuple(rev)  # type: ignore[return-value]


@lru_cache(maxsize=3)
def axis_symmetries(axis: int) -> tuple[Symmetry, ...]:
    """The 16 cube symmetries that map the transport ``axis`` onto itself (in either direction).

    The other 32 would move the potential drop to another axis, which a binary input cannot
    reveal.

    Examples
    --------
    >>> len(axis_symmetries(0)), axis_symmetries(0)[0]
    (16, Symmetry(perm=(0, 1, 2), flips=(False, False, False)))
    """
    ax = check_axis(axis)
    return tuple(s for s in cube_symmetries() if s.perm[ax] == ax)


def reverses_axis(sym: Symmetry, axis: int) -> bool:
    """True if ``sym`` (which must keep ``axis`` in place) reverses the transport axis.

    Raises
    ------
    VolumeError
        ``sym`` moves the transport axis.

    Examples
    --------
    >>> reverses_axis(Symmetry((0, 1, 2), (True, False, False)), 0)
    True
    """
    ax = check_axis(axis)
    if sym.perm[ax] != ax:
        raise VolumeError(f"symmetry {sym} moves the transport axis {ax}; use axis_symmetries()")
    return bool(sym.flips[ax])


def _flip_solution(sol: np.ndarray, im: np.ndarray, floating: np.ndarray) -> np.ndarray:
    """u → 1 − u on the non-floating voxels of each channel's phase (channel c: phase c)."""
    out = np.array(sol, dtype=np.float32, copy=True)
    for c in range(out.shape[0]):
        m = (im == c) & ~floating
        out[c][m] = 1.0 - out[c][m]
    return out


def transform_solution(
    sol: np.ndarray, im: np.ndarray, sym: Symmetry, *, axis: int, floating: np.ndarray
) -> np.ndarray:
    """Apply a transport-axis-preserving symmetry to a pair of solution channels.

    Parameters
    ----------
    sol : ndarray, shape (2, Z, Y, X)
        Pore (channel 0) and solid (channel 1) solutions on ``im``, values in [0, 1].
    im : ndarray, shape (Z, Y, X)
        The binary image they solve (1 = solid); untransformed.
    sym : Symmetry
        An element of :func:`axis_symmetries` ``(axis)``.
    axis : int
        Transport axis.
    floating : ndarray of bool, shape (Z, Y, X)
        :func:`twinsr.transport.floating_mask` of ``im`` (on a crop: the crop of the whole volume's mask).

    Returns
    -------
    ndarray of float32, shape (2, Z', Y', X')
        Solutions for ``apply_symmetry(im, sym)``; with a reversed transport axis u → 1 − u on
        the phase voxels outside floating clusters.

    Raises
    ------
    VolumeError
        ``sym`` moves the transport axis.

    Examples
    --------
    >>> im = np.zeros((3, 1, 1), np.uint8)
    >>> sol = np.stack([np.array([1, 3, 5], np.float32).reshape(3, 1, 1) / 6, np.zeros((3, 1, 1))])
    >>> rev = Symmetry((0, 1, 2), (True, False, False))
    >>> (transform_solution(sol, im, rev, axis=0, floating=np.zeros(im.shape, bool))[0].ravel()
    ...  * 6).round(3).tolist()
    [1.0, 3.0, 5.0]
    """
    rev = reverses_axis(sym, axis)
    if rev:
        sol = _flip_solution(sol, np.asarray(im), np.asarray(floating, dtype=bool))
    return np.ascontiguousarray(apply_symmetry(np.asarray(sol, dtype=np.float32), sym))
