"""Measured volumes shipped with twinsr, so examples and the demo run on a fresh install.

Each volume is a segmented two-phase tomogram stored as a compressed ``.npz`` (key ``image``,
uint8, 1 = solid, 0 = pore) with a JSON file giving its provenance (source repository, commit,
path, blob hash), licence, material, modality, voxel size where known and segmentation.
Cite the sources when publishing results on them (see :func:`provenance`).

========================  ===============================  ===================  ========
name                      material                         modality             shape
========================  ===============================  ===================  ========
``nmc_nrel_xct``          NMC battery cathode (calendered)  X-ray CT, segmented  251×301×301
``nmc_superres_xct``      NMC battery cathode (low res.)    X-ray CT, segmented  128³
``berea_sandstone``       Berea sandstone                   micro-CT, segmented  400³
``ketton_limestone``      Ketton limestone                  micro-CT, segmented  256³
``fiberform_puma``        FiberForm carbon-fibre preform    micro-CT (Otsu)      100³
========================  ===============================  ===================  ========

None is the FIB-SEM NMC111 data of the paper (not public); they stand in for "measured data".

Examples
--------
>>> from twinsr import datasets
>>> datasets.names()[:2]
['berea_sandstone', 'fiberform_puma']
>>> im = datasets.load("nmc_superres_xct")
>>> im.shape, im.dtype.name
((128, 128, 128), 'uint8')
"""

from __future__ import annotations

import json
import re
import zipfile
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from twinsr.exceptions import DatasetError

__all__ = ["load", "metadata", "names", "provenance"]

_PKG = "twinsr.datasets"


def _data_dir() -> Any:
    return resources.files(_PKG).joinpath("data")


def names() -> list[str]:
    """Names of the shipped volumes, sorted."""
    return sorted(p.name[:-4] for p in _data_dir().iterdir() if p.name.endswith(".npz"))


def _check_name(name: str) -> str:
    available = names()
    if name not in available:
        raise DatasetError(f"unknown built-in dataset {name!r}; available: {', '.join(available)}")
    return name


_REINSTALL = "reinstall twinsr (pip install --force-reinstall twinsr) to restore it"


@lru_cache(maxsize=8)
def _load_cached(name: str, key: str) -> np.ndarray:
    with resources.as_file(_data_dir().joinpath(f"{name}.npz")) as path:
        try:
            with np.load(path, allow_pickle=False) as z:
                files = list(z.files)
                arr = z[key] if key in files else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"the shipped dataset file {path} is damaged ({type(exc).__name__}: "
                               f"{exc}); {_REINSTALL}") from exc
    if arr is None:
        raise DatasetError(f"dataset {name!r} has no array {key!r}; it holds {files}")
    arr.setflags(write=False)
    return arr


def load(name: str, *, key: str = "image") -> np.ndarray:
    """Load a shipped volume.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    key : str
        ``"image"`` (binary, 1 = solid) or an extra array the dataset carries (``labels`` for
        ``nmc_nrel_xct``, ``gray`` for ``fiberform_puma``).

    Returns
    -------
    numpy.ndarray of uint8, shape (Z, Y, X)
        A fresh, writable copy.

    Raises
    ------
    DatasetError
        Unknown name or key, or a damaged data file (reinstall twinsr).
    """
    return _load_cached(_check_name(name), key).copy()


def provenance(name: str) -> dict[str, Any]:
    """The provenance record (source, licence, material, modality, segmentation) of a volume."""
    _check_name(name)
    res = _data_dir().joinpath(f"{name}.json")
    try:
        return json.loads(res.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"the provenance file of dataset {name!r} ({res}) is missing or damaged "
                           f"({exc}); {_REINSTALL}") from exc


def metadata(name: str, *, key: str = "image") -> dict[str, Any]:
    """Metadata in the form :func:`twinsr.io.read_metadata` returns (voxel size parsed if stated).

    For a labelled array (``key="labels"`` of ``nmc_nrel_xct``) the names of its labels come
    under ``label_names`` (``names[k]`` names label ``k``).

    Examples
    --------
    >>> metadata("nmc_nrel_xct", key="labels")["label_names"]
    ('pore', 'NMC', 'binder')
    """
    prov = provenance(name)
    vs_text = str(prov.get("voxel_size", ""))
    voxel_size = None
    match = re.match(r"\s*([0-9.]+)e-6\s*m", vs_text)
    if match:
        v = float(match.group(1))
        voxel_size = (v, v, v)
    out = {
        "voxel_size": voxel_size,
        "unit": "um" if voxel_size else None,
        "voxel_size_note": vs_text,
        "material": prov.get("material"),
        "license": prov.get("license"),
        "source": prov.get("source_repo"),
    }
    names = (prov.get("label_names") or {}).get(key)
    if names is not None:
        out["label_names"] = tuple(names)
    return out
