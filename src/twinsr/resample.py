"""Strided downsampling and the interpolation baselines aligned with it.

The paper builds low-resolution images by keeping every α-th voxel (spec Eq. 3; 0-based here):

    I_LR(j, k, l) = I_HR(α j, α k, α l).

LR voxel ``j`` therefore sits on the *first* HR voxel of its block, not at the block centre. An
interpolation baseline that is consistent with this grid evaluates the LR image at the HR
coordinates ``x = i / α`` (in LR voxel units) and reproduces the LR samples exactly at
``i = α j``. ``scipy.ndimage.zoom`` matches neither of its grid modes to this, so the baselines
here are separable 1-D interpolations along each axis:

* ``"nearest"``: the LR sample nearest to ``i / α`` (ties, possible for even α, go up);
* ``"trilinear"``: linear interpolation along each axis (order-1 B-spline);
* ``"triquadratic"``: quadratic B-spline interpolation (order 2), the paper's baseline (its
  ref. [21]): the LR samples are prefiltered into B-spline coefficients
  (``scipy.ndimage.spline_filter1d``, ``mode="mirror"``) and the spline is evaluated with three
  taps per axis.

Boundary mode: every method uses whole-sample mirror symmetry about the first and last LR sample
(scipy's ``mode="mirror"``: index ``-d`` reads ``d`` and ``n-1+d`` reads ``n-1-d``). It only
matters for the last ``α-1`` HR voxels along each axis, which lie beyond the last LR sample
(``x > n-1``); there the linear and quadratic interpolants are continued symmetrically, and
``"nearest"`` repeats the last sample. The result equals
``scipy.ndimage.map_coordinates(lr, grid, order=1|2, mode="mirror")`` to float32 rounding, but
is computed axis by axis (about 4-12x faster for 3-D grids, see BENCHMARKS.md).

Per-axis α: ``alpha=(az, ay, ax)`` (each in {1, 2, 4, 8}, not all 1) downsamples with
``im[::az, ::ay, ::ax]`` and interpolates only along the axes whose factor exceeds 1 (α = (4, 1, 1):
tri-quadratic along z only, the FIB-SEM case of slices thicker than their pixels). A scalar α is
the same factor on every axis, with exactly the outputs it had before per-axis factors existed.

Labelled volumes (uint8 labels 0..K-1): :func:`downsample` samples them as it samples binary ones;
:func:`upsample_labels` gives the nearest-label baseline and the one-hot interpolation followed by
an argmax over the labels.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy import ndimage

from twinsr._validation import (
    as_label_volume,
    check_alpha_axes,
    check_finite,
    check_memory,
    check_volume,
)
from twinsr.exceptions import VolumeError

__all__ = ["METHODS", "as_alpha_axes", "crop_to_multiple", "downsample", "upsample",
           "upsample_labels"]

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("triquadratic", "trilinear", "nearest")
_ORDER = {"nearest": 0, "trilinear": 1, "triquadratic": 2}
_SLAB_ELEMS = 2**24  # HR voxels per slab of the last (axis-0) pass
Alpha = int | tuple[int, int, int]


def as_alpha_axes(alpha: object) -> tuple[int, int, int]:
    """α as a per-axis triple for resampling: a scalar is any integer >= 1 on every axis, a
    triple (az, ay, ax) has entries in {1, 2, 4, 8}, not all 1.

    Raises
    ------
    VolumeError
        See :func:`twinsr._validation.check_alpha_axes`.

    Examples
    --------
    >>> as_alpha_axes(3), as_alpha_axes([4, 1, 1])
    ((3, 3, 3), (4, 1, 1))
    """
    return check_alpha_axes(alpha, scalar_allowed=None)


def _alpha_text(a: tuple[int, int, int]) -> str:
    return str(a[0]) if a[0] == a[1] == a[2] else str(a)


def downsample(im: np.ndarray, alpha: Alpha, *, crop: bool = False) -> np.ndarray:
    """Strided downsampling by α along every axis (spec Eq. 3): ``im[::az, ::ay, ::ax]``.

    Parameters
    ----------
    im : numpy.ndarray, shape (Z, Y, X), any dtype
        High-resolution volume: binary (uint8, 1 = solid, 0 = pore) or labelled (uint8 labels;
        strided sampling keeps labels as they are, no averaging).
    alpha : int or (az, ay, ax)
        Scale factor: an integer α >= 1 for all axes (the study uses 2, 4, 8), or one factor
        per axis, each in {1, 2, 4, 8} and not all 1 (e.g. (4, 1, 1) for FIB-SEM slices four
        times thicker than their pixels).
    crop : bool
        If the shape is not divisible by α (per axis), crop ``im`` first to the largest
        divisible shape (keeping the voxels with the smallest indices) instead of raising.

    Returns
    -------
    numpy.ndarray, shape (Z/az, Y/ay, X/ax), same dtype as ``im``
        A contiguous copy; ``I_LR(j, k, l) = I_HR(az j, ay k, ax l)`` (0-based).

    Raises
    ------
    VolumeError
        ``im`` is not 3-D, α is not a positive integer or a valid triple, or the shape is not
        divisible by α and ``crop`` is False.

    References
    ----------
    Spec §2.1.3, Eq. 3 (1-based there: ``I_LR(j) = I_HR(2j - 1)``).

    Examples
    --------
    >>> import numpy as np
    >>> downsample(np.arange(64).reshape(4, 4, 4), 2).shape
    (2, 2, 2)
    >>> downsample(np.zeros((8, 4, 4)), (4, 1, 1)).shape
    (2, 4, 4)
    """
    arr = check_volume(im, "im")
    a = as_alpha_axes(alpha)
    if any(s % f for s, f in zip(arr.shape, a, strict=True)):
        if not crop:
            fit = tuple((s // f) * f for s, f in zip(arr.shape, a, strict=True))
            raise VolumeError(
                f"`im` shape {arr.shape} is not divisible by alpha={_alpha_text(a)}; crop it to "
                f"{fit} first (e.g. im[:{fit[0]}, :{fit[1]}, :{fit[2]}]) or pass crop=True"
            )
        arr = crop_to_multiple(arr, a)
    return np.ascontiguousarray(arr[:: a[0], :: a[1], :: a[2]])


def crop_to_multiple(im: np.ndarray, multiple: int | tuple[int, ...]) -> np.ndarray:
    """Crop ``im`` to the largest shape divisible by ``multiple`` (keeps the low indices).

    ``multiple`` is one integer for all axes or one per axis.

    Raises
    ------
    VolumeError
        If an axis is shorter than its ``multiple``.

    Examples
    --------
    >>> import numpy as np
    >>> crop_to_multiple(np.zeros((9, 5, 5)), (4, 1, 2)).shape
    (8, 5, 4)
    """
    mult = (int(multiple),) * im.ndim if np.ndim(multiple) == 0 else tuple(int(m) for m in multiple)
    fit = tuple((s // m) * m for s, m in zip(im.shape, mult, strict=True))
    if 0 in fit:
        raise VolumeError(
            f"`im` shape {im.shape} has an axis shorter than {multiple}; cannot crop to a multiple"
        )
    return im[tuple(slice(0, f) for f in fit)]


def _mirror_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Map integer indices onto 0..n-1 by whole-sample mirror symmetry (scipy ``mirror``)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    r = np.mod(idx, period)
    return np.where(r >= n, period - r, r)


def _taps(n: int, alpha: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (m, T) into the LR axis and weights (m, T) for the HR coordinates x = i / α."""
    m = n * alpha
    x = np.arange(m, dtype=np.float64) / alpha
    if order == 0:
        idx = np.minimum(np.floor(x + 0.5).astype(np.int64), n - 1)[:, None]
        return idx, np.ones((m, 1))
    if order == 1:
        base = np.floor(x).astype(np.int64)
        t = x - base
        idx = np.stack([base, base + 1], axis=1)
        w = np.stack([1.0 - t, t], axis=1)
    else:  # quadratic B-spline, support |u| < 1.5
        base = np.floor(x + 0.5).astype(np.int64)
        t = x - base  # in [-0.5, 0.5)
        idx = np.stack([base - 1, base, base + 1], axis=1)
        w = np.stack([0.5 * (0.5 - t) ** 2, 0.75 - t**2, 0.5 * (0.5 + t) ** 2], axis=1)
    return _mirror_index(idx, n), w


