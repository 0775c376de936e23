"""Super-resolution networks trained on digital twins (spec §2.1.3, §2.2).

Importing this subpackage imports torch; ``import twinsr`` alone does not (it imports
``twinsr.sr`` lazily on first use of one of these names).

Layers (each module imports only modules listed before it): ``targets`` (the registries of
target kinds and objective terms) and ``symmetry`` (the cube group) are leaves; ``network``,
``runtime`` (the fast inference copy of a network), ``tta`` (test-time augmentation),
``threshold``; ``data`` (crop sampling, flux magnitude); ``objectives`` (losses: BCE,
flux-weighted BCE, connectivity, volume fraction; registers them and the target kind
``"morph"``); ``config``, ``database``, ``finetune`` (real crops of a measured image),
``bundle`` (weights + :class:`ModelSpec`; ``cards``, the model-card schema, and ``tracking``
(TensorBoard) are leaves);
``engine`` (tiled inference); ``infer``; ``train``; ``pretrained`` (the shipped bundles).
``physics`` (the HR-solution outputs: :class:`SolutionCropSampler`, :func:`combined_loss`, the
target kind ``"morph+diffu"``, :func:`solution_error`) builds on them and none of them imports
it; importing this package imports it, so its target kind is always registered.
"""

from __future__ import annotations

from twinsr.sr.bundle import ModelSpec, SRModel, load_model, save_bundle
from twinsr.sr.cards import ModelCard, load_card, pretrained_names, pretrained_path
from twinsr.sr.config import PRESETS, TrainConfig
from twinsr.sr.data import CropSampler, flux_magnitude
from twinsr.sr.database import Database, Pair, build_database, open_database
from twinsr.sr.finetune import (
    MixedSampler,
    check_disjoint,
    finetune_pairs,
    regions_overlap,
    split_region,
)
from twinsr.sr.infer import superresolve
from twinsr.sr.network import PixelShuffle3d, PixelUnshuffle3d, SRResNet3d, receptive_field
from twinsr.sr.objectives import (
    Objective,
    bce_loss,
    connectivity_loss,
    flux_bce,
    flux_weights,
    make_objective,
    soft_skeleton,
    volume_fraction_loss,
)
from twinsr.sr.physics import (
    SolutionCropSampler,
    SolutionError,
    combined_loss,
    floating_mask,
    solution_error,
    solution_loss,
)
from twinsr.sr.pretrained import check_reference_pair, pretrained_models
from twinsr.sr.symmetry import (
    Symmetry,
    aligned_hr_window,
    anisotropy_symmetries,
    apply_symmetry,
    axis_symmetries,
    cube_symmetries,
    transform_solution,
)
from twinsr.sr.targets import (
    ObjectiveTerm,
    TargetKind,
    objective_term,
    objective_terms,
    register_objective_term,
    register_target_kind,
    target_kind,
    target_kinds,
)
from twinsr.sr.threshold import fit_threshold
from twinsr.sr.train import TrainResult, train, train_distributed, transfer_weights

__all__ = [
    "PRESETS",
    "CropSampler",
    "Database",
    "MixedSampler",
    "ModelCard",
    "ModelSpec",
    "Objective",
    "ObjectiveTerm",
    "Pair",
    "PixelShuffle3d",
    "PixelUnshuffle3d",
    "SRModel",
    "SRResNet3d",
    "SolutionCropSampler",
    "SolutionError",
    "Symmetry",
    "TargetKind",
    "TrainConfig",
    "TrainResult",
    "aligned_hr_window",
    "anisotropy_symmetries",
    "apply_symmetry",
    "axis_symmetries",
    "bce_loss",
    "build_database",
    "check_disjoint",
    "check_reference_pair",
    "combined_loss",
    "connectivity_loss",
    "cube_symmetries",
    "finetune_pairs",
    "fit_threshold",
    "floating_mask",
    "flux_bce",
    "flux_magnitude",
    "flux_weights",
    "load_card",
    "load_model",
    "make_objective",
    "objective_term",
    "objective_terms",
    "open_database",
    "pretrained_models",
    "pretrained_names",
    "pretrained_path",
    "receptive_field",
    "regions_overlap",
    "register_objective_term",
    "register_target_kind",
    "save_bundle",
    "soft_skeleton",
    "solution_error",
    "solution_loss",
    "split_region",
    "superresolve",
    "target_kind",
    "target_kinds",
    "train",
    "train_distributed",
    "transfer_weights",
    "transform_solution",
    "volume_fraction_loss",
]
