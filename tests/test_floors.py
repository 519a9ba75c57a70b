"""The floors of gsoplib/__init__'s docstring, read from the syntax tree of every module
(function-level imports included): no import from a higher floor, no circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gsoplib

ROOT = Path(gsoplib.__file__).resolve().parent


def floors() -> dict[str, int]:
    """'ops' -> 1, ... from the docstring's "    N  name, name" lines."""
    table = {}
    for floor, names in re.findall(r"^    (\d)  (.+)$", gsoplib.__doc__, flags=re.M):
        for name in names.split(","):
            table[name.strip()] = int(floor)
    return table


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the gsoplib modules it imports, wherever in the file the import is."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = _module(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from pkg import submodule`` imports the submodule; ``from pkg import name``
                # the package (or module) that defines name
                candidates = [f"{target}.{a.name}" if _exists(f"{target}.{a.name}") else target
                              for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            known = {c for c in candidates if c.startswith("gsoplib") and _exists(c)}
            targets |= known
        graph[name] = targets - {name}
    return graph


def _exists(module: str) -> bool:
    path = ROOT.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _floor(module: str, table: dict[str, int]) -> int:
    if module == "gsoplib":
        return 0  # the package's docstring and version, nothing imported
    return table[module.split(".")[1].removesuffix(".py")]


def test_every_module_has_a_floor():
    table = floors()
    assert table["ops"] == 1 and table["cli"] == 5
    missing = sorted({m.split(".")[1] for m in imports() if m != "gsoplib"} - set(table))
    assert not missing, f"modules with no floor in gsoplib/__init__'s docstring: {missing}"


def test_no_module_imports_from_a_higher_floor():
    table, wrong = floors(), []
    for module, targets in imports().items():
        for target in targets:
            if _floor(target, table) > _floor(module, table):
                wrong.append(f"{module} (floor {_floor(module, table)}) imports {target} "
                             f"(floor {_floor(target, table)})")
    assert not wrong, wrong


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # importing a package runs its __init__: an edge to the package and from the
            # package to its own modules is how Python sees it
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_there_is_no_import_circle():
    assert _circle(imports()) is None, " -> ".join(_circle(imports()))


def test_the_checker_sees_a_circle_and_a_function_level_import(tmp_path):
    """The checks above could pass by seeing nothing: they see what they must."""
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None
    graph = imports()
    # gsoplib.train.log imports the figures inside a function
    assert "gsoplib.viz" in graph["gsoplib.train.log"]
