"""Scores of a super-resolved binary volume against its high-resolution ground truth.

* :func:`accuracy` - share of voxels equal to the ground truth (spec §2.3, Eq. 19);
* :func:`boundary_band` / :func:`surface_accuracy` - the same share over the band of voxels
  within 0.55 α of the solid/pore interface (Eqs. 20-22);
* :func:`relative_error`, :func:`phase_relative_errors` and :func:`tortuosity_errors` -
  relative errors of the mean geodesic and the effective tortuosity per phase and their mean
  over the phases (Eqs. 23-24), with non-percolating phases reported explicitly (``inf`` and
  ``percolating=False``), never as NaN.

All volumes are (Z, Y, X) with 1 = solid, 0 = pore.

Labelled volumes (uint8 labels 0..K-1; binary is K = 2):

* :func:`multiclass_accuracy` and :func:`class_iou` - share of correct voxels, and the
  intersection over union of every label;
* :func:`ellipsoid` and :func:`label_band` / :func:`interface_bands` - the band of voxels within
  the ellipsoid of radii 0.55 α per axis of another label (all interfaces, or the one between
  labels i and j); :func:`interface_surface_accuracy` scores each interface band;
* :func:`tpb_density` / :func:`tpb_density_error` - triple-phase-boundary length per volume.

A per-axis α = (az, ay, ax) makes the band an ellipsoid of radii 0.55 (az, ay, ax); a scalar α
keeps the ball of radius 0.55 α, with the outputs it had before.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from twinsr._validation import (
    as_binary_volume,
    as_label_volume,
    check_axis,
    check_int,
    check_positive,
)
from twinsr.exceptions import NonPercolatingWarning, VolumeError

__all__ = [
    "MEAN",
    "PHASES",
    "PhaseTortuosity",
    "TortuosityErrors",
    "accuracy",
    "ball",
    "boundary_band",
    "class_iou",
    "ellipsoid",
    "interface_bands",
    "interface_surface_accuracy",
    "label_band",
    "multiclass_accuracy",
    "phase_relative_errors",
    "phase_tortuosities",
    "relative_error",
    "surface_accuracy",
    "tortuosity_errors",
    "tpb_density",
    "tpb_density_error",
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


def ellipsoid(radii: float | Sequence[float]) -> np.ndarray:
    """Boolean ellipsoid structuring element: offsets d with Σ_k (d_k / r_k)² <= 1 (voxels).

    Shape (2 R_z + 1, 2 R_y + 1, 2 R_x + 1) with R_k = floor(r_k); an axis with r_k < 1 has no
    extent. Equal radii give exactly :func:`ball`.

    Parameters
    ----------
    radii : float or (r_z, r_y, r_x)
        Semi-axes in voxels (> 0).

    Raises
    ------
    VolumeError
        A radius that is not finite and > 0, or not 1 or 3 radii.

    Examples
    --------
    >>> ellipsoid((2.2, 0.55, 0.55)).shape, int(ellipsoid((2.2, 1.1, 1.1)).sum())
    ((5, 1, 1), 9)
    """
    r = _radii(radii, "radii")
    if r[0] == r[1] == r[2]:
        return ball(r[0])
    big = [math.floor(v) for v in r]
    g = np.mgrid[-big[0] : big[0] + 1, -big[1] : big[1] + 1, -big[2] : big[2] + 1]
    q = sum((g[k] / r[k]) ** 2 for k in range(3))
    return q <= 1 + 1e-9


def _radii(value: object, name: str, factor: float = 1.0) -> tuple[float, float, float]:
    """One positive number or three, times ``factor``, as (z, y, x) radii."""
    if np.ndim(value) == 0:
        v = check_positive(value, name)
        return (v * factor,) * 3
    vals = list(value)  # type: ignore[call-overload]
    if len(vals) != 3:
        raise VolumeError(f"`{name}` must be a number or three numbers (z, y, x), got {value!r}")
    return tuple(check_positive(v, name) * factor for v in vals)  # type: ignore[return-value]


def boundary_band(hr: np.ndarray, alpha: int | float | Sequence[float], *,
                  radius_factor: float = 0.55) -> np.ndarray:
    """Boundary band B of a binary volume (spec Eqs. 20-21).

    Solid and pore are each eroded with a ball of radius ``radius_factor * alpha``; voxels
    outside the window count as the eroded phase's own value (nothing is eroded from the
    border). B is the set of voxels removed from either phase, i.e. the voxels whose distance
    to the other phase is at most the radius.

    Parameters
    ----------
    hr : numpy.ndarray, shape (Z, Y, X), binary (1 = solid, 0 = pore)
        Ground-truth volume.
    alpha : int or float, or (az, ay, ax)
        Scale factor α (> 0); the ball radius is 0.55 α voxels. A per-axis α erodes with the
        :func:`ellipsoid` of radii 0.55 (az, ay, ax) instead.
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
    se = _band_element(alpha, radius_factor)
    solid_kept = ndimage.binary_erosion(im, se, border_value=1)
    pore_kept = ndimage.binary_erosion(~im, se, border_value=1)
    return (im & ~solid_kept) | (~im & ~pore_kept)


