"""Tests for twinsr.metrics: accuracy, boundary band, surface accuracy, tortuosity errors."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from twinsr import metrics
from twinsr.exceptions import VolumeError
from twinsr.metrics import (
    accuracy,
    ball,
    boundary_band,
    relative_error,
    surface_accuracy,
    tortuosity_errors,
)


def test_accuracy_flipped_voxels():
    rng = np.random.default_rng(0)
    hr = (rng.random((20, 21, 22)) > 0.5).astype(np.uint8)
    sr = hr.copy()
    flat = rng.choice(hr.size, size=37, replace=False)
    sr.reshape(-1)[flat] ^= 1
    assert accuracy(sr, hr) == pytest.approx(1 - 37 / hr.size, abs=0)
    assert accuracy(hr, hr) == 1.0
    assert accuracy(1 - hr, hr) == 0.0
    # bool and {0, 255} encodings are accepted
    assert accuracy(hr.astype(bool), hr * 255) == 1.0


def test_ball_sizes():
    assert ball(1.1).sum() == 7  # centre + 6 face neighbours
    assert ball(2.2).sum() == 33  # |d|^2 in {0,1,2,3,4}
    assert ball(0.55 * 8).sum() == 365


def _cube(L, alpha):
    r = 0.55 * alpha
    pad = int(r) + 2
    n = L + 2 * pad
    im = np.zeros((n, n, n), np.uint8)
    im[pad : pad + L, pad : pad + L, pad : pad + L] = 1
    return im


# Cube of side L = 12 in pore, well inside the window. Hand count (r = 0.55 α):
#  α = 2, r = 1.1: solid = surface layer 12^3 - 10^3 = 728; pore = face-adjacent 6 * 144 = 864.
#  α = 4, r = 2.2: solid = 12^3 - 8^3 = 1216 (depth <= 1);
#                  pore: 1-axis offsets a in {1, 2}: 3 * 2 * 2 * 144 = 1728; 2-axis (1, 1):
#                  3 * 4 * 12 = 144; 3-axis (1, 1, 1): 8  -> 1880.
#  α = 8, r = 4.4: solid = 12^3 - 4^3 = 1664 (depth <= 3); pore = 5248 (offset enumeration).
@pytest.mark.parametrize(("alpha", "expected"), [(2, 728 + 864), (4, 1216 + 1880),
                                                 (8, 1664 + 5248)])
def test_boundary_band_cube_hand_count(alpha, expected):
    im = _cube(12, alpha)
    band = boundary_band(im, alpha)
    assert band.dtype == bool
    assert int(band.sum()) == expected
    # pore side by independent enumeration of lattice offsets outside the cube
    r, R, L = 0.55 * alpha, int(0.55 * alpha), 12
    mult = lambda k: L if k == 0 else 2  # noqa: E731
    pore = sum(mult(a) * mult(b) * mult(c) for a in range(R + 1) for b in range(R + 1)
               for c in range(R + 1) if a * a + b * b + c * c <= r * r) - L**3
    assert int((band & (im == 0)).sum()) == pore


def test_boundary_band_no_erosion_from_border():
    # a cube touching the window's corner: no band along the window faces
    im = np.zeros((10, 10, 10), np.uint8)
    im[:4, :4, :4] = 1
    band = boundary_band(im, 2)
    # solid: voxels with a face neighbour in pore inside the window = 4^3 - 3^3
    assert int((band & (im == 1)).sum()) == 4**3 - 3**3
    assert int((band & (im == 0)).sum()) == 3 * 16
    assert not boundary_band(np.ones((6, 6, 6), np.uint8), 8).any()
    assert not boundary_band(np.zeros((6, 6, 6), np.uint8), 8).any()


def test_surface_accuracy_known():
    im = _cube(12, 2)
    band = boundary_band(im, 2)
    sr = im.copy()
    # 10 errors inside the band, 5 errors in the deep interior (not in the band)
    bz = np.flatnonzero(band)[:10]
    sr.reshape(-1)[bz] ^= 1
    c = im.shape[0] // 2
    sr[c, c, c - 2 : c + 3] ^= 1
    assert not band[c, c, c - 2 : c + 3].any()
    assert surface_accuracy(sr, im, 2) == pytest.approx(1 - 10 / 1592, abs=1e-12)
    assert surface_accuracy(sr, im, 2, band=band) == surface_accuracy(sr, im, 2)
    assert accuracy(sr, im) == pytest.approx(1 - 15 / im.size, abs=1e-12)
    # single-phase volume: empty band, documented fallback to plain accuracy (no NaN)
    one = np.ones((4, 4, 4), np.uint8)
    assert surface_accuracy(one, one, 2) == 1.0


def test_metric_bad_inputs():
    hr = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(VolumeError, match="binary"):
        accuracy(np.full((4, 4, 4), 0.5), hr)
    with pytest.raises(VolumeError, match="binary"):
        accuracy(np.arange(64).reshape(4, 4, 4), hr)
    with pytest.raises(VolumeError, match="3-D"):
        accuracy(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(VolumeError, match="same shape"):
        accuracy(np.zeros((4, 4, 5), np.uint8), hr)
    with pytest.raises(VolumeError, match="3-D"):
        boundary_band(np.zeros((4, 4)), 2)
    with pytest.raises(VolumeError, match="binary"):
        surface_accuracy(hr, np.full((4, 4, 4), 3.5), 2)
    with pytest.raises(VolumeError, match="alpha"):
        boundary_band(hr, 0)
    with pytest.raises(VolumeError, match="band"):
        surface_accuracy(hr, hr, 2, band=np.zeros((2, 2, 2), bool))


def test_relative_error_rules():
    assert relative_error(1.2, 1.0) == pytest.approx(0.2)
    assert relative_error(0.8, 1.0) == pytest.approx(0.2)
    assert relative_error(math.inf, 1.3) == math.inf
    assert relative_error(1.3, math.inf) == math.inf
    assert relative_error(math.inf, math.inf) == 0.0
    with pytest.raises(VolumeError, match="NaN"):
        relative_error(math.nan, 1.0)
    with pytest.raises(VolumeError, match="reference is 0"):
        relative_error(1.0, 0.0)


def _fake_transport(monkeypatch):
    """A stand-in transport module: τ = 1 + (fraction of the other phase); phase 0 of a volume
    whose pore fraction is < 0.1 does not percolate."""
    res = types.SimpleNamespace

    def fake(kind):
        def f(im, *, phase, axis, **kw):
            frac = float((im == phase).mean())
            if frac < 0.1:
                return res(tau=math.inf, percolating=False)
            return res(tau=1.0 + (1 - frac) + (0.5 if kind == "eff" else 0.0), percolating=True)
        return f

    mod = types.ModuleType("twinsr.transport")
    mod.effective_tortuosity = fake("eff")

    def geod(im, *, phase, axis, **kw):  # like GeodesicResult: no flag, tau = inf
        return res(tau=fake("geod")(im, phase=phase, axis=axis).tau)

    mod.geodesic_tortuosity = geod
    monkeypatch.setitem(sys.modules, "twinsr.transport", mod)


def test_tortuosity_errors_logic_and_nonpercolating(monkeypatch):
    _fake_transport(monkeypatch)
    hr = np.zeros((8, 8, 8), np.uint8)
    hr[:, :4] = 1  # pore 0.5, solid 0.5
    sr = hr.copy()
    sr[:, 4:6] = 1  # pore 0.25, solid 0.75
    te = tortuosity_errors(sr, hr)
    assert te.hr["pore"].tau_geod == pytest.approx(1.5)
    assert te.sr["pore"].tau_geod == pytest.approx(1.75)
    assert te.geod_rel_err["pore"] == pytest.approx(0.25 / 1.5)
    assert te.geod_rel_err["solid"] == pytest.approx(0.25 / 1.5)
    assert te.eff_rel_err["solid"] == pytest.approx(0.25 / 2.0)
    assert te.geod_rel_err["mean"] == pytest.approx(0.25 / 1.5)
    # SR loses the pore phase entirely -> explicit inf and percolating=False, never NaN
    sr2 = np.ones_like(hr)
    te2 = tortuosity_errors(sr2, hr)
    assert te2.sr["pore"].percolating is False
    assert te2.geod_rel_err["pore"] == math.inf and te2.geod_rel_err["mean"] == math.inf
    assert not any(math.isnan(v) for v in (*te2.geod_rel_err.values(), *te2.eff_rel_err.values()))
    # a precomputed reference is used as is
    te3 = tortuosity_errors(sr, hr, reference=te.hr)
    assert te3.geod_rel_err == te.geod_rel_err


def test_tortuosity_errors_bad_input(monkeypatch):
    _fake_transport(monkeypatch)
    hr = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(VolumeError, match="axis"):
        tortuosity_errors(hr, hr, axis=3)
    with pytest.raises(VolumeError, match="phases"):
        metrics.phase_tortuosities(hr, phases=("liquid",))


def test_tortuosity_errors_real_transport_straight_channels():
    transport = pytest.importorskip("twinsr.transport")
    if not hasattr(transport, "effective_tortuosity"):
        pytest.skip("twinsr.transport not available yet")
    hr = np.zeros((12, 12, 12), np.uint8)
    hr[:, :6] = 1  # two straight slabs along axis 0: τ = 1 for both phases
    te = tortuosity_errors(hr, hr, axis=0)
    for p in ("pore", "solid"):
        assert te.hr[p].tau_geod == pytest.approx(1.0, abs=1e-6)
        assert te.hr[p].tau_eff == pytest.approx(1.0, abs=1e-3)
        assert te.geod_rel_err[p] == 0.0


def test_phase_tortuosities_diagonal_only_connection():
    """A phase joined only through voxel edges: geodesic τ finite (26-graph), τ_eff = inf
    (6-connected solve), and the phase counts as non-percolating."""
    im = np.ones((8, 8, 3), np.uint8)
    for i in range(8):
        im[i, i, 1] = 0
    t = metrics.phase_tortuosities(im, phases=("pore",), device="cpu")["pore"]
    assert t.tau_geod == pytest.approx(math.sqrt(2))
    assert t.tau_eff == math.inf
    assert t.percolating is False
    with pytest.raises(VolumeError, match="'pore' or 'solid'"):
        metrics.phase_tortuosities(im, phases=("pore", "gas"))


def test_tortuosity_errors_reference_missing_phase(monkeypatch):
    _fake_transport(monkeypatch)
    hr = np.zeros((8, 8, 8), np.uint8)
    hr[:, :4] = 1
    ref = metrics.phase_tortuosities(hr, phases=("pore",))
    with pytest.raises(VolumeError, match="no entry for phase 'solid'"):
        tortuosity_errors(hr, hr, reference=ref)


def test_phase_relative_errors_known_values_and_rules():
    T = metrics.PhaseTortuosity
    ref = {"pore": T("pore", 1.5, 2.0, True), "solid": T("solid", 1.2, math.inf, False)}
    got = {"pore": T("pore", 1.8, 1.0, True), "solid": T("solid", 1.2, math.inf, False)}
    geod, eff = metrics.phase_relative_errors(got, ref)
    assert list(geod) == ["pore", "solid", metrics.MEAN] == list(eff)
    assert geod["pore"] == pytest.approx(0.2) and geod["solid"] == 0.0
    assert geod["mean"] == pytest.approx(0.1)
    assert eff["pore"] == pytest.approx(0.5)
    assert eff["solid"] == 0.0  # both non-percolating: they agree
    assert eff["mean"] == pytest.approx(0.25)
    # one phase only, chosen explicitly; a percolation mismatch is inf and so is the mean
    lost = {"pore": T("pore", math.inf, math.inf, False)}
    g, e = metrics.phase_relative_errors(lost, ref, phases=["pore"])
    assert list(g) == ["pore", "mean"] and g["pore"] == math.inf and e["mean"] == math.inf
    with pytest.raises(VolumeError, match="`reference` has no entry for phase 'solid'"):
        metrics.phase_relative_errors(got, {"pore": ref["pore"]})
    with pytest.raises(VolumeError, match="`values` has no entry for phase 'solid'"):
        metrics.phase_relative_errors(lost, ref, phases=["pore", "solid"])
    with pytest.raises(VolumeError, match="no phases"):
        metrics.phase_relative_errors({}, ref)


def test_tortuosity_errors_and_study_rows_share_the_relative_errors(monkeypatch):
    """tortuosity_errors and the study's table rows give the same numbers for the same
    tortuosities (one routine)."""
    from twinsr.study.evaluate import evaluate_volume

    _fake_transport(monkeypatch)
    hr = np.zeros((8, 8, 8), np.uint8)
    hr[:, :4] = 1
    sr = hr.copy()
    sr[:, 4:6] = 1
    te = tortuosity_errors(sr, hr)
    unit = evaluate_volume([hr], 2, {"m": lambda lr: sr}, source="simulated", sample="x",
                           reference=[te.hr])
    table = {(r["phase"], r["metric"]): r["value"] for r in unit.rows if r["method"] == "m"}
    for phase in ("pore", "solid", "mean"):
        assert table[(phase, "tau_geod_rel_err")] == te.geod_rel_err[phase]
        assert table[(phase, "tau_eff_rel_err")] == te.eff_rel_err[phase]
    assert table[("pore", "tau_geod")] == te.sr["pore"].tau_geod
