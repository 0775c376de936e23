"""Training protocol of the super-resolution networks (spec §2.2.3).

With ``config.targets="morph+diffu"`` (spec §4) the network has 3 output channels and the loss is
:func:`combined_loss`: BCE on the morphology plus ``solution_weight`` × the MSE of the pore and
solid solutions, each voxel's error taken in the channel of its TRUE HR phase; augmentation keeps
the transport axis in place (see :class:`twinsr.sr.data.CropSampler`, ``solutions=``).

Adam on voxel-wise binary cross-entropy (``BCEWithLogitsLoss``) over random aligned LR/HR crops
with cube-symmetry augmentation; the loss on fixed random validation crops after every epoch;
early stopping with the best weights kept; an atomic checkpoint every epoch (model, optimizer,
sampler RNG state, torch RNG state, epoch, history, config) so that ``resume=True`` continues
exactly; transfer learning from the α/2 network (every layer whose name and shape coincide);
finally the threshold μ* (Eq. 18) on the validation images and one model bundle.

Run folder::

    RUN/config.yaml      resolved TrainConfig
    RUN/checkpoint.pt    last epoch (atomic)
    RUN/history.csv      epoch, train_loss, val_loss, seconds, best
    RUN/model.pt         bundle with the best weights and μ* (see twinsr.sr.bundle)
    RUN/run.json         alpha, inputs, database, seed, device, versions, git hash, result
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from twinsr._atomic import atomic_path, atomic_write_text
from twinsr._provenance import git_hash, package_versions
from twinsr._validation import check_alpha, resolve_device
from twinsr.exceptions import BundleError, ConfigError
from twinsr.sr.bundle import BUNDLE_NAME, SRModel, input_channels, load_model, save_bundle
from twinsr.sr.config import PRESETS, TrainConfig
from twinsr.sr.data import CropSampler, grid_crops
from twinsr.sr.database import Database, open_database
from twinsr.sr.infer import superresolve
from twinsr.sr.network import SRResNet3d
from twinsr.sr.threshold import PorosityErrorAccumulator

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "combined_loss", "train", "transfer_weights"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CKPT_FORMAT = "twinsr-sr-checkpoint"

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
        Its validation BCE.
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


def transfer_weights(target: nn.Module, source: dict[str, torch.Tensor]) -> list[str]:
    """Copy every entry of ``source`` whose name and shape coincide with ``target``'s.

    Returns the copied names (the others are logged as skipped).
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


def _build_network(in_channels: int, alpha: int, cfg: TrainConfig) -> SRResNet3d:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return SRResNet3d(in_channels, alpha, channels=cfg.channels, blocks=cfg.blocks,
                          res_scale=cfg.res_scale, taper=cfg.taper,
                          out_channels=1 if cfg.targets == "morph" else 3)


def combined_loss(output: torch.Tensor, target: torch.Tensor, *,
                  solution_weight: float = 1.0) -> torch.Tensor:
    """Loss of a morphology (+ solution) network.

    Parameters
    ----------
    output : tensor (N, 1 or 3, Z, Y, X)
        Network output: channel 0 the solid logit, channels 1–2 the pore / solid solutions.
    target : tensor (N, 1 or 3, Z, Y, X)
        Channel 0 the binary HR image (1 = solid), channels 1–2 its diffusion channels.
    solution_weight : float
        Weight w of the solution term.

    Returns
    -------
    tensor (scalar)
        ``BCEWithLogits(out₀, t₀)`` for 1-channel targets; for 3-channel targets
        ``BCEWithLogits(out₀, t₀) + w · mean_v (out_{1+φ(v)}(v) − t_{1+φ(v)}(v))²`` with
        φ(v) = t₀(v) ∈ {0, 1} the TRUE phase of voxel v: every voxel contributes the squared error
        of its own phase's solution (the pore channel is masked to the true pore, the solid
        channel to the true solid); predictions outside the true phase are not penalised.

    Raises
    ------
    ConfigError
        A 3-channel target with a 1-channel output (``targets="morph+diffu"`` needs
        ``out_channels=3``), or other channel counts that do not fit.
    """
    if target.shape[1] == 1 and output.shape[1] == 1:
        return nn.functional.binary_cross_entropy_with_logits(output, target)
    if target.shape[1] != 3 or output.shape[1] != 3:
        raise ConfigError(
            f"targets with {target.shape[1]} channel(s) cannot train a network with "
            f"{output.shape[1]} output channel(s); targets='morph+diffu' needs a network with "
            "out_channels=3 and targets='morph' one with out_channels=1")
    bce = nn.functional.binary_cross_entropy_with_logits(output[:, :1], target[:, :1])
    solid = target[:, :1]
    err = torch.where(solid > 0.5, output[:, 2:3] - target[:, 2:3],
                      output[:, 1:2] - target[:, 1:2])
    return bce + float(solution_weight) * err.square().mean()


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: checkpoint={old.get(k)!r}, now={new.get(k)!r}"
                     for k in keys if old.get(k) != new.get(k))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    lines = ["epoch,train_loss,val_loss,seconds,best"]
    lines += [f"{h['epoch']},{h['train_loss']:.6g},{h['val_loss']:.6g},{h['seconds']:.3f},"
              f"{int(h['best'])}" for h in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _resolve_init(init_from: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], int]:
    try:
        src = load_model(init_from)
    except BundleError as exc:
        raise ConfigError(f"init_from: {exc}") from exc
    return src.network.state_dict(), src.alpha


