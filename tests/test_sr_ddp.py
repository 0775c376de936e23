"""Multi-process training (DistributedDataParallel, gloo over 127.0.0.1) on tiny problems.

Every spawned process imports torch and twinsr (a few seconds each on a busy 2-core machine), so
the runs are few and tiny: 24³ realizations, a 4-channel network, a handful of steps. The
whole file takes 30 s on an idle 2-core machine (each test under 20 s), ~60 s on a busy one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import BlobModel
from twinsr.exceptions import ConfigError
from twinsr.sr.config import TrainConfig
from twinsr.sr.database import Database, build_database
from twinsr.sr.train import TrainResult, available_workers, check_nproc, train, train_distributed

torch.set_num_threads(2)

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="this torch build has no torch.distributed")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    return build_database([BlobModel(sigma=2.0)], tmp_path_factory.mktemp("ddb"),
                          n_realizations=2, shape=24, alphas=(2,), split=(1, 1, 0),
                          diffusion=False)


def _cfg(**kw: Any) -> TrainConfig:
    base = {"channels": 4, "blocks": 1, "crop": 6, "batch_size": 4, "epochs": 3,
            "steps_per_epoch": 3, "lr": 1e-2, "patience": 5, "val_crops": 4, "seed": 1,
            "tile": 8, "precision": "fp32"}
    base.update(kw)
    return TrainConfig(**base)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _assert_same_run(a: TrainResult, b: TrainResult, rtol: float = 1e-4) -> None:
    assert a.epochs_run == b.epochs_run
    for ha, hb in zip(a.history, b.history, strict=True):
        assert hb["val_loss"] == pytest.approx(ha["val_loss"], rel=rtol)
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=rtol)
    wa, wb = _weights(a.run_dir), _weights(b.run_dir)
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=rtol, atol=1e-5)


@pytest.fixture(scope="module")
def two(db: Database, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_distributed(2, db, alpha=2, out_dir=tmp_path_factory.mktemp("two") / "run",
                             config=_cfg(), device="cpu")


@pytest.mark.skipif(available_workers("cpu") < 2, reason="needs 2 CPU cores")
def test_two_processes_equal_one_process(db: Database, two: TrainResult, tmp_path: Path) -> None:
    one = train(db, alpha=2, out_dir=tmp_path / "one", config=_cfg(), device="cpu")
    assert two.world_size == 2 and one.world_size == 1
    _assert_same_run(one, two)
    assert two.threshold == pytest.approx(one.threshold, abs=2e-3)
    info = (two.run_dir / "run.json").read_text()
    assert '"world_size": 2' in info
    assert sorted(p.name for p in two.run_dir.iterdir() if p.name != "tensorboard") == [
        "checkpoint.pt", "config.yaml", "history.csv", "model.pt", "run.json"]


class _Interrupt(Exception):
    pass


def _stop(epoch: int, step: int, loss: float, val: float | None) -> None:
    if epoch == 2 and step == 2:
        raise _Interrupt


@pytest.mark.skipif(available_workers("cpu") < 2, reason="needs 2 CPU cores")
def test_resumed_two_process_run_equals_uninterrupted(db: Database, two: TrainResult,
                                                      tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    with pytest.raises(_Interrupt):   # the worker's own exception comes back
        train_distributed(2, db, alpha=2, out_dir=cut, config=_cfg(), device="cpu",
                          progress=_stop)
    assert (cut / "checkpoint.pt").exists() and not (cut / "model.pt").exists()
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 1
    res = train_distributed(2, db, alpha=2, out_dir=cut, config=_cfg(), device="cpu",
                            resume=True)
    assert [h["val_loss"] for h in res.history] == pytest.approx(
        [h["val_loss"] for h in two.history], rel=1e-5)
    _assert_same_run(two, res, rtol=1e-5)
    assert res.threshold == pytest.approx(two.threshold, abs=1e-6)


def test_nproc_checked_before_spawning(db: Database, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    have = available_workers("cpu")
    with pytest.raises(ConfigError, match=rf"--nproc {have + 1} is more than the {have} CPU "
                                          r"cores available"):
        check_nproc(have + 1, "cpu")
    with pytest.raises(ConfigError, match=r"--nproc \d+ is more than"):
        train_distributed(have + 1, db, alpha=2, out_dir=tmp_path / "r", config=_cfg(),
                          device="cpu")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="`nproc` must be an integer >= 1"):
            check_nproc(bad, "cpu")
    if have >= 2:
        with pytest.raises(ConfigError, match="batch of 3 crops at alpha=2 cannot be split "
                                              "evenly across 2"):
            train_distributed(2, db, alpha=2, out_dir=tmp_path / "r", device="cpu",
                              config=_cfg(batch_size=3))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"already part of a torch\.distributed job"):
        train_distributed(1, db, alpha=2, out_dir=tmp_path / "r", config=_cfg(), device="cpu")
    assert not (tmp_path / "r").exists()


def test_cli_nproc(db: Database, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app

    r = CliRunner().invoke(app, ["train", str(db.path), "--alpha", "2", "-o",
                                 str(tmp_path / "run"), "--device", "cpu", "--nproc", "999"])
    assert r.exit_code == 1 and "--nproc 999 is more than" in r.output


def _env_worker(rank: int, world: int, port: int, out: str, db_path: str) -> None:
    """A torchrun-style process: the job is described by the environment only."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world), "GLOO_SOCKET_IFNAME": "lo"})
    if rank == 1:
        torch.__version__ = "0.0.1-other"  # type: ignore[assignment]
    try:
        train(db_path, alpha=2, out_dir=Path(out) / "run", config=_cfg(), device="cpu")
    except ConfigError as exc:
        Path(out, f"rank{rank}.txt").write_text(str(exc))


@pytest.mark.skipif(available_workers("cpu") < 2, reason="needs 2 CPU cores")
def test_mixed_torch_versions_refused(db: Database, tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_env_worker, args=(2, port, str(tmp_path), str(db.path)), nprocs=2,
                       start_method="spawn", join=True)
    for rank in (0, 1):
        msg = (tmp_path / f"rank{rank}.txt").read_text()
        assert "different versions" in msg and "rank 1: torch 0.0.1-other" in msg
        assert "install the same torch" in msg
    assert not (tmp_path / "run").exists()
