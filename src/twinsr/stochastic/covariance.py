"""Isotropic correlation functions ρ(h) of the Gaussian fields behind the χ² excursion model.

All families are parametrised by an inverse length ``gamma`` (γ) in **voxel⁻¹**, and evaluated at
lags ``h`` in **voxels**:

=============== ============================================================ ==================
family          ρ(h)                                                         behaviour at h→0
=============== ============================================================ ==================
``exponential`` exp(−γh)                                                     1 − γh (rough)
``gaussian``    exp(−(γh)²)                                                  1 − (γh)² (smooth)
``matern``      2^{1−m}/Γ(m) · (√(2m) γh)^m K_m(√(2m) γh), smoothness m      fields m−1 times
                                                                             differentiable
=============== ============================================================ ==================

**The paper's printed covariance.** The paper (§2.1.2, reference [35] of the paper) prints the
covariance as ``exp(−γ²h)``; in the scanned text it is not legible whether the exponent is
γ²·h or (γh)². twinsr supports both readings:

* γ²·h is an *exponential* covariance; with our parametrisation ``gamma_exponential = γ_paper²``.
* (γh)² is the *Gaussian* covariance; ``gamma_gaussian = γ_paper``.

:func:`twinsr.stochastic.calibrate` fits every family to the two-point coverage of a measured
sample and reports which fits better (``covariance="auto"``). The Matérn family interpolates
between them: m = ½ is the exponential family exactly, and m → ∞ tends to exp(−(γh)²/2), i.e. the
Gaussian family with γ/√2.

Physical units: ``gamma_physical = gamma / voxel_size`` (e.g. µm⁻¹ for a voxel size in µm);
see :func:`gamma_to_physical` and :func:`gamma_from_physical`.

References
----------
Paper §2.1.2 (χ² field from two Gaussian fields with covariance ρ); Lantuéjoul, *Geostatistical
Simulation* (2002), ch. 2 (covariance families); Stein, *Interpolation of Spatial Data* (1999), §2.7
(Matérn family).

Examples
--------
>>> cov = make_covariance("gaussian", 0.1)
>>> float(cov.rho(10.0))  # exp(-1)
0.36787944117144233
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import special

from twinsr._validation import check_positive
from twinsr.exceptions import ConfigError

__all__ = [
    "COVARIANCE_FAMILIES",
    "Covariance",
    "ExponentialCovariance",
    "GaussianCovariance",
    "MaternCovariance",
    "gamma_from_physical",
    "gamma_to_physical",
    "make_covariance",
]

COVARIANCE_FAMILIES: tuple[str, ...] = ("exponential", "gaussian", "matern")


def _check_gamma(gamma: object) -> float:
    return check_positive(gamma, "gamma", hint="inverse correlation length in voxel^-1",
                          error=ConfigError)


@dataclass(frozen=True)
class Covariance(abc.ABC):
    """Base class: an isotropic correlation function ρ(h) with ρ(0) = 1, in voxel units.

    Attributes
    ----------
    gamma : float
        Inverse correlation length in voxel⁻¹ (> 0).
    """

    gamma: float
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", _check_gamma(self.gamma))

    def rho(self, h: np.ndarray | float) -> np.ndarray:
        """Correlation at lag(s) ``h`` (voxels, any shape, h ≥ 0 or |h| is used); float64."""
        h = np.abs(np.asarray(h, dtype=np.float64))
        return self._rho(h)

    @abc.abstractmethod
    def _rho(self, h: np.ndarray) -> np.ndarray:
        """ρ at non-negative float64 lags ``h`` (implemented by each family)."""

    def __call__(self, h: np.ndarray | float) -> np.ndarray:
        return self.rho(h)

    def range_at(self, tol: float) -> float:
        """Smallest lag (voxels) beyond which ρ(h) ≤ ``tol`` (ρ is decreasing for every family)."""
        if not 0 < tol < 1:
            raise ConfigError(f"`tol` must be in (0, 1), got {tol!r}")
        lo, hi = 0.0, 1.0 / self.gamma
        while float(self._rho(np.asarray(hi))) > tol:
            lo, hi = hi, 2 * hi
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if float(self._rho(np.asarray(mid))) > tol:
                lo = mid
            else:
                hi = mid
        return hi

    @property
    def integral_scale(self) -> float:
        """∫_0^∞ ρ(h) dh in voxels (a correlation length)."""
        from scipy.integrate import quad

        return float(quad(lambda t: float(self._rho(np.asarray(t))), 0, np.inf, limit=200)[0])

    def to_dict(self) -> dict[str, object]:
        """Parameters as plain JSON types (``gamma`` in voxel⁻¹)."""
        return {"covariance": self.name, "gamma": self.gamma}


@dataclass(frozen=True)
class ExponentialCovariance(Covariance):
    """ρ(h) = exp(−γh); the paper's exp(−γ²h) read as γ²·h (``gamma = γ_paper²``)."""

    name: ClassVar[str] = "exponential"

    def _rho(self, h: np.ndarray) -> np.ndarray:
        return np.exp(-self.gamma * h)


