"""Training protocol of the super-resolution networks (spec §2.2.3).

Adam on the loss of the configured target kind (``config.targets``, :mod:`twinsr.sr.targets`:
voxel-wise BCE for ``"morph"``, :mod:`twinsr.sr.objectives`; BCE + masked solution MSE for
``"morph+diffu"``, :mod:`twinsr.sr.physics`) over random aligned LR/HR crops with cube-symmetry
augmentation; the loss on fixed random validation crops after every epoch; early stopping with the
best weights kept; an atomic checkpoint every epoch (model, optimizer, sampler RNG state, torch RNG
state, epoch, history, config) so that ``resume=True`` continues exactly; transfer learning from
the α/2 network (every layer whose name and shape coincide); finally the threshold μ* (Eq. 18) on
the validation images and one model bundle with its :class:`~twinsr.sr.bundle.ModelSpec`.

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
    RUN/run.json         alpha, inputs, database, seed, device, versions, git hash, result
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from twinsr._atomic import atomic_path, atomic_write_text
from twinsr._provenance import git_hash, package_versions
from twinsr._validation import check_alpha, resolve_device
from twinsr.exceptions import BundleError, ConfigError, ModelWarning
from twinsr.sr.bundle import BUNDLE_NAME, ModelSpec, SRModel, input_channels, load_model, save_bundle
from twinsr.sr.config import PRESETS, TrainConfig
from twinsr.sr.data import CropSampler, grid_crops
from twinsr.sr.database import Database, open_database
from twinsr.sr.infer import superresolve
from twinsr.sr.network import SRResNet3d
from twinsr.sr.targets import TargetKind, target_kind
from twinsr.sr.threshold import PorosityErrorAccumulator

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "TrainState", "train", "transfer_weights"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CKPT_FORMAT = "twinsr-sr-checkpoint"

ProgressFn = Callable[[int, int, float, "float | None"], None]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
            self.best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            self.bad_epochs += 1
        return improved

    def stopped(self, patience: int) -> bool:
        """Patience exhausted."""
        return self.bad_epochs >= patience


@dataclass
class _Run:
    """Everything fixed for the duration of a run (built by :func:`_setup`)."""

    cfg: TrainConfig
    kind: TargetKind
    db: Database
    spec: ModelSpec  # the bundle's spec, with a placeholder threshold until it is fitted
    out: Path
    dev: str
    batch: int
    sampler: CropSampler
    val: tuple[np.ndarray, np.ndarray]
    net: SRResNet3d
    opt: torch.optim.Optimizer
    loss_fn: LossFn
    identity: dict[str, Any]

    @property
    def ckpt_path(self) -> Path:
        return self.out / CHECKPOINT


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


def _identity(alpha: int, inputs: str, cfg: TrainConfig, axis: int | None) -> dict[str, Any]:
    """What a checkpoint must match to be resumed."""
    identity = {"alpha": alpha, "inputs": inputs, **cfg.model_dump()}
    if cfg.targets == "morph" and cfg.solution_weight == 1.0:  # as written before these fields
        identity.pop("targets")
        identity.pop("solution_weight")
    if axis is not None:
        identity["transport_axis"] = axis
    return _jsonable(identity)


def _setup(database: Database | str | os.PathLike[str], *, alpha: int, inputs: str,
           out_dir: str | os.PathLike[str], config: TrainConfig | None, device: str) -> _Run:
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
    crop = cfg.crop_for(alpha)
    axis = db.axis if (inputs == "diffu" or kind.needs_hr_solution) else None
    spec = ModelSpec(alpha=alpha, inputs=inputs, threshold=0.5, targets=kind.name,
                     transport_axis=axis, crop=crop)

    pairs = {split: db.pairs(split, alpha, inputs=inputs, targets=kind.name)
             for split in ("train", "val")}  # both checked before any crop is drawn

    def sampler(split: str, stream: int, augment: bool) -> CropSampler:
        return kind.make_sampler(pairs[split], alpha=alpha, crop=crop, augment=augment,
                                 axis=db.axis, rng=np.random.default_rng([cfg.seed, stream]))

    train_sampler = sampler("train", 1, True)
    v_lr, v_hr = sampler("val", 2, False).sample(cfg.val_crops)
    val = (v_lr, v_hr.astype(np.uint8) if v_hr.shape[1] == 1 else v_hr)  # binary: 1 byte/voxel
    net = _build_network(input_channels(inputs), alpha, cfg, kind.out_channels).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return _Run(cfg=cfg, kind=kind, db=db, spec=spec, out=Path(out_dir), dev=dev,
                batch=cfg.batch_for(alpha), sampler=train_sampler, val=val, net=net, opt=opt,
                loss_fn=kind.make_loss(cfg), identity=_identity(alpha, inputs, cfg, axis))


def _load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint and check that it belongs to this run's configuration."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
            raise ValueError("not a twinsr checkpoint")
    except Exception as exc:  # torch raises many types for a damaged file; all mean "unreadable"
        raise BundleError(f"cannot read checkpoint {path}: {exc}; delete it to start "
                          "over") from exc
    old = _jsonable(ck["identity"])
    if "transport_axis" in identity and "transport_axis" not in old:  # written before the field
        old["transport_axis"] = identity["transport_axis"]
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
    run.sampler.set_state(ck["sampler_state"])
    log.info("resuming %s after epoch %d", run.out, int(ck["epoch"]))
    return TrainState(epoch=int(ck["epoch"]), history=list(ck["history"]),
                      best_val=float(ck["best_val"]), best_epoch=int(ck["best_epoch"]),
                      bad_epochs=int(ck["bad_epochs"]), best_state=ck["best_state"],
                      transferred=list(ck.get("transferred", [])),
                      finished=bool(ck.get("finished", False)), torch_rng=ck.get("torch_rng"))


def _save_checkpoint(run: _Run, state: TrainState) -> None:
    payload = {
        "format": CKPT_FORMAT,
        "identity": run.identity,
        "model": {k: v.detach().cpu().clone() for k, v in run.net.state_dict().items()},
        "optimizer": run.opt.state_dict(),
        "sampler_state": run.sampler.get_state(),
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
    with atomic_path(run.ckpt_path) as tmp:
        torch.save(payload, tmp)


def _transfer(run: _Run, init_from: str | os.PathLike[str]) -> list[str]:
    """Copy the coinciding layers of the bundle ``init_from``; warn where it does not fit."""
    try:
        src = load_model(init_from)
    except BundleError as exc:
        raise ConfigError(f"init_from: {exc}") from exc
    alpha = run.spec.alpha
    if src.alpha * 2 != alpha:
        warnings.warn(f"init_from {init_from} is a network for alpha={src.alpha}; transfer "
                      f"learning expects the alpha/2={alpha // 2} network. Only layers of equal "
                      "shape are copied", ModelWarning, stacklevel=3)
    ax, src_ax = run.spec.transport_axis, src.transport_axis
    if ax is not None and src_ax is not None and ax != src_ax:
        warnings.warn(f"init_from {init_from} was trained with diffusion channels along axis "
                      f"{src_ax}, this run uses axis {ax}", ModelWarning, stacklevel=3)
    return transfer_weights(run.net, src.network.state_dict())


def _validation_loss(run: _Run) -> float:
    net, (v_lr, v_hr) = run.net, run.val
    net.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(v_lr.shape[0]):
            x = torch.from_numpy(v_lr[i : i + 1]).to(run.dev)
            y = torch.from_numpy(v_hr[i : i + 1].astype(np.float32)).to(run.dev)
            total += float(run.loss_fn(net(x).float(), y))
    net.train()
    return total / v_lr.shape[0]


def _train_epoch(run: _Run, epoch: int, progress: ProgressFn | None) -> list[float]:
    """``steps_per_epoch`` Adam steps; the per-step losses."""
    use_amp = bool(run.cfg.amp and run.dev.startswith("cuda"))
    losses = []
    for step in range(1, run.cfg.steps_per_epoch + 1):
        x_np, y_np = run.sampler.sample(run.batch)
        x, y = torch.from_numpy(x_np).to(run.dev), torch.from_numpy(y_np).to(run.dev)
        run.opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            logits = run.net(x)
        loss = run.loss_fn(logits.float(), y)
        loss.backward()
        run.opt.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(epoch, step, losses[-1], None)
    return losses


@contextlib.contextmanager
def _tensorboard(out: Path) -> Iterator[Any]:
    """A SummaryWriter under ``out/tensorboard``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("TensorBoard logging is off (the tensorboard package is not installed)")
        yield None
        return
    writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    try:
        yield writer
    finally:
        writer.close()


