"""The study end to end: run the ``quick`` preset (or another) and record its run time, the
settings of every preset and the headline numbers in BENCHMARKS.md (section ``study``).

Run: .venv/bin/python benchmarks/bench_study.py [--preset quick] [--out quick-study]
(rerunning with the same folder resumes; the recorded time is the sum over the runs in
``steps.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import measure, table, write_section

from twinsr.study import PRESETS, StudyConfig, findings, run_study, summary_table


def _preset_rows() -> list[list[object]]:
    from twinsr.study.pipeline import MICRO_TRAIN

    rows = []
    for name in ("micro", "demo", "quick", "paper"):
        c = StudyConfig.preset(name)
        train = f"{c.train_preset}" + (f" + {c.train_overrides}" if c.train_overrides else "")
        if c.train_preset == "micro":
            train = f"quick + {MICRO_TRAIN}"
        rows.append([name, ", ".join(c.samples), "×".join(map(str, c.shape)), c.n_realizations,
                     "/".join(map(str, c.split)), ",".join(map(str, c.alphas)),
                     ",".join(c.inputs), train, ", ".join(c.measured),
                     c.measured_crop or "full", c.subvolumes, ",".join(c.baselines)])
    return rows


def _medians(summ, metrics: list[str]) -> list[list[object]]:
    """[source, α, method, median of each metric] for every group that has all ``metrics``."""
    sub = summ[summ["metric"].isin(metrics)]
    if not len(sub):
        return []
    wide = sub.pivot(index=["source", "alpha", "method"], columns="metric", values="median")
    wide = wide.reindex(columns=metrics).dropna()
    return [[src, int(a), m, *map(float, vals)]
            for (src, a, m), vals in zip(wide.index, wide.to_numpy(), strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    ap.add_argument("--out", default="quick-study")
    args = ap.parse_args()
    t0 = time.perf_counter()

    def show(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    res, seconds, peak = measure(lambda: run_study(StudyConfig.preset(args.preset), args.out,
                                                   progress=show))
    runs = json.loads((Path(args.out) / "steps.json").read_text())["runs"]
    total = sum(r["seconds"] for r in runs)
    step_rows = []
    for r in runs:
        for step, sec in r["step_seconds"].items():
            step_rows.append([r["started"], step, r["steps"][step], sec])
    summ = summary_table(res.table)
    rows = _medians(summ, ["accuracy", "surface_accuracy"])
    tau_rows = _medians(summ, ["tau_geod_rel_err", "tau_eff_rel_err"])
    found = findings(res.table, networks=[f"N_{i}" for i in res.config.inputs])
    # does every network beat tri-quadratic on accuracy and surface accuracy everywhere?
    head = {tuple(r[:3]): r[3:] for r in rows}
    beats = []
    for src in sorted(set(res.table["source"])):
        for a in res.config.alphas:
            tri = head.get((src, a, "triquadratic"))
            for n in (f"N_{i}" for i in res.config.inputs):
                net = head.get((src, a, n))
                if tri and net:
                    beats += [(src, a, n, metric, v > t) for metric, t, v
                              in zip(("accuracy", "surface_accuracy"), tri, net, strict=True)]
    n_beat = sum(b[-1] for b in beats)
    misses = [f"{s} α={a} {n} {m}" for s, a, n, m, ok in beats if not ok]
    body = (
        f"Preset **{args.preset}** run end to end with `run_study` (calibrate → database → train "
        f"→ evaluate → table → figures → report). **Wall-clock {total / 60:.1f} min** summed over "
        f"the {len(runs)} invocation(s) in steps.json (a rerun resumes and skips complete "
        f"steps; this invocation {seconds / 60:.1f} min, peak RSS increase {peak:.2f} GiB). "
        f"Device: {res.config.device} → "
        f"{json.loads((Path(args.out) / 'study.json').read_text())['device']}.\n\n"
        "### Presets\n\n"
        + table(["preset", "samples", "HR shape", "realizations", "split", "α", "inputs",
                 "training", "measured", "measured crop", "sub-volumes", "baselines"],
                _preset_rows())
        + "\n\n### Step times (s)\n\n"
        + table(["run started", "step", "status", "seconds"], step_rows)
        + "\n\n### Headline: median over sub-volumes\n\n"
        + table(["source", "α", "method", "accuracy", "surface accuracy"], rows)
        + "\n\n### Tortuosity relative errors (median, mean over phases)\n\n"
        + table(["source", "α", "method", "geodesic τ", "effective τ"], tau_rows)
        + f"\n\nNetworks beat tri-quadratic on accuracy and surface accuracy in {n_beat} of "
        f"{len(beats)} (source, α, network, metric) cases"
        + (f"; not in: {', '.join(misses)}." if misses else ".")
        + "\n\n### The paper's findings on this run\n\n"
        + "\n".join(f"- **{f.title}**: {f.verdict}" for f in found)
        + "\n\nThresholds μ*: " + ", ".join(f"{k} {v:.3f}" for k, v in res.thresholds.items())
        + (f"\n\nSkipped: {'; '.join(res.skipped)}" if res.skipped else "")
    )
    write_section("study", body, command=f"python benchmarks/bench_study.py --preset "
                                         f"{args.preset} --out {args.out}")
    print(body)


if __name__ == "__main__":
    main()