@dataclass(frozen=True)
class GaussianCovariance(Covariance):
    """ρ(h) = exp(−(γh)²); the paper's exp(−γ²h) read as exp(−(γh)²) (``gamma = γ_paper``)."""

    name: ClassVar[str] = "gaussian"

    def _rho(self, h: np.ndarray) -> np.ndarray:
        return np.exp(-((self.gamma * h) ** 2))


@dataclass(frozen=True)
class MaternCovariance(Covariance):
    """Matérn: ρ(h) = 2^{1−m}/Γ(m) (√(2m) γh)^m K_m(√(2m) γh) with smoothness m = ``matern_nu``.

    m = 0.5 gives exp(−γh) exactly; m = 1.5 gives (1 + √3 γh) exp(−√3 γh).
    """

    matern_nu: float = 1.5
    name: ClassVar[str] = "matern"

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            m = float(self.matern_nu)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"`matern_nu` must be a number, got {self.matern_nu!r}") from exc
        if not math.isfinite(m) or not 0.05 <= m <= 50:
            raise ConfigError(f"`matern_nu` (Matérn smoothness) must be in [0.05, 50], got {m!r}")
        object.__setattr__(self, "matern_nu", m)

    def _rho(self, h: np.ndarray) -> np.ndarray:
        m = self.matern_nu
        x = math.sqrt(2 * m) * self.gamma * h
        if m == 0.5:
            return np.exp(-x)
        if m == 1.5:
            return (1 + x) * np.exp(-x)
        if m == 2.5:
            return (1 + x + x * x / 3) * np.exp(-x)
        out = np.ones_like(x)
        pos = x > 0
        xp = x[pos]
        # log-space evaluation avoids overflow of x^m and underflow of K_m for large x
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            logv = (1 - m) * math.log(2) - special.gammaln(m) + m * np.log(xp) \
                + np.log(special.kve(m, xp)) - xp
        out[pos] = np.exp(logv)
        return out

    def to_dict(self) -> dict[str, object]:
        return {"covariance": self.name, "gamma": self.gamma, "matern_nu": self.matern_nu}


_CLASSES: dict[str, type[Covariance]] = {
    "exponential": ExponentialCovariance,
    "gaussian": GaussianCovariance,
    "matern": MaternCovariance,
}


def make_covariance(name: str, gamma: float, *, matern_nu: float = 1.5) -> Covariance:
    """Build a covariance family by name.

    Parameters
    ----------
    name : {"exponential", "gaussian", "matern"}
        Family (case-insensitive), or a :class:`Covariance`, which is returned as is (its own
        γ applies; :class:`ChiSquareModel` refuses a ``gamma`` that disagrees with it).
    gamma : float
        Inverse correlation length in voxel⁻¹ (> 0).
    matern_nu : float
        Smoothness of the Matérn family (ignored by the others), default 1.5.

    Returns
    -------
    Covariance
        Frozen object with ``rho(h)`` (h in voxels).

    Raises
    ------
    ConfigError
        Unknown family (the message lists the allowed names), γ ≤ 0, bad smoothness.

    Examples
    --------
    >>> make_covariance("exponential", 0.5).rho([0.0, 2.0]).round(4).tolist()
    [1.0, 0.3679]
    """
    if isinstance(name, Covariance):
        return name
    key = str(name).strip().lower() if isinstance(name, str) else None
    if key not in _CLASSES:
        raise ConfigError(
            f"unknown covariance family {name!r}; allowed: {', '.join(COVARIANCE_FAMILIES)}"
        )
    if key == "matern":
        return MaternCovariance(gamma, matern_nu)  # type: ignore[arg-type]
    return _CLASSES[key](gamma)  # type: ignore[arg-type]


def _check_voxel(voxel_size: object) -> float:
    return check_positive(voxel_size, "voxel_size", hint="voxel edge length", error=ConfigError)


def gamma_to_physical(gamma: float, voxel_size: float) -> float:
    """γ in voxel⁻¹ → γ in (length unit)⁻¹ for a voxel edge of ``voxel_size`` length units.

    >>> gamma_to_physical(0.1, 0.01)   # 0.1 / voxel at 10 nm voxels = 10 per µm
    10.0
    """
    return _check_gamma(gamma) / _check_voxel(voxel_size)


def gamma_from_physical(gamma_physical: float, voxel_size: float) -> float:
    """γ in (length unit)⁻¹ → γ in voxel⁻¹ for a voxel edge of ``voxel_size`` length units.

    >>> gamma_from_physical(10.0, 0.01)
    0.1
    """
    return _check_gamma(gamma_physical) * _check_voxel(voxel_size)
