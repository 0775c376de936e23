"""Helpers shared by several test files (imported as ``from _helpers import ...``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage


class BlobModel:
    """Duck-typed stand-in for ChiSquareModel: periodic smoothed noise thresholded at 0."""

    def __init__(self, sigma: float = 1.5) -> None:
        self.sigma = sigma

    def sample(self, shape: tuple[int, ...], *, rng: Any) -> np.ndarray:
        g = np.random.default_rng(rng).standard_normal(shape)
        return (ndimage.gaussian_filter(g, self.sigma, mode="wrap") > 0).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "blob", "sigma": self.sigma}
