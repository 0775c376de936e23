"""Tiled super-resolution of binary volumes of any size (spec §2.2, §3).

The LR volume is cut into ``tile³`` cores; each core is extended by a halo of ``overlap`` LR
voxels (default: the network's receptive-field bound :attr:`SRModel.halo`), run through the
network, and only the core's HR part is kept. Every convolution is zero-padded and the halo covers
the receptive field, so the result equals untiled inference (to float32 round-off) while the
network's working memory depends on the tile, not on the volume. At the volume's border the
extended tile stops at the border, where untiled inference sees the same zero padding.

What the network is fed follows its :class:`~twinsr.sr.bundle.ModelSpec`: for a diffusion-input
model the diffusion channels are solved along the model's own transport axis (an explicit
``axis`` that disagrees is refused).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from twinsr._validation import (
    as_binary_volume,
    check_axis,
    check_finite,
    check_memory,
    resolve_device,
)
from twinsr.exceptions import ConfigError, ModelWarning, VolumeError
from twinsr.sr.bundle import SRModel, load_model
from twinsr.sr.network import SRResNet3d

__all__ = ["as_model", "lr_input_channels", "superresolve"]


def as_model(
    model: object, *, threshold: float | None = None, axis: int | None = None,
    binarise: bool = True,
) -> tuple[SRModel, int | None]:
    """The :class:`SRModel` to run and the transport axis to use.

    Parameters
    ----------
    model : SRModel, path or SRResNet3d
        A loaded model, a bundle file / run folder, or a bare network (its α and inputs come from
        its scale and input channels).
    threshold : float, optional
        μ*; overrides the model's. A bare network needs it when ``binarise``.
    axis : int, optional
        Transport axis; None means the model's (:meth:`ModelSpec.resolve_axis`). A bare
        network with diffusion inputs or solution outputs needs it.
    binarise : bool
        The output will be thresholded (False: probabilities only, μ* unused).

    Returns
    -------
    (SRModel, int or None)

    Raises
    ------
    ConfigError
        ``axis`` disagrees with the model's; a bare network without ``threshold`` (when
        ``binarise``) or, with diffusion channels, without ``axis``; a ``model`` of another type.
    BundleError
        A path to a missing, corrupt or foreign bundle.

    Examples
    --------
    >>> m, ax = as_model(SRResNet3d(3, 2, channels=4, blocks=1), threshold=0.4, axis=1)
    >>> m.inputs, m.threshold, ax
    ('diffu', 0.4, 1)
    """
    if isinstance(model, SRResNet3d):
        net = model
        needs_axis = net.in_channels == 3 or net.out_channels == 3
        if needs_axis and axis is None:
            raise ConfigError(
                "a bare network with diffusion inputs or solution outputs needs `axis=` (the "
                "transport axis its diffusion channels are solved along); or pass a bundle / "
                "SRModel, which records it")
        if binarise and threshold is None:
            raise ConfigError(
                "a bare network has no fitted threshold μ*: pass `threshold=` (e.g. 0.5), or "
                "probabilities=True, or a bundle / SRModel, which records μ*")
        model = SRModel(net, threshold=0.5 if threshold is None else threshold,
                        transport_axis=check_axis(axis) if needs_axis else None)
        return model, model.spec.resolve_axis(axis)
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if not isinstance(model, SRModel):
        raise ConfigError(
            f"`model` must be an SRModel, a bundle file or run folder, or an SRResNet3d network "
            f"(then pass threshold= and, for diffusion inputs, axis=); got {type(model).__name__}")
    if threshold is not None and threshold != model.threshold:
        model = SRModel(model.network, spec=replace(model.spec, threshold=threshold),
                        metadata=model.metadata)
    return model, model.spec.resolve_axis(axis)


def lr_input_channels(
    lr: np.ndarray, inputs: str, *, axis: int | None = None, tol: float = 1e-6,
    device: str = "auto"
) -> list[np.ndarray]:
    """The network inputs for a binary LR volume: ``[lr]`` or ``[lr, pore_sol, solid_sol]``.

    The diffusion channels (spec §2.1.4) are solved on the whole LR volume (they are global),
    with :func:`twinsr.transport.diffusion_channels` along ``axis`` (required for "diffu": pass
    the model's :attr:`~twinsr.sr.bundle.ModelSpec.transport_axis`).

    Raises
    ------
    ConfigError
        ``inputs="diffu"`` without ``axis``.

    Examples
    --------
    >>> len(lr_input_channels(np.zeros((4, 4, 4), np.uint8), "bin"))
    1
    """
    if inputs == "bin":
        return [lr]
    if axis is None:
        raise ConfigError("diffusion-channel inputs need `axis` (the model's transport_axis)")
    from twinsr.transport import diffusion_channels

    d = diffusion_channels(lr, axis=axis, tol=tol, device=device)
    return [lr, d[0], d[1]]


def _parse_input(lr: object, in_channels: int) -> list[np.ndarray] | np.ndarray:
    arr = np.asarray(lr)
    if arr.ndim == 4:
        if arr.shape[0] != in_channels:
            raise VolumeError(
                f"`lr` has {arr.shape[0]} channels (shape {arr.shape}) but the model takes "
                f"{in_channels}; pass the binary (Z, Y, X) LR volume and let superresolve compute "
                "the diffusion channels, or a (C, Z, Y, X) stack with C = " + str(in_channels)
            )
        check_finite(arr, "lr")
        first = as_binary_volume(arr[0], "lr[0] (binary LR channel)")
        return [first] + [np.asarray(arr[c], dtype=np.float32) for c in range(1, in_channels)]
    return as_binary_volume(arr, "lr")


def superresolve(
    lr: object,
    model: SRModel | SRResNet3d | str | os.PathLike[str],
    *,
    tile: int = 64,
    overlap: int | None = None,
    device: str = "auto",
    probabilities: bool = False,
    axis: int | None = None,
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    return_solution: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Super-resolve a binary LR volume by the model's factor α.

    Parameters
    ----------
    lr : array_like, shape (Z, Y, X), or (C, Z, Y, X)
        Binary LR volume (1 = solid, 0 = pore), any size >= 1 voxel per axis. A (C, Z, Y, X)
        stack with precomputed diffusion channels is accepted when C equals the model's inputs.
    model : SRModel, path or SRResNet3d
        A loaded model, a bundle file or a training run folder; or a bare network (then pass
        ``threshold`` unless ``probabilities``, and ``axis`` for diffusion channels).
    tile : int
        Core tile edge in LR voxels (working memory ∝ (tile + 2·overlap)³·α³·channels).
    overlap : int, optional
        Halo in LR voxels; default the model's receptive-field bound (exact result). Smaller
        values are faster but differ from untiled inference near tile borders (a
        :class:`~twinsr.exceptions.ModelWarning` says so).
    device : str
        "auto", "cpu" or "cuda[:N]".
    probabilities : bool
        Return float32 probabilities of solid instead of the binary volume thresholded at μ*.
    axis : int, optional
        Transport axis of the diffusion channels. Default (None): the model's
        :attr:`~twinsr.sr.bundle.ModelSpec.transport_axis`, the axis it was trained with; an
        explicit axis that disagrees is refused. Unused by binary-input morphology models.
    threshold : float, optional
        μ* to binarise with; default the model's fitted value.
    progress : callable(done, total), optional
        Called after every tile.
    return_solution : bool
        Also return the HR diffusion solution predicted by a physics-output model
        (``out_channels=3``, spec §4), for the transport axis the model was trained on.

    Returns
    -------
    numpy.ndarray, shape (αZ, αY, αX)
        uint8 {0, 1} (solid where p >= μ*) or float32 probabilities in (0, 1).
    (numpy.ndarray, numpy.ndarray)
        With ``return_solution``: the above and the float32 solution (2, αZ, αY, αX), channel 0
        the pore and channel 1 the solid solution in (0, 1), as predicted at every voxel (not
        masked). Channel c is meaningful inside phase c; to get the convention of
        :func:`twinsr.transport.diffusion_channels` (0 outside the phase) multiply by the
        predicted phase, e.g. ``sol[0] * (binary == 0)``. Masking by the *predicted* phase puts
        0 on every misclassified voxel, which dominates the error against the true solution.

    Raises
    ------
    VolumeError
        Non-binary input, wrong channel count, bad ``tile``/``overlap``/``axis``;
        ``return_solution`` with a model that has no solution outputs.
    ConfigError
        ``axis`` disagrees with the model's transport axis; a bare network without the
        ``threshold`` / ``axis`` it needs.
    BundleError
        ``model`` is a path to a missing, corrupt or foreign bundle.
    MemoryBudgetError
        The HR output would not fit in memory.

    Examples
    --------
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), alpha=2, inputs="bin", threshold=0.5)
    >>> superresolve(np.zeros((5, 6, 7), np.uint8), m, tile=4, device="cpu").shape
    (10, 12, 14)
    >>> superresolve(np.zeros((2, 2, 2), np.uint8), SRResNet3d(1, 2, channels=4, blocks=1),
    ...              probabilities=True, device="cpu").dtype
    dtype('float32')
    """
    model, axis = as_model(model, threshold=threshold, axis=axis, binarise=not probabilities)
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise VolumeError(f"`tile` must be a positive integer (LR voxels), got {tile!r}")
    halo = model.halo if overlap is None else overlap
    if isinstance(halo, bool) or not isinstance(halo, (int, np.integer)) or halo < 0:
        raise VolumeError(f"`overlap` must be a non-negative integer (LR voxels), got {overlap!r}")
    if overlap is not None and overlap < model.halo:
        warnings.warn(f"overlap={overlap} is below the network's receptive field ({model.halo} "
                      "LR voxels): tiles will differ from untiled inference near their borders; "
                      "leave overlap unset for the exact result", ModelWarning, stacklevel=2)
    if return_solution and model.out_channels != 3:
        raise VolumeError("return_solution=True needs a physics-output model (out_channels=3, "
                          "trained with targets='morph+diffu'); this model predicts the "
                          "morphology only")
    dev = resolve_device(device)
    parsed = _parse_input(lr, model.in_channels)
    chans = parsed if isinstance(parsed, list) else lr_input_channels(
        parsed, model.inputs, axis=axis, device=device)
    out_shape = tuple(model.alpha * s for s in chans[0].shape)
    n_out = int(np.prod(out_shape, dtype=np.int64))
    check_memory(n_out * ((4 if probabilities else 1) + (8 if return_solution else 0)),
                 "the super-resolved volume" + (" and its solution" if return_solution else ""))
    out = np.empty(out_shape, dtype=np.float32 if probabilities else np.uint8)
    sol_out = np.empty((2, *out_shape), dtype=np.float32) if return_solution else None
    _run_tiles(model, chans, out, sol_out, tile=int(tile), halo=int(halo), dev=dev,
               probabilities=probabilities, progress=progress)
    if sol_out is not None:
        return out, sol_out
    return out


def _run_tiles(model: SRModel, chans: list[np.ndarray], out: np.ndarray,
               sol_out: np.ndarray | None, *, tile: int, halo: int, dev: str,
               probabilities: bool, progress: Callable[[int, int], None] | None) -> None:
    """Fill ``out`` (and ``sol_out``) tile by tile; each tile's core only."""
    shape = chans[0].shape
    a = model.alpha
    net = model.network.to(dev).eval()
    starts = [range(0, s, tile) for s in shape]
    total = int(np.prod([len(r) for r in starts]))
    thr = float(model.threshold)
    with torch.inference_mode():
        for done, corner in enumerate(itertools.product(*starts), start=1):
            core = [(c, min(c + tile, s)) for c, s in zip(corner, shape, strict=True)]
            ext = [(max(0, lo - halo), min(s, hi + halo))
                   for (lo, hi), s in zip(core, shape, strict=True)]
            sl = tuple(slice(lo, hi) for lo, hi in ext)
            x = np.stack([np.asarray(c[sl], dtype=np.float32) for c in chans])[None]
            y = net(torch.from_numpy(x).to(dev))
            keep = tuple(slice(a * (lo - elo), a * (hi - elo))
                         for (lo, hi), (elo, _) in zip(core, ext, strict=True))
            dst = tuple(slice(a * lo, a * hi) for lo, hi in core)
            pk = torch.sigmoid(y[0, 0][keep])  # the core only, not the halo
            if sol_out is not None:
                sol_out[(slice(None), *dst)] = y[0, 1:][(slice(None), *keep)].float().cpu().numpy()
            if probabilities:
                out[dst] = pk.float().cpu().numpy()
            else:
                out[dst] = (pk >= thr).to(torch.uint8).cpu().numpy()
            if progress is not None:
                progress(done, total)
