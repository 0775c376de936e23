"""Tiled execution of a super-resolution network: two-level tiles from a memory budget, TTA.

One *tile* is an LR core extended by a halo (the receptive field). For each TTA symmetry ``g``
the extended tile is transformed, :meth:`FastNetwork.features <twinsr.sr.runtime.FastNetwork>`
runs once on all of it (LR grid, small tensors), and the HR outputs are computed in *pieces* of
``sub³`` LR voxels with the thin up-sampling halo (``1 + log2 α``), mapped back with ``g⁻¹``
(:func:`twinsr.sr.tta.map_back`) and averaged over the symmetries on the core (Welford's running
mean and spread). Only the features cost a full halo; the HR tensors, the largest ones, are
never recomputed more than ``((sub + 2·(1 + log2 α)) / sub)³`` times.

Exactness. Every convolution is zero-padded, the features are exact up to ``feature_halo`` LR
voxels from a cut side and the pieces read them only there; so a tile's core equals untiled
inference. With TTA a reversed transform computes HR voxel ``α·j + k`` (k > 0) from LR block
``j + 1``, so the halo is one LR voxel larger (:attr:`TileEngine.halo`).

The tile edge is the largest whose working memory (:meth:`TileEngine.tile_bytes`) fits the
budget (:func:`default_memory_budget`), so small volumes run as one tile without any halo.

Precision "auto" (:func:`choose_precision`): bfloat16 only where it is native
(:func:`twinsr.sr.runtime.native_bf16`), the output is large enough for the speed to matter
(more than :data:`PROBE_MIN_OUTPUT` voxels) and a probe on the central crop of the volume
(about :data:`PROBE_VOXELS` output voxels) shows the bfloat16 output thresholded at μ* equal to the
float32 one on at least :data:`PROBE_AGREEMENT` of its voxels; else float32. Whether bfloat16
flips enough voxels depends on how many probabilities lie near μ*, i.e. on the model and the data
(measured: 99.96–99.99 % agreement for briefly trained networks), so it is measured, not assumed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from twinsr._validation import available_memory_bytes
from twinsr.exceptions import ConfigError, MemoryBudgetError
from twinsr.sr.bundle import SRModel
from twinsr.sr.runtime import FastNetwork, native_bf16, resolve_precision
from twinsr.sr.symmetry import Symmetry, apply_symmetry
from twinsr.sr.tta import IDENTITY, map_back, tta_symmetries

__all__ = ["DEFAULT_BUDGET_CAP", "PROBE_AGREEMENT", "PROBE_MIN_OUTPUT", "PROBE_VOXELS",
           "TileEngine", "TileOutput", "TilePlan", "bf16_agreement", "check_memory_budget",
           "choose_precision", "default_memory_budget", "probe_crop"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET_CAP = 4 * 2**30
_MIN_BUDGET = 2**20
PROBE_VOXELS = 2**21
PROBE_MIN_OUTPUT = 4 * PROBE_VOXELS
PROBE_AGREEMENT = 0.99995


def default_memory_budget(device: str = "cpu") -> int:
    """Working memory allowed for one tile: a quarter of the available memory, at most 4 GiB.

    On CUDA also at most half of the free device memory.

    Examples
    --------
    >>> 0 < default_memory_budget("cpu") <= DEFAULT_BUDGET_CAP
    True
    """
    budget = min(available_memory_bytes() // 4, DEFAULT_BUDGET_CAP)
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        budget = min(budget, free // 2)
    return int(max(budget, _MIN_BUDGET))


def check_memory_budget(budget: object, device: str) -> int:
    """``budget`` in bytes (None → :func:`default_memory_budget`), validated.

    Raises
    ------
    ConfigError
        Not an integer, or below 1 MiB (a size in bytes, not GiB).

    Examples
    --------
    >>> check_memory_budget(2**30, "cpu")
    1073741824
    """
    if budget is None:
        return default_memory_budget(device)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or \
            budget < _MIN_BUDGET:
        raise ConfigError(f"`memory_budget` must be an integer number of bytes >= {_MIN_BUDGET} "
                          f"(1 MiB), or None for the default; got {budget!r}")
    return int(budget)


def probe_crop(shape: Sequence[int], alpha: int) -> tuple[slice, slice, slice]:
    """The central LR box whose output has about :data:`PROBE_VOXELS` voxels (cube, clipped).

    Examples
    --------
    >>> probe_crop((300, 300, 40), 2)
    (slice(109, 190, None), slice(109, 190, None), slice(0, 40, None))
    """
    n_lr = PROBE_VOXELS / alpha**3
    edge = max(1, round(n_lr ** (1 / 3)))
    sizes = [min(edge, int(n)) for n in shape]
    for _ in range(3):  # grow the unclipped axes so that thin volumes probe as many voxels
        free = [i for i, n in enumerate(shape) if sizes[i] < int(n)]
        if not free:
            break
        rest = n_lr / float(np.prod([sizes[i] for i in range(3) if i not in free]))
        e = max(1, round(rest ** (1 / len(free))))
        sizes = [min(e, int(shape[i])) if i in free else sizes[i] for i in range(3)]
    return tuple(slice((int(n) - e) // 2, (int(n) - e) // 2 + e)  # type: ignore[return-value]
                 for n, e in zip(shape, sizes, strict=True))


def bf16_agreement(model: SRModel, chans: Sequence[np.ndarray], *, device: str = "cpu") -> float:
    """Share of output voxels whose thresholded bf16 prediction equals the float32 one.

    Parameters
    ----------
    model : SRModel
        Thresholded at its μ*.
    chans : sequence of ndarray (z, y, x)
        The network inputs of an LR crop (run as one tile, without TTA).
    device : str
        A resolved device.

    Examples
    --------
    >>> from twinsr.sr.network import SRResNet3d
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5)
    >>> 0.9 < bf16_agreement(m, [np.eye(6, dtype=np.uint8)[None].repeat(6, 0)]) <= 1.0
    True
    """
    x = torch.from_numpy(np.stack([np.asarray(c, dtype=np.float32) for c in chans]))[None]
    thr = float(model.threshold)
    out = []
    for prec in ("fp32", "bf16"):
        fast = FastNetwork(model.network, device=device, precision=prec)
        with torch.inference_mode():
            p = torch.sigmoid(fast.upsample(fast.features(x))[0, 0])
        out.append((p >= thr).cpu().numpy())
    return float(np.mean(out[0] == out[1]))


def choose_precision(precision: str, model: SRModel, shape: Sequence[int],
                     read_crop: Callable[[tuple[slice, slice, slice]], Sequence[np.ndarray]], *,
                     device: str) -> str:
    """Resolve ``precision`` to "fp32" or "bf16" for one volume (see the module notes).

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16"}
    model : SRModel
    shape : three ints
        LR volume shape.
    read_crop : callable(slices) -> sequence of ndarray
        The network inputs (identity transform) of an LR box of the volume.
    device : str
        A resolved device.

    Returns
    -------
    str
        "fp32" or "bf16".

    Raises
    ------
    ConfigError
        Unknown ``precision``.

    Examples
    --------
    >>> from twinsr.sr.network import SRResNet3d
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5)
    >>> lr = np.zeros((16, 16, 16), np.uint8)  # small: float32 whatever the hardware
    >>> choose_precision("auto", m, lr.shape, lambda sl: [lr[sl]], device="cpu")
    'fp32'
    """
    resolved = resolve_precision(precision, device)
    if precision != "auto" or resolved == "fp32":
        return resolved
    n_out = float(np.prod([int(n) for n in shape])) * model.alpha**3
    if n_out <= PROBE_MIN_OUTPUT or not native_bf16(device):
        return "fp32"
    crop = probe_crop(shape, model.alpha)
    agree = bf16_agreement(model, read_crop(crop), device=device)
    choice = "bf16" if agree >= PROBE_AGREEMENT else "fp32"
    log.info("precision auto: bf16 agrees with fp32 on %.5f %% of the probe's thresholded "
             "voxels -> %s", 100 * agree, choice)
    return choice


@dataclass(frozen=True)
class TilePlan:
    """How a volume is cut: LR core edge ``tile``, halo, piece edge ``sub``, peak bytes per tile."""

    tile: int
    halo: int
    sub: int
    peak_bytes: float


@dataclass
class TileOutput:
    """Results on one tile's HR core: mean probability, spread across transforms, solution."""

    probabilities: np.ndarray
    uncertainty: np.ndarray | None = None
    solution: np.ndarray | None = None


