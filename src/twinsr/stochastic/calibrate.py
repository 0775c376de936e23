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
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from twinsr._validation import as_binary_volume, check_int
from twinsr.descriptors import two_point_coverage
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
MODEL_FAMILIES = ("chi_square", "grains", "fibres")
OBJECTIVES = ("s2", "descriptors")
GAMMA_BOUNDS = (1e-3, 5.0)  # voxel^-1: the search interval of the γ fit
_CHEB_DEGREE = 48


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :func:`calibrate`.

    Attributes
    ----------
    model : twin model
        The best-fitting model (ready for ``.sample``): a :class:`ChiSquareModel`,
        :class:`~twinsr.stochastic.GrainModel` or :class:`~twinsr.stochastic.FibreModel`.
    family : str
        Its model family ("chi_square", "grains", "fibres").
    objective : str
        "s2" (closed-form two-point coverage fit) or "descriptors" (simulation-based fit).
    residual : float
        RMS difference between the empirical and the model's two-point coverage over lags
        1…max_lag (closed form for "s2", a realization of the data's shape — at most 256 per
        axis — for "descriptors").
    lags : numpy.ndarray of int, shape (max_lag + 1,)
        Lags 0…max_lag in voxels.
    empirical, fitted : numpy.ndarray of float64, shape (max_lag + 1,)
        Empirical S₂(h) of the image (mean over axes) and the model's.
    volume_fraction : float
        Solid fraction ε of the image.
    shape : tuple of int
        Shape of the calibrated image.
    nu, gamma : float or None
        χ² models: threshold and inverse correlation length (voxel⁻¹).
    covariance : str or None
        χ² models: the covariance family.
    excursion_phase : str or None
        χ² models: "solid" or "pore", the phase that is the excursion set {Y ≥ ν}.
    residuals_by_covariance, gammas_by_covariance : dict[str, float]
        χ² S₂ fits: the fit of every covariance family tried (for the chosen excursion phase).
    residuals_by_phase : dict[str, float]
        χ² S₂ fits: best residual of every excursion phase tried.
    gamma_at_bound : bool
        The chosen γ lies on an end of the search interval :data:`GAMMA_BOUNDS` (a
        :class:`~twinsr.exceptions.CalibrationWarning` was issued): the fit is unreliable.
    gammas_at_bound : dict[str, bool]
        The same per covariance family tried.
    descriptor_objective : float or None
        "descriptors": the final weighted discrepancy (:func:`twinsr.stochastic.fit.objective_value`).
    descriptor_residuals : dict[str, float]
        "descriptors": residual per descriptor (relative, signed; "s2" is the normalised rms).
    objectives_by_family : dict[str, float]
        ``family="auto"``: held-out discrepancy of every family's fit (fresh seeds); the
        smallest wins.
    evaluations : int
        Simulated realizations described during the fit (0 for "s2").
    seconds : float
        Wall time of the calibration.
    """

    model: Any
    family: str
    objective: str
    residual: float
    lags: np.ndarray
    empirical: np.ndarray
    fitted: np.ndarray
    volume_fraction: float = float("nan")
    shape: tuple[int, int, int] = (0, 0, 0)
    nu: float | None = None
    gamma: float | None = None
    covariance: str | None = None
    excursion_phase: str | None = None
    residuals_by_covariance: dict[str, float] = field(default_factory=dict)
    gammas_by_covariance: dict[str, float] = field(default_factory=dict)
    residuals_by_phase: dict[str, float] = field(default_factory=dict)
    gamma_at_bound: bool = False
    gammas_at_bound: dict[str, bool] = field(default_factory=dict)
    descriptor_objective: float | None = None
    descriptor_residuals: dict[str, float] = field(default_factory=dict)
    objectives_by_family: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready fit diagnostics (no arrays)."""
        d: dict[str, Any] = {
            "family": self.family,
            "objective": self.objective,
            "residual": self.residual,
            "max_lag": int(self.lags[-1]),
            "image_shape": list(self.shape),
            "image_volume_fraction": self.volume_fraction,
            "seconds": self.seconds,
        }
        if self.covariance is not None:
            d.update({
                "covariance": self.covariance,
                "excursion_phase": self.excursion_phase,
                "residuals_by_covariance": dict(self.residuals_by_covariance),
                "gammas_by_covariance": dict(self.gammas_by_covariance),
                "residuals_by_phase": dict(self.residuals_by_phase),
                "gamma_at_bound": self.gamma_at_bound,
                "gammas_at_bound": dict(self.gammas_at_bound),
                "gamma_search_bounds": list(GAMMA_BOUNDS),
            })
        if self.descriptor_objective is not None:
            d.update({"descriptor_objective": self.descriptor_objective,
                      "descriptor_residuals": dict(self.descriptor_residuals),
                      "evaluations": self.evaluations})
        if self.objectives_by_family:
            d["objectives_by_family"] = dict(self.objectives_by_family)
        return d

    def to_dict(self) -> dict[str, Any]:
        """The model's parameters plus a ``calibration`` block (loadable by
        :func:`twinsr.stochastic.model_from_dict` and the family's ``from_dict``)."""
        d = self.model.to_dict()
        d["calibration"] = self.summary()
        return d


