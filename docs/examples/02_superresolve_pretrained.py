"""Super-resolve a tomogram with a pretrained model

Downsample a measured NMC block by α = 2 (strided, as the networks were trained), super-resolve it
with the shipped binary and diffusion-informed networks (no training), and score the results
against the ground truth next to tri-quadratic interpolation. Test-time augmentation over the 8
axis flips also gives a per-voxel uncertainty map. For your own data: `lr =
twinsr.read_volume("your_lowres.tif")` (binary, 1 = solid) and skip the scoring.
"""

import matplotlib.pyplot as plt
import numpy as np

import twinsr
from twinsr.study.plots import error_image

hr = twinsr.read_volume("builtin:nmc_superres_xct")[:64, :64, :64]  # ground truth
lr = twinsr.downsample(hr, 2, crop=True)                              # what a scanner gives
print(f"LR {lr.shape} -> HR {hr.shape}")

results = {"tri-quadratic": twinsr.upsample(lr, 2, method="triquadratic")}
for name in ("nmc_bin_a2", "nmc_diffu_a2"):
    results[name] = twinsr.superresolve(lr, f"builtin:{name}", device="cpu")
sr, std = twinsr.superresolve(lr, "builtin:nmc_bin_a2", tta=8, return_uncertainty=True,
                              device="cpu")
results["nmc_bin_a2 + TTA 8"] = sr

print(f"{'method':20s} {'accuracy':>9s} {'surface acc.':>13s}")
for name, out in results.items():
    print(f"{name:20s} {twinsr.accuracy(out, hr):9.4f} {twinsr.surface_accuracy(out, hr, 2):13.4f}")
print(f"uncertainty: mean {std.mean():.4f}, max {std.max():.3f}; "
      f"{np.mean(std > 0.1):.1%} of voxels above 0.1")

z = 32
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
panels = [("LR input (z = 16)", lr[z // 2], "gray"),
          ("tri-quadratic: errors", error_image(results["tri-quadratic"][z], hr[z]), None),
          ("nmc_bin_a2: errors", error_image(results["nmc_bin_a2"][z], hr[z]), None),
          ("TTA uncertainty", std[z], "inferno")]
for ax, (title, img, cmap) in zip(axes, panels, strict=True):
    ax.imshow(img, cmap=cmap, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
fig.suptitle("wrong solid magenta, wrong pore blue")
fig.tight_layout()
fig.savefig("superresolution.png", dpi=90)
