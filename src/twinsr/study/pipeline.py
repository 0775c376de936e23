"""The paper's experiment end to end (spec §2-§3): :func:`run_study`.

Steps (each resumable: a step whose output is complete and valid is skipped on rerun and the
skip is logged):

1. ``calibrate`` - fit a twin model per sample (the configured family and objective) ->
   ``params/NAME.json`` (+ a figure), then ``validate`` it against the calibration volume ->
   ``validation/NAME/`` (table, figures; the report shows the table);
2. ``database`` - digital twins, strided LR images and diffusion channels -> ``database/``;
3. ``train`` - N^{bin,α} and N^{diffu,α}, α ascending, each α network starting from the α/2
   one (transfer learning) -> ``runs/{bin,diffu}_a{α}/`` (bundle with threshold μ*);
4. ``evaluate`` - simulated test realizations and measured volumes, cut into ``k³``
   sub-volumes, super-resolved by each network and baseline and scored -> ``eval/*.csv``;
5. ``table``, ``figures``, ``statistics``, ``report`` -> ``results.csv``, ``figures/``,
   ``stats.csv`` (paired tests over the same sub-volumes, :mod:`twinsr.study.stats`),
   ``bias.csv`` (signed tortuosity errors), ``report.md/.html``.

The output folder holds ``study.json`` (resolved config, seed, package versions, git hash,
device, and the :class:`~twinsr.study.records.SkipRecord` of every skipped evaluation, which a
rerun reads instead of redoing the check) and ``config.yaml``. A folder holding a *different*
study is refused unless ``force=True``, which deletes that study's artefacts first. Temporaries
that a run killed mid-write left in the folder are removed when the study is rerun. A
``study.json`` of the earlier layout (no ``"layout"`` key, skips kept as sentences in
``eval/*__skipped.json``) is read: its skip decisions are derived again from the volumes.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from twinsr._atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from twinsr._provenance import git_hash, package_versions
from twinsr._validation import as_binary_volume, resolve_device
from twinsr.exceptions import ConfigError, StudyWarning, TwinsrError, VolumeError
from twinsr.study.config import StudyConfig, config_difference, network_label
from twinsr.study.evaluate import COLUMNS, SOURCES, central_crop
from twinsr.study.records import LAYOUT, SkipRecord, skip_records

__all__ = ["ARTEFACTS", "StudyResult", "run_study", "sample_name"]

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
#: Files and folders a study writes into its output folder (removed by ``force=True``).
ARTEFACTS = ("study.json", "config.yaml", "steps.json", "params", "database", "runs", "eval",
             "figures", "results.csv", "results.parquet", "report.md", "report.html",
             "skipped.json", "thresholds.json", "stats.csv", "bias.csv")
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class StudyResult:
    """Outcome of :func:`run_study`.

    Attributes
    ----------
    out_dir : Path
        The study folder.
    config : StudyConfig
        The resolved configuration.
    table : pandas.DataFrame
        The tidy results table (also in ``results.csv``).
    results_path, report_path, report_html : Path
        ``results.csv``, ``report.md``, ``report.html``.
    figures : list of Path
        Every figure file (PNG and PDF).
    bundles : dict[str, Path]
        Network name (``N_bin_a2``...) -> model bundle.
    thresholds : dict[str, float]
        Network name -> μ*.
    skipped : list of str
        Evaluations skipped (e.g. a volume too small at α = 8), with the reason: the
        :attr:`~twinsr.study.records.SkipRecord.message` of each of ``skip_records``.
    skip_records : list of SkipRecord
        The same as typed records (also in ``study.json`` and ``skipped.json``).
    steps : dict[str, str]
        Step -> "done" (work done in this call) or "skipped" (complete from an earlier run).
    seconds : float
        Wall-clock time of this call.
    """

    out_dir: Path
    config: StudyConfig
    table: Any
    results_path: Path
    report_path: Path
    report_html: Path
    figures: list[Path] = field(default_factory=list)
    bundles: dict[str, Path] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    skip_records: list[SkipRecord] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


# ------------------------------------------------------------------------------ provenance
def _device_desc(dev: str) -> str:
    if dev.startswith("cuda"):
        import torch

        return f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    import os

    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


# ------------------------------------------------------------------------------ helpers
def sample_name(entry: str) -> str:
    """Label of a sample/measured entry: built-in name or file stem.

    >>> sample_name("builtin:berea_sandstone"), sample_name("data/scan.a.tif")
    ('berea_sandstone', 'scan.a')
    """
    s = entry.removeprefix("builtin:")
    p = Path(s)
    name = p.name
    from twinsr.io import SUPPORTED_SUFFIXES

    for suf in (".json", *SUPPORTED_SUFFIXES):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return name or s


def _unique_names(entries: list[str]) -> list[str]:
    names, seen = [], {}
    for e in entries:
        n = sample_name(e)
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
        names.append(n)
    return names


def _read_entry(entry: str) -> np.ndarray:
    """A built-in name (or ``builtin:NAME``) or a volume file, as a binary uint8 volume."""
    from twinsr import datasets
    from twinsr.io import read_volume

    name = entry.removeprefix("builtin:")
    if name in datasets.names():
        im = datasets.load(name)
    else:
        p = Path(entry)
        if not p.exists():
            raise ConfigError(f"{entry!r} is neither a built-in dataset "
                              f"({', '.join(datasets.names())}) nor an existing file")
        im = read_volume(p)
    return as_binary_volume(im, entry)


def _warn(msg: str) -> None:
    warnings.warn(msg, StudyWarning, stacklevel=3)


class _Log:
    """Progress lines to the logger and the optional callback; per-step timing."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.steps: dict[str, str] = {}
        self.times: dict[str, float] = {}

    def __call__(self, msg: str) -> None:
        logger.info(msg)
        if self.progress is not None:
            self.progress(msg)

    def mark(self, step: str, status: str, seconds: float) -> None:
        self.steps[step] = status
        self.times[step] = round(seconds, 2)
        self(f"[{step}] {status} ({seconds:.1f} s)")


