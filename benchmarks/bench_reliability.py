"""Fault tolerance: kill-and-resume of the long-running commands with random SIGKILL points, and
damaged inputs (cut, zero-byte, foreign, bit-flipped) for every reader; section ``reliability``.

Kill and resume (``tests/_reliability.py``): each of ``twinsr database``, ``train``,
``superresolve -o OUT.zarr`` and ``study --preset micro`` runs once uninterrupted, then in a second
folder it is killed with SIGKILL at ``--kills`` random points (seeded: a random delay after the
start, a progress line or file plus a random delay, or the moment a temporary file is seen, i.e.
mid-write), rerun after each kill; the output tree is scanned after every kill and the final
rerun's outputs are compared with the uninterrupted run's.

Damaged inputs: ``--flips`` random single-bit flips (seeded positions), cuts at 10 points, a
zero-byte file and a foreign file per reader. Outcomes: ``error`` (a TwinsrError naming the file),
``same`` (the flip hit an unused byte), ``undetectable`` (a different result where the format
has no redundancy to see it, e.g. raw voxel data), and failures (another exception type, an error
that does not name the file, or a silently different result where it could be seen).

Run: .venv/bin/python benchmarks/bench_reliability.py [--seed 0] [--kills 5] [--flips 200]
[--commands database,train,superresolve,study] [--no-write]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _record import table, write_section  # noqa: E402

import _reliability as R  # noqa: E402
from twinsr.exceptions import TwinsrError  # noqa: E402

# ---- what this work found (each guarded by the named test) -------------------------------------
FOUND = [
    ("bundle (`sr/bundle.py`)", "random bit flips loaded silently as another network (237 of "
     "300 flips: torch's format has no data checksum)", "fixed: SHA-256 of the contents stored "
     "and checked", "test_reliability_corrupt::test_bundle_bit_flips_are_refused_or_harmless"),
    ("bundle (`sr/bundle.py`)", "the same bundle had different bytes on every save (torch.save "
     "names its archive after the random temporary file)", "fixed: serialised in memory",
     "test_reliability_corrupt::test_same_bundle_same_bytes"),
    ("parameter JSON (`ChiSquareModel.from_json`)", "a non-UTF-8 byte raised a bare "
     "UnicodeDecodeError (411 of 2960 bit flips); parameter errors did not name the file "
     "(1653)", "fixed", "test_reliability_corrupt::test_params_bit_flips"),
    ("study.json (`run_study` resume)", "'different study' errors named the folder, not "
     "study.json (139 of 600 flips); damaged step/source/α of a skip record were read as valid",
     "fixed", "test_reliability_corrupt::test_study_json_bit_flips"),
    ("study YAML (`StudyConfig.from_yaml`)", "non-UTF-8 text raised UnicodeDecodeError",
     "fixed", "test_reliability_corrupt::test_study_yaml_that_is_not_text"),
    ("bool TIFF (`io.read_volume`)", "every uncompressed bool TIFF twinsr wrote was refused as "
     "damaged (1-bit strips, the size check counted bytes)", "fixed",
     "test_reliability_props::test_bool_tiff_round_trip"),
    ("volumes (`io.read_volume`)", "a flipped bit in uncompressed voxel data was read "
     "silently (64 of 212 flips of a TIFF, 182 of an npy, 200 of a raw); a flipped chunk "
     "address in a compressed HDF5 file read another valid chunk (all zeros)", "fixed: every "
     "volume records the CRC-32 of its voxels, checked on read",
     "test_reliability_corrupt::test_changed_voxels_are_refused, test_volume_bit_flips"),
    ("HDF5 / Zarr (`io.read_volume`)", "a flipped bit in an HDF5 dataspace made the reader "
     "fill a buffer of the damaged size: the process was killed for memory", "fixed: header "
     "checked against the recorded shape and the memory before reading",
     "test_reliability_corrupt::test_damaged_dimension_is_refused_before_reading"),
    ("HDF5 (libhdf5 2.0.0 via h5py 3.16)", "one bit (byte 4569, bit 1) of an 11 kB "
     "gzip HDF5 file twinsr wrote crashes the process with SIGSEGV while its attributes are "
     "read (found by flipping every bit of bytes 0-4640)", "not fixable in-process "
     "(upstream); this sweep reads each file in a worker process", "bench: read_volume .h5"),
    ("study.json (`run_study` resume)", "a damaged 'skipped' key silently dropped every "
     "skip record", "fixed", "test_reliability_corrupt::test_study_json_without_its_records"),
    ("train YAML (`TrainConfig.from_yaml`)", "non-UTF-8 text raises UnicodeDecodeError; an "
     "invalid value's error does not name the file",
     "fixed: one shared YAML reader (twinsr._validation.read_yaml_config)",
     "test_reliability_corrupt::test_train_yaml_*"),
    ("checkpoint (`train --resume`)", "a damaged key raises a bare KeyError; flipped bits in "
     "the weights resume silently from other weights (no checksum)",
     "fixed: every entry read inside the check, SHA-256 of the contents stored and checked",
     "test_reliability_corrupt::test_checkpoint_*"),
    ("database (`open_database`)", "a zero-byte array raises EOFError, a damaged npy header "
     "tokenize.TokenError; a damaged manifest key (18 of 400 flips) a bare KeyError; entry "
     "arrays carry no checksum", "fixed: manifest structure checked, every np.load error is a "
     "DatasetError naming the file; entry arrays still carry no checksum (flips in their voxel "
     "data are undetectable)",
     "test_reliability_corrupt::test_database_*"),
    ("`superresolve -o OUT.zarr` (`scale.py`)", "killed between creating the store and writing "
     "its settings, between removing the block markers and the rename, or after the rename: "
     "every rerun fails", "fixed: settings written atomically last, renames before the "
     "markers are removed, a rerun returns the finished output of the same settings",
     "test_reliability_kill::test_superresolve_zarr_crash_*, *_rerun_after_completion"),
    ("`train` (`sr/train.py`)", "killed after the final checkpoint, run.json is never written; "
     "after the last epoch's checkpoint, history.csv lacks that epoch for good",
     "fixed: history.csv before the checkpoint, run.json before the finished checkpoint",
     "test_reliability_kill::test_train_crash_*"),
    ("all commands", "a kill leaves its temporary (`.NAME.XXXX.tmp.EXT`) behind; reruns never "
     "removed it", "fixed for `study` (temporaries name their writer; a rerun removes those of "
     "writers that are gone); `database` and `train` too", "test_reliability_atomic"),
]


# ---- kill and resume ---------------------------------------------------------------------------
def _random_triggers(name: str, k: int, rng: np.random.Generator) -> Callable[[float], list]:
    markers = {
        "database": [("glob", "db/*/*.npy"), ("glob", "db/*/entry.json"), ("glob", "db/*/.*tmp*")],
        "train": [("line", r"epoch \d+:"), ("glob", "run/.*tmp*"), ("glob", "run/model.pt")],
        "superresolve": [("glob", "sr.zarr.partial/.twinsr-done/*")],
        "study": [("line", p) for p in (r"database: \d/", r"train N_bin", r"train N_diffu",
                                        r"ground-truth", r"evaluate simulated",
                                        r"evaluate measured", r"\[table\]", r"\[figures\]")],
    }[name]

    def make(t_ref: float) -> list:
        out = []
        for _ in range(k):
            if rng.random() < 0.35:
                out.append(R.Trigger("delay", delay=float(rng.uniform(0.3, 0.95) * t_ref)))
                continue
            kind, what = markers[int(rng.integers(len(markers)))]
            count = int(rng.integers(1, 12)) if name == "superresolve" else 1
            out.append(R.Trigger(kind, what, count, float(rng.uniform(0.0, 0.4))))
        return out
    return make


SCENARIOS = {"database": R.database_scenario, "train": R.train_scenario,
             "superresolve": R.superresolve_scenario, "study": R.study_scenario}


def kill_sweep(names: list[str], kills: int, seed: int, work: Path) -> tuple[str, int]:
    rows, details, failures = [], [], 0
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        t0 = time.perf_counter()
        out = R.kill_and_resume(SCENARIOS[name](), work / name, _random_triggers(name, kills, rng))
        wall = time.perf_counter() - t0
        fails = len(out.problems) + len(out.differences) + (out.final_error is not None)
        failures += fails
        mid_write = sum(bool(a.temporaries) for a in out.attempts if a.killed)
        rows.append([name, len(out.attempts), out.kills, mid_write,
                     sum(a.final_files for a in out.attempts), len(out.problems),
                     "yes" if out.final_error is None else "NO", len(out.differences),
                     len(out.leftover_temporaries), out.reference_seconds, wall])
        for a in out.attempts:
            details.append([name, a.trigger, "killed" if a.killed else "finished first",
                            a.seconds, a.final_files, len(a.temporaries),
                            "; ".join(a.problems) or "none"])
        for d in out.differences:
            details.append([name, "final rerun", "difference", "", "", "", d])
        if out.final_error:
            details.append([name, "final rerun", "FAILED", "", "", "", out.final_error[:300]])
    body = table(["command", "runs to kill", "killed", "killed with a temporary present",
                  "final-named files scanned", "bad files", "rerun completes",
                  "differences from the uninterrupted run", "temporaries left",
                  "uninterrupted run (s)", "scenario wall (s)"], rows)
    body += "\n\n<details><summary>every kill</summary>\n\n" + table(
        ["command", "trigger", "outcome", "s", "final files", "temporaries", "problems"],
        details) + "\n\n</details>\n"
    return body, failures


# ---- damaged inputs ----------------------------------------------------------------------------
class Sweep:
    """Outcome counts of one reader."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}

    def run(self, path: Path, load: Callable[[Path], Any], same: Callable[[Any], bool],
            allowed: Callable[[Any], str | None] | None = None) -> None:
        try:
            got = load(path)
        except TwinsrError as exc:
            key = "error" if path.name in str(exc) else "FAIL: error not naming the file"
            self.counts[key] += 1
            self.examples.setdefault(key, str(exc)[:160])
            return
        except Exception as exc:
            key = f"FAIL: {type(exc).__name__}"
            self.counts[key] += 1
            self.examples.setdefault(key, repr(exc)[:160])
            return
        if same(got):
            self.counts["same"] += 1
            return
        why = allowed(got) if allowed is not None else None
        key = f"undetectable ({why})" if why else "FAIL: silently different"
        self.counts[key] += 1

    @property
    def failures(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("FAIL"))


