"""Fast inference form of :class:`~twinsr.sr.network.SRResNet3d`: precision, layout, fused tail.

:class:`FastNetwork` runs the same weights as the network it is built from (the network itself is
not modified) in two parts, so that tiled inference can cut the work where it is cheapest:

* :meth:`FastNetwork.features` — head, residual body, mid convolution and global skip on the LR
  grid. Its receptive field is :attr:`FastNetwork.feature_halo` ``= 2·blocks + 2`` LR voxels.
* :meth:`FastNetwork.upsample_box` — the up-sampling stages and the tail, from LR features to
  the HR outputs of any box of LR blocks. Every stage runs only on the region its successor
  reads (±1 voxel of its own grid), so the large HR tensors are computed in small pieces with a
  halo of a few fine voxels while the features are computed once on a large tile
  (:mod:`twinsr.sr.engine`). The features are read within :attr:`FastNetwork.upsample_halo`
  ``= 1 + log2 α`` LR voxels of the box (a bound; 2 suffice).

Three changes make it faster than ``network.forward`` at equal results:

1. **Layout**: every tensor is ``torch.channels_last_3d`` (what oneDNN's convolutions use
   natively; the default layout makes each convolution reorder its input and output). The voxel
   shuffle is written for that layout (one copy, result again channels-last).
2. **Fused tail**: the last up-sampling stage's voxel shuffle and the tail convolution (one
   output channel on the HR grid, a shape oneDNN runs at a few GFLOP/s) are replaced by one
   3×3×3 convolution on the grid before the shuffle, from ``8·C`` to ``8·out_channels``
   channels, whose weights (:func:`fused_tail_weights`) place each HR tap at its (LR offset,
   sub-voxel) position; only the small output is shuffled. It is the same linear map (8× more
   multiply-adds, most of them by zero), so results equal the plain forward to float round-off.
3. **Precision**: ``"bf16"`` casts weights and activations to bfloat16 (products summed in
   float32 by oneDNN / cuDNN); the outputs are returned in float32. :func:`resolve_precision`
   picks it for ``"auto"`` where the hardware supports bfloat16 natively
   (:func:`native_bf16`); elsewhere bfloat16 is emulated and slower than float32.

Examples
--------
>>> import torch
>>> from twinsr.sr.network import SRResNet3d
>>> net = SRResNet3d(1, 2, channels=4, blocks=1).eval()
>>> fast = FastNetwork(net, device="cpu", precision="fp32")
>>> x = torch.rand(1, 1, 5, 6, 7)
>>> y = fast.upsample(fast.features(x))
>>> y.shape, bool(torch.allclose(y, net(x), atol=1e-5))
(torch.Size([1, 1, 10, 12, 14]), True)
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import platform
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from twinsr.exceptions import ConfigError
from twinsr.sr.network import SRResNet3d

__all__ = [
    "PRECISIONS",
    "FastNetwork",
    "conv_flops_per_output_voxel",
    "fused_tail_weights",
    "native_bf16",
    "resolve_precision",
    "shuffle_channels_last",
]

PRECISIONS = ("auto", "fp32", "bf16")
_CL = torch.channels_last_3d
_HEAD_IN = {"bf16": {1: 2, 3: 4}, "fp32": {1: 3}}  # network inputs -> head input channels


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: str = "cpu") -> bool:
    """Whether bfloat16 convolutions run natively (faster than float32) on ``device``.

    CUDA: :func:`torch.cuda.is_bf16_supported` (compute capability >= 8.0, e.g. A100, H100).
    CPU: oneDNN is available (:func:`torch.backends.mkldnn.is_available`) and the CPU has
    bfloat16 dot-product instructions — the ``avx512_bf16`` or ``amx_bf16`` flag of
    ``/proc/cpuinfo`` (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later). Where
    ``/proc/cpuinfo`` is missing (macOS, Windows) the answer is False: Apple and ARM CPUs run
    bfloat16 convolutions through slower paths in current torch builds.

    Parameters
    ----------
    device : str
        A resolved device ("cpu", "cuda", "cuda:N").

    Examples
    --------
    >>> isinstance(native_bf16("cpu"), bool)
    True
    """
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if not torch.backends.mkldnn.is_available() or platform.machine().lower() not in (
            "x86_64", "amd64"):
        return False
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: str) -> str:
    """``"fp32"`` or ``"bf16"`` for a requested ``precision`` on a resolved ``device``.

    ``"auto"`` is ``"bf16"`` where :func:`native_bf16` holds, else ``"fp32"``.

    Raises
    ------
    ConfigError
        ``precision`` is not one of :data:`PRECISIONS`.

    Examples
    --------
    >>> resolve_precision("fp32", "cpu")
    'fp32'
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"`precision` must be one of {PRECISIONS} ('auto' = bf16 where the "
                          f"hardware supports it natively, else fp32), got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return str(precision)


