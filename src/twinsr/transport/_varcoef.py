"""Numba kernels: CG preconditioned by geometric multigrid for a variable-coefficient voxel Laplacian.

The system is the 7-point finite-volume operator -div(D grad u) on the voxel grid with an explicit
float32 conductance per face: ``cz[i, j, k]`` joins (i, j, k) to (i + 1, j, k), ``cy`` to
(i, j + 1, k), ``cx`` to (i, j, k + 1). Flow is along axis 0 with Dirichlet u = 0 / u = 1 beyond the
first / last layer through the boundary conductances ``b0`` / ``b1`` (shape (n1, n2)). With
``pj`` (``pk``) the faces normal to axis 1 (2) are periodic: ``cy[:, n1 - 1, :]`` is then the
conductance of the wrap face from (i, n1 − 1, k) to (i, 0, k) (likewise ``cx[:, :, n2 − 1]``);
without it that entry is 0. A grid point with no conducting face is inactive (zero row).

Every level (the fine one included) has the same representation, so one set of kernels serves the
whole hierarchy. Coarse levels come from 2x2x2 piecewise-constant Galerkin aggregation (summing the
fine conductances that cross each aggregate face; a wrap face stays a wrap face while a coarse axis
has more than one aggregate). The V-cycle: one red-black Gauss-Seidel sweep before (red, black) and
after (black, red) the over-weighted (``omega``) coarse correction, a sparse LU on the coarsest
level. With a periodic axis of odd length the two wrap neighbours share a colour, so the smoother
is not exactly symmetric; the outer iteration is therefore the flexible (Polak-Ribière) CG, which
equals plain CG for a symmetric preconditioner.

Memory on the fine grid (bytes per voxel): conductances 12 (the diagonal is their row sum,
accumulated in float64 on the fly, so every row is exactly conservative), float64 solution 8, five
float32 CG vectors 20 (40 in float64), coarse levels ~3.5; the measured peak of a whole solve is
``multiphase.VARCOEF_BYTES_PER_VOXEL``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from twinsr.transport._multigrid import cg_dot, cg_update_p, cg_update_xr, threads_for

__all__ = ["VarLevel", "build_fine_level", "face_fluxes_var", "flux_by_phase", "var_pcg"]

_COARSEST = 4096


@nb.njit(inline="always")
def _row(cz, cy, cx, b0, b1, x, i, j, k, n0, n1, n2, pj, pk):  # pragma: no cover - compiled
    """(diagonal, off-diagonal sum) of row (i, j, k), float64; the diagonal is the exact sum of
    the row's conductances, so every row sums to zero apart from the Dirichlet terms."""
    s = 0.0
    d = 0.0
    if i > 0:
        c = np.float64(cz[i - 1, j, k])
        d += c
        s += c * x[i - 1, j, k]
    else:
        d += b0[j, k]
    if i < n0 - 1:
        c = np.float64(cz[i, j, k])
        d += c
        s += c * x[i + 1, j, k]
    else:
        d += b1[j, k]
    if j > 0:
        c = np.float64(cy[i, j - 1, k])
        d += c
        s += c * x[i, j - 1, k]
    elif pj:
        c = np.float64(cy[i, n1 - 1, k])
        d += c
        s += c * x[i, n1 - 1, k]
    if j < n1 - 1:
        c = np.float64(cy[i, j, k])
        d += c
        s += c * x[i, j + 1, k]
    elif pj:
        c = np.float64(cy[i, j, k])
        d += c
        s += c * x[i, 0, k]
    if k > 0:
        c = np.float64(cx[i, j, k - 1])
        d += c
        s += c * x[i, j, k - 1]
    elif pk:
        c = np.float64(cx[i, j, n2 - 1])
        d += c
        s += c * x[i, j, n2 - 1]
    if k < n2 - 1:
        c = np.float64(cx[i, j, k])
        d += c
        s += c * x[i, j, k + 1]
    elif pk:
        c = np.float64(cx[i, j, k])
        d += c
        s += c * x[i, j, 0]
    return d, s


