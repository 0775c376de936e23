"""Damaged volume files: every reader raises VolumeFileError naming the file, never a wrong array.

Each format is cut at several points (zero bytes, inside the header, half, one byte short) and
has every byte of its header flipped in turn. A flip may be harmless (a timestamp, padding): then
the array read back must be identical. What may never happen is a silently different array or a
foreign exception.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from twinsr.exceptions import TwinsrError, VolumeFileError
from twinsr.io import read_metadata, read_volume, write_volume

RNG = np.random.default_rng(0)
ARRAYS = {
    "u8": (RNG.random((6, 7, 9)) < 0.5).astype(np.uint8),     # ImageJ hyperstack in TIFF
    "f64": RNG.random((5, 6, 7)),                             # "shaped" TIFF
    "i16": RNG.integers(-5, 5, (3, 4, 5, 6)).astype(np.int16),  # 4-D
}
FILE_FORMATS = [".tif", ".npy", ".npz", ".h5"]


def _outcome(path: Path, expected: np.ndarray) -> str:
    """'error' (VolumeFileError naming the file), 'same', or fail the test."""
    try:
        arr = read_volume(path)
    except VolumeFileError as exc:
        assert path.name in str(exc), str(exc)
        return "error"
    except TwinsrError as exc:  # e.g. MemoryBudgetError for a header claiming terabytes
        assert path.name in str(exc), str(exc)
        return "error"
    assert arr.shape == expected.shape and arr.dtype == expected.dtype, \
        f"{path.name}: silently read {arr.shape} {arr.dtype} instead of {expected.shape} " \
        f"{expected.dtype}"
    np.testing.assert_array_equal(arr, expected)
    return "same"


def _cuts(n: int, header: int) -> list[int]:
    return sorted({0, 1, 8, min(header, n - 1), n // 2, n - 1})


def _used_bytes(path: Path, data: bytes) -> int:
    """Bytes the format references; a TIFF may end in unused bytes (cutting those is harmless)."""
    if path.suffix != ".tif":
        return len(data)
    import tifffile

    from twinsr.io import tiff_extent

    with tifffile.TiffFile(path) as tif:
        return tiff_extent(tif)


def _write(tmp_path: Path, suffix: str, name: str, compress: bool) -> tuple[Path, np.ndarray]:
    arr = ARRAYS[name]
    return write_volume(tmp_path / f"{name}{suffix}", arr, voxel_size=2.0, compress=compress), arr


def _header_size(path: Path, data: bytes) -> int:
    suffix = path.suffix
    if suffix == ".npy":
        return 10 + int.from_bytes(data[8:10], "little")
    if suffix == ".h5":
        return 512
    if suffix == ".npz":
        return 64
    return 400  # TIFF: IFD of the first page and the tag values written after it


def _protected_tiff_bytes(path: Path) -> set[int]:
    """The 12-byte IFD entry of the ImageDescription tag of a non-ImageJ TIFF: destroying it turns
    the file into a valid plain page stack, which no reader can tell from the real thing."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_imagej:
            return set()
        tag = tif.pages[0].tags.get(270)
        return set(range(tag.offset, tag.offset + 12)) if tag is not None else set()


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name", list(ARRAYS))
@pytest.mark.parametrize("suffix", FILE_FORMATS)
def test_cut_files_raise(tmp_path: Path, suffix: str, name: str, compress: bool) -> None:
    src, arr = _write(tmp_path, suffix, name, compress)
    data = src.read_bytes()
    used = _used_bytes(src, data)
    assert used <= len(data)
    for cut in _cuts(used, _header_size(src, data)):
        bad = tmp_path / f"cut{cut}{suffix}"
        if suffix == ".npy":
            shutil.copy(Path(f"{src}.json"), Path(f"{bad}.json"))
        bad.write_bytes(data[:cut])
        assert _outcome(bad, arr) == "error", f"cut at {cut} of {len(data)} bytes was accepted"
        with pytest.raises(TwinsrError, match=bad.name):
            read_metadata(bad)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name", list(ARRAYS))
