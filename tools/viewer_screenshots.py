"""Screenshots of the napari viewer for the documentation (docs/figures/viewer_*.png).

Runs the comparison a user gets from ``twinsr view --lr LR --sr SR --hr HR``: a measured NMC block
(builtin:nmc_nrel_xct, 0.4 um voxels assumed), downsampled by 2, super-resolved by the pretrained
``nmc_bin_a2`` with TTA (uncertainty map) and its diffusion channels, then one 2-D and one 3-D
screenshot of the canvas. Needs the viewer extra and an OpenGL context; on a machine without a
display::

    xvfb-run -a -s "-screen 0 1400x1000x24" python tools/viewer_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from qtpy.QtWidgets import QApplication

    import twinsr
    from twinsr.io import write_volume
    from twinsr.viewer import open_viewer

    hr = twinsr.read_volume("builtin:nmc_nrel_xct")[60:124, 100:164, 100:164]
    lr = twinsr.downsample(hr, 2, crop=True)
    sr, std = twinsr.superresolve(lr, "builtin:nmc_bin_a2", tta=8, return_uncertainty=True,
                                  device="cpu", precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        paths = {"hr": write_volume(t / "hr.tif", hr, voxel_size=0.4),
                 "lr": write_volume(t / "lr.tif", lr, voxel_size=0.8),
                 "sr": write_volume(t / "sr.tif", sr, voxel_size=0.4),
                 "uncertainty": write_volume(t / "u.tif", std, voxel_size=0.4,
                                             metadata={"tta": 8, "content": "std"}),
                 "diffusion": write_volume(t / "d.tif", twinsr.diffusion_channels(lr, axis=0),
                                           voxel_size=0.8, metadata={"channels": ["pore",
                                                                                  "solid"]})}
        viewer = open_viewer(**{k: str(v) for k, v in paths.items()}, show=True)
        viewer.window._qt_window.resize(1300, 900)
        viewer.dims.set_point(0, 32 * 0.4)
        QApplication.processEvents()
        out = ROOT / "docs" / "figures"
        viewer.screenshot(str(out / "viewer_comparison.png"), canvas_only=False)
        viewer.dims.ndisplay = 3
        for layer in viewer.layers:
            layer.visible = layer.name == "errors"
        viewer.reset_view()
        viewer.camera.angles = (0, -30, 60)
        viewer.camera.zoom *= 0.75
        QApplication.processEvents()
        viewer.screenshot(str(out / "viewer_3d.png"), canvas_only=True, size=(600, 600))
        viewer.close()
    print("wrote", out / "viewer_comparison.png", out / "viewer_3d.png")


if __name__ == "__main__":
    main()