class _Accumulator:
    """Welford's running mean (and M2 when the spread is wanted) with a per-voxel count."""

    def __init__(self, shape: tuple[int, ...], n: int, spread: bool) -> None:
        self.single = n == 1
        self.mean = np.zeros(shape, np.float32)
        self.count = None if self.single else np.zeros(shape, np.uint8)
        self.m2 = np.zeros(shape, np.float32) if spread and not self.single else None

    def add(self, dest: tuple[slice, ...], p: np.ndarray) -> None:
        if self.single:
            self.mean[dest] = p
            return
        cnt = self.count[dest]  # type: ignore[index]
        cnt += 1
        mv = self.mean[dest]
        d = p - mv
        mv += d / cnt
        if self.m2 is not None:
            m2 = self.m2[dest]
            m2 += d * (p - mv)

    def spread(self) -> np.ndarray:
        if self.m2 is None:
            return np.zeros(self.mean.shape, np.float32)
        return np.sqrt(self.m2 / np.maximum(self.count, 1)).astype(np.float32)  # type: ignore


class TileEngine:
    """Runs one model on tiles, with test-time augmentation.

    Parameters
    ----------
    model : SRModel
        The model (its network is copied into a :class:`~twinsr.sr.runtime.FastNetwork`).
    device : str
        A resolved device.
    precision : {"auto", "fp32", "bf16"}
        See :func:`twinsr.sr.runtime.resolve_precision`.
    tta : {1, 8, 48}
        Symmetries averaged (:func:`twinsr.sr.tta.tta_symmetries`).
    solution : bool
        Also return the predicted HR solution (physics-output models, ``tta=1``).
    uncertainty : bool
        Also return the spread across transforms.

    Raises
    ------
    ConfigError
        Bad ``precision`` or ``tta``.

    Examples
    --------
    >>> from twinsr.sr.network import SRResNet3d
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5)
    >>> eng = TileEngine(m, device="cpu", precision="fp32", tta=8)
    >>> lr = (np.arange(6 * 5 * 4).reshape(6, 5, 4) % 3 == 0).astype(np.uint8)
    >>> out = eng.run([lr], [(0, 6), (0, 5), (0, 4)], sub=8, channels=((0,),) * 8)
    >>> out.probabilities.shape
    (12, 10, 8)
    """

    def __init__(self, model: SRModel, *, device: str = "cpu", precision: str = "auto",
                 tta: int = 1, solution: bool = False, uncertainty: bool = False) -> None:
        self.model = model
        self.alpha = model.alpha
        self.fast = FastNetwork(model.network, device=device, precision=precision)
        self.symmetries: tuple[Symmetry, ...] = tta_symmetries(tta)
        self.solution = bool(solution)
        self.uncertainty = bool(uncertainty)

    @property
    def halo(self) -> int:
        """Halo in LR voxels for an exact result: the receptive field, +1 with TTA."""
        return self.model.halo + (1 if len(self.symmetries) > 1 else 0)

    def tile_bytes(self, shape: Sequence[int], tile: int, sub: int, halo: int) -> float:
        """Peak working memory in bytes of one tile (features, pieces, accumulators).

        Parameters
        ----------
        shape : three ints
            LR volume shape (tiles are clipped to it).
        tile, sub, halo : int
            Core edge, piece edge and halo in LR voxels.

        Returns
        -------
        float
            max(features peak, kept features + one piece) + accumulators of the core.
        """
        f = self.fast
        ext = [min(tile + 2 * halo, int(n)) for n in shape]
        core = [min(tile, int(n)) for n in shape]
        n_ext = float(np.prod(ext))
        n_hr = float(np.prod(core)) * self.alpha**3
        features = f.feature_bytes() * n_ext + 8.0 * f.in_channels * n_ext
        kept = f.channels * f.itemsize * n_ext
        piece = min(sub, max(core) + 1)
        pieces = f.piece_bytes(piece) + 12.0 * self.alpha**3 * piece**3
        n_sym = len(self.symmetries)
        acc = n_hr * (4.0 if n_sym == 1 else 5.0 + (4.0 if self.uncertainty else 0.0))
        acc += n_hr * ((8.0 if self.solution else 0.0) + (4.0 if self.uncertainty else 0.0))
        return max(features, kept + pieces) + acc

    def plan(self, shape: Sequence[int], *, budget: int, tile: int | None = None,
             halo: int | None = None) -> TilePlan:
        """The tile and piece edges for a volume of ``shape`` within ``budget`` bytes.

        ``tile=None`` picks the largest core edge whose :meth:`tile_bytes` fits (with pieces of
        at least 16 LR voxels), then the largest piece edge that fits.

        Raises
        ------
        MemoryBudgetError
            Not even a one-voxel tile fits ``budget``.

        Examples
        --------
        >>> from twinsr.sr.network import SRResNet3d
        >>> eng = TileEngine(SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5),
        ...                  precision="fp32")
        >>> eng.plan((40, 40, 40), budget=2**30).tile  # the whole volume fits
        40
        >>> eng.plan((40, 40, 40), budget=2**21).tile < 40
        True
        """
        h = self.halo if halo is None else int(halo)
        big = max(int(n) for n in shape)

        def fits(t: int, s: int) -> bool:
            return self.tile_bytes(shape, t, s, h) <= budget

        if not fits(1, 1):
            raise MemoryBudgetError(
                f"one LR voxel with its {h}-voxel halo needs "
                f"{self.tile_bytes(shape, 1, 1, h) / 2**20:.0f} MiB of working memory, more than "
                f"the budget of {budget / 2**20:.0f} MiB; raise `memory_budget`")
        if tile is None:
            tile = _largest(lambda t: fits(t, min(16, t + 1)), big)
        sub = _largest(lambda s: fits(int(tile), s), min(int(tile), big) + 1)
        return TilePlan(int(tile), h, sub, self.tile_bytes(shape, int(tile), sub, h))

    def run(self, chans: Sequence[np.ndarray], core: Sequence[tuple[int, int]], *, sub: int,
            channels: Sequence[tuple[int, ...]]) -> TileOutput:
        """The outputs on the HR core of one extended tile.

        Parameters
        ----------
        chans : sequence of ndarray (z, y, x)
            The extended tile of every input channel (all the same shape).
        core : three (lo, hi)
            The core in LR voxels, relative to the extended tile.
        sub : int
            LR edge of the HR pieces.
        channels : sequence of tuples
            For each symmetry, the indices into ``chans`` of its network inputs.

        Returns
        -------
        TileOutput
            float32 arrays of shape (α·(hi − lo), ...) (solution: (2, ...)).
        """
        a = self.alpha
        ext = tuple(int(n) for n in chans[0].shape)
        hr = tuple(a * (hi - lo) for lo, hi in core)
        acc = _Accumulator(hr, len(self.symmetries), self.uncertainty)
        sol = np.zeros((2, *hr), np.float32) if self.solution else None
        for sym, idx in zip(self.symmetries, channels, strict=True):
            x = np.stack([np.asarray(chans[i], dtype=np.float32) for i in idx])
            if sym != IDENTITY:
                x = np.ascontiguousarray(apply_symmetry(x, sym))
            with torch.inference_mode():
                feats = self.fast.features(torch.from_numpy(x)[None])
                for box in _pieces(sym, core, ext, sub):
                    self._piece(feats, box, sym, core, ext, acc, sol)
            del feats
        return TileOutput(acc.mean, acc.spread() if self.uncertainty else None, sol)

    def _piece(self, feats: torch.Tensor, box: list[tuple[int, int]], sym: Symmetry,
               core: Sequence[tuple[int, int]], ext: tuple[int, ...], acc: _Accumulator,
               sol: np.ndarray | None) -> None:
        """Compute the HR outputs of one LR box of the transformed tile and accumulate them."""
        a = self.alpha
        y = self.fast.upsample_box(feats, box)
        p = torch.sigmoid(y[0, 0]).cpu().numpy()
        piece, origin = map_back(p, sym, [a * lo for lo, _ in box], ext, a)
        src, dst = [], []
        for d in range(3):
            lo, hi = a * core[d][0], a * core[d][1]
            s, e = max(origin[d], lo), min(origin[d] + piece.shape[d], hi)
            if e <= s:
                return
            src.append(slice(s - origin[d], e - origin[d]))
            dst.append(slice(s - lo, e - lo))
        acc.add(tuple(dst), piece[tuple(src)])
        if sol is not None:  # identity only (checked by the caller)
            sol[(slice(None), *dst)] = y[0, 1:].cpu().numpy()[(slice(None), *src)]


def _pieces(sym: Symmetry, core: Sequence[tuple[int, int]], ext: tuple[int, ...],
            sub: int) -> list[list[tuple[int, int]]]:
    """LR boxes of the transformed tile whose HR outputs cover the core (one more block on a
    reversed axis: HR voxel α·j + k, k > 0, comes from block j + 1), cut into ``sub``-pieces."""
    ranges = []
    for k in range(3):
        a = sym.perm[k]
        lo, hi = core[a]
        lo, hi = (max(0, ext[a] - 1 - hi), ext[a] - lo) if sym.flips[k] else (lo, hi)
        n = max(1, math.ceil((hi - lo) / sub))
        ranges.append([(lo + i * sub, min(hi, lo + (i + 1) * sub)) for i in range(n)])
    return [[r0, r1, r2] for r0 in ranges[0] for r1 in ranges[1] for r2 in ranges[2]]


def _largest(ok: Callable[[int], bool], upper: int) -> int:
    """The largest n in [1, upper] with ok(n) (ok is monotone decreasing; ok(1) holds)."""
    lo, hi = 1, max(1, int(upper))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
