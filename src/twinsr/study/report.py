"""The study's report (``report.md`` and ``report.html``): settings, provenance, summary tables
and the paper's findings checked against the numbers of *this* run.

Every statement about results is computed from the tidy results table; nothing is hard-coded.
The paper's findings (spec §3) checked one by one:

1. networks far beyond interpolation (each network vs tri-quadratic, every α, metric, source;
   paired tests over the same sub-volumes, :mod:`twinsr.study.stats`);
2. stability across α (drop of the median accuracy from the smallest to the largest α);
3. diffusion-informed vs binary network at each α (paper: diffu better at α = 2, 4, slightly
   worse at α = 8);
4. measured vs simulated data (paper: the networks do as well on measured data).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinsr.study.config import network_label
from twinsr.study.evaluate import ALL, HEADLINE, SOURCES
from twinsr.study.stats import (
    BETTER,
    LEVEL,
    NO_DIFFERENCE,
    TOO_FEW,
    WORSE,
    PairedTest,
    paired_comparisons,
)

__all__ = ["Finding", "findings", "summary_table", "write_report"]

N_BIN, N_DIFFU = network_label("bin"), network_label("diffu")


def _quantile(v: np.ndarray, q: float) -> float:
    """Linear-interpolation quantile that treats ``inf`` as a value (no inf - inf = NaN)."""
    if not v.size:
        return math.nan
    s = np.sort(np.asarray(v, dtype=float))
    pos = q * (s.size - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if s[lo] == s[hi] or math.isinf(s[hi]):
        return float(s[hi]) if math.isinf(s[hi]) and pos > lo else float(s[lo])
    return float(s[lo] + (pos - lo) * (s[hi] - s[lo]))


def _median(v: np.ndarray) -> float:
    """Median that treats ``inf`` as a value (NaN only for an empty input)."""
    return _quantile(v, 0.5)


def summary_table(df: Any) -> Any:
    """Median, quartiles and counts per source, α, method and headline metric.

    Returns
    -------
    pandas.DataFrame
        Columns source, alpha, method, metric, median, q25, q75, iqr, n, n_inf.
    """
    import pandas as pd

    rows = []
    for h in HEADLINE:
        metric = h.metric
        sub = df[(df["metric"] == metric) & (df["phase"] == h.phase)]
        for (src, a, m), g in sub.groupby(["source", "alpha", "method"], sort=True):
            v = g["value"].to_numpy(dtype=float)
            q25, med, q75 = (_quantile(v, 0.25), _quantile(v, 0.5), _quantile(v, 0.75))
            rows.append({"source": src, "alpha": int(a), "method": m, "metric": metric,
                         "median": float(med), "q25": float(q25), "q75": float(q75),
                         "iqr": (q75 - q25) if math.isfinite(q75) else math.inf,
                         "n": int(v.size), "n_inf": int(np.isinf(v).sum())})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings with what this run shows."""

    title: str
    paper: str
    verdict: str  # "supported", "partly supported", "not supported", "not tested"
    details: list[str]


def _med(df: Any, source: str, alpha: int, method: str, metric: str, phase: str) -> float:
    v = df[(df["source"] == source) & (df["alpha"] == alpha) & (df["method"] == method)
           & (df["metric"] == metric) & (df["phase"] == phase)]["value"].to_numpy(dtype=float)
    return _median(v)


def _verdict(checks: Sequence[bool]) -> str:
    """"supported" if every check holds, "partly supported" if some do, else "not supported"."""
    return ("supported" if all(checks) else
            "partly supported" if any(checks) else "not supported")


@dataclass(frozen=True)
class _Table:
    """What the findings look at: the table and the sources, α and methods present in it."""

    df: Any
    sources: list[str]
    alphas: list[int]
    present: set[str]
    nets: list[str]
    baseline: str
    seed: int = 0

    def med(self, source: str, alpha: int, method: str, metric: str = "accuracy",
            phase: str = ALL) -> float:
        return _med(self.df, source, alpha, method, metric, phase)


