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

from twinsr._validation import as_binary_volume, resolve_device
from twinsr.exceptions import VolumeError, VolumeFileError
from twinsr.io import create_zarr_array, normalize_voxel_size, pick_array_key, read_volume

__all__ = ["superresolve_zarr"]

log = logging.getLogger(__name__)

_DONE = ".twinsr-done"
_SETTINGS = ".twinsr-settings.json"


def _lazy_lr(lr: object, key: str | None, files: contextlib.ExitStack) -> Any:
    """A dask array (Z, Y, X) for ``lr``; HDF5 files stay open in ``files`` until it closes.

    Zarr and HDF5 are read lazily, ``.npy`` memory-mapped, other formats loaded in memory.
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
            import zarr

            node = zarr.open(str(p), mode="r")
            if isinstance(node, zarr.Group):
                node = node[pick_array_key(sorted(n for n, _ in node.arrays()), key, p)]
            return da.from_zarr(node)
        if suffix in (".h5", ".hdf5") and p.exists() and _distributed_client() is None:
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
        LR block edge (working memory per worker ≈ (chunk + 2·halo)³·α³·channels·4 bytes ×
        the network width); raised to the halo if smaller.
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

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    VolumeError
        Not 3-D / not binary input, bad ``chunk``.
    VolumeFileError
        ``out`` is not a ``.zarr`` path, or exists already; an unreadable input file.
    ConfigError
        ``axis`` disagrees with the model's transport axis; a bare network without the
        ``threshold`` / ``axis`` it needs.

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
    import zarr

    from twinsr.sr.infer import as_model

    model, axis = as_model(model, threshold=threshold, axis=axis, binarise=not probabilities)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise VolumeError(f"`chunk` must be a positive integer (LR voxels), got {chunk!r}")
    out = Path(out)
    if out.suffix.lower() != ".zarr":
        raise VolumeFileError(f"`out` must be a .zarr store for out-of-core output, got {out.name}")
    if out.exists():
        raise VolumeFileError(f"{out} exists already; remove it or choose another output path")
    dev = resolve_device(device)
    partial = out.with_name(out.name + ".partial")
    with contextlib.ExitStack() as files:  # HDF5 inputs stay open while the blocks are computed
        chans = _input_stack(_lazy_lr(lr, key, files), model, axis, device)
        a, halo = model.alpha, model.halo
        chunk = max(int(chunk), halo)  # dask's overlap needs blocks at least as deep as the halo
        chans = chans.rechunk((model.in_channels,
                               *(_block_chunks(n, chunk, halo) for n in chans.shape[1:])))
        settings = {"shape_lr": list(chans.shape[1:]), "alpha": a, "chunk": chunk,
                    "probabilities": bool(probabilities), "threshold": float(model.threshold),
                    "inputs": model.inputs, "axis": model.transport_axis,
                    "weights": _fingerprint(model.network)}
        vs = normalize_voxel_size(voxel_size)
        attrs = {"model": model.metadata, "spec": model.spec.to_dict(), **settings,
                 "source": str(lr) if isinstance(lr, (str, os.PathLike)) else None,
                 "voxel_size": [v / a for v in vs] if vs else None, "unit": unit}
        store = _open_partial(zarr, partial, settings, attrs,
                              shape=tuple(a * s for s in chans.shape[1:]),
                              dtype=np.float32 if probabilities else np.uint8,
                              chunks=(a * chunk,) * 3)
        _compute_blocks(chans, model, store, partial / _DONE, dev=dev,
                        probabilities=probabilities, workers=workers, progress=progress)
    shutil.rmtree(partial / _DONE)
    (partial / _SETTINGS).unlink()
    os.replace(partial, out)  # out does not exist (checked above): an atomic rename
    return out


def _input_stack(x: Any, model: Any, axis: int | None, device: str) -> Any:
    """The dask array (C, Z, Y, X) of network inputs for the lazy LR volume ``x``."""
    import dask.array as da

    from twinsr.sr.infer import lr_input_channels

    if x.ndim != 3:
        raise VolumeError(f"`lr` must be 3-D, got ndim={x.ndim} (shape {x.shape})")
    if model.inputs == "bin":
        x = x.map_blocks(lambda b: as_binary_volume(b, "lr"), dtype=np.uint8)
        return x[None].astype(np.float32)
    lr_np = as_binary_volume(np.asarray(x), "lr")  # diffusion channels are global
    return da.from_array(np.stack([c.astype(np.float32) for c in
                                   lr_input_channels(lr_np, model.inputs, axis=axis,
                                                     device=device)]))


def _open_partial(zarr: Any, partial: Path, settings: dict[str, Any], attrs: dict[str, Any], *,
                  shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> Any:
    """The output store of an interrupted run with the same settings, or a new one."""
    done_dir = partial / _DONE
    if partial.exists():
        prev = json.loads((partial / _SETTINGS).read_text()) \
            if (partial / _SETTINGS).exists() else None
        if prev != json.loads(json.dumps(settings)):
            raise VolumeFileError(
                f"{partial} holds an interrupted run with other settings ({prev}); remove it "
                "or rerun with the same model and options to resume"
            )
        log.info("resuming %s: %d blocks done", partial, len(os.listdir(done_dir)))
        return zarr.open_array(str(partial), mode="r+")
    store = create_zarr_array(partial, shape=shape, dtype=dtype, chunks=chunks)
    store.attrs["twinsr_metadata"] = json.dumps(attrs, default=str)
    done_dir.mkdir(parents=True, exist_ok=True)
    (partial / _SETTINGS).write_text(json.dumps(settings))
    return store


def _compute_blocks(chans: Any, model: Any, store: Any, done_dir: Path, *, dev: str,
                    probabilities: bool, workers: int,
                    progress: Callable[[int, int], None] | None) -> None:
    """Run every block not yet marked done through the network and write its HR core."""
    import dask
    import dask.array as da
    import torch

    a, halo = model.alpha, model.halo
    n_blocks = [len(c) for c in chans.chunks[1:]]
    total = int(np.prod(n_blocks))
    net = model.network.to(dev).eval()
    thr = float(model.threshold)
    offsets = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in chans.chunks[1:]]

    def run_block(blk: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        loc = block_info[0]["chunk-location"][1:]  # type: ignore[index]
        marker = done_dir / "_".join(map(str, loc))
        if marker.exists():  # finished in an earlier, interrupted run
            return np.ones((1, 1, 1, 1), np.uint8)
        # interior sides were extended by `halo`; sides at the volume border were not
        lo_ext = [0 if i == 0 else halo for i in loc]
        hi_ext = [0 if i == n - 1 else halo for i, n in zip(loc, n_blocks, strict=True)]
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(blk, dtype=np.float32))[None].to(dev)
            p = torch.sigmoid(net(t))[0, 0]
        core = tuple(slice(a * lo, p.shape[d] - a * hi)
                     for d, (lo, hi) in enumerate(zip(lo_ext, hi_ext, strict=True)))
        p = p[core]
        res = p.float().cpu().numpy() if probabilities else (p >= thr).to(torch.uint8).cpu().numpy()
        start = [a * int(off[i]) for off, i in zip(offsets, loc, strict=True)]
        store[tuple(slice(s, s + n) for s, n in zip(start, res.shape, strict=True))] = res
        marker.touch()
        return np.ones((1, 1, 1, 1), np.uint8)

    ext = da.overlap.overlap(chans, depth={0: 0, 1: halo, 2: halo, 3: halo}, boundary="none")
    flags = ext.map_blocks(run_block, dtype=np.uint8,
                           chunks=((1,), *((1,) * n for n in n_blocks)))
    if _distributed_client() is not None:
        flags.compute()
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
