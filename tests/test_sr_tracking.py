"""TensorBoard export of training runs and study folders (twinsr.sr.tracking)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twinsr.exceptions import ConfigError
from twinsr.sr.tracking import export_tensorboard, tensorboard_available, training_runs

HISTORY = "epoch,train_loss,val_loss,seconds,best\n1,0.7,0.6,1.5,1\n2,0.5,0.55,3.0,1\n3,0.4,0.58,4.5,0\n"


def _study_like(root: Path) -> Path:
    for name in ("bin_a2", "bin_a4", "diffu_a2"):
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "history.csv").write_text(HISTORY)
    (root / "report.md").write_text("# a study\n")
    return root


def test_training_runs_found_below_a_study(tmp_path: Path) -> None:
    root = _study_like(tmp_path / "study")
    assert [p.name for p in training_runs(root)] == ["bin_a2", "bin_a4", "diffu_a2"]
    assert training_runs(root / "runs" / "bin_a2") == [root / "runs" / "bin_a2"]


@pytest.mark.skipif(not tensorboard_available(), reason="tensorboard is not installed")
def test_study_folder_exported_as_one_log_dir(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    root = _study_like(tmp_path / "study")
    out = export_tensorboard(root)
    assert out == root / "tensorboard"
    mux = EventMultiplexer().AddRunsFromDirectory(str(out))
    mux.Reload()
    assert sorted(mux.Runs()) == ["runs/bin_a2", "runs/bin_a4", "runs/diffu_a2"]
    val = mux.Scalars("runs/bin_a4", "loss/val")
    assert [e.step for e in val] == [1, 2, 3]
    assert [round(e.value, 6) for e in val] == [0.6, 0.55, 0.58]
    assert val[2].wall_time - val[0].wall_time == pytest.approx(3.0)
    # a rerun rewrites the logs instead of doubling them
    export_tensorboard(root)
    mux = EventMultiplexer().AddRunsFromDirectory(str(out))
    mux.Reload()
    assert len(mux.Scalars("runs/bin_a2", "loss/train")) == 3


def test_export_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no training run"):
        export_tensorboard(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "history.csv").write_text("epoch,train_loss,val_loss\n1,x,0.5\n")
    if tensorboard_available():
        with pytest.raises(ConfigError, match="not a training history"):
            export_tensorboard(tmp_path)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match="tensorboard package is not installed"):
        export_tensorboard(tmp_path)


def test_cli_study_tensorboard_refused_when_missing(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    from twinsr.cli import app

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    r = CliRunner().invoke(app, ["study", "--preset", "micro", "-o", str(tmp_path / "s"),
                                 "--tensorboard"])
    assert r.exit_code == 1 and "tensorboard package is not installed" in r.output
    assert not (tmp_path / "s").exists()
