"""Command-line interface: a thin typer layer over the library functions of the same names.

Heavy imports (numpy, torch, scipy) happen inside the commands so that ``twinsr --help`` is
instant. Library errors (:class:`twinsr.TwinsrError`) become one clear line on stderr and exit
code 1; progress bars are drawn here (rich), never in the library.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(
    name="twinsr",
    help="Super-resolve 3D tomograms of porous materials with networks trained on digital twins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn twinsr's own errors (and unreadable files) into one line on stderr and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from twinsr.exceptions import TwinsrError

        try:
            return fn(*args, **kwargs)
        except TwinsrError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted (outputs written so far are complete; rerun to resume)",
                        err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(description: str, total: float | None = None) -> Any:
    """A rich progress bar (context manager) with a ``.update(advance=...)`` helper.

    Usage::

        with progress_bar("generating", total=n) as bar:
            ...; bar.advance()
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Bar:
        def __init__(self) -> None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                transient=False, disable=not sys.stderr.isatty(), console=None,
            )
            self.task = self.progress.add_task(description, total=total, status="")

        def __enter__(self) -> _Bar:
            self.progress.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self.progress.__exit__(*exc)  # type: ignore[arg-type]

        def advance(self, n: float = 1, status: str = "") -> None:
            self.progress.update(self.task, advance=n, status=status)

        def set(self, completed: float, total: float | None = None, status: str = "") -> None:
            self.progress.update(self.task, completed=completed, total=total, status=status)

    return _Bar()


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="More log output (-v info, -vv debug).")] = 0,
) -> None:
    """twinsr command-line interface."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def version() -> None:
    """Print the twinsr version."""
    from twinsr import __version__

    typer.echo(__version__)


# ---- commands are added below this line (one block per concern) ----


# ---- transport: tortuosity, diffusion ----


@app.command()
@handle_errors
def tortuosity(
    image: Annotated[str, typer.Argument(help="Binary volume file (1 = solid, 0 = pore).")],
    phase: Annotated[str, typer.Option("--phase", help="pore, solid or both.")] = "both",
    axis: Annotated[str, typer.Option("--axis", help="Transport axis: 0, 1, 2 or all.")] = "0",
    metric: Annotated[str, typer.Option(
        "--metric", help="Geodesic metric: graph26, graph18, graph6 or fmm.")] = "graph26",
    tol: Annotated[float, typer.Option("--tol", help="Relative residual of the solve.")] = 1e-6,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                       ] = False,
    key: Annotated[str | None, typer.Option(
        "--key", help="Array name inside .npz/.h5/.zarr.")] = None,
) -> None:
    """Effective (Laplace flux) and mean geodesic tortuosity per phase and axis."""
    import math
    import warnings

    from twinsr._validation import PHASE_NAMES
    from twinsr.exceptions import VolumeError
    from twinsr.io import read_volume
    from twinsr.transport import effective_tortuosity, geodesic_tortuosity

    phases = {"pore": [0], "solid": [1], "both": [0, 1]}.get(phase.strip().lower())
    if phases is None:
        raise VolumeError(f"--phase must be pore, solid or both, got {phase!r}")
    if axis.strip().lower() == "all":
        axes = [0, 1, 2]
    elif axis.strip() in ("0", "1", "2"):
        axes = [int(axis)]
    else:
        raise VolumeError(f"--axis must be 0, 1, 2 or all, got {axis!r}")
    im = read_volume(image, key=key)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for ph in phases:
        for ax in axes:
            name = PHASE_NAMES[ph]
            with warnings.catch_warnings(record=True) as caught, \
                    progress_bar(f"{name} axis {ax}", total=None) as bar:
                warnings.simplefilter("always")
                eff = effective_tortuosity(
                    im, phase=ph, axis=ax, tol=tol, device=device,
                    progress=lambda i, r: bar.set(i, status=f"residual {r:.1e}"))
                geo = geodesic_tortuosity(im, phase=ph, axis=ax, metric=metric)
            notes += [f"{name} axis {ax}: {w.message}" for w in caught]
            rows.append({
                "phase": name, "axis": ax, "tau_eff": eff.tau, "tau_geodesic": geo.tau,
                "volume_fraction": eff.volume_fraction, "percolating": eff.percolating,
                "converged": eff.converged, "iterations": eff.iterations,
                "connected_fraction": geo.connected_fraction, "metric": metric,
                "flux_spread": eff.flux_spread, "seconds": eff.seconds,
            })
    for note in notes:
        typer.secho(f"warning: {note}", err=True, fg=typer.colors.YELLOW)
    if as_json:
        echo_json([{k: (None if isinstance(v, float) and math.isinf(v) else v)
                    for k, v in r.items()} | {"tau_inf": math.isinf(r["tau_eff"])}
                   for r in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tortuosity of {image}")
    for col in ("phase", "axis", "τ_eff", f"τ_geod ({metric})", "ε", "percolating",
                "converged", "time (s)"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["phase"], str(r["axis"]), f"{r['tau_eff']:.5g}",
                      f"{r['tau_geodesic']:.5g}", f"{r['volume_fraction']:.4f}",
                      "yes" if r["percolating"] else "no", "yes" if r["converged"] else "no",
                      f"{r['seconds']:.2f}")
    Console().print(table)


@app.command()
@handle_errors
def diffusion(
    image: Annotated[str, typer.Argument(help="Binary volume file (1 = solid, 0 = pore).")],
    out: Annotated[str, typer.Option("-o", "--out", help="Output file (2-channel float32).")],
    axis: Annotated[int, typer.Option("--axis", help="Transport axis (0, 1 or 2).")] = 0,
    tol: Annotated[float, typer.Option("--tol", help="Relative residual of the solves.")] = 1e-6,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    key: Annotated[str | None, typer.Option(
        "--key", help="Array name inside .npz/.h5/.zarr.")] = None,
) -> None:
    """Write the diffusion image (channel 0 pore solution, channel 1 solid solution)."""
    import warnings

    from twinsr.io import read_volume, write_volume
    from twinsr.transport import diffusion_channels

    # one read: a damaged sidecar or metadata block is an error (VolumeFileError naming it)
    im, meta = read_volume(image, key=key, return_metadata=True)
    voxel_size = meta.get("voxel_size")
    with warnings.catch_warnings(record=True) as caught, \
            progress_bar("diffusion (pore, then solid)", total=None) as bar:
        warnings.simplefilter("always")
        ch = diffusion_channels(im, axis=axis, tol=tol, device=device,
                                progress=lambda i, r: bar.set(i, status=f"residual {r:.1e}"))
    for w in caught:
        typer.secho(f"warning: {w.message}", err=True, fg=typer.colors.YELLOW)
    path = write_volume(out, ch, voxel_size=voxel_size,
                        metadata={"channels": ["pore", "solid"], "axis": axis, "tol": tol,
                                  "source": str(image)})
    typer.echo(f"wrote {path} (2 x {' x '.join(map(str, ch.shape[1:]))} float32)")


# ---- stochastic: calibrate, generate ----


@app.command()
@handle_errors
def calibrate(
    image: Annotated[str, typer.Argument(help="Binary volume file (1 = solid) or builtin:NAME.")],
    out: Annotated[str, typer.Option("-o", "--out", help="Output parameters (.json).")],
    family: Annotated[str, typer.Option(
        "--family", help="Model family: chi_square, grains, fibres or auto.")] = "chi_square",
    objective: Annotated[str, typer.Option(
        "--objective", help="s2 (closed-form two-point coverage, chi_square only) or "
                            "descriptors (simulation-based, every family).")] = "s2",
    covariance: Annotated[str, typer.Option(
        "--covariance", help="chi_square: auto, exponential, gaussian or matern.")] = "auto",
    excursion_phase: Annotated[str, typer.Option(
        "--excursion-phase", help="chi_square: phase that is the excursion set (solid, pore, "
                                  "auto).")] = "solid",
    max_lag: Annotated[int | None, typer.Option(
        "--max-lag", help="Largest lag of the S2 fit in voxels (default: automatic).")] = None,
    fit_shape: Annotated[int | None, typer.Option(
        "--fit-shape", help="descriptors: edge of the simulated realizations (default 112).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="descriptors: seed of the simulations.")
                    ] = 0,
    max_evaluations: Annotated[list[int] | None, typer.Option(
        "--max-evaluations", help="descriptors: evaluations of the geometric and of the "
                                  "transport stage (give it twice; default: automatic).")
    ] = None,
    voxel_size: Annotated[float | None, typer.Option(
        "--voxel-size", help="Voxel edge in um (default: from the file, if isotropic).")] = None,
    plot: Annotated[str | None, typer.Option(
        "--plot", help="Also write a two-point coverage plot (.png).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="Array name inside .npz/.h5/.zarr.")] = None,
) -> None:
    """Fit a twin model (chi-square excursion, grain packing or fibres) to a binary volume."""
    import warnings
    from pathlib import Path

    from twinsr._atomic import atomic_write_text
    from twinsr.exceptions import ConfigError
    from twinsr.io import read_volume
    from twinsr.stochastic import calibrate as _calibrate
    from twinsr.stochastic import plot_calibration
    from twinsr.stochastic.excursion import isotropic_voxel_size

    if max_evaluations is not None and len(max_evaluations) != 2:
        raise ConfigError(f"--max-evaluations must be given twice (geometric, transport), got "
                          f"{max_evaluations}")
    budget = tuple(max_evaluations) if max_evaluations else None
    # one read: a damaged sidecar or metadata block is an error (VolumeFileError naming it)
    im, meta = read_volume(image, key=key, return_metadata=True)
    if voxel_size is None and meta.get("voxel_size") is not None:
        try:
            voxel_size = isotropic_voxel_size(meta["voxel_size"])
        except ConfigError:
            typer.secho(f"warning: {image} has anisotropic voxels {meta['voxel_size']}; the model "
                        "records no voxel size (pass --voxel-size EDGE_UM to set one)", err=True,
                        fg=typer.colors.YELLOW)
    with warnings.catch_warnings(record=True) as caught, \
            progress_bar(f"calibrate ({family}, {objective})") as bar:
        warnings.simplefilter("always")
        res = _calibrate(im, family=family, objective=objective, covariance=covariance,
                         max_lag=max_lag, voxel_size=voxel_size, excursion_phase=excursion_phase,
                         fit_shape=fit_shape, seed=seed, max_evaluations=budget,
                         progress=lambda stage, k, j: bar.set(k, status=f"{stage} J={j:.3g}"))
    for w in caught:
        typer.secho(f"warning: {w.message}", err=True, fg=typer.colors.YELLOW)
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, json.dumps(res.to_dict(), indent=2) + "\n")
    _print_calibration(res, image)
    typer.echo(f"wrote {p}")
    if plot:
        typer.echo(f"wrote {plot_calibration(res, plot)}")


def _print_calibration(res: Any, image: str) -> None:
    """The calibration table: model parameters, then the fit's residuals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{res.family} model of {image} ({res.objective} fit, "
                        f"{res.seconds:.0f} s)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("solid fraction", f"{res.volume_fraction:.4f}")
    skip = {"format", "format_version", "model", "twinsr_version", "calibration", "voxel_size_unit",
            "gamma_unit", "radius_unit", "length_unit", "gamma_physical_unit"}
    for k, v in res.model.to_dict().items():
        if k not in skip and v is not None:
            table.add_row(k, f"{v:.5g}" if isinstance(v, float) else str(v))
    table.add_row("S2 rms residual", f"{res.residual:.3g}")
    if res.gamma_at_bound:
        table.add_row("gamma on search bound", "yes: unreliable fit (see the warning)")
    for fam, r in res.residuals_by_covariance.items():
        table.add_row(f"  rms {fam}", f"{r:.3g} (gamma {res.gammas_by_covariance[fam]:.4g})")
    if len(res.residuals_by_phase) > 1:
        for ph, r in res.residuals_by_phase.items():
            table.add_row(f"  rms {ph} excursion", f"{r:.3g}")
    for fam, j in res.objectives_by_family.items():
        table.add_row(f"  held-out discrepancy {fam}", f"{j:.3g}")
    if res.descriptor_objective is not None:
        table.add_row("descriptor discrepancy", f"{res.descriptor_objective:.3g}")
        for k, r in res.descriptor_residuals.items():
            table.add_row(f"  {k}", f"{r:+.1%}")
    Console().print(table)


