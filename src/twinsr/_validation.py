"""Shared input checks. Public entry points call these once; internals trust their input.

Messages follow one pattern: what was expected, what was found, how to fix it, e.g.
"`im` must be 3-D, got ndim=2 (shape (64, 64)); pass a (Z, Y, X) volume".
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from twinsr.exceptions import ConfigError, MemoryBudgetError, TwinsrError, VolumeError

__all__ = [
    "AXIS_ALPHAS",
    "MAX_LABELS",
    "PHASE_NAMES",
    "SUPPORTED_ALPHAS",
    "as_binary_volume",
    "as_label_volume",
    "available_memory_bytes",
    "check_alpha",
    "check_alpha_axes",
    "check_axis",
    "check_finite",
    "check_int",
    "check_label_names",
    "check_memory",
    "check_phase",
    "check_positive",
    "check_shape",
    "check_volume",
    "read_yaml_config",
    "resolve_device",
]

SUPPORTED_ALPHAS = (2, 4, 8)
AXIS_ALPHAS = (1, 2, 4, 8)  # entries of a per-axis α (az, ay, ax); not all of them 1
MAX_LABELS = 255  # a labelled volume holds labels 0..K-1 with K <= 255 (uint8)
PHASE_NAMES = ("pore", "solid")  # PHASE_NAMES[label]: label 0 is pore, 1 is solid


def check_volume(im: object, name: str = "im", *, ndim: int = 3) -> np.ndarray:
    """Return ``im`` as a numpy array after checking it has ``ndim`` dimensions and no zero axis.

    Raises
    ------
    VolumeError
        If ``im`` is not array-like, has the wrong number of dimensions or an empty axis.
    """
    try:
        arr = np.asarray(im)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise VolumeError(f"`{name}` must be an array, got {type(im).__name__}") from exc
    if arr.dtype == object:
        raise VolumeError(f"`{name}` must be a numeric array, got dtype=object")
    if arr.ndim != ndim:
        raise VolumeError(
            f"`{name}` must be {ndim}-D, got ndim={arr.ndim} (shape {arr.shape}); "
            f"pass a (Z, Y, X) volume" + (" (add an axis with im[None] for a 2-D slice)"
                                           if arr.ndim == ndim - 1 else "")
        )
    if 0 in arr.shape:
        raise VolumeError(f"`{name}` has an empty axis (shape {arr.shape}); every axis needs >= 1 voxel")
    return arr


def check_finite(arr: np.ndarray, name: str = "im") -> None:
    """Raise :class:`VolumeError` if a floating array holds NaN or ±inf."""
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
        finite = np.isfinite(arr)
        if not finite.all():
            n_bad = int(arr.size - np.count_nonzero(finite))
            raise VolumeError(
                f"`{name}` contains {n_bad} NaN/inf value(s); clean or mask the volume before use"
            )


def as_binary_volume(im: object, name: str = "im", *, ndim: int = 3) -> np.ndarray:
    """Check and convert a two-phase volume to ``uint8`` with 1 = solid, 0 = pore.

    Accepted encodings (documented rule): boolean arrays; numeric arrays whose values are a
    subset of {0, 1}; numeric arrays with exactly two distinct values {0, v} for v > 0
    (e.g. {0, 255} from image software), where v becomes 1 (solid). Anything else is rejected
    with the values found.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Two-phase volume.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of uint8, shape (Z, Y, X)
        The same volume with values in {0, 1}. A new array unless ``im`` was already uint8 {0,1}.

    Raises
    ------
    VolumeError
        Wrong ndim, empty axis, NaN/inf, or more than two phases / a non-zero background.
    """
    arr = check_volume(im, name, ndim=ndim)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    check_finite(arr, name)
    if arr.dtype == np.uint8 and int(arr.max()) <= 1:
        return arr
    values = np.unique(arr) if arr.size <= 4_000_000 else _unique_bounded(arr)
    if values.size <= 2 and (set(values.tolist()) <= {0, 1} or (values.size == 2 and values[0] == 0
                                                               and values[1] > 0)):
        return (arr != 0).astype(np.uint8)
    shown = ", ".join(repr(v.item()) for v in values[:6]) + (", ..." if values.size > 6 else "")
    raise VolumeError(
        f"`{name}` must be binary (1 = solid, 0 = pore; {{0, v}} with v > 0 is read as solid = v), "
        f"found {values.size if values.size <= 6 else 'more than 6'} distinct values: {shown}. "
        "Segment the image first (e.g. threshold a grayscale volume: im > t)"
    )


def as_label_volume(im: object, name: str = "im", *, n_labels: int | None = None,
                    ndim: int = 3) -> np.ndarray:
    """Check and convert a labelled (multi-phase) volume to ``uint8`` labels 0..K-1.

    A binary volume is the two-label case (0 = pore, 1 = solid). Accepted encodings: boolean
    arrays, integer arrays, and floating arrays whose values are whole numbers. Labels must be
    ``>= 0`` and at most ``MAX_LABELS`` = 255 distinct labels (0..254) fit.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Labelled volume.
    name : str
        Argument name used in error messages.
    n_labels : int, optional
        Number of labels K the volume is declared to have (e.g. ``len(label_names)``). Given,
        every value must lie in 0..K-1 and labels may be absent (a crop without binder); not
        given, the labels present must be exactly 0..max (contiguous).

    Returns
    -------
    numpy.ndarray of uint8, shape (Z, Y, X)
        The labels; ``im`` itself if it was already a valid uint8 volume.

    Raises
    ------
    VolumeError
        Wrong ndim, empty axis, NaN/inf, fractional or negative values, more than 255 labels,
        labels that are not contiguous (without ``n_labels``) or not below ``n_labels``.

    Examples
    --------
    >>> import numpy as np
    >>> as_label_volume(np.array([0, 2, 1, 2], np.int64).reshape(1, 2, 2)).ravel().tolist()
    [0, 2, 1, 2]
    >>> as_label_volume(np.zeros((1, 1, 2)), n_labels=3).dtype.name
    'uint8'
    """
    arr = check_volume(im, name, ndim=ndim)
    k_max = MAX_LABELS
    if n_labels is not None:
        k_max = check_int(n_labels, "n_labels", minimum=1, maximum=MAX_LABELS)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise VolumeError(f"`{name}` must hold integer labels, got dtype={arr.dtype}")
    check_finite(arr, name)
    lo, hi = arr.min(), arr.max()
    if lo < 0:
        raise VolumeError(f"`{name}` holds negative label {lo.item()!r}; labels are 0..K-1 "
                          "(relabel, e.g. np.unique(im, return_inverse=True)[1])")
    if hi > k_max - 1:
        what = (f"above n_labels - 1 = {k_max - 1}" if n_labels is not None
                else f"above {MAX_LABELS - 1}: at most {MAX_LABELS} labels (uint8) are supported")
        raise VolumeError(f"`{name}` holds label {hi.item()!r}, {what}; relabel the volume or "
                          "merge phases")
    if np.issubdtype(arr.dtype, np.floating):
        frac = arr != np.floor(arr)
        if frac.any():
            raise VolumeError(f"`{name}` holds {int(np.count_nonzero(frac))} non-integer value(s) "
                              f"(e.g. {arr[frac].flat[0].item()!r}); labels must be whole "
                              "numbers: segment the image first")
    out = arr if arr.dtype == np.uint8 else arr.astype(np.uint8)
    if n_labels is None:
        counts = np.bincount(out.reshape(-1), minlength=int(hi) + 1)
        missing = np.flatnonzero(counts == 0)
        if missing.size:
            shown = ", ".join(str(m) for m in missing[:6]) + (", ..." if missing.size > 6 else "")
            raise VolumeError(
                f"`{name}` labels must be contiguous 0..{int(hi)}, but label(s) {shown} are "
                "absent; relabel (np.unique(im, return_inverse=True)[1]) or, for a crop that "
                "misses a phase, pass n_labels"
            )
    return out


def check_label_names(names: object, n_labels: int | None = None) -> tuple[str, ...]:
    """Return the names of labels 0..K-1 as a tuple of distinct, non-empty strings.

    Parameters
    ----------
    names : sequence of str
        ``names[k]`` names label ``k`` (e.g. ``["pore", "NMC", "binder"]``).
    n_labels : int, optional
        Number of labels the names must cover exactly.

    Raises
    ------
    VolumeError
        Not a sequence of strings, an empty name, a label named twice, more than 255 names, or
        a count that differs from ``n_labels`` (names for missing labels, or labels unnamed).

    Examples
    --------
    >>> check_label_names(["pore", "NMC", "binder"], 3)
    ('pore', 'NMC', 'binder')
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise VolumeError(f"`label_names` must be a list of strings (one per label), got {names!r}")
    out = tuple(names)
    bad = [n for n in out if not isinstance(n, str) or not n.strip()]
    if bad or not out:
        raise VolumeError(f"`label_names` must be non-empty strings, got {list(out)!r}")
    seen: dict[str, int] = {}
    for k, n in enumerate(out):
        if n in seen:
            raise VolumeError(f"`label_names` names {n!r} twice (labels {seen[n]} and {k}); "
                              "give every label its own name")
        seen[n] = k
    if len(out) > MAX_LABELS:
        raise VolumeError(f"`label_names` has {len(out)} names; at most {MAX_LABELS} labels fit")
    if n_labels is not None and len(out) != n_labels:
        extra = (f"names for missing labels {list(range(n_labels, len(out)))}"
                 if len(out) > n_labels else f"no names for labels {list(range(len(out), n_labels))}")
        raise VolumeError(f"`label_names` has {len(out)} names for {n_labels} labels ({extra}); "
                          "pass exactly one name per label 0..K-1")
    return out


