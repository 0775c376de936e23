"""Covariance families: values, limits, unit conversion, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinsr.exceptions import ConfigError
from twinsr.stochastic.covariance import (
    COVARIANCE_FAMILIES,
    Covariance,
    gamma_from_physical,
    gamma_to_physical,
    make_covariance,
)


def test_families_listed() -> None:
    assert COVARIANCE_FAMILIES == ("exponential", "gaussian", "matern")


def test_exponential_and_gaussian_values() -> None:
    h = np.array([0.0, 0.5, 1.0, 3.0, 10.0])
    np.testing.assert_allclose(make_covariance("exponential", 0.3).rho(h), np.exp(-0.3 * h))
    np.testing.assert_allclose(make_covariance("gaussian", 0.3).rho(h), np.exp(-((0.3 * h) ** 2)))
    # negative lags are distances too
    assert make_covariance("gaussian", 0.3).rho(-2.0) == pytest.approx(math.exp(-0.36))


@pytest.mark.parametrize("m", [0.5, 1.5, 2.5])
def test_matern_closed_forms_match_bessel_form(m: float) -> None:
    """The special-cased half-integer forms agree with the general K_m evaluation."""
    h = np.linspace(0, 40, 81)
    fast = make_covariance("matern", 0.15, matern_nu=m).rho(h)
    general = make_covariance("matern", 0.15, matern_nu=m * (1 + 1e-9)).rho(h)
    np.testing.assert_allclose(fast, general, atol=1e-7)


def test_matern_half_is_exponential_and_large_m_tends_to_gaussian() -> None:
    h = np.linspace(0, 30, 31)
    np.testing.assert_allclose(make_covariance("matern", 0.2, matern_nu=0.5).rho(h),
                               np.exp(-0.2 * h), rtol=1e-12)
    big = make_covariance("matern", 0.2, matern_nu=40.0).rho(h)
    np.testing.assert_allclose(big, np.exp(-((0.2 * h) ** 2) / 2), atol=0.01)


@pytest.mark.parametrize("name", COVARIANCE_FAMILIES)
def test_unit_at_zero_decreasing_and_range(name: str) -> None:
    cov = make_covariance(name, 0.1)
    h = np.linspace(0, 100, 401)
    r = cov.rho(h)
    assert r[0] == pytest.approx(1.0)
    assert np.all(np.diff(r) <= 1e-15)
    L = cov.range_at(1e-3)
    assert cov.rho(L) == pytest.approx(1e-3, rel=1e-6)
    assert isinstance(cov, Covariance) and cov.name == name


def test_integral_scale_exponential() -> None:
    assert make_covariance("exponential", 0.25).integral_scale == pytest.approx(4.0, rel=1e-6)
    assert make_covariance("gaussian", 0.25).integral_scale == pytest.approx(
        math.sqrt(math.pi) / 2 / 0.25, rel=1e-6)


def test_physical_units_round_trip() -> None:
    assert gamma_to_physical(0.1, 0.01) == pytest.approx(10.0)
    assert gamma_from_physical(10.0, 0.01) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="voxel_size"):
        gamma_to_physical(0.1, 0.0)


def test_case_insensitive_and_passthrough() -> None:
    cov = make_covariance("Gaussian", 0.2)
    assert cov.name == "gaussian"
    assert make_covariance(cov, 0.5) is cov


def test_unknown_family_lists_allowed() -> None:
    with pytest.raises(ConfigError, match="allowed: exponential, gaussian, matern"):
        make_covariance("spherical", 0.1)


@pytest.mark.parametrize("gamma", [0.0, -0.1, float("nan"), float("inf"), "abc"])
def test_bad_gamma(gamma: object) -> None:
    with pytest.raises(ConfigError, match="gamma"):
        make_covariance("gaussian", gamma)  # type: ignore[arg-type]


def test_bad_matern_smoothness() -> None:
    with pytest.raises(ConfigError, match="matern_nu"):
        make_covariance("matern", 0.1, matern_nu=0.0)


def test_range_at_bad_tol() -> None:
    with pytest.raises(ConfigError, match="tol"):
        make_covariance("gaussian", 0.1).range_at(1.5)