@dataclass
class _Run:
    """One call of :func:`run_study`: the config, the folder, the log, ``study.json``'s
    contents and the skip records (kept in ``study.json`` as they are made)."""

    cfg: StudyConfig
    out: Path
    log: _Log
    meta: dict[str, Any]
    skips: list[SkipRecord]

    def record_skip(self, rec: SkipRecord) -> bool:
        """Add a record (written to ``study.json`` at once); False if already recorded."""
        if rec in self.skips:
            return False
        self.skips.append(rec)
        _write_meta(self.out, self.meta, self.skips)
        return True

    def skipped_alphas(self, step: str, source: str, sample: str) -> set[int]:
        """α recorded as skipped for every method of one volume."""
        return {r.alpha for r in self.skips if (r.step, r.source, r.sample) == (step, source,
                                                                               sample)
                and r.method is None}

    def skipped_methods(self, step: str, source: str, sample: str, alpha: int) -> set[str]:
        """Methods recorded as skipped for one volume at α."""
        return {r.method for r in self.skips if r.method is not None
                and (r.step, r.source, r.sample, r.alpha) == (step, source, sample, alpha)}


# ------------------------------------------------------------------------------ folder
def _write_meta(out: Path, meta: dict[str, Any], skips: list[SkipRecord]) -> None:
    data = {**meta, "layout": LAYOUT, "skipped": [r.to_dict() for r in skips]}
    atomic_write_text(out / STUDY_FILE, json.dumps(data, indent=1))


