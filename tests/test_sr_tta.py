"""Test-time augmentation: symmetry sets, alignment, diffusion channels, tiling, uncertainty."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from twinsr.exceptions import ConfigError, VolumeFileError
from twinsr.io import read_volume
from twinsr.scale import superresolve_zarr
from twinsr.sr import SRModel, SRResNet3d, superresolve
from twinsr.sr.symmetry import Symmetry, apply_symmetry, cube_symmetries, reversed_input_axes
from twinsr.sr.tta import (
    IDENTITY,
    check_tta,
    coverage,
    invert_symmetry,
    map_back,
    tta_input_channels,
    tta_symmetries,
)
from twinsr.transport import diffusion_channels

torch.set_num_threads(2)


def _blobs(shape: tuple[int, ...], seed: int, sigma: float = 1.2) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal(shape)
    return (ndimage.gaussian_filter(g, sigma) > 0).astype(np.uint8)


def _random_model(alpha: int = 2, inputs: str = "bin", axis: int = 0) -> SRModel:
    torch.manual_seed(3)
    net = SRResNet3d(1 if inputs == "bin" else 3, alpha, channels=4, blocks=1)
    with torch.no_grad():  # larger weights: outputs far from constant and far from symmetric
        for p in net.parameters():
            p.mul_(3.0)
    return SRModel(net.eval(), threshold=0.5, transport_axis=axis if inputs == "diffu" else None)


def _interpolating_model(alpha: int) -> SRModel:
    """An equivariant network: logits 20·(v − 0.5), v the corner-aligned trilinear interpolation
    of the LR image (v(α·j) = LR(j), linear between samples, zero padding beyond the last one).

    It respects the alignment I_LR(j) = I_HR(α·j) and treats every axis alike, so it commutes
    with every cube symmetry acting on HR with the convention of :func:`map_back`.
    """
    net = SRResNet3d(1, alpha, channels=8, blocks=0)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.head.weight[0, 0, 1, 1, 1] = 1.0  # feature 0 = LR image; mid = 0 keeps it (skip)
        for stage in net.up:  # each stage: linear interpolation by 2 of feature 0
            for s in itertools.product((0, 1), repeat=3):
                ch = s[0] * 4 + s[1] * 2 + s[2]  # HR channel 0 at sub-voxel s
                for e in itertools.product((0, 1), repeat=3):
                    if all(ek <= sk for ek, sk in zip(e, s, strict=True)):
                        stage.conv.weight[ch, 0, 1 + e[0], 1 + e[1], 1 + e[2]] = 0.5 ** sum(s)
        net.tail.weight[0, 0, 1, 1, 1] = 20.0
        net.tail.bias.fill_(-10.0)
    return SRModel(net.eval(), threshold=0.5)


def test_symmetry_sets_and_bad_tta() -> None:
    assert tta_symmetries(1) == (IDENTITY,)
    eight, all48 = tta_symmetries(8), tta_symmetries(48)
    assert eight[0] == all48[0] == IDENTITY
    assert len(set(eight)) == 8 and all(s.perm == (0, 1, 2) for s in eight)
    assert set(all48) == set(cube_symmetries()) and set(eight) < set(all48)
    lr = np.zeros((4, 4, 4), np.uint8)
    for bad in (0, 2, 24, 49, -8, True, 8.0, "8", None):
        with pytest.raises(ConfigError, match=r"`tta` must be one of \(1, 8, 48\)"):
            check_tta(bad)
    with pytest.raises(ConfigError, match=r"`tta` must be one of \(1, 8, 48\).*got 2"):
        superresolve(lr, _random_model(), tta=2, device="cpu")


def test_tta_option_errors(tmp_path: Path) -> None:
    lr = np.zeros((4, 4, 4), np.uint8)
    m = _random_model()
    with pytest.raises(ConfigError, match="return_uncertainty=True needs tta=8 or tta=48"):
        superresolve(lr, m, return_uncertainty=True, device="cpu")
    phys = SRModel(SRResNet3d(1, 2, channels=4, blocks=1, out_channels=3), threshold=0.5,
                   transport_axis=0)
    with pytest.raises(ConfigError, match="return_solution=True works with tta=1 only"):
        superresolve(lr, phys, return_solution=True, tta=8, device="cpu")
    with pytest.raises(ConfigError, match=r"`tta` must be one of \(1, 8, 48\)"):
        superresolve_zarr(lr, m, tmp_path / "a.zarr", tta=16, device="cpu")
    with pytest.raises(ConfigError, match="`uncertainty_out` needs tta=8 or tta=48"):
        superresolve_zarr(lr, m, tmp_path / "b.zarr", uncertainty_out=tmp_path / "u.zarr",
                          device="cpu")
    with pytest.raises(VolumeFileError, match=r"`uncertainty_out` must be a \.zarr store"):
        superresolve_zarr(lr, m, tmp_path / "c.zarr", tta=8, uncertainty_out=tmp_path / "u.npy",
                          device="cpu")
    with pytest.raises(VolumeFileError, match="must differ from `out`"):
        superresolve_zarr(lr, m, tmp_path / "d.zarr", tta=8, uncertainty_out=tmp_path / "d.zarr",
                          device="cpu")
    assert not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("sym", cube_symmetries(), ids=str)
def test_invert_and_map_back_follow_the_sampling_convention(sym: Symmetry) -> None:
    """An HR image whose α-grid samples are the LR image, transformed with the convention,
    still has the transformed LR image on its α-grid, and map_back recovers it."""
    a, shape = 2, (3, 4, 5)
    rng = np.random.default_rng(1)
    hr = rng.random(tuple(a * s for s in shape))
    lr = hr[::a, ::a, ::a]
    assert np.array_equal(apply_symmetry(apply_symmetry(hr, sym), invert_symmetry(sym)), hr)
    # the transformed HR with the convention: reverse about the last LR sample (shift by α−1)
    rev = reversed_input_axes(sym)
    shifted = hr[tuple(slice(0, a * (s - 1) + 1) if r else slice(None)
                       for s, r in zip(shape, rev, strict=True))]
    hr_t = np.ascontiguousarray(apply_symmetry(shifted, sym))
    assert np.array_equal(hr_t[::a, ::a, ::a], apply_symmetry(lr, sym))
    back, origin = map_back(hr_t, sym, (0, 0, 0), shape, a)
    assert origin == (0, 0, 0)
    assert np.array_equal(back, shifted)


def test_coverage_counts_transforms_that_reach_each_voxel() -> None:
    c = coverage((3, 4, 2), 4, tta_symmetries(48))
    assert c.shape == (12, 16, 8) and int(c[:9, :13, :5].min()) == 48
    # the last voxel of every axis: only the 6 pure axis permutations (no reversal) reach it
    assert int(c[-1, -1, -1]) == 6 == sum(not any(s.flips) for s in cube_symmetries())
    assert int(coverage((3, 4, 2), 4, tta_symmetries(8))[-1, -1, -1]) == 1  # the identity
    # beyond the last sample of axis 0 only: the 24 symmetries that do not reverse axis 0
    assert int(c[-1, 0, 0]) == sum(not reversed_input_axes(s)[0] for s in cube_symmetries())


@pytest.mark.parametrize(("alpha", "tta"), [(2, 8), (2, 48), (4, 8)])
def test_equivariant_network_tta_returns_its_upsampling(alpha: int, tta: int) -> None:
    m = _interpolating_model(alpha)
    lr = _blobs((6, 5, 4) if alpha == 4 else (7, 6, 5), seed=alpha)
    p1 = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
    # the network respects the sampling convention: HR voxel α·j is LR voxel j
    assert np.array_equal(p1[::alpha, ::alpha, ::alpha] >= 0.5, lr.astype(bool))
    assert 0.0 < np.mean(np.abs(p1 - 0.5) < 0.49)  # interpolated voxels are not all saturated
    p, u = superresolve(lr, m, probabilities=True, precision="fp32", tta=tta,
                        return_uncertainty=True, device="cpu")
    np.testing.assert_allclose(p, p1, atol=1e-6)
    assert float(u.max()) < 1e-4
    tiled, ut = superresolve(lr, m, probabilities=True, precision="fp32", tta=tta, tile=3,
                             return_uncertainty=True, device="cpu")
    np.testing.assert_allclose(tiled, p1, atol=1e-6)
    assert float(ut.max()) < 1e-4
    b = superresolve(lr, m, precision="fp32", tta=tta, tile=4, device="cpu")
    np.testing.assert_array_equal(b, (p1 >= 0.5).astype(np.uint8))


def test_misaligned_back_transform_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reversing HR about the volume's centre (ignoring I_LR(j) = I_HR(α·j)) breaks the
    equivariance test above: the check can fail."""
    import twinsr.sr.engine as engine

    def centre_reversal(piece, sym, start, lr_shape, alpha):  # type: ignore[no-untyped-def]
        out = apply_symmetry(piece, invert_symmetry(sym))
        origin = [0, 0, 0]
        for k in range(3):
            a, n_k = sym.perm[k], piece.shape[piece.ndim - 3 + k]
            origin[a] = (alpha * int(lr_shape[a]) - int(start[k]) - n_k if sym.flips[k]
                         else int(start[k]))
        return out, tuple(origin)

    m = _interpolating_model(2)
    lr = _blobs((9, 8, 7), seed=2)
    p1 = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
    monkeypatch.setattr(engine, "map_back", centre_reversal)
    bad, u = superresolve(lr, m, probabilities=True, precision="fp32", tta=8,
                          return_uncertainty=True, device="cpu")
    assert np.abs(bad - p1).max() > 0.1 and float(u.max()) > 0.1


