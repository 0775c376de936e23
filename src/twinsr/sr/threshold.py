"""Binarisation threshold μ* of a super-resolution network (spec §2.2.3, Eq. 18).

μ* minimises the mean absolute porosity error over the validation crops,

    E(μ) = (1/K) Σ_k | φ_k(μ) − φ_k^HR |,   φ_k(μ) = share of voxels of crop k with p < μ,

found with Nelder–Mead. ``E`` is piecewise constant in μ when evaluated on the raw voxels, which
stalls Nelder–Mead; each crop's probabilities are therefore summarised by a fine histogram
(``bins`` equal bins on [0, 1]) whose cumulative count is interpolated linearly inside a bin, which
makes ``E`` continuous (exact at bin edges, resolution 1/bins), and the simplex starts from the
best value of a coarse scan of E.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.optimize import minimize

from twinsr.exceptions import VolumeError

__all__ = ["PorosityErrorAccumulator", "fit_threshold", "porosity_error"]

log = logging.getLogger(__name__)


class PorosityErrorAccumulator:
    """Streaming form of :func:`fit_threshold`: add crops one at a time, then :meth:`fit`.

    Memory: ``bins`` int64 counts per crop, independent of the crop size.
    """

    def __init__(self, bins: int = 4096) -> None:
        self.bins = int(bins)
        self._cdfs: list[np.ndarray] = []
        self._phi_hr: list[float] = []
        self._stacked: tuple[np.ndarray, np.ndarray] | None = None  # (cdfs, phi), built lazily

    def add(self, prob: np.ndarray, hr: np.ndarray) -> None:
        """Add one crop: probabilities of solid ``prob`` and the binary HR crop (1 = solid)."""
        prob = np.asarray(prob, dtype=np.float32)
        hr = np.asarray(hr)
        if prob.shape != hr.shape:
            raise VolumeError(
                f"probability crop shape {prob.shape} differs from HR crop shape {hr.shape}"
            )
        if prob.size == 0:
            raise VolumeError("empty crop")
        if not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1:
            raise VolumeError("probabilities must be finite and within [0, 1]")
        idx = np.minimum((prob.ravel() * self.bins).astype(np.int64), self.bins - 1)
        counts = np.bincount(idx, minlength=self.bins)
        cdf = np.concatenate(([0], np.cumsum(counts))) / prob.size  # cdf[i] = P(p < i/bins)
        self._cdfs.append(cdf)
        self._phi_hr.append(float(np.count_nonzero(hr == 0)) / hr.size)
        self._stacked = None

    def __len__(self) -> int:
        return len(self._cdfs)

    def error(self, mu: float | np.ndarray) -> np.ndarray:
        """Mean absolute porosity error at threshold(s) ``mu``."""
        if not self._cdfs:
            raise VolumeError("no crops added")
        if self._stacked is None:  # stacked once, not at every Nelder–Mead evaluation
            self._stacked = (np.stack(self._cdfs), np.asarray(self._phi_hr))
        cdfs, phi = self._stacked
        mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
        x = np.clip(mu, 0.0, 1.0) * self.bins
        i = np.minimum(np.floor(x).astype(np.int64), self.bins - 1)
        t = x - i
        por = cdfs[:, i] * (1 - t) + cdfs[:, i + 1] * t  # (K, len(mu))
        return np.abs(por - phi[:, None]).mean(axis=0)

    def fit(self) -> float:
        """μ* in (0, 1) by a coarse scan followed by Nelder–Mead."""
        grid = np.linspace(0.005, 0.995, 199)
        errs = self.error(grid)
        mu0 = float(grid[int(np.argmin(errs))])

        def objective(v: np.ndarray) -> float:
            m = float(v[0])
            penalty = 0.0 if 0.0 < m < 1.0 else 1.0 + abs(m - 0.5)
            return float(self.error(np.clip(m, 1e-6, 1 - 1e-6))[0]) + penalty

        res = minimize(objective, x0=np.array([mu0]), method="Nelder-Mead",
                       options={"xatol": 1e-5, "fatol": 1e-9, "initial_simplex": [[mu0],
                                                                                   [mu0 + 0.01]]})
        mu = float(np.clip(res.x[0], 1e-6, 1 - 1e-6))
        if objective(np.array([mu])) > errs.min():
            mu = mu0
        log.info("threshold mu*=%.5f (mean |porosity error| %.3g over %d crops)",
                 mu, float(self.error(mu)[0]), len(self))
        return mu


def porosity_error(prob_crops: Iterable[np.ndarray], hr_crops: Iterable[np.ndarray],
                   mu: float) -> float:
    """Mean absolute porosity error (spec Eq. 18) of thresholding ``prob_crops`` at ``mu``."""
    errs = [abs(float(np.mean(np.asarray(p) < mu)) - float(np.mean(np.asarray(h) == 0)))
            for p, h in zip(prob_crops, hr_crops, strict=True)]
    if not errs:
        raise VolumeError("no crops given")
    return float(np.mean(errs))


def fit_threshold(
    prob_crops: Sequence[np.ndarray] | np.ndarray,
    hr_crops: Sequence[np.ndarray] | np.ndarray,
    *,
    bins: int = 4096,
) -> float:
    """Fit μ* minimising the mean absolute porosity error over crops (spec Eq. 18).

    Parameters
    ----------
    prob_crops : sequence of float arrays, or array (K, ...)
        Network probabilities of solid, one array per validation crop (24³·α³ voxels in the
        paper's protocol, any shape here).
    hr_crops : sequence of binary arrays, or array (K, ...)
        The matching HR crops (1 = solid, 0 = pore).
    bins : int
        Histogram resolution of the probabilities (μ* is resolved to about 1/bins).

    Returns
    -------
    float
        μ* in (0, 1); a voxel is solid when p >= μ*.

    Raises
    ------
    VolumeError
        No crops, mismatched counts or shapes, probabilities outside [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> hr = (rng.random((4, 8, 8, 8)) < 0.5).astype(np.uint8)
    >>> p = np.where(hr == 1, 0.7 + 0.3 * rng.random(hr.shape), 0.7 * rng.random(hr.shape))
    >>> round(fit_threshold(p, hr), 2)
    0.7
    """
    if len(prob_crops) != len(hr_crops):
        raise VolumeError(
            f"got {len(prob_crops)} probability crops but {len(hr_crops)} HR crops; pass one HR "
            "crop per probability crop"
        )
    acc = PorosityErrorAccumulator(bins)
    for p, h in zip(prob_crops, hr_crops, strict=True):
        acc.add(p, h)
    if not len(acc):
        raise VolumeError("no crops given to fit_threshold")
    return acc.fit()