def _read_study_file(path: Path) -> tuple[dict[str, Any], list[SkipRecord]]:
    """``study.json``'s contents and skip records (layout 1: none). Raises ConfigError."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc})") from None
    if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
        raise ConfigError(f"{path} is unreadable (no 'config' mapping)")
    layout = old.get("layout", 1)
    if layout == 1:
        return old, []
    if layout != LAYOUT:
        raise ConfigError(f"{path} has layout {layout!r}, this twinsr reads layouts 1 and "
                          f"{LAYOUT} (written by another twinsr version?)")
    if "skipped" not in old:  # written with every layout-2 study.json, even when empty
        raise ConfigError(f"{path} is unreadable (no 'skipped' list)")
    try:
        return old, skip_records(old["skipped"])
    except ConfigError as exc:
        raise ConfigError(f"{path} is unreadable ({exc})") from None


def _remove_artefacts(out: Path) -> None:
    for name in ARTEFACTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _previous_study(cfg: StudyConfig, out: Path, force: bool, log: _Log
                    ) -> tuple[dict[str, Any], list[SkipRecord]]:
    """The study already in ``out`` (its ``study.json`` and records), if it is this one."""
    study_path = out / STUDY_FILE
    try:
        old, skips = _read_study_file(study_path)
    except ConfigError as exc:
        if not force:
            raise ConfigError(f"{exc}; pass force=True (--force) to start the study afresh"
                              ) from None
        # an unknown study's outputs must not be reused as this one's
        log(f"--force: {exc}; removing the study outputs in {out}")
        _remove_artefacts(out)
        return {}, []
    new_id = cfg.identity()
    if old["config"] != new_id:
        diff = config_difference(old["config"], new_id)
        if not force:
            raise ConfigError(
                f"{out} holds a different study (its {study_path.name}); differences (existing "
                "-> requested): "
                + "; ".join(diff) + ". Use another folder, or force=True (--force) to "
                "delete that study's outputs and start again")
        log(f"--force: removing the previous study in {out} ({'; '.join(diff)})")
        _remove_artefacts(out)
        return {}, []
    if "layout" not in old:
        stale = sorted((out / "eval").glob("*__skipped.json"))
        log(f"{study_path} is of the earlier layout: skipped evaluations are checked again "
            f"and recorded in it ({len(stale)} old eval/*__skipped.json removed)")
        for p in stale:
            p.unlink()
    return old, skips


def _prepare_folder(cfg: StudyConfig, out: Path, force: bool, log: _Log
                    ) -> tuple[dict[str, Any], list[SkipRecord]]:
    """Check (or clear, with ``force``) the folder; write ``study.json`` and ``config.yaml``.

    Returns the new ``study.json`` contents (without the records) and the skip records of an
    earlier run of the same study.
    """
    old: dict[str, Any] = {}
    skips: list[SkipRecord] = []
    if (out / STUDY_FILE).exists():
        old, skips = _previous_study(cfg, out, force, log)
    elif out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty and holds no {STUDY_FILE}; choose an empty or new "
                          "folder, or pass force=True (--force) to use it anyway")
    out.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporaries(out)  # left by an earlier run killed mid-write
    if stale:
        log(f"removed {len(stale)} temporary file(s) of an interrupted run: "
            + ", ".join(str(p.relative_to(out)) for p in stale[:5])
            + (" ..." if len(stale) > 5 else ""))
    dev = resolve_device(cfg.device)
    meta = {"name": cfg.name, "config": cfg.identity(), "seed": cfg.seed,
            "versions": package_versions(), "git": git_hash(), "device": _device_desc(dev),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    meta["first_started"] = old.get("first_started", old.get("started", meta["started"]))
    _write_meta(out, meta, skips)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    return meta, skips


# ------------------------------------------------------------------------------ steps
def _calibrate(run: _Run) -> list[Any]:
    from twinsr.stochastic import calibrate, load_model_file

    cfg, log = run.cfg, run.log
    t0 = time.perf_counter()
    pdir = run.out / "params"
    pdir.mkdir(exist_ok=True)
    models, did = [], False
    for entry, name in zip(cfg.samples, _unique_names(cfg.samples), strict=True):
        target = pdir / f"{name}.json"
        if target.exists():
            try:
                models.append(load_model_file(target))
                log(f"calibrate {name}: complete, skipped")
                continue
            except TwinsrError as exc:
                log(f"calibrate {name}: {target} is invalid ({exc}); redoing it")
        if entry.lower().endswith(".json"):
            model = load_model_file(entry)
            log(f"calibrate {name}: parameters read from {entry}")
            model.to_json(target)
        else:
            im = central_crop(_read_entry(entry), cfg.calibration_crop)
            m = cfg.model
            res = calibrate(im, family=m.family, objective=m.objective, covariance=cfg.covariance,
                            excursion_phase=cfg.excursion_phase, fit_shape=m.fit_shape,
                            seed=cfg.seed)
            model = res.model
            log(f"calibrate {name}: {res.family} model ({res.objective} fit, "
                f"{res.seconds:.0f} s): {_model_summary(model)}")
            atomic_write_text(target, json.dumps(res.to_dict(), indent=2) + "\n")
            _calibration_figure(res, run.out / "figures" / f"calibration_{name}.png", name)
        models.append(model)
        did = True
    log.mark("calibrate", "done" if did else "skipped", time.perf_counter() - t0)
    return models


def _model_summary(model: Any) -> str:
    skip = {"format", "format_version", "model", "twinsr_version", "calibration"}
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in model.to_dict().items()
                     if k not in skip and not k.endswith("_unit") and v is not None)


def _validate(run: _Run, models: list[Any]) -> dict[str, Any]:
    """Validate each calibrated sample's model against its calibration volume (resumable)."""
    from twinsr.stochastic import validate, write_validation

    cfg, log = run.cfg, run.log
    out: dict[str, Any] = {}
    if cfg.model.validate_n == 0:
        return out
    t0 = time.perf_counter()
    did = False
    for entry, name, model in zip(cfg.samples, _unique_names(cfg.samples), models, strict=True):
        if entry.lower().endswith(".json"):
            continue  # no data to compare with
        vdir = run.out / "validation" / name
        done = vdir / "validation.json"
        if done.exists():
            try:
                out[name] = json.loads(done.read_text(encoding="utf-8"))
                log(f"validate {name}: complete, skipped")
                continue
            except (OSError, ValueError) as exc:
                log(f"validate {name}: {done} is unreadable ({exc}); redoing it")
        im = central_crop(_read_entry(entry), cfg.calibration_crop)
        res = validate(model, im, n=cfg.model.validate_n, rng=cfg.seed)
        write_validation(res, vdir)
        log(f"validate {name}: {res.counts} ({res.seconds:.0f} s)")
        out[name] = res.to_dict()
        did = True
    log.mark("validate", "done" if did else "skipped", time.perf_counter() - t0)
    return out


