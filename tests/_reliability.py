"""Kill-and-resume harness shared by tests/test_reliability_kill.py and
benchmarks/bench_reliability.py.

A *scenario* is one CLI command (``twinsr database``, ``train``, ``superresolve -o OUT.zarr``,
``study``) run as a subprocess in a work folder. :func:`kill_and_resume` runs it once without
interruption (the reference), then again in a second folder where it is killed with SIGKILL at each
:class:`Trigger` in turn (a rerun after every kill), scans the output tree after every kill
(:func:`scan_tree`: every file under a final name must be complete and readable with the project's
readers; temporaries must be recognisable by name) and finally reruns it to completion and compares
the result with the reference (:func:`compare_trees`, per file with the rule of its scenario).

Both runs use the same relative paths inside their own folder, so paths recorded in outputs agree.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: Names that mark a temporary: atomic_path's ``.NAME.XXXX.tmp.SUFFIX``, the ``.partial`` store of
#: an unfinished out-of-core output, a directory moved aside while being replaced.
TEMP_PATTERNS = ("*.tmp*", "*.partial", ".*.old-*")


def is_temporary(rel: Path) -> bool:
    """True if any component of ``rel`` is named like a temporary."""
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in TEMP_PATTERNS)


# ------------------------------------------------------------------------------ running
def env() -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout's sources first, one torch thread per
    core, no progress bars."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("MPLBACKEND", "Agg")
    e["PYTHONHASHSEED"] = "0"
    return e


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "twinsr", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class _Lines:
    """Collects a running process's stderr and stdout lines (background threads)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.err: list[str] = []
        self.out: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(s, buf), daemon=True)
                         for s, buf in ((proc.stderr, self.err), (proc.stdout, self.out))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, buf: list[str]) -> None:
        for line in stream:
            buf.append(line)

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=10)


@dataclass(frozen=True)
class Trigger:
    """When to kill a run.

    ``kind`` is ``"glob"`` (``count`` more paths under the work folder match ``what`` than at
    the start of this run),
    ``"line"`` (``count`` stderr lines of this run match the regex ``what``) or ``"delay"``
    (``delay`` seconds after the start); ``delay`` is also added after a glob/line condition.
    """

    kind: str
    what: str = ""
    count: int = 1
    delay: float = 0.0

    def describe(self) -> str:
        if self.kind == "delay":
            return f"after {self.delay:.2f} s"
        extra = f" + {self.delay:.2f} s" if self.delay else ""
        return f"{self.kind} {self.what!r} x{self.count}{extra}"


def _count(cwd: Path, pattern: str) -> int:
    return len(list(cwd.glob(pattern)))


@dataclass
class Attempt:
    """One run that was to be killed."""

    trigger: str
    killed: bool            # False: it finished before the trigger fired
    seconds: float
    returncode: int | None
    final_files: int = 0
    temporaries: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_until(args: list[str], cwd: Path, trig: Trigger, *, timeout: float) -> Attempt:
    """Start the command; SIGKILL it when ``trig`` fires (or let it finish)."""
    t0 = time.perf_counter()
    proc = start(args, cwd)
    lines = _Lines(proc)
    fired_at: float | None = None
    killed = False
    base = _count(cwd, trig.what) if trig.kind == "glob" else 0
    while proc.poll() is None:
        now = time.perf_counter() - t0
        if now > timeout:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"{args[0]} did not finish or trigger within {timeout} s")
        if fired_at is None:
            if trig.kind == "delay":
                fired_at = 0.0
            elif trig.kind == "glob" and _count(cwd, trig.what) >= base + trig.count:
                fired_at = now
            elif trig.kind == "line" and sum(bool(re.search(trig.what, s))
                                             for s in list(lines.err)) >= trig.count:
                fired_at = now
        if fired_at is not None and now >= fired_at + trig.delay:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
            break
        time.sleep(0.003)
    lines.join()
    rc = proc.returncode
    att = Attempt(trig.describe(), killed, time.perf_counter() - t0, rc)
    if not killed and rc != 0:
        att.problems.append(f"the run exited {rc} before the kill: {''.join(lines.err)[-800:]}")
    return att


