"""Model bundles: one file holding weights, architecture, α, inputs, threshold μ* and metadata.

A bundle is ``torch.save`` of a plain dict (tensors, str, int, float, lists, dicts) with
``format = "twinsr-sr-bundle"`` and ``format_version``; it is loaded with ``weights_only=True``
(no pickled code is executed). A run folder written by :func:`twinsr.sr.train.train` holds its
bundle as ``model.pt``; :func:`load_model` accepts either the file or the run folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from twinsr._atomic import atomic_path
from twinsr.exceptions import BundleError, ConfigError
from twinsr.sr.network import SRResNet3d

__all__ = ["BUNDLE_NAME", "SRModel", "input_channels", "load_model", "resolve_bundle_path", "save_bundle"]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "twinsr-sr-bundle"
BUNDLE_VERSION = 1
BUNDLE_NAME = "model.pt"
INPUTS = ("bin", "diffu")


@dataclass
class SRModel:
    """A loaded super-resolution model.

    Attributes
    ----------
    network : SRResNet3d
        The network (eval mode), returning logits.
    alpha : int
        Scale factor.
    inputs : {"bin", "diffu"}
        Binary LR only, or binary LR + the two diffusion channels.
    threshold : float
        μ*: a voxel is solid when its probability is >= μ*.
    metadata : dict
        Training metadata (config, history summary, versions, ...).
    """

    network: SRResNet3d
    alpha: int
    inputs: str
    threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return self.network.in_channels

    @property
    def out_channels(self) -> int:
        """1 (solid logit) or 3 (logit + HR pore and solid solutions)."""
        return self.network.out_channels

    @property
    def halo(self) -> int:
        """Receptive-field bound of the network in LR voxels."""
        return self.network.halo

    def to(self, device: str) -> SRModel:
        self.network.to(device)
        return self


def _check_inputs(inputs: object) -> str:
    if inputs not in INPUTS:
        raise ConfigError(f"`inputs` must be 'bin' or 'diffu', got {inputs!r}")
    return str(inputs)


def input_channels(inputs: str) -> int:
    """Network input channels of an ``inputs`` kind: 1 for "bin", 3 for "diffu" (spec §2.1.4)."""
    return 1 if inputs == "bin" else 3


def save_bundle(
    path: str | os.PathLike[str],
    model: SRResNet3d,
    *,
    alpha: int,
    inputs: str,
    threshold: float,
    arch_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a model bundle atomically (one file) and return its path.

    Parameters
    ----------
    path : path
        Target file (conventionally ``model.pt``).
    model : SRResNet3d
        Network whose weights are stored (moved to CPU copies).
    alpha, inputs, threshold
        Scale factor, ``"bin"``/``"diffu"``, μ* in (0, 1).
    arch_kwargs : dict, optional
        Constructor arguments; default ``model.arch_kwargs()``.
    metadata : dict, optional
        JSON-like training metadata.

    Raises
    ------
    BundleError
        ``alpha``/``inputs`` disagree with the architecture, or μ* outside (0, 1).
    """
    inputs = _check_inputs(inputs)
    arch = dict(arch_kwargs if arch_kwargs is not None else model.arch_kwargs())
    if int(arch.get("scale", -1)) != int(alpha):
        raise BundleError(f"alpha={alpha} disagrees with the network's scale {arch.get('scale')}")
    want_c = input_channels(inputs)
    if int(arch.get("in_channels", -1)) != want_c:
        raise BundleError(f"inputs={inputs!r} needs in_channels={want_c}, "
                          f"the network has {arch.get('in_channels')}")
    if not 0.0 < float(threshold) < 1.0:
        raise BundleError(f"threshold must be in (0, 1), got {threshold}")
    payload = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "arch": arch,
        "alpha": int(alpha),
        "inputs": inputs,
        "threshold": float(threshold),
        "metadata": metadata or {},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def resolve_bundle_path(path: str | os.PathLike[str]) -> Path:
    """A bundle file, or the ``model.pt`` inside a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / BUNDLE_NAME
    if not p.exists():
        raise BundleError(f"no model bundle at {p}; pass a bundle file or a training run folder "
                          "containing model.pt (train one with `twinsr train`)")
    return p


def load_model(
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    alpha: int | None = None,
    inputs: str | None = None,
) -> SRModel:
    """Load a bundle written by :func:`save_bundle` (or a run folder holding ``model.pt``).

    Parameters
    ----------
    path : path
        Bundle file or run folder.
    device : str
        Where to put the network.
    alpha, inputs : optional
        If given, the bundle must match them (else :class:`BundleError`).

    Raises
    ------
    BundleError
        Missing, truncated or foreign file, unknown format version, weights that do not fit the
        stored architecture, or a mismatch with the requested ``alpha`` / ``inputs``.

    Examples
    --------
    >>> import tempfile, os
    >>> net = SRResNet3d(1, 2, channels=4, blocks=1)
    >>> p = save_bundle(os.path.join(tempfile.mkdtemp(), "m.pt"), net, alpha=2, inputs="bin",
    ...                 threshold=0.5)
    >>> load_model(p).alpha
    2
    """
    p = resolve_bundle_path(path)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(f"cannot read model bundle {p}: {type(exc).__name__}: {exc}. The file "
                          "is corrupt or not a twinsr bundle; retrain or copy it again") from exc
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{p} is not a twinsr model bundle (missing format tag "
                          f"{BUNDLE_FORMAT!r})")
    if payload.get("format_version") != BUNDLE_VERSION:
        raise BundleError(f"{p} has bundle format version {payload.get('format_version')}, this "
                          f"twinsr reads version {BUNDLE_VERSION}")
    try:
        arch = dict(payload["arch"])
        b_alpha = int(payload["alpha"])
        b_inputs = str(payload["inputs"])
        thr = float(payload["threshold"])
        net = SRResNet3d(int(arch.pop("in_channels")), int(arch.pop("scale")), **arch)
        net.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BundleError(f"model bundle {p} is inconsistent: {exc}") from exc
    if b_alpha != net.scale or input_channels(b_inputs) != net.in_channels:
        raise BundleError(f"model bundle {p} is inconsistent: alpha={b_alpha}, inputs={b_inputs!r}"
                          f" but the network has scale {net.scale}, {net.in_channels} channels")
    if alpha is not None and int(alpha) != b_alpha:
        raise BundleError(f"the model {p} super-resolves by alpha={b_alpha}, not alpha={alpha}; "
                          "use the bundle trained for that factor")
    if inputs is not None and inputs != b_inputs:
        raise BundleError(f"the model {p} expects inputs={b_inputs!r}, not {inputs!r}")
    net.eval().to(device)
    return SRModel(network=net, alpha=b_alpha, inputs=b_inputs, threshold=thr,
                   metadata=dict(payload.get("metadata") or {}))
