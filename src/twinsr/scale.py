"""Out-of-core, resumable super-resolution with Zarr + Dask: volumes larger than memory.

:func:`superresolve_zarr` reads the LR volume lazily (a Zarr store or an HDF5 dataset, read block
by block while the computation runs; a ``.npy`` file memory-mapped; other formats and in-memory
arrays are held in memory), cuts it into ``chunk³`` blocks extended by the network's receptive
field (``dask.array.overlap`` with ``boundary="none"``), runs each block through the network, and
writes the HR result block by block into a Zarr store whose chunks are the HR images of the LR
blocks. Because each extended block stops at the true volume border (where the network's own zero
padding applies) and the halo covers the receptive field, the result equals
:func:`twinsr.sr.superresolve` (untiled inference) to float32 round-off.

Only one HR block is in memory per worker, so the HR volume never has to fit in RAM. The same
code runs on a laptop (threaded scheduler), a workstation, or a Dask cluster (an active
``dask.distributed.Client`` is used automatically; the output store must then be on a shared
file system, and an HDF5 input is read into memory first, since open HDF5 files cannot be sent to
workers).

Resumable: every finished block leaves a marker in ``<out>.partial/.twinsr-done/``; rerunning
the same call skips finished blocks. The store is renamed to ``out`` only when every block is
done, so ``out`` is never half-written.

Memory: the LR input channels are held in memory for models with diffusion inputs (the Laplace
solve is global; LR is α³ times smaller than HR); binary models read the LR lazily as above.
As for :func:`twinsr.sr.superresolve`, the diffusion channels are solved along the model's own
transport axis (:class:`twinsr.sr.ModelSpec`); an explicit ``axis`` that disagrees is refused.

Each block runs through the same engine as in-memory inference (:mod:`twinsr.sr.engine`): the
same precision (``"auto"`` decides once per volume, on the same central crop), test-time
augmentation (``tta``, with the uncertainty written to a second store, ``uncertainty_out``), so
the stores equal :func:`twinsr.sr.superresolve` of the whole volume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._atomic import atomic_write_text
from twinsr._distributed import check_workers, resolve_client, wait_all
from twinsr._validation import as_binary_volume, check_memory, resolve_device
from twinsr.exceptions import VolumeError, VolumeFileError
from twinsr.io import (
    create_zarr_array,
    ngff_attrs,
    ngff_unit,
    normalize_voxel_size,
    open_zarr_array,
    pick_array_key,
    read_volume,
)

__all__ = ["superresolve_zarr"]

log = logging.getLogger(__name__)

_DONE = ".twinsr-done"
_SETTINGS = ".twinsr-settings.json"


def _lazy_lr(lr: object, key: str | None, files: contextlib.ExitStack, *,
             distributed: bool = False) -> Any:
    """A dask array (Z, Y, X) for ``lr``; HDF5 files stay open in ``files`` until it closes.

    Zarr (level 0 of an OME-Zarr) and HDF5 are read lazily, ``.npy`` memory-mapped, other
    formats loaded in memory; under a ``distributed`` client HDF5 is loaded too.
    """
    import dask.array as da

    if isinstance(lr, da.Array):
        return lr
    if not isinstance(lr, (str, os.PathLike)):
        return da.from_array(np.asarray(lr))
    p = Path(lr)
    suffix = p.suffix.lower()
    try:
        if suffix == ".zarr" and p.exists():
            return da.from_zarr(open_zarr_array(p, key)[0])
        if suffix in (".h5", ".hdf5") and p.exists() and not distributed:
            import h5py

            f = files.enter_context(h5py.File(p, "r"))
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            dset = f[pick_array_key(names, key, p)]
            return da.from_array(dset, chunks=dset.chunks or "auto", lock=True)
        if suffix == ".npy" and p.exists():
            return da.from_array(np.load(p, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, VolumeFileError):
            raise
        raise VolumeFileError(f"cannot read {p} ({type(exc).__name__}: {exc}); the file may be "
                              "truncated or not a valid volume") from exc
    return da.from_array(read_volume(p, key=key))


def superresolve_zarr(
    lr: object,
    model: Any,
    out: str | os.PathLike[str],
    *,
    chunk: int = 64,
    key: str | None = None,
    device: str = "auto",
    probabilities: bool = False,
    axis: int | None = None,
    threshold: float | None = None,
    workers: int = 1,
    voxel_size: float | tuple[float, float, float] | None = None,
    unit: str = "um",
    progress: Callable[[int, int], None] | None = None,
    precision: str = "auto",
    tta: int = 1,
    uncertainty_out: str | os.PathLike[str] | None = None,
    memory_budget: int | None = None,
    client: Any = None,
    ome: bool | None = None,
    levels: int = 1,
    force: bool = False,
) -> Path:
    """Super-resolve ``lr`` by the model's α into a Zarr store, block by block, resumably.

    Parameters
    ----------
    lr : array_like (Z, Y, X), dask array, or path
        Binary LR volume (1 = solid, 0 = pore). A ``.zarr`` or ``.h5``/``.hdf5`` path is read
        lazily, a ``.npy`` path memory-mapped.
    model : SRModel, path or SRResNet3d
        A loaded :class:`twinsr.sr.SRModel`, a bundle file or a training run folder; or a bare
        network (then pass ``threshold`` unless ``probabilities``, and ``axis`` for diffusion
        inputs).
    out : path
        Output ``.zarr`` store; array at the root, uint8 {0, 1} (or float32 probabilities),
        chunks of ``(α·chunk)³``, with the model's metadata and spec in the attributes.
    chunk : int
        LR block edge (the output's chunks are (α·chunk)³); raised to the halo if smaller.
        Each block's features cost about ``4·channels·(2 or 4)`` bytes per LR voxel of the block
        extended by the halo, which is recomputed per block: larger blocks are faster.
    key : str, optional
        Array name inside a Zarr group / HDF5 / npz input.
    device : str
        "auto", "cpu" or "cuda[:N]".
    probabilities : bool
        Store float32 probabilities instead of the thresholded binary volume.
    axis : int, optional
        Transport axis of the diffusion channels; default (None) the model's own (see
        :func:`twinsr.sr.superresolve`); an explicit axis that disagrees is refused.
    threshold : float, optional
        μ* to binarise with; default the model's fitted value.
    workers : int
        Threads of the local scheduler (ignored under a distributed client). On a CPU, 1 lets
        torch use all cores inside each block.
    voxel_size : float or (z, y, x), optional
        LR voxel size in ``unit``; the output records the HR voxel size (LR / α).
    unit : str
        Unit of ``voxel_size``.
    progress : callable(done, total), optional
        Called after every block (local schedulers).
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the network, as in :func:`twinsr.sr.superresolve` ("auto": bfloat16 where
        the hardware supports it natively and a probe on the central crop keeps the thresholded
        output; the same decision as in memory). Recorded in the settings: a run is resumed only
        with the same resolved precision.
    tta : {1, 8, 48}
        Test-time augmentation, as in :func:`twinsr.sr.superresolve` (the halo grows by one LR
        voxel).
    uncertainty_out : path, optional
        A second ``.zarr`` store for the per-voxel spread of the probabilities across the
        transforms (float32, same shape and chunks as ``out``; needs ``tta`` 8 or 48). Written
        block by block with ``out`` and renamed to its final name just before ``out``.
    memory_budget : int, optional
        Working memory in bytes of one block's HR pieces (see :func:`twinsr.sr.superresolve`;
        the block itself is ``chunk``); with ``workers`` > 1 each thread holds one block, and
        their total is checked against the available memory.
    client : None, "auto" or distributed.Client
        Run the blocks as tasks of this dask cluster (``"auto"``: the active client, required;
        None: the active client if there is one, else local threads). Before any block, a
        probe checks every worker sees the output folder and runs the same twinsr, numpy,
        scipy and torch; the workers write their blocks straight into the store, so it must be
        on a file system they all mount at the same path.
    ome : bool, optional
        Write an OME-Zarr (NGFF multiscales: axes z, y, x with ``unit``, ``scale`` = HR voxel
        size; level 0 at path ``"0"``), readable by napari and ``ome-zarr``. Default: when
        ``out`` ends in ``.ome.zarr``. The uncertainty store stays a plain Zarr array.
    levels : int
        Resolution levels of an OME-Zarr (1 = full resolution only); level k is level 0
        subsampled by ``2**k`` (``[::2**k]`` per axis, as :func:`twinsr.resample.downsample`),
        built block by block after level 0 is complete.
    force : bool
        Replace an existing ``out`` (atomically, at the end) and discard an interrupted run
        with other settings instead of refusing them.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    VolumeError
        Not 3-D / not binary input, bad ``chunk``.
    VolumeFileError
        ``out`` is not a ``.zarr`` path, or exists already (without ``force``) and is not the
        finished output of a call with the same model, input and options (that one is returned
        as it is, so a rerun after a kill is safe); an interrupted
        run of other settings at ``out.partial`` (without ``force``); an unreadable input file;
        a block that could not be written (e.g. a full disk: nothing is renamed to ``out``,
        rerun to resume); workers of ``client`` that cannot see the output folder; a ``unit``
        without an NGFF name.
    ConfigError
        ``axis`` disagrees with the model's transport axis; a bare network without the
        ``threshold`` / ``axis`` it needs; ``tta`` not in {1, 8, 48}; ``uncertainty_out`` with
        ``tta=1``; unknown ``precision``; bad ``client``, ``levels``; workers that run other
        package versions.
    MemoryBudgetError
        One block's working memory does not fit ``memory_budget`` or the available memory.

    Notes
    -----
    Peak memory: the LR input channels of a diffusion-input model (8 bytes per LR voxel and
    (axis, direction) pair, see :func:`twinsr.sr.superresolve`), plus per worker one block's
    working memory (inputs, features, HR pieces, TTA accumulators; checked before the run),
    independent of the volume's size for binary-input models.

    Examples
    --------
    >>> import tempfile
    >>> from twinsr.sr import SRModel, SRResNet3d
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), alpha=2, inputs="bin", threshold=0.5)
    >>> out = superresolve_zarr(np.zeros((8, 8, 8), np.uint8), m,
    ...                         Path(tempfile.mkdtemp()) / "sr.zarr", chunk=4, device="cpu")
    >>> out.name
    'sr.zarr'
    """
    from twinsr.sr.engine import TileEngine, check_memory_budget, choose_precision
    from twinsr.sr.infer import as_model
    from twinsr.sr.runtime import resolve_precision
    from twinsr.sr.tta import check_tta, tta_symmetries

    model, axis = as_model(model, threshold=threshold, axis=axis, binarise=not probabilities)
    tta = check_tta(tta)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise VolumeError(f"`chunk` must be a positive integer (LR voxels), got {chunk!r}")
    out = Path(out)
    unc_out = _check_outputs(out, uncertainty_out, tta, force=force)
    n_levels = _check_ome(out, ome, levels, unit)
    dev = resolve_device(device)
    budget = check_memory_budget(memory_budget, dev)
    resolve_precision(precision, dev)  # refuse a bad value before any work
    dask_client = _distributed_client() if client is None else resolve_client(client)
    if dask_client is not None:
        check_workers(dask_client, out.absolute().parent, what="output")
    # absolute: the blocks may be written by workers with another working directory
    partial = out.absolute().with_name(out.name + ".partial")
    unc_partial = None if unc_out is None else \
        unc_out.absolute().with_name(unc_out.name + ".partial")
    with contextlib.ExitStack() as files:  # HDF5 inputs stay open while the blocks are computed
        chans, index = _input_stack(_lazy_lr(lr, key, files, distributed=dask_client is not None),
                                    model, axis, device, tta_symmetries(tta))
        prec = choose_precision(precision, model, chans.shape[1:], lambda sl: list(
            np.asarray(chans[(list(index[0]), *sl)])), device=dev)
        engine = TileEngine(model, device=dev, precision=prec, tta=tta,
                            uncertainty=unc_out is not None)
        halo = engine.halo
        chunk = max(int(chunk), halo)  # dask's overlap needs blocks at least as deep as the halo
        chans = chans.rechunk((chans.shape[0],
                               *(_block_chunks(n, chunk, halo) for n in chans.shape[1:])))
        plan = engine.plan(chans.shape[1:], budget=budget, tile=chunk + halo, halo=halo)
        check_memory(plan.peak_bytes * max(1, int(workers)),
                     f"one block of {chunk}³ LR voxels per worker (lower `chunk` or "
                     "`memory_budget`)")
        settings = {"shape_lr": list(chans.shape[1:]), "alpha": model.alpha, "chunk": chunk,
                    "probabilities": bool(probabilities), "threshold": float(model.threshold),
                    "inputs": model.inputs, "axis": model.transport_axis,
                    "weights": _fingerprint(model.network), "tta": tta,
                    "precision": engine.fast.precision, "uncertainty": unc_out is not None}
        if n_levels:  # only recorded for OME output, so plain runs of before still resume
            settings["ome_levels"] = n_levels
        if not force and _finished_output(out, unc_out, settings, group=bool(n_levels)):
            return out
        store, unc_store, vs_hr = _open_stores(partial, unc_partial, settings, model, lr,
                                               voxel_size, unit, force=force,
                                               dtype=np.float32 if probabilities else np.uint8)
        _compute_blocks(chans, engine, index, plan.sub, store, unc_store, partial / _DONE,
                        probabilities=probabilities, workers=workers, progress=progress,
                        client=dask_client)
    if n_levels:
        _write_pyramid(partial, n_levels, vs_hr, unit, client=dask_client, workers=workers)
    # Renames first, markers last: killed anywhere in between, a rerun finds the finished output
    # of these settings (`_finished_output`) or the complete partial store and finishes it.
    _replace(partial, out)
    if unc_partial is not None and unc_out is not None:
        _replace(unc_partial, unc_out)
    _remove_markers(out, unc_out)
    return out


def _remove_markers(*stores: Path | None) -> None:
    """Remove the resume markers of finished stores (the done-folder, then the settings)."""
    for st in stores:
        if st is not None:
            if (st / _DONE).exists():
                shutil.rmtree(st / _DONE)
            (st / _SETTINGS).unlink(missing_ok=True)


def _finished_output(out: Path, unc_out: Path | None, settings: dict[str, Any], *,
                     group: bool) -> bool:
    """True if ``out`` is the finished output of a call with these ``settings`` (killed after the
    rename, or simply run twice): finish what is left (the second rename, the markers).

    Raises
    ------
    VolumeFileError
        ``out`` exists and is anything else (pass ``force`` to replace it).
    """
    import zarr

    if not out.exists():
        return False
    want = json.loads(json.dumps(settings))
    try:
        arr = zarr.open_array(str(out / "0" if group else out), mode="r")
        attrs = json.loads(arr.attrs["twinsr_metadata"])
        same = {k: attrs.get(k) for k in want} == want
    except Exception:  # not a twinsr output (zarr raises many types): refused below
        same = False
    if not same:
        raise VolumeFileError(f"{out} exists already (not the output of this call); remove it, "
                              "choose another output path or pass force=True (--force) to "
                              "replace it")
    if unc_out is not None and not unc_out.exists():
        unc_partial = unc_out.with_name(unc_out.name + ".partial")
        if not (unc_partial / _SETTINGS).exists():
            raise VolumeFileError(f"{out} is finished but its uncertainty store {unc_out} is "
                                  "missing; remove both and rerun")
        os.replace(unc_partial, unc_out)
    _remove_markers(out, unc_out)
    log.info("%s is already complete; nothing to do", out)
    return True


def _replace(src: Path, dst: Path) -> None:
    """Rename the finished store ``src`` to ``dst``; an existing ``dst`` (``force``) is moved
    aside first and removed after, so ``dst`` is always one whole store."""
    if not dst.exists():
        os.replace(src, dst)  # an atomic rename
        return
    aside = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.replace(dst, aside)
    os.replace(src, dst)
    shutil.rmtree(aside, ignore_errors=True)


def _check_ome(out: Path, ome: bool | None, levels: object, unit: str) -> int:
    """Levels of an OME-Zarr output (0 for a plain Zarr array); checks ``levels`` and ``unit``."""
    from twinsr.exceptions import ConfigError

    if ome is None:
        ome = out.name.lower().endswith(".ome.zarr")
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) \
            or not 1 <= levels <= 12:
        raise ConfigError(f"`levels` must be an integer from 1 to 12, got {levels!r}")
    if not ome:
        if levels != 1:
            raise ConfigError("`levels` > 1 needs an OME-Zarr output (ome=True or a name "
                              "ending in .ome.zarr)")
        return 0
    ngff_unit(unit)  # refuse a unit NGFF cannot name before any work
    return int(levels)


def _open_stores(partial: Path, unc_partial: Path | None, settings: dict[str, Any], model: Any,
                 lr: object, voxel_size: object, unit: str, *, force: bool,
                 dtype: Any) -> tuple[Any, Any, tuple[float, float, float] | None]:
    """The (level-0) output array and the uncertainty array of the run, new or resumed; the
    HR voxel size."""
    a = model.alpha
    vs = normalize_voxel_size(voxel_size)
    vs_hr = tuple(v / a for v in vs) if vs else None
    attrs = {"model": model.metadata, "spec": model.spec.to_dict(), **settings,
             "source": str(lr) if isinstance(lr, (str, os.PathLike)) else None,
             "voxel_size": list(vs_hr) if vs_hr else None, "unit": unit}
    shape_hr = tuple(a * s for s in settings["shape_lr"])
    chunks = (a * settings["chunk"],) * 3
    store = _open_partial(partial, settings, attrs, shape=shape_hr, dtype=dtype, chunks=chunks,
                          force=force, group=bool(settings.get("ome_levels")))
    unc_store = None if unc_partial is None else _open_partial(
        unc_partial, settings, {**attrs, "content": "uncertainty"}, shape=shape_hr,
        dtype=np.float32, chunks=chunks, markers=False, force=force)
    return store, unc_store, vs_hr  # type: ignore[return-value]


def _write_pyramid(group: Path, n_levels: int, vs_hr: Any, unit: str, *, client: Any,
                   workers: int) -> None:
    """Levels 1.. of the OME-Zarr at ``group`` (stride-2 subsampling of the level before,
    chunk by chunk), then its NGFF multiscales attributes."""
    import dask
    import dask.array as da
    import zarr

    prev = zarr.open_array(str(group / "0"), mode="r")
    chunks = tuple(prev.chunks)
    for k in range(1, n_levels):
        src = da.from_zarr(prev)[::2, ::2, ::2]
        ch = tuple(min(c, n) for c, n in zip(chunks, src.shape, strict=True))
        shutil.rmtree(group / str(k), ignore_errors=True)  # a level of an interrupted run
        dst = create_zarr_array(group / str(k), shape=src.shape, dtype=src.dtype, chunks=ch)
        stored = da.store(src.rechunk(ch), dst, lock=False, compute=False)
        if client is not None:
            client.compute(stored).result()
        else:
            dask.compute(stored, scheduler="threads", num_workers=max(1, int(workers)))
        prev = dst
    node = zarr.open_group(str(group), mode="r+")
    fmt = int(getattr(node.metadata, "zarr_format", 2))
    node.attrs.update(ngff_attrs(n_levels, vs_hr, unit, name=group.name.removesuffix(".partial"),
                                 zarr_format=fmt))


def _check_outputs(out: Path, uncertainty_out: object, tta: int, *,
                   force: bool = False) -> Path | None:
    """Validate the output store(s); the uncertainty store's path or None."""
    from twinsr.exceptions import ConfigError

    stores = [out]
    if uncertainty_out is not None:
        if tta == 1:
            raise ConfigError("`uncertainty_out` needs tta=8 or tta=48: the uncertainty is the "
                              "spread of the probabilities across the transforms")
        stores.append(Path(uncertainty_out))  # type: ignore[arg-type]
        if stores[1].resolve() == out.resolve():
            raise VolumeFileError(f"`uncertainty_out` must differ from `out` ({out})")
    for name, p in zip(("out", "uncertainty_out"), stores, strict=False):
        if p.suffix.lower() != ".zarr":
            raise VolumeFileError(f"`{name}` must be a .zarr store for out-of-core output, "
                                  f"got {p.name}")
        if p.exists() and not force and not (p / ".zattrs").exists() \
                and not (p / "zarr.json").exists():  # a twinsr output: compared later
            raise VolumeFileError(f"{p} exists already; remove it, choose another output path "
                                  "or pass force=True (--force) to replace it")
    return stores[1] if len(stores) > 1 else None


