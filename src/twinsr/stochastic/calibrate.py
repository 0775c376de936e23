"""Fit the χ² excursion model (ν, γ, covariance family, excursion phase) to a binary volume.

ν follows from the solid fraction ε (ν = −2 ln ε, or −2 ln(1 − ε) when the pore phase is the
excursion set); γ is the least-squares fit of the empirical two-point coverage S₂(h) (probability
that two voxels h apart along an axis are both solid; FFT autocorrelation with non-periodic
normalisation by overlap counts, averaged over the three axes) to the closed form C(h; ν, γ) of
:meth:`ChiSquareModel.two_point_coverage`, over lags h = 1 … ``max_lag``.

References
----------
Paper §2.1.2 ("the parameters ν and γ are estimated from the volume fraction and the two-point
coverage of the measured samples"); Torquato, *Random Heterogeneous Materials* (2002), ch. 2
(two-point probability function S₂).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import optimize

from twinsr._validation import as_binary_volume, check_int
from twinsr.exceptions import CalibrationWarning, ConfigError, VolumeError
from twinsr.stochastic.covariance import COVARIANCE_FAMILIES, make_covariance
from twinsr.stochastic.excursion import (
    EXCURSION_PHASES,
    ChiSquareModel,
    check_excursion_phase,
    excursion_coverage,
    isotropic_voxel_size,
)

__all__ = [
    "GAMMA_BOUNDS",
    "CalibrationResult",
    "calibrate",
    "empirical_two_point_coverage",
    "plot_calibration",
]

log = logging.getLogger(__name__)

MIN_SIZE = 16
GAMMA_BOUNDS = (1e-3, 5.0)  # voxel^-1: the search interval of the γ fit
_CHEB_DEGREE = 48


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :func:`calibrate`.

    Attributes
    ----------
    model : ChiSquareModel
        The best-fitting model (ready for ``.sample``).
    nu, gamma : float
        Its threshold and inverse correlation length (voxel⁻¹).
    family : str
        Its covariance family.
    excursion_phase : str
        "solid" or "pore": which phase is the excursion set {Y ≥ ν}.
    residual : float
        RMS difference between empirical and fitted two-point coverage over lags 1…max_lag.
    lags : numpy.ndarray of int, shape (max_lag + 1,)
        Lags 0…max_lag in voxels.
    empirical, fitted : numpy.ndarray of float64, shape (max_lag + 1,)
        Empirical S₂(h) of the image and the model's C(h).
    residuals_by_family, gammas_by_family : dict[str, float]
        Fit of every family tried (for the chosen excursion phase).
    residuals_by_phase : dict[str, float]
        Best residual of every excursion phase tried.
    volume_fraction : float
        Solid fraction ε of the image.
    shape : tuple of int
        Shape of the calibrated image.
    gamma_at_bound : bool
        The chosen γ lies on an end of the search interval :data:`GAMMA_BOUNDS` (a
        :class:`~twinsr.exceptions.CalibrationWarning` was issued): the fit is unreliable.
    gammas_at_bound : dict[str, bool]
        The same per family tried (for the chosen excursion phase).
    """

    model: ChiSquareModel
    nu: float
    gamma: float
    family: str
    excursion_phase: str
    residual: float
    lags: np.ndarray
    empirical: np.ndarray
    fitted: np.ndarray
    residuals_by_family: dict[str, float] = field(default_factory=dict)
    gammas_by_family: dict[str, float] = field(default_factory=dict)
    residuals_by_phase: dict[str, float] = field(default_factory=dict)
    volume_fraction: float = float("nan")
    shape: tuple[int, int, int] = (0, 0, 0)
    gamma_at_bound: bool = False
    gammas_at_bound: dict[str, bool] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready fit diagnostics (no arrays)."""
        return {
            "family": self.family,
            "excursion_phase": self.excursion_phase,
            "residual": self.residual,
            "residuals_by_family": dict(self.residuals_by_family),
            "gammas_by_family": dict(self.gammas_by_family),
            "residuals_by_phase": dict(self.residuals_by_phase),
            "max_lag": int(self.lags[-1]),
            "image_shape": list(self.shape),
            "image_volume_fraction": self.volume_fraction,
            "gamma_at_bound": self.gamma_at_bound,
            "gammas_at_bound": dict(self.gammas_at_bound),
            "gamma_search_bounds": list(GAMMA_BOUNDS),
        }

    def to_dict(self) -> dict[str, Any]:
        """The model's parameters plus a ``calibration`` block (loadable by
        :meth:`ChiSquareModel.from_dict`)."""
        d = self.model.to_dict()
        d["calibration"] = self.summary()
        return d


def _check_max_lag(max_lag: object, shape: tuple[int, ...]) -> int:
    return check_int(max_lag, "max_lag", minimum=1, maximum=min(shape) - 1,
                     context=f" for an image of shape {shape}", error=ConfigError)


def _axis_autocorrelation(im: np.ndarray, axis: int, max_lag: int) -> np.ndarray:
    """Σ over lines along ``axis`` of Σ_x im(x) im(x + h), h = 0..max_lag (float64)."""
    a = np.moveaxis(im, axis, -1)
    n = a.shape[-1]
    nfft = sfft.next_fast_len(n + max_lag, real=True)
    acc = np.zeros(nfft // 2 + 1, dtype=np.float64)
    rows = a.shape[0]
    per_row = max(1, (32 * 2**20) // (a.shape[1] * nfft * 16))  # ~32 MB of spectrum per chunk
    for r0 in range(0, rows, per_row):
        block = a[r0 : r0 + per_row].astype(np.float64)
        f = sfft.rfft(block, n=nfft, axis=-1, workers=-1)
        acc += (f.real**2 + f.imag**2).sum(axis=(0, 1))
    return sfft.irfft(acc, n=nfft)[: max_lag + 1]


def empirical_two_point_coverage(im: np.ndarray, max_lag: int, *,
                                 per_axis: bool = False) -> np.ndarray:
    """Empirical two-point coverage S₂(h) = P(x and x + h·e_axis both solid), h = 0…max_lag.

    Non-periodic: the sum of products at lag h along an axis is divided by the number of voxel
    pairs that fit inside the volume, (n_axis − h)·(product of the other sizes). The
    autocorrelation is computed by zero-padded FFTs, in chunks (≈ 32 MB at a time).

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume (1 = solid; see :func:`twinsr._validation.as_binary_volume`).
    max_lag : int
        Largest lag in voxels (< the smallest axis).
    per_axis : bool
        Return the three axis curves (shape (3, max_lag + 1)) instead of their mean.

    Returns
    -------
    numpy.ndarray of float64, shape (max_lag + 1,) or (3, max_lag + 1)
        S₂(0) is the solid fraction.

    Raises
    ------
    VolumeError
        Not 3-D, not binary, NaN.
    ConfigError
        ``max_lag`` not in 1 … min(shape) − 1.

    Examples
    --------
    >>> im = np.zeros((20, 20, 20), np.uint8); im[:, :, ::2] = 1
    >>> empirical_two_point_coverage(im, 2, per_axis=True)[2].round(3).tolist()
    [0.5, 0.0, 0.5]
    """
    b = as_binary_volume(im)
    lag = _check_max_lag(max_lag, b.shape)
    return _s2(b, lag, per_axis=per_axis)


def _s2(b: np.ndarray, max_lag: int, *, per_axis: bool = False) -> np.ndarray:
    out = np.empty((3, max_lag + 1))
    h = np.arange(max_lag + 1)
    for axis in range(3):
        n = b.shape[axis]
        others = b.size // n
        out[axis] = _axis_autocorrelation(b, axis, max_lag) / ((n - h) * others)
    return out if per_axis else out.mean(axis=0)


def _auto_max_lag(s2: np.ndarray) -> int:
    """Default fit range from S₂ at lags 0…min(shape) // 2 (``s2`` covers that whole range)."""
    limit = s2.size - 1
    eps = s2[0]
    kappa = (s2 - eps**2) / (eps - eps**2)
    below = np.nonzero(kappa <= 0.05)[0]
    h05 = int(below[0]) if below.size else limit
    return int(min(max(2 * h05, MIN_SIZE), limit))


