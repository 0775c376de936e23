"""Fine-tuning on a measured HR image: real LR/HR crops mixed into the training batches.

A user with a measured binary HR image (a calibration scan) can add real pairs to the twins:
:func:`finetune_pairs` cuts the region ``finetune_region`` of the image, downsamples it by α
(:func:`twinsr.resample.downsample`, spec Eq. 3) and, for ``inputs="diffu"``, solves the
diffusion channels of the LR image along the database's axis, exactly as the database does for
a twin. :class:`MixedSampler` then draws crop ``i`` of every training batch from the real pair
with probability ``TrainConfig.finetune_fraction``, from the twins otherwise; the choice is
keyed like the crops themselves (``default_rng([*key, i, MIX_STREAM])``), so a resumed
fine-tune draws the same batches as an uninterrupted one. Validation crops and the threshold
μ* stay on the twins' validation split.

Regions are ``(z, y, x)`` triples of slices (or ``(start, stop)`` pairs) in HR voxels;
:func:`split_region` splits an image into two disjoint halves along an axis (fine-tune on one,
evaluate on the other) and :func:`check_disjoint` refuses an overlap.

>>> a, b = split_region((64, 64, 64), axis=0)
>>> a[0], b[0], a[1:] == b[1:]
(slice(0, 32, None), slice(32, 64, None), True)
>>> regions_overlap(a, b)
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from twinsr._validation import as_binary_volume, check_alpha, check_axis
from twinsr.exceptions import ConfigError, DatasetError
from twinsr.sr.database import Pair

__all__ = [
    "MIX_STREAM",
    "MixedSampler",
    "Region",
    "check_disjoint",
    "finetune_pairs",
    "image_digest",
    "normalize_region",
    "read_finetune_image",
    "regions_overlap",
    "split_region",
]

#: Last key entry of the generator that chooses real vs twin for a crop.
MIX_STREAM = 7
Region = tuple[slice, slice, slice]


def normalize_region(region: Any, shape: Sequence[int], name: str = "finetune_region"
                     ) -> Region:
    """A region as three bounded slices inside ``shape`` (None: the whole image).

    Accepts three slices (step 1) or ``(start, stop)`` pairs, or None for a whole axis; ``None``
    bounds mean the image's edges; negative indices are not accepted.

    Raises
    ------
    ConfigError
        Not three entries, a step other than 1, bounds outside the image or an empty axis.

    Examples
    --------
    >>> normalize_region([(0, 8), (None, None), slice(2, 6)], (10, 10, 10))
    (slice(0, 8, None), slice(0, 10, None), slice(2, 6, None))
    """
    if region is None:
        return tuple(slice(0, int(s)) for s in shape)  # type: ignore[return-value]
    try:
        parts = list(region)
    except TypeError:
        parts = []
    if len(parts) != 3:
        raise ConfigError(f"`{name}` must be three (start, stop) pairs or slices in (z, y, x) "
                          f"order, got {region!r}")
    out = []
    for ax, (p, n) in enumerate(zip(parts, shape, strict=True)):
        if p is None:
            p = slice(None)
        if isinstance(p, slice):
            if p.step not in (None, 1):
                raise ConfigError(f"`{name}` axis {ax}: step must be 1, got {p.step}")
            start, stop = p.start, p.stop
        else:
            try:
                start, stop = p
            except (TypeError, ValueError):
                raise ConfigError(f"`{name}` axis {ax}: expected (start, stop), got {p!r}"
                                  ) from None
        start = 0 if start is None else int(start)
        stop = int(n) if stop is None else int(stop)
        if not 0 <= start < stop <= n:
            raise ConfigError(f"`{name}` axis {ax}: [{start}, {stop}) is empty or outside the "
                              f"image's 0..{n}; give 0 <= start < stop <= {n}")
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def regions_overlap(a: Region, b: Region) -> bool:
    """True if two normalized regions share at least one voxel.

    >>> regions_overlap((slice(0, 4),) * 3, (slice(3, 8),) * 3)
    True
    """
    return all(max(p.start, q.start) < min(p.stop, q.stop) for p, q in zip(a, b, strict=True))


def check_disjoint(finetune: Region, evaluation: Region, *, what: str = "volume") -> None:
    """Refuse a fine-tune region that overlaps the evaluation region.

    Raises
    ------
    ConfigError
        The regions share voxels (the message gives both and the overlap).
    """
    if regions_overlap(finetune, evaluation):
        both = tuple(slice(max(p.start, q.start), min(p.stop, q.stop))
                     for p, q in zip(finetune, evaluation, strict=True))
        raise ConfigError(f"{what}: the fine-tune region {_show(finetune)} overlaps the "
                          f"evaluation region {_show(evaluation)} in {_show(both)}; a network "
                          "must not be scored on voxels it was fine-tuned on; choose disjoint "
                          "regions (e.g. split_region)")


def _show(r: Sequence[slice]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in r) + "]"


def split_region(shape: Sequence[int], *, axis: int = 0, fraction: float = 0.5
                 ) -> tuple[Region, Region]:
    """Two disjoint regions covering ``shape``: the first ``fraction`` along ``axis``, the rest.

    Raises
    ------
    ConfigError
        ``fraction`` not in (0, 1) or an axis too short to split.
    """
    ax = check_axis(axis)
    if not 0 < fraction < 1:
        raise ConfigError(f"the split fraction must be in (0, 1), got {fraction}")
    n = int(shape[ax])
    cut = round(n * fraction)
    if not 0 < cut < n:
        raise ConfigError(f"axis {ax} of length {n} is too short to split at {fraction}")
    full = [slice(0, int(s)) for s in shape]
    a, b = list(full), list(full)
    a[ax], b[ax] = slice(0, cut), slice(cut, n)
    return tuple(a), tuple(b)  # type: ignore[return-value]


def image_digest(im: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of a binary volume's shape and bytes (run identity)."""
    h = hashlib.sha256(str(tuple(im.shape)).encode())
    h.update(np.ascontiguousarray(im, dtype=np.uint8).tobytes())
    return h.hexdigest()[:16]