def run_to_end(args: list[str], cwd: Path, *, timeout: float) -> tuple[float, str | None]:
    """Run the command to completion: (seconds, None) or (seconds, error text) on a non-zero
    exit."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "twinsr", *args], cwd=cwd, env=env(),
                       capture_output=True, text=True, timeout=timeout)
    err = None if p.returncode == 0 else f"exit {p.returncode}: {p.stderr.strip()[-1500:]}"
    return time.perf_counter() - t0, err


# ------------------------------------------------------------------------------ checking files
def _check_png(p: Path) -> None:
    b = p.read_bytes()
    if not (b.startswith(b"\x89PNG\r\n\x1a\n") and b.endswith(b"IEND\xaeB`\x82")):
        raise ValueError("not a complete PNG (magic or IEND chunk missing)")


def _check_pdf(p: Path) -> None:
    b = p.read_bytes()
    if not (b.startswith(b"%PDF") and b.rstrip().endswith(b"%%EOF")):
        raise ValueError("not a complete PDF (magic or %%EOF missing)")


def _check_pt(p: Path) -> None:
    import torch

    if p.name == "model.pt":
        from twinsr.sr import load_model

        load_model(p)
        return
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError("not a dict")


def _check_volume(p: Path) -> None:
    from twinsr.io import read_volume

    if p.suffix == ".npz":  # several arrays (e.g. a study's error slices): read every member
        with np.load(p, allow_pickle=False) as z:
            for k in z.files:
                np.asarray(z[k])
        return
    read_volume(p)


def _check_json(p: Path) -> None:
    json.loads(p.read_text(encoding="utf-8"))


def _check_csv(p: Path) -> None:
    import pandas as pd

    pd.read_csv(p)


def _check_yaml(p: Path) -> None:
    import yaml

    yaml.safe_load(p.read_text(encoding="utf-8"))


def _check_html(p: Path) -> None:
    if not p.read_text(encoding="utf-8").rstrip().endswith("</html>"):
        raise ValueError("HTML does not end with </html>")


def _check_text(p: Path) -> None:
    if not p.read_text(encoding="utf-8").strip():
        raise ValueError("empty text file")


CHECKERS: dict[str, Callable[[Path], None]] = {
    ".png": _check_png, ".pdf": _check_pdf, ".pt": _check_pt, ".npy": _check_volume,
    ".npz": _check_volume, ".tif": _check_volume, ".h5": _check_volume, ".zarr": _check_volume,
    ".json": _check_json, ".csv": _check_csv, ".yaml": _check_yaml, ".html": _check_html,
    ".md": _check_text,
}


def final_paths(root: Path) -> tuple[list[Path], list[Path]]:
    """(final-named entries, temporaries) under ``root``, relative; a ``.zarr`` store counts as
    one entry (its chunk files are checked by reading it)."""
    finals, temps = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        rel_d = d.relative_to(root)
        for name in list(dirnames):
            rel = rel_d / name
            if is_temporary(rel):
                temps.append(rel)
                dirnames.remove(name)
            elif name.endswith(".zarr"):
                finals.append(rel)
                dirnames.remove(name)
        for name in filenames:
            rel = rel_d / name
            (temps if is_temporary(rel) else finals).append(rel)
    return sorted(finals), sorted(temps)


def scan_tree(root: Path, *, ignore: tuple[str, ...] = ()) -> tuple[int, list[str], list[str]]:
    """Check every final-named file under ``root``: (count, temporaries, problems).

    A problem is a final-named file that does not load with its reader, or one of a kind the
    scan has no reader for (listed so that it is looked at).
    """
    finals, temps = final_paths(root)
    problems = []
    n = 0
    for rel in finals:
        if any(fnmatch.fnmatch(str(rel), pat) for pat in ignore):
            continue
        n += 1
        check = CHECKERS.get(rel.suffix.lower())
        if check is None:
            if rel.name.endswith(".npy.json"):
                check = _check_json
            else:
                problems.append(f"{rel}: no reader for this kind of file")
                continue
        try:
            check(root / rel)
        except Exception as exc:
            problems.append(f"{rel}: {type(exc).__name__}: {exc}")
    return n, [str(t) for t in temps], problems


# ------------------------------------------------------------------------------ comparing trees
def _bytes_equal(a: Path, b: Path) -> str | None:
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def _arrays_equal(a: Path, b: Path) -> str | None:
    """Volumes: same dtype, shape and values (read with twinsr.io), and for npz the same members."""
    from twinsr.io import read_volume

    if a.suffix == ".npz":
        with np.load(a) as za, np.load(b) as zb:
            if sorted(za.files) != sorted(zb.files):
                return f"members differ: {za.files} vs {zb.files}"
            for k in za.files:
                x, y = za[k], zb[k]
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    return f"member {k} differs"
        return None
    (x, mx), (y, my) = (read_volume(p, return_metadata=True) for p in (a, b))
    if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
        return f"array differs ({x.shape} {x.dtype} vs {y.shape} {y.dtype})"
    if json.dumps(mx, sort_keys=True, default=str) != json.dumps(my, sort_keys=True, default=str):
        return "metadata differs"
    return None


def _drop(d: Any, keys: tuple[str, ...]) -> Any:
    """``d`` without the dotted ``keys`` ("result.seconds"; ``*`` stands for every list item,
    "history.*.seconds")."""
    d = json.loads(json.dumps(d, default=str))

    def strip(node: Any, path: list[str]) -> None:
        head, rest = path[0], path[1:]
        if head == "*" and isinstance(node, list):
            for item in node:
                if rest:
                    strip(item, rest)
            return
        if not isinstance(node, dict) or head not in node:
            return
        if rest:
            strip(node[head], rest)
        else:
            node.pop(head)

    for k in keys:
        strip(d, k.split("."))
    return d


def json_except(*keys: str) -> Callable[[Path, Path], str | None]:
    def cmp(a: Path, b: Path) -> str | None:
        x, y = (_drop(json.loads(p.read_text(encoding="utf-8")), keys) for p in (a, b))
        return None if x == y else "JSON differs outside " + ", ".join(keys)
    return cmp


def csv_except(*columns: str) -> Callable[[Path, Path], str | None]:
    def cmp(a: Path, b: Path) -> str | None:
        import pandas as pd

        x, y = (pd.read_csv(p).drop(columns=list(columns)) for p in (a, b))
        return None if x.equals(y) else "table differs outside " + ", ".join(columns)
    return cmp


def _tensors(obj: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}[{i}]"))
    return out


def torch_except(*keys: str) -> Callable[[Path, Path], str | None]:
    """Every tensor bit-identical (weights, optimizer moments, RNG states); the other entries
    equal except the dotted ``keys``."""
    def cmp(a: Path, b: Path) -> str | None:
        import torch

        x, y = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
        tx, ty = _tensors(x), _tensors(y)
        if sorted(tx) != sorted(ty):
            return "tensor names differ"
        for k in tx:
            if tx[k].dtype != ty[k].dtype or not torch.equal(tx[k], ty[k]):
                return f"tensor {k} differs"

        def plain(o: Any) -> Any:
            if isinstance(o, torch.Tensor):
                return "<tensor>"
            if isinstance(o, dict):
                return {str(k): plain(v) for k, v in o.items()}
            if isinstance(o, (list, tuple)):
                return [plain(v) for v in o]
            return o

        px, py = (_drop(plain(o), keys) for o in (x, y))
        return None if px == py else "non-tensor entries differ outside " + ", ".join(keys)
    return cmp


def bytes_except(pattern: bytes) -> Callable[[Path, Path], str | None]:
    """Bytes equal once every match of the regex ``pattern`` is removed."""
    def cmp(a: Path, b: Path) -> str | None:
        x, y = (re.sub(pattern, b"", p.read_bytes()) for p in (a, b))
        return None if x == y else f"bytes differ outside {pattern!r}"
    return cmp


@dataclass(frozen=True)
class Rule:
    """How a file matching ``pattern`` is compared, and why (if not byte for byte)."""

    pattern: str
    compare: Callable[[Path, Path], str | None]
    why: str = ""


def compare_trees(ref: Path, got: Path, rules: list[Rule], ignore: tuple[str, ...] = ()
                  ) -> list[str]:
    """Differences between the final-named files of two trees (first matching rule; default
    byte-identical), but those matching a pattern of ``ignore``."""
    def kept(paths: list[Path]) -> list[Path]:
        return [p for p in paths if not any(fnmatch.fnmatch(str(p), pat) for pat in ignore)]

    fa, fb = kept(final_paths(ref)[0]), kept(final_paths(got)[0])
    diffs = [f"only in the reference: {p}" for p in sorted(set(fa) - set(fb))]
    diffs += [f"only in the resumed run: {p}" for p in sorted(set(fb) - set(fa))]
    for rel in sorted(set(fa) & set(fb)):
        rule = next((r for r in rules if fnmatch.fnmatch(str(rel), r.pattern)), None)
        cmp = rule.compare if rule is not None else _bytes_equal
        a, b = ref / rel, got / rel
        if a.is_dir():  # a .zarr store: the array, its metadata and every file's bytes
            why = _arrays_equal(a, b) or compare_trees(a, b, [])
            why = "; ".join(why) if isinstance(why, list) else why
        else:
            why = cmp(a, b)
        if why:
            diffs.append(f"{rel}: {why}")
    return diffs


# ------------------------------------------------------------------------------ scenarios
@dataclass
class Scenario:
    """One command under test.

    ``prepare(folder)`` writes its inputs into a work folder; ``args`` are the CLI arguments
    (relative paths); ``out`` is the output path inside the folder (scanned and compared);
    ``rules`` say how files are compared where not byte for byte; ``ignore`` lists outputs that
    are neither scanned nor compared (TensorBoard logs).
    """

    name: str
    args: list[str]
    out: str
    prepare: Callable[[Path], None]
    rules: list[Rule] = field(default_factory=list)
    timeout: float = 600.0
    ignore: tuple[str, ...] = ()


@dataclass
class Outcome:
    scenario: str
    reference_seconds: float
    attempts: list[Attempt]
    final_seconds: float
    differences: list[str]
    leftover_temporaries: list[str]
    final_error: str | None = None

    @property
    def problems(self) -> list[str]:
        return [p for a in self.attempts for p in a.problems]

    @property
    def kills(self) -> int:
        return sum(a.killed for a in self.attempts)


def kill_and_resume(scn: Scenario, work: Path,
                    triggers: list[Trigger] | Callable[[float], list[Trigger]]) -> Outcome:
    """Reference run in ``work/ref``; killed runs (one per trigger), each followed by a tree scan,
    then a final rerun in ``work/kill``; the two outputs compared.

    ``triggers`` may be a function of the reference run's wall-clock seconds (random delays).
    """
    ref, got = work / "ref", work / "kill"
    for d in (ref, got):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        scn.prepare(d)
    t_ref, err = run_to_end(scn.args, ref, timeout=scn.timeout)
    if err is not None:
        raise RuntimeError(f"the uninterrupted `twinsr {' '.join(scn.args)}` failed: {err}")
    if callable(triggers):
        triggers = triggers(t_ref)
    attempts = []
    for trig in triggers:
        att = run_until(scn.args, got, trig, timeout=scn.timeout)
        out = got / scn.out
        if out.exists() or out.with_name(out.name + ".partial").exists():
            root = out if out.is_dir() else out.parent
            if out.suffix == ".zarr":
                root = got
            n, temps, problems = scan_tree(root, ignore=scn.ignore)
            att.final_files, att.temporaries, att.problems = n, temps, problems
        attempts.append(att)
    t_final, final_error = run_to_end(scn.args, got, timeout=scn.timeout)
    out_ref, out_got = ref / scn.out, got / scn.out
    if out_ref.suffix == ".zarr":
        diffs = compare_trees(ref, got, scn.rules, scn.ignore)
        _, temps = final_paths(got)
    else:
        diffs = compare_trees(out_ref, out_got, scn.rules, scn.ignore)
        _, temps = final_paths(out_got)
    return Outcome(scn.name, t_ref, attempts, t_final, diffs, [str(t) for t in temps],
                   final_error)


# ---- the four commands, tiny ------------------------------------------------------------------
def _params(folder: Path) -> None:
    from twinsr.stochastic import ChiSquareModel

    ChiSquareModel(nu=1.4, gamma=0.3).to_json(folder / "params.json")


def database_scenario(n: int = 6, shape: int = 24) -> Scenario:
    args = ["database", "params.json", "-o", "db", "--n", str(n), "--shape", str(shape),
            "--alphas", "2,4", "--split", "4,1,1", "--seed", "3", "--device", "cpu"]
    return Scenario("database", args, "db", _params)


# TensorBoard event logs (written when tensorboard is installed) are neither scanned nor
# compared: stamped with wall-clock times, one new file per call (a resumed run has several);
# they record a run, they are not its results
_TRAIN_CFG = """\
# micro network, more epochs, no time budget (a wall-clock budget would make the epoch count
# depend on the machine's load)
epochs: 8
steps_per_epoch: 3
patience: 10
max_seconds: null
threshold_bins: 64
num_threads: 1
"""


def _train_inputs(folder: Path) -> None:
    cache = folder.parent / "_train_db"
    if not cache.exists():
        from twinsr.sr import build_database
        from twinsr.stochastic import ChiSquareModel

        build_database([ChiSquareModel(nu=1.4, gamma=0.3)], cache, n_realizations=3, shape=16,
                       alphas=(2,), split=(1, 1, 1), seed=5, diffusion=True, device="cpu")
    shutil.copytree(cache, folder / "db")
    (folder / "train.yaml").write_text(_TRAIN_CFG, encoding="utf-8")


TRAIN_RULES = [
    Rule("history.csv", csv_except("seconds"), "cumulative epoch wall-clock seconds"),
    Rule("run.json", json_except("seconds", "result.seconds"), "wall-clock seconds of the call"),
    Rule("checkpoint.pt", torch_except("history.*.seconds", "sha256"),
         "the history inside holds epoch wall-clock seconds; every tensor (weights, Adam "
         "moments, RNG states) compared bit for bit"),
]


def train_scenario(inputs: str = "diffu") -> Scenario:
    args = ["-v", "train", "db", "--alpha", "2", "--inputs", inputs, "-o", "run", "--preset",
            "micro", "--config", "train.yaml", "--resume", "--device", "cpu"]
    return Scenario("train", args, "run", _train_inputs, TRAIN_RULES,
                    ignore=("tensorboard/*",))


def _sr_inputs(folder: Path, *, edge: int = 24) -> None:
    import torch

    from twinsr.io import write_volume
    from twinsr.sr import SRResNet3d, save_bundle

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        net = SRResNet3d(1, 2, channels=4, blocks=1)
    save_bundle(folder / "model.pt", net, threshold=0.5)
    lr = (np.random.default_rng(11).random((edge,) * 3) < 0.5).astype(np.uint8)
    write_volume(folder / "lr.npy", lr, voxel_size=2.0)


def superresolve_scenario(edge: int = 24, tile: int = 6) -> Scenario:
    args = ["superresolve", "lr.npy", "--model", "model.pt", "-o", "sr.zarr", "--tile", str(tile),
            "--device", "cpu"]
    return Scenario("superresolve", args, "sr.zarr",
                    lambda f: _sr_inputs(f, edge=edge))


STUDY_RULES = [
    Rule("study.json", json_except("started", "first_started"), "start timestamps"),
    Rule("steps.json", lambda a, b: None, "per-call step times: one entry per call (more "
                                          "calls in the resumed folder)"),
    Rule("report.md", bytes_except(rb"Run time [^\n]*"), "states this call's run time"),
    Rule("report.html", bytes_except(rb"Run time [^<]*"), "states this call's run time"),
    Rule("*.pdf", bytes_except(rb"/CreationDate \(D:[^)]*\)"), "matplotlib stamps a date"),
    Rule("runs/*/history.csv", csv_except("seconds"), "cumulative epoch wall-clock seconds"),
    Rule("runs/*/run.json", json_except("seconds", "result.seconds"), "wall-clock seconds"),
    Rule("runs/*/checkpoint.pt", torch_except("history.*.seconds", "sha256"),
         "history seconds (and the checksum of the contents, which include them)"),
    Rule("params/*.json", json_except("calibration.seconds"), "wall-clock seconds of the fit"),
    Rule("validation/*/validation.json",
         json_except("seconds", "data.seconds", "twins.*.seconds"),
         "wall-clock seconds of each descriptor"),
    Rule("*.npz", _arrays_equal, "zip members carry a timestamp; members compared as arrays"),
]


def study_scenario() -> Scenario:
    return Scenario("study", ["study", "--preset", "micro", "-o", "study", "--device", "cpu"],
                    "study", lambda f: None, STUDY_RULES, timeout=900.0,
                    ignore=("runs/*/tensorboard/*",))