def _band_element(alpha: object, radius_factor: float) -> np.ndarray:
    """The ball (scalar α) or ellipsoid (per-axis α) of radius ``radius_factor`` α."""
    f = check_positive(radius_factor, "radius_factor")
    if np.ndim(alpha) == 0:
        return ball(check_positive(alpha, "alpha") * f)
    return ellipsoid(_radii(alpha, "alpha", f))


def surface_accuracy(sr: np.ndarray, hr: np.ndarray, alpha: int | float | Sequence[float], *,
                     band: np.ndarray | None = None) -> float:
    """Accuracy over the boundary band of ``hr`` (spec Eq. 22).

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), binary
        Super-resolved volume and ground truth.
    alpha : int or float, or (az, ay, ax)
        Scale factor α (band radius 0.55 α; per axis: ellipsoid of radii 0.55 α).
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


# --------------------------------------------------------------------------------------------
# labelled volumes (K >= 2 labels; binary is K = 2)
# --------------------------------------------------------------------------------------------
def _label_pair(sr: object, hr: object, n_labels: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Both volumes as uint8 labels and K: ``hr``'s labels contiguous 0..K-1 unless ``n_labels``
    is given; ``sr`` may miss labels (a network that never predicts one) but not exceed K-1."""
    b = as_label_volume(hr, "hr", n_labels=n_labels)
    k = int(n_labels) if n_labels is not None else int(b.max()) + 1
    a = as_label_volume(sr, "sr", n_labels=max(k, 2))
    if a.shape != b.shape:
        raise VolumeError(
            f"`sr` and `hr` must have the same shape, got {a.shape} and {b.shape}; "
            "super-resolve the LR image of exactly this HR volume (see twinsr.resample.downsample)"
        )
    return a, b, max(k, 2)


def multiclass_accuracy(sr: np.ndarray, hr: np.ndarray, *, n_labels: int | None = None) -> float:
    """Share of voxels whose label in ``sr`` equals the one in ``hr`` (Eq. 19 for K labels).

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), labels 0..K-1
        Super-resolved labels and ground truth; for binary volumes equal to :func:`accuracy`.
    n_labels : int, optional
        K; default: ``hr``'s labels, contiguous 0..max.

    Raises
    ------
    VolumeError
        Not 3-D, not labels (see :func:`twinsr._validation.as_label_volume`), ``sr`` holds a
        label >= K, or shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.array([0, 1, 2, 2], np.uint8).reshape(1, 2, 2); sr = hr.copy(); sr[0, 0, 0] = 2
    >>> multiclass_accuracy(sr, hr)
    0.75
    """
    a, b, _ = _label_pair(sr, hr, n_labels)
    return float(np.count_nonzero(a == b)) / a.size


