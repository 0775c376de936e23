"""Benchmark of scaling out: out-of-core super-resolution memory/time, and a database on a cluster.

1. **Out of core** (:func:`twinsr.scale.superresolve_zarr`, quick architecture — 16 channels,
   4 tapered blocks — at α = 2, untrained weights saved as a bundle; the weights do not change
   the cost): LR volumes of N³ (a smoothed-noise binary structure, stored as Zarr, read lazily)
   → (2N)³ HR Zarr. Each size runs in a fresh process: its wall time and its peak RSS (the
   process's own ``ru_maxrss``, torch and all) are recorded, so a flat peak across sizes shows
   the fixed budget. The output is compared with in-memory :func:`twinsr.sr.superresolve` of a
   central LR crop (same precision as the run chose), on the crop's interior (beyond the
   receptive-field halo, where the crop's own border cannot reach).
2. **Database on a LocalCluster**: ``build_database`` of 8 realizations of S³ (χ² model, α = 2,
   4, 8, diffusion channels), serial in a fresh process vs on a 2-worker LocalCluster
   (processes, one thread each): SHA-1 of every file compared, times and speed-up recorded.
   The machine has 2 cores shared with other jobs, so the speed-up may be below 1.

Run: ``flock /work/wt/_notes/heavy.lock .venv/bin/python benchmarks/bench_scale.py
[--sizes 128 256 512] [--db-shape 256] [--skip-db]``
(``--sizes`` with no value skips part 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import table, write_section

HERE = Path(__file__).resolve()


def make_lr(path: Path, n: int, seed: int = 0) -> None:
    """A binary N³ structure (smoothed noise > 0, ~50 % solid), written as Zarr slab by slab."""
    from scipy import ndimage

    from twinsr.io import create_zarr_array

    z = create_zarr_array(path, shape=(n, n, n), dtype=np.uint8, chunks=(64, 64, 64))
    rng = np.random.default_rng(seed)
    slab, pad = 64, 8
    noise_prev = rng.standard_normal((pad, n, n), dtype=np.float32)
    for z0 in range(0, n, slab):
        body = rng.standard_normal((min(slab, n - z0) + pad, n, n), dtype=np.float32)
        g = ndimage.gaussian_filter(np.concatenate([noise_prev, body]), 1.5, mode="wrap")
        z[z0:z0 + body.shape[0] - pad] = (g[pad:pad + body.shape[0] - pad] > 0).astype(np.uint8)
        noise_prev = body[-pad:]


def child_superresolve(lr_path: str, bundle: str, out: str, chunk: int) -> None:
    """Runs in a fresh process: out-of-core SR, then prints time and peak RSS as JSON."""
    import torch

    from twinsr.scale import superresolve_zarr

    torch.set_num_threads(2)
    t = time.perf_counter()
    superresolve_zarr(lr_path, bundle, out, chunk=chunk, device="cpu", workers=1)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": dt, "peak_bytes": peak}))


def crop_check(lr_path: Path, bundle: Path, out: Path, halo: int, edge: int = 48) -> float:
    """Share of equal voxels between the zarr output and in-memory SR of a central LR crop,
    on the crop's interior."""
    import zarr

    from twinsr.io import read_metadata
    from twinsr.sr import load_model, superresolve

    m = load_model(bundle)
    prec = read_metadata(out)["precision"]
    lr = zarr.open_array(str(lr_path), mode="r")
    n = lr.shape[0]
    e = min(edge + 2 * halo, n)
    c0 = (n - e) // 2
    crop = np.asarray(lr[c0:c0 + e, c0:c0 + e, c0:c0 + e])
    ref = superresolve(crop, m, device="cpu", precision=prec)
    a = m.alpha
    lo, hi = (halo if c0 > 0 else 0), (e - halo if c0 + e < n else e)
    got = np.asarray(zarr.open_array(str(out), mode="r")[
        a * (c0 + lo):a * (c0 + hi), a * (c0 + lo):a * (c0 + hi), a * (c0 + lo):a * (c0 + hi)])
    want = ref[a * lo:a * hi, a * lo:a * hi, a * lo:a * hi]
    return float((got == want).mean())


