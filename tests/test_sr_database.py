"""Tests of twinsr.sr.database: layout, alignment, split, reproducibility, resume, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _helpers import BlobModel
from twinsr.exceptions import ConfigError, DatasetError
from twinsr.sr.database import Database, build_database, open_database, split_counts


def _build(path: Path, **kw: Any) -> Database:
    args = {"n_realizations": 3, "shape": 16, "alphas": (2, 4), "split": (1, 1, 1),
            "diffusion": False}
    args.update(kw)
    return build_database([BlobModel(1.5), BlobModel(2.5)], path, **args)


def test_layout_alignment_split(tmp_path: Path) -> None:
    calls = []
    db = _build(tmp_path / "db", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (6, 6)
    man = json.loads((tmp_path / "db" / "manifest.json").read_text())
    assert man["complete"] and man["settings"]["split"] == [1, 1, 1]
    assert man["splits"] == {"train": ["m00_r00", "m01_r00"], "val": ["m00_r01", "m01_r01"],
                             "test": ["m00_r02", "m01_r02"]}
    assert "numpy" in man["versions"]
    for a in (2, 4):
        pairs = db.pairs("train", a)
        assert len(pairs) == 2
        lr, hr = pairs[0]
        assert lr.shape == (1, 16 // a, 16 // a, 16 // a) and lr.dtype == np.float32
        assert hr.dtype == np.uint8 and hr.shape == (16, 16, 16)
        assert np.array_equal(lr[0], hr[::a, ::a, ::a])
    assert open_database(tmp_path / "db").alphas == (2, 4)
    assert "splits" in repr(db)


def test_reproducible_and_seed_dependent(tmp_path: Path) -> None:
    a = _build(tmp_path / "a", seed=3)
    b = _build(tmp_path / "b", seed=3)
    c = _build(tmp_path / "c", seed=4)
    assert np.array_equal(a.hr("m01_r02"), b.hr("m01_r02"))
    assert not np.array_equal(a.hr("m01_r02"), c.hr("m01_r02"))
    assert not np.array_equal(a.hr("m00_r00"), a.hr("m00_r01"))


def test_resume_skips_valid_and_rebuilds_broken(tmp_path: Path) -> None:
    db = _build(tmp_path / "db")
    ref = np.array(db.hr("m00_r01"))
    keep = tmp_path / "db" / "m01_r02" / "hr.npy"
    t_keep = keep.stat().st_mtime_ns
    broken = tmp_path / "db" / "m00_r01" / "lr_a4.npy"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    (tmp_path / "db" / "m01_r00" / "entry.json").unlink()  # interrupted entry
    db2 = _build(tmp_path / "db")
    assert keep.stat().st_mtime_ns == t_keep
    assert np.array_equal(db2.hr("m00_r01"), ref)
    assert np.array_equal(db2.lr("m00_r01", 4), ref[::4, ::4, ::4])
    assert (tmp_path / "db" / "m01_r00" / "entry.json").exists()


def test_parallel_build_equals_serial(tmp_path: Path) -> None:
    a = _build(tmp_path / "a", workers=2)
    b = _build(tmp_path / "b")
    for name in ("m00_r00", "m01_r02"):
        assert np.array_equal(a.hr(name), b.hr(name))


def test_other_settings_refused(tmp_path: Path) -> None:
    _build(tmp_path / "db")
    with pytest.raises(ConfigError, match=r"other settings.*seed: existing=0, requested=1"):
        _build(tmp_path / "db", seed=1)


def test_missing_split_alpha_diffusion(tmp_path: Path) -> None:
    db = _build(tmp_path / "db", split=(2, 1, 0))
    with pytest.raises(DatasetError, match="no 'test' realizations"):
        db.pairs("test", 2)
    with pytest.raises(DatasetError, match="not alpha=8"):
        db.pairs("train", 8)
    with pytest.raises(DatasetError, match="without diffusion channels"):
        db.pairs("train", 2, inputs="diffu")
    with pytest.raises(DatasetError, match="unknown split"):
        db.pairs("holdout", 2)
    with pytest.raises(ConfigError, match="`inputs` must be"):
        db.pairs("train", 2, inputs="rgb")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not divisible by alpha=4"):
        _build(tmp_path / "x", shape=18)
    with pytest.raises(DatasetError, match="cannot be split"):
        _build(tmp_path / "y", n_realizations=2)
    with pytest.raises(ConfigError, match="does not exist"):
        build_database([tmp_path / "nope.json"], tmp_path / "z")
    with pytest.raises(ConfigError, match="no models"):
        build_database([], tmp_path / "z")
    with pytest.raises(DatasetError, match="not a twinsr database"):
        open_database(tmp_path)


def test_incomplete_database_refused(tmp_path: Path) -> None:
    _build(tmp_path / "db")
    man_path = tmp_path / "db" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["complete"] = False
    man_path.write_text(json.dumps(man))
    with pytest.raises(DatasetError, match="incomplete"):
        open_database(tmp_path / "db")


def test_damaged_file_reported(tmp_path: Path) -> None:
    db = _build(tmp_path / "db")
    os.remove(tmp_path / "db" / "m00_r00" / "hr.npy")
    with pytest.raises(DatasetError, match="missing or damaged"):
        db.pairs("train", 2)


def test_split_counts() -> None:
    assert split_counts(10, (7, 2, 1)) == (7, 2, 1)
    assert split_counts(5, (7, 2, 1)) == (3, 1, 1)
    assert split_counts(3, (7, 2, 1)) == (1, 1, 1)
    with pytest.raises(DatasetError, match="must be 3"):
        split_counts(3, (1, 2))


def test_with_chi_square_model_and_diffusion(tmp_path: Path) -> None:
    stochastic = pytest.importorskip("twinsr.stochastic")
    transport = pytest.importorskip("twinsr.transport")
    if not hasattr(stochastic, "ChiSquareModel") or not hasattr(transport, "diffusion_channels"):
        pytest.skip("ChiSquareModel / diffusion_channels not available")
    model = stochastic.ChiSquareModel(nu=1.4, gamma=0.15)
    p = tmp_path / "params.json"
    p.write_text(json.dumps(model.to_dict()))
    db = build_database([p], tmp_path / "db", n_realizations=3, shape=16, alphas=(2,),
                        split=(1, 1, 1), diffusion=True)
    lr, _hr = db.pairs("val", 2, inputs="diffu")[0]
    assert lr.shape == (3, 8, 8, 8)
    assert np.all(lr[1][lr[0] == 1] == 0) and np.all(lr[2][lr[0] == 0] == 0)


def test_cli_database(tmp_path: Path) -> None:
    stochastic = pytest.importorskip("twinsr.stochastic")
    if not hasattr(stochastic, "ChiSquareModel"):
        pytest.skip("ChiSquareModel not available")
    from typer.testing import CliRunner

    from twinsr.cli import app

    p = tmp_path / "params.json"
    p.write_text(json.dumps(stochastic.ChiSquareModel(nu=1.4, gamma=0.2).to_dict()))
    runner = CliRunner()
    args = ["database", str(p), "-o", str(tmp_path / "db"), "--n", "3", "--shape", "16",
            "--alphas", "2,4", "--split", "1,1,1", "--no-diffusion"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    db = open_database(tmp_path / "db")
    assert db.alphas == (2, 4) and len(db.entries("test")) == 1
    r = runner.invoke(app, [*args[:-1], "--alphas", "2,x"])
    assert r.exit_code == 1 and "comma-separated integers" in r.output
    r = runner.invoke(app, [*args, "--seed", "5"])
    assert r.exit_code == 1 and "other settings" in r.output