def class_iou(sr: np.ndarray, hr: np.ndarray, *, n_labels: int | None = None) -> np.ndarray:
    """Intersection over union of every label: |sr = k ∧ hr = k| / |sr = k ∨ hr = k|.

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), labels 0..K-1
        Super-resolved labels and ground truth.
    n_labels : int, optional
        K; default: ``hr``'s labels, contiguous 0..max.

    Returns
    -------
    numpy.ndarray of float64, shape (K,)
        IoU of label k at index k, in [0, 1]. A label absent from both volumes scores 1.0
        (both agree it is not there; documented convention, no NaN).

    Raises
    ------
    VolumeError
        As :func:`multiclass_accuracy`.

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.array([0, 1, 2, 2], np.uint8).reshape(1, 2, 2); sr = hr.copy(); sr[0, 0, 0] = 2
    >>> class_iou(sr, hr).round(3).tolist()
    [0.0, 1.0, 0.667]
    """
    a, b, k = _label_pair(sr, hr, n_labels)
    joint = np.bincount(a.reshape(-1).astype(np.int64) * k + b.reshape(-1), minlength=k * k)
    cm = joint.reshape(k, k)  # cm[s, h]: voxels labelled s in sr and h in hr
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _near_labels(lab: np.ndarray, k: int, se: np.ndarray) -> list[np.ndarray | None]:
    """For each label, the voxels with a voxel of that label inside ``se`` (None if absent)."""
    out: list[np.ndarray | None] = []
    for c in range(k):
        m = lab == c
        out.append(ndimage.binary_dilation(m, se) if m.any() else None)
    return out


def interface_bands(hr: np.ndarray, alpha: int | float | Sequence[float], *,
                    radius_factor: float = 0.55, n_labels: int | None = None
                    ) -> dict[tuple[int, int], np.ndarray]:
    """The band of every interface (i, j), i < j, present in a labelled volume.

    The band of (i, j) is the set of voxels of label i that have a voxel of label j within the
    ellipsoid of radii ``radius_factor`` α (per axis; a ball for scalar α), and the voxels of
    label j with one of label i there. For a binary volume the band of (0, 1) is
    :func:`boundary_band`.

    Parameters
    ----------
    hr : numpy.ndarray, shape (Z, Y, X), labels 0..K-1
        Ground-truth labels.
    alpha : int or float, or (az, ay, ax)
        Scale factor α (> 0 per axis).
    radius_factor : float
        The 0.55 of the paper (spec Eqs. 20-21).
    n_labels : int, optional
        K; default: ``hr``'s labels, contiguous 0..max.

    Returns
    -------
    dict[(int, int), numpy.ndarray of bool]
        Keyed by (i, j) with i < j, only for the pairs whose band is not empty.

    Notes
    -----
    One binary dilation per label present with the structuring element, O(K N |se|) time and
    K + 2 boolean volumes of memory.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((6, 6, 6), np.uint8); lab[3:] = 1; lab[3:, 3:] = 2
    >>> {k: int(v.sum()) for k, v in interface_bands(lab, 2).items()}
    {(0, 1): 36, (0, 2): 36, (1, 2): 36}
    """
    lab = as_label_volume(hr, "hr", n_labels=n_labels)
    k = int(n_labels) if n_labels is not None else int(lab.max()) + 1
    near = _near_labels(lab, k, _band_element(alpha, radius_factor))
    out: dict[tuple[int, int], np.ndarray] = {}
    for i in range(k):
        for j in range(i + 1, k):
            ni, nj = near[i], near[j]
            if ni is None or nj is None:
                continue
            band = ((lab == i) & nj) | ((lab == j) & ni)
            if band.any():
                out[(i, j)] = band
    return out


