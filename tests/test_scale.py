"""Out-of-core super-resolution: equals in-memory inference, resumes after an interruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from twinsr import VolumeError, VolumeFileError
from twinsr.io import read_metadata, read_volume, write_volume
from twinsr.scale import superresolve_zarr
from twinsr.sr import SRModel, SRResNet3d, superresolve


def _model(inputs: str = "bin", alpha: int = 2) -> SRModel:
    torch.manual_seed(0)
    net = SRResNet3d(1 if inputs == "bin" else 3, alpha, channels=4, blocks=1)
    with torch.no_grad():  # random but non-trivial output around 0.5
        for prm in net.parameters():
            prm.mul_(3.0)
    return SRModel(net.eval(), alpha=alpha, inputs=inputs, threshold=0.5,
                   transport_axis=0 if inputs == "diffu" else None)


@pytest.fixture
def lr(rng: np.random.Generator) -> np.ndarray:
    return (rng.random((13, 10, 11)) < 0.5).astype(np.uint8)


@pytest.mark.parametrize(("inputs", "alpha"), [("bin", 2), ("bin", 4), ("diffu", 2)])
def test_equals_in_memory_inference(tmp_path: Path, lr: np.ndarray, inputs: str, alpha: int) -> None:
    m = _model(inputs, alpha)
    ref = superresolve(lr, m, device="cpu", probabilities=True, tile=1000)
    out = superresolve_zarr(lr, m, tmp_path / "p.zarr", chunk=4, device="cpu", probabilities=True)
    got = read_volume(out)
    assert got.shape == ref.shape == tuple(alpha * s for s in lr.shape)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    binary = superresolve_zarr(lr, m, tmp_path / "b.zarr", chunk=5, device="cpu")
    np.testing.assert_array_equal(read_volume(binary), superresolve(lr, m, device="cpu"))
    assert read_metadata(binary)["alpha"] == alpha


def test_lazy_zarr_input_and_progress(tmp_path: Path, lr: np.ndarray) -> None:
    src = write_volume(tmp_path / "lr.zarr", lr)
    calls: list[tuple[int, int]] = []
    m = _model()
    out = superresolve_zarr(src, m, tmp_path / "sr.zarr", chunk=4, device="cpu",
                            progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(read_volume(out), superresolve(lr, m, device="cpu"))
    # halo of a 1-block alpha-2 net = 2*1 + 3 + 1 = 6 LR voxels: chunk 4 is raised to 6 and a
    # remainder thinner than the halo is merged: (6, 7) x (10,) x (11,) -> 2 blocks
    assert m.halo == 6
    assert calls == [(1, 2), (2, 2)]


def test_interrupted_run_resumes(tmp_path: Path, rng: np.random.Generator,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    lr = (rng.random((20, 14, 13)) < 0.5).astype(np.uint8)  # blocks (6,6,8) x (6,8) x (6,7): 12
    m = _model()
    out = tmp_path / "sr.zarr"

    def stop_after_5(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        superresolve_zarr(lr, m, out, chunk=6, device="cpu", progress=stop_after_5)
    assert not out.exists()
    markers = list((tmp_path / "sr.zarr.partial" / ".twinsr-done").iterdir())
    assert 1 <= len(markers) < 12
    computed: list[int] = []
    from twinsr.sr.engine import TileEngine

    engine_run = TileEngine.run

    def counting_run(self: TileEngine, *args: object, **kwargs: object) -> object:
        computed.append(1)  # one network run per block (the engine copies the weights)
        return engine_run(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TileEngine, "run", counting_run)
    superresolve_zarr(lr, m, out, chunk=6, device="cpu")
    monkeypatch.undo()
    assert len(computed) == 12 - len(markers)  # finished blocks were not recomputed
    np.testing.assert_array_equal(read_volume(out), superresolve(lr, _model(), device="cpu"))
    assert not (tmp_path / "sr.zarr.partial").exists()


def test_resume_with_other_settings_refused(tmp_path: Path, lr: np.ndarray) -> None:
    m = _model()

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        superresolve_zarr(lr, m, tmp_path / "sr.zarr", chunk=6, device="cpu", progress=stop)
    with pytest.raises(VolumeFileError, match="interrupted run with other settings"):
        superresolve_zarr(lr, m, tmp_path / "sr.zarr", chunk=7, device="cpu")
    other = _model()
    with torch.no_grad():
        next(other.network.parameters()).add_(0.01)  # same architecture, other weights
    with pytest.raises(VolumeFileError, match="interrupted run with other settings"):
        superresolve_zarr(lr, other, tmp_path / "sr.zarr", chunk=6, device="cpu")


def test_bad_arguments(tmp_path: Path, lr: np.ndarray) -> None:
    m = _model()
    with pytest.raises(VolumeFileError, match=r"must be a \.zarr store"):
        superresolve_zarr(lr, m, tmp_path / "sr.tif")
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(VolumeFileError, match="exists already"):
        superresolve_zarr(lr, m, tmp_path / "x.zarr")
    with pytest.raises(VolumeError, match="chunk"):
        superresolve_zarr(lr, m, tmp_path / "y.zarr", chunk=0)
    with pytest.raises(VolumeError, match="must be 3-D"):
        superresolve_zarr(lr[0], m, tmp_path / "z.zarr")
    with pytest.raises(VolumeError, match="must be binary"):
        superresolve_zarr(lr * 3 - 1, m, tmp_path / "w.zarr", device="cpu")


def test_cli_zarr_output_is_out_of_core(tmp_path: Path, lr: np.ndarray) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app
    from twinsr.sr import save_bundle

    m = _model()
    bundle = tmp_path / "m.pt"
    save_bundle(bundle, m.network, alpha=2, inputs="bin", threshold=0.5,
                arch_kwargs=m.network.arch_kwargs(), metadata={})
    src = write_volume(tmp_path / "lr.tif", lr, voxel_size=2.0)
    res = CliRunner().invoke(app, ["superresolve", str(src), "--model", str(bundle),
                                   "-o", str(tmp_path / "sr.zarr"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(read_volume(tmp_path / "sr.zarr"), superresolve(lr, m, device="cpu"))
    assert read_metadata(tmp_path / "sr.zarr")["voxel_size"] == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("suffix", [".h5", ".npy", ".zarr"])
def test_file_inputs_are_read_lazily(tmp_path: Path, lr: np.ndarray, suffix: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import twinsr.io

    key = "segmented" if suffix != ".npy" else None
    src = write_volume(tmp_path / f"lr{suffix}", lr, key=key) if key else \
        write_volume(tmp_path / f"lr{suffix}", lr)
    m = _model()
    ref = superresolve(lr, m, device="cpu")

    def no_loading(*a: object, **k: object) -> None:
        raise AssertionError("the whole LR volume was loaded")

    monkeypatch.setattr(twinsr.io, "read_volume", no_loading)
    out = superresolve_zarr(src, m, tmp_path / "sr.zarr", chunk=6, key=key, device="cpu")
    monkeypatch.undo()
    np.testing.assert_array_equal(read_volume(out), ref)
    if suffix == ".h5":  # the file was closed after the computation: it can be rewritten
        import h5py

        with h5py.File(src, "a") as f:
            f["other"] = np.zeros(3)
        with pytest.raises(VolumeFileError, match=r"holds arrays .*key="):
            superresolve_zarr(src, m, tmp_path / "x.zarr", device="cpu")
        with pytest.raises(VolumeFileError, match="has no array 'nope'"):
            superresolve_zarr(src, m, tmp_path / "y.zarr", key="nope", device="cpu")


def test_truncated_h5_input_is_a_volume_file_error(tmp_path: Path, lr: np.ndarray) -> None:
    src = write_volume(tmp_path / "lr.h5", lr)
    (tmp_path / "cut.h5").write_bytes(src.read_bytes()[:200])
    with pytest.raises(VolumeFileError, match=r"cut\.h5"):
        superresolve_zarr(tmp_path / "cut.h5", _model(), tmp_path / "o.zarr", device="cpu")


def test_axis_default_and_spec_in_output(tmp_path: Path, lr: np.ndarray) -> None:
    m = _model("diffu")
    m2 = SRModel(m.network, threshold=0.5, transport_axis=2)
    out = superresolve_zarr(lr, m2, tmp_path / "a.zarr", chunk=6, device="cpu",
                            probabilities=True)
    np.testing.assert_allclose(read_volume(out), superresolve(lr, m2, device="cpu",
                                                              probabilities=True), atol=1e-5)
    meta = read_metadata(out)
    assert meta["axis"] == 2 and meta["spec"]["transport_axis"] == 2
    from twinsr.exceptions import ConfigError

    with pytest.raises(ConfigError, match="solved along axis 2"):
        superresolve_zarr(lr, m2, tmp_path / "b.zarr", axis=1, device="cpu")


def test_volume_thinner_than_the_halo(tmp_path: Path, rng: np.random.Generator) -> None:
    """An axis thinner than the halo is one block without overlap (dask refuses a deeper one)."""
    lr = (rng.random((3, 14, 13)) < 0.5).astype(np.uint8)
    m = _model()
    assert m.halo > lr.shape[0]
    out = superresolve_zarr(lr, m, tmp_path / "t.zarr", chunk=6, device="cpu",
                            probabilities=True)
    np.testing.assert_allclose(read_volume(out), superresolve(lr, m, device="cpu",
                                                              probabilities=True), atol=1e-5)
