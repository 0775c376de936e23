"""Numba kernels for maximal-ball maps: the local radius (local thickness) and simulated intrusion.

Both maps have the form ``out(p) = max { v(c) : |p - c|^2 < v(c) }`` over centre voxels ``c``, with
``v`` an integer squared radius: the squared distance transform ``d2`` (local thickness) or the
squared invasion radius ``rho2`` (intrusion; the largest ball that can travel from an inlet to
``c`` through centres with ``d2 >= rho2``, a widest-path problem).

* :func:`containment_table` and :func:`ridge` drop centres whose lattice ball lies inside a
  neighbour's lattice ball (exact test, so the maps are unchanged; typically 70-85 % of the
  centres go).
* :func:`paint_balls` rasterises the remaining balls one plane and one row at a time, largest
  first, filling only cells not yet filled (a "next free cell" union-find per row): the cost per
  ball is about its number of rows, (2R + 1)^2, instead of its volume.
* :func:`widest_path` computes ``rho2`` by a bucket-queue flood from the inlet voxels
  (6-connected centres; O(N + levels)).

Memory: the int32 maps (4 B/voxel each), the row union-find of one block of planes per thread,
the centre lists (24 B per kept centre); :func:`widest_path` needs about 13 B/voxel more.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["containment_table", "neighbour_classes", "paint_balls", "ridge", "widest_path"]

_BLOCK = 8  # planes per parallel work item in paint_balls


def neighbour_classes() -> tuple[np.ndarray, np.ndarray]:
    """The 26 neighbour offsets (26, 3) and their class |e|^2 - 1 in {0, 1, 2}."""
    offs = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                     if (a, b, c) != (0, 0, 0)], dtype=np.int64)
    return offs, (np.abs(offs).sum(axis=1) - 1).astype(np.int64)


def containment_table(n_max: int) -> np.ndarray:
    """``M[k, n] = max |p - e_k|^2`` over lattice points ``p`` with ``|p|^2 < n``, n = 0..n_max.

    ``e_k`` is a representative offset of class k ((1,0,0), (1,1,0), (1,1,1)); by the symmetry of
    the lattice ball the value is the same for every offset of the class. A ball of squared
    radius ``n`` centred at ``x`` lies inside the ball of squared radius ``w`` centred at
    ``x + e`` exactly when ``M[class(e), n] < w``. ``M[:, 0] = -1`` (empty ball).
    """
    n_max = max(int(n_max), 1)
    r = math.isqrt(n_max) + 1
    g = np.arange(-r, r + 1, dtype=np.int64)
    pz, py, px = np.meshgrid(g, g, g, indexing="ij")
    p2 = (pz * pz + py * py + px * px).ravel()
    keep = p2 < n_max
    p2, pz, py, px = p2[keep], pz.ravel()[keep], py.ravel()[keep], px.ravel()[keep]
    order = np.argsort(p2, kind="stable")
    p2, pz, py, px = p2[order], pz[order], py[order], px[order]
    # first index with |p|^2 >= n: points [0, idx) are inside the ball of squared radius n
    idx = np.searchsorted(p2, np.arange(n_max + 1), side="left")
    table = np.full((3, n_max + 1), -1, dtype=np.int64)
    for k, (ez, ey, ex) in enumerate(((1, 0, 0), (1, 1, 0), (1, 1, 1))):
        running = np.maximum.accumulate((pz - ez) ** 2 + (py - ey) ** 2 + (px - ex) ** 2)
        table[k] = np.where(idx > 0, running[np.maximum(idx - 1, 0)], -1)
    return table


@nb.njit(parallel=True, cache=True)
def ridge(v2, offs, cls, table):  # pragma: no cover - compiled
    """True where the ball of ``v2`` at the voxel is in no 26-neighbour's ball (v2 > 0 only)."""
    nz, ny, nx = v2.shape
    out = np.zeros(v2.shape, dtype=np.bool_)
    k_n = offs.shape[0]
    for z in nb.prange(nz):
        for y in range(ny):
            for x in range(nx):
                v = v2[z, y, x]
                if v <= 0:
                    continue
                keep = True
                for k in range(k_n):
                    zz = z + offs[k, 0]
                    yy = y + offs[k, 1]
                    xx = x + offs[k, 2]
                    if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                        continue
                    w = v2[zz, yy, xx]
                    if w > v and table[cls[k], v] < w:
                        keep = False
                        break
                out[z, y, x] = keep
    return out


@nb.njit(inline="always")
def _find(row, x):  # pragma: no cover - compiled
    while row[x] != x:
        row[x] = row[row[x]]
        x = row[x]
    return x


