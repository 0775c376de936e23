"""Typed records of the study's decisions that leave no output file (skipped evaluations).

A study resumes from its files (a complete ``eval/*.csv`` is not redone) and from these
records: a (volume, α) recorded as skipped is skipped again without reading the volume.
They are stored in ``study.json`` under ``"skipped"`` (and copied to ``skipped.json``), one
:meth:`SkipRecord.to_dict` mapping each; :data:`LAYOUT` numbers that layout.

>>> r = SkipRecord("evaluate", "measured", "small", 4, "volume (12, 12, 12) too small")
>>> r.message
'measured/small α=4: volume (12, 12, 12) too small'
>>> SkipRecord.from_dict(r.to_dict()) == r
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from twinsr._validation import check_alpha
from twinsr.exceptions import ConfigError, VolumeError
from twinsr.study.evaluate import SOURCES

__all__ = ["LAYOUT", "STEPS", "SkipRecord", "skip_records"]

#: The study steps a record can name (in the order they run).
STEPS = ("calibrate", "database", "train", "evaluate")

#: Layout of ``study.json``: 2 = skip decisions as :class:`SkipRecord` mappings (layout 1,
#: without the ``"layout"`` key, kept them as sentences in ``eval/*__skipped.json``).
LAYOUT = 2


@dataclass(frozen=True)
class SkipRecord:
    """One piece of work a study decided not to do, and why.

    Attributes
    ----------
    step : str
        The study step (``"evaluate"``).
    source, sample : str
        The test volume (``source`` is ``simulated`` or ``measured``).
    alpha : int
        The scale factor skipped for that volume.
    reason : str
        Why, in words (e.g. the volume is too small for the sub-volumes at this α).
    method : str or None
        The one method skipped (its table label, e.g. ``N_bin`` or ``nearest``), or None for
        every method at this (volume, α).
    """

    step: str
    source: str
    sample: str
    alpha: int
    reason: str
    method: str | None = None

    @property
    def message(self) -> str:
        """One line for the report: ``source/sample α=A[ method]: reason``."""
        what = f" {self.method}" if self.method is not None else ""
        return f"{self.source}/{self.sample} α={self.alpha}{what}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> SkipRecord:
        """Read a mapping written by :meth:`to_dict`.

        Raises
        ------
        ConfigError
            Not a mapping, unknown or missing keys, values of the wrong type, a step not in
            :data:`STEPS`, a source not in :data:`twinsr.study.evaluate.SOURCES`, or an α that
            is not a supported scale factor (what a damaged ``study.json`` gives).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a skip record must be a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names[:5] if n not in data]
        if unknown or missing:
            raise ConfigError(f"skip record {data!r}: unknown keys {unknown}, missing keys "
                              f"{missing}")
        alpha, method = data["alpha"], data.get("method")
        if not isinstance(alpha, int) or isinstance(alpha, bool) or \
                not all(isinstance(data[n], str) for n in ("step", "source", "sample",
                                                           "reason")) or \
                not (method is None or isinstance(method, str)):
            raise ConfigError(f"skip record {data!r}: alpha must be an integer, method a "
                              "string or null, the other fields strings")
        if data["step"] not in STEPS or data["source"] not in SOURCES:
            raise ConfigError(f"skip record {data!r}: step must be one of {STEPS} and source "
                              f"one of {SOURCES}")
        try:
            check_alpha(alpha)
        except VolumeError as exc:
            raise ConfigError(f"skip record {data!r}: {exc}") from None
        return cls(data["step"], data["source"], data["sample"], alpha, data["reason"], method)


def skip_records(data: Any) -> list[SkipRecord]:
    """Read a list of :meth:`SkipRecord.to_dict` mappings (``study.json["skipped"]``).

    Raises
    ------
    ConfigError
        Not a list, or an entry that is not a valid record.
    """
    if not isinstance(data, list):
        raise ConfigError(f"the skip records must be a list, got {type(data).__name__}")
    return [SkipRecord.from_dict(d) for d in data]
