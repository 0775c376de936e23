"""Evaluation of super-resolution methods on test volumes (spec §3) as one tidy table.

A test volume (simulated test realization or measured tomogram) is cropped so that every axis
is divisible by ``k * α_max`` (low indices kept; ``k**3`` sub-volumes, paper: k = 2), cut into
``k**3`` equal non-overlapping HR sub-volumes, and each sub-volume is downsampled by α
(:func:`twinsr.resample.downsample`), super-resolved by every method and scored against the HR
sub-volume. Because the crop uses α_max, the sub-volumes are the same for every α and the
ground-truth tortuosities are computed once per sub-volume.

The table has one row per value, columns :data:`COLUMNS`:
``source`` (simulated|measured), ``sample``, ``subvolume`` (0..k³-1), ``alpha``, ``method``
(``N_bin``, ``N_diffu``, ``triquadratic``, ``trilinear``, ``nearest``, or ``ground_truth`` for
the reference tortuosities), ``phase`` (all|pore|solid|mean), ``metric``, ``value``.

Metrics: ``accuracy`` and ``surface_accuracy`` (phase ``all``); per phase ``tau_geod``,
``tau_eff`` (the method's values, ``inf`` if not percolating), ``percolating`` (1/0),
``tau_geod_rel_err``, ``tau_eff_rel_err``; phase ``mean``: the two relative errors averaged over
the phases (spec Eqs. 19-24). Non-percolating cases appear as ``inf`` plus ``percolating = 0``;
NaN never appears.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from twinsr.exceptions import NonPercolatingWarning, TwinsrError, VolumeError
from twinsr.metrics import (
    MEAN,
    PhaseTortuosity,
    accuracy,
    boundary_band,
    phase_relative_errors,
    phase_tortuosities,
    surface_accuracy,
)
from twinsr.resample import crop_to_multiple, downsample

__all__ = [
    "ALL",
    "COLUMNS",
    "GROUND_TRUTH",
    "HEADLINE",
    "SOURCES",
    "TORTUOSITIES",
    "EvaluationUnit",
    "Headline",
    "check_table",
    "cut_subvolumes",
    "evaluate_volume",
    "prepare_volume",
    "reference_tortuosities",
    "write_table",
]

logger = logging.getLogger(__name__)

COLUMNS = ["source", "sample", "subvolume", "alpha", "method", "phase", "metric", "value"]
#: Values of the ``source`` column, in table and figure order.
SOURCES = ("simulated", "measured")
#: ``method`` label of the reference (HR) tortuosities.
GROUND_TRUTH = "ground_truth"
#: ``phase`` label of the whole-volume metrics (the tortuosity means use ``metrics.MEAN``).
ALL = "all"
#: Tortuosity metrics (prefix of ``*_rel_err``) -> the word used in labels.
TORTUOSITIES = {"tau_geod": "geodesic", "tau_eff": "effective"}
SuperResolver = Callable[[np.ndarray], np.ndarray]


class Headline(NamedTuple):
    """One of the four headline metrics (spec Eqs. 19-24) as it appears in the table."""

    metric: str
    phase: str
    label: str
    short_label: str
    higher_is_better: bool


#: The headline metrics of the report and Fig. 6, in order.
HEADLINE: tuple[Headline, ...] = (
    Headline("accuracy", ALL, "accuracy", "accuracy", True),
    Headline("surface_accuracy", ALL, "surface accuracy", "surface accuracy", True),
    *(Headline(f"{key}_rel_err", MEAN, f"rel. error {word} τ (mean over phases)",
               f"rel. error {word} τ", False) for key, word in TORTUOSITIES.items()),
)


def prepare_volume(im: np.ndarray, *, k: int, alpha_max: int, crop: int | None = None,
                   min_lr_edge: int = 1, name: str = "volume") -> np.ndarray:
    """Central crop to at most ``crop`` per axis, then crop to a multiple of ``k * alpha_max``.

    Raises
    ------
    VolumeError
        If the volume cannot hold ``k**3`` sub-volumes whose LR edge at ``alpha_max`` is at
        least ``min_lr_edge`` (message gives the sizes needed).

    Examples
    --------
    >>> import numpy as np
    >>> prepare_volume(np.zeros((70, 67, 66), np.uint8), k=2, alpha_max=8).shape
    (64, 64, 64)
    """
    im = central_crop(im, crop)
    unit = k * alpha_max
    need = unit * min_lr_edge
    if any(s < need for s in im.shape):
        raise VolumeError(
            f"{name}: shape {im.shape} is too small for {k**3} sub-volumes at alpha={alpha_max} "
            f"with LR edges >= {min_lr_edge}; every axis needs >= {need} HR voxels "
            f"(use a larger volume, fewer sub-volumes or drop alpha={alpha_max})")
    return np.ascontiguousarray(crop_to_multiple(im, unit))


def central_crop(im: np.ndarray, edge: int | None) -> np.ndarray:
    """The central block of ``im`` with at most ``edge`` voxels per axis (None: ``im`` itself).

    >>> import numpy as np
    >>> central_crop(np.arange(5)[:, None, None] * np.ones((5, 2, 9)), 3)[:, 0, 0].tolist()
    [1.0, 2.0, 3.0]
    """
    if edge is None:
        return im
    sl = []
    for s in im.shape:
        c = min(s, edge)
        start = (s - c) // 2
        sl.append(slice(start, start + c))
    return im[tuple(sl)]


def cut_subvolumes(im: np.ndarray, k: int) -> list[np.ndarray]:
    """Cut ``im`` into ``k**3`` equal non-overlapping blocks, z-major order.

    Raises
    ------
    VolumeError
        If an axis is not divisible by ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> subs = cut_subvolumes(np.arange(64).reshape(4, 4, 4), 2)
    >>> len(subs), subs[0].shape, int(subs[1][0, 0, 0])  # the second block starts at x = 2
    (8, (2, 2, 2), 2)
    """
    if any(s % k for s in im.shape):
        raise VolumeError(f"shape {im.shape} is not divisible by k={k}; crop it first "
                          "(see prepare_volume)")
    bz, by, bx = (s // k for s in im.shape)
    return [im[i * bz:(i + 1) * bz, j * by:(j + 1) * by, m * bx:(m + 1) * bx]
            for i in range(k) for j in range(k) for m in range(k)]


def reference_tortuosities(subs: Sequence[np.ndarray], *, axis: int,
                           device: str = "auto") -> list[dict[str, PhaseTortuosity]]:
    """Ground-truth tortuosities (both phases) of every HR sub-volume."""
    return [phase_tortuosities(s, axis=axis, device=device) for s in subs]


@dataclass
class EvaluationUnit:
    """Result of evaluating one (source, sample, α): rows and the Fig. 5 error slices."""

    rows: list[dict[str, object]] = field(default_factory=list)
    slices: dict[str, np.ndarray] = field(default_factory=dict)


def _tau_rows(base: dict[str, object], method: str, taus: dict[str, PhaseTortuosity],
              ref: dict[str, PhaseTortuosity] | None) -> list[dict[str, object]]:
    def row(phase: str, metric: str, value: float) -> dict[str, object]:
        return {**base, "method": method, "phase": phase, "metric": metric, "value": value}

    errors = dict(zip(TORTUOSITIES, phase_relative_errors(taus, ref), strict=True)) \
        if ref is not None else {}
    rows = []
    for phase, t in taus.items():
        rows += [row(phase, key, getattr(t, key)) for key in TORTUOSITIES]
        rows.append(row(phase, "percolating", float(t.percolating)))
        rows += [row(phase, f"{key}_rel_err", err[phase]) for key, err in errors.items()]
    rows += [row(MEAN, f"{key}_rel_err", err[MEAN]) for key, err in errors.items()]
    return rows


def evaluate_volume(
    subs: Sequence[np.ndarray],
    alpha: int,
    methods: dict[str, SuperResolver],
    *,
    source: str,
    sample: str,
    reference: Sequence[dict[str, PhaseTortuosity]] | None = None,
    axis: int = 0,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> EvaluationUnit:
    """Score every method on every HR sub-volume at scale α.

    Parameters
    ----------
    subs : sequence of numpy.ndarray, each (Z, Y, X) uint8, edges divisible by α
        HR sub-volumes (see :func:`prepare_volume` and :func:`cut_subvolumes`).
    alpha : int
        Scale factor.
    methods : dict[str, callable]
        Method label -> function mapping an LR volume (uint8) to a binary SR volume of α times
        its shape.
    source, sample : str
        Labels for the table.
    reference : sequence of dict, optional
        Ground-truth tortuosities per sub-volume (:func:`reference_tortuosities`); None skips
        the tortuosity metrics.
    axis : int
        Transport direction.
    device : str
        Device for the tortuosity solver.
    progress : callable, optional
        Called with a short status string after each sub-volume.

    Returns
    -------
    EvaluationUnit
        Rows of the tidy table and the middle-slice images of sub-volume 0 (key ``"hr"``
        and one per method) for the error-slice figure.

    Raises
    ------
    VolumeError
        A method returns a volume of the wrong shape.
    """
    unit = EvaluationUnit()
    for idx, hr in enumerate(subs):
        lr = downsample(hr, alpha)
        band = boundary_band(hr, alpha)
        base = {"source": source, "sample": sample, "subvolume": idx, "alpha": int(alpha)}
        if reference is not None:
            unit.rows += _tau_rows(base, GROUND_TRUTH, reference[idx], None)
        for name, fn in methods.items():
            with warnings.catch_warnings():
                # tiny LR sub-volumes often have a non-percolating phase: the diffusion channels
                # of N_diffu's input then warn; that is expected here and logged, not shown
                warnings.simplefilter("ignore", NonPercolatingWarning)
                sr = np.asarray(fn(lr))
            if sr.shape != hr.shape:
                raise VolumeError(f"method {name!r} returned shape {sr.shape} for an LR input "
                                  f"of {lr.shape}; expected {hr.shape}")
            sr = (sr != 0).astype(np.uint8)
            unit.rows += [
                {**base, "method": name, "phase": ALL, "metric": "accuracy",
                 "value": accuracy(sr, hr)},
                {**base, "method": name, "phase": ALL, "metric": "surface_accuracy",
                 "value": surface_accuracy(sr, hr, alpha, band=band)},
            ]
            if reference is not None:
                taus = phase_tortuosities(sr, axis=axis, device=device)
                unit.rows += _tau_rows(base, name, taus, reference[idx])
            if idx == 0:
                unit.slices[name] = sr[sr.shape[0] // 2].copy()
        if idx == 0:
            unit.slices["hr"] = hr[hr.shape[0] // 2].copy()
        if progress is not None:
            progress(f"{source}/{sample} α={alpha} sub-volume {idx + 1}/{len(subs)}")
    return unit


def check_table(df: object) -> None:
    """Raise :class:`TwinsrError` if the results table has NaN values or missing columns."""
    import pandas as pd

    df = pd.DataFrame(df)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise TwinsrError(f"results table lacks columns {missing}")
    vals = pd.to_numeric(df["value"], errors="coerce")
    if vals.isna().any():
        bad = df[vals.isna()].head(5).to_dict("records")
        raise TwinsrError(f"results table has {int(vals.isna().sum())} NaN value(s), e.g. {bad}")
    for col in COLUMNS[:-1]:
        if df[col].isna().any():
            raise TwinsrError(f"results table has missing entries in column {col!r}")


def write_table(df: object, out_dir: str | Path, *, stem: str = "results") -> list[Path]:
    """Write ``results.csv`` (always) and ``results.parquet`` (if pyarrow is installed)."""
    import pandas as pd

    from twinsr._atomic import atomic_path

    df = pd.DataFrame(df)
    check_table(df)
    out = Path(out_dir)
    paths = []
    with atomic_path(out / f"{stem}.csv") as tmp:
        df.to_csv(tmp, index=False)
    paths.append(out / f"{stem}.csv")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        logger.info("pyarrow not installed: %s.parquet not written", stem)
    else:
        with atomic_path(out / f"{stem}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
        paths.append(out / f"{stem}.parquet")
    return paths
