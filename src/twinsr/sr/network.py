"""3D super-resolution networks: voxel shuffle layers and an SRResNet-style 3D network.

Layers of :class:`SRResNet3d` (``C`` = ``channels``, ``B`` = ``blocks``, ``s`` = ``scale``)::

    head   Conv3d(in_channels -> C, k=3, pad=1)                                   [LR grid]
    body   B x ResBlock: x + res_scale * Conv3d(C->C,k3) (ReLU (Conv3d(C->C,k3) x))  [LR grid]
    mid    Conv3d(C -> C, k=3, pad=1), then the global skip  mid(body(h)) + h         [LR grid]
    up     log2(s) x [Conv3d(C_k-1 -> 8C_k, k=3, pad=1) -> PixelShuffle3d(2) -> ReLU] [LR -> HR]
    tail   Conv3d(C_K -> out_channels, k=3, pad=1)                                 [HR grid]

with C_k = C for the plain SRResNet (``taper=False``, the paper-style network) or
C_k = max(4, C / 2^k) with ``taper=True``: the feature width halves at every upsampling stage,
which cuts the cost of the fine grids (at α = 8 the last up-convolution dominates: 3.5 of 4.3
GMAC per 10³ LR crop with C = 16) by about 30× for CPU training.

``forward`` returns **logits** of the solid phase (train with ``BCEWithLogitsLoss``); the
sigmoid is applied by :meth:`SRResNet3d.predict` and by :func:`twinsr.sr.infer.superresolve`.
With ``out_channels=3`` (physics output, spec §4) channels 1 and 2 are the HR pore and solid
diffusion solutions, bounded to (0, 1) by a sigmoid inside ``forward``; channel 0 stays a logit.

No normalisation layers: at α = 8 the paper trains with batch size 1, where BatchNorm's batch
statistics are meaningless, and BatchNorm would also make tiled inference depend on the tile
(EDSR drops it from SRResNet for the same reasons). Every convolution is zero-padded ("same"),
so the network accepts any LR size >= 1 voxel per axis.

References
----------
Spec §2.2 (SRResNet-style 3D network, PixelShuffle3D + ReLU once per factor 2, sigmoid output).
Ledig et al. 2017 (SRResNet); Lim et al. 2017 (EDSR, no BatchNorm); Shi et al. 2016 (sub-pixel
convolution).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from twinsr.exceptions import ConfigError

__all__ = ["PixelShuffle3d", "PixelUnshuffle3d", "ResBlock3d", "SRResNet3d", "receptive_field"]

SUPPORTED_SCALES = (2, 4, 8)
SUPPORTED_IN_CHANNELS = (1, 3)
SUPPORTED_OUT_CHANNELS = (1, 3)


def _check_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _VoxelShuffleBase(nn.Module):
    """Shared state of the 3-D voxel (un)shuffle layers: the factor ``r`` per axis."""

    def __init__(self, r: int) -> None:
        super().__init__()
        self.r = _check_int(r, "r")

    def extra_repr(self) -> str:
        return f"r={self.r}"


class PixelShuffle3d(_VoxelShuffleBase):
    """Rearrange ``(N, C·r³, D, H, W)`` into ``(N, C, D·r, H·r, W·r)`` (3-D sub-pixel shuffle).

    Output voxel ``(c, d·r + i, h·r + j, w·r + k)`` is input channel ``c·r³ + i·r² + j·r + k`` at
    ``(d, h, w)`` — the 3-D analogue of :class:`torch.nn.PixelShuffle`.

    Parameters
    ----------
    r : int
        Upscaling factor per axis (>= 1).

    Examples
    --------
    >>> import torch
    >>> PixelShuffle3d(2)(torch.zeros(1, 16, 3, 3, 3)).shape
    torch.Size([1, 2, 6, 6, 6])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        r = self.r
        if c % (r**3):
            raise ConfigError(f"PixelShuffle3d({r}) needs channels divisible by {r**3}, got {c}")
        co = c // r**3
        x = x.reshape(n, co, r, r, r, d, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
        return x.reshape(n, co, d * r, h * r, w * r)


class PixelUnshuffle3d(_VoxelShuffleBase):
    """Inverse of :class:`PixelShuffle3d`: ``(N, C, D·r, H·r, W·r)`` -> ``(N, C·r³, D, H, W)``.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(1, 2, 4, 6, 8)
    >>> torch.equal(PixelShuffle3d(2)(PixelUnshuffle3d(2)(x)), x)
    True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        r = self.r
        if d % r or h % r or w % r:
            raise ConfigError(
                f"PixelUnshuffle3d({r}) needs spatial sizes divisible by {r}, got {(d, h, w)}"
            )
        x = x.reshape(n, c, d // r, r, h // r, r, w // r, r)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
        return x.reshape(n, c * r**3, d // r, h // r, w // r)


class ResBlock3d(nn.Module):
    """``x + res_scale · conv2(relu(conv1(x)))`` with 3×3×3 zero-padded convolutions."""

    def __init__(self, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.act(self.conv1(x)))


class _UpStage(nn.Module):
    """Conv3d(C_in -> 8·C_out, k=3) -> PixelShuffle3d(2) -> ReLU: doubles every spatial axis."""

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        c_out = channels if out_channels is None else out_channels
        self.conv = nn.Conv3d(channels, c_out * 8, 3, padding=1)
        self.shuffle = PixelShuffle3d(2)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


def receptive_field(scale: int, blocks: int) -> int:
    """Halo of :class:`SRResNet3d` in LR voxels: a bound on how far an output voxel looks.

    Every 3×3×3 convolution on the LR grid widens the dependence by one LR voxel per side
    (head, 2 per residual block, mid, the first up-convolution: ``2·blocks + 3``). A 3×3×3
    convolution on a finer grid (the later up-convolutions and the tail) reaches one fine voxel,
    which lies in at most one further LR voxel per side. Hence the halo is
    ``2·blocks + 3 + log2(scale)`` LR voxels (an upper bound; exact on the LR part).

    Examples
    --------
    >>> receptive_field(2, 8)
    20
    """
    s = _check_scale(scale)
    b = _check_int(blocks, "blocks", minimum=0)
    return 2 * b + 3 + int(math.log2(s))


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SUPPORTED_SCALES:
        raise ConfigError(
            f"`scale` must be one of {SUPPORTED_SCALES} (a power of two, one upsampling stage "
            f"per factor 2), got {scale!r}"
        )
    return int(scale)


class SRResNet3d(nn.Module):
    """SRResNet-style 3-D super-resolution network for binary volumes (spec §2.2).

    Parameters
    ----------
    in_channels : {1, 3}
        1 = binary LR image; 3 = binary LR + pore and solid diffusion solutions (spec §2.1.4).
    scale : {2, 4, 8}
        Upscaling factor α per axis.
    channels : int
        Feature channels ``C`` (paper-style 64).
    blocks : int
        Number of residual blocks (paper: 8).
    res_scale : float
        Scaling of each residual branch (1.0 = plain SRResNet; < 1 stabilises wide networks).
    taper : bool
        Halve the feature width at every upsampling stage (minimum 4), see the module notes.
    out_channels : {1, 3}
        1 = solid logit only (default); 3 = solid logit + HR pore and solid diffusion solutions
        (sigmoid-bounded, see :mod:`twinsr.sr.physics`).

    Notes
    -----
    Input ``(N, in_channels, z, y, x)`` float32, output ``(N, out_channels, αz, αy, αx)``:
    channel 0 the solid logit, channels 1–2 (if present) solutions in (0, 1).
    Halo (receptive-field radius bound) in LR voxels: :attr:`halo` = ``2·blocks + 3 + log2 α``
    (20 for the paper network at α = 2). Parameters: about ``27·C²·(2·blocks + 2 + 8·log2 α)``.
    Peak training memory is dominated by the activations of the HR grid, ≈ ``4·C·(αn)³`` bytes per
    crop and stage for an LR crop of ``n³``.

    Raises
    ------
    ConfigError
        Unsupported ``scale``, ``in_channels`` or ``out_channels``, non-positive
        ``channels``/negative ``blocks``.

    Examples
    --------
    >>> import torch
    >>> net = SRResNet3d(1, 2, channels=4, blocks=1)
    >>> net(torch.zeros(1, 1, 5, 6, 7)).shape
    torch.Size([1, 1, 10, 12, 14])
    """

    def __init__(
        self,
        in_channels: int,
        scale: int,
        *,
        channels: int = 64,
        blocks: int = 8,
        res_scale: float = 1.0,
        taper: bool = False,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or in_channels not in SUPPORTED_IN_CHANNELS:
            raise ConfigError(
                f"`in_channels` must be 1 (binary LR) or 3 (binary LR + 2 diffusion channels), "
                f"got {in_channels!r}"
            )
        if isinstance(out_channels, bool) or out_channels not in SUPPORTED_OUT_CHANNELS:
            raise ConfigError(
                f"`out_channels` must be 1 (solid logit) or 3 (logit + pore and solid HR "
                f"solutions), got {out_channels!r}"
            )
        self.out_channels = int(out_channels)
        self.scale = _check_scale(scale)
        self.in_channels = int(in_channels)
        self.channels = _check_int(channels, "channels")
        self.blocks = _check_int(blocks, "blocks", minimum=0)
        self.res_scale = float(res_scale)
        self.taper = bool(taper)
        widths = [self.channels]
        for k in range(1, int(math.log2(self.scale)) + 1):
            widths.append(max(4, self.channels >> k) if self.taper else self.channels)
        self.widths = tuple(widths)
        self.head = nn.Conv3d(self.in_channels, self.channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock3d(self.channels, res_scale) for _ in range(blocks)])
        self.mid = nn.Conv3d(self.channels, self.channels, 3, padding=1)
        self.up = nn.Sequential(*[_UpStage(widths[k], widths[k + 1])
                                  for k in range(len(widths) - 1)])
        self.tail = nn.Conv3d(widths[-1], self.out_channels, 3, padding=1)

    @property
    def halo(self) -> int:
        """Receptive-field bound in LR voxels (see :func:`receptive_field`)."""
        return receptive_field(self.scale, self.blocks)

    @property
    def receptive_field(self) -> int:
        """Alias of :attr:`halo`."""
        return self.halo

    def arch_kwargs(self) -> dict[str, int | float]:
        """The constructor arguments, to rebuild the same architecture.

        ``out_channels`` is listed only when it is not 1, so single-output bundles stay exactly
        as before.
        """
        kw: dict[str, int | float] = {
            "in_channels": self.in_channels, "scale": self.scale, "channels": self.channels,
            "blocks": self.blocks, "res_scale": self.res_scale, "taper": self.taper}
        if self.out_channels != 1:
            kw["out_channels"] = self.out_channels
        return kw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"SRResNet3d expects input (N, {self.in_channels}, z, y, x), got {tuple(x.shape)}"
            )
        h = self.head(x)
        h = self.mid(self.body(h)) + h
        y = self.tail(self.up(h))
        if self.out_channels == 1:
            return y
        return torch.cat([y[:, :1], torch.sigmoid(y[:, 1:])], dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Solid-phase probabilities ``sigmoid(forward(x))`` in (0, 1), without gradients.

        With ``out_channels=3`` channel 0 is the probability, channels 1–2 the solutions.
        """
        y = self.forward(x)
        if self.out_channels == 1:
            return torch.sigmoid(y)
        return torch.cat([torch.sigmoid(y[:, :1]), y[:, 1:]], dim=1)
