"""Fibre twins: Boolean models of straight cylindrical fibres (felts, preforms, papers, GDLs).

:class:`FibreModel` is the Boolean model whose grains are capsules (cylinders with hemispherical
ends): fibre centres form a Poisson process, each fibre has a radius from a log-normal
distribution (mean ``radius``, coefficient of variation ``radius_cv``), a length ``length`` and a
direction: an isotropic direction whose components are scaled by ``orientation`` = (s0, s1, s2)
before normalising (an affine generalisation of the "β" orientation model of Schladitz et al.
2006: (1, 1, 1) isotropic; (0.1, 1, 1) fibres nearly in the plane normal to axis 0 as in a
layered felt; (1, 4, 1) fibres concentrated along axis 1). The union of the fibres is the solid
(or the pore with ``fibre_phase="pore"``).

Because fibres overlap freely, the volume fraction is exact: φ = 1 − exp(−λ·E[v]) with λ the
fibre intensity and E[v] = π E[R²] ℓ + 4/3 π E[R³] the mean capsule volume, so the model is
parametrised by ``volume_fraction`` directly.

Realizations are non-periodic by default (fibres are drawn in a box padded by half a fibre
length plus the largest radius, so every fibre that reaches the volume is drawn);
``periodic=True`` wraps them on the torus of the output shape.

References
----------
Schladitz, Peters, Reinel-Bitzer, Wiegmann & Ohser, Comput. Mater. Sci. 38 (2006) 56 (design of
acoustic trim from a Boolean fibre model, the β orientation distribution); Chiu, Stoyan, Kendall
& Mecke, *Stochastic Geometry and its Applications* (3rd ed., 2013), §3.1 (Boolean model).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import special

from twinsr._atomic import atomic_write_text
from twinsr._validation import check_memory, check_shape
from twinsr.exceptions import ConfigError
from twinsr.stochastic._grain_kernels import paint_capsules
from twinsr.stochastic.grains import GRAIN_PHASES, bounded_float, check_parameter_header

__all__ = ["FibreModel"]

_FORMAT = "twinsr.fibre_model"
_FORMAT_VERSION = 1
_R_CLIP = (1.0 / 3.0, 3.0)
_BYTES_PER_FIBRE = 120


@dataclass(frozen=True)
class FibreModel:
    """Boolean model of straight capsule-shaped fibres with a tunable orientation distribution.

    Parameters
    ----------
    volume_fraction : float
        Solid fraction φ in (0, 1) of the fibres' union (exact in expectation).
    radius : float
        Mean fibre radius (voxels), at least 0.5.
    length : float
        Fibre length ℓ (voxels, the cylinder part), ≥ 0.
    radius_cv : float
        Coefficient of variation of the log-normal radii, in [0, 0.6].
    orientation : (float, float, float)
        Scales (0.01–100 each) of an isotropic direction's components before normalising; only
        their ratios matter (they are stored divided by their maximum).
    fibre_phase : {"solid", "pore"}
        The phase the fibres are.
    voxel_size : float, optional
        Physical voxel edge (µm), metadata.

    Examples
    --------
    >>> m = FibreModel(volume_fraction=0.15, radius=2.0, length=40.0, orientation=(0.3, 1, 1))
    >>> im = m.sample((32, 32, 32), rng=0)
    >>> im.dtype, im.shape
    (dtype('uint8'), (32, 32, 32))
    """

    volume_fraction: float
    radius: float
    length: float
    _: KW_ONLY
    radius_cv: float = 0.0
    orientation: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fibre_phase: str = "solid"
    voxel_size: float | None = None

    family: ClassVar[str] = "fibres"

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "volume_fraction", bounded_float(self.volume_fraction, "volume_fraction", 0.0,
                                                 1.0, hi_open=True))
        s(self, "radius", bounded_float(self.radius, "radius", 0.5, 1e4, lo_open=False,
                                        hint=" (voxels)"))
        s(self, "length", bounded_float(self.length, "length", 0.0, 1e6, lo_open=False,
                                        hint=" (voxels)"))
        s(self, "radius_cv", bounded_float(self.radius_cv, "radius_cv", 0.0, 0.6, lo_open=False))
        o = self.orientation
        if isinstance(o, (str, bytes)) or not hasattr(o, "__len__") or len(o) != 3:
            raise ConfigError(f"`orientation` must be three scales (s0, s1, s2), got {o!r}")
        scales = [bounded_float(v, "orientation", 0.01, 100.0, lo_open=False) for v in o]
        top = max(scales)
        s(self, "orientation", tuple(v / top for v in scales))
        if self.fibre_phase not in GRAIN_PHASES:
            raise ConfigError(f"`fibre_phase` must be 'solid' or 'pore', got {self.fibre_phase!r}")
        if self.voxel_size is not None:
            s(self, "voxel_size", bounded_float(self.voxel_size, "voxel_size", 0.0, math.inf,
                                                hi_open=True))

    def _radii(self, u: np.ndarray) -> np.ndarray:
        if self.radius_cv == 0.0:
            return np.full(u.shape, self.radius)
        s = math.sqrt(math.log1p(self.radius_cv ** 2))
        r = np.exp(math.log(self.radius) - 0.5 * s * s
                   + s * special.ndtri(np.clip(u, 1e-12, 1 - 1e-12)))
        return np.clip(r, _R_CLIP[0] * self.radius, _R_CLIP[1] * self.radius)

    def mean_fibre_volume(self) -> float:
        """E[v] = π E[R²] ℓ + 4/3 π E[R³] (voxels³) of the clipped log-normal radius."""
        r = self._radii((np.arange(4096) + 0.5) / 4096)
        return float(math.pi * np.mean(r ** 2) * self.length + 4.0 / 3.0 * math.pi * np.mean(r ** 3))

    @property
    def intensity(self) -> float:
        """λ = −ln(1 − φ) / E[v]: fibres per voxel³."""
        return -math.log1p(-self.volume_fraction) / self.mean_fibre_volume()

    def directions(self, g: np.ndarray) -> np.ndarray:
        """Unit directions (n, 3) from standard normal triples ``g`` (n, 3)."""
        v = np.array(g, dtype=np.float64) * np.asarray(self.orientation)
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.maximum(norm, 1e-300)

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
            Wrap the fibres on the torus of ``shape``.

        Raises
        ------
        VolumeError
            A bad shape.
        MemoryBudgetError
            Too many fibres or voxels for the available memory (checked before allocating).
        """
        shp = check_shape(shape)
        reach = 0.5 * self.length + self.radius * (_R_CLIP[1] if self.radius_cv else 1.0)
        pad = 0.0 if periodic else math.ceil(reach)
        box = np.asarray(shp, dtype=np.float64) + 2 * pad
        gen = np.random.default_rng(rng)
        n = int(gen.poisson(self.intensity * float(np.prod(box))))
        check_memory(float(np.prod(shp)) + n * _BYTES_PER_FIBRE,
                     f"a Boolean model of {n} fibres for a {shp} volume")
        # one row per fibre (centre, radius quantile, direction quantiles): the first rows are the
        # same for every parameter set (common random numbers)
        u = gen.random((n, 7))
        g = special.ndtri(np.clip(u[:, 4:], 1e-12, 1 - 1e-12))
        centre = u[:, :3] * box - pad
        half = 0.5 * self.length * self.directions(g)
        grid = np.zeros(shp, dtype=np.uint8)
        paint_capsules(grid, centre - half, centre + half, self._radii(u[:, 3]), np.zeros(3),
                       bool(periodic))
        if self.fibre_phase == "pore":
            np.subtract(1, grid, out=grid)
        return grid

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description with units (inverse of :meth:`from_dict`)."""
        from twinsr import __version__

        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "model": self.family,
            "volume_fraction": self.volume_fraction,
            "radius": self.radius,
            "length": self.length,
            "length_unit": "voxel",
            "radius_cv": self.radius_cv,
            "orientation": list(self.orientation),
            "fibre_phase": self.fibre_phase,
            "voxel_size": self.voxel_size,
            "voxel_size_unit": "um",
            "twinsr_version": __version__,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FibreModel:
        """Rebuild a model from :meth:`to_dict` output (validated).

        Raises
        ------
        ConfigError
            Not a mapping, another model's file, unknown or missing keys, wrong units, a newer
            format version, or invalid values.
        """
        known = {"format", "format_version", "model", "volume_fraction", "radius", "length",
                 "length_unit", "radius_cv", "orientation", "fibre_phase", "voxel_size",
                 "voxel_size_unit", "twinsr_version", "calibration"}
        check_parameter_header(d, fmt=_FORMAT, family=cls.family, label="fibre",
                               version=_FORMAT_VERSION, known=known,
                               units=(("length_unit", "voxel"), ("voxel_size_unit", "um")))
        missing = [k for k in ("volume_fraction", "radius", "length") if k not in d]
        if missing:
            raise ConfigError(f"fibre model parameters lack required key(s) {missing}")
        kw = {k: d[k] for k in ("radius_cv", "fibre_phase", "voxel_size") if k in d}
        if "orientation" in d:
            kw["orientation"] = tuple(d["orientation"]) if isinstance(d["orientation"], list) \
                else d["orientation"]
        return cls(d["volume_fraction"], d["radius"], d["length"], **kw)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically. Returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=2) + "\n")
        return p