@nb.njit(parallel=True, cache=True)
def _apply_dot(cz, cy, cx, b0, b1, x, y, pj, pk):  # pragma: no cover - compiled
    """y = A x; return x . y (float64)."""
    n0, n1, n2 = x.shape
    acc = 0.0
    for i in nb.prange(n0):
        part = 0.0
        for j in range(n1):
            for k in range(n2):
                d, s = _row(cz, cy, cx, b0, b1, x, i, j, k, n0, n1, n2, pj, pk)
                v = d * x[i, j, k] - s if d > 0.0 else 0.0
                y[i, j, k] = v
                part += v * np.float64(x[i, j, k])
        acc += part
    return acc


@nb.njit(parallel=True, cache=True)
def _gs(cz, cy, cx, b0, b1, b, x, color, pj, pk):  # pragma: no cover - compiled
    n0, n1, n2 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range((i + j + color) & 1, n2, 2):
                d, s = _row(cz, cy, cx, b0, b1, x, i, j, k, n0, n1, n2, pj, pk)
                if d > 0.0:
                    x[i, j, k] = (b[i, j, k] + s) / d


@nb.njit(parallel=True, cache=True)
def _restrict(cz, cy, cx, b0, b1, b, x, rc, pj, pk):  # pragma: no cover - compiled
    """rc[I, J, K] = sum of the residual b - A x over the 2x2x2 children."""
    n0, n1, n2 = x.shape
    for ic in nb.prange(rc.shape[0]):
        rc[ic, :, :] = 0.0
        for i in range(2 * ic, min(2 * ic + 2, n0)):
            for j in range(n1):
                for k in range(n2):
                    d, s = _row(cz, cy, cx, b0, b1, x, i, j, k, n0, n1, n2, pj, pk)
                    if d > 0.0:
                        rc[ic, j >> 1, k >> 1] += b[i, j, k] - (d * x[i, j, k] - s)


@nb.njit(parallel=True, cache=True)
def _prolong(cz, cy, cx, b0, b1, ec, x, omega, pj, pk):  # pragma: no cover - compiled
    n0, n1, n2 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                d, _ = _row(cz, cy, cx, b0, b1, x, i, j, k, n0, n1, n2, pj, pk)
                if d > 0.0:
                    x[i, j, k] += omega * ec[i >> 1, j >> 1, k >> 1]


@nb.njit(parallel=True, cache=True)
def _galerkin(cz, cy, cx, ncz, ncy, ncx, pj, pk):  # pragma: no cover - compiled
    n0, n1, n2 = cz.shape
    c1, c2 = ncz.shape[1], ncz.shape[2]
    for ic in nb.prange(ncz.shape[0]):
        ncz[ic, :, :] = 0.0
        ncy[ic, :, :] = 0.0
        ncx[ic, :, :] = 0.0
        i_face = 2 * ic + 1
        if i_face < n0 - 1:
            for j in range(n1):
                for k in range(n2):
                    ncz[ic, j >> 1, k >> 1] += cz[i_face, j, k]
        for i in range(2 * ic, min(2 * ic + 2, n0)):
            for j in range(n1):
                for k in range(n2):
                    if j == n1 - 1:
                        if pj and c1 > 1:
                            ncy[ic, c1 - 1, k >> 1] += cy[i, j, k]
                    elif j & 1:
                        ncy[ic, j >> 1, k >> 1] += cy[i, j, k]
                    if k == n2 - 1:
                        if pk and c2 > 1:
                            ncx[ic, j >> 1, c2 - 1] += cx[i, j, k]
                    elif k & 1:
                        ncx[ic, j >> 1, k >> 1] += cx[i, j, k]


@nb.njit(parallel=True, cache=True)
def _diagonal(cz, cy, cx, b0, b1, diag, pj, pk):  # pragma: no cover - compiled
    """diag = the row sums of the conductances (float64 for the direct solve and masks)."""
    n0, n1, n2 = diag.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                d, _ = _row(cz, cy, cx, b0, b1, diag, i, j, k, n0, n1, n2, pj, pk)
                diag[i, j, k] = d


