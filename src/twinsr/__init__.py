"""twinsr: super-resolution of 3D tomograms of porous materials with networks trained on digital twins.

The public API is re-exported here by name; importing twinsr has no side effects and does not
import torch (network code is imported lazily).
"""

from __future__ import annotations

from twinsr.exceptions import (
    BundleError,
    ConfigError,
    ConvergenceWarning,
    DatasetError,
    MemoryBudgetError,
    NonPercolatingWarning,
    TwinsrError,
    VolumeError,
    VolumeFileError,
)

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "ConfigError",
    "ConvergenceWarning",
    "DatasetError",
    "MemoryBudgetError",
    "NonPercolatingWarning",
    "TwinsrError",
    "VolumeError",
    "VolumeFileError",
    "__version__",
]
