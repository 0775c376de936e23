"""One entry point for every descriptor: :func:`describe` → :class:`Descriptors`.

Descriptor groups (``which``), their keys in :meth:`Descriptors.scalars` and their time for both
phases and three axes on a 128³ twin-like volume (smoothed noise, structure radius ~4 voxels;
2 shared cores, ``benchmarks/bench_descriptors.py``):

==================  ================================================================  =======
group               scalar keys                                                        time
==================  ================================================================  =======
volume_fraction     ``volume_fraction.<phase>``                                        < 1 ms
s2                  ``s2_corr_length.<phase>.axis<a>`` (curves in ``s2``)              0.08 s
surface_area        ``ssa``                                                            3 ms
chords              ``chord_mean.<phase>.axis<a>``                                     0.05 s
sizes               ``psd_r50.<phase>`` (= r_max)                                      1.1 s
constrictivity      ``constrictivity.<phase>``, ``intrusion_r50.<phase>`` (= r_min),      3.8 s
                    ``intrusion_accessible.<phase>`` (includes ``sizes``)
percolation         ``percolating`` / ``one_face`` / ``isolated.<phase>.axis<a>``         0.09 s
tau_eff             ``tau_eff.<phase>.axis<a>`` (CPU)                                  32 s
geodesic            ``geodesic.<phase>.axis<a>``, ``geodesic_connected.<phase>.axis<a>``  4.3 s
==================  ================================================================  =======

``which="all"`` computes everything, ``which="geometric"`` everything but the two transport
groups; or pass the group names. Lengths are in voxels, or in the units of ``voxel_size``
(surface area per volume then in 1/units). A phase that does not percolate has τ = inf (never
NaN) and the transport module's ``NonPercolatingWarning`` passes through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twinsr.descriptors.chords import ChordLengthDistribution, chord_length_distribution
from twinsr.descriptors.common import PHASE_NAMES, binary, resolve_axes, resolve_phases, resolve_voxel_size
from twinsr.descriptors.connectivity import PercolationShares, percolation_shares
from twinsr.descriptors.sizes import Constrictivity, SizeDistribution, constrictivity, size_distribution
from twinsr.descriptors.surface import SURFACE_METHODS, specific_surface_area
from twinsr.descriptors.tortuosity import effective_tortuosities, geodesic_tortuosities
from twinsr.descriptors.twopoint import correlation_length, two_point_coverages, volume_fraction
from twinsr.exceptions import ConfigError
from twinsr.transport import GeodesicResult, TortuosityResult

__all__ = ["DESCRIPTOR_GROUPS", "GEOMETRIC_GROUPS", "Descriptors", "describe"]

DESCRIPTOR_GROUPS = ("volume_fraction", "s2", "surface_area", "chords", "sizes", "constrictivity",
                     "percolation", "tau_eff", "geodesic")
GEOMETRIC_GROUPS = DESCRIPTOR_GROUPS[:7]
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _json(v: Any) -> Any:
    """Floats that JSON can hold (inf -> "inf"), arrays -> lists, recursively."""
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    if isinstance(v, np.ndarray):
        return _json(v.tolist())
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else ("inf" if f > 0 else ("-inf" if f < 0 else "nan"))
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _geodesic_dict(g: GeodesicResult) -> dict[str, Any]:
    finite = np.asarray(g.lengths, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    qs = np.quantile(finite, _QUANTILES).tolist() if finite.size else [math.inf] * len(_QUANTILES)
    return {"tau": g.tau, "connected_fraction": g.connected_fraction, "metric": g.metric,
            "n_connected": int(finite.size),
            "quantiles": dict(zip((f"q{int(q * 100):02d}" for q in _QUANTILES), qs, strict=True))}


def _tau_dict(t: TortuosityResult) -> dict[str, Any]:
    return {"tau": t.tau, "d_eff": t.d_eff, "volume_fraction": t.volume_fraction,
            "percolating": t.percolating, "converged": t.converged, "iterations": t.iterations}


@dataclass(frozen=True)
class Descriptors:
    """Descriptors of one binary volume (see :func:`describe`); groups not computed are None.

    Attributes
    ----------
    shape : tuple of int
        Shape of the volume (Z, Y, X).
    voxel_size : float or None
        Isotropic voxel edge length the lengths are in (None: voxels).
    phases : tuple of str
        Phases described ("pore", "solid").
    axes : tuple of int
        Axes described.
    which : tuple of str
        Groups computed.
    volume_fraction : dict[str, float]
        Per phase (always computed).
    s2 : dict[str, ndarray] or None
        Per phase, two-point coverage of shape (len(axes), max_lag + 1); row i is ``axes[i]``.
    s2_lags : ndarray or None
        Lags of ``s2`` in voxels times ``voxel_size``.
    ssa : float or None
        Specific surface area (1/voxel or 1/unit), estimator ``surface_method``.
    surface_method : str
        Surface-area estimator.
    chords : dict[str, dict[int, ChordLengthDistribution]] or None
        Per phase and axis.
    sizes : dict[str, SizeDistribution] or None
        Continuous size distribution (local thickness) per phase.
    constrictivity : dict[str, Constrictivity] or None
        Per phase (with its intrusion curve).
    percolation : dict[str, dict[int, PercolationShares]] or None
        Per phase and axis.
    tau_eff : dict[str, dict[int, TortuosityResult]] or None
        Effective tortuosity per phase and axis.
    geodesic : dict[str, dict[int, GeodesicResult]] or None
        Mean geodesic tortuosity per phase and axis, with its per-inlet-voxel lengths.
    seconds : dict[str, float]
        Wall time per group and "total".
    """

    shape: tuple[int, ...]
    voxel_size: float | None
    phases: tuple[str, ...]
    axes: tuple[int, ...]
    which: tuple[str, ...]
    volume_fraction: dict[str, float]
    s2: dict[str, np.ndarray] | None = None
    s2_lags: np.ndarray | None = None
    ssa: float | None = None
    surface_method: str = "crofton"
    chords: dict[str, dict[int, ChordLengthDistribution]] | None = None
    sizes: dict[str, SizeDistribution] | None = None
    constrictivity: dict[str, Constrictivity] | None = None
    percolation: dict[str, dict[int, PercolationShares]] | None = None
    tau_eff: dict[str, dict[int, TortuosityResult]] | None = None
    geodesic: dict[str, dict[int, GeodesicResult]] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Flat name -> float summary, e.g. ``"tau_eff.solid.axis0"``, ``"ssa"`` (inf allowed)."""
        out: dict[str, float] = {f"volume_fraction.{p}": v for p, v in self.volume_fraction.items()}
        scale = self.voxel_size or 1.0
        for p, curves in (self.s2 or {}).items():
            for i, a in enumerate(self.axes):
                out[f"s2_corr_length.{p}.axis{a}"] = correlation_length(curves[i]) * scale
        if self.ssa is not None:
            out["ssa"] = self.ssa
        for p, per_axis in (self.chords or {}).items():
            out.update({f"chord_mean.{p}.axis{a}": c.mean for a, c in per_axis.items()})
        for p, d in (self.sizes or {}).items():
            out[f"psd_r50.{p}"] = d.r50
        for p, c in (self.constrictivity or {}).items():
            out[f"constrictivity.{p}"] = c.beta
            out[f"intrusion_r50.{p}"] = c.r_min
            out[f"intrusion_accessible.{p}"] = c.intrusion.accessible_fraction
        for p, per_axis in (self.percolation or {}).items():
            for a, s in per_axis.items():
                out[f"percolating.{p}.axis{a}"] = s.percolating
                out[f"one_face.{p}.axis{a}"] = s.one_face
                out[f"isolated.{p}.axis{a}"] = s.isolated
        for p, per_axis in (self.tau_eff or {}).items():
            out.update({f"tau_eff.{p}.axis{a}": t.tau for a, t in per_axis.items()})
        for p, per_axis in (self.geodesic or {}).items():
            for a, g in per_axis.items():
                out[f"geodesic.{p}.axis{a}"] = g.tau
                out[f"geodesic_connected.{p}.axis{a}"] = g.connected_fraction
        return {k: float(v) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: metadata, ``scalars``, curves (lists); inf as the string "inf"."""
        d: dict[str, Any] = {
            "shape": list(self.shape), "voxel_size": self.voxel_size, "phases": list(self.phases),
            "axes": list(self.axes), "which": list(self.which),
            "units": "voxel" if self.voxel_size is None else "voxel_size units",
            "surface_method": self.surface_method, "scalars": self.scalars(),
            "volume_fraction": self.volume_fraction, "seconds": self.seconds,
        }
        if self.s2 is not None:
            d["s2"] = {"lags": self.s2_lags, **{p: dict(zip((f"axis{a}" for a in self.axes), c, strict=True))
                                                for p, c in self.s2.items()}}
        groups: dict[str, tuple[Any, Callable[[Any], Any]]] = {
            "chords": (self.chords, lambda c: c.to_dict()),
            "percolation": (self.percolation, lambda s: s.to_dict()),
            "tau_eff": (self.tau_eff, _tau_dict),
            "geodesic": (self.geodesic, _geodesic_dict),
        }
        for name, (val, conv) in groups.items():
            if val is not None:
                d[name] = {p: {f"axis{a}": conv(x) for a, x in per.items()} for p, per in val.items()}
        if self.sizes is not None:
            d["sizes"] = {p: s.to_dict() for p, s in self.sizes.items()}
        if self.constrictivity is not None:
            d["constrictivity"] = {p: c.to_dict() for p, c in self.constrictivity.items()}
        return _json(d)


def _resolve_which(which: object) -> tuple[str, ...]:
    if isinstance(which, str):
        key = which.strip().lower()
        if key == "all":
            return DESCRIPTOR_GROUPS
        if key == "geometric":
            return GEOMETRIC_GROUPS
        items: list[object] = [key]
    else:
        try:
            items = list(which)  # type: ignore[call-overload]
        except TypeError:
            items = [which]
    bad = [w for w in items if not isinstance(w, str) or w.strip().lower() not in DESCRIPTOR_GROUPS]
    if bad or not items:
        raise ConfigError(
            f"unknown descriptor group(s) {bad if bad else items!r}; valid: 'all', 'geometric' or any of "
            f"{', '.join(DESCRIPTOR_GROUPS)}"
        )
    chosen = {str(w).strip().lower() for w in items} | {"volume_fraction"}  # always computed
    return tuple(g for g in DESCRIPTOR_GROUPS if g in chosen)


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.seconds[name] = time.perf_counter() - t0
        return out


def describe(
    im: np.ndarray,
    *,
    phases: object = ("pore", "solid"),
    axes: object = (0, 1, 2),
    which: object = "all",
    voxel_size: object = None,
    max_lag: int | None = None,
    surface_method: str = "crofton",
    include_border: bool = False,
    intrusion_axis: int | None = None,
    device: str = "auto",
    tol: float = 1e-6,
    max_iter: int = 500,
    metric: str = "graph26",
) -> Descriptors:
    """Morphology and transport descriptors of a binary volume.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    phases : phase or sequence of phases
        Phases to describe ('pore', 'solid', or 0, 1).
    axes : int or sequence of int
        Axes for the per-axis descriptors (S₂, chords, percolation, tortuosities).
    which : "all", "geometric" or sequence of str
        Descriptor groups (:data:`DESCRIPTOR_GROUPS`; see the module docstring). Volume
        fractions are always computed.
    voxel_size : float, optional
        Isotropic voxel edge length; lengths and radii are then in its units.
    max_lag : int, optional
        Largest S₂ lag in voxels (default: half the smallest size along ``axes``).
    surface_method : {"crofton", "marching_cubes"}
        Surface-area estimator (see :mod:`twinsr.descriptors.surface` for their bias).
    include_border : bool
        Count chords cut by the volume border.
    intrusion_axis : int, optional
        Inlet face of the simulated intrusion for the constrictivity (None: all six faces).
    device, tol, max_iter
        Options of :func:`twinsr.transport.effective_tortuosity`.
    metric : str
        Path metric of :func:`twinsr.transport.geodesic_tortuosity`.

    Returns
    -------
    Descriptors
        ``.scalars()`` for the flat summary, ``.to_dict()`` for JSON.

    Raises
    ------
    VolumeError
        Not 3-D or binary, NaN, bad phase, axis, voxel size or solver option.
    ConfigError
        Unknown descriptor group or surface method, bad ``max_lag``.
    MemoryBudgetError
        The size maps would not fit in memory.

    Warns
    -----
    NonPercolatingWarning
        From the transport groups, for each phase and axis that does not percolate (τ = inf).

    Examples
    --------
    >>> im = np.zeros((16, 16, 16), np.uint8); im[:, :, 8:] = 1      # two slabs along x
    >>> s = describe(im, which=("volume_fraction", "chords", "tau_eff"), axes=0).scalars()
    >>> s["volume_fraction.solid"], s["chord_mean.solid.axis0"], round(s["tau_eff.pore.axis0"], 6)
    (0.5, inf, 1.0)
    """
    b = binary(im)
    phs = resolve_phases(phases)
    ax = resolve_axes(axes)
    groups = _resolve_which(which)
    s = resolve_voxel_size(voxel_size)
    if surface_method not in SURFACE_METHODS:
        raise ConfigError(f"unknown surface-area method {surface_method!r}; "
                          f"valid: {', '.join(SURFACE_METHODS)}")
    names = tuple(PHASE_NAMES[p] for p in phs)
    timer = _Timer()
    t_all = time.perf_counter()
    res: dict[str, Any] = {"volume_fraction": timer.run(
        "volume_fraction", lambda: {PHASE_NAMES[p]: volume_fraction(b, phase=p) for p in phs})}
    if "s2" in groups:
        res["s2"] = timer.run("s2", lambda: two_point_coverages(b, phases=phs, axes=ax, max_lag=max_lag))
        res["s2_lags"] = np.arange(next(iter(res["s2"].values())).shape[1]) * (s or 1.0)
    if "surface_area" in groups:
        res["ssa"] = timer.run("surface_area", lambda: specific_surface_area(
            b, method=surface_method, voxel_size=s))
    if "chords" in groups:
        res["chords"] = timer.run("chords", lambda: {PHASE_NAMES[p]: {a: chord_length_distribution(
            b, phase=p, axis=a, include_border=include_border, voxel_size=s) for a in ax} for p in phs})
    if "constrictivity" in groups:
        res["constrictivity"] = timer.run("constrictivity", lambda: {PHASE_NAMES[p]: constrictivity(
            b, phase=p, axis=intrusion_axis, voxel_size=s) for p in phs})
        if "sizes" in groups:
            res["sizes"] = {p: c.continuous for p, c in res["constrictivity"].items()}
    elif "sizes" in groups:
        res["sizes"] = timer.run("sizes", lambda: {PHASE_NAMES[p]: size_distribution(
            b, phase=p, voxel_size=s) for p in phs})
    if "percolation" in groups:
        res["percolation"] = timer.run("percolation", lambda: {PHASE_NAMES[p]: percolation_shares(
            b, phase=p, axes=ax) for p in phs})
    if "tau_eff" in groups:
        res["tau_eff"] = timer.run("tau_eff", lambda: effective_tortuosities(
            b, phases=phs, axes=ax, tol=tol, max_iter=max_iter, device=device))
    if "geodesic" in groups:
        res["geodesic"] = timer.run("geodesic", lambda: geodesic_tortuosities(
            b, phases=phs, axes=ax, metric=metric))
    timer.seconds["total"] = time.perf_counter() - t_all
    return Descriptors(shape=tuple(b.shape), voxel_size=s, phases=names, axes=ax, which=groups,
                       surface_method=surface_method, seconds=timer.seconds, **res)
