"""Run the study on your own data

The study runs the paper's whole experiment on your tomograms: calibrate a twin model per
sample, build digital twins, train N_bin and N_diffu networks per α, then super-resolve test
twins and your measured volumes and compare with interpolation on all four metrics. Here "your
data" is a block of the built-in NMC cathode written to `my_scan.tif`, with the CI-sized `micro`
preset (tiny networks, seconds of training: they lose to interpolation here, the numbers only show
the mechanics). For real
results use `train_preset: quick` (about 45 minutes on 2 CPU cores) or `paper` (GPU).
"""

import shutil
from pathlib import Path

import pandas as pd

import twinsr
from twinsr.study import StudyConfig, run_study

scan = twinsr.read_volume("builtin:nmc_nrel_xct")[:96, :96, :96]
twinsr.write_volume("my_scan.tif", scan, voxel_size=0.4)  # your segmented tomogram, 1 = solid

config = StudyConfig.preset("micro", samples=["my_scan.tif"], measured=["my_scan.tif"],
                            alphas=[2], inputs=["bin"], calibration_crop=64, measured_crop=64)
print(config.model_dump_json(include={"samples", "alphas", "inputs", "shape", "train_preset"}))
result = run_study(config, "my-study")   # rerunning resumes; the same as `twinsr study -c my.yaml`

table = pd.read_csv(result.results_path)
summary = (table[table["metric"].isin(["accuracy", "surface_accuracy"])]
           .groupby(["source", "method", "metric"])["value"].median().unstack("metric"))
print(summary.round(4).to_string())
print("report:", result.report_path.name, "| figures:",
      sorted({p.stem for p in result.figures if p.suffix == ".png"}))
for fig in ("boxplots", "error_slices__measured__my_scan"):
    shutil.copy(Path("my-study") / "figures" / f"{fig}.png", f"{fig}.png")
