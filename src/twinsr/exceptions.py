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
    "NonPercolatingWarning",
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


class CalibrationWarning(UserWarning):
    """A model fit is unreliable, e.g. its parameter landed on the edge of the search range."""


class EmbeddingWarning(UserWarning):
    """A random-field embedding misses its stated covariance accuracy ``tol``."""