def _unique_bounded(arr: np.ndarray) -> np.ndarray:
    """Distinct values of a large array, stopping early once more than two are seen."""
    flat = arr.reshape(-1)
    step = 1 << 22
    seen = np.unique(flat[:step])
    for start in range(step, flat.size, step):
        if seen.size > 2:
            break
        seen = np.union1d(seen, np.unique(flat[start : start + step]))
    return seen


def check_axis(axis: int, ndim: int = 3) -> int:
    """Return ``axis`` as a non-negative int, or raise if it is out of range."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise VolumeError(f"`axis` must be an integer in 0..{ndim - 1}, got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise VolumeError(f"`axis` must be in 0..{ndim - 1} (or -{ndim}..-1), got {axis}")
    return int(axis) % ndim


def check_phase(phase: object) -> int:
    """Return the phase label 0 (pore) or 1 (solid). Accepts 0/1 and 'pore'/'solid'."""
    if isinstance(phase, str):
        key = phase.strip().lower()
        for label, name in enumerate(PHASE_NAMES):
            if key in (name, str(label)):
                return label
    elif isinstance(phase, (int, np.integer)) and not isinstance(phase, bool) and phase in (0, 1):
        return int(phase)
    raise VolumeError(f"`phase` must be 0/'pore' or 1/'solid', got {phase!r}")


def check_alpha(alpha: object, *, allowed: Sequence[int] | None = SUPPORTED_ALPHAS) -> int:
    """Return the scale factor α as int; raise if it is not one of ``allowed``.

    With ``allowed=None`` any integer >= 1 is accepted (strided downsampling works for any α).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)):
        raise VolumeError(f"`alpha` must be an integer scale factor, got {alpha!r}")
    a = int(alpha)
    if allowed is None:
        if a < 1:
            raise VolumeError(f"`alpha` must be >= 1, got {a}")
        return a
    if a not in allowed:
        raise VolumeError(f"`alpha` must be one of {tuple(allowed)}, got {a}")
    return a