def _damage(src: Path, bad: Path, rng: np.random.Generator, flips: int,
            check: Callable[[int | None], None]) -> None:
    """Write every damaged variant of ``src`` to ``bad`` and call ``check(flip position)``."""
    for data, pos in _cases(src.read_bytes(), rng, flips):
        bad.write_bytes(data)
        check(pos)


def _cases(blob: bytes, rng: np.random.Generator, flips: int) -> list[tuple[bytes, int | None]]:
    """A zero-byte and a foreign file, 10 cuts, ``flips`` random single-bit flips."""
    cases: list[tuple[bytes, int | None]] = [(b"", None), (b"GIF89a" + bytes(200), None)]
    cases += [(blob[:c], None) for c in np.linspace(1, len(blob) - 1, 10).astype(int)]
    for pos in rng.integers(0, len(blob), flips):
        d = bytearray(blob)
        d[int(pos)] ^= 1 << int(rng.integers(8))
        cases.append((bytes(d), int(pos)))
    return cases


def _volume_case(src: str, write: str, bad: str, blob: bytes, raw: bool
                 ) -> tuple[str, str, dict[str, str]]:
    """One damaged volume (``blob`` written to ``write``, the volume ``bad`` read), in a worker
    process: a damaged HDF5 file can crash the reader."""
    from twinsr.io import read_metadata, read_volume

    Path(write).write_bytes(blob)
    ref, ref_meta = read_volume(src, return_metadata=True)
    sv, sm = Sweep("v"), Sweep("m")
    sv.run(Path(bad), read_volume, lambda a: a.dtype == ref.dtype and np.array_equal(a, ref),
           lambda a: "a bit in raw voxel data" if raw and a.shape == ref.shape
           and np.count_nonzero(a != ref) == 1 else None)
    sm.run(Path(bad), read_metadata, lambda m: m == ref_meta,
           lambda m: "a value of the metadata: no checksum")
    return next(iter(sv.counts)), next(iter(sm.counts)), {**sv.examples, **sm.examples}


