"""Tests of the physics-output networks (spec §4): HR solution targets, augmentation, inference."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage

from _helpers import BlobModel
from twinsr.exceptions import ConfigError, DatasetError, NonPercolatingWarning, VolumeError
from twinsr.sr.bundle import SRModel, load_model, save_bundle
from twinsr.sr.config import TrainConfig
from twinsr.sr.database import Database, build_database
from twinsr.sr.infer import superresolve
from twinsr.sr.network import SRResNet3d
from twinsr.sr.physics import (
    SolutionCropSampler,
    axis_symmetries,
    combined_loss,
    floating_mask,
    solution_error,
    transform_solution,
)
from twinsr.sr.symmetry import apply_symmetry, cube_symmetries
from twinsr.sr.train import train
from twinsr.transport import diffusion_channels, effective_tortuosity

torch.set_num_threads(2)


def _blobs(shape: tuple[int, ...], seed: int, sigma: float = 1.2) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal(shape)
    return (ndimage.gaussian_filter(g, sigma) > 0).astype(np.uint8)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        return build_database([BlobModel()], tmp_path_factory.mktemp("pdb"), n_realizations=3,
                              shape=24, alphas=(2,), split=(1, 1, 1), diffusion=True,
                              hr_diffusion=True, axis=1)


def _cfg(**kw: Any) -> TrainConfig:
    base = {"channels": 4, "blocks": 1, "crop": 6, "batch_size": 2, "epochs": 2,
            "steps_per_epoch": 4, "lr": 1e-2, "patience": 5, "val_crops": 2, "seed": 1,
            "tile": 8, "targets": "morph+diffu", "solution_weight": 5.0}
    base.update(kw)
    return TrainConfig(**base)


def test_out_channels_shapes_and_bounds() -> None:
    net = SRResNet3d(1, 2, channels=4, blocks=1, out_channels=3)
    with torch.no_grad():
        y = net(torch.randn(2, 1, 4, 5, 6) * 3)
    assert y.shape == (2, 3, 8, 10, 12)
    assert float(y[:, 1:].min()) >= 0 and float(y[:, 1:].max()) <= 1
    p = net.predict(torch.randn(1, 1, 3, 3, 3))
    assert p.shape == (1, 3, 6, 6, 6) and float(p.min()) >= 0 and float(p.max()) <= 1
    assert net.arch_kwargs()["out_channels"] == 3
    assert "out_channels" not in SRResNet3d(1, 2, channels=4, blocks=1).arch_kwargs()
    with pytest.raises(ConfigError, match="out_channels"):
        SRResNet3d(1, 2, channels=4, blocks=1, out_channels=2)


def test_default_network_unchanged() -> None:
    torch.manual_seed(0)
    a = SRResNet3d(1, 2, channels=4, blocks=1)
    torch.manual_seed(0)
    b = SRResNet3d(1, 2, channels=4, blocks=1, out_channels=1)
    x = torch.randn(1, 1, 4, 4, 4)
    assert torch.equal(a(x), b(x)) and a(x).shape == (1, 1, 8, 8, 8)


def test_axis_symmetries() -> None:
    for ax in range(3):
        syms = axis_symmetries(ax)
        assert len(syms) == 16 and len(set(syms)) == 16
        assert all(s.perm[ax] == ax for s in syms) and set(syms) <= set(cube_symmetries())
    moving = next(s for s in cube_symmetries() if s.perm[0] != 0)
    im = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(VolumeError, match="moves the transport axis"):
        transform_solution(np.zeros((2, 4, 4, 4), np.float32), im, moving, axis=0,
                           floating=np.zeros((4, 4, 4), bool))


def test_floating_mask() -> None:
    im = np.zeros((6, 5, 5), np.uint8)
    im[2:4, 2, 2] = 1            # floating solid cluster
    im[0, 2, 0] = 1              # solid touching the inlet only: not floating
    flo = floating_mask(im, axis=0)
    assert flo.sum() == 2 and flo[2, 2, 2] and flo[3, 2, 2] and not flo[0, 2, 0]
    assert floating_mask(im, axis=1).sum() == 3   # along y the inlet-touching voxel floats too


@pytest.mark.parametrize("axis", [0, 2])
def test_augmented_solution_solves_augmented_image(axis: int) -> None:
    """Key invariant: for every allowed symmetry, the transformed HR solution is the solve of the
    transformed HR image, and the strided LR pair stays aligned (α = 2)."""
    hr = _blobs((16, 16, 16), 3)
    tol = 1e-9
    sol = diffusion_channels(hr, axis=axis, tol=tol, device="cpu")
    flo = floating_mask(hr, axis=axis)
    assert flo.any()  # the test exercises floating clusters
    n_rev = 0
    for sym in axis_symmetries(axis):
        im_t = np.ascontiguousarray(apply_symmetry(hr, sym))
        ref = diffusion_channels(im_t, axis=axis, tol=tol, device="cpu")
        got = transform_solution(sol, hr, sym, axis=axis, floating=flo)
        np.testing.assert_allclose(got, ref, atol=1e-5)
        n_rev += bool(sym.flips[axis])
    assert n_rev == 8
    # without the u -> 1 - u mapping a reversing symmetry would be wrong
    rev = next(s for s in axis_symmetries(axis) if s.flips[axis])
    naive = apply_symmetry(sol, rev)
    ref = diffusion_channels(np.ascontiguousarray(apply_symmetry(hr, rev)), axis=axis, tol=tol)
    assert np.abs(naive - ref).max() > 0.1


def test_sampler_pairs_are_consistent() -> None:
    """Sampled crops (bin and diffu inputs) equal the crops of the solves on augmented volumes."""
    a, axis = 2, 1
    hr = _blobs((16, 16, 16), 5)
    lr = np.ascontiguousarray(hr[::a, ::a, ::a])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        sol = diffusion_channels(hr, axis=axis, tol=1e-9)
        lsol = diffusion_channels(lr, axis=axis, tol=1e-9)
    flo = floating_mask(hr, axis=axis).view(np.uint8)
    sampler = SolutionCropSampler([((lr, lsol[0], lsol[1]), hr)], alpha=a, crop=4, rng=0,
                                  solutions=[(sol, flo)], axis=axis)
    for sym in axis_symmetries(axis):
        x, h, hs = sampler.draw_with_solution(sym)
        assert x.shape == (3, 4, 4, 4) and hs.shape == (2, 8, 8, 8)
        np.testing.assert_array_equal(x[0], h[::a, ::a, ::a])
        for c in (0, 1):
            assert np.all(hs[c][h != c] == 0)
            assert np.all(x[1 + c][x[0] != c] == 0)
    # the whole-volume version of a reversing draw matches the solve exactly
    rev = next(s for s in axis_symmetries(axis) if s.flips[axis])
    big = SolutionCropSampler([((lr, lsol[0], lsol[1]), hr)], alpha=a, crop=7, rng=0,
                              solutions=[(sol, flo)], axis=axis)
    x, h, hs = big.draw_with_solution(rev)
    hr_t = np.ascontiguousarray(apply_symmetry(hr, rev))
    ref = diffusion_channels(hr_t, axis=axis, tol=1e-9)
    lref = diffusion_channels(np.ascontiguousarray(apply_symmetry(lr, rev)), axis=axis, tol=1e-9)
    # locate the crop inside the transformed volume by its binary content
    hits = [(i, j, k) for i in range(3) for j in range(3) for k in range(3)
            if np.array_equal(hr_t[i:i + 14, j:j + 14, k:k + 14], h)]
    assert hits
    i, j, k = hits[0]
    np.testing.assert_allclose(hs, ref[:, i:i + 14, j:j + 14, k:k + 14], atol=1e-5)
    lr_t = np.ascontiguousarray(apply_symmetry(lr, rev))
    lhits = [(i, j, k) for i in range(2) for j in range(2) for k in range(2)
             if np.array_equal(lr_t[i:i + 7, j:j + 7, k:k + 7], x[0])]
    assert lhits
    li, lj, lk = lhits[0]
    np.testing.assert_allclose(x[1:], lref[:, li:li + 7, lj:lj + 7, lk:lk + 7], atol=1e-5)
    batch_lr, batch_hr = sampler.sample(3)
    assert batch_lr.shape == (3, 3, 4, 4, 4) and batch_hr.shape == (3, 3, 8, 8, 8)


def test_combined_loss_masks_to_true_phase() -> None:
    t = torch.zeros(1, 3, 2, 2, 2)
    t[0, 0, 0] = 1.0                                 # first half solid
    t[0, 2, 0] = 0.3                                 # solid solution on the solid
    t[0, 1, 1] = 0.7                                 # pore solution on the pore
    out = torch.zeros(1, 3, 2, 2, 2)
    out[0, 0] = torch.where(t[0, 0] > 0, 50.0, -50.0)
    out[0, 1], out[0, 2] = t[0, 1], t[0, 2]
    out[0, 1, 0] = 0.9                               # wrong pore value inside solid: ignored
    assert float(combined_loss(out, t, solution_weight=3.0)) < 1e-6
    out[0, 2, 0] += 0.5                              # error 0.5 on the 4 solid voxels of 8
    assert float(combined_loss(out, t, solution_weight=2.0)) == pytest.approx(2 * 0.125, rel=1e-4)
    with pytest.raises(ConfigError, match="out_channels=3"):
        combined_loss(torch.zeros(1, 1, 2, 2, 2), t)


def test_database_stores_hr_diffusion(db: Database) -> None:
    assert db.hr_diffusion and db.axis == 1
    name = db.entries("train")[0]
    hr = np.asarray(db.hr(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        ref = diffusion_channels(hr, axis=1)
    np.testing.assert_allclose(db.hr_solution(name), ref, atol=1e-6)
    np.testing.assert_array_equal(db.hr_floating(name), floating_mask(hr, axis=1))
    pairs = db.pairs("train", 2, inputs="diffu", targets="morph+diffu")
    assert pairs[0].hr_solution is not None and pairs[0].hr_solution.shape == (2, 24, 24, 24)
    # resuming with the same settings keeps the entries
    again = build_database([BlobModel()], db.path, n_realizations=3, shape=24, alphas=(2,),
                           split=(1, 1, 1), diffusion=True, hr_diffusion=True, axis=1)
    assert again.hr_diffusion


def test_database_without_hr_diffusion_refused(tmp_path: Path) -> None:
    plain = build_database([BlobModel()], tmp_path / "db", n_realizations=2, shape=16,
                           alphas=(2,), split=(1, 1, 0), diffusion=False)
    assert not plain.hr_diffusion and "hr_diffusion" not in plain.settings
    assert not (plain.path / plain.entries("train")[0] / "hr_diffu.npy").exists()
    with pytest.raises(DatasetError, match="hr_diffusion=True"):
        plain.pairs("train", 2, targets="morph+diffu")
    with pytest.raises(DatasetError, match="no HR diffusion channels"):
        train(plain, alpha=2, out_dir=tmp_path / "run", device="cpu", config=_cfg())


def test_config_defaults() -> None:
    cfg = TrainConfig()
    assert cfg.targets == "morph" and cfg.solution_weight == 1.0
    with pytest.raises(ConfigError, match="targets"):
        TrainConfig.from_dict({"targets": "diffu"})


@pytest.mark.parametrize("inputs", ["bin", "diffu"])
def test_training_lowers_combined_loss(db: Database, tmp_path: Path, inputs: str) -> None:
    res = train(db, alpha=2, inputs=inputs, out_dir=tmp_path / "run", device="cpu",
                config=_cfg(epochs=4, steps_per_epoch=5))
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.9 * losses[0]
    m = load_model(tmp_path / "run")
    assert m.out_channels == 3 and m.metadata["targets"] == "morph+diffu"
    assert m.targets == "morph+diffu" and m.transport_axis == 1 == db.axis  # even for "bin"
    name = db.entries("test")[0]
    lr = np.asarray(db.lr(name, 2))
    binary, sol = superresolve(lr, m, tile=8, device="cpu", return_solution=True)
    b1, s1 = superresolve(lr, m, tile=8, device="cpu", axis=1, return_solution=True)
    np.testing.assert_array_equal(binary, b1)
    np.testing.assert_array_equal(sol, s1)
    assert binary.shape == (24, 24, 24) and sol.shape == (2, 24, 24, 24)
    assert sol.dtype == np.float32 and sol.min() >= 0 and sol.max() <= 1
    assert sol.std() > 0   # raw predictions, not masked by the predicted phase


def test_bundle_round_trip_out_channels(tmp_path: Path) -> None:
    net = SRResNet3d(1, 2, channels=4, blocks=1, out_channels=3)
    p = save_bundle(tmp_path / "m.pt", net, alpha=2, inputs="bin", threshold=0.4,
                    transport_axis=1)
    m = load_model(p)
    assert m.out_channels == 3 and m.targets == "morph+diffu" and m.transport_axis == 1
    assert m.network.out_channels == 3
    x = torch.randn(1, 1, 3, 4, 5)
    assert torch.equal(m.network(x), net.eval()(x))
    old = SRResNet3d(1, 2, channels=4, blocks=1)
    payload_path = save_bundle(tmp_path / "old.pt", old, alpha=2, inputs="bin", threshold=0.5)
    payload = torch.load(payload_path, weights_only=True)
    assert "out_channels" not in payload["arch"]          # old bundles look exactly like this
    assert load_model(payload_path).out_channels == 1


def test_tiled_equals_untiled_solution() -> None:
    torch.manual_seed(2)
    net = SRResNet3d(1, 2, channels=4, blocks=1, out_channels=3)
    m = SRModel(net.eval(), alpha=2, inputs="bin", threshold=0.5, transport_axis=0)
    lr = _blobs((9, 10, 11), 7)
    b_full, s_full = superresolve(lr, m, tile=64, device="cpu", return_solution=True)
    b_tile, s_tile = superresolve(lr, m, tile=4, device="cpu", return_solution=True)
    p_tile = superresolve(lr, m, tile=4, device="cpu", probabilities=True)
    np.testing.assert_array_equal(b_full, b_tile)
    np.testing.assert_allclose(s_full, s_tile, atol=1e-5)
    assert p_tile.shape == b_full.shape
    with pytest.raises(VolumeError, match="out_channels=3"):
        superresolve(lr, SRModel(SRResNet3d(1, 2, channels=4, blocks=1), alpha=2, inputs="bin",
                                 threshold=0.5), device="cpu", return_solution=True)


def test_solution_error() -> None:
    hr = _blobs((16, 12, 12), 11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        true = diffusion_channels(hr, axis=0, tol=1e-9)
        e = solution_error(true, hr, axis=0, true_solution=true)
        assert e.rmse == (0.0, 0.0)
        for ph in (0, 1):
            tau = effective_tortuosity(hr, phase=ph, axis=0, tol=1e-9).tau
            assert e.tau_true[ph] == pytest.approx(tau, rel=1e-4)
            assert e.tau_pred[ph] == pytest.approx(tau, rel=1e-4)
        bad = true.copy()
        bad[0][hr == 0] += 0.1
        e2 = solution_error(bad, hr, axis=0, true_solution=true)
    assert e2.rmse[0] == pytest.approx(0.1, rel=1e-3) and e2.rmse[1] == 0.0
    with pytest.raises(VolumeError, match="shape"):
        solution_error(true[:1], hr)


def test_cli_end_to_end(tmp_path: Path) -> None:
    """`twinsr database --hr-diffusion`, `train --targets morph+diffu`, `superresolve
    --solution-out` on a tiny problem."""
    import json

    from typer.testing import CliRunner

    from twinsr.cli import app
    from twinsr.io import read_volume
    from twinsr.stochastic import ChiSquareModel

    params = tmp_path / "m.json"
    ChiSquareModel(nu=1.4, gamma=0.3).to_json(params)
    runner = CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        res = runner.invoke(app, ["database", str(params), "-o", str(tmp_path / "db"), "--n", "2",
                                  "--shape", "16", "--alphas", "2", "--split", "1,1,0",
                                  "--hr-diffusion", "--no-diffusion", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("channels: 4\nblocks: 1\ncrop_per_alpha: {2: 6}\nbatch_per_alpha: {2: 2}\nepochs: 1\n"
                   "steps_per_epoch: 2\nval_crops: 1\ntile: 8\n")
    res = runner.invoke(app, ["train", str(tmp_path / "db"), "--alpha", "2", "-o",
                              str(tmp_path / "run"), "--config", str(cfg), "--targets",
                              "morph+diffu", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["targets"] == "morph+diffu"
    lr = tmp_path / "lr.npy"
    np.save(lr, _blobs((6, 7, 8), 1))
    res = runner.invoke(app, ["superresolve", str(lr), "--model", str(tmp_path / "run"), "-o",
                              str(tmp_path / "hr.npy"), "--solution-out",
                              str(tmp_path / "sol.npy"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    sol = read_volume(tmp_path / "sol.npy")
    assert sol.shape == (2, 12, 14, 16) and sol.dtype == np.float32
    assert read_volume(tmp_path / "hr.npy").shape == (12, 14, 16)
