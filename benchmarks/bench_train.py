"""Benchmark of CPU training throughput of the quick architecture (issue: CPU training speed).

For α = 2, 4, 8, in one run (the machine is shared: compare the ratios of the same run):

1. crops/s of real training steps (``twinsr.sr.train`` with the quick preset's crops and batch):
   "before" = the settings of the previous release (float32, contiguous memory format) and
   "new" = the new defaults (``precision="auto"`` → bfloat16 on this CPU, channels-last 3-D);
   both draw crops on the main thread (the default on CPU: a prefetch thread was slower on 2
   cores); a third column runs the new defaults with a 2× batch. A step's time is read
   between the progress callbacks of the timed steps, so it includes sampling, forward,
   backward and Adam exactly as ``train`` runs them; the median step time over interleaved
   repetitions (the machine is shared) is reported.
2. achieved GFLOP/s of the convolutions (forward + backward ≈ 3× the forward FLOPs, counted from
   the layer shapes) next to this machine's measured ``torch.matmul`` GFLOP/s in float32 and in
   bfloat16 (2048² matrices) — the practical limit.
3. equal results: the float32 validation BCE on fixed held-out crops after N steps, for both
   settings from the same seeds (mean ± spread over the seeds), and the paired difference.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_train.py [--steps 30 --seeds 3]``.
Prints a table; ``--write`` also replaces the ``train`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import machine, table, write_section

from twinsr.sr import CropSampler, SRResNet3d, TrainConfig, build_database, train
from twinsr.sr.train import native_bf16

ALPHAS = (2, 4, 8)
BEFORE = {"precision": "fp32", "channels_last": False, "prefetch": 0}
NEW: dict[str, Any] = {}  # the defaults


class _Blobs:
    """Smoothed-noise twins (fast to build; the benchmark measures training, not the twins)."""

    def sample(self, shape: tuple[int, ...], *, rng: Any) -> np.ndarray:
        g = np.random.default_rng(rng).standard_normal(shape)
        return (ndimage.gaussian_filter(g, 3.0, mode="wrap") > 0).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "blobs", "sigma": 3.0}


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def conv_flops(alpha: int, crop: int, batch: int) -> float:
    """Forward FLOPs (2 per multiply-add) of the quick network's convolutions on one batch."""
    cfg = TrainConfig.preset("quick")
    net = SRResNet3d(1, alpha, channels=cfg.channels, blocks=cfg.blocks, taper=cfg.taper)
    total = [0.0]

    def hook(mod: torch.nn.Conv3d, inp: Any, out: torch.Tensor) -> None:
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
        total[0] += 2.0 * mod.in_channels * k * out.numel()

    for m in net.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(batch, 1, crop, crop, crop))
    return total[0]


def config(alpha: int, settings: dict[str, Any], *, steps: int, seed: int,
           batch_factor: int = 1) -> TrainConfig:
    q = TrainConfig.preset("quick")
    over = {"epochs": 1, "steps_per_epoch": steps, "val_crops": 2, "max_seconds": None,
            "seed": seed, "patience": 5, **settings}
    if batch_factor != 1:
        over["batch_per_alpha"] = {a: b * batch_factor for a, b in q.batch_per_alpha.items()}
    return TrainConfig.preset("quick", **over)


def timed_run(db: Any, alpha: int, cfg: TrainConfig, out: Path, warmup: int) -> np.ndarray:
    """Seconds of each step after ``warmup`` (between progress callbacks)."""
    stamps: list[float] = []

    def progress(epoch: int, step: int, loss: float, val: float | None) -> None:
        if val is None:
            stamps.append(time.perf_counter())

    train(db, alpha=alpha, out_dir=out, config=cfg, device="cpu", progress=progress)
    shutil.rmtree(out, ignore_errors=True)
    return np.diff(stamps[warmup - 1:])


def val_bce(bundle: Path, crops: tuple[np.ndarray, np.ndarray]) -> float:
    from twinsr.sr import load_model

    net = load_model(bundle).network.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(crops[0]))
        return float(torch.nn.functional.binary_cross_entropy_with_logits(
            out, torch.from_numpy(crops[1])))