def _calibration_figure(res: Any, path: Path, name: str) -> None:
    from twinsr.stochastic import plot_calibration

    try:
        plot_calibration(res, path)
    except (OSError, ValueError) as exc:  # disk or drawing trouble: the study goes on
        _warn(f"calibration figure of {name} not written ({type(exc).__name__}: {exc}); the "
              "study continues without it")


def _database(run: _Run, models: list[Any]) -> Any:
    from twinsr.sr import build_database, open_database

    cfg, log = run.cfg, run.log
    t0 = time.perf_counter()
    path = run.out / "database"
    if path.exists():
        try:
            db = open_database(path)
        except TwinsrError as exc:  # incomplete (e.g. interrupted): build_database resumes it
            log(f"database: not complete ({exc}); building the rest")
        else:
            if db.settings.get("n_realizations") == cfg.n_realizations and \
                    tuple(db.settings.get("shape", ())) == tuple(cfg.shape):
                log.mark("database", "skipped", time.perf_counter() - t0)
                return db
            log("database: settings differ from the study's; building it again")
    total = len(models) * cfg.n_realizations

    def prog(done: int, n: int) -> None:
        log(f"database: {done}/{n} realizations")

    db = build_database(models, path, n_realizations=cfg.n_realizations, shape=cfg.shape,
                        alphas=cfg.alphas, split=cfg.split, seed=cfg.seed, axis=cfg.axis,
                        diffusion="diffu" in cfg.inputs, device=cfg.device, progress=prog)
    log(f"database: {total} realizations of {cfg.shape}")
    log.mark("database", "done", time.perf_counter() - t0)
    return db


def _load_complete(folder: Path, alpha: int, inputs: str, log: _Log) -> Any | None:
    """The model bundle of a finished training run, or None if the run is missing/incomplete."""
    from twinsr.sr import load_model

    if not (folder / "run.json").exists():
        return None
    try:
        return load_model(folder, alpha=alpha, inputs=inputs)
    except TwinsrError as exc:
        log(f"train {folder.name}: the finished run's bundle is unusable ({exc}); training "
            "again (resuming from its checkpoint if any)")
        return None


def _train_one(run: _Run, db: Any, tcfg: Any, inputs: str, alpha: int,
               init: Path | None) -> Any:
    """Train (or resume) network N_inputs_aα into ``runs/``; return its loaded bundle."""
    from twinsr.sr import load_model, train

    log = run.log
    name = network_label(inputs, alpha)
    out = run.out / "runs" / f"{inputs}_a{alpha}"
    log(f"train {name}" + (f" (transfer from {init.name})" if init else ""))
    state = {"last": -1}

    def prog(epoch: int, step: int, loss: float, val: float | None) -> None:
        if val is not None and epoch != state["last"]:
            state["last"] = epoch
            log(f"train {name}: epoch {epoch} train loss {loss:.4f} val loss {val:.4f}")

    res = train(db, alpha=alpha, inputs=inputs, out_dir=out, config=tcfg, init_from=init,
                resume=True, device=run.cfg.device, progress=prog)
    log(f"train {name}: {res.epochs_run} epochs, best val loss {res.best_val_loss:.4f}, "
        f"threshold {res.threshold:.3f}, {res.seconds:.0f} s")
    return load_model(out, alpha=alpha, inputs=inputs)


