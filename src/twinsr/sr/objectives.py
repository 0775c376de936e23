"""Training objectives of the morphology networks (spec §2.2.3, and transport-aware terms).

The paper's objective is the voxel-wise binary cross-entropy between the network's solid logit
and the binary HR crop (``BCEWithLogitsLoss``, mean over voxels): :func:`bce_loss`. Three
transport-aware terms can be added to it or replace it, each selected by name with a weight in
``TrainConfig.objective`` (the loss is ``Σ_k w_k · mean over crops of term_k``; every term is a
per-crop value, so a batch split across processes gives the same loss):

``"bce"``
    :func:`bce_per_crop`, the paper's loss.
``"flux_bce"``
    :func:`flux_bce`: the BCE weighted per voxel by :func:`flux_weights`,
    ``w = (1 − λ) + λ · |∇u| / mean_phase |∇u|`` with |∇u| the local flux magnitude of the HR
    diffusion solution (:func:`twinsr.sr.data.flux_magnitude`, both phases, each voxel in its own
    phase) and the mean taken per crop over the voxels of the same phase, so that the mean weight
    is 1 in each phase of each crop; λ = ``TrainConfig.flux_mix``. Errors on the main transport
    paths (necks, the backbone) cost more, errors in dead ends and floating clusters less
    (nothing at λ = 1). Needs a database built with ``hr_diffusion=True``.
``"connectivity"``
    :func:`connectivity_loss`: the soft-skeleton clDice loss (Shit et al. 2021) on both phases,
    ½·[clDice(p, y) + clDice(1 − p, 1 − y)], p = sigmoid(logit).
``"volume_fraction"``
    :func:`volume_fraction_loss`: (mean p − mean y)² per crop.

This module also registers the target kind ``"morph"`` (1 output channel, crops from
:class:`twinsr.sr.data.CropSampler`) with :mod:`twinsr.sr.targets`; the physics-output networks
add their own kind and its solution loss in :mod:`twinsr.sr.physics`. :func:`make_objective`
builds the training loss of a configuration for a target kind.

References
----------
Shit, S. et al. (2021). clDice — a novel topology-preserving loss function for tubular structure
segmentation. CVPR, 16560–16569 (soft skeleton by iterated min/max pooling, Algorithm 1–2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numba as nb
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from twinsr.exceptions import ConfigError, DatasetError
from twinsr.sr.data import CropSampler
from twinsr.sr.targets import (
    ObjectiveTerm,
    TargetKind,
    objective_term,
    register_objective_term,
    register_target_kind,
)

__all__ = [
    "MORPH",
    "Objective",
    "bce_loss",
    "bce_per_crop",
    "connectivity_loss",
    "flux_bce",
    "flux_weights",
    "make_objective",
    "needs_flux",
    "soft_cldice",
    "soft_dilate",
    "soft_erode",
    "soft_skeleton",
    "volume_fraction_loss",
]

_SPATIAL = (1, 2, 3, 4)


def bce_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean voxel-wise binary cross-entropy of solid logits against the binary HR image.

    Parameters
    ----------
    output : tensor (N, 1, Z, Y, X)
        Solid logits (the network's channel 0).
    target : tensor (N, 1, Z, Y, X)
        Binary HR image as float, 1 = solid.

    Returns
    -------
    tensor (scalar)
        ``mean_v [softplus(o_v) − t_v·o_v]`` (``BCEWithLogitsLoss``), in nats per voxel.

    Raises
    ------
    ConfigError
        ``output`` or ``target`` does not have exactly one channel.

    Examples
    --------
    >>> round(float(bce_loss(torch.zeros(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 2))), 4)
    0.6931
    """
    if output.shape[1] != 1 or target.shape[1] != 1:
        raise ConfigError(
            f"targets='morph' trains a network with one output channel on one target channel; "
            f"got an output with {output.shape[1]} and a target with {target.shape[1]} channels")
    return nn.functional.binary_cross_entropy_with_logits(output, target)


def bce_per_crop(logit: torch.Tensor, solid: torch.Tensor) -> torch.Tensor:
    """Voxel-mean BCE of each crop: tensor (N,) for logits and binary targets (N, 1, Z, Y, X).

    Examples
    --------
    >>> bce_per_crop(torch.zeros(2, 1, 2, 2, 2), torch.ones(2, 1, 2, 2, 2)).shape
    torch.Size([2])
    """
    return F.binary_cross_entropy_with_logits(logit, solid, reduction="none").mean(_SPATIAL)


