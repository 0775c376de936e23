"""What a network learns to predict and what it minimises: the registries of target kinds and
of objective terms.

A target kind (``TrainConfig.targets``) fixes the network's output channels, whether the database
must hold the HR diffusion solution, how training crops are drawn and the loss on the output
channels after the solid logit (the HR solutions of ``"morph+diffu"``). An objective term
(a key of ``TrainConfig.objective``) is one loss on the solid logit: ``"bce"``, ``"flux_bce"``,
``"connectivity"``, ``"volume_fraction"`` (:mod:`twinsr.sr.objectives`); the training loss is the
weighted sum of the configured terms plus the target kind's own loss.
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

__all__ = [
    "ObjectiveTerm",
    "TargetKind",
    "objective_term",
    "objective_terms",
    "register_objective_term",
    "register_target_kind",
    "target_kind",
    "target_kinds",
]


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
        ``make_sampler(pairs, *, alpha, crop, rng, augment, axis, flux)`` → a
        :class:`twinsr.sr.data.CropSampler` whose ``sample(batch)`` returns ``(lr, target)`` with
        ``target`` of shape (batch, T, αn, αn, αn), T = ``out_channels`` (+ 1 flux-magnitude
        channel when ``flux`` is True, from the pairs' ``hr_solution``); ``pairs`` are database
        :class:`~twinsr.sr.database.Pair` objects, ``axis`` the database's transport axis.
    make_extra_loss : callable or None
        ``make_extra_loss(config)`` → ``loss(output, target)``, a tensor (N,) per crop, of the
        output channels after the solid logit (``target`` holds the kind's T channels); None
        when the kind has no other output channel.
    description : str
        One line for error messages and ``--help``.
    """

    name: str
    out_channels: int
    output_names: tuple[str, ...]
    needs_hr_solution: bool
    make_sampler: Callable[..., Any]
    make_extra_loss: Callable[[Any], Callable[[Any, Any], Any]] | None = None
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


@dataclass(frozen=True)
class ObjectiveTerm:
    """One loss term on the solid logit, selectable by name in ``TrainConfig.objective``.

    Attributes
    ----------
    name : str
        The key in ``TrainConfig.objective``, e.g. ``"flux_bce"``.
    needs_hr_solution : bool
        The term needs the flux magnitude of the HR diffusion solution (the database must be
        built with ``hr_diffusion=True``); the targets then carry it as their last channel.
    make : callable
        ``make(config)`` → ``term(logit, solid, flux)`` → tensor (N,) per crop, with ``logit``
        and ``solid`` (the binary HR target) of shape (N, 1, Z, Y, X) and ``flux`` the
        flux-magnitude channel (N, 1, Z, Y, X) or None.
    description : str
        One line for error messages and documentation.
    """

    name: str
    needs_hr_solution: bool
    make: Callable[[Any], Callable[[Any, Any, Any], Any]]
    description: str = ""


_TERMS: dict[str, ObjectiveTerm] = {}


def register_objective_term(term: ObjectiveTerm, *, replace: bool = False) -> ObjectiveTerm:
    """Add an objective term to the registry (done at import by the module that defines it).

    Raises
    ------
    ConfigError
        A term of that name is registered already and ``replace`` is False.
    """
    if term.name in _TERMS and not replace and _TERMS[term.name] != term:
        raise ConfigError(f"an objective term named {term.name!r} is registered already; pass "
                          "replace=True to override it")
    _TERMS[term.name] = term
    return term


def objective_terms() -> tuple[str, ...]:
    """Names of the registered objective terms, sorted.

    Examples
    --------
    >>> import twinsr.sr
    >>> objective_terms()
    ('bce', 'connectivity', 'flux_bce', 'volume_fraction')
    """
    return tuple(sorted(_TERMS))


def objective_term(name: object) -> ObjectiveTerm:
    """The registered objective term called ``name``.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones).

    Examples
    --------
    >>> import twinsr.sr
    >>> objective_term("flux_bce").needs_hr_solution
    True
    """
    term = _TERMS.get(name) if isinstance(name, str) else None
    if term is None:
        known = ", ".join(repr(k) for k in objective_terms())
        raise ConfigError(f"unknown objective term {name!r}; known terms: {known}")
    return term
