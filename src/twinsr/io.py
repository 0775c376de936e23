"""Reading and writing volumes: TIFF stacks, NumPy, raw + JSON sidecar, Zarr and HDF5.

The format is chosen by the file suffix:

========================  ==================================================================
suffix                    notes
========================  ==================================================================
``.tif`` / ``.tiff``      multi-page stacks and single multi-dimensional pages (tifffile).
                          3-D uint8/uint16/float32 volumes are written as ImageJ hyperstacks
                          (voxel size as ImageJ ``spacing`` + resolution, readable by Fiji);
                          other shapes/dtypes as tifffile "shaped" pages with JSON metadata.
``.npy``                  plain array; voxel size and metadata in a ``<name>.npy.json`` sidecar.
``.npz``                  compressed; array under ``key`` (default ``"image"``), metadata as
                          a JSON string under ``"twinsr_metadata"``.
``.raw``                  raw bytes + ``<stem>.json`` sidecar: ``shape``, ``dtype``,
                          ``byte_order`` (``"little"``/``"big"``), ``voxel_size``.
``.zarr``                 Zarr store (directory); array at the root or under ``key`` in a
                          group; metadata in the array attributes. Zarr 3 (format v3) on
                          Python >= 3.11, Zarr 2 (format v2) on Python 3.10: see
                          :func:`create_zarr_array`.
``.h5`` / ``.hdf5``       HDF5; dataset ``key`` (default ``"image"``); metadata as attributes.
``builtin:NAME``          (read only) a volume shipped with twinsr, see :mod:`twinsr.datasets`.
========================  ==================================================================

Voxel size is a length per voxel along (z, y, x) with a unit (default micrometre); it travels
as metadata and never changes computations, which run in voxel units. All writes are atomic.

Labelled volumes (uint8 labels 0..K-1, e.g. pore / active material / binder) carry the names of
their labels under the metadata key ``label_names`` (``names[k]`` names label ``k``), written by
``write_volume(..., label_names=[...])`` and read back as a tuple in every format.

Damaged files: every reader raises :class:`~twinsr.exceptions.VolumeFileError` naming the file for
a truncated, zero-byte or garbled file, including a TIFF whose page offsets are invalid (tifffile
would return an empty array) and metadata that is not valid JSON. Every volume written here also
records its shape and dtype in its metadata; a file whose header was damaged so that it decodes to
another shape or dtype is refused, and so is one whose voxels no longer match the CRC-32 recorded
with them (:func:`voxel_crc32`): a flipped bit in uncompressed voxel data, or an HDF5 chunk index
pointing at other bytes, is an error too. Files written by other software (or by twinsr before the
CRC was recorded) carry no such record; in their uncompressed voxel data a flipped bit cannot be
seen.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._atomic import atomic_path
from twinsr._validation import as_label_volume, check_label_names, check_memory
from twinsr.exceptions import MemoryBudgetError, TwinsrError, VolumeError, VolumeFileError

__all__ = [
    "NGFF_UNITS",
    "SUPPORTED_SUFFIXES",
    "VolumeInfo",
    "create_zarr_array",
    "ngff_attrs",
    "ngff_multiscale",
    "ngff_unit",
    "normalize_voxel_size",
    "open_zarr_array",
    "pick_array_key",
    "read_metadata",
    "read_volume",
    "volume_info",
    "voxel_crc32",
    "write_volume",
]

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".tif", ".tiff", ".npy", ".npz", ".raw", ".zarr", ".h5", ".hdf5")
_META_KEY = "twinsr_metadata"
_ARRAY_KEY = "twinsr_array"  # {"shape", "dtype", "crc32"}: written with every volume
_DEFLATE = (8, 32946)  # TIFF compression codes of zlib / deflate
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand a byte of input into more than ~1032 bytes
PathLike = str | os.PathLike[str]


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise VolumeFileError(
            f"unsupported volume format {suffix or '(no suffix)'!r} for {path}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def normalize_voxel_size(voxel_size: object) -> tuple[float, float, float] | None:
    """A voxel size as a (z, y, x) tuple of positive floats (a number means cubic voxels), or None.

    Raises
    ------
    VolumeError
        Not a number or three numbers, or not positive and finite.

    Examples
    --------
    >>> normalize_voxel_size(0.5), normalize_voxel_size([1, 2, 2]), normalize_voxel_size(None)
    ((0.5, 0.5, 0.5), (1.0, 2.0, 2.0), None)
    """
    if voxel_size is None:
        return None
    if isinstance(voxel_size, (int, float, np.integer, np.floating)):
        vals = (float(voxel_size),) * 3
    else:
        try:
            vals = tuple(float(v) for v in voxel_size)  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise VolumeError(f"`voxel_size` must be a number or 3 numbers, got {voxel_size!r}") from exc
        if len(vals) != 3:
            raise VolumeError(f"`voxel_size` must be a number or 3 numbers (z, y, x), got {vals}")
    if not all(np.isfinite(v) and v > 0 for v in vals):
        raise VolumeError(f"`voxel_size` must be positive and finite, got {vals}")
    return vals  # type: ignore[return-value]


def _sidecar(path: Path) -> Path:
    """Sidecar JSON: ``name.json`` for ``.raw`` (the usual convention), ``name.npy.json`` for
    ``.npy`` (so that ``a.raw`` and ``a.npy`` in one folder do not share a sidecar)."""
    return path.with_suffix(".json") if path.suffix.lower() == ".raw" else \
        path.with_name(path.name + ".json")


def _builtin_name(path: PathLike) -> str | None:
    s = os.fspath(path)
    return s.split(":", 1)[1] if s.startswith("builtin:") else None


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def read_volume(path: PathLike, *, key: str | None = None,
                return_metadata: bool = False) -> Any:
    """Read a volume (any supported format) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        File (or ``.zarr`` directory), or ``builtin:NAME`` for a shipped volume.
    key : str, optional
        Array name inside ``.npz`` / ``.h5`` / ``.zarr`` groups (default ``"image"``, or the
        only array present).
    return_metadata : bool
        Also return the metadata dict of :func:`read_metadata`, from the same read.

    Returns
    -------
    numpy.ndarray, or (numpy.ndarray, dict) with ``return_metadata=True``
        The stored array, dtype and shape as stored (a TIFF stack is (Z, Y, X)).

    Raises
    ------
    VolumeFileError
        Missing, unreadable, truncated or damaged file (naming it), unknown format, missing key,
        a ``.raw`` whose size disagrees with its sidecar, metadata (sidecar or embedded) that is
        not valid JSON, a header that decodes to another shape or dtype than was written.
    MemoryBudgetError
        The array would not fit in memory (checked before reading where the header tells).

    Examples
    --------
    >>> im = read_volume("builtin:nmc_superres_xct")
    >>> im.shape
    (128, 128, 128)
    """
    arr, meta = _read(path, key, load=True)
    return (arr, meta) if return_metadata else arr


def read_metadata(path: PathLike, *, key: str | None = None) -> dict[str, Any]:
    """Read a volume's metadata without reading its voxels.

    Returns
    -------
    dict
        ``voxel_size`` ((z, y, x) floats or None), ``unit`` and whatever ``metadata`` was
        written with :func:`write_volume` (e.g. model parameters, seed, twinsr version).

    Raises
    ------
    VolumeFileError
        As :func:`read_volume` for what can be seen without the voxels (a file cut inside its
        header or index, metadata that is not valid JSON naming the sidecar or file).

    Examples
    --------
    >>> read_metadata("builtin:fiberform_puma")["voxel_size"]
    (1.3, 1.3, 1.3)
    """
    return _read(path, key, load=False)[1]


def _read(path: PathLike, key: str | None, *, load: bool) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Dispatch to the format's reader; wrap foreign errors in :class:`VolumeFileError`."""
    name = _builtin_name(path)
    if name is not None:
        from twinsr import datasets

        return ((datasets.load(name, key=key or "image") if load else None),
                datasets.metadata(name, key=key or "image"))
    p = Path(path)
    suffix = _suffix(p)
    if not p.exists():
        raise VolumeFileError(f"no such file: {p}")
    try:
        arr, meta = _READERS[suffix](p, key, load)
    except TwinsrError:
        raise
    except MemoryError as exc:
        raise MemoryBudgetError(f"reading {p} needs more memory than is available ({exc}); if "
                                "the file is much smaller than that, its header is damaged") from exc
    except Exception as exc:
        raise VolumeFileError(
            f"cannot read {p} as {suffix} ({type(exc).__name__}: {exc}); "
            "the file may be truncated or not a valid volume"
        ) from exc
    declared = meta.pop(_ARRAY_KEY, None)
    if arr is not None and declared is not None:
        arr = _check_declared(arr, declared, p)
    return arr, meta


