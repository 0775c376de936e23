"""Labelled (multi-phase) volumes: the shared check, label names in metadata, the built-in labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twinsr import VolumeError, VolumeFileError
from twinsr import _validation as v
from twinsr.io import read_metadata, read_volume, write_volume

NAMES = ["pore", "NMC", "binder"]


def _labels(rng: np.random.Generator, k: int = 3, shape: tuple[int, ...] = (6, 7, 8)) -> np.ndarray:
    lab = rng.integers(0, k, size=shape).astype(np.uint8)
    lab.flat[:k] = np.arange(k)  # every label present
    return lab


def test_binary_is_the_two_label_case(rng: np.random.Generator) -> None:
    im = (rng.random((5, 6, 7)) > 0.5).astype(np.uint8)
    for enc in (im, im.astype(bool), im.astype(np.int64), im.astype(np.float32)):
        np.testing.assert_array_equal(v.as_label_volume(enc), v.as_binary_volume(enc))
        assert v.as_label_volume(enc).dtype == np.uint8


def test_accepted_encodings(rng: np.random.Generator) -> None:
    lab = _labels(rng, 4)
    assert v.as_label_volume(lab) is lab
    for dt in (np.int16, np.uint16, np.int64, np.float64):
        out = v.as_label_volume(lab.astype(dt))
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, lab)
    # 255 labels is the most that fits
    big = (np.arange(255 * 2) % 255).reshape(2, 15, 17)
    assert int(v.as_label_volume(big).max()) == 254


def test_n_labels_allows_absent_labels_below_it() -> None:
    crop = np.zeros((2, 2, 2), np.uint8)
    crop[0] = 2  # label 1 absent: a crop without that phase
    np.testing.assert_array_equal(v.as_label_volume(crop, n_labels=3), crop)
    with pytest.raises(VolumeError, match=r"label\(s\) 1 are absent"):
        v.as_label_volume(crop)
    with pytest.raises(VolumeError, match=r"above n_labels - 1 = 1"):
        v.as_label_volume(crop, n_labels=2)


@pytest.mark.parametrize(("arr", "pattern"), [
    (np.array([0, 1, 3, 3]).reshape(1, 2, 2), r"contiguous 0\.\.3, but label\(s\) 2 are absent"),
    (np.array([0, 255, 0, 255], np.uint8).reshape(1, 2, 2), r"label 255, above 254: at most 255"),
    (np.array([0, 300, 1, 2]).reshape(1, 2, 2), r"label 300, above 254"),
    (np.array([0, -1, 1, 2]).reshape(1, 2, 2), r"negative label -1"),
    (np.array([0, 1.5, 1, 0]).reshape(1, 2, 2), r"1 non-integer value\(s\) \(e\.g\. 1\.5\)"),
    (np.array([0, np.nan, 1, 0]).reshape(1, 2, 2), r"NaN/inf"),
    (np.array([0, 1, 1, 0], dtype=complex).reshape(1, 2, 2), r"integer labels"),
    (np.zeros((3, 3)), r"must be 3-D"),
])
def test_bad_labels(arr: np.ndarray, pattern: str) -> None:
    with pytest.raises(VolumeError, match=pattern):
        v.as_label_volume(arr)


def test_check_label_names() -> None:
    assert v.check_label_names(NAMES, 3) == tuple(NAMES)
    with pytest.raises(VolumeError, match=r"names 'pore' twice \(labels 0 and 2\)"):
        v.check_label_names(["pore", "NMC", "pore"])
    with pytest.raises(VolumeError, match=r"names for missing labels \[3\]"):
        v.check_label_names([*NAMES, "extra"], 3)
    with pytest.raises(VolumeError, match=r"no names for labels \[2\]"):
        v.check_label_names(NAMES[:2], 3)
    with pytest.raises(VolumeError, match="non-empty strings"):
        v.check_label_names(["pore", ""])
    with pytest.raises(VolumeError, match="list of strings"):
        v.check_label_names("pore")
    with pytest.raises(VolumeError, match="at most 255"):
        v.check_label_names([f"p{i}" for i in range(256)])


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".npz", ".raw", ".zarr", ".h5"])
def test_label_names_round_trip(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    lab = _labels(rng)
    p = write_volume(tmp_path / f"lab{suffix}", lab, voxel_size=(0.03, 0.01, 0.01),
                     label_names=NAMES, metadata={"seed": 3})
    back, meta = read_volume(p, return_metadata=True)
    np.testing.assert_array_equal(back, lab)
    assert back.dtype == np.uint8
    assert meta["label_names"] == tuple(NAMES)
    assert meta["seed"] == 3
    assert read_metadata(p)["label_names"] == tuple(NAMES)
    np.testing.assert_allclose(meta["voxel_size"], (0.03, 0.01, 0.01))
    # names passed through `metadata` are checked the same way
    p2 = write_volume(tmp_path / f"lab2{suffix}", lab, metadata={"label_names": NAMES})
    assert read_metadata(p2)["label_names"] == tuple(NAMES)


def test_write_refuses_bad_names(tmp_path: Path, rng: np.random.Generator) -> None:
    lab = _labels(rng)
    with pytest.raises(VolumeError, match="twice"):
        write_volume(tmp_path / "a.npz", lab, label_names=["pore", "NMC", "NMC"])
    with pytest.raises(VolumeError, match=r"label 2, above n_labels - 1 = 1"):
        write_volume(tmp_path / "a.npz", lab, label_names=["pore", "NMC"])
    with pytest.raises(VolumeError, match="twice"):
        write_volume(tmp_path / "a.npz", lab, metadata={"label_names": ["a", "a", "b"]})
    assert not (tmp_path / "a.npz").exists()


def test_damaged_label_names_on_read(tmp_path: Path) -> None:
    lab = np.zeros((2, 2, 2), np.uint8)
    p = write_volume(tmp_path / "a.npy", lab, label_names=["pore", "solid"])
    side = Path(str(p) + ".json")
    side.write_text(side.read_text().replace('"solid"', '"pore"'))
    with pytest.raises(VolumeFileError, match=r"invalid label_names.*'pore' twice"):
        read_metadata(p)


def test_builtin_labels_carry_names() -> None:
    lab, meta = read_volume("builtin:nmc_nrel_xct", key="labels", return_metadata=True)
    assert meta["label_names"] == ("pore", "NMC", "binder")
    out = v.as_label_volume(lab, n_labels=len(meta["label_names"]))
    frac = np.bincount(out.ravel(), minlength=3) / out.size
    np.testing.assert_allclose(frac, [0.40, 0.50, 0.10], atol=0.01)
    assert "label_names" not in read_metadata("builtin:nmc_nrel_xct")
