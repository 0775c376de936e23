"""Germ–grain twins: packings of polydisperse spheroidal grains (particle electrodes, granular rocks).

The χ² excursion sets of the paper connect their solid through broad, smooth bridges. Real
particle packings — the active material of a battery electrode, the grains of a sandstone or the
ooids of a limestone — are made of convex particles that touch through narrow necks, which is what
sets their solid-phase tortuosity. :class:`GrainModel` builds such structures directly:

1. **Germs.** Grain centres uniform and independent in a periodic box of volume ``V``, each with a
   radius ``R`` from a log-normal distribution of mean ``radius`` and coefficient of variation
   ``radius_cv`` (clipped to [mean/3, 3·mean]), drawn until their total volume reaches η·V.
   ``η`` (``grain_fraction``) is the total grain volume per unit volume, overlaps counted twice.
2. **Packing.** With ``overlap`` δ < 1, the centres are moved apart by a deterministic relaxation
   (repeated pairwise pushes along the line of centres, Jacobi style, with a Verlet pair list)
   until no pair is closer than (R_i + R_j)(1 − δ). δ = 0 gives touching hard spheres (point
   contacts), a small δ grains that touch through necks of radius ≈ R·√(2δ), δ = 1 the Boolean
   model (no relaxation; volume fraction 1 − exp(−η)).
3. **Necks.** With ``neck`` κ > 0, every pair of grains whose centres are closer than
   (R_i + R_j)(1 + ``neck_range``) is joined by a solid neck: a capsule (a cylinder with
   hemispherical ends) of radius κ·min(R_i, R_j)·(1 − a·cos²θ) along the line of centres, θ its
   angle to ``axis`` and a = ``neck_anisotropy`` (a > 0: necks across the axis thicker than
   necks along it, as in a layered electrode). Necks are the sintered
   or binder-held contacts through which particles of an electrode or grains of a rock connect:
   they set the solid-phase tortuosity while changing the volume fraction and the surface
   little (stochastic electrode models of this kind place particles on a random graph and join
   neighbours).
4. **Compression.** The packing is built isotropic in a box stretched by 1/``aspect`` along
   ``axis`` and then compressed by ``aspect`` along it (as calendering compresses an electrode):
   grains become spheroids with semi-axis ``aspect``·R along ``axis``; contacts are kept.
5. **Phase.** The union of the grains is phase ``grain_phase`` (default the solid).

The volume fraction of the union lies between 1 − exp(−η) (Boolean) and η (no overlap); it is a
result of the packing, estimated by :meth:`GrainModel.volume_fraction_estimate` and matched to
data by :func:`twinsr.stochastic.calibrate`.

Realizations are non-periodic by default: the grains are packed on a torus padded on every side
by the largest grain reach plus one mean diameter and the middle is kept, so no grain touches two
opposite faces; ``periodic=True`` returns the torus itself (cheaper: no padding). Realization
``rng`` is the same on every machine (the relaxation is plain float64 arithmetic in a fixed
order). With the same seed, grains are drawn in the same order for
every parameter set (common random numbers), so descriptors vary smoothly with the parameters.

Memory: 1 byte per output voxel plus ≈ 200 bytes per grain of the padded box.

References
----------
Chiu, Stoyan, Kendall & Mecke, *Stochastic Geometry and its Applications* (3rd ed., 2013),
§3.1 (Boolean model), §6.5 (germ–grain models), §11.5 (packings); Münch & Holzer, J. Am. Ceram.
Soc. 91 (2008) 4059 (neck-controlled transport, constrictivity).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import special

from twinsr._atomic import atomic_write_text
from twinsr._validation import check_memory, check_shape
from twinsr.exceptions import ConfigError, ConvergenceWarning
from twinsr.stochastic._grain_kernels import near_pairs, paint_capsules, paint_spheroids, relax_sweep

__all__ = ["GRAIN_PHASES", "GrainModel", "PackingInfo", "bounded_float"]

GRAIN_PHASES = ("solid", "pore")
_FORMAT = "twinsr.grain_model"
_FORMAT_VERSION = 1
_R_CLIP = (1.0 / 3.0, 3.0)      # radii clipped to [mean/3, 3·mean]
_MAX_CV = 0.6
_RELAX_TOL = 1e-3                # relative residual overlap (of R_i + R_j) accepted as converged
_MAX_SWEEPS = 2000
_BYTES_PER_GRAIN = 200


def check_parameter_header(d: object, *, fmt: str, family: str, label: str, version: int,
                           known: set[str], units: tuple[tuple[str, str], ...]) -> None:
    """The checks every twin-model parameter file shares: a mapping of this ``fmt`` and
    ``family``, only ``known`` keys, a supported ``format_version``, the expected ``units``.

    Raises
    ------
    ConfigError
        Naming the first problem found.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"model parameters must be a JSON object, got {type(d).__name__}")
    if d.get("format") != fmt or d.get("model", family) != family:
        raise ConfigError(f"not a twinsr {label} model (format={d.get('format')!r}, "
                          f"model={d.get('model')!r}); expected format {fmt!r}")
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in {label} model parameters: {unknown}; allowed: "
                          f"{sorted(known)}")
    v = d.get("format_version", version)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"`format_version` must be an integer, got {v!r}")
    if v > version:
        raise ConfigError(f"{label} model format_version {v} is newer than this twinsr "
                          f"supports ({version}); upgrade twinsr")
    for key, unit in units:
        if key in d and d[key] != unit:
            raise ConfigError(f"`{key}` must be {unit!r}, got {d[key]!r}; convert the value")