def bench_out_of_core(sizes: list[int], chunk: int, work: Path) -> str:
    import torch

    from twinsr.sr import SRResNet3d, save_bundle

    torch.manual_seed(0)
    net = SRResNet3d(1, 2, channels=16, blocks=4, taper=True).eval()
    bundle = save_bundle(work / "quick_a2.pt", net, alpha=2, inputs="bin", threshold=0.5)
    from twinsr.sr import load_model

    halo = load_model(bundle).halo
    rows = []
    for n in sizes:
        lr_path, out = work / f"lr{n}.zarr", work / f"sr{n}.zarr"
        t = time.perf_counter()
        make_lr(lr_path, n)
        print(f"LR {n}^3 made in {time.perf_counter() - t:.1f} s", flush=True)
        cmd = [sys.executable, str(HERE), "--child", str(lr_path), str(bundle), str(out),
               str(chunk)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "2"})
        info = json.loads(res.stdout.strip().splitlines()[-1])
        eq = crop_check(lr_path, bundle, out, halo)
        from twinsr.io import read_metadata

        prec = read_metadata(out)["precision"]
        vox = (2 * n) ** 3
        rows.append([f"{n}³ → {2 * n}³", prec, info["seconds"], vox / info["seconds"] / 1e6,
                     info["peak_bytes"] / 2**30, f"{100 * eq:.4f} %"])
        print(rows[-1], flush=True)
        shutil.rmtree(out)
        shutil.rmtree(lr_path)
    return table(["LR → HR (α = 2)", "precision", "time (s)", "M HR voxels/s",
                  "peak RSS (GiB)", "equal to in-memory (crop interior)"], rows) + \
        f"\n\nBlock edge {chunk} LR voxels (HR chunks {2 * chunk}³), halo {halo}, 1 block at a " \
        "time, torch 2 threads; untrained quick network (16 ch, 4 tapered blocks)."


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def child_database(out: str, shape: int, n: int) -> None:
    from twinsr.sr import build_database
    from twinsr.stochastic import ChiSquareModel

    t = time.perf_counter()
    build_database([ChiSquareModel(nu=1.4, gamma=0.3)], out, n_realizations=n, shape=shape,
                   diffusion=True, split=(n - 2, 1, 1), device="cpu")
    print(json.dumps({"seconds": time.perf_counter() - t}))


def bench_database(shape: int, n: int, work: Path) -> str:
    serial, cluster = work / "db_serial", work / "db_cluster"
    res = subprocess.run([sys.executable, str(HERE), "--child-db", str(serial), str(shape),
                          str(n)], capture_output=True, text=True, check=True)
    t_serial = json.loads(res.stdout.strip().splitlines()[-1])["seconds"]
    print(f"serial database: {t_serial:.1f} s", flush=True)
    from distributed import Client, LocalCluster

    from twinsr.sr import build_database
    from twinsr.stochastic import ChiSquareModel

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as lc, Client(lc) as client:
        client.run(lambda: None)
        t = time.perf_counter()
        build_database([ChiSquareModel(nu=1.4, gamma=0.3)], cluster, n_realizations=n,
                       shape=shape, diffusion=True, split=(n - 2, 1, 1), device="cpu",
                       client=client)
        t_cluster = time.perf_counter() - t
    d_s, d_c = _digests(serial), _digests(cluster)
    same = d_s == d_c
    print(f"cluster database: {t_cluster:.1f} s, identical: {same}", flush=True)
    rows = [["serial (1 process, torch/numba 2 threads)", t_serial, 1.0, len(d_s), "—"],
            ["LocalCluster (2 workers × 1 thread)", t_cluster, t_serial / t_cluster, len(d_c),
             "identical" if same else "DIFFERENT"]]
    return table(["build", "time (s)", "speed-up", "files", "bytes vs serial"], rows) + \
        f"\n\n{n} realizations of {shape}³ (χ² model ν = 1.4, γ = 0.3), α = 2, 4, 8, diffusion " \
        "channels; tasks: each entry's sampling, then its 3 solves, then its entry.json. " \
        "Cluster start-up is not in the time (the workers' first imports are)."


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child_superresolve(*sys.argv[2:5], int(sys.argv[5]))
        return
    if sys.argv[1:2] == ["--child-db"]:
        child_database(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 256, 512])
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--db-shape", type=int, default=256)
    ap.add_argument("--db-n", type=int, default=8)
    ap.add_argument("--skip-db", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="twinsr-bench-scale-"))
    command = "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:])
    try:  # two sections, so the two halves can run (and be rerun) separately
        if args.sizes:
            write_section("scale", "### Out-of-core super-resolution (quick architecture, "
                          "α = 2)\n\n" + bench_out_of_core(args.sizes, args.chunk, work),
                          command=command)
        if not args.skip_db:
            write_section("scale_db", "### Database on a 2-worker LocalCluster vs serial\n\n"
                          + bench_database(args.db_shape, args.db_n, work), command=command)
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
