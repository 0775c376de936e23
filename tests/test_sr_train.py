"""Tests of the training protocol (twinsr.sr.train, twinsr.sr.config) on tiny problems."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _helpers import BlobModel
from twinsr.exceptions import ConfigError, DatasetError
from twinsr.sr.bundle import load_model
from twinsr.sr.config import TrainConfig
from twinsr.sr.database import Database, build_database
from twinsr.sr.network import SRResNet3d
from twinsr.sr.train import train, transfer_weights

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    return build_database([BlobModel(sigma=2.0)], tmp_path_factory.mktemp("db"), n_realizations=3,
                          shape=32, alphas=(2, 4), split=(1, 1, 1), diffusion=False)


def _cfg(**kw: Any) -> TrainConfig:
    base = {"channels": 4, "blocks": 1, "crop": 8, "crop_per_alpha": {4: 6}, "batch_size": 2,
            "epochs": 3, "steps_per_epoch": 3, "lr": 1e-2, "patience": 5, "val_crops": 3,
            "seed": 1, "tile": 8}
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_loss_and_writes_run(db: Database, tmp_path: Path) -> None:
    seen: list[tuple[int, int, float, float | None]] = []
    res = train(db, alpha=2, inputs="bin", out_dir=tmp_path / "run",
                config=_cfg(epochs=6, steps_per_epoch=6),
                device="cpu", progress=lambda *a: seen.append(a))
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.9 * losses[0]
    assert res.best_val_loss < res.history[0]["val_loss"] or res.best_epoch == 1
    assert res.epochs_run == 6 and not res.stopped_early and res.device == "cpu"
    assert 0 < res.threshold < 1
    assert sum(1 for s in seen if s[3] is not None) == 6 and len(seen) == 6 * 7
    for f in ("config.yaml", "checkpoint.pt", "history.csv", "model.pt", "run.json"):
        assert (tmp_path / "run" / f).exists()
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert len(rows) == 6 and float(rows[0]["train_loss"]) == pytest.approx(losses[0], rel=1e-4)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["alpha"] == 2 and info["seed"] == 1 and "torch" in info["versions"]
    m = load_model(tmp_path / "run")
    assert m.alpha == 2 and m.inputs == "bin" and m.threshold == pytest.approx(res.threshold)
    best = res.history[res.best_epoch - 1]["val_loss"]
    assert best == pytest.approx(res.best_val_loss)


def test_early_stopping_fires(db: Database, tmp_path: Path) -> None:
    res = train(db, alpha=2, out_dir=tmp_path / "run", device="cpu",
                config=_cfg(epochs=20, steps_per_epoch=1, patience=2, min_delta=10.0))
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 1


class _Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted(db: Database, tmp_path: Path) -> None:
    cfg = _cfg(epochs=3, steps_per_epoch=3)
    full = train(db, alpha=2, out_dir=tmp_path / "full", config=cfg, device="cpu")

    def stop(epoch: int, step: int, loss: float, val: float | None) -> None:
        if epoch == 2 and step == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(db, alpha=2, out_dir=tmp_path / "cut", config=cfg, device="cpu", progress=stop)
    assert not (tmp_path / "cut" / "model.pt").exists()
    with pytest.raises(ConfigError, match="already holds a training checkpoint"):
        train(db, alpha=2, out_dir=tmp_path / "cut", config=cfg, device="cpu")
    with pytest.raises(ConfigError, match=r"different configuration: lr: checkpoint=0.01, now=0.02"):
        train(db, alpha=2, out_dir=tmp_path / "cut", config=_cfg(lr=2e-2), resume=True,
              device="cpu")
    with pytest.raises(ConfigError, match="alpha: checkpoint=2, now=4"):
        train(db, alpha=4, out_dir=tmp_path / "cut", config=cfg, resume=True, device="cpu")
    res = train(db, alpha=2, out_dir=tmp_path / "cut", config=cfg, resume=True, device="cpu")
    assert res.epochs_run == 3
    assert [h["val_loss"] for h in res.history] == [h["val_loss"] for h in full.history]
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert res.threshold == full.threshold
    # resuming a finished run trains nothing more
    again = train(db, alpha=2, out_dir=tmp_path / "cut", config=cfg, resume=True, device="cpu")
    assert again.epochs_run == 3 and again.seconds == 0.0 and again.threshold == res.threshold


def test_transfer_copies_exactly_coinciding_layers(db: Database, tmp_path: Path) -> None:
    src = train(db, alpha=2, out_dir=tmp_path / "a2", config=_cfg(epochs=1, steps_per_epoch=1),
                device="cpu")
    src_state = load_model(src.bundle_path).network.state_dict()
    target = SRResNet3d(1, 4, channels=4, blocks=1)
    expected = {k for k, v in target.state_dict().items()
                if k in src_state and src_state[k].shape == v.shape}
    assert expected and not any(k.startswith("up.1") for k in expected)
    assert {"head.weight", "up.0.conv.weight", "tail.weight"} <= expected
    copied = transfer_weights(target, src_state)
    assert set(copied) == expected
    for k in expected:
        assert torch.equal(target.state_dict()[k], src_state[k])
    res = train(db, alpha=4, out_dir=tmp_path / "a4", init_from=tmp_path / "a2", device="cpu",
                config=_cfg(epochs=1, steps_per_epoch=1))
    assert set(res.transferred) == expected
    assert json.loads((tmp_path / "a4" / "run.json").read_text())["transferred"] == list(
        res.transferred)
    # a 3-channel target keeps its own head (shape differs)
    t3 = SRResNet3d(3, 2, channels=4, blocks=1)
    assert "head.weight" not in transfer_weights(t3, src_state)
    with pytest.raises(ConfigError, match="init_from: no model bundle"):
        train(db, alpha=4, out_dir=tmp_path / "b", init_from=tmp_path / "nothing", device="cpu",
              config=_cfg())


def test_bad_database_and_arguments(db: Database, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not alpha=8"):
        train(db, alpha=8, out_dir=tmp_path / "r", config=_cfg(), device="cpu")
    with pytest.raises(DatasetError, match="without diffusion channels"):
        train(db, alpha=2, inputs="diffu", out_dir=tmp_path / "r", config=_cfg(), device="cpu")
    with pytest.raises(DatasetError, match="smaller than one 16\\^3 crop"):
        train(db, alpha=2, out_dir=tmp_path / "r", config=_cfg(crop=16), device="cpu")
    with pytest.raises(ConfigError, match="`inputs` must be"):
        train(db, alpha=2, inputs="grey", out_dir=tmp_path / "r", device="cpu")
    nosplit = build_database([BlobModel(sigma=2.0)], tmp_path / "db2", n_realizations=2, shape=16,
                             alphas=(2,), split=(1, 0, 1), diffusion=False)
    with pytest.raises(DatasetError, match="no 'val' realizations"):
        train(nosplit, alpha=2, out_dir=tmp_path / "r2", config=_cfg(), device="cpu")


def test_config_presets_and_yaml(tmp_path: Path) -> None:
    paper = TrainConfig.preset("paper")
    assert (paper.channels, paper.blocks, paper.crop, paper.epochs, paper.steps_per_epoch,
            paper.patience, paper.val_crops) == (64, 8, 24, 1000, 400, 10, 30)
    assert [paper.batch_for(a) for a in (2, 4, 8)] == [8, 8, 1]
    quick = TrainConfig.preset("quick")
    assert quick.channels < paper.channels and quick.crop_for(8) < 24
    assert TrainConfig.preset("demo", epochs=2).epochs == 2
    with pytest.raises(ConfigError, match="unknown preset"):
        TrainConfig.preset("huge")
    with pytest.raises(ConfigError, match="invalid training config: lr"):
        TrainConfig.from_dict({"lr": -1})
    with pytest.raises(ConfigError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 7\nchannels: 8\n")
    assert TrainConfig.from_yaml(p, base="quick").epochs == 7
    assert TrainConfig.from_yaml(p).blocks == 8
    with pytest.raises(ConfigError, match="cannot read training config"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        TrainConfig.from_yaml(p)
    assert TrainConfig.from_dict(yaml_roundtrip(quick)) == quick


def yaml_roundtrip(cfg: TrainConfig) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(cfg.to_yaml())


def test_cli_train_and_superresolve(db: Database, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("channels: 4\nblocks: 1\ncrop_per_alpha: {2: 8}\nbatch_per_alpha: {2: 2}\n"
                   "epochs: 1\nsteps_per_epoch: 2\nval_crops: 2\ntile: 8\nmax_seconds: null\n")
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(db.path), "--alpha", "2", "-o", str(tmp_path / "run"),
                            "--config", str(cfg), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert '"epochs_run": 1' in r.output
    lr = np.asarray(db.lr("m00_r02", 2))
    np.save(tmp_path / "lr.npy", lr)
    r = runner.invoke(app, ["superresolve", str(tmp_path / "lr.npy"), "--model",
                            str(tmp_path / "run"), "-o", str(tmp_path / "sr.npy"), "--tile", "8",
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    sr = np.load(tmp_path / "sr.npy")
    assert sr.shape == (32, 32, 32) and set(np.unique(sr)) <= {0, 1}
    ref = __import__("twinsr.sr", fromlist=["superresolve"]).superresolve(
        lr, tmp_path / "run", device="cpu")
    assert np.array_equal(sr, ref)
    r = runner.invoke(app, ["superresolve", str(tmp_path / "lr.npy"), "--model",
                            str(tmp_path / "nothing"), "-o", str(tmp_path / "x.npy")])
    assert r.exit_code == 1 and "no model bundle" in r.output
    r = runner.invoke(app, ["train", str(tmp_path), "--alpha", "2", "-o", str(tmp_path / "r2")])
    assert r.exit_code == 1 and "not a twinsr database" in r.output