def check_alpha_axes(alpha: object, *, allowed: Sequence[int] | None = AXIS_ALPHAS,
                     scalar_allowed: Sequence[int] | None = SUPPORTED_ALPHAS
                     ) -> tuple[int, int, int]:
    """Return α as a per-axis triple (az, ay, ax); a scalar α means the same on every axis.

    Parameters
    ----------
    alpha : int or sequence of three ints
        Scale factor. A scalar is checked by :func:`check_alpha` against ``scalar_allowed``;
        a triple's entries must each be in ``allowed`` (default 1, 2, 4, 8) and not all be 1.
    allowed : sequence of int, optional
        Entries accepted in a triple (``None``: any integer >= 1).
    scalar_allowed : sequence of int, optional
        Scalars accepted (``None``: any integer >= 1).

    Raises
    ------
    VolumeError
        Not an integer or three integers, an entry outside ``allowed``, or all entries 1.

    Examples
    --------
    >>> check_alpha_axes(2), check_alpha_axes((4, 1, 1))
    ((2, 2, 2), (4, 1, 1))
    """
    if isinstance(alpha, (int, np.integer)) and not isinstance(alpha, bool):
        a = check_alpha(alpha, allowed=scalar_allowed)
        return (a, a, a)
    if isinstance(alpha, (str, bytes)) or not isinstance(alpha, (Sequence, np.ndarray)):
        raise VolumeError(f"`alpha` must be an integer or three integers (az, ay, ax), got {alpha!r}")
    vals = list(alpha)
    if len(vals) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             for v in vals):
        raise VolumeError(f"`alpha` must be an integer or three integers (az, ay, ax), got {alpha!r}")
    out = tuple(int(v) for v in vals)
    bad = [v for v in out if (v < 1 if allowed is None else v not in allowed)]
    if bad:
        want = "each >= 1" if allowed is None else f"each one of {tuple(allowed)}"
        raise VolumeError(f"`alpha` entries must be {want}, got {out} (entry {bad[0]})")
    if out == (1, 1, 1):
        raise VolumeError("`alpha` = (1, 1, 1) changes nothing; at least one axis needs a "
                          "factor > 1, e.g. (4, 1, 1) for thick slices along z")
    return out  # type: ignore[return-value]