def _interp_axis(c: np.ndarray, axis: int, alpha: int, order: int) -> np.ndarray:
    """1-D interpolant with coefficients ``c`` along ``axis`` at x = i / α (float32)."""
    n = c.shape[axis]
    idx, w = _taps(n, alpha, order)
    bshape = [1] * c.ndim
    bshape[axis] = n * alpha
    out = np.take(c, idx[:, 0], axis=axis)
    if order > 0:
        out *= w[:, 0].astype(np.float32).reshape(bshape)
    for t in range(1, idx.shape[1]):
        tap = np.take(c, idx[:, t], axis=axis)  # one temporary per tap, weighted in place
        tap *= w[:, t].astype(np.float32).reshape(bshape)
        out += tap
    return out


def upsample(
    lr: np.ndarray,
    alpha: Alpha,
    *,
    method: Literal["triquadratic", "trilinear", "nearest"] = "triquadratic",
    threshold: float = 0.5,
    probabilities: bool = False,
) -> np.ndarray:
    """Interpolation baseline: upsample an LR volume by α on the strided grid of :func:`downsample`.

    The LR image is evaluated at the HR coordinates ``i / a`` (LR voxel units) along each axis
    with factor ``a > 1``; LR sample ``j`` lands exactly on HR voxel ``a j``. Axes with factor 1
    are left as they are (no interpolation, no spline prefilter along them), so α = (4, 1, 1) is
    a z-only interpolation. See the module docstring for the boundary mode (whole-sample mirror
    about the first and last LR sample).

    Parameters
    ----------
    lr : numpy.ndarray, shape (z, y, x)
        Low-resolution volume, binary (uint8/bool, 1 = solid) or real-valued (finite).
    alpha : int or (az, ay, ax)
        Scale factor: an integer α >= 1 for all axes, or one factor per axis, each in
        {1, 2, 4, 8} and not all 1.
    method : {"triquadratic", "trilinear", "nearest"}
        Quadratic B-spline (the paper's baseline), linear, or nearest-sample interpolation.
    threshold : float
        Output is ``interpolant >= threshold`` as uint8 (ignored with ``probabilities=True``).
    probabilities : bool
        Return the float32 interpolant instead of the thresholded volume (quadratic B-splines
        may overshoot [0, 1] slightly near edges; values are not clipped).

    Returns
    -------
    numpy.ndarray, shape (az z, ay y, ax x)
        uint8 {0, 1} (1 = solid), or float32 with ``probabilities=True``.
        ``out[az j, ay k, ax l] == lr[j, k, l]`` exactly.

    Raises
    ------
    VolumeError
        ``lr`` not 3-D, NaN/inf values, α not a positive integer or a valid triple, unknown
        ``method``.
    MemoryBudgetError
        The output and its float32 intermediates do not fit in available memory.

    Notes
    -----
    Peak memory: about ``8 ay ax N`` bytes (float32 intermediate of the last two axes and one
    tap) plus the output (``az ay ax N`` bytes for uint8, 4 times that for float32), N = number
    of LR voxels, plus at most 128 MiB of slab buffers for the first axis.

    References
    ----------
    Spec §3 (tri-quadratic interpolation baseline); Eq. 3 for the grid.

    Examples
    --------
    >>> import numpy as np
    >>> lr = np.zeros((4, 4, 4), np.uint8); lr[1:3, 1:3, 1:3] = 1
    >>> hr = upsample(lr, 2)
    >>> hr.shape, bool((hr[::2, ::2, ::2] == lr).all())
    ((8, 8, 8), True)
    >>> upsample(lr, (4, 1, 1)).shape
    (16, 4, 4)
    """
    arr = check_volume(lr, "lr")
    check_finite(arr, "lr")
    a = as_alpha_axes(alpha)
    if method not in _ORDER:
        raise VolumeError(f"`method` must be one of {METHODS}, got {method!r}")
    order = _ORDER[method]
    if not probabilities:
        threshold = float(threshold)
    _check_upsample_memory(arr.shape, a, order, probabilities, method)
    samples = arr.astype(np.float32, copy=False)
    orders = tuple(order if f > 1 else 0 for f in a)  # factor 1: the samples themselves
    if order == 2:
        coef = samples.astype(np.float64)
        for ax in range(3):
            if a[ax] > 1:
                coef = ndimage.spline_filter1d(coef, order=2, axis=ax, mode="mirror",
                                               output=np.float64)
        coef = coef.astype(np.float32)
    else:
        coef = samples
    # Axes 2 then 1 on the whole volume, then axis 0 in slabs straight into the output.
    t1 = coef
    for ax in (2, 1):
        if a[ax] > 1:
            t1 = _interp_axis(t1, ax, a[ax], orders[ax])
    return _interp_first_axis(t1, samples, a, orders[0], threshold, probabilities)


