"""χ² excursion model: volume fraction, closed-form two-point coverage (series, integral,
Kibble density, Monte Carlo), sampling determinism, JSON, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, special

import twinsr._validation as validation
from twinsr.exceptions import ConfigError, MemoryBudgetError, VolumeError
from twinsr.stochastic import ChiSquareModel, empirical_two_point_coverage, excursion_coverage
from twinsr.stochastic.covariance import COVARIANCE_FAMILIES

GAMMAS = {"exponential": 0.5, "gaussian": 0.3, "matern": 0.4}


def _vf_sigma(model: ChiSquareModel, shape: tuple[int, int, int]) -> float:
    """Standard deviation of the solid fraction of ONE realization, accounting for correlation:
    Var = (1/N) Σ_d w(d) (C(|d|) − ε²), summed over lag vectors d inside the box with overlap
    weights w(d) = Π_i (n_i − |d_i|)/n_i, C the closed-form two-point coverage."""
    r = math.ceil(model.correlation.range_at(1e-4))  # beyond: C − ε² < 1e-8
    axes = [np.arange(-min(r, n - 1), min(r, n - 1) + 1) for n in shape]
    w = [(n - np.abs(d)) / n for d, n in zip(axes, shape, strict=True)]
    d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    uniq, inv = np.unique(d2, return_inverse=True)
    c = model.two_point_coverage(np.sqrt(uniq.astype(np.float64)))[inv.reshape(d2.shape)]
    eps = model.volume_fraction
    weights = w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]
    return float(math.sqrt(max((weights * (c - eps**2)).sum(), 0.0) / np.prod(shape)))


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
@pytest.mark.parametrize("phase", ["solid", "pore"])
def test_volume_fraction_within_3_sigma(family: str, phase: str) -> None:
    model = ChiSquareModel.from_volume_fraction(0.35, GAMMAS[family], family,
                                                excursion_phase=phase)
    assert model.volume_fraction == pytest.approx(0.35)
    shape = (40, 40, 40)
    seeds = range(6)
    fr = [float(model.sample(shape, rng=s).mean()) for s in seeds]
    sigma = _vf_sigma(model, shape) / math.sqrt(len(seeds))
    assert abs(np.mean(fr) - model.volume_fraction) < 3 * sigma, (np.mean(fr), sigma)
    assert sigma < 0.01  # the bound is tight enough to mean something


def test_volume_fraction_formula() -> None:
    m = ChiSquareModel(2.0, 0.1)
    assert m.volume_fraction == pytest.approx(math.exp(-1.0))
    p = ChiSquareModel(2.0, 0.1, excursion_phase="pore")
    assert p.volume_fraction == pytest.approx(1 - math.exp(-1.0))


def _kibble(r: float, nu: float) -> float:
    """P(U ≥ ν/2, V ≥ ν/2) for Kibble's bivariate exponential (U, V) = (Y(0)/2, Y(h)/2) by 2-D
    quadrature of its density: f(u, v) = exp(−(u+v)/(1−r)) I0(2√(ruv)/(1−r)) / (1 − r)."""
    a = nu / 2
    q = 1 - r

    def f(v: float, u: float) -> float:
        z = 2 * math.sqrt(r * u * v) / q
        return math.exp(-(u + v) / q + z) * special.i0e(z) / q

    return integrate.dblquad(f, a, a + 60, a, a + 60, epsabs=1e-12, epsrel=1e-10)[0]


@pytest.mark.parametrize("r", [0.0, 0.3, 0.7, 0.95])
def test_coverage_matches_kibble_density(r: float) -> None:
    nu = 1.4
    expected = _kibble(r, nu)
    assert float(excursion_coverage(r, nu)) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("gamma", [0.02, 0.1, 0.7])
@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_series_and_integral_agree(family: str, gamma: float) -> None:
    """Including γ = 0.02, where ρ(1)² > 0.999 and the plain series would need >10⁴ terms."""
    m = ChiSquareModel(1.7, gamma, family)
    h = np.array([0.0, 1.0, 2.0, 5.0, 13.0, 40.0])
    a = m.two_point_coverage(h)
    b = m.two_point_coverage(h, method="integral")
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_coverage_limits_and_pore_relation() -> None:
    m = ChiSquareModel(1.2, 0.05, "gaussian")
    eps = m.volume_fraction
    assert float(m.two_point_coverage(0.0)) == pytest.approx(eps, abs=1e-9)
    assert float(m.two_point_coverage(1e4)) == pytest.approx(eps**2, abs=1e-12)
    c = m.two_point_coverage(np.arange(0, 60, 3.0))
    assert np.all(np.diff(c) < 0)  # decreasing from ε to ε² (positive correlation)
    p = ChiSquareModel(1.2, 0.05, "gaussian", excursion_phase="pore")
    np.testing.assert_allclose(p.two_point_coverage(np.arange(10.0)),
                               1 - 2 * eps + m.two_point_coverage(np.arange(10.0)), atol=1e-12)
    # near r = 1 the closed form is continuous (small-γ regime of the measured volumes)
    tiny = ChiSquareModel(1.2, 1e-4, "gaussian")
    assert float(tiny.two_point_coverage(1.0)) == pytest.approx(eps, abs=1e-3)


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_coverage_against_monte_carlo(family: str) -> None:
    """Mean empirical S₂ over 8 realizations of 48³ vs the closed form at lags 0–10; tolerance
    4 standard errors (from the spread over realizations) + 2e-3."""
    m = ChiSquareModel.from_volume_fraction(0.45, GAMMAS[family], family)
    curves = np.array([empirical_two_point_coverage(m.sample(48, rng=s), 10) for s in range(8)])
    mean = curves.mean(axis=0)
    se = curves.std(axis=0, ddof=1) / math.sqrt(len(curves))
    closed = m.two_point_coverage(np.arange(11.0))
    assert np.all(np.abs(mean - closed) < 4 * se + 2e-3), (mean - closed, se)
    # sharp enough: using r = ρ instead of r = ρ² would fail
    wrong = excursion_coverage(m.correlation.rho(np.arange(11.0)), m.nu)
    assert np.abs(mean - wrong).max() > 4 * se.max() + 2e-3


def test_sample_dtype_values_and_determinism() -> None:
    m = ChiSquareModel.from_volume_fraction(0.5, 0.2, "matern")
    a = m.sample((20, 24, 28), rng=3)
    b = m.sample((20, 24, 28), rng=3)
    c = m.sample((20, 24, 28), rng=4)
    assert a.dtype == np.uint8 and a.shape == (20, 24, 28)
    assert set(np.unique(a).tolist()) == {0, 1}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    pore = ChiSquareModel(m.nu, m.gamma, "matern", excursion_phase="pore").sample((20, 24, 28),
                                                                                 rng=3)
    np.testing.assert_array_equal(pore, 1 - a)  # same fields, complementary set


def test_json_round_trip(tmp_path: pytest.TempPathFactory) -> None:
    m = ChiSquareModel(1.3, 0.07, "matern", matern_nu=2.5, excursion_phase="pore",
                       voxel_size=0.01)
    path = m.to_json(tmp_path / "sub" / "m.json")  # type: ignore[operator]
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # atomic: no temp leftovers
    d = json.loads(path.read_text())
    assert d["gamma_unit"] == "1/voxel" and d["voxel_size_unit"] == "um"
    assert d["gamma_physical"] == pytest.approx(7.0)
    back = ChiSquareModel.from_json(path)
    assert back == m
    assert ChiSquareModel.from_dict({"nu": 1.0, "gamma": 0.1}) == ChiSquareModel(1.0, 0.1)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"colour": "red"}, "unknown key"),
        ({"gamma_unit": "1/um"}, "gamma_unit"),
        ({"voxel_size_unit": "nm"}, "voxel_size_unit"),
        ({"volume_fraction": 0.9}, "disagrees"),
        ({"covariance": "cubic"}, "allowed"),
        ({"nu": -1.0}, "nu"),
        ({"gamma": 0.0}, "gamma"),
        ({"excursion_phase": "both"}, "excursion_phase"),
        ({"format_version": 99}, "newer"),
        ({"format_version": "two"}, "must be an integer"),
        ({"calibration": 3}, "calibration"),
    ],
)
def test_from_dict_rejects(patch: dict, match: str) -> None:
    d = ChiSquareModel(1.0, 0.1).to_dict()
    d.update(patch)
    with pytest.raises(ConfigError, match=match):
        ChiSquareModel.from_dict(d)


def test_from_dict_missing_and_from_json_errors(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ConfigError, match="required key"):
        ChiSquareModel.from_dict({"nu": 1.0})
    with pytest.raises(ConfigError, match="JSON object"):
        ChiSquareModel.from_dict([1, 2])  # type: ignore[arg-type]
    bad = tmp_path / "bad.json"  # type: ignore[operator]
    bad.write_text("{nu: 1")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ChiSquareModel.from_json(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        ChiSquareModel.from_json(tmp_path / "missing.json")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nu": 0.0, "gamma": 0.1}, "`nu` must be finite and > 0"),
        ({"nu": -2.0, "gamma": 0.1}, "`nu` must be finite and > 0"),
        ({"nu": 1.0, "gamma": 0.0}, "`gamma` must be finite and > 0"),
        ({"nu": 1.0, "gamma": -0.5}, "`gamma` must be finite and > 0"),
        ({"nu": 1.0, "gamma": 0.1, "covariance": "bessel"}, "allowed: exponential"),
        ({"nu": 1.0, "gamma": 0.1, "excursion_phase": "air"}, "excursion_phase"),
        ({"nu": 1.0, "gamma": 0.1, "voxel_size": -1.0}, "voxel_size"),
        ({"nu": 1.0, "gamma": 0.1, "voxel_size": (1.0, 1.0, 2.0)}, "isotropic"),
    ],
)
def test_bad_model_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ChiSquareModel(**kwargs)


def test_from_volume_fraction_bounds() -> None:
    with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
        ChiSquareModel.from_volume_fraction(1.0, 0.1)
    m = ChiSquareModel.from_volume_fraction(0.2, 0.1, excursion_phase="pore")
    assert m.volume_fraction == pytest.approx(0.2)
    assert m.nu == pytest.approx(-2 * math.log(0.8))


def test_sample_bad_shape_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    m = ChiSquareModel(1.0, 0.2)
    with pytest.raises(VolumeError, match="positive along every axis"):
        m.sample((32, 32, 0))
    monkeypatch.setattr(validation, "available_memory_bytes", lambda: 2**20)
    with pytest.raises(MemoryBudgetError, match=r"only 0\.0 GiB is available"):
        m.sample(64)


@pytest.mark.parametrize("nu", [-1.0, 0.0, float("nan"), "x"])
def test_excursion_coverage_rejects_bad_nu(nu: object) -> None:
    with pytest.raises(ConfigError, match="`nu` must be"):
        excursion_coverage(0.5, nu)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="`method` must be"):
        excursion_coverage(0.5, 1.0, method="exact")


def test_covariance_object_gamma_must_agree() -> None:
    from twinsr.stochastic.covariance import make_covariance

    cov = make_covariance("gaussian", 0.2)
    assert ChiSquareModel(1.0, 0.2, covariance=cov).gamma == 0.2
    with pytest.raises(ConfigError, match=r"`gamma`=0\.5 disagrees with the covariance object's gamma=0\.2"):
        ChiSquareModel(1.0, 0.5, covariance=cov)
