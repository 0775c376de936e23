"""MkDocs hooks of the twinsr documentation: pages generated from the code at build time.

* ``cli/*.md`` — one page per command of the typer app (:data:`twinsr.cli.app`): usage,
  description, arguments and options with types and defaults, taken from the click command
  that typer builds, so the pages cannot drift from ``twinsr COMMAND --help``.
* ``api/*.md`` — one page per public module or subpackage of twinsr, listing every name of its
  ``__all__`` for mkdocstrings (numpy docstrings); after the build every name must be in the
  site's ``objects.inv`` (checked in ``on_post_build``).
* ``gallery/*.md`` — every script in ``docs/examples/`` is executed (a fresh working folder,
  matplotlib's Agg backend); its page shows the code, what it printed and the figures it saved.
  A failing example fails the build. ``TWINSR_DOCS_EXAMPLES=0`` skips the execution (a quick
  build of the other pages; the gallery pages then say so).

The navigation is built here too (``on_config``), from the same lists.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.twinsr")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
EXAMPLES = DOCS / "examples"
#: Public modules documented in the API reference (twinsr.cli is the CLI reference).
API_MODULES = ["twinsr", "twinsr.io", "twinsr.datasets", "twinsr.stochastic",
               "twinsr.descriptors", "twinsr.transport", "twinsr.resample", "twinsr.metrics",
               "twinsr.sr", "twinsr.scale", "twinsr.study", "twinsr.viewer", "twinsr.exceptions"]
#: Hand-written pages, in nav order.
PAGES = [("Home", "index.md"), ("Getting started", "getting-started.md"),
         ("Concepts", "concepts.md"), ("Pretrained models", "pretrained.md"),
         ("Viewer (napari)", "viewer.md"), ("Experiment tracking", "tracking.md")]
EXAMPLE_TIMEOUT = 900


# ---- CLI pages --------------------------------------------------------------------------------
def cli_commands() -> dict[str, Any]:
    """``{name: click.Command}`` of every ``twinsr`` command, sorted by name."""
    import typer.main

    from twinsr.cli import app

    group = typer.main.get_command(app)
    return dict(sorted(group.commands.items()))


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_TYPE_NAMES = {str: "text", int: "integer", float: "number", bool: "flag"}


def _type_name(p: Any) -> str:
    """A parameter's type in words (typer's own parameter API, or click's)."""
    import types
    import typing

    desc = getattr(p, "type_descriptor", None)
    if desc is None:
        return str(getattr(getattr(p, "type", None), "name", ""))
    ann = desc.annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = next(a for a in typing.get_args(ann) if a is not type(None))
    if typing.get_origin(ann) is list:
        return _TYPE_NAMES.get(typing.get_args(ann)[0], "text") + " (repeatable)"
    return _TYPE_NAMES.get(ann, getattr(ann, "__name__", str(ann)))


def _usage(name: str, args: list[Any]) -> str:
    parts = [f"twinsr {name} [OPTIONS]"]
    for p in args:
        arg = p.name.upper() + ("..." if p.nargs == -1 or "repeatable" in _type_name(p) else "")
        parts.append(arg if p.required else f"[{arg}]")
    return " ".join(parts)


def cli_page(name: str, cmd: Any) -> str:
    """Markdown of one command: usage, description, arguments and options.

    typer builds the commands on its own copy of click, so parameters are told apart by
    ``param_type_name``, not by class.
    """
    args = [p for p in cmd.params if p.param_type_name == "argument"]
    opts = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    lines = [f"# twinsr {name}", "", "```text", _usage(name, args), "```", ""]
    doc = (cmd.help or "").strip()
    if doc:
        lines += [doc.replace("``", "`"), ""]
    if args:
        lines += ["## Arguments", "", "| argument | type | required | description |",
                  "|---|---|---|---|"]
        for p in args:
            lines.append(f"| `{p.name.upper()}` | {_cell(_type_name(p))} | "
                         f"{'yes' if p.required else 'no'} | {_cell(getattr(p, 'help', '') or '')} |")
        lines.append("")
    lines += ["## Options", "", "| option | type | default | description |", "|---|---|---|---|"]
    for p in opts:
        names = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
        kind = "flag" if p.is_flag else _cell(_type_name(p))
        default = "required" if p.required else ("" if p.default is None else f"`{p.default}`")
        lines.append(f"| {names} | {kind} | {default} | {_cell(p.help or '')} |")
    lines += ["| `--help` | flag | | Show the help and exit. |", "",
              "All commands share the global option `-v` / `--verbose` (`twinsr -v COMMAND`). "
              "Errors are one line on stderr and exit code 1.", ""]
    return "\n".join(lines)


