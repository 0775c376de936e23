"""Tests for twinsr.study.stats: paired tests over sub-volumes, bootstrap intervals, signed
tortuosity errors, and their use in the report's findings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from twinsr.exceptions import ConfigError
from twinsr.study import findings
from twinsr.study.stats import (
    BETTER,
    MIN_PAIRS,
    NO_DIFFERENCE,
    TOO_FEW,
    WORSE,
    bootstrap_median_ci,
    paired_comparisons,
    paired_differences,
    paired_test,
    signed_tortuosity_errors,
    tortuosity_bias,
)


def _table(values: dict[str, np.ndarray], *, metric="accuracy", phase="all", source="measured",
           alpha=2, samples=("a",)) -> pd.DataFrame:
    rows = []
    for m, v in values.items():
        per = len(v) // len(samples)
        for i, x in enumerate(v):
            rows.append({"source": source, "sample": samples[i // per], "subvolume": i % per,
                         "alpha": alpha, "method": m, "phase": phase, "metric": metric,
                         "value": float(x)})
    return pd.DataFrame(rows)


def test_better_by_construction_is_significant():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.85, 0.9, 16)
    better = base + 0.02 + rng.normal(0, 0.003, 16)
    t = paired_test(better, base, higher_is_better=True)
    assert t.verdict == BETTER and t.p_value < 0.01 and t.ci_low > 0
    # the same numbers as errors (lower is better): the first is now worse
    assert paired_test(better, base, higher_is_better=False).verdict == WORSE
    # through the table, both orders of the comparison
    df = _table({"N_bin": better, "nearest": base})
    out = paired_comparisons(df, methods=["N_bin", "nearest"], baselines=["nearest", "N_bin"])
    got = {(r.method, r.baseline): r.verdict for r in out.itertuples()}
    assert got == {("N_bin", "nearest"): BETTER, ("nearest", "N_bin"): WORSE}


def test_equal_methods_are_not_significant():
    rng = np.random.default_rng(5)
    a = rng.uniform(0.8, 0.9, 12)
    t = paired_test(a, a.copy())
    assert t.verdict == NO_DIFFERENCE and t.p_value == 1.0 and t.median_diff == 0.0
    # pure noise around the same values: no claim either
    b = a + rng.normal(0, 0.01, 12)
    c = a + rng.normal(0, 0.01, 12)
    assert paired_test(b, c).verdict == NO_DIFFERENCE


def test_a_difference_in_medians_alone_is_not_a_win():
    """Medians differ, but the pairs disagree in sign: no significant difference (the report
    used to call this 'better' from the medians)."""
    b = np.array([0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94])
    a = b + np.array([0.05, -0.01, 0.04, -0.01, 0.05, -0.01, 0.04, -0.01])
    assert np.median(a) > np.median(b)
    assert paired_test(a, b).verdict == NO_DIFFERENCE


def test_ci_contains_the_true_shift():
    rng = np.random.default_rng(11)
    shift = 0.3
    b = rng.normal(1.0, 0.2, 40)
    a = b + shift + rng.normal(0, 0.05, 40)  # symmetric noise: the median difference is 0.3
    t = paired_test(a, b)
    assert t.ci_low < shift < t.ci_high
    assert t.ci_high - t.ci_low < 0.1
    # the interval is seeded: same seed, same interval; another seed, (slightly) another
    assert bootstrap_median_ci(a - b, rng=1) == bootstrap_median_ci(a - b, rng=1)
    cov = 0
    for seed in range(50):  # coverage of the 95 % interval over fresh samples
        r = np.random.default_rng(seed + 100)
        d = shift + r.normal(0, 0.1, 20)
        _, lo, hi = bootstrap_median_ci(d, rng=seed)
        cov += lo <= shift <= hi
    assert cov >= 42


def test_too_few_pairs_is_stated_not_a_crash():
    t = paired_test([0.9, 0.95, 0.97], [0.1, 0.2, 0.3])
    assert t.verdict == TOO_FEW and t.n == 3 and math.isnan(t.p_value)
    assert "needs >= 6" in t.describe()
    assert paired_test([], []).verdict == TOO_FEW
    # in a table: a volume with only 4 sub-volumes
    df = _table({"N_bin": np.full(4, 0.9), "nearest": np.full(4, 0.5)})
    out = paired_comparisons(df, methods=["N_bin"], baselines=["nearest"])
    assert out.verdict.tolist() == [TOO_FEW]
    # ... and the finding says so instead of claiming a win
    f = findings(df, networks=["N_bin"], baseline="nearest")[0]
    assert f.verdict == "not tested" or "too few pairs" in " ".join(f.details)
    assert any("too few pairs" in d for d in f.details)
    assert MIN_PAIRS == 6


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="equally many"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ConfigError, match="NaN"):
        paired_test([math.nan] * 8, [1.0] * 8)
    with pytest.raises(ConfigError, match="at least one value"):
        bootstrap_median_ci([])


def test_infinite_errors_rank_as_worst():
    """A method that breaks percolation (inf error) on most sub-volumes is worse, not NaN."""
    base = np.array([0.05, 0.06, 0.04, 0.05, 0.07, 0.05, 0.06, 0.05])
    bad = np.array([np.inf] * 7 + [0.05])
    t = paired_test(bad, base, higher_is_better=False)
    assert t.verdict == WORSE and t.median_diff == math.inf
    both = paired_test(np.full(8, np.inf), np.full(8, np.inf), higher_is_better=False)
    assert both.verdict == NO_DIFFERENCE and both.median_diff == 0.0


def test_pairs_are_matched_by_sample_and_subvolume():
    """Rows in another order, two samples with the same sub-volume indices: matched by key."""
    a = np.arange(16) / 100 + 0.5
    df = _table({"N_bin": a + 0.01, "nearest": a}, samples=("s1", "s2"))
    d = paired_differences(df.sample(frac=1.0, random_state=0), methods=["N_bin"],
                           baselines=["nearest"])
    assert len(d) == 16 and np.allclose(d["diff"], 0.01)
    assert set(zip(d["sample"], d["subvolume"], strict=True)) == {
        (s, i) for s in ("s1", "s2") for i in range(8)}


def _tau_table(gt: list[float], est: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for m, vals in {"ground_truth": gt, **est}.items():
        for i, v in enumerate(vals):
            rows.append({"source": "measured", "sample": "a", "subvolume": i, "alpha": 2,
                         "method": m, "phase": "solid", "metric": "tau_eff", "value": v})
    return pd.DataFrame(rows)


def test_signed_tortuosity_errors_and_bias():
    gt = [2.0] * 8
    df = _tau_table(gt, {"N_bin": [1.8] * 7 + [math.inf], "nearest": [2.2] * 8})
    s = signed_tortuosity_errors(df)
    nb = s[s.method == "N_bin"].sort_values("subvolume")["signed"].to_numpy()
    assert np.allclose(nb[:7], -0.1) and nb[7] == math.inf
    bias = tortuosity_bias(df)
    row = bias[bias.method == "N_bin"].iloc[0]
    assert row["median_signed"] == pytest.approx(-0.1) and row["median_abs"] == pytest.approx(0.1)
    assert row["ci_high"] <= 0 or row["ci_high"] == math.inf
    near = bias[bias.method == "nearest"].iloc[0]
    assert near["median_signed"] == pytest.approx(0.1) and near["ci_low"] > 0
    # a truth that does not percolate, a method that does: -inf (|signed| = abs error = inf)
    s2 = signed_tortuosity_errors(_tau_table([math.inf, math.inf], {"x": [1.5, math.inf]}))
    assert s2["signed"].tolist() == [-math.inf, 0.0]
    assert signed_tortuosity_errors(df[df.method != "ground_truth"]).empty


def test_findings_use_the_paired_tests():
    rng = np.random.default_rng(0)
    tri = rng.uniform(0.85, 0.9, 8)
    # N_bin better on every pair; N_diffu equal to tri-quadratic up to noise
    df = pd.concat([
        _table({"N_bin": tri + 0.02, "N_diffu": tri + rng.normal(0, 0.002, 8),
                "triquadratic": tri}, metric=m) for m in ("accuracy", "surface_accuracy")])
    f = findings(df, networks=["N_bin", "N_diffu"])[0]
    text = " ".join(f.details)
    assert "N_bin" in text and "p=" in text
    assert any("N_bin" in d and "-> better" in d for d in f.details)
    assert any("N_diffu" in d and "no significant difference" in d for d in f.details)
    assert f.verdict == "partly supported"
