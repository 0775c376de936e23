"""Volume I/O: every format round-trips values, dtype and voxel size; bad files give clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from twinsr import VolumeFileError, datasets
from twinsr._atomic import atomic_path
from twinsr.io import read_metadata, read_volume, volume_info, write_volume

FORMATS = [".tif", ".tiff", ".npy", ".npz", ".raw", ".zarr", ".h5", ".hdf5"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_binary(tmp_path: Path, binary_volume: np.ndarray, suffix: str) -> None:
    path = write_volume(tmp_path / f"vol{suffix}", binary_volume, voxel_size=(0.5, 0.25, 0.125),
                        metadata={"seed": 7, "params": {"nu": 1.4}})
    out = read_volume(path)
    assert out.dtype == binary_volume.dtype
    np.testing.assert_array_equal(out, binary_volume)
    meta = read_metadata(path)
    assert meta["voxel_size"] == (0.5, 0.25, 0.125)
    assert meta["seed"] == 7 and meta["params"] == {"nu": 1.4}
    both, meta2 = read_volume(path, return_metadata=True)
    np.testing.assert_array_equal(both, binary_volume)
    assert meta2 == meta


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64])
def test_round_trip_multichannel(tmp_path: Path, suffix: str, dtype: type) -> None:
    arr = (np.random.default_rng(3).random((2, 5, 6, 7)) * 100).astype(dtype)
    path = write_volume(tmp_path / f"ch{suffix}", arr, voxel_size=2.0)
    out = read_volume(path)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert read_metadata(path)["voxel_size"] == (2.0, 2.0, 2.0)


def test_no_voxel_size(tmp_path: Path, binary_volume: np.ndarray) -> None:
    for suffix in FORMATS:
        path = write_volume(tmp_path / f"v{suffix}", binary_volume)
        assert read_metadata(path)["voxel_size"] is None


def test_npy_and_raw_sidecars_do_not_collide(tmp_path: Path, binary_volume: np.ndarray) -> None:
    write_volume(tmp_path / "a.npy", binary_volume, voxel_size=1.0)
    write_volume(tmp_path / "a.raw", binary_volume[:, :, :5], voxel_size=3.0)
    assert read_metadata(tmp_path / "a.npy")["voxel_size"] == (1.0, 1.0, 1.0)
    assert read_volume(tmp_path / "a.raw").shape == (24, 28, 5)


def test_tiff_stack_of_pages(tmp_path: Path, binary_volume: np.ndarray) -> None:
    import tifffile

    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as tw:
        for sl in binary_volume:
            tw.write(sl, contiguous=False)
    np.testing.assert_array_equal(read_volume(p), binary_volume)
    q = tmp_path / "single.tif"
    tifffile.imwrite(q, binary_volume)  # one multi-dimensional page series
    np.testing.assert_array_equal(read_volume(q), binary_volume)


def test_imagej_tiff_voxel_size_readable_by_tifffile(tmp_path: Path, binary_volume: np.ndarray) -> None:
    import tifffile

    p = write_volume(tmp_path / "ij.tif", binary_volume, voxel_size=(2.0, 0.5, 0.5))
    with tifffile.TiffFile(p) as tif:
        assert tif.imagej_metadata["spacing"] == pytest.approx(2.0)


def test_npz_keys(tmp_path: Path) -> None:
    p = tmp_path / "multi.npz"
    np.savez(p, a=np.zeros((2, 2, 2)), b=np.ones((3, 3, 3)))
    with pytest.raises(VolumeFileError, match="choose one with key"):
        read_volume(p)
    assert read_volume(p, key="b").shape == (3, 3, 3)
    with pytest.raises(VolumeFileError, match="no array 'c'"):
        read_volume(p, key="c")


def test_h5_dataset_selectable(tmp_path: Path, binary_volume: np.ndarray) -> None:
    p = write_volume(tmp_path / "x.h5", binary_volume, key="segmented")
    np.testing.assert_array_equal(read_volume(p), binary_volume)  # the only dataset
    np.testing.assert_array_equal(read_volume(p, key="segmented"), binary_volume)


def test_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(VolumeFileError, match=r"unsupported volume format '\.png'.*use one of"):
        read_volume(tmp_path / "x.png")
    with pytest.raises(VolumeFileError, match="unsupported"):
        write_volume(tmp_path / "x", np.zeros((2, 2, 2)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VolumeFileError, match="no such file"):
        read_volume(tmp_path / "missing.tif")


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".npz", ".h5"])
def test_truncated_file(tmp_path: Path, binary_volume: np.ndarray, suffix: str) -> None:
    p = write_volume(tmp_path / f"t{suffix}", np.random.default_rng(0).random((16, 16, 16)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeFileError, match="cannot read"):
        read_volume(p)


def test_garbage_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.tif"
    p.write_bytes(b"this is not a tiff")
    with pytest.raises(VolumeFileError, match=r"cannot read .*bad\.tif"):
        read_volume(p)


def test_metadata_reads_no_voxels(tmp_path: Path, binary_volume: np.ndarray,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_volume(tmp_path / "m.raw", binary_volume, voxel_size=2.0)
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("voxels were read"))
    assert read_metadata(p)["voxel_size"] == (2.0, 2.0, 2.0)


def test_raw_size_mismatch(tmp_path: Path, binary_volume: np.ndarray) -> None:
    p = write_volume(tmp_path / "r.raw", binary_volume)
    side = json.loads((tmp_path / "r.json").read_text())
    side["shape"] = [24, 28, 33]
    (tmp_path / "r.json").write_text(json.dumps(side))
    with pytest.raises(VolumeFileError, match="truncated or the sidecar is wrong"):
        read_volume(p)
    (tmp_path / "r.json").unlink()
    with pytest.raises(VolumeFileError, match="needs a sidecar"):
        read_volume(p)


def test_raw_big_endian(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=">u2").reshape(2, 3, 4)
    p = tmp_path / "be.raw"
    arr.tofile(p)
    (tmp_path / "be.json").write_text(json.dumps({"shape": [2, 3, 4], "dtype": "uint16",
                                                  "byte_order": "big"}))
    np.testing.assert_array_equal(read_volume(p), np.arange(24).reshape(2, 3, 4))


def test_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(VolumeFileError, match="JSON-serialisable"):
        write_volume(tmp_path / "m.npz", np.zeros((2, 2, 2)), metadata={"x": object()})


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, binary_volume: np.ndarray) -> None:
    target = write_volume(tmp_path / "keep.npy", binary_volume)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash mid-write")
    np.testing.assert_array_equal(read_volume(target), binary_volume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npy", "keep.npy.json"]


def test_zarr_overwrite(tmp_path: Path, binary_volume: np.ndarray) -> None:
    p = write_volume(tmp_path / "z.zarr", binary_volume)
    write_volume(p, 1 - binary_volume)
    np.testing.assert_array_equal(read_volume(p), 1 - binary_volume)


def test_builtin_and_info() -> None:
    names = datasets.names()
    assert names == sorted(["berea_sandstone", "fiberform_puma", "ketton_limestone",
                            "nmc_nrel_xct", "nmc_superres_xct"])
    im = read_volume("builtin:nmc_superres_xct")
    assert im.shape == (128, 128, 128) and set(np.unique(im)) == {0, 1}
    info = volume_info("builtin:fiberform_puma")
    assert info.binary and info.voxel_size == (1.3, 1.3, 1.3)
    assert info.solid_fraction == pytest.approx(0.153954, abs=1e-6)
    assert "NASA" in datasets.provenance("fiberform_puma")["license"]
    with pytest.raises(Exception, match="unknown built-in dataset 'nope'"):
        datasets.load("nope")
    gray = datasets.load("fiberform_puma", key="gray")
    assert gray.dtype == np.uint8 and len(np.unique(gray)) > 2
    im[0, 0, 0] ^= 1  # a copy: the cache is not modified
    assert datasets.load("nmc_superres_xct")[0, 0, 0] != im[0, 0, 0]


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("shape", [(1, 4, 5), (3, 1, 5), (3, 4, 1), (1, 1, 1), (1, 1, 5), (5, 6, 3),
                                   (5, 6, 4), (2, 3, 4, 3), (2, 1, 4, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int16, bool])
def test_round_trip_edges_of_one_voxel(tmp_path: Path, suffix: str, shape: tuple[int, ...],
                                       dtype: type) -> None:
    """Axes of length 1 are kept (ImageJ TIFF drops them; X = 1 used to be unreadable) and a last
    axis of 3 or 4 is never taken for RGB samples."""
    arr = (np.arange(int(np.prod(shape))).reshape(shape) % 7).astype(dtype)
    p = write_volume(tmp_path / f"e{suffix}", arr, voxel_size=1.5)
    out, meta = read_volume(p, return_metadata=True)
    assert out.shape == arr.shape and out.dtype == arr.dtype
    np.testing.assert_array_equal(out, arr)
    assert meta["voxel_size"] == (1.5, 1.5, 1.5)
    assert "twinsr_array" not in meta  # the integrity record is checked, not returned


def test_normalize_voxel_size() -> None:
    from twinsr.exceptions import VolumeError
    from twinsr.io import normalize_voxel_size

    assert normalize_voxel_size(2) == (2.0, 2.0, 2.0)
    assert normalize_voxel_size(np.array([1, 2, 3])) == (1.0, 2.0, 3.0)
    assert normalize_voxel_size(None) is None
    for bad, match in ((0, "positive"), ((1, 2), "3 numbers"), ("x", "a number or 3 numbers"),
                       ((1, np.nan, 1), "positive and finite")):
        with pytest.raises(VolumeError, match=match):
            normalize_voxel_size(bad)


def test_zarr_api_of_the_installed_version(tmp_path: Path) -> None:
    """create_zarr_array works with the installed Zarr (v3 API on Python >= 3.11, v2 on 3.10):
    compressed chunks carry a checksum, raw chunks none, and the store reads back."""
    import zarr

    from twinsr.io import create_zarr_array

    major = int(zarr.__version__.split(".")[0])
    assert major == (3 if hasattr(zarr, "create_array") else 2)
    arr = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    for compress in (True, False):
        z = create_zarr_array(tmp_path / f"a{compress}.zarr", shape=arr.shape, dtype=arr.dtype,
                              chunks=(2, 5, 6), compress=compress)
        z[...] = arr
        z.attrs["twinsr_metadata"] = json.dumps({"voxel_size": [1, 1, 1]})
        np.testing.assert_array_equal(read_volume(tmp_path / f"a{compress}.zarr"), arr)
        node = zarr.open(str(tmp_path / f"a{compress}.zarr"), mode="r")
        comps = tuple(node.compressors) if major >= 3 else \
            ((node.compressor,) if node.compressor is not None else ())
        assert (len(comps) == 1 and comps[0].checksum is True) if compress else comps == (), comps


def test_zarr_v2_store_is_read(tmp_path: Path, binary_volume: np.ndarray) -> None:
    """A Zarr format-2 store (what twinsr writes under Zarr 2, and what older tools write)."""
    import zarr

    p = tmp_path / "v2.zarr"
    if hasattr(zarr, "create_array"):
        z = zarr.create_array(store=str(p), shape=binary_volume.shape, dtype=np.uint8,
                              chunks=(8, 8, 8), zarr_format=2)
    else:
        z = zarr.open_array(str(p), mode="w", shape=binary_volume.shape, dtype=np.uint8,
                            chunks=(8, 8, 8))
    z[...] = binary_volume
    z.attrs["twinsr_metadata"] = json.dumps({"voxel_size": [2, 2, 2], "unit": "um"})
    out, meta = read_volume(p, return_metadata=True)
    np.testing.assert_array_equal(out, binary_volume)
    assert meta["voxel_size"] == (2.0, 2.0, 2.0)


def test_damaged_shipped_dataset_is_a_dataset_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged package file says so and how to restore it (reinstall), never a zip traceback."""
    import shutil

    from twinsr.exceptions import DatasetError

    src = Path(datasets.__file__).parent / "data"
    for f in ("nmc_superres_xct.npz", "nmc_superres_xct.json"):
        shutil.copy(src / f, tmp_path / f)
    data = (tmp_path / "nmc_superres_xct.npz").read_bytes()
    (tmp_path / "nmc_superres_xct.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "nmc_superres_xct.json").write_text("{broken")
    monkeypatch.setattr(datasets, "_data_dir", lambda: tmp_path)
    datasets._load_cached.cache_clear()
    try:
        with pytest.raises(DatasetError, match=r"nmc_superres_xct\.npz is damaged.*reinstall"):
            datasets.load("nmc_superres_xct")
        with pytest.raises(DatasetError, match=r"provenance file .*damaged.*reinstall"):
            datasets.provenance("nmc_superres_xct")
        with pytest.raises(DatasetError, match="damaged"):
            read_volume("builtin:nmc_superres_xct")
    finally:
        datasets._load_cached.cache_clear()
