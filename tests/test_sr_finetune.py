"""Tests of fine-tuning on a measured HR image (twinsr.sr.finetune, train(..., finetune_on=))."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _helpers import BlobModel
from twinsr.exceptions import (
    ConfigError,
    DatasetError,
    ModelWarning,
    NonPercolatingWarning,
    VolumeError,
)
from twinsr.sr.config import TrainConfig
from twinsr.sr.database import Database, build_database
from twinsr.sr.finetune import (
    MixedSampler,
    check_disjoint,
    finetune_pairs,
    normalize_region,
    regions_overlap,
    split_region,
)
from twinsr.sr.train import train

torch.set_num_threads(2)


class _Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        return build_database([BlobModel(sigma=2.0)], tmp_path_factory.mktemp("db"),
                              n_realizations=2, shape=24, alphas=(2,), split=(1, 1, 0),
                              diffusion=True)


@pytest.fixture(scope="module")
def measured() -> np.ndarray:
    """A 'measured' image unlike the twins: solid plates normal to x."""
    im = np.zeros((40, 32, 32), np.uint8)
    im[:, :, ::4] = 1
    im[:, :, 1::4] = 1
    return im


def _cfg(**kw: Any) -> TrainConfig:
    base = {"channels": 4, "blocks": 1, "crop": 6, "batch_size": 4, "epochs": 3,
            "steps_per_epoch": 3, "lr": 1e-2, "patience": 5, "val_crops": 2, "seed": 3,
            "tile": 8, "finetune_fraction": 0.5}
    base.update(kw)
    return TrainConfig(**base)


def test_split_regions_are_disjoint_and_cover_the_image():
    shape = (40, 32, 30)
    for axis in range(3):
        a, b = split_region(shape, axis=axis)
        assert not regions_overlap(a, b)
        check_disjoint(a, b)  # no error
        mask = np.zeros(shape, np.uint8)
        mask[a] += 1
        mask[b] += 1
        assert (mask == 1).all()  # every voxel in exactly one region
    a, b = split_region(shape, axis=0, fraction=0.25)
    assert a[0] == slice(0, 10) and b[0] == slice(10, 40)
    with pytest.raises(ConfigError, match=r"overlaps the evaluation region.*\[15:20, 0:32, 0:30\]"):
        check_disjoint(normalize_region([(0, 20), None, None], shape),
                       normalize_region([(15, 40), (0, 32), (0, 30)], shape))
    with pytest.raises(ConfigError, match="outside"):
        normalize_region([(0, 50), (0, 32), (0, 30)], shape)
    with pytest.raises(ConfigError, match="three"):
        normalize_region([(0, 5)], shape)
    with pytest.raises(ConfigError, match="fraction"):
        split_region(shape, fraction=1.0)


def test_finetune_pairs_are_built_like_the_database(measured: np.ndarray):
    (p,) = finetune_pairs(measured, alpha=2, inputs="diffu", crop=6, region=[(0, 20), None, None])
    assert p.hr.shape == (20, 32, 32)
    np.testing.assert_array_equal(p.channels[0], measured[0:20:2, ::2, ::2])
    assert len(p.channels) == 3 and p.channels[1].shape == (10, 16, 16)
    from twinsr.transport import diffusion_channels

    d = diffusion_channels(measured[0:20:2, ::2, ::2], axis=0)
    np.testing.assert_allclose(p.channels[1], d[0], atol=1e-6)
    # {0, 255} images are accepted (the shared binary rule)
    (q,) = finetune_pairs(measured * 255, alpha=2, inputs="bin", crop=6)
    np.testing.assert_array_equal(q.hr, measured)


def test_bad_finetune_inputs(db: Database, measured: np.ndarray, tmp_path: Path):
    grey = measured.astype(float) * 0.5 + np.arange(32) / 64.0
    with pytest.raises(VolumeError, match="finetune_on"):
        train(db, alpha=2, out_dir=tmp_path / "a", config=_cfg(), device="cpu",
              finetune_on=grey)
    with pytest.raises(DatasetError, match=r"smaller than one training crop.*>= 14"):
        train(db, alpha=2, out_dir=tmp_path / "b", config=_cfg(), device="cpu",
              finetune_on=measured, finetune_region=[(0, 12), None, None])
    with pytest.raises(ConfigError, match="needs `finetune_on`"):
        train(db, alpha=2, out_dir=tmp_path / "c", config=_cfg(), device="cpu",
              finetune_region=[(0, 20), None, None])
    with pytest.raises(ConfigError, match="finetune_fraction"):
        TrainConfig.from_dict({"finetune_fraction": 0.0})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_mixed_sampler_uses_both_sources(db: Database, measured: np.ndarray):
    from twinsr.sr.data import CropSampler

    pairs = db.pairs("train", 2)
    twins = CropSampler([(p.channels, p.hr) for p in pairs], alpha=2, crop=6, rng=0)
    (rp,) = finetune_pairs(measured, alpha=2, inputs="bin", crop=6)
    real = CropSampler([(rp.channels, rp.hr)], alpha=2, crop=6, rng=0)
    m = MixedSampler(twins, real, fraction=0.5)
    flags = [m.is_real((1, 1, e, 1), i) for e in range(20) for i in range(4)]
    assert 0.3 < np.mean(flags) < 0.7
    x, y = m.sample_keyed((1, 1, 2, 1), range(4))
    for i in range(4):
        src = real if m.is_real((1, 1, 2, 1), i) else twins
        key = (1, 1, 2, 1, 7) if src is real else (1, 1, 2, 1)
        np.testing.assert_array_equal(y[i], src.sample_keyed(key, [i])[1][0])
    # the twin crops are the ones a twins-only run draws
    twin_i = next(i for i in range(4) if not m.is_real((1, 1, 2, 1), i))
    np.testing.assert_array_equal(x[twin_i], twins.sample_keyed((1, 1, 2, 1), [twin_i])[0][0])


def test_resumed_finetune_equals_uninterrupted(db: Database, measured: np.ndarray,
                                              tmp_path: Path):
    base = train(db, alpha=2, inputs="diffu", out_dir=tmp_path / "twins",
                 config=_cfg(epochs=1), device="cpu")
    cfg = _cfg()
    region = [(0, 20), None, None]
    kw = {"alpha": 2, "inputs": "diffu", "config": cfg, "device": "cpu",
          "init_from": base.bundle_path, "finetune_on": measured, "finetune_region": region}
    full = train(db, out_dir=tmp_path / "full", **kw)

    def stop(epoch: int, step: int, loss: float, val: float | None) -> None:
        if epoch == 2 and step == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(db, out_dir=tmp_path / "cut", progress=stop, **kw)
    # another image (or region) is another run: refused on resume
    with pytest.raises(ConfigError, match="finetune"):
        train(db, out_dir=tmp_path / "cut", resume=True,
              **{**kw, "finetune_region": [(20, 40), None, None]})
    res = train(db, out_dir=tmp_path / "cut", resume=True, **kw)
    assert [h["val_loss"] for h in res.history] == [h["val_loss"] for h in full.history]
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=False)
    sa = a["state_dict"] if "state_dict" in a else a["model"]
    sb = b["state_dict"] if "state_dict" in b else b["model"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert res.threshold == full.threshold
    # fine-tuning changed the network: not the twins-only weights, nor a twins-only continuation
    with pytest.warns(ModelWarning, match="alpha/2"):  # same-α init without fine-tuning
        twins_only = train(db, out_dir=tmp_path / "cont",
                           **{k: v for k, v in kw.items() if not k.startswith("finetune")})
    assert twins_only.history[-1]["train_loss"] != full.history[-1]["train_loss"]
