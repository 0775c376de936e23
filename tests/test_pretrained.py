"""Pretrained bundles shipped in the package (twinsr.sr.cards, twinsr.sr.pretrained)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from twinsr.exceptions import BundleError
from twinsr.sr import load_model
from twinsr.sr.cards import ModelCard, file_sha256, load_card, models_dir, pretrained_names, pretrained_path
from twinsr.sr.pretrained import check_reference_pair, pretrained_models

NAMES = [f"nmc_{i}_a{a}" for i in ("bin", "diffu") for a in (2, 4, 8)]


def test_six_models_shipped_and_small():
    assert pretrained_names() == sorted(NAMES)
    total = sum(p.stat().st_size for p in models_dir().iterdir())
    assert total < 5e6  # package data stays a few MB


@pytest.mark.parametrize("name", NAMES)
def test_bundle_loads_matches_hash_and_reproduces_test_pair(name):
    card = load_card(name)
    path = pretrained_path(name)
    assert file_sha256(path) == card.weights.sha256
    assert path.stat().st_size == card.weights.size_bytes
    m = load_model(f"builtin:{name}")
    assert (m.alpha, m.inputs, m.transport_axis) == (card.alpha, card.inputs, card.transport_axis)
    assert m.threshold == pytest.approx(card.threshold)
    assert check_reference_pair(name) <= card.test.max_mismatch


@pytest.mark.parametrize("name", NAMES)
def test_card_schema_and_metrics(name):
    data = yaml.safe_load((models_dir() / f"{name}.yaml").read_text())
    card = ModelCard.model_validate(data)
    assert set(card.metrics) == {"held_out_twins", "measured"}
    assert card.training_data.source_volume == "builtin:nmc_nrel_xct"
    assert card.license and card.limitations and card.intended_use
    bad = dict(data, unexpected_key=1)
    with pytest.raises(ValueError):
        ModelCard.model_validate(bad)


def test_tampered_hash_refused(tmp_path):
    root = shutil.copytree(models_dir(), tmp_path / "models")
    card = root / "nmc_bin_a2.yaml"
    data = yaml.safe_load(card.read_text())
    data["weights"]["sha256"] = "0" * 64
    card.write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="do not match its card"):
        pretrained_path("nmc_bin_a2", root=root)
    # tampered weights, card intact
    root2 = shutil.copytree(models_dir(), tmp_path / "models2")
    w = root2 / "nmc_bin_a4.pt"
    w.write_bytes(w.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BundleError, match="SHA-256"):
        pretrained_path("nmc_bin_a4", root=root2)


def test_invalid_card_refused(tmp_path):
    root = shutil.copytree(models_dir(), tmp_path / "models")
    card = root / "nmc_bin_a2.yaml"
    data = yaml.safe_load(card.read_text())
    data["alpha"] = 3
    card.write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="invalid"):
        load_card("nmc_bin_a2", root=root)


def test_unknown_name_lists_names():
    with pytest.raises(BundleError, match=r"nmc_bin_a2.*nmc_diffu_a8"):
        load_model("builtin:no_such_model")


def test_listing_rows():
    rows = pretrained_models()
    assert [r["name"] for r in rows] == sorted(NAMES)
    assert all(r["size_bytes"] > 0 and "triq" in r["summary"] for r in rows)


def test_cli_superresolve_builtin_model_on_crop(tmp_path):
    from twinsr.cli import app
    from twinsr.io import read_volume, write_volume

    crop = read_volume("builtin:nmc_superres_xct")[:24, :24, :24]
    src = write_volume(tmp_path / "lr.npy", crop)
    out = tmp_path / "out.tif"
    res = CliRunner().invoke(app, ["superresolve", str(src), "--model", "builtin:nmc_diffu_a2",
                                   "-o", str(out), "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    hr = read_volume(out)
    assert hr.shape == (48, 48, 48)
    assert set(np.unique(hr)) <= {0, 1}
    # solid fraction of the SR output follows the input's
    assert abs(hr.mean() - crop.mean()) < 0.1


def test_cli_unknown_model_and_listing():
    from twinsr.cli import app

    r = CliRunner().invoke(app, ["superresolve", "builtin:nmc_superres_xct", "--model",
                                 "builtin:nope", "-o", "x.tif"])
    assert r.exit_code == 1 and "available: nmc_bin_a2" in r.output
    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0 and "nmc_diffu_a8" in r.output
    r = CliRunner().invoke(app, ["models", "nmc_bin_a8"])
    assert r.exit_code == 0 and "sha256" in r.output


@pytest.mark.slow
def test_cli_superresolve_whole_builtin_volume(tmp_path):
    from twinsr.cli import app

    out = tmp_path / "out.tif"
    res = CliRunner().invoke(app, ["superresolve", "builtin:nmc_superres_xct", "--model",
                                   "builtin:nmc_bin_a2", "-o", str(out)])
    assert res.exit_code == 0, res.output


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_card_measured_metrics_reproduced(name):
    from twinsr import datasets
    from twinsr.sr.pretrained import evaluate

    card = load_card(name)
    im = datasets.load("nmc_nrel_xct")
    e = card.metrics["measured"].hr_shape[0]
    sl = tuple(slice((s - e) // 2, (s - e) // 2 + e) for s in im.shape)
    ev = evaluate(load_model(f"builtin:{name}"), [im[sl]], data="check")
    want = card.metrics["measured"]
    assert ev.sr.accuracy == pytest.approx(want.sr.accuracy, abs=1e-3)
    assert ev.sr.surface_accuracy == pytest.approx(want.sr.surface_accuracy, abs=3e-3)
    assert ev.triquadratic.accuracy == pytest.approx(want.triquadratic.accuracy, abs=1e-9)


def test_builtin_model_refuses_inputs_that_do_not_fit(tmp_path):
    from twinsr.cli import app
    from twinsr.exceptions import ConfigError, VolumeError
    from twinsr.io import write_volume
    from twinsr.sr import superresolve

    lr = (np.random.default_rng(0).random((8, 8, 8)) < 0.5).astype(np.uint8)
    with pytest.raises(BundleError, match="alpha=2, not alpha=4"):
        load_model("builtin:nmc_bin_a2", alpha=4)
    with pytest.raises(BundleError, match="expects inputs='bin', not 'diffu'"):
        load_model("builtin:nmc_bin_a2", inputs="diffu")
    with pytest.raises(VolumeError, match=r"3 channels .* the model takes 1"):
        superresolve(np.stack([lr, lr, lr]).astype(np.float32), "builtin:nmc_bin_a2")
    with pytest.raises(VolumeError, match=r"2 channels .* the model takes 3"):
        superresolve(np.stack([lr, lr]).astype(np.float32), "builtin:nmc_diffu_a4")
    with pytest.raises(ConfigError, match=r"solved along axis 0 .* axis=1 was requested"):
        superresolve(lr, "builtin:nmc_diffu_a2", axis=1)
    with pytest.raises(VolumeError, match="must be binary"):
        superresolve(lr * 0.5 + 0.2, "builtin:nmc_bin_a8")
    src = write_volume(tmp_path / "lr.npy", lr)
    r = CliRunner().invoke(app, ["superresolve", str(src), "--model", "builtin:nmc_diffu_a2",
                                 "--axis", "2", "-o", str(tmp_path / "o.tif")])
    assert r.exit_code == 1 and "solved along axis 0" in r.output
    assert not (tmp_path / "o.tif").exists()
