"""napari layer data for twinsr's volumes, built without importing napari.

Every function returns napari "layer data" tuples ``(data, kwargs, layer_type)`` (the reader
contract of napari's npe2 plugins), so the choices a user sees — layer names, colour maps,
contrast limits, voxel scale and unit — are made and tested here, headless and without napari.

What a volume becomes (:func:`volume_layers`):

==============================================  ===============================================
content                                         layer
==============================================  ===============================================
binary volume (1 = solid)                       image, grey, contrast [0, 1]: solid white
labelled volume (``label_names`` in metadata)   labels, one colour per label
2-channel float (diffusion image, solutions)    two images "NAME pore" / "NAME solid", additive
float volume (probabilities, uncertainty)       image, ``inferno`` (uncertainty) or grey
other integer / float volumes                   image, grey, contrast from the data's range
==============================================  ===============================================

The comparison of a super-resolved volume with its ground truth (:func:`comparison_layers`) is
the paper's Fig. 5 in 3D: wrong solid (predicted solid, truly pore) magenta, wrong pore
(predicted pore, truly solid) blue, correct voxels transparent — the colours of
:data:`twinsr.study.plots.ERROR_COLOURS`.

Scales. A layer's ``scale`` is the voxel size along (z, y, x) from the file's metadata (unit
from the metadata, default µm), or 1 when the file states none. An LR volume is drawn with α
times the HR voxel size and no offset: strided downsampling (``lr[j] = hr[α j]``,
:func:`twinsr.resample.downsample`) puts LR voxel ``j`` exactly on HR voxel ``α j``.

Examples
--------
>>> import numpy as np
>>> im = np.zeros((4, 4, 4), np.uint8); im[:2] = 1
>>> [(kw["name"], kind, kw["scale"]) for _, kw, kind in volume_layers(im, name="twin")]
[('twin', 'image', (1.0, 1.0, 1.0))]
>>> error_labels(np.array([1, 0, 1]), np.array([0, 1, 1])).tolist()
[1, 2, 0]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twinsr.exceptions import VolumeError
from twinsr.io import normalize_voxel_size, read_volume
from twinsr.study.plots import ERROR_COLOURS

__all__ = [
    "ERROR_LABELS",
    "LayerData",
    "comparison_layers",
    "error_colormap",
    "error_labels",
    "read_layers",
    "scale_factor",
    "volume_layers",
]

#: One napari layer: (data, keyword arguments of ``viewer.add_<type>``, layer type).
LayerData = tuple[Any, dict[str, Any], str]

#: Values of the error overlay: 0 correct (transparent), 1 wrong solid, 2 wrong pore.
ERROR_LABELS = {"correct": 0, "wrong_solid": 1, "wrong_pore": 2}

_UNCERTAINTY_WORDS = ("uncertainty", "std", "spread")


def error_colormap() -> dict[Any, tuple[float, float, float, float]]:
    """RGBA colour of each value of :func:`error_labels` (napari ``DirectLabelColormap`` dict).

    >>> error_colormap()[1], error_colormap()[2]
    ((1.0, 0.0, 1.0, 1.0), (0.0, 0.35, 1.0, 1.0))
    """
    clear = (0.0, 0.0, 0.0, 0.0)
    return {None: clear, 0: clear, 1: (*ERROR_COLOURS["wrong_solid"], 1.0),
            2: (*ERROR_COLOURS["wrong_pore"], 1.0)}


def error_labels(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """Voxel-wise errors of a binary prediction: 0 correct, 1 wrong solid, 2 wrong pore.

    Parameters
    ----------
    sr, hr : numpy.ndarray, same shape, binary (nonzero = solid)
        Prediction and ground truth.

    Returns
    -------
    numpy.ndarray of uint8, the shape of ``hr``

    Raises
    ------
    VolumeError
        The shapes differ.
    """
    sr, hr = np.asarray(sr) != 0, np.asarray(hr) != 0
    if sr.shape != hr.shape:
        raise VolumeError(f"`sr` and `hr` must have the same shape to compare them, got {sr.shape} "
                          f"and {hr.shape}")
    out = np.zeros(hr.shape, np.uint8)
    out[sr & ~hr] = ERROR_LABELS["wrong_solid"]
    out[~sr & hr] = ERROR_LABELS["wrong_pore"]
    return out


def _scale(voxel_size: Any) -> tuple[float, float, float]:
    vs = normalize_voxel_size(voxel_size)
    return (1.0, 1.0, 1.0) if vs is None else tuple(float(v) for v in vs)  # type: ignore[return-value]


def _common(name: str, meta: dict[str, Any], scale: Sequence[float] | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {"name": name, "scale": tuple(float(s) for s in scale) if scale is not None
                          else _scale(meta.get("voxel_size"))}
    if meta.get("voxel_size") is not None or scale is not None:
        kw["units"] = (str(meta.get("unit") or "um"),) * 3
    keep = {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool | list | tuple)}
    kw["metadata"] = keep
    return kw


def _is_binary(im: np.ndarray) -> bool:
    if im.dtype == bool:
        return True
    if not (np.issubdtype(im.dtype, np.integer) or np.issubdtype(im.dtype, np.floating)):
        return False
    return bool(np.isin(np.unique(im[: min(len(im), 64)]), (0, 1)).all()) and bool(
        np.isin(np.unique(im), (0, 1)).all())


def _float_layer(im: np.ndarray, kw: dict[str, Any]) -> LayerData:
    lo, hi = (float(np.nanmin(im)), float(np.nanmax(im))) if im.size else (0.0, 1.0)
    content = str(kw["metadata"].get("content", "")).lower()  # superresolve's uncertainty map
    uncertain = any(w in kw["name"].lower() or w in content for w in _UNCERTAINTY_WORDS)
    if uncertain:
        kw.update(colormap="inferno", blending="additive", contrast_limits=(0.0, max(hi, 1e-6)))
    elif 0.0 <= lo and hi <= 1.0:
        kw.update(colormap="gray", contrast_limits=(0.0, 1.0))
    else:
        kw.update(colormap="gray", contrast_limits=(lo, hi if hi > lo else lo + 1))
    return im, kw, "image"


def volume_layers(im: np.ndarray, *, name: str, metadata: dict[str, Any] | None = None,
                  scale: Sequence[float] | None = None) -> list[LayerData]:
    """The napari layer(s) that show one volume (see the table in the module docstring).

    Parameters
    ----------
    im : numpy.ndarray, shape (Z, Y, X) or (C, Z, Y, X)
        The volume; 4-D arrays are channels (``metadata["channels"]`` names them).
    name : str
        Layer name (channels are named ``"NAME CHANNEL"``).
    metadata : dict, optional
        As :func:`twinsr.io.read_volume` returns it (voxel size, unit, label names, ...).
    scale : three floats, optional
        Voxel size to use instead of the metadata's.

    Returns
    -------
    list of LayerData

    Raises
    ------
    VolumeError
        Not 3-D or 4-D.
    """
    meta = dict(metadata or {})
    im = np.asarray(im)
    if im.ndim == 4:
        names = list(meta.get("channels") or [str(c) for c in range(im.shape[0])])
        if len(names) != im.shape[0]:
            names = [str(c) for c in range(im.shape[0])]
        cmaps = ["cyan", "yellow"] if im.shape[0] == 2 else ["gray"] * im.shape[0]
        out = []
        for c in range(im.shape[0]):
            kw = _common(f"{name} {names[c]}", meta, scale)
            kw.update(colormap=cmaps[c], blending="additive", contrast_limits=(0.0, 1.0)
                      if 0 <= float(im[c].min()) and float(im[c].max()) <= 1 else None)
            if kw["contrast_limits"] is None:
                kw.pop("contrast_limits")
            out.append((im[c], kw, "image"))
        return out
    if im.ndim != 3:
        raise VolumeError(f"a volume to view must be 3-D (Z, Y, X) or 4-D (C, Z, Y, X), got "
                          f"shape {im.shape}")
    kw = _common(name, meta, scale)
    if meta.get("label_names") and np.issubdtype(im.dtype, np.integer):
        kw["features"] = {"label": list(range(len(meta["label_names"]))),
                          "name": list(meta["label_names"])}
        return [(im, kw, "labels")]
    if np.issubdtype(im.dtype, np.floating) and not _is_binary(im):
        return [_float_layer(im, kw)]
    if _is_binary(im):
        kw.update(colormap="gray", contrast_limits=(0.0, 1.0))
        return [(im.astype(np.uint8, copy=False), kw, "image")]
    lo, hi = (int(im.min()), int(im.max())) if im.size else (0, 1)
    kw.update(colormap="gray", contrast_limits=(float(lo), float(hi if hi > lo else lo + 1)))
    return [(im, kw, "image")]


def _load(src: Any, what: str) -> tuple[np.ndarray, dict[str, Any], str]:
    """(array, metadata, name) of a path / builtin name / array."""
    if isinstance(src, str | os.PathLike):
        arr, meta = read_volume(src, return_metadata=True)
        return arr, meta, Path(str(src)).name.split(":")[-1]
    return np.asarray(src), {}, what


def read_layers(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
                ) -> list[LayerData]:
    """Read volume files with :func:`twinsr.io.read_volume` into napari layer data.

    Raises
    ------
    TwinsrError
        A file that cannot be read (its own message).
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[LayerData] = []
    for p in paths:
        arr, meta, name = _load(p, "volume")
        out += volume_layers(arr, name=name, metadata=meta)
    return out


