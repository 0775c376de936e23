"""Tests of twinsr.sr.network: shapes, voxel shuffle, receptive field, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twinsr.exceptions import ConfigError
from twinsr.sr.network import PixelShuffle3d, PixelUnshuffle3d, SRResNet3d, receptive_field

torch.set_num_threads(2)


@pytest.mark.parametrize("alpha", [2, 4, 8])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape_every_alpha_and_inputs(alpha: int, in_channels: int) -> None:
    net = SRResNet3d(in_channels, alpha, channels=4, blocks=1)
    y = net(torch.zeros(2, in_channels, 3, 4, 5))
    assert y.shape == (2, 1, 3 * alpha, 4 * alpha, 5 * alpha)
    assert len(net.up) == int(np.log2(alpha))
    p = net.predict(torch.zeros(1, in_channels, 2, 2, 2))
    assert float(p.min()) > 0 and float(p.max()) < 1


@pytest.mark.parametrize("alpha", [2, 4, 8])
def test_tapered_network(alpha: int) -> None:
    net = SRResNet3d(1, alpha, channels=16, blocks=1, taper=True)
    assert net.widths == (16, 8, 4, 4)[: int(np.log2(alpha)) + 1]
    assert net.tail.in_channels == net.widths[-1]
    assert net(torch.zeros(1, 1, 3, 3, 3)).shape == (1, 1, 3 * alpha, 3 * alpha, 3 * alpha)
    assert net.arch_kwargs()["taper"] is True
    plain = SRResNet3d(1, alpha, channels=16, blocks=1)
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in plain.parameters())


def test_pixel_shuffle_and_unshuffle_are_inverse() -> None:
    g = torch.Generator().manual_seed(0)
    for r in (1, 2, 3):
        x = torch.randn(2, 3 * r**3, 2, 3, 4, generator=g)
        assert torch.equal(PixelUnshuffle3d(r)(PixelShuffle3d(r)(x)), x)
        z = torch.randn(1, 2, 2 * r, 3 * r, r, generator=g)
        assert torch.equal(PixelShuffle3d(r)(PixelUnshuffle3d(r)(z)), z)


def test_pixel_shuffle_layout() -> None:
    r = 2
    x = torch.arange(8 * 2 * 2 * 2, dtype=torch.float32).reshape(1, 8, 2, 2, 2)
    y = PixelShuffle3d(r)(x)
    for i in range(2):
        for j in range(2):
            for k in range(2):
                ch = i * 4 + j * 2 + k
                assert torch.equal(y[0, 0, i::2, j::2, k::2], x[0, ch])
    # with a singleton depth factor the layout reduces to torch's 2-D PixelShuffle
    x2 = torch.randn(1, 8, 1, 3, 5)
    ref = torch.nn.PixelShuffle(2)(x2[:, 4:, 0])  # i = 1 half of the channels
    assert torch.equal(PixelShuffle3d(2)(x2)[:, :, 1], ref)


def test_shuffle_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="divisible by 8"):
        PixelShuffle3d(2)(torch.zeros(1, 9, 2, 2, 2))
    with pytest.raises(ConfigError, match="divisible by 2"):
        PixelUnshuffle3d(2)(torch.zeros(1, 1, 3, 2, 2))
    with pytest.raises(ConfigError, match="integer >= 1"):
        PixelShuffle3d(0)


@pytest.mark.parametrize("scale", [3, 1, 16, 2.0, True])
def test_unsupported_scale_raises(scale: object) -> None:
    with pytest.raises(ConfigError, match="`scale` must be one of"):
        SRResNet3d(1, scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("c", [0, 2, 4])
def test_unsupported_in_channels_raises(c: int) -> None:
    with pytest.raises(ConfigError, match="`in_channels` must be 1"):
        SRResNet3d(c, 2)


def test_wrong_input_channels_in_forward() -> None:
    net = SRResNet3d(3, 2, channels=4, blocks=0)
    with pytest.raises(ConfigError, match=r"expects input \(N, 3"):
        net(torch.zeros(1, 1, 4, 4, 4))


def test_no_normalisation_layers() -> None:
    net = SRResNet3d(1, 8)
    norms = (torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d, torch.nn.GroupNorm, torch.nn.LayerNorm)
    assert not any(isinstance(m, norms) for m in net.modules())
    assert net.halo == receptive_field(8, 8) == 2 * 8 + 3 + 3


@pytest.mark.parametrize(("alpha", "taper"), [(2, False), (4, False), (4, True)])
def test_receptive_field_bounds_dependence(alpha: int, taper: bool) -> None:
    torch.manual_seed(0)
    net = SRResNet3d(1, alpha, channels=8, blocks=1, taper=taper).eval()
    n, j = 21, 10
    x = torch.rand(1, 1, n, n, n)
    x2 = x.clone()
    x2[0, 0, j, j, j] += 1.0
    with torch.no_grad():
        d = (net(x2) - net(x)).abs()[0, 0]
    changed = torch.nonzero(d > 0)
    h = net.halo
    lo, hi = alpha * (j - h), alpha * (j + h + 1)
    assert changed.numel() > 0
    assert int(changed.min()) >= lo and int(changed.max()) < hi
    # and the bound is not absurdly loose: the LR part of the field is reached
    assert int(changed[:, 0].min()) <= alpha * (j - (2 * net.blocks + 3)) + alpha