@nb.njit(parallel=True, cache=True)
def paint_balls(mask, cz, cy, cx, v2):  # pragma: no cover - compiled
    """``out(p) = max v2[i]`` over centres i with |p - c_i|^2 < v2[i] (0 where none), int32.

    The centres must be sorted by ``v2`` in decreasing order. ``mask`` (uint8) marks the voxels
    that can be covered (the balls lie inside it by construction); full rows and full planes are
    skipped, so a ball costs about the number of its rows that still hold free cells.
    """
    nz, ny, nx = mask.shape
    out = np.zeros((nz, ny, nx), dtype=np.int32)
    owner = np.empty((nz, ny, nx), dtype=np.int32)
    n_c = cz.size
    cen = np.empty((n_c, 4), dtype=np.float64)  # z, y, x, radius of the lattice ball, packed
    for i in range(n_c):
        cen[i, 0] = cz[i]
        cen[i, 1] = cy[i]
        cen[i, 2] = cx[i]
        cen[i, 3] = math.sqrt(v2[i] - 1)
    n_blocks = (nz + _BLOCK - 1) // _BLOCK
    for b in nb.prange(n_blocks):
        z0 = b * _BLOCK
        z1 = min(nz, z0 + _BLOCK)
        cand = np.empty(n_c, dtype=np.int64)
        n = 0
        for i in range(n_c):
            zc = cz[i]
            dz = 0 if z0 <= zc < z1 else (z0 - zc if zc < z0 else zc - (z1 - 1))
            if dz * dz < v2[i]:
                cand[n] = i
                n += 1
        row = np.empty((ny, nx + 1), dtype=np.int32)
        free = np.empty(ny, dtype=np.int64)
        nrow = np.empty(ny + 1, dtype=np.int32)
        for z in range(z0, z1):
            left = 0
            for y in range(ny):
                f = 0
                for x in range(nx):
                    if mask[z, y, x]:
                        row[y, x] = x
                        f += 1
                    else:
                        row[y, x] = x + 1
                row[y, nx] = nx
                free[y] = f
                nrow[y] = y if f > 0 else y + 1
                left += f
            nrow[ny] = ny
            for j in range(n):
                if left == 0:
                    break
                i = cand[j]
                rem = v2[i] - 1 - (z - cz[i]) * (z - cz[i])
                if rem < 0:
                    continue
                yc = cy[i]
                xc = cx[i]
                if out[z, yc, xc] > 0:  # skip the ball if the ball that covers its centre line holds it
                    o = owner[z, yc, xc]
                    gap = math.sqrt((cz[i] - cen[o, 0]) ** 2 + (yc - cen[o, 1]) ** 2
                                    + (xc - cen[o, 2]) ** 2)
                    if cen[i, 3] + gap <= cen[o, 3]:
                        continue
                val = np.int32(v2[i])
                ry = int(math.sqrt(rem))
                yb = min(ny - 1, yc + ry)
                y = _find(nrow, max(0, yc - ry))
                while y <= yb:
                    rx = int(math.sqrt(rem - (y - yc) * (y - yc)))
                    xb = min(nx - 1, xc + rx)
                    r_y = row[y]
                    x = _find(r_y, max(0, xc - rx))
                    while x <= xb:
                        out[z, y, x] = val
                        owner[z, y, x] = i
                        free[y] -= 1
                        left -= 1
                        r_y[x] = x + 1
                        x = _find(r_y, x + 1)
                    if free[y] == 0:
                        nrow[y] = y + 1
                    y = _find(nrow, y + 1)
    return out


@nb.njit(cache=True)
def widest_path(d2, inlet):  # pragma: no cover - compiled
    """Squared invasion radius: max over 6-connected paths from an inlet voxel of min d2 (int32).

    ``d2`` (int32, 0 outside the phase) and ``inlet`` (bool) have the same 3-D shape. Voxels not
    connected to an inlet voxel get 0. Bucket queue over the integer levels of ``d2``, one
    doubly-linked list per level.
    """
    nz, ny, nx = d2.shape
    flat = d2.ravel()
    inl = inlet.ravel()
    n_vox = flat.size
    top = 0
    for i in range(n_vox):
        if flat[i] > top:
            top = flat[i]
    head = np.full(top + 1, -1, dtype=np.int64)
    nxt = np.empty(n_vox, dtype=np.int32)
    prv = np.empty(n_vox, dtype=np.int32)
    best = np.zeros(n_vox, dtype=np.int32)  # tentative level; negated once final
    for i in range(n_vox):
        if inl[i] and flat[i] > 0:
            lev = flat[i]
            best[i] = lev
            prv[i] = -1
            nxt[i] = head[lev]
            if head[lev] >= 0:
                prv[head[lev]] = i
            head[lev] = i
    sy = nx
    sz = ny * nx
    level = top
    while level > 0:
        i = head[level]
        if i < 0:
            level -= 1
            continue
        head[level] = nxt[i]
        if nxt[i] >= 0:
            prv[nxt[i]] = -1
        best[i] = -level
        z = i // sz
        y = (i - z * sz) // sy
        x = i - z * sz - y * sy
        for k in range(6):
            if k == 0:
                if z == 0:
                    continue
                j = i - sz
            elif k == 1:
                if z == nz - 1:
                    continue
                j = i + sz
            elif k == 2:
                if y == 0:
                    continue
                j = i - sy
            elif k == 3:
                if y == ny - 1:
                    continue
                j = i + sy
            elif k == 4:
                if x == 0:
                    continue
                j = i - 1
            else:
                if x == nx - 1:
                    continue
                j = i + 1
            c = min(level, flat[j])
            bj = best[j]
            if c <= bj or bj < 0:
                continue
            if bj > 0:  # unlink from its current bucket
                if prv[j] >= 0:
                    nxt[prv[j]] = nxt[j]
                else:
                    head[bj] = nxt[j]
                if nxt[j] >= 0:
                    prv[nxt[j]] = prv[j]
            best[j] = c
            prv[j] = -1
            nxt[j] = head[c]
            if head[c] >= 0:
                prv[head[c]] = j
            head[c] = j
    out = np.empty(n_vox, dtype=np.int32)
    for i in range(n_vox):
        out[i] = -best[i] if best[i] < 0 else 0
    return out.reshape(nz, ny, nx)
