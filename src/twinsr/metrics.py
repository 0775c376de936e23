"""Scores of a super-resolved binary volume against its high-resolution ground truth.

* :func:`accuracy` - share of voxels equal to the ground truth (spec §2.3, Eq. 19);
* :func:`boundary_band` / :func:`surface_accuracy` - the same share over the band of voxels
  within 0.55 α of the solid/pore interface (Eqs. 20-22);
* :func:`relative_error`, :func:`phase_relative_errors` and :func:`tortuosity_errors` -
  relative errors of the mean geodesic and the effective tortuosity per phase and their mean
  over the phases (Eqs. 23-24), with non-percolating phases reported explicitly (``inf`` and
  ``percolating=False``), never as NaN.

All volumes are (Z, Y, X) with 1 = solid, 0 = pore.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from twinsr._validation import as_binary_volume, check_axis, check_positive
from twinsr.exceptions import NonPercolatingWarning, VolumeError

__all__ = [
    "MEAN",
    "PHASES",
    "PhaseTortuosity",
    "TortuosityErrors",
    "accuracy",
    "ball",
    "boundary_band",
    "phase_relative_errors",
    "phase_tortuosities",
    "relative_error",
    "surface_accuracy",
    "tortuosity_errors",
]

logger = logging.getLogger(__name__)

#: Phase name -> voxel value (1 = solid, 0 = pore); its keys are the default ``phases``.
PHASES: dict[str, int] = {"pore": 0, "solid": 1}
#: Key of the mean over the phases in the relative-error dicts (and phase label in tables).
MEAN = "mean"


def _pair(sr: object, hr: object) -> tuple[np.ndarray, np.ndarray]:
    a = as_binary_volume(sr, "sr")
    b = as_binary_volume(hr, "hr")
    if a.shape != b.shape:
        raise VolumeError(
            f"`sr` and `hr` must have the same shape, got {a.shape} and {b.shape}; "
            "super-resolve the LR image of exactly this HR volume (see twinsr.resample.downsample)"
        )
    return a, b


def accuracy(sr: np.ndarray, hr: np.ndarray) -> float:
    """Share of voxels where ``sr`` equals ``hr`` (spec Eq. 19).

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), binary (uint8/bool; 1 = solid, 0 = pore)
        Super-resolved volume and ground truth, same shape.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    VolumeError
        Not 3-D, not binary, or shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.zeros((4, 4, 4), np.uint8); sr = hr.copy(); sr[0, 0, 0] = 1
    >>> accuracy(sr, hr)
    0.984375
    """
    a, b = _pair(sr, hr)
    return float(np.count_nonzero(a == b)) / a.size


def ball(radius: float) -> np.ndarray:
    """Boolean ball structuring element: offsets d with |d| <= ``radius`` (voxel units).

    Shape (2R+1,)*3 with R = floor(radius). ``ball(1.1)`` is the 6-neighbourhood plus centre.
    """
    r = check_positive(radius, "radius")
    big = math.floor(r)
    g = np.mgrid[-big : big + 1, -big : big + 1, -big : big + 1]
    return (g**2).sum(axis=0) <= r * r + 1e-9


def boundary_band(hr: np.ndarray, alpha: int | float, *, radius_factor: float = 0.55) -> np.ndarray:
    """Boundary band B of a binary volume (spec Eqs. 20-21).

    Solid and pore are each eroded with a ball of radius ``radius_factor * alpha``; voxels
    outside the window count as the eroded phase's own value (nothing is eroded from the
    border). B is the set of voxels removed from either phase, i.e. the voxels whose distance
    to the other phase is at most the radius.

    Parameters
    ----------
    hr : numpy.ndarray, shape (Z, Y, X), binary (1 = solid, 0 = pore)
        Ground-truth volume.
    alpha : int or float
        Scale factor α (> 0); the ball radius is 0.55 α voxels.
    radius_factor : float
        The 0.55 of the paper.

    Returns
    -------
    numpy.ndarray of bool, shape (Z, Y, X)
        True on the band.

    Raises
    ------
    VolumeError
        Not 3-D, not binary, or α <= 0.

    Notes
    -----
    ``scipy.ndimage.binary_erosion(phase, ball, border_value=1)``: with ``border_value=1`` the
    voxels outside the array are treated as belonging to the phase being eroded.

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.zeros((6, 6, 6), np.uint8); hr[:3] = 1
    >>> int(boundary_band(hr, 2).sum())  # the two layers z = 2 and z = 3
    72
    """
    im = as_binary_volume(hr, "hr").astype(bool)
    r = check_positive(alpha, "alpha") * check_positive(radius_factor, "radius_factor")
    se = ball(r)
    solid_kept = ndimage.binary_erosion(im, se, border_value=1)
    pore_kept = ndimage.binary_erosion(~im, se, border_value=1)
    return (im & ~solid_kept) | (~im & ~pore_kept)


def surface_accuracy(sr: np.ndarray, hr: np.ndarray, alpha: int | float, *,
                     band: np.ndarray | None = None) -> float:
    """Accuracy over the boundary band of ``hr`` (spec Eq. 22).

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), binary
        Super-resolved volume and ground truth.
    alpha : int or float
        Scale factor α (band radius 0.55 α).
    band : numpy.ndarray of bool, optional
        Precomputed :func:`boundary_band` of ``hr`` (reuse it when scoring several methods).

    Returns
    -------
    float
        In [0, 1]. A volume with a single phase has an empty band; then 1.0 is returned if
        ``sr`` is fully correct, else the plain accuracy (documented convention; no NaN).

    Raises
    ------
    VolumeError
        Not 3-D, not binary, shapes differ (also for ``band``).

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.zeros((6, 6, 6), np.uint8); hr[:3] = 1
    >>> sr = hr.copy(); sr[2, 0, 0] = 0
    >>> round(surface_accuracy(sr, hr, 2), 4)  # 1 wrong voxel among 72 band voxels
    0.9861
    """
    a, b = _pair(sr, hr)
    if band is None:
        band = boundary_band(b, alpha)
    else:
        band = np.asarray(band, dtype=bool)
        if band.shape != b.shape:
            raise VolumeError(f"`band` must have shape {b.shape}, got {band.shape}")
    n = int(np.count_nonzero(band))
    if n == 0:
        return float(np.count_nonzero(a == b)) / a.size
    return float(np.count_nonzero((a == b) & band)) / n


def relative_error(value: float, reference: float) -> float:
    """|value - reference| / reference, with explicit rules for non-percolating phases.

    Tortuosities are >= 1 or ``inf`` (non-percolating phase). Rules: both finite -> the usual
    relative error; exactly one infinite -> ``inf``; both infinite -> 0.0 (both agree that the
    phase does not percolate; the percolation flags are recorded separately).

    Raises
    ------
    VolumeError
        NaN input, or a finite reference equal to 0.

    Examples
    --------
    >>> relative_error(1.1, 1.0)
    0.10000000000000009
    >>> relative_error(float("inf"), 1.5)
    inf
    """
    v, r = float(value), float(reference)
    if math.isnan(v) or math.isnan(r):
        raise VolumeError(f"relative_error got NaN (value={v}, reference={r})")
    if math.isinf(r) or math.isinf(v):
        return 0.0 if (math.isinf(r) and math.isinf(v)) else math.inf
    if r == 0:
        raise VolumeError("relative_error: the reference is 0; a relative error is undefined")
    return abs(v - r) / abs(r)


@dataclass(frozen=True)
class PhaseTortuosity:
    """Mean geodesic and effective tortuosity of one phase (``inf`` if it does not percolate)."""

    phase: str
    tau_geod: float
    tau_eff: float
    percolating: bool


@dataclass(frozen=True)
class TortuosityErrors:
    """Relative tortuosity errors of a super-resolved volume (spec Eqs. 23-24).

    Attributes
    ----------
    sr, hr : dict[str, PhaseTortuosity]
        Per phase ("pore", "solid") values of the super-resolved volume and the ground truth.
    geod_rel_err, eff_rel_err : dict[str, float]
        Relative errors per phase and their mean over the phases under key "mean"
        (``inf`` when a phase percolates in only one of the two volumes).
    """

    sr: dict[str, PhaseTortuosity]
    hr: dict[str, PhaseTortuosity]
    geod_rel_err: dict[str, float] = field(default_factory=dict)
    eff_rel_err: dict[str, float] = field(default_factory=dict)


def phase_tortuosities(im: np.ndarray, *, axis: int = 0,
                       phases: tuple[str, ...] = tuple(PHASES),
                       device: str = "auto") -> dict[str, PhaseTortuosity]:
    """Mean geodesic and effective tortuosity of each phase of ``im`` along ``axis``.

    Uses :func:`twinsr.transport.geodesic_tortuosity` and
    :func:`twinsr.transport.effective_tortuosity` (spec §2.1.5, §2.3).

    Returns
    -------
    dict[str, PhaseTortuosity]
        Keyed by phase name. ``tau_eff`` is ``inf`` when no 6-connected cluster joins the two
        faces, ``tau_geod`` when no inlet voxel reaches the outlet plane on the 26-neighbour
        graph; ``percolating`` is True only if both are finite (a phase joined only through
        voxel edges or corners has a finite ``tau_geod`` but ``percolating=False``).
    """
    from twinsr.transport import effective_tortuosity, geodesic_tortuosity

    vol = as_binary_volume(im, "im")
    ax = check_axis(axis)
    bad = [name for name in phases if name not in PHASES]
    if bad:
        raise VolumeError(f"`phases` entries must be 'pore' or 'solid', got {bad[0]!r}")
    out: dict[str, PhaseTortuosity] = {}
    for name in phases:
        ph = PHASES[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonPercolatingWarning)
            g = geodesic_tortuosity(vol, phase=ph, axis=ax)
            e = effective_tortuosity(vol, phase=ph, axis=ax, device=device)
        # both results give tau = inf exactly when their phase does not percolate (for the
        # geodesic: connected_fraction == 0)
        perc = math.isfinite(g.tau) and e.percolating
        if not perc:
            logger.info("phase %s does not percolate along axis %d", name, ax)
        out[name] = PhaseTortuosity(name, g.tau, e.tau, perc)
    return out


def tortuosity_errors(sr: np.ndarray, hr: np.ndarray, *, axis: int = 0,
                      phases: tuple[str, ...] = tuple(PHASES),
                      reference: dict[str, PhaseTortuosity] | None = None,
                      device: str = "auto") -> TortuosityErrors:
    """Relative errors of mean geodesic and effective tortuosity per phase (spec Eqs. 23-24).

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), binary
        Super-resolved volume and ground truth.
    axis : int
        Transport direction (inlet face at index 0, outlet at the last index).
    phases : tuple of str
        Phases to evaluate ("pore", "solid").
    reference : dict, optional
        Precomputed :func:`phase_tortuosities` of ``hr`` (reuse it across methods).
    device : str
        Device for the effective-tortuosity solver.

    Returns
    -------
    TortuosityErrors
        Per-phase values and relative errors; the key "mean" holds the mean over ``phases``
        (``inf`` if any phase's error is ``inf``). See :func:`relative_error` for the rules.

    Raises
    ------
    VolumeError
        Not 3-D, not binary, shapes differ, bad axis or phase, or ``reference`` lacks a phase.
    """
    a, b = _pair(sr, hr)
    ax = check_axis(axis)
    ref = reference if reference is not None else phase_tortuosities(b, axis=ax, phases=phases,
                                                                     device=device)
    _check_reference(ref, phases)
    got = phase_tortuosities(a, axis=ax, phases=phases, device=device)
    geod, eff = phase_relative_errors(got, ref, phases)
    return TortuosityErrors(sr=got, hr=ref, geod_rel_err=geod, eff_rel_err=eff)


def _check_reference(ref: Mapping[str, PhaseTortuosity], phases: Sequence[str]) -> None:
    missing = [name for name in phases if name not in ref]
    if missing:
        raise VolumeError(
            f"`reference` has no entry for phase {missing[0]!r}; compute it with "
            f"phase_tortuosities(hr, phases={tuple(phases)!r})"
        )


def phase_relative_errors(values: Mapping[str, PhaseTortuosity],
                          reference: Mapping[str, PhaseTortuosity],
                          phases: Sequence[str] | None = None
                          ) -> tuple[dict[str, float], dict[str, float]]:
    """Relative errors of geodesic and effective tortuosity per phase, and their mean.

    Parameters
    ----------
    values, reference : mapping phase -> PhaseTortuosity
        Tortuosities of the super-resolved volume and of the ground truth
        (:func:`phase_tortuosities`).
    phases : sequence of str, optional
        Phases to compare, in this order (default: those of ``values``).

    Returns
    -------
    geod_rel_err, eff_rel_err : dict[str, float]
        Per phase :func:`relative_error` (dimensionless) and, under key :data:`MEAN`
        (``"mean"``), the mean over ``phases`` (``inf`` if any phase's error is ``inf``).

    Raises
    ------
    VolumeError
        ``values`` or ``reference`` lacks one of ``phases``; NaN tortuosities.

    Examples
    --------
    >>> sr = {"pore": PhaseTortuosity("pore", 1.2, 1.5, True)}
    >>> ref = {"pore": PhaseTortuosity("pore", 1.0, 1.5, True)}
    >>> geod, eff = phase_relative_errors(sr, ref)
    >>> round(geod["pore"], 6), eff["mean"]
    (0.2, 0.0)
    """
    names = list(values) if phases is None else list(phases)
    if not names:
        raise VolumeError("phase_relative_errors: no phases to compare; pass `phases` or "
                          "non-empty `values`")
    _check_reference(reference, names)
    missing = [name for name in names if name not in values]
    if missing:
        raise VolumeError(f"`values` has no entry for phase {missing[0]!r}")
    geod = {p: relative_error(values[p].tau_geod, reference[p].tau_geod) for p in names}
    eff = {p: relative_error(values[p].tau_eff, reference[p].tau_eff) for p in names}
    geod[MEAN] = float(np.mean([geod[p] for p in names]))
    eff[MEAN] = float(np.mean([eff[p] for p in names]))
    return geod, eff