class _CoverageTable:
    """C(s) of the solid phase on s = sqrt(1 − ρ²) ∈ [0, 1], Chebyshev-interpolated (~1e-10)."""

    def __init__(self, nu: float, phase: str) -> None:
        self.nu = nu
        e = math.exp(-0.5 * nu)

        def solid(s: np.ndarray) -> np.ndarray:
            ce = excursion_coverage(1.0 - s**2, nu)
            return ce if phase == "solid" else 1.0 - 2.0 * e + ce

        self.poly = np.polynomial.Chebyshev.interpolate(solid, _CHEB_DEGREE, domain=[0.0, 1.0])

    def __call__(self, rho: np.ndarray) -> np.ndarray:
        s = np.sqrt(np.clip(1.0 - rho**2, 0.0, 1.0))
        return self.poly(s)


def _fit_gamma(family: str, matern_nu: float, table: _CoverageTable, h: np.ndarray,
               target: np.ndarray) -> tuple[float, float, bool]:
    """Least-squares γ (log-grid search, then bounded Brent); returns (γ, rms residual, whether
    γ lies on an end of :data:`GAMMA_BOUNDS`)."""

    def rms(log_g: float) -> float:
        cov = make_covariance(family, math.exp(log_g), matern_nu=matern_nu)
        return float(np.sqrt(np.mean((table(cov.rho(h)) - target) ** 2)))

    lo, hi = math.log(GAMMA_BOUNDS[0]), math.log(GAMMA_BOUNDS[1])
    grid = np.linspace(lo, hi, 64)
    vals = np.array([rms(g) for g in grid])
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(rms, bounds=(a, b), method="bounded",
                                   options={"xatol": 1e-7})
    best_lg, best = (float(res.x), float(res.fun)) if res.fun <= vals[i] else (grid[i], vals[i])
    # on a bound, or no better than a bound (a flat residual: the image does not pin γ down)
    flat = min(vals[0], vals[-1]) <= best * (1 + 1e-6) + 1e-12
    at_bound = bool(min(abs(best_lg - lo), abs(best_lg - hi)) < 1e-4 or flat)
    return math.exp(best_lg), best, at_bound


