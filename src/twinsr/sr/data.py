"""Training data: the 48 symmetries of the cube and aligned LR/HR crop sampling (spec §2.2.3).

Alignment. The low-resolution image keeps the first voxel of every α-block, I_LR(j) = I_HR(αj)
(0-based, spec Eq. 3). An LR crop starting at ``o`` (LR voxels, size ``n``) pairs with the HR crop
starting at ``α·o`` (size ``α·n``). Reversing an axis of such a pair would move the LR samples to
HR offset α−1 inside each block, so for every axis that the symmetry reverses the HR window is
shifted by −(α−1) before the transform; every augmented pair then still satisfies
``lr_aug[..., j] == hr_aug[α·j]`` (tested for all 48 symmetries).

A symmetry is ``(perm, flips)``: ``out = flip(transpose(arr, perm), axes where flips)`` on the
three spatial axes. :func:`cube_symmetries` lists the 24 rotations (determinant +1) first, then the
24 rotation-reflections, so "mirror with p = ½ and a uniform random rotation" (the paper's
augmentation) is index ``k + 24·mirror``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from twinsr.exceptions import DatasetError

__all__ = [
    "CropSampler",
    "Symmetry",
    "apply_symmetry",
    "compose_symmetries",
    "cube_symmetries",
    "grid_crops",
    "symmetry_matrix",
]


@dataclass(frozen=True)
class Symmetry:
    """One element of the cube's symmetry group: axis permutation, then reversal of axes.

    ``perm[k]`` is the input axis that becomes output axis ``k``; ``flips[k]`` reverses output
    axis ``k`` afterwards.
    """

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @property
    def is_rotation(self) -> bool:
        """True for the 24 proper rotations (determinant +1)."""
        return bool(round(np.linalg.det(symmetry_matrix(self))) == 1)


def symmetry_matrix(sym: Symmetry) -> np.ndarray:
    """Signed permutation matrix ``M`` with ``out_index = M @ in_index`` (about the centre)."""
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
    """The symmetry "apply ``b``, then ``a``"."""
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

    Examples
    --------
    >>> a = np.arange(8).reshape(2, 2, 2)
    >>> apply_symmetry(a, cube_symmetries()[0]) is not None
    True
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


def _reversed_input_axes(sym: Symmetry) -> tuple[bool, bool, bool]:
    """Which *input* axes end up reversed by ``sym``."""
    rev = [False, False, False]
    for k in range(3):
        if sym.flips[k]:
            rev[sym.perm[k]] = True
    return tuple(rev)  # type: ignore[return-value]


def grid_crops(shape: Sequence[int], crop: int) -> list[tuple[slice, slice, slice]]:
    """Non-overlapping ``crop³`` windows covering ``shape`` on a regular grid (remainder dropped)."""
    counts = [s // crop for s in shape]
    return [tuple(slice(i * crop, (i + 1) * crop) for i in idx)  # type: ignore[misc]
            for idx in itertools.product(*(range(c) for c in counts))]


class CropSampler:
    """Seeded sampler of aligned, augmented LR/HR crop batches.

    Parameters
    ----------
    sources : sequence of (lr_channels, hr)
        ``lr_channels`` a sequence of C arrays of shape ``(z, y, x)`` (numpy arrays or memmaps;
        channel 0 the binary LR image), ``hr`` the uint8 HR array with ``hr[α·j] == lr[j]``.
    alpha : int
        Scale factor.
    crop : int
        LR crop edge ``n`` (HR crop edge ``α·n``).
    rng : seed or numpy Generator
        Source of all randomness (pair, symmetry, position).
    augment : bool
        Mirror with p = ½ and a uniform random rotation of the 24 (spec §2.2.3).
    solutions : sequence of (hr_solution, hr_floating), optional
        Per source, the HR diffusion channels float32 (2, Z, Y, X) of ``hr`` and its
        floating-cluster mask (Z, Y, X) (:func:`twinsr.sr.physics.floating_mask`). With them,
        :meth:`sample` returns 3-channel HR targets (binary, pore solution, solid solution), and
        augmentation is restricted to the 16 symmetries that keep the transport ``axis`` in place;
        when one reverses it, solutions become u → 1 − u on the non-floating phase voxels
        (:func:`twinsr.sr.physics.transform_solution`) — for the LR solution inputs of 3-channel
        sources too, so every augmented pair still solves the same transport problem.
    axis : int
        Transport axis of the solutions (used only with ``solutions``).

    Raises
    ------
    DatasetError
        No sources, or an LR image smaller than one crop (+1 voxel of margin for mirrored crops),
        or ``solutions`` that do not match the sources.
    """

    def __init__(
        self,
        sources: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
        *,
        alpha: int,
        crop: int,
        rng: int | np.random.Generator | None = None,
        augment: bool = True,
        solutions: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
        axis: int = 0,
    ) -> None:
        if not sources:
            raise DatasetError("no training pairs: the database split is empty")
        self.solutions = list(solutions) if solutions is not None else None
        self.axis = int(axis)
        self._lr_floating: list[np.ndarray | None] = []
        if self.solutions is not None:
            from twinsr.sr.physics import floating_mask

            if len(self.solutions) != len(sources):
                raise DatasetError(f"{len(self.solutions)} solution arrays for {len(sources)} "
                                   "sources; give one (hr_solution, hr_floating) per source")
            for (chans, hr), (sol, flo) in zip(sources, self.solutions, strict=True):
                if tuple(sol.shape) != (2, *hr.shape) or tuple(flo.shape) != tuple(hr.shape):
                    raise DatasetError(f"HR solution of shape {tuple(sol.shape)} / floating mask "
                                       f"{tuple(flo.shape)} do not match HR shape "
                                       f"{tuple(hr.shape)}; expected (2, *hr.shape)")
                self._lr_floating.append(floating_mask(np.asarray(chans[0]), axis=self.axis)
                                         if len(chans) == 3 else None)
        self.sources = list(sources)
        self.alpha = int(alpha)
        self.crop = int(crop)
        self.augment = bool(augment)
        self.rng = np.random.default_rng(rng)
        self.channels = len(self.sources[0][0])
        for chans, hr in self.sources:
            lr_shape = chans[0].shape
            need = self.crop + (1 if augment else 0)
            if min(lr_shape) < need or min(h - self.alpha * self.crop for h in hr.shape) < 0:
                raise DatasetError(
                    f"LR image of shape {tuple(lr_shape)} is smaller than one {self.crop}^3 crop "
                    f"(+{need - self.crop} voxel margin for mirroring); use a smaller `crop` or "
                    "a database with larger realizations"
                )

    def draw(self, sym: Symmetry) -> tuple[np.ndarray, np.ndarray]:
        """One crop pair at a random pair and position, transformed by ``sym``.

        Returns views ``lr`` (C, n, n, n) float32 and ``hr`` (αn, αn, αn) with
        ``lr[0][j] == hr[α·j]`` for every LR index j.
        """
        _, chans, hr, lr_sl, hr_sl = self._window(sym)
        lr = np.stack([np.asarray(c[lr_sl], dtype=np.float32) for c in chans])
        h = np.asarray(hr[hr_sl])
        return apply_symmetry(lr, sym), apply_symmetry(h, sym)

    def _window(self, sym: Symmetry) -> tuple[int, Sequence[np.ndarray], np.ndarray,
                                              tuple[slice, ...], tuple[slice, ...]]:
        """Random source index and aligned LR / HR windows for ``sym``."""
        rng, a, n = self.rng, self.alpha, self.crop
        idx = int(rng.integers(len(self.sources)))
        chans, hr = self.sources[idx]
        rev = _reversed_input_axes(sym)
        lr_sl, hr_sl = [], []
        for ax in range(3):
            lo = 1 if rev[ax] else 0
            shift = (a - 1) if rev[ax] else 0
            hi = min(chans[0].shape[ax] - n, (hr.shape[ax] - a * n + shift) // a)
            o = int(rng.integers(lo, hi + 1))
            lr_sl.append(slice(o, o + n))
            start = a * o - shift
            hr_sl.append(slice(start, start + a * n))
        return idx, chans, hr, tuple(lr_sl), tuple(hr_sl)

    def draw_with_solution(self, sym: Symmetry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`draw`, plus the HR solution crop; ``sym`` must keep the transport axis.

        Returns
        -------
        lr : float32 (C, n, n, n)
            Inputs; for C = 3 the LR solutions transformed like the HR ones.
        hr : uint8 (αn, αn, αn)
        hr_solution : float32 (2, αn, αn, αn)
            Diffusion channels of ``hr`` after the symmetry (see
            :func:`twinsr.sr.physics.transform_solution`).
        """
        from twinsr.sr.physics import transform_solution

        if self.solutions is None:
            raise DatasetError("this sampler has no HR solutions; pass `solutions=`")
        idx, chans, hr, lr_sl, hr_sl = self._window(sym)
        lr = np.stack([np.asarray(c[lr_sl], dtype=np.float32) for c in chans])
        out_lr = np.ascontiguousarray(apply_symmetry(lr, sym))
        lr_flo = self._lr_floating[idx]
        if lr_flo is not None:  # lr[0] is the binary LR crop (as float32 0/1)
            out_lr[1:] = transform_solution(lr[1:], lr[0], sym, axis=self.axis,
                                            floating=lr_flo[lr_sl])
        sol, flo = self.solutions[idx]
        h = np.asarray(hr[hr_sl])
        h_sol = transform_solution(np.asarray(sol[(slice(None), *hr_sl)], dtype=np.float32), h,
                                   sym, axis=self.axis, floating=np.asarray(flo[hr_sl], bool))
        return out_lr, np.ascontiguousarray(apply_symmetry(h, sym)), h_sol

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw a batch.

        Returns
        -------
        lr : float32, shape (batch, C, n, n, n)
        hr : float32, shape (batch, 1, αn, αn, αn), values {0, 1}; with ``solutions``
            (batch, 3, αn, αn, αn): binary HR, pore solution, solid solution.
        """
        if self.solutions is not None:
            return self._sample_solutions(int(batch))
        syms = cube_symmetries()
        lrs, hrs = [], []
        for _ in range(int(batch)):
            if self.augment:
                k = int(self.rng.integers(24)) + 24 * int(self.rng.random() < 0.5)
            else:
                k = 0
            lr, hr = self.draw(syms[k])
            lrs.append(lr)
            hrs.append(hr)
        lr_b = np.ascontiguousarray(np.stack(lrs), dtype=np.float32)
        hr_b = np.ascontiguousarray(np.stack(hrs)[:, None], dtype=np.float32)
        return lr_b, hr_b

    def _sample_solutions(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        from twinsr.sr.physics import axis_symmetries

        syms = axis_symmetries(self.axis)
        lrs, hrs = [], []
        for _ in range(batch):
            k = int(self.rng.integers(len(syms))) if self.augment else 0
            lr, hr, sol = self.draw_with_solution(syms[k])
            lrs.append(lr)
            hrs.append(np.concatenate([hr[None].astype(np.float32), sol]))
        return (np.ascontiguousarray(np.stack(lrs), dtype=np.float32),
                np.ascontiguousarray(np.stack(hrs), dtype=np.float32))

    def get_state(self) -> dict:
        """RNG state (for exact resume)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore the RNG state saved by :meth:`get_state`."""
        self.rng.bit_generator.state = state
