"""Descriptor-matched calibration of twin models by simulation.

The S₂ fit of the paper matches the two-point coverage of the data; the twins it gives can still
differ from the data in what matters for transport (their solid is far better connected than a
packing of real particles). This module fits *all* parameters of a model family to a weighted
discrepancy between the data's descriptors and those of simulated realizations:

=============  =======================================================  ======
group          residual (relative unless stated)                         weight
=============  =======================================================  ======
s2             rms of S₂,solid(h) − S₂,data(h) over axes and lags,        1
               divided by φ(1 − φ) (so 0.1 = 10 % of the curve's range)
surface_area   specific surface area                                     1
chords         mean chord length per phase and axis                      1
tau_eff        effective tortuosity per phase and axis                   1
geodesic       mean geodesic tortuosity per phase and axis               2
=============  =======================================================  ======

Each group counts as the mean of its squared residuals, each residual capped at 1 (a twin phase
that does not percolate where the data's does scores 1); the objective is the weighted mean over
groups. Data phases that do not percolate are left out (their τ is inf) with a warning.

Fitting runs in two stages in a bounded, logistic-transformed parameter space:
(1) the geometric parameters on the cheap groups (s2, surface_area, chords), (2) the parameters
that set connectivity on every group, starting from stage 1; each stage is a Nelder–Mead search
with an initial simplex of 0.6 logistic units per parameter. The data's descriptors are measured
on cubic blocks of the realizations' edge (:class:`DescriptorTarget`), so twins and data share
their finite-size effects; realizations use fixed seeds (common random numbers), so the objective
is a deterministic function of the parameters. The volume fraction is matched exactly where the
family allows it (χ²: ν, fibres: φ) and by a secant search on the grain fraction η for the grain
packings.

Cost: a stage-1 evaluation draws one realization and its geometric descriptors (≈ 0.3 s at 96³);
a stage-2 evaluation adds 6 Laplace solves and 6 geodesic maps (≈ 2–4 s at 112³ on 2 cores).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from twinsr.descriptors import Descriptors, describe
from twinsr.exceptions import ConfigError, NonPercolatingWarning
from twinsr.stochastic.excursion import ChiSquareModel
from twinsr.stochastic.fibres import FibreModel
from twinsr.stochastic.grains import GrainModel

__all__ = [
    "FIT_FAMILIES",
    "GROUP_WEIGHTS",
    "DescriptorFit",
    "DescriptorTarget",
    "block_slices",
    "discrepancy",
    "fit_descriptors",
    "held_out_objective",
    "objective_value",
]

log = logging.getLogger(__name__)

GROUP_WEIGHTS: dict[str, float] = {"s2": 1.0, "surface_area": 1.0, "chords": 1.0,
                                   "tau_eff": 1.0, "geodesic": 2.0}
GEOMETRY_GROUPS = ("s2", "surface_area", "chords")
TRANSPORT_GROUPS = ("tau_eff", "geodesic")
_PHASES = ("pore", "solid")
_AXES = (0, 1, 2)
_CAP = 1.0


# ------------------------------------------------------------------------------------------------
# the data's side
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DescriptorTarget:
    """The descriptors of a measured volume that a calibration matches.

    Descriptors depend on the size of the volume they are measured on (chords cut by the border
    are left out, τ of a finite sample is biased near percolation), so the target is measured on
    cubic blocks of the measured volume of the same edge as the simulated realizations and
    averaged; their spread over the blocks is the data's natural spread.

    Attributes
    ----------
    shape : tuple of int
        Shape of the measured volume.
    block : int
        Edge of the blocks the descriptors were measured on (voxels).
    n_blocks : int
        Blocks measured.
    phi : float
        Solid fraction of the whole volume.
    s2 : ndarray, shape (3, L + 1)
        Solid two-point coverage along each axis, lags 0…L voxels (mean over blocks).
    scalars : dict[str, float]
        Finite scalar descriptors, mean over the blocks (``ssa``, ``chord_mean.<phase>.axis<a>``,
        ``tau_eff.<phase>.axis<a>``, ``geodesic.<phase>.axis<a>``).
    spread : dict[str, float]
        Standard deviation of each scalar over the blocks (0 for a single block).
    excluded : tuple of str
        Transport descriptors left out because the data's phase does not percolate along that
        axis in most blocks.
    groups : tuple of str
        Descriptor groups measured.
    """

    shape: tuple[int, ...]
    block: int
    n_blocks: int
    phi: float
    s2: np.ndarray
    scalars: dict[str, float]
    spread: dict[str, float]
    excluded: tuple[str, ...] = ()
    groups: tuple[str, ...] = GEOMETRY_GROUPS + TRANSPORT_GROUPS

    @classmethod
    def from_volume(cls, im: np.ndarray, *, block: int | None = None, max_blocks: int = 8,
                    max_lag: int | None = None, transport: bool = True,
                    tol: float = 1e-3) -> DescriptorTarget:
        """Measure the target descriptors of a binary volume (1 = solid) on cubic blocks.

        Parameters
        ----------
        im : array_like, shape (Z, Y, X)
            The measured volume.
        block : int, optional
            Block edge (default: 112 voxels, at most the smallest edge).
        max_blocks : int
            At most this many non-overlapping blocks, spread over the volume.
        max_lag : int, optional
            Largest S₂ lag (default: a quarter of the block edge).
        transport : bool
            Also measure τ_eff and geodesic τ (needed for the transport stage).
        tol : float
            Relative residual of the Laplace solves.
        """
        b = np.asarray(im)
        edge = int(block if block is not None else min(112, min(b.shape)))
        if edge < 16 or edge > min(b.shape):
            raise ConfigError(f"`block` must be between 16 and the smallest edge {min(b.shape)} "
                              f"of the volume, got {edge}")
        lag = max_lag if max_lag is not None else max(4, edge // 4)
        groups = GEOMETRY_GROUPS + (TRANSPORT_GROUPS if transport else ())
        per: list[dict[str, float]] = []
        curves: list[np.ndarray] = []
        for sl in block_slices(b.shape, edge, max_blocks):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NonPercolatingWarning)
                d = describe(b[sl], which=("volume_fraction", *groups), max_lag=lag, tol=tol)
            per.append(_selected_scalars(d))
            curves.append(d.s2["solid"])
        scal, spread, excluded = {}, {}, []
        for k in per[0]:
            v = np.array([p[k] for p in per])
            fin = v[np.isfinite(v)]
            if 2 * len(fin) <= len(v):
                excluded.append(k)
                continue
            scal[k], spread[k] = float(fin.mean()), float(fin.std())
        if excluded:
            warnings.warn(f"the data's {', '.join(excluded)} are infinite in most {edge}³ blocks "
                          "(a phase does not percolate along that axis): left out of the "
                          "calibration objective", NonPercolatingWarning, stacklevel=2)
        return cls(tuple(b.shape), edge, len(per), float(b.mean()), np.mean(curves, axis=0),
                   scal, spread, tuple(excluded), groups)

    def transverse(self, axis: int) -> float:
        """Anisotropy of the solid chords: chord along ``axis`` / mean chord across it."""
        along = self.scalars[f"chord_mean.solid.axis{axis}"]
        across = np.mean([self.scalars[f"chord_mean.solid.axis{a}"] for a in _AXES if a != axis])
        return float(along / across)


def block_slices(shape: Sequence[int], edge: int, max_blocks: int) -> list[tuple[slice, ...]]:
    """Up to ``max_blocks`` non-overlapping cubes of edge ``edge`` spread evenly over ``shape``.

    Examples
    --------
    >>> len(block_slices((251, 301, 301), 112, 8)), block_slices((64, 64, 64), 64, 8)
    (8, [(slice(0, 64, None), slice(0, 64, None), slice(0, 64, None))])
    """
    counts = [max(1, s // edge) for s in shape]
    starts = [np.linspace(0, s - edge, c).round().astype(int) for s, c in zip(shape, counts,
                                                                               strict=True)]
    out = [tuple(slice(int(o), int(o) + edge) for o in origin)
           for origin in itertools.product(*starts)]
    if len(out) > max_blocks:
        pick = np.linspace(0, len(out) - 1, max_blocks).round().astype(int)
        out = [out[i] for i in pick]
    return out


def _selected_scalars(d: Descriptors) -> dict[str, float]:
    s = d.scalars()
    keep = {}
    for k, v in s.items():
        if k == "ssa" or k.startswith(("chord_mean.", "tau_eff.")) or (
                k.startswith("geodesic.") and not k.startswith("geodesic_connected")):
            keep[k] = float(v)
    return keep


def _group_of(key: str) -> str:
    if key == "ssa":
        return "surface_area"
    return {"chord_mean": "chords", "tau_eff": "tau_eff", "geodesic": "geodesic"}[key.split(".")[0]]


def discrepancy(d: Descriptors, target: DescriptorTarget,
                groups: Sequence[str] | None = None) -> dict[str, float]:
    """Residual of every target descriptor for the twin descriptors ``d`` (see the module table).

    Returns
    -------
    dict[str, float]
        ``"s2"`` and each scalar key of ``target.scalars`` whose group is in ``groups``; relative
        residuals (signed), capped at ±1; a twin that does not percolate where the data does
        scores +1.
    """
    groups = tuple(groups) if groups is not None else target.groups
    out: dict[str, float] = {}
    if "s2" in groups and d.s2 is not None:
        tw = d.s2["solid"]
        n = min(tw.shape[1], target.s2.shape[1])
        scale = max(target.phi * (1.0 - target.phi), 1e-6)
        out["s2"] = float(np.sqrt(np.mean((tw[:, :n] - target.s2[:, :n]) ** 2)) / scale)
    twin = _selected_scalars(d)
    for key, ref in target.scalars.items():
        if _group_of(key) not in groups or key not in twin:
            continue
        v = twin[key]
        r = (v - ref) / ref if math.isfinite(v) else _CAP
        out[key] = float(np.clip(r, -_CAP, _CAP))
    return out


def objective_value(residuals: dict[str, float],
                    weights: dict[str, float] | None = None) -> float:
    """Weighted mean over groups of the mean squared residual in each group."""
    w = GROUP_WEIGHTS if weights is None else weights
    per: dict[str, list[float]] = {}
    for k, r in residuals.items():
        per.setdefault("s2" if k == "s2" else _group_of(k), []).append(r * r)
    num = sum(w.get(g, 0.0) * float(np.mean(v)) for g, v in per.items())
    den = sum(w.get(g, 0.0) for g in per)
    return num / den if den > 0 else 0.0


# ------------------------------------------------------------------------------------------------
# the families' side
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    name: str
    lo: float
    hi: float
    log: bool = False

    def to_z(self, x: float) -> float:
        a, b, v = (math.log(self.lo), math.log(self.hi), math.log(x)) if self.log else \
            (self.lo, self.hi, x)
        p = min(max((v - a) / (b - a), 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))

    def to_x(self, z: float) -> float:
        a, b = (math.log(self.lo), math.log(self.hi)) if self.log else (self.lo, self.hi)
        v = a + (b - a) / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))
        return math.exp(v) if self.log else v


@dataclass
class _FamilyFit:
    """How one family is fitted: its parameters per stage, a start and a builder."""

    name: str
    stage1: tuple[_Param, ...]
    stage2: tuple[_Param, ...]
    starts: Callable[[DescriptorTarget], list[dict[str, float]]]
    build: Callable[[dict[str, float], DescriptorTarget], Any]


def _anisotropy_axis(target: DescriptorTarget) -> tuple[int, float]:
    """The axis whose solid chord differs most from the other two, and that ratio."""
    ratios = [target.transverse(a) for a in _AXES]
    ax = int(np.argmax([abs(math.log(r)) for r in ratios]))
    return ax, ratios[ax]


class _GrainBuilder:
    """Builds a GrainModel with the data's solid fraction (secant search on η, warm started)."""

    def __init__(self, shape: int, seed: int) -> None:
        self.shape, self.seed, self.eta = shape, seed, None

    def __call__(self, p: dict[str, float], target: DescriptorTarget) -> GrainModel:
        axis, _ = _anisotropy_axis(target)
        kw = dict(radius=p["radius"], radius_cv=p["radius_cv"], overlap=p["overlap"],
                  neck=p["neck"], neck_range=p["neck_range"],
                  neck_anisotropy=p["neck_anisotropy"], aspect=p["aspect"], axis=axis)
        phi = target.phi
        eta = self.eta if self.eta is not None else max(phi, 0.05)
        prev: tuple[float, float] | None = None
        for _ in range(8):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = float(GrainModel(eta, **kw).sample(self.shape, rng=[self.seed, 99],
                                                       periodic=True).mean())
            if abs(f - phi) < 2e-3:
                break
            if prev is not None and abs(f - prev[1]) > 1e-4:
                slope = (f - prev[1]) / (eta - prev[0])
            else:
                slope = max(1.0 - f, 0.1)  # dφ/dη of the Boolean model: 1 − φ
            prev = (eta, f)
            eta = float(np.clip(eta + (phi - f) / max(slope, 0.05), 0.5 * eta, 2.0 * eta))
            eta = min(max(eta, 1e-3), 19.0)
        self.eta = eta
        return GrainModel(eta, **kw)


