"""Benchmark of CPU inference: today's plain float32 path against the fast engine, same run.

For the ``quick`` (16 channels, 4 blocks, tapered) and ``paper`` (64 channels, 8 blocks)
architectures at α = 2, 4, 8, on crops of the measured NMC volume (``nmc_nrel_xct``) and on a
held-out twin:

* **old**: the path of twinsr ≤ 0.x — 64³ LR tiles with the full halo, ``network.forward`` in
  float32 (contiguous layout), sigmoid, threshold (re-implemented here, 15 lines);
* **fp32** / **bf16**: :func:`twinsr.sr.superresolve` with ``precision="fp32"`` / ``"bf16"``
  (tiles from the memory budget, channels-last, fused tail), and what ``precision="auto"``
  chooses for that volume (:func:`twinsr.sr.engine.choose_precision`);
* output voxels/s, the achieved GFLOP/s (the network's convolution FLOPs per output voxel,
  :func:`twinsr.sr.runtime.conv_flops_per_output_voxel`) next to this machine's ``torch.matmul``
  GFLOP/s in float32 and bfloat16 measured in the same run, and the share of thresholded voxels
  equal to the old float32 result;
* the cost of test-time augmentation (tta = 8) for the quick network at α = 2.

The networks are trained briefly here unless ``--bundles DIR`` holds ``{quick,paper}_a{2,4,8}``
run folders (an untrained network gives probabilities near 0.5 that flip easily, so agreement
is only meaningful with trained weights). The machine may be shared: the load average is printed
with every case, and the ratios new/old come from the same run.

Run: ``.venv/bin/python benchmarks/bench_infer.py [--bundles DIR] [--quick-only] [--compile]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import measure, table, write_section

from twinsr import datasets
from twinsr.resample import downsample
from twinsr.sr import SRModel, TrainConfig, build_database, load_model, superresolve, train
from twinsr.sr.engine import bf16_agreement, choose_precision, probe_crop
from twinsr.sr.runtime import conv_flops_per_output_voxel, native_bf16

THREADS = 2
# LR edge per (architecture, α): ~14 M output voxels for quick, ~2-4 M for paper (a few s each;
# the NMC volume is 251 x 301 x 301)
SIZES = {("quick", 2): 120, ("quick", 4): 60, ("quick", 8): 30,
         ("paper", 2): 64, ("paper", 4): 40, ("paper", 8): 20}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def old_superresolve(lr: np.ndarray, model: SRModel, tile: int = 64) -> np.ndarray:
    """The previous inference path: fixed 64³ tiles + full halo, plain float32 forward."""
    a, halo, net = model.alpha, model.halo, model.network.eval()
    out = np.empty(tuple(a * s for s in lr.shape), np.uint8)
    with torch.inference_mode():
        for corner in itertools.product(*(range(0, s, tile) for s in lr.shape)):
            core = [(c, min(c + tile, s)) for c, s in zip(corner, lr.shape, strict=True)]
            ext = [(max(0, lo - halo), min(s, hi + halo))
                   for (lo, hi), s in zip(core, lr.shape, strict=True)]
            x = torch.from_numpy(lr[tuple(slice(*e) for e in ext)].astype(np.float32))[None, None]
            p = torch.sigmoid(net(x))[0, 0]
            keep = tuple(slice(a * (lo - elo), a * (hi - elo))
                         for (lo, hi), (elo, _) in zip(core, ext, strict=True))
            out[tuple(slice(a * lo, a * hi) for lo, hi in core)] = \
                (p[keep] >= model.threshold).numpy()
    return out


def get_bundles(where: Path | None, work: Path, archs: list[str]) -> tuple[dict, str]:
    """Trained models per (arch, α): from ``where``, else trained briefly in ``work``."""
    if where is not None:
        return ({(arch, a): load_model(where / f"{arch}_a{a}") for arch in archs
                 for a in (2, 4, 8)}, f"bundles from {where}")
    from twinsr.stochastic.excursion import ChiSquareModel

    db = build_database([ChiSquareModel(nu=1.386, gamma=0.07, covariance="gaussian")],
                        work / "db", n_realizations=4, shape=96, alphas=(2, 4, 8),
                        split=(2, 1, 1), diffusion=False)
    cfgs = {"quick": TrainConfig.preset("quick", max_seconds=120.0),
            "paper": TrainConfig.preset("paper", crop=8, batch_size=2, lr=5e-4,
                                        steps_per_epoch=10, epochs=30, val_crops=4,
                                        max_seconds=120.0, tile=16, patience=30)}
    models = {}
    for arch in archs:
        prev = None
        for a in (2, 4, 8):
            run = work / f"{arch}_a{a}"
            train(db, alpha=a, inputs="bin", out_dir=run, config=cfgs[arch], init_from=prev,
                  device="cpu")
            models[(arch, a)], prev = load_model(run), run
    return models, "trained here (quick preset / paper architecture, 120 s per network)"


def case(arch: str, a: int, m: SRModel, hr: np.ndarray, label: str) -> list:
    lr = downsample(hr, a)
    n_out = hr.size
    flops = conv_flops_per_output_voxel(m.network)
    superresolve(lr[:8, :8, :8], m, precision="bf16", device="cpu")  # warm-up (primitives)
    load_before = load()
    runs = {}
    for name, fn in (("old", lambda: old_superresolve(lr, m)),
                     ("fp32", lambda: superresolve(lr, m, precision="fp32", device="cpu")),
                     ("bf16", lambda: superresolve(lr, m, precision="bf16", device="cpu"))):
        c0 = time.process_time()
        out, secs, peak = measure(fn)
        runs[name] = (out, secs, (time.process_time() - c0) / THREADS, peak)
    auto = choose_precision("auto", m, lr.shape, lambda sl: [lr[sl]], device="cpu")
    probe = bf16_agreement(m, [lr[probe_crop(lr.shape, a)]], device="cpu")
    wall = [n_out / runs[k][1] / 1e6 for k in ("old", "fp32", "bf16")]
    cpu = [n_out / runs[k][2] / 1e6 for k in ("old", "fp32", "bf16")]
    old = runs["old"][0]
    return [arch, a, label, f"{lr.shape[0]}³→{hr.shape[0]}³",
            "/".join(f"{r:.3g}" for r in wall), "/".join(f"{r:.3g}" for r in cpu),
            f"{wall[1] / wall[0]:.1f}× / {wall[2] / wall[0]:.1f}×",
            f"{100 * np.mean(runs['fp32'][0] == old):.4f}",
            f"{100 * np.mean(runs['bf16'][0] == old):.4f}", f"{100 * probe:.4f} → {auto}",
            "/".join(f"{r * flops / 1e3:.0f}" for r in wall),
            "/".join(f"{runs[k][3]:.2f}" for k in ("old", "fp32", "bf16")),
            f"{load_before} · {load()}"]


def tta_rows(m: SRModel, hr: np.ndarray) -> list:
    lr = downsample(hr, 2)
    rows = []
    for tta in (1, 8):
        for prec in ("fp32", "bf16"):
            (_p, u), t, peak = measure(lambda tta=tta, prec=prec: superresolve(
                lr, m, probabilities=True, precision=prec, tta=tta,
                return_uncertainty=True, device="cpu") if tta > 1 else (superresolve(
                    lr, m, probabilities=True, precision=prec, device="cpu"), None))
            rows.append([tta, prec, f"{lr.shape[0]}³→{hr.shape[0]}³", f"{hr.size / t / 1e6:.3g}",
                         f"{t:.1f}", "-" if u is None else f"{float(u.mean()):.4f}",
                         f"{peak:.2f}", load()])
    return rows


def compile_rows(m: SRModel) -> list:
    """torch.compile of the fast network on one fixed 64³ LR input (eager vs compiled)."""
    from twinsr.sr.runtime import FastNetwork

    x = (torch.rand(1, 1, 64, 64, 64, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    rows = []
    for prec in ("fp32", "bf16"):
        fast = FastNetwork(m.network, precision=prec)

        def fwd(t: torch.Tensor, fast: FastNetwork = fast) -> torch.Tensor:
            return fast.upsample(fast.features(t))

        with torch.inference_mode():
            fwd(x)
            _, t_eager, _ = measure(lambda fwd=fwd: [fwd(x) for _ in range(3)])
            try:
                comp = torch.compile(fwd, dynamic=False)
                _, t_c, _ = measure(lambda comp=comp: comp(x))
                _, t_run, _ = measure(lambda comp=comp: [comp(x) for _ in range(3)])
                rows.append([prec, f"{t_eager / 3:.3f}", f"{t_run / 3:.3f}", f"{t_c:.0f}", load()])
            except Exception as exc:  # compile needs a C++ toolchain; report, do not fail
                rows.append([prec, f"{t_eager / 3:.3f}", f"failed: {type(exc).__name__}", "-",
                             load()])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", type=Path, default=None)
    ap.add_argument("--quick-only", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-record", action="store_true", help="print only, leave BENCHMARKS.md")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (checks the script only)")
    args = ap.parse_args()
    if args.smoke:
        for k in SIZES:
            SIZES[k] = max(8, SIZES[k] // 4)
    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    archs = ["quick"] if args.quick_only else ["quick", "paper"]
    work = Path(tempfile.mkdtemp(prefix="bench_infer_"))
    try:
        models, origin = get_bundles(args.bundles, work, archs)
        mm32, mm16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
        nmc = datasets.load("nmc_nrel_xct")
        rows: list = []
        for arch in archs:
            for a in (2, 4, 8):
                n = SIZES[(arch, a)] * a
                rows.append(case(arch, a, models[(arch, a)], nmc[:n, :n, :n], "NMC"))
                print(rows[-1], flush=True)
        from twinsr.stochastic.excursion import ChiSquareModel

        twin = ChiSquareModel(nu=1.386, gamma=0.07, covariance="gaussian").sample(
            (2 * SIZES[("quick", 2)],) * 3, rng=7)  # a fresh twin of the training model
        for arch in archs:
            n = 2 * SIZES[(arch, 2)]
            rows.append(case(arch, 2, models[(arch, 2)], twin[:n, :n, :n], "twin"))
            print(rows[-1], flush=True)
        n = SIZES[("quick", 2)]
        tta = tta_rows(models[("quick", 2)], nmc[:n, :n, :n])
        comp = compile_rows(models[("quick", 2)]) if args.compile else []
        mm_after = (matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = (
        f"CPU only, torch {torch.__version__}, {THREADS} threads; native bf16: "
        f"{native_bf16('cpu')}. Networks: {origin}. Machine shared with other jobs: the load "
        "average (1/5/15 min) is given before and after each case; compare the ratios of the same "
        f"row. `torch.matmul` 2048² in this run: **{mm32:.0f} GFLOP/s fp32, {mm16:.0f} GFLOP/s "
        f"bf16** (again at the end: {mm_after[0]:.0f} / {mm_after[1]:.0f}).\n\n"
        "**Throughput** (output Mvoxel/s, old / fp32 / bf16: old = 64³ tiles + halo, plain fp32 "
        "forward; fp32, bf16 = `superresolve(precision=...)`. *wall* = voxels per wall-clock "
        "second; *CPU* = voxels per (process CPU seconds / 2), what 2 dedicated cores would give "
        "if the run was slowed by other jobs. Speed-up = wall fp32/old and bf16/old. Agreement = "
        "share of thresholded voxels equal to the old fp32 output; probe = the bf16/fp32 "
        "agreement `precision=\"auto\"` measures on the central crop, and its choice; GFLOP/s = "
        "network conv FLOPs per output voxel × wall voxels/s; peak GiB above the start)\n\n"
        + table(["arch", "α", "volume", "LR→HR", "wall Mvox/s", "CPU Mvox/s", "speed-up",
                 "fp32 = old %", "bf16 = old %", "probe % → auto", "GFLOP/s", "peak GiB",
                 "load"], rows)
        + "\n\n**Test-time augmentation** (quick, α = 2, NMC crop, probabilities + uncertainty)"
          "\n\n"
        + table(["tta", "precision", "LR→HR", "Mvoxel/s", "s", "mean std", "peak GiB", "load"],
                tta)
        + ("\n\n**torch.compile** (quick α = 2, fixed 64³ LR input; seconds per forward)\n\n"
           + table(["precision", "eager s", "compiled s", "compile s", "load"], comp)
           if comp else "")
        + f"\n\nTotal benchmark time {(time.perf_counter() - t0) / 60:.1f} min."
    )
    if not args.no_record:
        write_section("infer", body, command=".venv/bin/python benchmarks/bench_infer.py")
    print(body)


if __name__ == "__main__":
    main()
