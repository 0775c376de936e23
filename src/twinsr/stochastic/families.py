"""The twin model families and the one way to read a model file of any of them.

Every family is a frozen dataclass with ``family`` (its name), ``sample(shape, *, rng, periodic)``
returning a uint8 volume (1 = solid), ``to_dict()`` / ``from_dict()`` (versioned, validated) and
``to_json(path)``. A model file names its family by its ``format`` key, so :func:`model_from_dict`
and :func:`load_model_file` read any of them, and ``generate``, ``build_database``, the study and
the CLI accept every family wherever a :class:`~twinsr.stochastic.ChiSquareModel` works.

========== ============================================ ========================================
family     class                                        structure
========== ============================================ ========================================
chi_square :class:`~twinsr.stochastic.ChiSquareModel`   excursion of Σ X_i² (the paper's model)
grains     :class:`~twinsr.stochastic.GrainModel`       packed spheroids with necks (electrodes,
                                                        granular rocks)
fibres     :class:`~twinsr.stochastic.FibreModel`       Boolean straight fibres (felts, preforms)
========== ============================================ ========================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from twinsr.exceptions import ConfigError
from twinsr.stochastic.excursion import ChiSquareModel
from twinsr.stochastic.fibres import FibreModel
from twinsr.stochastic.grains import GrainModel

__all__ = ["FAMILIES", "TwinModel", "family_of", "load_model_file", "model_from_dict"]


@runtime_checkable
class TwinModel(Protocol):
    """What every twin model offers (structural type; the three families satisfy it)."""

    def sample(self, shape: int | tuple[int, int, int], *, rng: object = None,
               periodic: bool = False) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


#: family name -> (model class, the ``format`` key of its files)
FAMILIES: dict[str, tuple[type, str]] = {
    "chi_square": (ChiSquareModel, "twinsr.chi_square_model"),
    "grains": (GrainModel, "twinsr.grain_model"),
    "fibres": (FibreModel, "twinsr.fibre_model"),
}


def family_of(model: object) -> str:
    """The family name of a model instance.

    Raises
    ------
    ConfigError
        ``model`` is not an instance of a known family.
    """
    for name, (cls, _) in FAMILIES.items():
        if isinstance(model, cls):
            return name
    raise ConfigError(f"{type(model).__name__} is not a twin model; known families: "
                      f"{', '.join(FAMILIES)}")


def model_from_dict(d: object) -> Any:
    """Rebuild a model of any family from its ``to_dict()`` output (dispatch on ``format``).

    A dict without ``format`` is read as a χ² model (the files of twinsr 0.1 carried the key, but
    hand-written parameter files may not).

    Raises
    ------
    ConfigError
        Not a mapping, an unknown format, or invalid parameters for the family.

    Examples
    --------
    >>> m = GrainModel(0.5, 4.0)
    >>> model_from_dict(m.to_dict()) == m
    True
    """
    if not isinstance(d, dict):
        raise ConfigError(f"model parameters must be a JSON object, got {type(d).__name__}")
    fmt = d.get("format", FAMILIES["chi_square"][1])
    for cls, key in FAMILIES.values():
        if fmt == key:
            return cls.from_dict(d)
    known = ", ".join(f"{k!r} ({n})" for n, (_, k) in FAMILIES.items())
    raise ConfigError(f"unknown model format {fmt!r}; twinsr reads {known}")


def load_model_file(path: str | os.PathLike[str]) -> Any:
    """Read a model file of any family (``twinsr calibrate`` output or ``model.to_json()``).

    A calibration file that wraps the model under ``"model"`` is unwrapped.

    Raises
    ------
    ConfigError
        Missing or unreadable file, invalid JSON, unknown format or invalid parameters.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read model parameters {p}: {exc}; create them with "
                          "`twinsr calibrate`") from exc
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p} is not valid JSON ({exc})") from exc
    if isinstance(d, dict) and isinstance(d.get("model"), dict):
        d = d["model"]
    try:
        return model_from_dict(d)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
