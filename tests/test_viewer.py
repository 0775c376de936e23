"""The napari viewer and plugin (twinsr.viewer): layers, colours and scales a user sees.

The layer choices are plain functions and tested without napari; the napari parts (manifest,
reader/writer through npe2, layers in a real ViewerModel, the widget) run headless
(QT_QPA_PLATFORM=offscreen) and are skipped where napari is not installed (`make test-viewer`
or `pip install ".[viewer]"`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twinsr.exceptions import ConfigError, VolumeError
from twinsr.io import read_volume, write_volume
from twinsr.study.plots import ERROR_COLOURS
from twinsr.viewer import (
    comparison_layers,
    error_colormap,
    error_labels,
    get_reader,
    napari_available,
    read_layers,
    volume_layers,
    write_image,
    write_labels,
)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# napari's plugin engine and app model still use pydantic-1 style fields and encoders
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:npe2"),
              pytest.mark.filterwarnings("ignore:`json_encoders` is deprecated:DeprecationWarning")]
needs_napari = pytest.mark.skipif(not napari_available(), reason="napari is not installed "
                                  '(pip install ".[viewer]")')
MANIFEST = Path(__file__).parents[1] / "src" / "twinsr" / "viewer" / "napari.yaml"


def _triple(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lr = (rng.random((8, 8, 8)) < 0.5).astype(np.uint8)
    sr = lr.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    return lr, sr, sr.copy()  # hr: a perfect prediction unless a test changes sr


def _by_name(layers: list) -> dict:
    return {kw["name"]: (data, kw, kind) for data, kw, kind in layers}


def test_error_overlay_paper_colours() -> None:
    sr = np.array([[1, 0], [1, 0]])
    hr = np.array([[0, 1], [1, 0]])
    assert error_labels(sr, hr).tolist() == [[1, 2], [0, 0]]
    cm = error_colormap()
    assert cm[1][:3] == ERROR_COLOURS["wrong_solid"] == (1.0, 0.0, 1.0)  # magenta
    assert cm[2][:3] == ERROR_COLOURS["wrong_pore"] == (0.0, 0.35, 1.0)  # blue
    assert cm[0][3] == 0 and cm[None][3] == 0  # correct voxels are transparent
    with pytest.raises(VolumeError, match="same shape"):
        error_labels(np.zeros((2, 2)), np.zeros((2, 3)))


def test_volume_layers_by_content() -> None:
    binary = np.zeros((4, 4, 4), np.uint8)
    binary[:2] = 1
    (_, kw, kind), = volume_layers(binary, name="b", metadata={"voxel_size": (0.4, 0.4, 0.4)})
    assert (kind, kw["colormap"], kw["contrast_limits"], kw["scale"], kw["units"]) == (
        "image", "gray", (0.0, 1.0), (0.4, 0.4, 0.4), ("um",) * 3)
    labels = np.random.default_rng(0).integers(0, 3, (4, 4, 4)).astype(np.uint8)
    (_, kw, kind), = volume_layers(labels, name="l", metadata={"label_names": ("pore", "NMC",
                                                                               "binder")})
    assert kind == "labels" and kw["features"]["name"] == ["pore", "NMC", "binder"]
    assert kw["scale"] == (1.0, 1.0, 1.0) and "units" not in kw  # no voxel size stated
    diffu = np.random.default_rng(0).random((2, 4, 4, 4)).astype(np.float32)
    pore, solid = volume_layers(diffu, name="d", metadata={"channels": ["pore", "solid"]})
    assert [pore[1]["name"], solid[1]["name"]] == ["d pore", "d solid"]
    assert [pore[1]["colormap"], solid[1]["colormap"]] == ["cyan", "yellow"]
    assert np.array_equal(solid[0], diffu[1])
    content = {"tta": 8, "content": "std of the solid probability across the transforms"}
    (_, kw, _), = volume_layers(diffu[0] * 0.3, name="u.tif", metadata=content)
    assert kw["colormap"] == "inferno"  # as `superresolve --uncertainty-out` writes it
    (_, kw, _), = volume_layers(diffu[0] * 0.3, name="sr.tif", metadata={"tta": 8})
    assert kw["colormap"] == "gray" and kw["contrast_limits"] == (0.0, 1.0)  # probabilities
    with pytest.raises(VolumeError, match="3-D"):
        volume_layers(np.zeros((4, 4)), name="x")


def test_comparison_scales_and_order(rng: np.random.Generator) -> None:
    lr, sr, hr = _triple(rng)
    sr[0, 0, 0] = 1 - hr[0, 0, 0]
    unc = np.zeros(sr.shape, np.float32)
    diffu = np.zeros((2, *lr.shape), np.float32)
    layers = comparison_layers(lr=lr, sr=sr, hr=hr[:17, :16, :17], uncertainty=unc,
                               diffusion=diffu, voxel_size=(0.5, 0.25, 0.25))
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["HR HR", "LR LR", "SR SR", "diffusion 0", "diffusion 1", "uncertainty",
                     "errors"]
    by = _by_name(layers)
    assert by["SR SR"][1]["scale"] == by["HR HR"][1]["scale"] == (0.5, 0.25, 0.25)
    assert by["LR LR"][1]["scale"] == (1.0, 0.5, 0.5) == by["diffusion 0"][1]["scale"]
    assert by["HR HR"][0].shape == sr.shape  # uncropped HR cut to the SR grid
    err = by["errors"][0]
    assert by["errors"][2] == "labels" and err[0, 0, 0] in (1, 2) and np.count_nonzero(err) == 1
    assert by["SR SR"][1].get("visible", True) and not by["LR LR"][1]["visible"]


def test_comparison_bad_shapes(rng: np.random.Generator) -> None:
    lr, sr, hr = _triple(rng)
    with pytest.raises(VolumeError, match="scale factor"):
        comparison_layers(lr=lr[:, :, :5], sr=sr)  # 16 / 5 is no alpha
    with pytest.raises(VolumeError, match="does not match the SR volume"):
        comparison_layers(lr=lr, sr=sr, hr=hr[:8])
    with pytest.raises(VolumeError, match="LR grid"):
        comparison_layers(lr=lr, sr=sr, diffusion=np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(VolumeError, match="SR shape"):
        comparison_layers(lr=lr, sr=sr, uncertainty=np.zeros((8, 8, 8), np.float32))


def test_reader_contract_and_round_trip(tmp_path: Path) -> None:
    im = np.zeros((6, 8, 8), np.uint8)
    im[:, :4] = 1
    for suffix in (".tif", ".npy", ".npz", ".raw", ".zarr", ".h5"):
        p = write_volume(tmp_path / f"v{suffix}", im, voxel_size=(0.4, 0.2, 0.2))
        reader = get_reader(str(p))
        assert reader is not None, suffix
        (data, kw, kind), = reader(str(p))
        assert kind == "image" and np.array_equal(data, im) and kw["scale"] == (0.4, 0.2, 0.2)
        # napari's writer contract: write the layer back, read it again
        out = write_image(str(tmp_path / f"back{suffix}"), data, kw)
        back, meta = read_volume(out[0], return_metadata=True)
        assert np.array_equal(back, im) and meta["voxel_size"] == (0.4, 0.2, 0.2)
    (tmp_path / "notes.txt").write_text("not a volume")
    assert get_reader(str(tmp_path / "notes.txt")) is None  # napari asks its other readers
    assert get_reader(str(tmp_path / "shot.png")) is None
    assert get_reader([str(tmp_path / "v.tif"), str(tmp_path / "notes.txt")]) is None
    labels = np.arange(27, dtype=np.uint8).reshape(3, 3, 3) % 3
    p = write_volume(tmp_path / "lab.tif", labels, label_names=["pore", "NMC", "binder"])
    (data, kw, kind), = read_layers(p)
    assert kind == "labels"
    out = write_labels(str(tmp_path / "lab_back.h5"), data, {**kw, "metadata": {
        **kw["metadata"], "label_names": ("pore", "NMC", "binder")}})
    back, meta = read_volume(out[0], return_metadata=True)
    assert np.array_equal(back, labels) and meta["label_names"] == ("pore", "NMC", "binder")


def test_view_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinsr.cli import app
    from twinsr.viewer import open_viewer

    with pytest.raises(ConfigError, match="nothing to show"):
        open_viewer([])
    with pytest.raises(ConfigError, match="--lr and --sr"):
        open_viewer([], hr="x.tif")
    with pytest.raises(ConfigError, match="both --lr and --sr"):
        open_viewer([], lr="x.tif")
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    r = CliRunner().invoke(app, ["view", str(tmp_path / "a.png")])
    assert r.exit_code == 1 and "unsupported volume format '.png'" in r.output
    p = write_volume(tmp_path / "v.npy", np.zeros((4, 4, 4), np.uint8))
    monkeypatch.setitem(sys.modules, "napari", None)
    r = CliRunner().invoke(app, ["view", str(p)])
    assert r.exit_code == 1 and 'pip install "twinsr[viewer]"' in r.output


def test_study_outputs_in_viewer_model(tmp_path: Path) -> None:
    """What `twinsr superresolve` / `diffusion` write opens with the right scales and colours."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from twinsr.cli import app
    from twinsr.resample import downsample
    from twinsr.viewer import add_layers

    hr = read_volume("builtin:nmc_nrel_xct")[100:124, 100:124, 100:124]
    hr_p = write_volume(tmp_path / "hr.tif", hr, voxel_size=(0.4, 0.4, 0.4))
    lr_p = write_volume(tmp_path / "lr.tif", downsample(hr, 2), voxel_size=(0.8, 0.8, 0.8))
    run = CliRunner().invoke
    r = run(app, ["superresolve", str(lr_p), "--model", "builtin:nmc_bin_a2", "-o",
                  str(tmp_path / "sr.tif"), "--tta", "8", "--uncertainty-out",
                  str(tmp_path / "u.tif"), "--precision", "fp32"])
    assert r.exit_code == 0, r.output
    r = run(app, ["diffusion", str(lr_p), "-o", str(tmp_path / "d.tif")])
    assert r.exit_code == 0, r.output
    viewer = ViewerModel()
    layers = add_layers(viewer, comparison_layers(
        lr=lr_p, sr=tmp_path / "sr.tif", hr=hr_p, uncertainty=tmp_path / "u.tif",
        diffusion=tmp_path / "d.tif"))
    by = {layer.name: layer for layer in layers}
    assert list(by) == ["HR hr.tif", "LR lr.tif", "SR sr.tif", "diffusion pore",
                        "diffusion solid", "uncertainty", "errors"]
    np.testing.assert_allclose(by["SR sr.tif"].scale, (0.4, 0.4, 0.4))
    np.testing.assert_allclose(by["LR lr.tif"].scale, (0.8, 0.8, 0.8))
    np.testing.assert_allclose(by["diffusion solid"].scale, (0.8, 0.8, 0.8))
    assert str(by["SR sr.tif"].units[0]) == "micrometer"
    # extents coincide: the LR grid covers the SR grid
    np.testing.assert_allclose(by["LR lr.tif"].extent.world, by["SR sr.tif"].extent.world,
                               atol=0.41)
    err = by["errors"]
    assert np.allclose(err.colormap.map(1), (1.0, 0.0, 1.0, 1.0))
    assert np.allclose(err.colormap.map(2), (0.0, 0.35, 1.0, 1.0))
    assert err.colormap.map(0)[3] == 0
    assert by["uncertainty"].colormap.name == "inferno"
    assert by["SR sr.tif"].colormap.name == "gray" and tuple(
        by["SR sr.tif"].contrast_limits) == (0, 1)
    wrong = np.count_nonzero(err.data)
    assert 0 < wrong < 0.2 * err.data.size  # the pretrained network is mostly right