def _grain_starts(t: DescriptorTarget) -> list[dict[str, float]]:
    """Candidate starts: radius from the chords across the anisotropy axis, aspect from their
    ratio, and loose (overlap 0.05) to consolidated (0.35) packings."""
    axis, ratio = _anisotropy_axis(t)
    across = np.mean([t.scalars[f"chord_mean.solid.axis{a}"] for a in _AXES if a != axis])
    return [{"radius": float(np.clip(f * across, 1.0, 150.0)), "radius_cv": 0.2,
             "aspect": float(np.clip(ratio, 0.35, 2.5)), "overlap": ov, "neck": 0.25,
             "neck_range": 0.1, "neck_anisotropy": 0.0}
            for ov, f in ((0.05, 0.62), (0.15, 0.55), (0.35, 0.45))]


def _fibre_starts(t: DescriptorTarget) -> list[dict[str, float]]:
    """Candidate starts: the radius from the surface area (a cylinder has S/V = 2/r), lengths of
    8 and 25 radii, and the seven orientation types (isotropic; layered across each axis;
    aligned with each axis) — the orientation is hard to reach from a wrong start, since
    short fibres make the objective insensitive to it."""
    ssa = t.scalars.get("ssa", 0.1)
    radius = float(np.clip(2.0 * t.phi / max(ssa, 1e-6), 0.6, 100.0))
    kinds = [(1.0, 1.0, 1.0), (0.2, 1.0, 1.0), (1.0, 0.2, 1.0), (1.0, 1.0, 0.2),
             (1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.2, 0.2, 1.0)]
    return [{"radius": radius, "length": float(np.clip(f * radius, 2.0, 5000.0)),
             "radius_cv": 0.1, "o0": o[0], "o1": o[1], "o2": o[2]}
            for f in (8.0, 25.0) for o in kinds]


