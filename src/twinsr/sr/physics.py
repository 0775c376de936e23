"""Physics outputs of the super-resolution networks: the HR diffusion solution (spec §4).

A network with ``out_channels=3`` predicts, on the HR grid, the solid-phase logit together with the
pore and the solid solution of the Laplace problem of :func:`twinsr.transport.diffusion_channels`
(u = 0 on the inlet face, u = 1 on the outlet face along the transport axis, zero flux elsewhere;
0 outside the phase). This module holds the pieces that keep such targets physically consistent:

* :func:`floating_mask` — voxels whose 6-connected phase cluster touches neither Dirichlet face
  (the solver sets them to 0, and they stay 0 under every symmetry);
* :func:`axis_symmetries` — the 16 cube symmetries that map the transport axis onto itself. The
  other 32 would move the potential drop to another axis, which a binary input cannot reveal;
* :func:`transform_solution` — a symmetry applied to solution channels: when it reverses the
  transport axis, inlet and outlet swap and the solution becomes u → 1 − u on the phase voxels of
  clusters touching a face (percolating and dead-end clusters); floating clusters and voxels
  outside the phase stay 0. The result is again the discrete solution for the transformed image;
* :func:`solution_error` — the error of a predicted HR solution against the solve on the true HR
  image: RMSE inside the true phase and the effective tortuosity implied by the predicted field.

References
----------
Spec §2.1.4 (Eqs. 7–8, the diffusion channels), §2.1.5 (τ_eff = ε·D/D_eff), §4 (future work).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.ndimage as ndi

from twinsr._validation import as_binary_volume, check_axis, check_finite
from twinsr.exceptions import VolumeError
from twinsr.sr.data import Symmetry, apply_symmetry, cube_symmetries

__all__ = [
    "SolutionError",
    "axis_symmetries",
    "floating_mask",
    "reverses_axis",
    "solution_error",
    "transform_solution",
]


@lru_cache(maxsize=3)
def axis_symmetries(axis: int) -> tuple[Symmetry, ...]:
    """The 16 cube symmetries that map the transport ``axis`` onto itself (in either direction).

    Examples
    --------
    >>> len(axis_symmetries(0)), axis_symmetries(0)[0]
    (16, Symmetry(perm=(0, 1, 2), flips=(False, False, False)))
    """
    ax = check_axis(axis)
    return tuple(s for s in cube_symmetries() if s.perm[ax] == ax)


def reverses_axis(sym: Symmetry, axis: int) -> bool:
    """True if ``sym`` (which must keep ``axis`` in place) reverses the transport axis."""
    ax = check_axis(axis)
    if sym.perm[ax] != ax:
        raise VolumeError(f"symmetry {sym} moves the transport axis {ax}; use axis_symmetries()")
    return bool(sym.flips[ax])


def floating_mask(im: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Voxels of 6-connected clusters (of either phase) that touch neither face along ``axis``.

    Parameters
    ----------
    im : array_like, shape (Z, Y, X)
        Binary volume, 1 = solid, 0 = pore.
    axis : int
        Transport axis.

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
        True on floating voxels (the Laplace solver gives them u = 0 in their phase's channel).

    Examples
    --------
    >>> im = np.zeros((5, 3, 3), np.uint8); im[2, 1, 1] = 1
    >>> int(floating_mask(im).sum())
    1
    """
    vol = as_binary_volume(im, "im")
    ax = check_axis(axis)
    out = np.zeros(vol.shape, dtype=bool)
    for ph in (0, 1):
        lab, n = ndi.label(vol == ph)
        if n == 0:
            continue
        touch = np.zeros(n + 1, dtype=bool)
        touch[np.take(lab, 0, axis=ax)] = True
        touch[np.take(lab, -1, axis=ax)] = True
        touch[0] = True
        out |= ~touch[lab]
    return out


def _flip_solution(sol: np.ndarray, im: np.ndarray, floating: np.ndarray) -> np.ndarray:
    """u → 1 − u on the non-floating voxels of each channel's phase (channel c: phase c)."""
    out = np.array(sol, dtype=np.float32, copy=True)
    for c in range(out.shape[0]):
        m = (im == c) & ~floating
        out[c][m] = 1.0 - out[c][m]
    return out


def transform_solution(
    sol: np.ndarray, im: np.ndarray, sym: Symmetry, *, axis: int, floating: np.ndarray
) -> np.ndarray:
    """Apply a transport-axis-preserving symmetry to a pair of solution channels.

    Parameters
    ----------
    sol : ndarray, shape (2, Z, Y, X)
        Pore (channel 0) and solid (channel 1) solutions on ``im``, values in [0, 1].
    im : ndarray, shape (Z, Y, X)
        The binary image they solve (1 = solid); untransformed.
    sym : Symmetry
        An element of :func:`axis_symmetries` ``(axis)``.
    axis : int
        Transport axis.
    floating : ndarray of bool, shape (Z, Y, X)
        :func:`floating_mask` of ``im`` (on a crop: the crop of the whole volume's mask).

    Returns
    -------
    ndarray of float32, shape (2, Z', Y', X')
        Solutions for ``apply_symmetry(im, sym)``; with a reversed transport axis u → 1 − u on
        the phase voxels outside floating clusters.

    Raises
    ------
    VolumeError
        ``sym`` moves the transport axis.
    """
    rev = reverses_axis(sym, axis)
    if rev:
        sol = _flip_solution(sol, np.asarray(im), np.asarray(floating, dtype=bool))
    return np.ascontiguousarray(apply_symmetry(np.asarray(sol, dtype=np.float32), sym))


