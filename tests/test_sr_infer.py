"""Tests of tiled inference, model bundles and the threshold fit (twinsr.sr.infer/bundle/threshold)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from twinsr.exceptions import BundleError, ConfigError, ModelWarning, VolumeError
from twinsr.sr.bundle import SRModel, load_model, save_bundle
from twinsr.sr.infer import superresolve
from twinsr.sr.network import SRResNet3d
from twinsr.sr.threshold import PorosityErrorAccumulator, fit_threshold, porosity_error

torch.set_num_threads(2)


def _model(alpha: int = 2, inputs: str = "bin", blocks: int = 1, seed: int = 0,
           threshold: float = 0.5, axis: int = 0) -> SRModel:
    torch.manual_seed(seed)
    net = SRResNet3d(1 if inputs == "bin" else 3, alpha, channels=4, blocks=blocks)
    with torch.no_grad():  # larger weights so the output is far from constant
        for p in net.parameters():
            p.mul_(3.0)
    return SRModel(net.eval(), alpha=alpha, inputs=inputs, threshold=threshold,
                   transport_axis=axis if inputs == "diffu" else None)


def _untiled(model: SRModel, chans: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(chans.astype(np.float32))[None]
        return torch.sigmoid(model.network(x))[0, 0].numpy()


@pytest.mark.parametrize(("alpha", "blocks"), [(2, 1), (2, 2), (4, 1)])
def test_tiled_equals_untiled(alpha: int, blocks: int) -> None:
    rng = np.random.default_rng(alpha + blocks)
    shape = (19, 14, 23) if alpha == 2 else (13, 8, 11)
    lr = (rng.random(shape) < 0.5).astype(np.uint8)
    m = _model(alpha, blocks=blocks)
    ref = _untiled(m, lr[None])
    ticks = []
    tile = 6 if alpha == 2 else 4
    out = superresolve(lr, m, tile=tile, device="cpu", probabilities=True,
                       progress=lambda d, t: ticks.append((d, t)))
    assert out.shape == tuple(alpha * s for s in lr.shape) and out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-5
    n_tiles = int(np.prod([-(-s // tile) for s in shape]))
    assert ticks[-1] == (n_tiles, n_tiles) and n_tiles > 8
    assert np.std(ref) > 1e-3
    # a halo below the receptive field is measurably different (the test can fail)
    with pytest.warns(ModelWarning, match="below the network's receptive field"):
        short = superresolve(lr, m, tile=tile, overlap=1, device="cpu", probabilities=True)
    assert np.abs(short - ref).max() > 1e-4


def test_tiled_equals_untiled_three_channels() -> None:
    rng = np.random.default_rng(9)
    lr = (rng.random((13, 11, 12)) < 0.5).astype(np.uint8)
    d0 = np.where(lr == 0, rng.random(lr.shape), 0).astype(np.float32)
    d1 = np.where(lr == 1, rng.random(lr.shape), 0).astype(np.float32)
    stack = np.stack([lr.astype(np.float32), d0, d1])
    m = _model(2, inputs="diffu")
    ref = _untiled(m, stack)
    out = superresolve(stack, m, tile=5, device="cpu", probabilities=True)
    assert np.abs(out - ref).max() < 1e-5


def test_binary_output_uses_threshold_and_small_volumes() -> None:
    rng = np.random.default_rng(1)
    lr = (rng.random((3, 2, 5)) < 0.5).astype(bool)  # smaller than the tile, bool input
    m = _model(2, threshold=0.37)
    p = superresolve(lr, m, tile=64, device="cpu", probabilities=True)
    b = superresolve(lr, m, tile=64, device="cpu")
    assert b.dtype == np.uint8 and b.shape == (6, 4, 10)
    assert np.array_equal(b, (p >= 0.37).astype(np.uint8))
    one = superresolve(np.ones((1, 1, 1), np.uint8), m, device="cpu")
    assert one.shape == (2, 2, 2)


def test_identity_like_network_passes_through() -> None:
    """A network whose logits equal the nearest-upsampled input recovers it exactly."""
    net = SRResNet3d(1, 2, channels=1, blocks=0)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.head.weight[0, 0, 1, 1, 1] = 1.0  # h = x
        net.mid.weight.zero_()  # global skip keeps h
        net.up[0].conv.weight[:, 0, 1, 1, 1] = 1.0  # 8 sub-voxels copy h
        net.tail.weight[0, 0, 1, 1, 1] = 20.0
        net.tail.bias.fill_(-10.0)
    m = SRModel(net.eval(), alpha=2, inputs="bin", threshold=0.5)
    lr = (np.random.default_rng(2).random((9, 7, 8)) < 0.5).astype(np.uint8)
    out = superresolve(lr, m, tile=3, device="cpu")
    assert np.array_equal(out, lr.repeat(2, 0).repeat(2, 1).repeat(2, 2))


def test_bad_inputs() -> None:
    m = _model(2)
    with pytest.raises(VolumeError, match="must be binary"):
        superresolve(np.arange(27).reshape(3, 3, 3), m, device="cpu")
    with pytest.raises(VolumeError, match=r"has 2 channels .* model takes 1"):
        superresolve(np.zeros((2, 4, 4, 4)), m, device="cpu")
    with pytest.raises(VolumeError, match="must be 3-D"):
        superresolve(np.zeros((4, 4)), m, device="cpu")
    with pytest.raises(VolumeError, match="`tile` must be a positive integer"):
        superresolve(np.zeros((4, 4, 4)), m, tile=0, device="cpu")
    with pytest.raises(VolumeError, match="`overlap` must be a non-negative"):
        superresolve(np.zeros((4, 4, 4)), m, overlap=-1, device="cpu")
    with pytest.raises(VolumeError, match="NaN"):
        superresolve(np.full((3, 4, 4, 4), np.nan), _model(2, inputs="diffu"), device="cpu")


def test_bundle_roundtrip_and_run_folder(tmp_path: Path) -> None:
    m = _model(4, inputs="diffu", threshold=0.42)
    p = save_bundle(tmp_path / "model.pt", m.network, alpha=4, inputs="diffu", threshold=0.42,
                    transport_axis=0, metadata={"note": "x", "history": [1.0, 2.0]})
    for src in (p, tmp_path):
        back = load_model(src)
        assert back.alpha == 4 and back.inputs == "diffu" and back.in_channels == 3
        assert back.threshold == pytest.approx(0.42) and back.metadata["note"] == "x"
        assert back.halo == m.network.halo
        for k, v in m.network.state_dict().items():
            assert torch.equal(back.network.state_dict()[k], v)
    lr = (np.random.default_rng(0).random((5, 5, 5)) < 0.5).astype(np.uint8)
    stack = np.stack([lr, lr * 0.5, lr * 0.25]).astype(np.float32)
    assert np.array_equal(superresolve(stack, p, device="cpu"), superresolve(stack, m,
                                                                              device="cpu"))


def test_bundle_errors(tmp_path: Path) -> None:
    net = SRResNet3d(1, 2, channels=4, blocks=1)
    p = save_bundle(tmp_path / "m.pt", net, alpha=2, inputs="bin", threshold=0.5)
    with pytest.raises(BundleError, match="alpha=2, not alpha=4"):
        load_model(p, alpha=4)
    with pytest.raises(BundleError, match="expects inputs='bin'"):
        load_model(p, inputs="diffu")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(p.read_bytes()[:100])
    with pytest.raises(BundleError, match="corrupt or not a twinsr bundle"):
        load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(BundleError, match="not a twinsr model bundle"):
        load_model(other)
    payload = torch.load(p, weights_only=True)
    payload["arch"]["channels"] = 8
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(BundleError, match="inconsistent"):
        load_model(tmp_path / "mismatch.pt")
    payload = torch.load(p, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(BundleError, match="format version 99"):
        load_model(tmp_path / "future.pt")
    with pytest.raises(BundleError, match="no model bundle"):
        load_model(tmp_path / "missing")
    with pytest.raises(BundleError, match="disagrees with the network's scale"):
        save_bundle(tmp_path / "x.pt", net, alpha=4, inputs="bin", threshold=0.5)
    with pytest.raises(BundleError, match="needs in_channels=3"):
        save_bundle(tmp_path / "x.pt", net, alpha=2, inputs="diffu", threshold=0.5)
    with pytest.raises(BundleError, match=r"threshold must be in \(0, 1\)"):
        save_bundle(tmp_path / "x.pt", net, alpha=2, inputs="bin", threshold=1.0)


@pytest.mark.parametrize("mu", [0.23, 0.5, 0.81])
def test_fit_threshold_recovers_known_mu(mu: float) -> None:
    rng = np.random.default_rng(int(mu * 100))
    hr = (rng.random((12, 16, 16, 16)) < rng.uniform(0.2, 0.8, (12, 1, 1, 1))).astype(np.uint8)
    # solid voxels get p in [mu, 1), pore voxels p in [0, mu): thresholding at mu is exact
    p = np.where(hr == 1, mu + (1 - mu) * rng.random(hr.shape),
                 mu * rng.random(hr.shape)).astype(np.float32)
    fitted = fit_threshold(p, hr)
    assert fitted == pytest.approx(mu, abs=2e-3)
    assert porosity_error(p, hr, fitted) < 2e-3
    assert porosity_error(p, hr, mu + 0.05) > 0.01


def test_fit_threshold_beats_default_on_biased_probabilities() -> None:
    rng = np.random.default_rng(3)
    hr = (rng.random((8, 12, 12, 12)) < 0.4).astype(np.uint8)
    logits = np.where(hr == 1, 1.0, -1.0) + rng.normal(0, 1.5, hr.shape) - 0.8  # biased to pore
    p = 1 / (1 + np.exp(-logits))
    mu = fit_threshold(list(p), list(hr))
    assert porosity_error(p, hr, mu) < 0.5 * porosity_error(p, hr, 0.5)
    assert mu < 0.5


def test_fit_threshold_bad_input() -> None:
    with pytest.raises(VolumeError, match="2 probability crops but 1 HR"):
        fit_threshold([np.zeros(3), np.zeros(3)], [np.zeros(3)])
    with pytest.raises(VolumeError, match="no crops"):
        fit_threshold([], [])
    with pytest.raises(VolumeError, match="within \\[0, 1\\]"):
        fit_threshold([np.full(3, 1.5)], [np.zeros(3)])
    with pytest.raises(VolumeError, match="differs from HR crop shape"):
        fit_threshold([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(VolumeError, match="no crops added"):
        PorosityErrorAccumulator().error(0.5)


def test_accumulator_error_follows_added_crops() -> None:
    rng = np.random.default_rng(3)
    crops = [(rng.random((6, 6, 6)), (rng.random((6, 6, 6)) < f).astype(np.uint8))
             for f in (0.2, 0.8)]
    acc = PorosityErrorAccumulator(64)
    acc.add(*crops[0])
    mus = (16 / 64, 40 / 64)  # bin edges, where the histogram form is exact
    first = acc.error(mus)
    acc.add(*crops[1])  # the error must include the new crop, not a stale stack
    both = acc.error(mus)
    for mu, e in zip(mus, both, strict=True):
        assert e == pytest.approx(porosity_error([c[0] for c in crops], [c[1] for c in crops], mu),
                                  abs=1e-12)
    assert not np.allclose(first, both)


def test_diffu_model_computes_channels_along_its_own_axis() -> None:
    """A model trained along axis 1 is fed channels solved along axis 1 by default; an explicit
    axis that disagrees is refused (it used to be silently fed axis-0 channels)."""
    from twinsr.transport import diffusion_channels

    rng = np.random.default_rng(4)
    lr = (rng.random((10, 9, 8)) < 0.45).astype(np.uint8)
    lr[:, :, 0] = 0  # a straight pore channel and a straight solid wall: both phases percolate
    lr[:, :, -1] = 1
    m = _model(2, inputs="diffu", axis=1)
    d = diffusion_channels(lr, axis=1, device="cpu")
    ref = _untiled(m, np.concatenate([lr[None].astype(np.float32), d]))
    out = superresolve(lr, m, tile=4, device="cpu", probabilities=True)  # axis=None: the model's
    assert np.abs(out - ref).max() < 1e-5
    same = superresolve(lr, m, tile=4, axis=1, device="cpu", probabilities=True)
    np.testing.assert_array_equal(same, out)
    with pytest.raises(ConfigError, match=r"solved along axis 1 .* axis=0 was requested"):
        superresolve(lr, m, tile=4, axis=0, device="cpu")
    # the axis matters: the same weights fed axis-0 channels give another result
    m0 = SRModel(m.network, alpha=2, inputs="diffu", threshold=0.5, transport_axis=0)
    other_axis = superresolve(lr, m0, tile=4, device="cpu", probabilities=True)
    assert np.abs(other_axis - ref).max() > 1e-4


def test_axis_refused_for_bundles_and_zarr(tmp_path: Path) -> None:
    from twinsr.scale import superresolve_zarr

    m = _model(2, inputs="diffu", axis=2)
    p = save_bundle(tmp_path / "m.pt", m.network, threshold=0.5, transport_axis=2)
    lr = (np.random.default_rng(1).random((6, 6, 6)) < 0.5).astype(np.uint8)
    with pytest.raises(ConfigError, match="solved along axis 2"):
        superresolve(lr, p, axis=1, device="cpu")
    with pytest.raises(ConfigError, match="solved along axis 2"):
        superresolve_zarr(lr, p, tmp_path / "o.zarr", axis=0, device="cpu")
    assert not (tmp_path / "o.zarr.partial").exists()
    # binary-input morphology models have no transport axis: any axis is accepted and unused
    b = _model(2)
    assert b.transport_axis is None
    np.testing.assert_array_equal(superresolve(lr, b, axis=2, device="cpu"),
                                  superresolve(lr, b, device="cpu"))


def test_bare_network_needs_what_the_bundle_would_record() -> None:
    lr = (np.random.default_rng(2).random((5, 5, 5)) < 0.5).astype(np.uint8)
    m = _model(2, threshold=0.4)
    ref = superresolve(lr, m, device="cpu")
    np.testing.assert_array_equal(superresolve(lr, m.network, threshold=0.4, device="cpu"), ref)
    p = superresolve(lr, m.network, probabilities=True, device="cpu")
    np.testing.assert_array_equal((p >= 0.4).astype(np.uint8), ref)
    with pytest.raises(ConfigError, match="pass `threshold=`"):
        superresolve(lr, m.network, device="cpu")
    d = _model(2, inputs="diffu", axis=1)
    with pytest.raises(ConfigError, match="needs `axis=`"):
        superresolve(lr, d.network, threshold=0.5, device="cpu")
    np.testing.assert_array_equal(superresolve(lr, d.network, threshold=0.5, axis=1, device="cpu"),
                                  superresolve(lr, d, device="cpu"))
    with pytest.raises(ConfigError, match="must be an SRModel, a bundle file"):
        superresolve(lr, {"weights": 1}, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="no model bundle"):
        superresolve(lr, "no/such/run", device="cpu")


def test_threshold_override_and_overlap_warning() -> None:
    lr = (np.random.default_rng(3).random((6, 6, 6)) < 0.5).astype(np.uint8)
    m = _model(2, threshold=0.5)
    p = superresolve(lr, m, probabilities=True, device="cpu")
    np.testing.assert_array_equal(superresolve(lr, m, threshold=0.3, device="cpu"),
                                  (p >= 0.3).astype(np.uint8))
    assert m.threshold == 0.5  # the model itself is unchanged
    with pytest.warns(ModelWarning, match="below the network's receptive field"):
        superresolve(lr, m, tile=3, overlap=1, device="cpu")


# ---- fast inference: FastNetwork, precision, tile sizes, memory budget -----------------------


@pytest.mark.parametrize(("alpha", "kw"), [
    (2, {"channels": 8, "blocks": 2}), (4, {"channels": 8, "blocks": 1, "taper": True}),
    (8, {"channels": 8, "blocks": 1, "taper": True, "res_scale": 0.3}),
    (2, {"channels": 4, "blocks": 1, "out_channels": 3}),
    (4, {"channels": 4, "blocks": 0, "in_channels": 3, "out_channels": 3})])
def test_fast_network_equals_forward(alpha: int, kw: dict) -> None:
    from twinsr.sr.runtime import FastNetwork

    torch.manual_seed(alpha)
    cin = kw.pop("in_channels", 1)
    net = SRResNet3d(cin, alpha, **kw).eval()
    x = torch.rand(1, cin, 5, 4, 6)
    fast = FastNetwork(net, device="cpu", precision="fp32")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        ref = net(x)
        got = fast.upsample(fast.features(x))
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5)
    assert fast.feature_halo + fast.upsample_halo == net.halo
    for k, v in net.state_dict().items():  # the network itself is untouched (dtype, layout)
        assert torch.equal(v, before[k]) and v.dtype == torch.float32


@pytest.mark.parametrize("alpha", [2, 4, 8])
def test_upsample_box_equals_the_slice_of_the_whole(alpha: int) -> None:
    """Pieces of the HR outputs (each stage on the region its successor reads) equal the
    corresponding part of the whole tile's outputs, at borders and inside."""
    from twinsr.sr.runtime import FastNetwork

    torch.manual_seed(alpha)
    net = SRResNet3d(1, alpha, channels=8, blocks=1, taper=True, out_channels=3).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    fast = FastNetwork(net, device="cpu", precision="fp32")
    with torch.no_grad():
        h = fast.features(torch.rand(1, 1, 9, 8, 7))
        whole = fast.upsample(h)
        assert whole.shape == (1, 3, 9 * alpha, 8 * alpha, 7 * alpha)
        for box in ([(0, 3), (0, 8), (2, 7)], [(4, 5), (3, 6), (0, 1)], [(6, 9), (7, 8), (1, 7)]):
            got = fast.upsample_box(h, box)
            ref = whole[(slice(None), slice(None),
                         *(slice(alpha * lo, alpha * hi) for lo, hi in box))]
            assert got.shape == ref.shape
            assert torch.allclose(got, ref, atol=1e-5), box


