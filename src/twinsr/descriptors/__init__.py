"""Morphology and transport descriptors of binary volumes (1 = solid, 0 = pore, axes (z, y, x)).

Used by model validation, descriptor-matched calibration, metrics and the study. Every function
checks its input once and works in voxel units unless a ``voxel_size`` is given.

* :func:`describe` → :class:`Descriptors`: every descriptor group at once (``which`` selects),
  with ``.scalars()`` (flat name → float) and ``.to_dict()`` (JSON).
* :func:`volume_fraction`; :func:`two_point_coverage` / :func:`two_point_coverages` (S₂ per axis,
  FFT, non-periodic) and :func:`correlation_length`.
* :func:`surface_area`, :func:`specific_surface_area` (Crofton on 13 directions by default, or
  marching cubes; measured bias in :mod:`twinsr.descriptors.surface`).
* :func:`chord_lengths`, :func:`chord_length_distribution`, :func:`mean_chord_length`.
* :func:`local_thickness`, :func:`size_distribution` (continuous PSD), :func:`intrusion_radius`,
  :func:`intrusion` (simulated mercury intrusion), :func:`constrictivity` (β = r_min²/r_max²).
* :func:`percolation_shares` (percolating / one-face / isolated shares per axis).
* :func:`effective_tortuosities`, :func:`geodesic_tortuosities`, :func:`geodesic_lengths`
  (wrappers over :mod:`twinsr.transport`).
"""

from __future__ import annotations

from twinsr.descriptors.chords import (
    ChordLengthDistribution,
    chord_length_distribution,
    chord_lengths,
    mean_chord_length,
)
from twinsr.descriptors.connectivity import PercolationShares, percolation_shares
from twinsr.descriptors.describe import DESCRIPTOR_GROUPS, GEOMETRIC_GROUPS, Descriptors, describe
from twinsr.descriptors.sizes import (
    Constrictivity,
    SizeDistribution,
    constrictivity,
    intrusion,
    intrusion_radius,
    local_thickness,
    size_distribution,
    squared_distance_transform,
)
from twinsr.descriptors.surface import SURFACE_METHODS, specific_surface_area, surface_area
from twinsr.descriptors.tortuosity import effective_tortuosities, geodesic_lengths, geodesic_tortuosities
from twinsr.descriptors.twopoint import (
    correlation_length,
    two_point_coverage,
    two_point_coverages,
    volume_fraction,
)

__all__ = [
    "DESCRIPTOR_GROUPS",
    "GEOMETRIC_GROUPS",
    "SURFACE_METHODS",
    "ChordLengthDistribution",
    "Constrictivity",
    "Descriptors",
    "PercolationShares",
    "SizeDistribution",
    "chord_length_distribution",
    "chord_lengths",
    "constrictivity",
    "correlation_length",
    "describe",
    "effective_tortuosities",
    "geodesic_lengths",
    "geodesic_tortuosities",
    "intrusion",
    "intrusion_radius",
    "local_thickness",
    "mean_chord_length",
    "percolation_shares",
    "size_distribution",
    "specific_surface_area",
    "squared_distance_transform",
    "surface_area",
    "two_point_coverage",
    "two_point_coverages",
    "volume_fraction",
]