@contextlib.contextmanager
def _training_context(run: _Run, state: TrainState) -> Iterator[None]:
    """Torch threads and the run's own torch RNG stream, both restored on exit."""
    old_threads = torch.get_num_threads()
    if run.cfg.num_threads:
        torch.set_num_threads(run.cfg.num_threads)
    devices = [torch.device(run.dev).index or 0] if run.dev.startswith("cuda") else []
    try:
        with torch.random.fork_rng(devices=devices):
            if state.torch_rng is not None:
                torch.set_rng_state(state.torch_rng)
            else:
                torch.manual_seed(run.cfg.seed)
            yield
    finally:
        if run.cfg.num_threads:
            torch.set_num_threads(old_threads)


def _run_epochs(run: _Run, state: TrainState, progress: ProgressFn | None, t0: float) -> None:
    """Train until ``epochs``, early stopping or the time budget; checkpoint every epoch."""
    cfg = run.cfg
    with _tensorboard(run.out) as writer, _training_context(run, state):
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
            state.history.append(entry)
            if writer is not None:
                writer.add_scalar("loss/train", entry["train_loss"], state.epoch)
                writer.add_scalar("loss/val", vloss, state.epoch)
            out_of_time = cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds
            if out_of_time and not state.stopped(cfg.patience) and state.epoch < cfg.epochs:
                log.info("time budget of %.0f s reached after epoch %d", cfg.max_seconds,
                         state.epoch)
            state.torch_rng = torch.get_rng_state()
            _save_checkpoint(run, state)
            _write_history(run.out / "history.csv", state.history)
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
                       transferred=tuple(state.transferred), run_dir=run.out)


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


