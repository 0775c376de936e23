"""Tests of the transport-aware objectives (twinsr.sr.objectives) and the flux weights (sr.data)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage

from _helpers import BlobModel
from twinsr.exceptions import ConfigError, DatasetError, NonPercolatingWarning
from twinsr.sr.config import TrainConfig
from twinsr.sr.data import CropSampler, flux_magnitude
from twinsr.sr.database import Database, build_database
from twinsr.sr.objectives import (
    Objective,
    bce_per_crop,
    connectivity_loss,
    flux_bce,
    flux_weights,
    make_objective,
    soft_cldice,
    soft_dilate,
    soft_erode,
    soft_skeleton,
    volume_fraction_loss,
)
from twinsr.sr.symmetry import apply_symmetry, cube_symmetries
from twinsr.sr.targets import objective_terms, target_kind
from twinsr.sr.train import train
from twinsr.transport import diffusion_channels

torch.set_num_threads(2)


def _neck_image() -> np.ndarray:
    """A pore channel (0) along axis 0 through solid (1): 6x6 wide, a 2x2 neck in z = 10..13, a
    dead-end pore pocket off the wide part and a floating pore cluster in the solid."""
    im = np.ones((24, 14, 14), np.uint8)
    im[:, 3:9, 3:9] = 0
    im[10:14, 3:9, 3:9] = 1
    im[10:14, 5:7, 5:7] = 0
    im[3:6, 9:13, 4:7] = 0        # dead end attached to the wide channel at y = 8|9
    im[18:20, 11:13, 11:13] = 0   # floating pore cluster
    return im


@pytest.fixture(scope="module")
def neck() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    im = _neck_image()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        sol = diffusion_channels(im, axis=0, tol=1e-10, device="cpu")
    return im, sol, flux_magnitude(sol, im, axis=0)


def test_flux_magnitude_known_answers() -> None:
    im = np.ones((10, 4, 4), np.uint8)
    im[:, 1:3, 1:3] = 0                      # straight pore channel of length 10 in solid
    sol = diffusion_channels(im, axis=0, tol=1e-12, device="cpu")
    m = flux_magnitude(sol, im, axis=0)
    np.testing.assert_allclose(m, 0.1, rtol=1e-4)   # 1/L everywhere, both phases
    with pytest.raises(Exception, match=r"\(2, \*image.shape\)"):
        flux_magnitude(sol[:1], im)


def test_flux_weights_vanish_where_flat_and_grow_on_the_neck(neck: Any) -> None:
    im, _sol, m = neck
    pore = im == 0
    wide, narrow = m[4, 4, 4], m[12, 5, 5]
    assert narrow > 5 * wide           # same current through 4 instead of 36 voxels: ≈ 9x
    assert narrow == pytest.approx(9 * wide, rel=0.25)
    assert np.all(m[18:20, 11:13, 11:13] == 0)       # floating cluster: u = 0, no flux
    assert m[3:6, 12, 4:7].max() < 0.03 * wide       # at the end of the dead end: almost flat
    flux = torch.from_numpy(m)[None, None]
    solid = torch.from_numpy(im.astype(np.float32))[None, None]
    w1 = flux_weights(flux, solid, mix=1.0)[0, 0].numpy()
    assert np.all(w1[18:20, 11:13, 11:13] == 0) and w1[12, 5, 5] > 5 * w1[4, 4, 4]
    for mix in (0.0, 0.3, 1.0):
        w = flux_weights(flux, solid, mix=mix)[0, 0].numpy()
        assert w[pore].mean() == pytest.approx(1.0, rel=1e-5)      # mean 1 in each phase
        assert w[~pore].mean() == pytest.approx(1.0, rel=1e-5)
        assert w.min() >= 1 - mix - 1e-6
    assert np.all(flux_weights(flux, solid, mix=0.0).numpy() == 1.0)
    # a phase without any flux in the crop keeps weight 1
    w = flux_weights(torch.zeros_like(flux), solid, mix=1.0)
    assert torch.all(w == 1.0)


def test_flux_magnitude_invariant_under_all_48_symmetries() -> None:
    g = np.random.default_rng(0).standard_normal((16, 16, 16))
    hr = (ndimage.gaussian_filter(g, 1.5) > 0).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        sol = diffusion_channels(hr, axis=1, tol=1e-9, device="cpu")
    m = flux_magnitude(sol, hr, axis=1)
    inner = (slice(1, -1),) * 3  # the inlet/outlet faces follow the transport axis, not the image
    for s in cube_symmetries():
        hs = np.ascontiguousarray(apply_symmetry(hr, s))
        ss = np.ascontiguousarray(apply_symmetry(sol, s))
        ref = np.ascontiguousarray(apply_symmetry(m, s))[inner]
        np.testing.assert_allclose(flux_magnitude(ss, hs, axis=1)[inner], ref, atol=1e-6)
        flipped = np.where(np.stack([hs == 0, hs == 1]), 1.0 - ss, 0.0)   # u -> 1 - u
        np.testing.assert_allclose(flux_magnitude(flipped, hs, axis=1)[inner], ref, atol=1e-6)


@pytest.mark.parametrize("alpha", [2, 4])
def test_sampler_flux_channel_is_the_crop_of_the_whole_field(alpha: int) -> None:
    """For every one of the 48 symmetries the flux channel is the same crop and transform as the
    HR target: a sampler on (lr, |∇u| of the whole volume) with the same keys draws it."""
    g = np.random.default_rng(1).standard_normal((8 * alpha,) * 3)
    hr = (ndimage.gaussian_filter(g, 1.2 * alpha) > 0).astype(np.uint8)
    lr = np.ascontiguousarray(hr[::alpha, ::alpha, ::alpha])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        sol = diffusion_channels(hr, axis=2, tol=1e-9, device="cpu")
    whole = flux_magnitude(sol, hr, axis=2)
    s = CropSampler([((lr,), hr)], alpha=alpha, crop=4, flux_solutions=[sol], axis=2)
    ref = CropSampler([((lr,), whole)], alpha=alpha, crop=4)
    ref_hr = CropSampler([((lr,), hr)], alpha=alpha, crop=4)
    seen = set()
    for step in range(40):
        x, t = s.sample_keyed((3, 1, 1, step), range(4))
        _, t_ref = ref.sample_keyed((3, 1, 1, step), range(4))
        _, h_ref = ref_hr.sample_keyed((3, 1, 1, step), range(4))
        assert t.shape == (4, 2, 4 * alpha, 4 * alpha, 4 * alpha)
        np.testing.assert_array_equal(t[:, :1], h_ref)
        np.testing.assert_allclose(t[:, 1:], t_ref, atol=1e-6)
        np.testing.assert_array_equal(x[:, 0], t[:, 0, ::alpha, ::alpha, ::alpha])
        for i in range(4):
            rng = np.random.default_rng([3, 1, 1, step, i])
            seen.add(s.choose_symmetry(rng))
    assert len(seen) > 40  # many of the 48 symmetries were exercised
    with pytest.raises(DatasetError, match="does not match HR shape"):
        CropSampler([((lr,), hr)], alpha=alpha, crop=4, flux_solutions=[sol[:, :-1]])


def test_soft_morphology_and_skeleton() -> None:
    x = torch.rand(2, 1, 7, 8, 9)
    e, d = soft_erode(x), soft_dilate(x)
    assert torch.all(e <= x) and torch.all(d >= x)
    xd = torch.rand(1, 1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_skeleton(t, 2), (xd,))
    # the numba path equals the pooling path (used on GPUs)
    from torch.nn import functional as F

    ref_d = F.max_pool3d(x, 3, 1, 1)
    assert torch.equal(d, ref_d)
    tube = torch.zeros(1, 1, 12, 9, 9)
    tube[..., 2:7, 2:7] = 1
    sk = soft_skeleton(tube, 3)
    assert torch.all(sk <= tube) and sk.sum() > 0
    assert torch.equal(sk[0, 0, :, 4, 4], torch.ones(12))   # the axis of the tube


def _tubes() -> torch.Tensor:
    y = torch.zeros(1, 1, 24, 16, 16)
    y[..., 5:9, 5:9] = 1
    y[..., 5:9, 10:14] = 1
    return y


def test_connectivity_zero_for_perfect_prediction_and_grows_when_cut() -> None:
    y = _tubes()
    assert float(soft_cldice(y, y)) == 0.0 and float(soft_cldice(1 - y, 1 - y)) == 0.0
    logit = 40.0 * (2 * y - 1)            # sigmoid within 4e-18 of the binary image
    assert float(connectivity_loss(logit, y)) < 1e-12

    def loss(pred: torch.Tensor) -> float:
        return float(connectivity_loss(torch.logit(pred.clamp(1e-7, 1 - 1e-7)), y))

    cut1 = y.clone()
    cut1[..., 11:13, 5:9, 5:9] = 0        # one tube cut by 2 slices (32 voxels)
    cut2 = cut1.clone()
    cut2[..., 11:13, 5:9, 10:14] = 0      # both tubes cut
    thin = y.clone()
    thin[..., 4:12, 5:9, 5] = 0           # 32 voxels off a tube's side: no cut
    base = loss(y)
    assert base < 1e-5
    assert loss(cut1) > 100 * max(base, 1e-6) and loss(cut2) > 1.5 * loss(cut1)
    assert loss(thin) < 0.1 * loss(cut1)  # the same voxel count without a cut costs ~nothing
    half = y.clone()
    half[..., 11:13, 5:9, 5:9] = 0.5
    assert base < loss(half) < loss(cut1)
    # differentiable: the gradient pushes the cut voxels back towards solid
    lg = torch.logit(cut1.clamp(0.01, 0.99)).requires_grad_()
    connectivity_loss(lg, y).sum().backward()
    assert float(lg.grad[..., 11:13, 6:8, 6:8].max()) < 0


def test_volume_fraction_and_bce_terms() -> None:
    y = torch.zeros(2, 1, 4, 4, 4)
    y[0, :, :2] = 1                        # crop 0: fraction 0.5, crop 1: 0
    logit = torch.zeros(2, 1, 4, 4, 4)
    vf = volume_fraction_loss(logit, y)
    assert vf.tolist() == [0.0, 0.25]
    right = torch.full((1, 1, 4, 4, 4), math.log(0.3 / 0.7))   # p = 0.3 everywhere
    y3 = torch.zeros(1, 1, 4, 4, 4)
    y3.view(-1)[:int(0.3 * 64 + 0.5)] = 1                      # 19/64 solid
    assert float(volume_fraction_loss(right, y3)) == pytest.approx((0.3 - 19 / 64) ** 2, abs=1e-9)
    assert torch.allclose(bce_per_crop(logit, y), torch.full((2,), math.log(2.0)))
    flux = torch.rand(2, 1, 4, 4, 4)
    assert torch.allclose(flux_bce(logit, y, flux, mix=0.0), bce_per_crop(logit, y))


def test_combined_objective_is_the_weighted_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(3, 1, 10, 10, 10, generator=gen) < 0.4).float()
    flux = torch.rand(3, 1, 10, 10, 10, generator=gen)
    out = torch.randn(3, 1, 10, 10, 10, generator=gen)
    weights = {"bce": 0.5, "flux_bce": 2.0, "connectivity": 0.3, "volume_fraction": 4.0}
    cfg = TrainConfig(objective=weights, flux_mix=0.7, skeleton_iterations=3)
    obj = make_objective(cfg, target_kind("morph"))
    assert obj.flux and obj.target_channels == 2
    target = torch.cat([y, flux], 1)
    parts = obj.terms(out, target)
    assert set(parts) == set(weights)
    expected = (0.5 * bce_per_crop(out, y) + 2.0 * flux_bce(out, y, flux, mix=0.7)
                + 0.3 * connectivity_loss(out, y, iterations=3) + 4.0 * volume_fraction_loss(out, y))
    assert torch.allclose(obj.per_crop(out, target), expected, rtol=1e-6)
    assert float(obj(out, target)) == pytest.approx(float(expected.mean()), rel=1e-6)
    # a batch split in two gives the same loss (per-crop terms: what multi-process training needs)
    halves = (obj(out[:1], target[:1]) + 2 * obj(out[1:], target[1:])) / 3
    assert float(halves) == pytest.approx(float(obj(out, target)), rel=1e-6)
    # zero weights are not evaluated; the flux channel is then not expected
    assert not Objective({"bce": 1.0, "flux_bce": 0.0}).flux
    with pytest.raises(ConfigError, match="2 target channel"):
        obj(out, y)
    with pytest.raises(ConfigError, match="no term with a positive weight"):
        Objective({"bce": 0.0})
    # with the target kind of the solution networks the solution MSE is added
    from twinsr.sr.physics import solution_loss

    out3 = torch.cat([out, torch.rand(3, 2, 10, 10, 10, generator=gen)], 1)
    t3 = torch.cat([y, torch.rand(3, 2, 10, 10, 10, generator=gen)], 1)
    cfg3 = TrainConfig(objective={"volume_fraction": 1.0}, targets="morph+diffu",
                       solution_weight=2.0)
    obj3 = make_objective(cfg3, target_kind("morph+diffu"))
    assert torch.allclose(obj3.per_crop(out3, t3),
                          volume_fraction_loss(out, y) + 2.0 * solution_loss(out3, t3))


def test_objective_config_validation(tmp_path: Path) -> None:
    assert objective_terms() == ("bce", "connectivity", "flux_bce", "volume_fraction")
    assert TrainConfig().objective == {"bce": 1.0}
    assert TrainConfig(objective="connectivity").objective == {"connectivity": 1.0}
    with pytest.raises(ConfigError, match=r"objective: .*unknown objective term 'clDice'; known "
                                          r"terms: 'bce', 'connectivity', 'flux_bce', "
                                          r"'volume_fraction'"):
        TrainConfig.from_dict({"objective": {"bce": 1.0, "clDice": 0.1}})
    with pytest.raises(ConfigError, match="finite and >= 0"):
        TrainConfig.from_dict({"objective": {"bce": -1.0}})
    with pytest.raises(ConfigError, match="at least one term with a weight > 0"):
        TrainConfig.from_dict({"objective": {"bce": 0.0}})
    with pytest.raises(ConfigError, match="flux_mix"):
        TrainConfig.from_dict({"flux_mix": 1.5})
    p = tmp_path / "c.yaml"
    p.write_text("objective: {bce: 1.0, connectivity: 0.2, volume_fraction: 5}\n")
    cfg = TrainConfig.from_yaml(p, base="quick")
    assert cfg.objective == {"bce": 1.0, "connectivity": 0.2, "volume_fraction": 5.0}
    import yaml

    assert TrainConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Database]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        hr = build_database([BlobModel(sigma=2.0)], tmp_path_factory.mktemp("odb"),
                            n_realizations=2, shape=24, alphas=(2,), split=(1, 1, 0),
                            diffusion=False, hr_diffusion=True, axis=0)
    plain = build_database([BlobModel(sigma=2.0)], tmp_path_factory.mktemp("pdb"),
                           n_realizations=2, shape=24, alphas=(2,), split=(1, 1, 0),
                           diffusion=False)
    return {"hr": hr, "plain": plain}


def _cfg(**kw: Any) -> TrainConfig:
    base = {"channels": 4, "blocks": 1, "crop": 6, "batch_size": 2, "epochs": 2,
            "steps_per_epoch": 3, "lr": 1e-2, "patience": 5, "val_crops": 2, "seed": 3,
            "tile": 8, "skeleton_iterations": 3}
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("objective", [
    {"flux_bce": 1.0}, {"connectivity": 1.0}, {"volume_fraction": 1.0},
    {"bce": 1.0, "flux_bce": 0.5, "connectivity": 0.2, "volume_fraction": 1.0}])
def test_each_objective_trains_without_nan(dbs: dict[str, Database], tmp_path: Path,
                                           objective: dict[str, float]) -> None:
    res = train(dbs["hr"], alpha=2, out_dir=tmp_path / "run", device="cpu",
                config=_cfg(objective=objective))
    losses = [h[k] for h in res.history for k in ("train_loss", "val_loss")]
    assert all(math.isfinite(v) for v in losses) and 0 < res.threshold < 1
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] * 1.5


def test_flux_objective_with_solution_targets(dbs: dict[str, Database], tmp_path: Path) -> None:
    res = train(dbs["hr"], alpha=2, out_dir=tmp_path / "run", device="cpu",
                config=_cfg(targets="morph+diffu", objective={"bce": 1.0, "flux_bce": 1.0}))
    assert all(math.isfinite(h["val_loss"]) for h in res.history)


def test_flux_objective_needs_hr_diffusion(dbs: dict[str, Database], tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"objective term\(s\) 'flux_bce' needs; build a new "
                                           r"database with build_database\(\.\.\., "
                                           r"hr_diffusion=True\) \(`twinsr database \.\.\. "
                                           r"--hr-diffusion`\)"):
        train(dbs["plain"], alpha=2, out_dir=tmp_path / "run", device="cpu",
              config=_cfg(objective={"bce": 1.0, "flux_bce": 0.5}))
    assert not (tmp_path / "run").exists()
    # with weight 0 the term is off and the database is fine
    res = train(dbs["plain"], alpha=2, out_dir=tmp_path / "ok", device="cpu",
                config=_cfg(objective={"bce": 1.0, "flux_bce": 0.0}, epochs=1,
                            steps_per_epoch=1))
    assert res.epochs_run == 1
    with pytest.raises(DatasetError, match="hr_diffusion=True"):
        dbs["plain"].pairs("train", 2, hr_solution=True)