@app.command()
@handle_errors
def validate(
    image: Annotated[str, typer.Argument(help="The measured binary volume (1 = solid).")],
    params: Annotated[str, typer.Argument(help="Model parameters (.json from calibrate).")],
    out: Annotated[str, typer.Option("-o", "--out", help="Output folder.")],
    n: Annotated[int, typer.Option("-n", "--n", help="Realizations.")] = 8,
    shape: Annotated[list[int] | None, typer.Option(
        "--shape", help="Realization edge: once for a cube, three times for Z Y X (default: the "
                        "data's shape).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the realizations.")] = 0,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="Relative deviation of a 'match'.")] = 0.05,
    key: Annotated[str | None, typer.Option(
        "--key", help="Array name inside .npz/.h5/.zarr.")] = None,
) -> None:
    """Compare every descriptor of N twins with the data: table, figures, verdicts."""
    from rich.console import Console
    from rich.table import Table

    from twinsr.exceptions import ConfigError
    from twinsr.io import read_volume
    from twinsr.stochastic import load_model_file, write_validation
    from twinsr.stochastic import validate as _validate

    if shape is not None and len(shape) not in (1, 3):
        raise ConfigError(f"--shape must be given once (cube) or three times (Z Y X), got "
                          f"{len(shape)} value(s): {shape}")
    shp = None if not shape else (shape[0] if len(shape) == 1 else tuple(shape))
    model = load_model_file(params)
    im = read_volume(image, key=key)
    with progress_bar("validate", total=n + 9) as bar:
        res = _validate(model, im, n=n, shape=shp, rng=seed, tolerance=tolerance,
                        progress=lambda k, total: bar.set(k, total=total))
    paths = write_validation(res, out)
    table = Table(title=f"{res.family} twins vs {image}: {res.counts}")
    for col in ("descriptor", "data", "twins", "deviation", "verdict"):
        table.add_column(col, justify="left" if col in ("descriptor", "verdict") else "right")
    for r in res.rows:
        table.add_row(r.name, f"{r.data:.4g}", f"{r.twin_mean:.4g} ± {r.twin_std:.2g}",
                      f"{r.deviation:+.1%}", r.verdict)
    Console().print(table)
    typer.echo(f"wrote {len(paths)} files to {out}")


