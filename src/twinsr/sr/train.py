"""Training protocol of the super-resolution networks (spec §2.2.3).

Adam on the configured objective (``config.objective``, :mod:`twinsr.sr.objectives`: the
voxel-wise BCE by default, or a weighted sum with the flux-weighted BCE, the connectivity and the
volume-fraction terms) plus the loss of the target kind's other outputs (the masked solution MSE
of ``"morph+diffu"``, :mod:`twinsr.sr.physics`) over random aligned LR/HR crops with
cube-symmetry augmentation; the loss on fixed random validation crops after every epoch; early
stopping with the best weights kept; an atomic checkpoint every epoch (model, optimizer, torch RNG
state, epoch, history, config) so that ``resume=True`` continues exactly; transfer learning from
the α/2 network (every layer whose name and shape coincide); finally the threshold μ* (Eq. 18) on
the validation images and one model bundle with its :class:`~twinsr.sr.bundle.ModelSpec`.

Crops. Crop ``i`` of step ``k`` of epoch ``e`` is drawn from its own generator keyed by
``(seed, 1, e, k, i)`` (:meth:`twinsr.sr.data.CropSampler.sample_keyed`): the sample stream
needs no state in the checkpoint, a background thread can prepare the next batches
(``config.prefetch``, on by default on CUDA) and ``W`` processes can share a global batch,
rank ``r`` drawing crops ``r·B/W … (r+1)·B/W − 1``.

Speed (CPU). bfloat16 autocast where the CPU computes it natively (``config.precision``;
float32 loss, master weights and Adam state), channels-last 3-D memory format (every layer's
output kept channels-last); batches prepared off the main thread and ``torch.compile`` on
request (neither paid off on 2 CPU cores). ``benchmarks/bench_train.py`` measures them.

Several processes. :func:`train` run by every process of a ``torch.distributed`` job (launched
by ``torchrun``, which sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; or by
:func:`train_distributed` / ``twinsr train --nproc N``) trains one DistributedDataParallel network
(gloo on CPU, NCCL on CUDA, one GPU per process); the global batch of a step is the same as in one
process, so the run equals a one-process run to float round-off. Rank 0 writes every file; all
ranks read the checkpoint on resume. A documented launch line::

    torchrun --standalone --nproc-per-node 2 --no-python twinsr train DB --alpha 2 -o RUN

The steps, in order: :func:`_setup` (data, network, optimizer; a :class:`_Run`), :func:`_restore`
(checkpoint → :class:`TrainState`), :func:`_transfer`, :func:`_run_epochs` (the loop;
:func:`_train_epoch` and :meth:`TrainState.record` for early stopping), :func:`_finish`
(threshold, bundle, run record). Training draws torch randomness (if any) from a forked RNG
seeded by ``config.seed`` and checkpointed with the run, so the caller's global torch RNG state is
left as it was.

Run folder::

    RUN/config.yaml      resolved TrainConfig
    RUN/checkpoint.pt    last epoch (atomic)
    RUN/history.csv      epoch, train_loss, val_loss, seconds, best
    RUN/model.pt         bundle with the best weights, μ* and the model spec (twinsr.sr.bundle)
    RUN/run.json         alpha, inputs, database, seed, device, versions, git hash, result,
                         "tensorboard": the log folder or null
    RUN/tensorboard/     loss/train, loss/val per epoch (only with ``config.tensorboard``)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import queue
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from twinsr._atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from twinsr._provenance import git_hash, package_versions
from twinsr._validation import check_alpha, resolve_device
from twinsr.exceptions import BundleError, ConfigError, ModelWarning
from twinsr.sr.bundle import (
    BUNDLE_NAME,
    ModelSpec,
    SRModel,
    input_channels,
    load_model,
    save_bundle,
    state_digest,
)
from twinsr.sr.config import PRESETS, TrainConfig
from twinsr.sr.data import CropSampler, grid_crops
from twinsr.sr.database import Database, open_database
from twinsr.sr.finetune import (
    MixedSampler,
    finetune_pairs,
    image_digest,
    normalize_region,
    read_finetune_image,
)
from twinsr.sr.infer import superresolve
from twinsr.sr.network import SRResNet3d
from twinsr.sr.objectives import Objective, make_objective, needs_flux
from twinsr.sr.targets import TargetKind, target_kind
from twinsr.sr.threshold import PorosityErrorAccumulator
from twinsr.sr.tracking import LOG_DIR, require_tensorboard, tensorboard_writer

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "available_workers",
    "check_nproc",
    "native_bf16",
    "train",
    "train_distributed",
    "training_precision",
    "transfer_weights",
]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CKPT_FORMAT = "twinsr-sr-checkpoint"
TRAIN_STREAM = 1  # the key (seed, TRAIN_STREAM, epoch, step, crop) of a training crop
VAL_STREAM = 2

ProgressFn = Callable[[int, int, float, "float | None"], None]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    bundle_path : Path
        The model bundle (best weights + μ*).
    epochs_run : int
        Epochs completed (including those before a resume).
    best_epoch : int
        1-based epoch with the lowest validation loss.
    best_val_loss : float
        Its validation loss.
    stopped_early : bool
        True if early stopping (patience) ended training.
    threshold : float
        μ* fitted on the validation images.
    history : list of dict
        Per epoch: epoch, train_loss, val_loss, seconds, best.
    seconds : float
        Wall-clock training time of this call.
    device : str
        Device used.
    transferred : tuple of str
        Parameter names copied from ``init_from`` (empty without transfer).
    run_dir : Path
        The run folder.
    precision : str
        "fp32" or "bf16": the autocast precision used (:func:`training_precision`).
    world_size : int
        Training processes (1 without ``torch.distributed``).
    """

    bundle_path: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    threshold: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    transferred: tuple[str, ...] = ()
    run_dir: Path = Path()
    precision: str = "fp32"
    world_size: int = 1


