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
    "PHASE_NAMES",
    "SUPPORTED_ALPHAS",
    "as_binary_volume",
    "available_memory_bytes",
    "check_alpha",
    "check_axis",
    "check_finite",
    "check_int",
    "check_memory",
    "check_phase",
    "check_positive",
    "check_shape",
    "check_volume",
    "read_yaml_config",
    "resolve_device",
]

SUPPORTED_ALPHAS = (2, 4, 8)
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