def _finish(run: _Run, state: TrainState, t0: float) -> TrainResult:
    """Best weights, μ*, the bundle, the final checkpoint and ``run.json``."""
    cfg, spec = run.cfg, run.spec
    if state.best_state is not None:
        run.net.load_state_dict(state.best_state)
    thr = _fit_threshold(run)
    seconds = time.perf_counter() - t0
    spec = ModelSpec(alpha=spec.alpha, inputs=spec.inputs, threshold=thr, targets=spec.targets,
                     transport_axis=spec.transport_axis, crop=spec.crop)
    meta = {"config": cfg.model_dump(), "alpha": spec.alpha, "inputs": spec.inputs,
            "targets": spec.targets, "database": str(run.db.path),
            "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
            "epochs_run": len(state.history), "stopped_early": state.stopped(cfg.patience),
            "transferred": state.transferred,
            "versions": package_versions(("twinsr", "torch", "numpy")), "git": git_hash(),
            "device": run.dev}
    if spec.transport_axis is not None:
        meta["transport_axis"] = spec.transport_axis
    save_bundle(run.out / BUNDLE_NAME, run.net.cpu(), spec=spec, metadata=_jsonable(meta))
    run.net.to(run.dev)
    state.finished = True
    _save_checkpoint(run, state)
    result = _result(run, state, thr, seconds)
    run_info = {**meta, "seed": cfg.seed, "threshold": thr, "seconds": seconds,
                "spec": spec.to_dict(), "database_settings": run.db.settings,
                "result": {k: v for k, v in asdict(result).items() if k != "history"}}
    atomic_write_text(run.out / "run.json", json.dumps(_jsonable(run_info), indent=1))
    return result


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
        copied (transfer learning); the list is in the result and in ``run.json``.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` exactly where it stopped (same config only).
    device : str
        "auto", "cpu" or "cuda[:N]"; mixed precision (bfloat16) on CUDA when ``config.amp``.
    progress : callable(epoch, step, loss, val_loss), optional
        Called after every step (``val_loss`` None) and after every epoch's validation.

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError
        The database lacks the train/val split, α, diffusion channels or the HR solution the
        targets need; images smaller than one crop.
    ConfigError
        A checkpoint exists and ``resume`` is False; ``resume`` with a different config (the
        difference is shown); a bad ``init_from``; unknown ``targets``.
    BundleError
        An unreadable checkpoint.

    Warns
    -----
    ModelWarning
        ``init_from`` is a network of another α than α/2, or of another transport axis.

    Notes
    -----
    Peak memory: the network's activations for one batch (≈ 4·channels·(α·crop)³·batch·~6
    bytes) plus the validation crops (uint8 HR) and one validation image's probabilities.
    """
    run = _setup(database, alpha=alpha, inputs=inputs, out_dir=out_dir, config=config,
                 device=device)
    state = _restore(run, resume)
    done = _completed(run, state)
    if done is not None:
        return done
    if init_from is not None and state.epoch == 0:
        state.transferred = _transfer(run, init_from)
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out / "config.yaml", run.cfg.to_yaml())
    t0 = time.perf_counter()
    _run_epochs(run, state, progress, t0)
    return _finish(run, state, t0)
