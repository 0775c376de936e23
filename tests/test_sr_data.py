"""Tests of twinsr.sr.data: the 48 cube symmetries and aligned, augmented crop sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from twinsr.exceptions import DatasetError
from twinsr.sr.data import (
    CropSampler,
    apply_symmetry,
    compose_symmetries,
    cube_symmetries,
    grid_crops,
    symmetry_matrix,
)


def test_48_distinct_symmetries_rotations_first() -> None:
    syms = cube_symmetries()
    assert len(syms) == 48 == len(set(syms))
    assert all(s.is_rotation for s in syms[:24])
    assert not any(s.is_rotation for s in syms[24:])
    a = np.random.default_rng(0).random((3, 4, 5))
    # distinct as actions on an asymmetric array (shapes differ or values differ)
    images = {(apply_symmetry(a, s).shape, apply_symmetry(a, s).tobytes()) for s in syms}
    assert len(images) == 48


def test_group_closed_identity_inverses() -> None:
    syms = cube_symmetries()
    sset = set(syms)
    ident = syms[0]
    assert ident.perm == (0, 1, 2) and ident.flips == (False,) * 3
    for a, b in itertools.product(syms, syms):
        assert compose_symmetries(a, b) in sset
    for a in syms:
        assert any(compose_symmetries(a, b) == ident for b in syms)


def test_apply_matches_composition() -> None:
    syms = cube_symmetries()
    x = np.random.default_rng(1).random((4, 4, 4))
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = syms[rng.integers(48)], syms[rng.integers(48)]
        lhs = apply_symmetry(apply_symmetry(x, b), a)
        assert np.array_equal(lhs, apply_symmetry(x, compose_symmetries(a, b)))


def test_apply_matches_matrix_action() -> None:
    n = 5
    x = np.random.default_rng(3).random((n, n, n))
    idx = np.array([1, 2, 4])
    c = (n - 1) / 2
    for s in cube_symmetries():
        m = symmetry_matrix(s)
        out_idx = (m @ (idx - c) + c).round().astype(int)
        assert apply_symmetry(x, s)[tuple(out_idx)] == x[tuple(idx)]


def test_apply_with_channel_axis_same_for_all_channels() -> None:
    x = np.random.default_rng(4).random((3, 4, 5, 6))
    for s in cube_symmetries():
        y = apply_symmetry(x, s)
        for c in range(3):
            assert np.array_equal(y[c], apply_symmetry(x[c], s))
    z = apply_symmetry(np.moveaxis(x, 0, -1), cube_symmetries()[30], spatial_axes=(0, 1, 2))
    assert np.array_equal(np.moveaxis(z, -1, 0), apply_symmetry(x, cube_symmetries()[30]))
    with pytest.raises(DatasetError, match="three distinct axes"):
        apply_symmetry(x, cube_symmetries()[0], spatial_axes=(0, 0, 1))


def _pair(alpha: int, lr_shape: tuple[int, int, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    hr = (rng.random(tuple(alpha * s for s in lr_shape)) < 0.5).astype(np.uint8)
    lr = np.ascontiguousarray(hr[::alpha, ::alpha, ::alpha])
    extra = lr.astype(np.float32) * 3.0 + 1.0  # a second channel tied voxel-wise to channel 0
    return [lr, extra], hr


@pytest.mark.parametrize("alpha", [2, 4, 8])
def test_alignment_invariant_for_all_48_symmetries(alpha: int) -> None:
    chans, hr = _pair(alpha, (7, 8, 9))
    sampler = CropSampler([(chans, hr)], alpha=alpha, crop=5, rng=0)
    for s in cube_symmetries():
        for _ in range(3):
            lr, h = sampler.draw(s)
            assert lr.shape == (2, 5, 5, 5) and h.shape == (5 * alpha,) * 3
            assert np.array_equal(lr[0], h[::alpha, ::alpha, ::alpha])
            assert np.array_equal(lr[1], lr[0] * 3.0 + 1.0)


def test_sample_batches_are_aligned_seeded_and_augmented() -> None:
    chans, hr = _pair(2, (10, 10, 10), seed=5)
    a = CropSampler([(chans, hr)], alpha=2, crop=6, rng=7)
    b = CropSampler([(chans, hr)], alpha=2, crop=6, rng=7)
    x1, y1 = a.sample(16)
    x2, y2 = b.sample(16)
    assert x1.dtype == np.float32 and y1.dtype == np.float32
    assert x1.shape == (16, 2, 6, 6, 6) and y1.shape == (16, 1, 12, 12, 12)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.array_equal(x1[:, 0], y1[:, 0, ::2, ::2, ::2])
    state = a.get_state()
    x3, _ = a.sample(4)
    a.set_state(state)
    x4, _ = a.sample(4)
    assert np.array_equal(x3, x4)
    x5, _ = CropSampler([(chans, hr)], alpha=2, crop=6, rng=8).sample(16)
    assert not np.array_equal(x1, x5)


def test_no_augmentation_keeps_orientation() -> None:
    chans, hr = _pair(2, (6, 6, 6))
    s = CropSampler([(chans, hr)], alpha=2, crop=6, rng=0, augment=False)
    x, y = s.sample(1)
    assert np.array_equal(x[0, 0], chans[0]) and np.array_equal(y[0, 0], hr)


def test_crop_larger_than_image_raises() -> None:
    chans, hr = _pair(2, (6, 6, 6))
    with pytest.raises(DatasetError, match="smaller than one 6\\^3 crop"):
        CropSampler([(chans, hr)], alpha=2, crop=6, rng=0)
    with pytest.raises(DatasetError, match="no training pairs"):
        CropSampler([], alpha=2, crop=6, rng=0)


def test_grid_crops_non_overlapping() -> None:
    g = grid_crops((10, 9, 4), 4)
    assert len(g) == 2 * 2 * 1
    assert g[0] == (slice(0, 4), slice(0, 4), slice(0, 4))


def test_keyed_sampling_depends_only_on_key_and_index() -> None:
    chans, hr = _pair(2, (10, 10, 10), seed=6)
    a = CropSampler([(chans, hr)], alpha=2, crop=5, rng=0)
    b = CropSampler([(chans, hr)], alpha=2, crop=5, rng=99)   # another own generator
    state = a.get_state()
    x, y = a.sample_keyed((4, 1, 2, 3), range(6))
    assert x.shape == (6, 2, 5, 5, 5) and y.shape == (6, 1, 10, 10, 10)
    assert a.get_state() == state                               # own generator untouched
    x2, y2 = b.sample_keyed((4, 1, 2, 3), range(6))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    # slices of the batch (what each process of a 2-process run draws) give the same crops
    xa, _ = a.sample_keyed((4, 1, 2, 3), range(3))
    xb, yb = a.sample_keyed((4, 1, 2, 3), range(3, 6))
    assert np.array_equal(np.concatenate([xa, xb]), x) and np.array_equal(yb, y[3:])
    assert np.array_equal(x[:, 0], y[:, 0, ::2, ::2, ::2])
    other, _ = a.sample_keyed((4, 1, 2, 4), range(6))
    assert not np.array_equal(other, x)
    # from threads in any order: the same crops
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as ex:
        parts = list(ex.map(lambda i: a.sample_keyed((4, 1, 2, 3), [i])[0], range(5, -1, -1)))
    assert np.array_equal(np.concatenate(parts[::-1]), x)
    with pytest.raises(DatasetError, match="non-negative integers"):
        a.sample_keyed((-1, 2), range(2))
    with pytest.raises(DatasetError, match="at least one index"):
        a.sample_keyed((1, 2), [])
