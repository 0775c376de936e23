"""dask.distributed plumbing shared by the parallel builders (database, generate, out of core).

A function that can run under a cluster takes ``client``: None (serial, in this process),
``"auto"`` (the active client, :func:`distributed.get_client`), or a
:class:`distributed.Client`. Before any work is submitted, :func:`check_workers` runs a tiny
probe on every worker: each must see the output folder (a token file written here must be
readable there, and the worker must be able to write next to it; a same-named local folder
on another host does not pass) and run the same versions of the packages that decide the
results (twinsr, numpy, scipy, torch). :func:`run_tasks` then submits the tasks, reports
progress as they finish and re-raises the first failure after cancelling the rest.

Only :mod:`twinsr.exceptions` is imported at module level; ``distributed`` is imported when a
client is asked for, so nothing here costs anything in a serial run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from twinsr.exceptions import ConfigError, VolumeFileError

__all__ = ["check_workers", "open_client", "probe_worker", "resolve_client", "run_tasks",
           "wait_all", "worker_versions"]

log = logging.getLogger(__name__)

#: packages whose versions must agree between the client and every worker
VERSIONED = ("twinsr", "numpy", "scipy", "torch")
_INSTALL = "install dask.distributed (pip install 'twinsr[scale]' or 'dask[distributed]')"


def resolve_client(client: Any) -> Any:
    """The client to use: None, the active one for ``"auto"``, or ``client`` itself.

    Raises
    ------
    ConfigError
        ``"auto"`` without an active client or without dask.distributed installed; an object
        that is not a :class:`distributed.Client`.

    Examples
    --------
    >>> resolve_client(None) is None
    True
    """
    if client is None:
        return None
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(f"`client` needs dask.distributed; {_INSTALL}") from exc
    if isinstance(client, str):
        if client != "auto":
            raise ConfigError(f"`client` must be None, 'auto' or a distributed.Client, got "
                              f"{client!r} (connect with distributed.Client(ADDRESS))")
        try:
            return distributed.get_client()
        except ValueError as exc:
            raise ConfigError("client='auto' but no dask.distributed client is active; create "
                              "one (distributed.Client(...)) or pass client=None") from exc
    if not isinstance(client, distributed.Client):
        raise ConfigError(f"`client` must be None, 'auto' or a distributed.Client, got "
                          f"{type(client).__name__}")
    return client


def worker_versions() -> dict[str, str | None]:
    """Versions of the packages in :data:`VERSIONED` in this process (None if not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import twinsr

    out["twinsr"] = twinsr.__version__  # the imported one (an editable or PYTHONPATH tree)
    return out


def probe_worker(folder: str, token: str) -> dict[str, Any]:
    """Runs on a worker: can it read ``folder/token`` and write next to it? Its versions."""
    p = Path(folder)
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                            "versions": worker_versions(), "error": None}
    try:
        seen = (p / token).read_text(encoding="utf-8") == token
    except OSError as exc:
        info["error"] = f"cannot read {p / token} ({exc.strerror or exc})"
        return info
    if not seen:
        info["error"] = f"{p / token} has other content (another file system?)"
        return info
    mine = p / f"{token}.{info['host']}-{info['pid']}"
    try:
        mine.write_text("ok", encoding="utf-8")
        mine.unlink()
    except OSError as exc:
        info["error"] = f"cannot write in {p} ({exc.strerror or exc})"
    return info