def finetune_pairs(image: Any, *, alpha: int, inputs: str, crop: int, axis: int = 0,
                   region: Any = None, hr_solution: bool = False,
                   device: str = "cpu") -> list[Pair]:
    """The real LR/HR pair of a measured HR image, built as the database builds a twin's.

    Parameters
    ----------
    image : array_like (Z, Y, X) or path
        Measured binary HR image (1 = solid; {0, v} encodings accepted, see
        :func:`twinsr._validation.as_binary_volume`), or a volume file.
    alpha : {2, 4, 8}
        Scale factor.
    inputs : {"bin", "diffu"}
        With "diffu" the LR image's diffusion channels are solved along ``axis``.
    crop : int
        LR crop edge of the training; the region's LR image must hold one crop + 1 voxel.
    axis : int
        Transport axis (the database's).
    region : regions, optional
        Part of ``image`` to use (:func:`normalize_region`); default the whole image.
    hr_solution : bool
        Also solve the HR diffusion channels and floating mask (flux-weighted objective,
        ``targets="morph+diffu"``).
    device : str
        Device of the diffusion solver.

    Returns
    -------
    list of Pair
        One :class:`~twinsr.sr.database.Pair` (name ``"finetune"``, model and realization -1);
        the HR region is cropped to a multiple of α (low indices kept).

    Raises
    ------
    VolumeError
        The image is not 3-D or not binary.
    ConfigError
        A bad region.
    DatasetError
        The region is smaller than one training crop.
    """
    im = read_finetune_image(image)
    a = check_alpha(alpha)
    if inputs not in ("bin", "diffu"):
        raise ConfigError(f"`inputs` must be 'bin' or 'diffu', got {inputs!r}")
    reg = normalize_region(region, im.shape)
    hr = im[reg]
    need = a * (int(crop) + 1)
    if min(hr.shape) < need:
        raise DatasetError(f"the fine-tuning image region {_show(reg)} (shape {hr.shape}) is "
                           f"smaller than one training crop: at alpha={a} with LR crop {crop} "
                           f"every axis needs >= {need} HR voxels (crop + 1 voxel margin); use a "
                           "larger image or region, or a smaller `crop`")
    from twinsr.resample import crop_to_multiple, downsample

    hr = np.ascontiguousarray(crop_to_multiple(hr, a), dtype=np.uint8)
    lr = downsample(hr, a)
    chans: tuple[np.ndarray, ...] = (lr,)
    ax = check_axis(axis)
    if inputs == "diffu" or hr_solution:
        import warnings

        from twinsr.exceptions import NonPercolatingWarning
        from twinsr.transport import diffusion_channels

        with warnings.catch_warnings():  # a dead-end phase in a small region is expected
            warnings.simplefilter("ignore", NonPercolatingWarning)
            if inputs == "diffu":
                d = np.asarray(diffusion_channels(lr, axis=ax, device=device), np.float32)
                chans = (lr, d[0], d[1])
            sol = flo = None
            if hr_solution:
                from twinsr.transport.clusters import floating_mask

                sol = np.asarray(diffusion_channels(hr, axis=ax, device=device), np.float32)
                flo = floating_mask(hr, axis=ax).view(np.uint8)
    else:
        sol = flo = None
    return [Pair("finetune", -1, -1, a, chans, hr, sol, flo)]