def _input_stack(x: Any, model: Any, axis: int | None, device: str,
                 symmetries: Any) -> tuple[Any, tuple[tuple[int, ...], ...]]:
    """The dask array (C, Z, Y, X) of network inputs for the lazy LR volume ``x``, and per TTA
    symmetry the indices of its input channels (:func:`twinsr.sr.infer.network_inputs`)."""
    import dask.array as da

    from twinsr.sr.infer import network_inputs

    if x.ndim != 3:
        raise VolumeError(f"`lr` must be 3-D, got ndim={x.ndim} (shape {x.shape})")
    if model.inputs == "bin":
        x = x.map_blocks(lambda b: as_binary_volume(b, "lr"), dtype=np.uint8)
        return x[None].astype(np.float32), ((0,),) * len(symmetries)
    lr_np = as_binary_volume(np.asarray(x), "lr")  # diffusion channels are global
    chans, index = network_inputs(lr_np, model, symmetries, axis=axis, device=device)
    return da.from_array(np.stack([np.asarray(c, dtype=np.float32) for c in chans])), index


def _open_partial(partial: Path, settings: dict[str, Any], attrs: dict[str, Any], *,
                  shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...],
                  markers: bool = True, force: bool = False, group: bool = False) -> Any:
    """The output array of an interrupted run with the same settings, or a new one (with
    ``group``: a Zarr group holding the array at ``"0"``, the OME-Zarr layout)."""
    import zarr

    done_dir = partial / _DONE
    array_path = partial / "0" if group else partial
    if partial.exists() and not (partial / _SETTINGS).exists():
        # killed while creating it (the settings file comes last): no block was computed yet
        log.info("removing %s, an interrupted run that had not started", partial)
        shutil.rmtree(partial)
    if partial.exists():
        prev = json.loads((partial / _SETTINGS).read_text())
        if prev == json.loads(json.dumps(settings)):
            if markers:
                log.info("resuming %s: %d blocks done", partial, len(os.listdir(done_dir)))
            return zarr.open_array(str(array_path), mode="r+")
        if not force:
            raise VolumeFileError(
                f"{partial} holds an interrupted run with other settings ({prev}); remove it, "
                "rerun with the same model and options to resume, or pass force=True "
                "(--force) to discard it")
        log.warning("discarding %s: an interrupted run with other settings", partial)
        shutil.rmtree(partial)
    if group:
        zarr.open_group(str(partial), mode="w")
    store = create_zarr_array(array_path, shape=shape, dtype=dtype, chunks=chunks)
    store.attrs["twinsr_metadata"] = json.dumps(attrs, default=str)
    if markers:
        done_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(partial / _SETTINGS, json.dumps(settings))  # last: marks a usable store
    return store


