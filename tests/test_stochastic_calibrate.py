"""Calibration (two-point coverage fit), validation plot, generate() and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twinsr.exceptions import ConfigError, VolumeError
from twinsr.stochastic import (
    COVARIANCE_FAMILIES,
    CalibrationResult,
    ChiSquareModel,
    calibrate,
    empirical_two_point_coverage,
    generate,
    plot_calibration,
)

# correlation lengths of a few voxels: a 128³ realization holds thousands of correlation
# volumes, so ν (from ε) and γ are recovered to ~1–2 % and the families are distinguishable
TRUTH = {"exponential": 0.2, "gaussian": 0.15, "matern": 0.18}


def _brute_s2(im: np.ndarray, max_lag: int) -> np.ndarray:
    out = np.zeros((3, max_lag + 1))
    for ax in range(3):
        a = np.moveaxis(im, ax, 0).astype(np.int64)
        for h in range(max_lag + 1):
            out[ax, h] = (a[: a.shape[0] - h] * a[h:]).mean()
    return out


def test_empirical_coverage_matches_direct_count(binary_volume: np.ndarray) -> None:
    got = empirical_two_point_coverage(binary_volume, 9, per_axis=True)
    np.testing.assert_allclose(got, _brute_s2(binary_volume, 9), atol=1e-12)
    mean = empirical_two_point_coverage(binary_volume, 9)
    np.testing.assert_allclose(mean, got.mean(axis=0))
    assert mean[0] == pytest.approx(binary_volume.mean())


def test_empirical_coverage_non_periodic() -> None:
    """A slab touching both z-faces: a periodic estimate would see a correlation across the
    faces at lag n−1, the non-periodic one must not."""
    im = np.zeros((20, 20, 20), np.uint8)
    im[0] = 1
    s2 = empirical_two_point_coverage(im, 19, per_axis=True)
    assert s2[0, 19] == pytest.approx(0.0, abs=1e-12)
    assert s2[0, 1] == pytest.approx(0.0, abs=1e-12)
    im[-1] = 1
    assert empirical_two_point_coverage(im, 19, per_axis=True)[0, 19] == pytest.approx(1.0)


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_calibration_recovers_parameters_and_family(family: str) -> None:
    truth = ChiSquareModel.from_volume_fraction(0.4, TRUTH[family], family)
    im = truth.sample(128, rng=2024)
    res = calibrate(im)
    assert isinstance(res, CalibrationResult)
    assert res.covariance == family, res.residuals_by_covariance
    assert res.nu == pytest.approx(truth.nu, rel=0.05)
    assert res.gamma == pytest.approx(truth.gamma, rel=0.05)
    assert res.excursion_phase == "solid"
    assert res.residual == min(res.residuals_by_covariance.values())
    assert res.residual < 0.005
    assert res.lags[0] == 0 and res.empirical.shape == res.fitted.shape == res.lags.shape
    assert res.fitted[0] == pytest.approx(im.mean())
    assert set(res.gammas_by_covariance) == set(COVARIANCE_FAMILIES)


def test_auto_excursion_phase_detects_pore() -> None:
    # 96³: the solid/pore asymmetry of the coverage is subtle; at 64³ one seed in six picks
    # the wrong phase, at 96³ none of six did (residual ratio >= 1.3)
    truth = ChiSquareModel.from_volume_fraction(0.8, 0.2, "gaussian", excursion_phase="pore")
    im = truth.sample(96, rng=0)
    res = calibrate(im, covariance="gaussian", excursion_phase="auto")
    assert res.excursion_phase == "pore"
    assert res.residuals_by_phase["pore"] < res.residuals_by_phase["solid"]
    assert res.model.volume_fraction == pytest.approx(im.mean())
    assert res.gamma == pytest.approx(0.2, rel=0.1)


def test_single_family_max_lag_and_voxel_size(nmc_small: np.ndarray) -> None:
    res = calibrate(nmc_small, covariance="gaussian", max_lag=20, voxel_size=0.4)
    assert list(res.residuals_by_covariance) == ["gaussian"]
    assert res.lags[-1] == 20
    assert res.model.voxel_size == 0.4
    assert res.model.gamma_physical == pytest.approx(res.gamma / 0.4)
    d = res.to_dict()
    assert d["calibration"]["family"] == "chi_square"
    assert d["calibration"]["covariance"] == "gaussian"
    assert ChiSquareModel.from_dict(d) == res.model


def test_accepts_0_255() -> None:
    im = ChiSquareModel.from_volume_fraction(0.5, 0.25).sample(32, rng=0)
    a = calibrate(im, covariance="gaussian")
    b = calibrate(im * 255, covariance="gaussian")
    assert a.gamma == b.gamma and a.nu == b.nu


@pytest.mark.parametrize(
    ("im", "exc", "match"),
    [
        (np.zeros((32, 32), np.uint8), VolumeError, "3-D"),
        (np.arange(32**3).reshape(32, 32, 32) % 3, VolumeError, "binary"),
        (np.full((32, 32, 32), np.nan), VolumeError, "NaN"),
        (np.ones((32, 32, 32), np.uint8), VolumeError, "both phases"),
        (np.zeros((32, 32, 32), np.uint8), VolumeError, "both phases"),
        (np.ones((32, 15, 32), np.uint8), VolumeError, "too small"),
    ],
)
def test_bad_images(im: np.ndarray, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        calibrate(im)


def test_bad_options(binary_volume: np.ndarray) -> None:
    im = np.pad(binary_volume, 4)
    with pytest.raises(ConfigError, match="allowed: auto, exponential"):
        calibrate(im, covariance="spherical")
    with pytest.raises(ConfigError, match="excursion_phase"):
        calibrate(im, excursion_phase="fluid")
    with pytest.raises(ConfigError, match="max_lag"):
        calibrate(im, max_lag=500)
    with pytest.raises(ConfigError, match="max_lag"):
        empirical_two_point_coverage(im, 0)


def test_gamma_on_a_search_bound_is_flagged_and_warned() -> None:
    """White noise: correlated over less than a voxel (upper end). A volume holding one plane of
    pores: the coverage does not decay (lower end). A twin with a few voxels of correlation
    length is pinned inside the interval: no flag, no warning."""
    import warnings

    from twinsr.exceptions import CalibrationWarning
    from twinsr.stochastic.calibrate import GAMMA_BOUNDS

    noise = (np.random.default_rng(0).random((32, 32, 32)) < 0.4).astype(np.uint8)
    with pytest.warns(CalibrationWarning, match=r"upper end 5 voxel\^-1.*check the segmentation"):
        res = calibrate(noise, covariance="exponential")
    assert res.gamma_at_bound and res.gammas_at_bound == {"exponential": True}
    assert res.gamma == pytest.approx(GAMMA_BOUNDS[1], rel=1e-3)
    assert res.to_dict()["calibration"]["gamma_at_bound"] is True
    plane = np.ones((32, 32, 32), np.uint8)
    plane[0] = 0
    with pytest.warns(CalibrationWarning, match=r"lower end 0.001.*calibrate a larger volume"):
        res = calibrate(plane, covariance="exponential")
    assert res.gamma_at_bound and res.gamma == pytest.approx(GAMMA_BOUNDS[0], rel=1e-3)
    # the smooth family fits noise equally well for every large γ: flagged too (flat residual)
    with pytest.warns(CalibrationWarning, match="gaussian family"):
        assert calibrate(noise, covariance="gaussian").gamma_at_bound
    twin = ChiSquareModel.from_volume_fraction(0.5, 0.25, "gaussian").sample(32, rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        res = calibrate(twin)
    assert not res.gamma_at_bound and not any(res.gammas_at_bound.values())
    assert res.to_dict()["calibration"]["gamma_search_bounds"] == list(GAMMA_BOUNDS)


def test_plot_leaves_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    """Drawing on a Figure, without pyplot: a user's (here: svg) backend is unchanged and pyplot
    is never imported."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "from twinsr.stochastic import ChiSquareModel, calibrate, plot_calibration\n"
        "im = ChiSquareModel.from_volume_fraction(0.5, 0.25).sample(24, rng=0)\n"
        f"p = plot_calibration(calibrate(im, covariance='gaussian'), {str(tmp_path / 'f.png')!r})\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules, p.stat().st_size > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "MPLBACKEND": "svg"})
    assert out.stdout.split() == ["svg", "False", "True"], out.stdout + out.stderr
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_calibration_writes_png(tmp_path: Path) -> None:
    im = ChiSquareModel.from_volume_fraction(0.5, 0.25).sample(32, rng=1)
    res = calibrate(im, covariance="gaussian")
    p = plot_calibration(res, tmp_path / "figs" / "fit.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="CalibrationResult"):
        plot_calibration("nope", tmp_path / "x.png")  # type: ignore[arg-type]


def test_generate_deterministic_names_metadata_resume(tmp_path: Path) -> None:
    from twinsr import __version__
    from twinsr.io import read_metadata, read_volume

    m = ChiSquareModel.from_volume_fraction(0.5, 0.3, voxel_size=0.01)
    seen: list[tuple[int, int]] = []
    p3 = generate(m, (16, 20, 24), 3, out_dir=tmp_path / "a", seed=4, fmt="npy",
                  progress=lambda i, n: seen.append((i, n)))
    assert [p.name for p in p3] == [f"twin_s4_000{i}.npy" for i in range(3)]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    p2 = generate(m, (16, 20, 24), 2, out_dir=tmp_path / "b", seed=4, fmt="npy")
    for a, b in zip(p2, p3[:2], strict=True):  # realization i does not depend on n
        np.testing.assert_array_equal(read_volume(a), read_volume(b))
    assert not np.array_equal(read_volume(p3[0]), read_volume(p3[1]))
    meta = read_metadata(p3[1])
    assert meta["seed"] == 4 and meta["index"] == 1 and meta["twinsr_version"] == __version__
    assert ChiSquareModel.from_dict(meta["model"]) == m
    assert meta["voxel_size"] == (0.01, 0.01, 0.01)
    # same request again: files kept (resume); a different model in the same place: refused
    generate(m, (16, 20, 24), 3, out_dir=tmp_path / "a", seed=4, fmt="npy")
    other = ChiSquareModel.from_volume_fraction(0.3, 0.3)
    with pytest.raises(ConfigError, match="other parameters"):
        generate(other, (16, 20, 24), 1, out_dir=tmp_path / "a", seed=4, fmt="npy")
    generate(other, (16, 20, 24), 1, out_dir=tmp_path / "a", seed=4, fmt="npy", overwrite=True)
    generate(m, (16, 20, 24), 3, out_dir=tmp_path / "a", seed=4, fmt="npy", overwrite=True)
    # a damaged leftover (here: a sidecar cut in half) is named, not kept and not overwritten
    side = tmp_path / "a" / "twin_s4_0001.npy.json"
    side.write_text(side.read_text()[:20])
    with pytest.raises(ConfigError, match=r"twin_s4_0001\.npy exists and cannot be read.*not valid "
                                          r"JSON.*overwrite=True"):
        generate(m, (16, 20, 24), 3, out_dir=tmp_path / "a", seed=4, fmt="npy")
    generate(m, (16, 20, 24), 3, out_dir=tmp_path / "a", seed=4, fmt="npy", overwrite=True)
    np.testing.assert_array_equal(read_volume(p3[1]), read_volume(p2[1]))


def test_generate_from_json_and_bad_input(tmp_path: Path) -> None:
    m = ChiSquareModel(1.0, 0.3)
    path = m.to_json(tmp_path / "m.json")
    out = generate(path, 16, 1, out_dir=tmp_path / "t")
    assert out[0].suffix == ".tif" and out[0].exists()
    with pytest.raises(ConfigError, match="fmt"):
        generate(m, 16, 1, out_dir=tmp_path, fmt="png")
    with pytest.raises(ConfigError, match="`n` must be an integer >= 1"):
        generate(m, 16, 0, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="seed"):
        generate(m, 16, 1, out_dir=tmp_path, seed=-1)
    with pytest.raises(VolumeError, match="positive"):
        generate(m, (16, 0, 16), 1, out_dir=tmp_path)


def test_cli_calibrate_and_generate(tmp_path: Path) -> None:
    from twinsr.cli import app
    from twinsr.io import read_volume, write_volume

    im = ChiSquareModel.from_volume_fraction(0.45, 0.25, "exponential").sample(40, rng=0)
    src = write_volume(tmp_path / "sample.tif", im, voxel_size=0.5)
    runner = CliRunner()
    params = tmp_path / "params.json"
    r = runner.invoke(app, ["calibrate", str(src), "-o", str(params), "--plot",
                            str(tmp_path / "fit.png")])
    assert r.exit_code == 0, r.output
    assert "gamma" in r.output and "exponential" in r.output
    d = json.loads(params.read_text())
    assert d["covariance"] == "exponential" and d["voxel_size"] == 0.5
    assert (tmp_path / "fit.png").exists()
    r = runner.invoke(app, ["generate", str(params), "--shape", "12", "--shape", "16",
                            "--shape", "20", "-n", "2", "--seed", "3", "-o",
                            str(tmp_path / "tw"), "--format", "npy"])
    assert r.exit_code == 0, r.output
    vol = read_volume(tmp_path / "tw" / "twin_s3_0001.npy")
    assert vol.shape == (12, 16, 20) and vol.dtype == np.uint8
    r = runner.invoke(app, ["generate", str(params), "--shape", "12", "--shape", "16", "-o",
                            str(tmp_path / "tw2")])
    assert r.exit_code == 1 and "--shape" in r.output
    r = runner.invoke(app, ["calibrate", str(src), "-o", str(params), "--covariance", "cubic"])
    assert r.exit_code == 1 and "allowed" in r.output
    r = runner.invoke(app, ["calibrate", "builtin:nmc_superres_xct", "-o",
                            str(tmp_path / "b.json"), "--covariance", "gaussian"])
    assert r.exit_code == 0, r.output


def test_generate_resumes_files_written_by_another_twinsr_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import twinsr

    m = ChiSquareModel.from_volume_fraction(0.5, 0.3)
    (p,) = generate(m, 16, 1, out_dir=tmp_path, fmt="npy")
    before = p.stat().st_mtime_ns
    monkeypatch.setattr(twinsr, "__version__", "0.0.0-other")
    assert generate(m, 16, 1, out_dir=tmp_path, fmt="npy") == [p]  # same model: kept
    assert p.stat().st_mtime_ns == before
