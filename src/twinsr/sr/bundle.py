"""Model bundles: one file holding weights, architecture, the model's spec and metadata.

A bundle is ``torch.save`` of a plain dict (tensors, str, int, float, lists, dicts) with
``format = "twinsr-sr-bundle"`` and ``format_version``; it is loaded with ``weights_only=True``
(no pickled code is executed). A run folder written by :func:`twinsr.sr.train.train` holds its
bundle as ``model.pt``; :func:`load_model` accepts either the file or the run folder.

Every bundle carries a :class:`ModelSpec`, the typed record of what the model expects and
returns (α, inputs, targets, transport axis, channels, crop, normalisation, μ*). It is read by
training (resume, transfer), :func:`twinsr.sr.superresolve`, :func:`twinsr.scale.superresolve_zarr`
and the CLI, so that e.g. a diffusion-input model is always fed channels solved along the axis it
was trained on.

Every bundle written since format version 2 also stores a SHA-256 of its contents (tensors, spec,
architecture, metadata; :func:`bundle_digest`), checked on load: a damaged file is a
:class:`~twinsr.exceptions.BundleError`, never a silently different network.

Format versions: 2 (this one) stores the spec under ``"spec"``. Version 1 (no spec) is still
read: its spec is derived from the stored α, inputs and μ*, the metadata's ``targets`` and
``config`` (crop), and its ``transport_axis`` when recorded; a version-1 diffusion-input bundle
without a recorded axis is assumed to use axis 0 (the default of the versions that wrote it), with
a :class:`~twinsr.exceptions.ModelWarning` saying so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from twinsr._atomic import atomic_path
from twinsr._validation import check_axis
from twinsr.exceptions import BundleError, ConfigError, ModelWarning, TwinsrError
from twinsr.sr.cards import builtin_name, pretrained_path
from twinsr.sr.network import SRResNet3d
from twinsr.sr.targets import target_kind, target_kinds

__all__ = [
    "BUNDLE_NAME",
    "BUNDLE_VERSION",
    "INPUTS",
    "ModelSpec",
    "SRModel",
    "bundle_digest",
    "input_channels",
    "load_model",
    "resolve_bundle_path",
    "save_bundle",
]

BUNDLE_FORMAT = "twinsr-sr-bundle"
BUNDLE_VERSION = 2
READABLE_VERSIONS = (1, 2)
BUNDLE_NAME = "model.pt"
INPUTS = ("bin", "diffu")
_INPUT_NAMES = {"bin": ("binary",), "diffu": ("binary", "pore_solution", "solid_solution")}


def _check_inputs(inputs: object) -> str:
    if inputs not in INPUTS:
        raise ConfigError(f"`inputs` must be 'bin' or 'diffu', got {inputs!r}")
    return str(inputs)


def input_channels(inputs: str) -> int:
    """Network input channels of an ``inputs`` kind: 1 for "bin", 3 for "diffu" (spec §2.1.4).

    Examples
    --------
    >>> input_channels("diffu")
    3
    """
    return len(_INPUT_NAMES[_check_inputs(inputs)])


@dataclass(frozen=True)
class ModelSpec:
    """What a super-resolution model expects and returns.

    Attributes
    ----------
    alpha : {2, 4, 8}
        Scale factor per axis.
    inputs : {"bin", "diffu"}
        Binary LR only, or binary LR + the pore and solid diffusion channels.
    threshold : float
        μ* in (0, 1): a voxel is solid when its probability is >= μ*.
    targets : str
        Target kind it was trained on (:mod:`twinsr.sr.targets`), ``"morph"`` or
        ``"morph+diffu"``.
    transport_axis : int or None
        Axis along which its diffusion channels are solved: the LR input channels (``"diffu"``)
        and/or the predicted HR solution (``"morph+diffu"``). None when neither applies.
    crop : int or None
        LR crop edge it was trained on (None if unknown); inference works at any size.
    in_channels, out_channels : int
        Derived from ``inputs`` and ``targets``.
    input_names, output_names : tuple of str
        One name per channel, e.g. ``("binary", "pore_solution", "solid_solution")``; output
        channel 0 is always the solid logit.
    solid_value : int
        The binary channel's solid label (1; pore is 0). Inputs are float32.
    channel_range : (float, float)
        Every input channel lies in this range: binary 0/1, diffusion solutions in [0, 1] with
        u = 0 on the inlet face and u = 1 on the outlet face along ``transport_axis``, 0 outside
        the channel's phase and on floating clusters (:func:`twinsr.transport.diffusion_channels`).

    Raises
    ------
    ConfigError
        Bad α, inputs, targets, threshold or crop; a missing ``transport_axis`` where it is
        needed, or one given where it has no meaning.

    Examples
    --------
    >>> s = ModelSpec(alpha=2, inputs="diffu", threshold=0.5, transport_axis=1)
    >>> s.in_channels, s.out_channels, s.resolve_axis(None)
    (3, 1, 1)
    """

    alpha: int
    inputs: str
    threshold: float
    targets: str = "morph"
    transport_axis: int | None = None
    crop: int | None = None
    in_channels: int = field(init=False)
    out_channels: int = field(init=False)
    input_names: tuple[str, ...] = field(init=False)
    output_names: tuple[str, ...] = field(init=False)
    solid_value: int = field(init=False, default=1)
    channel_range: tuple[float, float] = field(init=False, default=(0.0, 1.0))

    def __post_init__(self) -> None:
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, int) or a not in (2, 4, 8):
            raise ConfigError(f"`alpha` must be 2, 4 or 8, got {a!r}")
        inputs = _check_inputs(self.inputs)
        kind = target_kind(self.targets)
        thr = self.threshold
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0.0 < thr < 1.0:
            raise ConfigError(f"threshold must be in (0, 1) (the fitted μ*), got {thr!r}")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, int)
                                      or self.crop < 1):
            raise ConfigError(f"`crop` must be a positive integer (LR voxels) or None, "
                              f"got {self.crop!r}")
        needs_axis = inputs == "diffu" or kind.needs_hr_solution
        axis = self.transport_axis
        if needs_axis and axis is None:
            raise ConfigError(
                f"a model with inputs={inputs!r} and targets={kind.name!r} needs "
                "`transport_axis`: the axis (0, 1 or 2) its diffusion channels were solved "
                "along in training (the database's --axis)")
        if not needs_axis and axis is not None:
            raise ConfigError(
                f"`transport_axis` has no meaning for a model with inputs='bin' and "
                f"targets={kind.name!r} (it neither reads nor predicts diffusion channels); "
                "leave it None")
        set_ = object.__setattr__
        set_(self, "threshold", float(thr))
        set_(self, "transport_axis", None if axis is None else check_axis(axis))
        set_(self, "in_channels", input_channels(inputs))
        set_(self, "out_channels", kind.out_channels)
        set_(self, "input_names", _INPUT_NAMES[inputs])
        set_(self, "output_names", tuple(kind.output_names))

    def resolve_axis(self, axis: int | None) -> int | None:
        """The transport axis to use at inference: the model's, unless ``axis`` is given.

        Parameters
        ----------
        axis : int or None
            Requested axis; None means "the model's axis".

        Returns
        -------
        int or None
            :attr:`transport_axis` (or ``axis`` for a model without one).

        Raises
        ------
        ConfigError
            ``axis`` disagrees with :attr:`transport_axis`.
        """
        if axis is None:
            return self.transport_axis
        ax = check_axis(axis)
        if self.transport_axis is not None and ax != self.transport_axis:
            raise ConfigError(
                f"the model's diffusion channels are solved along axis {self.transport_axis} "
                f"(it was trained that way) but axis={ax} was requested; leave the axis unset "
                f"(or pass axis={self.transport_axis}) to use the model's axis, or use a model "
                f"trained on a database built with --axis {ax}")
        return ax

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (all fields, derived ones included)."""
        return {"alpha": self.alpha, "inputs": self.inputs, "threshold": self.threshold,
                "targets": self.targets, "transport_axis": self.transport_axis,
                "crop": self.crop, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "input_names": list(self.input_names),
                "output_names": list(self.output_names), "solid_value": self.solid_value,
                "channel_range": list(self.channel_range)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict` (derived fields are recomputed and must agree).

        Raises
        ------
        ConfigError
            Missing or bad fields, or derived fields that disagree.
        """
        try:
            spec = cls(alpha=data["alpha"], inputs=data["inputs"], threshold=data["threshold"],
                       targets=data.get("targets", "morph"),
                       transport_axis=data.get("transport_axis"), crop=data.get("crop"))
        except KeyError as exc:
            raise ConfigError(f"model spec lacks the field {exc}") from None
        full = spec.to_dict()
        bad = [k for k in full if k in data and _norm(data[k]) != _norm(full[k])]
        if bad:
            raise ConfigError("model spec fields disagree with its inputs/targets: " + ", ".join(
                f"{k}={data[k]!r} (expected {full[k]!r})" for k in bad))
        return spec


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _default_targets(out_channels: int) -> str:
    """The target kind of a network with ``out_channels`` outputs (when unique)."""
    fits = [k for k in target_kinds() if target_kind(k).out_channels == out_channels]
    if len(fits) != 1:
        raise ConfigError(f"a network with {out_channels} output channels fits the target kinds "
                          f"{fits}; pass targets=... explicitly")
    return fits[0]


class SRModel:
    """A super-resolution network with its :class:`ModelSpec` (loaded or built by hand).

    Parameters
    ----------
    network : SRResNet3d
        The network, returning logits (put in eval mode).
    alpha, inputs : optional
        Default the network's scale and ``"bin"``/``"diffu"`` from its input channels.
    threshold : float
        μ* in (0, 1).
    targets : str, optional
        Default the only target kind with the network's output channels.
    transport_axis : int, optional
        Needed for ``inputs="diffu"`` and solution targets (see :class:`ModelSpec`).
    crop : int, optional
        LR crop edge of training.
    metadata : dict, optional
        Training metadata (config, history summary, versions, ...).
    spec : ModelSpec, optional
        Instead of ``alpha`` ... ``crop``.

    Raises
    ------
    ConfigError
        The spec does not fit the network (α, channels), or both ``spec`` and single fields.

    Examples
    --------
    >>> m = SRModel(SRResNet3d(1, 2, channels=4, blocks=1), threshold=0.4)
    >>> m.alpha, m.inputs, m.targets, m.transport_axis
    (2, 'bin', 'morph', None)
    """

    def __init__(
        self,
        network: SRResNet3d,
        *,
        alpha: int | None = None,
        inputs: str | None = None,
        threshold: float | None = None,
        targets: str | None = None,
        transport_axis: int | None = None,
        crop: int | None = None,
        metadata: dict[str, Any] | None = None,
        spec: ModelSpec | None = None,
    ) -> None:
        if not isinstance(network, SRResNet3d):
            raise ConfigError(f"`network` must be an SRResNet3d, got {type(network).__name__}")
        fields = {"alpha": alpha, "inputs": inputs, "threshold": threshold, "targets": targets,
                  "transport_axis": transport_axis, "crop": crop}
        if spec is not None:
            given = [k for k, v in fields.items() if v is not None]
            if given:
                raise ConfigError(f"give either `spec` or {', '.join(given)}, not both")
        else:
            if threshold is None:
                raise ConfigError("an SRModel needs `threshold` (μ* in (0, 1), the bundle's "
                                  "fitted value; 0.5 if unknown)")
            spec = ModelSpec(
                alpha=network.scale if alpha is None else alpha,
                inputs=("bin" if network.in_channels == 1 else "diffu") if inputs is None
                else inputs,
                threshold=threshold,
                targets=_default_targets(network.out_channels) if targets is None else targets,
                transport_axis=transport_axis, crop=crop)
        _check_fits(spec, network)
        self.network = network.eval()
        self.spec = spec
        self.metadata: dict[str, Any] = dict(metadata or {})

    alpha = property(lambda self: self.spec.alpha, doc="Scale factor α.")
    inputs = property(lambda self: self.spec.inputs, doc='"bin" or "diffu".')
    threshold = property(lambda self: self.spec.threshold, doc="μ*: solid where p >= μ*.")
    targets = property(lambda self: self.spec.targets, doc="Target kind trained on.")
    transport_axis = property(lambda self: self.spec.transport_axis,
                              doc="Axis of the diffusion channels (None if not used).")

    @property
    def in_channels(self) -> int:
        """1 (binary LR) or 3 (binary LR + two diffusion channels)."""
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
        """Move the network to ``device`` (in place) and return self."""
        self.network.to(device)
        return self

    def __repr__(self) -> str:
        return f"SRModel({self.spec!r})"


def _check_fits(spec: ModelSpec, net: SRResNet3d) -> None:
    if (spec.alpha, spec.in_channels, spec.out_channels) != (net.scale, net.in_channels,
                                                             net.out_channels):
        raise ConfigError(
            f"the model spec (alpha={spec.alpha}, inputs={spec.inputs!r} -> "
            f"{spec.in_channels} channel(s), targets={spec.targets!r} -> {spec.out_channels} "
            f"output(s)) does not fit the network (scale {net.scale}, {net.in_channels} input "
            f"and {net.out_channels} output channel(s))")


def save_bundle(
    path: str | os.PathLike[str],
    model: SRResNet3d,
    *,
    alpha: int | None = None,
    inputs: str | None = None,
    threshold: float | None = None,
    targets: str | None = None,
    transport_axis: int | None = None,
    crop: int | None = None,
    spec: ModelSpec | None = None,
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
    alpha, inputs, threshold, targets, transport_axis, crop
        The :class:`ModelSpec` fields (``alpha``/``inputs``/``targets`` default from the network);
        or pass ``spec``.
    spec : ModelSpec, optional
        The whole spec.
    arch_kwargs : dict, optional
        Constructor arguments; default ``model.arch_kwargs()``.
    metadata : dict, optional
        JSON-like training metadata.

    Raises
    ------
    BundleError
        The spec disagrees with the architecture or is invalid (μ* outside (0, 1), a missing
        transport axis, ...).

    Notes
    -----
    The same network, spec and metadata always give the same bytes (a bundle can be pinned by
    its hash). Peak memory: about twice the size of the weights (the file is serialised in
    memory first).

    Examples
    --------
    >>> import tempfile
    >>> p = save_bundle(os.path.join(tempfile.mkdtemp(), "m.pt"),
    ...                 SRResNet3d(3, 2, channels=4, blocks=1), threshold=0.5, transport_axis=2)
    >>> load_model(p).spec.transport_axis
    2
    """
    arch = dict(arch_kwargs if arch_kwargs is not None else model.arch_kwargs())
    if alpha is not None and int(arch.get("scale", -1)) != int(alpha):
        raise BundleError(f"alpha={alpha} disagrees with the network's scale {arch.get('scale')}")
    if inputs is not None:
        want_c = input_channels(inputs)
        if int(arch.get("in_channels", -1)) != want_c:
            raise BundleError(f"inputs={inputs!r} needs in_channels={want_c}, "
                              f"the network has {arch.get('in_channels')}")
    try:
        spec = SRModel(model, alpha=alpha, inputs=inputs, threshold=threshold, targets=targets,
                       transport_axis=transport_axis, crop=crop, spec=spec).spec
    except ConfigError as exc:
        raise BundleError(f"cannot save the bundle {path}: {exc}") from None
    payload: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "arch": arch,
        "spec": spec.to_dict(),
        "metadata": metadata or {},
    }
    payload[_DIGEST_KEY] = bundle_digest(payload)
    path = Path(path)
    # serialised in memory: torch.save names the archive inside the file after the file it
    # writes, so saving straight to atomic_path's random temporary name would give different
    # bytes for the same bundle every time; from a buffer the bytes depend on the contents only
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


_DIGEST_KEY = "sha256"
_DIGESTED = ("format", "format_version", "arch", "spec", "metadata")


def bundle_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of a bundle's contents: every tensor (name, dtype, shape, bytes) and the JSON of
    its format, architecture, spec and metadata.

    Stored in every bundle under ``"sha256"`` and checked by :func:`load_model`: torch's file
    format carries no checksum of the tensor data, so without it a flipped bit inside the
    weights would load silently as a different network.

    Raises
    ------
    TypeError, ValueError, KeyError
        A payload without a ``state_dict`` mapping of tensors (the caller reports the file).
    """
    h = hashlib.sha256()
    for name, t in sorted(payload["state_dict"].items()):
        t = t.detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    rest = {k: payload.get(k) for k in _DIGESTED}
    h.update(json.dumps(rest, sort_keys=True, default=repr).encode())
    return h.hexdigest()


def resolve_bundle_path(path: str | os.PathLike[str]) -> Path:
    """A bundle file, the ``model.pt`` inside a run folder, or a pretrained ``builtin:NAME``.

    ``builtin:NAME`` is the bundle shipped with twinsr (:mod:`twinsr.sr.cards`), checked
    against the SHA-256 of its model card first.

    Raises
    ------
    BundleError
        ``path`` is not a path, no bundle is there, an unknown built-in name (the message lists
        the names), or built-in weights that do not match their card.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise BundleError(f"a model must be an SRModel, a bundle file, a training run folder or "
                          f"builtin:NAME; got {type(path).__name__}")
    name = builtin_name(path)
    if name is not None:
        return pretrained_path(name)
    p = Path(path)
    if p.is_dir():
        p = p / BUNDLE_NAME
    if not p.exists():
        raise BundleError(f"no model bundle at {p}; pass a bundle file or a training run folder "
                          "containing model.pt (train one with `twinsr train`)")
    return p


def _v1_spec(payload: dict[str, Any], net: SRResNet3d, p: Path) -> ModelSpec:
    """The spec of a format-1 bundle, derived from its fields and metadata."""
    meta = dict(payload.get("metadata") or {})
    alpha, inputs = int(payload["alpha"]), str(payload["inputs"])
    targets = str(meta.get("targets") or _default_targets(net.out_channels))
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    per = cfg.get("crop_per_alpha") or {}
    crop = per.get(str(alpha), per.get(alpha, cfg.get("crop")))
    axis = meta.get("transport_axis")
    if axis is None and (inputs == "diffu" or target_kind(targets).needs_hr_solution):
        axis = 0
        warnings.warn(
            f"model bundle {p} (format version 1) does not record the transport axis of its "
            "diffusion channels; assuming axis 0, the default of the twinsr versions that wrote "
            "it. If it was trained on a database built with another --axis, re-save it with "
            "save_bundle(..., transport_axis=N)", ModelWarning, stacklevel=3)
    return ModelSpec(alpha=alpha, inputs=inputs, threshold=float(payload["threshold"]),
                     targets=targets, transport_axis=axis,
                     crop=int(crop) if crop is not None else None)


def _read_payload(p: Path) -> dict[str, Any]:
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; all mean "unreadable"
        raise BundleError(f"cannot read model bundle {p}: {type(exc).__name__}: {exc}. The file "
                          "is corrupt or not a twinsr bundle; retrain or copy it again") from exc
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{p} is not a twinsr model bundle (missing format tag "
                          f"{BUNDLE_FORMAT!r})")
    if payload.get("format_version") not in READABLE_VERSIONS:
        raise BundleError(f"{p} has bundle format version {payload.get('format_version')}, this "
                          f"twinsr reads versions {READABLE_VERSIONS}")
    return payload


def _update_digest(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(json.dumps(["tensor", str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _update_digest(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _update_digest(h, v)
        h.update(b"]")
    else:
        h.update(json.dumps(obj, default=repr).encode())


def state_digest(obj: Any) -> str:
    """SHA-256 of a nested structure of tensors, mappings, sequences and JSON scalars.

    Used for training checkpoints (weights, optimizer state, best weights, RNG state): like
    :func:`bundle_digest` it catches a flipped bit inside tensor data, which torch's file format
    does not check.

    Examples
    --------
    >>> a = {"w": torch.zeros(3), "epoch": 2}
    >>> state_digest(a) == state_digest({"epoch": 2, "w": torch.zeros(3)})
    True
    >>> state_digest(a) == state_digest({"w": torch.ones(3), "epoch": 2})
    False
    """
    h = hashlib.sha256()
    _update_digest(h, obj)
    return h.hexdigest()


def _check_digest(payload: dict[str, Any], p: Path) -> None:
    """Compare the stored SHA-256 (if any: bundles written before it have none) with the
    contents. Runs after the consistency checks, which name a more specific problem."""
    stored = payload.get(_DIGEST_KEY)
    if stored is None:
        return
    try:
        actual = bundle_digest(payload)
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BundleError(f"model bundle {p} is damaged ({type(exc).__name__}: {exc}); "
                          "retrain or copy it again") from None
    if actual != stored:
        raise BundleError(f"model bundle {p} is damaged: its contents do not match the "
                          "SHA-256 checksum stored in it; retrain or copy it again")


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
    path : path or str
        Bundle file, run folder, or ``"builtin:NAME"`` for a pretrained model shipped with
        twinsr (``twinsr models`` lists them; its weights are checked against its model card).
    device : str
        Where to put the network.
    alpha, inputs : optional
        If given, the bundle must match them (else :class:`BundleError`).

    Returns
    -------
    SRModel
        With the bundle's :class:`ModelSpec` (derived for format-1 bundles).

    Raises
    ------
    BundleError
        Missing, truncated or foreign file, unknown format version, weights or spec that do not
        fit the stored architecture, or a mismatch with the requested ``alpha`` / ``inputs``.

    Warns
    -----
    ModelWarning
        A format-1 diffusion bundle without a recorded transport axis (axis 0 is assumed).

    Examples
    --------
    >>> import tempfile
    >>> net = SRResNet3d(1, 2, channels=4, blocks=1)
    >>> p = save_bundle(os.path.join(tempfile.mkdtemp(), "m.pt"), net, alpha=2, inputs="bin",
    ...                 threshold=0.5)
    >>> load_model(p).alpha
    2
    """
    p = resolve_bundle_path(path)
    payload = _read_payload(p)
    try:
        arch = dict(payload["arch"])
        net = SRResNet3d(int(arch.pop("in_channels")), int(arch.pop("scale")), **arch)
        net.load_state_dict(payload["state_dict"], strict=True)
        spec = (ModelSpec.from_dict(dict(payload["spec"])) if payload["format_version"] >= 2
                else _v1_spec(payload, net, p))
        model = SRModel(net, spec=spec, metadata=dict(payload.get("metadata") or {}))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc) if isinstance(exc, TwinsrError) else f"{type(exc).__name__}: {exc}"
        raise BundleError(f"model bundle {p} is inconsistent: {reason}") from None
    _check_digest(payload, p)
    if alpha is not None and int(alpha) != model.alpha:
        raise BundleError(f"the model {p} super-resolves by alpha={model.alpha}, not "
                          f"alpha={alpha}; use the bundle trained for that factor")
    if inputs is not None and inputs != model.inputs:
        raise BundleError(f"the model {p} expects inputs={model.inputs!r}, not {inputs!r}")
    model.network.to(device)
    return model