def test_precision_option_and_native_detection() -> None:
    from twinsr.sr.runtime import native_bf16, resolve_precision

    flags: set[str] = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    expected = bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    assert native_bf16("cpu") == expected
    assert resolve_precision("auto", "cpu") == ("bf16" if expected else "fp32")
    lr = (np.random.default_rng(7).random((6, 6, 6)) < 0.5).astype(np.uint8)
    with pytest.raises(ConfigError, match=r"`precision` must be one of \('auto', 'fp32', 'bf16'\)"):
        superresolve(lr, _model(2), precision="fp16", device="cpu")


def test_bf16_is_close_to_fp32_and_tile_independent() -> None:
    rng = np.random.default_rng(5)
    lr = (rng.random((10, 9, 11)) < 0.5).astype(np.uint8)
    m = _model(2, blocks=2)
    p32 = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
    p16 = superresolve(lr, m, probabilities=True, precision="bf16", device="cpu")
    diff = np.abs(p16 - p32)  # (a random network with large weights: the worst case)
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.01  # bf16 is really used, and stays close
    assert np.mean((p16 >= 0.5) == (p32 >= 0.5)) > 0.99
    ref16 = superresolve(lr, m, precision="bf16", device="cpu")
    np.testing.assert_array_equal(ref16, (p16 >= 0.5).astype(np.uint8))
    for prec, ref in (("fp32", p32), ("bf16", p16)):  # a tile-size sweep gives the same output
        binary = (ref >= 0.5).astype(np.uint8)
        for tile in (4, 7):
            got = superresolve(lr, m, probabilities=True, precision=prec, tile=tile,
                               device="cpu")
            np.testing.assert_allclose(got, ref, atol=1e-5, err_msg=f"{prec} tile={tile}")
            np.testing.assert_array_equal(
                superresolve(lr, m, precision=prec, tile=tile, device="cpu"), binary)