def check_positive(value: object, name: str, *, allow_zero: bool = False, hint: str | None = None,
                   error: type[TwinsrError] = VolumeError) -> float:
    """Return ``value`` as float; raise if it is not a finite number > 0 (>= 0 with allow_zero).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Argument name used in the message.
    allow_zero : bool
        Accept 0.
    hint : str, optional
        What the value means (e.g. "voxel edge length in micrometres"), shown in the message.
    error : TwinsrError subclass
        Raised on failure (VolumeError by default; ConfigError for model parameters).

    Raises
    ------
    TwinsrError
        ``error``, naming ``name``, the expectation and the value found.

    Examples
    --------
    >>> check_positive("2.5", "gamma")
    2.5
    """
    what = f" ({hint})" if hint else ""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise error(f"`{name}` must be a number{what}, got {value!r}") from exc
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise error(f"`{name}` must be finite and {bound}{what}, got {value!r}")
    return v


def check_int(value: object, name: str, *, minimum: int | None = None, maximum: int | None = None,
              context: str = "", error: type[TwinsrError] = VolumeError) -> int:
    """Return ``value`` as an int (bools refused) within [``minimum``, ``maximum``].

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Argument name used in the message.
    minimum, maximum : int, optional
        Inclusive bounds.
    context : str
        Appended to the bound in the message (e.g. " for an image of shape (32, 32, 32)").
    error : TwinsrError subclass
        Raised on failure (VolumeError by default, ConfigError for options of a model or run).

    Raises
    ------
    TwinsrError
        ``error``, naming ``name``, the bounds and the value found.

    Examples
    --------
    >>> check_int(3, "n", minimum=1), check_int(np.int64(0), "seed", minimum=0)
    (3, 0)
    """
    if minimum is not None and maximum is not None:
        bound = f" in {minimum}..{maximum}"
    elif minimum is not None:
        bound = f" >= {minimum}"
    else:
        bound = f" <= {maximum}" if maximum is not None else ""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if ok:
        v = int(value)  # type: ignore[arg-type]
        ok = (minimum is None or v >= minimum) and (maximum is None or v <= maximum)
    if not ok:
        raise error(f"`{name}` must be an integer{bound}{context}, got {value!r}")
    return v