def flux_weights(flux: torch.Tensor, solid: torch.Tensor, *, mix: float = 0.5) -> torch.Tensor:
    """Per-voxel loss weights from the flux magnitude, mean 1 in each phase of each crop.

    Parameters
    ----------
    flux : tensor (N, 1, Z, Y, X)
        Flux magnitude |∇u| of the HR solution (:func:`twinsr.sr.data.flux_magnitude`), ≥ 0.
    solid : tensor (N, 1, Z, Y, X)
        Binary HR target, 1 = solid.
    mix : float in [0, 1]
        λ: 0 gives uniform weights (plain BCE), 1 weights proportional to |∇u|.

    Returns
    -------
    tensor (N, 1, Z, Y, X)
        ``w = (1 − λ) + λ·|∇u| / m`` with m the mean of |∇u| over the voxels of the same phase in
        the same crop; w = 1 in a phase of a crop where |∇u| vanishes everywhere.

    Examples
    --------
    >>> f = torch.tensor([0.0, 1.0, 3.0, 0.0]).reshape(1, 1, 4, 1, 1)
    >>> y = torch.tensor([0.0, 0.0, 1.0, 1.0]).reshape(1, 1, 4, 1, 1)
    >>> flux_weights(f, y, mix=1.0).flatten().tolist()
    [0.0, 2.0, 2.0, 0.0]
    """
    w = torch.ones_like(flux)
    for phase in (solid > 0.5, solid <= 0.5):
        m = phase.to(flux.dtype)
        mean = (flux * m).sum(_SPATIAL, keepdim=True) / m.sum(_SPATIAL, keepdim=True).clamp_min(1)
        rel = torch.where(mean > 0, flux / mean.clamp_min(torch.finfo(flux.dtype).tiny),
                          torch.ones_like(flux))
        w = torch.where(phase, (1.0 - mix) + mix * rel, w)
    return w


def flux_bce(logit: torch.Tensor, solid: torch.Tensor, flux: torch.Tensor, *,
             mix: float = 0.5) -> torch.Tensor:
    """Flux-weighted BCE per crop: ``mean_v w_v · BCE_v`` (tensor (N,)), w from :func:`flux_weights`.

    Examples
    --------
    >>> z = torch.zeros(1, 1, 2, 2, 2)
    >>> torch.allclose(flux_bce(z, z + 1, z + 0.3), bce_per_crop(z, z + 1))
    True
    """
    with torch.no_grad():
        w = flux_weights(flux, solid, mix=mix)
    v = F.binary_cross_entropy_with_logits(logit, solid, reduction="none")
    return (w * v).mean(_SPATIAL)


_CROSS = (((3, 1, 1), (1, 0, 0)), ((1, 3, 1), (0, 1, 0)), ((1, 1, 3), (0, 0, 1)))

# Min / max filters for the soft skeleton on the CPU: numba kernels with the winner's position
# saved for the backward pass (a gather: each voxel collects the gradient of the voxels it won),
# about 50x faster than max-pooling on 2 CPU cores. Borders are replicated (a voxel outside the
# crop never wins), ties go to the voxel itself, then to the neighbours in a fixed order.


@nb.njit(parallel=True, cache=True)
def _erode_fwd(x, out, arg):
    m_, z_, y_, x_ = x.shape
    for mz in nb.prange(m_ * z_):
        m = mz // z_
        z = mz - m * z_
        zm, zp = max(z - 1, 0), min(z + 1, z_ - 1)
        for y in range(y_):
            ym, yp = max(y - 1, 0), min(y + 1, y_ - 1)
            for i in range(x_):
                im, ip = max(i - 1, 0), min(i + 1, x_ - 1)
                best = x[m, z, y, i]
                code = 0
                v = x[m, zm, y, i]
                if v < best:
                    best, code = v, 1
                v = x[m, zp, y, i]
                if v < best:
                    best, code = v, 2
                v = x[m, z, ym, i]
                if v < best:
                    best, code = v, 3
                v = x[m, z, yp, i]
                if v < best:
                    best, code = v, 4
                v = x[m, z, y, im]
                if v < best:
                    best, code = v, 5
                v = x[m, z, y, ip]
                if v < best:
                    best, code = v, 6
                out[m, z, y, i] = best
                arg[m, z, y, i] = code

