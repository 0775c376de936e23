"""Numba kernels for shortest paths inside one phase over a zero-padded grid (no bounds checks,
no edge lists): multi-source Dijkstra on the 6-, 18- or 26-neighbour voxel graph (steps 1, √2,
√3) with one FIFO queue per step length, and first-order fast marching with an indexed binary
heap.

Memory: a float64 distance (8 B/voxel), the padded uint8 phase, a done flag and target flags
(1 B/voxel each), plus the queues (8 B per live entry) or, for fast marching, heap and position
arrays (4 B/voxel each): about 11–19 bytes per voxel of the bounding box.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["distance_to_outlet", "neighbour_offsets"]


def neighbour_offsets(metric: str, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (K, 3) and physical step lengths (K,) of the voxel graph named by ``metric``.

    A step (di, dj, dk) has length sqrt((di h0)² + (dj h1)² + (dk h2)²) for voxel size
    ``spacing`` = (h0, h1, h2) (1, √2, √3 for cubic unit voxels).
    """
    h0, h1, h2 = spacing
    offs, wts = [], []
    limit = {"graph6": 1, "graph18": 2, "graph26": 3}[metric]
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            for dk in (-1, 0, 1):
                n = abs(di) + abs(dj) + abs(dk)
                if 0 < n <= limit:
                    offs.append((di, dj, dk))
                    wts.append(math.sqrt((di * h0) ** 2 + (dj * h1) ** 2 + (dk * h2) ** 2))
    return np.array(offs, dtype=np.int64), np.array(wts, dtype=np.float64)


@nb.njit(inline="always")
def _sift_up(heap, pos, dist, h):  # pragma: no cover - compiled
    v = heap[h]
    dv = dist[v]
    while h > 0:
        parent = (h - 1) >> 1
        u = heap[parent]
        if dist[u] <= dv:
            break
        heap[h] = u
        pos[u] = h
        h = parent
    heap[h] = v
    pos[v] = h


@nb.njit(inline="always")
def _sift_down(heap, pos, dist, h, size):  # pragma: no cover - compiled
    v = heap[h]
    dv = dist[v]
    while True:
        c = 2 * h + 1
        if c >= size:
            break
        if c + 1 < size and dist[heap[c + 1]] < dist[heap[c]]:
            c += 1
        u = heap[c]
        if dist[u] >= dv:
            break
        heap[h] = u
        pos[u] = h
        h = c
    heap[h] = v
    pos[v] = h


@nb.njit(cache=True)
def _dijkstra_queues(ph, deltas, wclass, wvalues, dist, sources, n_targets,
                     target_flag):  # pragma: no cover - compiled
    """Multi-source Dijkstra for graphs with a few distinct step lengths (Dial-like FIFO queues).

    One FIFO queue per step length: a voxel relaxed through a step of length w_k is appended to
    queue k. Voxels are settled in non-decreasing distance, so each queue's insertion keys
    (dist[settled] + w_k) are non-decreasing and the smallest tentative distance is at the head of
    one of the queues: O(1) per operation instead of a heap's O(log n), with the same distances
    (min over settled neighbours of dist + w, as in any Dijkstra). Stale entries are skipped.
    """
    n_q = wvalues.size
    cap = max(1024, 4 * sources.size)
    buf = np.empty((n_q, cap), dtype=np.int64)
    head = np.zeros(n_q, dtype=np.int64)
    count = np.zeros(n_q, dtype=np.int64)
    done = np.zeros(ph.size, dtype=np.uint8)
    for s in sources:
        dist[s] = 0.0
    # sources go into queue 0 (all keys 0)
    for t in range(sources.size):
        buf[0, t] = sources[t]
    count[0] = sources.size
    remaining = n_targets
    nd = deltas.size
    while remaining > 0:
        best = -1
        best_d = np.inf
        for q in range(n_q):
            while count[q] > 0:  # drop settled heads
                v = buf[q, head[q]]
                if done[v]:
                    head[q] = (head[q] + 1) % cap
                    count[q] -= 1
                else:
                    break
            if count[q] > 0:
                dv = dist[buf[q, head[q]]]
                if dv < best_d:
                    best_d = dv
                    best = q
        if best < 0:
            break
        v = buf[best, head[best]]
        head[best] = (head[best] + 1) % cap
        count[best] -= 1
        done[v] = 1
        if target_flag[v]:
            remaining -= 1
        for t in range(nd):
            u = v + deltas[t]
            if ph[u] == 0 or done[u]:
                continue
            alt = best_d + wvalues[wclass[t]]
            if alt < dist[u]:
                dist[u] = alt
                q = wclass[t]
                if count[q] == cap:  # grow every ring buffer, unrolling them in order
                    new_cap = 2 * cap
                    nbuf = np.empty((n_q, new_cap), dtype=np.int64)
                    for qq in range(n_q):
                        for e in range(count[qq]):
                            nbuf[qq, e] = buf[qq, (head[qq] + e) % cap]
                        head[qq] = 0
                    buf = nbuf
                    cap = new_cap
                buf[q, (head[q] + count[q]) % cap] = u
                count[q] += 1


@nb.njit(inline="always")
def _eikonal(a, b, c):  # pragma: no cover - compiled
    """Solve the first-order upwind eikonal update (unit speed) from the three axis minima."""
    # sort a <= b <= c
    if a > b:
        a, b = b, a
    if b > c:
        b, c = c, b
    if a > b:
        a, b = b, a
    t = a + 1.0
    if t > b:
        t = 0.5 * (a + b + math.sqrt(2.0 - (a - b) * (a - b)))
        if t > c:
            s = a + b + c
            q = a * a + b * b + c * c
            t = (s + math.sqrt(s * s - 3.0 * (q - 1.0))) / 3.0
    return t


