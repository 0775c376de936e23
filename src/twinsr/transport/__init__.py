"""Transport in binary volumes: per-phase Laplace solves, the diffusion image, tortuosities.

* :func:`solve_laplace` – steady diffusion in one phase (voxel finite volumes, multigrid CG).
* :func:`diffusion_channels` – the two-channel image Diffu(I) (spec §2.1.4, Eqs. (7)–(8)).
* :func:`effective_tortuosity` – τ_eff = ε D / D_eff (spec §2.1.5).
* :func:`geodesic_tortuosity` – mean geodesic tortuosity (spec §2.3.3–4).
"""

from __future__ import annotations

from twinsr.transport.laplace import LaplaceSolution, diffusion_channels, solve_laplace
from twinsr.transport.tortuosity import (
    GeodesicResult,
    TortuosityResult,
    effective_tortuosity,
    geodesic_tortuosity,
)

__all__ = [
    "GeodesicResult",
    "LaplaceSolution",
    "TortuosityResult",
    "diffusion_channels",
    "effective_tortuosity",
    "geodesic_tortuosity",
    "solve_laplace",
]
