"""Exceptions and warnings raised by twinsr.

Every user-facing problem raises a subclass of :class:`TwinsrError`, which is itself a
:class:`ValueError`, so ``except ValueError`` keeps working for callers that do not know
twinsr. Messages name the problem and say how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "CalibrationWarning",
    "ConfigError",
    "ConvergenceWarning",
    "DatasetError",
    "EmbeddingWarning",
    "MemoryBudgetError",
    "ModelWarning",
    "NonPercolatingWarning",
    "StudyWarning",
    "TwinsrError",
    "VolumeError",
    "VolumeFileError",
]


class TwinsrError(ValueError):
    """Base class of all errors raised by twinsr for bad input or bad state."""


class VolumeError(TwinsrError):
    """An in-memory volume is unusable: wrong ndim, not binary, NaN, empty phase, too small."""


class VolumeFileError(TwinsrError):
    """A volume file cannot be read or written: unknown format, unreadable, truncated, mismatched."""


class MemoryBudgetError(TwinsrError):
    """A request would need more memory than is available; refused before allocating."""


class ConfigError(TwinsrError):
    """A configuration (YAML, JSON, model parameters) has an unknown key or an invalid value."""


class BundleError(TwinsrError):
    """A model bundle or checkpoint is corrupt or does not match the request."""


class DatasetError(TwinsrError):
    """A built-in dataset or an on-disk database is missing or incomplete."""


class NonPercolatingWarning(UserWarning):
    """A phase does not connect the inlet and outlet faces; the result is τ = inf."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at its iteration limit before reaching the tolerance."""


class ModelWarning(UserWarning):
    """A model is used outside the conditions it was trained or checked for, and the result may
    differ from what the user expects: tiles overlapping less than the receptive field, transfer
    learning from a network of another α or transport axis, an old bundle whose transport axis
    had to be assumed."""


class StudyWarning(UserWarning):
    """A study could not write an optional output (a figure, a training curve) or had to
    replace an unreadable bookkeeping file; the study goes on and its results are unaffected."""


class CalibrationWarning(UserWarning):
    """A model fit is unreliable, e.g. its parameter landed on the edge of the search range."""


class EmbeddingWarning(UserWarning):
    """A random-field embedding misses its stated covariance accuracy ``tol``."""