def _fibre_build(p: dict[str, float], t: DescriptorTarget) -> FibreModel:
    return FibreModel(t.phi, p["radius"], p["length"], radius_cv=p["radius_cv"],
                      orientation=(p["o0"], p["o1"], p["o2"]))


def _chi_starts(t: DescriptorTarget) -> list[dict[str, float]]:
    raise ConfigError("fitting the chi_square family by descriptors starts from its S2 fit: pass "
                      "`start_model` (the model of calibrate(..., objective='s2'))")


def _start_values(model: object) -> dict[str, Any]:
    """Fit parameters of an existing model (the start of a refinement)."""
    if isinstance(model, ChiSquareModel):
        return {"gamma": model.gamma, "_covariance": model.covariance,
                "_phase": model.excursion_phase, "_matern_nu": model.matern_nu}
    if isinstance(model, GrainModel):
        return {k: getattr(model, k) for k in ("radius", "radius_cv", "aspect", "overlap",
                                               "neck", "neck_range", "neck_anisotropy")}
    if isinstance(model, FibreModel):
        o = model.orientation
        return {"radius": model.radius, "length": model.length, "radius_cv": model.radius_cv,
                "o0": o[0], "o1": o[1], "o2": o[2]}
    raise ConfigError(f"`start_model` must be a twin model, got {type(model).__name__}")