@needs_napari
def test_manifest_and_npe2_reader_writer(tmp_path: Path) -> None:
    from npe2 import PluginManager, PluginManifest

    mf = PluginManifest.from_file(MANIFEST)
    assert mf.name == "twinsr"
    pm = PluginManager()
    pm.register(mf)
    p = write_volume(tmp_path / "v.h5", np.ones((4, 4, 4), np.uint8), voxel_size=0.5)
    readers = [r.plugin_name for r in pm.iter_compatible_readers([str(p)])]
    assert "twinsr" in readers
    assert not [r for r in pm.iter_compatible_readers([str(tmp_path / "x.png")])
                if r.plugin_name == "twinsr"]
    writers = {w.command for w in pm.iter_compatible_writers(["image"])}
    assert "twinsr.write_image" in writers
    for cmd in ("twinsr.get_reader", "twinsr.write_image", "twinsr.write_labels",
                "twinsr.comparison_widget"):
        assert pm.get_command(cmd).exec is not None  # python_name resolves
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '[project.entry-points."napari.manifest"]' in text
    assert 'twinsr = "twinsr.viewer:napari.yaml"' in text


@needs_napari
def test_widget_adds_comparison_offscreen(tmp_path: Path, rng: np.random.Generator) -> None:
    from napari.components import ViewerModel

    from twinsr.viewer.plugin import ComparisonWidget

    lr, sr, hr = _triple(rng)
    sr[3, 3, 3] = 1 - hr[3, 3, 3]
    paths = {k: write_volume(tmp_path / f"{k}.npy", v, voxel_size=vs) for k, v, vs in
             (("lr", lr, 1.0), ("sr", sr, 0.5), ("hr", hr, 0.5))}
    viewer = ViewerModel()
    w = ComparisonWidget(viewer)
    for k, p in paths.items():
        w.fields[k].value = str(p)
    w.show_comparison()
    assert [layer.name for layer in viewer.layers] == ["HR hr.npy", "LR lr.npy", "SR sr.npy",
                                                        "errors"]
    assert viewer.layers["errors"].data[3, 3, 3] in (1, 2)
    np.testing.assert_allclose(viewer.layers["LR lr.npy"].scale, (1.0, 1.0, 1.0))
    w.close()