@dataclass(frozen=True)
class PackingInfo:
    """What the relaxation of one realization did (returned by :meth:`GrainModel.sample_with_info`).

    Attributes
    ----------
    n_grains : int
        Grains in the padded box.
    sweeps : int
        Relaxation sweeps (0 for the Boolean model).
    residual : float
        Largest remaining excess overlap, relative to R_i + R_j (≤ 1e-3 when converged).
    converged : bool
        Whether every pair satisfies the overlap bound.
    coordination : float
        Mean number of grains each grain touches or overlaps (centre distance < R_i + R_j).
    """

    n_grains: int
    sweeps: int
    residual: float
    converged: bool
    coordination: float


def bounded_float(value: object, name: str, lo: float, hi: float, *, lo_open: bool = True,
                  hi_open: bool = False, hint: str = "") -> float:
    """``value`` as a finite float in the interval (lo, hi] (ends open or closed), else ConfigError."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be a number, got {value!r}") from None
    bad_lo = v <= lo if lo_open else v < lo
    bad_hi = v >= hi if hi_open else v > hi
    if not math.isfinite(v) or bad_lo or bad_hi:
        lb = "(" if lo_open else "["
        hb = ")" if hi_open else "]"
        raise ConfigError(f"`{name}` must be in {lb}{lo:g}, {hi:g}{hb}, got {value!r}{hint}")
    return v


@dataclass(frozen=True)
class GrainModel:
    """Packing of polydisperse spheroidal grains with bounded overlap (germ–grain twin model).

    Parameters
    ----------
    grain_fraction : float
        η > 0: total grain volume per unit volume, overlaps counted twice (the union's volume
        fraction lies between 1 − exp(−η) and η).
    radius : float
        Mean grain radius R̄ (voxels) across ``axis`` (the semi-axis along it is aspect·R).
    radius_cv : float
        Coefficient of variation of the log-normal radius distribution, in [0, 0.6] (0 =
        monodisperse).
    overlap : float
        δ in [0, 1]: largest relative overlap of two grains, centre distance ≥ (R_i + R_j)(1 − δ);
        1 = Boolean model (no packing).
    neck : float
        κ in [0, 1): neck radius relative to the smaller grain of a joined pair (0 = no necks).
    neck_range : float
        g in [0, 2]: pairs with centre distance below (R_i + R_j)(1 + g) are joined.
    neck_anisotropy : float
        a in [−0.95, 0.95]: neck radius factor 1 − a·cos²θ for a neck at angle θ to ``axis``.
    aspect : float
        Compression of the packing along ``axis``, in (0.2, 5]; < 1 flattens (calendering).
    axis : int
        Axis of the compression (0, 1 or 2).
    grain_phase : {"solid", "pore"}
        The phase the grains are.
    voxel_size : float, optional
        Physical voxel edge (µm), carried as metadata.

    Examples
    --------
    >>> m = GrainModel(grain_fraction=0.55, radius=5.0, radius_cv=0.2, overlap=0.1)
    >>> im = m.sample((32, 32, 32), rng=0)
    >>> im.dtype, im.shape, bool(0.3 < im.mean() < 0.6)
    (dtype('uint8'), (32, 32, 32), True)
    """

    grain_fraction: float
    radius: float
    _: KW_ONLY
    radius_cv: float = 0.0
    overlap: float = 0.1
    neck: float = 0.0
    neck_range: float = 0.1
    neck_anisotropy: float = 0.0
    aspect: float = 1.0
    axis: int = 0
    grain_phase: str = "solid"
    voxel_size: float | None = None

    family: ClassVar[str] = "grains"

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "grain_fraction", bounded_float(self.grain_fraction, "grain_fraction", 0.0, 20.0))
        s(self, "radius", bounded_float(self.radius, "radius", 0.5, 1e4, lo_open=False,
                                      hint=" (voxels; grains below half a voxel cannot be drawn)"))
        s(self, "radius_cv", bounded_float(self.radius_cv, "radius_cv", 0.0, _MAX_CV, lo_open=False))
        s(self, "overlap", bounded_float(self.overlap, "overlap", 0.0, 1.0, lo_open=False))
        s(self, "neck", bounded_float(self.neck, "neck", 0.0, 1.0, lo_open=False, hi_open=True))
        s(self, "neck_range", bounded_float(self.neck_range, "neck_range", 0.0, 2.0, lo_open=False))
        s(self, "neck_anisotropy", bounded_float(self.neck_anisotropy, "neck_anisotropy", -0.95,
                                                 0.95, lo_open=False))
        s(self, "aspect", bounded_float(self.aspect, "aspect", 0.2, 5.0))
        if isinstance(self.axis, bool) or self.axis not in (0, 1, 2):
            raise ConfigError(f"`axis` must be 0, 1 or 2, got {self.axis!r}")
        s(self, "axis", int(self.axis))
        if self.grain_phase not in GRAIN_PHASES:
            raise ConfigError(f"`grain_phase` must be 'solid' or 'pore', got {self.grain_phase!r}")
        if self.voxel_size is not None:
            s(self, "voxel_size", bounded_float(self.voxel_size, "voxel_size", 0.0, math.inf,
                                              hi_open=True))

    # -- radii ------------------------------------------------------------------------------------
    def _lognormal(self) -> tuple[float, float]:
        s = math.sqrt(math.log1p(self.radius_cv ** 2))
        return math.log(self.radius) - 0.5 * s * s, s

    def radii_from_uniform(self, u: np.ndarray) -> np.ndarray:
        """Grain radii (voxels) from uniform numbers in (0, 1) by the log-normal quantile function."""
        mu, s = self._lognormal()
        if s == 0.0:
            return np.full(u.shape, self.radius)
        r = np.exp(mu + s * special.ndtri(np.clip(u, 1e-12, 1 - 1e-12)))
        return np.clip(r, _R_CLIP[0] * self.radius, _R_CLIP[1] * self.radius)

    def mean_grain_volume(self) -> float:
        """E[v] = aspect · 4/3 π E[R³] (voxels³) of the clipped log-normal radius."""
        u = (np.arange(4096) + 0.5) / 4096
        return float(self.aspect * 4.0 / 3.0 * math.pi * np.mean(self.radii_from_uniform(u) ** 3))

    @property
    def max_radius(self) -> float:
        """Largest radius a grain can have (voxels)."""
        return self.radius * (_R_CLIP[1] if self.radius_cv > 0 else 1.0)

    @property
    def boolean_volume_fraction(self) -> float:
        """1 − exp(−η): the grains' union fraction without packing (exact for ``overlap=1``)."""
        return 1.0 - math.exp(-self.grain_fraction)

    # -- sampling ---------------------------------------------------------------------------------
    def _box(self, shape: tuple[int, ...], periodic: bool) -> tuple[np.ndarray, np.ndarray]:
        """Box edges in packing coordinates (before compression) and the crop origin."""
        reach = self.max_radius * max(1.0, self.aspect)
        pad = 0.0 if periodic else math.ceil(reach + 2.0 * self.radius)
        box = np.asarray(shape, dtype=np.float64) + 2 * pad
        box[self.axis] /= self.aspect
        origin = np.full(3, pad)
        return box, origin

    def sample(self, shape: int | tuple[int, int, int], *, rng: object = None,
               periodic: bool = False) -> np.ndarray:
        """Draw one binary realization (uint8, 1 = solid) of shape ``shape``.

        Parameters
        ----------
        shape : int or (Z, Y, X)
            Voxels per axis.
        rng : None, int, sequence of int, Generator or SeedSequence
            Seed; the same seed gives the same volume.
        periodic : bool
            Return a periodic (torus) realization instead of the padded, non-periodic default.

        Returns
        -------
        numpy.ndarray of uint8, shape ``shape``

        Raises
        ------
        VolumeError
            A bad shape.
        MemoryBudgetError
            The padded box or the grain list would not fit in memory (checked before allocating).
        """
        return self.sample_with_info(shape, rng=rng, periodic=periodic)[0]

    def sample_with_info(self, shape: int | tuple[int, int, int], *, rng: object = None,
                         periodic: bool = False) -> tuple[np.ndarray, PackingInfo]:
        """:meth:`sample` plus a :class:`PackingInfo` of the relaxation.

        A relaxation that does not converge within its sweep limit (``grain_fraction`` too high
        for the allowed ``overlap``: the packing jams) keeps the best configuration found and
        warns with :class:`~twinsr.exceptions.ConvergenceWarning`.
        """
        shp = check_shape(shape)
        box, origin = self._box(shp, bool(periodic))
        gen = np.random.default_rng(rng)
        u = _draw_until_volume(gen, self, self.grain_fraction * float(np.prod(box)) * self.aspect)
        n = len(u)
        check_memory(float(np.prod(shp)) + n * _BYTES_PER_GRAIN,
                     f"a grain packing of {n} grains for a {shp} volume")
        pos = u[:, :3] * box
        rad = self.radii_from_uniform(u[:, 3])
        info = PackingInfo(n, 0, 0.0, True, 0.0)
        if self.overlap < 1.0 and n > 1:
            pos, info = _relax(pos, rad, box, self.overlap)
            if not info.converged:
                warnings.warn(
                    f"grain packing did not converge in {info.sweeps} sweeps (largest excess "
                    f"overlap {info.residual:.3g} of R_i + R_j): grain_fraction="
                    f"{self.grain_fraction:g} is too dense for overlap={self.overlap:g}; lower "
                    "grain_fraction or allow more overlap", ConvergenceWarning, stacklevel=3)
        centers = pos.copy()
        centers[:, self.axis] *= self.aspect
        grid = np.zeros(shp, dtype=np.uint8)
        # non-periodic: the crop sits inside the padded torus and no grain reaches across it
        paint_spheroids(grid, centers, rad, self.aspect, self.axis, origin, bool(periodic))
        if self.neck > 0.0:
            self._paint_necks(grid, pos, rad, box, origin, bool(periodic))
        if self.grain_phase == "pore":
            np.subtract(1, grid, out=grid)
        return grid, info

    def _paint_necks(self, grid: np.ndarray, pos: np.ndarray, rad: np.ndarray, box: np.ndarray,
                     origin: np.ndarray, periodic: bool) -> None:
        """Paint a capsule of radius κ·min(R_i, R_j) between every pair closer than the range."""
        skin = self.neck_range * 2.0 * float(rad.max())
        pairs = near_pairs(pos, rad, box, skin)
        i, j = pairs[:, 0], pairs[:, 1]
        d = _min_image(pos[j] - pos[i], box)
        near = np.einsum("ij,ij->i", d, d) < ((rad[i] + rad[j]) * (1.0 + self.neck_range)) ** 2
        i, j, d = i[near], j[near], d[near]
        start = pos[i].copy()
        end = start + d
        start[:, self.axis] *= self.aspect
        end[:, self.axis] *= self.aspect
        radius = self.neck * np.minimum(rad[i], rad[j])
        if self.neck_anisotropy:
            v = end - start
            cos2 = v[:, self.axis] ** 2 / np.maximum(np.einsum("ij,ij->i", v, v), 1e-300)
            radius = radius * (1.0 - self.neck_anisotropy * cos2)
        paint_capsules(grid, start, end, radius, origin, periodic)

    def volume_fraction_estimate(self, *, shape: int | tuple[int, int, int] | None = None,
                                 n: int = 2, seed: int = 0) -> float:
        """Mean solid fraction of ``n`` periodic realizations ``rng=[seed, i]``.

        The default edge is 12 mean grain diameters (32–160 voxels).
        """
        if shape is None:
            shape = int(min(160, max(32, round(24 * self.radius))))
        return float(np.mean([self.sample(shape, rng=[int(seed), i], periodic=True).mean()
                              for i in range(int(n))]))

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description with units (inverse of :meth:`from_dict`)."""
        from twinsr import __version__

        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "model": self.family,
            "grain_fraction": self.grain_fraction,
            "radius": self.radius,
            "radius_unit": "voxel",
            "radius_cv": self.radius_cv,
            "overlap": self.overlap,
            "neck": self.neck,
            "neck_range": self.neck_range,
            "neck_anisotropy": self.neck_anisotropy,
            "aspect": self.aspect,
            "axis": self.axis,
            "grain_phase": self.grain_phase,
            "voxel_size": self.voxel_size,
            "voxel_size_unit": "um",
            "twinsr_version": __version__,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrainModel:
        """Rebuild a model from :meth:`to_dict` output (validated).

        Raises
        ------
        ConfigError
            Not a mapping, another model's file, unknown or missing keys, wrong units, a newer
            format version, or invalid values.
        """
        known = {"format", "format_version", "model", "grain_fraction", "radius", "radius_unit",
                 "radius_cv", "overlap", "neck", "neck_range", "neck_anisotropy", "aspect", "axis",
                 "grain_phase", "voxel_size", "voxel_size_unit", "twinsr_version", "calibration"}
        check_parameter_header(d, fmt=_FORMAT, family=cls.family, label="grain",
                               version=_FORMAT_VERSION, known=known,
                               units=(("radius_unit", "voxel"), ("voxel_size_unit", "um")))
        missing = [k for k in ("grain_fraction", "radius") if k not in d]
        if missing:
            raise ConfigError(f"grain model parameters lack required key(s) {missing}")
        names = ("radius_cv", "overlap", "neck", "neck_range", "neck_anisotropy", "aspect", "axis",
                 "grain_phase", "voxel_size")
        return cls(d["grain_fraction"], d["radius"], **{k: d[k] for k in names if k in d})

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically. Returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=2) + "\n")
        return p


def _draw_until_volume(gen: np.random.Generator, model: GrainModel, volume: float) -> np.ndarray:
    """Rows (position in [0, 1)³, radius quantile) drawn until the grains' volume reaches ``volume``.

    Rows come from ``gen`` in chunks, so the first k rows are the same for every parameter set
    (common random numbers); the count is the first at which the cumulative grain volume reaches
    ``volume`` (this fixes η exactly instead of only in expectation).
    """
    if not math.isfinite(volume) or volume > 1e10 * model.mean_grain_volume():
        raise ConfigError(f"grain_fraction={model.grain_fraction:g} with radius={model.radius:g} "
                          "asks for more than 1e10 grains; use a smaller volume or larger grains")
    chunk = max(16, int(1.2 * volume / model.mean_grain_volume()) + 16)
    rows: list[np.ndarray] = []
    total = 0.0
    while True:
        u = gen.random((chunk, 4))
        v = model.aspect * 4.0 / 3.0 * math.pi * model.radii_from_uniform(u[:, 3]) ** 3
        cum = total + np.cumsum(v)
        k = int(np.searchsorted(cum, volume))  # first index with cum >= volume
        if k < chunk:
            rows.append(u[: k + 1])
            return np.concatenate(rows)
        rows.append(u)
        total = float(cum[-1])


def _min_image(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    d -= box * np.round(d / box)
    return d


def _relax(pos: np.ndarray, rad: np.ndarray, box: np.ndarray, overlap: float
           ) -> tuple[np.ndarray, PackingInfo]:
    """Push overlapping grains apart until centre distances are ≥ (R_i + R_j)(1 − δ)."""
    n = len(pos)
    pos = np.ascontiguousarray(pos % box)
    skin = 1.0 * float(np.median(rad))
    pairs = near_pairs(pos, rad, box, skin)
    built = pos.copy()
    disp = np.empty_like(pos)
    best_worst, best_pos = math.inf, pos.copy()
    sweeps = 0
    for sweeps in range(1, _MAX_SWEEPS + 1):  # noqa: B007 - used after the loop
        before = pos.copy()
        worst = relax_sweep(pos, rad, pairs, box, overlap, disp)
        if worst < best_worst:
            best_worst, best_pos = worst, before
        if worst <= _RELAX_TOL:
            pos = before
            break
        moved = _min_image(pos - built, box)
        if float(np.einsum("ij,ij->i", moved, moved).max()) > (0.5 * skin) ** 2:
            pairs = near_pairs(pos, rad, box, skin)
            built = pos.copy()
    pos = best_pos
    pairs = near_pairs(pos, rad, box, 0.0)
    d = _min_image(pos[pairs[:, 1]] - pos[pairs[:, 0]], box)
    touching = int(np.count_nonzero(np.sqrt(np.einsum("ij,ij->i", d, d))
                                    < rad[pairs[:, 0]] + rad[pairs[:, 1]]))
    return pos, PackingInfo(n, sweeps, max(best_worst, 0.0), best_worst <= _RELAX_TOL,
                            2.0 * touching / n)
