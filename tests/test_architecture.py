"""The parts of the instrument import each other in one direction only (docs/design.md, "Layout").

Read with ``ast`` from the source (nothing is imported): every ``import`` and ``from ... import``
of a module, wherever it stands (inside a function too), is checked against the rules, and every
offending import is named with its file and line.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.helpers import ROOT

# (the part whose modules are checked, the parts it must not import, why)
RULES = [
    ("instrument.model", ("instrument.live", "instrument.outputs", "instrument.training", "controllers", "instrument.web"),
     "the network knows nothing of performances, devices, training or controllers"),
    ("instrument.music", ("instrument.live", "instrument.outputs", "instrument.training", "controllers", "instrument.web"),
     "what tokens mean as music knows nothing of performances, devices, training or controllers"),
    ("instrument.live", ("instrument.training", "instrument.web"),
     "the live instrument never needs the trainer, nor the page that shows it"),
    ("instrument.outputs", ("instrument.live", "instrument.web", "instrument.training", "controllers"),
     "where notes go is below the live instrument: the engine hands outputs notes, never the reverse"),
    ("instrument.timing", ("instrument.live", "instrument.outputs", "instrument.training", "controllers", "instrument.web"),
     "the clock and the timing thread are the floor that live/ and outputs/ both stand on"),
    ("instrument.web", ("instrument.training",),
     "the web page shows the live instrument and hands what a page sends to the control cli/ gives it"),
]
ONLY_CLI_IMPORTS = "controllers"  # nothing in instrument/ but instrument.cli imports it


def modules() -> dict[str, Path]:
    """Every module of the package and the controllers, by dotted name."""
    out = {}
    for top in ("instrument", "controllers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in a module; relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def violations() -> list[str]:
    out = []
    for name, path in modules().items():
        where = path.relative_to(ROOT)
        for imported, line in imports(name, path):
            for part, banned, why in RULES:
                if within(name, part):
                    for ban in banned:
                        if within(imported, ban):
                            out.append(f"{where}:{line}: {name} imports {imported} ({why})")
            if within(imported, ONLY_CLI_IMPORTS) and within(name, "instrument") and not within(name, "instrument.cli"):
                out.append(f"{where}:{line}: {name} imports {imported} (only instrument.cli puts controllers in)")
    return sorted(set(out))


def circles() -> list[list[str]]:
    """Every set of modules that import each other round a circle (a type-only import counts: a
    shared type belongs in the module that owns it), each sorted; none is the rule."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        graph[name] = set()
        for imported, _ in imports(name, path):
            parts = imported.split(".")
            owner = next((".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in mods), None)
            if owner is not None and owner != name:
                graph[name].add(owner)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_modules_import_each_other_round_a_circle():
    assert circles() == []


def test_the_circle_check_names_two_modules_that_import_each_other_for_a_type(tmp_path, monkeypatch):
    """The check can fail: a type-only import back (under TYPE_CHECKING) closes a circle."""
    model = tmp_path / "instrument" / "model"
    model.mkdir(parents=True)
    (model / "a.py").write_text("from instrument.model.b import B\n")
    (model / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from instrument.model.a import A\n")
    (model / "c.py").write_text("from instrument.model.a import A\n")
    (tmp_path / "controllers").mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert circles() == [["instrument.model.a", "instrument.model.b"]]


def test_the_parts_import_each_other_in_one_direction_only():
    found = violations()
    assert not found, "\n".join(found)


def test_the_rule_check_names_an_offending_import(tmp_path, monkeypatch):
    """The check can fail: a model module that reaches up into the live instrument is named."""
    fake = tmp_path / "instrument" / "model"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("import numpy\n\ndef f():\n    from instrument.live import engine\n")
    (tmp_path / "controllers").mkdir()
    (tmp_path / "controllers" / "ok.py").write_text("from instrument.live.params import Parameters\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations() == [
        "instrument/model/bad.py:4: instrument.model.bad imports instrument.live "
        f"({RULES[0][2]})",
        "instrument/model/bad.py:4: instrument.model.bad imports instrument.live.engine "
        f"({RULES[0][2]})",
    ]


def test_the_rule_check_names_an_output_that_reaches_up_into_the_live_instrument(tmp_path, monkeypatch):
    """The check can fail for outputs: an output that takes a type from the live instrument is named,
    and one that takes it from the clock below both is not."""
    outputs = tmp_path / "instrument" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "bad.py").write_text("from instrument.live.engine import Engine\n")
    (outputs / "good.py").write_text("from instrument.timing import Scheduler, clock\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    why = next(why for part, _, why in RULES if part == "instrument.outputs")
    assert violations() == [
        f"instrument/outputs/bad.py:1: instrument.outputs.bad imports instrument.live.engine ({why})",
        f"instrument/outputs/bad.py:1: instrument.outputs.bad imports instrument.live.engine.Engine ({why})",
    ]
