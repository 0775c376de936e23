"""Training objectives of the morphology networks (spec §2.2.3).

The paper's objective is the voxel-wise binary cross-entropy between the network's solid logit
and the binary HR crop (``BCEWithLogitsLoss``, mean over voxels): :func:`bce_loss`. This module
registers the target kind ``"morph"`` (1 output channel, crops from
:class:`twinsr.sr.data.CropSampler`) with :mod:`twinsr.sr.targets`; the physics-output networks
add their own kind and loss in :mod:`twinsr.sr.physics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from twinsr.exceptions import ConfigError
from twinsr.sr.data import CropSampler
from twinsr.sr.targets import TargetKind, register_target_kind

__all__ = ["MORPH", "bce_loss"]


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


def _morph_sampler(pairs: Sequence[Any], *, alpha: int, crop: int,
                   rng: int | np.random.Generator | None, augment: bool,
                   axis: int) -> CropSampler:
    return CropSampler([(p.channels, p.hr) for p in pairs], alpha=alpha, crop=crop, rng=rng,
                       augment=augment)


def _morph_loss(config: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return bce_loss


MORPH = register_target_kind(TargetKind(
    name="morph", out_channels=1, output_names=("solid_logit",), needs_hr_solution=False,
    make_sampler=_morph_sampler, make_loss=_morph_loss,
    description="the HR morphology (solid logit), voxel-wise BCE"))
