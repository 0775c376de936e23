"""Experiment tracking with TensorBoard (opt-in).

Training writes TensorBoard scalars only when asked (``TrainConfig(tensorboard=True)``,
``twinsr train --tensorboard``): ``loss/train`` and ``loss/val`` per epoch into
``RUN/tensorboard/``; the run record ``run.json`` says whether it did (key ``"tensorboard"``).
Asking for it without the ``tensorboard`` package installed is an error before any work
(``pip install "twinsr[tensorboard]"``), never a silent no-op.

:func:`export_tensorboard` makes any finished run folder, or a whole study folder, readable by
TensorBoard after the fact: every training run's ``history.csv`` becomes one TensorBoard run
under a single log directory (``FOLDER/tensorboard/<run>``), so ::

    twinsr study --preset quick -o study --tensorboard     # or export_tensorboard("study")
    tensorboard --logdir study/tensorboard

shows the curves of all networks of the study side by side.

Examples
--------
>>> tensorboard_available() in (True, False)
True
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twinsr.exceptions import ConfigError

__all__ = ["LOG_DIR", "export_tensorboard", "require_tensorboard", "tensorboard_available",
           "tensorboard_writer", "training_runs"]

log = logging.getLogger(__name__)

#: Name of the TensorBoard log folder inside a run or study folder.
LOG_DIR = "tensorboard"
_INSTALL = 'install it with `pip install "twinsr[tensorboard]"` (or `pip install tensorboard`)'


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` (the ``tensorboard`` package) can be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


def require_tensorboard() -> None:
    """Raise :class:`~twinsr.exceptions.ConfigError` when TensorBoard is not installed."""
    if not tensorboard_available():
        raise ConfigError(f"TensorBoard logging was asked for, but the tensorboard package is not "
                          f"installed; {_INSTALL}, or train without it")


@contextlib.contextmanager
def tensorboard_writer(log_dir: str | os.PathLike[str] | None) -> Iterator[Any]:
    """A ``SummaryWriter`` on ``log_dir``, closed on exit; None when ``log_dir`` is None.

    Raises
    ------
    ConfigError
        ``log_dir`` is given but TensorBoard is not installed.
    """
    if log_dir is None:
        yield None
        return
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        yield writer
    finally:
        writer.close()


def training_runs(folder: str | os.PathLike[str]) -> list[Path]:
    """Training run folders (holding ``history.csv``) at or below ``folder``, sorted.

    >>> training_runs("/nonexistent")
    []
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    runs = {p.parent for p in root.rglob("history.csv") if LOG_DIR not in p.relative_to(root).parts}
    return sorted(runs)


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    try:
        return [{k: float(v) for k, v in r.items()} for r in rows]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path} is not a training history (epoch, train_loss, val_loss, ...): "
                          f"{exc}") from None


def export_tensorboard(folder: str | os.PathLike[str], *,
                       log_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write the loss curves of every training run under ``folder`` as TensorBoard scalars.

    Each run folder (one with a ``history.csv``: a training run, or a study's ``runs/*``)
    becomes one TensorBoard run named by its path relative to ``folder``, with scalars
    ``loss/train`` and ``loss/val`` per epoch (wall time from the history's ``seconds``,
    ending at the time the history was last written).
    The log folder is rewritten from scratch, so a rerun gives the same logs.

    Parameters
    ----------
    folder : path
        A training run folder or a study folder.
    log_dir : path, optional
        Where to write (default ``folder/tensorboard``); open it with
        ``tensorboard --logdir LOG_DIR``.

    Returns
    -------
    Path
        The log folder.

    Raises
    ------
    ConfigError
        No training run below ``folder``; TensorBoard is not installed; a damaged history.
    """
    root = Path(folder)
    runs = training_runs(root)
    if not runs:
        raise ConfigError(f"no training run (a folder with history.csv) at or below {root}; "
                          "give a run folder of `twinsr train` or a study folder")
    require_tensorboard()
    out = Path(log_dir) if log_dir is not None else root / LOG_DIR
    if out.exists():
        shutil.rmtree(out)
    for run in runs:
        name = run.relative_to(root).as_posix() if run != root else run.name
        rows = _read_history(run / "history.csv")
        # wall time: the history's cumulative seconds, ending when the history was last written
        start = (run / "history.csv").stat().st_mtime - (rows[-1].get("seconds", 0.0) if rows else 0)
        with tensorboard_writer(out / name) as writer:
            for r in rows:
                step = int(r["epoch"])
                wall = start + r.get("seconds", 0.0)
                writer.add_scalar("loss/train", r["train_loss"], step, walltime=wall)
                writer.add_scalar("loss/val", r["val_loss"], step, walltime=wall)
        log.info("tensorboard: %d epochs of %s -> %s", len(rows), run, out / name)
    return out
