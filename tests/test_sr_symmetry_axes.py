"""The symmetries that keep a per-axis scale factor α = (az, ay, ax)."""

from __future__ import annotations

import numpy as np
import pytest

from twinsr.exceptions import VolumeError
from twinsr.resample import downsample
from twinsr.sr.symmetry import (
    Symmetry,
    aligned_hr_window,
    anisotropy_symmetries,
    apply_symmetry,
    compose_symmetries,
    cube_symmetries,
)

ALPHAS = [(4, 1, 1), (1, 2, 2), (2, 1, 4), (8, 8, 2), 2]


@pytest.mark.parametrize(("alpha", "size"), [((4, 1, 1), 16), ((1, 2, 2), 16), ((2, 1, 4), 8),
                                             ((8, 8, 2), 16), (2, 48), ((1, 4, 1), 16)])
def test_subgroup_size_and_rule(alpha: object, size: int) -> None:
    syms = anisotropy_symmetries(alpha)
    assert len(syms) == size and len(set(syms)) == size
    a = (alpha,) * 3 if isinstance(alpha, int) else alpha
    for s in cube_symmetries():
        keeps = all(a[s.perm[k]] == a[k] for k in range(3))
        assert (s in syms) == keeps
    # every mirror is kept
    assert all(Symmetry((0, 1, 2), f) in syms for f in {s.flips for s in cube_symmetries()})
    # the order of cube_symmetries is kept (rotations first)
    idx = [cube_symmetries().index(s) for s in syms]
    assert idx == sorted(idx)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_is_a_group(alpha: object) -> None:
    syms = set(anisotropy_symmetries(alpha))
    ident = Symmetry((0, 1, 2), (False, False, False))
    assert ident in syms
    for a in syms:
        assert any(compose_symmetries(a, b) == ident for b in syms)  # inverse inside
        for b in syms:
            assert compose_symmetries(a, b) in syms  # closed


@pytest.mark.parametrize("alpha", [(4, 1, 1), (2, 1, 4), (1, 2, 2)])
def test_keeps_aligned_pairs_aligned(alpha: tuple[int, int, int], rng: np.random.Generator) -> None:
    hr = rng.integers(0, 3, size=(40, 36, 40)).astype(np.uint8)
    lr = downsample(hr, alpha, crop=True)
    start, shape = (1, 2, 1), (4, 5, 6)
    lr_win = lr[tuple(slice(o, o + n) for o, n in zip(start, shape, strict=True))]
    for sym in anisotropy_symmetries(alpha):
        hr_win = hr[aligned_hr_window(start, shape, alpha, sym)]
        la, ha = apply_symmetry(lr_win, sym), apply_symmetry(hr_win, sym)
        assert ha.shape == tuple(n * a for n, a in zip(la.shape, alpha, strict=True))
        np.testing.assert_array_equal(ha[:: alpha[0], :: alpha[1], :: alpha[2]], la)
    # a symmetry outside the subgroup breaks the anisotropy: the factors move to other axes
    outside = [s for s in cube_symmetries() if s not in anisotropy_symmetries(alpha)]
    assert outside
    for sym in outside:
        hr_win = hr[aligned_hr_window(start, shape, alpha, sym)]
        la, ha = apply_symmetry(lr_win, sym), apply_symmetry(hr_win, sym)
        assert ha.shape != tuple(n * a for n, a in zip(la.shape, alpha, strict=True)) or \
            not np.array_equal(ha[:: alpha[0], :: alpha[1], :: alpha[2]], la)


def test_bad_alpha_and_window() -> None:
    with pytest.raises(VolumeError, match=r"changes nothing"):
        anisotropy_symmetries((1, 1, 1))
    with pytest.raises(VolumeError, match=r"entry 3"):
        anisotropy_symmetries((3, 1, 1))
    flip = Symmetry((0, 1, 2), (True, False, False))
    with pytest.raises(VolumeError, match=r"start it at >= 1"):
        aligned_hr_window((0, 0, 0), (2, 2, 2), (4, 1, 1), flip)
