"""Numba kernels for maximal-ball maps: the local radius (local thickness) and simulated intrusion.

Both maps have the form ``out(p) = max { v(c) : |p - c|^2 < v(c) }`` over centre voxels ``c``, with
``v`` an integer squared radius: the squared distance transform ``d2`` (local thickness) or the
squared invasion radius ``rho2`` (intrusion; the largest ball that can travel from an inlet to
``c`` through centres with ``d2 >= rho2``, a widest-path problem).

* :func:`containment_table` and :func:`ridge` drop centres whose lattice ball lies inside a
  neighbour's lattice ball (exact test, so the maps are unchanged; typically 70-85 % of the
  centres go).
* :func:`paint_balls` rasterises the remaining balls one plane at a time, largest first, filling
  only cells not yet filled ("next free cell" union-finds per row and per column of 16-cell row
  pieces): a ball costs about the number of its row pieces that still hold free cells, not its
  volume.
* :func:`widest_path` computes ``rho2`` by a bucket-queue flood from the inlet voxels
  (6-connected centres; O(N + levels)).

Memory: the int32 maps (4 B/voxel each), the union-finds of one plane per thread, the centre
lists (32 B per kept centre); :func:`widest_path` needs about 13 B/voxel more.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["containment_table", "neighbour_classes", "paint_balls", "ridge", "widest_path"]

_BLOCK = 8  # planes per parallel work item in paint_balls
_CHUNK = 16  # cells per row piece tracked by paint_balls


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


@nb.njit(inline="always")
def _init_plane(mask, z, row, free_c, ncol):  # pragma: no cover - compiled
    """Free cells of plane z: per-row "next free cell" links, free counts per (row, chunk) and per
    chunk column "next row with a free cell in this chunk" links. Returns the free count."""
    ny, nx = row.shape[0], row.shape[1] - 1
    n_ch = free_c.shape[1]
    left = 0
    free_c[:, :] = 0
    for y in range(ny):
        for x in range(nx):
            if mask[z, y, x]:
                row[y, x] = x
                free_c[y, x // _CHUNK] += 1
                left += 1
            else:
                row[y, x] = x + 1
        row[y, nx] = nx
    for c in range(n_ch):
        for y in range(ny):
            ncol[c, y] = y if free_c[y, c] > 0 else y + 1
        ncol[c, ny] = ny
    return left


@nb.njit(inline="always")
def _paint_disc(out, z, val, yc, xc, rem, row, free_c, ncol):  # pragma: no cover - compiled
    """Fill the free cells of the disc |(y, x) - (yc, xc)|^2 <= rem of plane z with ``val``;
    visits only the (row, chunk) pieces that still hold free cells. Returns the cells filled."""
    ny, nx = row.shape[0], row.shape[1] - 1
    ry = int(math.sqrt(rem))
    ya, yb = max(0, yc - ry), min(ny - 1, yc + ry)
    filled = 0
    for c in range(max(0, xc - ry) // _CHUNK, min(nx - 1, xc + ry) // _CHUNK + 1):
        lo_c, hi_c = c * _CHUNK, min(nx - 1, c * _CHUNK + _CHUNK - 1)
        col = ncol[c]
        y = _find(col, ya)
        while y <= yb:
            rx = int(math.sqrt(rem - (y - yc) * (y - yc)))
            xa, xb = max(lo_c, xc - rx), min(hi_c, xc + rx)
            if xa <= xb:
                r_y = row[y]
                x = _find(r_y, xa)
                while x <= xb:
                    out[z, y, x] = val
                    free_c[y, c] -= 1
                    filled += 1
                    r_y[x] = x + 1
                    x = _find(r_y, x + 1)
                if free_c[y, c] == 0:
                    col[y] = y + 1
            y = _find(col, y + 1)
    return filled


@nb.njit(parallel=True, cache=True)
def paint_balls(mask, cz, cy, cx, v2):  # pragma: no cover - compiled
    """``out(p) = max v2[i]`` over centres i with |p - c_i|^2 < v2[i] (0 where none), int32.

    The centres must be sorted by ``v2`` in decreasing order. ``mask`` (uint8) marks the voxels
    that can be covered (the balls lie inside it by construction). Each block of planes is filled
    largest ball first, cells only while free; a ball costs about the number of its (row,
    16-cell chunk) pieces that still hold free cells, and a full plane stops early.
    """
    nz, ny, nx = mask.shape
    out = np.zeros((nz, ny, nx), dtype=np.int32)
    n_c = cz.size
    n_ch = (nx + _CHUNK - 1) // _CHUNK
    n_blocks = (nz + _BLOCK - 1) // _BLOCK
    for b in nb.prange(n_blocks):
        z0 = b * _BLOCK
        z1 = min(nz, z0 + _BLOCK)
        cand = np.empty(n_c, dtype=np.int64)
        n = 0
        for i in range(n_c):
            dz = 0 if z0 <= cz[i] < z1 else (z0 - cz[i] if cz[i] < z0 else cz[i] - (z1 - 1))
            if dz * dz < v2[i]:
                cand[n] = i
                n += 1
        row = np.empty((ny, nx + 1), dtype=np.int32)
        free_c = np.empty((ny, n_ch), dtype=np.int32)
        ncol = np.empty((n_ch, ny + 1), dtype=np.int32)
        for z in range(z0, z1):
            left = _init_plane(mask, z, row, free_c, ncol)
            for j in range(n):
                if left == 0:
                    break
                i = cand[j]
                rem = v2[i] - 1 - (z - cz[i]) * (z - cz[i])
                if rem < 0:
                    continue
                left -= _paint_disc(out, z, np.int32(v2[i]), cy[i], cx[i], rem, row, free_c, ncol)
    return out


@nb.njit(inline="always")
def _push(head, nxt, prv, j, lev):  # pragma: no cover - compiled
    prv[j] = -1
    nxt[j] = head[lev]
    if head[lev] >= 0:
        prv[head[lev]] = j
    head[lev] = j


@nb.njit(inline="always")
def _unlink(head, nxt, prv, j, lev):  # pragma: no cover - compiled
    if prv[j] >= 0:
        nxt[prv[j]] = nxt[j]
    else:
        head[lev] = nxt[j]
    if nxt[j] >= 0:
        prv[nxt[j]] = prv[j]


@nb.njit(cache=True)
def widest_path(d2, inlet):  # pragma: no cover - compiled
    """Squared invasion radius: max over 6-connected paths from an inlet voxel of min d2 (int32).

    ``d2`` (int32, 0 outside the phase) and ``inlet`` (bool) have the same 3-D shape. Voxels not
    connected to an inlet voxel get 0. Bucket queue over the integer levels of ``d2``, one
    doubly-linked list per level; each voxel is settled once, at the highest level first.
    """
    nz, ny, nx = d2.shape
    flat = d2.ravel()
    inl = inlet.ravel()
    n_vox = flat.size
    top = max(0, flat.max())
    head = np.full(top + 1, -1, dtype=np.int64)
    nxt = np.empty(n_vox, dtype=np.int32)
    prv = np.empty(n_vox, dtype=np.int32)
    best = np.zeros(n_vox, dtype=np.int32)  # tentative level; negated once final
    for i in range(n_vox):
        if inl[i] and flat[i] > 0:
            best[i] = flat[i]
            _push(head, nxt, prv, i, flat[i])
    steps = np.array([-ny * nx, ny * nx, -nx, nx, -1, 1], dtype=np.int64)
    level = top
    while level > 0:
        i = head[level]
        if i < 0:
            level -= 1
            continue
        _unlink(head, nxt, prv, i, level)
        best[i] = -level
        z = i // (ny * nx)
        y = (i // nx) % ny
        x = i % nx
        inside = (z > 0, z < nz - 1, y > 0, y < ny - 1, x > 0, x < nx - 1)
        for k in range(6):
            if not inside[k]:
                continue
            j = i + steps[k]
            c = min(level, flat[j])
            bj = best[j]
            if c <= bj or bj < 0:
                continue
            if bj > 0:
                _unlink(head, nxt, prv, j, bj)
            best[j] = c
            _push(head, nxt, prv, j, c)
    out = np.empty(n_vox, dtype=np.int32)
    for i in range(n_vox):
        out[i] = -best[i] if best[i] < 0 else 0
    return out.reshape(nz, ny, nx)
