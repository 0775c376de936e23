"""Gaussian random fields by circulant embedding: covariance, no wrap-around, X1/X2 independence,
determinism, memory refusal, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft as sfft

import twinsr._validation as validation
from twinsr.exceptions import ConfigError, MemoryBudgetError, VolumeError
from twinsr.stochastic.covariance import COVARIANCE_FAMILIES, make_covariance
from twinsr.stochastic.fields import (
    _build_embedding,
    embedding_info,
    gaussian_field,
    gaussian_field_pair,
)

# γ chosen so that correlation lengths (2–3 voxels) are short against the 48³ test boxes:
# the Monte-Carlo error of the covariance estimate is then small enough to test tightly.
GAMMAS = {"exponential": 0.5, "gaussian": 0.3, "matern": 0.4}
N = 48
SEEDS = range(10)


def _axis_cov(x: np.ndarray, max_lag: int, y: np.ndarray | None = None) -> np.ndarray:
    """E[x(p) y(p + h e_axis)] with the known mean 0, averaged over the three axes."""
    y = x if y is None else y
    out = np.zeros(max_lag + 1)
    for ax in range(3):
        a = np.moveaxis(x, ax, 0).astype(np.float64)
        b = np.moveaxis(y, ax, 0).astype(np.float64)
        for h in range(max_lag + 1):
            out[h] += (a[: a.shape[0] - h] * b[h:]).mean() / 3
    return out


def _mc_sigma(cov: object, n_voxels: int, n_fields: int) -> float:
    """Standard error of a lag covariance estimate from ``n_fields`` fields of ``n_voxels``:
    Var ≈ (1/(M·N)) Σ_k [ρ(k)² + ρ(k+h)ρ(k−h)] ≤ 2 Σ_k ρ(|k|)² / (M·N), the sum running over
    3-D lag vectors k (this accounts for the correlation between voxels; averaging the three
    axes is conservatively not credited)."""
    r = int(np.ceil(cov.range_at(1e-4)))  # type: ignore[attr-defined]
    d = np.arange(-r, r + 1, dtype=np.float64)
    h = np.sqrt(d[:, None, None] ** 2 + d[None, :, None] ** 2 + d[None, None, :] ** 2)
    s = float((cov.rho(h) ** 2).sum())  # type: ignore[attr-defined]
    return float(np.sqrt(2 * s / (n_voxels * n_fields)))


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_empirical_covariance_matches_rho(family: str) -> None:
    """Lags 1–10, averaged over 10 seeds × 2 fields; tolerance 4σ (σ from _mc_sigma) + 1e-3
    (the embedding's stated accuracy)."""
    cov = make_covariance(family, GAMMAS[family])
    acc = np.zeros(11)
    for s in SEEDS:
        x1, x2 = gaussian_field_pair(N, cov, rng=s)
        acc += _axis_cov(x1, 10) + _axis_cov(x2, 10)
    acc /= 2 * len(SEEDS)
    tol = 4 * _mc_sigma(cov, N**3, 2 * len(SEEDS)) + 1e-3
    err = np.abs(acc - cov.rho(np.arange(11)))
    assert err.max() < tol, (err.round(4), tol)
    # the test is sharp: a correlation length 15 % off would fail it
    off = make_covariance(family, GAMMAS[family] * 1.15)
    assert np.abs(acc - off.rho(np.arange(11))).max() > tol


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_realized_covariance_of_the_embedding_is_exact(family: str) -> None:
    """Deterministic check: the covariance the generator actually realizes (inverse DFT of the
    clipped, truncated spectrum it uses) equals ρ at EVERY lag vector inside the box within
    the stated bounds — in particular no wrap-around correlation between opposite faces."""
    cov = make_covariance(family, 0.15)
    shape = (24, 20, 28)
    emb = _build_embedding(shape, cov, periodic=False, tol=1e-3, itemsize=8, workers=1)
    info = emb.info
    pz, py, px = info.padded_shape
    # the padding covers the range L where ρ < tol: N_i >= max(n_i + L, 2L) on every axis
    rng_l = math.ceil(cov.range_at(1e-3))
    assert all(p >= max(n + rng_l, 2 * rng_l)
               for p, n in zip(info.padded_shape, shape, strict=True)), (info.padded_shape, rng_l)
    fz, fy, _ = emb.fold
    spec2 = np.zeros(info.padded_shape)
    spec2[:, :, emb.kx_keep] = emb.sqrt_spec[np.ix_(fz, fy)] ** 2
    realized = sfft.ifftn(spec2, norm="forward").real  # c'(d), d on the periodic grid
    dz, dy, dx = (np.arange(-(n - 1), n) for n in shape)
    sub = realized[np.ix_(dz % pz, dy % py, dx % px)]
    dist = np.sqrt(dz[:, None, None] ** 2 + dy[None, :, None] ** 2 + dx[None, None, :] ** 2)
    err = np.abs(sub - cov.rho(dist)).max()
    bound = info.wrap_error + info.clip_error + info.drop_error
    assert err <= bound + 1e-9
    assert err < 2e-3
    # lag n-1 along z joins opposite faces: ρ(n-1), not the wrapped ρ(1) of a periodic field
    assert realized[shape[0] - 1, 0, 0] == pytest.approx(float(cov.rho(shape[0] - 1)), abs=2e-3)


def _smallest_even_11_smooth(target: int) -> int:
    """Smallest even length >= target with prime factors <= 11 (pocketfft's fast lengths)."""
    m = max(2, target + (target % 2))
    while True:
        k = m
        for f in (2, 3, 5, 7, 11):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 2


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_padding_is_the_range_not_a_doubling(family: str) -> None:
    """The module's claim: the non-periodic padding is L (where ρ falls below tol), not ×2 per
    axis. With correlation lengths of 2–3 voxels in a 48 × 40 × 56 box every padded length is the
    smallest even FFT-friendly length >= max(n + L, 2L), well below 2n."""
    cov = make_covariance(family, GAMMAS[family])
    shape = (48, 40, 56)
    info = embedding_info(shape, cov)
    rng_l = math.ceil(cov.range_at(1e-3))
    assert info.clip_error <= 1e-3  # no enlargement needed
    expected = tuple(_smallest_even_11_smooth(max(n + rng_l, 2 * rng_l)) for n in shape)
    assert info.padded_shape == expected, (info.padded_shape, rng_l)
    assert all(p < 2 * n for p, n in zip(info.padded_shape, shape, strict=True))
    assert info.wrap_error <= 1e-3


def test_periodic_field_is_correlated_across_faces() -> None:
    cov = make_covariance("gaussian", 0.3)
    emb = _build_embedding((32, 32, 32), cov, periodic=True, tol=1e-3, itemsize=8, workers=1)
    fz, fy, _ = emb.fold
    spec2 = np.zeros((32, 32, 32))
    spec2[:, :, emb.kx_keep] = emb.sqrt_spec[np.ix_(fz, fy)] ** 2
    realized = sfft.ifftn(spec2, norm="forward").real
    assert realized[31, 0, 0] == pytest.approx(float(cov.rho(1.0)), abs=2e-3)


def test_no_wraparound_statistically_but_periodic_has_it() -> None:
    """Mean product of opposite faces over 10 seeds: ≈ 0 (non-periodic) vs ≈ ρ(1) (periodic)."""
    cov = make_covariance("gaussian", 0.3)
    faces, faces_p = [], []
    for s in SEEDS:
        x = gaussian_field(N, cov, rng=s)
        p = gaussian_field(N, cov, rng=s, periodic=True)
        faces.append(np.mean([np.mean(x[0] * x[-1]), np.mean(x[:, 0] * x[:, -1]),
                              np.mean(x[..., 0] * x[..., -1])]))
        faces_p.append(np.mean([np.mean(p[0] * p[-1]), np.mean(p[:, 0] * p[:, -1]),
                                np.mean(p[..., 0] * p[..., -1])]))
    rho1 = float(cov.rho(1.0))  # 0.91
    # σ of one face-product mean ≈ sqrt(Σ_2D ρ²/N²) ≈ 0.05; 30 faces → ≈ 0.01
    assert abs(np.mean(faces)) < 0.05
    assert np.mean(faces_p) == pytest.approx(rho1, abs=0.1)


def test_x1_x2_independent_with_same_covariance() -> None:
    """Re and Im of one complex field: cross-covariance ≈ 0 at lags 0–5, both variances ≈ 1."""
    cov = make_covariance("exponential", 0.5)
    cross = np.zeros(6)
    var1 = var2 = 0.0
    for s in SEEDS:
        x1, x2 = gaussian_field_pair(N, cov, rng=s)
        cross += (_axis_cov(x1, 5, x2) + _axis_cov(x2, 5, x1)) / 2
        var1 += float(np.mean(x1.astype(np.float64) ** 2))
        var2 += float(np.mean(x2.astype(np.float64) ** 2))
    cross /= len(SEEDS)
    sigma = _mc_sigma(cov, N**3, len(SEEDS))
    assert np.abs(cross).max() < 4 * sigma
    assert var1 / len(SEEDS) == pytest.approx(1.0, abs=4 * sigma + 1e-3)
    assert var2 / len(SEEDS) == pytest.approx(1.0, abs=4 * sigma + 1e-3)


def test_shape_dtype_noncubic_and_float64() -> None:
    cov = make_covariance("matern", 0.3)
    x = gaussian_field((8, 21, 35), cov, rng=0)
    assert x.shape == (8, 21, 35) and x.dtype == np.float32
    y = gaussian_field(10, cov, rng=0, dtype=np.float64)
    assert y.shape == (10, 10, 10) and y.dtype == np.float64
    assert np.isfinite(x).all()


def test_seeds_workers_and_pair_consistency() -> None:
    cov = make_covariance("gaussian", 0.2)
    a = gaussian_field(40, cov, rng=7, workers=1)
    b = gaussian_field(40, cov, rng=7, workers=2)
    c = gaussian_field(40, cov, rng=8)
    x1, _ = gaussian_field_pair(40, cov, rng=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, x1)
    assert not np.array_equal(a, c)


def test_padding_is_lean() -> None:
    """Padding by the correlation range, not ×2 per axis."""
    info = embedding_info(200, make_covariance("gaussian", 0.1))
    assert max(info.padded_shape) < 260
    assert info.wrap_error <= 1e-3 and info.clip_error <= 1e-3 and info.drop_error <= 1e-4
    assert info.kept_fraction < 0.2  # smooth spectrum: most frequencies carry no noise


def test_periodic_too_short_warns() -> None:
    with pytest.warns(UserWarning, match="clipping negative eigenvalues"):
        gaussian_field(16, make_covariance("gaussian", 0.05), rng=0, periodic=True)


def test_bad_inputs() -> None:
    cov = make_covariance("gaussian", 0.2)
    with pytest.raises(VolumeError, match="positive along every axis"):
        gaussian_field((16, 0, 16), cov)
    with pytest.raises(VolumeError, match="3 entries"):
        gaussian_field((16, 16), cov)
    with pytest.raises(ConfigError, match="Covariance object"):
        gaussian_field(16, "gaussian")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dtype"):
        gaussian_field(16, cov, dtype=np.int32)
    with pytest.raises(ConfigError, match="dtype"):
        gaussian_field_pair(16, cov, dtype="not-a-dtype")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="workers"):
        gaussian_field(16, cov, workers=0)
    # every bad tol is a ConfigError, as documented (a negative one was a VolumeError)
    with pytest.raises(ConfigError, match=r"`tol` must be finite and > 0 \(a covariance error\)"):
        gaussian_field(16, cov, tol=-1)
    with pytest.raises(ConfigError, match=r"`tol` must be < 0\.5"):
        gaussian_field(16, cov, tol=0.7)
    with pytest.raises(ConfigError, match="`tol` must be a number"):
        gaussian_field(16, cov, tol="small")  # type: ignore[arg-type]