@pytest.mark.parametrize("suffix", FILE_FORMATS)
def test_flipped_header_bytes_never_give_a_wrong_array(tmp_path: Path, suffix: str, name: str,
                                                       compress: bool) -> None:
    src, arr = _write(tmp_path, suffix, name, compress)
    data = src.read_bytes()
    skip = _protected_tiff_bytes(src) if suffix == ".tif" else set()
    positions = [i for i in range(min(len(data), _header_size(src, data))) if i not in skip]
    if suffix == ".npz":  # the zip central directory sits at the end
        positions += list(range(max(0, len(data) - 64), len(data)))
    outcomes = {"error": 0, "same": 0}
    bad = tmp_path / f"flip{suffix}"
    if suffix == ".npy":
        shutil.copy(Path(f"{src}.json"), Path(f"{bad}.json"))
    for pos in positions:
        d = bytearray(data)
        d[pos] ^= 0xFF
        bad.write_bytes(bytes(d))
        outcomes[_outcome(bad, arr)] += 1
    assert outcomes["error"] > 0, outcomes


def test_tiff_with_invalid_first_page_offset(tmp_path: Path) -> None:
    """The reported case: a TIFF cut after its 8-byte header was read as an empty float64 array."""
    src = write_volume(tmp_path / "a.tif", ARRAYS["u8"])
    for name, blob in (("cut.tif", src.read_bytes()[:8]),
                       ("offset.tif", src.read_bytes()[:4] + b"\xff\xff\x00\x00"
                        + src.read_bytes()[8:])):
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(VolumeFileError, match=rf"{name}.*damaged or truncated TIFF"):
            read_volume(p)


def test_declared_shape_and_dtype_are_checked(tmp_path: Path) -> None:
    """A header that decodes to another shape or dtype than written is refused by name."""
    import tifffile

    arr = ARRAYS["u8"]
    p = write_volume(tmp_path / "a.tif", arr)
    with tifffile.TiffFile(p) as tif:
        info = tif.imagej_metadata["Info"]
    # the same metadata attached to data of another dtype: what a flipped BitsPerSample gives
    tifffile.imwrite(tmp_path / "b.tif", arr.astype(np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "Info": info})
    with pytest.raises(VolumeFileError, match=r"b\.tif.*damaged.*written as shape"):
        read_volume(tmp_path / "b.tif")
    meta = json.loads(info)
    meta["twinsr_array"] = "garbage"
    tifffile.imwrite(tmp_path / "c.tif", arr, imagej=True,
                     metadata={"axes": "ZYX", "Info": json.dumps(meta)})
    with pytest.raises(VolumeFileError, match=r"c\.tif.*twinsr_array"):
        read_volume(tmp_path / "c.tif")


