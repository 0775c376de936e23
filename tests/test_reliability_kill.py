"""Kill and resume: SIGKILL during `twinsr database`, `train`, `superresolve -o OUT.zarr` and
`study --preset micro`, rerun, and compare with an uninterrupted run.

Three deterministic kill points per command (a progress marker: a file appearing, a log line),
each followed by a scan of the output tree (every file under a final name loads with its reader;
temporaries are named ``*.tmp*`` / ``*.partial``). The final rerun must exit 0, and its outputs
equal the uninterrupted run's: volumes, tables and bundles byte for byte, weights tensor by tensor,
and the files that record wall-clock times or dates (listed with the reason in
``tests/_reliability.py``) equal apart from those entries. ``benchmarks/bench_reliability.py``
runs the same with random kill points.

The crash tests at the end put a run in the state a SIGKILL at one precise instant leaves (an
exception raised right there) for the short windows that random kills rarely hit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _reliability import (
    Trigger,
    database_scenario,
    kill_and_resume,
    study_scenario,
    superresolve_scenario,
    train_scenario,
)


def _check(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.kills >= 3, [a.trigger for a in outcome.attempts if not a.killed]
    assert not outcome.problems, outcome.problems
    assert outcome.final_error is None, outcome.final_error
    assert not outcome.differences, outcome.differences


def test_kill_database(tmp_path: Path) -> None:
    out = kill_and_resume(database_scenario(), tmp_path, [
        Trigger("glob", "db/*/hr.npy", 1),                # inside the first entry
        Trigger("glob", "db/*/entry.json", 1),            # just after an entry completes
        Trigger("glob", "db/*/diffu_a2.npy", 1),          # between the α = 2 and α = 4 files
    ])  # each run completes at most one more entry before its kill: 3 of 6 are left
    _check(out)


@pytest.mark.slow
def test_kill_train(tmp_path: Path) -> None:
    out = kill_and_resume(train_scenario(), tmp_path, [
        Trigger("line", r"epoch \d+:", 1),                # right after a checkpoint
        Trigger("line", r"epoch \d+:", 2, 0.05),          # inside an epoch, two epochs on
        Trigger("line", r"epoch \d+:", 1, 0.1),           # inside the next epoch
    ])  # (killed between the bundle and run.json: test_train_crash_before_run_json)
    _check(out)


@pytest.mark.slow
def test_kill_superresolve_zarr(tmp_path: Path) -> None:
    out = kill_and_resume(superresolve_scenario(), tmp_path, [
        Trigger("glob", "sr.zarr.partial/.twinsr-done/*", 1),
        Trigger("glob", "sr.zarr.partial/.twinsr-done/*", 20),
        Trigger("glob", "sr.zarr.partial/.twinsr-done/*", 25),
    ])
    _check(out)


@pytest.mark.slow
def test_kill_study_micro(tmp_path: Path) -> None:
    out = kill_and_resume(study_scenario(), tmp_path, [
        Trigger("line", r"database: 1/", 1),              # inside the database
        Trigger("line", r"train N_diffu_a2", 1, 0.5),     # inside training
        Trigger("line", r"evaluate measured", 1, 1.0),    # inside evaluation
    ])
    _check(out)
    assert not out.leftover_temporaries  # a rerun removes what the killed runs left


# ---- crashes at precise instants ---------------------------------------------------------------
class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler of the library catches it."""


def _sr_inputs(tmp_path: Path) -> tuple[np.ndarray, object]:
    import torch

    from twinsr.sr import SRModel, SRResNet3d

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = SRResNet3d(1, 2, channels=4, blocks=1)
    lr = (np.random.default_rng(2).random((12, 12, 12)) < 0.5).astype(np.uint8)
    return lr, SRModel(net, threshold=0.5)


def _zarr_bytes(p: Path) -> dict[str, bytes]:
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}


def _crash_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str,
                       *, after: bool) -> None:
    """Crash ``superresolve_zarr`` at the first call of ``target`` (a name in twinsr.scale's
    namespace, dotted for module attributes), before or after it runs; rerun; compare."""
    import twinsr.scale as scale

    lr, model = _sr_inputs(tmp_path)
    ref = scale.superresolve_zarr(lr, model, tmp_path / "ref.zarr", chunk=4, device="cpu")
    owner_name, _, attr = target.rpartition(".")
    owner = getattr(scale, owner_name) if owner_name else scale
    real = getattr(owner, attr)
    calls = [0]

    def crashing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 1 and not after:
            raise Killed
        out = real(*args, **kwargs)
        if calls[0] == 1:
            raise Killed
        return out

    monkeypatch.setattr(owner, attr, crashing)
    with pytest.raises(Killed):
        scale.superresolve_zarr(lr, model, tmp_path / "sr.zarr", chunk=4, device="cpu")
    monkeypatch.setattr(owner, attr, real)
    got = scale.superresolve_zarr(lr, model, tmp_path / "sr.zarr", chunk=4, device="cpu")
    assert _zarr_bytes(got) == _zarr_bytes(ref)