def cli_index(names: list[str]) -> str:
    rows = "\n".join(f"| [`twinsr {n}`]({n}.md) | {_cell(_first_line(cli_commands()[n].help))} |"
                     for n in names)
    return ("# Command line\n\nEvery command is a thin layer over a library function of the same "
            "name. `IMAGE` arguments take any `.tif/.tiff`, `.npy`, `.npz`, `.raw` (+ `.json`), "
            "`.zarr` or `.h5` file, or `builtin:NAME` for a shipped volume.\n\n"
            f"| command | what it does |\n|---|---|\n{rows}\n")


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


# ---- API pages --------------------------------------------------------------------------------
def api_names() -> dict[str, list[str]]:
    """``{module: sorted __all__}`` of every documented module."""
    return {m: sorted(importlib.import_module(m).__all__) for m in API_MODULES}


def _shadowed(module: str, name: str) -> str | None:
    """The defining path of ``module.name`` when a submodule of the same name hides it from
    mkdocstrings (``twinsr.stochastic.calibrate`` the function vs the module), else None."""
    import importlib.util
    import types

    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, types.ModuleType) or not hasattr(importlib.import_module(module), "__path__"):
        return None
    if importlib.util.find_spec(f"{module}.{name}") is None:
        return None
    return f"{obj.__module__}.{obj.__qualname__}"


def api_page(module: str, names: list[str]) -> str:
    import types

    mod = importlib.import_module(module)
    plain = [n for n in names if _shadowed(module, n) is None
             and not isinstance(getattr(mod, n), types.ModuleType)]
    members = "\n".join(f"        - {n}" for n in plain)
    title = module if module != "twinsr" else "twinsr (top level)"
    intro = ("The names below are re-exported from the subpackages, where each is documented "
             "too.\n\n" if module == "twinsr" else "")
    text = (f"# {title}\n\n{intro}::: {module}\n    options:\n      show_if_no_docstring: true\n"
            f"      members:\n{members}\n")
    for n in names:
        sub = getattr(mod, n)
        if isinstance(sub, types.ModuleType):
            text += f"\n## {n}\n\nThe module [`{sub.__name__}`]({sub.__name__}.md).\n"
        elif (path := _shadowed(module, n)) is not None:
            text += (f"\n::: {path}\n    options:\n      show_root_heading: true\n"
                     f"      show_root_full_path: false\n      heading_level: 2\n")
    return text


def inventory_names(site_dir: Path) -> set[str]:
    """Names in the site's ``objects.inv`` (Sphinx inventory v2, as mkdocstrings writes it)."""
    raw = (site_dir / "objects.inv").read_bytes()
    for _ in range(4):  # four header lines, then zlib
        raw = raw[raw.index(b"\n") + 1:]
    text = zlib.decompress(raw).decode("utf-8")
    return {line.split(" ", 1)[0] for line in text.splitlines() if line.strip()}


# ---- gallery ----------------------------------------------------------------------------------
def examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def _split_docstring(source: str) -> tuple[str, str, str]:
    """(title, intro, code) of an example script whose module docstring opens it."""
    if not source.startswith('"""'):
        raise ValueError("an example must open with a docstring: title line, blank line, text")
    end = source.index('"""', 3)
    doc, code = source[3:end].strip(), source[end + 3:].strip()
    title, _, intro = doc.partition("\n")
    return title.strip(), intro.strip(), code


def run_example(path: Path, workdir: Path) -> tuple[str, list[Path], float]:
    """Execute an example in ``workdir``; (stdout, figures it saved, seconds)."""
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path)], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=EXAMPLE_TIMEOUT, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"example {path.name} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    figures = sorted(workdir.glob("*.png"))
    return proc.stdout, figures, seconds


