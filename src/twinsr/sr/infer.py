"""Tiled super-resolution of binary volumes of any size (spec §2.2, §3).

The LR volume is cut into ``tile³`` cores; each core is extended by a halo of ``overlap`` LR
voxels (default: the network's receptive-field bound :attr:`SRModel.halo`, +1 with TTA), run
through the network, and only the core's HR part is kept. Every convolution is zero-padded and
the halo covers the receptive field, so the result equals untiled inference (to float round-off)
while the network's working memory depends on the tile, not on the volume. At the volume's border
the extended tile stops at the border, where untiled inference sees the same zero padding. The
tile is chosen from a memory budget (the whole volume when it fits); inside a tile the LR features
are computed once and the large HR tensors in small pieces (:mod:`twinsr.sr.engine`), with the
network in a fast inference form (:mod:`twinsr.sr.runtime`: channels-last layout, the tail fused
with the last voxel shuffle, float32 or bfloat16).

Test-time augmentation (``tta=8`` or ``48``, :mod:`twinsr.sr.tta`) averages the probabilities
over cube symmetries of the input, each output mapped back with the sampling convention
I_LR(j) = I_HR(α·j); their spread is the uncertainty (``return_uncertainty=True``).

What the network is fed follows its :class:`~twinsr.sr.bundle.ModelSpec`: for a diffusion-input
model the diffusion channels are solved along the model's own transport axis (an explicit
``axis`` that disagrees is refused) — with TTA once per input axis that a symmetry maps onto it.

Examples
--------
>>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5)
>>> lr = (np.indices((6, 6, 6)).sum(0) % 3 == 0).astype(np.uint8)
>>> p = superresolve(lr, m, probabilities=True, precision="fp32", device="cpu")
>>> bool(np.allclose(superresolve(lr, m, probabilities=True, precision="fp32", tile=2,
...                               device="cpu"), p, atol=1e-5))
True
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from twinsr._validation import (
    as_binary_volume,
    check_axis,
    check_finite,
    check_memory,
    resolve_device,
)
from twinsr.exceptions import ConfigError, ModelWarning, VolumeError
from twinsr.sr.bundle import SRModel, load_model
from twinsr.sr.engine import (
    TileEngine,
    TileOutput,
    TilePlan,
    check_memory_budget,
    choose_precision,
)
from twinsr.sr.network import SRResNet3d
from twinsr.sr.runtime import resolve_precision
from twinsr.sr.symmetry import Symmetry
from twinsr.sr.tta import IDENTITY, check_tta, tta_input_channels

__all__ = ["as_model", "lr_input_channels", "network_inputs", "run_tiles", "superresolve"]


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
    tile: int | None = None,
    overlap: int | None = None,
    device: str = "auto",
    probabilities: bool = False,
    axis: int | None = None,
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    return_solution: bool = False,
    precision: str = "auto",
    tta: int = 1,
    return_uncertainty: bool = False,
    memory_budget: int | None = None,
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
    tile : int, optional
        Core tile edge in LR voxels. Default (None): the largest tile whose working memory fits
        ``memory_budget`` — the whole volume when it fits, so no halo is recomputed.
    overlap : int, optional
        Halo in LR voxels; default the model's receptive-field bound (+1 with TTA; exact
        result). Smaller values are faster but differ from untiled inference near tile borders
        (a :class:`~twinsr.exceptions.ModelWarning` says so).
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
        (``out_channels=3``, spec §4), for the transport axis the model was trained on
        (``tta=1`` only).
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the network. "fp32": equal to the plain float32 forward to round-off.
        "bf16": bfloat16 weights and activations, about 2× faster where the hardware runs it
        natively (:func:`twinsr.sr.runtime.native_bf16`: CUDA GPUs with bf16, CPUs with
        AVX-512 BF16 or AMX); probabilities change by up to ~1e-2 and the thresholded output on
        ~1e-4 of the voxels (more for less confident models). "auto" (default): bf16 where it is
        native, the output has more than 8 M voxels and a probe on the central crop finds the
        thresholded bf16 output equal to fp32 on >= 99.995 % of its voxels; else fp32
        (:func:`twinsr.sr.engine.choose_precision`).
    tta : {1, 8, 48}
        Test-time augmentation: average the probabilities over the identity (1), the 8 axis
        reflections (8) or all 48 cube symmetries (48), each run on the transformed input and
        mapped back (:mod:`twinsr.sr.tta`); costs ``tta`` times the network.
    return_uncertainty : bool
        Also return the per-voxel spread of the probabilities across the transforms
        (``tta`` 8 or 48).
    memory_budget : int, optional
        Working memory in bytes for one tile (features, HR pieces, TTA accumulators); default a
        quarter of the available memory, at most 4 GiB
        (:func:`twinsr.sr.engine.default_memory_budget`).

    Returns
    -------
    numpy.ndarray, shape (αZ, αY, αX)
        uint8 {0, 1} (solid where p >= μ*) or float32 probabilities in (0, 1) (with TTA the
        mean over the transforms).
    (numpy.ndarray, numpy.ndarray)
        With ``return_solution``: the above and the float32 solution (2, αZ, αY, αX), channel 0
        the pore and channel 1 the solid solution in (0, 1), as predicted at every voxel (not
        masked). Channel c is meaningful inside phase c; to get the convention of
        :func:`twinsr.transport.diffusion_channels` (0 outside the phase) multiply by the
        predicted phase, e.g. ``sol[0] * (binary == 0)``. Masking by the *predicted* phase puts
        0 on every misclassified voxel, which dominates the error against the true solution.
        With ``return_uncertainty``: the above and the float32 uncertainty (αZ, αY, αX), the
        population standard deviation of the probabilities over the transforms that cover the
        voxel (in [0, 0.5]; the last α − 1 HR voxels along an axis are covered only by the
        transforms that do not reverse it, see :mod:`twinsr.sr.tta`).

    Raises
    ------
    VolumeError
        Non-binary input, wrong channel count, bad ``tile``/``overlap``/``axis``;
        ``return_solution`` with a model that has no solution outputs.
    ConfigError
        ``axis`` disagrees with the model's transport axis; a bare network without the
        ``threshold`` / ``axis`` it needs; ``tta`` not in {1, 8, 48}; ``precision`` unknown;
        ``return_uncertainty`` with ``tta=1``; ``return_solution`` with ``tta`` > 1; a bad
        ``memory_budget``.
    BundleError
        ``model`` is a path to a missing, corrupt or foreign bundle.
    MemoryBudgetError
        The HR output (and uncertainty / solution) plus the working memory would not fit in
        memory, or not even a one-voxel tile fits ``memory_budget``.

    Notes
    -----
    Peak memory: per HR output voxel 1 byte (binary) or 4 (probabilities), +4 with
    ``return_uncertainty``, +8 with ``return_solution``; per LR voxel the input channels
    (diffusion models: 8 bytes per (axis, direction) pair of channels, at most 6 pairs with
    ``tta=48``); plus one tile's working memory (at most ``memory_budget``). All of it is checked
    against the available memory before anything is allocated.

    Examples
    --------
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), alpha=2, inputs="bin", threshold=0.5)
    >>> superresolve(np.zeros((5, 6, 7), np.uint8), m, tile=4, device="cpu").shape
    (10, 12, 14)
    >>> superresolve(np.zeros((2, 2, 2), np.uint8), SRResNet3d(1, 2, channels=4, blocks=1),
    ...              probabilities=True, device="cpu").dtype
    dtype('float32')
    >>> p, u = superresolve(np.eye(4, dtype=np.uint8)[None].repeat(4, 0), m, tta=8,
    ...                     probabilities=True, return_uncertainty=True, device="cpu")
    >>> p.shape == u.shape == (8, 8, 8), bool((u >= 0).all())
    (True, True)
    """
    model, axis = as_model(model, threshold=threshold, axis=axis, binarise=not probabilities)
    tta = check_tta(tta)
    _check_options(model, tile=tile, overlap=overlap, tta=tta, return_solution=return_solution,
                   return_uncertainty=return_uncertainty)
    dev = resolve_device(device)
    resolve_precision(precision, dev)  # refuse a bad value before any work
    budget = check_memory_budget(memory_budget, dev)
    opts = {"device": dev, "tta": tta, "solution": return_solution,
            "uncertainty": return_uncertainty}
    engine = TileEngine(model, precision="fp32", **opts)  # bf16 needs less: plan for fp32
    if overlap is not None and overlap < engine.halo:
        warnings.warn(f"overlap={overlap} is below the network's receptive field ({engine.halo} "
                      "LR voxels): tiles will differ from untiled inference near their borders; "
                      "leave overlap unset for the exact result", ModelWarning, stacklevel=2)
    parsed = _parse_input(lr, model.in_channels)
    shape = (parsed[0] if isinstance(parsed, list) else parsed).shape
    halo = engine.halo if overlap is None else int(overlap)
    big = max(shape) if tile is None else int(tile)
    work = min(float(budget), engine.tile_bytes(shape, big, big + 1, halo))
    n_out = int(np.prod([model.alpha * s for s in shape], dtype=np.int64))
    per_voxel = ((4 if probabilities else 1) + (8 if return_solution else 0)
                 + (4 if return_uncertainty else 0))
    check_memory(n_out * per_voxel + work,
                 "the super-resolved volume" + (" and its solution" if return_solution else "")
                 + (" and uncertainty" if return_uncertainty else "") + " with one tile's "
                 f"working memory ({work / 2**30:.2f} GiB; lower `memory_budget` or `tile` to "
                 "shrink it)")
    chans, index = network_inputs(parsed, model, engine.symmetries, axis=axis, device=device)
    prec = choose_precision(precision, model, shape, lambda sl: [chans[i][sl] for i in index[0]],
                            device=dev)
    if prec != "fp32":
        engine = TileEngine(model, precision=prec, **opts)
    plan = engine.plan(shape, budget=budget, tile=None if tile is None else int(tile),
                       halo=overlap)
    out_shape = tuple(model.alpha * s for s in shape)
    out = np.empty(out_shape, dtype=np.float32 if probabilities else np.uint8)
    unc = np.empty(out_shape, dtype=np.float32) if return_uncertainty else None
    sol = np.empty((2, *out_shape), dtype=np.float32) if return_solution else None
    thr = None if probabilities else float(model.threshold)
    for done, total, dst, res in run_tiles(engine, chans, index, plan):
        out[dst] = res.probabilities if thr is None else res.probabilities >= thr
        if unc is not None:
            unc[dst] = res.uncertainty
        if sol is not None:
            sol[(slice(None), *dst)] = res.solution
        if progress is not None:
            progress(done, total)
    if sol is not None:
        return out, sol
    if unc is not None:
        return out, unc
    return out