def label_band(hr: np.ndarray, alpha: int | float | Sequence[float], *,
               radius_factor: float = 0.55, n_labels: int | None = None) -> np.ndarray:
    """Band of all interfaces of a labelled volume: voxels with another label within the
    ellipsoid of radii ``radius_factor`` α; the union of :func:`interface_bands`.

    For a binary volume this is :func:`boundary_band`.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((6, 6, 6), np.uint8); lab[3:] = 1; lab[3:, 3:] = 2
    >>> int(label_band(lab, 2).sum())  # 36 pore + 30 + 30 voxels
    96
    """
    lab = as_label_volume(hr, "hr", n_labels=n_labels)
    k = int(n_labels) if n_labels is not None else int(lab.max()) + 1
    se = _band_element(alpha, radius_factor)
    band = np.zeros(lab.shape, dtype=bool)
    for c in range(k):
        m = lab == c
        if m.any():
            band |= m & ~ndimage.binary_erosion(m, se, border_value=1)
    return band


def interface_surface_accuracy(sr: np.ndarray, hr: np.ndarray,
                               alpha: int | float | Sequence[float], *,
                               radius_factor: float = 0.55, n_labels: int | None = None,
                               bands: Mapping[tuple[int, int], np.ndarray] | None = None
                               ) -> dict[tuple[int, int], float]:
    """Accuracy of ``sr`` over each interface band of ``hr`` (Eq. 22 per interface).

    Parameters
    ----------
    sr, hr : numpy.ndarray, shape (Z, Y, X), labels 0..K-1
        Super-resolved labels and ground truth.
    alpha : int or float, or (az, ay, ax)
        Scale factor (band radii 0.55 α per axis).
    radius_factor : float
        The 0.55 of the paper.
    n_labels : int, optional
        K; default: ``hr``'s labels, contiguous 0..max.
    bands : mapping, optional
        Precomputed :func:`interface_bands` of ``hr`` (reuse it across methods).

    Returns
    -------
    dict[(int, int), float]
        For each interface (i, j), i < j, present in ``hr``: the share of its band where ``sr``
        equals ``hr``, in [0, 1]. Interfaces absent from ``hr`` have no entry. For a binary
        volume the (0, 1) entry is :func:`surface_accuracy`.

    Raises
    ------
    VolumeError
        As :func:`multiclass_accuracy`; a band of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((6, 6, 6), np.uint8); lab[3:] = 1; lab[3:, 3:] = 2
    >>> sr = lab.copy(); sr[3, 0, 0] = 0
    >>> {k: round(v, 4) for k, v in interface_surface_accuracy(sr, lab, 2).items()}
    {(0, 1): 0.9722, (0, 2): 1.0, (1, 2): 1.0}
    """
    a, b, k = _label_pair(sr, hr, n_labels)
    if bands is None:
        bands = interface_bands(b, alpha, radius_factor=radius_factor, n_labels=k)
    eq = a == b
    out: dict[tuple[int, int], float] = {}
    for pair, band in bands.items():
        band = np.asarray(band, dtype=bool)
        if band.shape != b.shape:
            raise VolumeError(f"`bands[{pair}]` must have shape {b.shape}, got {band.shape}")
        n = int(np.count_nonzero(band))
        if n:
            out[tuple(pair)] = float(np.count_nonzero(eq & band)) / n  # type: ignore[index]
    return out


