"""The documentation site (mkdocs.yml, docs/hooks.py): pages that cannot drift from the code.

The full build (`make docs`: every example executed, `mkdocs build --strict`, every public name
checked against the built site's inventory) runs in `.ci/run`; the tests here check, fast, that
the generator gives every CLI command a page and every public name an API entry, and that the
examples are well formed. The strict build itself runs here as a `slow` test.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))
hooks = importlib.import_module("hooks")


def test_every_cli_command_has_a_page() -> None:
    import typer.main

    from twinsr.cli import app

    commands = typer.main.get_command(app).commands
    assert set(hooks.cli_commands()) == set(commands)
    assert {"superresolve", "study", "view", "models", "train"} <= set(commands)
    for name, cmd in commands.items():
        page = hooks.cli_page(name, cmd)
        assert page.startswith(f"# twinsr {name}\n")
        for p in cmd.params:  # every option of the command is on its page
            for opt in getattr(p, "opts", []):
                if opt.startswith("-"):
                    assert f"`{opt}`" in page, (name, opt)
    index = hooks.cli_index(list(commands))
    assert all(f"({n}.md)" in index for n in commands)
    view = hooks.cli_page("view", commands["view"])
    assert "`--screenshot`" in view and "napari" in view


def test_every_public_name_has_an_api_entry() -> None:
    names = hooks.api_names()
    import twinsr

    assert set(names["twinsr"]) == set(twinsr.__all__)
    subpackages = {m for m in names if m != "twinsr"}
    for sub in ("twinsr.sr", "twinsr.stochastic", "twinsr.transport", "twinsr.study",
                "twinsr.viewer", "twinsr.descriptors", "twinsr.io", "twinsr.metrics"):
        assert sub in subpackages
    for module, public in names.items():
        page = hooks.api_page(module, public)
        for n in public:
            listed = f"        - {n}\n" in page
            shadowed = hooks._shadowed(module, n)
            own_section = shadowed is not None and f"::: {shadowed}\n" in page
            a_module = f"## {n}\n\nThe module" in page
            assert listed or own_section or a_module, f"{module}.{n} has no entry"


def test_inventory_check_finds_missing_names(tmp_path: Path) -> None:
    import zlib

    header = b"# Sphinx inventory version 2\n# Project: x\n# Version: 0\n# zlib\n"
    body = b"twinsr.io.read_volume py:function 1 api/twinsr.io/#$ -\n"
    (tmp_path / "objects.inv").write_bytes(header + zlib.compress(body))
    assert hooks.inventory_names(tmp_path) == {"twinsr.io.read_volume"}
    missing = hooks.missing_entries(tmp_path)
    assert "twinsr.io.write_volume" in missing and "twinsr.io.read_volume" not in missing
    assert "twinsr.read_volume" not in missing  # documented where it is defined


def test_examples_are_well_formed() -> None:
    paths = hooks.examples()
    assert [p.stem for p in paths] == ["01_calibrate_validate", "02_superresolve_pretrained",
                                       "03_study_own_data", "04_tortuosity_vs_taufactor"]
    for p in paths:
        src = p.read_text(encoding="utf-8")
        title, intro, code = hooks._split_docstring(src)
        assert title and intro and code
        ast.parse(src)
        assert "savefig(" in code or "shutil.copy" in code  # every example makes a figure
    tf = (DOCS / "examples" / "04_tortuosity_vs_taufactor.py").read_text(encoding="utf-8")
    assert "except ImportError" in tf  # TauFactor is optional (not in .[dev])


def test_example_failure_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""Bad\n\nfails"""\nraise SystemExit(3)\n')
    with pytest.raises(RuntimeError, match=r"bad\.py failed"):
        hooks.run_example(bad, tmp_path)
    good = tmp_path / "good.py"
    good.write_text('"""Good\n\nworks"""\nimport matplotlib.pyplot as plt\nprint("hi")\n'
                    'plt.plot([0, 1]); plt.savefig("f.png")\n')
    out, figs, _ = hooks.run_example(good, tmp_path)
    assert out.strip() == "hi" and [f.name for f in figs] == ["f.png"]
    page = hooks.gallery_page(good, out, ["good/f.png"], 1.0)
    assert "![f](good/f.png)" in page and "```python" in page


def test_nav_and_handwritten_pages() -> None:
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert cfg["strict"] is True and cfg["hooks"] == ["docs/hooks.py"]
    for _, page in hooks.PAGES:
        assert (DOCS / page).is_file(), page
    concepts = (DOCS / "concepts.md").read_text(encoding="utf-8")
    for word in ("1 = solid", "(z, y, x)", "TauFactor", "PoreSpy", "diffusion", "surface accuracy"):
        assert word in concepts
    for fig in ("viewer_comparison.png", "viewer_3d.png", "quick_error_slices_nmc.png"):
        assert (DOCS / "figures" / fig).is_file()
    nav = hooks.on_config({"nav": None})["nav"]
    titles = [next(iter(item)) for item in nav]
    assert titles[:2] == ["Home", "Getting started"] and "API reference" in titles


@pytest.mark.slow
def test_strict_build_without_examples(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "TWINSR_DOCS_EXAMPLES": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                           str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "cli" / "view" / "index.html").is_file()
    assert hooks.missing_entries(tmp_path / "site") == []