def check_workers(client: Any, folder: str | os.PathLike[str], *, what: str = "output") -> None:
    """Check every worker of ``client`` sees ``folder`` and runs the same versions as here.

    ``folder`` is created here if missing. The probe (:func:`probe_worker`) runs once on each
    worker connected now (workers that join later are not probed).

    Raises
    ------
    VolumeFileError
        A worker cannot read a token written to ``folder`` here, or cannot write there (the
        message names the folder and the workers; put the output on a file system all workers
        mount at the same path).
    ConfigError
        The cluster has no workers; a worker runs other versions of twinsr, numpy, scipy or
        torch than this process.
    """
    p = Path(folder).absolute()
    p.mkdir(parents=True, exist_ok=True)
    token = f".twinsr-probe-{uuid.uuid4().hex}"
    (p / token).write_text(token, encoding="utf-8")
    try:
        infos = client.run(probe_worker, str(p), token)
    finally:
        (p / token).unlink(missing_ok=True)
    if not infos:
        raise ConfigError(f"the dask cluster at {client.scheduler.address} has no workers; "
                          "start workers (or wait for them: client.wait_for_workers(n))")
    blind = {w: i["error"] for w, i in infos.items() if i["error"]}
    if blind:
        shown = "; ".join(f"{w}: {e}" for w, e in sorted(blind.items()))
        raise VolumeFileError(
            f"{len(blind)} of {len(infos)} dask worker(s) cannot use the {what} path {p} "
            f"({shown}); put it on a file system every worker mounts at the same path")
    here = worker_versions()
    odd = {w: {k: v for k, v in i["versions"].items() if v != here.get(k)}
           for w, i in infos.items()}
    odd = {w: d for w, d in odd.items() if d}
    if odd:
        shown = "; ".join(f"{w}: {d}" for w, d in sorted(odd.items()))
        raise ConfigError(
            f"dask worker(s) run other package versions than this process ({here}): {shown}; "
            "install the same twinsr, numpy, scipy and torch everywhere (results would differ)")
    log.info("%d dask worker(s) see %s and run %s", len(infos), p, here)


def run_tasks(client: Any, fn: Callable[..., Any], jobs: Sequence[Any], *,
              progress: Callable[[], None] | None = None, key: str = "twinsr") -> list[Any]:
    """Run ``fn(job)`` for every job on the cluster; results in the order of ``jobs``.

    ``progress()`` is called here after each finished task; failures as :func:`wait_all`.
    """
    prefix = f"{key}-{uuid.uuid4().hex[:8]}"
    futs = [client.submit(fn, j, key=f"{prefix}-{i}", pure=False) for i, j in enumerate(jobs)]
    return wait_all(client, futs, progress=progress)


def wait_all(client: Any, futures: Sequence[Any], *,
             progress: Callable[[], None] | None = None) -> list[Any]:
    """Wait for ``futures``; their results in order, ``progress()`` after each one finishes.

    The first failing task's exception is re-raised (its type and message as raised on the
    worker) after the futures still pending are cancelled.
    """
    from distributed import as_completed

    futs = list(futures)
    if not futs:
        return []
    try:
        for fut in as_completed(futs, loop=client.loop):
            fut.result()  # raises the task's exception
            if progress is not None:
                progress()
        return [f.result() for f in futs]
    finally:
        pending = [f for f in futs if not f.done()]
        if pending:
            client.cancel(pending)


@contextlib.contextmanager
def open_client(scheduler: str | None) -> Iterator[Any]:
    """A client for a CLI ``--scheduler`` value (None yields None: serial).

    ``scheduler`` is a scheduler address (``tcp://host:8786``), a scheduler file written by
    ``dask scheduler --scheduler-file`` / dask-jobqueue / dask-mpi (a path ending in
    ``.json``), or ``local:N`` for a LocalCluster of N single-threaded worker processes on
    this machine (loopback only, no dashboard), closed on exit.

    Raises
    ------
    ConfigError
        dask.distributed missing, a malformed ``local:N``, a scheduler that cannot be reached.
    """
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(f"--scheduler needs dask.distributed; {_INSTALL}") from exc
    if scheduler.startswith("local:"):
        n = scheduler.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--scheduler local:N needs a positive worker count, got {scheduler!r}")
        with LocalCluster(n_workers=int(n), processes=True, threads_per_worker=1,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    kw = {"scheduler_file": scheduler} if scheduler.endswith(".json") else {"address": scheduler}
    try:
        client = Client(timeout="30s", **kw)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"cannot connect to the dask scheduler {scheduler!r} ({exc}); check "
                          "the address / scheduler file and that the scheduler runs") from exc
    with client:
        yield client
