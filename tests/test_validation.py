"""Shared input checks: every bad input gets a clear, specific error."""

from __future__ import annotations

import numpy as np
import pytest

from twinsr import MemoryBudgetError, TwinsrError, VolumeError
from twinsr import _validation as v


def test_errors_are_value_errors() -> None:
    assert issubclass(VolumeError, TwinsrError)
    assert issubclass(TwinsrError, ValueError)


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 4, 5), ()])
def test_wrong_ndim(shape: tuple[int, ...]) -> None:
    with pytest.raises(VolumeError, match=r"must be 3-D, got ndim="):
        v.check_volume(np.zeros(shape))


def test_2d_hint() -> None:
    with pytest.raises(VolumeError, match=r"im\[None\]"):
        v.as_binary_volume(np.zeros((4, 4)))


def test_empty_axis() -> None:
    with pytest.raises(VolumeError, match="empty axis"):
        v.check_volume(np.zeros((4, 0, 4)))


def test_binary_encodings() -> None:
    base = np.zeros((3, 3, 3), dtype=np.uint8)
    base[0] = 1
    assert v.as_binary_volume(base) is base
    np.testing.assert_array_equal(v.as_binary_volume(base.astype(bool)), base)
    np.testing.assert_array_equal(v.as_binary_volume(base * 255), base)
    np.testing.assert_array_equal(v.as_binary_volume(base.astype(np.float64)), base)
    np.testing.assert_array_equal(v.as_binary_volume(np.ones((2, 2, 2), np.int16)), np.ones((2, 2, 2)))
    out = v.as_binary_volume(base * 255)
    assert out.dtype == np.uint8


def test_non_binary_lists_values() -> None:
    im = np.arange(27).reshape(3, 3, 3) % 3
    with pytest.raises(VolumeError, match=r"must be binary.*found 3 distinct values: 0, 1, 2"):
        v.as_binary_volume(im)
    with pytest.raises(VolumeError, match="must be binary"):
        v.as_binary_volume(np.full((2, 2, 2), 7))
    with pytest.raises(VolumeError, match="must be binary"):
        v.as_binary_volume(np.array([-1, 0] * 4).reshape(2, 2, 2))


def test_nan_rejected() -> None:
    im = np.zeros((3, 3, 3))
    im[1, 1, 1] = np.nan
    with pytest.raises(VolumeError, match="1 NaN/inf"):
        v.as_binary_volume(im)
    im[1, 1, 1] = np.inf
    with pytest.raises(VolumeError, match="NaN/inf"):
        v.check_finite(im)


def test_axis_phase_alpha() -> None:
    assert v.check_axis(-1) == 2
    with pytest.raises(VolumeError, match="axis"):
        v.check_axis(3)
    with pytest.raises(VolumeError, match="axis"):
        v.check_axis(1.0)  # type: ignore[arg-type]
    assert v.check_phase("pore") == 0 and v.check_phase("Solid") == 1 and v.check_phase(1) == 1
    with pytest.raises(VolumeError, match="phase"):
        v.check_phase(2)
    with pytest.raises(VolumeError, match="phase"):
        v.check_phase(True)
    assert v.check_alpha(4) == 4
    with pytest.raises(VolumeError, match=r"one of \(2, 4, 8\), got 3"):
        v.check_alpha(3)
    assert v.check_alpha(3, allowed=None) == 3


def test_positive_and_shape() -> None:
    assert v.check_positive("2.5", "nu") == 2.5
    for bad in (0, -1, float("nan"), float("inf"), "x"):
        with pytest.raises(VolumeError, match="nu"):
            v.check_positive(bad, "nu")
    assert v.check_shape(8) == (8, 8, 8)
    assert v.check_shape([4, 5, 6]) == (4, 5, 6)
    with pytest.raises(VolumeError, match="positive along every axis"):
        v.check_shape((4, 0, 4))
    with pytest.raises(VolumeError, match="3 entries"):
        v.check_shape((4, 4))


def test_memory_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v, "available_memory_bytes", lambda: 1 << 30)
    with pytest.raises(MemoryBudgetError, match=r"needs about 2\.0 GiB but only 1\.0 GiB"):
        v.check_memory(2 * (1 << 30), "this request")
    v.check_memory(1 << 20, "small request")


def test_available_memory_positive() -> None:
    assert v.available_memory_bytes() > 1 << 20


def test_resolve_device() -> None:
    assert v.resolve_device("cpu") == "cpu"
    assert v.resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(VolumeError, match="device"):
        v.resolve_device("tpu")


def test_check_int_bounds_bools_and_error_class() -> None:
    from twinsr._validation import check_int
    from twinsr.exceptions import ConfigError, VolumeError

    assert check_int(np.int32(5), "n", minimum=1, maximum=5) == 5
    assert isinstance(check_int(np.int64(2), "n"), int)
    with pytest.raises(VolumeError, match=r"`n` must be an integer >= 1, got 0"):
        check_int(0, "n", minimum=1)
    with pytest.raises(ConfigError, match=r"`lag` must be an integer in 1\.\.9 for a box, got 10"):
        check_int(10, "lag", minimum=1, maximum=9, context=" for a box", error=ConfigError)
    with pytest.raises(VolumeError, match="got True"):
        check_int(True, "n")
    with pytest.raises(VolumeError, match=r"got 2\.0"):
        check_int(2.0, "n", maximum=3)


def test_check_positive_hint_and_error_class() -> None:
    from twinsr._validation import check_positive
    from twinsr.exceptions import ConfigError, VolumeError

    assert check_positive("0.5", "g") == 0.5
    assert check_positive(0, "g", allow_zero=True) == 0.0
    with pytest.raises(ConfigError, match=r"`nu` must be finite and > 0 \(threshold\), got -1"):
        check_positive(-1, "nu", hint="threshold", error=ConfigError)
    with pytest.raises(VolumeError, match="must be a number, got 'x'"):
        check_positive("x", "g")
    with pytest.raises(VolumeError, match="finite"):
        check_positive(float("inf"), "g")


def test_phase_names_are_the_labels() -> None:
    from twinsr._validation import PHASE_NAMES, check_phase

    assert [check_phase(n) for n in PHASE_NAMES] == [0, 1]
    assert [check_phase(str(i)) for i in range(2)] == [0, 1]