@nb.njit(inline="always")
def _eikonal_h(a, b, c, ha, hb, hc):  # pragma: no cover - compiled
    """Upwind eikonal update sum_i ((t - a_i) / h_i)^2 = 1 over the axes with a_i < t."""
    # sort (a, ha) <= (b, hb) <= (c, hc) by the neighbour values
    if a > b:
        a, b, ha, hb = b, a, hb, ha
    if b > c:
        b, c, hb, hc = c, b, hc, hb
    if a > b:
        a, b, ha, hb = b, a, hb, ha
    t = a + ha
    if t > b:
        s0 = 1.0 / (ha * ha) + 1.0 / (hb * hb)
        s1 = a / (ha * ha) + b / (hb * hb)
        s2 = a * a / (ha * ha) + b * b / (hb * hb)
        t = (s1 + math.sqrt(max(s1 * s1 - s0 * (s2 - 1.0), 0.0))) / s0
        if t > c:
            s0 += 1.0 / (hc * hc)
            s1 += c / (hc * hc)
            s2 += c * c / (hc * hc)
            t = (s1 + math.sqrt(max(s1 * s1 - s0 * (s2 - 1.0), 0.0))) / s0
    return t


@nb.njit(inline="always")
def _axis_min(dist, done, u, stride):  # pragma: no cover - compiled
    t1 = dist[u - stride] if done[u - stride] else np.inf
    t2 = dist[u + stride] if done[u + stride] else np.inf
    return t1 if t1 < t2 else t2


@nb.njit(cache=True)
def _fast_marching(ph, strides, dist, sources, n_targets, target_flag, hs):  # pragma: no cover
    """First-order fast marching (6-neighbour upwind stencil) on a padded flat grid.

    ``hs`` (3,) is the voxel size per axis; cubic unit voxels (all 1) use the closed-form update.
    """
    iso = hs[0] == 1.0 and hs[1] == 1.0 and hs[2] == 1.0
    n = ph.size
    heap = np.empty(n, dtype=np.int32)
    pos = np.full(n, -1, dtype=np.int32)
    done = np.zeros(n, dtype=np.uint8)
    size = 0
    for s in sources:
        dist[s] = 0.0
        heap[size] = s
        pos[s] = size
        size += 1
    remaining = n_targets
    while size > 0 and remaining > 0:
        v = heap[0]
        size -= 1
        pos[v] = -1
        done[v] = 1
        if size > 0:
            heap[0] = heap[size]
            pos[heap[0]] = 0
            _sift_down(heap, pos, dist, 0, size)
        if target_flag[v]:
            remaining -= 1
        for a in range(3):
            for sgn in (-1, 1):
                u = v + sgn * strides[a]
                if ph[u] == 0 or done[u]:
                    continue
                m0 = _axis_min(dist, done, u, strides[0])
                m1 = _axis_min(dist, done, u, strides[1])
                m2 = _axis_min(dist, done, u, strides[2])
                alt = _eikonal(m0, m1, m2) if iso else _eikonal_h(m0, m1, m2, hs[0], hs[1], hs[2])
                if alt < dist[u]:
                    dist[u] = alt
                    h = pos[u]
                    if h < 0:
                        heap[size] = u
                        pos[u] = size
                        h = size
                        size += 1
                    _sift_up(heap, pos, dist, h)


def distance_to_outlet(phase_mask: np.ndarray, metric: str,
                       spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Shortest in-phase distance (float64; voxel units, or the units of ``spacing``, the voxel
    size along the three axes) from every inlet-layer voxel (index 0 along axis 0) to the nearest
    outlet-layer voxel (last index along axis 0), centre to centre.

    Returns an array of shape ``phase_mask.shape[1:]``: the distance, inf where the voxel is in the
    phase but not connected, NaN where it is not in the phase.
    """
    n0, n1, n2 = phase_mask.shape
    ph = np.zeros((n0 + 2, n1 + 2, n2 + 2), dtype=np.uint8)
    ph[1:-1, 1:-1, 1:-1] = phase_mask
    strides = np.array([(n1 + 2) * (n2 + 2), n2 + 2, 1], dtype=np.int64)
    flat = ph.reshape(-1)

    def layer_indices(layer: int, plane: np.ndarray) -> np.ndarray:
        j, k = np.nonzero(plane)
        return layer * strides[0] + (j + 1) * strides[1] + (k + 1)

    out_layer = layer_indices(n0, phase_mask[n0 - 1]).astype(np.int64)
    in_layer = layer_indices(1, phase_mask[0]).astype(np.int64)
    target = np.zeros(flat.size, dtype=np.uint8)
    target[in_layer] = 1
    dist = np.full(flat.size, np.inf, dtype=np.float64)
    if out_layer.size and in_layer.size:
        if metric == "fmm":
            _fast_marching(flat, strides, dist, out_layer, in_layer.size, target,
                           np.asarray(spacing, dtype=np.float64))
        else:
            offs, wts = neighbour_offsets(metric, spacing)
            deltas = offs @ strides
            wvalues, wclass = np.unique(wts, return_inverse=True)
            _dijkstra_queues(flat, deltas, wclass.astype(np.int64), wvalues, dist, out_layer,
                             in_layer.size, target)
    res = dist.reshape(ph.shape)[1, 1:-1, 1:-1].copy()
    res[phase_mask[0] == 0] = np.nan
    return res
