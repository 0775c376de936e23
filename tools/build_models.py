"""Rebuild the pretrained model bundles shipped in ``twinsr/datasets/models/``.

Two stages, both resumable (a finished step is skipped when the script is run again):

``train``
    Calibrate the chi-square twin model (the paper's S₂ fit) on the central 224³ block of the
    built-in ``nmc_nrel_xct`` volume, build a database of twins (HR 128³, α = 2, 4, 8, diffusion
    channels along axis 0) and train the six networks N^{bin,α}, N^{diffu,α} with the ``quick``
    training preset (α = 4 and 8 start from the α/2 network, as in the study).
``package``
    Re-save each bundle with portable metadata, evaluate it on the held-out test twins and on a
    measured block of ``nmc_nrel_xct`` against tri-quadratic interpolation (accuracy, surface
    accuracy, relative errors of geodesic and effective τ), store a small test input/output pair
    and write its model card (:class:`twinsr.sr.cards.ModelCard`).

Usage (from the repository root)::

    PYTHONPATH=src python tools/build_models.py --work build/models            # both stages
    PYTHONPATH=src python tools/build_models.py --work build/models --stage package

The training is seeded, but CPU training is not bit-reproducible across machines and torch
versions (thread scheduling, kernels); the cards record the versions used.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from twinsr import datasets

SOURCE = "nmc_nrel_xct"
CALIBRATION_CROP = 224
SHAPE = 128
N_REALIZATIONS = 7
SPLIT = (4, 1, 2)
ALPHAS = (2, 4, 8)
INPUTS = ("bin", "diffu")
AXIS = 0
SEED = 0
TRAIN_PRESET = "quick"
TRAIN_OVERRIDES: dict[str, Any] = {"max_seconds": 200.0, "num_threads": 2}
MEASURED_CROP = 128

log = logging.getLogger("build_models")


def central_crop(im: np.ndarray, edge: int) -> np.ndarray:
    sl = tuple(slice((s - min(s, edge)) // 2, (s - min(s, edge)) // 2 + min(s, edge))
               for s in im.shape)
    return np.ascontiguousarray(im[sl])


def model_name(inputs: str, alpha: int) -> str:
    return f"nmc_{inputs}_a{alpha}"


def stage_train(work: Path) -> None:
    from twinsr.sr import TrainConfig, build_database, train
    from twinsr.stochastic import calibrate, load_model_file

    work.mkdir(parents=True, exist_ok=True)
    params = work / "params.json"
    if params.exists():
        twin = load_model_file(params)
    else:
        t0 = time.perf_counter()
        im = central_crop(datasets.load(SOURCE), CALIBRATION_CROP)
        res = calibrate(im, family="chi_square", objective="s2", seed=SEED)
        (work / "calibration.json").write_text(json.dumps(res.to_dict(), indent=1))
        res.model.to_json(params)
        twin = res.model
        log.info("calibrated %s in %.1f s: %s", SOURCE, time.perf_counter() - t0, twin.to_dict())
    t0 = time.perf_counter()
    db = build_database([twin], work / "database", n_realizations=N_REALIZATIONS, shape=SHAPE,
                        alphas=ALPHAS, split=SPLIT, seed=SEED, axis=AXIS, diffusion=True)
    log.info("database ready (%.1f s)", time.perf_counter() - t0)
    cfg = TrainConfig.preset(TRAIN_PRESET, **TRAIN_OVERRIDES)
    for inputs in INPUTS:
        prev = None
        for a in ALPHAS:
            out = work / "runs" / model_name(inputs, a)
            t0 = time.perf_counter()
            res = train(db, alpha=a, inputs=inputs, out_dir=out, config=cfg, init_from=prev,
                        resume=True, device="cpu")
            log.info("trained %s: %d epochs, best val %.4f, mu* %.3f (%.0f s)", out.name,
                     res.epochs_run, res.best_val_loss, res.threshold, time.perf_counter() - t0)
            prev = out


def stage_package(work: Path, dest: Path) -> None:
    from twinsr.sr.pretrained import package_model

    dest.mkdir(parents=True, exist_ok=True)
    db_path = work / "database"
    for inputs in INPUTS:
        for a in ALPHAS:
            name = model_name(inputs, a)
            t0 = time.perf_counter()
            card = package_model(
                work / "runs" / name, name=name, dest=dest, database=db_path,
                twin_params=work / "params.json", source=SOURCE,
                calibration={"crop": CALIBRATION_CROP, "family": "chi_square", "objective": "s2",
                             "seed": SEED},
                database_settings={"shape": SHAPE, "n_realizations": N_REALIZATIONS,
                                   "split": list(SPLIT), "alphas": list(ALPHAS), "axis": AXIS,
                                   "seed": SEED},
                train_preset=TRAIN_PRESET, train_overrides=TRAIN_OVERRIDES,
                measured_crop=MEASURED_CROP,
                transferred_from=model_name(inputs, a // 2) if a > 2 else None)
            log.info("packaged %s (%.0f s): %s", name, time.perf_counter() - t0,
                     card.summary())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("build/models"),
                    help="working folder (database, training runs)")
    ap.add_argument("--dest", type=Path,
                    default=Path(__file__).resolve().parents[1] / "src/twinsr/datasets/models",
                    help="where the bundles, cards and test pairs are written")
    ap.add_argument("--stage", choices=("all", "train", "package"), default="all")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.stage in ("all", "train"):
        stage_train(args.work)
    if args.stage in ("all", "package"):
        stage_package(args.work, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
