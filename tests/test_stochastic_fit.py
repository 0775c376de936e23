"""Descriptor-matched calibration, model families everywhere, validation: known answers and bad
input."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from twinsr.descriptors import describe
from twinsr.exceptions import ConfigError, MemoryBudgetError, NonPercolatingWarning
from twinsr.stochastic import (
    ChiSquareModel,
    FibreModel,
    GrainModel,
    calibrate,
    family_of,
    generate,
    load_model_file,
    model_from_dict,
    validate,
    write_validation,
)
from twinsr.stochastic.fit import (
    DescriptorTarget,
    block_slices,
    discrepancy,
    fit_descriptors,
    objective_value,
)
from twinsr.stochastic.validate import _verdict


# -- families -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [
    ChiSquareModel.from_volume_fraction(0.4, 0.2),
    GrainModel(0.5, 4.0, neck=0.2),
    FibreModel(0.2, 1.5, 20.0, orientation=(0.5, 1.0, 1.0)),
])
def test_every_family_round_trips_through_one_loader(model, tmp_path) -> None:
    assert model_from_dict(model.to_dict()) == model
    p = model.to_json(tmp_path / "m.json")
    assert load_model_file(p) == model
    wrapped = tmp_path / "cal.json"
    wrapped.write_text(json.dumps({"model": model.to_dict(), "note": 1}))
    assert load_model_file(wrapped) == model
    assert family_of(model) == model.family


def test_loader_refuses_unknown_format_and_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown model format"):
        model_from_dict({"format": "someone.elses_model"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_file(tmp_path / "missing.json")
    other = GrainModel(0.5, 4.0).to_dict()
    other["format_version"] = 99
    p = tmp_path / "new.json"
    p.write_text(json.dumps(other))
    with pytest.raises(ConfigError, match="newer"):
        load_model_file(p)
    with pytest.raises(ConfigError, match="not a twin model"):
        family_of(object())


def test_generate_writes_and_resumes_grain_twins(tmp_path) -> None:
    m = GrainModel(0.5, 3.0, overlap=0.1)
    a = generate(m, 24, 2, out_dir=tmp_path, fmt="npy")
    first = [np.load(p) for p in a]
    b = generate(m.to_json(tmp_path / "g.json"), 24, 2, out_dir=tmp_path, fmt="npy")  # resume
    assert [p.name for p in a] == [p.name for p in b]
    np.testing.assert_array_equal(first[1], m.sample(24, rng=np.random.default_rng([0, 1])))
    with pytest.raises(ConfigError, match="other parameters"):
        generate(GrainModel(0.5, 3.0, overlap=0.2), 24, 2, out_dir=tmp_path, fmt="npy")


def test_database_accepts_a_grain_model_file(tmp_path) -> None:
    from twinsr.sr import build_database

    p = GrainModel(0.5, 3.0, overlap=0.1).to_json(tmp_path / "g.json")
    db = build_database([p], tmp_path / "db", n_realizations=3, shape=16, alphas=(2,),
                        diffusion=False)
    assert len(db.entries("train")) == 1


# -- target, discrepancy, objective -------------------------------------------------------------
def test_block_slices_are_disjoint_cubes_inside_the_volume() -> None:
    sl = block_slices((100, 130, 70), 32, 8)
    assert len(sl) == 8
    seen = np.zeros((100, 130, 70), np.uint8)
    for s in sl:
        assert all(x.stop - x.start == 32 for x in s)
        seen[s] += 1
    assert seen.max() == 1


def test_discrepancy_is_zero_for_the_data_itself() -> None:
    im = GrainModel(0.5, 3.0, overlap=0.1).sample(32, rng=2)
    t = DescriptorTarget.from_volume(im, block=32)
    d = describe(im, which=("volume_fraction", *t.groups), max_lag=t.s2.shape[1] - 1, tol=1e-3)
    res = discrepancy(d, t)
    assert set(res) >= {"s2", "ssa", "tau_eff.solid.axis0", "geodesic.pore.axis2"}
    assert max(abs(v) for v in res.values()) < 1e-9
    assert objective_value(res) < 1e-12


def test_objective_weights_groups_and_caps_residuals() -> None:
    res = {"s2": 0.1, "ssa": 0.2, "chord_mean.pore.axis0": 0.1, "chord_mean.pore.axis1": 0.3}
    # group means of squares: s2 0.01, surface 0.04, chords 0.05; equal weights
    assert objective_value(res) == pytest.approx((0.01 + 0.04 + 0.05) / 3)
    assert objective_value(res, {"s2": 1.0, "surface_area": 0.0, "chords": 0.0}) == \
        pytest.approx(0.01)


def test_non_percolating_data_phase_is_left_out_with_a_warning() -> None:
    im = np.zeros((32, 32, 32), np.uint8)
    im[:, :, :16] = 1                 # solid slab: percolates along 0 and 1 only
    im[::8] = 1                       # solid layers cut the pore along axis 0
    with pytest.warns(NonPercolatingWarning, match="tau_eff.pore.axis0"):
        t = DescriptorTarget.from_volume(im, block=32)
    assert "tau_eff.pore.axis0" in t.excluded
    assert "tau_eff.pore.axis0" not in t.scalars
    assert all(math.isfinite(v) for v in t.scalars.values())


def test_twin_that_does_not_percolate_scores_one() -> None:
    data = GrainModel(0.6, 3.0, overlap=0.2).sample(32, rng=0, periodic=True)
    t = DescriptorTarget.from_volume(data, block=32)
    twin = np.zeros_like(data)
    twin[::4] = 1                     # solid only in layers: no solid path along axis 0
    d = describe(twin, which=("volume_fraction", *t.groups), max_lag=t.s2.shape[1] - 1)
    res = discrepancy(d, t)
    assert res["tau_eff.solid.axis0"] == 1.0


# -- recovery of the own parameters ----------------------------------------------------------------
def test_grain_fit_recovers_radius_and_aspect() -> None:
    # radius and overlap trade off (larger grains overlapping less look alike), so the radius
    # is recovered to 25 %; the compression axis and ratio, and the descriptors, closely
    truth = GrainModel(0.55, 3.5, radius_cv=0.2, overlap=0.15, neck=0.2, aspect=0.7, axis=0)
    im = truth.sample((80, 80, 80), rng=123)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_descriptors(im, family="grains", fit_shape=40, transport=False,
                              max_evaluations=(50, 0), seed=5)
    m = fit.model
    assert m.axis == 0
    assert m.radius == pytest.approx(3.5, rel=0.25)
    assert m.aspect == pytest.approx(0.7, abs=0.1)
    assert fit.residuals["s2"] < 0.05
    assert max(abs(v) for k, v in fit.residuals.items() if k.startswith("chord_mean")) < 0.1


def test_fibre_fit_recovers_radius_and_orientation() -> None:
    # the fibre length is weakly identified on small blocks (fibres longer than the block are
    # cut by its border); radius and orientation are what the geometric stage must recover
    truth = FibreModel(0.15, 1.8, 16.0, orientation=(0.15, 1.0, 1.0))
    im = truth.sample((80, 80, 80), rng=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_descriptors(im, family="fibres", fit_shape=40, transport=False,
                              max_evaluations=(60, 0), seed=3)
    m = fit.model
    assert m.radius == pytest.approx(1.8, rel=0.2)
    o = np.asarray(m.orientation)
    assert o[0] < 0.35 and o[0] < 0.5 * min(o[1], o[2])   # fibres lie across axis 0
    assert m.volume_fraction == pytest.approx(im.mean())


def test_chi_square_descriptor_fit_recovers_gamma() -> None:
    truth = ChiSquareModel.from_volume_fraction(0.45, 0.18, "gaussian")
    im = truth.sample(64, rng=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = calibrate(im, objective="descriptors", covariance="gaussian", fit_shape=32,
                        max_evaluations=(12, 6))
    assert res.family == "chi_square" and res.objective == "descriptors"
    assert res.gamma == pytest.approx(0.18, rel=0.12)
    assert res.descriptor_objective is not None and res.evaluations == 18
    assert set(res.descriptor_residuals) >= {"s2", "tau_eff.pore.axis0"}


def test_calibrate_grains_by_descriptors_end_to_end() -> None:
    im = GrainModel(0.5, 3.0, overlap=0.1, neck=0.25).sample(48, rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = calibrate(im, family="grains", objective="descriptors", fit_shape=32,
                        max_evaluations=(16, 8), voxel_size=0.5)
    assert isinstance(res.model, GrainModel) and res.family == "grains"
    assert res.model.voxel_size == 0.5
    assert res.nu is None and res.covariance is None
    assert res.residual < 0.02                # S₂ rms of a fresh realization
    d = res.to_dict()
    assert d["calibration"]["objective"] == "descriptors"
    assert model_from_dict(d) == res.model


@pytest.mark.parametrize(("kw", "match"), [
    ({"family": "spheres"}, "unknown model family"),
    ({"objective": "moments"}, "unknown calibration objective"),
    ({"family": "grains"}, "objective='s2' fits only"),
])
def test_calibrate_rejects_bad_family_and_objective(kw, match) -> None:
    im = GrainModel(0.5, 3.0).sample(24, rng=0)
    with pytest.raises(ConfigError, match=match):
        calibrate(im, **kw)


# -- validation ---------------------------------------------------------------------------------
def test_verdicts() -> None:
    assert _verdict(0.03, 0.0, 0.05) == "match"
    assert _verdict(0.08, 0.05, 0.05) == "within spread"
    assert _verdict(0.2, 0.05, 0.05) == "off"
    assert _verdict(math.inf, 0.5, 0.05) == "off"


def test_validate_a_model_against_its_own_realization(tmp_path) -> None:
    m = GrainModel(0.5, 3.0, overlap=0.1, neck=0.2)
    data = m.sample(40, rng=99)
    res = validate(m, data, n=2, groups=("s2", "surface_area", "chords", "tau_eff"))
    names = [r.name for r in res.rows]
    assert "tau_eff.solid.axis2" in names and "ssa" in names
    assert res.row("volume_fraction.solid").verdict == "match"
    # its own model: the surface area matches and most rows match or are within the spread
    assert abs(res.row("ssa").deviation) < 0.05
    assert res.counts["off"] <= len(res.rows) // 4
    files = write_validation(res, tmp_path)
    assert {p.name for p in files} >= {"validation.json", "validation.md", "validation_s2.png",
                                      "validation_deviations.png"}
    back = json.loads((tmp_path / "validation.json").read_text())
    assert back["counts"] == res.counts and len(back["rows"]) == len(res.rows)


def test_validate_bad_input() -> None:
    m = GrainModel(0.5, 3.0)
    data = m.sample(24, rng=0)
    with pytest.raises(ConfigError, match="`n`"):
        validate(m, data, n=0)
    with pytest.raises(ConfigError, match="tolerance"):
        validate(m, data, tolerance=1.5)
    with pytest.raises(ConfigError, match="descriptor group"):
        validate(m, data, groups=("colour",))
    with pytest.raises(ConfigError, match="not a twin model"):
        validate(object(), data)
    with pytest.raises(MemoryBudgetError):
        validate(m, data, shape=(40000, 40000, 40000))


def test_cli_calibrate_grains_generate_and_validate(tmp_path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app
    from twinsr.io import read_volume, write_volume

    runner = CliRunner()
    im = GrainModel(0.5, 3.0, overlap=0.1, neck=0.2).sample(40, rng=4)
    src = write_volume(tmp_path / "sample.npy", im)
    params = tmp_path / "params.json"
    r = runner.invoke(app, ["calibrate", str(src), "-o", str(params), "--family", "grains",
                            "--objective", "s2"])
    assert r.exit_code == 1 and "objective='s2' fits only" in r.output
    r = runner.invoke(app, ["calibrate", str(src), "-o", str(params), "--family", "grains",
                            "--objective", "descriptors", "--fit-shape", "24",
                            "--max-evaluations", "10", "--max-evaluations", "4"])
    assert r.exit_code == 0, r.output
    assert "grains model" in r.output and "descriptor discrepancy" in r.output
    assert json.loads(params.read_text())["format"] == "twinsr.grain_model"
    r = runner.invoke(app, ["generate", str(params), "--shape", "20", "-n", "1", "-o",
                            str(tmp_path / "tw"), "--format", "npy"])
    assert r.exit_code == 0, r.output
    assert read_volume(tmp_path / "tw" / "twin_s0_0000.npy").shape == (20, 20, 20)
    r = runner.invoke(app, ["validate", str(src), str(params), "-o", str(tmp_path / "val"),
                            "-n", "1", "--shape", "24"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "val" / "validation.md").exists() and "tau_eff.solid.axis0" in r.output