def _validation_loss(net: nn.Module, val: tuple[np.ndarray, np.ndarray], dev: str,
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    net.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(val[0].shape[0]):
            x = torch.from_numpy(val[0][i : i + 1]).to(dev)
            y = torch.from_numpy(val[1][i : i + 1].astype(np.float32)).to(dev)
            total += float(loss_fn(net(x).float(), y))
    net.train()
    return total / val[0].shape[0]


def _fit_threshold(net: SRResNet3d, db: Database, alpha: int, inputs: str, cfg: TrainConfig,
                   dev: str) -> float:
    """μ* over all crops of a non-overlapping grid of the validation images (spec Eq. 18)."""
    model = SRModel(net.eval(), alpha=alpha, inputs=inputs, threshold=0.5)
    acc = PorosityErrorAccumulator(cfg.threshold_bins)
    for pair in db.pairs("val", alpha, inputs=inputs):
        lr_shape = pair.channels[0].shape
        c = min(cfg.crop, *lr_shape)
        stack = np.stack([np.asarray(ch, dtype=np.float32) for ch in pair.channels])
        prob = superresolve(stack, model, tile=cfg.tile, device=dev, probabilities=True)
        hr = np.asarray(pair.hr)
        for sl in grid_crops(lr_shape, c):
            hsl = tuple(slice(alpha * s.start, alpha * s.stop) for s in sl)
            acc.add(prob[hsl], hr[hsl])
    return acc.fit()


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
        Binary LR only (1 channel) or with the diffusion channels (3 channels).
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
        The database lacks the train/val split, α, or diffusion channels; images smaller than
        one crop.
    ConfigError
        A checkpoint exists and ``resume`` is False; ``resume`` with a different config (the
        difference is shown); a bad ``init_from``.

    Notes
    -----
    Peak memory: the network's activations for one batch (≈ 4·channels·(α·crop)³·batch·~6
    bytes) plus the validation crops (uint8 HR) and one validation image's probabilities.
    """
    cfg = config if config is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"`config` must be a TrainConfig, got {type(cfg).__name__}")
    alpha = check_alpha(alpha)
    if inputs not in ("bin", "diffu"):
        raise ConfigError(f"`inputs` must be 'bin' or 'diffu', got {inputs!r}")
    db = database if isinstance(database, Database) else open_database(database)
    out = Path(out_dir)
    dev = resolve_device(device)
    in_ch = input_channels(inputs)
    crop, batch = cfg.crop_for(alpha), cfg.batch_for(alpha)
    train_pairs = db.pairs("train", alpha, inputs=inputs, targets=cfg.targets)
    val_pairs = db.pairs("val", alpha, inputs=inputs, targets=cfg.targets)
    phys = cfg.targets == "morph+diffu"

    def sampler_for(pairs: list[Any], stream: int, augment: bool) -> CropSampler:
        sols = [(p.hr_solution, p.hr_floating) for p in pairs] if phys else None
        return CropSampler([(p.channels, p.hr) for p in pairs], alpha=alpha, crop=crop,
                           rng=np.random.default_rng([cfg.seed, stream]), augment=augment,
                           solutions=sols, axis=db.axis)

    sampler = sampler_for(train_pairs, 1, True)
    val_sampler = sampler_for(val_pairs, 2, False)
    v_lr, v_hr = val_sampler.sample(cfg.val_crops)
    val = (v_lr, v_hr if phys else v_hr.astype(np.uint8))

    identity = {"alpha": alpha, "inputs": inputs, **cfg.model_dump()}
    if not phys and cfg.solution_weight == 1.0:  # keep checkpoints written before these fields
        identity.pop("targets")
        identity.pop("solution_weight")
    ckpt_path = out / CHECKPOINT
    net = _build_network(in_ch, alpha, cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict[str, Any]] = []
    best_val, best_epoch, bad_epochs, start_epoch = float("inf"), 0, 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    transferred: list[str] = []
    finished = False

    if ckpt_path.exists() and not resume:
        raise ConfigError(f"{out} already holds a training checkpoint; pass resume=True "
                          "(--resume) to continue it, or choose a new run folder")
    if resume and ckpt_path.exists():
        try:
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if ck.get("format") != CKPT_FORMAT:
                raise ValueError("not a twinsr checkpoint")
        except Exception as exc:
            raise BundleError(f"cannot read checkpoint {ckpt_path}: {exc}; delete it to start "
                              "over") from exc
        old = ck["identity"]
        if _jsonable(old) != _jsonable(identity):
            raise ConfigError(f"cannot resume {out} with a different configuration: "
                              f"{_config_diff(_jsonable(old), _jsonable(identity))}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sampler.set_state(ck["sampler_state"])
        torch.set_rng_state(ck["torch_rng"])
        history = list(ck["history"])
        best_val, best_epoch = float(ck["best_val"]), int(ck["best_epoch"])
        bad_epochs, start_epoch = int(ck["bad_epochs"]), int(ck["epoch"])
        best_state = ck["best_state"]
        transferred = list(ck.get("transferred", []))
        finished = bool(ck.get("finished", False))
        log.info("resuming %s after epoch %d", out, start_epoch)
    elif resume:
        log.info("no checkpoint in %s; starting a new run", out)
    if finished and (out / BUNDLE_NAME).exists():
        with contextlib.suppress(BundleError):
            done = load_model(out / BUNDLE_NAME, alpha=alpha, inputs=inputs)
            log.info("run %s is already complete; nothing to do", out)
            return TrainResult(bundle_path=out / BUNDLE_NAME, epochs_run=len(history),
                               best_epoch=best_epoch, best_val_loss=best_val,
                               stopped_early=bad_epochs >= cfg.patience,
                               threshold=done.threshold, history=history, seconds=0.0,
                               device=dev, transferred=tuple(transferred), run_dir=out)
    if init_from is not None and start_epoch == 0:
        src_state, src_alpha = _resolve_init(init_from)
        if src_alpha * 2 != alpha:
            log.warning("init_from has alpha=%d; transfer learning expects alpha/2=%d",
                        src_alpha, alpha // 2)
        transferred = transfer_weights(net, src_state)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    def loss_fn(o: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return combined_loss(o, t, solution_weight=cfg.solution_weight)

    use_amp = bool(cfg.amp and dev.startswith("cuda"))
    writer = None
    with contextlib.suppress(Exception):
        from torch.utils.tensorboard import SummaryWriter  # optional

        writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    old_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    t0 = time.perf_counter()
    stopped_early = bool(history) and bad_epochs >= cfg.patience
    try:
        net.train()
        epoch = start_epoch
        while not finished and not stopped_early and epoch < cfg.epochs:
            epoch += 1
            te = time.perf_counter()
            losses = []
            for step in range(1, cfg.steps_per_epoch + 1):
                x_np, y_np = sampler.sample(batch)
                x, y = torch.from_numpy(x_np).to(dev), torch.from_numpy(y_np).to(dev)
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    logits = net(x)
                loss = loss_fn(logits.float(), y)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                if progress is not None:
                    progress(epoch, step, losses[-1], None)
            vloss = _validation_loss(net, val, dev, loss_fn)
            improved = vloss < best_val - cfg.min_delta
            if improved:
                best_val, best_epoch, bad_epochs = vloss, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            else:
                bad_epochs += 1
            prev = history[-1]["seconds"] if history else 0.0
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                            "val_loss": vloss, "seconds": prev + time.perf_counter() - te,
                            "best": improved})
            if writer is not None:
                writer.add_scalar("loss/train", history[-1]["train_loss"], epoch)
                writer.add_scalar("loss/val", vloss, epoch)
            stopped_early = bad_epochs >= cfg.patience
            out_of_time = (cfg.max_seconds is not None
                           and time.perf_counter() - t0 > cfg.max_seconds)
            if out_of_time and not stopped_early and epoch < cfg.epochs:
                log.info("time budget of %.0f s reached after epoch %d", cfg.max_seconds, epoch)
            _save_checkpoint(ckpt_path, net, opt, sampler, identity, epoch, history, best_val,
                             best_epoch, bad_epochs, best_state, transferred, finished=False)
            _write_history(out / "history.csv", history)
            if progress is not None:
                progress(epoch, cfg.steps_per_epoch, history[-1]["train_loss"], vloss)
            log.info("epoch %d: train %.4f val %.4f%s", epoch, history[-1]["train_loss"], vloss,
                     " (best)" if improved else "")
            if out_of_time:
                break
    finally:
        if cfg.num_threads:
            torch.set_num_threads(old_threads)
        if writer is not None:
            writer.close()

    if best_state is not None:
        net.load_state_dict(best_state)
    thr = _fit_threshold(net, db, alpha, inputs, cfg, dev)
    seconds = time.perf_counter() - t0
    meta = {"config": cfg.model_dump(), "alpha": alpha, "inputs": inputs, "targets": cfg.targets,
            "database": str(db.path), "best_epoch": best_epoch, "best_val_loss": best_val,
            "epochs_run": len(history), "stopped_early": stopped_early,
            "transferred": transferred, "versions": package_versions(("twinsr", "torch", "numpy")),
            "git": git_hash(), "device": dev}
    if phys:
        meta["transport_axis"] = db.axis
    bundle = save_bundle(out / BUNDLE_NAME, net.cpu(), alpha=alpha, inputs=inputs, threshold=thr,
                         metadata=_jsonable(meta))
    net.to(dev)
    _save_checkpoint(ckpt_path, net, opt, sampler, identity, len(history), history, best_val,
                     best_epoch, bad_epochs, best_state, transferred, finished=True)
    result = TrainResult(bundle_path=bundle, epochs_run=len(history), best_epoch=best_epoch,
                         best_val_loss=best_val, stopped_early=stopped_early, threshold=thr,
                         history=history, seconds=seconds, device=dev,
                         transferred=tuple(transferred), run_dir=out)
    run_info = {**meta, "seed": cfg.seed, "threshold": thr, "seconds": seconds,
                "database_settings": db.settings,
                "result": {k: v for k, v in asdict(result).items() if k != "history"}}
    atomic_write_text(out / "run.json", json.dumps(_jsonable(run_info), indent=1))
    return result


def _save_checkpoint(path: Path, net: nn.Module, opt: torch.optim.Optimizer,
                     sampler: CropSampler, identity: dict[str, Any], epoch: int,
                     history: list[dict[str, Any]], best_val: float, best_epoch: int,
                     bad_epochs: int, best_state: dict[str, torch.Tensor] | None,
                     transferred: list[str], *, finished: bool) -> None:
    state = {
        "format": CKPT_FORMAT,
        "identity": _jsonable(identity),
        "model": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "optimizer": opt.state_dict(),
        "sampler_state": sampler.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": int(epoch),
        "history": history,
        "best_val": float(best_val),
        "best_epoch": int(best_epoch),
        "bad_epochs": int(bad_epochs),
        "best_state": best_state,
        "transferred": list(transferred),
        "finished": bool(finished),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