def findings(df: Any, *, networks: Sequence[str], baseline: str = "triquadratic",
             seed: int = 0) -> list[Finding]:
    """Check the paper's four findings on the results table.

    "Better than" claims (findings 1 and 3) use paired tests over the same sub-volumes
    (:func:`twinsr.study.stats.paired_test`: Wilcoxon signed-rank and a bootstrap interval of
    the median paired difference, seeded by ``seed``); findings 2 and 4 compare medians of
    different volumes (no pairs).

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy results table (:data:`twinsr.study.evaluate.COLUMNS`).
    networks : sequence of str
        Network method labels (``N_bin``, ``N_diffu``).
    baseline : str
        The interpolation the networks are compared with.

    Returns
    -------
    list of Finding
        Networks vs interpolation, stability across α, diffusion-informed vs binary,
        measured vs simulated; a finding the table cannot test is "not tested".
    """
    present = set(df["method"])
    t = _Table(df, [s for s in SOURCES if s in set(df["source"])],
               sorted(int(a) for a in df["alpha"].unique()), present,
               [n for n in networks if n in present], baseline, seed)
    return [_vs_interpolation(t), _stability(t), _diffusion_vs_binary(t),
            _measured_vs_simulated(t)]


def _vs_interpolation(t: _Table) -> Finding:
    det: list[str] = []
    counts = dict.fromkeys((BETTER, WORSE, NO_DIFFERENCE, TOO_FEW), 0)
    per_metric: dict[str, list[int]] = {}
    labels = {h.metric: h.label for h in HEADLINE}
    if t.nets and t.baseline in t.present:
        comp = paired_comparisons(t.df, methods=t.nets, baselines=[t.baseline], seed=t.seed)
        for r in comp.itertuples():
            label = labels.get(r.metric, r.metric)
            v = t.med(r.source, r.alpha, r.method, r.metric, r.phase)
            b = t.med(r.source, r.alpha, t.baseline, r.metric, r.phase)
            test = PairedTest(r.n, r.median_diff, r.ci_low, r.ci_high, r.p_value, r.verdict)
            counts[r.verdict] += 1
            ok = r.verdict == BETTER
            if r.verdict != TOO_FEW:
                per_metric.setdefault(label, [0, 0])
                per_metric[label][0] += ok
                per_metric[label][1] += 1
            word = {BETTER: "better", WORSE: "NOT better: significantly worse",
                    NO_DIFFERENCE: "NOT better: no significant difference",
                    TOO_FEW: "not tested: too few pairs"}[r.verdict]
            det.append(f"{r.source}, α={r.alpha}, {label}: {r.method} {v:.4g} vs {t.baseline} "
                       f"{b:.4g} (medians); paired {test.describe()} -> {word}")
        tested = len(comp) - counts[TOO_FEW]
        wins = counts[BETTER]
        verdict = ("not tested" if tested == 0 else "supported" if wins == tested else
                   "partly supported" if wins >= tested / 2 else "not supported")
        det.insert(0, f"networks significantly better than {t.baseline} in {wins} of {tested} "
                      f"paired comparisons (Wilcoxon signed-rank p < {LEVEL} and the "
                      f"{1 - LEVEL:.0%} bootstrap CI of the median paired difference excludes "
                      f"0; pairs = the same sub-volumes; source × α × metric × network); "
                      f"significantly worse in {counts[WORSE]}, no significant difference in "
                      f"{counts[NO_DIFFERENCE]}, too few pairs in {counts[TOO_FEW]}: "
                      + "; ".join(f"{k} {w}/{n}" for k, (w, n) in per_metric.items()))
    else:
        verdict = "not tested"
        det.append(f"needs at least one network and the {t.baseline} baseline")
    return Finding("Networks vs interpolation",
                   "the networks are far beyond tri-quadratic interpolation", verdict, det)


