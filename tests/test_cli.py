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


def test_damaged_sidecar_is_an_error_not_silence(tmp_path: Path) -> None:
    """diffusion / calibrate / info read the metadata with the volume: a sidecar that is not JSON
    stops the command with one line naming the sidecar (it used to be skipped silently)."""
    im = np.zeros((16, 16, 16), np.uint8)
    im[:, :8] = 1
    p = write_volume(tmp_path / "v.npy", im, voxel_size=0.5)
    (tmp_path / "v.npy.json").write_text('{"voxel_size": [0.5,')
    for args in (["diffusion", str(p), "-o", str(tmp_path / "d.npy"), "--device", "cpu"],
                 ["calibrate", str(p), "-o", str(tmp_path / "m.json")],
                 ["info", str(p)], ["tortuosity", str(p), "--device", "cpu"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert "v.npy.json" in res.output and "not valid JSON" in res.output, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "d.npy").exists() and not (tmp_path / "m.json").exists()


def test_diffusion_keeps_the_voxel_size(tmp_path: Path) -> None:
    from twinsr.io import read_metadata

    im = np.zeros((8, 6, 6), np.uint8)
    im[:, :3] = 1
    p = write_volume(tmp_path / "v.tif", im, voxel_size=(0.5, 0.25, 0.25))
    res = runner.invoke(app, ["diffusion", str(p), "-o", str(tmp_path / "d.h5"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert read_metadata(tmp_path / "d.h5")["voxel_size"] == (0.5, 0.25, 0.25)


def test_calibrate_warnings_are_visible(tmp_path: Path) -> None:
    """An anisotropic voxel size in the file and a gamma fit on its search bound are both named
    on stderr (the first used to be dropped silently); the table flags the fit."""
    noise = (np.random.default_rng(0).random((24, 24, 24)) < 0.4).astype(np.uint8)
    p = write_volume(tmp_path / "n.tif", noise, voxel_size=(1.0, 0.5, 0.5))
    res = runner.invoke(app, ["calibrate", str(p), "-o", str(tmp_path / "m.json"),
                              "--covariance", "exponential"])
    assert res.exit_code == 0, res.output
    assert "anisotropic voxels" in res.output and "--voxel-size" in res.output
    assert "warning: calibrate: the fitted gamma" in res.output and "upper end" in res.output
    assert "gamma on search bound" in res.output
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["voxel_size"] is None and saved["calibration"]["gamma_at_bound"] is True
