"""Torch implementation of the multigrid-preconditioned CG solve (CUDA, or CPU as a testing aid).

Same discretisation and the same preconditioner as :mod:`twinsr.transport._multigrid` (2x2x2
Galerkin aggregation of the face conductances, one red-black Gauss-Seidel sweep before and after
the over-weighted coarse correction, a direct solve on the coarsest level), written with tensor
slicing so it runs on any torch device. Fields are float32, the solution accumulates in float64,
dot products are float64. Flow along axis 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["torch_pcg"]

_COARSEST = 4096


@dataclass
class _TLevel:
    cz: torch.Tensor  # (n0-1, n1, n2) conductance between i and i+1 along axis 0
    cy: torch.Tensor  # (n0, n1-1, n2)
    cx: torch.Tensor  # (n0, n1, n2-1)
    diag: torch.Tensor  # (n0, n1, n2)
    active: torch.Tensor  # bool, diag > 0
    colors: tuple[torch.Tensor, torch.Tensor]  # active & red, active & black


def _offdiag(lv: _TLevel, x: torch.Tensor) -> torch.Tensor:
    s = torch.zeros_like(x)
    s[:-1] += lv.cz * x[1:]
    s[1:] += lv.cz * x[:-1]
    s[:, :-1] += lv.cy * x[:, 1:]
    s[:, 1:] += lv.cy * x[:, :-1]
    s[:, :, :-1] += lv.cx * x[:, :, 1:]
    s[:, :, 1:] += lv.cx * x[:, :, :-1]
    return s


def _apply(lv: _TLevel, x: torch.Tensor) -> torch.Tensor:
    return lv.diag * x - _offdiag(lv, x)


def _pair_sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum neighbouring pairs along ``dim`` (zero-padding an odd length)."""
    n = t.shape[dim]
    if n % 2:
        pad_shape = list(t.shape)
        pad_shape[dim] = 1
        t = torch.cat([t, t.new_zeros(pad_shape)], dim=dim)
    shape = list(t.shape)
    shape[dim : dim + 1] = [shape[dim] // 2, 2]
    return t.reshape(shape).sum(dim=dim + 1)


def _restrict(r: torch.Tensor) -> torch.Tensor:
    return _pair_sum(_pair_sum(_pair_sum(r, 0), 1), 2)


def _prolong(e: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    out = e.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
    return out[: shape[0], : shape[1], : shape[2]]


def _make_level(cz: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, b0: torch.Tensor,
                b1: torch.Tensor, shape: tuple[int, int, int]) -> _TLevel:
    diag = torch.zeros(shape, dtype=cz.dtype, device=cz.device)
    diag[:-1] += cz
    diag[1:] += cz
    diag[:, :-1] += cy
    diag[:, 1:] += cy
    diag[:, :, :-1] += cx
    diag[:, :, 1:] += cx
    diag[0] += b0
    diag[-1] += b1
    active = diag > 0
    idx = [torch.arange(s, device=cz.device) for s in shape]
    parity = (idx[0][:, None, None] + idx[1][None, :, None] + idx[2][None, None, :]) % 2
    return _TLevel(cz, cy, cx, diag, active, (active & (parity == 0), active & (parity == 1)))


def _coarsen(lv: _TLevel, b0: torch.Tensor, b1: torch.Tensor) -> tuple[_TLevel, torch.Tensor,
                                                                           torch.Tensor]:
    shape = tuple((s + 1) // 2 for s in lv.diag.shape)
    cz = _pair_sum(_pair_sum(lv.cz[1::2], 1), 2)
    cy = _pair_sum(_pair_sum(lv.cy[:, 1::2], 0), 2)
    cx = _pair_sum(_pair_sum(lv.cx[:, :, 1::2], 0), 1)
    nb0 = _pair_sum(_pair_sum(b0, 0), 1)
    nb1 = _pair_sum(_pair_sum(b1, 0), 1)
    return _make_level(cz, cy, cx, nb0, nb1, shape), nb0, nb1  # type: ignore[arg-type]


class _TorchHierarchy:
    def __init__(self, mask: torch.Tensor, omega: float) -> None:
        m = mask.to(torch.float32)
        shape = tuple(m.shape)
        b0, b1 = 2.0 * m[0], 2.0 * m[-1]
        lv = _make_level(m[:-1] * m[1:], m[:, :-1] * m[:, 1:], m[:, :, :-1] * m[:, :, 1:],
                         b0, b1, shape)  # type: ignore[arg-type]
        self.levels = [lv]
        while math.prod(lv.diag.shape) > _COARSEST and max(lv.diag.shape) > 1:
            lv, b0, b1 = _coarsen(lv, b0, b1)
            self.levels.append(lv)
        self.omega = omega
        last = self.levels[-1]
        self.index = torch.nonzero(last.active.reshape(-1)).reshape(-1)
        self.chol = self._factor(last) if self.index.numel() else None

    def _factor(self, lv: _TLevel) -> torch.Tensor:
        shape = lv.diag.shape
        n = int(np.prod(shape))
        dev = lv.diag.device
        a = torch.zeros((n, n), dtype=torch.float64, device=dev)
        flat = torch.arange(n, device=dev)
        a[flat, flat] = lv.diag.reshape(-1).to(torch.float64)
        idx = flat.reshape(shape)
        for c, ia, ib in ((lv.cz, idx[:-1], idx[1:]), (lv.cy, idx[:, :-1], idx[:, 1:]),
                          (lv.cx, idx[:, :, :-1], idx[:, :, 1:])):
            cc = c.reshape(-1).to(torch.float64)
            a[ia.reshape(-1), ib.reshape(-1)] = -cc
            a[ib.reshape(-1), ia.reshape(-1)] = -cc
        a = a[self.index][:, self.index]
        return torch.linalg.cholesky(a)

    def solve(self, r: torch.Tensor) -> torch.Tensor:
        return self._cycle(0, r)

    def _cycle(self, ell: int, b: torch.Tensor) -> torch.Tensor:
        lv = self.levels[ell]
        if ell == len(self.levels) - 1:
            x = torch.zeros_like(b)
            if self.chol is not None:
                rhs = b.reshape(-1)[self.index].to(torch.float64)[:, None]
                sol = torch.cholesky_solve(rhs, self.chol)[:, 0]
                x.reshape(-1)[self.index] = sol.to(b.dtype)
            return x
        red, black = lv.colors
        x = torch.where(red, b / torch.where(lv.active, lv.diag, 1.0), 0.0)
        x = torch.where(black, (b + _offdiag(lv, x)) / torch.where(lv.active, lv.diag, 1.0), x)
        rc = _restrict(torch.where(lv.active, b - _apply(lv, x), 0.0))
        ec = self._cycle(ell + 1, rc)
        x = x + self.omega * torch.where(lv.active, _prolong(ec, tuple(x.shape)), 0.0)
        safe = torch.where(lv.active, lv.diag, 1.0)
        x = torch.where(black, (b + _offdiag(lv, x)) / safe, x)
        x = torch.where(red, (b + _offdiag(lv, x)) / safe, x)
        return x


def torch_pcg(
    mask: np.ndarray,
    x0: np.ndarray,
    *,
    device: str,
    tol: float,
    max_iter: int,
    omega: float = 1.9,
    progress: Callable[[int, float], object] | None = None,
    double: bool = False,
) -> tuple[np.ndarray, int, float, bool]:
    """Solve the phase system on a torch device.

    Parameters
    ----------
    mask : uint8 ndarray (n0, n1, n2)
        1 on the unknowns; flow along axis 0.
    x0 : float ndarray (n0, n1, n2)
        Initial guess (0 outside the mask).
    double : bool
        float64 CG vectors (for tolerances below what float32 residuals resolve, ~1e-7); the
        hierarchy stays float32.

    Returns
    -------
    (solution float64 ndarray, iterations, relative residual, converged)
    """
    dev = torch.device(device)
    m = torch.from_numpy(np.ascontiguousarray(mask)).to(dev)
    hier = _TorchHierarchy(m, omega)
    fine = hier.levels[0]
    x = torch.from_numpy(np.ascontiguousarray(x0, dtype=np.float64)).to(dev)
    wdtype = torch.float64 if double else torch.float32
    b = torch.zeros(mask.shape, dtype=wdtype, device=dev)
    b[-1] = 2.0 * fine.active[-1].to(wdtype)

    def dot(u: torch.Tensor, v: torch.Tensor) -> float:
        return float(torch.sum(u.to(torch.float64) * v.to(torch.float64)))

    bnorm = math.sqrt(dot(b, b))
    if bnorm == 0.0:
        return np.zeros(mask.shape, np.float32), 0, 0.0, True
    ax = _apply(fine, x)  # float64, like x
    r = torch.where(fine.active, b.to(torch.float64) - ax, 0.0).to(wdtype)
    res = math.sqrt(dot(r, r)) / bnorm
    it = 0
    if progress is not None:
        progress(0, res)
    if res > tol:
        z = hier.solve(r)
        p = z.clone()
        rz = dot(r, z)
        while it < max_iter:
            it += 1
            q = torch.where(fine.active, _apply(fine, p), 0.0)
            pq = dot(p, q)
            if pq <= 0.0:
                break
            alpha = rz / pq
            x += alpha * p.to(torch.float64)
            r -= alpha * q
            res = math.sqrt(dot(r, r)) / bnorm
            if progress is not None:
                progress(it, res)
            if res <= tol:
                break
            z = hier.solve(r)
            rz_new = dot(r, z)
            p = z + (rz_new / rz) * p
            rz = rz_new
    sol = torch.where(fine.active, x, 0.0).cpu().numpy()  # float64: the fluxes are taken from it
    return sol, it, res, res <= tol
