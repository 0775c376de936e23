"""Model cards of the pretrained bundles shipped with twinsr (``builtin:NAME``).

Each pretrained model is three files in ``twinsr/datasets/models/`` (package data, installed with
the wheel; nothing is downloaded at run time):

``NAME.pt``
    The model bundle (:mod:`twinsr.sr.bundle`).
``NAME.yaml``
    Its model card, in the spirit of the BioImage Model Zoo's ``rdf.yaml``: what the network
    expects (α, inputs, transport axis, μ*), the training data (twin model family, its
    parameters and the measured volume they were calibrated on), the training config, package
    versions, test metrics on held-out twins and on a measured volume against tri-quadratic
    interpolation, intended use and limits, licence, the SHA-256 of the weights file and a test
    input/output pair. Validated by :class:`ModelCard` (pydantic; unknown keys refused).
``NAME.test.npz``
    The test pair: ``input`` (binary LR block, uint8) and ``output`` (its thresholded SR, uint8).

:func:`pretrained_path` resolves a name, checks the card and refuses weights whose SHA-256 does
not match the card (:class:`~twinsr.exceptions.BundleError`). :func:`twinsr.sr.load_model` and
everything that takes a model path accept ``"builtin:NAME"`` through it.

This module imports neither torch nor the network code (it is a leaf of :mod:`twinsr.sr`).

Examples
--------
>>> "nmc_bin_a2" in pretrained_names()
True
>>> card = load_card("nmc_bin_a2")
>>> card.alpha, card.inputs, card.license
(2, 'bin', 'MIT')
"""

from __future__ import annotations

import hashlib
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twinsr.exceptions import BundleError

__all__ = [
    "BUILTIN_PREFIX",
    "CARD_VERSION",
    "Evaluation",
    "MethodScores",
    "ModelCard",
    "ReferencePair",
    "builtin_name",
    "file_sha256",
    "load_card",
    "models_dir",
    "pretrained_names",
    "pretrained_path",
]

BUILTIN_PREFIX = "builtin:"
CARD_VERSION = 1
_SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MethodScores(_Strict):
    """Scores of one method on one set of volumes (means over the volumes).

    ``geod_rel_err`` / ``eff_rel_err`` are the relative errors of the mean geodesic and the
    effective tortuosity along the transport axis, averaged over both phases
    (:func:`twinsr.metrics.tortuosity_errors`, key ``"mean"``); ``inf`` where a phase does not
    percolate in the output but does in the ground truth.
    """

    accuracy: float = Field(ge=0, le=1)
    surface_accuracy: float = Field(ge=0, le=1)
    geod_rel_err: float = Field(ge=0)
    eff_rel_err: float = Field(ge=0)


class Evaluation(_Strict):
    """Test metrics of the network (``sr``) and of tri-quadratic interpolation on the same data."""

    data: str
    volumes: int = Field(ge=1)
    hr_shape: list[int] = Field(min_length=3, max_length=3)
    axis: int = Field(ge=0, le=2)
    sr: MethodScores
    triquadratic: MethodScores


class Weights(_Strict):
    file: str
    sha256: str = Field(pattern=_SHA256)
    size_bytes: int = Field(ge=1)
    format: Literal["twinsr-sr-bundle"] = "twinsr-sr-bundle"
    format_version: int = Field(ge=1)


class ReferencePair(_Strict):
    """A small LR input and its thresholded output, which the bundle must still reproduce."""

    file: str
    sha256: str = Field(pattern=_SHA256)
    input_shape: list[int] = Field(min_length=3, max_length=3)
    output_shape: list[int] = Field(min_length=3, max_length=3)
    precision: Literal["fp32"] = "fp32"
    max_mismatch: float = Field(ge=0, le=1, description="largest fraction of output voxels that "
                                "may differ (float round-off across CPUs near μ*)")


class TrainingData(_Strict):
    source_volume: str
    source_provenance: dict[str, Any]
    twin_family: str
    twin_parameters: dict[str, Any]
    calibration: dict[str, Any]
    database: dict[str, Any]


class Training(_Strict):
    preset: str
    overrides: dict[str, Any]
    config: dict[str, Any]
    epochs_run: int = Field(ge=1)
    best_epoch: int = Field(ge=1)
    best_val_loss: float
    stopped_early: bool
    transferred_from: str | None = None
    device: str
    precision: str


