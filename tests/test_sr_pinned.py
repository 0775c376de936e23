"""Fixed values: the same seed gives the same database entry and network output on every machine.

What is hashed is exact by construction, so the pins hold across CPUs:

* database entries of a coin-flip model: the HR realization is ``default_rng(SeedSequence([seed,
  m, r])).random(shape) < p`` (PCG64 bits and their float64 conversion are specified exactly) and
  the LR images are strided copies of it — integer data, hashed byte for byte. The diffusion
  channels are float32 results of an iterative solve (threaded sums may round differently on
  another CPU), so they are pinned by their sums to a relative 1e-5 (the solver's tolerance is
  1e-6), not hashed;
* a tiny network whose weights are drawn from a seeded numpy Generator (no torch RNG at all):
  float32 convolutions may differ in the last bits between CPUs (other SIMD kernels, other
  summation order), about 1e-6 in the probabilities here, so the hash is of the output
  thresholded at 0.5, and the test first checks that every probability is at least 1e-3 away
  from 0.5 (1000x the round-off), so no voxel can flip. Its probabilities are pinned to 1e-5.

A change of these values means the database or the network changed what a seed produces; if it
is intended, update the pins in the same commit and say why.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from twinsr.exceptions import NonPercolatingWarning
from twinsr.sr import SRModel, SRResNet3d, build_database, superresolve

ENTRIES = {  # name: (sha256 of hr, of lr_a2, of lr_a4), (sum of pore / solid channel at α = 2)
    "m00_r00": (("eca6e32f65702d40860a3c364db6df58b195a3765358a65111627bb83be5e2b9",
                 "265196d71908c6a5543ec759547e1d8dbdd81ff876aa5dbfe1d232548a47fe6a",
                 "11f023cbcd46ba526bdfb21b7abd50ed21b9584b2bdd5c67d892cc1d9286cff6"),
                (141.13585060473997, 110.22708837548271)),
    "m00_r01": (("c3de90aae99066778767e902976f6997118b2b45f479b92330f48ab871d0e59a",
                 "f14f2be4ad5097fe94796bed94b46914e8937b3168f4a4cfc641001182816571",
                 "cec2c5fc5bf19dee2e061901a308c77d145e9cca15b9870f668903d804298a77"),
                (151.2016297660448, 78.4100880965907)),
}
NET_OUTPUT_SHA256 = "bdb51613fcb29be5286f46217f8942eb5f075784ea6a19d3dbfc9c1dca64a882"
NET_PROB_MEAN = 0.37287694


class CoinModel:
    """Independent voxels, solid with probability ``p``: exact integer output for a seed."""

    def __init__(self, p: float = 0.45) -> None:
        self.p = p

    def sample(self, shape: tuple[int, ...], *, rng: Any) -> np.ndarray:
        return (np.random.default_rng(rng).random(shape) < self.p).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "coin", "p": self.p}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_database_entries_are_pinned(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        db = build_database([CoinModel()], tmp_path / "db", n_realizations=2, shape=16,
                            alphas=(2, 4), split=(1, 1, 0), seed=7, diffusion=True)
    for name, (hashes, sums) in ENTRIES.items():
        got = (_sha(db.hr(name)), _sha(db.lr(name, 2)), _sha(db.lr(name, 4)))
        assert got == hashes, name
        d = np.asarray(db.diffusion_channels(name, 2), dtype=np.float64)
        np.testing.assert_allclose(d.sum(axis=(1, 2, 3)), sums, rtol=1e-5)


def _fixed_network(seed: int = 45) -> SRResNet3d:
    """SRResNet3d(1, 2, channels=4, blocks=1) with weights drawn from a seeded numpy Generator."""
    net = SRResNet3d(1, 2, channels=4, blocks=1)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for _, p in sorted(net.named_parameters()):
            bound = 2.0 / np.sqrt(p[0].numel()) if p.ndim > 1 else 0.1
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, p.shape).astype(np.float32)))
    return net


def test_network_output_is_pinned() -> None:
    lr = (np.random.default_rng(5).random((4, 5, 6)) < 0.5).astype(np.uint8)
    m = SRModel(_fixed_network(), threshold=0.5)
    p = superresolve(lr, m, probabilities=True, device="cpu", tile=2)
    assert float(np.abs(p - 0.5).min()) > 1e-3  # no voxel can flip by float32 round-off
    assert float(p.std()) > 0.1                 # and the output is far from constant
    assert float(p.mean()) == pytest.approx(NET_PROB_MEAN, abs=1e-5)
    b = superresolve(lr, m, device="cpu", tile=2)
    np.testing.assert_array_equal(b, (p >= 0.5).astype(np.uint8))
    assert _sha(b) == NET_OUTPUT_SHA256
