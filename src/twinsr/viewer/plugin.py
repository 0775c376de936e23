"""The napari plugin (npe2): reader, writers and the LR / SR / HR comparison widget.

The manifest is ``twinsr/viewer/napari.yaml``, found by napari through the ``napari.manifest``
entry point. napari is imported only inside the widget, so this module imports without it.

* :func:`get_reader` — napari's reader contract: a reader function for a path twinsr reads
  (:data:`twinsr.io.SUPPORTED_SUFFIXES`), ``None`` for anything else.
* :func:`write_image`, :func:`write_labels` — napari's single-layer writer contract: write the
  layer's data with :func:`twinsr.io.write_volume` (voxel size from the layer's scale, label
  names kept) and return the written paths.
* :class:`ComparisonWidget` — pick LR, SR, HR (and optionally an uncertainty map and diffusion
  channels) and add :func:`twinsr.viewer.comparison_layers` to the viewer.

Examples
--------
>>> get_reader("scan.tif") is not None, get_reader("notes.txt")
(True, None)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twinsr.io import SUPPORTED_SUFFIXES
from twinsr.viewer.layers import LayerData, comparison_layers, read_layers

__all__ = ["ComparisonWidget", "add_layers", "get_reader", "readable", "write_image", "write_labels"]


def readable(path: str | os.PathLike[str]) -> bool:
    """Whether twinsr reads this path (by its suffix; ``builtin:NAME`` too).

    >>> readable("a.ome.zarr"), readable("b.HDF5"), readable("c.png")
    (True, True, False)
    """
    p = str(path).rstrip("/\\")
    if p.startswith("builtin:"):
        return True
    return Path(p).suffix.lower() in SUPPORTED_SUFFIXES


def get_reader(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
               ) -> Callable[[Any], list[LayerData]] | None:
    """napari reader hook: :func:`twinsr.viewer.read_layers` when every path is readable.

    Returns
    -------
    callable or None
        None for a path of another format, so that napari asks its other readers.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(readable(p) for p in paths):
        return None
    return read_layers


def _write(path: str, data: Any, meta: dict[str, Any], labels: bool) -> list[str]:
    from twinsr.io import write_volume

    arr = np.asarray(data)
    scale = meta.get("scale")
    vs = tuple(float(s) for s in scale[-3:]) if scale is not None and len(scale) >= 3 else None
    if vs == (1.0, 1.0, 1.0) and not (meta.get("metadata") or {}).get("voxel_size"):
        vs = None  # napari's default scale: the file states no voxel size
    layer_meta = dict(meta.get("metadata") or {})
    names = layer_meta.pop("label_names", None) if labels else None
    keep = {k: v for k, v in layer_meta.items() if k not in ("voxel_size", "unit", "shape",
                                                            "dtype", "crc32")}
    units = meta.get("units")
    unit = str(units[-1]) if units else None
    unit = {"micrometer": "um", "pixel": None}.get(unit, unit) if unit else None
    kwargs: dict[str, Any] = {"voxel_size": vs, "metadata": {**keep, "napari_layer": meta.get(
        "name", "")}}
    if unit is not None and vs is not None:
        kwargs["unit"] = unit
    if names:
        kwargs["label_names"] = list(names)
    if labels:
        arr = arr.astype(np.uint8) if arr.size and 0 <= arr.min() and arr.max() <= 255 else arr
    return [str(write_volume(path, arr, **kwargs))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari writer hook for an image layer; returns the written path."""
    return _write(path, data, meta, labels=False)


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari writer hook for a labels layer (uint8 labels, names kept); the written path."""
    return _write(path, data, meta, labels=True)


def ComparisonWidget(viewer: Any) -> Any:
    """The comparison widget: file pickers for LR, SR, HR, uncertainty, diffusion; "Show".

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
        Where the layers go (napari passes the current viewer).

    Returns
    -------
    magicgui.widgets.Container
        Its ``show_comparison()`` method adds the layers (also bound to the "Show" button).
    """
    from magicgui.widgets import Container, FileEdit, PushButton

    fields = {k: FileEdit(label=k, mode="r", filter="*") for k in
              ("lr", "sr", "hr", "uncertainty", "diffusion")}
    button = PushButton(text="Show")
    box = Container(widgets=[*fields.values(), button])

    def value(k: str) -> str | None:
        v = fields[k].value
        return None if v is None or str(v) in ("", ".") else str(v)

    def show() -> list[Any]:
        return add_layers(viewer, comparison_layers(
            lr=value("lr"), sr=value("sr"), hr=value("hr"), uncertainty=value("uncertainty"),
            diffusion=value("diffusion")))

    button.changed.connect(show)
    box.fields = fields  # type: ignore[attr-defined]
    box.show_comparison = show  # type: ignore[attr-defined]
    return box


def add_layers(viewer: Any, layers: list[LayerData]) -> list[Any]:
    """Add layer data tuples to a napari viewer (or ViewerModel); the new layers."""
    added = []
    for data, kwargs, kind in layers:
        added.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return added