def test_auto_precision_probes_agreement(monkeypatch: pytest.MonkeyPatch) -> None:
    import twinsr.sr.engine as engine
    from twinsr.sr.runtime import native_bf16

    rng = np.random.default_rng(6)
    lr = (rng.random((10, 9, 8)) < 0.5).astype(np.uint8)
    m = _model(2)
    p32 = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
    p16 = superresolve(lr, m, probabilities=True, precision="bf16", device="cpu")
    # small outputs run in float32 whatever the hardware
    np.testing.assert_array_equal(superresolve(lr, m, probabilities=True, device="cpu"), p32)
    read = lambda sl: [lr[sl]]  # noqa: E731
    assert engine.choose_precision("auto", m, lr.shape, read, device="cpu") == "fp32"
    monkeypatch.setattr(engine, "PROBE_MIN_OUTPUT", 0)
    monkeypatch.setattr(engine, "PROBE_AGREEMENT", 2.0)  # no probe can pass
    assert engine.choose_precision("auto", m, lr.shape, read, device="cpu") == "fp32"
    np.testing.assert_array_equal(superresolve(lr, m, probabilities=True, device="cpu"), p32)
    monkeypatch.setattr(engine, "PROBE_AGREEMENT", 0.0)  # every probe passes
    want = "bf16" if native_bf16("cpu") else "fp32"
    assert engine.choose_precision("auto", m, lr.shape, read, device="cpu") == want
    auto = superresolve(lr, m, probabilities=True, device="cpu")
    np.testing.assert_array_equal(auto, p16 if want == "bf16" else p32)
    agree = engine.bf16_agreement(m, [lr], device="cpu")
    assert agree == pytest.approx(np.mean((p16 >= 0.5) == (p32 >= 0.5)), abs=1e-9)


def test_memory_budget_sets_the_tiles() -> None:
    from twinsr.exceptions import MemoryBudgetError

    rng = np.random.default_rng(8)
    lr = (rng.random((30, 28, 26)) < 0.5).astype(np.uint8)
    m = _model(2, blocks=1)
    ref = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
    ticks: list[tuple[int, int]] = []
    small = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu",
                         memory_budget=3 * 2**20, progress=lambda d, t: ticks.append((d, t)))
    assert ticks[-1][1] == 8  # the budget forced 2 x 2 x 2 tiles (of 16³ LR voxels)
    np.testing.assert_allclose(small, ref, atol=1e-5)
    with pytest.raises(ConfigError, match="`memory_budget` must be an integer number of bytes"):
        superresolve(lr, m, memory_budget=1000, device="cpu")
    big = SRModel(SRResNet3d(1, 8, channels=64, blocks=8), threshold=0.5)
    with pytest.raises(MemoryBudgetError, match="raise `memory_budget`"):
        superresolve(lr, big, memory_budget=2**21, device="cpu")