def _train(run: _Run, db: Any) -> tuple[dict[str, Path], dict[str, float]]:
    cfg, log = run.cfg, run.log
    t0 = time.perf_counter()
    tcfg = cfg.train_config()
    bundles: dict[str, Path] = {}
    thresholds: dict[str, float] = {}
    did = False
    for inputs in cfg.inputs:
        prev: Path | None = None
        for a in cfg.alphas:
            name = network_label(inputs, a)
            folder = run.out / "runs" / f"{inputs}_a{a}"
            model = _load_complete(folder, a, inputs, log)
            if model is not None:
                log(f"train {name}: complete, skipped")
            else:
                init = prev if (cfg.transfer and prev is not None) else None
                model = _train_one(run, db, tcfg, inputs, a, init)
                did = True
            bundles[name] = folder
            thresholds[name] = float(model.threshold)
            prev = folder
    atomic_write_text(run.out / "thresholds.json", json.dumps(thresholds, indent=1))
    log.mark("train", "done" if did else "skipped", time.perf_counter() - t0)
    return bundles, thresholds


class _TestVolume(NamedTuple):
    source: str
    sample: str
    load: Callable[[], np.ndarray]
    crop: int | None

    @property
    def stem(self) -> str:
        return f"{self.source}__{self.sample}"


def _test_volumes(cfg: StudyConfig, db: Any) -> list[_TestVolume]:
    """Every test volume: simulated test realizations, then the measured volumes."""
    simulated, measured = SOURCES
    vols: list[_TestVolume] = []
    if cfg.evaluate_simulated:
        names = _unique_names(cfg.samples)
        per_model: dict[int, list[str]] = {}
        for e in db.entries("test"):
            per_model.setdefault(int(db.manifest["entries"][e]["model"]), []).append(e)
        for m, es in sorted(per_model.items()):
            for e in es:
                r = db.manifest["entries"][e]["realization"]
                label = names[m] if len(es) == 1 else f"{names[m]}_r{r}"
                vols.append(_TestVolume(simulated, label, lambda e=e: np.asarray(db.hr(e)),
                                        None))
    for entry, name in zip(cfg.measured, _unique_names(cfg.measured), strict=True):
        vols.append(_TestVolume(measured, name, lambda entry=entry: _read_entry(entry),
                                cfg.measured_crop))
    return vols