def _check_max_lag(max_lag: object, shape: tuple[int, ...]) -> int:
    return check_int(max_lag, "max_lag", minimum=1, maximum=min(shape) - 1,
                     context=f" for an image of shape {shape}", error=ConfigError)


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
    out = two_point_coverage(b, phase="solid", axes=(0, 1, 2), max_lag=max_lag)
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
    family: str = "chi_square",
    objective: str = "s2",
    covariance: str = "auto",
    max_lag: int | None = None,
    voxel_size: float | None = None,
    excursion_phase: str = "solid",
    matern_nu: float = 1.5,
    fit_shape: int | None = None,
    seed: int = 0,
    max_evaluations: tuple[int, int] | None = None,
    progress: Callable[[str, int, float], None] | None = None,
) -> CalibrationResult:
    """Fit a twin model to a measured binary volume.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid (bool, {0, 1}, or {0, v} with v > 0 read as solid), at least
        16 voxels along every axis.
    family : {"chi_square", "grains", "fibres", "auto"}
        Model family (:mod:`twinsr.stochastic.families`); ``"auto"`` fits every family by
        descriptors and keeps the one with the smallest discrepancy on fresh realizations
        (held-out seeds), not the best S₂ fit.
    objective : {"s2", "descriptors"}
        ``"s2"``: the paper's fit — ν from the volume fraction, γ by least squares of the
        closed-form two-point coverage (χ² family only). ``"descriptors"``: every parameter of
        the family fitted by simulation to S₂, chord lengths, surface area and both phases'
        τ_eff and geodesic τ (:func:`twinsr.stochastic.fit.fit_descriptors`; the χ² family
        starts from its S₂ fit).
    covariance : {"auto", "exponential", "gaussian", "matern"}
        χ² family: covariance to fit; ``"auto"`` fits all and keeps the smallest S₂ residual.
    max_lag : int, optional
        Largest lag (voxels) of the S₂ fit. Default: twice the lag where the normalised
        covariance (S₂ − ε²)/(ε − ε²) drops below 0.05, clipped to [16, min(shape) // 2].
    voxel_size : float, optional
        Voxel edge in µm, recorded in the model.
    excursion_phase : {"solid", "pore", "auto"}
        χ² family: which phase is the excursion set {Y ≥ ν}; ``"auto"`` tries both.
    matern_nu : float
        Smoothness of the Matérn covariance.
    fit_shape : int, optional
        "descriptors": edge of the simulated realizations (and of the data blocks they are
        compared with); default 112 voxels, at most the smallest edge of ``im``.
    seed : int
        "descriptors": seed of the simulated realizations.
    max_evaluations : (int, int), optional
        "descriptors": evaluations of the geometric and the transport stage (default: see
        :func:`twinsr.stochastic.fit.fit_descriptors`).
    progress : callable(stage, evaluation, objective), optional
        "descriptors": called after every simulated evaluation.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    VolumeError
        Not 3-D, not binary, NaN/inf, fewer than 16 voxels along an axis, a phase absent.
    ConfigError
        Unknown family, objective, covariance or excursion phase, ``objective="s2"`` with a
        family that has no closed-form S₂, bad ``max_lag`` or ``voxel_size``.

    Warns
    -----
    CalibrationWarning
        The chosen γ lies on an end of :data:`GAMMA_BOUNDS` (``gamma_at_bound=True``).
    NonPercolatingWarning
        "descriptors": a phase of the data does not percolate along an axis; its τ is left out
        of the objective.

    References
    ----------
    Paper §2.1.2 (ν from the volume fraction, γ from the covariance of the binary image).

    Examples
    --------
    >>> truth = ChiSquareModel.from_volume_fraction(0.4, 0.15, "gaussian")
    >>> fit = calibrate(truth.sample(48, rng=0), covariance="gaussian")
    >>> fit.family, fit.covariance, abs(fit.gamma - 0.15) < 0.03
    ('chi_square', 'gaussian', True)
    """
    t0 = time.perf_counter()
    b = as_binary_volume(im)
    if min(b.shape) < MIN_SIZE:
        raise VolumeError(f"`im` is too small to calibrate: shape {b.shape}; every axis needs at "
                          f"least {MIN_SIZE} voxels (use a larger sample)")
    n_solid = int(np.count_nonzero(b))
    if n_solid == 0 or n_solid == b.size:
        phase = "pore" if n_solid == 0 else "solid"
        raise VolumeError(f"`im` is all {phase} (solid fraction {n_solid / b.size:g}); the model "
                          "needs both phases present to calibrate")
    if family not in (*MODEL_FAMILIES, "auto"):
        raise ConfigError(f"unknown model family {family!r}; choose one of "
                          f"{', '.join(MODEL_FAMILIES)} or 'auto'")
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown calibration objective {objective!r}; choose 's2' or "
                          "'descriptors'")
    if objective == "s2" and family != "chi_square":
        raise ConfigError(f"objective='s2' fits only the chi_square family (the one with a "
                          f"closed-form two-point coverage); fit family={family!r} with "
                          "objective='descriptors'")
    vs = isotropic_voxel_size(voxel_size)
    s2fit = _calibrate_s2(b, covariance=covariance, max_lag=max_lag, vs=vs,
                          excursion_phase=excursion_phase, matern_nu=matern_nu) \
        if family in ("chi_square", "auto") else None
    if objective == "s2":
        return replace(s2fit, seconds=time.perf_counter() - t0)
    return _calibrate_descriptors(b, family=family, s2fit=s2fit, max_lag=max_lag, vs=vs,
                                  fit_shape=fit_shape, seed=seed, budget=max_evaluations,
                                  progress=progress, t0=t0)


