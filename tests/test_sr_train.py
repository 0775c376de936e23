"""Tests of the training protocol (twinsr.sr.train, twinsr.sr.config) on tiny problems."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _helpers import BlobModel
from twinsr.exceptions import ConfigError, DatasetError, ModelWarning, NonPercolatingWarning
from twinsr.sr.bundle import load_model
from twinsr.sr.config import TrainConfig
from twinsr.sr.data import CropSampler
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
    vals = [h["val_loss"] for h in res.history]
    assert res.best_val_loss == min(vals) and res.best_epoch == 1 + vals.index(min(vals))
    # the kept weights beat the untrained network (same seeded init) on crops of their own
    trained = load_model(res.bundle_path).network
    untrained = _untrained(1, 2, _cfg(epochs=6, steps_per_epoch=6))
    x, y = _val_crops(db, 2)
    assert _bce(trained, x, y) < 0.8 * _bce(untrained, x, y)
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


def _untrained(in_channels: int, alpha: int, cfg: TrainConfig) -> SRResNet3d:
    """The network train() starts from: its init is seeded by ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return SRResNet3d(in_channels, alpha, channels=cfg.channels, blocks=cfg.blocks,
                          res_scale=cfg.res_scale, taper=cfg.taper)


def _val_crops(db: Database, alpha: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = db.pairs("val", alpha)
    sampler = CropSampler([(p.channels, p.hr) for p in pairs], alpha=alpha, crop=8, rng=123,
                          augment=False)
    x, y = sampler.sample(n)
    return torch.from_numpy(x), torch.from_numpy(y)


def _bce(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.binary_cross_entropy_with_logits(net.eval()(x), y))


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
    with pytest.warns(ModelWarning, match=r"network for alpha=2; transfer learning expects the "
                                          r"alpha/2=1 network"):
        train(db, alpha=2, out_dir=tmp_path / "a2b", init_from=tmp_path / "a2", device="cpu",
              config=_cfg(epochs=1, steps_per_epoch=1))
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


def test_global_torch_rng_left_alone_by_resumed_training(db: Database, tmp_path: Path) -> None:
    cfg = _cfg(epochs=2, steps_per_epoch=2)

    def stop(epoch: int, step: int, loss: float, val: float | None) -> None:
        if epoch == 2:
            raise _Interrupt

    torch.manual_seed(2024)
    before = torch.get_rng_state()
    with pytest.raises(_Interrupt):
        train(db, alpha=2, out_dir=tmp_path / "run", config=cfg, device="cpu", progress=stop)
    assert torch.equal(torch.get_rng_state(), before)
    # a checkpoint that carries another RNG state must not leak it into the caller
    ck_path = tmp_path / "run" / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    assert not torch.equal(ck["torch_rng"], before)
    train(db, alpha=2, out_dir=tmp_path / "run", config=cfg, resume=True, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)


def test_tensorboard_is_opt_in_and_recorded(db: Database, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    cfg = _cfg(epochs=1, steps_per_epoch=1)
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("torch.utils.tensorboard")

    class Writer:
        def __init__(self, **kw: Any) -> None:
            calls.append(kw)

        def add_scalar(self, *a: Any, **kw: Any) -> None:
            calls.append({"scalar": a[0]})

        def close(self) -> None:
            pass

    fake.SummaryWriter = Writer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(db, alpha=2, out_dir=tmp_path / "off", config=cfg, device="cpu")
    assert calls == []  # installed but not asked for: nothing logged
    assert json.loads((tmp_path / "off" / "run.json").read_text())["tensorboard"] is None
    train(db, alpha=2, out_dir=tmp_path / "on", config=_cfg(epochs=1, steps_per_epoch=1,
                                                            tensorboard=True), device="cpu")
    assert calls[0]["log_dir"] == str(tmp_path / "on" / "tensorboard")
    assert {c.get("scalar") for c in calls[1:]} == {"loss/train", "loss/val"}
    assert json.loads((tmp_path / "on" / "run.json").read_text())["tensorboard"] == "tensorboard"
    # asked for but not installed: refused before any work
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import -> ImportError
    with pytest.raises(ConfigError, match="tensorboard package is not installed"):
        train(db, alpha=2, out_dir=tmp_path / "missing", config=_cfg(tensorboard=True),
              device="cpu")
    assert not (tmp_path / "missing").exists()


def test_bundle_spec_of_trained_models(db: Database, tmp_path: Path) -> None:
    res = train(db, alpha=4, out_dir=tmp_path / "bin", device="cpu",
                config=_cfg(epochs=1, steps_per_epoch=1))
    spec = load_model(res.bundle_path).spec
    assert (spec.alpha, spec.inputs, spec.targets, spec.transport_axis, spec.crop) == (
        4, "bin", "morph", None, 6)
    assert spec.threshold == pytest.approx(res.threshold)
    info = json.loads((tmp_path / "bin" / "run.json").read_text())
    assert info["spec"] == spec.to_dict()


@pytest.fixture(scope="module")
def diffu_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Database]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        return {ax: build_database([BlobModel(sigma=2.0)], tmp_path_factory.mktemp(f"d{ax}"),
                                   n_realizations=2, shape=24, alphas=(2,), split=(1, 1, 0),
                                   diffusion=True, axis=ax) for ax in (0, 2)}


def test_diffu_model_records_and_uses_its_axis(diffu_dbs: dict[int, Database],
                                               tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app
    from twinsr.sr.infer import superresolve
    from twinsr.transport import diffusion_channels

    cfg = _cfg(epochs=1, steps_per_epoch=2)
    res = train(diffu_dbs[2], alpha=2, inputs="diffu", out_dir=tmp_path / "run", config=cfg,
                device="cpu")
    m = load_model(res.bundle_path)
    assert m.transport_axis == 2 and m.spec.crop == 8
    lr = np.asarray(diffu_dbs[2].lr("m00_r01", 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        d2 = diffusion_channels(lr, axis=2)
        stack = np.concatenate([lr[None].astype(np.float32), d2])
        ref = superresolve(stack, m, device="cpu", probabilities=True)
        auto = superresolve(lr, m, device="cpu", probabilities=True)  # channels along axis 2
    np.testing.assert_allclose(auto, ref, atol=1e-5)
    with pytest.raises(ConfigError, match="solved along axis 2"):
        superresolve(lr, m, axis=0, device="cpu")
    np.save(tmp_path / "lr.npy", lr)
    r = CliRunner().invoke(app, ["superresolve", str(tmp_path / "lr.npy"), "--model",
                                 str(tmp_path / "run"), "-o", str(tmp_path / "o.npy"),
                                 "--axis", "0", "--device", "cpu"])
    assert r.exit_code == 1 and "solved along axis 2" in r.output
    assert not (tmp_path / "o.npy").exists()
    # resuming the run on a database of another axis is refused, naming the field
    (tmp_path / "run" / "checkpoint.pt").rename(tmp_path / "ck.pt")
    cut = tmp_path / "cut"
    cut.mkdir()
    (tmp_path / "ck.pt").rename(cut / "checkpoint.pt")
    with pytest.raises(ConfigError, match="transport_axis: checkpoint=2, now=0"):
        train(diffu_dbs[0], alpha=2, inputs="diffu", out_dir=cut, config=cfg, resume=True,
              device="cpu")


def test_prefetch_precision_and_memory_format_change_nothing_but_speed(db: Database,
                                                                      tmp_path: Path) -> None:
    from twinsr.sr.train import native_bf16, training_precision

    base = _cfg(epochs=2, steps_per_epoch=3, precision="fp32")
    ref = train(db, alpha=2, out_dir=tmp_path / "ref", config=base, device="cpu")
    threaded = _cfg(epochs=2, steps_per_epoch=3, precision="fp32", prefetch=2)
    sync = train(db, alpha=2, out_dir=tmp_path / "sync", device="cpu", config=threaded)
    assert [h["val_loss"] for h in sync.history] == [h["val_loss"] for h in ref.history]
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "sync" / "checkpoint.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert a["model"][k].is_contiguous()   # written in the standard memory format
    # prefetch is not part of the run's identity: a run may resume with another setting, and
    # an interrupted run with a prefetch thread resumes exactly
    assert "prefetch" not in a["identity"] and a["identity"]["precision"] == "fp32"

    def stop(epoch: int, step: int, loss: float, val: float | None) -> None:
        if epoch == 2 and step == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(db, alpha=2, out_dir=tmp_path / "cut", config=threaded, device="cpu",
              progress=stop)
    resumed = train(db, alpha=2, out_dir=tmp_path / "cut", config=base, device="cpu",
                    resume=True)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in ref.history]
    contig = train(db, alpha=2, out_dir=tmp_path / "contig", device="cpu",
                   config=_cfg(epochs=2, steps_per_epoch=3, precision="fp32",
                               channels_last=False))
    assert [h["val_loss"] for h in contig.history] == pytest.approx(
        [h["val_loss"] for h in ref.history], rel=1e-4)
    bf = train(db, alpha=2, out_dir=tmp_path / "bf16", device="cpu",
               config=_cfg(epochs=2, steps_per_epoch=3, precision="bf16"))
    assert bf.precision == "bf16" and ref.precision == "fp32"
    assert [h["val_loss"] for h in bf.history] == pytest.approx(
        [h["val_loss"] for h in ref.history], rel=0.05)
    assert json.loads((tmp_path / "bf16" / "run.json").read_text())["precision"] == "bf16"
    assert training_precision("auto", "cpu") == ("bf16" if native_bf16() else "fp32")
    with pytest.raises(ConfigError, match="`precision` must be"):
        training_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "fp16"})


def test_default_fields_stay_out_of_the_checkpoint_identity(db: Database, tmp_path: Path) -> None:
    """Checkpoints written before the objective / precision fields existed still resume."""
    train(db, alpha=2, out_dir=tmp_path / "run", config=_cfg(epochs=1, steps_per_epoch=1),
          device="cpu")
    ident = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["identity"]
    for key in ("objective", "precision", "channels_last", "compile", "prefetch", "flux_mix",
                "targets"):
        assert key not in ident, key
    other = _cfg(epochs=1, steps_per_epoch=1, objective={"bce": 1.0, "volume_fraction": 1.0})
    with pytest.raises(ConfigError, match=r"objective: checkpoint=None, now=\{'bce': 1.0, "
                                          r"'volume_fraction': 1.0\}"):
        train(db, alpha=2, out_dir=tmp_path / "run", config=other, resume=True, device="cpu")


def test_compile_failure_falls_back_to_eager(db: Database, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    import logging

    class Broken(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Broken(model))
    cfg = _cfg(epochs=1, steps_per_epoch=2, precision="fp32")
    with caplog.at_level(logging.WARNING, logger="twinsr.sr.train"):
        res = train(db, alpha=2, out_dir=tmp_path / "c", device="cpu",
                    config=cfg.model_copy(update={"compile": True}))
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text
    ref = train(db, alpha=2, out_dir=tmp_path / "e", device="cpu", config=cfg)
    assert res.history[0]["val_loss"] == ref.history[0]["val_loss"]