@nb.njit(cache=True)
def _sum_children_2d(b, out):  # pragma: no cover - compiled
    n1, n2 = b.shape
    for j in range(n1):
        for k in range(n2):
            out[j >> 1, k >> 1] += b[j, k]


@nb.njit(inline="always")
def _harm(a, b):  # pragma: no cover - compiled
    return 2.0 * a * b / (a + b) if a > 0.0 and b > 0.0 else 0.0


@nb.njit(parallel=True, cache=True)
def _fine_conductances(g, w0, w1, w2, pj, pk, cz, cy, cx):  # pragma: no cover - compiled
    """Face conductances w_a * harmonic_mean(g, g') from the per-voxel conductivity ``g``."""
    n0, n1, n2 = g.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                a = g[i, j, k]
                cz[i, j, k] = w0 * _harm(a, g[i + 1, j, k]) if i < n0 - 1 else 0.0
                if j < n1 - 1:
                    cy[i, j, k] = w1 * _harm(a, g[i, j + 1, k])
                else:
                    cy[i, j, k] = w1 * _harm(a, g[i, 0, k]) if pj else 0.0
                if k < n2 - 1:
                    cx[i, j, k] = w2 * _harm(a, g[i, j, k + 1])
                else:
                    cx[i, j, k] = w2 * _harm(a, g[i, j, 0]) if pk else 0.0


@nb.njit(parallel=True, cache=True)
def _face_fluxes(cz, b0, b1, x, out):  # pragma: no cover - compiled
    n0, n1, n2 = x.shape
    for f in nb.prange(n0 + 1):
        s = 0.0
        for j in range(n1):
            for k in range(n2):
                if f == 0:
                    s += np.float64(b0[j, k]) * np.float64(x[0, j, k])
                elif f == n0:
                    s += np.float64(b1[j, k]) * (1.0 - np.float64(x[n0 - 1, j, k]))
                else:
                    s += np.float64(cz[f - 1, j, k]) * (np.float64(x[f, j, k])
                                                        - np.float64(x[f - 1, j, k]))
        out[f] = s


@nb.njit(parallel=True, cache=True)
def _flux_by_phase(cz, b0, b1, x, idx, out):  # pragma: no cover - compiled
    """out[i, p] = sum over voxels of phase p in layer i of the mean of its in- and outflux."""
    n0, n1, n2 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                xi = np.float64(x[i, j, k])
                fin = b0[j, k] * xi if i == 0 else cz[i - 1, j, k] * (xi - x[i - 1, j, k])
                fout = b1[j, k] * (1.0 - xi) if i == n0 - 1 else cz[i, j, k] * (x[i + 1, j, k] - xi)
                out[i, idx[i, j, k]] += 0.5 * (fin + fout)


@dataclass
class VarLevel:
    """One level of the hierarchy (the fine level included): face and boundary conductances."""

    cz: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    b0: np.ndarray
    b1: np.ndarray
    pj: bool
    pk: bool
    b: np.ndarray | None = None  # right-hand side / residual (coarse levels)
    x: np.ndarray | None = None  # correction (coarse levels)

    @property
    def ops(self) -> tuple:
        return self.cz, self.cy, self.cx, self.b0, self.b1

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.cz.shape  # type: ignore[return-value]


def build_fine_level(g: np.ndarray, weights: tuple[float, float, float], *, boundary_factor: float,
                     periodic: bool) -> VarLevel:
    """Fine level from the float32 conductivity map ``g`` (0 off the unknowns), axis 0 first.

    ``weights`` are the face area / centre distance per axis; ``boundary_factor`` is 2 for a
    Dirichlet face half a voxel outside the first/last layer, 1 for a ghost voxel centre one voxel
    outside (TauFactor's multi-phase convention).
    """
    n0, n1, n2 = g.shape
    pj, pk = periodic and n1 > 1, periodic and n2 > 1
    cz, cy, cx = (np.empty(g.shape, np.float32) for _ in range(3))
    with threads_for(g.size):
        _fine_conductances(g, *(np.float32(w) for w in weights), pj, pk, cz, cy, cx)
    b0 = (boundary_factor * weights[0] * g[0]).astype(np.float32)
    b1 = (boundary_factor * weights[0] * g[n0 - 1]).astype(np.float32)
    return VarLevel(cz, cy, cx, b0, b1, pj, pk)