def volume_sweeps(work: Path, flips: int, rng: np.random.Generator) -> list[Sweep]:
    """Every volume format, each damaged file read in a worker process; a crash of the reader
    (SIGSEGV inside a C library) is counted and the worker restarted."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from twinsr.io import write_volume

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=ctx)
    vol = np.random.default_rng(5).integers(-300, 300, (6, 7, 9)).astype(np.int16)
    sweeps = []
    for suffix in (".tif", ".npy", ".npz", ".raw", ".zarr", ".h5"):
        for compress in (False, True):
            if suffix in (".npy", ".raw") and compress:
                continue
            d = work / f"vol{suffix}{compress}"
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            src = write_volume(d / f"v{suffix}", vol, voxel_size=1.5, metadata={"n": 1},
                               compress=compress)
            for side in d.glob("v*.json"):
                shutil.copy(side, d / side.name.replace("v", "bad", 1))
            label = f"{suffix}{' compressed' if compress else ''}"
            sv, sm = Sweep(f"read_volume {label}"), Sweep(f"read_metadata {label}")
            if suffix == ".zarr":  # a store: damage its chunk file
                chunk = next(f for f in sorted(src.rglob("*")) if f.is_file()
                             and f.name not in ("zarr.json", ".zarray", ".zattrs"))
                target, blob, ranges = chunk, chunk.read_bytes(), []
            else:
                target, blob, ranges = src, src.read_bytes(), _raw_ranges(src, vol.nbytes)
            for data, pos in _cases(blob, rng, flips):
                raw = pos is not None and any(a <= pos < b for a, b in ranges)
                if suffix == ".zarr":
                    bad_store = d / "bad.zarr"
                    if bad_store.exists():
                        shutil.rmtree(bad_store)
                    shutil.copytree(src, bad_store)
                    read_path = bad_store
                    args = (str(src), str(bad_store / target.relative_to(src)), str(read_path),
                            data, not compress)
                else:
                    read_path = d / f"bad{suffix}"
                    args = (str(src), str(read_path), str(read_path), data, raw)
                try:
                    kv, km, ex = pool.submit(_volume_case, *args).result(timeout=120)
                except BrokenProcessPool:
                    kv = km = "FAIL: the reader crashed the process"
                    ex = {kv: f"{read_path.name} flip at byte {pos}"}
                    pool = ProcessPoolExecutor(1, mp_context=ctx)
                sv.counts[kv] += 1
                sm.counts[km] += 1
                for k, v in ex.items():
                    (sv if k == kv else sm).examples.setdefault(k, v)
            sweeps += [sv, sm]
    pool.shutdown()
    return sweeps


def _raw_ranges(p: Path, nbytes: int) -> list[tuple[int, int]]:
    size = p.stat().st_size
    if p.suffix in (".npy", ".raw"):
        return [(size - nbytes, size)]
    if p.suffix == ".h5":
        import h5py

        with h5py.File(p, "r") as f:
            off = f["image"].id.get_offset()
            return [] if off is None else [(off, off + nbytes)]
    if p.suffix == ".tif":
        import tifffile

        with tifffile.TiffFile(p) as tif:
            if tif.pages[0].compression != 1:
                return []
            return [(int(o), int(o) + int(n)) for pg in tif.pages
                    for o, n in zip(pg.dataoffsets, pg.databytecounts, strict=True)]
    return []


def model_sweeps(work: Path, flips: int, rng: np.random.Generator) -> list[Sweep]:
    import torch

    from twinsr.sr import SRResNet3d, TrainConfig, load_model, save_bundle
    from twinsr.stochastic import ChiSquareModel
    from twinsr.study import StudyConfig

    out = []
    d = work / "models"
    d.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SRResNet3d(3, 2, channels=4, blocks=1)
    src = save_bundle(d / "good.pt", net, threshold=0.4, transport_axis=1)
    ref = load_model(src)
    sd = ref.network.state_dict()
    s = Sweep("load_model (bundle)")
    _damage(src, d / "bad.pt", rng, flips, lambda pos: s.run(
        d / "bad.pt", load_model, lambda m: m.spec == ref.spec and all(
            torch.equal(sd[k], m.network.state_dict()[k]) for k in sd)))
    out.append(s)

    model = ChiSquareModel(nu=1.4, gamma=0.3, voxel_size=2.0)
    src = model.to_json(d / "good.json")
    s = Sweep("ChiSquareModel.from_json")
    _damage(src, d / "bad.json", rng, flips, lambda pos: s.run(
        d / "bad.json", ChiSquareModel.from_json, lambda m: m == model,
        lambda m: "matern_nu of a Gaussian model (unused)" if
        {k for k, v in m.to_dict().items() if model.to_dict()[k] != v} == {"matern_nu"}
        else None))
    out.append(s)

    for label, text, loader in (
            ("TrainConfig.from_yaml", "epochs: 4\nsteps_per_epoch: 3\nlr: 0.002\n",
             lambda p: TrainConfig.from_yaml(p, base="micro")),
            ("StudyConfig.from_yaml", "samples: [nmc_superres_xct]\nshape: 32\nalphas: [2, 4]\n",
             StudyConfig.from_yaml)):
        src = d / f"good_{label[:5]}.yaml"
        src.write_text(text)
        want = loader(src)
        bad = d / f"bad_{label[:5]}.yaml"
        s = Sweep(label)
        _damage(src, bad, rng, flips, lambda pos, s=s, bad=bad, want=want, loader=loader: s.run(
            bad, loader, lambda c: c == want, lambda c: "a valid value: no checksum"))
        out.append(s)
    return out


def folder_sweeps(work: Path, flips: int, rng: np.random.Generator) -> list[Sweep]:
    from twinsr.sr import build_database, open_database
    from twinsr.stochastic import ChiSquareModel
    from twinsr.study import StudyConfig
    from twinsr.study.records import SkipRecord

    pipeline = importlib.import_module("twinsr.study.pipeline")
    out = []
    db = work / "db"
    if db.exists():
        shutil.rmtree(db)
    build_database([ChiSquareModel(nu=1.4, gamma=0.3)], db, n_realizations=3, shape=8,
                   alphas=(2,), split=(1, 1, 1), diffusion=False)

    def use(path: Path) -> Any:
        d = open_database(path.parent)
        return [(p.name, p.model, p.realization, p.lr.tobytes(), np.asarray(p.hr).tobytes())
                for s in ("train", "val") for p in d.pairs(s, 2)] + [d.shape, d.alphas, d.axis]

    ref = use(db / "manifest.json")
    good = (db / "manifest.json").read_bytes()
    (db / "good_manifest.json").write_bytes(good)
    s = Sweep("open_database (manifest.json)")
    _damage(db / "good_manifest.json", db / "manifest.json", rng, flips,
            lambda pos: s.run(db / "manifest.json", use, lambda r: r == ref))
    out.append(s)
    (db / "manifest.json").write_bytes(good)
    s = Sweep("open_database (entry hr.npy)")
    hr = db / "m00_r00" / "hr.npy"
    shutil.copy(hr, db / "good_hr.npy")
    _damage(db / "good_hr.npy", hr, rng, flips, lambda pos: s.run(
        hr, lambda p: use(db / "manifest.json"), lambda r: r == ref,
        lambda r: "a bit in raw voxel data" if pos is not None and pos >= 128 else None))
    out.append(s)

    out.append(_checkpoint_sweep(work, db, flips, rng))

    cfg = StudyConfig.preset("micro")
    st = work / "study"
    if st.exists():
        shutil.rmtree(st)
    log = pipeline._Log(None)
    meta, skips = pipeline._prepare_folder(cfg, st, False, log)
    run = pipeline._Run(cfg, st, log, meta, skips)
    run.record_skip(SkipRecord("evaluate", "measured", "small", 8, "volume too small"))
    want = list(run.skips)
    shutil.copy(st / "study.json", work / "good_study.json")
    s = Sweep("run_study resume (study.json)")

    def reopen(p: Path) -> Any:
        return pipeline._prepare_folder(cfg, st, False, log)[1]

    def free_text(r: Any) -> str | None:
        if len(r) != 1:
            return None
        changed = {k for k, v in want[0].to_dict().items() if r[0].to_dict()[k] != v}
        return "free text of a skip record" if changed <= {"sample", "reason"} else None
    _damage(work / "good_study.json", st / "study.json", rng, flips,
            lambda pos: s.run(st / "study.json", reopen, lambda r: r == want, free_text))
    out.append(s)
    return out


def _checkpoint_sweep(work: Path, db: Path, flips: int, rng: np.random.Generator) -> Sweep:
    """The training checkpoint as `train --resume` reads it."""
    import torch

    from twinsr.sr import TrainConfig, train

    tr = importlib.import_module("twinsr.sr.train")
    run = work / "run"
    if run.exists():
        shutil.rmtree(run)
    train(db, alpha=2, out_dir=run, device="cpu",
          config=TrainConfig.preset("micro", epochs=1, max_seconds=None, threshold_bins=64,
                                            crop_per_alpha={2: 3}))
    good = run / "checkpoint.pt"
    ref = torch.load(good, weights_only=True)
    tensors = R._tensors(ref)
    shutil.copy(good, work / "good_checkpoint.pt")

    def same(ck: Any) -> bool:
        got = R._tensors(ck)
        return got.keys() == tensors.keys() and all(
            torch.equal(got[k], tensors[k]) for k in tensors) and \
            json.dumps(ck["history"]) == json.dumps(ref["history"])

    s = Sweep("train --resume (checkpoint.pt)")
    _damage(work / "good_checkpoint.pt", good, rng, flips, lambda pos: s.run(
        good, lambda p: tr._load_checkpoint(p, ref["identity"]), same))
    return s


def corruption_sweep(flips: int, seed: int, work: Path) -> tuple[str, int]:
    rng = np.random.default_rng(seed)
    sweeps = volume_sweeps(work / "vol", flips, rng) + model_sweeps(work, flips, rng) + \
        folder_sweeps(work, flips, rng)
    keys = sorted({k for s in sweeps for k in s.counts}, key=lambda k: (k.startswith("FAIL"), k))
    rows = [[s.name, sum(s.counts.values()), *[s.counts.get(k, 0) for k in keys]]
            for s in sweeps]
    body = table(["reader", "cases", *keys], rows)
    ex = [[s.name, k, v] for s in sweeps for k, v in s.examples.items() if k.startswith("FAIL")]
    if ex:
        body += "\n\nFailure examples:\n\n" + table(
            ["reader", "outcome", "message"], ex)
    return body, sum(s.failures for s in sweeps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--flips", type=int, default=200)
    ap.add_argument("--commands", default="database,train,superresolve,study")
    ap.add_argument("--work", default=str(HERE / "out" / "reliability"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    kill_body, kill_fail = kill_sweep([c for c in args.commands.split(",") if c], args.kills,
                                      args.seed, work / "kill")
    t_kill = time.perf_counter() - t0
    corrupt_body, corrupt_fail = corruption_sweep(args.flips, args.seed, work / "corrupt")
    t_all = time.perf_counter() - t0
    body = (
        "Kill and resume (SIGKILL at random points, seeded; rerun after each kill; every "
        "final-named file loaded after every kill; final rerun compared with an uninterrupted "
        "run: volumes, tables and bundles byte for byte, weights tensor by tensor, files that "
        "record wall-clock times or dates apart from those entries, see `tests/_reliability.py`):"
        f"\n\n{kill_body}\n"
        f"Damaged inputs ({args.flips} random single-bit flips, 10 cuts, a zero-byte and a "
        "foreign file per reader):\n\n" + corrupt_body + "\n\n"
        "Failures found by this work, and where they stand:\n\n"
        + table(["where", "failure", "status", "guarded by"], [list(r) for r in FOUND]) + "\n\n"
        f"Failures in this run: {kill_fail} kill/resume, {corrupt_fail} damaged-input. "
        f"Time: {t_kill:.0f} s kill/resume, {t_all - t_kill:.0f} s "
        "damaged inputs.\n"
    )
    command = "python benchmarks/bench_reliability.py " + " ".join(sys.argv[1:])
    (work / "reliability.md").write_text(body, encoding="utf-8")
    print(body)
    if not args.no_write:
        write_section("reliability", body, command=command.strip())
    print(json.dumps({"kill_failures": kill_fail, "corrupt_failures": corrupt_fail,
                      "seconds": round(t_all, 1)}))


if __name__ == "__main__":
    main()