@dataclass
class TrainState:
    """The part of a training run that a checkpoint carries (besides weights and optimizer).

    Attributes
    ----------
    epoch : int
        Epochs completed.
    history : list of dict
        One entry per epoch (see :class:`TrainResult`).
    best_val, best_epoch, bad_epochs : float, int, int
        Early stopping: lowest validation loss, its epoch, epochs since it improved.
    best_state : dict or None
        CPU copy of the best weights.
    transferred : list of str
        Parameters copied by transfer learning.
    finished : bool
        The bundle has been written.
    torch_rng : tensor or None
        The training's own torch RNG state (None: seed from the config).
    """

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    transferred: list[str] = field(default_factory=list)
    finished: bool = False
    torch_rng: torch.Tensor | None = None

    def record(self, val_loss: float, net: nn.Module, min_delta: float) -> bool:
        """Early-stopping bookkeeping after an epoch; True if ``val_loss`` is a new best."""
        improved = val_loss < self.best_val - min_delta
        if improved:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
            self.best_state = _cpu_state(net)
        else:
            self.bad_epochs += 1
        return improved

    def stopped(self, patience: int) -> bool:
        """Patience exhausted."""
        return self.bad_epochs >= patience


@dataclass(frozen=True)
class _Dist:
    """This process's place in a ``torch.distributed`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


@dataclass
class _Run:
    """Everything fixed for the duration of a run (built by :func:`_setup`)."""

    cfg: TrainConfig
    kind: TargetKind
    db: Database
    spec: ModelSpec  # the bundle's spec, with a placeholder threshold until it is fitted
    out: Path
    dev: str
    batch: int  # the global batch of a step
    sampler: CropSampler | MixedSampler
    val: tuple[np.ndarray, np.ndarray]
    net: SRResNet3d
    opt: torch.optim.Optimizer
    objective: Objective
    identity: dict[str, Any]
    precision: str = "fp32"
    dist: _Dist = field(default_factory=_Dist)
    model: nn.Module | None = None  # what the training step calls: net, DDP(net) or compiled
    compiled: bool = False

    @property
    def ckpt_path(self) -> Path:
        return self.out / CHECKPOINT

    @property
    def local_batch(self) -> int:
        return self.batch // self.dist.world

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last_3d if self.cfg.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast on the run's device when its precision is "bf16"."""
        kind = "cuda" if self.dev.startswith("cuda") else "cpu"
        return torch.autocast(kind, dtype=torch.bfloat16, enabled=self.precision == "bf16")