@app.command()
@handle_errors
def generate(
    params: Annotated[str, typer.Argument(help="Model parameters (.json from calibrate).")],
    out: Annotated[str, typer.Option("-o", "--out", help="Output folder.")],
    shape: Annotated[list[int], typer.Option(
        "--shape", help="Edge in voxels: once for a cube, or three times for Z Y X.")],
    n: Annotated[int, typer.Option("-n", "--n", help="Number of realizations.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Base seed (realization i is seeded with (seed, i)).")
                    ] = 0,
    fmt: Annotated[str, typer.Option("--format", help="tif, npy, npz, zarr, h5 or raw.")] = "tif",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace files written with other parameters.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run as tasks on a dask cluster: its address (tcp://HOST:8786), a "
                            "scheduler file (.json, as dask-jobqueue / dask-mpi write), or "
                            "local:N for N local worker processes. The output must be on a "
                            "file system every worker sees.")] = None,
) -> None:
    """Write N digital twins of a calibrated model of any family (deterministic names, seeds)."""
    from twinsr.exceptions import ConfigError
    from twinsr.stochastic import generate as _generate
    from twinsr.stochastic import load_model_file

    if len(shape) not in (1, 3):
        raise ConfigError(f"--shape must be given once (cube) or three times (Z Y X), got "
                          f"{len(shape)} value(s): {shape}")
    shp = shape[0] if len(shape) == 1 else tuple(shape)
    from twinsr._distributed import open_client

    model = load_model_file(params)
    with open_client(scheduler) as client, progress_bar("generate", total=n) as bar:
        paths = _generate(model, shp, n, out_dir=out, seed=seed, fmt=fmt, overwrite=overwrite,
                          progress=lambda i, total: bar.advance(status=f"{i}/{total}"),
                          client=client)
    typer.echo(f"wrote {len(paths)} volume(s) to {out} ({paths[0].name} ... {paths[-1].name})")


