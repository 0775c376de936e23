"""Training data: aligned, augmented LR/HR crop sampling (spec §2.2.3).

Alignment. The low-resolution image keeps the first voxel of every α-block, I_LR(j) = I_HR(αj)
(0-based, spec Eq. 3). An LR crop starting at ``o`` (LR voxels, size ``n``) pairs with the HR crop
starting at ``α·o`` (size ``α·n``). Reversing an axis of such a pair would move the LR samples to
HR offset α−1 inside each block, so for every axis that the symmetry reverses the HR window is
shifted by −(α−1) before the transform; every augmented pair then still satisfies
``lr_aug[..., j] == hr_aug[α·j]`` (tested for all 48 symmetries).

Keyed sampling. :meth:`CropSampler.sample_keyed` draws crop ``i`` of a batch from its own
generator ``default_rng([*key, i])``: the training loop keys a step by ``(seed, stream, epoch,
step)``, so the crops of a step depend on nothing else — not on the steps before it (exact resume
needs no sampler state), not on the thread that draws them (batches can be prepared in the
background) and not on how a batch is split across processes (rank ``r`` of ``W`` draws crops
``r·B/W … (r+1)·B/W − 1`` of the same global batch).

Flux weights. With ``flux_solutions`` a sampler appends to every target the local flux magnitude
|∇u| of the HR diffusion solution (:func:`flux_magnitude`), computed on the crop's window (with
one voxel of margin, so it equals the crop of the whole volume's field) and transformed with the
crop. |∇u| is a scalar field whose value does not change when axes are permuted or reversed, nor
under u → 1 − u, so all 48 symmetries may be used (tested).

The cube group itself lives in :mod:`twinsr.sr.symmetry` (its names are re-exported here). The
sampler of the physics-output networks, which also carries HR solutions, is
:class:`twinsr.sr.physics.SolutionCropSampler`, a subclass of :class:`CropSampler`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twinsr._validation import check_axis
from twinsr.exceptions import DatasetError, VolumeError
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
    "flux_magnitude",
    "grid_crops",
    "symmetry_matrix",
]


def grid_crops(shape: Sequence[int], crop: int) -> list[tuple[slice, slice, slice]]:
    """Non-overlapping ``crop³`` windows covering ``shape`` on a regular grid (remainder dropped)."""
    counts = [s // crop for s in shape]
    return [tuple(slice(i * crop, (i + 1) * crop) for i in idx)  # type: ignore[misc]
            for idx in itertools.product(*(range(c) for c in counts))]


def _along(k: int, start: int, stop: int) -> tuple[slice, slice, slice]:
    """The index ``[start:stop]`` on spatial axis ``k`` of a 3-D array."""
    sl = [slice(None)] * 3
    sl[k] = slice(start, stop)
    return tuple(sl)  # type: ignore[return-value]


def _flux_field(u: np.ndarray, im: np.ndarray, axis: int,
                faces: tuple[bool, bool]) -> np.ndarray:
    """|∇u| of the phase-wise field ``u`` on ``im``; ``faces``: Dirichlet at the low / high end."""
    m2 = np.zeros(u.shape, np.float32)
    for k in range(3):
        n = u.shape[k]
        shape = list(u.shape)
        shape[k] = n + 1
        f = np.zeros(shape, np.float32)  # face fluxes, face j between voxels j-1 and j
        up, down = _along(k, 1, n), _along(k, 0, n - 1)
        inner = f[up]
        np.subtract(u[up], u[down], out=inner)
        inner[im[up] != im[down]] = 0.0
        if k == axis:  # u = 0 half a voxel before the first voxel, u = 1 after the last
            if faces[0]:
                f[_along(k, 0, 1)] = 2.0 * u[_along(k, 0, 1)]
            if faces[1]:
                f[_along(k, n, n + 1)] = 2.0 * (1.0 - u[_along(k, n - 1, n)])
        g = f[_along(k, 0, n)] + f[_along(k, 1, n + 1)]
        g *= 0.5
        m2 += g * g
    return np.sqrt(m2, out=m2)


def flux_magnitude(solution: np.ndarray, image: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Local flux magnitude |∇u| of a two-phase diffusion solution, per voxel.

    Parameters
    ----------
    solution : array_like, shape (2, Z, Y, X)
        Pore (channel 0) and solid (channel 1) solutions of ``image``
        (:func:`twinsr.transport.diffusion_channels`), dimensionless, in [0, 1].
    image : array_like, shape (Z, Y, X)
        The binary image they solve (1 = solid).
    axis : int
        Transport axis: u = 0 half a voxel before the first slice, u = 1 after the last.

    Returns
    -------
    ndarray of float32, shape (Z, Y, X)
        ``sqrt(Σ_k g_k²)``, g_k the mean of the two face fluxes of the voxel along axis k, in
        units of Δu per voxel. A face flux is ``u_j − u_i`` between face neighbours of the same
        phase (each voxel uses its own phase's channel), 0 between phases and on the other
        boundary faces, and ``2·u`` / ``2·(1 − u)`` on the inlet / outlet face (half a voxel to
        the Dirichlet value). Zero where the solution is flat (dead ends, floating clusters);
        ``1/L`` everywhere in a straight channel of length L; larger in a channel's necks, where
        the same current crosses fewer voxels.

    Raises
    ------
    VolumeError
        Shapes that do not match.

    Notes
    -----
    Invariant under the 48 cube symmetries (``flux_magnitude`` of the transformed pair equals
    the transformed field inside the volume) and under u → 1 − u. Peak memory ≈ 24 bytes per
    voxel.

    Examples
    --------
    >>> im = np.zeros((4, 2, 2), np.uint8)
    >>> u = ((np.arange(4) + 0.5) / 4).reshape(4, 1, 1) * np.ones((4, 2, 2))
    >>> flux_magnitude(np.stack([u, 0 * u]), im)[:, 0, 0].tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    sol = np.asarray(solution, dtype=np.float32)
    im = np.asarray(image)
    if im.ndim != 3 or sol.shape != (2, *im.shape):
        raise VolumeError(f"`solution` must have shape (2, *image.shape) with a 3-D image; got "
                          f"{sol.shape} and {im.shape}")
    u = np.where(im == 1, sol[1], sol[0])
    return _flux_field(u, im == 1, check_axis(axis), (True, True))


def _flux_crop(sol: np.ndarray, hr: np.ndarray, window: tuple[slice, ...],
               axis: int) -> np.ndarray:
    """``flux_magnitude(sol, hr, axis=axis)[window]`` from the window and one voxel of margin."""
    ext, inner = [], []
    for k, s in enumerate(window):
        lo, hi = max(s.start - 1, 0), min(s.stop + 1, hr.shape[k])
        ext.append(slice(lo, hi))
        inner.append(slice(s.start - lo, s.start - lo + s.stop - s.start))
    im = np.asarray(hr[tuple(ext)]) == 1
    ch = np.asarray(sol[(slice(None), *ext)], dtype=np.float32)
    u = np.where(im, ch[1], ch[0])
    faces = (ext[axis].start == 0, ext[axis].stop == hr.shape[axis])
    return _flux_field(u, im, axis, faces)[tuple(inner)]


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
        Source of the randomness of :meth:`sample` (pair, symmetry, position).
    augment : bool
        Mirror with p = ½ and a uniform random rotation of the 24 (spec §2.2.3).
    flux_solutions : sequence of arrays (2, Z, Y, X), optional
        Per source, the HR diffusion solution of ``hr`` (float32, memory-mappable). When given,
        every target gets a last channel, the flux magnitude |∇u| (:func:`flux_magnitude`) of
        the crop, transformed with it.
    axis : int
        Transport axis of ``flux_solutions``.

    Raises
    ------
    DatasetError
        No sources, an LR image smaller than one crop (+1 voxel of margin for mirrored crops),
        or ``flux_solutions`` that do not match the sources.

    Notes
    -----
    Subclasses change what a draw returns by overriding :meth:`choose_symmetry` and
    :meth:`read_target`; :meth:`sample`, :meth:`sample_keyed` and the RNG state stay the same.

    Examples
    --------
    >>> hr = np.zeros((8, 8, 8), np.uint8); hr[:, :4] = 1
    >>> s = CropSampler([((hr[::2, ::2, ::2],), hr)], alpha=2, crop=3, rng=0)
    >>> [a.shape for a in s.sample(2)]
    [(2, 1, 3, 3, 3), (2, 1, 6, 6, 6)]
    >>> a, b = s.sample_keyed((7, 1, 1), range(2)), s.sample_keyed((7, 1, 1), range(1, 2))
    >>> bool((a[1][1:] == b[1]).all())
    True
    """

    def __init__(
        self,
        sources: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
        *,
        alpha: int,
        crop: int,
        rng: int | np.random.Generator | None = None,
        augment: bool = True,
        flux_solutions: Sequence[np.ndarray] | None = None,
        axis: int = 0,
    ) -> None:
        if not sources:
            raise DatasetError("no training pairs: the database split is empty")
        self.sources = list(sources)
        self.alpha = int(alpha)
        self.crop = int(crop)
        self.augment = bool(augment)
        self.rng = np.random.default_rng(rng)
        self.channels = len(self.sources[0][0])
        self.flux_axis = check_axis(axis)
        self.flux_solutions = None if flux_solutions is None else list(flux_solutions)
        for chans, hr in self.sources:
            lr_shape = chans[0].shape
            need = self.crop + (1 if augment else 0)
            if min(lr_shape) < need or min(h - self.alpha * self.crop for h in hr.shape) < 0:
                raise DatasetError(
                    f"LR image of shape {tuple(lr_shape)} is smaller than one {self.crop}^3 crop "
                    f"(+{need - self.crop} voxel margin for mirroring); use a smaller `crop` or "
                    "a database with larger realizations"
                )
        if self.flux_solutions is not None:
            if len(self.flux_solutions) != len(self.sources):
                raise DatasetError(f"{len(self.flux_solutions)} flux solutions for "
                                   f"{len(self.sources)} sources; give one per source")
            for sol, (_, hr) in zip(self.flux_solutions, self.sources, strict=True):
                if tuple(sol.shape) != (2, *hr.shape):
                    raise DatasetError(f"HR solution of shape {tuple(sol.shape)} does not match "
                                       f"HR shape {tuple(hr.shape)}; expected (2, *hr.shape)")

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

    def window(self, sym: Symmetry, rng: np.random.Generator | None = None) -> Window:
        """A random source and aligned LR / HR windows for ``sym`` (consumes ``rng``)."""
        rng = self.rng if rng is None else rng
        a, n = self.alpha, self.crop
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

    def choose_symmetry(self, rng: np.random.Generator | None = None) -> Symmetry:
        """The symmetry of the next draw: uniform over all 48 with ``augment``, else identity."""
        rng = self.rng if rng is None else rng
        syms = cube_symmetries()
        if not self.augment:
            return syms[0]
        return syms[int(rng.integers(24)) + 24 * int(rng.random() < 0.5)]

    def read_target(self, w: Window, sym: Symmetry) -> tuple[np.ndarray, np.ndarray]:
        """Input and target of window ``w`` under ``sym`` (no randomness).

        Returns ``lr`` (C, n, n, n) float32 and the target (T, αn, αn, αn): here the binary HR
        crop (T = 1); subclasses add channels before :meth:`draw_target` appends the flux.
        """
        chans, hr = self.sources[w.index]
        lr = np.stack([np.asarray(c[w.lr], dtype=np.float32) for c in chans])
        h = np.asarray(hr[w.hr])
        return apply_symmetry(lr, sym), apply_symmetry(h, sym)[None]

    def draw_target(self, sym: Symmetry,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One (input, target) pair at a random window: ``lr`` (C, n, n, n) and the target
        (T [+ 1 flux channel], αn, αn, αn) as float32."""
        w = self.window(sym, rng)
        lr, t = self.read_target(w, sym)
        t = t.astype(np.float32)
        if self.flux_solutions is not None:
            flux = _flux_crop(self.flux_solutions[w.index], self.sources[w.index][1], w.hr,
                              self.flux_axis)
            t = np.concatenate([t, apply_symmetry(flux, sym)[None]])
        return lr, t

    @staticmethod
    def _stack(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        return (np.ascontiguousarray(np.stack([p[0] for p in pairs]), dtype=np.float32),
                np.ascontiguousarray(np.stack([p[1] for p in pairs]), dtype=np.float32))

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw a batch from the sampler's own generator (``rng``).

        Returns
        -------
        lr : float32, shape (batch, C, n, n, n)
        target : float32, shape (batch, T, αn, αn, αn)
            T = 1 here (values {0, 1}, 1 = solid), + 1 with ``flux_solutions``; subclasses add
            channels.
        """
        return self._stack([self.draw_target(self.choose_symmetry()) for _ in range(int(batch))])

    def sample_keyed(self, key: Sequence[int],
                     indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The crops ``indices`` of the batch keyed by ``key``, each from its own generator.

        Crop ``i`` is drawn from ``np.random.default_rng([*key, i])`` (symmetry, then source and
        position), so a crop depends only on ``(key, i)``: the same key gives the same crops in
        any order, on any thread or process, and a batch split into slices gives the same crops
        as the whole batch. The sampler's own generator is left untouched.

        Returns
        -------
        lr, target
            As :meth:`sample`, with ``len(indices)`` crops.

        Raises
        ------
        DatasetError
            A negative entry in ``key`` or ``indices``, or no indices.
        """
        keys = [int(k) for k in key]
        idx = [int(i) for i in indices]
        if not idx or min(keys + idx) < 0:
            raise DatasetError(f"keyed sampling needs non-negative integers and at least one "
                               f"index, got key {tuple(keys)} and indices {idx}")
        out = []
        for i in idx:
            rng = np.random.default_rng([*keys, i])
            out.append(self.draw_target(self.choose_symmetry(rng), rng))
        return self._stack(out)

    def get_state(self) -> dict:
        """RNG state of :meth:`sample` (for exact resume)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore the RNG state saved by :meth:`get_state`."""
        self.rng.bit_generator.state = state
