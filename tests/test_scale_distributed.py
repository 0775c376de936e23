"""dask.distributed and OME-Zarr: cluster builds equal serial builds byte for byte, resume, refuse
workers that cannot see the output or run other versions; OME-Zarr output read by ome-zarr.

One LocalCluster (2 single-threaded worker processes on loopback) serves the whole module: its
start-up and the workers' first imports cost seconds.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")

from twinsr import ConfigError, DatasetError, VolumeFileError  # noqa: E402
from twinsr.io import read_volume, write_volume  # noqa: E402
from twinsr.scale import superresolve_zarr  # noqa: E402
from twinsr.sr import SRModel, SRResNet3d, build_database, superresolve  # noqa: E402
from twinsr.stochastic import ChiSquareModel, generate  # noqa: E402

MODEL = ChiSquareModel(nu=1.4, gamma=0.3)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        yield c  # not the default client: tests without `client=` stay in this process


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _sr_model(inputs: str = "bin") -> SRModel:
    torch.manual_seed(0)
    net = SRResNet3d(1 if inputs == "bin" else 3, 2, channels=4, blocks=1)
    with torch.no_grad():
        for prm in net.parameters():
            prm.mul_(3.0)
    return SRModel(net.eval(), alpha=2, inputs=inputs, threshold=0.5,
                   transport_axis=0 if inputs == "diffu" else None)


DB = {"n_realizations": 3, "shape": 16, "alphas": (2, 4), "split": (1, 1, 1),
      "diffusion": True, "hr_diffusion": True}


def test_database_on_cluster_equals_serial_and_resumes(client, tmp_path: Path) -> None:
    serial = build_database([MODEL], tmp_path / "serial", **DB)
    calls: list[tuple[int, int]] = []
    built = build_database([MODEL], tmp_path / "cluster", client=client,
                           progress=lambda d, t: calls.append((d, t)), **DB)
    ref = _digests(serial.path)
    assert len(ref) == 1 + 3 * 8  # manifest + per entry: hr, 2 lr, 2 diffu, hr_diffu/float, json
    assert _digests(built.path) == ref
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    # resume: one entry lost its completion mark and a file; only that entry is rebuilt
    (built.path / "m00_r01" / "entry.json").unlink()
    (built.path / "m00_r01" / "diffu_a2.npy").unlink()
    kept = (built.path / "m00_r00" / "hr.npy").stat().st_mtime_ns
    build_database([MODEL], built.path, client=client, **DB)
    assert (built.path / "m00_r00" / "hr.npy").stat().st_mtime_ns == kept
    assert _digests(built.path) == ref


def test_database_client_auto_uses_the_active_client(client, tmp_path: Path) -> None:
    with client.as_current():
        db = build_database([MODEL], tmp_path / "db", client="auto", n_realizations=2,
                            shape=16, alphas=(2,), split=(1, 1, 0), diffusion=False)
    ref = build_database([MODEL], tmp_path / "ref", n_realizations=2, shape=16, alphas=(2,),
                         split=(1, 1, 0), diffusion=False)
    assert _digests(db.path) == _digests(ref.path)


def test_generate_on_cluster_equals_serial_and_resumes(client, tmp_path: Path) -> None:
    ref = generate(MODEL, 24, 3, out_dir=tmp_path / "serial", fmt="npy", seed=4)
    calls: list[int] = []
    got = generate(MODEL, 24, 3, out_dir=tmp_path / "cluster", fmt="npy", seed=4,
                   client=client, progress=lambda d, t: calls.append(d))
    assert [p.name for p in got] == [p.name for p in ref]
    assert _digests(tmp_path / "cluster") == _digests(tmp_path / "serial")
    assert len(_digests(tmp_path / "serial")) == 6  # volumes and their sidecars
    assert sorted(calls) == [1, 2, 3]
    got[1].unlink()
    kept = got[0].stat().st_mtime_ns
    generate(MODEL, 24, 3, out_dir=tmp_path / "cluster", fmt="npy", seed=4, client=client)
    assert got[0].stat().st_mtime_ns == kept
    assert _digests(tmp_path / "cluster") == _digests(tmp_path / "serial")


def _blind_probe(folder: str, token: str) -> dict:
    """Stand-in for the worker probe of a worker that mounts another file system at the path:
    the folder it looks in is not the client's (runs inside the worker processes)."""
    from twinsr import _distributed

    return _distributed._real_probe(folder + "-elsewhere", token)  # type: ignore[attr-defined]


def _install_blind_probe() -> None:
    from twinsr import _distributed

    if not hasattr(_distributed, "_real_probe"):
        _distributed._real_probe = _distributed.probe_worker  # type: ignore[attr-defined]
    _distributed.probe_worker = _blind_probe


def _remove_blind_probe() -> None:
    from twinsr import _distributed

    _distributed.probe_worker = _distributed._real_probe  # type: ignore[attr-defined]