def _compute_blocks(chans: Any, engine: Any, index: tuple[tuple[int, ...], ...], sub: int,
                    store: Any, unc_store: Any, done_dir: Path, *, probabilities: bool,
                    workers: int, progress: Callable[[int, int], None] | None,
                    client: Any = None) -> None:
    """Run every block not yet marked done through the engine and write its HR core (as tasks
    of ``client`` if given, else on local threads)."""
    import dask
    import dask.array as da

    a, halo = engine.alpha, engine.halo
    n_blocks = [len(c) for c in chans.chunks[1:]]
    total = int(np.prod(n_blocks))
    thr = float(engine.model.threshold)
    offsets = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in chans.chunks[1:]]

    def run_block(blk: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        loc = block_info[0]["chunk-location"][1:]  # type: ignore[index]
        marker = done_dir / "_".join(map(str, loc))
        if marker.exists():  # finished in an earlier, interrupted run
            return np.ones((1, 1, 1, 1), np.uint8)
        # interior sides were extended by `halo`; sides at the volume border were not
        lo_ext = [0 if i == 0 else halo for i in loc]
        hi_ext = [0 if i == n - 1 else halo for i, n in zip(loc, n_blocks, strict=True)]
        core = [(lo, n - hi) for lo, hi, n in zip(lo_ext, hi_ext, blk.shape[1:], strict=True)]
        res = engine.run([blk[c] for c in range(blk.shape[0])], core, sub=sub, channels=index)
        p = res.probabilities
        start = [a * int(off[i]) for off, i in zip(offsets, loc, strict=True)]
        dst = tuple(slice(s, s + n) for s, n in zip(start, p.shape, strict=True))
        try:
            store[dst] = p if probabilities else (p >= thr).astype(np.uint8)
            if unc_store is not None:
                unc_store[dst] = res.uncertainty
            marker.touch()
        except OSError as exc:
            raise VolumeFileError(
                f"cannot write block {tuple(loc)} to {done_dir.parent} "
                f"({exc.strerror or exc}); free disk space or fix the permissions, then rerun "
                "the same call to resume (finished blocks are kept)") from exc
        return np.ones((1, 1, 1, 1), np.uint8)

    # an axis cut into one block has no neighbours (and may be thinner than the halo)
    depth = {0: 0, **{d + 1: halo if n > 1 else 0 for d, n in enumerate(n_blocks)}}
    ext = da.overlap.overlap(chans, depth=depth, boundary="none")
    flags = ext.map_blocks(run_block, dtype=np.uint8,
                           chunks=((1,), *((1,) * n for n in n_blocks)))
    if client is not None:
        seen = [0]

        def advance() -> None:
            seen[0] += 1
            if progress is not None:
                progress(seen[0], total)

        wait_all(client, client.compute(flags.to_delayed().ravel().tolist()), progress=advance)
    else:
        from dask.callbacks import Callback

        seen = [0]
        name = flags.name

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if progress is not None and isinstance(key, tuple) and key[0] == name:
                seen[0] += 1
                progress(seen[0], total)

        with dask.config.set(scheduler="threads", num_workers=int(workers)), \
                Callback(posttask=posttask):
            flags.compute()
    n_done = len(os.listdir(done_dir))
    if n_done != total:
        raise VolumeFileError(f"only {n_done} of {total} blocks were written to "
                              f"{done_dir.parent}; rerun to resume")


def _fingerprint(net: Any) -> str:
    """SHA-1 of the network's parameters and buffers: a resumed run must use the same weights."""
    import hashlib

    h = hashlib.sha1()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _block_chunks(size: int, chunk: int, halo: int) -> tuple[int, ...]:
    """Block sizes along one axis: ``chunk`` each, a last remainder shorter than ``halo`` merged
    into the block before it (so that no block is thinner than the halo)."""
    sizes = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    if len(sizes) > 1 and sizes[-1] < halo:
        rest = sizes.pop()
        sizes[-1] += rest
    return tuple(sizes) if sizes else (size,)


def _distributed_client() -> Any:
    """The active dask.distributed client, or None (also when distributed is not installed)."""
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None