def _calibrate_s2(b: np.ndarray, *, covariance: str, max_lag: int | None, vs: float | None,
                  excursion_phase: str, matern_nu: float) -> CalibrationResult:
    """The paper's fit of the χ² model: ν from ε, γ from the closed-form S₂ (see calibrate)."""
    families = _families(covariance)
    phases = _phases(excursion_phase)
    eps = float(np.count_nonzero(b)) / b.size
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
        model=model, family="chi_square", objective="s2", residual=float(resid), lags=h,
        empirical=emp, fitted=fitted, volume_fraction=eps,
        shape=tuple(int(s) for s in b.shape),  # type: ignore[arg-type]
        nu=model.nu, gamma=model.gamma, covariance=best_fam, excursion_phase=best_phase,
        residuals_by_covariance={f: fits[(best_phase, f)][1] for f in families},
        gammas_by_covariance={f: fits[(best_phase, f)][0] for f in families},
        residuals_by_phase={p: min(fits[(p, f)][1] for f in families) for p in phases},
        gamma_at_bound=at_bound, gammas_at_bound={f: fits[(best_phase, f)][2] for f in families},
    )




def _calibrate_descriptors(b: np.ndarray, *, family: str, s2fit: CalibrationResult | None,
                           max_lag: int | None, vs: float | None, fit_shape: int | None,
                           seed: int, budget: tuple[int, int] | None,
                           progress: Callable[[str, int, float], None] | None,
                           t0: float) -> CalibrationResult:
    """Descriptor-matched fit of one family (or of every family, ``"auto"``)."""
    from twinsr.stochastic.fit import DescriptorTarget, fit_descriptors, held_out_objective

    target = DescriptorTarget.from_volume(b, block=fit_shape)
    names = MODEL_FAMILIES if family == "auto" else (family,)
    fits = {}
    for name in names:
        start = s2fit.model if name == "chi_square" else None
        fits[name] = fit_descriptors(target, family=name, seed=seed, start_model=start,
                                     max_evaluations=budget, progress=progress)
    held: dict[str, float] = {}
    if family == "auto":
        held = {n: held_out_objective(f.model, target, seed=seed + 1) for n, f in fits.items()}
        best = min(held, key=held.__getitem__)
    else:
        best = family
    fit = fits[best]
    model = _with_voxel_size(fit.model, vs)
    lag = s2fit.lags[-1] if s2fit is not None else (
        _check_max_lag(max_lag, b.shape) if max_lag is not None
        else _auto_max_lag(_s2(b, min(b.shape) // 2)))
    emp = s2fit.empirical if s2fit is not None else _s2(b, int(lag))
    twin = model.sample(tuple(min(max(s, int(lag) + 1), 256) for s in b.shape), rng=[seed, 7])
    fitted = _s2(twin, int(lag))
    chi = model if isinstance(model, ChiSquareModel) else None
    return CalibrationResult(
        model=model, family=best, objective="descriptors",
        residual=float(np.sqrt(np.mean((fitted[1:] - emp[1:]) ** 2))),
        lags=np.arange(int(lag) + 1), empirical=emp, fitted=fitted,
        volume_fraction=float(np.count_nonzero(b)) / b.size,
        shape=tuple(int(s) for s in b.shape),  # type: ignore[arg-type]
        nu=chi.nu if chi else None, gamma=chi.gamma if chi else None,
        covariance=chi.covariance if chi else None,
        excursion_phase=chi.excursion_phase if chi else None,
        descriptor_objective=fit.objective, descriptor_residuals=dict(fit.residuals),
        objectives_by_family=held, evaluations=sum(f.evaluations for f in fits.values()),
        seconds=time.perf_counter() - t0)


def _with_voxel_size(model: Any, vs: float | None) -> Any:
    return model if vs is None else replace(model, voxel_size=vs)


def plot_calibration(result: CalibrationResult, path: str | os.PathLike[str], *,
                     rng: object = 0) -> Path:
    """Write a PNG: empirical S₂(h), the fitted C(h) (χ² models), and S₂ of a fresh realization.

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
    if isinstance(result.model, ChiSquareModel):
        ax.plot(hh, result.model.two_point_coverage(hh), "-", lw=1.6,
                label=f"fitted {result.covariance}, {result.excursion_phase} excursion")
        title = f"ν = {result.nu:.4g}, γ = {result.gamma:.4g} voxel⁻¹"
    else:
        title = f"{result.family} model ({result.objective} fit)"
    ax.plot(result.lags, twin_s2, "--", lw=1.2, label=f"fresh realization {shape}")
    ax.axhline(eps**2, color="0.6", lw=0.8, ls=":", label="ε² (uncorrelated)")
    ax.set_xlabel("lag h (voxels)")
    ax.set_ylabel("two-point coverage P(both solid)")
    ax.set_title(f"{title}, S₂ rms = {result.residual:.2g}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png")
    return p
