"""``twinsr view``: start napari with volumes and, optionally, an LR / SR / HR comparison.

Examples
--------
>>> napari_available() in (True, False)
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twinsr.exceptions import ConfigError
from twinsr.viewer.layers import LayerData, comparison_layers, read_layers
from twinsr.viewer.plugin import add_layers

__all__ = ["napari_available", "open_viewer", "view"]

PathLike = str | os.PathLike[str]
_INSTALL = 'install it with `pip install "twinsr[viewer]"` (napari with a Qt backend)'


def napari_available() -> bool:
    """Whether napari can be imported."""
    try:
        import napari  # noqa: F401
    except ImportError:
        return False
    return True


def _layers(paths: Sequence[PathLike], lr: PathLike | None, sr: PathLike | None,
            hr: PathLike | None, uncertainty: PathLike | None, diffusion: PathLike | None
            ) -> list[LayerData]:
    layers = read_layers(list(paths)) if paths else []
    if (lr is None) != (sr is None):
        raise ConfigError("a comparison needs both --lr and --sr (and --hr for the error overlay)")
    if lr is None and any(v is not None for v in (hr, uncertainty, diffusion)):
        raise ConfigError("--hr, --uncertainty and --diffusion belong to a comparison: give "
                          "--lr and --sr too, or open the files as plain volumes")
    if lr is not None:
        layers += comparison_layers(lr=lr, sr=sr, hr=hr, uncertainty=uncertainty,
                                    diffusion=diffusion)
    if not layers:
        raise ConfigError("nothing to show: give volume files and/or --lr LR --sr SR [--hr HR]")
    return layers


def open_viewer(paths: Sequence[PathLike] = (), *, lr: PathLike | None = None,
                sr: PathLike | None = None, hr: PathLike | None = None,
                uncertainty: PathLike | None = None, diffusion: PathLike | None = None,
                ndisplay: int = 2, show: bool = True) -> Any:
    """A napari viewer holding the volumes (:func:`~twinsr.viewer.read_layers`) and comparison.

    Every file is read (and every shape checked) before napari starts.

    Parameters
    ----------
    paths : sequence of path
        Volume files (any format of :func:`twinsr.io.read_volume`, or ``builtin:NAME``).
    lr, sr, hr, uncertainty, diffusion : path, optional
        An LR / SR / HR comparison (:func:`~twinsr.viewer.comparison_layers`).
    ndisplay : {2, 3}
        Slices (2) or volume rendering (3).
    show : bool
        Show the window (False: offscreen, e.g. for a screenshot).

    Returns
    -------
    napari.Viewer

    Raises
    ------
    ConfigError
        napari is not installed; nothing to show; an incomplete comparison.
    VolumeError, VolumeFileError
        A file that cannot be read, or shapes that do not fit.
    """
    if ndisplay not in (2, 3):
        raise ConfigError(f"`ndisplay` must be 2 or 3, got {ndisplay!r}")
    layers = _layers(paths, lr, sr, hr, uncertainty, diffusion)
    if not napari_available():
        raise ConfigError(f"the viewer needs napari, which is not installed; {_INSTALL}")
    import napari

    viewer = napari.Viewer(title="twinsr", show=show, ndisplay=ndisplay)
    add_layers(viewer, layers)
    viewer.reset_view()
    return viewer


def view(paths: Sequence[PathLike] = (), *, screenshot: PathLike | None = None,
         size: tuple[int, int] | None = None, **kwargs: Any) -> Path | None:
    """Open napari (:func:`open_viewer`) and run it until closed, or save a screenshot.

    Parameters
    ----------
    paths, **kwargs
        As :func:`open_viewer`.
    screenshot : path, optional
        Save a PNG of the canvas and close the window instead of running napari (needs an
        OpenGL context: a display, or ``xvfb-run`` on a headless machine).
    size : (height, width), optional
        Screenshot size in pixels (default the canvas's).

    Returns
    -------
    Path or None
        The screenshot, if one was asked for.
    """
    if screenshot is None:
        viewer = open_viewer(paths, **kwargs)  # refuses a missing napari with the fix
        import napari

        napari.run()
        del viewer
        return None
    # a shown window: napari renders a hidden canvas black (under Xvfb nothing appears anyway)
    viewer = open_viewer(paths, show=True, **kwargs)
    try:
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        out = Path(screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(out), canvas_only=True, size=size)
        return out
    finally:
        viewer.close()
