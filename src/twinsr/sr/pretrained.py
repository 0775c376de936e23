"""Pretrained models shipped with twinsr: listing, the card's checks and how a card is made.

:func:`pretrained_models` lists what ``twinsr models`` shows; :func:`check_reference_pair`
runs a bundle on its card's test input and compares with the stored output; :func:`evaluate`
scores a model against tri-quadratic interpolation on HR volumes (accuracy, surface accuracy,
relative errors of geodesic and effective τ; :mod:`twinsr.metrics`), the numbers a card
records; :func:`package_model` turns a training run into a shipped bundle + card + test pair
(used by ``tools/build_models.py``).

Examples
--------
>>> rows = pretrained_models()
>>> [r["name"] for r in rows if r["alpha"] == 8]
['nmc_bin_a8', 'nmc_diffu_a8']
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twinsr._atomic import atomic_path, atomic_write_text
from twinsr._provenance import package_versions
from twinsr.exceptions import BundleError
from twinsr.metrics import accuracy, surface_accuracy, tortuosity_errors
from twinsr.resample import downsample, upsample
from twinsr.sr.bundle import SRModel, load_model, save_bundle
from twinsr.sr.cards import (
    Evaluation,
    MethodScores,
    ModelCard,
    file_sha256,
    load_card,
    models_dir,
    pretrained_names,
    pretrained_path,
)
from twinsr.sr.infer import superresolve

__all__ = [
    "check_reference_pair",
    "evaluate",
    "package_model",
    "pretrained_models",
    "score",
]

#: Fraction of the test output's voxels allowed to differ (float round-off near μ*).
MAX_MISMATCH = 1e-3


def pretrained_models(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One row per shipped model: name, α, inputs, axis, μ*, size (bytes) and card summary.

    Raises
    ------
    BundleError
        A card that does not validate.
    """
    rows = []
    for name in pretrained_names(root):
        card = load_card(name, root=root)
        rows.append({"name": name, "alpha": card.alpha, "inputs": card.inputs,
                     "transport_axis": card.transport_axis, "threshold": card.threshold,
                     "size_bytes": card.weights.size_bytes, "description": card.description,
                     "summary": card.summary()})
    return rows


def _infer(lr: np.ndarray, model: SRModel, probabilities: bool = False) -> np.ndarray:
    out = superresolve(lr, model, device="cpu", precision="fp32", tta=1,
                       probabilities=probabilities)
    return np.asarray(out)


def check_reference_pair(name: str, *, root: str | os.PathLike[str] | None = None) -> float:
    """Run a pretrained model on its card's test input; the fraction of output voxels that differ.

    Parameters
    ----------
    name : str
        ``NAME`` or ``builtin:NAME``.
    root : path, optional
        Folder of the cards (default the shipped one).

    Returns
    -------
    float
        Mismatched fraction of the output (0 when reproduced exactly); the card's
        ``test.max_mismatch`` is the tolerance.

    Raises
    ------
    BundleError
        Unknown name, invalid card, weights or test file that do not match the card's SHA-256.
    """
    d = Path(root) if root is not None else models_dir()
    card = load_card(name, root=d)
    model = load_model(pretrained_path(card.name, root=d))
    pair = d / card.test.file
    if not pair.is_file() or file_sha256(pair) != card.test.sha256:
        raise BundleError(f"the test pair {pair} of built-in model {card.name!r} is missing or "
                          "does not match its card; reinstall twinsr")
    with np.load(pair, allow_pickle=False) as z:
        lr, want = z["input"], z["output"]
    got = _infer(lr, model)
    if got.shape != want.shape:
        raise BundleError(f"built-in model {card.name!r} gives shape {got.shape} on its test "
                          f"input, the card says {want.shape}")
    return float(np.count_nonzero(got != want) / want.size)


def score(sr: np.ndarray, hr: np.ndarray, alpha: int, *, axis: int = 0,
          reference: dict[str, Any] | None = None) -> dict[str, float]:
    """The four metrics of one output: accuracy, surface accuracy, mean relative τ errors.

    >>> hr = np.zeros((16, 16, 16), np.uint8); hr[:, :8] = 1
    >>> score(hr, hr, 2)["eff_rel_err"]
    0.0
    """
    tau = tortuosity_errors(sr, hr, axis=axis, reference=reference, device="cpu")
    return {"accuracy": accuracy(sr, hr), "surface_accuracy": surface_accuracy(sr, hr, alpha),
            "geod_rel_err": float(tau.geod_rel_err["mean"]),
            "eff_rel_err": float(tau.eff_rel_err["mean"])}