def test_workers_that_cannot_see_the_output_are_refused(client, tmp_path: Path) -> None:
    client.run(_install_blind_probe)
    try:
        out = tmp_path / "db"
        with pytest.raises(VolumeFileError, match=r"2 of 2 dask worker\(s\) cannot use the "
                           rf"database path {out}.*cannot read"):
            build_database([MODEL], out, client=client, n_realizations=2, shape=16,
                           alphas=(2,), split=(1, 1, 0), diffusion=False)
        assert sorted(p.name for p in out.iterdir()) == []  # no work was submitted
        with pytest.raises(VolumeFileError, match="generate output path"):
            generate(MODEL, 16, 2, out_dir=tmp_path / "twins", fmt="npy", client=client)
        assert not list((tmp_path / "twins").iterdir())
        lr = np.zeros((8, 8, 8), np.uint8)
        with pytest.raises(VolumeFileError, match=f"output path {tmp_path}"):
            superresolve_zarr(lr, _sr_model(), tmp_path / "sr.zarr", device="cpu", client=client)
        assert not (tmp_path / "sr.zarr.partial").exists()
    finally:
        client.run(_remove_blind_probe)


def test_workers_with_other_versions_are_refused(client, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from twinsr import _distributed

    real = _distributed.worker_versions()
    monkeypatch.setattr(_distributed, "worker_versions", lambda: {**real, "torch": "0.0.1"})
    with pytest.raises(ConfigError, match=r"other package versions.*'torch': '"):
        generate(MODEL, 16, 2, out_dir=tmp_path / "twins", fmt="npy", client=client)
    assert not list((tmp_path / "twins").iterdir())


def test_bad_client_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client() -> None:
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    with pytest.raises(ConfigError, match=r"no dask.distributed client is active"):
        generate(MODEL, 16, 1, out_dir=tmp_path, fmt="npy", client="auto")
    with pytest.raises(ConfigError, match=r"must be None, 'auto' or a distributed.Client"):
        build_database([MODEL], tmp_path / "db", client="tcp://nowhere:1", shape=16,
                       alphas=(2,), n_realizations=2, split=(1, 1, 0))


@pytest.mark.parametrize("inputs", ["bin", "diffu"])
def test_superresolve_zarr_on_cluster_equals_in_memory(client, tmp_path: Path,
                                                       inputs: str) -> None:
    lr = (np.random.default_rng(1).random((20, 14, 13)) < 0.5).astype(np.uint8)
    m = _sr_model(inputs)
    calls: list[int] = []
    out = superresolve_zarr(lr, m, tmp_path / "sr.zarr", chunk=6, device="cpu", client=client,
                            precision="fp32", progress=lambda d, t: calls.append(t))
    ref = superresolve(lr, m, device="cpu", precision="fp32", tile=1000)
    np.testing.assert_array_equal(read_volume(out), ref)
    assert len(calls) == calls[0] == 12  # 3 x 2 x 2 blocks, each reported


def test_ome_zarr_output_read_by_ome_zarr(tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    lr = (np.random.default_rng(2).random((13, 10, 11)) < 0.5).astype(np.uint8)
    m = _sr_model()
    out = superresolve_zarr(lr, m, tmp_path / "sr.ome.zarr", chunk=6, device="cpu", levels=3,
                            voxel_size=3.0, unit="um", precision="fp32")
    ref = superresolve(lr, m, device="cpu", precision="fp32")
    node = next(iter(Reader(parse_url(str(out)))()))
    assert [tuple(d.shape) for d in node.data] == [(26, 20, 22), (13, 10, 11), (7, 5, 6)]
    np.testing.assert_array_equal(np.asarray(node.data[0]), ref)
    np.testing.assert_array_equal(np.asarray(node.data[2]), ref[::4, ::4, ::4])
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[1.5] * 3, [3.0] * 3, [6.0] * 3]  # HR voxel = LR voxel / alpha
    assert [(a["name"], a["unit"]) for a in node.metadata["axes"]] == \
        [("z", "micrometer"), ("y", "micrometer"), ("x", "micrometer")]
    im, meta = read_volume(out, return_metadata=True)
    np.testing.assert_array_equal(im, ref)
    assert meta["voxel_size"] == (1.5, 1.5, 1.5) and meta["unit"] == "um"
    assert meta["alpha"] == 2 and meta["ome_levels"] == 3
    assert not any(p.name.startswith(".twinsr") for p in out.rglob("*"))


def test_read_volume_of_a_foreign_ome_zarr(tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    import zarr
    from ome_zarr.writer import write_image

    im = (np.random.default_rng(3).random((16, 12, 10)) < 0.5).astype(np.uint8)
    group = zarr.open_group(str(tmp_path / "f.ome.zarr"), mode="w")
    write_image(im, group, axes="zyx", scale_factors=[2], scale={"z": 0.5, "y": 0.25, "x": 0.25},
                axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"})
    got, meta = read_volume(tmp_path / "f.ome.zarr", return_metadata=True)
    np.testing.assert_array_equal(got, im)
    assert meta["voxel_size"] == (0.5, 0.25, 0.25) and meta["unit"] == "nm"
    sr = superresolve_zarr(tmp_path / "f.ome.zarr", _sr_model(), tmp_path / "sr.zarr", chunk=6,
                           device="cpu", precision="fp32")  # an OME-Zarr input, read lazily
    np.testing.assert_array_equal(read_volume(sr),
                                  superresolve(im, _sr_model(), device="cpu", precision="fp32"))


def test_cli_ome_output_and_force(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app
    from twinsr.sr import save_bundle

    lr = (np.random.default_rng(4).random((12, 12, 12)) < 0.5).astype(np.uint8)
    src = write_volume(tmp_path / "lr.tif", lr, voxel_size=2.0)
    bundle = save_bundle(tmp_path / "model.pt", _sr_model().network, alpha=2, inputs="bin",
                         threshold=0.5)
    args = ["superresolve", str(src), "--model", str(bundle), "-o", str(tmp_path / "o.ome.zarr"),
            "--device", "cpu", "--precision", "fp32", "--tile", "6", "--levels", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    attrs = json.loads((tmp_path / "o.ome.zarr" / "zarr.json").read_text())["attributes"]
    ds = attrs["ome"]["multiscales"][0]["datasets"]
    assert [d["coordinateTransformations"][0]["scale"] for d in ds] == [[1.0] * 3, [2.0] * 3]
    r = CliRunner().invoke(app, args)  # the same call again: its finished output, unchanged
    assert r.exit_code == 0, r.output
    other = [*args[:-1], "3"]  # other settings (three levels): refused without --force
    r = CliRunner().invoke(app, other)
    assert r.exit_code == 1 and "exists already" in r.output and "--force" in r.output
    r = CliRunner().invoke(app, [*args, "--force"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_volume(tmp_path / "o.ome.zarr"),
                                  superresolve(lr, _sr_model(), device="cpu", precision="fp32"))


def test_interrupted_run_of_other_settings_needs_force(tmp_path: Path) -> None:
    lr = (np.random.default_rng(5).random((20, 14, 13)) < 0.5).astype(np.uint8)
    out = tmp_path / "sr.zarr"

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        superresolve_zarr(lr, _sr_model(), out, chunk=6, device="cpu", progress=stop)
    with pytest.raises(VolumeFileError, match=r"other settings.*force=True"):
        superresolve_zarr(lr, _sr_model(), out, chunk=7, device="cpu")
    superresolve_zarr(lr, _sr_model(), out, chunk=7, device="cpu", force=True, precision="fp32")
    np.testing.assert_array_equal(read_volume(out),
                                  superresolve(lr, _sr_model(), device="cpu", precision="fp32"))


def test_cli_scheduler_option(client, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinsr.cli import app

    params = MODEL.to_json(tmp_path / "m.json")
    ref = generate(MODEL, 16, 2, out_dir=tmp_path / "serial", fmt="npy")
    r = CliRunner().invoke(app, ["generate", str(params), "-o", str(tmp_path / "c"), "--shape",
                                 "16", "-n", "2", "--format", "npy", "--scheduler",
                                 client.scheduler.address])
    assert r.exit_code == 0, r.output
    assert _digests(tmp_path / "c") == _digests(ref[0].parent)
    r = CliRunner().invoke(app, ["database", str(params), "-o", str(tmp_path / "db"), "--n", "2",
                                 "--shape", "16", "--alphas", "2", "--split", "1,1,0",
                                 "--scheduler", client.scheduler.address])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["generate", str(params), "-o", str(tmp_path / "x"), "--shape",
                                 "16", "--scheduler", "local:zero"])
    assert r.exit_code == 1 and "local:N needs a positive worker count" in r.output


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_leaves_no_final_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zarr

    lr = (np.random.default_rng(6).random((12, 12, 12)) < 0.5).astype(np.uint8)
    monkeypatch.setattr(zarr.Array, "__setitem__", _enospc)
    with pytest.raises(VolumeFileError, match=r"No space left on device.*rerun"):
        superresolve_zarr(lr, _sr_model(), tmp_path / "sr.zarr", chunk=6, device="cpu")
    assert not (tmp_path / "sr.zarr").exists()
    monkeypatch.undo()
    monkeypatch.setattr(np, "save", _enospc)
    with pytest.raises(DatasetError, match=r"cannot write .*hr\.npy \(No space left"):
        build_database([MODEL], tmp_path / "db", n_realizations=2, shape=16, alphas=(2,),
                       split=(1, 1, 0), diffusion=False)
    assert sorted(p.name for p in (tmp_path / "db" / "m00_r00").iterdir()) == []
    with pytest.raises(VolumeFileError, match=r"cannot write .*twin_s0_0000\.npy"):
        generate(MODEL, 16, 1, out_dir=tmp_path / "twins", fmt="npy")
    assert list((tmp_path / "twins").iterdir()) == []
