"""Same seed, same realization on every machine: pinned hashes of small fields and twins.

What can differ between machines is floating-point rounding: pocketfft (scipy.fft) may take other
SIMD paths on other CPUs, and special functions (the Matérn Bessel function) may differ in the
last bits between scipy builds. The noise itself cannot: it comes from numpy's SFC64 generator
seeded through SeedSequence, whose stream is fixed, and its chunking does not depend on the
number of threads. So the pins are chosen to be insensitive to last-bit rounding, and each test
proves its own margin:

* Gaussian fields are generated in float64 and hashed after rounding to 1e-6; every value lies at
  least 4e-11 from a rounding boundary, ~1000 times the float64 FFT rounding (~1e-14).
* Binary twins (complex64 FFT, threshold Y = X1² + X2² >= ν) are hashed as the uint8 volume;
  every voxel's Y lies at least 1e-4·ν from the threshold, ~100 times the float32 FFT rounding
  (~1e-6 relative).

A failing hash with a passing margin means the stream changed (numpy's generator, the seeding, the
embedding or its padding): a real change of every twin, to be recorded in the CHANGELOG.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from twinsr.stochastic import COVARIANCE_FAMILIES, ChiSquareModel, gaussian_field, make_covariance
from twinsr.stochastic.fields import complex_field

SHAPE = (12, 10, 14)
SEED = 2024
GAMMAS = {"exponential": 0.3, "gaussian": 0.2, "matern": 0.25}

FIELD_SHA256 = {
    "exponential": "f0161eed89d5aed7febc28638fc00f680f8812c06bd56405d51bbe48c5ff8c46",
    "gaussian": "b791f2db921c9741844ef4a4e7f70cadc4df7d60ba0d6b9604455c3ac2c09945",
    "matern": "4301f54cb0c76be0e65d77e1a65df76e6c42935dbeca0230ad366ca81dea5cee",
}
TWIN_SHA256 = {
    ("exponential", "solid"): "6fe0885002dcadecaafde1bb43544a204862f64afa91457ea8aa4a34ad4c10fe",
    ("exponential", "pore"): "15e72c97e61008be52557917c06ca2a1e42fb190e8c1cc3666fe63fe2628f6d2",
    ("gaussian", "solid"): "5525109c397628cdd8ea7a6e8f82b290c3231f36771af6ac832f5923c81735e2",
    ("gaussian", "pore"): "d4d9292ad89f26062fe455f91d850dbde7870c527e132ef311621dee7b29a6e2",
    ("matern", "solid"): "09ee52e12f0893a7cc6d5ce8026d2e9b3c8d98095e00c620ad0d760055fa4f40",
    ("matern", "pore"): "07eccb5c44821348249bde4958d1d89be458550ca708679ac9528a7bf0d1a3a3",
}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_gaussian_field_hash(family: str) -> None:
    x = gaussian_field(SHAPE, make_covariance(family, GAMMAS[family]), rng=SEED, dtype=np.float64)
    scaled = x * 1e6
    margin = float(np.abs(scaled - np.floor(scaled) - 0.5).min()) * 1e-6
    assert margin > 1e-11, margin  # rounding to 1e-6 cannot flip on last-bit differences
    assert _sha(np.round(x, 6) + 0.0) == FIELD_SHA256[family]  # + 0.0: no negative zeros


@pytest.mark.parametrize("phase", ["solid", "pore"])
@pytest.mark.parametrize("family", COVARIANCE_FAMILIES)
def test_twin_hash_and_threshold_margin(family: str, phase: str) -> None:
    model = ChiSquareModel.from_volume_fraction(0.45, GAMMAS[family], family, excursion_phase=phase)
    im = model.sample(SHAPE, rng=SEED)
    assert im.dtype == np.uint8 and im.shape == SHAPE
    y = np.empty(SHAPE, np.float32)

    def take(z0: int, z1: int, block: np.ndarray) -> None:
        y[z0:z1] = block.real * block.real + block.imag * block.imag

    complex_field(SHAPE, model.correlation, take, rng=SEED, periodic=False, tol=1e-3,
                  cdtype=np.complex64, workers=1)
    nu = np.float32(model.nu)
    expected = (y >= nu) if phase == "solid" else (y < nu)
    np.testing.assert_array_equal(im, expected.astype(np.uint8))  # the twin is this threshold
    assert float(np.abs(y - nu).min()) > 1e-4 * model.nu  # no voxel near the threshold
    assert _sha(im) == TWIN_SHA256[(family, phase)]


def test_hashes_do_not_depend_on_threads() -> None:
    cov = make_covariance("matern", GAMMAS["matern"])
    a = gaussian_field(SHAPE, cov, rng=SEED, dtype=np.float64, workers=1)
    b = gaussian_field(SHAPE, cov, rng=SEED, dtype=np.float64, workers=4)
    np.testing.assert_array_equal(a, b)