def _check_options(model: SRModel, *, tile: object, overlap: object, tta: int,
                   return_solution: bool, return_uncertainty: bool) -> None:
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, (int, np.integer))
                             or tile < 1):
        raise VolumeError(f"`tile` must be a positive integer (LR voxels) or None (chosen from "
                          f"the memory budget), got {tile!r}")
    if overlap is not None and (isinstance(overlap, bool)
                                or not isinstance(overlap, (int, np.integer)) or overlap < 0):
        raise VolumeError(f"`overlap` must be a non-negative integer (LR voxels), got {overlap!r}")
    if return_solution and model.out_channels != 3:
        raise VolumeError("return_solution=True needs a physics-output model (out_channels=3, "
                          "trained with targets='morph+diffu'); this model predicts the "
                          "morphology only")
    if return_solution and tta > 1:
        raise ConfigError(f"return_solution=True works with tta=1 only (tta={tta} averages the "
                          "morphology; a solution predicted on a transformed image solves "
                          "another axis); run the solution without TTA")
    if return_uncertainty and tta == 1:
        raise ConfigError("return_uncertainty=True needs tta=8 or tta=48: the uncertainty is the "
                          "spread of the probabilities across the transforms, 0 for a single one")


def network_inputs(
    parsed: list[np.ndarray] | np.ndarray, model: SRModel, symmetries: Sequence[Symmetry], *,
    axis: int | None, device: str = "auto", tol: float = 1e-6
) -> tuple[list[np.ndarray], tuple[tuple[int, ...], ...]]:
    """The LR input channels and, for each TTA symmetry, the indices of its network inputs.

    Parameters
    ----------
    parsed : ndarray (Z, Y, X) or list of ndarray
        The binary LR volume, or [binary, pore, solid] with precomputed diffusion channels
        (solved along ``axis``; other axes are solved here when ``symmetries`` need them).
    model : SRModel
    symmetries : sequence of Symmetry
        :func:`twinsr.sr.tta.tta_symmetries` of the requested ``tta``.
    axis : int or None
        The model's transport axis (diffusion inputs).
    device : str
        Where the diffusion channels are solved.

    Returns
    -------
    (list of ndarray, tuple of tuples)
        ``chans`` (each (Z, Y, X)) and one index tuple per symmetry
        (:func:`twinsr.sr.tta.tta_input_channels`).

    Examples
    --------
    >>> from twinsr.sr.tta import tta_symmetries
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5)
    >>> chans, idx = network_inputs(np.zeros((3, 3, 3), np.uint8), m, tta_symmetries(8), axis=None)
    >>> len(chans), idx[0]
    (1, (0,))
    """
    lr0 = parsed[0] if isinstance(parsed, list) else parsed
    if model.inputs == "bin":
        return [lr0], ((0,),) * len(symmetries)
    if len(symmetries) == 1 and symmetries[0] == IDENTITY:
        chans = parsed if isinstance(parsed, list) else lr_input_channels(
            parsed, model.inputs, axis=axis, tol=tol, device=device)
        return list(chans), ((0, 1, 2),)
    if axis is None:
        raise ConfigError("diffusion-channel inputs need `axis` (the model's transport_axis)")
    from twinsr.transport import diffusion_channels

    given = np.stack(parsed[1:]) if isinstance(parsed, list) else None
    return tta_input_channels(
        lr0, symmetries, axis=axis, given=given,
        solve=lambda im, ax: diffusion_channels(im, axis=ax, tol=tol, device=device))


