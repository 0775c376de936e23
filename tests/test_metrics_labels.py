"""Metrics of labelled volumes: accuracy, IoU, interface bands (ellipsoids), TPB density."""

from __future__ import annotations

import numpy as np
import pytest

from twinsr import metrics as m
from twinsr.exceptions import VolumeError


def _binary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    hr = (ndimage.gaussian_filter(rng.random((20, 18, 16)), 2.0) > 0.5).astype(np.uint8)
    sr = hr.copy()
    flip = rng.random(hr.shape) < 0.05
    sr[flip] = 1 - sr[flip]
    return sr, hr


def _three(n: int = 8, h: int = 4) -> np.ndarray:
    """z < h: 0; z >= h: 1, except the box z, y, x >= h: 2 (a TPB line turning a corner)."""
    lab = np.zeros((n, n, n), np.uint8)
    lab[h:] = 1
    lab[h:, h:, h:] = 2
    return lab


@pytest.mark.parametrize("alpha", [2, 4, (4, 1, 1), (2, 4, 2)])
def test_binary_is_the_two_label_case(alpha: object, rng: np.random.Generator) -> None:
    sr, hr = _binary(rng)
    assert m.multiclass_accuracy(sr, hr) == m.accuracy(sr, hr)
    band = m.boundary_band(hr, alpha)
    np.testing.assert_array_equal(m.label_band(hr, alpha), band)
    bands = m.interface_bands(hr, alpha)
    assert list(bands) == [(0, 1)]
    np.testing.assert_array_equal(bands[(0, 1)], band)
    acc = m.interface_surface_accuracy(sr, hr, alpha)
    assert acc[(0, 1)] == pytest.approx(m.surface_accuracy(sr, hr, alpha), abs=1e-15)
    iou = m.class_iou(sr, hr)
    for k in (0, 1):
        inter = np.count_nonzero((sr == k) & (hr == k))
        assert iou[k] == pytest.approx(inter / np.count_nonzero((sr == k) | (hr == k)))
    assert m.tpb_density(hr) == 0.0


def test_scalar_band_is_the_ball(rng: np.random.Generator) -> None:
    _, hr = _binary(rng)
    for a in (2, 4, 8):
        np.testing.assert_array_equal(m.ellipsoid((0.55 * a,) * 3), m.ball(0.55 * a))
        np.testing.assert_array_equal(m.boundary_band(hr, (a, a, a)), m.boundary_band(hr, a))


def test_ellipsoid_element_by_hand() -> None:
    se = m.ellipsoid((2.2, 1.1, 0.55))
    assert se.shape == (5, 3, 1)
    # dz^2 / 4.84 + dy^2 / 1.21 <= 1: dz = -2..2 at dy = 0, and dy = +-1 at dz = 0
    want = np.zeros((5, 3, 1), bool)
    want[:, 1, 0] = True
    want[2, :, 0] = True
    np.testing.assert_array_equal(se, want)


def test_ellipsoid_band_of_a_cube_by_hand() -> None:
    hr = np.zeros((16, 12, 12), np.uint8)
    hr[4:12, 4:8, 4:8] = 1  # a box 8 (z) x 4 x 4
    band = m.boundary_band(hr, (4, 2, 1))  # radii 2.2 (z), 1.1 (y), 0.55 (x)
    # solid: z-faces 2 layers deep (z = 4, 5, 10, 11: 4 x 16) + y-faces 1 deep on z = 6..9
    # (2 x 4 x 4); pore: 2 layers above and below (4 x 16) + 1 layer beside the y-faces
    # (2 x 8 x 4); nothing beside the x-faces (radius 0.55 < 1)
    assert int((band & (hr == 1)).sum()) == 64 + 32
    assert int((band & (hr == 0)).sum()) == 64 + 64
    assert int(band.sum()) == 224
    assert not band[4:12, 4:8, 3].any() and not band[4:12, 4:8, 8].any()