def _check_declared(arr: np.ndarray, declared: Any, p: Path) -> np.ndarray:
    """The array as its metadata says it was written (shape, dtype and the CRC-32 of its
    voxels, where recorded), or VolumeFileError."""
    shape = _check_header(arr.shape, arr.dtype, declared, p)
    arr = arr.reshape(shape)  # formats that drop axes of length 1 (ImageJ TIFF) get them back
    want = declared.get("crc32")
    if want is not None and voxel_crc32(arr) != want:
        raise VolumeFileError(
            f"cannot read {p}: the file is damaged (its voxels do not match the CRC-32 recorded "
            "when it was written); restore it from its source")
    return arr


def voxel_crc32(arr: np.ndarray) -> int:
    """CRC-32 of an array's voxels in C order, little-endian (independent of its memory layout).

    Recorded by :func:`write_volume` with every volume and checked by :func:`read_volume`, so
    that a flipped bit in uncompressed voxel data (which no format here checks) is an error.
    About 1.3 GB/s (0.4 s for an 800³ uint8 volume on a 2-core machine), in blocks of about
    64 MiB (no full copy of a non-contiguous array).

    Examples
    --------
    >>> a = np.arange(6, dtype=np.uint16).reshape(2, 3)
    >>> voxel_crc32(a) == voxel_crc32(np.asfortranarray(a)) == voxel_crc32(a.astype(">u2"))
    True
    """
    import zlib

    a = np.asarray(arr)
    le = a.dtype.newbyteorder("<")
    if a.ndim == 0 or a.size == 0:
        return zlib.crc32(np.ascontiguousarray(a, dtype=le).tobytes())
    step = max(1, (64 << 20) // max(1, a[0].nbytes))
    crc = 0
    for i in range(0, a.shape[0], step):
        crc = zlib.crc32(np.ascontiguousarray(a[i:i + step], dtype=le).view(np.uint8).reshape(-1),
                         crc)
    return crc


def _check_header(shape: tuple[int, ...], dtype: Any, declared: Any, p: Path) -> tuple[int, ...]:
    """Compare the shape and dtype a header decodes to with the metadata's record of what was
    written (if any); return the recorded shape. Raises VolumeFileError."""
    dtype = np.dtype(dtype)
    if declared is None:
        return tuple(shape)
    try:
        want = tuple(int(s) for s in declared["shape"])
        want_dtype = np.dtype(declared["dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VolumeFileError(f"cannot read {p}: its metadata entry {_ARRAY_KEY!r} is damaged "
                              f"({declared!r}); restore the file from its source") from exc
    squeezed = tuple(s for s in shape if s != 1) == tuple(s for s in want if s != 1)
    if dtype != want_dtype or not squeezed:
        raise VolumeFileError(
            f"cannot read {p}: the file is damaged (it was written as shape {want} "
            f"{want_dtype.name} but its header now decodes to shape {tuple(shape)} "
            f"{dtype.name}); restore it from its source"
        )
    return want


def _check_before_reading(shape: tuple[int, ...], dtype: Any, meta: dict[str, Any],
                          p: Path) -> None:
    """Before the voxels are read (HDF5, Zarr): the header agrees with the metadata's record,
    and the array fits in memory. A damaged dimension would otherwise make the reader fill a
    huge buffer (a flipped bit in an HDF5 header got the process killed for memory)."""
    _check_header(shape, dtype, meta.get(_ARRAY_KEY), p)
    check_memory(math.prod(shape) * np.dtype(dtype).itemsize,
                 f"reading {p} ({tuple(shape)} {np.dtype(dtype).name} by its header; if the file "
                 "is much smaller, the header is damaged)")


def pick_array_key(names: list[str], key: str | None, where: Path) -> str:
    """The array to read: ``key``, else ``"image"``, else the only array present.

    Raises
    ------
    VolumeFileError
        Several arrays and no ``key``, or no array named ``key``.
    """
    k = key or ("image" if "image" in names else (names[0] if len(names) == 1 else None))
    if k is None:
        raise VolumeFileError(f"{where} holds arrays {names}; choose one with key=... (CLI: --key)")
    if k not in names:
        raise VolumeFileError(f"{where} has no array {k!r}; it holds {names}")
    return k


def _meta_from(obj: Any, where: str, fix: str) -> dict[str, Any]:
    """Parse stored metadata (a JSON object, as text or already decoded).

    ``where`` names the metadata in messages (e.g. "sidecar a.npy.json"), ``fix`` says what to do.
    Raises VolumeFileError for text that is not JSON, JSON that is not an object, or an invalid
    ``voxel_size``.
    """
    if obj is None:
        return {"voxel_size": None}
    if isinstance(obj, (bytes, np.bytes_)):
        try:
            obj = bytes(obj).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VolumeFileError(f"{where} is not UTF-8 text ({exc}); {fix}") from exc
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise VolumeFileError(f"{where} is not valid JSON ({exc}); {fix}") from exc
    if not isinstance(obj, dict):
        raise VolumeFileError(f"{where} must be a JSON object, got {type(obj).__name__}; {fix}")
    meta = dict(obj)
    try:
        meta["voxel_size"] = normalize_voxel_size(meta.get("voxel_size"))
    except VolumeError as exc:
        raise VolumeFileError(f"{where} holds an invalid voxel_size: {exc}; {fix}") from exc
    if meta.get("label_names") is not None:
        try:
            meta["label_names"] = check_label_names(meta["label_names"])
        except VolumeError as exc:
            raise VolumeFileError(f"{where} holds invalid label_names: {exc}; {fix}") from exc
    return meta


def _damaged(p: Path) -> str:
    return f"the file is damaged; restore {p.name} from its source or rewrite it"


_Read = tuple[np.ndarray | None, dict[str, Any]]


def _read_tiff(p: Path, key: str | None, load: bool) -> _Read:
    import tifffile

    errors: list[str] = []
    warned: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            (errors if record.levelno >= logging.ERROR else warned).append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    tiff_log = logging.getLogger("tifffile")
    tiff_log.addHandler(handler)
    try:
        with tifffile.TiffFile(p) as tif:
            _check_tiff_structure(tif, p, errors + warned)
            meta = _tiff_meta(tif, p)
            arr = _tiff_array(tif) if load else None
    finally:
        tiff_log.removeHandler(handler)
    if errors:  # tifffile recovers from damaged files by returning partial data: refuse it
        raise VolumeFileError(f"cannot read {p}: damaged or truncated TIFF ({errors[0]})")
    if arr is not None and arr.size == 0:
        raise VolumeFileError(f"cannot read {p}: damaged or truncated TIFF (empty image data)")
    return arr, meta


def _check_tiff_structure(tif: Any, p: Path, messages: list[str]) -> None:
    """Refuse what tifffile would read as an empty, partial, misplaced or impossible image."""
    series = tif.series
    if not series or 0 in series[0].shape:
        why = "; ".join(messages) or "no image data"
        raise VolumeFileError(f"cannot read {p}: damaged or truncated TIFF ({why})")
    size = p.stat().st_size
    if tiff_extent(tif) > size:
        raise VolumeFileError(f"cannot read {p}: truncated TIFF (its structure reaches beyond "
                              f"the end of the file, {size} bytes)")
    if _tiff_strips_overlap(tif):
        raise VolumeFileError(f"cannot read {p}: damaged TIFF (an image strip offset points into "
                              "another strip or into the header)")
    pages = [pg for pg in series[0].pages if pg is not None]
    # one image in the file: its pages, read in full (not as frames of page 0), must agree
    whole = list(tif.pages) if len(pages) == len(tif.pages) else []
    if len({(pg.compression, pg.predictor, pg.dtype) for pg in whole
            if hasattr(pg, "predictor")}) > 1:
        raise VolumeFileError(f"cannot read {p}: damaged TIFF (the pages of one image disagree in "
                              "compression, predictor or sample type)")
    _check_tiff_sizes(series[0], pages, p)
    tag = tif.pages[0].tags.get(270)  # ImageDescription
    raw = tag.value if tag is not None else None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else (raw or "")
    ours = text.lstrip().startswith("{") or text.startswith("ImageJ=") or _META_KEY in text
    if ours and not (tif.is_shaped or tif.is_imagej):
        raise VolumeFileError(f"cannot read {p}: damaged TIFF (its image description "
                              f"{text[:40]!r}... cannot be parsed); restore it from its source")


def _check_tiff_sizes(s: Any, pages: list[Any], p: Path) -> None:
    """The image the header describes must fit in its strips, and in memory."""
    needed = math.prod(s.shape) * s.dtype.itemsize
    held = sum(int(b) for pg in pages for b in pg.databytecounts)
    what = f"its header describes {s.shape} {s.dtype.name} = {needed} bytes"
    stored = _bilevel_bytes(pages) or needed
    if pages and all(pg.compression == 1 for pg in pages):  # uncompressed: strips hold the bytes
        if held < stored:
            raise VolumeFileError(f"cannot read {p}: damaged TIFF ({what}, its image strips hold "
                                  f"{held} bytes)")
    elif pages and all(pg.compression in _DEFLATE for pg in pages):
        if needed > _DEFLATE_MAX_RATIO * held + 4096:
            raise VolumeFileError(f"cannot read {p}: damaged TIFF ({what}, more than its {held} "
                                  "bytes of deflate data can hold)")
    check_memory(needed, f"reading {p} ({s.shape} {s.dtype.name} by its header; if the file is "
                         "much smaller, the header is damaged)")


def _bilevel_bytes(pages: list[Any]) -> int:
    """Bytes of 1-bit (bool) pages, whose rows are packed to whole bytes; 0 for other pages."""
    key = [getattr(pg, "keyframe", pg) for pg in pages]
    if not key or any(int(getattr(k, "bitspersample", 8)) >= 8 for k in key):
        return 0
    return sum(int(k.imagedepth) * int(k.imagelength)
               * math.ceil(int(k.imagewidth) * int(k.samplesperpixel) * int(k.bitspersample) / 8)
               for k in key)


def _tiff_layout(tif: Any) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(image strips, structures) as (start, end) byte ranges: strips and tiles with data, and
    the IFDs with their out-of-line tag values. Pages loaded as light-weight frames have no tags.
    """
    fmt = tif.tiff
    strips: list[tuple[int, int]] = []
    structs: list[tuple[int, int]] = [(0, 8)]
    for pg in tif.pages:
        tags = getattr(pg, "tags", None)
        if tags is not None:
            structs.append((pg.offset, pg.offset + fmt.tagnosize + len(tags) * fmt.tagsize
                            + fmt.offsetsize))
            structs += [(t.valueoffset, t.valueoffset + t.valuebytecount) for t in tags.values()
                        if t.valuebytecount > fmt.offsetsize]  # values stored outside the IFD
        strips += [(int(o), int(o) + int(b)) for o, b in zip(pg.dataoffsets, pg.databytecounts,
                                                              strict=False) if int(b) > 0]
    return strips, structs


def tiff_extent(tif: Any) -> int:
    """End (bytes) of the last structure a TIFF references: IFDs, tag values and image strips.

    Bytes past it are unused (e.g. alignment); a file shorter than it is truncated.
    """
    strips, structs = _tiff_layout(tif)
    return max(end for _, end in strips + structs)


def _tiff_strips_overlap(tif: Any) -> bool:
    """Whether an image strip overlaps another strip or a header structure (a damaged offset)."""
    strips, structs = _tiff_layout(tif)
    strips.sort()
    if any(a[1] > b[0] for a, b in itertools.pairwise(strips)):
        return True
    starts = [a for a, _ in strips]
    for s0, s1 in structs:
        i = bisect.bisect_right(starts, s0) - 1  # the last strip starting at or before s0
        if (i >= 0 and strips[i][1] > s0) or (i + 1 < len(strips) and strips[i + 1][0] < s1):
            return True
    return False


def _tiff_array(tif: Any) -> np.ndarray:
    series = tif.series
    if len(series) > 1 and len(series[0].shape) == 2 and all(
            s.shape == series[0].shape and s.dtype == series[0].dtype for s in series):
        return np.stack([s.asarray() for s in series])  # a stack written page by page
    return tif.asarray()


def _tiff_meta(tif: Any, p: Path) -> dict[str, Any]:
    ij = tif.imagej_metadata
    where = f"the metadata of {p}"
    if not ij:
        return _meta_from(tif.shaped_metadata[0].get(_META_KEY), where, _damaged(p)) \
            if tif.shaped_metadata else {"voxel_size": None}
    info = ij.get("Info")
    if isinstance(info, str) and not info.lstrip().startswith("{"):
        meta: dict[str, Any] = {"voxel_size": None, "imagej_info": info}  # written by other software
    else:
        meta = _meta_from(info, where, _damaged(p))
    spacing = ij.get("spacing")
    xres = tif.pages[0].tags.get("XResolution")
    yres = tif.pages[0].tags.get("YResolution")
    if spacing is not None and xres is not None and yres is not None \
            and xres.value[0] and yres.value[0]:
        meta["voxel_size"] = (float(spacing), yres.value[1] / yres.value[0],
                              xres.value[1] / xres.value[0])
        meta.setdefault("unit", ij.get("unit", "um"))
    return meta


def _sidecar_meta(p: Path) -> dict[str, Any]:
    side = _sidecar(p)
    if not side.exists():
        return {"voxel_size": None}
    return _meta_from(side.read_text(encoding="utf-8", errors="strict"),
                      f"sidecar {side} (the metadata of {p.name})",
                      f"repair it, or delete it to read {p.name} without metadata")


def _read_npy(p: Path, key: str | None, load: bool) -> _Read:
    meta = _sidecar_meta(p)
    if load:
        return np.load(p, allow_pickle=False), meta
    # metadata only: map the file without reading voxels, so that a cut file is refused here too
    mapped = np.load(p, mmap_mode="r", allow_pickle=False)
    del mapped
    return None, meta


def _read_npz(p: Path, key: str | None, load: bool) -> _Read:
    with np.load(p, allow_pickle=False) as z:  # members are read lazily, on access
        k = pick_array_key([n for n in z.files if n != _META_KEY], key, p)
        arr = z[k] if load else None
        meta = _meta_from(str(z[_META_KEY]), f"the metadata of {p}", _damaged(p)) \
            if _META_KEY in z.files else {"voxel_size": None}
    return arr, meta


def _read_raw(p: Path, key: str | None, load: bool) -> _Read:
    side = _sidecar(p)
    if not side.exists():
        raise VolumeFileError(
            f"{p} needs a sidecar {side.name} with shape, dtype and byte_order "
            '(e.g. {"shape": [64, 64, 64], "dtype": "uint8", "byte_order": "little"})'
        )
    info = _meta_from(side.read_text(encoding="utf-8"), f"sidecar {side} (the layout of {p.name})",
                      "repair it: it needs shape, dtype and byte_order")
    try:
        shape = tuple(int(s) for s in info["shape"])
        dtype = np.dtype(info["dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VolumeFileError(f"sidecar {side} is invalid ({exc}); it needs shape, dtype") from exc
    order = info.get("byte_order", "little")
    if order not in ("little", "big"):
        raise VolumeFileError(f"sidecar {side}: byte_order must be 'little' or 'big', got {order!r}")
    dtype = dtype.newbyteorder("<" if order == "little" else ">")
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = p.stat().st_size
    if actual != expected:
        raise VolumeFileError(
            f"{p} has {actual} bytes but its sidecar says shape {shape} of {dtype.name} = "
            f"{expected} bytes; the file is truncated or the sidecar is wrong"
        )
    if not load:
        return None, info
    arr = np.fromfile(p, dtype=dtype).reshape(shape)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False), info


#: unit abbreviations (as in twinsr metadata) -> OME-NGFF (UDUNITS-2) names
NGFF_UNITS = {"um": "micrometer", "µm": "micrometer", "μm": "micrometer", "micron": "micrometer",
              "nm": "nanometer", "mm": "millimeter", "cm": "centimeter", "m": "meter",
              "pm": "picometer", "A": "angstrom", "Å": "angstrom"}
_NGFF_ABBREV = {"micrometer": "um", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm",
                "meter": "m", "picometer": "pm", "angstrom": "A"}


def ngff_unit(unit: str) -> str:
    """The OME-NGFF name of a length unit (``"um"`` -> ``"micrometer"``).

    Raises
    ------
    VolumeFileError
        A unit NGFF does not know (the message lists the accepted ones).

    Examples
    --------
    >>> ngff_unit("um"), ngff_unit("nanometer")
    ('micrometer', 'nanometer')
    """
    if unit in NGFF_UNITS:
        return NGFF_UNITS[unit]
    if unit in _NGFF_ABBREV or unit in ("femtometer", "kilometer", "inch", "foot"):
        return unit
    raise VolumeFileError(f"unit {unit!r} has no OME-NGFF name; use one of "
                          f"{', '.join(sorted(NGFF_UNITS))} or an NGFF name such as micrometer")


def ngff_multiscale(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The first ``multiscales`` entry of OME-NGFF group attributes (0.4 or 0.5), or None."""
    ms = attrs.get("ome", {}).get("multiscales") if isinstance(attrs.get("ome"), dict) else None
    ms = ms if ms is not None else attrs.get("multiscales")
    if isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets"):
        return ms[0]
    return None


def _ngff_scale(transforms: Any) -> list[float] | None:
    for t in transforms or []:
        if isinstance(t, dict) and t.get("type") == "scale":
            return [float(v) for v in t["scale"]]
    return None


def _ngff_voxel_size(ms: dict[str, Any]) -> dict[str, Any]:
    """Voxel size (z, y, x) and unit of level 0 of an NGFF multiscale (empty if not stated)."""
    axes = [a if isinstance(a, dict) else {"name": a} for a in ms.get("axes", [])]
    scale = _ngff_scale(ms["datasets"][0].get("coordinateTransformations"))
    if scale is None:
        return {}
    top = _ngff_scale(ms.get("coordinateTransformations"))
    if top is not None and len(top) == len(scale):
        scale = [a * b for a, b in zip(scale, top, strict=True)]
    space = [i for i, a in enumerate(axes) if a.get("type") == "space" or a.get("name") in ("z", "y", "x")]
    if len(space) != 3 or len(scale) != len(axes):
        space = list(range(len(scale)))[-3:]
    if len(space) != 3:
        return {}
    unit = next((a["unit"] for a in axes if a.get("unit")), None) if axes else None
    return {"voxel_size": normalize_voxel_size([scale[i] for i in space]),
            "unit": _NGFF_ABBREV.get(unit, unit) if unit else "um"}


def ngff_attrs(n_levels: int, voxel_size: tuple[float, float, float] | None, unit: str, *,
               name: str = "image", zarr_format: int = 3) -> dict[str, Any]:
    """OME-NGFF multiscales attributes of a (z, y, x) pyramid made by stride-2 subsampling.

    Level ``k`` (array path ``"k"``) holds ``level0[::2**k, ::2**k, ::2**k]``: its voxel centres
    lie on level 0's, so its ``scale`` is ``2**k`` times the level-0 voxel size and needs no
    translation. NGFF 0.5 (under ``"ome"``) for a Zarr v3 group, 0.4 for Zarr v2.

    Parameters
    ----------
    n_levels : int
        Resolution levels (>= 1).
    voxel_size : (z, y, x) or None
        Level-0 voxel size in ``unit`` (None: scale 1 and no unit).
    unit : str
        Length unit (``"um"`` or an NGFF name, see :func:`ngff_unit`).

    Examples
    --------
    >>> a = ngff_attrs(2, (0.5, 0.5, 0.5), "um")
    >>> a["ome"]["version"], a["ome"]["multiscales"][0]["datasets"][1]["coordinateTransformations"]
    ('0.5', [{'type': 'scale', 'scale': [1.0, 1.0, 1.0]}])
    """
    vs = voxel_size or (1.0, 1.0, 1.0)
    unit_kw = {"unit": ngff_unit(unit)} if voxel_size is not None else {}
    axes = [{"name": n, "type": "space", **unit_kw} for n in ("z", "y", "x")]
    datasets = [{"path": str(k), "coordinateTransformations": [
        {"type": "scale", "scale": [float(v) * 2**k for v in vs]}]} for k in range(n_levels)]
    ms = {"name": name, "axes": axes, "datasets": datasets, "type": "stride-2 subsampling",
          "metadata": {"method": "level k = level0[::2**k, ::2**k, ::2**k]"}}
    if zarr_format >= 3:
        return {"ome": {"version": "0.5", "multiscales": [ms]}}
    return {"multiscales": [{"version": "0.4", **ms}]}


def open_zarr_array(path: PathLike, key: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Open the array of a Zarr store to read: the root array, ``key`` in a group, or level 0 of
    an OME-Zarr (NGFF multiscales) group; with the voxel size its NGFF metadata state.

    Returns
    -------
    (zarr.Array, dict)
        The array (not read) and ``{"voxel_size": (z, y, x), "unit": ...}`` from the NGFF
        ``scale`` transform of level 0 (empty for a store that is not OME-Zarr).

    Raises
    ------
    VolumeFileError
        A group with several arrays and no ``key``, or no array named ``key``.
    """
    import zarr

    p = Path(path)
    node = zarr.open(str(p), mode="r")
    if not isinstance(node, zarr.Group):
        return node, {}
    ms = ngff_multiscale(dict(node.attrs))
    if ms is not None and key is None:
        level0 = str(ms["datasets"][0]["path"])
        try:
            return node[level0], _ngff_voxel_size(ms)
        except (KeyError, TypeError, ValueError) as exc:
            raise VolumeFileError(f"{p} is an OME-Zarr whose level 0 ({level0!r}) cannot be "
                                  f"read ({exc}); {_damaged(p)}") from exc
    return node[pick_array_key(sorted(name for name, _ in node.arrays()), key, p)], {}


def _read_zarr(p: Path, key: str | None, load: bool) -> _Read:
    node, ngff = open_zarr_array(p, key)
    meta = _meta_from(dict(node.attrs).get(_META_KEY), f"the metadata of {p}", _damaged(p))
    if meta.get("voxel_size") is None and ngff.get("voxel_size") is not None:
        meta.update(ngff)
    if not load:
        return None, meta
    _check_before_reading(tuple(node.shape), node.dtype, meta, p)
    return np.asarray(node[...]), meta


def _read_h5(p: Path, key: str | None, load: bool) -> _Read:
    import h5py

    with h5py.File(p, "r") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        ds = f[pick_array_key(names, key, p)]
        meta = _meta_from(ds.attrs.get(_META_KEY), f"the metadata of {p}", _damaged(p))
        if not load:
            return None, meta
        _check_before_reading(tuple(ds.shape), ds.dtype, meta, p)
        return ds[...], meta


_READERS = {
    ".tif": _read_tiff, ".tiff": _read_tiff, ".npy": _read_npy, ".npz": _read_npz,
    ".raw": _read_raw, ".zarr": _read_zarr, ".h5": _read_h5, ".hdf5": _read_h5,
}


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def write_volume(
    path: PathLike,
    im: np.ndarray,
    *,
    voxel_size: float | tuple[float, float, float] | None = None,
    unit: str = "um",
    metadata: dict[str, Any] | None = None,
    key: str = "image",
    compress: bool = True,
    label_names: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Write a volume atomically; the format follows the suffix of ``path``.

    Parameters
    ----------
    path : str or path-like
        Target file (``.tif .tiff .npy .npz .raw .zarr .h5 .hdf5``). Parent folders are created.
    im : numpy.ndarray
        Array of any shape (volumes are (Z, Y, X); a 2-channel diffusion image is (2, Z, Y, X)).
    voxel_size : float or (z, y, x), optional
        Physical voxel size in ``unit``.
    unit : str
        Unit of ``voxel_size`` (default micrometre, ``"um"``).
    metadata : dict, optional
        JSON-serialisable extra metadata (parameters, seed, versions) stored with the array.
    key : str
        Array name for ``.npz`` / ``.h5`` / ``.zarr``.
    compress : bool
        Compress where the format allows (npz, zarr, h5; TIFF uses zlib when set).
    label_names : sequence of str, optional
        Names of labels 0..K-1 of a labelled volume (also accepted as ``metadata["label_names"]``);
        stored under the metadata key ``label_names``. Every value of ``im`` must be a label
        0..K-1 (labels may be absent, e.g. in a crop).

    Returns
    -------
    pathlib.Path
        The written path. A sidecar is written too for ``.npy`` (``<name>.npy.json``) and
        ``.raw`` (``<stem>.json``).

    Raises
    ------
    VolumeFileError
        Unknown suffix or metadata that is not JSON-serialisable.
    VolumeError
        ``label_names`` names a label twice, is empty, or leaves a label of ``im`` unnamed.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> lab = np.array([0, 1, 2, 1], np.uint8).reshape(1, 2, 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_volume(f"{d}/l.npz", lab, label_names=["pore", "NMC", "binder"])
    ...     read_metadata(p)["label_names"]
    ('pore', 'NMC', 'binder')
    """
    p = Path(path)
    suffix = _suffix(p)
    arr = np.asarray(im)
    vs = normalize_voxel_size(voxel_size)
    meta: dict[str, Any] = dict(metadata or {})
    names = label_names if label_names is not None else meta.get("label_names")
    if names is not None:
        names = check_label_names(names)
        as_label_volume(arr, "im", n_labels=len(names), ndim=arr.ndim)
        meta["label_names"] = list(names)
    meta.update({"voxel_size": list(vs) if vs else None, "unit": unit,
                 _ARRAY_KEY: {"shape": list(arr.shape), "dtype": arr.dtype.name,
                              "crc32": voxel_crc32(arr)}})
    try:
        meta_json = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise VolumeFileError(f"`metadata` must be JSON-serialisable: {exc}") from exc
    _WRITERS[suffix](p, arr, vs, unit, meta, meta_json, key, compress)
    log.debug("wrote %s %s %s", p, arr.shape, arr.dtype)
    return p


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _write_tiff(p: Path, arr: np.ndarray, vs: Any, unit: str, meta: dict, meta_json: str,
                key: str, compress: bool) -> None:
    import tifffile

    kw: dict[str, Any] = {"compression": "zlib"} if compress else {}
    if arr.ndim >= 3:
        kw["photometric"] = "minisblack"  # never RGB, whatever the length of the last axis
    # ImageJ hyperstacks hold 3-D uint8/uint16/float32; tifffile cannot read back X = 1 ones
    if arr.ndim == 3 and arr.dtype in (np.uint8, np.uint16, np.float32) and arr.shape[2] > 1:
        ij_meta: dict[str, Any] = {"axes": "ZYX", "Info": meta_json}
        res = None
        if vs is not None:
            ij_meta.update(spacing=vs[0], unit=unit)
            res = (1.0 / vs[2], 1.0 / vs[1])
        with atomic_path(p) as tmp:
            tifffile.imwrite(tmp, arr, imagej=True, metadata=ij_meta, resolution=res, **kw)
    else:
        with atomic_path(p) as tmp:
            tifffile.imwrite(tmp, arr, metadata={_META_KEY: meta_json}, **kw)


def _write_npy(p: Path, arr: np.ndarray, vs: Any, unit: str, meta: dict, meta_json: str,
               key: str, compress: bool) -> None:
    with atomic_path(p) as tmp:
        np.save(tmp, arr, allow_pickle=False)
    with atomic_path(_sidecar(p)) as tmp:
        tmp.write_text(meta_json)


def _write_npz(p: Path, arr: np.ndarray, vs: Any, unit: str, meta: dict, meta_json: str,
               key: str, compress: bool) -> None:
    save = np.savez_compressed if compress else np.savez
    with atomic_path(p) as tmp:
        save(tmp, **{key: arr, _META_KEY: np.array(meta_json)})


def _write_raw(p: Path, arr: np.ndarray, vs: Any, unit: str, meta: dict, meta_json: str,
               key: str, compress: bool) -> None:
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    side = dict(meta, shape=list(arr.shape), dtype=arr.dtype.name, byte_order="little")
    with atomic_path(p) as tmp:
        np.ascontiguousarray(little).tofile(tmp)
    with atomic_path(_sidecar(p)) as tmp:
        tmp.write_text(json.dumps(side, default=_json_default, indent=1))


def _write_zarr(p: Path, arr: np.ndarray, vs: Any, unit: str, meta: dict, meta_json: str,
                key: str, compress: bool) -> None:
    chunks = tuple(min(s, 128 if arr.ndim <= 3 else 64) for s in arr.shape)
    with atomic_path(p, is_dir=True) as tmp:
        z = create_zarr_array(tmp, shape=arr.shape, dtype=arr.dtype, chunks=chunks,
                              compress=compress)
        z[...] = arr
        z.attrs[_META_KEY] = meta_json


def create_zarr_array(path: PathLike, *, shape: tuple[int, ...], dtype: Any,
                      chunks: tuple[int, ...], compress: bool = True, fill_value: Any = 0) -> Any:
    """Create an empty Zarr array at ``path`` (a directory store) with the installed Zarr API.

    Zarr 3 (``zarr.create_array``, format v3) where installed (Python >= 3.11), else Zarr 2
    (``zarr.open_array(mode="w")``, format v2). Compressed chunks use Zstandard with its content
    checksum, so a damaged chunk fails to decode instead of yielding wrong values. Reading needs
    no such switch: ``zarr.open`` works in both, and Zarr 3 reads v2 stores too (Zarr 2 cannot
    read v3 stores).

    Parameters
    ----------
    path : str or path-like
        Store directory (must not hold an array yet).
    shape, chunks : tuple of int
        Array and chunk shape.
    dtype : numpy dtype-like
        Element type.
    compress : bool
        Zstandard with checksums (True) or raw chunks (False).
    fill_value : scalar
        Value of chunks never written (default 0).

    Returns
    -------
    zarr.Array
        Open for writing (``z[...] = values``, ``z.attrs[...] = ...``).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> z = create_zarr_array(os.path.join(tempfile.mkdtemp(), "a.zarr"), shape=(4, 4, 4),
    ...                       dtype=np.uint8, chunks=(2, 4, 4))
    >>> z[...] = 1
    >>> int(np.asarray(z[...]).sum())
    64
    """
    import zarr

    if hasattr(zarr, "create_array"):  # zarr >= 3
        from zarr.codecs import ZstdCodec

        return zarr.create_array(store=str(path), shape=shape, dtype=dtype, chunks=chunks,
                                 fill_value=fill_value,
                                 compressors=ZstdCodec(level=0, checksum=True) if compress
                                 else None)
    import numcodecs

    return zarr.open_array(str(path), mode="w", shape=shape, dtype=dtype, chunks=chunks,
                           fill_value=fill_value,
                           compressor=numcodecs.Zstd(level=0, checksum=True) if compress else None)


def _write_h5(p: Path, arr: np.ndarray, vs: Any, unit: str, meta: dict, meta_json: str,
              key: str, compress: bool) -> None:
    import h5py

    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        kw: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "chunks": True} \
            if compress and arr.size > 0 else {}
        ds = f.create_dataset(key, data=arr, **kw)
        ds.attrs[_META_KEY] = meta_json
        if vs is not None:
            ds.attrs["element_size_um"] = np.asarray(vs)  # read by e.g. ilastik / Fiji's HDF5


_WRITERS = {
    ".tif": _write_tiff, ".tiff": _write_tiff, ".npy": _write_npy, ".npz": _write_npz,
    ".raw": _write_raw, ".zarr": _write_zarr, ".h5": _write_h5, ".hdf5": _write_h5,
}


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeInfo:
    """Summary of a volume file, as printed by ``twinsr info``."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    value_counts: dict[str, int] = field(default_factory=dict)
    binary: bool = False
    solid_fraction: float | None = None
    voxel_size: tuple[float, float, float] | None = None
    unit: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def volume_info(path: PathLike, *, key: str | None = None, max_values: int = 16) -> VolumeInfo:
    """Shape, dtype, value counts, phase fractions and voxel size of a volume file.

    Value counts are listed when at most ``max_values`` distinct values occur; for a
    two-phase volume (see :func:`twinsr._validation.as_binary_volume` for the accepted
    encodings) the solid fraction is reported (1 = solid).
    """
    arr, meta = read_volume(path, key=key, return_metadata=True)
    counts: dict[str, int] = {}
    binary = False
    solid = None
    if arr.dtype.kind in "biu" or arr.dtype == bool:
        vals, cnt = np.unique(arr, return_counts=True) if arr.size <= 50_000_000 else (
            np.unique(arr[::2, ::2, ::2] if arr.ndim == 3 else arr), None)
        if cnt is not None and vals.size <= max_values:
            counts = {str(v.item()): int(c) for v, c in zip(vals, cnt, strict=True)}
        if vals.size <= 2 and vals.min() >= 0 and (vals.size == 1 or vals[0] == 0):
            binary = vals.size == 2 or int(vals[0]) in (0, 1)
            if binary:
                solid = float(np.count_nonzero(arr)) / arr.size
    elif arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        counts = {"nan_or_inf": int(arr.size - np.count_nonzero(finite))}
    extra = {k: v for k, v in meta.items() if k not in ("voxel_size", "unit")}
    return VolumeInfo(
        path=os.fspath(path), shape=tuple(arr.shape), dtype=arr.dtype.name, value_counts=counts,
        binary=binary, solid_fraction=solid, voxel_size=meta.get("voxel_size"),
        unit=meta.get("unit") if meta.get("voxel_size") else None, metadata=extra,
    )