def test_zarr_store_damage(tmp_path: Path) -> None:
    for compress in (True, False):
        src = write_volume(tmp_path / f"z{compress}.zarr", ARRAYS["f64"], compress=compress)
        files = sorted(f for f in src.rglob("*") if f.is_file())
        assert any(f.name in ("zarr.json", ".zarray") for f in files)
        for f in files:
            data = f.read_bytes()
            is_meta = f.name in ("zarr.json", ".zarray", ".zattrs")
            cuts = _cuts(len(data), 16)
            flips = range(len(data)) if is_meta else range(0, len(data), max(1, len(data) // 50))
            cases = [data[:c] for c in cuts]
            if is_meta or compress:  # raw chunk bytes are data: a flip there cannot be seen
                cases += [bytes(b ^ 0xFF if i == pos else b for i, b in enumerate(data))
                          for pos in flips]
            for k, blob in enumerate(cases):
                bad = tmp_path / f"bad{compress}{k}.zarr"
                shutil.copytree(src, bad)
                (bad / f.relative_to(src)).write_bytes(blob)
                _outcome(bad, ARRAYS["f64"])
                shutil.rmtree(bad)
            bad = tmp_path / "cut.zarr"
            shutil.copytree(src, bad)
            (bad / f.relative_to(src)).write_bytes(data[: len(data) // 2])
            assert _outcome(bad, ARRAYS["f64"]) == "error", f"half of {f.name} accepted"
            shutil.rmtree(bad)


def test_raw_and_sidecar_damage(tmp_path: Path) -> None:
    arr = ARRAYS["i16"]
    src = write_volume(tmp_path / "r.raw", arr, voxel_size=2.0)
    side = tmp_path / "r.json"
    data, text = src.read_bytes(), side.read_bytes()
    for cut in _cuts(len(data), 0):
        src.write_bytes(data[:cut])
        assert _outcome(src, arr) == "error"
    src.write_bytes(data + b"\0")
    assert _outcome(src, arr) == "error"
    src.write_bytes(data)
    for cut in _cuts(len(text), 8):
        side.write_bytes(text[:cut])
        assert _outcome(src, arr) == "error", cut
    for pos in range(len(text)):
        side.write_bytes(bytes(b ^ 0xFF if i == pos else b for i, b in enumerate(text)))
        _outcome(src, arr)
    side.write_bytes(text)
    np.testing.assert_array_equal(read_volume(src), arr)


@pytest.mark.parametrize("suffix", [*FILE_FORMATS, ".raw"])
def test_zero_byte_and_wrong_magic(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"empty{suffix}"
    p.write_bytes(b"")
    if suffix == ".raw":
        (tmp_path / "empty.json").write_text('{"shape": [2, 2, 2], "dtype": "uint8"}')
    with pytest.raises(VolumeFileError, match=p.name):
        read_volume(p)
    q = tmp_path / f"magic{suffix}"
    q.write_bytes(b"GIF89a" + bytes(200))
    if suffix == ".raw":
        (tmp_path / "magic.json").write_text('{"shape": [2, 2, 2], "dtype": "uint8"}')
    with pytest.raises(VolumeFileError, match=q.name):
        read_volume(q)


# ---- metadata that does not parse -------------------------------------------------------------
def test_npy_sidecar_that_is_not_json_names_the_sidecar(tmp_path: Path) -> None:
    p = write_volume(tmp_path / "a.npy", ARRAYS["u8"], voxel_size=1.0)
    side = tmp_path / "a.npy.json"
    side.write_text('{"voxel_size": [1.0, 1.0,')
    for fn in (read_volume, read_metadata):
        with pytest.raises(VolumeFileError, match=r"sidecar .*a\.npy\.json.*not valid JSON.*delete "
                                                  r"it to read a\.npy without metadata"):
            fn(p)
    side.write_text('[1, 2, 3]')
    with pytest.raises(VolumeFileError, match="must be a JSON object"):
        read_volume(p)
    side.write_text('{"voxel_size": "big"}')
    with pytest.raises(VolumeFileError, match="invalid voxel_size"):
        read_metadata(p)
    side.unlink()
    assert read_metadata(p)["voxel_size"] is None


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".zarr"])
def test_embedded_metadata_that_is_not_json(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"m{suffix}"
    arr = ARRAYS["u8"]
    if suffix == ".npz":
        np.savez(p, image=arr, twinsr_metadata=np.array('{"voxel_size": '))
    elif suffix == ".h5":
        import h5py

        with h5py.File(p, "w") as f:
            f.create_dataset("image", data=arr).attrs["twinsr_metadata"] = "{oops"
    else:
        write_volume(p, arr)
        import zarr

        zarr.open(str(p), mode="r+").attrs["twinsr_metadata"] = "{oops"
    with pytest.raises(VolumeFileError, match=rf"metadata of .*{p.name} is not valid JSON"):
        read_metadata(p)


def test_foreign_imagej_info_is_kept_not_refused(tmp_path: Path) -> None:
    import tifffile

    p = tmp_path / "fiji.tif"
    tifffile.imwrite(p, ARRAYS["u8"], imagej=True, metadata={"axes": "ZYX",
                                                             "Info": "Acquired on a Tuesday"})
    arr, meta = read_volume(p, return_metadata=True)
    np.testing.assert_array_equal(arr, ARRAYS["u8"])
    assert meta["imagej_info"] == "Acquired on a Tuesday"