class ModelCard(_Strict):
    """The schema of a model card (``NAME.yaml``).

    Raises
    ------
    pydantic.ValidationError
        On construction from bad data (:func:`load_card` turns it into a BundleError).
    """

    format: Literal["twinsr-model-card"] = "twinsr-model-card"
    format_version: Literal[1] = CARD_VERSION
    type: Literal["model"] = "model"
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    tags: list[str] = Field(default_factory=list)
    authors: list[str]
    license: str
    alpha: Literal[2, 4, 8]
    inputs: Literal["bin", "diffu"]
    targets: str
    transport_axis: int | None = Field(None, ge=0, le=2)
    threshold: float = Field(gt=0, lt=1)
    weights: Weights
    test: ReferencePair
    training_data: TrainingData
    training: Training
    versions: dict[str, str]
    metrics: dict[str, Evaluation]
    intended_use: str
    limitations: list[str] = Field(min_length=1)
    references: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line: α, inputs and the headline scores against tri-quadratic."""
        parts = [f"alpha={self.alpha} inputs={self.inputs}"]
        for key, ev in self.metrics.items():
            s, t = ev.sr, ev.triquadratic
            parts.append(f"{key}: acc {s.accuracy:.3f} (triq {t.accuracy:.3f}), surf "
                         f"{s.surface_accuracy:.3f} ({t.surface_accuracy:.3f}), tau_eff err "
                         f"{_pct(s.eff_rel_err)} ({_pct(t.eff_rel_err)})")
        return "; ".join(parts)


def _pct(x: float) -> str:
    return "inf" if not math.isfinite(x) else f"{100 * x:.1f}%"


def models_dir() -> Path:
    """The folder of the shipped bundles, cards and test pairs."""
    return Path(str(resources.files("twinsr.datasets").joinpath("models")))


def pretrained_names(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the pretrained models (one per card), sorted.

    Examples
    --------
    >>> pretrained_names()[:2]
    ['nmc_bin_a2', 'nmc_bin_a4']
    """
    d = Path(root) if root is not None else models_dir()
    if not d.is_dir():
        return []
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))


def builtin_name(model: object) -> str | None:
    """``NAME`` of a ``"builtin:NAME"`` string, else None.

    Examples
    --------
    >>> builtin_name("builtin:nmc_bin_a2"), builtin_name("run/model.pt")
    ('nmc_bin_a2', None)
    """
    if isinstance(model, str) and model.startswith(BUILTIN_PREFIX):
        return model[len(BUILTIN_PREFIX):]
    return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes (what ``sha256sum`` prints)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_name(name: str, root: Path) -> None:
    names = pretrained_names(root)
    if name not in names:
        raise BundleError(f"unknown built-in model {name!r}; available: "
                          f"{', '.join(names) or '(none installed)'} (list them with "
                          "`twinsr models`)")


def load_card(name: str, *, root: str | os.PathLike[str] | None = None) -> ModelCard:
    """The validated card of a pretrained model (``NAME`` or ``builtin:NAME``).

    Raises
    ------
    BundleError
        Unknown name (the message lists the available ones); a card that is unreadable or does
        not follow :class:`ModelCard`.
    """
    import yaml

    name = builtin_name(name) or name
    d = Path(root) if root is not None else models_dir()
    _check_name(name, d)
    path = d / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        card = ModelCard.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BundleError(f"cannot read the model card {path} ({exc}); reinstall twinsr") from exc
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
        raise BundleError(f"the model card {path} is invalid: {msgs}") from None
    if card.name != name:
        raise BundleError(f"the model card {path} is for {card.name!r}, not {name!r}")
    return card


def pretrained_path(name: str, *, root: str | os.PathLike[str] | None = None) -> Path:
    """The bundle file of a pretrained model, after checking it against its card.

    Parameters
    ----------
    name : str
        ``NAME`` or ``builtin:NAME`` (:func:`pretrained_names`).
    root : path, optional
        Folder of the cards and bundles (default :func:`models_dir`).

    Returns
    -------
    Path
        The ``.pt`` file, whose SHA-256 equals the card's ``weights.sha256``.

    Raises
    ------
    BundleError
        Unknown name, invalid card, missing weights file, or weights whose SHA-256 does not
        match the card (the file was changed or damaged: reinstall twinsr).

    Examples
    --------
    >>> pretrained_path("builtin:nmc_diffu_a4").name
    'nmc_diffu_a4.pt'
    """
    d = Path(root) if root is not None else models_dir()
    card = load_card(name, root=d)
    path = d / card.weights.file
    if not path.is_file():
        raise BundleError(f"the weights {path} of built-in model {card.name!r} are missing; "
                          "reinstall twinsr (pip install --force-reinstall twinsr)")
    digest = file_sha256(path)
    if digest != card.weights.sha256:
        raise BundleError(f"the weights {path} of built-in model {card.name!r} do not match its "
                          f"card (SHA-256 {digest[:16]}…, the card says "
                          f"{card.weights.sha256[:16]}…); refusing to load them. Reinstall "
                          "twinsr to restore the shipped files")
    return path