def _cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the weights in the standard (contiguous) memory format."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """True if this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux flags).

    Examples
    --------
    >>> isinstance(native_bf16(), bool)
    True
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def training_precision(precision: str, device: str, *, amp: bool = True) -> str:
    """The autocast precision of a run: "bf16" or "fp32".

    ``"auto"`` is bfloat16 on a CUDA device with bfloat16 support when ``amp``, and on a CPU with
    native bfloat16 (:func:`native_bf16`); float32 otherwise. ``"bf16"`` and ``"fp32"`` are
    returned as they are.

    Raises
    ------
    ConfigError
        Another value.

    Examples
    --------
    >>> training_precision("fp32", "cpu"), training_precision("bf16", "cpu")
    ('fp32', 'bf16')
    """
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ConfigError(f"`precision` must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if device.startswith("cuda"):
        return "bf16" if amp and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_bf16() else "fp32"


def transfer_weights(target: nn.Module, source: dict[str, torch.Tensor]) -> list[str]:
    """Copy every entry of ``source`` whose name and shape coincide with ``target``'s.

    Returns the copied names (the others are logged as skipped).

    Examples
    --------
    >>> a, b = SRResNet3d(1, 2, channels=4, blocks=1), SRResNet3d(3, 2, channels=4, blocks=1)
    >>> "head.weight" in transfer_weights(b, a.state_dict())
    False
    """
    own = target.state_dict()
    copied, skipped = [], []
    with torch.no_grad():
        for name, t in own.items():
            s = source.get(name)
            if s is not None and tuple(s.shape) == tuple(t.shape):
                t.copy_(s.to(t.dtype))
                copied.append(name)
            else:
                skipped.append(name)
    log.info("transfer: copied %d tensors: %s", len(copied), ", ".join(copied))
    if skipped:
        log.info("transfer: kept the initialisation of %d tensors: %s", len(skipped),
                 ", ".join(skipped))
    return copied


def _build_network(in_channels: int, alpha: int, cfg: TrainConfig,
                   out_channels: int) -> SRResNet3d:
    with torch.random.fork_rng(devices=[]):  # seeded init; the caller's RNG state is restored
        torch.manual_seed(cfg.seed)
        return SRResNet3d(in_channels, alpha, channels=cfg.channels, blocks=cfg.blocks,
                          res_scale=cfg.res_scale, taper=cfg.taper, out_channels=out_channels)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: checkpoint={old.get(k)!r}, now={new.get(k)!r}"
                     for k in keys if old.get(k) != new.get(k))


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    lines = ["epoch,train_loss,val_loss,seconds,best"]
    lines += [f"{h['epoch']},{h['train_loss']:.6g},{h['val_loss']:.6g},{h['seconds']:.3f},"
              f"{int(h['best'])}" for h in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


# fields added after the first checkpoint format: left out of a run's identity at their default
# value, so that checkpoints written before them still resume
_LATER_FIELDS = ("targets", "solution_weight", "objective", "flux_mix", "skeleton_iterations",
                 "skeleton_smooth", "precision", "channels_last", "compile", "finetune_fraction")
_NOT_IDENTITY = ("prefetch", "tensorboard")  # change nothing but speed / logging


def _identity(alpha: int, inputs: str, cfg: TrainConfig, axis: int | None) -> dict[str, Any]:
    """What a checkpoint must match to be resumed."""
    identity = {"alpha": alpha, "inputs": inputs, **cfg.model_dump()}
    defaults = TrainConfig().model_dump()
    for key in _LATER_FIELDS:
        if identity[key] == defaults[key]:
            identity.pop(key)
    for key in _NOT_IDENTITY:
        identity.pop(key)
    if axis is not None:
        identity["transport_axis"] = axis
    return _jsonable(identity)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    """``fn`` takes a keyword argument ``name`` (or ``**kwargs``)."""
    import inspect

    params = inspect.signature(fn).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


def _split_batch(cfg: TrainConfig, alpha: int, world: int) -> int:
    """The global batch at α, which must split evenly across ``world`` processes."""
    batch = cfg.batch_for(alpha)
    if batch % world:
        raise ConfigError(f"the batch of {batch} crops at alpha={alpha} cannot be split evenly "
                          f"across {world} training processes; choose a batch size divisible "
                          f"by {world} (batch_size / batch_per_alpha) or another number of "
                          "processes")
    return batch


def _check_objective(cfg: TrainConfig, db: Database) -> None:
    """Refuse objective terms that need the HR solution on a database without it."""
    flux_terms = needs_flux(cfg.objective)
    if flux_terms:
        db.check_hr_diffusion(f"the objective term(s) {', '.join(map(repr, flux_terms))}")


def _finetune_sampler(finetune: tuple[np.ndarray, Any] | None, twins: CropSampler,
                      make: Callable[..., CropSampler], *, alpha: int, inputs: str, crop: int,
                      axis: int, hr_solution: bool, cfg: TrainConfig, device: str
                      ) -> tuple[CropSampler | MixedSampler, dict[str, Any] | None]:
    """The training sampler with the real crops of ``finetune`` mixed in, and its identity."""
    if finetune is None:
        return twins, None
    image, region = finetune
    pairs = finetune_pairs(image, alpha=alpha, inputs=inputs, crop=crop, axis=axis,
                           region=region, hr_solution=hr_solution, device=device)
    real = make(pairs, np.random.default_rng([cfg.seed, TRAIN_STREAM, 7]))
    reg = normalize_region(region, np.shape(image))
    ident = {"image": image_digest(np.asarray(image)), "shape": list(np.shape(image)),
             "region": [[s.start, s.stop] for s in reg], "fraction": cfg.finetune_fraction}
    log.info("fine-tuning on a measured image %s, region %s: %.0f %% of the training crops",
             np.shape(image), ident["region"], 100 * cfg.finetune_fraction)
    return MixedSampler(twins, real, fraction=cfg.finetune_fraction), ident


def _setup(database: Database | str | os.PathLike[str], *, alpha: int, inputs: str,
           out_dir: str | os.PathLike[str], config: TrainConfig | None, device: str,
           dist: _Dist, finetune: tuple[np.ndarray, Any] | None = None) -> _Run:
    """Validate the arguments; build samplers, validation crops, network and optimizer."""
    cfg = config if config is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"`config` must be a TrainConfig, got {type(cfg).__name__}")
    alpha = check_alpha(alpha)
    if inputs not in ("bin", "diffu"):
        raise ConfigError(f"`inputs` must be 'bin' or 'diffu', got {inputs!r}")
    kind = target_kind(cfg.targets)
    db = database if isinstance(database, Database) else open_database(database)
    dev = resolve_device(device)
    batch = _split_batch(cfg, alpha, dist.world)
    _check_objective(cfg, db)
    objective = make_objective(cfg, kind)
    crop = cfg.crop_for(alpha)
    axis = db.axis if (inputs == "diffu" or kind.needs_hr_solution) else None
    spec = ModelSpec(alpha=alpha, inputs=inputs, threshold=0.5, targets=kind.name,
                     transport_axis=axis, crop=crop)
    pairs = {split: db.pairs(split, alpha, inputs=inputs, targets=kind.name,
                             hr_solution=objective.flux)
             for split in ("train", "val")}  # both checked before any crop is drawn

    extra = {"flux": True} if objective.flux else {}
    if extra and not _accepts(kind.make_sampler, "flux"):
        raise ConfigError(f"target kind {kind.name!r} cannot add the flux-magnitude channel that "
                          f"the objective term(s) {', '.join(needs_flux(cfg.objective))} need; "
                          "use targets 'morph' or 'morph+diffu', or drop the term")

    def sampler(split: str, stream: int, augment: bool) -> CropSampler:
        return kind.make_sampler(pairs[split], alpha=alpha, crop=crop, augment=augment,
                                 axis=db.axis, rng=np.random.default_rng([cfg.seed, stream]),
                                 **extra)

    train_sampler, ft_identity = _finetune_sampler(
        finetune, sampler("train", TRAIN_STREAM, True),
        lambda p, rng: kind.make_sampler(p, alpha=alpha, crop=crop, augment=True, axis=db.axis,
                                         rng=rng, **extra),
        alpha=alpha, inputs=inputs, crop=crop, axis=db.axis,
        hr_solution=objective.flux or kind.needs_hr_solution, cfg=cfg, device=dev)
    identity = _identity(alpha, inputs, cfg, axis)
    if ft_identity is not None:
        identity["finetune"] = ft_identity
    v_lr, v_hr = sampler("val", VAL_STREAM, False).sample(cfg.val_crops)
    val = (v_lr, v_hr.astype(np.uint8) if v_hr.shape[1] == 1 else v_hr)  # binary: 1 byte/voxel
    net = _build_network(input_channels(inputs), alpha, cfg, kind.out_channels).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return _Run(cfg=cfg, kind=kind, db=db, spec=spec, out=Path(out_dir), dev=dev, batch=batch,
                sampler=train_sampler, val=val, net=net, opt=opt, objective=objective,
                identity=identity,
                precision=training_precision(cfg.precision, dev, amp=cfg.amp), dist=dist)


_CKPT_DIGEST = "sha256"  # checkpoints written before it have none and are still accepted
_CKPT_KEYS = ("identity", "model", "optimizer", "epoch", "history", "best_val", "best_epoch",
              "bad_epochs", "best_state")


