"""The public API: every re-exported name resolves, and importing twinsr stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import twinsr


@pytest.mark.parametrize("name", sorted(twinsr.__all__))
def test_public_name_resolves(name: str) -> None:
    assert getattr(twinsr, name) is not None


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        twinsr.nope  # noqa: B018


def test_import_is_light() -> None:
    code = "import sys, twinsr; print(sorted(m for m in ('torch', 'scipy', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
