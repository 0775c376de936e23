"""Tests for twinsr.study: config validation, sub-volumes, the tidy table, findings, and the
micro study end to end (run once per session, then rerun to check resumption)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from twinsr.exceptions import ConfigError, TwinsrError, VolumeError
from twinsr.study import (
    COLUMNS,
    PRESETS,
    StudyConfig,
    cut_subvolumes,
    evaluate_volume,
    findings,
    prepare_volume,
    run_study,
    summary_table,
)
from twinsr.study.evaluate import check_table

# ----------------------------------------------------------------------------- config


def test_presets_validate():
    for name in PRESETS:
        cfg = StudyConfig.preset(name)
        assert cfg.k == 2
        assert sum(cfg.split) == cfg.n_realizations
    q = StudyConfig.preset("quick")
    assert q.alphas == [2, 4, 8] and q.inputs == ["bin", "diffu"]
    assert StudyConfig.preset("demo").alphas == [2]
    paper = StudyConfig.preset("paper")
    assert paper.shape == (800, 800, 800) and paper.split == (7, 2, 1)
    assert len(paper.samples) == 5


def test_config_unknown_key_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'alphs'.*did you mean 'alphas'"):
        StudyConfig.from_dict({"samples": ["x"], "alphs": [2]})
    with pytest.raises(ConfigError, match=r"key 3 is not a name"):
        StudyConfig.from_dict({"samples": ["x"], 3: "x"})
    p = tmp_path / "s.yaml"
    p.write_text("samples: [nmc_nrel_xct]\nbogus_option: 3\n")
    with pytest.raises(ConfigError, match="bogus_option"):
        StudyConfig.from_yaml(p)


@pytest.mark.parametrize(("data", "key"), [
    ({"alphas": [3]}, "alphas"),
    ({"n_realizations": 5}, "split"),  # split (2, 1, 1) does not sum to 5
    ({"subvolumes": 7}, "subvolumes"),
    ({"inputs": ["rgb"]}, "inputs"),
    ({"shape": 100, "alphas": [8]}, "divisible"),
    ({"device": "tpu"}, "device"),
    ({"baselines": ["bicubic"]}, "baselines"),
    ({"alphas": [2, 2]}, "alphas"),
])
def test_config_invalid_value_names_key(data, key):
    with pytest.raises(ConfigError, match=key):
        StudyConfig.from_dict({"samples": ["nmc_nrel_xct"], **data})


@pytest.mark.parametrize(("overrides", "match"), [
    ({"max_epochs": 10}, r"train_overrides.*unknown training setting 'max_epochs'"),
    ({"chanels": 8}, r"train_overrides.*'chanels' \(did you mean 'channels'\?\)"),
    ({"lr": -1.0}, r"train_overrides.*training setting 'lr'.*greater than 0.*-1.0"),
    ({"epochs": "many"}, r"train_overrides.*training setting 'epochs'.*integer"),
    ({"crop_per_alpha": {2: "x"}}, r"train_overrides.*'crop_per_alpha.2'"),
])
def test_train_overrides_checked_on_load(tmp_path, overrides, match):
    """A bad training setting is refused when the study config is built, not after the
    calibration and the database."""
    with pytest.raises(ConfigError, match=match):
        StudyConfig.from_dict({"samples": ["nmc_nrel_xct"], "train_overrides": overrides})
    with pytest.raises(ConfigError, match=match):
        StudyConfig(samples=["nmc_nrel_xct"], train_overrides=overrides)
    p = tmp_path / "s.yaml"
    import yaml

    p.write_text(yaml.safe_dump({"samples": ["nmc_nrel_xct"], "train_overrides": overrides}))
    with pytest.raises(ConfigError, match=match):
        StudyConfig.from_yaml(p)


def test_train_preset_and_overrides_make_the_train_config():
    from twinsr.sr.config import PRESETS as TRAIN_PRESETS
    from twinsr.sr.config import TrainConfig

    with pytest.raises(ConfigError, match=r"train_preset.*unknown training preset 'tiny'"):
        StudyConfig.from_dict({"samples": ["x"], "train_preset": "tiny"})
    cfg = StudyConfig.preset("micro", seed=7, train_overrides={"epochs": 3})
    tc = cfg.train_config()
    assert tc == TrainConfig.preset("micro", seed=7, epochs=3)
    assert StudyConfig.preset("micro", train_overrides={"seed": 2}).train_config().seed == 2
    # every study preset's training settings are valid and name a training preset
    for name in PRESETS:
        assert StudyConfig.preset(name).train_preset in TRAIN_PRESETS
    # the micro training preset moved from the study into sr.config.PRESETS unchanged: the
    # quick preset with the micro study's former overrides
    former_micro = {
        "channels": 4, "blocks": 1, "crop": 6, "crop_per_alpha": {2: 6, 4: 4, 8: 3},
        "batch_per_alpha": {2: 2, 4: 2, 8: 1}, "epochs": 2, "steps_per_epoch": 3,
        "patience": 2, "val_crops": 2, "max_seconds": 20.0, "tile": 16, "lr": 2e-3}
    assert TrainConfig.preset("micro") == TrainConfig.preset("quick", **former_micro)


def _docstring_yaml_blocks(obj) -> list[str]:
    """The literal blocks (after a line ending in ``::``) of ``obj``'s docstring."""
    import inspect
    import textwrap

    lines = inspect.getdoc(obj).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::"):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or lines[k].startswith(" ")):
                k += 1
            blocks.append(textwrap.dedent("\n".join(lines[j:k])))
            i = k
        else:
            i += 1
    return blocks