def test_interface_bands_three_labels() -> None:
    lab = _three()
    bands = m.interface_bands(lab, 2)
    assert set(bands) == {(0, 1), (0, 2), (1, 2)}
    # (0, 2): the 4 x 4 footprint of the box, one layer on each side of z = 3.5
    assert int(bands[(0, 2)].sum()) == 32
    assert bands[(0, 2)][3, 4:, 4:].all() and bands[(0, 2)][4, 4:, 4:].all()
    union = np.zeros(lab.shape, bool)
    for b in bands.values():
        union |= b
    np.testing.assert_array_equal(m.label_band(lab, 2), union)
    sr = lab.copy()
    sr[4, 5, 5] = 0  # a binder voxel on the pore interface turned to pore
    acc = m.interface_surface_accuracy(sr, lab, 2)
    assert acc[(0, 2)] == pytest.approx(31 / 32)
    assert acc[(0, 1)] == 1.0
    assert acc[(1, 2)] == 1.0  # (4, 5, 5) has no NMC voxel within the 6-neighbourhood
    sr[4, 4, 5] = 0  # this one has (4, 3, 5): it counts in both bands
    acc = m.interface_surface_accuracy(sr, lab, 2)
    assert acc[(0, 2)] == pytest.approx(30 / 32)
    assert acc[(1, 2)] == pytest.approx(1 - 1 / int(bands[(1, 2)].sum()))


def test_accuracy_and_iou_by_hand() -> None:
    hr = np.array([0, 0, 1, 1, 2, 2, 2, 2], np.uint8).reshape(2, 2, 2)
    sr = np.array([0, 1, 1, 1, 2, 2, 2, 0], np.uint8).reshape(2, 2, 2)
    assert m.multiclass_accuracy(sr, hr) == 6 / 8
    np.testing.assert_allclose(m.class_iou(sr, hr), [1 / 3, 2 / 3, 3 / 4])
    # a label absent from both scores 1; sr may miss a label of hr
    np.testing.assert_allclose(m.class_iou(hr, hr, n_labels=4), [1, 1, 1, 1])
    assert m.class_iou(np.zeros_like(hr), hr)[2] == 0.0


def test_tpb_of_a_corner() -> None:
    lab = _three(8, 4)
    # TPB: the edge of the box's bottom face where it meets pore and NMC, two runs of 4 voxel
    # edges (along x at y = 3.5 and along y at x = 3.5, both at z = 3.5)
    assert m.tpb_density(lab) == pytest.approx(8 / 512)
    assert m.tpb_density(lab, phases=(0, 1, 2)) == pytest.approx(8 / 512)
    assert m.tpb_density(lab, voxel_size=(3.0, 2.0, 1.0)) == pytest.approx((4 * 1 + 4 * 2) /
                                                                           (512 * 6.0))
    lab4 = lab.copy()
    lab4[:4, :, :1] = 3  # a fourth label: new triple lines (0, 1, 3), none with (0, 1, 2)
    assert m.tpb_density(lab4, phases=(0, 1, 2)) == pytest.approx(8 / 512)
    assert m.tpb_density(lab4) > m.tpb_density(lab)
    assert m.tpb_density_error(lab, lab) == 0.0
    sr = lab.copy()
    sr[4:, 4:, 4:6] = 1  # the box shrinks along x: 2 edges fewer along x
    assert m.tpb_density_error(sr, lab) == pytest.approx(2 / 8)
    assert m.tpb_density_error(lab, np.zeros_like(lab), n_labels=3) == float("inf")


def test_bad_input() -> None:
    lab = _three()
    with pytest.raises(VolumeError, match="same shape"):
        m.multiclass_accuracy(lab[:4], lab)
    with pytest.raises(VolumeError, match=r"above n_labels - 1 = 2"):
        m.class_iou(lab + 1, lab)
    with pytest.raises(VolumeError, match="contiguous"):
        m.class_iou(lab, lab * 2)
    with pytest.raises(VolumeError, match="three different labels"):
        m.tpb_density(lab, phases=(0, 1, 1))
    with pytest.raises(VolumeError, match="three labels"):
        m.tpb_density(lab, phases=(0, 1))
    with pytest.raises(VolumeError, match=r"`phases` must be an integer in 0\.\.2"):
        m.tpb_density(lab, phases=(0, 1, 5))
    with pytest.raises(VolumeError, match="alpha"):
        m.label_band(lab, (2, 0, 1))
    with pytest.raises(VolumeError, match=r"three numbers"):
        m.boundary_band(lab > 0, (2, 2))