def equal_results(db: Any, alpha: int, steps: int, seeds: int, tmp: Path) -> list[Any]:
    pairs = db.pairs("test", alpha)
    crop = TrainConfig.preset("quick").crop_for(alpha)
    crops = CropSampler([(p.channels, p.hr) for p in pairs], alpha=alpha, crop=crop, rng=123,
                        augment=False).sample(16)
    vals: dict[str, list[float]] = {"before": [], "new": [], "new2x": []}
    cases = (("before", BEFORE, steps, 1), ("new", NEW, steps, 1),
             ("new2x", NEW, max(1, steps // 2), 2))  # 2x batch, half the steps: the same crops
    for seed in range(seeds):
        for name, settings, n_steps, factor in cases:
            out = tmp / f"eq_{alpha}_{name}_{seed}"
            res = train(db, alpha=alpha, out_dir=out, device="cpu",
                        config=config(alpha, settings, steps=n_steps, seed=seed,
                                      batch_factor=factor))
            vals[name].append(val_bce(res.bundle_path, crops))
            shutil.rmtree(out, ignore_errors=True)
    b = np.array(vals["before"])

    def spread(v: np.ndarray) -> str:
        return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}"

    def paired(v: np.ndarray) -> str:
        d = v - b
        return f"{d.mean():+.4f} (min {d.min():+.4f}, max {d.max():+.4f})"

    n, n2 = np.array(vals["new"]), np.array(vals["new2x"])
    return [alpha, steps, seeds, spread(b), spread(n), paired(n), spread(n2), paired(n2)]


def throughput(db: Any, alpha: int, steps: int, reps: int, tmp: Path,
               peaks: dict[str, float]) -> list[Any]:
    """Median step time of each setting over ``reps`` interleaved runs of ``steps`` steps."""
    q = TrainConfig.preset("quick")
    crop, batch = q.crop_for(alpha), q.batch_for(alpha)
    cases = (("before", BEFORE, 1), ("new", NEW, 1), ("new2x", NEW, 2))
    times: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in cases}
    for _ in range(reps):  # interleaved, so a burst of load hits every setting alike
        for name, settings, factor in cases:
            cfg = config(alpha, settings, steps=steps + 3, seed=0, batch_factor=factor)
            times[name].append(timed_run(db, alpha, cfg, tmp / f"tp_{alpha}_{name}", warmup=3))
    per = {name: (float(np.median(np.concatenate(times[name]))), batch * factor)
           for name, _, factor in cases}
    flops = 3 * conv_flops(alpha, crop, batch)
    cps = {k: b / s for k, (s, b) in per.items()}
    gf_b, gf_n = flops / per["before"][0] / 1e9, flops / per["new"][0] / 1e9
    return [alpha, f"{crop}³ → {alpha * crop}³", batch, f"{cps['before']:.1f}",
            f"{cps['new']:.1f}", f"{cps['new'] / cps['before']:.2f}×",
            f"{cps['new2x']:.1f} ({cps['new2x'] / cps['before']:.2f}×)",
            f"{gf_b:.1f} ({100 * gf_b / peaks['fp32']:.0f} % of fp32 matmul)",
            f"{gf_n:.1f} ({100 * gf_n / peaks['bf16']:.0f} % of bf16 matmul)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="steps of the equal-results runs")
    ap.add_argument("--timed", type=int, default=8, help="timed steps per throughput run")
    ap.add_argument("--reps", type=int, default=3, help="interleaved runs per throughput case")
    ap.add_argument("--no-equal", action="store_true", help="skip the equal-results runs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alphas", default="2,4,8")
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = ap.parse_args()
    logging.getLogger("twinsr").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    alphas = [int(a) for a in args.alphas.split(",")]
    load0 = os.getloadavg()
    peaks = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    t0 = time.perf_counter()
    try:
        db = build_database([_Blobs()], tmp / "db", n_realizations=4, shape=96, alphas=alphas,
                            split=(2, 1, 1), diffusion=False)
        rows_t = [throughput(db, a, args.timed, args.reps, tmp, peaks) for a in alphas]
        rows_e = [] if args.no_equal else [equal_results(db, a, args.steps, args.seeds, tmp)
                                           for a in alphas]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    head = (f"{machine()}; torch {torch.__version__}, {args.threads} threads; native bf16: "
            f"{native_bf16()}; matmul 2048²: {peaks['fp32']:.0f} GFLOP/s fp32, "
            f"{peaks['bf16']:.0f} GFLOP/s bf16; load average {load0[0]:.2f} at start, "
            f"{load1[0]:.2f} at end; {time.perf_counter() - t0:.0f} s")
    t1 = table(["α", "crop (LR → HR)", "batch", "before crops/s", "new crops/s", "speed-up",
                "new, 2× batch crops/s", "GFLOP/s before", "GFLOP/s new"], rows_t)
    t2 = table(["α", "steps", "seeds", "val BCE before (fp32)", "val BCE new (bf16 defaults)",
                "new − before (paired)", "new, 2× batch, ½ steps", "2× batch − before"], rows_e)
    text = (f"{head}\n\nBefore: float32, contiguous. New: the defaults (precision auto = bf16 "
            f"here, channels_last_3d). Crops on the main thread in both.\n\n{t1}\n\n"
            f"Validation BCE (float32 forward, 16 fixed held-out crops) after the same steps "
            f"from the same seeds:\n\n{t2}\n")
    print(text)
    if args.write:
        write_section("train", text, command="PYTHONPATH=src .venv/bin/python "
                      "benchmarks/bench_train.py --write")


if __name__ == "__main__":
    main()
