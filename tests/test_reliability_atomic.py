"""Temporaries of writers killed mid-write: recognisable by name and removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from twinsr._atomic import atomic_path, remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[1]
WRITER = """
import sys, time
from pathlib import Path
from twinsr._atomic import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half")
    print(tmp.name, flush=True)
    time.sleep(60)
"""


def _killed_writer(target: Path) -> Path:
    """A subprocess that is SIGKILLed while writing ``target``; its temporary."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                         text=True, env=env)
    name = p.stdout.readline().strip()  # type: ignore[union-attr]
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    tmp = target.parent / name
    assert tmp.exists() and not target.exists()
    return tmp


def test_killed_writer_leaves_a_recognisable_temporary_that_is_removed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    tmp = _killed_writer(tmp_path / "sub" / "volume.npy")
    assert tmp.name.startswith(".volume.") and ".tmp" in tmp.name
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert not tmp.exists()


def test_live_and_foreign_temporaries_are_kept(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "mine.txt") as tmp:
        tmp.write_text("in progress")
        assert remove_stale_temporaries(tmp_path) == []
        assert tmp.exists()
    foreign = tmp_path / ".x.otherhost-1.abcdefgh.tmp.npy"  # another machine's writer
    foreign.write_text("?")
    plain = tmp_path / "notes.tmp.txt"  # not ours
    plain.write_text("?")
    assert remove_stale_temporaries(tmp_path) == []
    assert foreign.exists() and plain.exists() and (tmp_path / "mine.txt").exists()


def test_directory_moved_aside_is_restored(tmp_path: Path) -> None:
    """Killed between the two renames of a directory swap: the old store comes back."""
    from twinsr._atomic import _writer

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = _writer().rsplit("-", 1)[0]
    aside = tmp_path / f".store.zarr.old-{host}-{dead}"
    aside.mkdir()
    (aside / "zarr.json").write_text("{}")
    assert remove_stale_temporaries(tmp_path) == [aside]
    assert (tmp_path / "store.zarr" / "zarr.json").exists() and not aside.exists()
    (tmp_path / f".store.zarr.old-{host}-{dead}").mkdir()  # target present: just removed
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


@pytest.mark.filterwarnings("ignore")
def test_study_rerun_removes_stale_temporaries(tmp_path: Path) -> None:
    from twinsr.study import StudyConfig, pipeline

    cfg = StudyConfig.preset("micro")
    out = tmp_path / "study"
    pipeline._prepare_folder(cfg, out, False, pipeline._Log(None))
    (out / "database" / "m00_r00").mkdir(parents=True)
    tmp = _killed_writer(out / "database" / "m00_r00" / "hr.npy")
    lines: list[str] = []
    pipeline._prepare_folder(cfg, out, False, pipeline._Log(lines.append))
    assert not tmp.exists()
    assert any("removed 1 temporary" in s for s in lines), lines


def test_database_and_train_reruns_remove_stale_temporaries(tmp_path: Path) -> None:
    """`build_database` and `train` clean their own folders of a killed writer's leftovers."""
    from _helpers import BlobModel
    from twinsr.sr import TrainConfig, build_database, train

    db = tmp_path / "db"
    db.mkdir()
    tmp_db = _killed_writer(db / "manifest.json")
    build_database([BlobModel()], db, n_realizations=3, shape=16, alphas=(2,),
                   split=(1, 1, 1), diffusion=False)
    assert not tmp_db.exists()
    run = tmp_path / "run"
    run.mkdir()
    tmp_run = _killed_writer(run / "history.csv")
    train(db, alpha=2, out_dir=run, device="cpu", resume=True,
          config=TrainConfig.preset("micro", epochs=1, max_seconds=None, threshold_bins=64))
    assert not tmp_run.exists() and (run / "history.csv").exists()