def _load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint and check that it belongs to this run's configuration."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
            raise ValueError("not a twinsr checkpoint")
        missing = [k for k in _CKPT_KEYS if k not in ck]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        stored = ck.get(_CKPT_DIGEST)
        if stored is not None and stored != state_digest(
                {k: v for k, v in ck.items() if k != _CKPT_DIGEST}):
            raise ValueError("its contents do not match the SHA-256 checksum stored in it")
        old = _jsonable(ck["identity"])
    except Exception as exc:  # torch raises many types for a damaged file; all mean "unreadable"
        raise BundleError(f"cannot read checkpoint {path}: {exc}; delete it to start "
                          "over") from exc
    if "transport_axis" in identity and "transport_axis" not in old:  # written before the field
        old["transport_axis"] = identity["transport_axis"]
    for key in _NOT_IDENTITY:
        old.pop(key, None)
    if old != identity:
        raise ConfigError(f"cannot resume {path.parent} with a different configuration: "
                          f"{_config_diff(old, identity)}")
    return ck


def _restore(run: _Run, resume: bool) -> TrainState:
    """The state to continue from: the checkpoint's (``resume``) or a fresh one."""
    if not run.ckpt_path.exists():
        if resume:
            log.info("no checkpoint in %s; starting a new run", run.out)
        return TrainState()
    if not resume:
        raise ConfigError(f"{run.out} already holds a training checkpoint; pass resume=True "
                          "(--resume) to continue it, or choose a new run folder")
    ck = _load_checkpoint(run.ckpt_path, run.identity)
    run.net.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    log.info("resuming %s after epoch %d", run.out, int(ck["epoch"]))
    return TrainState(epoch=int(ck["epoch"]), history=list(ck["history"]),
                      best_val=float(ck["best_val"]), best_epoch=int(ck["best_epoch"]),
                      bad_epochs=int(ck["bad_epochs"]), best_state=ck["best_state"],
                      transferred=list(ck.get("transferred", [])),
                      finished=bool(ck.get("finished", False)), torch_rng=ck.get("torch_rng"))


def _save_checkpoint(run: _Run, state: TrainState) -> None:
    """Atomic checkpoint, written by rank 0 only."""
    if not run.dist.main:
        return
    payload = {
        "format": CKPT_FORMAT,
        "identity": run.identity,
        "model": _cpu_state(run.net),
        "optimizer": run.opt.state_dict(),
        "sampling": "keyed",  # crops keyed by (seed, stream, epoch, step, crop): no sampler state
        "torch_rng": state.torch_rng,
        "epoch": int(state.epoch),
        "history": state.history,
        "best_val": float(state.best_val),
        "best_epoch": int(state.best_epoch),
        "bad_epochs": int(state.bad_epochs),
        "best_state": state.best_state,
        "transferred": list(state.transferred),
        "finished": bool(state.finished),
    }
    payload[_CKPT_DIGEST] = state_digest(payload)
    with atomic_path(run.ckpt_path) as tmp:
        torch.save(payload, tmp)


def _transfer(run: _Run, init_from: str | os.PathLike[str]) -> list[str]:
    """Copy the coinciding layers of the bundle ``init_from``; warn where it does not fit."""
    try:
        src = load_model(init_from)
    except BundleError as exc:
        raise ConfigError(f"init_from: {exc}") from exc
    alpha = run.spec.alpha
    same_alpha_finetune = "finetune" in run.identity and src.alpha == alpha
    if src.alpha * 2 != alpha and not same_alpha_finetune:
        warnings.warn(f"init_from {init_from} is a network for alpha={src.alpha}; transfer "
                      f"learning expects the alpha/2={alpha // 2} network. Only layers of equal "
                      "shape are copied", ModelWarning, stacklevel=3)
    ax, src_ax = run.spec.transport_axis, src.transport_axis
    if ax is not None and src_ax is not None and ax != src_ax:
        warnings.warn(f"init_from {init_from} was trained with diffusion channels along axis "
                      f"{src_ax}, this run uses axis {ax}", ModelWarning, stacklevel=3)
    return transfer_weights(run.net, src.network.state_dict())


