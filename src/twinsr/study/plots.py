"""Figures of the study (every figure as PNG and PDF).

* :func:`plot_error_slices` - Fig. 5: correct solid white, correct pore black, wrong solid
  (predicted solid, truly pore) magenta, wrong pore (predicted pore, truly solid) blue;
* :func:`plot_boxplots` - Fig. 6: the four metrics per α and method, simulated and measured side
  by side;
* :func:`plot_phase_tortuosity` - Fig. A2: tortuosity relative errors per phase;
* :func:`plot_training_curves` - training and validation loss per network;
* :func:`plot_paired_differences` - per sub-volume paired differences of each network against
  each baseline (dots) with the median and its bootstrap interval (bars),
  :mod:`twinsr.study.stats`.

Each ``plot_*`` function writes the figure that the matching ``*_figure`` function returns.
Figures are drawn on :class:`matplotlib.figure.Figure` objects and saved through their own
canvas: pyplot and the user's matplotlib backend are never touched (safe in a notebook).

Non-percolating cases (relative error ``inf``) cannot be drawn in a box plot; they are left out
of the boxes and counted in the panel title ("n inf").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twinsr.exceptions import VolumeError
from twinsr.metrics import PHASES
from twinsr.study.evaluate import GROUND_TRUTH, HEADLINE, SOURCES, TORTUOSITIES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ERROR_COLOURS",
    "boxplots_figure",
    "error_image",
    "error_slices_figure",
    "paired_differences_figure",
    "phase_tortuosity_figure",
    "plot_boxplots",
    "plot_error_slices",
    "plot_paired_differences",
    "plot_phase_tortuosity",
    "plot_training_curves",
    "training_curves_figure",
]

#: RGB colours of the error slices (Fig. 5).
ERROR_COLOURS = {
    "correct_solid": (1.0, 1.0, 1.0),
    "correct_pore": (0.0, 0.0, 0.0),
    "wrong_solid": (1.0, 0.0, 1.0),
    "wrong_pore": (0.0, 0.35, 1.0),
}


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A pyplot-free figure and its (nrows, ncols) array of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Figure, path: Path) -> list[Path]:
    from twinsr._atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    # ``path`` has no suffix; a sample name may hold dots ("a.b"), so append, never replace
    base = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    out = []
    for ext in (".png", ".pdf"):
        target = base.with_name(base.name + ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", format=ext[1:])
        out.append(target)
    return out


def _add_legend(fig: Figure, methods: Sequence[str], colours: dict[str, Any]) -> None:
    """The shared method legend below the panels."""
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=colours[m], label=m) for m in methods],
               loc="lower center", ncol=len(methods), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.03, 1, 1))


def error_image(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """RGB image of a slice coloured as in Fig. 5.

    Parameters
    ----------
    sr, hr : numpy.ndarray, same shape (typically (Y, X)), binary (nonzero = solid)
        Super-resolved slice and ground-truth slice.

    Returns
    -------
    numpy.ndarray of float64, shape (*hr.shape, 3), values in [0, 1]
        :data:`ERROR_COLOURS`: correct solid white, correct pore black, wrong solid
        (predicted solid, truly pore) magenta, wrong pore (predicted pore, truly solid) blue.

    Raises
    ------
    VolumeError
        The shapes differ.

    Examples
    --------
    >>> error_image([[1, 0]], [[0, 1]]).tolist()  # wrong solid, wrong pore
    [[[1.0, 0.0, 1.0], [0.0, 0.35, 1.0]]]
    """
    sr = np.asarray(sr) != 0
    hr = np.asarray(hr) != 0
    if sr.shape != hr.shape:
        raise VolumeError(f"error_image: `sr` and `hr` must have the same shape, got "
                          f"{sr.shape} and {hr.shape}")
    img = np.zeros((*hr.shape, 3))
    for key, mask in (("correct_solid", sr & hr), ("correct_pore", ~sr & ~hr),
                      ("wrong_solid", sr & ~hr), ("wrong_pore", ~sr & hr)):
        img[mask] = ERROR_COLOURS[key]
    return img


def error_slices_figure(slices: Mapping[int, Mapping[str, np.ndarray]], *,
                        title: str = "") -> Figure:
    """Fig. 5: one row per α, one column per method after the ground truth.

    Parameters
    ----------
    slices : mapping α -> {"hr": 2-D array, method: 2-D array, ...}
        Middle slices of one HR sub-volume and of each method's result (binary, 1 = solid).
    title : str
        First line of the figure title.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(slices)`` rows of ``1 + n_methods`` panels.
    """
    alphas = sorted(slices)
    methods = [m for m in slices[alphas[0]] if m != "hr"]
    ncol = len(methods) + 1
    fig, axes = _figure(len(alphas), ncol, (2.2 * ncol, 2.3 * len(alphas) + 0.4))
    for r, a in enumerate(alphas):
        hr = slices[a]["hr"]
        axes[r, 0].imshow(hr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_title(f"HR (α={a})", fontsize=8)
        for c, m in enumerate(methods, start=1):
            sr = slices[a].get(m)
            if sr is None:
                axes[r, c].axis("off")
                continue
            acc = float((sr == hr).mean())
            axes[r, c].imshow(error_image(sr, hr), interpolation="nearest")
            axes[r, c].set_title(f"{m}, α={a}\nslice acc. {acc:.3f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle((title + "\n" if title else "") + "white/black: correct solid/pore; magenta: "
                 "wrong solid; blue: wrong pore", fontsize=9)
    return fig


def plot_error_slices(slices: Mapping[int, Mapping[str, np.ndarray]], path: str | Path, *,
                      title: str = "") -> list[Path]:
    """Write Fig. 5 (:func:`error_slices_figure`) to ``path`` + ``.png`` and ``.pdf``.

    Parameters
    ----------
    slices : mapping α -> {"hr": 2-D array, method: 2-D array, ...}
        Middle slices of one HR sub-volume and of each method's result.
    path : path
        Output path without suffix (``.png`` and ``.pdf`` are written).
    title : str
        First line of the figure title.

    Returns
    -------
    list of Path
        The PNG and the PDF.
    """
    return _save(error_slices_figure(slices, title=title), Path(path))


def _box_panel(ax: Any, df: Any, alphas: Sequence[int], methods: Sequence[str],
               colours: Mapping[str, Any]) -> int:
    width = 0.8 / max(1, len(methods))
    n_inf = 0
    for i, m in enumerate(methods):
        data, pos = [], []
        for j, a in enumerate(alphas):
            v = df[(df["method"] == m) & (df["alpha"] == a)]["value"].to_numpy(dtype=float)
            n_inf += int(np.isinf(v).sum())
            v = v[np.isfinite(v)]
            data.append(v if v.size else np.array([np.nan]))
            pos.append(j + (i - (len(methods) - 1) / 2) * width)
        bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True,
                        showfliers=True, flierprops={"markersize": 2})
        for box in bp["boxes"]:
            box.set_facecolor(colours[m])
            box.set_alpha(0.8)
    ax.set_xticks(range(len(alphas)))
    ax.set_xticklabels([f"α={a}" for a in alphas])
    return n_inf


def _colours(methods: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _layout(df: Any, methods: Sequence[str] | None) -> tuple[list[str], list[str], list[int]]:
    """Sources present (table order), methods (ground truth left out) and α of a table."""
    sources = [s for s in SOURCES if s in set(df["source"])]
    methods = list(methods or [m for m in df["method"].unique() if m != GROUND_TRUTH])
    alphas = sorted(int(a) for a in df["alpha"].unique())
    return sources, methods, alphas


def _box_grid(df: Any, panels: Sequence[tuple[str, str, str]], methods: Sequence[str] | None,
              height: float) -> Figure:
    """One row of box panels per (metric, phase, label), one column per source."""
    sources, methods, alphas = _layout(df, methods)
    colours = _colours(methods)
    fig, axes = _figure(len(panels), len(sources), (4.2 * len(sources), height * len(panels)))
    for c, src in enumerate(sources):
        for r, (metric, phase, label) in enumerate(panels):
            sub = df[(df["source"] == src) & (df["metric"] == metric) & (df["phase"] == phase)]
            n_inf = _box_panel(axes[r, c], sub, alphas, methods, colours)
            extra = f" ({n_inf} inf not shown)" if n_inf else ""
            axes[r, c].set_title(f"{src}: {label}{extra}", fontsize=9)
            axes[r, c].grid(axis="y", alpha=0.3)
    _add_legend(fig, methods, colours)
    return fig


def boxplots_figure(df: Any, *, methods: Sequence[str] | None = None) -> Figure:
    """Fig. 6: box plots of the headline metrics per α and method, one column per source.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table (:data:`twinsr.study.evaluate.COLUMNS`).
    methods : sequence of str, optional
        Methods in drawing order (default: every method of the table but the ground truth).

    Returns
    -------
    matplotlib.figure.Figure
        One row per headline metric present in ``df`` (:data:`~twinsr.study.evaluate.HEADLINE`),
        one column per source present; a box per (α, method).
    """
    panels = [(h.metric, h.phase, h.short_label) for h in HEADLINE
              if ((df["metric"] == h.metric) & (df["phase"] == h.phase)).any()]
    return _box_grid(df, panels, methods, 2.8)


def phase_tortuosity_figure(df: Any, *, methods: Sequence[str] | None = None) -> Figure:
    """Fig. A2: relative errors of geodesic and effective tortuosity per phase and source.

    Returns
    -------
    matplotlib.figure.Figure
        One row per (tortuosity error, phase), one column per source present in ``df``.
    """
    panels = [(f"{key}_rel_err", p, f"{word} τ, {p}") for key, word in TORTUOSITIES.items()
              for p in PHASES]
    return _box_grid(df, panels, methods, 2.6)


def plot_boxplots(df: Any, path: str | Path, *, methods: Sequence[str] | None = None
                  ) -> list[Path]:
    """Write Fig. 6 (:func:`boxplots_figure`) to ``path`` + ``.png`` and ``.pdf``.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table (:data:`twinsr.study.evaluate.COLUMNS`).
    path : path
        Output path without suffix.
    methods : sequence of str, optional
        Methods in drawing order.
    """
    return _save(boxplots_figure(df, methods=methods), Path(path))


def plot_phase_tortuosity(df: Any, path: str | Path, *, methods: Sequence[str] | None = None
                          ) -> list[Path]:
    """Write Fig. A2 (:func:`phase_tortuosity_figure`) to ``path`` + ``.png`` and ``.pdf``."""
    return _save(phase_tortuosity_figure(df, methods=methods), Path(path))


def training_curves_figure(histories: Mapping[str, Any]) -> Figure:
    """Training and validation loss per epoch, one panel per network.

    Parameters
    ----------
    histories : mapping name -> pandas.DataFrame
        Columns ``epoch`` and any of ``train_loss``, ``val_loss`` (other numeric columns are
        ignored).
    """
    names = list(histories)
    fig, axes = _figure(1, max(1, len(names)), (3.4 * max(1, len(names)), 2.8))
    for ax, name in zip(axes[0], names, strict=False):
        h = histories[name]
        x = h["epoch"] if "epoch" in h else np.arange(1, len(h) + 1)
        for col, style in (("train_loss", "-"), ("val_loss", "--")):
            if col in h:
                ax.plot(x, h[col], style, label=col.replace("_", " "))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_training_curves(histories: Mapping[str, Any], path: str | Path) -> list[Path]:
    """Write :func:`training_curves_figure` to ``path`` + ``.png`` and ``.pdf``."""
    return _save(training_curves_figure(histories), Path(path))


def _pair_panel(ax: Any, diffs: Any, comp: Any, entries: Sequence[tuple[int, str, str]],
                sign: float, colours: Mapping[str, Any]) -> int:
    """Dots (one per sub-volume) and median + CI bar per (α, method, baseline) entry."""
    n_inf = 0
    for x, (a, m, b) in enumerate(entries):
        d = diffs[(diffs["alpha"] == a) & (diffs["method"] == m) & (diffs["baseline"] == b)]
        v = sign * d["diff"].to_numpy(dtype=float)
        n_inf += int((~np.isfinite(v)).sum())
        v = v[np.isfinite(v)]
        jitter = np.linspace(-0.15, 0.15, v.size) if v.size > 1 else np.zeros(v.size)
        ax.plot(x + jitter, v, "o", ms=2.5, color=colours[b], alpha=0.6)
        c = comp[(comp["alpha"] == a) & (comp["method"] == m) & (comp["baseline"] == b)]
        if len(c) and np.isfinite(c["ci_low"].iloc[0]):
            r = c.iloc[0]
            lo, hi = sorted((sign * r["ci_low"], sign * r["ci_high"]))
            med = sign * r["median_diff"]
            if np.isfinite([lo, hi, med]).all():
                ax.errorbar([x + 0.3], [med], yerr=[[med - lo], [hi - med]], fmt="s", ms=4,
                            color="k", capsize=2, lw=1)
            if r["verdict"] in ("better", "worse"):
                ax.annotate("*", (x + 0.3, hi), ha="center", va="bottom", fontsize=9)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(range(len(entries)))
    ax.set_xticklabels([f"α={a}\n{m}" for a, m, _ in entries], fontsize=6)
    return n_inf


def paired_differences_figure(diffs: Any, comparisons: Any) -> Figure:
    """Paired differences of every network against every baseline, per sub-volume.

    Parameters
    ----------
    diffs : pandas.DataFrame
        :func:`twinsr.study.stats.paired_differences` (columns source, alpha, method, baseline,
        metric, phase, diff).
    comparisons : pandas.DataFrame
        :func:`twinsr.study.stats.paired_comparisons` of the same differences.

    Returns
    -------
    matplotlib.figure.Figure
        One row per headline metric, one column per source; differences are drawn as
        improvements (positive = the network is better, for accuracies and errors alike):
        a dot per sub-volume coloured by baseline, the median with its bootstrap interval as a
        black bar, ``*`` where the paired test is significant. Infinite differences are not
        drawn and counted in the panel title.
    """
    heads = [h for h in HEADLINE if ((diffs["metric"] == h.metric)
                                     & (diffs["phase"] == h.phase)).any()]
    sources = [s for s in SOURCES if s in set(diffs["source"])]
    baselines = list(dict.fromkeys(diffs["baseline"]))
    colours = _colours(baselines)
    entries = sorted({(int(a), m, b) for a, m, b in
                      zip(diffs["alpha"], diffs["method"], diffs["baseline"], strict=True)},
                     key=lambda e: (e[0], e[1], baselines.index(e[2])))
    fig, axes = _figure(max(1, len(heads)), max(1, len(sources)),
                        (max(4.2, 0.35 * len(entries) + 1.5) * max(1, len(sources)),
                         2.8 * max(1, len(heads))))
    for c, src in enumerate(sources):
        for r, h in enumerate(heads):
            sel = (diffs["source"] == src) & (diffs["metric"] == h.metric) & \
                  (diffs["phase"] == h.phase)
            csel = (comparisons["source"] == src) & (comparisons["metric"] == h.metric) & \
                   (comparisons["phase"] == h.phase)
            n_inf = _pair_panel(axes[r, c], diffs[sel], comparisons[csel], entries,
                                1.0 if h.higher_is_better else -1.0, colours)
            extra = f" ({n_inf} inf not shown)" if n_inf else ""
            axes[r, c].set_title(f"{src}: improvement in {h.short_label}{extra}", fontsize=8)
            axes[r, c].grid(axis="y", alpha=0.3)
    _add_legend(fig, [f"vs {b}" for b in baselines],
                {f"vs {b}": colours[b] for b in baselines})
    return fig


def plot_paired_differences(diffs: Any, comparisons: Any, path: str | Path) -> list[Path]:
    """Write :func:`paired_differences_figure` to ``path`` + ``.png`` and ``.pdf``."""
    return _save(paired_differences_figure(diffs, comparisons), Path(path))