# ---- sr: database, train, superresolve ----


@app.command()
@handle_errors
def database(
    params: Annotated[list[str], typer.Argument(help="Model parameter JSON file(s) "
                                                      "(from `twinsr calibrate`).")],
    out: Annotated[str, typer.Option("-o", "--out", help="Database folder.")],
    n: Annotated[int, typer.Option("--n", help="Realizations per parameter set.")] = 10,
    shape: Annotated[int, typer.Option("--shape", help="HR edge in voxels (cube).")] = 256,
    alphas: Annotated[str, typer.Option("--alphas", help="Comma-separated factors.")] = "2,4,8",
    split: Annotated[str, typer.Option("--split", help="train,val,test counts.")] = "7,2,1",
    seed: Annotated[int, typer.Option("--seed", help="Master seed.")] = 0,
    axis: Annotated[int, typer.Option("--axis", help="Transport axis of the diffusion "
                                                     "channels (networks trained on the "
                                                     "database record it).")] = 0,
    no_diffusion: Annotated[bool, typer.Option("--no-diffusion", help="Skip the diffusion "
                                                                      "channels.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Parallel worker processes.")] = 1,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    hr_diffusion: Annotated[bool, typer.Option("--hr-diffusion", help="Also store the HR "
                                               "diffusion channels (for --targets "
                                               "morph+diffu).")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run as tasks on a dask cluster: its address (tcp://HOST:8786), a "
                            "scheduler file (.json, as dask-jobqueue / dask-mpi write), or "
                            "local:N for N local worker processes. The output must be on a "
                            "file system every worker sees.")] = None,
) -> None:
    """Build (or resume) a database of digital twins with LR images and diffusion channels."""
    from twinsr.exceptions import ConfigError
    from twinsr.sr import build_database

    try:
        alpha_list = [int(a) for a in alphas.split(",") if a.strip()]
        split_t = tuple(int(s) for s in split.split(","))
    except ValueError:
        raise ConfigError(f"--alphas/--split must be comma-separated integers, got "
                          f"{alphas!r} / {split!r}") from None
    from twinsr._distributed import open_client

    with open_client(scheduler) as client, progress_bar("database", total=None) as bar:
        db = build_database(list(params), out, n_realizations=n, shape=shape,
                            alphas=alpha_list, split=split_t, seed=seed, axis=axis,
                            diffusion=not no_diffusion, hr_diffusion=hr_diffusion,
                            workers=workers, device=device, client=client,
                            progress=lambda d, t: bar.set(d, total=t, status=f"{d}/{t}"))
    echo_json({"database": str(db.path), "shape": db.shape, "alphas": db.alphas,
               "splits": {k: len(v) for k, v in db.manifest["splits"].items()}})