def run_tiles(
    engine: TileEngine, chans: Sequence[np.ndarray], index: Sequence[tuple[int, ...]],
    plan: TilePlan,
) -> Iterator[tuple[int, int, tuple[slice, slice, slice], TileOutput]]:
    """Run ``engine`` on every tile of the volume; yield (done, total, HR slices, outputs).

    Parameters
    ----------
    engine : TileEngine
    chans : sequence of ndarray (Z, Y, X)
        Input channels of the whole LR volume (:func:`network_inputs`).
    index : sequence of tuples
        Per symmetry, the indices into ``chans`` of its inputs.
    plan : TilePlan
        :meth:`TileEngine.plan` of the volume.

    Examples
    --------
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.5)
    >>> eng = TileEngine(m, device="cpu", precision="fp32")
    >>> lr = np.zeros((5, 4, 3), np.uint8)
    >>> plan = eng.plan(lr.shape, budget=2**26, tile=2)
    >>> [(d, t) for d, t, _, _ in run_tiles(eng, [lr], [(0,)], plan)][-1]
    (12, 12)
    """
    shape = chans[0].shape
    a, tile, halo = engine.alpha, plan.tile, plan.halo
    starts = [range(0, s, tile) for s in shape]
    total = int(np.prod([len(r) for r in starts]))
    for done, corner in enumerate(itertools.product(*starts), start=1):
        core = [(c, min(c + tile, s)) for c, s in zip(corner, shape, strict=True)]
        ext = [(max(0, lo - halo), min(s, hi + halo))
               for (lo, hi), s in zip(core, shape, strict=True)]
        sl = tuple(slice(lo, hi) for lo, hi in ext)
        local = [(lo - elo, hi - elo) for (lo, hi), (elo, _) in zip(core, ext, strict=True)]
        res = engine.run([c[sl] for c in chans], local, sub=plan.sub, channels=index)
        dst = tuple(slice(a * lo, a * hi) for lo, hi in core)
        yield done, total, dst, res  # type: ignore[misc]