def _mean(rows: list[dict[str, float]]) -> MethodScores:
    keys = ("accuracy", "surface_accuracy", "geod_rel_err", "eff_rel_err")
    return MethodScores(**{k: float(np.mean([r[k] for r in rows])) if all(
        math.isfinite(r[k]) for r in rows) else math.inf for k in keys})


def evaluate(model: SRModel, volumes: Sequence[np.ndarray], *, data: str,
             axis: int = 0) -> Evaluation:
    """Score ``model`` and tri-quadratic interpolation on HR volumes (strided downsampling).

    Each HR volume is cropped to a multiple of α, downsampled (:func:`twinsr.resample.downsample`),
    super-resolved in float32 without TTA and upsampled tri-quadratically; the scores
    (:func:`score`) are averaged over the volumes.

    Parameters
    ----------
    model : SRModel
    volumes : sequence of numpy.ndarray, shape (Z, Y, X), binary (1 = solid)
    data : str
        What the volumes are (recorded in the card).
    axis : int
        Transport axis of the τ metrics.

    Returns
    -------
    Evaluation
    """
    from twinsr.metrics import phase_tortuosities

    a = model.alpha
    sr_rows, tq_rows, shape = [], [], None
    for hr in volumes:
        lr = downsample(hr, a, crop=True)
        hr = np.ascontiguousarray(hr[tuple(slice(0, s * a) for s in lr.shape)])
        shape = list(hr.shape)
        ref = phase_tortuosities(hr, axis=axis, device="cpu")
        sr_rows.append(score(_infer(lr, model), hr, a, axis=axis, reference=ref))
        tq_rows.append(score(upsample(lr, a, method="triquadratic"), hr, a, axis=axis,
                             reference=ref))
    if shape is None:
        raise BundleError("evaluate needs at least one HR volume")
    return Evaluation(data=data, volumes=len(volumes), hr_shape=shape, axis=axis,
                      sr=_mean(sr_rows), triquadratic=_mean(tq_rows))


def _write_pair(path: Path, model: SRModel, hr: np.ndarray, edge: int) -> dict[str, Any]:
    lr = downsample(hr, model.alpha, crop=True)
    lr = np.ascontiguousarray(lr[:edge, :edge, :edge]).astype(np.uint8)
    out = _infer(lr, model).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, input=lr, output=out)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return {"file": path.name, "sha256": file_sha256(path), "input_shape": list(lr.shape),
            "output_shape": list(out.shape), "max_mismatch": MAX_MISMATCH}


_INPUT_TEXT = {"bin": "binary LR only",
               "diffu": "binary LR + pore and solid diffusion channels"}

_LIMITS = [
    "Trained only on chi-square excursion-set twins calibrated on one NMC cathode X-ray CT "
    "volume (solid fraction about 0.5); other materials or very different morphologies need "
    "a network trained on their own twins (`twinsr study`).",
    "Expects a binary, segmented LR volume with 1 = solid and 0 = pore whose LR grid is the "
    "strided subsampling of the HR grid (hr[::alpha]); grey-value or block-averaged inputs are "
    "out of distribution.",
    "Trained with the CPU `quick` recipe (16 channels, 4 residual blocks, minutes of training): "
    "a small network; the card's metrics state how far it beats tri-quadratic interpolation.",
    "Tortuosity metrics are along one axis of small volumes (see hr_shape); errors on large "
    "volumes can differ.",
]


