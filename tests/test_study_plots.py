"""Tests for twinsr.study.plots: the Fig. 5 colours, figure content, and matplotlib state."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from twinsr.exceptions import VolumeError
from twinsr.study import plots

WHITE, BLACK, MAGENTA, BLUE = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 1.0), (0.0, 0.35, 1.0)


def test_error_image_colours_by_hand():
    # sr/hr per voxel: (1,1) correct solid, (1,0) wrong solid, (0,1) wrong pore, (0,0) correct
    sr = np.array([[1, 1], [0, 0]], np.uint8)
    hr = np.array([[1, 0], [1, 0]], np.uint8)
    img = plots.error_image(sr, hr)
    assert img.shape == (2, 2, 3) and img.dtype == np.float64
    assert tuple(img[0, 0]) == WHITE
    assert tuple(img[0, 1]) == MAGENTA  # predicted solid, truly pore
    assert tuple(img[1, 0]) == BLUE  # predicted pore, truly solid
    assert tuple(img[1, 1]) == BLACK
    # any nonzero value is solid; bool input works; a 1-voxel slice too
    np.testing.assert_array_equal(plots.error_image(sr * 255, hr.astype(bool)), img)
    assert plots.error_image([[0]], [[1]]).tolist() == [[list(BLUE)]]
    # the documented table matches the drawn colours
    assert plots.ERROR_COLOURS == {"correct_solid": WHITE, "correct_pore": BLACK,
                                   "wrong_solid": MAGENTA, "wrong_pore": BLUE}


def test_error_image_shape_mismatch():
    with pytest.raises(VolumeError, match=r"same shape.*\(2, 2\).*\(2, 3\)"):
        plots.error_image(np.zeros((2, 2)), np.zeros((2, 3)))


def _table() -> pd.DataFrame:
    """Two sources, α = 2 and 4, three methods, 3 sub-volumes; one inf geodesic error."""
    rows = []
    metrics = [("accuracy", "all"), ("surface_accuracy", "all")]
    metrics += [(f"tau_{k}_rel_err", p) for k in ("geod", "eff") for p in ("pore", "solid", "mean")]
    for src in ("simulated", "measured"):
        for a in (2, 4):
            for m in ("N_bin", "triquadratic", "nearest"):
                for s in range(3):
                    for metric, phase in metrics:
                        rows.append({"source": src, "sample": "x", "subvolume": s, "alpha": a,
                                     "method": m, "phase": phase, "metric": metric,
                                     "value": 0.9 - 0.01 * s})
            rows.append({"source": src, "sample": "x", "subvolume": 0, "alpha": a,
                         "method": "ground_truth", "phase": "pore", "metric": "tau_geod",
                         "value": 1.3})
    df = pd.DataFrame(rows)
    hit = (df.source == "measured") & (df.alpha == 4) & (df.method == "N_bin") & \
        (df.metric == "tau_geod_rel_err") & (df.phase == "mean") & (df.subvolume == 1)
    df.loc[hit, "value"] = math.inf
    return df


def _boxes(ax) -> int:
    from matplotlib.patches import PathPatch

    return sum(isinstance(p, PathPatch) for p in ax.patches)


def test_boxplots_figure_content():
    fig = plots.boxplots_figure(_table())
    axes = fig.axes
    assert len(axes) == 4 * 2  # four headline metrics x two sources
    titles = [ax.get_title() for ax in axes]
    assert titles[:2] == ["simulated: accuracy", "measured: accuracy"]
    assert "measured: rel. error geodesic τ (1 inf not shown)" in titles
    assert "simulated: rel. error geodesic τ" in titles
    # a box per (α, method), the ground truth left out
    assert all(_boxes(ax) == 2 * 3 for ax in axes)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["α=2", "α=4"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["N_bin", "triquadratic",
                                                                 "nearest"]
    # an explicit method list sets the boxes and their order
    fig = plots.boxplots_figure(_table(), methods=["nearest"])
    assert all(_boxes(ax) == 2 for ax in fig.axes)
    # only the metrics present get a row
    acc_only = _table().query("metric == 'accuracy'")
    assert len(plots.boxplots_figure(acc_only).axes) == 2


def test_phase_tortuosity_figure_content():
    fig = plots.phase_tortuosity_figure(_table().query("source == 'simulated'"))
    assert [ax.get_title() for ax in fig.axes] == [
        "simulated: geodesic τ, pore", "simulated: geodesic τ, solid",
        "simulated: effective τ, pore", "simulated: effective τ, solid"]
    assert all(_boxes(ax) == 6 for ax in fig.axes)


def test_error_slices_figure_content():
    hr = np.zeros((4, 4), np.uint8)
    hr[:2] = 1
    sr = hr.copy()
    sr[0, 0] = 0
    fig = plots.error_slices_figure({2: {"hr": hr, "N_bin": sr, "nearest": hr},
                                     4: {"hr": hr, "N_bin": hr, "nearest": sr}}, title="t")
    assert len(fig.axes) == 2 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["HR (α=2)", "N_bin, α=2\nslice acc. 0.938", "nearest, α=2\nslice acc. 1.000",
                      "HR (α=4)", "N_bin, α=4\nslice acc. 1.000", "nearest, α=4\nslice acc. 0.938"]
    drawn = fig.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(drawn, plots.error_image(sr, hr))
    assert tuple(drawn[0, 0]) == BLUE
    assert fig.texts[0].get_text().startswith("t\nwhite/black")


def test_training_curves_figure_content():
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4],
                      "val_loss": [0.8, 0.6, 0.5]})
    fig = plots.training_curves_figure({"N_bin_a2": h, "N_bin_a4": h[["epoch", "train_loss"]]})
    assert [ax.get_title() for ax in fig.axes] == ["N_bin_a2", "N_bin_a4"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[1].get_ydata(), [0.8, 0.6, 0.5])
    assert fig.axes[0].get_xlabel() == "epoch" and fig.axes[0].get_ylabel() == "loss"


def test_plot_writes_png_and_pdf(tmp_path):
    paths = plots.plot_boxplots(_table(), tmp_path / "sub" / "box")
    assert [p.name for p in paths] == ["box.png", "box.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    # written atomically: nothing else (no temporary) is left in the folder
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["box.pdf", "box.png"]


def test_plotting_leaves_matplotlib_state_alone(tmp_path):
    """Importing and plotting neither switches the backend nor imports pyplot (a notebook's
    backend stays the user's)."""
    import matplotlib

    before = matplotlib.get_backend()
    plots.plot_training_curves({"n": pd.DataFrame({"epoch": [1], "train_loss": [1.0]})},
                               tmp_path / "curves")
    assert matplotlib.get_backend() == before
    script = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        import numpy as np
        import pandas as pd
        from twinsr.study import plots
        hr = np.zeros((4, 4), np.uint8); hr[:2] = 1
        plots.plot_error_slices({{2: {{"hr": hr, "m": hr}}}}, {str(tmp_path / "e")!r})
        plots.plot_training_curves({{"n": pd.DataFrame({{"epoch": [1], "train_loss": [1.0]}})}},
                                   {str(tmp_path / "c")!r})
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["svg", "False"]
    assert (tmp_path / "e.png").exists() and (tmp_path / "c.pdf").exists()


def test_paired_differences_figure_content():
    from twinsr.study.plots import paired_differences_figure
    from twinsr.study.stats import paired_comparisons, paired_differences

    rng = np.random.default_rng(0)
    rows = []
    for src in ("simulated", "measured"):
        for a in (2, 4):
            for i in range(8):
                base = rng.uniform(0.8, 0.9)
                for m, v in (("N_bin", base + 0.02), ("triquadratic", base),
                             ("nearest", base - 0.01)):
                    rows.append({"source": src, "sample": "s", "subvolume": i, "alpha": a,
                                 "method": m, "phase": "all", "metric": "accuracy", "value": v})
                rows.append({"source": src, "sample": "s", "subvolume": i, "alpha": a,
                             "method": "N_bin", "phase": "mean", "metric": "tau_eff_rel_err",
                             "value": np.inf if i == 0 else 0.01})
                for m in ("triquadratic", "nearest"):
                    rows.append({"source": src, "sample": "s", "subvolume": i, "alpha": a,
                                 "method": m, "phase": "mean", "metric": "tau_eff_rel_err",
                                 "value": 0.05})
    df = pd.DataFrame(rows)
    kw = {"methods": ["N_bin"], "baselines": ["triquadratic", "nearest"]}
    fig = paired_differences_figure(paired_differences(df, **kw), paired_comparisons(df, **kw))
    axes = fig.get_axes()
    assert len(axes) == 4  # 2 metrics x 2 sources
    titles = [ax.get_title() for ax in axes]
    assert any("improvement in accuracy" in t for t in titles)
    assert any("inf not shown" in t for t in titles)  # the non-percolating sub-volume
    # accuracy: every dot above 0 (improvement); 4 entries (2 α x 2 baselines) x 8 dots
    acc = next(ax for ax in axes if "accuracy" in ax.get_title())
    dots = np.concatenate([ln.get_ydata() for ln in acc.get_lines() if ln.get_marker() == "o"])
    assert dots.size == 32 and (dots > 0).all()