def _warn_at_bound(gamma: float, family: str) -> None:
    if gamma < math.sqrt(GAMMA_BOUNDS[0] * GAMMA_BOUNDS[1]):  # nearer the lower end (log scale)
        why = (f"the lower end {GAMMA_BOUNDS[0]:g} voxel^-1 (a correlation length beyond "
               "a thousand voxels): the two-point coverage does not decay within the fit range; "
               "calibrate a larger volume (many correlation lengths across), or try another "
               "covariance family")
    else:
        why = (f"the upper end {GAMMA_BOUNDS[1]:g} voxel^-1 (correlated over less than a voxel): "
               "the image looks like noise at the voxel scale; check the segmentation, or try "
               "another covariance family")
    warnings.warn(f"calibrate: the fitted gamma={gamma:.4g} of the {family} family lies on (or "
                  f"fits no better than) {why}; "
                  "the fit is unreliable (CalibrationResult.gamma_at_bound is True)",
                  CalibrationWarning, stacklevel=3)


def _families(covariance: object) -> list[str]:
    if isinstance(covariance, str) and covariance.strip().lower() == "auto":
        return list(COVARIANCE_FAMILIES)
    if isinstance(covariance, str) and covariance.strip().lower() in COVARIANCE_FAMILIES:
        return [covariance.strip().lower()]
    raise ConfigError(f"unknown covariance family {covariance!r}; allowed: auto, "
                      f"{', '.join(COVARIANCE_FAMILIES)}")


