"""The χ² excursion-set model of the paper: solid = {X1² + X2² ≥ ν} (or its complement).

X1, X2 are independent stationary isotropic standard Gaussian fields with correlation ρ(h)
(:mod:`twinsr.stochastic.covariance`); Y = X1² + X2² is a χ² field with 2 degrees of freedom, so
Y/2 ~ Exp(1) and the excursion set {Y ≥ ν} occupies a fraction exp(−ν/2) of space.

Two-point coverage
------------------
With r = ρ(h)², the pair (Y(0)/2, Y(h)/2) is Kibble's bivariate exponential, and the probability
that both points lie in the excursion set is

    C_e(h) = Σ_{k≥0} (1 − r) r^k Q(k + 1, ν / (2(1 − r)))²                        (series)
           = e^{−ν/2} ∫_0^∞ ½ e^{−t/2} P[χ'²₂(λ) ≥ ν/(1 − r)] dt,  λ = r(ν + t)/(1 − r)  (integral)

with Q the regularized upper incomplete gamma function and χ'²₂(λ) the non-central χ² with two
degrees of freedom (given Y(0) = y, Y(h)/(1 − r) ~ χ'²₂(r y/(1 − r))). The series converges like
r^k, i.e. *slowly* when ρ(h) → 1 (small γ: ρ(1) > 0.99). twinsr sums it exactly and fast by
noting that Q(k + 1, x) = P[Poisson(x) ≤ k] is 0 to machine precision for k < x − 12√x − 30 and
1 for k > x + 12√x + 30: only that window (≈ 24√x + 60 terms) is summed, and the remaining tail is
the geometric sum r^{k_hi}. The integral form (scipy ``ncx2.sf`` with adaptive quadrature) is kept
as an independent cross-check (``method="integral"``).

If the pore phase is the excursion set (``excursion_phase="pore"``), solid = {Y < ν} and
P(both solid) = 1 − 2e^{−ν/2} + C_e(h).

References
----------
Paper §2.1.2 (model, volume fraction exp(−ν/2)); Kibble, Sankhyā 5 (1941) 137–150 (bivariate
gamma); Lantuéjoul, *Geostatistical Simulation* (2002), §14 (χ² / chi-square random sets).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import integrate, special
from scipy.stats import ncx2

from twinsr._atomic import atomic_write_text
from twinsr._validation import check_memory, check_positive, check_shape
from twinsr.exceptions import ConfigError
from twinsr.stochastic.covariance import (
    COVARIANCE_FAMILIES,
    Covariance,
    gamma_to_physical,
    make_covariance,
)
from twinsr.stochastic.fields import check_tol, complex_field, resolve_workers

__all__ = ["EXCURSION_PHASES", "ChiSquareModel", "excursion_coverage"]

EXCURSION_PHASES = ("solid", "pore")


def _cpos(value: object, name: str, hint: str) -> float:
    """A model parameter as a finite float > 0 (ConfigError naming it and what it means)."""
    return check_positive(value, name, hint=hint, error=ConfigError)
_FORMAT = "twinsr.chi_square_model"
_FORMAT_VERSION = 1
_S2_MIN = 1e-8  # below this 1 − r, C is interpolated linearly in sqrt(1 − r) towards r = 1


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------
def _series_one(r: float, nu: float) -> float:
    """Σ_k (1−r) r^k Q(k+1, x)² over the window where Q is neither 0 nor 1, plus the tail."""
    if r <= 0.0:
        return math.exp(-nu)
    x = nu / (2.0 * (1.0 - r))
    sx = math.sqrt(x)
    k_lo = max(0, math.floor(x - 12.0 * sx - 30.0))
    k_hi = math.ceil(x + 12.0 * sx + 30.0)
    k = np.arange(k_lo, k_hi, dtype=np.float64)
    log_w = math.log1p(-r) + k * math.log(r)
    terms = np.exp(log_w) * special.gammaincc(k + 1.0, x) ** 2
    tail = math.exp(k_hi * math.log(r))  # Σ_{k≥k_hi} (1−r) r^k, with Q = 1 there
    return float(np.sum(terms[::-1]) + tail)


def _integral_one(r: float, nu: float) -> float:
    if r <= 0.0:
        return math.exp(-nu)
    q = 1.0 - r
    thr = nu / q

    def f(t: float) -> float:
        return 0.5 * math.exp(-0.5 * t) * float(ncx2.sf(thr, 2, r * (nu + t) / q))

    w = 12.0 * math.sqrt(q * (nu + 2.0)) + 1e-12
    a = integrate.quad(f, 0.0, w, limit=200, epsabs=1e-13, epsrel=1e-11)[0]
    b = integrate.quad(f, w, np.inf, limit=200, epsabs=1e-13, epsrel=1e-11)[0]
    return math.exp(-0.5 * nu) * (a + b)


def excursion_coverage(r: np.ndarray | float, nu: float, *, method: str = "series") -> np.ndarray:
    """P(Y(0) ≥ ν, Y(h) ≥ ν) as a function of r = ρ(h)² (float64, same shape as ``r``).

    Parameters
    ----------
    r : array_like
        Squared correlation(s) in [0, 1].
    nu : float
        Threshold ν > 0.
    method : {"series", "integral"}
        Windowed exact series (fast, default) or the ``ncx2.sf`` integral (slow cross-check).

    Raises
    ------
    ConfigError
        Unknown ``method``; ``nu`` not a finite number > 0.

    Examples
    --------
    >>> float(excursion_coverage(0.0, 2.0)) == math.exp(-2.0)   # independent points: ε²
    True
    """
    if method not in ("series", "integral"):
        raise ConfigError(f"`method` must be 'series' or 'integral', got {method!r}")
    nu = _cpos(nu, "nu", "threshold on X1^2 + X2^2")
    one = _series_one if method == "series" else _integral_one
    r_arr = np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0)
    eps = math.exp(-0.5 * nu)
    flat = r_arr.reshape(-1)
    out = np.empty_like(flat)
    uniq, inv = np.unique(flat, return_inverse=True)
    vals = np.empty_like(uniq)
    c_min = None
    for i, rv in enumerate(uniq):
        s2 = 1.0 - rv
        if s2 >= _S2_MIN:
            vals[i] = one(float(rv), nu)
        else:  # linear in s = sqrt(1 − r) between r = 1 (C = ε) and 1 − r = _S2_MIN
            if c_min is None:
                c_min = one(1.0 - _S2_MIN, nu)
            vals[i] = eps + (c_min - eps) * math.sqrt(s2 / _S2_MIN)
    out[:] = vals[inv.reshape(-1)]
    return out.reshape(r_arr.shape)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
def check_excursion_phase(phase: object) -> str:
    """``phase`` as one of :data:`EXCURSION_PHASES` (case and spaces ignored).

    Raises
    ------
    ConfigError
        Anything else.
    """
    if isinstance(phase, str) and phase.strip().lower() in EXCURSION_PHASES:
        return phase.strip().lower()
    raise ConfigError(
        f"`excursion_phase` must be one of {', '.join(EXCURSION_PHASES)}, got {phase!r}"
    )


def isotropic_voxel_size(voxel_size: object) -> float | None:
    """One voxel edge length (µm) from a number or a (z, y, x) triple of equal numbers, or None.

    Raises
    ------
    ConfigError
        Not a positive finite number, or a triple whose entries differ (anisotropic voxels).

    Examples
    --------
    >>> isotropic_voxel_size((0.5, 0.5, 0.5)), isotropic_voxel_size(None)
    (0.5, None)
    """
    if voxel_size is None:
        return None
    if isinstance(voxel_size, (list, tuple, np.ndarray)):
        vals = [float(v) for v in np.ravel(voxel_size)]
        if not vals or max(vals) - min(vals) > 1e-6 * max(abs(v) for v in vals):
            raise ConfigError(
                f"`voxel_size` must be one number (the model is isotropic), got {voxel_size!r}; "
                "resample anisotropic volumes to cubic voxels first"
            )
        voxel_size = vals[0]
    return _cpos(voxel_size, "voxel_size", "voxel edge length in micrometres")


@dataclass(frozen=True)
class ChiSquareModel:
    """χ² excursion-set model of a two-phase microstructure (paper §2.1.2).

    Parameters
    ----------
    nu : float
        Threshold ν > 0 on Y = X1² + X2²; the excursion set {Y ≥ ν} has fraction exp(−ν/2).
    gamma : float
        Inverse correlation length of X1, X2 in voxel⁻¹ (> 0).
    covariance : {"exponential", "gaussian", "matern"}
        Correlation family (see :mod:`twinsr.stochastic.covariance`).
    matern_nu : float
        Matérn smoothness (only used by ``"matern"``), default 1.5.
    excursion_phase : {"solid", "pore"}
        Which phase is the excursion set {Y ≥ ν}; the paper's choice is ``"solid"``.
    voxel_size : float, optional
        Voxel edge length in micrometres (metadata; all computations are in voxels).

    Attributes
    ----------
    volume_fraction : float
        Solid fraction: exp(−ν/2) (solid excursion) or 1 − exp(−ν/2) (pore excursion).

    Raises
    ------
    ConfigError
        ν ≤ 0, γ ≤ 0, unknown family or phase, bad smoothness or voxel size.

    Examples
    --------
    >>> m = ChiSquareModel.from_volume_fraction(0.5, 0.1)
    >>> round(m.nu, 4), round(m.volume_fraction, 4)
    (1.3863, 0.5)
    >>> im = m.sample((32, 32, 32), rng=0)
    >>> im.dtype, im.shape
    (dtype('uint8'), (32, 32, 32))
    """

    nu: float
    gamma: float
    covariance: str = "gaussian"
    _: KW_ONLY
    matern_nu: float = 1.5
    excursion_phase: str = "solid"
    voxel_size: float | None = None

    family: ClassVar[str] = "chi_square"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "nu", _cpos(self.nu, "nu", "threshold on X1^2 + X2^2"))
        if isinstance(self.covariance, Covariance):  # an object carries its own gamma: they must agree
            g = _cpos(self.gamma, "gamma", "inverse correlation length, 1/voxel")
            if not math.isclose(self.covariance.gamma, g, rel_tol=1e-9):
                raise ConfigError(
                    f"`gamma`={g!r} disagrees with the covariance object's gamma="
                    f"{self.covariance.gamma!r}; pass the family name (e.g. covariance="
                    f"'{self.covariance.name}') or the same gamma"
                )
        cov = make_covariance(self.covariance, self.gamma, matern_nu=self.matern_nu)
        set_(self, "covariance", cov.name)
        set_(self, "gamma", cov.gamma)
        set_(self, "matern_nu", float(getattr(cov, "matern_nu", self.matern_nu)))
        set_(self, "excursion_phase", check_excursion_phase(self.excursion_phase))
        set_(self, "voxel_size", isotropic_voxel_size(self.voxel_size))

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def correlation(self) -> Covariance:
        """The covariance object ρ of X1, X2 (voxel units)."""
        return make_covariance(self.covariance, self.gamma, matern_nu=self.matern_nu)

    @property
    def excursion_fraction(self) -> float:
        """Fraction of the excursion set {Y ≥ ν}: exp(−ν/2)."""
        return math.exp(-0.5 * self.nu)

    @property
    def volume_fraction(self) -> float:
        """Solid volume fraction ε."""
        e = self.excursion_fraction
        return e if self.excursion_phase == "solid" else 1.0 - e

    @property
    def gamma_physical(self) -> float | None:
        """γ in µm⁻¹ when ``voxel_size`` (µm) is known, else None."""
        return None if self.voxel_size is None else gamma_to_physical(self.gamma, self.voxel_size)

    @classmethod
    def from_volume_fraction(cls, eps: float, gamma: float, covariance: str = "gaussian", *,
                             matern_nu: float = 1.5, excursion_phase: str = "solid",
                             voxel_size: float | None = None) -> ChiSquareModel:
        """Model with solid fraction ``eps`` ∈ (0, 1): ν = −2 ln ε (or −2 ln(1 − ε) for pore)."""
        try:
            e = float(eps)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"`eps` must be a number in (0, 1), got {eps!r}") from exc
        if not 0.0 < e < 1.0:
            raise ConfigError(f"`eps` (solid volume fraction) must be in (0, 1), got {eps!r}")
        phase = check_excursion_phase(excursion_phase)
        e_exc = e if phase == "solid" else 1.0 - e
        return cls(-2.0 * math.log(e_exc), gamma, covariance, matern_nu=matern_nu,
                   excursion_phase=phase, voxel_size=voxel_size)

    def two_point_coverage(self, h: np.ndarray | float, *, method: str = "series") -> np.ndarray:
        """Probability that two points ``h`` voxels apart are both solid (closed form).

        Parameters
        ----------
        h : array_like
            Lag(s) in voxels (any shape, ≥ 0).
        method : {"series", "integral"}
            See :func:`excursion_coverage`.

        Returns
        -------
        numpy.ndarray of float64, shape of ``h``
            C(0) = ε; C(h) → ε² as h → ∞.
        """
        r = self.correlation.rho(h) ** 2
        ce = excursion_coverage(r, self.nu, method=method)
        if self.excursion_phase == "solid":
            return ce
        return 1.0 - 2.0 * self.excursion_fraction + ce

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, shape: int | tuple[int, int, int], *, rng: object = None,
               periodic: bool = False, tol: float = 1e-3, workers: int | None = None
               ) -> np.ndarray:
        """Draw one binary realization (uint8, 1 = solid) of shape ``shape``.

        Parameters
        ----------
        shape : int or (Z, Y, X)
            Voxels per axis (an int means a cube).
        rng : None, int, sequence of int, Generator or SeedSequence
            Seed; the same seed gives the same volume.
        periodic : bool
            Periodic (torus) realization instead of the default non-periodic one.
        tol : float
            Covariance accuracy of the Gaussian fields (see :mod:`twinsr.stochastic.fields`).
        workers : int, optional
            Threads (does not change the result).

        Returns
        -------
        numpy.ndarray of uint8, shape ``shape``
            Peak memory ≈ 8 bytes × nz·Ny·Nx (the padded complex field, see
            :func:`twinsr.stochastic.fields.embedding_info`) + 1 byte/voxel output.

        Raises
        ------
        VolumeError
            A shape with a zero or the wrong number of axes.
        MemoryBudgetError
            The estimate exceeds the available memory (checked before allocating).
        """
        shp = check_shape(shape)
        t = check_tol(tol)
        w = resolve_workers(workers)
        n_out = int(np.prod(shp))
        check_memory(n_out, f"a binary volume of shape {shp}")
        out = np.empty(shp, dtype=np.uint8)
        nu = np.float32(self.nu)
        solid_is_excursion = self.excursion_phase == "solid"

        def take(z0: int, z1: int, block: np.ndarray) -> None:
            y = block.real * block.real
            y += block.imag * block.imag
            target = out[z0:z1].view(bool)
            if solid_is_excursion:
                np.greater_equal(y, nu, out=target)
            else:
                np.less(y, nu, out=target)

        complex_field(shp, self.correlation, take, rng=rng, periodic=bool(periodic), tol=t,
                       cdtype=np.complex64, workers=w, extra_bytes=n_out)
        return out

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description with units (inverse of :meth:`from_dict`)."""
        from twinsr import __version__

        d: dict[str, Any] = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "model": "chi_square_excursion",
            "nu": self.nu,
            "gamma": self.gamma,
            "gamma_unit": "1/voxel",
            "covariance": self.covariance,
            "matern_nu": self.matern_nu,
            "excursion_phase": self.excursion_phase,
            "voxel_size": self.voxel_size,
            "voxel_size_unit": "um",
            "gamma_physical": self.gamma_physical,
            "gamma_physical_unit": "1/um",
            "volume_fraction": self.volume_fraction,
            "twinsr_version": __version__,
        }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChiSquareModel:
        """Rebuild a model from :meth:`to_dict` output; units and derived values are validated.

        Raises
        ------
        ConfigError
            Not a mapping, unknown keys, missing ``nu``/``gamma``, wrong units, or a stored
            ``volume_fraction`` that disagrees with ν.
        """
        if not isinstance(d, dict):
            raise ConfigError(f"model parameters must be a JSON object, got {type(d).__name__}")
        known = {"format", "format_version", "model", "nu", "gamma", "gamma_unit", "covariance",
                 "matern_nu", "excursion_phase", "voxel_size", "voxel_size_unit",
                 "gamma_physical", "gamma_physical_unit", "volume_fraction", "twinsr_version",
                 "calibration"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) in model parameters: {unknown}; allowed: "
                              f"{sorted(known)}")
        if "calibration" in d and not isinstance(d["calibration"], dict):
            raise ConfigError("`calibration` must be a JSON object (fit diagnostics)")
        missing = [k for k in ("nu", "gamma") if k not in d]
        if missing:
            raise ConfigError(f"model parameters lack required key(s) {missing}")
        if d.get("format", _FORMAT) != _FORMAT or d.get("model", "chi_square_excursion") != \
                "chi_square_excursion":
            raise ConfigError(f"not a twinsr chi-square model (format={d.get('format')!r}, "
                              f"model={d.get('model')!r})")
        try:
            version = int(d.get("format_version", _FORMAT_VERSION))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"`format_version` must be an integer, got "
                              f"{d['format_version']!r}") from exc
        if version > _FORMAT_VERSION:
            raise ConfigError(f"model file format_version {d['format_version']} is newer than "
                              f"this twinsr supports ({_FORMAT_VERSION}); upgrade twinsr")
        for key, unit in (("gamma_unit", "1/voxel"), ("voxel_size_unit", "um"),
                          ("gamma_physical_unit", "1/um")):
            if key in d and d[key] != unit:
                raise ConfigError(f"`{key}` must be {unit!r}, got {d[key]!r}; convert the value")
        cov = d.get("covariance", "gaussian")
        if cov not in COVARIANCE_FAMILIES:
            raise ConfigError(f"unknown covariance family {cov!r}; allowed: "
                              f"{', '.join(COVARIANCE_FAMILIES)}")
        model = cls(d["nu"], d["gamma"], cov, matern_nu=d.get("matern_nu", 1.5),
                    excursion_phase=d.get("excursion_phase", "solid"),
                    voxel_size=d.get("voxel_size"))
        vf = d.get("volume_fraction")
        if vf is not None and abs(float(vf) - model.volume_fraction) > 1e-6:
            raise ConfigError(f"`volume_fraction`={vf} disagrees with nu={model.nu} "
                              f"(expected {model.volume_fraction:.6f}); fix or drop it")
        gp = d.get("gamma_physical")
        if gp is not None and model.gamma_physical is not None and \
                abs(float(gp) - model.gamma_physical) > 1e-6 * model.gamma_physical:
            raise ConfigError(f"`gamma_physical`={gp} disagrees with gamma/voxel_size="
                              f"{model.gamma_physical:.6g}; fix or drop it")
        return model

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically. Returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=2) + "\n")
        return p

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ChiSquareModel:
        """Read a model written by :meth:`to_json`.

        Raises
        ------
        ConfigError
            Missing, damaged or foreign file (not UTF-8, not JSON), or invalid parameters (see
            :meth:`from_dict`); the message names the file.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read model parameters {p}: {exc}") from exc
        except UnicodeDecodeError as exc:  # a damaged or foreign (binary) file
            raise ConfigError(f"model parameters {p} are not UTF-8 text ({exc}); the file is "
                              "damaged or not a twinsr parameter file") from exc
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p} is not valid JSON ({exc})") from exc
        # a calibration file may wrap the model under "model"
        if isinstance(d, dict) and isinstance(d.get("model"), dict):
            d = d["model"]
        try:
            return cls.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"invalid model parameters in {p}: {exc}") from None
        except (TypeError, ValueError) as exc:  # e.g. a number stored as a string
            raise ConfigError(f"invalid model parameters in {p}: {type(exc).__name__}: "
                              f"{exc}") from None
