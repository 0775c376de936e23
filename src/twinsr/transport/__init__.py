"""Transport in binary volumes: per-phase Laplace solves, the diffusion image, tortuosities.

* :func:`solve_laplace` – steady diffusion in one phase (voxel finite volumes, multigrid CG).
* :func:`diffusion_channels` – the two-channel image Diffu(I) (spec §2.1.4, Eqs. (7)–(8)).
* :func:`effective_tortuosity` – τ_eff = ε D / D_eff (spec §2.1.5).
* :func:`geodesic_tortuosity` – mean geodesic tortuosity (spec §2.3.3–4).
* :func:`classify_clusters` – percolating / dead-end / floating clusters of a phase;
  :func:`floating_mask` – floating voxels of both phases.
* :func:`multiphase_tortuosity` – labelled volumes with a conductivity per label (harmonic-mean
  face conductances), periodic side faces, anisotropic voxels; τ = (Σ D_p ε_p) / D_eff.
  :func:`effective_tortuosity` and :func:`geodesic_tortuosity` take ``voxel_size`` (and the
  former ``periodic``) too.
* :func:`face_fluxes`, :func:`effective_diffusivity` – the discrete flux of any potential field
  (e.g. a predicted solution) through every face normal to the axis, and D_eff / D from it.
"""

from __future__ import annotations

from twinsr.transport.clusters import ClusterMap, classify_clusters, floating_mask
from twinsr.transport.flux import effective_diffusivity, face_fluxes, flux_spread
from twinsr.transport.laplace import LaplaceSolution, diffusion_channels, solve_laplace
from twinsr.transport.multiphase import MultiphaseResult, multiphase_tortuosity
from twinsr.transport.tortuosity import (
    GeodesicResult,
    TortuosityResult,
    effective_tortuosity,
    geodesic_tortuosity,
)

__all__ = [
    "ClusterMap",
    "GeodesicResult",
    "LaplaceSolution",
    "MultiphaseResult",
    "TortuosityResult",
    "classify_clusters",
    "diffusion_channels",
    "effective_diffusivity",
    "effective_tortuosity",
    "face_fluxes",
    "floating_mask",
    "flux_spread",
    "geodesic_tortuosity",
    "multiphase_tortuosity",
    "solve_laplace",
]