def test_superresolve_zarr_crash_inside_a_block(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after some blocks are written (the first marker's touch): the rerun resumes."""
    import pathlib

    real_touch = pathlib.Path.touch
    count = [0]

    def touch(self, *a, **k):  # type: ignore[no-untyped-def]
        real_touch(self, *a, **k)
        if ".twinsr-done" in str(self):
            count[0] += 1
            if count[0] == 3:
                raise Killed

    import twinsr.scale as scale

    lr, model = _sr_inputs(tmp_path)
    ref = scale.superresolve_zarr(lr, model, tmp_path / "ref.zarr", chunk=4, device="cpu")
    monkeypatch.setattr(pathlib.Path, "touch", touch)
    with pytest.raises(Killed):
        scale.superresolve_zarr(lr, model, tmp_path / "sr.zarr", chunk=4, device="cpu",
                                workers=1)
    monkeypatch.setattr(pathlib.Path, "touch", real_touch)
    assert not (tmp_path / "sr.zarr").exists() and (tmp_path / "sr.zarr.partial").is_dir()
    got = scale.superresolve_zarr(lr, model, tmp_path / "sr.zarr", chunk=4, device="cpu")
    assert _zarr_bytes(got) == _zarr_bytes(ref)


def test_superresolve_zarr_crash_before_settings(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_then_resume(tmp_path, monkeypatch, "create_zarr_array", after=True)


def test_superresolve_zarr_crash_while_finishing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_then_resume(tmp_path, monkeypatch, "shutil.rmtree", after=True)


def test_superresolve_zarr_crash_before_rename(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_then_resume(tmp_path, monkeypatch, "os.replace", after=False)


def test_superresolve_zarr_rerun_after_completion(tmp_path: Path) -> None:
    import twinsr.scale as scale

    lr, model = _sr_inputs(tmp_path)
    ref = scale.superresolve_zarr(lr, model, tmp_path / "sr.zarr", chunk=4, device="cpu")
    before = _zarr_bytes(ref)
    again = scale.superresolve_zarr(lr, model, tmp_path / "sr.zarr", chunk=4, device="cpu")
    assert _zarr_bytes(again) == before


# ---- training: the files written after the last checkpoint -------------------------------------
@pytest.fixture(scope="module")
def train_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from _helpers import BlobModel
    from twinsr.sr import build_database

    path = tmp_path_factory.mktemp("kill") / "db"
    build_database([BlobModel()], path, n_realizations=3, shape=16, alphas=(2,),
                   split=(1, 1, 1), diffusion=False)
    return path


def _micro() -> object:
    from twinsr.sr import TrainConfig

    return TrainConfig.preset("micro", epochs=2, max_seconds=None, threshold_bins=64,
                              num_threads=1)


def _train_crash(db: Path, out: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                 when: int) -> None:
    """Train; crash at the ``when``-th write of the file ``name`` (before it is written)."""
    import importlib

    tr = importlib.import_module("twinsr.sr.train")  # twinsr.sr.train is also the function
    real = tr.atomic_write_text
    seen = [0]

    def crashing(target, text):  # type: ignore[no-untyped-def]
        if Path(target).name == name:
            seen[0] += 1
            if seen[0] == when:
                raise Killed
        return real(target, text)

    monkeypatch.setattr(tr, "atomic_write_text", crashing)
    with pytest.raises(Killed):
        tr.train(db, alpha=2, out_dir=out, config=_micro(), resume=True, device="cpu")
    monkeypatch.setattr(tr, "atomic_write_text", real)
    tr.train(db, alpha=2, out_dir=out, config=_micro(), resume=True, device="cpu")


def test_train_crash_before_run_json(train_db: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _train_crash(train_db, tmp_path / "run", monkeypatch, "run.json", 1)
    assert (tmp_path / "run" / "run.json").exists()


def test_train_crash_before_last_history(train_db: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    _train_crash(train_db, tmp_path / "run", monkeypatch, "history.csv", 2)
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == [1, 2]


def test_train_crash_mid_run_resumes_exactly(train_db: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Crashed before the first epoch's history (its checkpoint written): the rerun's bundle
    has the uninterrupted run's weights, bit for bit."""
    import torch

    from twinsr.sr import load_model, train

    train(train_db, alpha=2, out_dir=tmp_path / "ref", config=_micro(), device="cpu")
    _train_crash(train_db, tmp_path / "run", monkeypatch, "history.csv", 1)
    a = load_model(tmp_path / "ref").network.state_dict()
    b = load_model(tmp_path / "run").network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_model(tmp_path / "ref").threshold == load_model(tmp_path / "run").threshold
