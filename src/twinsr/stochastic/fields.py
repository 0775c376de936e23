"""Stationary isotropic Gaussian random fields by circulant embedding (FFT), lean in memory.

Method
------
The target covariance ρ is evaluated on a periodic grid of *padded* shape N = (Nz, Ny, Nx)
with minimum-image distances, c(k) = ρ(|min(k, N − k)|). The eigenvalues λ of this block-circulant
matrix are the DFT of c; since c is even along every axis they are real, even, and computed from one
octant only (a type-I DCT per axis, or a symmetric extension for odd lengths), so the spectrum costs
1/8 of the grid. With W complex white noise (independent N(0, 1) real and imaginary parts) in
Fourier space,

    Z = IDFT( sqrt(λ / N_total) · W )                               (Dietrich & Newsam, 1997)

has Re Z and Im Z **independent** stationary Gaussian fields with covariance c: E[Z_x conj(Z_y)] =
2 c(x − y) and E[Z_x Z_y] = 0. One complex FFT therefore yields the two fields X1, X2 of the χ²
model. Cropping the first ``shape`` voxels of each axis gives a field with covariance exactly ρ at
every lag inside the crop, up to three documented, measured errors:

* **wrap-around**: the non-periodic padding is L = the lag where ρ falls below ``tol`` (a few
  correlation lengths, not ×2 per axis): N_i ≥ max(n_i + L, 2L). A lag k inside the crop then sees
  either ρ(k) exactly or two values both ≤ ``tol`` (ρ is decreasing), so the error is ≤ ``tol``.
* **clipping**: the truncated periodised covariance need not be non-negative definite; negative
  eigenvalues are set to 0, which changes every covariance value by at most Σ|λ₋| / N_total. This
  bound is computed for each embedding; if it exceeds ``tol`` the padding is enlarged (up to 4
  times, then a warning).
* **negligible frequencies**: eigenvalues below ``tol``/10 are set to 0 (their noise is never
  drawn); the variance they carried, Σλ_dropped / N_total (< ``tol``/10, reported as
  ``drop_error``), bounds the change of every covariance value. For the smooth Gaussian family
  this leaves well under 1 % of the frequencies, which makes its fields several times faster
  and smaller; rough families (exponential, Matérn) keep almost all of them.

``periodic=True`` uses N = shape (no padding): the field is periodic and opposite faces ARE
correlated, as for a torus.

The inverse FFT is done pass by pass so that only one complex array of shape (nz, Ny, Nx)
exists (the z-transform keeps only the first nz planes, and only the x-frequencies that carry
noise are stored): peak memory ≈ 8 bytes × nz·Ny·n_kx (complex64, n_kx ≤ Nx) + the output + the
spectrum (≈ 1/8 of that) + small per-thread chunks; :func:`embedding_info` gives the estimate.
Chunks run on a thread pool (numpy's random fills and scipy's FFT release the GIL); each chunk
draws its noise from its own child seed, so a realization depends only on (seed, shape,
covariance), never on the number of threads.

References
----------
Paper §2.1.2 (X1, X2 independent, stationary, isotropic standard Gaussian fields).
C. R. Dietrich and G. N. Newsam, SIAM J. Sci. Comput. 18 (1997) 1088–1107 (circulant embedding,
real and imaginary parts as two independent fields).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
from scipy import fft as sfft

from twinsr._validation import check_int, check_memory, check_positive, check_shape
from twinsr.exceptions import ConfigError, EmbeddingWarning
from twinsr.stochastic.covariance import Covariance

__all__ = ["EmbeddingInfo", "embedding_info", "gaussian_field", "gaussian_field_pair"]

log = logging.getLogger(__name__)

_CHUNK_BYTES = 24 * 2**20  # target size of one complex chunk handled by a thread
_MAX_RETRIES = 4


@dataclass(frozen=True)
class EmbeddingInfo:
    """Description of a circulant embedding (no field is generated).

    Attributes
    ----------
    shape : tuple of int
        Requested field shape (Z, Y, X).
    padded_shape : tuple of int
        Periodic grid used for the FFT.
    periodic : bool
        Whether the field is periodic (no padding).
    wrap_error : float
        Bound on the covariance error from the truncation at the padding: max ρ beyond the pad
        (0 when the padding covers every lag in full, or for periodic fields).
    clip_error : float
        Bound on the covariance error from clipping negative eigenvalues: Σ|λ₋| / N_total.
    n_negative : int
        Number of negative eigenvalues that were clipped.
    drop_error : float
        Variance of the dropped negligible frequencies (λ < ``tol``/10 each), a bound on the
        covariance error from that truncation.
    kept_fraction : float
        Share of the padded grid's frequencies that carry noise (1 for rough covariances,
        a few percent for the smooth Gaussian family).
    bytes_estimate : int
        Estimated peak memory (bytes) of one complex field (two real fields) at this shape,
        excluding the caller's output array.
    """

    shape: tuple[int, int, int]
    padded_shape: tuple[int, int, int]
    periodic: bool
    wrap_error: float
    clip_error: float
    n_negative: int
    drop_error: float
    kept_fraction: float
    bytes_estimate: int


def _even_fast_len(target: int) -> int:
    """Smallest even FFT-friendly length ≥ ``target`` (11-smooth, as ``scipy.fft.next_fast_len``)."""
    return 2 * sfft.next_fast_len(max(1, math.ceil(target / 2)), real=False)


def _octant_covariance(cov: Covariance, padded: tuple[int, int, int]) -> np.ndarray:
    """c(j) = ρ(|j|) on the octant 0 ≤ j_i ≤ N_i // 2 (float64), evaluated in z-slabs."""
    m = [n // 2 + 1 for n in padded]
    out = np.empty(m, dtype=np.float64)
    y2 = np.arange(m[1], dtype=np.float64)[:, None] ** 2
    x2 = np.arange(m[2], dtype=np.float64)[None, :] ** 2
    yx2 = y2 + x2
    cutoff = cov.range_at(1e-14)  # beyond: ρ < 1e-14, stored as 0 (saves slow special functions)
    for z in range(m[0]):
        h = np.sqrt(yx2 + float(z) ** 2)
        if z > cutoff:
            out[z] = 0.0
            continue
        inside = h <= cutoff
        plane = np.zeros_like(h)
        plane[inside] = cov.rho(h[inside])
        out[z] = plane
    return out


def _octant_eigenvalues(c: np.ndarray, padded: tuple[int, int, int], workers: int) -> np.ndarray:
    """Eigenvalues (DFT of the even periodic extension of the octant ``c``), octant only."""
    lam = c
    for axis, n in enumerate(padded):
        if n == 1:
            continue
        if n % 2 == 0:
            lam = sfft.dct(lam, type=1, axis=axis, overwrite_x=True, workers=workers)
        else:
            mh = n // 2
            idx = np.concatenate([np.arange(mh + 1), np.arange(mh, 0, -1)])
            ext = np.take(lam, idx, axis=axis)
            lam = np.ascontiguousarray(sfft.rfft(ext, axis=axis, workers=workers).real)
            del ext
    return lam


def _multiplicity(padded: tuple[int, int, int]) -> list[np.ndarray]:
    """How many full-grid frequencies each octant index stands for, per axis."""
    out = []
    for n in padded:
        mh = n // 2
        w = np.full(mh + 1, 2.0)
        w[0] = 1.0
        if n % 2 == 0:
            w[mh] = 1.0
        out.append(w)
    return out


@dataclass(frozen=True)
class _Embedding:
    info: EmbeddingInfo
    sqrt_spec: np.ndarray  # (Nz//2+1, Ny//2+1, n_kx) real, sqrt(λ / N_total), kept kx only
    fold: tuple[np.ndarray, np.ndarray, np.ndarray]  # full index -> octant index, per axis
    kx_keep: np.ndarray  # full-grid kx indices that carry noise


def _setup_bytes(padded: tuple[int, ...]) -> int:
    oct_ = (padded[0] // 2 + 1) * (padded[1] // 2 + 1) * (padded[2] // 2 + 1)
    return int(oct_ * 8 * 3)  # float64 octant, one transform buffer, masks


def _bytes_estimate(shape: tuple[int, ...], padded: tuple[int, ...], itemsize: int,
                    workers: int, n_kx: int | None = None) -> int:
    n_kx = padded[2] if n_kx is None else n_kx
    big = shape[0] * padded[1] * n_kx * 2 * itemsize
    spec = (padded[0] // 2 + 1) * (padded[1] // 2 + 1) * n_kx * itemsize
    chunks = workers * 5 * _CHUNK_BYTES
    return int(big + spec + chunks)


def _build_embedding(shape: tuple[int, int, int], cov: Covariance, *, periodic: bool, tol: float,
                     itemsize: int, workers: int) -> _Embedding:
    pad = 0 if periodic else math.ceil(cov.range_at(tol))
    for attempt in range(_MAX_RETRIES + 1):
        if periodic:
            padded = shape
            wrap = 0.0
        else:
            padded = tuple(_even_fast_len(max(n + pad, 2 * pad, 2)) for n in shape)
            wrap = max(float(cov.rho(float(min(p - n for p, n in zip(padded, shape, strict=True)) + 1))),
                       float(cov.rho(float(min(padded) // 2))))
        check_memory(_setup_bytes(padded) + _bytes_estimate(shape, padded, itemsize, workers, 0),
                     f"the spectrum of a Gaussian field of shape {shape} (padded {padded})")
        c = _octant_covariance(cov, padded)
        lam = _octant_eigenvalues(c, padded, workers)
        del c
        n_total = float(np.prod(padded))
        wz, wy, wx = _multiplicity(padded)
        neg = np.minimum(lam, 0.0)
        weighted = np.einsum("ijk,i,j,k->", neg, wz, wy, wx)
        n_neg = int(np.count_nonzero(neg))
        del neg
        clip = float(-weighted / n_total)
        if periodic or clip <= tol or attempt == _MAX_RETRIES:
            break
        log.debug("embedding %s: clip error %.2e > tol %.1e, enlarging the padding", padded,
                  clip, tol)
        pad = math.ceil(pad * 1.5) + 4
    if clip > tol:
        warnings.warn(
            f"circulant embedding of {cov.name} (gamma={cov.gamma:g}) on {padded}: clipping "
            f"negative eigenvalues changes the covariance by up to {clip:.2e} (> tol={tol:g})"
            + ("; the field is periodic and shorter than the correlation range, use a larger "
               "shape or periodic=False" if periodic else ""),
            EmbeddingWarning,
            stacklevel=4,
        )
    # drop negligible frequencies: each dropped λ < tol/10, so their total variance is
    # Σ λ_dropped / N_total < tol/10 (computed exactly below)
    np.maximum(lam, 0.0, out=lam)
    small = lam < 0.1 * tol
    dropped = float(np.einsum("ijk,i,j,k->", np.where(small, lam, 0.0), wz, wy, wx) / n_total)
    lam[small] = 0.0
    kept = float(np.einsum("ijk,i,j,k->", (~small).astype(np.float64), wz, wy, wx) / n_total)
    kx_oct = np.nonzero(~small.all(axis=(0, 1)))[0]
    del small
    lam /= n_total
    np.sqrt(lam, out=lam)
    dtype = np.float32 if itemsize == 4 else np.float64
    fold = tuple(np.minimum(np.arange(n), n - np.arange(n)) for n in padded)
    kx_keep = np.nonzero(np.isin(fold[2], kx_oct))[0]
    spec = np.ascontiguousarray(lam[:, :, fold[2][kx_keep]], dtype=dtype)
    del lam
    est = _bytes_estimate(shape, padded, itemsize, workers, kx_keep.size)
    info = EmbeddingInfo(shape=shape, padded_shape=padded, periodic=periodic, wrap_error=wrap,
                         clip_error=clip, n_negative=n_neg, drop_error=dropped,
                         kept_fraction=kept, bytes_estimate=est)
    log.debug("embedding %s", info)
    return _Embedding(info=info, sqrt_spec=spec, fold=fold, kx_keep=kx_keep)  # type: ignore[arg-type]


@numba.njit(cache=True)
def _scatter_columns(big: np.ndarray, y0: int, out: np.ndarray, iy: np.ndarray, ix: np.ndarray,
                     nz: int) -> None:  # pragma: no cover - compiled
    """big[z, y0 + iy[j], ix[j]] = out[z, j] for z < nz (a boolean-mask scatter, 30× faster)."""
    for z in range(nz):
        for j in range(iy.size):
            big[z, y0 + iy[j], ix[j]] = out[z, j]


def _check_cov(covariance: object) -> Covariance:
    if not isinstance(covariance, Covariance):
        raise ConfigError(
            "`covariance` must be a Covariance object, e.g. make_covariance('gaussian', 0.1), "
            f"got {type(covariance).__name__}"
        )
    return covariance


def resolve_workers(workers: int | None) -> int:
    """Thread count of the field generation: ``workers``, or the CPU count (at most 8) for None.

    Raises
    ------
    ConfigError
        ``workers`` is not a positive integer or None.
    """
    if workers is None:
        return max(1, min(os.cpu_count() or 1, 8))
    return check_int(workers, "workers", minimum=1, context=" (or None: the CPU count)",
                     error=ConfigError)


def embedding_info(shape: int | tuple[int, int, int], covariance: Covariance, *,
                   periodic: bool = False, tol: float = 1e-3) -> EmbeddingInfo:
    """Padding, error bounds and memory estimate of the embedding used by :func:`gaussian_field`.

    Examples
    --------
    >>> from twinsr.stochastic.covariance import make_covariance
    >>> info = embedding_info(64, make_covariance("gaussian", 0.2))
    >>> info.padded_shape, info.clip_error <= 1e-3
    ((80, 80, 80), True)
    """
    shp = check_shape(shape)
    cov = _check_cov(covariance)
    tol = check_tol(tol)
    return _build_embedding(shp, cov, periodic=bool(periodic), tol=tol, itemsize=4,
                            workers=1).info  # type: ignore[arg-type]


def check_tol(tol: object) -> float:
    """The covariance accuracy ``tol`` of an embedding as a float in (0, 0.5).

    Raises
    ------
    ConfigError
        ``tol`` is not a number in (0, 0.5).
    """
    t = check_positive(tol, "tol", hint="a covariance error", error=ConfigError)
    if t >= 0.5:
        raise ConfigError(f"`tol` must be < 0.5 (a covariance error), got {tol!r}")
    return t


def complex_field(
    shape: tuple[int, int, int],
    cov: Covariance,
    consumer: Callable[[int, int, np.ndarray], None],
    *,
    rng: object,
    periodic: bool,
    tol: float,
    cdtype: type,
    workers: int,
    extra_bytes: int = 0,
) -> EmbeddingInfo:
    """Generate Z = X1 + i X2 and hand it to ``consumer(z0, z1, block)`` in z-slabs.

    The engine behind :func:`gaussian_field` and :meth:`ChiSquareModel.sample` (inputs already
    checked: ``shape`` from ``check_shape``, ``tol`` from :func:`check_tol`, ``workers`` from
    :func:`resolve_workers`). ``block`` has shape (z1 − z0, ny, nx) and dtype ``cdtype``
    (complex64 or complex128); slabs are disjoint and may be handed over from several threads
    at once. ``extra_bytes`` (e.g. the caller's output) is added to the memory check.
    Returns the embedding's :class:`EmbeddingInfo`.
    """
    itemsize = 4 if cdtype == np.complex64 else 8
    emb = _build_embedding(shape, cov, periodic=periodic, tol=tol, itemsize=itemsize,
                           workers=workers)
    info = emb.info
    check_memory(info.bytes_estimate + extra_bytes, f"a Gaussian field pair of shape {shape}")
    nz, ny, nx = shape
    pz, py, px = info.padded_shape
    fz, fy, _ = emb.fold
    spec = emb.sqrt_spec
    kx_keep = emb.kx_keep
    nkx = kx_keep.size
    all_kx = nkx == px
    row_bytes = pz * max(nkx, 1) * 2 * itemsize
    cy = max(1, min(py, _CHUNK_BYTES // row_bytes))
    y_chunks = [(y0, min(y0 + cy, py)) for y0 in range(0, py, cy)]
    # one independent child seed per chunk: the realization does not depend on `workers`
    base = np.random.default_rng(rng)
    seeds = np.random.SeedSequence(base.integers(0, 2**63, size=4, dtype=np.int64).tolist())
    children = seeds.spawn(len(y_chunks))
    big = np.zeros((nz, py, nkx), dtype=cdtype)  # lazily zeroed pages
    real_dtype = np.float32 if itemsize == 4 else np.float64

    def pass_z(j: int) -> None:
        # noise on the kept frequencies of rows y0:y1, then the inverse DFT along z
        y0, y1 = y_chunks[j]
        s_blk = spec[np.ix_(fz, fy[y0:y1])]  # (pz, cy, nkx)
        cols = (s_blk > 0).any(axis=0)  # (cy, nkx): columns with any non-zero spectrum
        if not cols.any():
            return
        full = bool(cols.all())
        s_cols = s_blk.reshape(pz, -1) if full else s_blk[:, cols]  # (pz, n_cols)
        g = np.random.Generator(np.random.SFC64(children[j]))
        block = np.empty(s_cols.shape, dtype=cdtype)
        g.standard_normal(out=block.view(real_dtype), dtype=real_dtype)
        block *= s_cols
        out = sfft.ifft(block, axis=0, norm="forward", overwrite_x=True, workers=1)
        if full:
            big[:, y0:y1] = out[:nz].reshape(nz, y1 - y0, nkx)
        else:
            iy, ix = np.nonzero(cols)
            _scatter_columns(big, y0, out, iy, ix, nz)

    cz = max(1, min(nz, _CHUNK_BYTES // (py * px * itemsize * 2)))
    z_chunks = [(z0, min(z0 + cz, nz)) for z0 in range(0, nz, cz)]

    def pass_yx(j: int) -> None:
        z0, z1 = z_chunks[j]
        t = sfft.ifft(big[z0:z1], axis=1, norm="forward", workers=1)[:, :ny, :]
        if not all_kx:
            u = np.zeros((z1 - z0, ny, px), dtype=cdtype)
            u[:, :, kx_keep] = t
            t = u
        t = sfft.ifft(t, axis=2, norm="forward", overwrite_x=True, workers=1)[:, :, :nx]
        consumer(z0, z1, t)

    if workers == 1:
        for j in range(len(y_chunks)):
            pass_z(j)
        for j in range(len(z_chunks)):
            pass_yx(j)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(pass_z, range(len(y_chunks))))
            list(pool.map(pass_yx, range(len(z_chunks))))
    return info


def _real_fields(shape: object, covariance: object, n_fields: int, *, rng: object, periodic: bool,
                 dtype: object, tol: object, workers: int | None) -> list[np.ndarray]:
    """Validate, then return Re Z (and Im Z when ``n_fields`` is 2) of one complex field."""
    shp = check_shape(shape)
    cov = _check_cov(covariance)
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise ConfigError(f"`dtype` must be float32 or float64, got {dtype!r}") from exc
    if dt not in (np.float32, np.float64):
        raise ConfigError(f"`dtype` must be float32 or float64, got {dt}")
    cdtype = np.complex64 if dt == np.float32 else np.complex128
    t, w = check_tol(tol), resolve_workers(workers)
    n_out = n_fields * int(np.prod(shp)) * dt.itemsize
    check_memory(n_out, f"{n_fields} field(s) of shape {shp}")
    outs = [np.empty(shp, dtype=dt) for _ in range(n_fields)]

    def take(z0: int, z1: int, block: np.ndarray) -> None:
        outs[0][z0:z1] = block.real
        if n_fields == 2:
            outs[1][z0:z1] = block.imag

    complex_field(shp, cov, take, rng=rng, periodic=bool(periodic), tol=t,  # type: ignore[arg-type]
                   cdtype=cdtype, workers=w, extra_bytes=n_out)
    return outs


def gaussian_field_pair(
    shape: int | tuple[int, int, int],
    covariance: Covariance,
    *,
    rng: object = None,
    periodic: bool = False,
    dtype: type = np.float32,
    tol: float = 1e-3,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard Gaussian fields with covariance ρ from one complex FFT.

    Same parameters as :func:`gaussian_field`. Returns ``(X1, X2)``, each of shape ``shape``;
    ``X1`` equals ``gaussian_field(shape, covariance, rng=rng, ...)`` for the same ``rng``.

    Examples
    --------
    >>> from twinsr.stochastic.covariance import make_covariance
    >>> x1, x2 = gaussian_field_pair(32, make_covariance("gaussian", 0.2), rng=0)
    >>> x1.shape, x2.dtype
    ((32, 32, 32), dtype('float32'))
    """
    x1, x2 = _real_fields(shape, covariance, 2, rng=rng, periodic=periodic, dtype=dtype, tol=tol,
                          workers=workers)
    return x1, x2


def gaussian_field(
    shape: int | tuple[int, int, int],
    covariance: Covariance,
    *,
    rng: object = None,
    periodic: bool = False,
    dtype: type = np.float32,
    tol: float = 1e-3,
    workers: int | None = None,
) -> np.ndarray:
    """A stationary isotropic standard Gaussian random field (mean 0, variance 1), covariance ρ.

    Parameters
    ----------
    shape : int or (Z, Y, X)
        Grid shape in voxels (an int means a cube); any positive sizes, non-cubic too.
    covariance : Covariance
        From :func:`twinsr.stochastic.covariance.make_covariance` (γ in voxel⁻¹).
    rng : None, int, sequence of int, numpy.random.Generator or SeedSequence
        Seed or generator (``np.random.default_rng(rng)``); a Generator passed in is advanced.
    periodic : bool
        If False (default) the field has no wrap-around correlation between opposite faces
        (non-periodic padding); if True the field lives on a torus of exactly ``shape``.
    dtype : float32 or float64
        Output dtype (float32 default; the FFT then runs in complex64).
    tol : float
        Covariance accuracy of the embedding (wrap-around and clipping bounds, see module
        docstring); default 1e-3.
    workers : int, optional
        Threads (default: the CPU count, at most 8). Does not change the result.

    Returns
    -------
    numpy.ndarray, shape ``shape``, dtype ``dtype``
        The field X1. Peak memory ≈ 8 bytes/voxel × (padded nz·Ny·Nx) in complex64 plus the
        output (4 bytes/voxel) — see :func:`embedding_info`.

    Raises
    ------
    VolumeError
        A shape with a zero or a wrong number of axes.
    ConfigError
        Not a Covariance, bad dtype, tol, workers.
    MemoryBudgetError
        The estimated peak memory exceeds the memory available (checked before allocating).

    References
    ----------
    Paper §2.1.2; Dietrich & Newsam (1997).

    Examples
    --------
    >>> from twinsr.stochastic.covariance import make_covariance
    >>> x = gaussian_field((16, 32, 48), make_covariance("exponential", 0.3), rng=1)
    >>> x.shape, x.dtype
    ((16, 32, 48), dtype('float32'))
    """
    (x1,) = _real_fields(shape, covariance, 1, rng=rng, periodic=periodic, dtype=dtype, tol=tol,
                         workers=workers)
    return x1
