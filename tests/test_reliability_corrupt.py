"""Damaged inputs of the readers other than twinsr.io (whose own are in test_io_corruption.py):
model bundles, model parameter JSON files, database folders and study folders.

Every case is truncated, zero-byte, wrong-magic or bit-flipped. The outcome must be a
:class:`twinsr.exceptions.TwinsrError` subclass whose message names the damaged file, or (where a
flip lands on a byte the format does not use) the same result as the undamaged file; never another
exception type and never a silently different result.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from twinsr.sr import SRResNet3d, load_model, save_bundle


def _net(seed: int = 0, in_channels: int = 1) -> SRResNet3d:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SRResNet3d(in_channels, 2, channels=4, blocks=1)


# ---- bundles: byte-identical, and damage is a BundleError naming the file --------------------
def test_same_bundle_same_bytes(tmp_path: Path) -> None:
    """torch.save names its archive after the target file; a bundle written through a random
    temporary name differed in bytes from one save to the next."""
    net = _net()
    a = save_bundle(tmp_path / "a.pt", net, threshold=0.5, metadata={"k": 1}).read_bytes()
    b = save_bundle(tmp_path / "b" / "model.pt", net, threshold=0.5,
                    metadata={"k": 1}).read_bytes()
    assert a == b
    assert save_bundle(tmp_path / "c.pt", _net(1), threshold=0.5,
                       metadata={"k": 1}).read_bytes() != a