@app.command()
@handle_errors
def train(
    database: Annotated[str, typer.Argument(help="Database folder (`twinsr database`).")],
    alpha: Annotated[int, typer.Option("--alpha", help="Scale factor 2, 4 or 8.")],
    out: Annotated[str, typer.Option("-o", "--out", help="Run folder.")],
    inputs: Annotated[str, typer.Option("--inputs", help="bin or diffu.")] = "bin",
    preset: Annotated[str, typer.Option("--preset", help="quick, paper or demo.")] = "quick",
    config: Annotated[str | None, typer.Option("--config", help="YAML overriding fields "
                                                                    "of the preset.")] = None,
    init_from: Annotated[str | None, typer.Option("--init-from", help="Run or bundle of "
                                                                          "alpha/2.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    targets: Annotated[str | None, typer.Option("--targets", help="morph (default) or "
                                                "morph+diffu (also the HR solution; needs a "
                                                "database built with --hr-diffusion).")] = None,
    objective: Annotated[str | None, typer.Option("--objective", help="Loss terms with "
                                                  "weights, e.g. 'bce=1,connectivity=0.2' "
                                                  "(bce, flux_bce, connectivity, "
                                                  "volume_fraction; flux_bce needs a database "
                                                  "built with --hr-diffusion).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="auto (bf16 where the "
                                                  "device has it natively), fp32 or "
                                                  "bf16.")] = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Training processes "
                                       "(DistributedDataParallel over loopback; at most the "
                                       "CPU cores or GPUs). For several machines use "
                                       "`torchrun ... --no-python twinsr train ...`.")] = 1,
    tensorboard: Annotated[bool, typer.Option(
        "--tensorboard", help="Also log the losses to TensorBoard in OUT/tensorboard (needs "
                              "the tensorboard package; recorded in run.json).")] = False,
) -> None:
    """Train a super-resolution network (+ threshold) on a database; resumable.

    Under torchrun (``torchrun --standalone --nproc-per-node 2 --no-python twinsr train DB
    --alpha 2 -o RUN``) every process runs this command and rank 0 prints the result.
    """
    import os

    from twinsr.sr import TrainConfig, load_model
    from twinsr.sr import train as train_fn
    from twinsr.sr.train import train_distributed

    cfg = TrainConfig.from_yaml(config, base=preset) if config else TrainConfig.preset(preset)
    over: dict[str, object] = {}
    if targets is not None:
        over["targets"] = targets
    if objective is not None:
        over["objective"] = _parse_weights(objective, "--objective")
    if precision is not None:
        over["precision"] = precision
    if tensorboard:
        over["tensorboard"] = True
    if over:
        cfg = TrainConfig.from_dict({**cfg.model_dump(), **over})
    total = cfg.epochs * cfg.steps_per_epoch
    main_rank = int(os.environ.get("RANK", "0") or 0) == 0
    kwargs = {"alpha": alpha, "inputs": inputs, "out_dir": out, "config": cfg,
              "init_from": init_from, "resume": resume, "device": device}
    if nproc != 1:
        typer.echo(f"training in {nproc} processes (progress is not shown)", err=True)
        res = train_distributed(nproc, database, **kwargs)
    elif not main_rank:  # a torchrun worker: train quietly, rank 0 reports
        train_fn(database, **kwargs)
        return
    else:
        with progress_bar(f"train a={alpha} {inputs}", total=total) as bar:

            def prog(epoch: int, step: int, loss: float, val: float | None) -> None:
                done = (epoch - 1) * cfg.steps_per_epoch + step
                status = f"epoch {epoch} loss {loss:.4f}" + (f" val {val:.4f}" if val else "")
                bar.set(done, total=total, status=status)

            res = train_fn(database, progress=prog, **kwargs)
    spec = load_model(res.bundle_path).spec
    echo_json({"bundle": str(res.bundle_path), "spec": spec.to_dict(), "epochs_run": res.epochs_run,
               "best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss,
               "stopped_early": res.stopped_early, "threshold": res.threshold,
               "seconds": round(res.seconds, 1), "device": res.device,
               "precision": res.precision, "processes": res.world_size,
               "transferred": len(res.transferred)})


def _parse_weights(text: str, option: str) -> dict[str, float]:
    """'a=1,b=0.5' (or a bare name, weight 1) -> {'a': 1.0, 'b': 0.5}."""
    from twinsr.exceptions import ConfigError

    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w) if w.strip() else 1.0
        except ValueError:
            raise ConfigError(f"{option} expects name=weight pairs separated by commas, e.g. "
                              f"'bce=1,connectivity=0.2'; got {part!r}") from None
    if not out:
        raise ConfigError(f"{option} is empty; e.g. 'bce=1,connectivity=0.2'")
    return out