def _coarsen(lv: VarLevel, dtype: type) -> VarLevel:
    shape = tuple((s + 1) // 2 for s in lv.shape)
    ncz, ncy, ncx = (np.empty(shape, dtype) for _ in range(3))
    _galerkin(lv.cz, lv.cy, lv.cx, ncz, ncy, ncx, lv.pj, lv.pk)
    b0 = np.zeros(shape[1:], dtype)
    b1 = np.zeros(shape[1:], dtype)
    _sum_children_2d(lv.b0, b0)
    _sum_children_2d(lv.b1, b1)
    pj, pk = lv.pj and shape[1] > 1, lv.pk and shape[2] > 1
    return VarLevel(ncz, ncy, ncx, b0, b1, pj, pk, np.empty(shape, dtype), np.empty(shape, dtype))


def _lu(lv: VarLevel) -> tuple[np.ndarray, object]:
    """Sparse LU of the active part of a (small) level, wrap faces included (float64)."""
    shape = lv.shape
    diag = np.empty(shape, np.float64)
    _diagonal(*lv.ops, diag, lv.pj, lv.pk)
    active = np.flatnonzero(diag.reshape(-1) > 0)
    if active.size == 0:
        return active, None
    pos = -np.ones(diag.size, dtype=np.int64)
    pos[active] = np.arange(active.size)
    idx = np.arange(diag.size).reshape(shape)
    ar = np.arange(active.size)
    rows, cols, vals = [ar], [ar], [diag.reshape(-1)[active]]
    pairs = []
    for c, ax, per in ((lv.cz, 0, False), (lv.cy, 1, lv.pj), (lv.cx, 2, lv.pk)):
        sa, sb = [slice(None)] * 3, [slice(None)] * 3
        sa[ax], sb[ax] = slice(0, shape[ax] - 1), slice(1, shape[ax])
        pairs.append((c[tuple(sa)], idx[tuple(sa)], idx[tuple(sb)]))
        if per:
            sa[ax], sb[ax] = slice(shape[ax] - 1, shape[ax]), slice(0, 1)
            pairs.append((c[tuple(sa)], idx[tuple(sa)], idx[tuple(sb)]))
    for c, ia, ib in pairs:
        cc = c.astype(np.float64).reshape(-1)
        keep = cc > 0
        ia, ib, cc = pos[ia.reshape(-1)[keep]], pos[ib.reshape(-1)[keep]], cc[keep]
        rows += [ia, ib]
        cols += [ib, ia]
        vals += [-cc, -cc]
    mat = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(active.size, active.size))
    return active, spla.splu(mat)


class _Hierarchy:
    def __init__(self, fine: VarLevel, omega: float, dtype: type) -> None:
        self.fine = fine
        self.omega = omega
        self.levels: list[VarLevel] = []
        lv = fine
        while math.prod(lv.shape) > _COARSEST and max(lv.shape) > 1:
            lv = _coarsen(lv, dtype)
            self.levels.append(lv)
        self.index, self.lu = _lu(self.levels[-1] if self.levels else fine)

    def _direct(self, b: np.ndarray, x: np.ndarray) -> None:
        x[...] = 0.0
        if self.index.size:
            x.reshape(-1)[self.index] = self.lu.solve(b.reshape(-1)[self.index].astype(np.float64))

    def vcycle(self, r: np.ndarray, z: np.ndarray) -> None:
        """z = M^{-1} r (one symmetric V-cycle from a zero guess)."""
        if not self.levels:
            self._direct(r, z)
            return
        self._smooth_cycle(self.fine, r, z, 0)

    def _smooth_cycle(self, lv: VarLevel, b: np.ndarray, x: np.ndarray, ell: int) -> None:
        with threads_for(x.size):
            x[...] = 0.0
            _gs(*lv.ops, b, x, 0, lv.pj, lv.pk)
            _gs(*lv.ops, b, x, 1, lv.pj, lv.pk)
            nxt = self.levels[ell]
            _restrict(*lv.ops, b, x, nxt.b, lv.pj, lv.pk)
        if ell == len(self.levels) - 1:
            self._direct(nxt.b, nxt.x)
        else:
            self._smooth_cycle(nxt, nxt.b, nxt.x, ell + 1)
        with threads_for(x.size):
            _prolong(*lv.ops, nxt.x, x, self.omega, lv.pj, lv.pk)
            _gs(*lv.ops, b, x, 1, lv.pj, lv.pk)
            _gs(*lv.ops, b, x, 0, lv.pj, lv.pk)