@nb.njit(parallel=True, cache=True)
def _erode_bwd(g, arg, gin):
    m_, z_, y_, x_ = g.shape
    for mz in nb.prange(m_ * z_):
        m = mz // z_
        z = mz - m * z_
        for y in range(y_):
            for i in range(x_):
                s = g[m, z, y, i] if arg[m, z, y, i] == 0 else 0.0
                if z + 1 < z_ and arg[m, z + 1, y, i] == 1:
                    s += g[m, z + 1, y, i]
                if z > 0 and arg[m, z - 1, y, i] == 2:
                    s += g[m, z - 1, y, i]
                if y + 1 < y_ and arg[m, z, y + 1, i] == 3:
                    s += g[m, z, y + 1, i]
                if y > 0 and arg[m, z, y - 1, i] == 4:
                    s += g[m, z, y - 1, i]
                if i + 1 < x_ and arg[m, z, y, i + 1] == 5:
                    s += g[m, z, y, i + 1]
                if i > 0 and arg[m, z, y, i - 1] == 6:
                    s += g[m, z, y, i - 1]
                gin[m, z, y, i] = s

@nb.njit(parallel=True, cache=True)
def _dilate_fwd(x, axis, out, arg):
    m_, z_, y_, x_ = x.shape
    for mz in nb.prange(m_ * z_):
        m = mz // z_
        z = mz - m * z_
        zm, zp = max(z - 1, 0), min(z + 1, z_ - 1)
        for y in range(y_):
            ym, yp = max(y - 1, 0), min(y + 1, y_ - 1)
            for i in range(x_):
                if axis == 0:
                    a, b = x[m, zm, y, i], x[m, zp, y, i]
                elif axis == 1:
                    a, b = x[m, z, ym, i], x[m, z, yp, i]
                else:
                    a, b = x[m, z, y, max(i - 1, 0)], x[m, z, y, min(i + 1, x_ - 1)]
                best = x[m, z, y, i]
                code = 0
                if a > best:
                    best, code = a, 1
                if b > best:
                    best, code = b, 2
                out[m, z, y, i] = best
                arg[m, z, y, i] = code

@nb.njit(parallel=True, cache=True)
def _dilate_bwd(g, arg, axis, gin):
    m_, z_, y_, x_ = g.shape
    for mz in nb.prange(m_ * z_):
        m = mz // z_
        z = mz - m * z_
        for y in range(y_):
            for i in range(x_):
                s = g[m, z, y, i] if arg[m, z, y, i] == 0 else 0.0
                if axis == 0:
                    if z + 1 < z_ and arg[m, z + 1, y, i] == 1:
                        s += g[m, z + 1, y, i]
                    if z > 0 and arg[m, z - 1, y, i] == 2:
                        s += g[m, z - 1, y, i]
                elif axis == 1:
                    if y + 1 < y_ and arg[m, z, y + 1, i] == 1:
                        s += g[m, z, y + 1, i]
                    if y > 0 and arg[m, z, y - 1, i] == 2:
                        s += g[m, z, y - 1, i]
                else:
                    if i + 1 < x_ and arg[m, z, y, i + 1] == 1:
                        s += g[m, z, y, i + 1]
                    if i > 0 and arg[m, z, y, i - 1] == 2:
                        s += g[m, z, y, i - 1]
                gin[m, z, y, i] = s


class _Erode(torch.autograd.Function):
    """Minimum over the 6-neighbourhood cross (CPU, numba)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        xn = x.detach().contiguous().numpy().reshape(-1, *x.shape[-3:])
        out, arg = np.empty_like(xn), np.empty(xn.shape, np.int8)
        _erode_fwd(xn, out, arg)
        ctx.arg = arg
        return torch.from_numpy(out).view(x.shape)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        gn = g.detach().contiguous().numpy().reshape(ctx.arg.shape)
        gin = np.empty_like(gn)
        _erode_bwd(gn, ctx.arg, gin)
        return torch.from_numpy(gin).view(g.shape)


class _DilateLine(torch.autograd.Function):
    """Maximum over 3 voxels along one spatial axis (CPU, numba)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
        xn = x.detach().contiguous().numpy().reshape(-1, *x.shape[-3:])
        out, arg = np.empty_like(xn), np.empty(xn.shape, np.int8)
        _dilate_fwd(xn, axis, out, arg)
        ctx.arg, ctx.axis = arg, axis
        return torch.from_numpy(out).view(x.shape)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        gn = g.detach().contiguous().numpy().reshape(ctx.arg.shape)
        gin = np.empty_like(gn)
        _dilate_bwd(gn, ctx.arg, ctx.axis, gin)
        return torch.from_numpy(gin).view(g.shape), None