def _phases(excursion_phase: object) -> list[str]:
    if isinstance(excursion_phase, str) and excursion_phase.strip().lower() == "auto":
        return list(EXCURSION_PHASES)
    return [check_excursion_phase(excursion_phase)]


def calibrate(
    im: np.ndarray,
    *,
    covariance: str = "auto",
    max_lag: int | None = None,
    voxel_size: float | None = None,
    excursion_phase: str = "solid",
    matern_nu: float = 1.5,
) -> CalibrationResult:
    """Fit the χ² excursion model to a measured binary volume.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid (bool, {0, 1}, or {0, v} with v > 0 read as solid), at least
        16 voxels along every axis.
    covariance : {"auto", "exponential", "gaussian", "matern"}
        Family to fit; ``"auto"`` fits all and keeps the smallest residual.
    max_lag : int, optional
        Largest lag (voxels) of the fit. Default: twice the lag where the normalised
        covariance (S₂ − ε²)/(ε − ε²) drops below 0.05, clipped to [16, min(shape) // 2].
    voxel_size : float, optional
        Voxel edge in µm, recorded in the model (γ stays in voxel⁻¹).
    excursion_phase : {"solid", "pore", "auto"}
        Which phase is the excursion set {Y ≥ ν}; ``"auto"`` tries both.
    matern_nu : float
        Smoothness of the Matérn family.

    Returns
    -------
    CalibrationResult
        Best model, its fit and the fits of the alternatives.

    Raises
    ------
    VolumeError
        Not 3-D, not binary, NaN/inf, fewer than 16 voxels along an axis, a phase absent.
    ConfigError
        Unknown family or excursion phase, bad ``max_lag`` or ``voxel_size``.

    Warns
    -----
    CalibrationWarning
        The chosen γ lies on an end of :data:`GAMMA_BOUNDS` (``gamma_at_bound=True``): a volume
        too small to see the correlation decay, an image that is noise at the voxel scale, or a
        family that does not fit.

    References
    ----------
    Paper §2.1.2 (ν from the volume fraction, γ from the covariance of the binary image).

    Examples
    --------
    >>> truth = ChiSquareModel.from_volume_fraction(0.4, 0.15, "gaussian")
    >>> fit = calibrate(truth.sample(48, rng=0), covariance="gaussian")
    >>> abs(fit.gamma - 0.15) < 0.03
    True
    """
    b = as_binary_volume(im)
    if min(b.shape) < MIN_SIZE:
        raise VolumeError(f"`im` is too small to calibrate: shape {b.shape}; every axis needs at "
                          f"least {MIN_SIZE} voxels (use a larger sample)")
    families = _families(covariance)
    phases = _phases(excursion_phase)
    vs = isotropic_voxel_size(voxel_size)
    n_solid = int(np.count_nonzero(b))
    eps = n_solid / b.size
    if n_solid == 0 or n_solid == b.size:
        phase = "pore" if n_solid == 0 else "solid"
        raise VolumeError(f"`im` is all {phase} (solid fraction {eps:g}); the model needs both "
                          "phases present to calibrate")
    if max_lag is None:  # S₂ up to min(shape) // 2 picks the range; the fit uses its head
        s2_all = _s2(b, min(b.shape) // 2)
        lag = _auto_max_lag(s2_all)
        emp = s2_all[: lag + 1]
    else:
        lag = _check_max_lag(max_lag, b.shape)
        emp = _s2(b, lag)
    h = np.arange(lag + 1)
    fits: dict[tuple[str, str], tuple[float, float, bool]] = {}
    for phase in phases:
        e_exc = eps if phase == "solid" else 1.0 - eps
        nu = -2.0 * math.log(e_exc)
        table = _CoverageTable(nu, phase)
        for fam in families:
            fits[(phase, fam)] = _fit_gamma(fam, matern_nu, table, h[1:], emp[1:])
            log.info("calibrate: phase=%s family=%s gamma=%.5g rms=%.3g at_bound=%s", phase, fam,
                     *fits[(phase, fam)])
    best_phase, best_fam = min(fits, key=lambda k: fits[k][1])
    gamma, resid, at_bound = fits[(best_phase, best_fam)]
    if at_bound:
        _warn_at_bound(gamma, best_fam)
    model = ChiSquareModel.from_volume_fraction(eps, gamma, best_fam, matern_nu=matern_nu,
                                                excursion_phase=best_phase, voxel_size=vs)
    fitted = model.two_point_coverage(h)
    fitted[0] = eps
    return CalibrationResult(
        model=model, nu=model.nu, gamma=model.gamma, family=best_fam,
        excursion_phase=best_phase, residual=float(resid), lags=h, empirical=emp, fitted=fitted,
        residuals_by_family={f: fits[(best_phase, f)][1] for f in families},
        gammas_by_family={f: fits[(best_phase, f)][0] for f in families},
        residuals_by_phase={p: min(fits[(p, f)][1] for f in families) for p in phases},
        volume_fraction=eps, shape=tuple(int(s) for s in b.shape),  # type: ignore[arg-type]
        gamma_at_bound=at_bound, gammas_at_bound={f: fits[(best_phase, f)][2] for f in families},
    )


def plot_calibration(result: CalibrationResult, path: str | os.PathLike[str], *,
                     rng: object = 0) -> Path:
    """Write a PNG: empirical S₂(h), the fitted C(h), and S₂ of a fresh realization of the model.

    The realization has the calibrated image's shape, capped at 256 voxels per axis.

    Parameters
    ----------
    result : CalibrationResult
    path : path-like
        Output ``.png`` (written atomically; folders are created).
    rng : seed
        Seed of the fresh realization.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        ``result`` is not a CalibrationResult.

    Notes
    -----
    Drawn on a :class:`matplotlib.figure.Figure` (no pyplot), so the caller's matplotlib
    backend and open figures are untouched.

    Examples
    --------
    >>> import os, tempfile
    >>> fit = calibrate(ChiSquareModel.from_volume_fraction(0.5, 0.25).sample(24, rng=0),
    ...                 covariance="gaussian")
    >>> plot_calibration(fit, os.path.join(tempfile.mkdtemp(), "fit.png")).suffix
    '.png'
    """
    from matplotlib.figure import Figure

    from twinsr._atomic import atomic_path

    if not isinstance(result, CalibrationResult):
        raise ConfigError(f"`result` must be a CalibrationResult, got {type(result).__name__}")
    lag = int(result.lags[-1])
    shape = tuple(min(max(s, lag + 1), 256) for s in result.shape)
    twin = result.model.sample(shape, rng=rng)
    twin_s2 = _s2(twin, lag)
    hh = np.linspace(0, lag, 4 * lag + 1)
    eps = result.volume_fraction
    fig = Figure(figsize=(6.4, 4.2), dpi=120)  # no pyplot: the user's backend is left alone
    ax = fig.subplots()
    ax.plot(result.lags, result.empirical, "o", ms=3.5, label="image (empirical)")
    ax.plot(hh, result.model.two_point_coverage(hh), "-", lw=1.6,
            label=f"fitted {result.family}, {result.excursion_phase} excursion")
    ax.plot(result.lags, twin_s2, "--", lw=1.2, label=f"fresh realization {shape}")
    ax.axhline(eps**2, color="0.6", lw=0.8, ls=":", label="ε² (uncorrelated)")
    ax.set_xlabel("lag h (voxels)")
    ax.set_ylabel("two-point coverage P(both solid)")
    ax.set_title(f"ν = {result.nu:.4g}, γ = {result.gamma:.4g} voxel⁻¹, rms = {result.residual:.2g}",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png")
    return p
