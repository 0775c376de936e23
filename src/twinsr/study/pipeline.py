"""The paper's experiment end to end (spec §2-§3): :func:`run_study`.

Steps (each resumable: a step whose output is complete and valid is skipped on rerun and the
skip is logged):

1. ``calibrate`` - fit a χ² excursion model per sample -> ``params/NAME.json`` (+ a figure);
2. ``database`` - digital twins, strided LR images and diffusion channels -> ``database/``;
3. ``train`` - N^{bin,α} and N^{diffu,α}, α ascending, each α network starting from the α/2
   one (transfer learning) -> ``runs/{bin,diffu}_a{α}/`` (bundle with threshold μ*);
4. ``evaluate`` - simulated test realizations and measured volumes, cut into ``k³``
   sub-volumes, super-resolved by each network and baseline and scored -> ``eval/*.csv``;
5. ``table``, ``figures``, ``report`` -> ``results.csv``, ``figures/``, ``report.md/.html``.

The output folder holds ``study.json`` (resolved config, seed, package versions, git hash,
device) and ``config.yaml``. A folder holding a *different* study is refused unless
``force=True``, which deletes that study's artefacts first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._atomic import atomic_path, atomic_write_text
from twinsr._provenance import git_hash, package_versions
from twinsr._validation import as_binary_volume, resolve_device
from twinsr.exceptions import ConfigError, TwinsrError, VolumeError
from twinsr.study.config import StudyConfig, config_difference
from twinsr.study.evaluate import central_crop

__all__ = ["ARTEFACTS", "StudyResult", "run_study", "sample_name"]

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
#: Files and folders a study writes into its output folder (removed by ``force=True``).
ARTEFACTS = ("study.json", "config.yaml", "steps.json", "params", "database", "runs", "eval",
             "figures", "results.csv", "results.parquet", "report.md", "report.html",
             "skipped.json", "thresholds.json")
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
        Evaluations skipped (e.g. a volume too small at α = 8), with the reason.
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
    """Label of a sample/measured entry: built-in name or file stem."""
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


# ------------------------------------------------------------------------------ folder
def _prepare_folder(cfg: StudyConfig, out: Path, force: bool, log: _Log) -> dict[str, Any]:
    study_path = out / STUDY_FILE
    old: dict[str, Any] = {}
    if study_path.exists():
        try:
            old = json.loads(study_path.read_text(encoding="utf-8"))
            old_id = old["config"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if not force:
                raise ConfigError(f"{study_path} is unreadable ({exc}); pass force=True "
                                  "(--force) to start the study afresh") from None
            old, old_id = {}, None
        new_id = cfg.identity()
        if old_id is not None and old_id != new_id:
            diff = config_difference(old_id, new_id)
            if not force:
                raise ConfigError(
                    f"{out} holds a different study; differences (existing -> requested): "
                    + "; ".join(diff) + ". Use another folder, or force=True (--force) to "
                    "delete that study's outputs and start again")
            log(f"--force: removing the previous study in {out} ({'; '.join(diff)})")
            for name in ARTEFACTS:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            old = {}
    elif out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty and holds no {STUDY_FILE}; choose an empty or new "
                          "folder, or pass force=True (--force) to use it anyway")
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(cfg.device)
    meta = {"name": cfg.name, "config": cfg.identity(), "seed": cfg.seed,
            "versions": package_versions(), "git": git_hash(), "device": _device_desc(dev),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    meta["first_started"] = old.get("first_started", old.get("started", meta["started"]))
    atomic_write_text(study_path, json.dumps(meta, indent=1))
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    return meta


# ------------------------------------------------------------------------------ steps
def _calibrate(cfg: StudyConfig, out: Path, log: _Log) -> list[Any]:
    from twinsr.stochastic import ChiSquareModel, calibrate

    t0 = time.perf_counter()
    pdir = out / "params"
    pdir.mkdir(exist_ok=True)
    models, did = [], False
    for entry, name in zip(cfg.samples, _unique_names(cfg.samples), strict=True):
        target = pdir / f"{name}.json"
        if target.exists():
            try:
                models.append(ChiSquareModel.from_json(target))
                log(f"calibrate {name}: complete, skipped")
                continue
            except TwinsrError as exc:
                log(f"calibrate {name}: {target} is invalid ({exc}); redoing it")
        if entry.lower().endswith(".json"):
            model = ChiSquareModel.from_json(entry)
            log(f"calibrate {name}: parameters read from {entry}")
        else:
            im = central_crop(_read_entry(entry), cfg.calibration_crop)
            res = calibrate(im, covariance=cfg.covariance, excursion_phase=cfg.excursion_phase)
            model = res.model
            log(f"calibrate {name}: nu={model.nu:.4g}, gamma={model.gamma:.4g} "
                f"({model.covariance}, {model.excursion_phase} excursion)")
            try:
                from twinsr.stochastic import plot_calibration

                plot_calibration(res, out / "figures" / f"calibration_{name}.png")
            except Exception as exc:  # a figure must not stop the study
                log(f"calibrate {name}: calibration figure not written ({exc})")
        model.to_json(target)
        models.append(model)
        did = True
    log.mark("calibrate", "done" if did else "skipped", time.perf_counter() - t0)
    return models


def _database(cfg: StudyConfig, out: Path, models: list[Any], log: _Log) -> Any:
    from twinsr.sr import build_database, open_database

    t0 = time.perf_counter()
    path = out / "database"
    with contextlib.suppress(TwinsrError):  # no complete database yet: build it (resumes entries)
        db = open_database(path)
        if db.settings.get("n_realizations") == cfg.n_realizations and \
                tuple(db.settings.get("shape", ())) == tuple(cfg.shape):
            log.mark("database", "skipped", time.perf_counter() - t0)
            return db
    total = len(models) * cfg.n_realizations

    def prog(done: int, n: int) -> None:
        log(f"database: {done}/{n} realizations")

    db = build_database(models, path, n_realizations=cfg.n_realizations, shape=cfg.shape,
                        alphas=cfg.alphas, split=cfg.split, seed=cfg.seed, axis=cfg.axis,
                        diffusion="diffu" in cfg.inputs, device=cfg.device, progress=prog)
    log(f"database: {total} realizations of {cfg.shape}")
    log.mark("database", "done", time.perf_counter() - t0)
    return db


def _load_complete(run: Path, alpha: int, inputs: str) -> Any | None:
    """The model bundle of a finished training run, or None if the run is missing/incomplete."""
    from twinsr.sr import load_model

    if not (run / "run.json").exists():
        return None
    try:
        return load_model(run, alpha=alpha, inputs=inputs)
    except TwinsrError:
        return None


def _train(cfg: StudyConfig, out: Path, db: Any, log: _Log) -> tuple[dict[str, Path],
                                                                     dict[str, float]]:
    from twinsr.sr import load_model, train

    t0 = time.perf_counter()
    tcfg = cfg.train_config()
    bundles: dict[str, Path] = {}
    thresholds: dict[str, float] = {}
    did = False
    for inputs in cfg.inputs:
        prev: Path | None = None
        for a in cfg.alphas:
            name = f"N_{inputs}_a{a}"
            run = out / "runs" / f"{inputs}_a{a}"
            model = _load_complete(run, a, inputs)
            if model is not None:
                log(f"train {name}: complete, skipped")
            else:
                init = prev if (cfg.transfer and prev is not None) else None
                log(f"train {name}" + (f" (transfer from {init.name})" if init else ""))
                state = {"last": -1}

                def prog(epoch: int, step: int, loss: float, val: float | None,
                         _n: str = name, _s: dict[str, int] = state) -> None:
                    if val is not None and epoch != _s["last"]:
                        _s["last"] = epoch
                        log(f"train {_n}: epoch {epoch} train loss {loss:.4f} val loss "
                            f"{val:.4f}")

                res = train(db, alpha=a, inputs=inputs, out_dir=run, config=tcfg,
                            init_from=init, resume=True, device=cfg.device, progress=prog)
                log(f"train {name}: {res.epochs_run} epochs, best val loss "
                    f"{res.best_val_loss:.4f}, threshold {res.threshold:.3f}, "
                    f"{res.seconds:.0f} s")
                did = True
                model = load_model(run, alpha=a, inputs=inputs)
            bundles[name] = run
            thresholds[name] = float(model.threshold)
            prev = run
    atomic_write_text(out / "thresholds.json", json.dumps(thresholds, indent=1))
    log.mark("train", "done" if did else "skipped", time.perf_counter() - t0)
    return bundles, thresholds


def _test_volumes(cfg: StudyConfig, db: Any) -> list[tuple[str, str, Callable[[], np.ndarray],
                                                           int | None]]:
    """(source, sample, loader, crop) of every test volume."""
    vols: list[tuple[str, str, Callable[[], np.ndarray], int | None]] = []
    if cfg.evaluate_simulated:
        names = _unique_names(cfg.samples)
        entries = db.entries("test")
        per_model: dict[int, list[str]] = {}
        for e in entries:
            per_model.setdefault(int(db.manifest["entries"][e]["model"]), []).append(e)
        for m, es in sorted(per_model.items()):
            for e in es:
                r = db.manifest["entries"][e]["realization"]
                label = names[m] if len(es) == 1 else f"{names[m]}_r{r}"
                vols.append(("simulated", label, lambda e=e: np.asarray(db.hr(e)), None))
    for entry, name in zip(cfg.measured, _unique_names(cfg.measured), strict=True):
        vols.append(("measured", name, lambda entry=entry: _read_entry(entry), cfg.measured_crop))
    return vols


def _evaluate(cfg: StudyConfig, out: Path, db: Any, bundles: dict[str, Path],
              log: _Log) -> tuple[list[Path], list[str]]:
    import pandas as pd

    from twinsr.resample import upsample
    from twinsr.sr import load_model, superresolve
    from twinsr.study.evaluate import (
        cut_subvolumes,
        evaluate_volume,
        prepare_volume,
        reference_tortuosities,
    )

    t0 = time.perf_counter()
    edir = out / "eval"
    edir.mkdir(exist_ok=True)
    dev = resolve_device(cfg.device)
    models: dict[str, Any] = {}  # loaded on first use: a resumed, complete evaluation loads none
    k = cfg.k
    unit_files: list[Path] = []
    skipped: list[str] = []
    did = False
    for source, sample, loader, crop in _test_volumes(cfg, db):
        stem = f"{source}__{sample}"
        todo = [a for a in cfg.alphas if not (edir / f"{stem}__a{a}.csv").exists()]
        done_files = [edir / f"{stem}__a{a}.csv" for a in cfg.alphas
                      if (edir / f"{stem}__a{a}.csv").exists()]
        unit_files += done_files
        skip_file = edir / f"{stem}__skipped.json"
        if skip_file.exists():
            skipped += json.loads(skip_file.read_text(encoding="utf-8"))
            todo = [a for a in todo if not any(f"α={a}" in s for s in skipped
                                               if s.startswith(f"{source}/{sample}"))]
        if not todo:
            log(f"evaluate {source}/{sample}: complete, skipped")
            continue
        im = central_crop(loader(), crop)
        feasible = [a for a in cfg.alphas if min(im.shape) // (k * a) >= cfg.min_lr_edge]
        these_skipped = [
            f"{source}/{sample} α={a}: volume {im.shape} too small for {cfg.subvolumes} "
            f"sub-volumes with LR edge >= {cfg.min_lr_edge} (needs >= {k * a * cfg.min_lr_edge}"
            " voxels per axis)" for a in cfg.alphas if a not in feasible]
        for s in these_skipped:
            log(f"evaluate: skipping {s}")
        if these_skipped:
            atomic_write_text(skip_file, json.dumps(these_skipped, indent=1))
            # a resumed volume may have loaded these from skip_file already
            skipped += [s for s in these_skipped if s not in skipped]
        todo = [a for a in todo if a in feasible]
        if not feasible or not todo:
            continue
        hr = prepare_volume(im, k=k, alpha_max=max(feasible), min_lr_edge=cfg.min_lr_edge,
                            name=f"{source}/{sample}")
        subs = cut_subvolumes(hr, k)
        ref = None
        if cfg.tortuosity:
            ref_file = edir / f"{stem}__reference.json"
            ref = _load_reference(ref_file, len(subs))
            if ref is None:
                log(f"evaluate {source}/{sample}: ground-truth tortuosities of {len(subs)} "
                    f"sub-volumes {subs[0].shape}")
                ref = reference_tortuosities(subs, axis=cfg.axis, device=cfg.device)
                _save_reference(ref_file, ref)
        for a in todo:
            methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
            for inputs in cfg.inputs:
                name = f"N_{inputs}_a{a}"
                if name not in models:
                    models[name] = load_model(bundles[name], device=dev)
                mdl = models[name]
                methods[f"N_{inputs}"] = (lambda lr, mdl=mdl: superresolve(
                    lr, mdl, device=dev, axis=cfg.axis))
            for b in cfg.baselines:
                methods[b] = lambda lr, b=b, a=a: upsample(lr, a, method=b)
            log(f"evaluate {source}/{sample} α={a}: {len(subs)} sub-volumes "
                f"{subs[0].shape}, {len(methods)} methods")
            unit = evaluate_volume(subs, a, methods, source=source, sample=sample,
                                   reference=ref, axis=cfg.axis, device=cfg.device)
            target = edir / f"{stem}__a{a}.csv"
            with atomic_path(edir / f"{stem}__a{a}_slices.npz") as tmp:
                np.savez_compressed(tmp, **unit.slices)
            with atomic_path(target) as tmp:
                pd.DataFrame(unit.rows).to_csv(tmp, index=False)
            unit_files.append(target)
            did = True
    log.mark("evaluate", "done" if did else "skipped", time.perf_counter() - t0)
    return unit_files, skipped


def _save_reference(path: Path, ref: list[dict[str, Any]]) -> None:
    data = [{p: {"tau_geod": t.tau_geod, "tau_eff": t.tau_eff, "percolating": t.percolating}
             for p, t in r.items()} for r in ref]
    # JSON has no inf: store it as the string "inf"
    text = json.dumps(data, indent=1, default=str).replace("Infinity", '"inf"')
    atomic_write_text(path, text)


def _load_reference(path: Path, n: int) -> list[dict[str, Any]] | None:
    from twinsr.metrics import PhaseTortuosity

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        out = [{p: PhaseTortuosity(p, float(v["tau_geod"]), float(v["tau_eff"]),
                                   bool(v["percolating"])) for p, v in r.items()} for r in data]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return out if len(out) == n else None


def _histories(bundles: dict[str, Path]) -> dict[str, Any]:
    import pandas as pd

    out = {}
    for name, run in bundles.items():
        h = run / "history.csv"
        if h.exists():
            try:
                out[name] = pd.read_csv(h)
            except (OSError, ValueError):
                continue
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
    edir = out / "eval"
    by_volume: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for f in sorted(edir.glob("*__a*_slices.npz")):
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


# ------------------------------------------------------------------------------ entry point
def run_study(config: StudyConfig | str | Path, out_dir: str | Path, *, force: bool = False,
              progress: ProgressFn | None = None) -> StudyResult:
    """Run (or resume) the paper's experiment and write tables, figures and the report.

    Parameters
    ----------
    config : StudyConfig, preset name or YAML path
        What to run (see :class:`StudyConfig` and :data:`twinsr.study.config.PRESETS`).
    out_dir : path
        Study folder. Rerunning with the same config resumes: complete steps are skipped.
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
        Unreadable or non-binary sample / measured volumes.

    Examples
    --------
    >>> res = run_study("micro", "micro-study")          # doctest: +SKIP
    >>> res.table.query("metric == 'accuracy'").groupby(["alpha", "method"]).value.median()
    ... # doctest: +SKIP
    """
    import pandas as pd

    from twinsr.study.evaluate import write_table
    from twinsr.study.report import write_report

    t_start = time.perf_counter()
    if isinstance(config, StudyConfig):
        cfg = config
    elif isinstance(config, str) and not config.lower().endswith((".yaml", ".yml")):
        cfg = StudyConfig.preset(config)
    else:
        cfg = StudyConfig.from_yaml(config)
    out = Path(out_dir)
    log = _Log(progress)
    meta = _prepare_folder(cfg, out, force, log)
    log(f"study {cfg.name!r} in {out} on {meta['device']}")

    models = _calibrate(cfg, out, log)
    db = _database(cfg, out, models, log)
    bundles, thresholds = _train(cfg, out, db, log)
    unit_files, skipped = _evaluate(cfg, out, db, bundles, log)
    atomic_write_text(out / "skipped.json", json.dumps(skipped, indent=1))
    if not unit_files:
        raise VolumeError("nothing was evaluated: every test volume is too small for the "
                          "requested sub-volumes at every α (see skipped.json); lower "
                          "'min_lr_edge' or 'subvolumes', or use larger volumes")

    t0 = time.perf_counter()
    df = pd.concat([pd.read_csv(f) for f in sorted(set(unit_files))], ignore_index=True)
    df = df[["source", "sample", "subvolume", "alpha", "method", "phase", "metric", "value"]]
    df = df.sort_values(["source", "sample", "alpha", "method", "subvolume", "phase",
                         "metric"], kind="stable").reset_index(drop=True)
    paths = write_table(df, out)
    log.mark("table", "done", time.perf_counter() - t0)

    figs = _figures(cfg, out, df, bundles, log)
    t0 = time.perf_counter()
    steps_file = out / "steps.json"
    seconds = time.perf_counter() - t_start
    report_md, report_html = write_report(
        out, df, config_yaml=cfg.to_yaml(), meta=meta, figures=figs,
        networks=[f"N_{i}" for i in cfg.inputs], skipped=skipped, seconds=seconds,
        thresholds=thresholds)
    log.mark("report", "done", time.perf_counter() - t0)
    seconds = time.perf_counter() - t_start
    history = []
    if steps_file.exists():
        try:
            history = json.loads(steps_file.read_text(encoding="utf-8")).get("runs", [])
        except (OSError, ValueError):
            history = []
    history.append({"started": meta["started"], "seconds": round(seconds, 1),
                    "steps": log.steps, "step_seconds": log.times})
    atomic_write_text(steps_file, json.dumps({"runs": history}, indent=1))
    log(f"study done in {seconds / 60:.1f} min: {paths[0]}, {report_md}")
    return StudyResult(out_dir=out, config=cfg, table=df, results_path=paths[0],
                       report_path=report_md, report_html=report_html, figures=figs,
                       bundles={k: v / "model.pt" for k, v in bundles.items()},
                       thresholds=thresholds, skipped=skipped, steps=dict(log.steps),
                       seconds=seconds)