def _portable_metadata(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """The training metadata without the paths of the build machine."""
    keep = {k: v for k, v in meta.items() if k not in ("database", "git")}
    keep["pretrained_name"] = name
    return keep


def _training_block(meta: dict[str, Any], preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {"preset": preset, "overrides": dict(overrides), "config": meta["config"],
            "epochs_run": int(meta["epochs_run"]), "best_epoch": int(meta["best_epoch"]),
            "best_val_loss": float(meta["best_val_loss"]),
            "stopped_early": bool(meta["stopped_early"]),
            "transferred_from": meta.get("transferred_from"), "device": str(meta["device"]),
            "precision": str(meta["precision"])}


def package_model(run_dir: str | os.PathLike[str], *, name: str, dest: str | os.PathLike[str],
                  database: str | os.PathLike[str], twin_params: str | os.PathLike[str],
                  source: str, calibration: dict[str, Any], database_settings: dict[str, Any],
                  train_preset: str, train_overrides: dict[str, Any],
                  measured_crop: int = 128, transferred_from: str | None = None) -> ModelCard:
    """Write ``NAME.pt``, ``NAME.test.npz`` and ``NAME.yaml`` into ``dest`` from a training run.

    The bundle is re-saved with portable metadata; the card's metrics are :func:`evaluate` on
    the test split of ``database`` (held-out twins) and on the central ``measured_crop``³ block
    of the built-in volume ``source``; the test pair is the first 16 (α = 2, 4) or 8 (α = 8) LR
    voxels per axis of that block and the model's output.

    Returns
    -------
    ModelCard
        As written (validated).
    """
    import yaml

    from twinsr import datasets
    from twinsr.sr.database import open_database
    from twinsr.stochastic import load_model_file

    dest = Path(dest)
    model = load_model(run_dir)
    meta = _portable_metadata(model.metadata, name)
    meta["transferred_from"] = transferred_from
    weights = dest / f"{name}.pt"
    save_bundle(weights, model.network, spec=model.spec, metadata=meta)
    model = load_model(weights)
    db = open_database(database)
    axis = int(database_settings.get("axis", 0))
    twins = [db.hr(e) for e in db.entries("test")]
    measured = _central(datasets.load(source), measured_crop)
    metrics = {
        "held_out_twins": evaluate(model, twins, axis=axis, data=(
            f"{len(twins)} held-out test twins (database test split, never seen in training or "
            "validation)")),
        "measured": evaluate(model, [measured], axis=axis, data=(
            f"central {measured_crop}^3 block of the built-in measured volume {source} "
            "(downsampled by alpha, strided)")),
    }
    pair = _write_pair(dest / f"{name}.test.npz", model, measured, 8 if model.alpha == 8 else 16)
    twin = load_model_file(twin_params)
    card = ModelCard(
        name=name,
        description=(f"Super-resolution x{model.alpha} of binary NMC-cathode-like tomograms "
                     f"({_INPUT_TEXT[model.inputs]}), trained on chi-square digital twins"),
        tags=["super-resolution", "3d", "porous-media", "battery-electrode", "nmc", "binary",
              model.inputs],
        authors=["twinsr developers"], license="MIT", alpha=model.alpha, inputs=model.inputs,
        targets=model.targets, transport_axis=model.transport_axis, threshold=model.threshold,
        weights={"file": weights.name, "sha256": file_sha256(weights),
                 "size_bytes": weights.stat().st_size, "format_version": 2},
        test=pair,
        training_data={"source_volume": f"builtin:{source}",
                       "source_provenance": datasets.provenance(source),
                       "twin_family": twin.to_dict().get("model", "chi_square_excursion"),
                       "twin_parameters": twin.to_dict(), "calibration": calibration,
                       "database": database_settings},
        training=_training_block({**model.metadata, "transferred_from": transferred_from},
                                 train_preset, train_overrides),
        versions={k: str(v) for k, v in package_versions(("twinsr", "torch", "numpy")).items()},
        metrics=metrics,
        intended_use=(f"Apply to a segmented binary X-ray CT / FIB-SEM volume of an NMC-like "
                      f"battery cathode (solid fraction roughly 0.4-0.6) to obtain a x{model.alpha} "
                      "finer binary volume, e.g. for transport (tortuosity) calculations; as a "
                      "starting point for transfer learning to a similar material."),
        limitations=_LIMITS,
        references=["twinsr documentation: docs/concepts.md (twins, alpha, diffusion inputs, "
                    "metrics); model build script: tools/build_models.py"],
    )
    text = "# twinsr model card (schema: twinsr.sr.cards.ModelCard)\n" + yaml.safe_dump(
        card.model_dump(), sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(dest / f"{name}.yaml", text)
    return card


def _central(im: np.ndarray, edge: int) -> np.ndarray:
    sl = tuple(slice((s - min(s, edge)) // 2, (s - min(s, edge)) // 2 + min(s, edge))
               for s in im.shape)
    return np.ascontiguousarray(im[sl])