def _manual_tta(lr: np.ndarray, m: SRModel, syms: tuple[Symmetry, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over transforms, by brute force: whole-volume plain forward per symmetry."""
    a = m.alpha
    hr = tuple(a * s for s in lr.shape)
    vals = np.full((len(syms), *hr), np.nan, np.float32)
    for k, s in enumerate(syms):
        x = torch.from_numpy(np.ascontiguousarray(apply_symmetry(lr, s), np.float32))[None, None]
        with torch.no_grad():
            p = torch.sigmoid(m.network(x))[0, 0].numpy()
        back, origin = map_back(p, s, (0, 0, 0), lr.shape, a)
        dst = tuple(slice(max(o, 0), o + n) for o, n in zip(origin, back.shape, strict=True))
        src = tuple(slice(max(-o, 0), None) for o in origin)
        vals[(k, *dst)] = back[src]
    return np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)


@pytest.mark.parametrize("tta", [8, 48])
def test_tta_mean_and_uncertainty_match_brute_force_and_tiles(tta: int) -> None:
    lr = _blobs((9, 7, 8), seed=5)
    m = _random_model()
    ref_p, ref_u = _manual_tta(lr, m, tta_symmetries(tta))
    p, u = superresolve(lr, m, probabilities=True, precision="fp32", tta=tta,
                        return_uncertainty=True, device="cpu")
    np.testing.assert_allclose(p, ref_p, atol=1e-5)
    np.testing.assert_allclose(u, ref_u, atol=1e-4)
    assert float(u.max()) > 0.05 and float(u.min()) >= 0.0 and float(u.max()) <= 0.5
    if tta == 8:
        assert u[-1, -1, -1] == 0  # covered by the identity only
    p1 = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
    assert np.abs(p - p1).max() > 1e-2  # TTA changes a non-equivariant network's output
    for tile in (3, 4) if tta == 8 else (5,):
        pt, ut = superresolve(lr, m, probabilities=True, precision="fp32", tta=tta, tile=tile,
                              return_uncertainty=True, device="cpu")
        np.testing.assert_allclose(pt, p, atol=1e-5)
        np.testing.assert_allclose(ut, u, atol=1e-5)
    b = superresolve(lr, m, precision="fp32", tta=tta, tile=5, device="cpu")
    np.testing.assert_array_equal(b, (p >= 0.5).astype(np.uint8))


@pytest.mark.parametrize("axis", [0, 2])
def test_tta_diffusion_channels_equal_a_fresh_solve(axis: int) -> None:
    lr = _blobs((8, 9, 10), seed=11)
    lr[4, 4, 4:7] = 1 - lr[4, 4, 4:7]  # some texture; floating clusters of either phase
    lr[0:2, 0:2, 0:2] = 1
    lr[1, 1, 1] = 0  # an enclosed pore voxel: floating for every axis
    tol = 1e-9
    calls: list[int] = []

    def solve(im: np.ndarray, ax: int) -> np.ndarray:
        calls.append(ax)
        return diffusion_channels(im, axis=ax, tol=tol, device="cpu")

    syms = cube_symmetries()
    chans, idx = tta_input_channels(lr, syms, axis=axis, solve=solve)
    assert sorted(calls) == [0, 1, 2]  # one solve per input axis, not one per symmetry
    assert len(chans) == 1 + 2 * 6 and len(idx) == 48
    flipped_any = False
    for s, ix in zip(syms, idx, strict=True):
        x = apply_symmetry(np.stack([np.asarray(chans[i], np.float32) for i in ix]), s)
        im = np.ascontiguousarray(apply_symmetry(lr, s))
        fresh = diffusion_channels(im, axis=axis, tol=tol, device="cpu")
        np.testing.assert_array_equal(x[0], im)
        np.testing.assert_allclose(x[1:], fresh, atol=1e-5, err_msg=str(s))
        flipped_any |= reversed_input_axes(s)[s.perm[axis]]
    assert flipped_any
    # tta=8 keeps every axis: only the model's axis is solved
    calls.clear()
    chans8, idx8 = tta_input_channels(lr, tta_symmetries(8), axis=axis, solve=solve)
    assert calls == [axis] and len(chans8) == 5 and len(set(idx8)) == 2


def test_tta_diffu_model_tiled_untiled_and_zarr(tmp_path: Path) -> None:
    lr = _blobs((8, 7, 9), seed=4)
    m = _random_model(inputs="diffu", axis=1)
    p, u = superresolve(lr, m, probabilities=True, precision="fp32", tta=48,
                        return_uncertainty=True, device="cpu")
    pt, ut = superresolve(lr, m, probabilities=True, precision="fp32", tta=48, tile=5,
                          return_uncertainty=True, device="cpu")
    np.testing.assert_allclose(pt, p, atol=1e-5)
    np.testing.assert_allclose(ut, u, atol=1e-5)
    # precomputed channels along the model's axis are reused; the result is the same
    d = diffusion_channels(lr, axis=1, device="cpu")
    ps = superresolve(np.concatenate([lr[None].astype(np.float32), d]), m, probabilities=True,
                      precision="fp32", tta=48, device="cpu")
    np.testing.assert_allclose(ps, p, atol=1e-4)
    out = superresolve_zarr(lr, m, tmp_path / "p.zarr", chunk=5, probabilities=True,
                            precision="fp32", tta=48, uncertainty_out=tmp_path / "u.zarr",
                            device="cpu")
    np.testing.assert_allclose(read_volume(out), p, atol=1e-5)
    np.testing.assert_allclose(read_volume(tmp_path / "u.zarr"), u, atol=1e-5)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.zarr", "u.zarr"]


def test_tta_zarr_binary_equals_in_memory(tmp_path: Path) -> None:
    lr = _blobs((13, 10, 11), seed=8)
    m = _random_model(alpha=4)
    ref, u = superresolve(lr, m, tta=8, return_uncertainty=True, device="cpu")
    out = superresolve_zarr(lr, m, tmp_path / "b.zarr", chunk=5, tta=8,
                            uncertainty_out=tmp_path / "u.zarr", device="cpu")
    np.testing.assert_array_equal(read_volume(out), ref)
    np.testing.assert_allclose(read_volume(tmp_path / "u.zarr"), u, atol=1e-5)


def test_cli_tta_and_uncertainty_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app
    from twinsr.io import write_volume
    from twinsr.sr import save_bundle

    lr = _blobs((8, 7, 6), seed=9)
    m = _random_model()
    bundle = save_bundle(tmp_path / "m.pt", m.network, threshold=0.5)
    src = write_volume(tmp_path / "lr.npy", lr)
    run = CliRunner().invoke
    base = ["superresolve", str(src), "--model", str(bundle), "--device", "cpu",
            "--precision", "fp32"]
    res = run(app, [*base, "-o", str(tmp_path / "p.npy"), "--probabilities", "--tta", "8",
                    "--uncertainty-out", str(tmp_path / "u.npy"), "--tile", "4"])
    assert res.exit_code == 0, res.output
    p, u = superresolve(lr, m, probabilities=True, precision="fp32", tta=8,
                        return_uncertainty=True, device="cpu")
    np.testing.assert_allclose(read_volume(tmp_path / "p.npy"), p, atol=1e-6)
    np.testing.assert_allclose(read_volume(tmp_path / "u.npy"), u, atol=1e-6)
    res = run(app, [*base, "-o", str(tmp_path / "b.zarr"), "--tta", "8",
                    "--uncertainty-out", str(tmp_path / "u.zarr")])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(read_volume(tmp_path / "b.zarr"), (p >= 0.5).astype(np.uint8))
    np.testing.assert_allclose(read_volume(tmp_path / "u.zarr"), u, atol=1e-5)
    for args, msg in ((["--tta", "5"], r"`tta` must be one of \(1, 8, 48\)"),
                      (["--uncertainty-out", str(tmp_path / "x.npy")], "needs --tta 8"),
                      (["--precision", "fp16"], "`precision` must be one of")):
        res = run(app, [*base, "-o", str(tmp_path / "never.npy"), *args])
        assert res.exit_code == 1 and __import__("re").search(msg, res.output), res.output
    assert not (tmp_path / "never.npy").exists()