def scale_factor(lr_shape: Sequence[int], hr_shape: Sequence[int]) -> tuple[int, int, int]:
    """Per-axis α between an LR and an SR/HR shape (``hr = α · lr``, HR possibly uncropped).

    >>> scale_factor((10, 10, 5), (20, 21, 40))
    (2, 2, 8)

    Raises
    ------
    VolumeError
        A ratio that is not an integer in {1, 2, 4, 8} (after cropping to a multiple).
    """
    alpha = tuple(int(h) // int(n) if n else 0 for n, h in zip(lr_shape, hr_shape, strict=True))
    if len(alpha) != 3 or any(a not in (1, 2, 4, 8) or h - a * n >= a for a, n, h in
                              zip(alpha, lr_shape, hr_shape, strict=True)):
        raise VolumeError(f"the shapes {tuple(lr_shape)} (LR) and {tuple(hr_shape)} (SR/HR) are "
                          "not related by a scale factor in {1, 2, 4, 8} per axis; give the LR "
                          "volume the SR volume was computed from")
    return alpha  # type: ignore[return-value]


def comparison_layers(*, lr: Any, sr: Any, hr: Any = None, uncertainty: Any = None,
                      diffusion: Any = None, voxel_size: Sequence[float] | None = None
                      ) -> list[LayerData]:
    """Layers comparing an SR volume with its LR input and HR ground truth (Fig. 5 in 3D).

    Parameters
    ----------
    lr, sr : path or numpy.ndarray, shape (z, y, x) and (αz, αy, αx)
        The binary LR input and the super-resolved volume (probabilities are thresholded at
        0.5 for the error overlay).
    hr : path or numpy.ndarray, optional
        Ground truth on the SR grid (cropped to the SR shape when up to α − 1 voxels larger).
    uncertainty : path or numpy.ndarray, optional
        Per-voxel uncertainty on the SR grid (``twinsr superresolve --tta 8 --uncertainty-out``).
    diffusion : path or numpy.ndarray, optional
        Diffusion channels (2, z, y, x) on the LR grid (``twinsr diffusion``).
    voxel_size : three floats, optional
        HR voxel size; default from the SR file, else the HR file, else the LR file / α, else 1.

    Returns
    -------
    list of LayerData
        Bottom to top: HR, LR, SR, diffusion channels, uncertainty, and the error overlay
        ``"errors"`` (labels: wrong solid magenta, wrong pore blue) when ``hr`` is given.

    Raises
    ------
    VolumeError
        Shapes that do not fit (LR vs SR not related by α; HR vs SR; diffusion vs LR;
        uncertainty vs SR).
    """
    lr_a, lr_m, lr_n = _load(lr, "LR")
    sr_a, sr_m, sr_n = _load(sr, "SR")
    alpha = scale_factor(lr_a.shape, sr_a.shape)
    if tuple(a * n for a, n in zip(alpha, lr_a.shape, strict=True)) != sr_a.shape:
        raise VolumeError(f"the SR shape {sr_a.shape} must be exactly alpha {alpha} x the LR shape "
                          f"{lr_a.shape}")
    hr_a, hr_m, hr_n = _load(hr, "HR") if hr is not None else (None, {}, "HR")
    vs = normalize_voxel_size(voxel_size) or normalize_voxel_size(
        sr_m.get("voxel_size")) or normalize_voxel_size(hr_m.get("voxel_size"))
    if vs is None and lr_m.get("voxel_size") is not None:
        vs = tuple(float(v) / a for v, a in zip(lr_m["voxel_size"], alpha, strict=True))
    hr_scale = _scale(vs)
    lr_scale = tuple(s * a for s, a in zip(hr_scale, alpha, strict=True))
    unit = sr_m.get("unit") or hr_m.get("unit") or lr_m.get("unit") or "um"
    meta = {"voxel_size": vs, "unit": unit}
    out: list[LayerData] = []
    if hr_a is not None:
        hr_a = _crop_to(hr_a, sr_a.shape, alpha, "HR")
        out += _visible(volume_layers(hr_a, name=f"HR {hr_n}", metadata={**hr_m, **meta},
                                      scale=hr_scale), False)
    out += _visible(volume_layers(lr_a, name=f"LR {lr_n}", metadata={**lr_m, **meta},
                                  scale=lr_scale), False)
    out += volume_layers(sr_a, name=f"SR {sr_n}", metadata={**sr_m, **meta}, scale=hr_scale)
    if diffusion is not None:
        d_a, d_m, _ = _load(diffusion, "diffusion")
        if d_a.ndim != 4 or d_a.shape[1:] != lr_a.shape:
            raise VolumeError(f"the diffusion channels must be (C, {', '.join(map(str, lr_a.shape))}) "
                              f"on the LR grid, got {d_a.shape}")
        out += _visible(volume_layers(d_a, name="diffusion", metadata={**d_m, **meta},
                                      scale=lr_scale), False)
    if uncertainty is not None:
        u_a, u_m, _ = _load(uncertainty, "uncertainty")
        if u_a.shape != sr_a.shape:
            raise VolumeError(f"the uncertainty map must have the SR shape {sr_a.shape}, got "
                              f"{u_a.shape}")
        out += _visible([_float_layer(np.asarray(u_a, np.float32), _common(
            "uncertainty", {**u_m, **meta}, hr_scale))], False)
    if hr_a is not None:
        sr_bin = sr_a >= 0.5 if np.issubdtype(sr_a.dtype, np.floating) else sr_a
        kw = _common("errors", meta, hr_scale)
        kw.update(colormap=error_colormap(), opacity=1.0, blending="translucent")
        out.append((error_labels(sr_bin, hr_a), kw, "labels"))
    return out


def _visible(layers: list[LayerData], visible: bool) -> list[LayerData]:
    for _, kw, _ in layers:
        kw["visible"] = visible
    return layers


def _crop_to(hr: np.ndarray, shape: tuple[int, ...], alpha: Sequence[int], what: str) -> np.ndarray:
    if hr.ndim != 3 or any(h < s or h - s >= a for h, s, a in zip(hr.shape, shape, alpha,
                                                                     strict=True)):
        raise VolumeError(f"the {what} volume {hr.shape} does not match the SR volume {shape} "
                          f"(it may exceed it by at most alpha - 1 = "
                          f"{tuple(a - 1 for a in alpha)} voxels per axis)")
    return hr[: shape[0], : shape[1], : shape[2]]
