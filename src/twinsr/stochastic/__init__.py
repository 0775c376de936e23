"""The χ² excursion-set model of the paper (§2.1.2): covariance families, Gaussian random fields,
the model itself (sampling, closed-form two-point coverage, JSON), calibration to a measured volume
and generation of digital twins on disk.

Examples
--------
>>> from twinsr.stochastic import ChiSquareModel, calibrate
>>> model = ChiSquareModel.from_volume_fraction(0.5, 0.12, "gaussian")
>>> im = model.sample((48, 48, 48), rng=0)
>>> fit = calibrate(im, covariance="gaussian")
>>> fit.family
'gaussian'
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
from twinsr.stochastic.fields import (
    EmbeddingInfo,
    embedding_info,
    gaussian_field,
    gaussian_field_pair,
)
from twinsr.stochastic.generate import GENERATE_FORMATS, generate, twin_name

__all__ = [
    "COVARIANCE_FAMILIES",
    "EXCURSION_PHASES",
    "GENERATE_FORMATS",
    "CalibrationResult",
    "ChiSquareModel",
    "Covariance",
    "EmbeddingInfo",
    "ExponentialCovariance",
    "GaussianCovariance",
    "MaternCovariance",
    "calibrate",
    "embedding_info",
    "empirical_two_point_coverage",
    "excursion_coverage",
    "gamma_from_physical",
    "gamma_to_physical",
    "gaussian_field",
    "gaussian_field_pair",
    "generate",
    "make_covariance",
    "plot_calibration",
    "twin_name",
]
