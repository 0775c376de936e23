"""Shared fixtures: seeded RNG, tiny volumes, real measured data, temp output folders."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: tests are reproducible on every machine."""
    return np.random.default_rng(12345)


@pytest.fixture
def binary_volume(rng: np.random.Generator) -> np.ndarray:
    """A random 24 x 28 x 32 binary volume (uint8, 1 = solid), about half solid."""
    return (rng.random((24, 28, 32)) < 0.5).astype(np.uint8)


@pytest.fixture(scope="session")
def nmc_small() -> np.ndarray:
    """A 64^3 crop of the shipped measured NMC cathode (uint8, 1 = solid)."""
    from twinsr import datasets

    return datasets.load("nmc_nrel_xct")[:64, :64, :64].copy()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests when no CUDA device is present."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
