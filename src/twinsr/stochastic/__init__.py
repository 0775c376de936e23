"""Digital-twin models: the χ² excursion-set model of the paper (§2.1.2) with its covariance
families and Gaussian random fields, germ–grain packings (:class:`GrainModel`) and Boolean fibres
(:class:`FibreModel`); calibration to a measured volume (closed-form S₂ or descriptor-matched by
simulation), validation against it, and generation of digital twins on disk.

Examples
--------
>>> from twinsr.stochastic import ChiSquareModel, calibrate
>>> model = ChiSquareModel.from_volume_fraction(0.5, 0.12, "gaussian")
>>> im = model.sample((48, 48, 48), rng=0)
>>> fit = calibrate(im, covariance="gaussian")
>>> fit.family, fit.covariance
('chi_square', 'gaussian')
"""

from twinsr.stochastic.calibrate import (
    CalibrationResult,
    calibrate,
    empirical_two_point_coverage,
    plot_calibration,
)
from twinsr.stochastic.covariance import (
    COVARIANCE_FAMILIES,
    Covariance,
    ExponentialCovariance,
    GaussianCovariance,
    MaternCovariance,
    gamma_from_physical,
    gamma_to_physical,
    make_covariance,
)
from twinsr.stochastic.excursion import EXCURSION_PHASES, ChiSquareModel, excursion_coverage
from twinsr.stochastic.families import (
    FAMILIES,
    TwinModel,
    family_of,
    load_model_file,
    model_from_dict,
)
from twinsr.stochastic.fibres import FibreModel
from twinsr.stochastic.fields import (
    EmbeddingInfo,
    embedding_info,
    gaussian_field,
    gaussian_field_pair,
)
from twinsr.stochastic.generate import GENERATE_FORMATS, generate, twin_name
from twinsr.stochastic.grains import GrainModel, PackingInfo
from twinsr.stochastic.validate import ValidationResult, ValidationRow, validate, write_validation

__all__ = [
    "COVARIANCE_FAMILIES",
    "EXCURSION_PHASES",
    "FAMILIES",
    "GENERATE_FORMATS",
    "CalibrationResult",
    "ChiSquareModel",
    "Covariance",
    "EmbeddingInfo",
    "ExponentialCovariance",
    "FibreModel",
    "GaussianCovariance",
    "GrainModel",
    "MaternCovariance",
    "PackingInfo",
    "TwinModel",
    "ValidationResult",
    "ValidationRow",
    "calibrate",
    "embedding_info",
    "empirical_two_point_coverage",
    "excursion_coverage",
    "family_of",
    "gamma_from_physical",
    "gamma_to_physical",
    "gaussian_field",
    "gaussian_field_pair",
    "generate",
    "load_model_file",
    "make_covariance",
    "model_from_dict",
    "plot_calibration",
    "twin_name",
    "validate",
    "write_validation",
]
