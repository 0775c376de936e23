"""What a network learns to predict: the registry of training-target kinds.

A target kind (``TrainConfig.targets``) fixes the network's output channels, whether the database
must hold the HR diffusion solution, how training crops are drawn and which loss is minimised.
The core registers ``"morph"`` (the HR morphology, :mod:`twinsr.sr.objectives`); the
physics-output networks register ``"morph+diffu"`` (:mod:`twinsr.sr.physics`). Importing
:mod:`twinsr.sr` imports both, so the registry is complete before any training starts, while the
core modules (data, train, bundle, infer, ...) never import the physics module.

This module is a leaf: it imports nothing of twinsr but the exceptions, so the configuration, the
database and the bundle can check a target name without importing torch or the samplers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twinsr.exceptions import ConfigError

__all__ = ["TargetKind", "register_target_kind", "target_kind", "target_kinds"]


@dataclass(frozen=True)
class TargetKind:
    """One kind of training target.

    Attributes
    ----------
    name : str
        The ``TrainConfig.targets`` value, e.g. ``"morph"``.
    out_channels : int
        Output channels of the network (channel 0 is always the solid logit).
    output_names : tuple of str
        One name per output channel.
    needs_hr_solution : bool
        The database must hold the HR diffusion solution (``hr_diffusion=True``).
    make_sampler : callable
        ``make_sampler(pairs, *, alpha, crop, rng, augment, axis)`` → a
        :class:`twinsr.sr.data.CropSampler` whose ``sample(batch)`` returns ``(lr, target)`` with
        ``target`` of shape (batch, T, αn, αn, αn); ``pairs`` are database
        :class:`~twinsr.sr.database.Pair` objects, ``axis`` the database's transport axis.
    make_loss : callable
        ``make_loss(config)`` → ``loss(output, target)`` (scalar tensor) for a
        :class:`~twinsr.sr.config.TrainConfig`.
    description : str
        One line for error messages and ``--help``.
    """

    name: str
    out_channels: int
    output_names: tuple[str, ...]
    needs_hr_solution: bool
    make_sampler: Callable[..., Any]
    make_loss: Callable[[Any], Callable[[Any, Any], Any]]
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.output_names) != self.out_channels:
            raise ConfigError(f"target kind {self.name!r}: {len(self.output_names)} output names "
                              f"for {self.out_channels} output channels")


_REGISTRY: dict[str, TargetKind] = {}


def register_target_kind(kind: TargetKind, *, replace: bool = False) -> TargetKind:
    """Add a target kind to the registry (done at import by the module that defines it).

    Raises
    ------
    ConfigError
        A kind of that name is registered already and ``replace`` is False.
    """
    if kind.name in _REGISTRY and not replace and _REGISTRY[kind.name] != kind:
        raise ConfigError(f"a target kind named {kind.name!r} is registered already; pass "
                          "replace=True to override it")
    _REGISTRY[kind.name] = kind
    return kind


def target_kinds() -> tuple[str, ...]:
    """Names of the registered target kinds, sorted.

    Examples
    --------
    >>> import twinsr.sr
    >>> target_kinds()
    ('morph', 'morph+diffu')
    """
    return tuple(sorted(_REGISTRY))


def target_kind(name: object) -> TargetKind:
    """The registered target kind called ``name``.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones).

    Examples
    --------
    >>> import twinsr.sr
    >>> target_kind("morph+diffu").out_channels
    3
    """
    kind = _REGISTRY.get(name) if isinstance(name, str) else None
    if kind is None:
        known = ", ".join(repr(k) for k in target_kinds())
        raise ConfigError(f"unknown targets {name!r}; known target kinds: {known}")
    return kind
