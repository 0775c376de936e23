"""Shared helpers for benchmark scripts: machine description, peak memory, BENCHMARKS.md sections.

Each benchmark script owns one section of BENCHMARKS.md, delimited by
``<!-- begin:NAME -->`` / ``<!-- end:NAME -->``; re-running the script replaces its section only.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """One line describing the machine: CPU model, cores, RAM, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}, Python {sys.version.split()[0]}"


def git_hash() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except Exception:
        return "unknown"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(fn: Callable[[], Any], *, interval: float = 0.02) -> tuple[Any, float, float]:
    """Run ``fn()`` and return (result, seconds, peak RSS increase in GiB above the start).

    Peak memory is sampled by a background thread every ``interval`` seconds (RSS of this
    process), so it covers numpy, numba and torch allocations alike. Run peers in a subprocess
    (:func:`measure_subprocess`) when their import itself costs memory.
    """
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
    peak[0] = max(peak[0], _rss_bytes())
    return out, dt, (peak[0] - base) / 2**30


def write_section(name: str, body: str, *, command: str) -> None:
    """Replace (or append) section ``name`` of BENCHMARKS.md with ``body``, stamped with
    the command, machine, date and git hash."""
    stamp = (
        f"_Command_: `{command}`  \n_Machine_: {machine()}  \n"
        f"_Date_: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} UTC, commit {git_hash()}\n\n"
    )
    block = f"<!-- begin:{name} -->\n{stamp}{body.rstrip()}\n<!-- end:{name} -->"
    text = BENCH_MD.read_text(encoding="utf-8") if BENCH_MD.exists() else "# Benchmarks\n"
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    if begin in text and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        text = text[:i] + block + text[j:]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = BENCH_MD.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, BENCH_MD)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