def _check_upsample_memory(shape: tuple[int, ...], a: tuple[int, int, int], order: int,
                           probabilities: bool, method: str) -> None:
    """Refuse an :func:`upsample` whose output and intermediates exceed available memory."""
    n_lr = int(np.prod(shape))
    out_bytes = a[0] * a[1] * a[2] * n_lr * (4 if probabilities else 1)
    zo, plane = shape[0] * a[0], shape[1] * shape[2] * a[1] * a[2]
    slab = max(1, _SLAB_ELEMS // plane)
    # axes 2, 1: input + result + one tap (float32); axis 0: the axes-1,2 result + slab buffers
    # (accumulator, tap); plus the float32 coefficients and the output
    stage_yx = 4 * a[2] * n_lr + 8 * a[1] * a[2] * n_lr
    stage_z = 4 * a[1] * a[2] * n_lr + 8 * min(zo, slab) * plane
    coef_bytes = 4 * n_lr * (2 if order == 2 else 1)  # float32 samples (+ spline coefficients)
    check_memory(coef_bytes + out_bytes + max(stage_yx, stage_z),
                 f"upsample by {_alpha_text(a)} ({method})")


def _interp_first_axis(t1: np.ndarray, samples: np.ndarray, a: tuple[int, int, int], order: int,
                       threshold: float, probabilities: bool) -> np.ndarray:
    """Axis-0 pass of :func:`upsample` in slabs, with the LR samples put back bit for bit."""
    zo = samples.shape[0] * a[0]
    out = np.empty((zo, *t1.shape[1:]), dtype=np.float32 if probabilities else np.uint8)
    slab = max(1, _SLAB_ELEMS // (t1.shape[1] * t1.shape[2]))
    idx, w = _taps(samples.shape[0], a[0], order)
    w32 = w.astype(np.float32)
    # two slab buffers reused by every slab (accumulator and one weighted tap)
    acc_buf = np.empty((min(zo, slab), *t1.shape[1:]), dtype=np.float32)
    tap_buf = np.empty_like(acc_buf) if idx.shape[1] > 1 else acc_buf
    for start in range(0, zo, slab):
        stop = min(zo, start + slab)
        acc = np.take(t1, idx[start:stop, 0], axis=0, mode="clip",
                      out=acc_buf[: stop - start])
        if order > 0:
            acc *= w32[start:stop, 0, None, None]
        for t in range(1, idx.shape[1]):
            tap = np.take(t1, idx[start:stop, t], axis=0, mode="clip",
                          out=tap_buf[: stop - start])
            tap *= w32[start:stop, t, None, None]
            acc += tap
        # the LR samples themselves, bit for bit, at (az j, ay k, ax l)
        rows = np.arange(start + (-start) % a[0], stop, a[0])
        if rows.size:
            acc[rows - start, :: a[1], :: a[2]] = samples[rows // a[0]]
        if probabilities:
            out[start:stop] = acc
        else:
            np.greater_equal(acc, threshold, out=out[start:stop])
    return out


LABEL_METHODS: tuple[str, ...] = METHODS


def upsample_labels(
    lr: np.ndarray,
    alpha: Alpha,
    *,
    method: Literal["triquadratic", "trilinear", "nearest"] = "triquadratic",
    n_labels: int | None = None,
) -> np.ndarray:
    """Interpolation baselines for labelled volumes: nearest label, or one-hot then argmax.

    ``"nearest"`` repeats the nearest LR label (the grid of :func:`upsample`). ``"triquadratic"``
    (and ``"trilinear"``) interpolates the one-hot channel ``lr == k`` of every label ``k`` with
    :func:`upsample` and returns, per HR voxel, the label of the largest interpolant; ties go to
    the higher label, so with two labels this is exactly the binary baseline
    ``upsample(lr, alpha, method=...)`` (label 1 where its interpolant is >= 0.5).

    Parameters
    ----------
    lr : numpy.ndarray, shape (z, y, x)
        LR labels 0..K-1 (see :func:`twinsr._validation.as_label_volume`).
    alpha : int or (az, ay, ax)
        Scale factor, as in :func:`upsample`.
    method : {"triquadratic", "trilinear", "nearest"}
        Interpolation of the one-hot channels, or nearest label.
    n_labels : int, optional
        Number of labels K (labels may then be absent from ``lr``); default: contiguous labels
        0..max of ``lr``.

    Returns
    -------
    numpy.ndarray of uint8, shape (az z, ay y, ax x)
        HR labels; ``out[az j, ay k, ax l] == lr[j, k, l]`` exactly.

    Raises
    ------
    VolumeError
        Labels not contiguous (without ``n_labels``) or more than 255, α invalid, unknown method.
    MemoryBudgetError
        The float32 interpolants do not fit in memory.

    Notes
    -----
    Peak memory for the one-hot methods: one float32 interpolant, the running maximum (float32)
    and the labels (uint8) of the HR grid, about ``9 P`` bytes plus :func:`upsample`'s own
    intermediates, P = number of HR voxels. Runs one :func:`upsample` per label.

    Examples
    --------
    >>> import numpy as np
    >>> lr = np.zeros((4, 4, 4), np.uint8); lr[1:3, 1:3] = 1; lr[2:, :, 2:] = 2
    >>> hr = upsample_labels(lr, 2)
    >>> hr.shape, bool((hr[::2, ::2, ::2] == lr).all()), sorted(np.unique(hr).tolist())
    ((8, 8, 8), True, [0, 1, 2])
    """
    lab = as_label_volume(lr, "lr", n_labels=n_labels)
    a = as_alpha_axes(alpha)
    if method not in _ORDER:
        raise VolumeError(f"`method` must be one of {LABEL_METHODS}, got {method!r}")
    k = int(n_labels) if n_labels is not None else int(lab.max()) + 1
    if method == "nearest":
        out = lab
        for ax in range(3):
            if a[ax] > 1:
                out = np.take(out, _taps(lab.shape[ax], a[ax], 0)[0][:, 0], axis=ax)
        return np.ascontiguousarray(out)
    if k <= 2:
        return upsample(lab, a, method=method)
    n_hr = lab.size * a[0] * a[1] * a[2]
    check_memory(9 * n_hr, f"upsample_labels by {_alpha_text(a)} ({method}, {k} labels)")
    best = upsample(lab == 0, a, method=method, probabilities=True)
    out = np.zeros(best.shape, dtype=np.uint8)
    for c in range(1, k):
        p = upsample(lab == c, a, method=method, probabilities=True)
        win = p >= best
        out[win] = c
        np.maximum(best, p, out=best)
    return out
