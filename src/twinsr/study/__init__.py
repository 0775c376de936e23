"""The paper's experiment end to end: config and presets, evaluation table, figures, report.

>>> from twinsr.study import StudyConfig
>>> StudyConfig.preset("quick").alphas
[2, 4, 8]

Run it with :func:`run_study` (or ``twinsr study --preset quick -o DIR``).
"""

from __future__ import annotations

from twinsr.study.config import PRESETS, StudyConfig, config_difference, network_label
from twinsr.study.evaluate import COLUMNS, cut_subvolumes, evaluate_volume, prepare_volume
from twinsr.study.pipeline import StudyResult, run_study
from twinsr.study.records import SkipRecord
from twinsr.study.report import findings, summary_table
from twinsr.study.stats import PairedTest, paired_comparisons, paired_test, tortuosity_bias

__all__ = [
    "COLUMNS",
    "PRESETS",
    "PairedTest",
    "SkipRecord",
    "StudyConfig",
    "StudyResult",
    "config_difference",
    "cut_subvolumes",
    "evaluate_volume",
    "findings",
    "network_label",
    "paired_comparisons",
    "paired_test",
    "prepare_volume",
    "run_study",
    "summary_table",
    "tortuosity_bias",
]