def _stability(t: _Table) -> Finding:
    det = []
    verdict = "not tested"
    if len(t.alphas) >= 2 and t.nets and t.baseline in t.present:
        lo, hi = t.alphas[0], t.alphas[-1]
        checks = []
        for src in t.sources:
            drop_b = t.med(src, lo, t.baseline) - t.med(src, hi, t.baseline)
            for n in t.nets:
                drop = t.med(src, lo, n) - t.med(src, hi, n)
                checks.append(drop <= drop_b)
                det.append(f"{src}: median accuracy drop α={lo}→{hi}: {n} {drop:.4f}, "
                           f"{t.baseline} {drop_b:.4f}")
        if checks:
            verdict = _verdict(checks)
        det.insert(0, "stable = the network loses no more accuracy than interpolation as α grows")
    else:
        det.append("needs two or more α and a network")
    return Finding("Stability across α", "the networks' quality is stable across α",
                   verdict, det)


def _diffusion_vs_binary(t: _Table) -> Finding:
    det = []
    verdict = "not tested"
    if N_BIN in t.present and N_DIFFU in t.present:
        agree = []
        comp = paired_comparisons(t.df, methods=[N_DIFFU], baselines=[N_BIN],
                                  metrics=[("accuracy", ALL)], seed=t.seed)
        tests = {(r.source, r.alpha): r for r in comp.itertuples()}
        for a in t.alphas:
            for src in t.sources:
                r = tests.get((src, a))
                if r is None:
                    continue
                d_sur = (t.med(src, a, N_DIFFU, "surface_accuracy")
                         - t.med(src, a, N_BIN, "surface_accuracy"))
                test = PairedTest(r.n, r.median_diff, r.ci_low, r.ci_high, r.p_value, r.verdict)
                verdict_a = {BETTER: "better", WORSE: "worse", NO_DIFFERENCE: "tie",
                             TOO_FEW: "untested (too few pairs)"}[r.verdict]
                expected = "better" if a in (2, 4) else "worse"
                if r.verdict != TOO_FEW:
                    agree.append(verdict_a == expected)
                det.append(f"α={a}, {src}: N_diffu − N_bin accuracy, paired {test.describe()}; "
                           f"median surface accuracy {d_sur:+.4f} -> N_diffu {verdict_a} "
                           f"(paper: {'better' if a in (2, 4) else 'slightly worse'})")
        if agree:
            verdict = _verdict(agree)
    else:
        det.append("needs both N_bin and N_diffu")
    det.insert(0, "better/worse = significant paired difference of accuracy over the same "
                  f"sub-volumes (Wilcoxon p < {LEVEL} and bootstrap CI excluding 0); otherwise "
                  "a tie")
    return Finding("Diffusion-informed vs binary network",
                   "N_diffu is better at α = 2, 4 and slightly worse at α = 8", verdict, det)


def _measured_vs_simulated(t: _Table) -> Finding:
    det = []
    verdict = "not tested"
    simulated, measured = SOURCES
    if simulated in t.sources and measured in t.sources and t.nets:
        checks = []
        for a in t.alphas:
            for n in [*t.nets, t.baseline] if t.baseline in t.present else t.nets:
                s = t.med(simulated, a, n)
                m = t.med(measured, a, n)
                if math.isnan(s) or math.isnan(m):
                    continue
                if n in t.nets:
                    checks.append(m >= s - 0.01)
                det.append(f"α={a}, {n}: median accuracy measured {m:.4f} vs simulated {s:.4f} "
                           f"(difference {m - s:+.4f})")
        if checks:
            verdict = _verdict(checks)
        det.insert(0, "as well = measured median accuracy at most 0.01 below simulated")
    else:
        det.append("needs simulated and measured test data and a network")
    return Finding("Measured vs simulated data",
                   "networks trained on twins do as well on measured as on simulated data",
                   verdict, det)


