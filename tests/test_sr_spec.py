"""The typed model record (twinsr.sr.bundle.ModelSpec): validation, bundles v1/v2, SRModel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from twinsr.exceptions import BundleError, ConfigError, ModelWarning
from twinsr.sr.bundle import BUNDLE_VERSION, ModelSpec, SRModel, load_model, save_bundle
from twinsr.sr.network import SRResNet3d


def test_spec_derives_channels_and_round_trips() -> None:
    s = ModelSpec(alpha=4, inputs="diffu", threshold=0.42, targets="morph+diffu",
                  transport_axis=2, crop=12)
    assert (s.in_channels, s.out_channels) == (3, 3)
    assert s.input_names == ("binary", "pore_solution", "solid_solution")
    assert s.output_names == ("solid_logit", "pore_solution", "solid_solution")
    assert s.solid_value == 1 and s.channel_range == (0.0, 1.0)
    d = s.to_dict()
    assert ModelSpec.from_dict(d) == s
    assert ModelSpec(alpha=2, inputs="bin", threshold=0.5).transport_axis is None


@pytest.mark.parametrize(("kw", "match"), [
    ({"alpha": 3}, "alpha` must be 2, 4 or 8"),
    ({"inputs": "grey"}, "`inputs` must be 'bin' or 'diffu'"),
    ({"targets": "diffu"}, "unknown targets 'diffu'; known target kinds: 'morph'"),
    ({"threshold": 1.0}, r"threshold must be in \(0, 1\)"),
    ({"crop": 0}, "`crop` must be a positive integer"),
    ({"inputs": "diffu"}, "needs `transport_axis`"),
    ({"targets": "morph+diffu"}, "needs `transport_axis`"),
    ({"transport_axis": 1}, "has no meaning for a model with inputs='bin'"),
    ({"inputs": "diffu", "transport_axis": 3}, "axis"),
])
def test_spec_bad_fields(kw: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"alpha": 2, "inputs": "bin", "threshold": 0.5}
    with pytest.raises((ConfigError, ValueError), match=match):
        ModelSpec(**{**base, **kw})


def test_spec_from_dict_checks_derived_fields() -> None:
    d = ModelSpec(alpha=2, inputs="bin", threshold=0.5).to_dict()
    with pytest.raises(ConfigError, match="in_channels=3 \\(expected 1\\)"):
        ModelSpec.from_dict({**d, "in_channels": 3})
    del d["threshold"]
    with pytest.raises(ConfigError, match="lacks the field 'threshold'"):
        ModelSpec.from_dict(d)


def test_resolve_axis() -> None:
    s = ModelSpec(alpha=2, inputs="diffu", threshold=0.5, transport_axis=1)
    assert s.resolve_axis(None) == 1 and s.resolve_axis(1) == 1 and s.resolve_axis(-2) == 1
    with pytest.raises(ConfigError, match=r"along axis 1 .* axis=2 was requested.* --axis 2"):
        s.resolve_axis(2)
    b = ModelSpec(alpha=2, inputs="bin", threshold=0.5)
    assert b.resolve_axis(None) is None and b.resolve_axis(2) == 2


def test_srmodel_defaults_and_mismatch() -> None:
    net = SRResNet3d(3, 4, channels=4, blocks=1, out_channels=3)
    m = SRModel(net, threshold=0.3, transport_axis=0, crop=10)
    assert (m.alpha, m.inputs, m.targets, m.transport_axis, m.spec.crop) == (
        4, "diffu", "morph+diffu", 0, 10)
    with pytest.raises(ConfigError, match="does not fit the network"):
        SRModel(net, alpha=2, threshold=0.3, transport_axis=0)
    with pytest.raises(ConfigError, match="does not fit the network"):
        SRModel(net, targets="morph", threshold=0.3, transport_axis=0)
    with pytest.raises(ConfigError, match="needs `threshold`"):
        SRModel(net, transport_axis=0)
    with pytest.raises(ConfigError, match="either `spec` or alpha"):
        SRModel(net, alpha=4, spec=m.spec)
    with pytest.raises(ConfigError, match="must be an SRResNet3d"):
        SRModel("net.pt", threshold=0.5)  # type: ignore[arg-type]


def test_bundle_stores_spec(tmp_path: Path) -> None:
    net = SRResNet3d(3, 2, channels=4, blocks=1)
    p = save_bundle(tmp_path / "m.pt", net, threshold=0.4, transport_axis=1, crop=8)
    payload = torch.load(p, weights_only=True)
    assert payload["format_version"] == BUNDLE_VERSION == 2
    assert payload["spec"]["transport_axis"] == 1 and payload["spec"]["crop"] == 8
    m = load_model(p)
    assert m.spec == ModelSpec(alpha=2, inputs="diffu", threshold=0.4, transport_axis=1, crop=8)
    with pytest.raises(BundleError, match="needs `transport_axis`"):
        save_bundle(tmp_path / "x.pt", net, threshold=0.4)
    with pytest.raises(BundleError, match="does not fit the network"):
        save_bundle(tmp_path / "x.pt", net, threshold=0.4, targets="morph+diffu",
                    transport_axis=1)
    payload["spec"]["out_channels"] = 3
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(BundleError, match="inconsistent: model spec fields disagree"):
        load_model(tmp_path / "tampered.pt")


def _v1(path: Path, net: SRResNet3d, inputs: str, metadata: dict[str, Any]) -> Path:
    """A bundle exactly as format version 1 wrote it."""
    torch.save({"format": "twinsr-sr-bundle", "format_version": 1,
                "state_dict": net.state_dict(), "arch": net.arch_kwargs(), "alpha": net.scale,
                "inputs": inputs, "threshold": 0.37, "metadata": metadata}, path)
    return path


def test_reads_format_1_bundles(tmp_path: Path) -> None:
    cfg = {"crop": 16, "crop_per_alpha": {"4": 12}}  # JSON turned the int keys into str
    net = SRResNet3d(1, 4, channels=4, blocks=1)
    b = load_model(_v1(tmp_path / "b.pt", net, "bin", {"config": cfg}))
    assert b.spec == ModelSpec(alpha=4, inputs="bin", threshold=0.37, crop=12)
    for k, v in net.state_dict().items():  # the weights really are loaded
        assert torch.equal(b.network.state_dict()[k], v), k
    phys = load_model(_v1(tmp_path / "p.pt", SRResNet3d(1, 2, channels=4, blocks=1,
                                                        out_channels=3), "bin",
                          {"targets": "morph+diffu", "transport_axis": 2, "config": cfg}))
    assert phys.targets == "morph+diffu" and phys.transport_axis == 2 and phys.spec.crop == 16
    with pytest.warns(ModelWarning, match="does not record the transport axis.*assuming axis 0"):
        d = load_model(_v1(tmp_path / "d.pt", SRResNet3d(3, 2, channels=4, blocks=1), "diffu",
                           {}))
    assert d.transport_axis == 0 and d.spec.crop is None