@app.command()
@handle_errors
def superresolve(
    lr: Annotated[str, typer.Argument(help="Binary LR volume file.")],
    model: Annotated[str, typer.Option("--model", help="Bundle file, training run folder or "
                                       "builtin:NAME (a pretrained model; see `twinsr models`).")],
    out: Annotated[str, typer.Option("-o", "--out", help="Output volume file.")],
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Write float32 "
                                                "probabilities of solid.")] = False,
    tile: Annotated[int | None, typer.Option(
        "--tile", help="LR tile edge in voxels (default: the largest that fits the memory "
                       "budget; for a .zarr output the block edge, default 64).")] = None,
    axis: Annotated[int | None, typer.Option(
        "--axis", help="Transport axis of the diffusion channels; default the model's own "
                       "(refused if it disagrees).")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Dataset key in the input "
                                                             "file.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    solution_out: Annotated[str | None, typer.Option("--solution-out", help="Also write the "
                                                     "predicted HR pore/solid solution "
                                                     "(2, Z, Y, X) float32 here (models "
                                                     "trained with morph+diffu).")] = None,
    tta: Annotated[int, typer.Option(
        "--tta", help="Test-time augmentation: average over 1 (none), 8 (axis reflections) "
                      "or 48 (all cube symmetries) transforms.")] = 1,
    uncertainty_out: Annotated[str | None, typer.Option(
        "--uncertainty-out", help="Also write the per-voxel spread (std) of the "
                                  "probabilities across the --tta transforms (float32) here; "
                                  "a .zarr path when --out is .zarr.")] = None,
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (bf16 where the CPU/GPU supports it natively, else fp32), "
                            "fp32 or bf16.")] = "auto",
    levels: Annotated[int, typer.Option(
        "--levels", help="Resolution levels of an OME-Zarr output (-o NAME.ome.zarr; level k "
                         "is level 0 subsampled by 2**k).")] = 1,
    force: Annotated[bool, typer.Option(
        "--force", help="Out-of-core output: replace an existing store and discard an "
                        "interrupted run with other settings.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Out-of-core output: run the blocks as tasks on a dask cluster: "
                            "its address (tcp://HOST:8786), a scheduler file (.json, as "
                            "dask-jobqueue / dask-mpi write), or "
                            "local:N for N local worker processes. The output must be on a "
                            "file system every worker sees.")] = None,
) -> None:
    """Super-resolve a binary LR volume of any size with a trained model (tiled).

    An output ending in .zarr is written out of core, block by block (twinsr.scale): the HR
    volume never has to fit in memory, and an interrupted run resumes when rerun. An output
    ending in .ome.zarr is an OME-Zarr (NGFF multiscales with the voxel size; napari reads it).
    """
    from twinsr.exceptions import ConfigError
    from twinsr.io import read_metadata, read_volume, write_volume
    from twinsr.sr import load_model
    from twinsr.sr import superresolve as sr_fn
    from twinsr.sr.runtime import resolve_precision
    from twinsr.sr.tta import check_tta

    check_tta(tta)
    resolve_precision(precision, "cpu")  # refuse a bad --precision before reading anything
    if uncertainty_out is not None and tta == 1:
        raise ConfigError("--uncertainty-out needs --tta 8 or --tta 48: the uncertainty is the "
                          "spread of the probabilities across the transforms")
    if solution_out is not None and tta > 1:
        raise ConfigError("--solution-out works with --tta 1 only (the solution of a "
                          "transformed image solves another axis)")
    mdl = load_model(model)
    mdl.spec.resolve_axis(axis)  # refuse a disagreeing --axis before reading anything
    vs = read_metadata(lr, key=key).get("voxel_size")
    zarr_out = out.lower().rstrip("/").endswith(".zarr")
    if not zarr_out and (scheduler is not None or levels != 1 or force):
        raise ConfigError("--scheduler, --levels and --force apply to an out-of-core output; "
                          "use -o NAME.zarr (or NAME.ome.zarr)")
    if solution_out is not None and zarr_out:
        raise ConfigError("--solution-out is not available with an out-of-core .zarr output; "
                          "write the HR volume to an in-memory format (.npy, .tif, ...)")
    if zarr_out:
        from twinsr._distributed import open_client
        from twinsr.scale import superresolve_zarr

        with open_client(scheduler) as client, \
                progress_bar("superresolve (out of core)", total=None) as bar:
            path = superresolve_zarr(lr, mdl, out, chunk=64 if tile is None else tile, key=key,
                                     device=device, probabilities=probabilities, axis=axis,
                                     voxel_size=vs, progress=lambda d, t: bar.set(d, total=t),
                                     tta=tta, uncertainty_out=uncertainty_out,
                                     precision=precision, client=client, levels=levels,
                                     force=force, unit=read_metadata(lr, key=key).get(
                                         "unit") or "um")
        echo_json({"output": str(path), "alpha": mdl.alpha, "threshold": mdl.threshold,
                   "transport_axis": mdl.transport_axis, "tta": tta,
                   "uncertainty": uncertainty_out})
        return
    im = read_volume(lr, key=key)
    with progress_bar("superresolve", total=None) as bar:
        res = sr_fn(im, mdl, tile=tile, device=device, probabilities=probabilities, axis=axis,
                    progress=lambda d, t: bar.set(d, total=t),
                    return_solution=solution_out is not None, tta=tta,
                    return_uncertainty=uncertainty_out is not None, precision=precision)
    new_vs = tuple(float(v) / mdl.alpha for v in vs) if vs else None
    extra = res[1] if isinstance(res, tuple) else None
    res = res[0] if isinstance(res, tuple) else res
    if solution_out is not None:
        write_volume(solution_out, extra, voxel_size=new_vs,
                     metadata={"alpha": mdl.alpha, "channels": ["pore", "solid"],
                               "axis": mdl.transport_axis, "source": str(lr)})
    if uncertainty_out is not None:
        write_volume(uncertainty_out, extra, voxel_size=new_vs,
                     metadata={"alpha": mdl.alpha, "tta": tta, "content": "std of the solid "
                               "probability across the transforms", "source": str(lr)})
    path = write_volume(out, res, voxel_size=new_vs,
                        metadata={"alpha": mdl.alpha, "inputs": mdl.inputs,
                                  "threshold": mdl.threshold, "spec": mdl.spec.to_dict(),
                                  "source": str(lr), "tta": tta})
    echo_json({"output": str(path), "shape": res.shape, "dtype": str(res.dtype),
               "alpha": mdl.alpha, "threshold": mdl.threshold,
               "transport_axis": mdl.transport_axis, "tta": tta,
               "uncertainty": uncertainty_out})


