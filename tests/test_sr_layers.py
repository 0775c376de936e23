"""The layering of twinsr.sr: no import cycle, leaves stay leaves, the core never imports physics.

Every import statement of every module counts, also those inside functions (a lazy import is
still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import twinsr.sr

SR = Path(twinsr.sr.__file__).parent
CORE = ("bundle", "config", "data", "database", "infer", "network", "objectives", "symmetry",
        "targets", "threshold", "train")


def _imports(path: Path) -> set[str]:
    """Every module named by an import in ``path`` (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _sr_graph() -> dict[str, set[str]]:
    graph = {}
    for p in SR.glob("*.py"):
        if p.stem == "__init__":
            continue
        graph[p.stem] = {n.split(".")[2] for n in _imports(p)
                         if n.startswith("twinsr.sr.") and n.count(".") >= 2}
    return graph


def test_core_modules_never_import_physics() -> None:
    graph = _sr_graph()
    assert set(CORE) | {"physics"} <= set(graph)
    offenders = {m: deps for m, deps in graph.items() if m in CORE and "physics" in deps}
    assert not offenders


def test_modules_import_only_earlier_layers() -> None:
    """The order documented in twinsr/sr/__init__.py."""
    order = ["targets", "symmetry", "cards", "tracking", "network", "runtime", "tta", "threshold", "data",
             "objectives", "config", "database", "finetune", "bundle", "engine", "infer", "train",
             "pretrained", "physics"]
    graph = _sr_graph()
    assert sorted(graph) == sorted(order)
    for m, deps in graph.items():
        later = {d for d in deps if order.index(d) >= order.index(m)}
        assert not later, (m, later)


def test_no_import_cycle_in_sr() -> None:
    graph = _sr_graph()
    state: dict[str, int] = {}

    def visit(m: str, path: tuple[str, ...]) -> None:
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join((*path, m))}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            visit(d, (*path, m))
        state[m] = 2

    for m in sorted(graph):
        visit(m, ())


def test_leaf_modules_import_only_the_basics() -> None:
    allowed = {
        "symmetry": {"__future__", "itertools", "collections.abc", "dataclasses", "functools",
                     "numpy", "scipy.ndimage", "twinsr._validation", "twinsr.exceptions"},
        "targets": {"__future__", "collections.abc", "dataclasses", "typing",
                    "twinsr.exceptions"},
    }
    for mod, ok in allowed.items():
        extra = _imports(SR / f"{mod}.py") - ok
        assert not extra, (mod, extra)


def test_registered_target_kinds() -> None:
    from twinsr.sr import target_kind, target_kinds

    assert target_kinds() == ("morph", "morph+diffu")
    assert target_kind("morph").out_channels == 1 and not target_kind("morph").needs_hr_solution
    assert target_kind("morph+diffu").needs_hr_solution


def test_unknown_targets_list_the_known_kinds() -> None:
    import pytest

    from twinsr.exceptions import ConfigError
    from twinsr.sr import TrainConfig, target_kind

    with pytest.raises(ConfigError, match=r"unknown targets 'diffu'; known target kinds: "
                                          r"'morph', 'morph\+diffu'"):
        target_kind("diffu")
    with pytest.raises(ConfigError, match=r"targets: .*known target kinds: 'morph'"):
        TrainConfig.from_dict({"targets": "diffu"})
