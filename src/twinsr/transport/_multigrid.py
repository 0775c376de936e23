"""Numba kernels: matrix-free CG preconditioned by a geometric multigrid V-cycle on the voxel grid.

The system is the 7-point finite-volume Laplacian of one phase with unit face conductance, flow
along axis 0, Dirichlet u = 0 / u = 1 half a voxel outside the first / last layer (boundary
half-link conductance 2) and zero flux elsewhere. Only voxels flagged in ``mask`` are unknowns; all
other grid points are inactive (zero rows), so the grid stays structured.

Hierarchy: level 0 is described by the uint8 mask alone (conductance m_i * m_j, computed on the
fly); coarser levels hold explicit float32 face conductances ``cz, cy, cx`` (to the +1 neighbour
along each axis), the diagonal ``diag`` and the boundary terms of the first / last layer. They are
built by 2x2x2 piecewise-constant Galerkin aggregation, which for a graph Laplacian amounts to
summing the fine conductances that cross each aggregate face. The V-cycle uses one red-black
Gauss-Seidel sweep before (red, black) and after (black, red) the coarse correction, so the
preconditioner is symmetric; the coarse correction is over-weighted by ``omega``; the coarsest
level (<= ~4096 active points) is solved directly with a sparse LU factorisation.

Memory: the float64 solution and four float32 CG vectors (24 B/voxel; 40 with float64 vectors),
the uint8 degree array (1 B/voxel) and all coarse levels (~3.4 B/voxel; 6.9 in float64), on the
padded grid. The measured peak of a whole solve is ``laplace.LAPLACE_BYTES_PER_VOXEL``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["Hierarchy", "build_hierarchy", "padded_degree", "pcg", "threads_for"]

_COARSEST = 4096
# Grids smaller than this run single-threaded: launching a parallel kernel costs more than the
# kernel itself there, and far more when the cores are shared (OpenMP threads wait for a core).
_PAR_MIN = 1 << 18


@contextlib.contextmanager
def threads_for(size: int) -> Iterator[None]:
    """Run the enclosed kernels on one thread if the grid has fewer than ``_PAR_MIN`` points."""
    prev = nb.get_num_threads()
    if size >= _PAR_MIN or prev == 1:
        yield
        return
    nb.set_num_threads(1)
    try:
        yield
    finally:
        nb.set_num_threads(prev)


# --------------------------------------------------------------------------------------------
# level 0: padded arrays, conductances from the degree array
# --------------------------------------------------------------------------------------------
# Level-0 arrays carry a one-voxel halo of zeros on every side (shape (n0+2, n1+2, n2+2)), so the
# stencils need no bounds checks. ``deg`` (uint8) is the diagonal of the matrix: the number of
# unknown 6-neighbours plus 2 for each Dirichlet face the voxel touches; deg > 0 exactly on the
# unknowns. Every vector is 0 outside the unknowns, so the off-diagonal part is a plain neighbour sum.
@nb.njit(parallel=True, cache=True)
def _fine_apply(deg, x, y):  # pragma: no cover - compiled
    n0, n1, n2 = deg.shape
    for i in nb.prange(1, n0 - 1):
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                d = deg[i, j, k]
                s = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                     + x[i, j, k - 1] + x[i, j, k + 1])
                y[i, j, k] = d * x[i, j, k] - s if d > 0 else 0.0


@nb.njit(parallel=True, cache=True)
def _fine_apply_dot(deg, x, y):  # pragma: no cover - compiled
    """y = A x and return x . y (float64)."""
    n0, n1, n2 = deg.shape
    acc = 0.0
    for i in nb.prange(1, n0 - 1):
        part = 0.0
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                d = deg[i, j, k]
                s = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                     + x[i, j, k - 1] + x[i, j, k + 1])
                v = d * x[i, j, k] - s if d > 0 else 0.0
                y[i, j, k] = v
                part += np.float64(v) * np.float64(x[i, j, k])
        acc += part
    return acc


@nb.njit(parallel=True, cache=True)
def _fine_jacobi_color(deg, b, x, color):  # pragma: no cover - compiled
    """First half-sweep from a zero guess: x = b / d on one colour, 0 on the other."""
    n0, n1, n2 = deg.shape
    for i in nb.prange(1, n0 - 1):
        for j in range(1, n1 - 1):
            start = 1 + ((i + j + color) & 1)
            for k in range(1, n2 - 1):
                d = deg[i, j, k]
                if d > 0:
                    x[i, j, k] = b[i, j, k] / d if (k - start) % 2 == 0 else 0.0


@nb.njit(parallel=True, cache=True)
def _fine_gs(deg, b, x, color):  # pragma: no cover - compiled
    n0, n1, n2 = deg.shape
    for i in nb.prange(1, n0 - 1):
        for j in range(1, n1 - 1):
            for k in range(1 + ((i + j + color) & 1), n2 - 1, 2):
                d = deg[i, j, k]
                if d > 0:
                    s = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                         + x[i, j, k - 1] + x[i, j, k + 1])
                    x[i, j, k] = (b[i, j, k] + s) / d


@nb.njit(parallel=True, cache=True)
def _fine_restrict(deg, b, x, rc):  # pragma: no cover - compiled
    """rc[I, J, K] = sum over the 2x2x2 children of the residual b - A x."""
    n0, n1, n2 = deg.shape
    c0 = rc.shape[0]
    for ic in nb.prange(c0):
        rc[ic, :, :] = 0.0
        for i in range(2 * ic + 1, min(2 * ic + 3, n0 - 1)):
            for j in range(1, n1 - 1):
                for k in range(1, n2 - 1):
                    d = deg[i, j, k]
                    if d > 0:
                        s = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                             + x[i, j, k - 1] + x[i, j, k + 1])
                        rc[ic, (j - 1) >> 1, (k - 1) >> 1] += b[i, j, k] - (d * x[i, j, k] - s)


@nb.njit(parallel=True, cache=True)
def _fine_prolong(deg, ec, x, omega):  # pragma: no cover - compiled
    n0, n1, n2 = deg.shape
    for i in nb.prange(1, n0 - 1):
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                if deg[i, j, k] > 0:
                    x[i, j, k] += omega * ec[(i - 1) >> 1, (j - 1) >> 1, (k - 1) >> 1]


@nb.njit(parallel=True, cache=True)
def _degree(m, deg):  # pragma: no cover - compiled
    """Padded degree array from the unpadded uint8 mask of unknowns."""
    n0, n1, n2 = m.shape
    for i in nb.prange(n0 + 2):
        deg[i, :, :] = 0
        if i == 0 or i == n0 + 1:
            continue
        a = i - 1
        for j in range(n1):
            for k in range(n2):
                if m[a, j, k] == 0:
                    continue
                d = 0
                if a > 0 and m[a - 1, j, k]:
                    d += 1
                if a < n0 - 1 and m[a + 1, j, k]:
                    d += 1
                if j > 0 and m[a, j - 1, k]:
                    d += 1
                if j < n1 - 1 and m[a, j + 1, k]:
                    d += 1
                if k > 0 and m[a, j, k - 1]:
                    d += 1
                if k < n2 - 1 and m[a, j, k + 1]:
                    d += 1
                if a == 0:
                    d += 2
                if a == n0 - 1:
                    d += 2
                deg[i, j + 1, k + 1] = d


@nb.njit(parallel=True, cache=True)
def _galerkin_from_mask(deg, cz, cy, cx, b0, b1):  # pragma: no cover - compiled
    """Aggregate the level-0 conductances (1 between two unknowns) into the first coarse level."""
    n0, n1, n2 = deg.shape
    c0 = cz.shape[0]
    for ic in nb.prange(c0):
        cz[ic, :, :] = 0.0
        cy[ic, :, :] = 0.0
        cx[ic, :, :] = 0.0
        i_face = 2 * ic + 2  # padded index of the last fine layer of aggregate ic
        if i_face + 1 < n0 - 1:
            for j in range(1, n1 - 1):
                for k in range(1, n2 - 1):
                    if deg[i_face, j, k] > 0 and deg[i_face + 1, j, k] > 0:
                        cz[ic, (j - 1) >> 1, (k - 1) >> 1] += 1.0
        for i in range(2 * ic + 1, min(2 * ic + 3, n0 - 1)):
            for j in range(1, n1 - 1):
                for k in range(1, n2 - 1):
                    if deg[i, j, k] == 0:
                        continue
                    if ((j - 1) & 1) and deg[i, j + 1, k] > 0:
                        cy[ic, (j - 1) >> 1, (k - 1) >> 1] += 1.0
                    if ((k - 1) & 1) and deg[i, j, k + 1] > 0:
                        cx[ic, (j - 1) >> 1, (k - 1) >> 1] += 1.0
    for j in range(1, n1 - 1):
        for k in range(1, n2 - 1):
            if deg[1, j, k] > 0:
                b0[(j - 1) >> 1, (k - 1) >> 1] += 2.0
            if deg[n0 - 2, j, k] > 0:
                b1[(j - 1) >> 1, (k - 1) >> 1] += 2.0


# --------------------------------------------------------------------------------------------
# coarse levels: explicit conductances
# --------------------------------------------------------------------------------------------
@nb.njit(inline="always")
def _offdiag(cz, cy, cx, x, i, j, k, n0, n1, n2):  # pragma: no cover - compiled
    s = 0.0
    if i > 0:
        s += cz[i - 1, j, k] * x[i - 1, j, k]
    if i < n0 - 1:
        s += cz[i, j, k] * x[i + 1, j, k]
    if j > 0:
        s += cy[i, j - 1, k] * x[i, j - 1, k]
    if j < n1 - 1:
        s += cy[i, j, k] * x[i, j + 1, k]
    if k > 0:
        s += cx[i, j, k - 1] * x[i, j, k - 1]
    if k < n2 - 1:
        s += cx[i, j, k] * x[i, j, k + 1]
    return s


@nb.njit(parallel=True, cache=True)
def _coarse_gs(cz, cy, cx, diag, b, x, color):  # pragma: no cover - compiled
    n0, n1, n2 = diag.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range((i + j + color) & 1, n2, 2):
                d = diag[i, j, k]
                if d > 0.0:
                    x[i, j, k] = (b[i, j, k] + _offdiag(cz, cy, cx, x, i, j, k, n0, n1, n2)) / d


@nb.njit(parallel=True, cache=True)
def _coarse_restrict(cz, cy, cx, diag, b, x, rc):  # pragma: no cover - compiled
    n0, n1, n2 = diag.shape
    c0 = rc.shape[0]
    for ic in nb.prange(c0):
        rc[ic, :, :] = 0.0
        for i in range(2 * ic, min(2 * ic + 2, n0)):
            for j in range(n1):
                for k in range(n2):
                    d = diag[i, j, k]
                    if d > 0.0:
                        ax = d * x[i, j, k] - _offdiag(cz, cy, cx, x, i, j, k, n0, n1, n2)
                        rc[ic, j >> 1, k >> 1] += b[i, j, k] - ax


@nb.njit(parallel=True, cache=True)
def _coarse_prolong(diag, ec, x, omega):  # pragma: no cover - compiled
    n0, n1, n2 = diag.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                if diag[i, j, k] > 0.0:
                    x[i, j, k] += omega * ec[i >> 1, j >> 1, k >> 1]


@nb.njit(parallel=True, cache=True)
def _galerkin(cz, cy, cx, ncz, ncy, ncx):  # pragma: no cover - compiled
    n0, n1, n2 = cz.shape
    c0 = ncz.shape[0]
    for ic in nb.prange(c0):
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
                    if (j & 1) and j + 1 < n1:
                        ncy[ic, j >> 1, k >> 1] += cy[i, j, k]
                    if (k & 1) and k + 1 < n2:
                        ncx[ic, j >> 1, k >> 1] += cx[i, j, k]


@nb.njit(parallel=True, cache=True)
def _diagonal(cz, cy, cx, b0, b1, diag):  # pragma: no cover - compiled
    n0, n1, n2 = diag.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                d = 0.0
                if i > 0:
                    d += cz[i - 1, j, k]
                if i < n0 - 1:
                    d += cz[i, j, k]
                if j > 0:
                    d += cy[i, j - 1, k]
                if j < n1 - 1:
                    d += cy[i, j, k]
                if k > 0:
                    d += cx[i, j, k - 1]
                if k < n2 - 1:
                    d += cx[i, j, k]
                if i == 0:
                    d += b0[j, k]
                if i == n0 - 1:
                    d += b1[j, k]
                diag[i, j, k] = d


@nb.njit(cache=True)
def _sum_children_2d(b, out):  # pragma: no cover - compiled
    n1, n2 = b.shape
    for j in range(n1):
        for k in range(n2):
            out[j >> 1, k >> 1] += b[j, k]


# --------------------------------------------------------------------------------------------
# vector kernels (float64 accumulation)
# --------------------------------------------------------------------------------------------
@nb.njit(parallel=True, cache=True)
def cg_dot(a, b):  # pragma: no cover - compiled
    s = 0.0
    for i in nb.prange(a.size):
        s += np.float64(a[i]) * np.float64(b[i])
    return s


@nb.njit(parallel=True, cache=True)
def cg_update_xr(x, r, p, q, alpha):  # pragma: no cover - compiled
    """x += alpha p; r -= alpha q; return ||r||^2."""
    s = 0.0
    for i in nb.prange(x.size):
        x[i] += alpha * p[i]
        ri = r[i] - alpha * q[i]
        r[i] = ri
        s += np.float64(ri) * np.float64(ri)
    return s


@nb.njit(parallel=True, cache=True)
def cg_update_p(p, z, beta):  # pragma: no cover - compiled
    for i in nb.prange(p.size):
        p[i] = z[i] + beta * p[i]


def padded_degree(mask: np.ndarray) -> np.ndarray:
    """Padded uint8 degree array (shape + 2 on every axis) of a C-contiguous uint8 mask."""
    deg = np.zeros(tuple(s + 2 for s in mask.shape), dtype=np.uint8)
    with threads_for(deg.size):
        _degree(mask, deg)
    return deg


# --------------------------------------------------------------------------------------------
# hierarchy and solver
# --------------------------------------------------------------------------------------------
@dataclass
class _Level:
    cz: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    diag: np.ndarray
    b: np.ndarray
    x: np.ndarray


@dataclass
class Hierarchy:
    """Geometric multigrid hierarchy for one mask (level 0) and its aggregated coarse levels."""

    deg: np.ndarray
    levels: list[_Level]
    coarse_index: np.ndarray  # flat indices of the active points of the coarsest level
    coarse_lu: object  # scipy SuperLU of the coarsest active system (or None if no level)
    omega: float

    def vcycle(self, r: np.ndarray, z: np.ndarray) -> None:
        """z = M^{-1} r (one symmetric V-cycle, zero initial guess)."""
        m = self.deg
        _fine_jacobi_color(m, r, z, 0)
        _fine_gs(m, r, z, 1)
        if self.levels:
            lv = self.levels[0]
            _fine_restrict(m, r, z, lv.b)
            self._coarse_cycle(0)
            _fine_prolong(m, lv.x, z, self.omega)
        _fine_gs(m, r, z, 1)
        _fine_gs(m, r, z, 0)

    def _coarse_cycle(self, ell: int) -> None:
        with threads_for(self.levels[ell].diag.size):
            self._coarse_cycle_body(ell)

    def _coarse_cycle_body(self, ell: int) -> None:
        lv = self.levels[ell]
        if ell == len(self.levels) - 1:
            lv.x[...] = 0.0
            if self.coarse_index.size:
                flat_b = lv.b.reshape(-1)[self.coarse_index].astype(np.float64)
                lv.x.reshape(-1)[self.coarse_index] = self.coarse_lu.solve(flat_b)
            return
        lv.x[...] = 0.0
        _coarse_gs(lv.cz, lv.cy, lv.cx, lv.diag, lv.b, lv.x, 0)
        _coarse_gs(lv.cz, lv.cy, lv.cx, lv.diag, lv.b, lv.x, 1)
        nxt = self.levels[ell + 1]
        _coarse_restrict(lv.cz, lv.cy, lv.cx, lv.diag, lv.b, lv.x, nxt.b)
        self._coarse_cycle_body(ell + 1)
        _coarse_prolong(lv.diag, nxt.x, lv.x, self.omega)
        _coarse_gs(lv.cz, lv.cy, lv.cx, lv.diag, lv.b, lv.x, 1)
        _coarse_gs(lv.cz, lv.cy, lv.cx, lv.diag, lv.b, lv.x, 0)


def _half(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple((s + 1) // 2 for s in shape)  # type: ignore[return-value]


def _coarse_matrix(lv: _Level) -> tuple[np.ndarray, object]:
    """Sparse LU of the active part of the coarsest level (float64)."""
    diag = lv.diag.astype(np.float64)
    shape = diag.shape
    active = np.flatnonzero(diag.reshape(-1) > 0)
    if active.size == 0:
        return active, None
    pos = -np.ones(diag.size, dtype=np.int64)
    pos[active] = np.arange(active.size)
    idx = np.arange(diag.size).reshape(shape)
    ar = np.arange(active.size)
    rows, cols, vals = [ar], [ar], [diag.reshape(-1)[active]]
    for c, ax in ((lv.cz, 0), (lv.cy, 1), (lv.cx, 2)):
        sl_a = [slice(None)] * 3
        sl_b = [slice(None)] * 3
        sl_a[ax] = slice(0, shape[ax] - 1)
        sl_b[ax] = slice(1, shape[ax])
        cc = c[tuple(sl_a)].astype(np.float64).reshape(-1)
        ia = idx[tuple(sl_a)].reshape(-1)
        ib = idx[tuple(sl_b)].reshape(-1)
        keep = cc > 0
        ia, ib, cc = pos[ia[keep]], pos[ib[keep]], cc[keep]
        rows += [ia, ib]
        cols += [ib, ia]
        vals += [-cc, -cc]
    mat = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(active.size, active.size),
    )
    return active, spla.splu(mat)


def build_hierarchy(deg: np.ndarray, *, omega: float = 1.9, dtype: type = np.float32) -> Hierarchy:
    """Build the multigrid hierarchy for a padded level-0 degree array (flow along axis 0)."""
    levels: list[_Level] = []
    shape = tuple(s - 2 for s in deg.shape)
    cshape = _half(shape)
    cz, cy, cx = (np.empty(cshape, dtype) for _ in range(3))
    b0 = np.zeros(cshape[1:], dtype)
    b1 = np.zeros(cshape[1:], dtype)
    _galerkin_from_mask(deg, cz, cy, cx, b0, b1)
    diag = np.empty(cshape, dtype)
    _diagonal(cz, cy, cx, b0, b1, diag)
    levels.append(_Level(cz, cy, cx, diag, np.empty(cshape, dtype), np.empty(cshape, dtype)))
    shape = cshape
    while math.prod(shape) > _COARSEST and max(shape) > 1:
        prev = levels[-1]
        cshape = _half(shape)
        ncz, ncy, ncx = (np.empty(cshape, dtype) for _ in range(3))
        _galerkin(prev.cz, prev.cy, prev.cx, ncz, ncy, ncx)
        nb0 = np.zeros(cshape[1:], dtype)
        nb1 = np.zeros(cshape[1:], dtype)
        _sum_children_2d(b0, nb0)
        _sum_children_2d(b1, nb1)
        b0, b1 = nb0, nb1
        diag = np.empty(cshape, dtype)
        _diagonal(ncz, ncy, ncx, b0, b1, diag)
        levels.append(_Level(ncz, ncy, ncx, diag, np.empty(cshape, dtype),
                             np.empty(cshape, dtype)))
        shape = cshape
    index, lu = _coarse_matrix(levels[-1])
    return Hierarchy(deg, levels, index, lu, omega)


def _direct_fine(deg: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Direct solve of a tiny level-0 system (grids with <= ``_COARSEST`` voxels); padded output."""
    inner = (slice(1, -1),) * 3
    m = (deg[inner] > 0).astype(np.float32)
    pad = [np.zeros(m.shape, np.float32) for _ in range(3)]
    pad[0][:-1] = m[:-1] * m[1:]
    pad[1][:, :-1] = m[:, :-1] * m[:, 1:]
    pad[2][:, :, :-1] = m[:, :, :-1] * m[:, :, 1:]
    diag = deg[inner].astype(np.float32)
    b = np.ascontiguousarray(rhs[inner])
    lv = _Level(pad[0], pad[1], pad[2], diag, b, np.zeros_like(b))
    index, lu = _coarse_matrix(lv)
    out = np.zeros(deg.shape, np.float64)
    sol = np.zeros(m.size, np.float64)
    if index.size:
        sol[index] = lu.solve(b.reshape(-1)[index].astype(np.float64))
    out[inner] = sol.reshape(m.shape)
    return out


