"""Training database of digital twins: HR realizations, strided LR images, diffusion channels.

Layout of a database folder (one ``.npy`` file per array, memory-mappable)::

    DIR/manifest.json                 parameters, seeds, split, shape, α's, versions, status
    DIR/m00_r00/hr.npy                uint8 (S, S, S), 1 = solid            (model 0, realization 0)
    DIR/m00_r00/lr_a2.npy             uint8 (S/2,)*3 = hr[::2, ::2, ::2]    (spec Eq. 3)
    DIR/m00_r00/diffu_a2.npy          float32 (2, S/2, S/2, S/2): pore / solid solution on lr_a2
    DIR/m00_r00/hr_diffu.npy          float32 (2, S, S, S): pore / solid solution on hr
                                      (only with hr_diffusion=True, spec §4)
    DIR/m00_r00/hr_float.npy          uint8 (S, S, S): 1 on floating clusters of hr (idem)
    DIR/m00_r00/entry.json            written last: marks the entry complete (shapes, seed)

Realization ``r`` of model ``m`` is sampled with ``numpy.random.default_rng(SeedSequence([seed,
m, r]))``, so every entry is reproducible on its own and a database can be rebuilt in any order,
in parallel, or resumed. Each realization index goes to one split (paper: 7 train / 2 validation /
1 test, spec §2.2.2), per parameter set.

Peak memory of building one entry: the HR realization plus the model's sampler (see
:meth:`twinsr.stochastic.ChiSquareModel.sample`) and the diffusion solve on the α = 2 image.
"""

from __future__ import annotations

import json
import logging
import os
import tokenize
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from twinsr._distributed import check_workers, resolve_client
from twinsr._provenance import package_versions
from twinsr._validation import check_alpha, check_axis, check_shape
from twinsr.exceptions import ConfigError, DatasetError
from twinsr.sr.targets import target_kind