# ---------------------------------------------------------------------------- rendering
def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(out_dir: str | Path, df: Any, *, config_yaml: str, meta: dict[str, Any],
                 figures: Sequence[Path], networks: Sequence[str], skipped: Sequence[str],
                 seconds: float, thresholds: dict[str, float] | None = None,
                 validation: dict[str, dict[str, Any]] | None = None,
                 comparisons: Any = None, bias: Any = None, notes: Sequence[str] = (),
                 seed: int = 0) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths.

    ``validation`` maps a sample name to its :meth:`ValidationResult.to_dict` (the twins of the
    calibrated model against the data); the report shows its transport and geometry rows.
    ``comparisons`` (:func:`twinsr.study.stats.paired_comparisons`) and ``bias``
    (:func:`twinsr.study.stats.tortuosity_bias`) are shown as tables when given; ``notes``
    are lines about the evaluation set-up (sizes, fine-tuning split) shown before the findings;
    ``seed`` seeds the findings' bootstrap.
    """
    from twinsr._atomic import atomic_write_text

    out = Path(out_dir)
    summ = summary_table(df)
    found = findings(df, networks=networks, seed=seed)
    blocks: list[tuple[str, Any]] = []
    blocks.append(("h1", f"twinsr study report: {meta.get('name', 'study')}"))
    blocks.append(("p", f"Run time {seconds / 60:.1f} min (this invocation; per-step times "
                        "in steps.json). Device: "
                        f"{meta.get('device', '?')}. git {meta.get('git', 'unknown')}."))
    blocks.append(("h2", "Provenance"))
    blocks.append(("table", (["package", "version"],
                             [[k, v] for k, v in meta.get("versions", {}).items()])))
    if thresholds:
        blocks.append(("h2", "Networks and thresholds μ*"))
        blocks.append(("table", (["network", "threshold μ*"],
                                 [[k, float(v)] for k, v in thresholds.items()])))
    if validation:
        blocks += _validation_blocks(validation)
    if notes:
        blocks.append(("h2", "Evaluation set-up"))
        blocks.append(("ul", list(notes)))
    blocks.append(("h2", "Findings of the paper, checked on this run"))
    for f in found:
        blocks.append(("h3", f"{f.title}: {f.verdict}"))
        blocks.append(("p", f"Paper: {f.paper}."))
        blocks.append(("ul", f.details))
    blocks.append(("h2", "Median and IQR per α and method"))
    blocks.append(("p", "Over sub-volumes (and samples) of each source; IQR = q75 − q25; "
                        "n_inf = non-percolating cases (relative error inf), included in the "
                        "median."))
    for h in HEADLINE:
        label = h.label
        s = summ[summ["metric"] == h.metric] if len(summ) else summ
        if not len(s):
            continue
        blocks.append(("h3", label))
        rows = [[r.source, r.alpha, r.method, r.median, r.iqr, r.n, r.n_inf]
                for r in s.itertuples()]
        blocks.append(("table", (["source", "α", "method", "median", "IQR", "n", "n_inf"], rows)))
    blocks += _comparison_blocks(comparisons)
    blocks += _bias_blocks(bias)
    if skipped:
        blocks.append(("h2", "Skipped evaluations"))
        blocks.append(("ul", list(skipped)))
    blocks.append(("h2", "Figures"))
    for fig in figures:
        if fig.suffix == ".png":
            blocks.append(("img", fig.relative_to(out).as_posix()))
    blocks.append(("h2", "Resolved configuration"))
    blocks.append(("code", config_yaml))

    md, ht = _render(blocks)
    md_path = atomic_write_text(out / "report.md", "\n\n".join(md) + "\n")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px}")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>twinsr study</title>"
           f"<style>{style}</style></head><body>{''.join(ht)}</body></html>\n")
    html_path = atomic_write_text(out / "report.html", doc)
    return md_path, html_path


def _comparison_blocks(comp: Any) -> list[tuple[str, Any]]:
    """The paired-comparison tables, one per headline metric."""
    if comp is None or not len(comp):
        return []
    blocks: list[tuple[str, Any]] = [
        ("h2", "Paired comparisons over the same sub-volumes"),
        ("p", f"Δ = method − baseline per sub-volume (samples of a source pooled); median Δ "
              f"with its {1 - LEVEL:.0%} bootstrap interval, two-sided Wilcoxon signed-rank p. "
              f"better/worse only when p < {LEVEL} and the interval excludes 0; with fewer than "
              "6 pairs no test can reach p < 0.05 (too few pairs). Every table in stats.csv.")]
    for h in HEADLINE:
        c = comp[(comp["metric"] == h.metric) & (comp["phase"] == h.phase)]
        if not len(c):
            continue
        rows = [[r.source, r.alpha, r.method, r.baseline, r.n, r.median_diff,
                 f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]", r.p_value, r.verdict]
                for r in c.itertuples()]
        blocks.append(("h3", f"{h.label} ({'higher' if h.higher_is_better else 'lower'} is "
                             "better)"))
        blocks.append(("table", (["source", "α", "method", "baseline", "n", "median Δ",
                                  "CI", "p", "verdict"], rows)))
    return blocks


def _bias_blocks(bias: Any) -> list[tuple[str, Any]]:
    """The signed tortuosity errors next to the absolute ones."""
    if bias is None or not len(bias):
        return []
    rows = [[r.source, r.alpha, r.method, r.phase, r.tortuosity, r.n, _pct(r.median_signed),
             f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]", _pct(r.median_abs).lstrip("+")]
            for r in bias.itertuples()]
    return [("h2", "Tortuosity bias: signed relative errors"),
            ("p", "Median over sub-volumes of (τ_method − τ_HR) / τ_HR per phase with its 95 % "
                  "bootstrap interval, next to the median absolute relative error. A negative "
                  "bias means the phase is made too well connected; ±inf: one of the two does "
                  "not percolate. Also in bias.csv."),
            ("table", (["source", "α", "method", "phase", "τ", "n", "median signed", "CI",
                        "median |error|"], rows))]


_VALIDATION_PREFIXES = ("volume_fraction.solid", "ssa", "chord_mean.", "tau_eff.", "geodesic.",
                        "constrictivity.", "percolating.")


def _validation_blocks(validation: dict[str, dict[str, Any]]) -> list[tuple[str, Any]]:
    """One table per sample: data against the twins of its calibrated model."""
    blocks: list[tuple[str, Any]] = [
        ("h2", "Digital twins against the data"),
        ("p", "Each calibrated model's realizations against the calibration volume (the "
              "full tables and figures are in validation/NAME/). Deviation = (twins − data) / "
              "data; verdict 'match' within the tolerance, 'within spread' within twice the "
              "data's natural spread over its blocks.")]
    for name, v in validation.items():
        counts = v.get("counts", {})
        blocks.append(("h3", f"{name}: {v.get('family')} model, {v.get('n')} twins of "
                             f"{'×'.join(map(str, v.get('shape', [])))}; "
                             + ", ".join(f"{c} {k}" for k, c in counts.items())))
        rows = [[r["name"], r["data"], r["twin_mean"], _pct(r["deviation"]), r["verdict"]]
                for r in v.get("rows", []) if str(r["name"]).startswith(_VALIDATION_PREFIXES)]
        blocks.append(("table", (["descriptor", "data", "twins (mean)", "deviation", "verdict"],
                                 rows)))
    return blocks


def _pct(v: Any) -> str:
    try:
        return f"{float(v):+.1%}"
    except (TypeError, ValueError):
        return str(v)


def _render(blocks: Sequence[tuple[str, Any]]) -> tuple[list[str], list[str]]:
    """Markdown and HTML pieces of the report's blocks (kind, value)."""
    md, ht = [], []
    for kind, val in blocks:
        if kind in ("h1", "h2", "h3"):
            level = int(kind[1])
            md.append("#" * level + " " + val)
            ht.append(f"<{kind}>{html.escape(val)}</{kind}>")
        elif kind == "p":
            md.append(val)
            ht.append(f"<p>{html.escape(val)}</p>")
        elif kind == "ul":
            md.append("\n".join(f"- {x}" for x in val))
            ht.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in val) + "</ul>")
        elif kind == "table":
            md.append(_md_table(*val))
            ht.append(_html_table(*val))
        elif kind == "img":
            md.append(f"![{val}]({val})")
            ht.append(f'<p><img src="{html.escape(val)}" style="max-width:100%"></p>')
        elif kind == "code":
            md.append("```yaml\n" + val.rstrip() + "\n```")
            ht.append(f"<pre>{html.escape(val)}</pre>")
    return md, ht
