"""Paired statistics of the study: is a method better than another on the *same* sub-volumes?

Every method of a study is scored on the same HR sub-volumes, so two methods are compared
pair by pair (spec §3 reports medians only): the paired difference ``d_i = a_i − b_i`` of a
metric on sub-volume ``i`` (all samples of one source pooled, matched by sample and
sub-volume index) is tested with

* the **Wilcoxon signed-rank test** (:func:`scipy.stats.wilcoxon`, two-sided; zero differences
  dropped), and
* a seeded **bootstrap confidence interval** of the median paired difference (percentile
  interval, resampling the pairs, ``n_boot`` resamples, no interpolation between resampled
  medians).

A method is called better (or worse) only when both agree: ``p < level`` *and* the interval
excludes 0 on the same side; otherwise "no significant difference". With fewer than
:data:`MIN_PAIRS` pairs no two-sided signed-rank test can reach ``p < 0.05`` (the smallest
exact p of 5 pairs is 2/32 = 0.0625), so such a comparison is stated as "too few pairs".

Non-percolating cases make relative errors ``inf``. A pair where both methods are ``inf``
has difference 0 (they agree); one ``inf`` gives a difference of ``±inf``. The signed-rank
test only needs the order of ``|d|``, so infinite differences enter it as finite values above
every finite one; medians and interval bounds that fall on them are reported as ``±inf``.

Signed tortuosity errors (:func:`signed_tortuosity_errors`): ``(τ_method − τ_HR) / τ_HR`` per
phase, ``+inf`` when only the method's phase does not percolate, ``−inf`` when only the
ground truth's does, 0 when neither does (so ``|signed| ==`` the absolute relative error of
:func:`twinsr.metrics.relative_error`). A negative median is a bias towards a too well
connected phase.

>>> import numpy as np
>>> t = paired_test(np.full(8, 0.9) + np.arange(8) * 1e-3, np.full(8, 0.8))
>>> t.verdict, t.n, round(t.median_diff, 4)
('better', 8, 0.1035)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from twinsr.exceptions import ConfigError
from twinsr.study.evaluate import GROUND_TRUTH, HEADLINE, SOURCES, TORTUOSITIES

__all__ = [
    "BETTER",
    "LEVEL",
    "MIN_PAIRS",
    "NO_DIFFERENCE",
    "TOO_FEW",
    "WORSE",
    "PairedTest",
    "bootstrap_median_ci",
    "paired_comparisons",
    "paired_differences",
    "paired_test",
    "signed_tortuosity_errors",
    "tortuosity_bias",
]

#: Significance level of the signed-rank test (and 1 − confidence of the interval).
LEVEL = 0.05
#: Fewest pairs for which a two-sided signed-rank test can reach p < 0.05.
MIN_PAIRS = 6
BETTER, WORSE, NO_DIFFERENCE, TOO_FEW = ("better", "worse", "no significant difference",
                                         "too few pairs")
_KEYS = ["sample", "subvolume"]


@dataclass(frozen=True)
class PairedTest:
    """Outcome of :func:`paired_test` (differences are ``a − b``).

    Attributes
    ----------
    n : int
        Number of pairs.
    median_diff : float
        Median of the paired differences (``±inf`` possible).
    ci_low, ci_high : float
        Bootstrap interval of the median difference (``confidence``, default 95 %).
    p_value : float
        Two-sided Wilcoxon signed-rank p (1.0 when every difference is 0; NaN with too few
        pairs).
    verdict : str
        :data:`BETTER` / :data:`WORSE` (``a`` than ``b``, in the metric's sense),
        :data:`NO_DIFFERENCE` or :data:`TOO_FEW`.
    """

    n: int
    median_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str

    @property
    def significant(self) -> bool:
        """The verdict is better or worse."""
        return self.verdict in (BETTER, WORSE)

    def describe(self) -> str:
        """``Δ median +0.012 [CI +0.004, +0.020], p=0.008, n=8``."""
        if self.verdict == TOO_FEW:
            return f"n={self.n} pairs (a paired test needs >= {MIN_PAIRS})"
        return (f"Δ median {self.median_diff:+.3g} [CI {self.ci_low:+.3g}, {self.ci_high:+.3g}],"
                f" p={self.p_value:.2g}, n={self.n}")


def _median_sorted(s: np.ndarray) -> np.ndarray:
    """Median along the last axis of sorted rows; an infinite middle value is never averaged."""
    n = s.shape[-1]
    lo, hi = s[..., (n - 1) // 2], s[..., n // 2]
    with np.errstate(invalid="ignore"):
        mid = 0.5 * (lo + hi)
    out = np.where(np.isfinite(lo) & np.isfinite(hi), mid, np.where(np.isinf(hi) & (hi > 0), hi,
                                                                   lo))
    return np.where(np.isneginf(lo) & np.isposinf(hi), 0.0, out)


def bootstrap_median_ci(d: Sequence[float] | np.ndarray, *, n_boot: int = 2000,
                        confidence: float = 0.95, rng: int | np.random.Generator = 0
                        ) -> tuple[float, float, float]:
    """Median of ``d`` and its seeded percentile-bootstrap interval.

    Parameters
    ----------
    d : array_like, shape (n,)
        Values (paired differences); ``±inf`` allowed, NaN not.
    n_boot : int
        Bootstrap resamples (each resamples the ``n`` values with replacement).
    confidence : float
        Coverage of the interval, in (0, 1).
    rng : seed or numpy Generator
        Source of the resampling (same seed, same interval).

    Returns
    -------
    median, low, high : float
        The bounds are order statistics of the resampled medians (no interpolation, so an
        infinite bound stays ``inf``).

    Raises
    ------
    ConfigError
        Empty ``d``, NaN values, ``n_boot < 1`` or ``confidence`` outside (0, 1).

    Examples
    --------
    >>> med, lo, hi = bootstrap_median_ci([1.0, 2.0, 3.0, 4.0, 5.0], rng=0)
    >>> med, lo <= med <= hi
    (3.0, True)
    """
    v = np.asarray(d, dtype=float).ravel()
    if v.size == 0 or np.isnan(v).any():
        raise ConfigError(f"bootstrap_median_ci needs at least one value and no NaN, got "
                          f"{v.size} values ({int(np.isnan(v).sum())} NaN)")
    if int(n_boot) < 1 or not 0 < confidence < 1:
        raise ConfigError(f"need n_boot >= 1 and 0 < confidence < 1, got n_boot={n_boot}, "
                          f"confidence={confidence}")
    gen = np.random.default_rng(rng)
    med = float(_median_sorted(np.sort(v)))
    meds = _median_sorted(np.sort(v[gen.integers(0, v.size, size=(int(n_boot), v.size))],
                                  axis=1))
    tail = (1.0 - confidence) / 2
    low = float(np.quantile(meds, tail, method="lower"))
    high = float(np.quantile(meds, 1.0 - tail, method="higher"))
    return med, low, high


def _signed_rank_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of ``d`` (infinite entries ranked above the rest)."""
    from scipy.stats import wilcoxon

    nz = d[d != 0]
    if nz.size == 0:
        return 1.0
    finite = np.abs(nz[np.isfinite(nz)])
    big = 2.0 * (float(finite.max()) if finite.size else 1.0) + 1.0
    proxy = np.where(np.isinf(nz), np.sign(nz) * big, nz)
    with warnings.catch_warnings():  # ties / small n: scipy notes its choice of method
        warnings.simplefilter("ignore")
        return float(wilcoxon(proxy, zero_method="wilcox", alternative="two-sided").pvalue)


def _differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    with np.errstate(invalid="ignore"):
        d = a - b
    return np.where(both_inf, 0.0, d)


def paired_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                higher_is_better: bool = True, level: float = LEVEL, n_boot: int = 2000,
                rng: int | np.random.Generator = 0) -> PairedTest:
    """Compare ``a`` with ``b`` pair by pair (Wilcoxon signed-rank + bootstrap median CI).

    Parameters
    ----------
    a, b : array_like, shape (n,)
        The same metric of two methods on the same ``n`` sub-volumes, in the same order
        (``inf`` allowed: non-percolating cases).
    higher_is_better : bool
        Orientation of the metric (accuracy: True; relative errors: False).
    level : float
        Significance level; the interval's confidence is ``1 − level``.
    n_boot : int
        Bootstrap resamples.
    rng : seed or numpy Generator
        Seed of the bootstrap.

    Returns
    -------
    PairedTest
        ``better`` only if ``p < level`` and the interval lies on ``a``'s good side of 0.

    Raises
    ------
    ConfigError
        Different lengths, NaN values or a level outside (0, 1).

    Examples
    --------
    >>> paired_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]).verdict
    'too few pairs'
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ConfigError(f"paired_test needs equally many values, got {x.size} and {y.size}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ConfigError("paired_test got NaN values; a metric is inf or finite, never NaN")
    if not 0 < level < 1:
        raise ConfigError(f"`level` must be in (0, 1), got {level}")
    n = int(x.size)
    if n < MIN_PAIRS:
        med = float(_median_sorted(np.sort(_differences(x, y)))) if n else math.nan
        return PairedTest(n, med, math.nan, math.nan, math.nan, TOO_FEW)
    d = _differences(x, y)
    med, low, high = bootstrap_median_ci(d, n_boot=n_boot, confidence=1 - level, rng=rng)
    p = _signed_rank_p(d)
    verdict = NO_DIFFERENCE
    if p < level and (low > 0 or high < 0):
        verdict = BETTER if (low > 0) == higher_is_better else WORSE
    return PairedTest(n, med, low, high, p, verdict)


def _metric_values(df: Any, source: str, alpha: int, method: str, metric: str,
                   phase: str) -> Any:
    sel = df[(df["source"] == source) & (df["alpha"] == alpha) & (df["method"] == method)
             & (df["metric"] == metric) & (df["phase"] == phase)]
    return sel.set_index(_KEYS)["value"].astype(float)


def paired_differences(df: Any, *, methods: Sequence[str], baselines: Sequence[str],
                       metrics: Sequence[tuple[str, str]] | None = None) -> Any:
    """Per sub-volume paired differences ``method − baseline`` of the results table.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table (:data:`twinsr.study.evaluate.COLUMNS`).
    methods, baselines : sequence of str
        Every method is compared with every baseline (a method is never compared with
        itself); pairs are matched by (sample, sub-volume) within a source and α.
    metrics : sequence of (metric, phase), optional
        Default: the headline metrics (:data:`~twinsr.study.evaluate.HEADLINE`).

    Returns
    -------
    pandas.DataFrame
        Columns source, alpha, method, baseline, metric, phase, sample, subvolume, a, b, diff
        (``a − b``; both ``inf``: 0).
    """
    import pandas as pd

    metrics = list(metrics) if metrics is not None else [(h.metric, h.phase) for h in HEADLINE]
    sources = [s for s in SOURCES if s in set(df["source"])]
    rows = []
    for src in sources:
        for alpha in sorted(int(a) for a in df[df["source"] == src]["alpha"].unique()):
            for metric, phase in metrics:
                for m in methods:
                    va = _metric_values(df, src, alpha, m, metric, phase)
                    if va.empty:
                        continue
                    for b in (b for b in baselines if b != m):
                        vb = _metric_values(df, src, alpha, b, metric, phase)
                        both = pd.concat([va.rename("a"), vb.rename("b")], axis=1,
                                         join="inner")
                        if both.empty:
                            continue
                        both = both.reset_index()
                        both["diff"] = _differences(both["a"].to_numpy(), both["b"].to_numpy())
                        both = both.assign(source=src, alpha=alpha, method=m, baseline=b,
                                           metric=metric, phase=phase)
                        rows.append(both)
    cols = ["source", "alpha", "method", "baseline", "metric", "phase", *_KEYS, "a", "b", "diff"]
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.concat(rows, ignore_index=True)[cols]


def paired_comparisons(df: Any, *, methods: Sequence[str], baselines: Sequence[str],
                       metrics: Sequence[tuple[str, str]] | None = None, seed: int = 0,
                       n_boot: int = 2000, level: float = LEVEL) -> Any:
    """:func:`paired_test` for every source × α × method vs each baseline × metric.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table.
    methods, baselines, metrics
        As for :func:`paired_differences`.
    seed : int
        Bootstrap seed (the same for every comparison: reruns give the same table).
    n_boot, level
        As for :func:`paired_test`.

    Returns
    -------
    pandas.DataFrame
        Columns source, alpha, method, baseline, metric, phase, higher_is_better and the
        fields of :class:`PairedTest` (n, median_diff, ci_low, ci_high, p_value, verdict).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = [{"source": "measured", "sample": "s", "subvolume": i, "alpha": 2, "method": m,
    ...          "phase": "all", "metric": "accuracy", "value": v + 0.001 * i}
    ...         for i in range(8) for m, v in (("N_bin", 0.95), ("nearest", 0.9))]
    >>> t = paired_comparisons(pd.DataFrame(rows), methods=["N_bin"], baselines=["nearest"])
    >>> t[["method", "baseline", "n", "verdict"]].values.tolist()
    [['N_bin', 'nearest', 8, 'better']]
    """
    import pandas as pd

    higher = {h.metric: h.higher_is_better for h in HEADLINE}
    diffs = paired_differences(df, methods=methods, baselines=baselines, metrics=metrics)
    rows = []
    group = ["source", "alpha", "method", "baseline", "metric", "phase"]
    for key, g in diffs.groupby(group, sort=False):
        hib = higher.get(key[4], not str(key[4]).endswith("_err"))
        t = paired_test(g["a"].to_numpy(), g["b"].to_numpy(), higher_is_better=hib,
                        level=level, n_boot=n_boot, rng=seed)
        rows.append({**dict(zip(group, key, strict=True)), "higher_is_better": hib,
                     **asdict(t)})
    cols = [*group, "higher_is_better", "n", "median_diff", "ci_low", "ci_high", "p_value",
            "verdict"]
    return pd.DataFrame(rows, columns=cols)


def _signed(v: np.ndarray, r: np.ndarray) -> np.ndarray:
    vi, ri = np.isinf(v), np.isinf(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (v - r) / r
    return np.where(vi & ri, 0.0, np.where(vi, np.inf, np.where(ri, -np.inf, s)))


def signed_tortuosity_errors(df: Any) -> Any:
    """Signed relative tortuosity errors ``(τ − τ_HR) / τ_HR`` per sub-volume and phase.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table with its ``ground_truth`` rows (``tortuosity: true``).

    Returns
    -------
    pandas.DataFrame
        Columns source, sample, subvolume, alpha, method, phase, tortuosity (``tau_geod`` /
        ``tau_eff``), signed (see the module notes for ``inf``); empty without tortuosities.
    """
    import pandas as pd

    keys = ["source", "sample", "subvolume", "alpha", "phase", "metric"]
    tau = df[df["metric"].isin(list(TORTUOSITIES))]
    ref = tau[tau["method"] == GROUND_TRUTH][[*keys, "value"]].rename(columns={"value": "ref"})
    est = tau[tau["method"] != GROUND_TRUTH]
    cols = ["source", "sample", "subvolume", "alpha", "method", "phase", "tortuosity", "signed"]
    if ref.empty or est.empty:
        return pd.DataFrame(columns=cols)
    m = est.merge(ref, on=keys, how="inner")
    m["signed"] = _signed(m["value"].to_numpy(dtype=float), m["ref"].to_numpy(dtype=float))
    return m.rename(columns={"metric": "tortuosity"})[cols].reset_index(drop=True)


def tortuosity_bias(df: Any, *, seed: int = 0, n_boot: int = 2000,
                    confidence: float = 0.95) -> Any:
    """Median signed and absolute relative tortuosity error per source, α, method and phase.

    Returns
    -------
    pandas.DataFrame
        Columns source, alpha, method, phase, tortuosity, n, median_signed, ci_low, ci_high
        (bootstrap interval of the median signed error), median_abs; empty without
        tortuosities. A bias is a median signed error whose interval excludes 0.
    """
    import pandas as pd

    s = signed_tortuosity_errors(df)
    rows = []
    for (src, a, m, ph, tau), g in s.groupby(["source", "alpha", "method", "phase", "tortuosity"],
                                             sort=True):
        v = g["signed"].to_numpy(dtype=float)
        med, lo, hi = bootstrap_median_ci(v, n_boot=n_boot, confidence=confidence, rng=seed)
        rows.append({"source": src, "alpha": int(a), "method": m, "phase": ph,
                     "tortuosity": tau, "n": int(v.size), "median_signed": med, "ci_low": lo,
                     "ci_high": hi,
                     "median_abs": float(_median_sorted(np.sort(np.abs(v))))})
    cols = ["source", "alpha", "method", "phase", "tortuosity", "n", "median_signed", "ci_low",
            "ci_high", "median_abs"]
    return pd.DataFrame(rows, columns=cols)
