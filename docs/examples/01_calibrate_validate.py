"""Calibrate a twin model to your tomogram and validate it

Fit the paper's χ² excursion-set model to a measured binary volume (here a block of the built-in
NMC cathode; use `twinsr.read_volume("your_scan.tif")` for your own, 1 = solid), draw digital
twins from it, and compare twins and data on the morphological and transport descriptors.
`validate` judges each descriptor against the data's own spread over its blocks.
"""

import matplotlib.pyplot as plt

import twinsr
from twinsr.stochastic import plot_calibration

im = twinsr.read_volume("builtin:nmc_nrel_xct")[60:156, 100:196, 100:196]  # a 96³ block
print(f"data: shape {im.shape}, solid fraction {im.mean():.3f}")

fit = twinsr.calibrate(im)  # chi-square model: nu from the volume fraction, gamma from S2
print(f"fitted: {fit.model.to_dict()['covariance']} covariance, nu = {fit.model.nu:.3f}, "
      f"gamma = {fit.model.gamma:.4f} per voxel, S2 rms residual {fit.residual:.2e}")
plot_calibration(fit, "two_point_coverage.png")

twin = fit.model.sample(im.shape, rng=0)  # a digital twin of the same size, reproducible by seed
print(f"twin: solid fraction {twin.mean():.3f}")

v = twinsr.validate(fit.model, im, n=2, shape=64, groups=("s2", "surface_area", "chords",
                                                          "tau_eff"))
print(f"{'descriptor':32s} {'data':>9s} {'twins':>9s}  verdict")
for row in v.rows:
    print(f"{row.name:32s} {row.data:9.4g} {row.twin_mean:9.4g}  {row.verdict}")
print("verdicts:", v.counts)

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, vol, title in zip(axes, (im, twin), ("measured (slice z = 48)", "digital twin"), strict=True):
    ax.imshow(vol[48], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
fig.savefig("data_vs_twin.png", dpi=90)