def _numba_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.ndim == 5


def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Soft erosion: the minimum over the voxel and its 6 face neighbours.

    ``x`` (N, C, Z, Y, X) in [0, 1]; the crop border is not eroded from outside. CPU float
    tensors use numba kernels, others three 1-D min-pools (same values).

    Examples
    --------
    >>> x = torch.ones(1, 1, 3, 3, 3); x[0, 0, 1, 1, 0] = 0.25
    >>> soft_erode(x)[0, 0, 1, 1].tolist()
    [0.25, 0.25, 1.0]
    """
    if _numba_ok(x):
        return _Erode.apply(x)
    p = [-F.max_pool3d(-x, k, 1, pad) for k, pad in _CROSS]
    return torch.minimum(torch.minimum(p[0], p[1]), p[2])


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Soft dilation: the maximum over the 3×3×3 cube (``x`` (N, C, Z, Y, X)).

    Examples
    --------
    >>> x = torch.zeros(1, 1, 3, 3, 3); x[0, 0, 0, 0, 0] = 1
    >>> int(soft_dilate(x).sum())
    8
    """
    if _numba_ok(x):
        for axis in range(3):
            x = _DilateLine.apply(x, axis)
        return x
    return F.max_pool3d(x, 3, 1, 1)


def soft_skeleton(x: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """Differentiable soft skeleton (Shit et al. 2021, Algorithm 1) of probabilities ``x``.

    ``skel = relu(x − open(x))``, then ``iterations`` times: ``x ← erode(x)``,
    ``δ = relu(x − open(x))``, ``skel ← skel + relu(δ − skel·δ)`` with open = dilate ∘ erode
    (:func:`soft_erode`, :func:`soft_dilate`). Structures thicker than about ``2·iterations + 1``
    voxels keep an incomplete skeleton. For a binary ``x`` the skeleton is binary and lies inside
    ``x``.

    Parameters
    ----------
    x : tensor (N, C, Z, Y, X)
        Probabilities in [0, 1].
    iterations : int
        Erosion steps k (≥ 0).

    Returns
    -------
    tensor, same shape, values in [0, 1].

    Examples
    --------
    >>> bar = torch.zeros(1, 1, 5, 5, 9); bar[..., 1:4, 1:4, :] = 1
    >>> s = soft_skeleton(bar, 2)
    >>> bool((s <= bar).all()), int(s[0, 0, 2, 2].sum())
    (True, 9)
    """
    eroded = soft_erode(x)
    skel = F.relu(x - soft_dilate(eroded))
    for _ in range(int(iterations)):
        x = eroded  # the erosion of the last opening is the next x (as erode(x) in the paper)
        eroded = soft_erode(x)
        delta = F.relu(x - soft_dilate(eroded))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def soft_cldice(prob: torch.Tensor, target: torch.Tensor, *, iterations: int = 5,
                smooth: float = 1.0) -> torch.Tensor:
    """clDice loss of one phase per crop: ``1 − 2·Tprec·Tsens / (Tprec + Tsens)`` (tensor (N,)).

    ``Tprec = (Σ S_p·y + s) / (Σ S_p + s)`` (the predicted skeleton lies in the true phase),
    ``Tsens = (Σ S_y·p + s) / (Σ S_y + s)`` (the true skeleton is covered by the prediction),
    sums over each crop's voxels, S = :func:`soft_skeleton`, s = ``smooth`` (voxels). The true
    skeleton carries no gradient.

    Parameters
    ----------
    prob : tensor (N, 1, Z, Y, X)
        Predicted probability of the phase.
    target : tensor (N, 1, Z, Y, X)
        Binary indicator of the phase.
    iterations, smooth
        Skeleton iterations; additive smoothing of both ratios.

    Returns
    -------
    tensor (N,)
        In [0, 1]; exactly 0 when ``prob`` equals the binary ``target``.

    Examples
    --------
    >>> y = torch.zeros(1, 1, 6, 6, 6); y[..., 2:4, 2:4, :] = 1
    >>> float(soft_cldice(y, y, iterations=2))
    0.0
    """
    with torch.no_grad():
        skel_true = soft_skeleton(target, iterations)
    skel_pred = soft_skeleton(prob, iterations)
    tprec = ((skel_pred * target).sum(_SPATIAL) + smooth) / (skel_pred.sum(_SPATIAL) + smooth)
    tsens = ((skel_true * prob).sum(_SPATIAL) + smooth) / (skel_true.sum(_SPATIAL) + smooth)
    return 1.0 - 2.0 * tprec * tsens / (tprec + tsens)


def connectivity_loss(logit: torch.Tensor, solid: torch.Tensor, *, iterations: int = 5,
                      smooth: float = 1.0) -> torch.Tensor:
    """clDice on both phases per crop: ½·[clDice(p, y) + clDice(1 − p, 1 − y)], p = σ(logit).

    Returns a tensor (N,) in [0, 1]; 0 for a binary prediction equal to the target (logits
    ±∞), and larger the more of either phase's skeleton the prediction cuts or invents.

    Examples
    --------
    >>> y = torch.zeros(1, 1, 6, 6, 6); y[..., 2:4, 2:4, :] = 1
    >>> float(connectivity_loss(60 * (2 * y - 1), y, iterations=2)) < 1e-12
    True
    """
    p = torch.sigmoid(logit)
    return 0.5 * (soft_cldice(p, solid, iterations=iterations, smooth=smooth)
                  + soft_cldice(1.0 - p, 1.0 - solid, iterations=iterations, smooth=smooth))


def volume_fraction_loss(logit: torch.Tensor, solid: torch.Tensor) -> torch.Tensor:
    """Squared error of the crop's mean solid probability against its solid fraction (N,).

    Examples
    --------
    >>> y = torch.zeros(1, 1, 2, 2, 2); y[..., 0] = 1
    >>> float(volume_fraction_loss(torch.zeros(1, 1, 2, 2, 2), y))
    0.0
    """
    return (torch.sigmoid(logit).mean(_SPATIAL) - solid.mean(_SPATIAL)).square()


TermFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _bce_term(config: Any) -> TermFn:
    return lambda logit, solid, flux: bce_per_crop(logit, solid)


def _flux_term(config: Any) -> TermFn:
    mix = float(getattr(config, "flux_mix", 0.5))

    def term(logit: torch.Tensor, solid: torch.Tensor, flux: torch.Tensor | None) -> torch.Tensor:
        if flux is None:
            raise ConfigError("objective term 'flux_bce' needs the flux-magnitude channel of the "
                              "targets (a sampler built with the HR solution)")
        return flux_bce(logit, solid, flux, mix=mix)

    return term


def _connectivity_term(config: Any) -> TermFn:
    iters = int(getattr(config, "skeleton_iterations", 5))
    smooth = float(getattr(config, "skeleton_smooth", 1.0))
    return lambda logit, solid, flux: connectivity_loss(logit, solid, iterations=iters,
                                                        smooth=smooth)


def _volume_term(config: Any) -> TermFn:
    return lambda logit, solid, flux: volume_fraction_loss(logit, solid)


for _term in (
    ObjectiveTerm("bce", False, _bce_term, "voxel-wise binary cross-entropy (the paper's)"),
    ObjectiveTerm("flux_bce", True, _flux_term,
                  "BCE weighted by the HR solution's flux magnitude (needs hr_diffusion=True)"),
    ObjectiveTerm("connectivity", False, _connectivity_term,
                  "soft-skeleton clDice on both phases"),
    ObjectiveTerm("volume_fraction", False, _volume_term,
                  "squared error of each crop's mean solid probability"),
):
    register_objective_term(_term)


def _active(weights: Mapping[str, float]) -> dict[str, float]:
    return {name: float(w) for name, w in weights.items() if float(w) > 0}


def needs_flux(weights: Mapping[str, float]) -> tuple[str, ...]:
    """The active terms (weight > 0) of an objective that need the HR diffusion solution.

    Examples
    --------
    >>> needs_flux({"bce": 1.0, "flux_bce": 0.5}), needs_flux({"flux_bce": 0.0})
    (('flux_bce',), ())
    """
    return tuple(n for n in _active(weights) if objective_term(n).needs_hr_solution)


class Objective:
    """The training loss of one configuration: weighted objective terms + the kind's own loss.

    Parameters
    ----------
    weights : mapping of str to float
        Term name → weight (``TrainConfig.objective``); terms of weight 0 are not evaluated.
    config : TrainConfig or None
        Options of the terms (``flux_mix``, ``skeleton_iterations``, ``skeleton_smooth``).
    kind_channels : int
        Target channels of the target kind (1 for ``"morph"``, 3 for ``"morph+diffu"``); the
        network has as many output channels.
    extra : callable or None
        The kind's loss on the other output channels (``TargetKind.make_extra_loss``), per crop.

    Notes
    -----
    Targets are (N, T, Z, Y, X): the kind's T = ``kind_channels`` channels (channel 0 the binary
    HR image), then the flux magnitude when :attr:`flux` is True.

    Examples
    --------
    >>> obj = Objective({"bce": 1.0, "volume_fraction": 2.0})
    >>> y = torch.ones(2, 1, 2, 2, 2)
    >>> sorted(obj.terms(torch.zeros(2, 1, 2, 2, 2), y))
    ['bce', 'volume_fraction']
    >>> round(float(obj(torch.zeros(2, 1, 2, 2, 2), y)), 4)  # 0.6931 + 2 * 0.25
    1.1931
    """

    def __init__(self, weights: Mapping[str, float], config: Any = None, *,
                 kind_channels: int = 1,
                 extra: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        self.weights = _active(weights)
        if not self.weights:
            raise ConfigError("the objective has no term with a positive weight")
        self._terms = {n: objective_term(n).make(config) for n in self.weights}
        self.flux = bool(needs_flux(self.weights))
        self.kind_channels = int(kind_channels)
        self.extra = extra

    @property
    def target_channels(self) -> int:
        """Channels of the targets this objective reads (kind channels + flux)."""
        return self.kind_channels + int(self.flux)

    def _split(self, output: torch.Tensor,
               target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if output.shape[1] != self.kind_channels or target.shape[1] != self.target_channels:
            raise ConfigError(
                f"the objective expects {self.kind_channels} output channel(s) and "
                f"{self.target_channels} target channel(s) ({self.kind_channels} of the target "
                f"kind{' + the flux magnitude' if self.flux else ''}); got {output.shape[1]} and "
                f"{target.shape[1]}. targets='morph+diffu' needs a network with out_channels=3, "
                "targets='morph' one with out_channels=1")
        flux = target[:, self.kind_channels:self.kind_channels + 1] if self.flux else None
        return target[:, :self.kind_channels], flux

    def terms(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each active term per crop (unweighted), tensors (N,); ``"extra"``: the kind's loss."""
        kind_target, flux = self._split(output, target)
        logit, solid = output[:, :1], kind_target[:, :1]
        out = {n: fn(logit, solid, flux) for n, fn in self._terms.items()}
        if self.extra is not None:
            out["extra"] = self.extra(output, kind_target)
        return out

    def per_crop(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the terms per crop, tensor (N,)."""
        parts = [value if name == "extra" else self.weights[name] * value
                 for name, value in self.terms(output, target).items()]
        return torch.stack(parts).sum(0)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss: mean over crops of :meth:`per_crop` (scalar tensor)."""
        return self.per_crop(output, target).mean()


def make_objective(config: Any, kind: TargetKind) -> Objective:
    """The training loss of ``config`` (``objective`` and options) for the target kind ``kind``.

    Examples
    --------
    >>> from twinsr.sr.config import TrainConfig
    >>> from twinsr.sr.targets import target_kind
    >>> make_objective(TrainConfig(objective={"bce": 1, "flux_bce": 1}), target_kind("morph")).flux
    True
    """
    extra = kind.make_extra_loss(config) if kind.make_extra_loss is not None else None
    return Objective(dict(config.objective), config, kind_channels=kind.out_channels, extra=extra)


def _morph_sampler(pairs: Sequence[Any], *, alpha: int, crop: int,
                   rng: int | np.random.Generator | None, augment: bool, axis: int,
                   flux: bool = False) -> CropSampler:
    sols = None
    if flux:
        sols = [p.hr_solution for p in pairs]
        if any(s is None for s in sols):
            raise DatasetError("flux weights need the HR diffusion solution of every pair; open "
                               "the pairs with Database.pairs(..., hr_solution=True) from a "
                               "database built with hr_diffusion=True")
    return CropSampler([(p.channels, p.hr) for p in pairs], alpha=alpha, crop=crop, rng=rng,
                       augment=augment, flux_solutions=sols, axis=axis)


MORPH = register_target_kind(TargetKind(
    name="morph", out_channels=1, output_names=("solid_logit",), needs_hr_solution=False,
    make_sampler=_morph_sampler, make_extra_loss=None,
    description="the HR morphology (solid logit), voxel-wise BCE"))
