"""Provenance recorded in run folders, databases and reports: package versions and git hash."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_PACKAGES", "git_hash", "package_versions"]

DEFAULT_PACKAGES = ("twinsr", "numpy", "scipy", "torch", "numba", "pandas", "matplotlib", "pydantic")


def package_versions(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Python's version and the installed versions of ``packages`` ("not installed" if absent)."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_hash() -> str:
    """The commit of the twinsr source tree (full hash), or "unknown" outside a git checkout."""
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                       text=True, stderr=subprocess.DEVNULL, timeout=5).strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
