"""Write numbered digital twins (realizations of a twin model of any family) to disk, by seed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._distributed import check_workers, resolve_client, run_tasks
from twinsr._validation import check_int, check_shape
from twinsr.exceptions import ConfigError, TwinsrError, VolumeFileError
from twinsr.io import SUPPORTED_SUFFIXES
from twinsr.stochastic.excursion import ChiSquareModel
from twinsr.stochastic.families import TwinModel, family_of, load_model_file, model_from_dict

__all__ = ["GENERATE_FORMATS", "generate", "twin_name", "write_twin"]

log = logging.getLogger(__name__)

GENERATE_FORMATS = tuple(s.lstrip(".") for s in SUPPORTED_SUFFIXES)  # every format io writes


def twin_name(seed: int, index: int, fmt: str = "tif") -> str:
    """Deterministic file name of realization ``index`` of seed ``seed``: ``twin_s0_0003.tif``."""
    return f"twin_s{seed}_{index:04d}.{fmt}"


def _same_twin(old: dict, model: TwinModel, seed: int, index: int,
               shape: tuple[int, ...]) -> bool:
    """Whether metadata ``old`` describe realization ``index`` of ``model`` at ``seed``/``shape``.

    The model is compared by its parameters (not the stored dict, which also records the twinsr
    version that wrote it).
    """
    try:
        same_model = model_from_dict(old["model"]) == model
    except (KeyError, TypeError, ValueError):  # not our metadata (ConfigError is a ValueError)
        return False
    return (same_model and old.get("seed") == seed and old.get("index") == index
            and old.get("shape") == list(shape))


def generate(
    model: TwinModel | str | os.PathLike[str],
    shape: int | tuple[int, int, int],
    n: int,
    *,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    fmt: str = "tif",
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    client: Any = None,
) -> list[Path]:
    """Draw ``n`` realizations of ``model`` and write them to ``out_dir``.

    Realization ``i`` uses ``np.random.default_rng([seed, i])``, so it is the same volume
    whatever ``n`` is (``n=3`` writes the first three files of ``n=10``). Files are named
    ``twin_s{seed}_{i:04d}.{fmt}`` and written atomically with
    :func:`twinsr.io.write_volume`; their metadata record the model parameters, the seed, the
    index and the twinsr version. An existing file written by the same model, seed and index is
    kept (so an interrupted run resumes); one written differently is an error unless
    ``overwrite=True``.

    Parameters
    ----------
    model : twin model or path
        A model of any family (:mod:`twinsr.stochastic.families`), or its JSON file
        (``model.to_json()`` / ``twinsr calibrate``).
    shape : int or (Z, Y, X)
        Voxels per axis (an int means a cube).
    n : int
        Number of realizations (>= 1).
    out_dir : path-like
        Output folder (created).
    seed : int
        Base seed (>= 0).
    fmt : {"tif", "tiff", "npy", "npz", "raw", "zarr", "h5", "hdf5"}
        File format.
    progress : callable(i_done, n), optional
        Called after each file.
    overwrite : bool
        Replace existing files that were written with different parameters.
    workers : int, optional
        Threads for the χ² field generation (does not change the result).
    client : None, "auto" or distributed.Client
        Draw the realizations as tasks on a dask cluster (``"auto"``: the active client;
        None: one after the other here). The workers write the files atomically straight into
        ``out_dir``, which must be on a file system every worker sees at the same path
        (checked by a probe before any work, with the workers' package versions); the files
        are byte-identical to a serial run. Files already there are checked here first.

    Returns
    -------
    list of pathlib.Path
        The ``n`` files, in order.

    Raises
    ------
    ConfigError
        Bad ``n``, ``seed``, ``fmt`` or model file; an existing different file without
        ``overwrite``.
    VolumeError
        A shape with a zero.
    MemoryBudgetError
        One realization would not fit in memory (checked before allocating).
    VolumeFileError
        A write that failed (a full disk: no file of that name is created, rerun to resume);
        workers of ``client`` that cannot see ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> m = ChiSquareModel.from_volume_fraction(0.5, 0.2)
    >>> paths = generate(m, 32, 2, out_dir=tempfile.mkdtemp(), fmt="npy")
    >>> [p.name for p in paths]
    ['twin_s0_0000.npy', 'twin_s0_0001.npy']
    """
    from twinsr import __version__

    if isinstance(model, (str, os.PathLike)):
        model = load_model_file(model)
    else:
        family_of(model)  # ConfigError for anything that is not a twin model
    shp = check_shape(shape)
    count = check_int(n, "n", minimum=1, error=ConfigError)
    base_seed = check_int(seed, "seed", minimum=0, error=ConfigError)
    ext = str(fmt).lower().lstrip(".")
    if ext not in GENERATE_FORMATS:
        raise ConfigError(f"`fmt` must be one of {', '.join(GENERATE_FORMATS)}, got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dask_client = resolve_client(client)
    if dask_client is not None:
        check_workers(dask_client, out, what="generate output")
    params = model.to_dict()
    paths = [out / twin_name(base_seed, i, ext) for i in range(count)]
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, count)

    todo = []
    for i, path in enumerate(paths):
        if path.exists() and not overwrite:
            _check_existing(path, model, base_seed, i, shp)
            log.info("keeping %s (same model, seed and index)", path)
            advance()
        else:
            meta = {"generator": "twinsr.stochastic.generate", "model": params,
                    "seed": base_seed, "index": i, "shape": list(shp),
                    "twinsr_version": __version__}
            todo.append({"model": model, "shape": shp, "seed": base_seed, "index": i,
                         "path": str(path.absolute()), "metadata": meta, "workers": workers})
    if dask_client is not None:
        run_tasks(dask_client, write_twin, todo, progress=advance, key="twinsr-twin")
    else:
        for job in todo:
            write_twin(job)
            advance()
    return paths


def _check_existing(path: Path, model: TwinModel, seed: int, index: int,
                    shape: tuple[int, ...]) -> None:
    """An existing output is kept only if it is realization ``index`` of the same model/seed."""
    from twinsr.io import read_metadata

    try:
        old = read_metadata(path)
    except TwinsrError as exc:  # unreadable leftovers (e.g. VolumeFileError) are not ours
        raise ConfigError(f"{path} exists and cannot be read ({exc}); delete it or pass "
                          "overwrite=True") from exc
    if not _same_twin(old, model, seed, index, shape):
        raise ConfigError(f"{path} exists but was written with other parameters; use "
                          "another folder or seed, or pass overwrite=True (--overwrite)")


def write_twin(job: dict[str, Any]) -> str:
    """Draw one realization and write it atomically (a task of :func:`generate`).

    ``job`` holds ``model``, ``shape``, ``seed``, ``index``, ``path``, ``metadata`` and
    ``workers``; realization ``index`` uses ``np.random.default_rng([seed, index])``.

    Raises
    ------
    VolumeFileError
        The write failed (e.g. a full disk); no file of that name is left.
    """
    from twinsr.io import write_volume

    model, path = job["model"], Path(job["path"])
    kw = {"workers": job["workers"]} if isinstance(model, ChiSquareModel) else {}
    im = model.sample(job["shape"], rng=np.random.default_rng([job["seed"], job["index"]]), **kw)
    try:
        write_volume(path, im, voxel_size=model.voxel_size, metadata=job["metadata"])
    except OSError as exc:
        raise VolumeFileError(f"cannot write {path} ({exc.strerror or exc}); free disk space "
                              "or fix the permissions, then rerun to resume") from exc
    log.info("wrote %s (solid fraction %.4f)", path, float(im.mean()))
    return str(path)
