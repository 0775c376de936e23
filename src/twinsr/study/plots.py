"""Figures of the study (matplotlib, Agg backend; every figure as PNG and PDF).

* :func:`plot_error_slices` - Fig. 5: correct solid white, correct pore black, wrong solid
  (predicted solid, truly pore) magenta, wrong pore (predicted pore, truly solid) blue;
* :func:`plot_boxplots` - Fig. 6: the four metrics per α and method, simulated and measured side
  by side;
* :func:`plot_phase_tortuosity` - Fig. A2: tortuosity relative errors per phase;
* :func:`plot_training_curves` - training and validation loss per network.

Non-percolating cases (relative error ``inf``) cannot be drawn in a box plot; they are left out
of the boxes and counted in the panel title ("n inf").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ERROR_COLOURS",
    "error_image",
    "plot_boxplots",
    "plot_error_slices",
    "plot_phase_tortuosity",
    "plot_training_curves",
]

#: RGB colours of the error slices (Fig. 5).
ERROR_COLOURS = {
    "correct_solid": (1.0, 1.0, 1.0),
    "correct_pore": (0.0, 0.0, 0.0),
    "wrong_solid": (1.0, 0.0, 1.0),
    "wrong_pore": (0.0, 0.35, 1.0),
}

HEADLINE = [("accuracy", "all", "accuracy"), ("surface_accuracy", "all", "surface accuracy"),
            ("tau_geod_rel_err", "mean", "rel. error geodesic τ"),
            ("tau_eff_rel_err", "mean", "rel. error effective τ")]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> list[Path]:
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
    _plt().close(fig)
    return out


def _save_with_legend(fig: Any, methods: Sequence[str], colours: dict[str, Any],
                      path: Path) -> list[Path]:
    """Add the shared method legend below the panels, then :func:`_save`."""
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=colours[m], label=m) for m in methods],
               loc="lower center", ncol=len(methods), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path)


def error_image(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """RGB float image (..., 3) of a 2-D slice coloured as in Fig. 5."""
    sr = np.asarray(sr) != 0
    hr = np.asarray(hr) != 0
    img = np.zeros((*hr.shape, 3))
    for key, mask in (("correct_solid", sr & hr), ("correct_pore", ~sr & ~hr),
                      ("wrong_solid", sr & ~hr), ("wrong_pore", ~sr & hr)):
        img[mask] = ERROR_COLOURS[key]
    return img


def plot_error_slices(slices: Mapping[int, Mapping[str, np.ndarray]], path: str | Path, *,
                      title: str = "") -> list[Path]:
    """Fig. 5: one row per α, one column per method (and the ground truth).

    Parameters
    ----------
    slices : mapping α -> {"hr": 2-D array, method: 2-D array, ...}
        Middle slices of one HR sub-volume and of each method's result.
    path : path
        Output path without suffix (``.png`` and ``.pdf`` are written).
    """
    plt = _plt()
    alphas = sorted(slices)
    methods = [m for m in slices[alphas[0]] if m != "hr"]
    ncol = len(methods) + 1
    fig, axes = plt.subplots(len(alphas), ncol, figsize=(2.2 * ncol, 2.3 * len(alphas) + 0.4),
                             squeeze=False)
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
    return _save(fig, Path(path))


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
    cmap = _plt().get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_boxplots(df: Any, path: str | Path, *, methods: Sequence[str] | None = None
                  ) -> list[Path]:
    """Fig. 6: box plots of the four headline metrics per α and method, per source.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table (:data:`twinsr.study.evaluate.COLUMNS`).
    path : path
        Output path without suffix.
    """
    plt = _plt()
    sources = [s for s in ("simulated", "measured") if s in set(df["source"])]
    methods = list(methods or [m for m in df["method"].unique() if m != "ground_truth"])
    alphas = sorted(int(a) for a in df["alpha"].unique())
    metrics = [h for h in HEADLINE if ((df["metric"] == h[0]) & (df["phase"] == h[1])).any()]
    colours = _colours(methods)
    fig, axes = plt.subplots(len(metrics), len(sources), squeeze=False,
                             figsize=(4.2 * len(sources), 2.8 * len(metrics)))
    for c, src in enumerate(sources):
        for r, (metric, phase, label) in enumerate(metrics):
            sub = df[(df["source"] == src) & (df["metric"] == metric) & (df["phase"] == phase)]
            n_inf = _box_panel(axes[r, c], sub, alphas, methods, colours)
            extra = f" ({n_inf} inf not shown)" if n_inf else ""
            axes[r, c].set_title(f"{src}: {label}{extra}", fontsize=9)
            axes[r, c].grid(axis="y", alpha=0.3)
    return _save_with_legend(fig, methods, colours, Path(path))


def plot_phase_tortuosity(df: Any, path: str | Path, *, methods: Sequence[str] | None = None
                          ) -> list[Path]:
    """Fig. A2: relative errors of geodesic and effective tortuosity per phase and source."""
    plt = _plt()
    sources = [s for s in ("simulated", "measured") if s in set(df["source"])]
    methods = list(methods or [m for m in df["method"].unique() if m != "ground_truth"])
    alphas = sorted(int(a) for a in df["alpha"].unique())
    colours = _colours(methods)
    rows = [(m, p) for m in ("tau_geod_rel_err", "tau_eff_rel_err") for p in ("pore", "solid")]
    fig, axes = plt.subplots(len(rows), len(sources), squeeze=False,
                             figsize=(4.2 * len(sources), 2.6 * len(rows)))
    for c, src in enumerate(sources):
        for r, (metric, phase) in enumerate(rows):
            sub = df[(df["source"] == src) & (df["metric"] == metric) & (df["phase"] == phase)]
            n_inf = _box_panel(axes[r, c], sub, alphas, methods, colours)
            extra = f" ({n_inf} inf not shown)" if n_inf else ""
            kind = "geodesic" if "geod" in metric else "effective"
            axes[r, c].set_title(f"{src}: {kind} τ, {phase}{extra}", fontsize=9)
            axes[r, c].grid(axis="y", alpha=0.3)
    return _save_with_legend(fig, methods, colours, Path(path))


def plot_training_curves(histories: Mapping[str, Any], path: str | Path) -> list[Path]:
    """Training and validation loss per epoch for every network.

    Parameters
    ----------
    histories : mapping name -> pandas.DataFrame
        Columns ``epoch`` and any of ``train_loss``, ``val_loss`` (other numeric columns are
        ignored).
    """
    plt = _plt()
    names = list(histories)
    fig, axes = plt.subplots(1, max(1, len(names)), squeeze=False,
                             figsize=(3.4 * max(1, len(names)), 2.8))
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
    return _save(fig, Path(path))