@dataclass(frozen=True)
class SolutionError:
    """Error of a predicted HR diffusion solution against the solve on the true HR image.

    Attributes
    ----------
    rmse : tuple of float
        (pore, solid) RMSE of u inside the true phase (all voxels of the phase), dimensionless.
    tau_true : tuple of float
        (pore, solid) τ_eff of the true HR image (inf if the phase does not percolate).
    tau_pred : tuple of float
        (pore, solid) τ_eff implied by the predicted field: ε·A / (F̄·L), with F̄ the mean over
        all L + 1 faces normal to the axis of the discrete flux of the predicted u through the
        true geometry (percolating clusters, unit face conductance, half-link 2 at the faces).
        The predicted field is not conservative, so F̄ is an average, not an exact flux.
    """

    rmse: tuple[float, float]
    tau_true: tuple[float, float]
    tau_pred: tuple[float, float]


def _mean_flux(u: np.ndarray, perc: np.ndarray) -> float:
    """Mean face flux of field u (transport axis first) through percolating voxels ``perc``."""
    uu = np.where(perc, u.astype(np.float64), 0.0)
    both = perc[1:] & perc[:-1]
    inner = np.where(both, uu[1:] - uu[:-1], 0.0).sum(axis=(1, 2))
    inlet = 2.0 * uu[0][perc[0]].sum()
    outlet = 2.0 * (1.0 - uu[-1][perc[-1]]).sum()
    return float(np.concatenate([[inlet], inner, [outlet]]).mean())


def solution_error(
    pred_solution: np.ndarray,
    hr_image: np.ndarray,
    *,
    axis: int = 0,
    true_solution: np.ndarray | None = None,
    device: str = "auto",
) -> SolutionError:
    """Compare a predicted HR solution with the Laplace solve on the true HR image.

    Parameters
    ----------
    pred_solution : array_like, shape (2, Z, Y, X)
        Predicted pore and solid solutions (e.g. from ``superresolve(..., return_solution=True)``).
    hr_image : array_like, shape (Z, Y, X)
        True binary HR image (1 = solid).
    axis : int
        Transport axis the solution was computed for.
    true_solution : array_like, shape (2, Z, Y, X), optional
        ``diffusion_channels(hr_image, axis=axis)`` if already known (else it is solved here).
    device : str
        Device of the solve.

    Returns
    -------
    SolutionError

    Raises
    ------
    VolumeError
        Shapes disagree, non-finite predictions, non-binary image.

    Examples
    --------
    >>> from twinsr.transport import diffusion_channels
    >>> im = np.zeros((8, 4, 4), np.uint8); im[:, :2] = 1
    >>> e = solution_error(diffusion_channels(im), im)
    >>> [round(r, 6) for r in e.rmse], [round(t, 4) for t in e.tau_pred]
    ([0.0, 0.0], [1.0, 1.0])
    """
    from twinsr.transport import diffusion_channels

    hr = as_binary_volume(hr_image, "hr_image")
    ax = check_axis(axis)
    pred = np.asarray(pred_solution, dtype=np.float32)
    if pred.shape != (2, *hr.shape):
        raise VolumeError(f"`pred_solution` must have shape (2, {', '.join(map(str, hr.shape))}), "
                          f"got {pred.shape}")
    check_finite(pred, "pred_solution")
    true = (diffusion_channels(hr, axis=ax, device=device) if true_solution is None
            else np.asarray(true_solution, dtype=np.float32))
    if true.shape != pred.shape:
        raise VolumeError(f"`true_solution` must have shape {pred.shape}, got {true.shape}")
    hr_t = np.moveaxis(hr, ax, 0)
    area = hr_t.shape[1] * hr_t.shape[2]
    n0 = hr_t.shape[0]
    rmse, tau_t, tau_p = [], [], []
    for ph in (0, 1):
        m = hr == ph
        d = pred[ph][m] - true[ph][m]
        rmse.append(float(np.sqrt(np.mean(d.astype(np.float64) ** 2))) if d.size else 0.0)
        phase_t = hr_t == ph
        lab, n = ndi.label(phase_t)
        tin = np.zeros(n + 1, bool)
        tout = np.zeros(n + 1, bool)
        tin[lab[0]] = True
        tout[lab[-1]] = True
        tin[0] = False
        perc = (tin & tout)[lab]
        eps = float(phase_t.mean())
        taus = []
        for field in (true[ph], pred[ph]):
            f = _mean_flux(np.moveaxis(field, ax, 0), perc) if perc.any() else 0.0
            taus.append(eps * area / (f * n0) if f > 0 else math.inf)
        tau_t.append(taus[0])
        tau_p.append(taus[1])
    return SolutionError((rmse[0], rmse[1]), (tau_t[0], tau_t[1]), (tau_p[0], tau_p[1]))