def tpb_density(labels: np.ndarray, *, phases: Sequence[int] | None = None,
                voxel_size: float | Sequence[float] | None = None,
                n_labels: int | None = None) -> float:
    """Triple-phase-boundary (TPB) length per volume, counted on the edges of the voxel grid.

    Estimator: every edge of the voxel grid is shared by the four voxels around it (for an edge
    along x, the voxels (z, y), (z+1, y), (z, y+1), (z+1, y+1) at the same x). An edge is a TPB
    edge when those four voxels hold at least three different labels (with ``phases``: all
    three of the given labels). The TPB length is the number of TPB edges along each axis times
    the voxel edge length along it; the density divides by the volume of the image, Z Y X
    voxels. Only edges inside the image count (no edges on its faces). This staircase estimate
    is exact for TPB lines along a grid axis; for a straight line at angle θ to an axis in a
    grid plane it returns |cos θ| + |sin θ| times its length (up to √2 in 2-D, √3 in 3-D).

    Parameters
    ----------
    labels : numpy.ndarray, shape (Z, Y, X), labels 0..K-1
        Labelled volume (three or more phases; a binary volume has no TPB and gives 0).
    phases : three ints, optional
        The three labels whose common boundary is counted (e.g. pore, active material,
        binder); default any three different labels.
    voxel_size : float or (vz, vy, vx), optional
        Physical voxel size; the result is then in unit⁻² (e.g. µm⁻²). Default voxel units.
    n_labels : int, optional
        K; default: the labels of ``labels``, contiguous 0..max.

    Returns
    -------
    float
        TPB length per volume (voxel⁻², or unit⁻² with ``voxel_size``).

    Raises
    ------
    VolumeError
        Not labels, ``phases`` not three distinct labels of the volume, bad ``voxel_size``.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((2, 2, 5), np.uint8); lab[1, 0] = 1; lab[:, 1] = 2
    >>> tpb_density(lab)  # one line along x of 5 voxels in 2 * 2 * 5 voxels
    0.25
    """
    lab = as_label_volume(labels, "labels", n_labels=n_labels)
    k = int(n_labels) if n_labels is not None else int(lab.max()) + 1
    want = _tpb_phases(phases, k)
    vs = (1.0, 1.0, 1.0) if voxel_size is None else _radii(voxel_size, "voxel_size")
    length = 0.0
    for axis in range(3):
        u, w = [a for a in range(3) if a != axis]
        if lab.shape[u] < 2 or lab.shape[w] < 2:
            continue
        sl = [slice(None)] * 3
        quad = []
        for du in (0, 1):
            for dw in (0, 1):
                sl[u] = slice(du, lab.shape[u] - 1 + du)
                sl[w] = slice(dw, lab.shape[w] - 1 + dw)
                quad.append(lab[tuple(sl)])
        length += vs[axis] * int(np.count_nonzero(_triple_edges(quad, want)))
    return length / (lab.size * vs[0] * vs[1] * vs[2])


def _tpb_phases(phases: Sequence[int] | None, k: int) -> tuple[int, int, int] | None:
    if phases is None:
        return None
    vals = list(phases)
    if len(vals) != 3:
        raise VolumeError(f"`phases` must name three labels, got {phases!r}")
    out = tuple(check_int(p, "phases", minimum=0, maximum=k - 1) for p in vals)
    if len(set(out)) != 3:
        raise VolumeError(f"`phases` must be three different labels, got {out}")
    return out  # type: ignore[return-value]


def _triple_edges(quad: list[np.ndarray], want: tuple[int, int, int] | None) -> np.ndarray:
    """True where the four voxels around an edge hold >= 3 labels (or all three of ``want``)."""
    a, b, c, d = quad
    if want is not None:
        has = [(a == p) | (b == p) | (c == p) | (d == p) for p in want]
        return has[0] & has[1] & has[2]
    n = 1 + (b != a).astype(np.uint8)
    n += (c != a) & (c != b)
    n += (d != a) & (d != b) & (d != c)
    return n >= 3


def tpb_density_error(sr: np.ndarray, hr: np.ndarray, *, phases: Sequence[int] | None = None,
                      voxel_size: float | Sequence[float] | None = None,
                      n_labels: int | None = None) -> float:
    """Relative error of the TPB density of ``sr`` against ``hr`` (see :func:`tpb_density`).

    Returns
    -------
    float
        |ρ_sr − ρ_hr| / ρ_hr; ``inf`` if ``hr`` has no TPB but ``sr`` does, 0.0 if neither has.

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.zeros((2, 2, 4), np.uint8); hr[1, 0] = 1; hr[:, 1] = 2
    >>> sr = hr.copy(); sr[1, 0, :2] = 0  # the line now steps: 2 edges along x, 1 along z
    >>> tpb_density_error(sr, hr)
    0.25
    """
    a, b, k = _label_pair(sr, hr, n_labels)
    got = tpb_density(a, phases=phases, voxel_size=voxel_size, n_labels=k)
    ref = tpb_density(b, phases=phases, voxel_size=voxel_size, n_labels=k)
    if ref == 0:
        return 0.0 if got == 0 else math.inf
    return abs(got - ref) / ref