# -- study (twinsr.study) --------------------------------------------------------------------
@app.command()
@handle_errors
def study(
    out: Annotated[str, typer.Option("--out", "-o", help="Study folder (created; rerun resumes).")],
    preset: Annotated[str | None, typer.Option(
        "--preset", help="demo (α=2, ~10 min), quick (α=2,4,8, ~45 min on 2 CPU cores), "
                         "paper (full protocol, GPU) or micro (CI).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="YAML study config (see twinsr.study.StudyConfig).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Use a folder holding a different study (its outputs are deleted).")] = False,
    device: Annotated[str | None, typer.Option(
        "--device", help="auto, cpu or cuda[:N] (overrides the config).")] = None,
    tensorboard: Annotated[bool, typer.Option(
        "--tensorboard", help="Afterwards write every network's loss curves to OUT/tensorboard "
                              "(open with `tensorboard --logdir OUT/tensorboard`).")] = False,
) -> None:
    """Run the paper's experiment: calibrate, twins, train, evaluate, figures, report."""
    import time

    from twinsr.exceptions import ConfigError
    from twinsr.study import StudyConfig, run_study

    if (preset is None) == (config is None):
        raise ConfigError("give exactly one of --preset NAME or --config FILE.yaml")
    if tensorboard:
        from twinsr.sr.tracking import require_tensorboard

        require_tensorboard()  # before hours of work, not after
    cfg = StudyConfig.preset(preset) if preset is not None else StudyConfig.from_yaml(config)
    if device is not None:
        cfg = StudyConfig.from_dict({**cfg.model_dump(), "device": device})
    t0 = time.perf_counter()

    def show(msg: str) -> None:
        typer.echo(f"[{time.perf_counter() - t0:7.1f}s] {msg}", err=True)

    res = run_study(cfg, out, force=force, progress=show)
    typer.echo(f"results: {res.results_path}")
    typer.echo(f"report:  {res.report_path} ({res.report_html.name})")
    typer.echo(f"figures: {len(res.figures)} files in {res.out_dir / 'figures'}")
    if res.skipped:
        typer.echo(f"skipped: {len(res.skipped)} evaluation(s), see {res.out_dir / 'skipped.json'}")
    if tensorboard:
        from twinsr.sr.tracking import export_tensorboard

        typer.echo(f"tensorboard: {export_tensorboard(res.out_dir)} "
                   f"(tensorboard --logdir {res.out_dir / 'tensorboard'})")


@app.command()
@handle_errors
def info(
    path: Annotated[str, typer.Argument(help="Volume file (.tif .npy .npz .raw .zarr .h5) or builtin:NAME.")],
    key: Annotated[str | None, typer.Option(help="Array name inside .npz/.h5/.zarr.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print shape, dtype, value counts / phase fractions and voxel size of a volume."""
    from twinsr.io import volume_info

    vi = volume_info(path, key=key)
    if as_json:
        echo_json(vi.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(path), show_header=False)
    table.add_row("shape (Z, Y, X)", " x ".join(map(str, vi.shape)))
    table.add_row("dtype", vi.dtype)
    if vi.value_counts:
        total = sum(vi.value_counts.values())
        table.add_row("values", ", ".join(f"{k}: {v} ({v / total:.1%})" if vi.binary else f"{k}: {v}"
                                          for k, v in vi.value_counts.items()))
    if vi.binary and vi.solid_fraction is not None:
        table.add_row("solid / pore fraction",
                      f"{vi.solid_fraction:.4f} / {1 - vi.solid_fraction:.4f}  (1 = solid)")
    table.add_row("voxel size", "unknown" if vi.voxel_size is None else
                  f"{' x '.join(f'{v:g}' for v in vi.voxel_size)} {vi.unit}")
    for k, v in vi.metadata.items():
        table.add_row(k, str(v))
    Console().print(table)


@app.command()
@handle_errors
def datasets() -> None:
    """List the measured volumes shipped with twinsr (use them as builtin:NAME)."""
    from twinsr import datasets as ds

    for name in ds.names():
        prov = ds.provenance(name)
        typer.echo(f"{name:18s} {tuple(prov.get('shape', ()))!s:18s} {prov.get('material', '')[:70]}")


# -- pretrained models (twinsr.sr.cards, twinsr.sr.pretrained) ----------------------------------
@app.command()
@handle_errors
def models(
    name: Annotated[str | None, typer.Argument(help="Show the model card of this model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Also run every model on its card's test input (seconds).")] = False,
) -> None:
    """List the pretrained models shipped with twinsr (use them as --model builtin:NAME).

    With NAME, print that model's card (YAML): training data, config, versions, test metrics
    against tri-quadratic interpolation, intended use, limits, licence and weights SHA-256.
    """
    from twinsr.sr.cards import load_card, models_dir
    from twinsr.sr.pretrained import pretrained_models

    if name is not None:
        card = load_card(name)
        if as_json:
            echo_json(card.model_dump())
        else:
            typer.echo((models_dir() / f"{card.name}.yaml").read_text(encoding="utf-8"))
        return
    rows = pretrained_models()
    if check:
        from twinsr.sr.pretrained import check_reference_pair

        for r in rows:
            r["test_mismatch"] = check_reference_pair(r["name"])
    if as_json:
        echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pretrained models (--model builtin:NAME)")
    for col in ("name", "α", "inputs", "axis", "μ*", "size", "card summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        summary = r["summary"].split("; ", 1)[-1]
        if check:
            summary += f"; test pair mismatch {r['test_mismatch']:.2%}"
        table.add_row(r["name"], str(r["alpha"]), r["inputs"],
                      "-" if r["transport_axis"] is None else str(r["transport_axis"]),
                      f"{r['threshold']:.3f}", f"{r['size_bytes'] / 1e6:.2f} MB", summary)
    Console(width=160).print(table)


# -- viewer (twinsr.viewer, napari) -------------------------------------------------------------
@app.command()
@handle_errors
def view(
    files: Annotated[list[str] | None, typer.Argument(
        help="Volume files (.tif .npy .npz .raw .zarr .h5) or builtin:NAME.")] = None,
    lr: Annotated[str | None, typer.Option("--lr", help="Comparison: the LR input.")] = None,
    sr: Annotated[str | None, typer.Option("--sr", help="Comparison: the SR output.")] = None,
    hr: Annotated[str | None, typer.Option(
        "--hr", help="Comparison: the HR ground truth (adds the error overlay: wrong solid "
                     "magenta, wrong pore blue).")] = None,
    uncertainty: Annotated[str | None, typer.Option(
        "--uncertainty", help="Comparison: uncertainty map on the SR grid "
                              "(superresolve --uncertainty-out).")] = None,
    diffusion: Annotated[str | None, typer.Option(
        "--diffusion", help="Comparison: diffusion channels on the LR grid (twinsr diffusion).")
    ] = None,
    three_d: Annotated[bool, typer.Option("--3d", help="Start in 3-D rendering.")] = False,
    screenshot: Annotated[str | None, typer.Option(
        "--screenshot", help="Save a PNG of the canvas and exit instead of opening a window "
                             "(needs OpenGL: a display or Xvfb).")] = None,
) -> None:
    """Open volumes in napari with their voxel size, and an LR / SR / HR comparison.

    Needs the viewer extra (pip install "twinsr[viewer]"). Every file is read and every shape
    checked before napari starts.
    """
    from twinsr.viewer import view as view_fn

    out = view_fn(files or [], lr=lr, sr=sr, hr=hr, uncertainty=uncertainty,
                  diffusion=diffusion, ndisplay=3 if three_d else 2, screenshot=screenshot)
    if out is not None:
        typer.echo(f"wrote {out}")


def main() -> None:
    """Console-script entry point."""
    app()