def _chi_build(p: dict[str, float], t: DescriptorTarget) -> ChiSquareModel:
    phase = str(p["_phase"])
    eps = t.phi if phase == "solid" else 1.0 - t.phi
    m = ChiSquareModel.from_volume_fraction(eps, p["gamma"], str(p["_covariance"]),
                                            matern_nu=float(p["_matern_nu"]))
    if phase == "solid":
        return m
    return ChiSquareModel(m.nu, m.gamma, m.covariance, matern_nu=m.matern_nu,
                          excursion_phase="pore")


def _families(fit_shape: int, seed: int) -> dict[str, _FamilyFit]:
    g1 = (_Param("radius", 1.0, 200.0, log=True), _Param("radius_cv", 0.0, 0.6),
          _Param("aspect", 0.3, 3.0, log=True), _Param("overlap", 0.0, 0.6))
    g2 = (_Param("neck", 0.0, 0.9), _Param("neck_range", 0.0, 1.0), _Param("overlap", 0.0, 0.6),
          _Param("neck_anisotropy", -0.9, 0.9), _Param("aspect", 0.3, 3.0, log=True))
    f1 = (_Param("radius", 0.5, 100.0, log=True), _Param("length", 1.0, 5000.0, log=True),
          _Param("radius_cv", 0.0, 0.6), _Param("o0", 0.02, 1.0, log=True),
          _Param("o1", 0.02, 1.0, log=True), _Param("o2", 0.02, 1.0, log=True))
    f2 = (_Param("length", 1.0, 5000.0, log=True), _Param("o0", 0.02, 1.0, log=True),
          _Param("o1", 0.02, 1.0, log=True), _Param("o2", 0.02, 1.0, log=True))
    c = (_Param("gamma", 1e-3, 2.0, log=True),)
    return {
        "grains": _FamilyFit("grains", g1, g2, _grain_starts,
                             _GrainBuilder(max(48, fit_shape * 3 // 4), seed)),
        "fibres": _FamilyFit("fibres", f1, f2, _fibre_starts, _fibre_build),
        "chi_square": _FamilyFit("chi_square", c, c, _chi_starts, _chi_build),
    }


FIT_FAMILIES = ("chi_square", "grains", "fibres")


# ------------------------------------------------------------------------------------------------
# the search
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DescriptorFit:
    """Result of :func:`fit_descriptors`.

    Attributes
    ----------
    model : object
        The fitted twin model.
    family : str
        Its family name.
    objective : float
        Final weighted discrepancy (see :func:`objective_value`).
    residuals : dict[str, float]
        Final residual per descriptor (relative, signed; ``"s2"`` is the normalised rms).
    stage1_objective : float
        Objective after the geometric stage (on its groups).
    evaluations : int
        Realizations drawn and described.
    seconds : float
        Wall time.
    history : list of dict
        Every evaluation: stage, parameters, objective.
    """

    model: Any
    family: str
    objective: float
    residuals: dict[str, float]
    stage1_objective: float
    evaluations: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class _Search:
    def __init__(self, fam: _FamilyFit, target: DescriptorTarget, *, shape: int, seed: int,
                 realizations: int, tol: float, max_lag: int) -> None:
        self.fam, self.target, self.shape, self.seed = fam, target, shape, seed
        self.realizations, self.tol, self.max_lag = realizations, tol, max_lag
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, tuple[float, dict[str, float], dict[str, float]]] = {}

    def evaluate(self, values: dict[str, float], stage: str, groups: tuple[str, ...],
                 n: int, stream: int = 0) -> tuple[float, dict[str, float]]:
        model = self.fam.build(values, self.target)
        per: list[dict[str, float]] = []
        for k in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im = model.sample(self.shape, rng=[self.seed, stream, k])
                d = describe(im, which=("volume_fraction", *groups), max_lag=self.max_lag,
                             tol=self.tol)
            per.append(discrepancy(d, self.target, groups))
        res = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        j = objective_value(res)
        self.history.append({"stage": stage, "params": dict(values), "objective": j})
        if stage not in self.best or j < self.best[stage][0]:
            self.best[stage] = (j, dict(values), res)
        return j, res

    def run_stage(self, stage: str, params: tuple[_Param, ...], start: dict[str, float],
                  groups: tuple[str, ...], n: int, maxfev: int) -> dict[str, float]:
        fixed = dict(start)

        def f(z: np.ndarray) -> float:
            vals = dict(fixed)
            vals.update({p.name: p.to_x(float(zi)) for p, zi in zip(params, z, strict=True)})
            return self.evaluate(vals, stage, groups, n)[0]

        z0 = np.array([p.to_z(start[p.name]) for p in params])
        simplex = np.vstack([z0] + [z0 + 0.6 * np.eye(len(z0))[i] for i in range(len(z0))])
        minimize(f, z0, method="Nelder-Mead",
                 options={"initial_simplex": simplex, "maxfev": maxfev, "xatol": 0.02,
                          "fatol": 1e-4})
        return dict(self.best[stage][1])


def fit_descriptors(
    im: np.ndarray | DescriptorTarget,
    *,
    family: str = "grains",
    fit_shape: int | None = None,
    realizations: int = 1,
    seed: int = 0,
    max_evaluations: tuple[int, int] | None = None,
    tol: float = 1e-3,
    transport: bool = True,
    start_model: object | None = None,
    progress: Callable[[str, int, float], None] | None = None,
) -> DescriptorFit:
    """Fit a twin model family to a measured volume by matching descriptors of simulations.

    Parameters
    ----------
    im : array_like (Z, Y, X) or DescriptorTarget
        The measured binary volume (1 = solid), or its measured target descriptors.
    family : {"grains", "fibres", "chi_square"}
        Family to fit.
    fit_shape : int, optional
        Edge of the (non-periodic) realizations simulated per evaluation; default the target's
        block edge (the data are measured on blocks of that edge, so both sides see the same
        finite-size effects).
    realizations : int
        Realizations averaged per evaluation (common random numbers ``[seed, k]``).
    seed : int
        Seed of the simulated realizations.
    max_evaluations : (int, int), optional
        Evaluations of the geometric and the transport stage (default: 20·k and 8·k + 6 for k
        parameters in the stage).
    tol : float
        Relative residual of the Laplace solves of the transport stage.
    transport : bool
        Run the transport stage (False: geometric descriptors only).
    start_model : model, optional
        Start from this model's parameters (required for ``chi_square``: its S₂ fit); default a
        start derived from the data's chords and surface area.
    progress : callable(stage, evaluation, objective), optional
        Called after every evaluation.

    Returns
    -------
    DescriptorFit

    Raises
    ------
    ConfigError
        Unknown family, bad ``fit_shape`` / ``realizations``.
    """
    if family not in FIT_FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose one of {', '.join(FIT_FAMILIES)}")
    t0 = time.perf_counter()
    target = im if isinstance(im, DescriptorTarget) else DescriptorTarget.from_volume(
        im, transport=transport, block=fit_shape, tol=tol)
    shape = int(fit_shape if fit_shape is not None else target.block)
    if shape < 16:
        raise ConfigError(f"`fit_shape` must be >= 16 voxels, got {shape}")
    if isinstance(realizations, bool) or not isinstance(realizations, int) or realizations < 1:
        raise ConfigError(f"`realizations` must be a positive integer, got {realizations!r}")
    fam = _families(shape, seed)[family]
    max_lag = int(target.s2.shape[1] - 1)
    search = _Search(fam, target, shape=shape, seed=seed, realizations=realizations, tol=tol,
                     max_lag=min(max_lag, shape // 2))
    if progress is not None:
        inner = search.evaluate

        def counted(values: dict[str, float], stage: str, groups: tuple[str, ...], n: int,
                    stream: int = 0) -> tuple[float, dict[str, float]]:
            out = inner(values, stage, groups, n, stream)
            progress(stage, len(search.history), out[0])
            return out

        search.evaluate = counted  # type: ignore[method-assign]
    budget1, budget2 = max_evaluations if max_evaluations is not None else (
        20 * len(fam.stage1), 8 * len(fam.stage2) + 6)
    geo = tuple(g for g in GEOMETRY_GROUPS if g in target.groups)
    if start_model is not None:
        start = _start_values(start_model)
    else:  # the best of the family's candidate starts (their evaluations count in the budget)
        cands = fam.starts(target)
        scores = [search.evaluate(c, "start", geo, 1)[0] for c in cands] if len(cands) > 1 \
            else [0.0]
        start = cands[int(np.argmin(scores))]
        budget1 = max(budget1 - len(cands), 2 * len(fam.stage1))
    values = search.run_stage("geometry", fam.stage1, start, geo, 1, budget1)
    stage1 = search.best["geometry"][0]
    use_transport = transport and all(g in target.groups for g in TRANSPORT_GROUPS)
    if use_transport:
        values = search.run_stage("transport", fam.stage2, values, target.groups, realizations,
                                  budget2)
        j, res = search.best["transport"][0], search.best["transport"][2]
    else:
        j, res = stage1, search.best["geometry"][2]
    model = fam.build(values, target)
    return DescriptorFit(model, family, j, res, stage1, len(search.history),
                         time.perf_counter() - t0, search.history)


def held_out_objective(model: Any, target: DescriptorTarget, *, seed: int = 1,
                       realizations: int = 2, tol: float = 1e-3) -> float:
    """The discrepancy of ``model`` on realizations the fit never saw (seeds ``[seed, 10_000 + k]``).

    Used to choose between families: each family's fit has seen only its own common random
    numbers, so its in-fit objective is optimistic; fresh realizations compare them fairly.
    """
    per = []
    for k in range(realizations):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = model.sample(target.block, rng=[int(seed), 10_000 + k])
            d = describe(im, which=("volume_fraction", *target.groups),
                         max_lag=int(target.s2.shape[1] - 1), tol=tol)
        per.append(discrepancy(d, target))
    return objective_value({k: float(np.mean([p[k] for p in per])) for k in per[0]})