__all__ = ["Database", "Pair", "build_database", "open_database"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DB_FORMAT = "twinsr-sr-database"
DB_VERSION = 1
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test"}


def _entry_name(m: int, r: int) -> str:
    return f"m{m:02d}_r{r:02d}"


def split_counts(n: int, split: Sequence[int]) -> tuple[int, int, int]:
    """Numbers of train/val/test realizations: ``split`` itself if it sums to ``n``, else the
    same proportions (at least one realization in every non-zero part).

    Raises
    ------
    DatasetError
        Fewer realizations than non-zero parts, or a malformed ``split``.
    """
    if len(split) != 3 or any(int(s) < 0 for s in split) or sum(split) <= 0 or split[0] <= 0:
        raise DatasetError(f"`split` must be 3 non-negative counts (train > 0), got {split}")
    s = [int(v) for v in split]
    if sum(s) == n:
        return s[0], s[1], s[2]
    tot = sum(s)
    val = max(1, round(n * s[1] / tot)) if s[1] else 0
    test = max(1, round(n * s[2] / tot)) if s[2] else 0
    train = n - val - test
    if train < 1:
        raise DatasetError(
            f"{n} realization(s) cannot be split {tuple(s)} with at least one per part; "
            f"use n_realizations >= {sum(1 for v in s if v)}"
        )
    return train, val, test


def _load_model(m: Any) -> Any:
    if isinstance(m, (str, os.PathLike)):
        p = Path(m)
        if not p.exists():
            raise ConfigError(f"model parameter file {p} does not exist "
                              "(create one with `twinsr calibrate`)")
        from twinsr.stochastic import load_model_file

        return load_model_file(p)
    if not (hasattr(m, "sample") and hasattr(m, "to_dict")):
        raise ConfigError(f"models must be twin models (ChiSquareModel, GrainModel, FibreModel) "
                          f"or their JSON files, got {type(m)}")
    return m


# what np.load raises for a damaged file: EOFError (zero bytes), tokenize.TokenError and
# SyntaxError (a damaged header dictionary), ValueError / OSError (the rest)
_NPY_ERRORS = (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError)


def _entry_valid(folder: Path, expected: dict[str, Any]) -> bool:
    """True if ``entry.json`` exists, matches ``expected`` and every array has its shape/dtype."""
    try:
        info = json.loads((folder / "entry.json").read_text(encoding="utf-8"))
        if info.get("seed") != expected["seed"] or info.get("files") != expected["files"]:
            return False
        for name, (shape, dtype) in info["files"].items():
            arr = np.load(folder / name, mmap_mode="r")
            if list(arr.shape) != list(shape) or str(arr.dtype) != dtype:
                return False
    except (*_NPY_ERRORS, KeyError, TypeError):
        return False
    return True


def _expected_files(shape: tuple[int, ...], alphas: Sequence[int], diffusion: bool,
                    hr_diffusion: bool = False) -> dict[str, list[Any]]:
    files: dict[str, list[Any]] = {"hr.npy": [list(shape), "uint8"]}
    if hr_diffusion:
        files["hr_diffu.npy"] = [[2, *shape], "float32"]
        files["hr_float.npy"] = [list(shape), "uint8"]
    for a in alphas:
        lr_shape = [s // a for s in shape]
        files[f"lr_a{a}.npy"] = [lr_shape, "uint8"]
        if diffusion:
            files[f"diffu_a{a}.npy"] = [[2, *lr_shape], "float32"]
    return files


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` atomically; a failed write (full disk) leaves no file of that name."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
    except OSError as exc:
        raise DatasetError(f"cannot write {path} ({exc.strerror or exc}); free disk space or "
                           "fix the permissions, then rerun with the same arguments to "
                           "resume") from exc


def _sample_entry(job: dict[str, Any]) -> str:
    """Draw the HR realization of one entry and write ``hr.npy`` and every ``lr_a{α}.npy``."""
    from twinsr.resample import downsample

    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "entry.json").unlink(missing_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence(job["seed"]))
    hr = np.ascontiguousarray(job["model"].sample(tuple(job["shape"]), rng=rng), dtype=np.uint8)
    _save_npy(folder / "hr.npy", hr)
    for a in job["alphas"]:
        _save_npy(folder / f"lr_a{a}.npy", downsample(hr, a))
    return folder.name


def _solve_entry(job: dict[str, Any], alpha: int | None, *_after: Any) -> str:
    """Diffusion solve of one entry's LR image at ``alpha`` (``diffu_a{α}.npy``), or of its HR
    realization for ``alpha=None`` (``hr_diffu.npy`` and ``hr_float.npy``); reads what
    :func:`_sample_entry` wrote (``_after``: the futures it must wait for)."""
    from twinsr.transport import diffusion_channels

    folder = Path(job["folder"])
    if alpha is None:
        from twinsr.transport.clusters import floating_mask

        hr = np.load(folder / "hr.npy")
        d_hr = diffusion_channels(hr, axis=job["axis"], device=job["device"])
        _save_npy(folder / "hr_diffu.npy", np.asarray(d_hr, dtype=np.float32))
        del d_hr
        _save_npy(folder / "hr_float.npy", floating_mask(hr, axis=job["axis"]).view(np.uint8))
        return "hr"
    lr = np.load(folder / f"lr_a{alpha}.npy")
    d = diffusion_channels(lr, axis=job["axis"], device=job["device"])
    _save_npy(folder / f"diffu_a{alpha}.npy", np.asarray(d, dtype=np.float32))
    return f"a{alpha}"


def _finish_entry(job: dict[str, Any], *_after: Any) -> str:
    """Write ``entry.json`` (last: it marks the entry complete)."""
    folder = Path(job["folder"])
    hr = np.load(folder / "hr.npy")
    info = {"seed": job["seed"], "files": job["files"], "solid_fraction": float(hr.mean())}
    atomic_write_text(folder / "entry.json", json.dumps(info, indent=1))
    return folder.name


def _solves(job: dict[str, Any]) -> list[int | None]:
    """The diffusion solves of an entry: None for the HR one, then one per α."""
    return ([None] if job.get("hr_diffusion") else []) + \
        (list(job["alphas"]) if job["diffusion"] else [])


def _build_entry(job: dict[str, Any]) -> str:
    """Build one (model, realization) entry; runs in a worker process when parallel."""
    _sample_entry(job)
    for alpha in _solves(job):
        _solve_entry(job, alpha)
    return _finish_entry(job)


def _build_on_cluster(client: Any, todo: list[dict[str, Any]],
                      progress: Callable[[], None]) -> None:
    """Every entry as tasks on a dask cluster: its sampling, then each diffusion solve (in
    parallel, reading the sampled files), then its ``entry.json``."""
    import uuid

    from twinsr._distributed import wait_all

    run = uuid.uuid4().hex[:8]
    finals = []
    for job in todo:
        tag = f"{Path(job['folder']).name}-{run}"
        sampled = client.submit(_sample_entry, job, key=f"twinsr-sample-{tag}", pure=False)
        solved = [client.submit(_solve_entry, job, a, sampled, pure=False,
                                key=f"twinsr-solve-{'hr' if a is None else a}-{tag}")
                  for a in _solves(job)]
        finals.append(client.submit(_finish_entry, job, sampled, *solved, pure=False,
                                    key=f"twinsr-entry-{tag}"))
    wait_all(client, finals, progress=progress)


def build_database(
    models: Sequence[Any],
    out_dir: str | os.PathLike[str],
    *,
    n_realizations: int = 10,
    shape: int | Sequence[int] = 256,
    alphas: Sequence[int] = (2, 4, 8),
    split: Sequence[int] = (7, 2, 1),
    seed: int = 0,
    axis: int = 0,
    diffusion: bool = True,
    hr_diffusion: bool = False,
    workers: int = 1,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
) -> Database:
    """Build (or resume building) a database of digital twins for training (spec §2.1.3).

    Parameters
    ----------
    models : sequence of twin models (any family) or their JSON files
        One parameter set per measured sample (``twinsr calibrate`` output).
    out_dir : path
        Database folder (created; an existing complete entry is kept, a broken one rebuilt).
    n_realizations : int
        Realizations per parameter set (paper: 10).
    shape : int or (Z, Y, X)
        HR realization shape in voxels (paper: 800³); must be divisible by every α.
    alphas : sequence of int
        Downsampling factors (strided: ``lr = hr[::α, ::α, ::α]``, spec Eq. 3).
    split : (train, val, test)
        Realization counts (or proportions) per parameter set (paper: 7, 2, 1).
    seed : int
        Master seed; entry (m, r) uses ``SeedSequence([seed, m, r])``.
    axis : int
        Transport axis of the diffusion channels.
    diffusion : bool
        Also store the diffusion channels of every LR image (needed for ``inputs="diffu"``).
    hr_diffusion : bool
        Also store the diffusion channels of every HR realization (solved once per
        realization, ≈ 9 bytes per HR voxel on disk with the floating-cluster mask); needed for
        ``targets="morph+diffu"`` training (spec §4).
    workers : int
        Worker processes building entries in parallel (1 = in this process).
    device : str
        Device for the diffusion solver.
    progress : callable(done, total), optional
        Called after every entry.
    client : None, "auto" or distributed.Client
        Build on a dask cluster (``"auto"``: the active client; None: ``workers`` as above).
        Each entry's sampling and each of its diffusion solves is a task; workers write the
        entry files atomically straight into ``out_dir``, which must be on a file system every
        worker sees at the same path (checked by a probe before any work, with the workers'
        versions). The files are byte-identical to a serial build (same seed per entry).

    Returns
    -------
    Database

    Raises
    ------
    ConfigError
        Bad models; ``out_dir`` holds a database built with other settings; a bad ``client``
        or workers running other package versions.
    DatasetError
        Bad split, or a shape not divisible by an α; a write that failed (a full disk: the
        file is not created, rerun to resume).
    VolumeFileError
        Workers of ``client`` that cannot see ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> from twinsr.stochastic import ChiSquareModel
    >>> db = build_database([ChiSquareModel(nu=1.4, gamma=0.3)], tempfile.mkdtemp(),
    ...                     n_realizations=3, shape=16, alphas=(2,), split=(1, 1, 1),
    ...                     diffusion=False)
    >>> db.entries("val"), db.lr("m00_r01", 2).shape
    (['m00_r01'], (8, 8, 8))
    """
    model_objs = [_load_model(m) for m in models]
    if not model_objs:
        raise ConfigError("no models given; pass at least one parameter file")
    shp = check_shape(shape)
    alphas = sorted({check_alpha(a) for a in alphas})
    for a in alphas:
        if any(s % a for s in shp):
            raise DatasetError(f"shape {shp} is not divisible by alpha={a}; choose a shape "
                               f"divisible by {max(alphas)}")
    n = int(n_realizations)
    counts = split_counts(n, split)
    axis = check_axis(axis)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # left by an earlier build killed mid-write
    dask_client = resolve_client(client)
    if dask_client is not None:
        check_workers(dask_client, out, what="database")
    settings = {
        "models": [m.to_dict() for m in model_objs],
        "n_realizations": n, "shape": list(shp), "alphas": alphas, "split": list(counts),
        "seed": int(seed), "axis": axis, "diffusion": bool(diffusion),
    }
    if hr_diffusion:  # only recorded when set, so databases built before keep resuming
        settings["hr_diffusion"] = True
    man_path = out / MANIFEST
    if man_path.exists():
        try:
            old = json.loads(man_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{man_path} is unreadable ({exc}); delete it to rebuild") from exc
        diff = {k: (old.get("settings", {}).get(k), v) for k, v in settings.items()
                if old.get("settings", {}).get(k) != v}
        if diff:
            shown = "; ".join(f"{k}: existing={a!r}, requested={b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"{out} holds a database built with other settings ({shown}); "
                              "use another folder or the same settings to resume")
    files = _expected_files(shp, alphas, diffusion, bool(hr_diffusion))
    names = {"train": [], "val": [], "test": []}
    jobs = []
    for m, model in enumerate(model_objs):
        for r in range(n):
            part = "train" if r < counts[0] else ("val" if r < counts[0] + counts[1] else "test")
            name = _entry_name(m, r)
            names[part].append(name)
            jobs.append({"folder": str(out.absolute() / name), "model": model, "seed": [int(seed), m, r],
                         "shape": list(shp), "alphas": alphas, "diffusion": bool(diffusion),
                         "hr_diffusion": bool(hr_diffusion),
                         "axis": axis, "device": device, "files": files})
    manifest = {"format": DB_FORMAT, "format_version": DB_VERSION, "settings": settings,
                "splits": names, "entries": {Path(j["folder"]).name: {
                    "model": j["seed"][1], "realization": j["seed"][2], "seed": j["seed"]}
                    for j in jobs},
                "versions": package_versions(("twinsr", "numpy", "scipy")), "complete": False}
    atomic_write_text(man_path, json.dumps(manifest, indent=1))
    todo = [j for j in jobs if not _entry_valid(Path(j["folder"]), j)]
    log.info("database %s: %d of %d entries to build", out, len(todo), len(jobs))
    done = len(jobs) - len(todo)
    if progress is not None:
        progress(done, len(jobs))
    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(jobs))

    if dask_client is not None:
        _build_on_cluster(dask_client, todo, advance)
    elif workers > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=int(workers)) as ex:
            for f in as_completed([ex.submit(_build_entry, j) for j in todo]):
                f.result()
                advance()
    else:
        for j in todo:
            _build_entry(j)
            advance()
    manifest["complete"] = True
    atomic_write_text(man_path, json.dumps(manifest, indent=1))
    return Database(out)


@dataclass(frozen=True)
class Pair:
    """One aligned LR/HR pair of a database, backed by memory-mapped arrays.

    ``channels`` holds the C network inputs (binary LR, then pore / solid solution for
    ``inputs="diffu"``), ``hr`` the uint8 HR realization. Iterating yields ``(lr, hr)`` with
    ``lr`` the float32 stack (C, z, y, x) (loaded into memory on access). For
    ``targets="morph+diffu"`` ``hr_solution`` is the float32 (2, Z, Y, X) HR solution and
    ``hr_floating`` the uint8 (Z, Y, X) floating-cluster mask of ``hr`` (else None).
    """

    name: str
    model: int
    realization: int
    alpha: int
    channels: tuple[np.ndarray, ...]
    hr: np.ndarray
    hr_solution: np.ndarray | None = None
    hr_floating: np.ndarray | None = None

    @property
    def lr(self) -> np.ndarray:
        return np.stack([np.asarray(c, dtype=np.float32) for c in self.channels])

    @property
    def lr_binary(self) -> np.ndarray:
        return np.asarray(self.channels[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.lr
        yield np.asarray(self.hr)


def _check_manifest(m: dict[str, Any], path: Path) -> None:
    """Refuse a manifest whose structure is damaged (a renamed key, a wrong type) by name."""
    def bad(what: str) -> DatasetError:
        return DatasetError(f"{path} is damaged ({what}); rerun `twinsr database` with the same "
                            "arguments to rewrite it")

    s, splits, entries = m.get("settings"), m.get("splits"), m.get("entries")
    if not isinstance(s, dict) or not isinstance(splits, dict) or not isinstance(entries, dict):
        raise bad("'settings', 'splits' or 'entries' is missing or not a mapping")
    for key, kind in (("alphas", list), ("shape", list), ("diffusion", bool), ("axis", int),
                      ("split", list)):
        if not isinstance(s.get(key), kind):
            raise bad(f"settings[{key!r}] is missing or not a {kind.__name__}")
    for split, names in splits.items():
        if split not in SPLITS or not isinstance(names, list):
            raise bad(f"split {split!r} is unknown or not a list")
        for name in names:
            e = entries.get(name)
            if not isinstance(e, dict) or not all(isinstance(e.get(k), int)
                                                  for k in ("model", "realization")):
                raise bad(f"entry {name!r} is missing or lacks 'model'/'realization'")


class Database:
    """A database folder written by :func:`build_database`.

    Raises
    ------
    DatasetError
        Missing or foreign manifest, an incomplete build, or a requested split / α / input kind
        the database does not hold.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        man = self.path / MANIFEST
        if not man.exists():
            raise DatasetError(f"{self.path} is not a twinsr database (no {MANIFEST}); build one "
                               "with `twinsr database PARAMS... -o DIR`")
        try:
            self.manifest = json.loads(man.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{man} is unreadable: {exc}") from exc
        if self.manifest.get("format") != DB_FORMAT:
            raise DatasetError(f"{man} is not a twinsr database manifest")
        if not self.manifest.get("complete"):
            raise DatasetError(f"database {self.path} is incomplete ({man} does not say "
                               "complete: the build was interrupted or the file is damaged); "
                               "rerun `twinsr database` with the same arguments to finish it")
        _check_manifest(self.manifest, man)
        s = self.manifest["settings"]
        self.alphas: tuple[int, ...] = tuple(s["alphas"])
        self.shape: tuple[int, ...] = tuple(s["shape"])
        self.diffusion: bool = bool(s["diffusion"])
        self.axis: int = int(s["axis"])
        self.hr_diffusion: bool = bool(s.get("hr_diffusion", False))
        self.settings: dict[str, Any] = s

    def __repr__(self) -> str:
        sp = {k: len(v) for k, v in self.manifest["splits"].items()}
        return f"Database({str(self.path)!r}, shape={self.shape}, alphas={self.alphas}, splits={sp})"

    def entries(self, split: str) -> list[str]:
        """Entry names of a split ("train", "val"/"validation", "test")."""
        key = _SPLIT_ALIASES.get(str(split).lower())
        if key is None:
            raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
        names = self.manifest["splits"].get(key, [])
        if not names:
            raise DatasetError(f"database {self.path} has no {key!r} realizations "
                               f"(split {self.settings['split']}); rebuild with a split giving "
                               f"{key} at least one realization")
        return list(names)

    def _check_alpha(self, alpha: int) -> int:
        if alpha not in self.alphas:
            raise DatasetError(f"database {self.path} holds alphas {self.alphas}, not "
                               f"alpha={alpha}; rebuild it with --alphas including {alpha}")
        return int(alpha)

    def _load(self, name: str, file: str) -> np.ndarray:
        p = self.path / name / file
        try:
            return np.load(p, mmap_mode="r")
        except _NPY_ERRORS as exc:
            raise DatasetError(f"database file {p} is missing or damaged ({exc}); rerun "
                               "`twinsr database` with the same arguments to repair it") from exc

    def hr(self, name: str) -> np.ndarray:
        """HR realization (uint8, memory-mapped)."""
        return self._load(name, "hr.npy")

    def lr(self, name: str, alpha: int) -> np.ndarray:
        """Strided LR image (uint8, memory-mapped)."""
        return self._load(name, f"lr_a{self._check_alpha(alpha)}.npy")

    def diffusion_channels(self, name: str, alpha: int) -> np.ndarray:
        """Diffusion channels of the LR image, float32 (2, z, y, x), memory-mapped."""
        if not self.diffusion:
            raise DatasetError(f"database {self.path} was built without diffusion channels; "
                               "rebuild with diffusion=True for inputs='diffu'")
        return self._load(name, f"diffu_a{self._check_alpha(alpha)}.npy")

    def hr_solution(self, name: str) -> np.ndarray:
        """Diffusion channels of the HR realization, float32 (2, Z, Y, X), memory-mapped."""
        self.check_hr_diffusion()
        return self._load(name, "hr_diffu.npy")

    def hr_floating(self, name: str) -> np.ndarray:
        """Floating-cluster mask of the HR realization, uint8 (Z, Y, X), memory-mapped."""
        self.check_hr_diffusion()
        return self._load(name, "hr_float.npy")

    def check_hr_diffusion(self, needed_by: str = "targets='morph+diffu'") -> None:
        """Raise :class:`DatasetError` naming ``needed_by`` if the HR solution is not stored."""
        if not self.hr_diffusion:
            raise DatasetError(
                f"database {self.path} holds no HR diffusion channels, which {needed_by} "
                "needs; build a new database with build_database(..., hr_diffusion=True) "
                "(`twinsr database ... --hr-diffusion`)")

    def pairs(self, split: str, alpha: int, *, inputs: str = "bin",
              targets: str = "morph", hr_solution: bool = False) -> list[Pair]:
        """Aligned pairs of a split at factor α, with the inputs of a "bin" or "diffu" network.

        A target kind that needs the HR solution (``targets="morph+diffu"``, see
        :mod:`twinsr.sr.targets`), or ``hr_solution=True`` (the flux-weighted objective), also
        attaches the HR solution and floating mask (the database must be built with
        ``hr_diffusion=True``, else :class:`DatasetError`); an unknown ``targets`` raises
        :class:`ConfigError` listing the known kinds.

        Returns
        -------
        list of Pair
            Memory-mapped; ``lr, hr = pair`` loads one pair (lr float32 (C, z, y, x), C = 1 or 3;
            hr uint8 (Z, Y, X)).
        """
        if inputs not in ("bin", "diffu"):
            raise ConfigError(f"`inputs` must be 'bin' or 'diffu', got {inputs!r}")
        kind_needs = target_kind(targets).needs_hr_solution
        with_solution = kind_needs or bool(hr_solution)
        if with_solution:
            self.check_hr_diffusion(f"targets={targets!r}" if kind_needs
                                    else "the flux-weighted objective ('flux_bce')")
        alpha = self._check_alpha(alpha)
        out = []
        for name in self.entries(split):
            lr = self.lr(name, alpha)
            chans: tuple[np.ndarray, ...] = (lr,)
            if inputs == "diffu":
                d = self.diffusion_channels(name, alpha)
                chans = (lr, d[0], d[1])
            info = self.manifest["entries"][name]
            sol = flo = None
            if with_solution:
                sol, flo = self.hr_solution(name), self.hr_floating(name)
            out.append(Pair(name, int(info["model"]), int(info["realization"]), alpha, chans,
                            self.hr(name), sol, flo))
        return out


def open_database(path: str | os.PathLike[str]) -> Database:
    """Open a database folder written by :func:`build_database`."""
    return Database(path)
