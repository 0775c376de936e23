"""Training data: aligned, augmented LR/HR crop sampling (spec §2.2.3).

Alignment. The low-resolution image keeps the first voxel of every α-block, I_LR(j) = I_HR(αj)
(0-based, spec Eq. 3). An LR crop starting at ``o`` (LR voxels, size ``n``) pairs with the HR crop
starting at ``α·o`` (size ``α·n``). Reversing an axis of such a pair would move the LR samples to
HR offset α−1 inside each block, so for every axis that the symmetry reverses the HR window is
shifted by −(α−1) before the transform; every augmented pair then still satisfies
``lr_aug[..., j] == hr_aug[α·j]`` (tested for all 48 symmetries).

The cube group itself lives in :mod:`twinsr.sr.symmetry` (its names are re-exported here). The
sampler of the physics-output networks, which also carries HR solutions, is
:class:`twinsr.sr.physics.SolutionCropSampler`, a subclass of :class:`CropSampler`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twinsr.exceptions import DatasetError
from twinsr.sr.symmetry import (
    Symmetry,
    apply_symmetry,
    compose_symmetries,
    cube_symmetries,
    reversed_input_axes,
    symmetry_matrix,
)

__all__ = [
    "CropSampler",
    "Symmetry",
    "Window",
    "apply_symmetry",
    "compose_symmetries",
    "cube_symmetries",
    "grid_crops",
    "symmetry_matrix",
]


def grid_crops(shape: Sequence[int], crop: int) -> list[tuple[slice, slice, slice]]:
    """Non-overlapping ``crop³`` windows covering ``shape`` on a regular grid (remainder dropped)."""
    counts = [s // crop for s in shape]
    return [tuple(slice(i * crop, (i + 1) * crop) for i in idx)  # type: ignore[misc]
            for idx in itertools.product(*(range(c) for c in counts))]


@dataclass(frozen=True)
class Window:
    """Where one crop pair is read: the source index and its aligned LR / HR windows."""

    index: int
    lr: tuple[slice, slice, slice]
    hr: tuple[slice, slice, slice]


class CropSampler:
    """Seeded sampler of aligned, augmented LR/HR crop batches (morphology targets).

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

    Raises
    ------
    DatasetError
        No sources, or an LR image smaller than one crop (+1 voxel of margin for mirrored crops).

    Notes
    -----
    Subclasses change what a draw returns by overriding :meth:`choose_symmetry` and
    :meth:`draw_target`; :meth:`sample` and the RNG state handling stay the same.

    Examples
    --------
    >>> hr = np.zeros((8, 8, 8), np.uint8); hr[:, :4] = 1
    >>> s = CropSampler([((hr[::2, ::2, ::2],), hr)], alpha=2, crop=3, rng=0)
    >>> [a.shape for a in s.sample(2)]
    [(2, 1, 3, 3, 3), (2, 1, 6, 6, 6)]
    """

    def __init__(
        self,
        sources: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
        *,
        alpha: int,
        crop: int,
        rng: int | np.random.Generator | None = None,
        augment: bool = True,
    ) -> None:
        if not sources:
            raise DatasetError("no training pairs: the database split is empty")
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
        w = self.window(sym)
        chans, hr = self.sources[w.index]
        lr = np.stack([np.asarray(c[w.lr], dtype=np.float32) for c in chans])
        h = np.asarray(hr[w.hr])
        return apply_symmetry(lr, sym), apply_symmetry(h, sym)

    def window(self, sym: Symmetry) -> Window:
        """A random source and aligned LR / HR windows for ``sym`` (consumes the RNG)."""
        rng, a, n = self.rng, self.alpha, self.crop
        idx = int(rng.integers(len(self.sources)))
        chans, hr = self.sources[idx]
        rev = reversed_input_axes(sym)
        lr_sl, hr_sl = [], []
        for ax in range(3):
            lo = 1 if rev[ax] else 0
            shift = (a - 1) if rev[ax] else 0
            hi = min(chans[0].shape[ax] - n, (hr.shape[ax] - a * n + shift) // a)
            o = int(rng.integers(lo, hi + 1))
            lr_sl.append(slice(o, o + n))
            start = a * o - shift
            hr_sl.append(slice(start, start + a * n))
        return Window(idx, tuple(lr_sl), tuple(hr_sl))  # type: ignore[arg-type]

    def choose_symmetry(self) -> Symmetry:
        """The symmetry of the next draw: uniform over all 48 with ``augment``, else identity."""
        syms = cube_symmetries()
        if not self.augment:
            return syms[0]
        return syms[int(self.rng.integers(24)) + 24 * int(self.rng.random() < 0.5)]

    def draw_target(self, sym: Symmetry) -> tuple[np.ndarray, np.ndarray]:
        """One (input, target) pair: ``lr`` (C, n, n, n) and the float32 target (1, αn, αn, αn)."""
        lr, hr = self.draw(sym)
        return lr, hr[None]

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw a batch.

        Returns
        -------
        lr : float32, shape (batch, C, n, n, n)
        target : float32, shape (batch, T, αn, αn, αn)
            T = 1 here (values {0, 1}, 1 = solid); subclasses add channels.
        """
        lrs, targets = [], []
        for _ in range(int(batch)):
            lr, t = self.draw_target(self.choose_symmetry())
            lrs.append(lr)
            targets.append(t)
        return (np.ascontiguousarray(np.stack(lrs), dtype=np.float32),
                np.ascontiguousarray(np.stack(targets), dtype=np.float32))

    def get_state(self) -> dict:
        """RNG state (for exact resume)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore the RNG state saved by :meth:`get_state`."""
        self.rng.bit_generator.state = state
