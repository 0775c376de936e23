"""Validation of a twin model against the measured volume it was calibrated on.

Every descriptor of :func:`twinsr.descriptors.describe` is computed for ``n`` realizations of the
model (at the data's shape unless ``shape`` is given) and for the data itself. For each scalar
descriptor the result holds the data's value, the data's natural spread (standard deviation over
non-overlapping cubic blocks of the data, the variability a second sample of the same material
would show at that size), the twins' mean and standard deviation, the relative deviation
(twin mean − data) / data and a verdict:

``"match"``        |deviation| ≤ ``tolerance`` (default 5 %);
``"within spread"`` |deviation| ≤ 2 × the data's relative natural spread (the twins are as close
                   as a second sample of the material would be, though beyond ``tolerance``);
``"off"``          otherwise (a phase that percolates in the data but not in the twins is "off").

:func:`write_validation` writes ``validation.json``, ``validation.md`` and figures (S₂ per axis,
chord-length and size distributions of both phases, a deviation bar chart with the data's
natural spread); ``twinsr validate IMAGE PARAMS.json -o DIR`` does all of it from the shell.

Cost: ``n + 1`` full descriptor sets at the data's size (the transport groups dominate: on
2 cores about 1–2 min per 250×300×300 volume) plus the blocks of the natural spread.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._atomic import atomic_write_text
from twinsr._validation import as_binary_volume, check_int, check_memory, check_shape
from twinsr.descriptors import Descriptors, describe
from twinsr.exceptions import ConfigError, NonPercolatingWarning
from twinsr.stochastic.families import family_of
from twinsr.stochastic.fit import block_slices

__all__ = ["VALIDATION_GROUPS", "ValidationResult", "ValidationRow", "validate", "write_validation"]

#: descriptor groups compared (every group of :func:`twinsr.descriptors.describe`)
VALIDATION_GROUPS = ("s2", "surface_area", "chords", "sizes", "constrictivity", "percolation",
                     "tau_eff", "geodesic")
_BYTES_PER_VOXEL = 70  # a realization (1 B) + the descriptors' working maps (sizes: ~60 B)
_SPREAD_BLOCKS = 8


@dataclass(frozen=True)
class ValidationRow:
    """One scalar descriptor: data against twins."""

    name: str
    data: float
    data_spread: float
    twin_mean: float
    twin_std: float
    deviation: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (_json_float(v) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else ("inf" if v > 0 else ("-inf" if v < 0 else "nan"))


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of :func:`validate`.

    Attributes
    ----------
    rows : tuple of ValidationRow
        One per scalar descriptor (see :meth:`twinsr.descriptors.Descriptors.scalars`).
    family : str
        Model family.
    model : dict
        The model's parameters (``to_dict()``).
    n : int
        Realizations.
    shape : tuple of int
        Shape of the realizations.
    data_shape : tuple of int
        Shape of the measured volume.
    tolerance : float
        Relative tolerance of the "match" verdict.
    data : Descriptors
        The data's descriptors (curves included).
    twins : tuple of Descriptors
        The realizations' descriptors.
    spread_block : int
        Edge of the blocks of the natural spread (0 if the data were too small for blocks).
    seconds : float
        Wall time.
    """

    rows: tuple[ValidationRow, ...]
    family: str
    model: dict[str, Any]
    n: int
    shape: tuple[int, ...]
    data_shape: tuple[int, ...]
    tolerance: float
    data: Descriptors
    twins: tuple[Descriptors, ...]
    spread_block: int
    seconds: float = 0.0
    excluded: tuple[str, ...] = field(default=())

    def row(self, name: str) -> ValidationRow:
        """The row of descriptor ``name``.

        Raises
        ------
        ConfigError
            No such descriptor.
        """
        for r in self.rows:
            if r.name == name:
                return r
        raise ConfigError(f"no descriptor {name!r}; available: {[r.name for r in self.rows]}")

    @property
    def counts(self) -> dict[str, int]:
        """Number of rows per verdict."""
        out = {"match": 0, "within spread": 0, "off": 0}
        for r in self.rows:
            out[r.verdict] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (rows, settings, the data's and the twins' curves)."""
        return {
            "family": self.family, "model": self.model, "n": self.n, "shape": list(self.shape),
            "data_shape": list(self.data_shape), "tolerance": self.tolerance,
            "spread_block": self.spread_block, "seconds": self.seconds, "counts": self.counts,
            "rows": [r.to_dict() for r in self.rows],
            "data": self.data.to_dict(), "twins": [t.to_dict() for t in self.twins],
        }

    def to_markdown(self) -> str:
        """The comparison table as Markdown."""
        lines = [f"# Validation of a {self.family} model", "",
                 f"{self.n} realizations of {'×'.join(map(str, self.shape))} voxels against the "
                 f"data ({'×'.join(map(str, self.data_shape))}); natural spread over "
                 f"{self.spread_block}³ blocks of the data; tolerance {self.tolerance:.0%}.", "",
                 f"Verdicts: {self.counts['match']} match, {self.counts['within spread']} within "
                 f"the data's spread, {self.counts['off']} off.", "",
                 "| descriptor | data | data spread | twins (mean ± sd) | deviation | verdict |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.name} | {_fmt(r.data)} | {_fmt(r.data_spread)} | "
                         f"{_fmt(r.twin_mean)} ± {_fmt(r.twin_std)} | {r.deviation:+.1%} | "
                         f"{r.verdict} |")
        return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _verdict(dev: float, rel_spread: float, tolerance: float) -> str:
    if not math.isfinite(dev):
        return "off"
    if abs(dev) <= tolerance:
        return "match"
    return "within spread" if abs(dev) <= 2.0 * rel_spread else "off"


def _natural_spread(b: np.ndarray, groups: Sequence[str], kw: dict[str, Any]
                    ) -> tuple[dict[str, float], int]:
    """Standard deviation of every scalar over up to 8 cubic blocks of half the smallest edge."""
    edge = min(b.shape) // 2
    if edge < 16:
        return {}, 0
    per = []
    for sl in block_slices(b.shape, edge, _SPREAD_BLOCKS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonPercolatingWarning)
            per.append(describe(b[sl], which=("volume_fraction", *groups), **kw).scalars())
    out = {}
    for k in per[0]:
        v = np.array([p[k] for p in per])
        fin = v[np.isfinite(v)]
        out[k] = float(fin.std()) if len(fin) > 1 else 0.0
    return out, edge


def validate(
    model: Any,
    im: np.ndarray,
    *,
    n: int = 8,
    shape: int | tuple[int, int, int] | None = None,
    rng: int = 0,
    tolerance: float = 0.05,
    groups: Sequence[str] = VALIDATION_GROUPS,
    tol: float = 1e-4,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationResult:
    """Compare every descriptor of ``n`` realizations of ``model`` with the measured volume.

    Parameters
    ----------
    model : twin model
        Any family (:mod:`twinsr.stochastic.families`).
    im : array_like, shape (Z, Y, X)
        The measured binary volume (1 = solid).
    n : int
        Realizations (seeds ``[rng, i]``).
    shape : int or (Z, Y, X), optional
        Shape of the realizations (default: the data's, so size effects are the same).
    rng : int
        Seed of the realizations.
    tolerance : float
        Relative deviation of a "match" (in (0, 1)).
    groups : sequence of str
        Descriptor groups compared (default all of :data:`VALIDATION_GROUPS`).
    tol : float
        Relative residual of the Laplace solves.
    progress : callable(done, total), optional
        Called after each described volume (data, blocks, twins).

    Returns
    -------
    ValidationResult

    Raises
    ------
    VolumeError
        A non-binary or non-3-D ``im``, a bad ``shape``.
    ConfigError
        Not a twin model, bad ``n``, ``tolerance`` or group names.
    MemoryBudgetError
        A realization and its descriptor maps would not fit in memory (checked first).

    Examples
    --------
    >>> from twinsr.stochastic import GrainModel
    >>> m = GrainModel(0.5, 3.0, overlap=0.1)
    >>> res = validate(m, m.sample(32, rng=9), n=2, groups=("chords",))
    >>> res.row("chord_mean.solid.axis0").verdict in ("match", "within spread", "off")
    True
    """
    fam = family_of(model)
    b = as_binary_volume(im)
    n = check_int(n, "n", minimum=1, error=ConfigError)
    shp = check_shape(shape if shape is not None else b.shape)
    if not 0.0 < float(tolerance) < 1.0:
        raise ConfigError(f"`tolerance` must be in (0, 1), got {tolerance!r}")
    bad = [g for g in groups if g not in VALIDATION_GROUPS]
    if bad:
        raise ConfigError(f"unknown descriptor group(s) {bad}; choose from {VALIDATION_GROUPS}")
    check_memory(float(np.prod(shp)) * _BYTES_PER_VOXEL,
                 f"validation realizations of shape {shp} and their descriptor maps")
    t0 = time.perf_counter()
    lag = max(4, min(min(b.shape), min(shp)) // 4)
    kw = {"max_lag": lag, "tol": tol}
    which = ("volume_fraction", *groups)
    done, total = 0, n + 1 + _SPREAD_BLOCKS

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPercolatingWarning)
        data = describe(b, which=which, **kw)
        tick()
        spread, edge = _natural_spread(b, groups, kw)
        done += _SPREAD_BLOCKS - 1
        tick()
        twins = []
        for i in range(n):
            twins.append(describe(model.sample(shp, rng=[int(rng), i]), which=which, **kw))
            tick()
    rows = _rows(data, twins, spread, float(tolerance))
    return ValidationResult(tuple(rows), fam, model.to_dict(), n, shp, tuple(b.shape),
                            float(tolerance), data, tuple(twins), edge,
                            time.perf_counter() - t0)


def _rows(data: Descriptors, twins: Sequence[Descriptors], spread: dict[str, float],
          tolerance: float) -> list[ValidationRow]:
    ds = data.scalars()
    ts = [t.scalars() for t in twins]
    rows = []
    for k, v in ds.items():
        vals = np.array([t[k] for t in ts])
        fin = vals[np.isfinite(vals)]
        if math.isfinite(v):
            mean = float(fin.mean()) if len(fin) == len(vals) else math.inf
            sd = float(fin.std()) if len(fin) > 1 else 0.0
            dev = (mean - v) / v if v != 0 else (0.0 if mean == 0 else math.inf)
            rel = spread.get(k, 0.0) / abs(v) if v != 0 else 0.0
        else:  # the data's phase does not percolate: the twins should not either
            mean = float(fin.mean()) if len(fin) else math.inf
            sd = float(fin.std()) if len(fin) > 1 else 0.0
            dev = 0.0 if not len(fin) else -math.inf
            rel = 0.0
        rows.append(ValidationRow(k, float(v), float(spread.get(k, 0.0)), mean, sd, float(dev),
                                  _verdict(dev, rel, tolerance)))
    return rows


def write_validation(result: ValidationResult, out_dir: str | Path) -> list[Path]:
    """Write ``validation.json``, ``validation.md`` and the figures (PNG) into ``out_dir``.

    Returns
    -------
    list of Path
        Every file written (atomically).
    """
    from twinsr.stochastic.validation_plots import (
        plot_deviations,
        plot_distributions,
        plot_two_point,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "validation.json", out / "validation.md"]
    atomic_write_text(paths[0], json.dumps(result.to_dict(), indent=1) + "\n")
    atomic_write_text(paths[1], result.to_markdown())
    paths += [plot_two_point(result, out / "validation_s2.png"),
              plot_distributions(result, out / "validation_distributions.png"),
              plot_deviations(result, out / "validation_deviations.png")]
    return [p for p in paths if p is not None]
