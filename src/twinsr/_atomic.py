"""Atomic file output: write to a temporary sibling, then rename over the target.

A crash or interrupt mid-write leaves either the old file or no file, never a truncated one.
A process killed mid-write (SIGKILL, power loss) cannot remove its temporary: the temporary's
name records the writer (``.NAME.HOST-PID.XXXXXXXX.tmp.SUFFIX``), so that a later run can remove
those of writers that are gone with :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "remove_stale_temporaries"]

_TEMP = re.compile(r"\.(?P<name>.*)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp.*")
_ASIDE = re.compile(r"\.(?P<name>.*)\.old-(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _writer() -> str:
    """``HOST-PID`` of this process, as recorded in its temporaries' names."""
    return f"{_host()}-{os.getpid()}"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success move it onto ``target``.

    Parameters
    ----------
    target : path
        Final file (or directory with ``is_dir=True``, e.g. a ``.zarr`` store).
    is_dir : bool
        The writer creates a directory tree rather than a file.

    Notes
    -----
    The temporary name keeps ``target``'s suffix so that writers that dispatch on the suffix
    (tifffile, numpy, zarr) behave as for the final name. Files are replaced with ``os.replace``
    (atomic on POSIX); directories are swapped by renaming the old one aside first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.{_writer()}.",
                                    suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"writer did not create {tmp}")
        if is_dir or tmp.is_dir():
            if target.exists():
                aside = target.with_name(f".{target.name}.old-{_writer()}")
                os.replace(target, aside)
                os.replace(tmp, target)
                shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() else aside.unlink()
            else:
                os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically and return the path."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that writers killed mid-write left under ``root``.

    Only temporaries of :func:`atomic_path` whose writer ran on this host and is no longer
    running are touched (a live writer's, or one from another host sharing the folder, are
    kept). A directory moved aside while being replaced is moved back if its target is
    missing (the kill came between the two renames), else removed.

    Parameters
    ----------
    root : path
        Folder searched recursively (a missing folder is fine).

    Returns
    -------
    list of Path
        The temporaries removed or moved back.

    Examples
    --------
    >>> import tempfile
    >>> remove_stale_temporaries(tempfile.mkdtemp())
    []
    """
    root = Path(root)
    done: list[Path] = []
    if not root.is_dir():
        return done
    host = _host()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            m = _TEMP.fullmatch(name) or _ASIDE.fullmatch(name)
            if m is None or m["host"] != host or _alive(int(m["pid"])):
                continue
            p = Path(dirpath) / name
            target = p.with_name(m["name"])
            if m.re is _ASIDE and not target.exists():
                os.replace(p, target)
            elif p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            done.append(p)
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).exists()
                       and not (Path(dirpath) / d).is_symlink()]
    return done