def var_pcg(fine: VarLevel, x: np.ndarray, *, tol: float, max_iter: int, omega: float = 1.9,
            progress: Callable[[int, float], object] | None = None,
            dtype: type = np.float32) -> tuple[int, float, bool]:
    """Solve A x = b (b = b1 on the last layer) in place by flexible PCG, starting from ``x``.

    ``x`` (float64, shape of the grid) holds the initial guess (0 off the unknowns). Stops when
    ||b − A x|| <= tol ||b||. Returns (iterations, relative residual, converged).
    """
    with threads_for(x.size):
        return _var_pcg(fine, x, tol=tol, max_iter=max_iter, omega=omega, progress=progress,
                        dtype=dtype)


def _var_pcg(fine: VarLevel, x: np.ndarray, *, tol: float, max_iter: int, omega: float,
             progress: Callable[[int, float], object] | None,
             dtype: type) -> tuple[int, float, bool]:
    r, z, p, q, r_old = (np.zeros(x.shape, dtype) for _ in range(5))
    r[-1] = fine.b1
    bnorm = math.sqrt(cg_dot(r.reshape(-1), r.reshape(-1)))
    if bnorm == 0.0:
        x[...] = 0.0
        return 0, 0.0, True
    hier = _Hierarchy(fine, omega, dtype)
    _apply_dot(*fine.ops, x, q, fine.pj, fine.pk)
    r -= q
    rf, zf, pf, qf, xf, rof = (a.reshape(-1) for a in (r, z, p, q, x, r_old))
    res = math.sqrt(cg_dot(rf, rf)) / bnorm
    if progress is not None:
        progress(0, res)
    it = 0
    if res <= tol:
        return 0, res, True
    hier.vcycle(r, z)
    p[...] = z
    rz = cg_dot(rf, zf)
    while it < max_iter:
        it += 1
        pq = _apply_dot(*fine.ops, p, q, fine.pj, fine.pk)
        if pq <= 0.0:
            break
        alpha = rz / pq
        r_old[...] = r
        rr = cg_update_xr(xf, rf, pf, qf, alpha)
        res = math.sqrt(rr) / bnorm
        if progress is not None:
            progress(it, res)
        if res <= tol:
            break
        hier.vcycle(r, z)
        rz_new = cg_dot(rf, zf)
        beta = (rz_new - cg_dot(rof, zf)) / rz  # Polak-Ribière: robust to a slightly asymmetric M
        rz = rz_new
        cg_update_p(pf, zf, max(beta, 0.0))
    return it, res, res <= tol


def face_fluxes_var(fine: VarLevel, x: np.ndarray) -> np.ndarray:
    """Flux (float64, conductance units, Δu = 1) through the n0 + 1 faces normal to axis 0."""
    out = np.zeros(x.shape[0] + 1)
    with threads_for(x.size):
        _face_fluxes(fine.cz, fine.b0, fine.b1, x, out)
    return out


def flux_by_phase(fine: VarLevel, x: np.ndarray, idx: np.ndarray, n_phases: int) -> np.ndarray:
    """Volume-integrated axial flux carried in each phase (``idx``: uint8 phase index per voxel)."""
    out = np.zeros((x.shape[0], n_phases))
    with threads_for(x.size):
        _flux_by_phase(fine.cz, fine.b0, fine.b1, x, idx, out)
    return out.sum(axis=0)