def test_docstring_yaml_examples_are_valid_configs():
    import yaml

    import twinsr.study.config as config_module

    blocks = _docstring_yaml_blocks(config_module)
    assert blocks, "the module docstring shows an example YAML"
    for text in blocks:
        cfg = StudyConfig.from_dict(yaml.safe_load(text))
        tc = cfg.train_config()
        assert cfg.train_overrides  # the example shows the overrides
        for key, value in cfg.train_overrides.items():
            assert getattr(tc, key) == value


def test_baselines_are_the_resample_methods():
    from twinsr.resample import METHODS

    assert StudyConfig(samples=["x"]).baselines == list(METHODS)
    with pytest.raises(ConfigError, match=r"baselines.*unknown interpolation 'bicubic'"):
        StudyConfig.from_dict({"samples": ["x"], "baselines": ["nearest", "bicubic"]})


def test_config_yaml_roundtrip_and_errors(tmp_path):
    cfg = StudyConfig.preset("micro")
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert StudyConfig.from_yaml(p) == cfg
    p.write_text("samples: [a\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        StudyConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="unknown study preset"):
        StudyConfig.preset("huge")
    # device is not part of the study's identity
    assert StudyConfig.preset("micro", device="cpu").identity() == cfg.identity()


# ----------------------------------------------------------------------------- sub-volumes


def test_prepare_and_cut_subvolumes():
    rng = np.random.default_rng(0)
    im = (rng.random((70, 67, 66)) > 0.5).astype(np.uint8)
    hr = prepare_volume(im, k=2, alpha_max=8, min_lr_edge=2)
    assert hr.shape == (64, 64, 64)
    np.testing.assert_array_equal(hr, im[:64, :64, :64])  # low indices kept (documented)
    subs = cut_subvolumes(hr, 2)
    assert len(subs) == 8 and all(s.shape == (32, 32, 32) for s in subs)
    # non-overlapping and complete: the blocks reassemble the volume
    back = np.block([[[subs[4 * i + 2 * j + m] for m in range(2)] for j in range(2)]
                     for i in range(2)])
    np.testing.assert_array_equal(back, hr)
    # central crop first
    c = prepare_volume(im, k=2, alpha_max=2, crop=40)
    assert c.shape == (40, 40, 40)
    np.testing.assert_array_equal(c, im[15:55, 13:53, 13:53])


def test_volume_too_small_for_alpha8_is_a_clear_error():
    im = np.zeros((40, 64, 64), np.uint8)
    with pytest.raises(VolumeError, match=r"too small for 8 sub-volumes at alpha=8.*>= 64"):
        prepare_volume(im, k=2, alpha_max=8, min_lr_edge=4)
    with pytest.raises(VolumeError, match="not divisible by k=2"):
        cut_subvolumes(np.zeros((5, 4, 4)), 2)


def test_evaluate_volume_table_oracle_and_baseline():
    from twinsr.resample import upsample

    rng = np.random.default_rng(1)
    hr = (rng.random((16, 16, 16)) > 0.5).astype(np.uint8)
    subs = cut_subvolumes(hr, 2)
    lookup = {s[::2, ::2, ::2].tobytes(): s for s in subs}
    methods = {"oracle": lambda lr: lookup[lr.tobytes()],
               "nearest": lambda lr: upsample(lr, 2, method="nearest")}
    unit = evaluate_volume(subs, 2, methods, source="simulated", sample="x")
    df = pd.DataFrame(unit.rows)
    assert list(df.columns) == COLUMNS
    check_table(df)
    acc = df[(df.method == "oracle") & (df.metric == "accuracy")]["value"]
    assert len(acc) == 8 and (acc == 1.0).all()
    near = df[(df.method == "nearest") & (df.metric == "accuracy")]["value"]
    assert (near < 1.0).all()
    assert set(unit.slices) == {"hr", "oracle", "nearest"}
    with pytest.raises(VolumeError, match="returned shape"):
        evaluate_volume(subs, 2, {"bad": lambda lr: lr}, source="simulated", sample="x")


def test_check_table_rejects_nan():
    df = pd.DataFrame([{"source": "simulated", "sample": "a", "subvolume": 0, "alpha": 2,
                        "method": "N_bin", "phase": "all", "metric": "accuracy",
                        "value": math.nan}])
    with pytest.raises(TwinsrError, match="NaN"):
        check_table(df)
    df["value"] = math.inf  # non-percolating: allowed
    check_table(df)


# ----------------------------------------------------------------------------- findings


def _synthetic(net_acc: float, tri_acc: float) -> pd.DataFrame:
    rows = []
    for src in ("simulated", "measured"):
        for a in (2, 4, 8):
            for m, acc in (("N_bin", net_acc), ("N_diffu", net_acc + (0.01 if a < 8 else -0.01)),
                           ("triquadratic", tri_acc - 0.01 * a)):
                for s in range(8):
                    for metric in ("accuracy", "surface_accuracy"):
                        rows.append({"source": src, "sample": "x", "subvolume": s, "alpha": a,
                                     "method": m, "phase": "all", "metric": metric,
                                     "value": acc + 0.001 * s})
    return pd.DataFrame(rows)


def test_findings_computed_from_table():
    good = findings(_synthetic(0.95, 0.9), networks=["N_bin", "N_diffu"])
    assert [f.verdict for f in good] == ["supported"] * 4
    bad = findings(_synthetic(0.80, 0.95), networks=["N_bin", "N_diffu"])
    assert bad[0].verdict == "not supported"
    assert any("NOT better" in d for d in bad[0].details)
    s = summary_table(_synthetic(0.95, 0.9))
    row = s[(s.source == "measured") & (s.alpha == 2) & (s.method == "N_bin")
            & (s.metric == "accuracy")].iloc[0]
    assert row["median"] == pytest.approx(0.95 + 0.0035)
    assert row["n"] == 8 and row["n_inf"] == 0


# ----------------------------------------------------------------------------- end to end


def _micro_config(root):
    """The micro preset plus a 12³ measured volume from a file: too small for 8 sub-volumes at
    α = 4 with LR edge >= 2, so that (volume, α) is skipped and the skip documented."""
    from twinsr import datasets

    small = root / "small.npy"
    if not small.exists():
        np.save(small, np.ascontiguousarray(datasets.load("nmc_superres_xct")[:12, :12, :12]))
    base = StudyConfig.preset("micro")
    return StudyConfig.preset("micro", device="cpu", measured=[*base.measured, str(small)])


@pytest.fixture(scope="module")
def micro_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    out = root / "micro"
    lines: list[str] = []
    res = run_study(_micro_config(root), out, progress=lines.append)
    return out, res, lines


def test_micro_study_end_to_end(micro_study):
    out, res, lines = micro_study
    assert res.steps["calibrate"] == "done" and res.steps["train"] == "done"
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == COLUMNS
    check_table(df)
    assert set(df.source) == {"simulated", "measured"}
    assert set(df.alpha) == {2, 4}
    # the small measured volume is evaluated at α = 2 and skipped (documented) at α = 4
    assert set(df[df["sample"] == "small"].alpha) == {2}
    assert len(res.skipped) == 1 and "small" in res.skipped[0] and "α=4" in res.skipped[0]
    # ... as a typed record, in study.json (read on resume) and skipped.json
    from twinsr.study.records import LAYOUT, SkipRecord

    (rec,) = res.skip_records
    assert (rec.step, rec.source, rec.sample, rec.alpha, rec.method) == (
        "evaluate", "measured", "small", 4, None)
    assert "too small" in rec.reason and rec.message == res.skipped[0]
    assert json.loads((out / "skipped.json").read_text()) == [rec.to_dict()]
    study = json.loads((out / "study.json").read_text())
    assert study["layout"] == LAYOUT and study["skipped"] == [rec.to_dict()]
    assert SkipRecord.from_dict(study["skipped"][0]) == rec
    assert not list((out / "eval").glob("*skipped*"))
    assert {"N_bin", "N_diffu", "triquadratic", "nearest"} <= set(df.method)
    # 8 sub-volumes per (source, sample, alpha, method) for the headline metrics
    acc = df[(df.metric == "accuracy")]
    assert (acc.groupby(["source", "sample", "alpha", "method"]).size() == 8).all()
    assert {"tau_geod_rel_err", "tau_eff_rel_err", "percolating"} <= set(df.metric)
    mean = df[(df.phase == "mean")]
    assert set(mean.metric) == {"tau_geod_rel_err", "tau_eff_rel_err"}
    for stem in ("boxplots", "tortuosity_per_phase", "training_curves"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000
        assert (out / "figures" / f"{stem}.pdf").exists()
    assert list((out / "figures").glob("error_slices__measured__*.png"))
    md = (out / "report.md").read_text()
    for text in ("Networks vs interpolation", "Stability across", "Diffusion-informed",
                 "Measured vs simulated", "Median and IQR", "Skipped evaluations"):
        assert text in md
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    meta = json.loads((out / "study.json").read_text())
    assert {"config", "seed", "versions", "git", "device"} <= set(meta)
    assert set(res.thresholds) == {"N_bin_a2", "N_bin_a4", "N_diffu_a2", "N_diffu_a4"}
    assert all(0 < t < 1 for t in res.thresholds.values())
    assert any("transfer from bin_a2" in x for x in lines)
    # paired statistics: every network vs every baseline, per source, α and headline metric
    st = pd.read_csv(out / "stats.csv")
    assert set(st.method) == {"N_bin", "N_diffu"} and set(st.baseline) == {"triquadratic",
                                                                          "nearest"}
    assert set(st.verdict) <= {"better", "worse", "no significant difference", "too few pairs"}
    assert (st[st.source == "simulated"].n == 8).all()
    bias = pd.read_csv(out / "bias.csv")
    assert set(bias.phase) == {"pore", "solid"} and set(bias.tortuosity) == {"tau_geod",
                                                                            "tau_eff"}
    assert (out / "figures" / "paired_differences.png").stat().st_size > 1000
    for text in ("Paired comparisons over the same sub-volumes", "Tortuosity bias",
                 "Wilcoxon"):
        assert text in md


def _no_volume_reads(monkeypatch):
    """Make reading any sample or measured volume fail: a resume must not need one."""
    from twinsr.study import pipeline

    def refuse(entry):
        raise AssertionError(f"volume {entry} read on resume")

    monkeypatch.setattr(pipeline, "_read_entry", refuse)


def test_micro_study_rerun_skips_completed_steps(micro_study, monkeypatch):
    out, res, _ = micro_study
    bundle = out / "runs" / "bin_a4" / "model.pt"
    before = bundle.stat().st_mtime_ns
    lines: list[str] = []
    # the small volume's α = 4 skip comes from its record: no volume is read again
    _no_volume_reads(monkeypatch)
    again = run_study(_micro_config(out.parent), out, progress=lines.append)
    for step in ("calibrate", "database", "train", "evaluate"):
        assert again.steps[step] == "skipped", step
    assert bundle.stat().st_mtime_ns == before
    assert any("complete, skipped" in x for x in lines)
    pd.testing.assert_frame_equal(again.table, res.table)
    assert again.skip_records == res.skip_records and again.skipped == res.skipped


def _copy_study(out, dest):
    import shutil

    shutil.copytree(out, dest)
    return dest


def test_resume_skips_exactly_the_recorded_evaluations(micro_study, tmp_path, monkeypatch):
    """A (volume, α) recorded as skipped in study.json is skipped on resume by its record:
    whatever the reason says, and without reading the volume."""
    from twinsr.study.records import SkipRecord

    out, res, _ = micro_study
    study = _copy_study(out, tmp_path / "copy")
    sim = res.table.query("source == 'simulated'")["sample"].iloc[0]
    for f in (f"simulated__{sim}__a4.csv", f"simulated__{sim}__a4_slices.npz"):
        (study / "eval" / f).unlink()
    hand = SkipRecord("evaluate", "simulated", sim, 4, "left out by hand")
    meta = json.loads((study / "study.json").read_text())
    meta["skipped"].append(hand.to_dict())
    (study / "study.json").write_text(json.dumps(meta))
    _no_volume_reads(monkeypatch)
    again = run_study(_micro_config(out.parent), study)
    assert again.steps["evaluate"] == "skipped"
    assert again.skip_records == [*res.skip_records, hand]
    assert again.skipped[-1] == f"simulated/{sim} α=4: left out by hand"
    assert not (study / "eval" / f"simulated__{sim}__a4.csv").exists()
    expected = res.table[~((res.table["source"] == "simulated") & (res.table["alpha"] == 4))]
    pd.testing.assert_frame_equal(again.table, expected.reset_index(drop=True))
    assert json.loads((study / "skipped.json").read_text()) == [r.to_dict()
                                                                for r in again.skip_records]
    assert "left out by hand" in (study / "report.md").read_text()


def test_resume_leaves_out_a_method_recorded_as_skipped(micro_study, tmp_path):
    """A record naming one method: the unit is evaluated again without that method."""
    from twinsr.study.records import SkipRecord

    out, res, _ = micro_study
    study = _copy_study(out, tmp_path / "copy")
    (study / "eval" / "measured__small__a2.csv").unlink()
    hand = SkipRecord("evaluate", "measured", "small", 2, "not wanted", method="nearest")
    meta = json.loads((study / "study.json").read_text())
    meta["skipped"].append(hand.to_dict())
    (study / "study.json").write_text(json.dumps(meta))
    again = run_study(_micro_config(out.parent), study)
    assert again.steps["evaluate"] == "done"
    small = again.table.query("sample == 'small'")
    assert set(small.method) == {"ground_truth", "N_bin", "N_diffu", "triquadratic"}
    before = res.table.query("sample == 'small' and method != 'nearest'")
    pd.testing.assert_frame_equal(small.reset_index(drop=True), before.reset_index(drop=True))
    assert again.skipped[-1] == "measured/small α=2 nearest: not wanted"


def test_resume_of_an_earlier_layout_study(micro_study, tmp_path):
    """A study.json without records (skips kept as sentences in eval/*__skipped.json) is
    read: the skips are checked again from the volumes, recorded, the old files removed."""
    out, res, _ = micro_study
    study = _copy_study(out, tmp_path / "old")
    meta = json.loads((study / "study.json").read_text())
    del meta["layout"], meta["skipped"]
    (study / "study.json").write_text(json.dumps(meta))
    old_file = study / "eval" / "measured__small__skipped.json"
    old_file.write_text(json.dumps(res.skipped))
    lines: list[str] = []
    again = run_study(_micro_config(out.parent), study, progress=lines.append)
    assert any("earlier layout" in x for x in lines)
    assert again.steps["evaluate"] == "skipped"  # nothing evaluated again
    assert again.skip_records == res.skip_records and again.skipped == res.skipped
    assert not old_file.exists()
    assert json.loads((study / "study.json").read_text())["skipped"] == [
        r.to_dict() for r in res.skip_records]
    pd.testing.assert_frame_equal(again.table, res.table)


@pytest.mark.parametrize(("change", "match"), [
    ({"layout": 99}, r"layout 99.*reads layouts 1 and 2.*force"),
    ({"skipped": [{"step": "evaluate", "alpha": 4}]}, r"unreadable.*missing keys.*force"),
    ({"skipped": [{"step": "evaluate", "source": "m", "sample": "s", "alpha": "4",
                   "reason": "r"}]}, r"unreadable.*alpha must be an integer"),
    ({"skipped": {"a": 1}}, r"unreadable.*must be a list"),
])
def test_study_file_of_unknown_layout_or_bad_records_refused(micro_study, tmp_path, change,
                                                             match):
    from twinsr.study.pipeline import _Log, _prepare_folder

    out, _, _ = micro_study
    meta = json.loads((out / "study.json").read_text())
    (tmp_path / "study.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(ConfigError, match=match):
        _prepare_folder(_micro_config(out.parent), tmp_path, False, _Log(None))


def test_skip_record_round_trip_and_errors():
    from twinsr.study.records import SkipRecord, skip_records

    r = SkipRecord("evaluate", "measured", "a.b", 8, "too small", method="N_bin")
    assert r.message == "measured/a.b α=8 N_bin: too small"
    assert skip_records([r.to_dict()]) == [r]
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    with pytest.raises(ConfigError, match=r"unknown keys \['colour'\]"):
        SkipRecord.from_dict({**r.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        SkipRecord.from_dict(["evaluate"])
    with pytest.raises(ConfigError, match="alpha must be an integer"):
        SkipRecord.from_dict({**r.to_dict(), "alpha": True})


def test_different_study_in_folder_refused_unless_force(micro_study, tmp_path):
    out, _, _ = micro_study
    other = StudyConfig.preset("micro", seed=5, device="cpu",
                               measured=list(_micro_config(out.parent).measured))
    with pytest.raises(ConfigError, match=r"holds a different study.*seed: 0 -> 5.*force"):
        run_study(other, out)
    # a non-empty folder that is not a study is refused too
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        run_study(other, tmp_path)
    # force removes the previous study's artefacts (checked on a copy, without rerunning)
    from twinsr.study.pipeline import _Log, _prepare_folder

    fake = tmp_path / "old"
    fake.mkdir()
    (fake / "study.json").write_text((out / "study.json").read_text())
    (fake / "runs").mkdir()
    (fake / "results.csv").write_text("x")
    (fake / "mine.txt").write_text("kept")
    meta, skips = _prepare_folder(other, fake, True, _Log(None))
    assert skips == [] and meta["seed"] == 5
    assert not (fake / "runs").exists() and not (fake / "results.csv").exists()
    assert (fake / "mine.txt").exists()
    assert json.loads((fake / "study.json").read_text())["seed"] == 5


def test_cli_study_errors(tmp_path):
    from twinsr.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["study", "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "exactly one of --preset" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("samples: [nmc_nrel_xct]\nalphas: [3]\n")
    r = runner.invoke(app, ["study", "--config", str(bad), "-o", str(tmp_path / "y")])
    assert r.exit_code == 1 and "alphas" in r.output
    r = runner.invoke(app, ["study", "--preset", "nope", "-o", str(tmp_path / "z")])
    assert r.exit_code == 1 and "unknown study preset" in r.output


def test_unreadable_study_file_refused_unless_force(tmp_path):
    from twinsr.study.pipeline import _Log, _prepare_folder

    (tmp_path / "study.json").write_text("{not json")
    cfg = StudyConfig.preset("micro", device="cpu")
    with pytest.raises(ConfigError, match=r"unreadable.*force"):
        _prepare_folder(cfg, tmp_path, False, _Log(None))
    (tmp_path / "runs").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    meta, skips = _prepare_folder(cfg, tmp_path, True, _Log(None))
    assert meta["first_started"] == meta["started"] and skips == []
    # the unknown study's outputs are not reused as this one's; other files are kept
    assert not (tmp_path / "runs").exists() and (tmp_path / "notes.txt").exists()
    assert json.loads((tmp_path / "study.json").read_text())["seed"] == cfg.seed


def test_figure_names_keep_dots_in_sample_names(tmp_path):
    from twinsr.study.plots import plot_error_slices

    hr = np.zeros((8, 8), np.uint8)
    hr[2:6] = 1
    paths = plot_error_slices({2: {"hr": hr, "nearest": hr}},
                              tmp_path / "error_slices__measured__a.b")
    assert sorted(p.name for p in paths) == ["error_slices__measured__a.b.pdf",
                                             "error_slices__measured__a.b.png"]
    assert all(p.exists() for p in paths)


# ----------------------------------------------------------------------------- no silent fallbacks


def test_unreadable_training_history_warns(tmp_path):
    from twinsr.exceptions import StudyWarning
    from twinsr.study.pipeline import _histories

    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    (bad / "history.csv").write_text("")
    with pytest.warns(StudyWarning, match=r"history.csv is unreadable.*N_bad is left out"):
        hist = _histories({"N_good": good, "N_bad": bad})
    assert list(hist) == ["N_good"]


def test_unreadable_steps_file_warns_and_is_replaced(tmp_path):
    from twinsr.exceptions import StudyWarning
    from twinsr.study.pipeline import _Log, _record_steps

    log = _Log(None)
    log.mark("table", "done", 0.5)
    meta = {"started": "2024-01-01T00:00:00Z"}
    _record_steps(tmp_path, meta, 1.0, log)
    _record_steps(tmp_path, meta, 2.0, log)
    runs = json.loads((tmp_path / "steps.json").read_text())["runs"]
    assert [r["seconds"] for r in runs] == [1.0, 2.0] and runs[0]["steps"] == {"table": "done"}
    (tmp_path / "steps.json").write_text('{"runs": 3}')
    with pytest.warns(StudyWarning, match=r"steps.json is unreadable.*replaced"):
        _record_steps(tmp_path, meta, 3.0, log)
    assert [r["seconds"] for r in json.loads((tmp_path / "steps.json").read_text())["runs"]] \
        == [3.0]


def test_calibration_figure_failure_warns_but_a_bug_propagates(tmp_path, monkeypatch):
    import twinsr.stochastic
    from twinsr.exceptions import StudyWarning
    from twinsr.study.pipeline import _calibration_figure

    def disk_full(res, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(twinsr.stochastic, "plot_calibration", disk_full)
    with pytest.warns(StudyWarning, match=r"calibration figure of berea not written.*space"):
        _calibration_figure(None, tmp_path / "c.png", "berea")

    def bug(res, path):
        raise AttributeError("no such attribute")

    monkeypatch.setattr(twinsr.stochastic, "plot_calibration", bug)
    with pytest.raises(AttributeError):
        _calibration_figure(None, tmp_path / "c.png", "berea")


def test_unusable_stored_reference_is_computed_again(tmp_path):
    from twinsr.metrics import PhaseTortuosity
    from twinsr.study.pipeline import _load_reference, _Log, _save_reference

    lines: list[str] = []
    log = _Log(lines.append)
    ref = [{"pore": PhaseTortuosity("pore", 1.2, float("inf"), False)}]
    path = tmp_path / "r.json"
    _save_reference(path, ref)
    assert _load_reference(path, 1, log) == ref
    assert _load_reference(path, 2, log) is None and "holds 1 sub-volumes, not 2" in lines[-1]
    path.write_text("[{\"pore\": 3}]")
    assert _load_reference(path, 1, log) is None and "unreadable" in lines[-1]