def gallery_page(path: Path, stdout: str | None, figures: list[str], seconds: float | None) -> str:
    title, intro, code = _split_docstring(path.read_text(encoding="utf-8"))
    lines = [f"# {title}", "", intro, "", f"```python\n{code}\n```", ""]
    if stdout is None:
        lines += ["!!! note", "    This build skipped the examples (`TWINSR_DOCS_EXAMPLES=0`); "
                  "`make docs` runs them.", ""]
        return "\n".join(lines)
    if stdout.strip():
        lines += ["Output:", "", f"```text\n{stdout.rstrip()}\n```", ""]
    lines += [f"![{Path(f).stem}]({f})\n" for f in figures]
    lines += [f"*Executed when these pages were built: {seconds:.0f} s on "
              f"{os.cpu_count()} CPU cores ({platform.machine()}).*", ""]
    return "\n".join(lines)


def gallery_index(paths: list[Path]) -> str:
    rows = "\n".join(f"- [{_split_docstring(p.read_text(encoding='utf-8'))[0]}]({p.stem}.md)"
                     for p in paths)
    return ("# Gallery\n\nWorked examples, executed every time the documentation is built "
            "(`make docs`, and in CI): the outputs and figures below come from running them. "
            f"Each is a script in `docs/examples/`.\n\n{rows}\n")


# ---- MkDocs events ----------------------------------------------------------------------------
def on_config(config: Any) -> Any:
    sys.path.insert(0, str(ROOT / "src"))
    cli = [{f"twinsr {n}": f"cli/{n}.md"} for n in cli_commands()]
    api = [{m: f"api/{m}.md"} for m in API_MODULES]
    gal = [{_split_docstring(p.read_text(encoding="utf-8"))[0]: f"gallery/{p.stem}.md"}
           for p in examples()]
    config["nav"] = [{t: p} for t, p in PAGES] + [
        {"Gallery": [{"Overview": "gallery/index.md"}, *gal]},
        {"Command line": [{"Overview": "cli/index.md"}, *cli]},
        {"API reference": api}]
    return config


def _add(files: Any, config: Any, uri: str, content: str | bytes) -> None:
    from mkdocs.structure.files import File

    files.append(File.generated(config, uri, content=content))


def on_files(files: Any, config: Any) -> Any:
    commands = cli_commands()
    for name, cmd in commands.items():
        _add(files, config, f"cli/{name}.md", cli_page(name, cmd))
    _add(files, config, "cli/index.md", cli_index(list(commands)))
    for module, names in api_names().items():
        _add(files, config, f"api/{module}.md", api_page(module, names))
    run = os.environ.get("TWINSR_DOCS_EXAMPLES", "1") != "0"
    paths = examples()
    for path in paths:
        if not run:
            _add(files, config, f"gallery/{path.stem}.md", gallery_page(path, None, [], None))
            continue
        work = Path(tempfile.mkdtemp(prefix=f"twinsr-docs-{path.stem}-"))
        try:
            log.info("running example %s", path.name)
            stdout, figures, seconds = run_example(path, work)
            uris = []
            for fig in figures:
                uri = f"gallery/{path.stem}/{fig.name}"
                _add(files, config, uri, fig.read_bytes())
                uris.append(f"{path.stem}/{fig.name}")
            _add(files, config, f"gallery/{path.stem}.md",
                 gallery_page(path, stdout, uris, seconds))
            log.info("example %s: %.0f s, %d figure(s)", path.name, seconds, len(figures))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    _add(files, config, "gallery/index.md", gallery_index(paths))
    return files


def documented(module: str, name: str, have: set[str]) -> bool:
    """Whether ``module.name`` has an entry: under that path or where the object is defined."""
    if f"{module}.{name}" in have:
        return True
    obj = getattr(importlib.import_module(module), name)
    if getattr(obj, "__name__", None) in API_MODULES:  # a module: its own page
        return True
    home = getattr(obj, "__module__", None)
    return home is not None and f"{home}.{getattr(obj, '__qualname__', name)}" in have


def missing_entries(site_dir: Path) -> list[str]:
    """Public names (``__all__`` of :data:`API_MODULES`) without an entry in the built site."""
    have = inventory_names(site_dir)
    return [f"{m}.{n}" for m, names in api_names().items() for n in names
            if not documented(m, n, have)]


def on_post_build(config: Any) -> None:
    """Every public name has an entry in the API reference (else the build fails)."""
    missing = missing_entries(Path(config["site_dir"]))
    if missing:
        raise RuntimeError(f"{len(missing)} public name(s) have no API entry: "
                           f"{', '.join(missing[:20])}")
