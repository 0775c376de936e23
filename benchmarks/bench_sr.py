"""Benchmark of twinsr.sr: training / inference throughput and the quick preset's accuracy.

1. Training throughput (crops/s, Adam steps on random aligned crops) and peak memory on CPU for
   the ``quick`` (16 ch, 4 blocks) and ``paper`` (64 ch, 8 blocks) architectures at α = 2, 4, 8.
2. Inference throughput (output Mvoxel/s, tiled ``superresolve``) for both architectures.
3. Accuracy of the ``quick`` preset (α = 2 → 4 → 8 with transfer learning, as in the study)
   against the tri-quadratic interpolation peer (``twinsr.resample.upsample``) and scipy's
   ``map_coordinates(order=2)`` on the same aligned grid, on held-out twins and on a measured
   NMC crop. Run: ``.venv/bin/python benchmarks/bench_sr.py``.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import measure, table, write_section

from twinsr.resample import downsample, upsample
from twinsr.sr import (
    SRModel,
    SRResNet3d,
    TrainConfig,
    build_database,
    superresolve,
    train,
)
from twinsr.sr.data import CropSampler

THREADS = 2
NU, GAMMA = 1.386, 0.07  # solid fraction 0.5 (as nmc_nrel_xct), Gaussian covariance


def scipy_triquadratic(lr: np.ndarray, alpha: int) -> np.ndarray:
    """Peer: map_coordinates(order=2) of the LR image at HR coordinates i/α, threshold 0.5."""
    coef = ndimage.spline_filter(lr.astype(np.float64), order=2, mode="mirror")
    axes = [np.arange(alpha * s) / alpha for s in lr.shape]
    out = np.empty(tuple(alpha * s for s in lr.shape), dtype=np.uint8)
    yy, xx = np.meshgrid(axes[1], axes[2], indexing="ij")
    for i, z in enumerate(axes[0]):
        coords = np.stack([np.full_like(yy, z), yy, xx])
        out[i] = ndimage.map_coordinates(coef, coords, order=2, mode="mirror",
                                         prefilter=False) >= 0.5
    return out


def train_throughput(arch: str, alpha: int, crop: int, batch: int, steps: int) -> list:
    cfg = TrainConfig.preset(arch)
    torch.manual_seed(0)
    net = SRResNet3d(1, alpha, channels=cfg.channels, blocks=cfg.blocks, taper=cfg.taper)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n_lr = max(crop + 2, 40)
    rng = np.random.default_rng(0)
    hr = (rng.random((alpha * n_lr,) * 3) < 0.5).astype(np.uint8)
    sampler = CropSampler([([downsample(hr, alpha)], hr)], alpha=alpha, crop=crop, rng=0)

    def step() -> None:
        x, y = sampler.sample(batch)
        opt.zero_grad()
        loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()

    step()  # warm-up
    _, secs, peak = measure(lambda: [step() for _ in range(steps)])
    return [arch, alpha, f"{crop}³ → {alpha * crop}³", batch, steps * batch / secs, peak]


def infer_throughput(arch: str, alpha: int, n_lr: int, tile: int | None) -> list:
    cfg = TrainConfig.preset(arch)
    torch.manual_seed(0)
    net = SRResNet3d(1, alpha, channels=cfg.channels, blocks=cfg.blocks, taper=cfg.taper).eval()
    m = SRModel(net, alpha=alpha, inputs="bin", threshold=0.5)
    lr = (np.random.default_rng(1).random((n_lr,) * 3) < 0.5).astype(np.uint8)
    superresolve(lr[:8, :8, :8], m, device="cpu")
    out, secs, peak = measure(lambda: superresolve(lr, m, tile=tile, device="cpu"))
    return [arch, alpha, f"{n_lr}³ → {alpha * n_lr}³", tile or "auto", m.halo,
            out.size / secs / 1e6, peak]


def accuracy_rows(work: Path) -> tuple[list, list, float]:
    from twinsr.stochastic.excursion import ChiSquareModel

    model = ChiSquareModel(nu=NU, gamma=GAMMA, covariance="gaussian")
    t0 = time.perf_counter()
    db = build_database([model], work / "db", n_realizations=4, shape=128, alphas=(2, 4, 8),
                        split=(2, 1, 1), diffusion=False)
    t_db = time.perf_counter() - t0
    cfg = TrainConfig.preset("quick")
    from twinsr import datasets

    meas = datasets.load("nmc_nrel_xct")[:128, :128, :128]
    rows, train_rows = [], []
    prev = None
    for a in (2, 4, 8):
        res, secs, peak = measure(lambda a=a, prev=prev: train(
            db, alpha=a, inputs="bin", out_dir=work / f"run_a{a}", config=cfg, init_from=prev,
            device="cpu"))
        prev = work / f"run_a{a}"
        train_rows.append([a, res.epochs_run, res.best_epoch, res.best_val_loss, res.threshold,
                           len(res.transferred), secs, peak])
        cases = [("twin (test realization)", np.asarray(db.hr(db.entries("test")[0])))]
        cases.append(("measured nmc_nrel_xct[:128]³", meas))
        for label, hr in cases:
            lr = downsample(hr, a)
            sr = superresolve(lr, res.bundle_path, tile=32, device="cpu")
            tq = upsample(lr, a, method="triquadratic")
            sq = scipy_triquadratic(lr, a)
            acc = [float(np.mean(x == hr)) for x in (sr, tq, sq)]
            rows.append([a, label, acc[0], acc[1], acc[2], (1 - acc[1]) / (1 - acc[0])])
    return rows, train_rows, t_db


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(THREADS)
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_sr_"))
    try:
        q = TrainConfig.preset("quick")
        tr = [train_throughput("quick", a, q.crop_for(a), q.batch_for(a), 4) for a in (2, 4, 8)]
        tr += [train_throughput("paper", 2, 24, 2, 2), train_throughput("paper", 4, 24, 1, 1),
               train_throughput("paper", 8, 12, 1, 1)]
        inf = []
        for arch in ("quick", "paper"):  # tile None: from the memory budget (the default)
            inf += [infer_throughput(arch, 2, 64, None), infer_throughput(arch, 4, 32, None),
                    infer_throughput(arch, 8, 16, None)]
        acc, train_rows, t_db = accuracy_rows(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_start
    body = (
        f"CPU only, torch {torch.__version__} with {THREADS} threads (machine shared with other "
        "jobs, so times are upper bounds). Peak memory = RSS increase above the start.\n\n"
        "**Training throughput** (Adam steps on random aligned, augmented crops; batch as in the "
        "preset; the paper protocol's 24³ crops at α = 8 (192³ HR) are replaced by 12³ here to "
        "stay within the shared machine's memory)\n\n"
        + table(["arch", "α", "LR → HR crop", "batch", "crops/s", "peak GiB"], tr)
        + "\n\n**Inference throughput** (`superresolve` with its defaults: tile from the memory "
        "budget, precision \"auto\", binary output; random weights; the comparison with the "
        "previous path and bf16 agreement is in benchmarks/bench_infer.py)\n\n"
        + table(["arch", "α", "LR → HR", "tile", "halo", "output Mvoxel/s", "peak GiB"], inf)
        + f"\n\n**Quick preset vs tri-quadratic interpolation.** Database: one χ² model (ν = {NU},"
        f" γ = {GAMMA} voxel⁻¹, Gaussian covariance, solid fraction 0.5), 4 realizations of "
        f"128³ (2 train / 1 val / 1 test), built in {t_db:.1f} s. Networks trained α = 2 → 4 → 8 "
        "with transfer learning, inputs = bin.\n\n"
        + table(["α", "epochs", "best epoch", "best val BCE", "μ*", "layers transferred",
                 "train s", "peak GiB"], train_rows)
        + "\n\nAccuracy (share of voxels equal to the HR ground truth); ratio = error of "
        "twinsr's tri-quadratic / error of the network (> 1: the network is better). "
        "The scipy column is the peer `map_coordinates(order=2)` on the same aligned grid.\n\n"
        + table(["α", "volume", "network", "triquadratic (twinsr)", "triquadratic (scipy)",
                 "error ratio"], acc)
        + f"\n\nTotal benchmark time {total / 60:.1f} min."
    )
    write_section("sr", body, command=".venv/bin/python benchmarks/bench_sr.py")
    print(body)


if __name__ == "__main__":
    main()