# ------------------------------------------------------------------------------ evaluate
class _Evaluator:
    """Scores test volumes into ``eval/``: the networks are loaded on first use (a resumed,
    complete evaluation loads none) and shared by every volume."""

    def __init__(self, run: _Run, bundles: dict[str, Path]) -> None:
        self.run, self.cfg, self.bundles = run, run.cfg, bundles
        self.edir = run.out / "eval"
        self.edir.mkdir(exist_ok=True)
        self.dev = resolve_device(run.cfg.device)
        self.models: dict[str, Any] = {}

    def unit_file(self, vol: _TestVolume, alpha: int) -> Path:
        return self.edir / f"{vol.stem}__a{alpha}.csv"

    def volume(self, vol: _TestVolume) -> tuple[list[Path], bool]:
        """Evaluate one test volume at every α not done or recorded as skipped.

        Returns the unit files (done before or now) and whether any work was done.
        """
        cfg, log = self.cfg, self.run.log
        done = [a for a in cfg.alphas if self.unit_file(vol, a).exists()]
        recorded = self.run.skipped_alphas("evaluate", vol.source, vol.sample)
        files = [self.unit_file(vol, a) for a in done]
        todo = [a for a in cfg.alphas if a not in done and a not in recorded]
        if not todo:
            log(f"evaluate {vol.source}/{vol.sample}: complete, skipped")
            return files, False
        im = central_crop(vol.load(), vol.crop)
        feasible = self._record_infeasible(vol, im.shape)
        todo = [a for a in todo if a in feasible]
        if not todo:
            return files, False
        subs, ref = self._subvolumes(vol, im, max(feasible))
        for a in todo:
            files.append(self._unit(vol, subs, ref, a))
        return files, True

    def _record_infeasible(self, vol: _TestVolume, shape: tuple[int, ...]) -> list[int]:
        """Record a skip for every α whose LR sub-volumes would be too small; the others."""
        cfg, k = self.cfg, self.cfg.k
        feasible = [a for a in cfg.alphas if min(shape) // (k * a) >= cfg.min_lr_edge]
        for a in cfg.alphas:
            if a in feasible:
                continue
            rec = SkipRecord(
                "evaluate", vol.source, vol.sample, a,
                f"volume {shape} too small for {cfg.subvolumes} sub-volumes with LR edge >= "
                f"{cfg.min_lr_edge} (needs >= {k * a * cfg.min_lr_edge} voxels per axis)")
            if self.run.record_skip(rec):
                self.run.log(f"evaluate: skipping {rec.message}")
        return feasible

    def _subvolumes(self, vol: _TestVolume, im: np.ndarray, alpha_max: int
                    ) -> tuple[list[np.ndarray], list[dict[str, Any]] | None]:
        """The HR sub-volumes and (with ``tortuosity``) their ground-truth tortuosities."""
        from twinsr.study.evaluate import cut_subvolumes, prepare_volume, reference_tortuosities

        cfg = self.cfg
        hr = prepare_volume(im, k=cfg.k, alpha_max=alpha_max, min_lr_edge=cfg.min_lr_edge,
                            name=f"{vol.source}/{vol.sample}")
        subs = cut_subvolumes(hr, cfg.k)
        if not cfg.tortuosity:
            return subs, None
        ref_file = self.edir / f"{vol.stem}__reference.json"
        ref = _load_reference(ref_file, len(subs), self.run.log)
        if ref is None:
            self.run.log(f"evaluate {vol.source}/{vol.sample}: ground-truth tortuosities of "
                         f"{len(subs)} sub-volumes {subs[0].shape}")
            ref = reference_tortuosities(subs, axis=cfg.axis, device=cfg.device)
            _save_reference(ref_file, ref)
        return subs, ref

    def _methods(self, alpha: int, skip: set[str]
                 ) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Method label -> LR-to-SR function at α: the networks, then the baselines, but
        those in ``skip``."""
        from twinsr.resample import upsample
        from twinsr.sr import load_model, superresolve

        methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        for inputs in self.cfg.inputs:
            name = network_label(inputs, alpha)
            if network_label(inputs) in skip:
                continue
            if name not in self.models:
                self.models[name] = load_model(self.bundles[name], device=self.dev)
            mdl = self.models[name]
            methods[network_label(inputs)] = (lambda lr, mdl=mdl: superresolve(
                lr, mdl, device=self.dev, axis=self.cfg.axis))
        for b in self.cfg.baselines:
            if b not in skip:
                methods[b] = lambda lr, b=b: upsample(lr, alpha, method=b)
        return methods

    def _unit(self, vol: _TestVolume, subs: list[np.ndarray],
              ref: list[dict[str, Any]] | None, alpha: int) -> Path:
        """Score every method at α; write the unit's table and error slices; its CSV."""
        import pandas as pd

        from twinsr.study.evaluate import evaluate_volume

        methods = self._methods(alpha, self.run.skipped_methods("evaluate", vol.source,
                                                                vol.sample, alpha))
        self.run.log(f"evaluate {vol.source}/{vol.sample} α={alpha}: {len(subs)} sub-volumes "
                     f"{subs[0].shape}, {len(methods)} methods")
        unit = evaluate_volume(subs, alpha, methods, source=vol.source, sample=vol.sample,
                               reference=ref, axis=self.cfg.axis, device=self.cfg.device)
        target = self.unit_file(vol, alpha)
        with atomic_path(self.edir / f"{vol.stem}__a{alpha}_slices.npz") as tmp:
            np.savez_compressed(tmp, **unit.slices)
        with atomic_path(target) as tmp:
            pd.DataFrame(unit.rows).to_csv(tmp, index=False)
        return target


def _evaluate(run: _Run, db: Any, bundles: dict[str, Path]) -> list[Path]:
    """Evaluate every test volume (resuming); the unit CSV files, done before or now."""
    t0 = time.perf_counter()
    ev = _Evaluator(run, bundles)
    unit_files: list[Path] = []
    did = False
    for vol in _test_volumes(run.cfg, db):
        files, worked = ev.volume(vol)
        unit_files += files
        did |= worked
    run.log.mark("evaluate", "done" if did else "skipped", time.perf_counter() - t0)
    return unit_files


def _save_reference(path: Path, ref: list[dict[str, Any]]) -> None:
    data = [{p: {"tau_geod": t.tau_geod, "tau_eff": t.tau_eff, "percolating": t.percolating}
             for p, t in r.items()} for r in ref]
    # JSON has no inf: store it as the string "inf"
    text = json.dumps(data, indent=1, default=str).replace("Infinity", '"inf"')
    atomic_write_text(path, text)


def _load_reference(path: Path, n: int, log: _Log) -> list[dict[str, Any]] | None:
    """Stored ground-truth tortuosities of ``n`` sub-volumes, or None (missing or unusable:
    they are computed again)."""
    from twinsr.metrics import PhaseTortuosity

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        out = [{p: PhaseTortuosity(p, float(v["tau_geod"]), float(v["tau_eff"]),
                                   bool(v["percolating"])) for p, v in r.items()} for r in data]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log(f"evaluate: {path.name} is unreadable ({type(exc).__name__}: {exc}); computing "
            "the ground-truth tortuosities again")
        return None
    if len(out) != n:
        log(f"evaluate: {path.name} holds {len(out)} sub-volumes, not {n}; computing the "
            "ground-truth tortuosities again")
        return None
    return out


# ------------------------------------------------------------------------------ outputs
def _histories(bundles: dict[str, Path]) -> dict[str, Any]:
    import pandas as pd

    out = {}
    for name, run in bundles.items():
        h = run / "history.csv"
        if h.exists():
            try:
                out[name] = pd.read_csv(h)
            except (OSError, ValueError) as exc:
                _warn(f"training curves: {h} is unreadable ({type(exc).__name__}: {exc}); "
                      f"{name} is left out of the figure")
    return out


def _figures(cfg: StudyConfig, out: Path, df: Any, bundles: dict[str, Path],
             log: _Log) -> list[Path]:
    from twinsr.study import plots

    t0 = time.perf_counter()
    fdir = out / "figures"
    figs: list[Path] = []
    methods = cfg.methods
    figs += plots.plot_boxplots(df, fdir / "boxplots", methods=methods)
    if cfg.tortuosity:
        figs += plots.plot_phase_tortuosity(df, fdir / "tortuosity_per_phase", methods=methods)
    hist = _histories(bundles)
    if hist:
        figs += plots.plot_training_curves(hist, fdir / "training_curves")
    # error slices: first sub-volume of each test volume, every α
    by_volume: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for f in sorted((out / "eval").glob("*__a*_slices.npz")):
        stem, a = f.name.rsplit("__a", 1)
        alpha = int(a.split("_")[0])
        with np.load(f) as z:
            by_volume.setdefault(stem, {})[alpha] = {key: z[key] for key in z.files}
    for stem, slices in by_volume.items():
        figs += plots.plot_error_slices(slices, fdir / f"error_slices__{stem}",
                                        title=stem.replace("__", ": "))
    figs += sorted(fdir.glob("calibration_*.png"))
    log.mark("figures", "done", time.perf_counter() - t0)
    return figs


def _table(out: Path, unit_files: list[Path], log: _Log) -> tuple[Any, Path]:
    """Concatenate the unit tables into the sorted results table; write it."""
    import pandas as pd

    from twinsr.study.evaluate import write_table

    t0 = time.perf_counter()
    df = pd.concat([pd.read_csv(f) for f in sorted(set(unit_files))], ignore_index=True)
    df = df[COLUMNS]
    df = df.sort_values(["source", "sample", "alpha", "method", "subvolume", "phase",
                         "metric"], kind="stable").reset_index(drop=True)
    paths = write_table(df, out)
    log.mark("table", "done", time.perf_counter() - t0)
    return df, paths[0]


def _statistics(cfg: StudyConfig, out: Path, df: Any, log: _Log) -> tuple[Any, Any, list[Path]]:
    """Paired comparisons (``stats.csv``), tortuosity bias (``bias.csv``) and their figure."""
    from twinsr.study import plots, stats

    t0 = time.perf_counter()
    present = set(df["method"])
    nets = [m for m in cfg.networks if m in present]
    baselines = [b for b in cfg.baselines if b in present]
    diffs = stats.paired_differences(df, methods=nets, baselines=baselines)
    comp = stats.paired_comparisons(df, methods=nets, baselines=baselines, seed=cfg.seed)
    bias = stats.tortuosity_bias(df, seed=cfg.seed)
    with atomic_path(out / "stats.csv") as tmp:
        comp.to_csv(tmp, index=False)
    with atomic_path(out / "bias.csv") as tmp:
        bias.to_csv(tmp, index=False)
    figs: list[Path] = []
    if len(diffs):
        figs = plots.plot_paired_differences(diffs, comp, out / "figures" / "paired_differences")
    log.mark("statistics", "done", time.perf_counter() - t0)
    return comp, bias, figs


def _record_steps(out: Path, meta: dict[str, Any], seconds: float, log: _Log) -> None:
    """Append this call's per-step status and times to ``steps.json``."""
    steps_file = out / "steps.json"
    history = []
    if steps_file.exists():
        try:
            history = json.loads(steps_file.read_text(encoding="utf-8"))["runs"]
            if not isinstance(history, list):
                raise TypeError(f"'runs' is a {type(history).__name__}, not a list")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _warn(f"{steps_file} is unreadable ({type(exc).__name__}: {exc}); the record of "
                  "earlier runs in it is replaced by this run's")
            history = []
    history.append({"started": meta["started"], "seconds": round(seconds, 1),
                    "steps": log.steps, "step_seconds": log.times})
    atomic_write_text(steps_file, json.dumps({"runs": history}, indent=1))


def _resolve(config: StudyConfig | str | Path) -> StudyConfig:
    if isinstance(config, StudyConfig):
        return config
    if isinstance(config, str) and not config.lower().endswith((".yaml", ".yml")):
        return StudyConfig.preset(config)
    return StudyConfig.from_yaml(config)


# ------------------------------------------------------------------------------ entry point
def run_study(config: StudyConfig | str | Path, out_dir: str | Path, *, force: bool = False,
              progress: ProgressFn | None = None) -> StudyResult:
    """Run (or resume) the paper's experiment and write tables, figures and the report.

    Parameters
    ----------
    config : StudyConfig, preset name or YAML path
        What to run (see :class:`StudyConfig` and :data:`twinsr.study.config.PRESETS`).
    out_dir : path
        Study folder. Rerunning with the same config resumes: complete steps are skipped, and
        so are the evaluations recorded as skipped in ``study.json``.
    force : bool
        Allow a folder holding a different study (its artefacts are deleted first) or a
        non-empty folder without a study.
    progress : callable(str), optional
        Called with one status line per step / sub-step.

    Returns
    -------
    StudyResult

    Raises
    ------
    ConfigError
        Invalid config; the folder holds a different study and ``force`` is False.
    VolumeError
        Unreadable or non-binary sample / measured volumes; nothing could be evaluated.

    Warns
    -----
    StudyWarning
        An optional output could not be written (calibration figure, a training curve) or
        ``steps.json`` was unreadable; the study goes on.

    Examples
    --------
    The CI-sized preset (about a minute on 2 CPU cores) and the methods it compares:

    >>> StudyConfig.preset("micro").methods
    ['N_bin', 'N_diffu', 'triquadratic', 'nearest']
    >>> res = run_study("micro", "micro-study")          # doctest: +SKIP
    >>> res.table.query("metric == 'accuracy'").groupby(["alpha", "method"]).value.median()
    ... # doctest: +SKIP
    """
    from twinsr.study.report import write_report

    t_start = time.perf_counter()
    cfg = _resolve(config)
    out = Path(out_dir)
    log = _Log(progress)
    meta, skips = _prepare_folder(cfg, out, force, log)
    run = _Run(cfg, out, log, meta, skips)
    log(f"study {cfg.name!r} in {out} on {meta['device']}")

    models = _calibrate(run)
    validation = _validate(run, models)
    db = _database(run, models)
    bundles, thresholds = _train(run, db)
    unit_files = _evaluate(run, db, bundles)
    atomic_write_text(out / "skipped.json",
                      json.dumps([r.to_dict() for r in run.skips], indent=1))
    skipped = [r.message for r in run.skips]
    if not unit_files:
        raise VolumeError("nothing was evaluated: every test volume is too small for the "
                          "requested sub-volumes at every α (see skipped.json); lower "
                          "'min_lr_edge' or 'subvolumes', or use larger volumes")
    df, results_path = _table(out, unit_files, log)
    figs = _figures(cfg, out, df, bundles, log)
    comp, bias, stat_figs = _statistics(cfg, out, df, log)
    figs += stat_figs

    t0 = time.perf_counter()
    report_md, report_html = write_report(
        out, df, config_yaml=cfg.to_yaml(), meta=meta, figures=figs, networks=cfg.networks,
        skipped=skipped, seconds=time.perf_counter() - t_start, thresholds=thresholds,
        validation=validation, comparisons=comp, bias=bias, seed=cfg.seed)
    log.mark("report", "done", time.perf_counter() - t0)
    seconds = time.perf_counter() - t_start
    _record_steps(out, meta, seconds, log)
    log(f"study done in {seconds / 60:.1f} min: {results_path}, {report_md}")
    return StudyResult(out_dir=out, config=cfg, table=df, results_path=results_path,
                       report_path=report_md, report_html=report_html, figures=figs,
                       bundles={k: v / "model.pt" for k, v in bundles.items()},
                       thresholds=thresholds, skipped=skipped, skip_records=list(run.skips),
                       steps=dict(log.steps), seconds=seconds)
