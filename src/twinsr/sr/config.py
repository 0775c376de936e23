"""Typed training configuration and presets (spec §2.2.3).

``paper`` is the paper's protocol: 64 channels, 8 residual blocks, 24³ LR crops, batch 8
(α ∈ {2, 4}) or 1 (α = 8), at most 1000 epochs × 400 steps, validation on 30 crops after every
epoch, early stopping after 10 epochs without improvement.

``quick`` trains one network in a few minutes on 2 CPU cores: 16 channels, 4 blocks, tapered
upsampling stages (``taper=True``, 1.6–2.6× faster steps on CPU), smaller crops at α = 4 and 8
(so the (αn)³ HR crop stays affordable), short epochs, a 300 s time budget.
``demo`` is smaller still and meant for α = 2 only (a few minutes on 2 cores).
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twinsr._validation import read_yaml_config
from twinsr.exceptions import ConfigError
from twinsr.sr.targets import objective_term, target_kind

__all__ = ["PRESETS", "TrainConfig"]


class TrainConfig(BaseModel):
    """Training hyper-parameters (validated; unknown keys are refused).

    Attributes
    ----------
    channels, blocks, res_scale, taper
        Architecture of :class:`~twinsr.sr.network.SRResNet3d`.
    crop
        LR crop edge n (HR crop edge α·n); paper 24. ``crop_per_alpha`` overrides it per α.
    batch_size
        Crops per step; None → 8 for α ∈ {2, 4}, 1 for α = 8 (paper). ``batch_per_alpha``
        overrides it per α.
    epochs, steps_per_epoch
        At most ``epochs`` epochs of ``steps_per_epoch`` Adam steps (paper 1000 × 400).
    lr, weight_decay
        Adam learning rate and weight decay.
    patience, min_delta
        Early stopping: stop after ``patience`` epochs whose validation loss did not improve on
        the best by more than ``min_delta``.
    val_crops
        Fixed random validation crops evaluated after every epoch (paper 30).
    seed
        Seed (≥ 0) of the weights' initialisation, the crop sampler and the validation crops.
    amp
        Allow mixed precision (bfloat16 autocast) on CUDA with ``precision="auto"``.
    num_threads
        Torch CPU threads during training (None = leave torch's setting).
    max_seconds
        Optional wall-clock budget: training stops after the epoch that exceeds it.
    tile
        LR tile edge used when super-resolving validation images to fit the threshold.
    threshold_bins
        Histogram resolution of the threshold fit.
    targets
        A registered target kind (:func:`twinsr.sr.targets.target_kinds`): ``"morph"``
        (default): the HR morphology only (1 output channel). ``"morph+diffu"``: also the HR
        pore and solid diffusion solutions (3 output channels, spec §4; the database needs
        ``hr_diffusion=True``; see :mod:`twinsr.sr.physics`).
    solution_weight
        Weight of the masked MSE on the solution channels in the loss
        BCE(morphology) + solution_weight · MSE(solutions) (``targets="morph+diffu"`` only).
    objective
        Loss terms on the solid logit and their weights, ``{name: weight}`` (a single name
        means weight 1); the loss is Σ weight · term (+ the solution MSE of
        ``"morph+diffu"``). Terms (:mod:`twinsr.sr.objectives`): ``"bce"`` (default, the
        paper's), ``"flux_bce"`` (BCE weighted by the HR solution's flux magnitude; needs a
        database built with ``hr_diffusion=True``), ``"connectivity"`` (soft-skeleton clDice on
        both phases), ``"volume_fraction"`` (squared solid-fraction error per crop). E.g.
        ``{"bce": 1.0, "connectivity": 0.2}``.
    flux_mix
        λ of ``"flux_bce"``: per-voxel weight (1 − λ) + λ·|∇u| / mean_phase |∇u|.
    skeleton_iterations, skeleton_smooth
        Soft-skeleton erosion steps and the additive smoothing (voxels) of ``"connectivity"``.
    precision
        ``"auto"`` (default): bfloat16 autocast where the device computes it natively (a CPU
        with AVX512-BF16 or AMX; CUDA when ``amp``), else float32. ``"bf16"``: always,
        ``"fp32"``: never. The loss, the weights and the optimizer state stay float32.
    channels_last
        Keep weights and activations in the channels-last 3-D memory format during training
        (faster convolutions on CPU; the bundle is written in the standard format).
    prefetch
        Training batches prepared ahead by a background thread (0: on the main thread; None,
        the default: 2 on CUDA, 0 on CPU). The crops of a step depend only on (seed, epoch,
        step), so this changes nothing but speed. On CPU drawing a batch takes ~1 ms against
        steps of 50–500 ms, and a sampling thread slowed 2-core training down (it competes for
        the interpreter lock and the cores with torch's threads), hence 0 there.
    finetune_fraction
        With ``train(..., finetune_on=IMAGE)``: the probability that a training crop is drawn
        from the measured image rather than from the twins (:mod:`twinsr.sr.finetune`).
    compile
        ``torch.compile`` the training forward (falls back to eager, with a log message, where
        compilation is unavailable or fails); off by default: on 2-core CPUs its tens of
        seconds of compilation did not pay off within a quick run.
    tensorboard
        Also log the losses to TensorBoard under ``RUN/tensorboard`` (opt-in; needs the
        ``tensorboard`` package, refused when missing; :mod:`twinsr.sr.tracking`). Not part of
        a checkpoint's identity: a run may be resumed with it switched.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: int = Field(64, ge=1)
    blocks: int = Field(8, ge=0)
    res_scale: float = Field(1.0, gt=0)
    taper: bool = False
    crop: int = Field(24, ge=2)
    crop_per_alpha: dict[int, int] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1)
    batch_per_alpha: dict[int, int] = Field(default_factory=dict)
    epochs: int = Field(1000, ge=1)
    steps_per_epoch: int = Field(400, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0)
    val_crops: int = Field(30, ge=1)
    seed: int = Field(0, ge=0)
    amp: bool = True
    num_threads: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0)
    tile: int = Field(48, ge=4)
    threshold_bins: int = Field(4096, ge=16)
    targets: str = "morph"
    solution_weight: float = Field(1.0, ge=0)
    objective: dict[str, float] = Field(default_factory=lambda: {"bce": 1.0})
    flux_mix: float = Field(0.5, ge=0, le=1)
    skeleton_iterations: int = Field(5, ge=0, le=64)
    skeleton_smooth: float = Field(1.0, gt=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True
    prefetch: int | None = Field(None, ge=0, le=64)
    compile: bool = False
    finetune_fraction: float = Field(0.5, gt=0, le=1)
    tensorboard: bool = False

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {value: 1.0}
        return value

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: dict[str, float]) -> dict[str, float]:
        try:
            for name in value:
                objective_term(name)
        except ConfigError as exc:  # pydantic reports a ValueError raised by a validator
            raise ValueError(str(exc)) from None
        bad = {k: w for k, w in value.items() if not (math.isfinite(w) and w >= 0)}
        if bad:
            raise ValueError(f"objective weights must be finite and >= 0, got {bad}")
        if not any(w > 0 for w in value.values()):
            raise ValueError(f"the objective needs at least one term with a weight > 0, got "
                             f"{value}; e.g. {{'bce': 1.0}}")
        return dict(value)

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: str) -> str:
        try:
            return target_kind(value).name
        except ConfigError as exc:  # pydantic reports a ValueError raised by a validator
            raise ValueError(str(exc)) from None

    def crop_for(self, alpha: int) -> int:
        """LR crop edge used at factor α."""
        return int(self.crop_per_alpha.get(int(alpha), self.crop))

    def batch_for(self, alpha: int) -> int:
        """Batch size used at factor α (paper default: 8 for α ∈ {2, 4}, 1 for α = 8)."""
        if int(alpha) in self.batch_per_alpha:
            return int(self.batch_per_alpha[int(alpha)])
        if self.batch_size is not None:
            return int(self.batch_size)
        return 1 if int(alpha) >= 8 else 8

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named preset ("paper", "quick", "demo"), optionally with fields overridden.

        Examples
        --------
        >>> TrainConfig.preset("quick").channels
        16
        """
        key = str(name).lower()
        if key not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[key], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Validate a mapping (raises ConfigError listing every bad field)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
            raise ConfigError(f"invalid training config: {msgs}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, base: str | None = None) -> TrainConfig:
        """Load a YAML file; with ``base`` its keys override that preset.

        Raises
        ------
        ConfigError
            The file is unreadable, not UTF-8 text, not YAML, not a mapping, or holds an unknown
            key or an invalid value (the message names the file).
        """
        data = read_yaml_config(path, "training config")
        try:
            return cls.preset(base, **data) if base else cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{os.fspath(path)}: {exc}") from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(), sort_keys=True)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {
        "channels": 16, "blocks": 4, "taper": True, "crop": 16,
        "crop_per_alpha": {2: 16, 4: 12, 8: 10},
        "batch_per_alpha": {2: 8, 4: 4, 8: 2}, "epochs": 40, "steps_per_epoch": 20,
        "lr": 1e-3, "patience": 6, "val_crops": 12, "max_seconds": 300.0, "tile": 32,
    },
    "demo": {
        "channels": 12, "blocks": 2, "taper": True, "crop": 16,
        "crop_per_alpha": {2: 16, 4: 10, 8: 8},
        "batch_per_alpha": {2: 8, 4: 4, 8: 2}, "epochs": 30, "steps_per_epoch": 15,
        "lr": 2e-3, "patience": 5, "val_crops": 8, "max_seconds": 180.0, "tile": 32,
    },
    # CI-sized (the ``micro`` study): a tiny network, a few steps; seconds per network on CPU
    "micro": {
        "channels": 4, "blocks": 1, "taper": True, "crop": 6,
        "crop_per_alpha": {2: 6, 4: 4, 8: 3},
        "batch_per_alpha": {2: 2, 4: 2, 8: 1}, "epochs": 2, "steps_per_epoch": 3,
        "lr": 2e-3, "patience": 2, "val_crops": 2, "max_seconds": 20.0, "tile": 16,
    },
}