def test_memory_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "available_memory_bytes", lambda: 10 * 2**20)
    with pytest.raises(MemoryBudgetError, match="GiB"):
        gaussian_field(64, make_covariance("gaussian", 0.2))


@pytest.mark.parametrize("shape", [(15, 16, 17), (1, 33, 20), (21, 21, 21)])
def test_octant_spectrum_equals_full_fft(shape: tuple[int, int, int]) -> None:
    """The 1/8-grid eigenvalues (type-I DCT for even, symmetric extension for odd lengths) equal
    the full FFT of the periodic minimum-image covariance (after the same small-λ truncation)."""
    cov = make_covariance("exponential", 0.4)
    emb = _build_embedding(shape, cov, periodic=True, tol=1e-3, itemsize=8, workers=1)
    fz, fy, _ = emb.fold
    spec2 = np.zeros(shape)
    spec2[:, :, emb.kx_keep] = emb.sqrt_spec[np.ix_(fz, fy)] ** 2
    g = [np.minimum(np.arange(n), n - np.arange(n)) for n in shape]
    h = np.sqrt(g[0][:, None, None] ** 2 + g[1][None, :, None] ** 2 + g[2][None, None, :] ** 2)
    lam = sfft.fftn(cov.rho(h)).real
    lam = np.where(lam < 1e-4, 0.0, lam) / np.prod(shape)
    np.testing.assert_allclose(spec2, lam, atol=1e-12)