def check_shape(shape: object, name: str = "shape", *, ndim: int = 3) -> tuple[int, ...]:
    """Return a volume shape as a tuple of ``ndim`` positive ints.

    A single int ``n`` means a cube (n, n, n).
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),) * ndim
    try:
        out = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise VolumeError(f"`{name}` must be an int or a sequence of {ndim} ints, got {shape!r}") from exc
    if len(out) != ndim:
        raise VolumeError(f"`{name}` must have {ndim} entries (Z, Y, X), got {out}")
    if any(s <= 0 for s in out):
        raise VolumeError(f"`{name}` must be positive along every axis, got {out}")
    return out


def available_memory_bytes() -> int:
    """Memory available to this process in bytes (MemAvailable, cgroup limit if lower)."""
    avail = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                raw = fh.read().strip()
            if raw.isdigit():
                limit = int(raw)
                if limit < (1 << 60):
                    avail = limit if avail is None else min(avail, limit)
        except OSError:
            continue
    if avail is None:
        import os

        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            avail = 1 << 62
    return int(avail)


def check_memory(n_bytes: float, what: str) -> None:
    """Refuse, before allocating, a request whose estimate exceeds available memory.

    Raises
    ------
    MemoryBudgetError
        If ``n_bytes`` exceeds the memory currently available.
    """
    avail = available_memory_bytes()
    if n_bytes > avail:
        raise MemoryBudgetError(
            f"{what} needs about {n_bytes / 2**30:.1f} GiB but only {avail / 2**30:.1f} GiB is "
            "available; use a smaller shape, or tile the work (e.g. generate sub-volumes)"
        )


def resolve_device(device: str = "auto") -> str:
    """Resolve ``"auto"`` to ``"cuda"`` when a CUDA GPU is present, else ``"cpu"``.

    Explicit ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` are checked and returned unchanged.
    """
    if not isinstance(device, str):
        raise VolumeError(f"`device` must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    dev = device.strip().lower()
    if dev == "cpu":
        return "cpu"
    import torch

    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VolumeError(
                f"`device`={device!r} was requested but no CUDA GPU is available; use device='cpu' or 'auto'"
            )
        return dev
    raise VolumeError(f"`device` must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def read_yaml_config(path: object, what: str) -> dict:
    """Read a YAML config file into a mapping; every failure is a :class:`ConfigError` naming it.

    Parameters
    ----------
    path : path-like
        The YAML file.
    what : str
        What the file holds, for the messages (e.g. ``"training config"``).

    Returns
    -------
    dict
        The file's mapping (``{}`` for an empty file).

    Raises
    ------
    ConfigError
        The file is missing or unreadable, not UTF-8 text, not valid YAML, or not a mapping.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = p.write_text("epochs: 3")
    >>> read_yaml_config(p, "training config")
    {'epochs': 3}
    """
    import os

    import yaml

    p = os.fspath(path)  # type: ignore[call-overload]
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:  # a damaged or binary file
        raise ConfigError(f"{p}: not UTF-8 text ({exc}); is it a YAML {what}?") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a {what} must be a mapping of fields, got {type(data).__name__}")
    return data
