"""Tests for twinsr.resample: strided downsampling and the aligned interpolation baselines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from twinsr.exceptions import VolumeError
from twinsr.resample import METHODS, downsample, upsample


def _grid(shape, alpha):
    return np.meshgrid(*[np.arange(s * alpha) / alpha for s in shape], indexing="ij")


def test_downsample_is_strided_first_voxel():
    im = np.arange(8 * 8 * 8).reshape(8, 8, 8)
    lr = downsample(im, 2)
    assert lr.shape == (4, 4, 4)
    # I_LR(j,k,l) = I_HR(2j, 2k, 2l) (0-based)
    assert lr[1, 2, 3] == im[2, 4, 6]
    assert lr.flags.c_contiguous


@pytest.mark.parametrize("alpha", [2, 4, 8])
def test_downsample_not_divisible_raises_and_crop(alpha):
    im = np.zeros((8 * 3 + 1, 16, 17), np.uint8)
    with pytest.raises(VolumeError, match="not divisible by alpha"):
        downsample(im, alpha)
    lr = downsample(im, alpha, crop=True)
    assert lr.shape == tuple(((s // alpha) * alpha) // alpha for s in im.shape)


def test_downsample_bad_input():
    with pytest.raises(VolumeError, match="3-D"):
        downsample(np.zeros((4, 4)), 2)
    with pytest.raises(VolumeError, match="alpha"):
        downsample(np.zeros((4, 4, 4)), 0)
    with pytest.raises(VolumeError, match="alpha"):
        downsample(np.zeros((4, 4, 4)), 2.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("alpha", [2, 4, 8])
def test_downsample_then_upsample_recovers_sampled_voxels(method, alpha):
    # a smooth pattern: a thresholded sum of sines
    z, y, x = np.meshgrid(*[np.arange(48)] * 3, indexing="ij")
    hr = (np.sin(z / 5.0) + np.cos(y / 7.0) * np.sin(x / 4.0) > 0.2).astype(np.uint8)
    lr = downsample(hr, alpha)
    out = upsample(lr, alpha, method=method)
    assert out.shape == hr.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[::alpha, ::alpha, ::alpha], hr[::alpha, ::alpha, ::alpha])
    prob = upsample(lr, alpha, method=method, probabilities=True)
    assert prob.dtype == np.float32
    # exact (bit for bit) at the LR sample positions
    np.testing.assert_array_equal(prob[::alpha, ::alpha, ::alpha], lr.astype(np.float32))


def test_trilinear_linear_ramp_exact_in_interior():
    lr = np.fromfunction(lambda z, y, x: 0.5 * z - 0.25 * y + 0.125 * x + 1.0, (6, 7, 8))
    alpha = 4
    out = upsample(lr, alpha, method="trilinear", probabilities=True)
    g = _grid(lr.shape, alpha)
    expect = 0.5 * g[0] - 0.25 * g[1] + 0.125 * g[2] + 1.0
    # interior: HR coordinates up to the last LR sample (beyond it the mirror mode applies)
    inner = tuple(slice(0, (s - 1) * alpha + 1) for s in lr.shape)
    np.testing.assert_allclose(out[inner], expect[inner], atol=1e-5)


def test_triquadratic_reproduces_quadratic_in_centre():
    # quadratic B-spline interpolation reproduces polynomials up to degree 2 away from the border
    n = 24
    lr = np.fromfunction(lambda z, y, x: ((z - 11.5) ** 2 + (y - 3) * (x - 5)) / 100.0, (n, n, n))
    out = upsample(lr, 2, method="triquadratic", probabilities=True)
    g = _grid(lr.shape, 2)
    expect = ((g[0] - 11.5) ** 2 + (g[1] - 3) * (g[2] - 5)) / 100.0
    c = slice(16, 32)
    np.testing.assert_allclose(out[c, c, c], expect[c, c, c], atol=1e-4)


@pytest.mark.parametrize(("method", "order"), [("trilinear", 1), ("triquadratic", 2)])
@pytest.mark.parametrize("alpha", [2, 3, 8])
def test_matches_scipy_map_coordinates_mirror(method, order, alpha):
    rng = np.random.default_rng(1)
    lr = (rng.random((5, 6, 7)) > 0.5).astype(np.uint8)
    out = upsample(lr, alpha, method=method, probabilities=True)
    ref = ndimage.map_coordinates(lr.astype(np.float64), _grid(lr.shape, alpha), order=order,
                                  mode="mirror")
    np.testing.assert_allclose(out, ref, atol=2e-6)


def test_nearest_is_blocky_with_ties_up():
    lr = np.arange(4, dtype=np.float32).reshape(4, 1, 1)
    out = upsample(lr, 4, method="nearest", probabilities=True)[:, 0, 0]
    # x = i/4: 0, .25 -> 0; .5, .75, 1, 1.25 -> 1; ...; beyond the last sample -> 3
    np.testing.assert_array_equal(out, [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3])


def test_threshold_and_shape():
    lr = np.zeros((3, 3, 3), np.uint8)
    lr[1, 1, 1] = 1
    out = upsample(lr, 2, method="trilinear")
    assert set(np.unique(out).tolist()) <= {0, 1}
    # the interpolant is exactly 0.5 half-way between the solid sample and its face neighbours
    assert out[2, 2, 3] == 1 and out[2, 2, 1] == 1 and out[2, 1, 1] == 0
    assert upsample(lr, 2, method="trilinear", threshold=0.6)[2, 2, 3] == 0


def test_upsample_bad_input():
    with pytest.raises(VolumeError, match="method"):
        upsample(np.zeros((2, 2, 2)), 2, method="bicubic")
    with pytest.raises(VolumeError, match="3-D"):
        upsample(np.zeros((2, 2)), 2)
    with pytest.raises(VolumeError, match="NaN"):
        upsample(np.full((2, 2, 2), np.nan), 2)
    with pytest.raises(VolumeError, match="alpha"):
        upsample(np.zeros((2, 2, 2)), -2)
