"""Look at volumes in napari: reader, writers, an LR / SR / HR comparison, ``twinsr view``.

napari is an optional extra (``pip install "twinsr[viewer]"``); everything here imports without
it, and the layer choices (names, colours, voxel scales) are made by plain functions
(:mod:`twinsr.viewer.layers`) that return napari layer-data tuples. The plugin
(:mod:`twinsr.viewer.plugin`, manifest ``napari.yaml``) registers a reader for every format
:func:`twinsr.io.read_volume` reads, writers for image and labels layers, and the comparison
widget (Plugins → twinsr → LR / SR / HR comparison).

Examples
--------
>>> import numpy as np
>>> lr = np.zeros((4, 4, 4), np.uint8); lr[:2] = 1
>>> sr = lr.repeat(2, 0).repeat(2, 1).repeat(2, 2); hr = sr.copy(); hr[0, 0, 0] = 0
>>> [(kw["name"], kind) for _, kw, kind in comparison_layers(lr=lr, sr=sr, hr=hr)]
[('HR HR', 'image'), ('LR LR', 'image'), ('SR SR', 'image'), ('errors', 'labels')]
"""

from twinsr.viewer.app import napari_available, open_viewer, view
from twinsr.viewer.layers import (
    ERROR_LABELS,
    comparison_layers,
    error_colormap,
    error_labels,
    read_layers,
    scale_factor,
    volume_layers,
)
from twinsr.viewer.plugin import add_layers, get_reader, write_image, write_labels

__all__ = [
    "ERROR_LABELS",
    "add_layers",
    "comparison_layers",
    "error_colormap",
    "error_labels",
    "get_reader",
    "napari_available",
    "open_viewer",
    "read_layers",
    "scale_factor",
    "view",
    "volume_layers",
    "write_image",
    "write_labels",
]