def pcg(deg: np.ndarray, x: np.ndarray, **kwargs: object) -> tuple[int, float, bool]:
    """Solve the phase Laplace system in place (see :func:`_pcg` for the arguments)."""
    with threads_for(deg.size):
        return _pcg(deg, x, **kwargs)  # type: ignore[arg-type]


def _pcg(
    deg: np.ndarray,
    x: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    omega: float = 1.9,
    progress: Callable[[int, float], object] | None = None,
    work: list[np.ndarray] | None = None,
) -> tuple[int, float, bool]:
    """Solve the phase Laplace system in place, starting from ``x``.

    Parameters
    ----------
    deg : uint8 ndarray, shape (n0 + 2, n1 + 2, n2 + 2), C-contiguous
        Padded degree array from :func:`padded_degree` (> 0 on the unknowns), flow along axis 0.
    x : float32 or float64 ndarray, same shape
        Initial guess on input (0 outside the unknowns and on the halo), solution on output.
    tol : float
        Stop when ||b - A x|| <= tol * ||b|| (2-norms, b the Dirichlet right-hand side).
    max_iter : int
        Iteration limit.
    progress : callable(iteration, relative_residual), optional
    work : list of 4 arrays like ``x``, optional
        Scratch vectors (reused between solves of the same shape); their halos must be zero.

    Returns
    -------
    (iterations, relative residual, converged)
    """
    dtype = np.dtype(np.float32) if work is None else work[0].dtype
    n0 = deg.shape[0] - 2
    if work is None:
        work = [np.zeros(deg.shape, dtype) for _ in range(4)]
    r, z, p, q = work
    # right-hand side: 2 * 1 on the unknowns of the outlet layer
    r[...] = 0.0
    r[n0] = np.where(deg[n0] > 0, 2.0, 0.0)
    rf, zf, pf, qf, xf = (a.reshape(-1) for a in (r, z, p, q, x))
    bnorm = math.sqrt(cg_dot(rf, rf))
    if bnorm == 0.0:
        x[...] = 0.0
        return 0, 0.0, True
    if (n0 * (deg.shape[1] - 2) * (deg.shape[2] - 2)) <= _COARSEST:
        x[...] = _direct_fine(deg, r)
        _fine_apply(deg, x, q)
        r -= q
        res = math.sqrt(cg_dot(rf, rf)) / bnorm
        if progress is not None:
            progress(1, res)
        return 1, res, res <= tol
    hier = build_hierarchy(deg, omega=omega, dtype=dtype)
    _fine_apply(deg, x, q)
    r -= q
    rr = cg_dot(rf, rf)
    res = math.sqrt(rr) / bnorm
    it = 0
    if progress is not None:
        progress(0, res)
    if res <= tol:
        return 0, res, True
    hier.vcycle(r, z)
    p[...] = z
    rz = cg_dot(rf, zf)
    while it < max_iter:
        it += 1
        pq = _fine_apply_dot(deg, p, q)
        if pq <= 0.0:
            break
        alpha = rz / pq
        rr = cg_update_xr(xf, rf, pf, qf, alpha)
        res = math.sqrt(rr) / bnorm
        if progress is not None:
            progress(it, res)
        if res <= tol:
            break
        hier.vcycle(r, z)
        rz_new = cg_dot(rf, zf)
        beta = rz_new / rz
        rz = rz_new
        cg_update_p(pf, zf, beta)
    return it, res, res <= tol
