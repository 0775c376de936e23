"""Compiled kernels of the germ–grain models: painting spheroids and capsules into a voxel grid.

Private to :mod:`twinsr.stochastic.grains` and :mod:`twinsr.stochastic.fibres`. Coordinates are in
voxel units with voxel ``(i, j, k)`` centred at ``(i + 0.5, j + 0.5, k + 0.5)``; a voxel belongs to
a grain when its centre lies inside it. ``origin`` is the position of voxel (0, 0, 0)'s corner in
the coordinates of the grain centres; ``wrap`` paints modulo the grid (periodic realizations).
Several grains may write the same voxel; each writes 1, so the order does not matter and the
result is the union.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["paint_capsules", "paint_spheroids"]


@numba.njit(cache=True, nogil=True)
def paint_spheroids(out, centers, radii, semi_axis_scale, axis, origin, wrap):  # pragma: no cover
    """Set to 1 the voxels of ``out`` whose centres lie in any spheroid.

    Spheroid ``p`` has centre ``centers[p]`` (3,), semi-axis ``radii[p] * semi_axis_scale`` along
    ``axis`` and ``radii[p]`` along the two other axes.
    """
    n0, n1, n2 = out.shape
    dims = (n0, n1, n2)
    for p in range(centers.shape[0]):
        r = radii[p]
        semi = (r * semi_axis_scale if axis == 0 else r,
                r * semi_axis_scale if axis == 1 else r,
                r * semi_axis_scale if axis == 2 else r)
        c0 = centers[p, 0] - origin[0] - 0.5
        c1 = centers[p, 1] - origin[1] - 0.5
        c2 = centers[p, 2] - origin[2] - 0.5
        lo0 = math.ceil(c0 - semi[0])
        hi0 = math.floor(c0 + semi[0])
        lo1 = math.ceil(c1 - semi[1])
        hi1 = math.floor(c1 + semi[1])
        lo2 = math.ceil(c2 - semi[2])
        hi2 = math.floor(c2 + semi[2])
        if not wrap:
            lo0, hi0 = max(lo0, 0), min(hi0, dims[0] - 1)
            lo1, hi1 = max(lo1, 0), min(hi1, dims[1] - 1)
            lo2, hi2 = max(lo2, 0), min(hi2, dims[2] - 1)
        for i in range(lo0, hi0 + 1):
            d0 = (i - c0) / semi[0]
            q0 = d0 * d0
            if q0 > 1.0:
                continue
            ii = i % n0
            for j in range(lo1, hi1 + 1):
                d1 = (j - c1) / semi[1]
                q1 = q0 + d1 * d1
                if q1 > 1.0:
                    continue
                jj = j % n1
                # the k-range of this row is an interval: solve instead of testing each voxel
                half = semi[2] * math.sqrt(1.0 - q1)
                k_lo = max(lo2, math.ceil(c2 - half))
                k_hi = min(hi2, math.floor(c2 + half))
                for k in range(k_lo, k_hi + 1):
                    out[ii, jj, k % n2] = 1
    return out


@numba.njit(cache=True, nogil=True)
def paint_capsules(out, starts, ends, radii, origin, wrap):  # pragma: no cover
    """Set to 1 the voxels whose centres lie within ``radii[p]`` of segment ``starts[p]–ends[p]``.

    The capsule is swept plane by plane along the segment's dominant axis; in each plane only a
    small window around the segment (its half-width r·(|v|/|v_d|) + r) is tested exactly, so a
    long oblique fibre costs its own volume, not its bounding box.
    """
    n = out.shape
    for p in range(starts.shape[0]):
        r = radii[p]
        a = np.empty(3)
        v = np.empty(3)
        for k in range(3):
            a[k] = starts[p, k] - origin[k] - 0.5
            v[k] = ends[p, k] - starts[p, k]
        vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
        d = 0
        for k in range(1, 3):
            if abs(v[k]) > abs(v[d]):
                d = k
        e1 = (d + 1) % 3
        e2 = (d + 2) % 3
        vlen = math.sqrt(vv)
        half = r + (r * vlen / abs(v[d]) if vv > 0.0 else r)
        lo_d = math.ceil(min(a[d], a[d] + v[d]) - r)
        hi_d = math.floor(max(a[d], a[d] + v[d]) + r)
        if not wrap:
            lo_d, hi_d = max(lo_d, 0), min(hi_d, n[d] - 1)
        r2 = r * r
        idx = np.empty(3, dtype=np.int64)
        for i in range(lo_d, hi_d + 1):
            t0 = (i - a[d]) / v[d] if vv > 0.0 else 0.0
            t0 = min(1.0, max(0.0, t0))
            c1 = a[e1] + t0 * v[e1]
            c2 = a[e2] + t0 * v[e2]
            lo1 = math.ceil(c1 - half)
            hi1 = math.floor(c1 + half)
            lo2 = math.ceil(c2 - half)
            hi2 = math.floor(c2 + half)
            if not wrap:
                lo1, hi1 = max(lo1, 0), min(hi1, n[e1] - 1)
                lo2, hi2 = max(lo2, 0), min(hi2, n[e2] - 1)
            idx[d] = i % n[d]
            w_d = i - a[d]
            for j in range(lo1, hi1 + 1):
                idx[e1] = j % n[e1]
                w1 = j - a[e1]
                for k in range(lo2, hi2 + 1):
                    w2 = k - a[e2]
                    dot = w_d * v[d] + w1 * v[e1] + w2 * v[e2]
                    t = dot / vv if vv > 0.0 else 0.0
                    t = min(1.0, max(0.0, t))
                    q0 = w_d - t * v[d]
                    q1 = w1 - t * v[e1]
                    q2 = w2 - t * v[e2]
                    if q0 * q0 + q1 * q1 + q2 * q2 <= r2:
                        idx[e2] = k % n[e2]
                        out[idx[0], idx[1], idx[2]] = 1
    return out


def empty_grid(shape: tuple[int, int, int]) -> np.ndarray:
    """A zeroed uint8 grid (kept here so callers need not know the kernels' dtype)."""
    return np.zeros(shape, dtype=np.uint8)


@numba.njit(cache=True, nogil=True)
def relax_sweep(pos, rad, pairs, box, overlap, disp):  # pragma: no cover - compiled
    """One Jacobi sweep of pairwise pushes; returns the largest excess overlap before it.

    For every pair closer than (R_i + R_j)(1 − overlap) (periodic minimum image in ``box``), both
    grains move apart by half the deficit along their line of centres. The moves of all pairs are
    summed first (in pair order) and applied together, positions wrapped into the box.
    """
    n = pos.shape[0]
    for p in range(n):
        disp[p, 0] = 0.0
        disp[p, 1] = 0.0
        disp[p, 2] = 0.0
    worst = 0.0
    for q in range(pairs.shape[0]):
        i = pairs[q, 0]
        j = pairs[q, 1]
        d0 = pos[j, 0] - pos[i, 0]
        d1 = pos[j, 1] - pos[i, 1]
        d2 = pos[j, 2] - pos[i, 2]
        d0 -= box[0] * np.rint(d0 / box[0])
        d1 -= box[1] * np.rint(d1 / box[1])
        d2 -= box[2] * np.rint(d2 / box[2])
        dist = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        rsum = rad[i] + rad[j]
        target = rsum * (1.0 - overlap)
        if dist >= target:
            continue
        excess = (target - dist) / rsum
        if excess > worst:
            worst = excess
        s = 0.5 * (target - dist) / max(dist, 1e-9)
        disp[i, 0] -= s * d0
        disp[i, 1] -= s * d1
        disp[i, 2] -= s * d2
        disp[j, 0] += s * d0
        disp[j, 1] += s * d1
        disp[j, 2] += s * d2
    for p in range(n):
        for k in range(3):
            v = pos[p, k] + disp[p, k]
            v = v - box[k] * math.floor(v / box[k])
            pos[p, k] = v if v < box[k] else 0.0
    return worst


@numba.njit(cache=True, nogil=True)
def _cell_scan(pos, rad, box, skin, ncell, order, start, out, fill):  # pragma: no cover
    """Count (``fill`` False) or write (``fill`` True) the near pairs found through the cell grid."""
    n = pos.shape[0]
    h0 = box[0] / ncell[0]
    h1 = box[1] / ncell[1]
    h2 = box[2] / ncell[2]
    count = 0
    for i in range(n):
        reach = 2.0 * rad[i] + skin  # a pair is found from its larger grain
        c0 = min(int(pos[i, 0] / h0), ncell[0] - 1)
        c1 = min(int(pos[i, 1] / h1), ncell[1] - 1)
        c2 = min(int(pos[i, 2] / h2), ncell[2] - 1)
        m0 = math.ceil(reach / h0)
        m1 = math.ceil(reach / h1)
        m2 = math.ceil(reach / h2)
        # with few cells along an axis, scan each of them exactly once
        s0 = ncell[0] if 2 * m0 + 1 >= ncell[0] else 2 * m0 + 1
        s1 = ncell[1] if 2 * m1 + 1 >= ncell[1] else 2 * m1 + 1
        s2 = ncell[2] if 2 * m2 + 1 >= ncell[2] else 2 * m2 + 1
        for a in range(s0):
            k0 = (c0 - m0 + a) % ncell[0] if s0 < ncell[0] else a
            for b in range(s1):
                k1 = (c1 - m1 + b) % ncell[1] if s1 < ncell[1] else b
                for c in range(s2):
                    k2 = (c2 - m2 + c) % ncell[2] if s2 < ncell[2] else c
                    cell = (k0 * ncell[1] + k1) * ncell[2] + k2
                    for q in range(start[cell], start[cell + 1]):
                        j = order[q]
                        if rad[j] > rad[i] or (rad[j] == rad[i] and j <= i):
                            continue
                        d0 = pos[j, 0] - pos[i, 0]
                        d1 = pos[j, 1] - pos[i, 1]
                        d2 = pos[j, 2] - pos[i, 2]
                        d0 -= box[0] * np.rint(d0 / box[0])
                        d1 -= box[1] * np.rint(d1 / box[1])
                        d2 -= box[2] * np.rint(d2 / box[2])
                        lim = rad[i] + rad[j] + skin
                        if d0 * d0 + d1 * d1 + d2 * d2 < lim * lim:
                            if fill:
                                out[count, 0] = min(i, j)
                                out[count, 1] = max(i, j)
                            count += 1
    return count


def near_pairs(pos: np.ndarray, rad: np.ndarray, box: np.ndarray, skin: float) -> np.ndarray:
    """Pairs (i < j) of grains whose periodic centre distance is below R_i + R_j + skin.

    A uniform cell grid (cells of about one median diameter) is scanned from the larger grain
    of each pair out to 2·R + skin, so large grains cost no more than their own reach.
    """
    box = np.asarray(box, dtype=np.float64)
    h = max(2.0 * float(np.median(rad)), 1e-6)
    ncell = np.maximum(1, np.floor(box / h)).astype(np.int64)
    hh = box / ncell
    cidx = np.minimum((pos / hh).astype(np.int64), ncell - 1)
    flat = (cidx[:, 0] * ncell[1] + cidx[:, 1]) * ncell[2] + cidx[:, 2]
    order = np.argsort(flat, kind="stable").astype(np.int64)
    start = np.searchsorted(flat[order], np.arange(int(np.prod(ncell)) + 1)).astype(np.int64)
    dummy = np.zeros((0, 2), dtype=np.int64)
    n = _cell_scan(pos, rad, box, float(skin), ncell, order, start, dummy, False)
    out = np.empty((n, 2), dtype=np.int64)
    _cell_scan(pos, rad, box, float(skin), ncell, order, start, out, True)
    return out
