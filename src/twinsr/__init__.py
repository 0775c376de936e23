"""twinsr: super-resolution of 3D tomograms of porous materials with networks trained on digital twins.

The public API is re-exported here by name. Importing twinsr has no side effects and is cheap:
each name is imported from its module on first use (so ``import twinsr`` does not import torch).

Examples
--------
>>> import twinsr
>>> im = twinsr.datasets.load("nmc_superres_xct")          # a measured NMC cathode, 128^3
>>> fit = twinsr.calibrate(im)                              # chi-square excursion-set model
>>> twin = fit.model.sample((64, 64, 64), rng=0)            # a digital twin, reproducible
>>> twinsr.effective_tortuosity(twin, phase="pore").tau     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from twinsr.exceptions import (
    BundleError,
    CalibrationWarning,
    ConfigError,
    ConvergenceWarning,
    DatasetError,
    EmbeddingWarning,
    MemoryBudgetError,
    ModelWarning,
    NonPercolatingWarning,
    StudyWarning,
    TwinsrError,
    VolumeError,
    VolumeFileError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily on first attribute access)
_LAZY: dict[str, str] = {
    # volumes on disk and shipped data
    "read_volume": "twinsr.io",
    "write_volume": "twinsr.io",
    "read_metadata": "twinsr.io",
    "volume_info": "twinsr.io",
    "datasets": "twinsr.datasets",
    # stochastic model
    "ChiSquareModel": "twinsr.stochastic",
    "CalibrationResult": "twinsr.stochastic",
    "calibrate": "twinsr.stochastic",
    "empirical_two_point_coverage": "twinsr.stochastic",
    "gaussian_field": "twinsr.stochastic",
    "make_covariance": "twinsr.stochastic",
    "generate": "twinsr.stochastic",
    "plot_calibration": "twinsr.stochastic",
    "GrainModel": "twinsr.stochastic",
    "FibreModel": "twinsr.stochastic",
    "validate": "twinsr.stochastic",
    "ValidationResult": "twinsr.stochastic",
    # morphology descriptors
    "describe": "twinsr.descriptors",
    "Descriptors": "twinsr.descriptors",
    "two_point_coverage": "twinsr.descriptors",
    "specific_surface_area": "twinsr.descriptors",
    "chord_length_distribution": "twinsr.descriptors",
    "local_thickness": "twinsr.descriptors",
    "constrictivity": "twinsr.descriptors",
    "percolation_shares": "twinsr.descriptors",
    # transport
    "solve_laplace": "twinsr.transport",
    "diffusion_channels": "twinsr.transport",
    "effective_tortuosity": "twinsr.transport",
    "geodesic_tortuosity": "twinsr.transport",
    "LaplaceSolution": "twinsr.transport",
    "TortuosityResult": "twinsr.transport",
    "GeodesicResult": "twinsr.transport",
    "classify_clusters": "twinsr.transport",
    "face_fluxes": "twinsr.transport",
    "multiphase_tortuosity": "twinsr.transport",
    "MultiphaseResult": "twinsr.transport",
    # resampling and metrics
    "downsample": "twinsr.resample",
    "upsample": "twinsr.resample",
    "accuracy": "twinsr.metrics",
    "surface_accuracy": "twinsr.metrics",
    "boundary_band": "twinsr.metrics",
    "tortuosity_errors": "twinsr.metrics",
    "relative_error": "twinsr.metrics",
    "phase_relative_errors": "twinsr.metrics",
    # super-resolution networks
    "SRResNet3d": "twinsr.sr",
    "PixelShuffle3d": "twinsr.sr",
    "PixelUnshuffle3d": "twinsr.sr",
    "cube_symmetries": "twinsr.sr",
    "Database": "twinsr.sr",
    "SRModel": "twinsr.sr",
    "ModelSpec": "twinsr.sr",
    "ModelCard": "twinsr.sr",
    "pretrained_models": "twinsr.sr",
    "save_bundle": "twinsr.sr",
    "build_database": "twinsr.sr",
    "open_database": "twinsr.sr",
    "TrainConfig": "twinsr.sr",
    "TrainResult": "twinsr.sr",
    "train": "twinsr.sr",
    "fit_threshold": "twinsr.sr",
    "load_model": "twinsr.sr",
    "superresolve": "twinsr.sr",
    "solution_error": "twinsr.sr",
    "SolutionError": "twinsr.sr",
    # out-of-core / distributed inference
    "superresolve_zarr": "twinsr.scale",
    # the study
    "StudyConfig": "twinsr.study",
    "run_study": "twinsr.study",
    "StudyResult": "twinsr.study",
}

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
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twinsr' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