def _to_device(run: _Run, x_np: np.ndarray, y_np: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(x_np).to(run.dev).contiguous(memory_format=run.memory_format)
    return x, torch.from_numpy(y_np).to(run.dev)


def _all_sum(values: torch.Tensor, run: _Run) -> torch.Tensor:
    """Sum over the processes (float64 on the CPU; unchanged in one process)."""
    if not run.dist.active:
        return values
    import torch.distributed as tdist

    t = values.to(torch.float64)
    t = t.to(run.dev) if run.dev.startswith("cuda") else t
    tdist.all_reduce(t)
    return t.cpu()


def _validation_loss(run: _Run) -> float:
    """Mean objective over the validation crops (each process evaluates its share)."""
    net, (v_lr, v_hr) = run.net, run.val
    n = v_lr.shape[0]
    mine = np.array_split(np.arange(n), run.dist.world)[run.dist.rank]
    chunk = max(1, run.local_batch)
    total = torch.zeros((), dtype=torch.float64)
    net.eval()
    with torch.no_grad():
        for start in range(0, len(mine), chunk):
            sel = mine[start:start + chunk]
            x, y = _to_device(run, v_lr[sel], v_hr[sel].astype(np.float32))
            with run.autocast():
                out = net(x)
            total += run.objective.per_crop(out.float(), y).double().sum().cpu()
    net.train()
    return float(_all_sum(total, run)) / n


class _Prefetcher:
    """Prepares ``make(step)`` for the given steps in a background thread, ``depth`` ahead.

    Iterating yields the results in step order; an exception in the thread is raised in the
    consumer; leaving the ``with`` block (also by an exception) stops the thread.
    """

    def __init__(self, make: Callable[[int], Any], steps: Sequence[int], depth: int) -> None:
        self._make, self._steps = make, list(steps)
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="twinsr-prefetch",
                                        daemon=True)

    def _produce(self) -> None:
        for step in self._steps:
            try:
                item: tuple[str, Any] = ("ok", self._make(step))
            except BaseException as exc:  # handed to the consumer, which raises it
                item = ("error", exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or item[0] == "error":
                return

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        for _ in self._steps:
            status, value = self._queue.get()
            if status == "error":
                raise value
            yield value

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


def _batches(run: _Run, epoch: int) -> contextlib.AbstractContextManager[Iterator[Any]]:
    """This process's share of the batches of ``epoch``, as device tensors, in step order."""
    lb, rank, cfg = run.local_batch, run.dist.rank, run.cfg
    crops = range(rank * lb, (rank + 1) * lb)

    def make(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = run.sampler.sample_keyed((cfg.seed, TRAIN_STREAM, epoch, step), crops)
        return _to_device(run, x, y)

    steps = range(1, cfg.steps_per_epoch + 1)
    depth = cfg.prefetch if cfg.prefetch is not None else (2 if run.dev.startswith("cuda") else 0)
    if depth > 0:
        return _Prefetcher(make, steps, depth)
    return contextlib.nullcontext(make(s) for s in steps)


def _step(run: _Run, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    run.opt.zero_grad(set_to_none=True)
    with run.autocast():
        out = model(x)
    loss = run.objective(out.float(), y)
    loss.backward()
    run.opt.step()
    return loss.detach()


def _guarded_step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One step; the first step of a compiled model falls back to eager if compilation fails."""
    model = run.model if run.model is not None else run.net
    if not run.compiled:
        return _step(run, model, x, y)
    try:
        loss = _step(run, model, x, y)
    except Exception as exc:  # any compile failure (no compiler, unsupported op, ...)
        log.warning("torch.compile failed (%s: %s); training continues without compilation",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        run.model = getattr(model, "_orig_mod", run.net)
        run.compiled = False
        return _step(run, run.model, x, y)
    run.compiled = False  # compiled and working: no more guarding
    return loss


def _train_epoch(run: _Run, epoch: int, progress: ProgressFn | None) -> list[float]:
    """``steps_per_epoch`` Adam steps; the per-step losses (mean over all processes)."""
    losses = []
    with _batches(run, epoch) as batches:
        for step, (x, y) in enumerate(batches, 1):
            losses.append(float(_guarded_step(run, x, y)))
            if progress is not None:
                progress(epoch, step, losses[-1], None)
    if run.dist.active:
        losses = (_all_sum(torch.tensor(losses, dtype=torch.float64), run)
                  / run.dist.world).tolist()
    return losses


def _channels_last_output(module: nn.Module, inputs: Any, output: Any) -> Any:
    """Forward hook: a 5-D output in the channels-last 3-D format (a no-op if it is already)."""
    if isinstance(output, torch.Tensor) and output.ndim == 5:
        return output.contiguous(memory_format=torch.channels_last_3d)
    return None


def _prepare_model(run: _Run) -> list[Any]:
    """Memory format, DistributedDataParallel and ``torch.compile`` of the training network.

    With ``channels_last`` every leaf module's 5-D output is kept channels-last (layers such as
    the voxel shuffle return the standard format, and mixing formats makes the element-wise
    kernels of the backward pass slow); the hook handles are returned for removal.
    """
    run.net.to(memory_format=run.memory_format)
    hooks = []
    if run.cfg.channels_last:
        hooks = [m.register_forward_hook(_channels_last_output) for m in run.net.modules()
                 if next(m.children(), None) is None]
    model: nn.Module = run.net
    if run.dist.active:
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(run.dev).index or 0] if run.dev.startswith("cuda") else None
        model = DistributedDataParallel(run.net, device_ids=ids)
    if run.cfg.compile:
        try:
            model = torch.compile(model)
            run.compiled = True
        except Exception as exc:  # torch.compile missing or refusing this platform
            log.warning("torch.compile is unavailable (%s); training without compilation", exc)
    run.model = model
    return hooks


@contextlib.contextmanager
def _tensorboard(run: _Run) -> Iterator[Any]:
    """A SummaryWriter under ``RUN/tensorboard`` when ``config.tensorboard`` (rank 0), else None."""
    with tensorboard_writer(run.out / LOG_DIR if run.cfg.tensorboard and run.dist.main
                            else None) as writer:
        yield writer


def available_workers(device: str = "cpu") -> int:
    """Training processes this machine can run: visible CUDA devices, or CPU cores of this process.

    Examples
    --------
    >>> available_workers("cpu") >= 1
    True
    """
    if resolve_device(device).startswith("cuda"):
        return torch.cuda.device_count()
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _training_context(run: _Run, state: TrainState) -> Iterator[None]:
    """Torch threads and the run's own torch RNG stream, both restored on exit."""
    old_threads = torch.get_num_threads()
    threads = run.cfg.num_threads
    if threads is None and run.dist.active and not run.dev.startswith("cuda"):
        threads = max(1, available_workers("cpu") // run.dist.local_world)
    if threads:
        torch.set_num_threads(threads)
    devices = [torch.device(run.dev).index or 0] if run.dev.startswith("cuda") else []
    try:
        with torch.random.fork_rng(devices=devices):
            if state.torch_rng is not None:
                torch.set_rng_state(state.torch_rng)
            else:
                torch.manual_seed(run.cfg.seed)
            yield
    finally:
        if threads:
            torch.set_num_threads(old_threads)


def _out_of_time(run: _Run, t0: float) -> bool:
    """The time budget is spent (rank 0's clock decides for every process)."""
    cfg = run.cfg
    over = cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds
    if run.dist.active:
        import torch.distributed as tdist

        flag = [over]
        tdist.broadcast_object_list(flag, src=0)
        over = bool(flag[0])
    return over


def _end_epoch(run: _Run, state: TrainState, entry: dict[str, Any], writer: Any) -> None:
    state.history.append(entry)
    if writer is not None:
        writer.add_scalar("loss/train", entry["train_loss"], state.epoch)
        writer.add_scalar("loss/val", entry["val_loss"], state.epoch)
    state.torch_rng = torch.get_rng_state()
    if run.dist.main:  # before the checkpoint: a kill in between rewrites it on resume
        _write_history(run.out / "history.csv", state.history)
    _save_checkpoint(run, state)


def _run_epochs(run: _Run, state: TrainState, progress: ProgressFn | None, t0: float) -> None:
    """Train until ``epochs``, early stopping or the time budget; checkpoint every epoch."""
    hooks = _prepare_model(run)
    try:
        _epochs(run, state, progress, t0)
    finally:
        for h in hooks:
            h.remove()
        run.net.to(memory_format=torch.contiguous_format)


def _epochs(run: _Run, state: TrainState, progress: ProgressFn | None, t0: float) -> None:
    """The epoch loop of :func:`_run_epochs`."""
    cfg = run.cfg
    with _tensorboard(run) as writer, _training_context(run, state):
        run.net.train()
        while not state.finished and not state.stopped(cfg.patience) and state.epoch < cfg.epochs:
            state.epoch += 1
            te = time.perf_counter()
            losses = _train_epoch(run, state.epoch, progress)
            vloss = _validation_loss(run)
            improved = state.record(vloss, run.net, cfg.min_delta)
            prev = state.history[-1]["seconds"] if state.history else 0.0
            entry = {"epoch": state.epoch, "train_loss": float(np.mean(losses)),
                     "val_loss": vloss, "seconds": prev + time.perf_counter() - te,
                     "best": improved}
            out_of_time = _out_of_time(run, t0)
            if out_of_time and not state.stopped(cfg.patience) and state.epoch < cfg.epochs:
                log.info("time budget of %.0f s reached after epoch %d", cfg.max_seconds,
                         state.epoch)
            _end_epoch(run, state, entry, writer)
            if progress is not None:
                progress(state.epoch, cfg.steps_per_epoch, entry["train_loss"], vloss)
            log.info("epoch %d: train %.4f val %.4f%s", state.epoch, entry["train_loss"], vloss,
                     " (best)" if improved else "")
            if out_of_time:
                break


def _fit_threshold(run: _Run) -> float:
    """μ* over all crops of a non-overlapping grid of the validation images (spec Eq. 18)."""
    cfg, db, alpha, inputs = run.cfg, run.db, run.spec.alpha, run.spec.inputs
    model = SRModel(run.net.eval(), spec=run.spec)
    acc = PorosityErrorAccumulator(cfg.threshold_bins)
    for pair in db.pairs("val", alpha, inputs=inputs):
        lr_shape = pair.channels[0].shape
        c = min(cfg.crop, *lr_shape)
        stack = np.stack([np.asarray(ch, dtype=np.float32) for ch in pair.channels])
        prob = superresolve(stack, model, tile=cfg.tile, device=run.dev, probabilities=True)
        hr = np.asarray(pair.hr)
        for sl in grid_crops(lr_shape, c):
            hsl = tuple(slice(alpha * s.start, alpha * s.stop) for s in sl)
            acc.add(prob[hsl], hr[hsl])
    return acc.fit()


def _result(run: _Run, state: TrainState, threshold: float, seconds: float) -> TrainResult:
    return TrainResult(bundle_path=run.out / BUNDLE_NAME, epochs_run=len(state.history),
                       best_epoch=state.best_epoch, best_val_loss=state.best_val,
                       stopped_early=state.stopped(run.cfg.patience), threshold=threshold,
                       history=state.history, seconds=seconds, device=run.dev,
                       transferred=tuple(state.transferred), run_dir=run.out,
                       precision=run.precision, world_size=run.dist.world)


def _completed(run: _Run, state: TrainState) -> TrainResult | None:
    """The result of a run that finished before (its bundle loads and matches), else None."""
    if not (state.finished and (run.out / BUNDLE_NAME).exists()):
        return None
    try:
        done = load_model(run.out / BUNDLE_NAME, alpha=run.spec.alpha, inputs=run.spec.inputs)
    except BundleError as exc:
        log.info("the bundle of the finished run %s is unusable (%s); rewriting it", run.out, exc)
        return None
    log.info("run %s is already complete; nothing to do", run.out)
    return _result(run, state, done.threshold, 0.0)


def _run_metadata(run: _Run, state: TrainState) -> dict[str, Any]:
    cfg, spec = run.cfg, run.spec
    meta = {"config": cfg.model_dump(), "alpha": spec.alpha, "inputs": spec.inputs,
            "targets": spec.targets, "database": str(run.db.path),
            "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
            "epochs_run": len(state.history), "stopped_early": state.stopped(cfg.patience),
            "transferred": state.transferred,
            "versions": package_versions(("twinsr", "torch", "numpy")), "git": git_hash(),
            "device": run.dev, "precision": run.precision, "world_size": run.dist.world,
            "tensorboard": LOG_DIR if cfg.tensorboard else None}
    if spec.transport_axis is not None:
        meta["transport_axis"] = spec.transport_axis
    return meta


def _broadcast(value: Any, run: _Run) -> Any:
    """Rank 0's ``value`` on every process."""
    if not run.dist.active:
        return value
    import torch.distributed as tdist

    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def _finish(run: _Run, state: TrainState, t0: float) -> TrainResult:
    """Best weights, μ*, the bundle, the final checkpoint and ``run.json`` (rank 0 writes)."""
    cfg, spec = run.cfg, run.spec
    if state.best_state is not None:
        run.net.load_state_dict(state.best_state)
    thr = _fit_threshold(run) if run.dist.main else math.nan
    thr = float(_broadcast(thr, run))
    seconds = time.perf_counter() - t0
    spec = ModelSpec(alpha=spec.alpha, inputs=spec.inputs, threshold=thr, targets=spec.targets,
                     transport_axis=spec.transport_axis, crop=spec.crop)
    meta = _run_metadata(run, state)
    state.finished = True
    result = _result(run, state, thr, seconds)
    if run.dist.main:
        save_bundle(run.out / BUNDLE_NAME, run.net.cpu(), spec=spec, metadata=_jsonable(meta))
        run.net.to(run.dev)
        run_info = {**meta, "seed": cfg.seed, "threshold": thr, "seconds": seconds,
                    "spec": spec.to_dict(), "database_settings": run.db.settings,
                    "result": {k: v for k, v in asdict(result).items() if k != "history"}}
        atomic_write_text(run.out / "run.json", json.dumps(_jsonable(run_info), indent=1))
        _save_checkpoint(run, state)  # marked finished last: a kill before it redoes the finish
    _broadcast(None, run)  # nobody returns before the bundle is written
    return result


def _check_versions(dist: _Dist) -> None:
    """Every process of the job must run the same torch and twinsr (all-gathered at start)."""
    import torch.distributed as tdist

    mine = {"torch": torch.__version__, "twinsr": package_versions(("twinsr",))["twinsr"]}
    every: list[Any] = [None] * dist.world
    tdist.all_gather_object(every, mine)
    if any(v != every[0] for v in every):
        shown = "; ".join(f"rank {r}: torch {v['torch']}, twinsr {v['twinsr']}"
                          for r, v in enumerate(every))
        raise ConfigError(f"the training processes run different versions ({shown}); install "
                          "the same torch and twinsr on every worker")


@contextlib.contextmanager
def _distributed(device: str) -> Iterator[tuple[_Dist, str]]:
    """Join the ``torch.distributed`` job described by the environment (torchrun), if any.

    Yields this process's :class:`_Dist` and its device (``cuda:LOCAL_RANK`` for NCCL); a
    process group created here is destroyed on exit.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()) and world <= 1:
        yield _Dist(), device
        return
    if not tdist.is_available():
        raise ConfigError("WORLD_SIZE > 1 asks for multi-process training, but this torch "
                          "build has no torch.distributed")
    dev = resolve_device(device)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if dev.startswith("cuda"):
        dev = f"cuda:{local}"
        torch.cuda.set_device(local)
    owns = not tdist.is_initialized()
    if owns:
        tdist.init_process_group(backend="nccl" if dev.startswith("cuda") else "gloo",
                                 init_method="env://")
    info = _Dist(rank=tdist.get_rank(), world=tdist.get_world_size(),
                 local_world=int(os.environ.get("LOCAL_WORLD_SIZE", tdist.get_world_size())))
    try:
        _check_versions(info)
        yield info, dev
    finally:
        if owns:
            tdist.destroy_process_group()


def train(
    database: Database | str | os.PathLike[str],
    *,
    alpha: int,
    inputs: str = "bin",
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    init_from: str | os.PathLike[str] | None = None,
    resume: bool = False,
    device: str = "auto",
    progress: ProgressFn | None = None,
    finetune_on: np.ndarray | str | os.PathLike[str] | None = None,
    finetune_region: Any = None,
) -> TrainResult:
    """Train one network N^{inputs,α} on a database (spec §2.2.3) and write its bundle.

    Parameters
    ----------
    database : Database or path
        Built by :func:`twinsr.sr.database.build_database` (splits train and val are used).
    alpha : {2, 4, 8}
        Scale factor.
    inputs : {"bin", "diffu"}
        Binary LR only (1 channel) or with the diffusion channels (3 channels), solved along the
        database's axis (recorded in the bundle's spec as ``transport_axis``).
    out_dir : path
        Run folder (created).
    config : TrainConfig, optional
        Hyper-parameters; default the paper preset.
    init_from : path, optional
        Bundle or run folder of the α/2 network: every layer whose name and shape coincide is
        copied (transfer learning); the list is in the result and in ``run.json``. With
        ``finetune_on`` the network of the same α is the expected start (no warning).
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` exactly where it stopped (same config only).
    device : str
        "auto", "cpu" or "cuda[:N]"; the precision follows ``config.precision``
        (:func:`training_precision`). Under ``torch.distributed`` each process uses
        ``cuda:LOCAL_RANK`` (NCCL) or the CPU (gloo).
    progress : callable(epoch, step, loss, val_loss), optional
        Called after every step (``val_loss`` None; under several processes the loss of this
        process's share of the batch) and after every epoch's validation.
    finetune_on : array (Z, Y, X) or path, optional
        A measured binary HR image: real LR/HR crops downsampled from it (with diffusion
        channels for ``inputs="diffu"``) make up ``config.finetune_fraction`` of the training
        crops (:mod:`twinsr.sr.finetune`); with ``init_from`` a twins-trained network this
        fine-tunes it. Validation and μ* stay on the twins. The image's digest and region are
        part of the checkpoint's identity.
    finetune_region : three (start, stop) pairs or slices, optional
        The part of ``finetune_on`` to use (default all of it); keep it apart from any region
        the network is evaluated on (:func:`twinsr.sr.finetune.check_disjoint`).

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError
        The database lacks the train/val split, α, diffusion channels or the HR solution the
        targets or the objective need (``build_database(..., hr_diffusion=True)``); images
        smaller than one crop (also the fine-tuning region).
    VolumeError
        ``finetune_on`` is not a 3-D binary image.
    ConfigError
        A checkpoint exists and ``resume`` is False; ``resume`` with a different config (the
        difference is shown); a bad ``init_from`` or ``finetune_region``; unknown ``targets``;
        a batch that does not split evenly across the processes; processes with different
        torch/twinsr versions.
    BundleError
        An unreadable checkpoint.

    Warns
    -----
    ModelWarning
        ``init_from`` is a network of another α than α/2, or of another transport axis.

    Notes
    -----
    Peak memory: the network's activations for one batch (≈ 4·channels·(α·crop)³·batch·~6
    bytes, half of it in bfloat16) plus the validation crops (uint8 HR) and one validation
    image's probabilities; ``prefetch`` batches of crops more.
    """
    if config is not None and config.tensorboard:
        require_tensorboard()  # asked for and missing: refuse before any work
    with _distributed(device) as (dist, dev):
        ft = None
        if finetune_on is not None:
            ft = (read_finetune_image(finetune_on), finetune_region)
        elif finetune_region is not None:
            raise ConfigError("`finetune_region` needs `finetune_on` (the measured image)")
        run = _setup(database, alpha=alpha, inputs=inputs, out_dir=out_dir, config=config,
                     device=dev, dist=dist, finetune=ft)
        state = _restore(run, resume)
        done = _completed(run, state)
        if done is not None:
            return done
        if init_from is not None and state.epoch == 0:
            state.transferred = _transfer(run, init_from)
        run.out.mkdir(parents=True, exist_ok=True)
        if dist.main:
            remove_stale_temporaries(run.out)  # left by an earlier run killed mid-write
            atomic_write_text(run.out / "config.yaml", run.cfg.to_yaml())
        t0 = time.perf_counter()
        _run_epochs(run, state, progress, t0)
        return _finish(run, state, t0)


def check_nproc(nproc: object, device: str = "cpu") -> int:
    """Validate a number of training processes against this machine (:func:`available_workers`).

    Raises
    ------
    ConfigError
        Not an integer ≥ 1, or more than the CPU cores (device "cpu") or the CUDA devices.

    Examples
    --------
    >>> check_nproc(1, "cpu")
    1
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"`nproc` must be an integer >= 1, got {nproc!r}")
    have = available_workers(device)
    if nproc > have:
        what = ("CUDA devices visible" if resolve_device(device).startswith("cuda")
                else "CPU cores available to this process")
        raise ConfigError(f"--nproc {nproc} is more than the {have} {what}; use at most one "
                          f"training process per {'GPU' if 'CUDA' in what else 'core'}")
    return int(nproc)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawned_worker(rank: int, world: int, port: int, tmp: str, database: Any,
                    kwargs: dict[str, Any]) -> None:
    """One process of :func:`train_distributed` (on loopback): env, train, result or error."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world)})
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    try:
        result = train(database, **kwargs)
    except BaseException as exc:
        try:
            blob = pickle.dumps(exc)
        except Exception:  # an exception that does not pickle: keep its type name and message
            blob = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        Path(tmp, f"error{rank}.pkl").write_bytes(blob)
        raise
    if rank == 0:
        with atomic_path(Path(tmp) / "result.pkl") as p:
            p.write_bytes(pickle.dumps(result))


def _worker_error(tmp: Path, world: int) -> BaseException | None:
    """The most telling exception of the failed processes: a twinsr error first, lowest rank."""
    from twinsr.exceptions import TwinsrError

    errors = []
    for r in range(world):
        p = tmp / f"error{r}.pkl"
        if p.exists():
            errors.append(pickle.loads(p.read_bytes()))
    errors.sort(key=lambda e: not isinstance(e, TwinsrError))
    return errors[0] if errors else None


def train_distributed(nproc: int, database: Database | str | os.PathLike[str],
                      **kwargs: Any) -> TrainResult:
    """:func:`train` in ``nproc`` processes (DistributedDataParallel over loopback).

    Spawns the processes (``torch.multiprocessing``, start method "spawn"), each running
    ``train(database, **kwargs)`` as one rank of a gloo (CPU) or NCCL (one GPU per process)
    job on 127.0.0.1; the result is rank 0's. Equal to a one-process run with the same global
    batch to float round-off (the batch of each step is split across the ranks). For several
    machines launch :func:`train` with ``torchrun`` instead (see the module notes).

    Parameters
    ----------
    nproc : int
        Processes, at most the CPU cores (device "cpu") or the visible GPUs
        (:func:`check_nproc`); 1 runs :func:`train` in this process.
    database, **kwargs
        As for :func:`train` (``progress`` must be picklable; it runs in every process).

    Returns
    -------
    TrainResult
        Rank 0's result.

    Raises
    ------
    ConfigError
        A bad ``nproc``; already inside a ``torch.distributed`` job.
    TwinsrError, or the exception of a failed process
        Re-raised here (a twinsr error of any rank first).

    Examples
    --------
    >>> res = train_distributed(2, "DB", alpha=2, out_dir="RUN",   # doctest: +SKIP
    ...                         config=TrainConfig.preset("quick"), device="cpu")
    >>> res.world_size                                             # doctest: +SKIP
    2
    """
    n = check_nproc(nproc, str(kwargs.get("device", "auto")))
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ConfigError("this process is already part of a torch.distributed job (WORLD_SIZE "
                          "is set, e.g. by torchrun); run train() there, without nproc")
    if n == 1:
        return train(database, **kwargs)
    cfg = kwargs.get("config")
    _split_batch(cfg if isinstance(cfg, TrainConfig) else TrainConfig(),
                 check_alpha(kwargs.get("alpha")), n)  # refused before spawning
    import torch.multiprocessing as tmp_mp

    with tempfile.TemporaryDirectory(prefix="twinsr-ddp-") as tmp:
        ctx = tmp_mp.start_processes(_spawned_worker, nprocs=n, join=False,
                                     args=(n, _free_port(), tmp, database, kwargs),
                                     start_method="spawn")
        try:
            while not ctx.join():
                pass
        except (tmp_mp.ProcessRaisedException, tmp_mp.ProcessExitedException) as exc:
            err = _worker_error(Path(tmp), n)
            if err is not None:
                raise err from None
            raise ConfigError(f"a training process failed: {exc}") from exc
        return pickle.loads((Path(tmp) / "result.pkl").read_bytes())
