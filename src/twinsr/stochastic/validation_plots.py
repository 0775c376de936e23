"""Figures of a model validation (:func:`twinsr.stochastic.validate`), drawn without pyplot.

* :func:`plot_two_point` — S₂ of the solid along each axis: data against every realization;
* :func:`plot_distributions` — chord-length distributions (mean over axes) and continuous size
  distributions of both phases: data against the realizations' mean;
* :func:`plot_deviations` — relative deviation of every scalar descriptor, with the tolerance and
  twice the data's natural relative spread (the "within spread" band) per descriptor.

Each writes a PNG atomically and returns its path (None when the validation lacks the group).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twinsr._atomic import atomic_path

if TYPE_CHECKING:
    from twinsr.stochastic.validate import ValidationResult

__all__ = ["plot_deviations", "plot_distributions", "plot_two_point"]

DATA_COLOUR = "black"
TWIN_COLOUR = "tab:orange"
VERDICT_COLOURS = {"match": "tab:green", "within spread": "tab:olive", "off": "tab:red"}


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return path


def plot_two_point(result: ValidationResult, path: str | Path) -> Path | None:
    """S₂,solid(h) per axis: the data (black) and each realization (orange, thin)."""
    from matplotlib.figure import Figure

    if result.data.s2 is None:
        return None
    axes = result.data.axes
    fig = Figure(figsize=(4.0 * len(axes), 3.4))
    panels = fig.subplots(1, len(axes), squeeze=False)[0]
    lags = result.data.s2_lags
    for i, (ax, a) in enumerate(zip(panels, axes, strict=True)):
        for k, t in enumerate(result.twins):
            n = min(len(lags), t.s2["solid"].shape[1])
            ax.plot(lags[:n], t.s2["solid"][i, :n], color=TWIN_COLOUR, lw=0.8, alpha=0.7,
                    label="twins" if k == 0 else None)
        ax.plot(lags, result.data.s2["solid"][i], color=DATA_COLOUR, lw=1.6, label="data")
        ax.set_title(f"axis {a}")
        ax.set_xlabel("lag h (voxels)")
        if i == 0:
            ax.set_ylabel("S₂,solid(h)")
            ax.legend(frameon=False)
    fig.suptitle(f"two-point coverage: data vs {result.n} {result.family} twins")
    return _save(fig, Path(path))


def _mean_chord_hist(desc: Any, phase: str) -> np.ndarray:
    hists = [c.counts / max(c.n_chords, 1) for c in desc.chords[phase].values()]
    n = max(len(h) for h in hists)
    return np.mean([np.pad(h, (0, n - len(h))) for h in hists], axis=0)


def plot_distributions(result: ValidationResult, path: str | Path) -> Path | None:
    """Chord-length and continuous size distributions of both phases, data vs twins' mean."""
    from matplotlib.figure import Figure

    d = result.data
    rows = [g for g in ("chords", "sizes") if getattr(d, g) is not None]
    if not rows:
        return None
    phases = d.phases
    fig = Figure(figsize=(4.2 * len(phases), 3.2 * len(rows)))
    grid = fig.subplots(len(rows), len(phases), squeeze=False)
    for r, group in enumerate(rows):
        for c, ph in enumerate(phases):
            ax = grid[r, c]
            if group == "chords":
                hd = _mean_chord_hist(d, ph)
                ht = [_mean_chord_hist(t, ph) for t in result.twins]
                n = max([len(hd)] + [len(h) for h in ht])
                mean_t = np.mean([np.pad(h, (0, n - len(h))) for h in ht], axis=0)
                ax.plot(np.arange(len(hd)), hd, color=DATA_COLOUR, label="data")
                ax.plot(np.arange(n), mean_t, color=TWIN_COLOUR, label="twins (mean)")
                ax.set_xlabel("chord length (voxels)")
                ax.set_ylabel("share of chords")
                ax.set_title(f"{ph} chords (mean over axes)")
            else:
                sd = d.sizes[ph]
                ax.step(sd.radii, sd.cumulative, where="post", color=DATA_COLOUR, label="data")
                for k, t in enumerate(result.twins):
                    st = t.sizes[ph]
                    ax.step(st.radii, st.cumulative, where="post", color=TWIN_COLOUR, lw=0.8,
                            alpha=0.7, label="twins" if k == 0 else None)
                ax.set_xlabel("radius r (voxels)")
                ax.set_ylabel("share with local radius ≥ r")
                ax.set_title(f"{ph} continuous size distribution")
            ax.legend(frameon=False)
    return _save(fig, Path(path))


def plot_deviations(result: ValidationResult, path: str | Path) -> Path:
    """Horizontal bars of the relative deviation per descriptor, coloured by verdict.

    The grey band of each bar is ± twice the data's natural relative spread, the dashed lines
    ± the tolerance; infinite deviations (a phase that percolates in only one of data and twins)
    are drawn at the edge of the axis and marked.
    """
    from matplotlib.figure import Figure

    rows = list(result.rows)
    dev = np.array([r.deviation for r in rows], dtype=float)
    lim = max(0.15, float(np.nanmax(np.abs(dev[np.isfinite(dev)]), initial=0.0)) * 1.15)
    fig = Figure(figsize=(7.0, 0.24 * len(rows) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(rows))
    for i, r in enumerate(rows):
        band = 2.0 * r.data_spread / abs(r.data) if np.isfinite(r.data) and r.data else 0.0
        if band:
            ax.barh(i, 2 * band, left=-band, color="0.88", height=0.8, zorder=0)
    shown = np.clip(np.nan_to_num(dev, posinf=lim, neginf=-lim), -lim, lim)
    ax.barh(y, shown, color=[VERDICT_COLOURS[r.verdict] for r in rows], height=0.55, zorder=2)
    for i in np.flatnonzero(~np.isfinite(dev)):
        ax.text(shown[i], i, " ∞", va="center", ha="left" if shown[i] > 0 else "right")
    for s in (-1, 1):
        ax.axvline(s * result.tolerance, color="0.3", ls="--", lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [r.name for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-lim, lim)
    ax.set_xlabel("(twins − data) / data   [dashed: tolerance; grey: 2 × data's natural spread]")
    ax.set_title(f"{result.family}: {result.counts['match']} match, "
                 f"{result.counts['within spread']} within spread, {result.counts['off']} off")
    return _save(fig, Path(path))