def read_finetune_image(image: Any) -> np.ndarray:
    """A measured HR image (array or volume file) as a binary uint8 volume.

    Raises
    ------
    VolumeError
        Not 3-D or not two-phase (the message names ``finetune_on`` and the values found).

    Examples
    --------
    >>> im = np.zeros((2, 2, 2)); im[0] = 255
    >>> int(read_finetune_image(im).max())
    1
    """
    from pathlib import Path

    if isinstance(image, (str, Path)):
        from twinsr.io import read_volume

        image = read_volume(image)
    return as_binary_volume(image, "finetune_on")


class MixedSampler:
    """Training crops from the twins and from a real pair, chosen per crop by a keyed draw.

    Parameters
    ----------
    twins, real : CropSampler
        Samplers of the twins and of the measured pair (same α, crop and channels).
    fraction : float
        Probability that a crop is a real one, in (0, 1].

    Examples
    --------
    >>> from twinsr.sr.data import CropSampler
    >>> hr = np.zeros((16, 16, 16), np.uint8); hr[:, :8] = 1
    >>> t = CropSampler([((hr[::2, ::2, ::2],), hr)], alpha=2, crop=3, rng=0)
    >>> r = CropSampler([((1 - hr[::2, ::2, ::2],), 1 - hr)], alpha=2, crop=3, rng=0)
    >>> m = MixedSampler(t, r, fraction=0.5)
    >>> x, y = m.sample_keyed((1, 1, 1, 1), range(4))
    >>> x.shape, bool((m.sample_keyed((1, 1, 1, 1), range(4))[1] == y).all())
    ((4, 1, 3, 3, 3), True)
    """

    def __init__(self, twins: Any, real: Any, *, fraction: float) -> None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"`finetune_fraction` must be in (0, 1], got {fraction}")
        if twins.channels != real.channels or twins.crop != real.crop:
            raise ConfigError("the fine-tuning pairs must have the twins' input channels and "
                              "crop")
        self.twins, self.real, self.fraction = twins, real, float(fraction)
        self.channels, self.crop, self.alpha = twins.channels, twins.crop, twins.alpha

    def is_real(self, key: Sequence[int], i: int) -> bool:
        """Whether crop ``i`` of the batch keyed by ``key`` is drawn from the real pair."""
        rng = np.random.default_rng([*(int(k) for k in key), int(i), MIX_STREAM])
        return bool(rng.random() < self.fraction)

    def sample_keyed(self, key: Sequence[int],
                     indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`twinsr.sr.data.CropSampler.sample_keyed`; real crops are keyed by
        ``(*key, MIX_STREAM)`` (a twin crop is the one the twins-only run would draw)."""
        idx = [int(i) for i in indices]
        if not idx:
            raise DatasetError("keyed sampling needs at least one index")
        xs, ys = [], []
        for i in idx:
            if self.is_real(key, i):
                x, y = self.real.sample_keyed((*key, MIX_STREAM), [i])
            else:
                x, y = self.twins.sample_keyed(key, [i])
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)
