"""Super-resolution networks trained on digital twins (spec §2.1.3, §2.2).

Importing this subpackage imports torch; ``import twinsr`` alone does not (it imports
``twinsr.sr`` lazily on first use of one of these names).
"""

from __future__ import annotations

from twinsr.sr.bundle import SRModel, load_model, save_bundle
from twinsr.sr.config import PRESETS, TrainConfig
from twinsr.sr.data import CropSampler, Symmetry, apply_symmetry, cube_symmetries
from twinsr.sr.database import Database, Pair, build_database, open_database
from twinsr.sr.infer import superresolve
from twinsr.sr.network import PixelShuffle3d, PixelUnshuffle3d, SRResNet3d, receptive_field
from twinsr.sr.physics import (
    SolutionError,
    axis_symmetries,
    floating_mask,
    solution_error,
    transform_solution,
)
from twinsr.sr.threshold import fit_threshold
from twinsr.sr.train import TrainResult, combined_loss, train, transfer_weights

__all__ = [
    "PRESETS",
    "CropSampler",
    "Database",
    "Pair",
    "PixelShuffle3d",
    "PixelUnshuffle3d",
    "SRModel",
    "SRResNet3d",
    "SolutionError",
    "Symmetry",
    "TrainConfig",
    "TrainResult",
    "apply_symmetry",
    "axis_symmetries",
    "build_database",
    "combined_loss",
    "cube_symmetries",
    "fit_threshold",
    "floating_mask",
    "load_model",
    "open_database",
    "receptive_field",
    "save_bundle",
    "solution_error",
    "superresolve",
    "train",
    "transfer_weights",
    "transform_solution",
]