def shuffle_channels_last(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """:class:`~twinsr.sr.network.PixelShuffle3d` for a channels-last tensor, result channels-last.

    ``(N, C·r³, D, H, W)`` -> ``(N, C, D·r, H·r, W·r)`` with output voxel
    ``(c, d·r + i, h·r + j, w·r + k)`` = input channel ``c·r³ + i·r² + j·r + k`` at ``(d, h, w)``;
    one copy.

    Examples
    --------
    >>> from twinsr.sr.network import PixelShuffle3d
    >>> x = torch.randn(1, 16, 2, 3, 4)
    >>> torch.equal(shuffle_channels_last(x.contiguous(memory_format=torch.channels_last_3d)),
    ...             PixelShuffle3d(2)(x))
    True
    """
    n, c, d, h, w = x.shape
    co = c // r**3
    y = x.permute(0, 2, 3, 4, 1).reshape(n, d, h, w, co, r, r, r)
    y = y.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, d * r, h * r, w * r, co)
    return y.permute(0, 4, 1, 2, 3)


def fused_tail_weights(weight: torch.Tensor, bias: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights of one LR-grid convolution equal to "voxel shuffle by 2, then a 3×3×3 convolution".

    A tap at HR offset ``δ ∈ {-1, 0, 1}`` of HR sub-voxel ``s ∈ {0, 1}`` reads sub-voxel
    ``s' = (s + δ) mod 2`` of the LR voxel at offset ``o = (s + δ − s') / 2``; so output channel
    ``co·8 + s`` (the shuffle's channel order) of the fused convolution takes input channel
    ``c·8 + s'`` at kernel position ``o + 1`` with the weight of tap ``δ = 2·o + s' − s``.

    Parameters
    ----------
    weight : Tensor, shape (C_out, C, 3, 3, 3)
        The HR-grid convolution (zero padding 1).
    bias : Tensor, shape (C_out,), optional

    Returns
    -------
    (Tensor (8·C_out, 8·C, 3, 3, 3), Tensor (8·C_out,) or None)
        For a zero-padded 3×3×3 convolution on the LR grid whose output, shuffled, equals the
        HR convolution of the shuffled input.

    Examples
    --------
    >>> from twinsr.sr.network import PixelShuffle3d
    >>> w, b = torch.randn(1, 2, 3, 3, 3), torch.randn(1)
    >>> x = torch.randn(1, 16, 3, 4, 5)
    >>> wf, bf = fused_tail_weights(w, b)
    >>> ref = F.conv3d(PixelShuffle3d(2)(x), w, b, padding=1)
    >>> bool(torch.allclose(PixelShuffle3d(2)(F.conv3d(x, wf, bf, padding=1)), ref, atol=1e-5))
    True
    """
    co, c = int(weight.shape[0]), int(weight.shape[1])
    w = weight.detach()
    fused = torch.zeros(co, 8, c, 8, 3, 3, 3, dtype=w.dtype, device=w.device)
    for s, sp, o in itertools.product(itertools.product((0, 1), repeat=3),
                                      itertools.product((0, 1), repeat=3),
                                      itertools.product((-1, 0, 1), repeat=3)):
        d = [2 * o[k] + sp[k] - s[k] for k in range(3)]
        if all(-1 <= dk <= 1 for dk in d):
            si, spi = s[0] * 4 + s[1] * 2 + s[2], sp[0] * 4 + sp[1] * 2 + sp[2]
            fused[:, si, :, spi, o[0] + 1, o[1] + 1, o[2] + 1] = w[:, :, d[0] + 1, d[1] + 1,
                                                                    d[2] + 1]
    b = None if bias is None else bias.detach().repeat_interleave(8)
    return fused.reshape(co * 8, c * 8, 3, 3, 3), b


def conv_flops_per_output_voxel(net: SRResNet3d) -> float:
    """Convolution FLOPs (2 per multiply-add) of ``net.forward`` per HR output voxel.

    Counts the network's own layers (head, body, mid, up-sampling stages, tail), not the extra
    zero taps of the fused tail, so that GFLOP/s compare with other implementations.

    Examples
    --------
    >>> conv_flops_per_output_voxel(SRResNet3d(1, 2, channels=16, blocks=4, taper=True))
    23004.0
    """
    a3 = float(net.scale) ** 3
    k = 2 * 27
    c = net.channels
    lr = k * net.in_channels * c + (2 * net.blocks + 1) * k * c * c
    total = lr / a3
    grid = 1.0  # voxels of the current grid per LR voxel
    for i in range(len(net.widths) - 1):
        total += k * net.widths[i] * 8 * net.widths[i + 1] * grid / a3
        grid *= 8
    return total + k * net.widths[-1] * net.out_channels


class FastNetwork:
    """Inference-only copy of an :class:`SRResNet3d` (see the module notes).

    Parameters
    ----------
    net : SRResNet3d
        The network; its weights are copied (cast and re-laid-out), it is not modified.
    device : str
        A resolved device ("cpu", "cuda[:N]").
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the convolutions (:func:`resolve_precision`).

    Attributes
    ----------
    precision : str
        The resolved precision, "fp32" or "bf16".
    feature_halo, upsample_halo : int
        Receptive fields of :meth:`features` and :meth:`upsample` in LR voxels; their sum is
        ``net.halo``.

    Raises
    ------
    ConfigError
        Unknown ``precision``.
    """

    def __init__(self, net: SRResNet3d, *, device: str = "cpu", precision: str = "auto") -> None:
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.alpha = net.scale
        self.in_channels, self.out_channels = net.in_channels, net.out_channels
        self.channels, self.widths = net.channels, tuple(net.widths)
        self.feature_halo = 2 * net.blocks + 2
        self.upsample_halo = 1 + int(math.log2(net.scale))
        # oneDNN's kernels for 1-channel inputs are several times slower than for 2 (bf16) or
        # 3 (fp32) channels on AVX-512 CPUs (measured: 27 vs 4 ms, 73 vs 28 ms per 100³ voxels
        # for 16 outputs): the input gets zero channels, the head zero weights (same result)
        self.head_in = _HEAD_IN[self.precision].get(net.in_channels, net.in_channels)
        w = net.head.weight.detach()
        pad = torch.zeros((w.shape[0], self.head_in - w.shape[1], *w.shape[2:]), dtype=w.dtype)
        self.head = self._conv(torch.cat([w, pad], dim=1), net.head.bias)
        self.body = [(self._conv(b.conv1.weight, b.conv1.bias),
                      self._conv(b.conv2.weight, b.conv2.bias), float(b.res_scale))
                     for b in net.body]
        self.mid = self._conv(net.mid.weight, net.mid.bias)
        self.up = [self._conv(st.conv.weight, st.conv.bias) for st in net.up]
        self.tail = self._conv(*fused_tail_weights(net.tail.weight, net.tail.bias))

    def _conv(self, w: torch.Tensor, b: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = w.detach().to(self.device, self.dtype).contiguous(memory_format=_CL)
        return w, None if b is None else b.detach().to(self.device, self.dtype)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the device, in the compute dtype, channels-last, padded with zero channels
        to the head's input width (input of the head convolution)."""
        n, c = x.shape[:2]
        out = torch.zeros((n, self.head_in, *x.shape[2:]), dtype=self.dtype, device=self.device,
                          ).contiguous(memory_format=_CL)
        out[:, :c] = x
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """LR features ``mid(body(head(x))) + head(x)``, shape (N, C, z, y, x), compute dtype.

        ``x`` is (N, in_channels, z, y, x), any float dtype and layout.
        """
        x = self.prepare(x)
        h = F.conv3d(x, *self.head, padding=1)
        y = h
        for c1, c2, rs in self.body:
            r = F.conv3d(torch.relu_(F.conv3d(y, *c1, padding=1)), *c2, padding=1)
            if rs != 1.0:
                r.mul_(rs)
            y = r.add_(y)
        return F.conv3d(y, *self.mid, padding=1).add_(h)

    def upsample(self, h: torch.Tensor) -> torch.Tensor:
        """HR outputs from LR features: (N, C, z, y, x) -> float32 (N, out_channels, αz, αy, αx).

        Channel 0 is the solid logit; channels 1–2 (physics outputs) the solutions in (0, 1), as
        :meth:`SRResNet3d.forward` returns them.
        """
        return self.upsample_box(h, [(0, int(n)) for n in h.shape[2:]])

    def upsample_box(self, h: torch.Tensor, box: Sequence[tuple[int, int]]) -> torch.Tensor:
        """The HR outputs of the LR blocks ``box`` (three (lo, hi)), from the features ``h`` of a
        whole tile (zero padding at the tile's border, as :meth:`upsample` of all of ``h``).

        Each stage is computed on the region its successor reads — the output region ±1 voxel of
        that stage's own grid — so a piece costs a thin halo at the fine grids (±2 voxels of the
        last grid before the tail) instead of whole LR voxels; the LR features are read within
        2 LR voxels of ``box``.

        Returns
        -------
        Tensor, float32, shape (N, out_channels, α·(hi − lo), ...)
        """
        k_last = len(self.up)
        ext = self._extent(h, k_last - 1)
        tgt = [(lo << (k_last - 1), hi << (k_last - 1)) for lo, hi in box]
        need = _grow(tgt, ext)  # the last up-convolution's output, read by the fused tail
        inp = _grow(need, ext)
        x = self._grid(h, k_last - 1, inp)
        w, b = self.up[-1]
        u = torch.relu_(F.conv3d(x, w, b, padding=1)[_crop(need, inp)])
        y = shuffle_channels_last(F.conv3d(u, *self.tail, padding=1)[_crop(tgt, need)]).float()
        if self.out_channels == 1:
            return y
        return torch.cat([y[:, :1], torch.sigmoid(y[:, 1:])], dim=1)

    def _extent(self, h: torch.Tensor, k: int) -> list[int]:
        """Voxels per axis of grid ``k`` (0 = LR) for features ``h``."""
        return [int(n) << k for n in h.shape[2:]]

    def _grid(self, h: torch.Tensor, k: int, region: list[tuple[int, int]]) -> torch.Tensor:
        """Features on grid ``k`` (after stage k's shuffle and ReLU) on ``region`` of that grid."""
        if k == 0:
            return h[(slice(None), slice(None), *(slice(lo, hi) for lo, hi in region))]
        out = [(lo // 2, -(-hi // 2)) for lo, hi in region]  # stage-k conv output, grid k-1
        inp = _grow(out, self._extent(h, k - 1))
        w, b = self.up[k - 1]
        y = torch.relu_(F.conv3d(self._grid(h, k - 1, inp), w, b, padding=1)[_crop(out, inp)])
        fine = [(2 * lo, 2 * hi) for lo, hi in out]
        return shuffle_channels_last(y)[_crop(region, fine)]

    def piece_bytes(self, sub: int) -> float:
        """Peak bytes of :meth:`upsample_box` for a ``sub³`` LR box (its float32 output included).

        The last stage dominates: its input and output on the grid before the tail (box ±2 and ±1
        voxels of that grid), the fused tail's output and the float32 HR outputs; the earlier
        stages are smaller by 8× per stage (counted once more as a margin).
        """
        b, k_last = self.itemsize, len(self.up)
        n = sub << (k_last - 1)
        last = (self.widths[-2] * (n + 4) ** 3 + 8 * self.widths[-1] * (n + 2) ** 3) * b
        tail = 8 * self.out_channels * n**3 * (2 * b + 8)
        return 2.0 * last + tail

    @property
    def itemsize(self) -> int:
        """Bytes per activation value (4 for fp32, 2 for bf16)."""
        return 2 if self.precision == "bf16" else 4

    def feature_bytes(self) -> float:
        """Peak bytes per LR voxel of :meth:`features` (its input included).

        Four C-channel tensors live at once inside a residual block (the skip, the block input,
        both convolution outputs), plus the float32 input.
        """
        return 4.0 * self.channels * self.itemsize + 8.0 * self.head_in


def _grow(region: Sequence[tuple[int, int]], extent: Sequence[int]) -> list[tuple[int, int]]:
    """``region`` widened by one voxel per side, clipped to ``[0, extent)``."""
    return [(max(0, lo - 1), min(int(n), hi + 1)) for (lo, hi), n in zip(region, extent,
                                                                          strict=True)]


def _crop(inner: Sequence[tuple[int, int]], outer: Sequence[tuple[int, int]]) -> tuple:
    """Index of ``inner`` inside a tensor (N, C, ...) that holds ``outer``."""
    return (slice(None), slice(None), *(slice(lo - olo, hi - olo)
                                        for (lo, hi), (olo, _) in zip(inner, outer, strict=True)))
