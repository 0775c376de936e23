"""Per-axis scale factors α = (az, ay, ax) and the label baselines of twinsr.resample."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from twinsr import _validation as v
from twinsr.exceptions import VolumeError
from twinsr.resample import METHODS, crop_to_multiple, downsample, upsample, upsample_labels

AXES = [(4, 1, 1), (1, 2, 1), (2, 1, 4), (8, 2, 1), (2, 2, 2)]


def _smooth(shape: tuple[int, int, int]) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return (np.sin(z / 5.0) + np.cos(y / 7.0) * np.sin(x / 4.0) > 0.2).astype(np.uint8)


def test_check_alpha_axes() -> None:
    assert v.check_alpha_axes(4) == (4, 4, 4)
    assert v.check_alpha_axes((4, 1, 1)) == (4, 1, 1)
    assert v.check_alpha_axes(np.array([1, 8, 2])) == (1, 8, 2)
    assert isinstance(v.check_alpha_axes([2, 1, 1]), tuple)
    with pytest.raises(VolumeError, match=r"one of \(2, 4, 8\), got 3"):
        v.check_alpha_axes(3)
    with pytest.raises(VolumeError, match=r"each one of \(1, 2, 4, 8\), got \(3, 1, 1\) \(entry 3\)"):
        v.check_alpha_axes((3, 1, 1))
    with pytest.raises(VolumeError, match=r"\(1, 1, 1\) changes nothing"):
        v.check_alpha_axes((1, 1, 1))
    for bad in ((2, 2), (2.0, 1, 1), "222", (True, 1, 1), None):
        with pytest.raises(VolumeError, match="integer or three integers"):
            v.check_alpha_axes(bad)


@pytest.mark.parametrize("alpha", AXES)
def test_downsample_per_axis_is_strided(alpha: tuple[int, int, int]) -> None:
    im = np.arange(16 * 8 * 8).reshape(16, 8, 8)
    lr = downsample(im, alpha)
    np.testing.assert_array_equal(lr, im[:: alpha[0], :: alpha[1], :: alpha[2]])
    assert lr.flags.c_contiguous
    assert lr.shape == tuple(s // a for s, a in zip(im.shape, alpha, strict=True))


def test_downsample_per_axis_bad_input() -> None:
    im = np.zeros((10, 8, 8), np.uint8)
    with pytest.raises(VolumeError, match=r"not divisible by alpha=\(4, 1, 1\); crop it to \(8, 8, 8\)"):
        downsample(im, (4, 1, 1))
    assert downsample(im, (4, 1, 1), crop=True).shape == (2, 8, 8)
    assert crop_to_multiple(im, (4, 1, 1)).shape == (8, 8, 8)
    with pytest.raises(VolumeError, match=r"\(1, 1, 1\) changes nothing"):
        downsample(im, (1, 1, 1))
    with pytest.raises(VolumeError, match=r"entry 3"):
        upsample(im, (1, 3, 1))
    with pytest.raises(VolumeError, match=r"entry 16"):
        upsample_labels(im, (16, 1, 1))


@pytest.mark.parametrize("alpha", AXES)
def test_per_axis_downsample_then_nearest_recovers_samples(alpha: tuple[int, int, int]) -> None:
    hr = _smooth((32, 16, 16))
    lr = downsample(hr, alpha)
    sl = tuple(slice(None, None, a) for a in alpha)
    for method in METHODS:
        out = upsample(lr, alpha, method=method)
        assert out.shape == hr.shape
        np.testing.assert_array_equal(out[sl], hr[sl])
    # nearest: HR voxel i along an axis takes LR sample round(i / a) (ties up, clipped at the end)
    near = upsample(lr, alpha, method="nearest")
    idx = [np.minimum(np.floor(np.arange(s) / a + 0.5).astype(int), s // a - 1)
           for s, a in zip(hr.shape, alpha, strict=True)]
    np.testing.assert_array_equal(near, lr[np.ix_(*idx)])
    lab = (hr + (np.arange(32)[:, None, None] % 3 == 0)).astype(np.uint8)
    lab_lr = downsample(lab, alpha)
    for method in METHODS:
        np.testing.assert_array_equal(upsample_labels(lab_lr, alpha, method=method)[sl], lab[sl])


@pytest.mark.parametrize("alpha", [(4, 1, 1), (2, 1, 4), (1, 2, 2)])
@pytest.mark.parametrize("method", ["trilinear", "triquadratic"])
def test_per_axis_matches_map_coordinates(alpha: tuple[int, int, int], method: str,
                                          rng: np.random.Generator) -> None:
    lr = rng.random((5, 6, 7)).astype(np.float32)
    grid = np.meshgrid(*[np.arange(s * a) / a for s, a in zip(lr.shape, alpha, strict=True)],
                       indexing="ij")
    ref = ndimage.map_coordinates(lr.astype(np.float64), grid, order=1 if method == "trilinear"
                                  else 2, mode="mirror")
    out = upsample(lr, alpha, method=method, probabilities=True)
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_z_only_interpolation_leaves_planes_independent(rng: np.random.Generator) -> None:
    lr = rng.random((6, 5, 4)).astype(np.float32)
    out = upsample(lr, (4, 1, 1), probabilities=True)
    # every (y, x) column is the 1-D quadratic spline of that column alone
    for j, k in [(0, 0), (2, 3), (4, 1)]:
        col = ndimage.map_coordinates(lr[:, j, k].astype(np.float64), [np.arange(24) / 4],
                                      order=2, mode="mirror")
        np.testing.assert_allclose(out[:, j, k], col, atol=2e-6)
    # a volume constant along z stays constant: nothing leaks between (y, x) columns
    flat = np.repeat(lr[:1], 6, axis=0)
    np.testing.assert_allclose(upsample(flat, (4, 1, 1), probabilities=True),
                               np.repeat(lr[:1], 24, axis=0), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_scalar_equals_equal_triple(method: str, rng: np.random.Generator) -> None:
    lr = (rng.random((6, 7, 5)) > 0.5).astype(np.uint8)
    for a in (2, 4):
        np.testing.assert_array_equal(upsample(lr, a, method=method),
                                      upsample(lr, (a, a, a), method=method))
        np.testing.assert_array_equal(upsample(lr, a, method=method, probabilities=True),
                                      upsample(lr, (a, a, a), method=method, probabilities=True))


@pytest.mark.parametrize("alpha", [2, (4, 1, 1)])
@pytest.mark.parametrize("method", METHODS)
def test_two_labels_are_the_binary_baseline(alpha: object, method: str,
                                            rng: np.random.Generator) -> None:
    lr = (ndimage.gaussian_filter(rng.random((8, 8, 8)), 1.0) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(upsample_labels(lr, alpha, method=method),
                                  upsample(lr, alpha, method=method))


@pytest.mark.parametrize("alpha", [2, (4, 1, 1)])
def test_onehot_triquadratic_argmax_matches_reference(alpha: object,
                                                      rng: np.random.Generator) -> None:
    lab = rng.integers(0, 4, size=(6, 7, 8)).astype(np.uint8)
    a = v.check_alpha_axes(alpha)
    grid = np.meshgrid(*[np.arange(s * f) / f for s, f in zip(lab.shape, a, strict=True)],
                       indexing="ij")
    chans = np.stack([ndimage.map_coordinates((lab == k).astype(np.float64), grid, order=2,
                                              mode="mirror") for k in range(4)])
    ref = 3 - np.argmax(chans[::-1], axis=0)  # ties to the higher label
    srt = np.sort(chans, axis=0)
    clear = (srt[-1] - srt[-2]) > 1e-4  # away from float ties
    out = upsample_labels(lab, alpha)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(out[clear], ref[clear])
    sl = tuple(slice(None, None, f) for f in a)
    np.testing.assert_array_equal(out[sl], lab)


def test_nearest_labels_repeat_values(rng: np.random.Generator) -> None:
    lab = rng.integers(0, 5, size=(4, 5, 6)).astype(np.uint8)
    out = upsample_labels(lab, (2, 1, 4), method="nearest")
    ref = upsample(lab.astype(np.float32), (2, 1, 4), method="nearest", probabilities=True)
    np.testing.assert_array_equal(out, ref.astype(np.uint8))
    assert out.dtype == np.uint8


def test_upsample_labels_bad_input() -> None:
    lab = np.array([0, 1, 3, 3] * 2, np.uint8).reshape(2, 2, 2)
    with pytest.raises(VolumeError, match="contiguous"):
        upsample_labels(lab, 2)
    assert upsample_labels(lab, 2, n_labels=4).shape == (4, 4, 4)
    with pytest.raises(VolumeError, match="`method` must be one of"):
        upsample_labels(lab, 2, method="cubic", n_labels=4)


def test_builtin_labels_per_axis() -> None:
    from twinsr import datasets

    lab = datasets.load("nmc_nrel_xct", key="labels")[:64, :48, :48]
    lr = downsample(lab, (4, 1, 1))
    out = upsample_labels(lr, (4, 1, 1), n_labels=3)
    np.testing.assert_array_equal(out[::4], lab[::4])
    iou_bin = [np.count_nonzero((out == k) & (lab == k)) / np.count_nonzero((out == k) | (lab == k))
               for k in range(3)]
    assert min(iou_bin) > 0.4  # real structure survives a 4x coarser z
