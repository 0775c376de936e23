"""CLI basics: help is instant, errors are one line with exit code 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from twinsr import __version__
from twinsr.cli import app
from twinsr.io import write_volume

runner = CliRunner()


def test_version() -> None:
    res = runner.invoke(app, ["version"])
    assert res.exit_code == 0 and res.output.strip() == __version__


def test_info_table_and_json(tmp_path: Path, binary_volume: np.ndarray) -> None:
    p = write_volume(tmp_path / "v.tif", binary_volume, voxel_size=0.8)
    res = runner.invoke(app, ["info", str(p)])
    assert res.exit_code == 0, res.output
    assert "24 x 28 x 32" in res.output and "0.8" in res.output
    res = runner.invoke(app, ["info", str(p), "--json"])
    d = json.loads(res.output)
    assert d["shape"] == [24, 28, 32] and d["binary"] is True
    assert d["solid_fraction"] == float(binary_volume.mean())


def test_info_error_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["info", str(tmp_path / "missing.npy")])
    assert res.exit_code == 1
    assert "error: no such file" in res.output
    assert "Traceback" not in res.output


def test_datasets_listing() -> None:
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0 and "nmc_nrel_xct" in res.output


def test_python_m_and_help_do_not_import_torch() -> None:
    code = ("import sys; from twinsr.cli import app; import twinsr; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    res = subprocess.run([sys.executable, "-m", "twinsr", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "info" in res.stdout
