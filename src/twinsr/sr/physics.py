"""Physics outputs of the super-resolution networks: the HR diffusion solution (spec §4).

A network with ``out_channels=3`` predicts, on the HR grid, the solid-phase logit together with the
pore and the solid solution of the Laplace problem of :func:`twinsr.transport.diffusion_channels`
(u = 0 on the inlet face, u = 1 on the outlet face along the transport axis, zero flux elsewhere;
0 outside the phase). Everything such networks need lives here, and no core module of
:mod:`twinsr.sr` imports it:

* :class:`SolutionCropSampler` — crops with 3-channel HR targets (binary, pore solution, solid
  solution), augmented only by the 16 symmetries that keep the transport axis in place; when one
  reverses the axis the solutions (HR targets and LR solution inputs) become u → 1 − u on the
  non-floating phase voxels (:func:`twinsr.sr.symmetry.transform_solution`), so every augmented
  pair still solves the same transport problem;
* :func:`combined_loss` — BCE on the morphology + w · the MSE of the solutions, each voxel's error
  taken in the channel of its TRUE HR phase (:func:`solution_loss`, per crop, is the target
  kind's loss that training adds to the configured objective);
* the target kind ``"morph+diffu"`` (registered with :mod:`twinsr.sr.targets` at import);
* :func:`solution_error` — the error of a predicted HR solution against the solve on the true HR
  image: RMSE inside the true phase and the effective tortuosity implied by the predicted field.

:func:`floating_mask`, :func:`axis_symmetries`, :func:`reverses_axis` and
:func:`transform_solution` are defined in the leaf :mod:`twinsr.sr.symmetry` (the database needs
the floating mask too) and re-exported here.

References
----------
Spec §2.1.4 (Eqs. 7–8, the diffusion channels), §2.1.5 (τ_eff = ε·D/D_eff), §4 (future work).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from twinsr._validation import as_binary_volume, check_axis, check_finite
from twinsr.exceptions import ConfigError, DatasetError, VolumeError
from twinsr.sr.data import CropSampler, Window
from twinsr.sr.objectives import bce_loss
from twinsr.sr.symmetry import (
    Symmetry,
    apply_symmetry,
    axis_symmetries,
    reverses_axis,
    transform_solution,
)
from twinsr.sr.targets import TargetKind, register_target_kind
from twinsr.transport.clusters import classify_clusters, floating_mask
from twinsr.transport.flux import effective_diffusivity, face_fluxes

__all__ = [
    "MORPH_DIFFU",
    "SolutionCropSampler",
    "SolutionError",
    "axis_symmetries",
    "combined_loss",
    "floating_mask",
    "reverses_axis",
    "solution_error",
    "solution_loss",
    "transform_solution",
]


class SolutionCropSampler(CropSampler):
    """Crop sampler whose targets carry the HR diffusion solution (``targets="morph+diffu"``).

    Parameters
    ----------
    sources : sequence of (lr_channels, hr)
        As for :class:`~twinsr.sr.data.CropSampler`; with 3 LR channels the LR solutions are
        transformed like the HR ones.
    solutions : sequence of (hr_solution, hr_floating)
        Per source, the HR diffusion channels float32 (2, Z, Y, X) of ``hr`` and its
        floating-cluster mask (Z, Y, X) (:func:`floating_mask`).
    axis : int
        Transport axis of the solutions.
    alpha, crop, rng, augment
        As for :class:`~twinsr.sr.data.CropSampler`; ``augment`` draws uniformly from the 16
        :func:`axis_symmetries` ``(axis)``.
    flux : bool
        Append the flux magnitude |∇u| of the HR solution as a 4th target channel (for the
        ``"flux_bce"`` objective; :func:`twinsr.sr.data.flux_magnitude`).

    Raises
    ------
    DatasetError
        No sources, crops that do not fit, or ``solutions`` that do not match the sources.

    Examples
    --------
    >>> hr = np.zeros((8, 8, 8), np.uint8); hr[:, :4] = 1
    >>> sol = np.zeros((2, 8, 8, 8), np.float32)
    >>> s = SolutionCropSampler([((hr[::2, ::2, ::2],), hr)], solutions=[(sol, hr * 0)], axis=0,
    ...                         alpha=2, crop=3, rng=0)
    >>> s.sample(2)[1].shape
    (2, 3, 6, 6, 6)
    """

    def __init__(
        self,
        sources: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
        *,
        solutions: Sequence[tuple[np.ndarray, np.ndarray]],
        axis: int,
        alpha: int,
        crop: int,
        rng: int | np.random.Generator | None = None,
        augment: bool = True,
        flux: bool = False,
    ) -> None:
        sols = list(solutions)
        super().__init__(sources, alpha=alpha, crop=crop, rng=rng, augment=augment, axis=axis,
                         flux_solutions=[s for s, _ in sols] if flux else None)
        self.axis = check_axis(axis)
        self.solutions = sols
        if len(self.solutions) != len(self.sources):
            raise DatasetError(f"{len(self.solutions)} solution arrays for {len(self.sources)} "
                               "sources; give one (hr_solution, hr_floating) per source")
        self._lr_floating: list[np.ndarray | None] = []
        for (chans, hr), (sol, flo) in zip(self.sources, self.solutions, strict=True):
            if tuple(sol.shape) != (2, *hr.shape) or tuple(flo.shape) != tuple(hr.shape):
                raise DatasetError(f"HR solution of shape {tuple(sol.shape)} / floating mask "
                                   f"{tuple(flo.shape)} do not match HR shape "
                                   f"{tuple(hr.shape)}; expected (2, *hr.shape)")
            self._lr_floating.append(floating_mask(np.asarray(chans[0]), axis=self.axis)
                                     if len(chans) == 3 else None)

    def choose_symmetry(self, rng: np.random.Generator | None = None) -> Symmetry:
        """Uniform over the 16 symmetries keeping the transport axis (identity without augment)."""
        rng = self.rng if rng is None else rng
        syms = axis_symmetries(self.axis)
        return syms[int(rng.integers(len(syms))) if self.augment else 0]

    def draw_with_solution(self, sym: Symmetry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`draw`, plus the HR solution crop; ``sym`` must keep the transport axis.

        Returns
        -------
        lr : float32 (C, n, n, n)
            Inputs; for C = 3 the LR solutions transformed like the HR ones.
        hr : uint8 (αn, αn, αn)
        hr_solution : float32 (2, αn, αn, αn)
            Diffusion channels of ``hr`` after the symmetry (see :func:`transform_solution`).

        Raises
        ------
        VolumeError
            ``sym`` moves the transport axis.
        """
        reverses_axis(sym, self.axis)  # refuse before consuming the RNG
        return self._read_with_solution(self.window(sym), sym)

    def _read_with_solution(self, w: Window,
                            sym: Symmetry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chans, hr = self.sources[w.index]
        lr = np.stack([np.asarray(c[w.lr], dtype=np.float32) for c in chans])
        out_lr = np.ascontiguousarray(apply_symmetry(lr, sym))
        lr_flo = self._lr_floating[w.index]
        if lr_flo is not None:  # lr[0] is the binary LR crop (as float32 0/1)
            out_lr[1:] = transform_solution(lr[1:], lr[0], sym, axis=self.axis,
                                            floating=lr_flo[w.lr])
        sol, flo = self.solutions[w.index]
        h = np.asarray(hr[w.hr])
        h_sol = transform_solution(np.asarray(sol[(slice(None), *w.hr)], dtype=np.float32), h,
                                   sym, axis=self.axis, floating=np.asarray(flo[w.hr], bool))
        return out_lr, np.ascontiguousarray(apply_symmetry(h, sym)), h_sol

    def read_target(self, w: Window, sym: Symmetry) -> tuple[np.ndarray, np.ndarray]:
        """``lr`` (C, n, n, n) and the target (3, αn, αn, αn): binary HR, pore and solid solution
        (+ the flux magnitude with ``flux``, appended by :meth:`draw_target`)."""
        reverses_axis(sym, self.axis)
        lr, hr, sol = self._read_with_solution(w, sym)
        return lr, np.concatenate([hr[None].astype(np.float32), sol])


def combined_loss(output: torch.Tensor, target: torch.Tensor, *,
                  solution_weight: float = 1.0) -> torch.Tensor:
    """Loss of a morphology (+ solution) network.

    Parameters
    ----------
    output : tensor (N, 1 or 3, Z, Y, X)
        Network output: channel 0 the solid logit, channels 1–2 the pore / solid solutions.
    target : tensor (N, 1 or 3, Z, Y, X)
        Channel 0 the binary HR image (1 = solid), channels 1–2 its diffusion channels.
    solution_weight : float
        Weight w of the solution term.

    Returns
    -------
    tensor (scalar)
        :func:`twinsr.sr.objectives.bce_loss` for 1-channel targets; for 3-channel targets
        ``BCEWithLogits(out₀, t₀) + w · mean_v (out_{1+φ(v)}(v) − t_{1+φ(v)}(v))²`` with
        φ(v) = t₀(v) ∈ {0, 1} the TRUE phase of voxel v: every voxel contributes the squared error
        of its own phase's solution (the pore channel is masked to the true pore, the solid
        channel to the true solid); predictions outside the true phase are not penalised.

    Raises
    ------
    ConfigError
        A 3-channel target with a 1-channel output (``targets="morph+diffu"`` needs
        ``out_channels=3``), or other channel counts that do not fit.

    Examples
    --------
    >>> t = torch.zeros(1, 3, 2, 2, 2); out = t.clone(); out[:, 0] = -30.0
    >>> float(combined_loss(out, t)) < 1e-9
    True
    """
    if target.shape[1] == 1 and output.shape[1] == 1:
        return bce_loss(output, target)
    if target.shape[1] != 3 or output.shape[1] != 3:
        raise ConfigError(
            f"targets with {target.shape[1]} channel(s) cannot train a network with "
            f"{output.shape[1]} output channel(s); targets='morph+diffu' needs a network with "
            "out_channels=3 and targets='morph' one with out_channels=1")
    bce = nn.functional.binary_cross_entropy_with_logits(output[:, :1], target[:, :1])
    return bce + float(solution_weight) * solution_loss(output, target).mean()


def solution_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The masked solution MSE of :func:`combined_loss` per crop, tensor (N,).

    ``mean_v (out_{1+φ(v)}(v) − t_{1+φ(v)}(v))²`` over each crop's voxels, φ(v) the TRUE phase;
    ``combined_loss = BCE + w · mean over crops`` of it.

    Raises
    ------
    ConfigError
        ``output`` or ``target`` without the 3 channels of ``targets="morph+diffu"``.

    Examples
    --------
    >>> t = torch.zeros(2, 3, 2, 2, 2); out = t.clone(); out[1, 1] = 0.5
    >>> solution_loss(out, t).tolist()
    [0.0, 0.25]
    """
    if target.shape[1] != 3 or output.shape[1] != 3:
        raise ConfigError(f"the solution loss needs 3 output and 3 target channels "
                          f"(targets='morph+diffu', out_channels=3); got {output.shape[1]} and "
                          f"{target.shape[1]}")
    err = torch.where(target[:, :1] > 0.5, output[:, 2:3] - target[:, 2:3],
                      output[:, 1:2] - target[:, 1:2])
    return err.square().mean((1, 2, 3, 4))


def _solution_sampler(pairs: Sequence[Any], *, alpha: int, crop: int,
                      rng: int | np.random.Generator | None, augment: bool,
                      axis: int, flux: bool = False) -> SolutionCropSampler:
    return SolutionCropSampler([(p.channels, p.hr) for p in pairs],
                               solutions=[(p.hr_solution, p.hr_floating) for p in pairs],
                               axis=axis, alpha=alpha, crop=crop, rng=rng, augment=augment,
                               flux=flux)


def _solution_extra_loss(config: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    weight = float(config.solution_weight)

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return weight * solution_loss(output, target)

    return loss


MORPH_DIFFU = register_target_kind(TargetKind(
    name="morph+diffu", out_channels=3,
    output_names=("solid_logit", "pore_solution", "solid_solution"), needs_hr_solution=True,
    make_sampler=_solution_sampler, make_extra_loss=_solution_extra_loss,
    description="the HR morphology and its pore / solid diffusion solutions (spec §4); needs a "
                "database built with hr_diffusion=True"))


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
    rmse, tau_t, tau_p = [], [], []
    for ph in (0, 1):
        m = hr == ph
        d = pred[ph][m] - true[ph][m]
        rmse.append(float(np.sqrt(np.mean(d.astype(np.float64) ** 2))) if d.size else 0.0)
        cm = classify_clusters(hr, phase=ph, axis=ax)
        eps = cm.n_phase / hr.size
        taus = []
        for field in (true[ph], pred[ph]):
            d_eff = (effective_diffusivity(face_fluxes(field, cm.percolating, axis=ax), hr.shape,
                                           axis=ax) if cm.n_percolating else 0.0)
            taus.append(eps / d_eff if d_eff > 0 else math.inf)
        tau_t.append(taus[0])
        tau_p.append(taus[1])
    return SolutionError((rmse[0], rmse[1]), (tau_t[0], tau_t[1]), (tau_p[0], tau_p[1]))
