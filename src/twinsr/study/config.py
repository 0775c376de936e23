"""Typed configuration of the study (spec §3) with presets ``micro``, ``demo``, ``quick``, ``paper``.

A :class:`StudyConfig` is validated on construction: unknown keys and invalid values raise
:class:`~twinsr.exceptions.ConfigError` naming the key. Load one from YAML with
:meth:`StudyConfig.from_yaml` or start from a preset with :meth:`StudyConfig.preset`.

Example YAML (every key but ``samples`` is optional; ``train_overrides`` takes fields of
:class:`twinsr.sr.TrainConfig`)::

    samples: [nmc_nrel_xct, my_tomogram.tif, params/berea.json]
    measured: [nmc_nrel_xct, my_tomogram.tif]
    shape: 128
    n_realizations: 4
    split: [2, 1, 1]
    alphas: [2, 4, 8]
    inputs: [bin, diffu]
    train_preset: quick
    train_overrides: {epochs: 10, max_seconds: 120}
    model: {family: grains, objective: descriptors, validate_n: 2}
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from twinsr._validation import read_yaml_config
from twinsr.exceptions import ConfigError
from twinsr.resample import METHODS

if TYPE_CHECKING:
    from twinsr.sr.config import TrainConfig

__all__ = ["PRESETS", "StudyConfig", "TwinModelSettings", "config_difference", "network_label"]

Inputs = Literal["bin", "diffu"]


def network_label(inputs: str, alpha: int | None = None) -> str:
    """Method label of a network in the results table (``N_bin``), or with α (``N_bin_a2``).

    >>> network_label("diffu"), network_label("bin", 4)
    ('N_diffu', 'N_bin_a4')
    """
    return f"N_{inputs}" if alpha is None else f"N_{inputs}_a{int(alpha)}"


class TwinModelSettings(BaseModel):
    """How the study calibrates (and validates) the twin model of each sample.

    Attributes
    ----------
    family : {"chi_square", "grains", "fibres", "auto"}
        Model family (:mod:`twinsr.stochastic.families`); "auto" fits all and keeps the one
        closest to the data on held-out realizations.
    objective : {"s2", "descriptors"}
        The paper's closed-form S₂ fit (χ² only) or the descriptor-matched fit by simulation.
    fit_shape : int or None
        "descriptors": edge of the simulated realizations and of the data blocks they are
        compared with (default 112, at most the calibration volume's edge).
    validate_n : int
        Realizations of the validation of each calibrated sample (0: no validation). The
        validation uses the calibration volume's shape; its table goes into the report.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Literal["chi_square", "grains", "fibres", "auto"] = "chi_square"
    objective: Literal["s2", "descriptors"] = "s2"
    fit_shape: int | None = Field(default=None, ge=16)
    validate_n: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _objective_fits_family(self) -> TwinModelSettings:
        if self.objective == "s2" and self.family != "chi_square":
            raise ValueError(f"objective 's2' fits only the chi_square family; use objective "
                             f"'descriptors' for family {self.family!r}")
        return self


class StudyConfig(BaseModel):
    """Settings of one run of the paper's experiment.

    Attributes
    ----------
    name : str
        Label used in the report.
    samples : list of str
        Where the parameter sets come from, one per entry: a built-in dataset name
        (``twinsr.datasets.names()``, optionally as ``builtin:NAME``), a volume file to
        calibrate from, or a ``.json`` file of a calibrated :class:`ChiSquareModel`.
    model : TwinModelSettings
        Family and objective of the twin model calibration, and its validation.
    covariance : {"auto", "gaussian", "exponential", "matern"}
        χ² family: covariance for calibration ("auto" keeps the better fit).
    excursion_phase : {"auto", "solid", "pore"}
        χ² family: which phase is the excursion set when calibrating.
    calibration_crop : int or None
        Calibrate on the central cube of at most this edge (speed); None = whole volume.
    shape : int or [z, y, x]
        HR shape of every realization (paper: 800).
    n_realizations : int
        Realizations per parameter set (paper: 10).
    split : [train, validation, test]
        Realizations per split; must sum to ``n_realizations`` (paper: 7/2/1).
    alphas : list of int
        Scale factors, subset of {2, 4, 8}; trained in ascending order.
    inputs : list of {"bin", "diffu"}
        Networks N^{bin,α} (binary LR) and/or N^{diffu,α} (LR + diffusion channels).
    train_preset : str
        A preset of :class:`twinsr.sr.TrainConfig` (a key of :data:`twinsr.sr.config.PRESETS`:
        ``paper``, ``quick``, ``demo``, ``micro``).
    train_overrides : dict
        Fields of :class:`twinsr.sr.TrainConfig` replacing the preset's; checked on
        construction (an unknown field or an invalid value is a :class:`ConfigError` naming
        it). ``seed`` defaults to the study's ``seed``.
    transfer : bool
        Start the α network from the α/2 network of the same inputs (spec §2.2.3).
    measured : list of str
        Measured volumes to evaluate on (built-in names or volume files, binary, 1 = solid).
    measured_crop : int or None
        Evaluate on the central cube of at most this edge (HR voxels); None = whole volume.
    evaluate_simulated : bool
        Also evaluate on the simulated test realizations.
    subvolumes : int
        Number of equal non-overlapping sub-volumes per test volume, a cube k^3 (paper: 8).
    min_lr_edge : int
        A (volume, α) whose LR sub-volumes would have an edge below this is skipped and the
        skip recorded in the report (e.g. a small measured volume at α = 8).
    baselines : list of {"triquadratic", "trilinear", "nearest"}
        Interpolation baselines (:data:`twinsr.resample.METHODS`; the paper's is tri-quadratic).
    tortuosity : bool
        Compute the tortuosity errors (Eqs. 23-24); the most expensive part of evaluation.
    axis : int
        Transport direction for the diffusion channels and the tortuosities.
    seed : int
        Master seed; every step derives its own.
    device : str
        "auto", "cpu" or "cuda[:N]" (not part of the study's identity).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "study"
    samples: list[str] = Field(min_length=1)
    model: TwinModelSettings = Field(default_factory=TwinModelSettings)
    covariance: Literal["auto", "gaussian", "exponential", "matern"] = "auto"
    excursion_phase: Literal["auto", "solid", "pore"] = "auto"
    calibration_crop: int | None = Field(default=None, ge=16)
    shape: tuple[int, int, int] = (128, 128, 128)
    n_realizations: int = Field(default=4, ge=3)
    split: tuple[int, int, int] = (2, 1, 1)
    alphas: list[Literal[2, 4, 8]] = Field(default_factory=lambda: [2, 4, 8], min_length=1)
    inputs: list[Inputs] = Field(default_factory=lambda: ["bin", "diffu"], min_length=1)
    train_preset: str = "quick"
    train_overrides: dict[str, Any] = Field(default_factory=dict)
    transfer: bool = True
    measured: list[str] = Field(default_factory=list)
    measured_crop: int | None = Field(default=None, ge=8)
    evaluate_simulated: bool = True
    subvolumes: int = 8
    min_lr_edge: int = Field(default=4, ge=1)
    baselines: list[str] = Field(default_factory=lambda: list(METHODS))
    tortuosity: bool = True
    axis: int = Field(default=0, ge=0, le=2)
    seed: int = Field(default=0, ge=0)
    device: str = "auto"

    def __init__(self, **data: Any) -> None:
        """Validate ``data``; a bad key or value raises :class:`ConfigError` naming it."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc)) from None

    @field_validator("shape", mode="before")
    @classmethod
    def _cube(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return (v, v, v)
        return v

    @field_validator("shape")
    @classmethod
    def _shape_positive(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 16 for s in v):
            raise ValueError(f"every HR edge must be >= 16, got {v}")
        return v

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, v: list[str]) -> list[str]:
        bad = [b for b in v if b not in METHODS]
        if bad:
            raise ValueError(f"unknown interpolation {bad[0]!r}; choose from {list(METHODS)}")
        return v

    @field_validator("train_preset")
    @classmethod
    def _known_train_preset(cls, v: str) -> str:
        from twinsr.sr.config import PRESETS as TRAIN_PRESETS

        if v not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {v!r}; choose one of "
                             f"{sorted(TRAIN_PRESETS)}")
        return v

    @field_validator("train_overrides")
    @classmethod
    def _valid_train_overrides(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        preset = info.data.get("train_preset")
        if preset is None:  # the preset itself is invalid; that error is reported
            return v
        _check_train_overrides(preset, v)
        return v

    @field_validator("alphas", "inputs", "baselines")
    @classmethod
    def _unique_sorted(cls, v: list[Any]) -> list[Any]:
        if len(set(v)) != len(v):
            raise ValueError(f"entries must be distinct, got {v}")
        return sorted(v) if all(isinstance(x, int) for x in v) else list(v)

    @field_validator("subvolumes")
    @classmethod
    def _cube_count(cls, v: int) -> int:
        k = round(v ** (1 / 3))
        if v < 1 or k**3 != v:
            raise ValueError(f"must be a cube k^3 (1, 8, 27, ...), got {v}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        d = v.strip().lower()
        if d not in ("auto", "cpu") and not d.startswith("cuda"):
            raise ValueError(f"must be 'auto', 'cpu' or 'cuda[:N]', got {v!r}")
        return d

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        if sum(self.split) != self.n_realizations:
            raise ValueError(f"split {list(self.split)} must sum to n_realizations="
                             f"{self.n_realizations}")
        if any(s < 1 for s in self.split):
            raise ValueError(f"split {list(self.split)}: every part needs >= 1 realization")
        k = self.k
        for a in self.alphas:
            if any(s % a for s in self.shape):
                raise ValueError(f"shape {self.shape} must be divisible by every alpha ({a})")
            if any((s // (k * a)) < self.min_lr_edge for s in self.shape) and \
                    self.evaluate_simulated:
                raise ValueError(
                    f"shape {self.shape} is too small: {self.subvolumes} sub-volumes at alpha={a} "
                    f"give LR edges below min_lr_edge={self.min_lr_edge}")
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def k(self) -> int:
        """Sub-volumes per axis (``subvolumes = k**3``)."""
        return round(self.subvolumes ** (1 / 3))

    @property
    def networks(self) -> list[str]:
        """Network method labels in table order (``N_bin``, ``N_diffu``)."""
        return [network_label(i) for i in self.inputs]

    @property
    def methods(self) -> list[str]:
        """Method labels in table order: networks first, then baselines."""
        return self.networks + list(self.baselines)

    def train_config(self) -> TrainConfig:
        """The :class:`~twinsr.sr.TrainConfig` of every network of the study.

        ``train_preset`` with ``train_overrides`` applied; ``seed`` is the study's unless
        overridden.

        >>> StudyConfig.preset("micro").train_config().channels
        4
        """
        from twinsr.sr.config import TrainConfig

        return TrainConfig.preset(self.train_preset,
                                  **{"seed": self.seed, **self.train_overrides})

    def identity(self) -> dict[str, Any]:
        """The settings that define the study's results (everything but ``device``)."""
        d = self.model_dump(mode="json")
        d.pop("device", None)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        """Validate a mapping; errors become :class:`ConfigError` naming the key."""
        if not isinstance(data, dict):
            raise ConfigError(f"a study config must be a mapping, got {type(data).__name__}")
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"invalid study config: key {bad[0]!r} is not a name")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudyConfig:
        """Load and validate a YAML file (see the module docstring for an example).

        Raises
        ------
        ConfigError
            A missing or unreadable file, text that is not UTF-8 or not YAML, an unknown key or an
            invalid value (the message names the file and the key).
        """
        data = read_yaml_config(path, "study config")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_yaml(self) -> str:
        """The resolved config as YAML (round-trips through :meth:`from_yaml`)."""
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> StudyConfig:
        """A preset (``micro``, ``demo``, ``quick``, ``paper``), optionally with fields replaced.

        Raises
        ------
        ConfigError
            Unknown preset or invalid override.
        """
        if name not in PRESETS:
            raise ConfigError(f"unknown study preset {name!r}; choose one of {sorted(PRESETS)}")
        data = {**PRESETS[name], **overrides}
        return cls.from_dict(data)


def _check_train_overrides(preset: str, overrides: dict[str, Any]) -> None:
    """Raise ValueError naming the first unknown or invalid field of ``overrides``.

    The fields are those of :class:`twinsr.sr.TrainConfig`, applied over training preset
    ``preset``.
    """
    from twinsr.sr.config import PRESETS as TRAIN_PRESETS
    from twinsr.sr.config import TrainConfig

    known = list(TrainConfig.model_fields)
    for key in overrides:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(known)}"
            raise ValueError(f"unknown training setting {key!r}{hint}")
    try:
        TrainConfig.model_validate({**TRAIN_PRESETS[preset], **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"training setting {key!r}: {err['msg']} (got {err.get('input')!r})"
                         ) from None


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(x) for x in err["loc"]) or "(config)"
        if err["type"] == "extra_forbidden":
            known = list(StudyConfig.model_fields)
            near = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(known)}"
            parts.append(f"unknown key {key!r}{hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            shown = repr(err.get("input")) in msg or "(got " in msg
            got = "" if shown else f" (got {err.get('input')!r})"
            parts.append(f"invalid value for {key!r}: {msg}{got}")
    return "invalid study config: " + "; ".join(parts)


def config_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable lines ``key: old -> new`` for keys whose values differ."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            lines.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return lines


#: Preset settings. ``micro`` is for CI (tiny, ~1-2 minutes); ``demo`` is the README's main job
#: (α = 2 on the built-in NMC volume, <= 10 minutes on 2 CPU cores); ``quick`` is the whole
#: study at small scale (<= 45 minutes on 2 CPU cores); ``paper`` is the paper's protocol (GPU).
PRESETS: dict[str, dict[str, Any]] = {
    "micro": {
        "name": "micro",
        "samples": ["nmc_superres_xct"],
        "calibration_crop": 48,
        "shape": 32,
        "n_realizations": 3,
        "split": [1, 1, 1],
        "alphas": [2, 4],
        "inputs": ["bin", "diffu"],
        "train_preset": "micro",
        "measured": ["nmc_superres_xct"],
        "measured_crop": 32,
        "subvolumes": 8,
        "min_lr_edge": 2,
        "baselines": ["triquadratic", "nearest"],
        "tortuosity": True,
    },
    "demo": {
        "name": "demo",
        "samples": ["nmc_nrel_xct"],
        "calibration_crop": 128,
        "shape": 96,
        "n_realizations": 4,
        "split": [2, 1, 1],
        "alphas": [2],
        "inputs": ["bin", "diffu"],
        "train_preset": "demo",
        "train_overrides": {"max_seconds": 150.0},
        "measured": ["nmc_nrel_xct"],
        "measured_crop": 128,
        "subvolumes": 8,
        "baselines": ["triquadratic", "trilinear", "nearest"],
        "tortuosity": True,
    },
    "quick": {
        "name": "quick",
        "samples": ["nmc_nrel_xct", "berea_sandstone"],
        "model": {"family": "grains", "objective": "descriptors", "fit_shape": 112,
                  "validate_n": 2},
        "calibration_crop": 224,
        "shape": 128,
        "n_realizations": 4,
        "split": [2, 1, 1],
        "alphas": [2, 4, 8],
        "inputs": ["bin", "diffu"],
        "train_preset": "quick",
        "train_overrides": {"max_seconds": 240.0},
        "measured": ["nmc_nrel_xct", "berea_sandstone"],
        "measured_crop": 128,
        "subvolumes": 8,
        "min_lr_edge": 4,
        "baselines": ["triquadratic", "trilinear", "nearest"],
        "tortuosity": True,
    },
    "paper": {
        "name": "paper",
        "samples": ["nmc_nrel_xct", "nmc_superres_xct", "berea_sandstone", "ketton_limestone",
                    "fiberform_puma"],
        "shape": 800,
        "n_realizations": 10,
        "split": [7, 2, 1],
        "alphas": [2, 4, 8],
        "inputs": ["bin", "diffu"],
        "train_preset": "paper",
        "measured": ["nmc_nrel_xct", "nmc_superres_xct", "berea_sandstone", "ketton_limestone",
                     "fiberform_puma"],
        "subvolumes": 8,
        "min_lr_edge": 8,
        "baselines": ["triquadratic", "trilinear", "nearest"],
        "tortuosity": True,
    },
}
