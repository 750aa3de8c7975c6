"""The layout is the architecture: layers point one way and no two files import each other.

kernels <- shared bottom (errors, progress, timeline) <- engine <- storage <- app (and synth) <- bench / train
<- ui / cli. Every import counts, also those inside functions (lazy) and under TYPE_CHECKING: a lazy
import hides a circle from Python, not from a reader.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "omnivideo"

# rank of each top-level part: a module may import parts of its own rank or lower
RANKS = {"kernels": 0, "errors": 1, "progress": 1, "timeline": 1, "engine": 2, "storage": 3, "app": 4,
         "synth": 4, "bench": 5, "train": 5, "ui": 6, "cli": 6, "__main__": 6}
FORBIDDEN = {("ui", "cli")}   # same rank, but the browser app never imports the command line


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a.b.c -> a.b.c, else a.b, ...), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    """Project modules `module` imports anywhere in its file (absolute and relative imports)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule; `from mod import name` the module itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_part_has_a_rank():
    parts = {_part(m) for m in MODULES} - {None}
    assert parts <= set(RANKS), f"parts without a layer: {sorted(parts - set(RANKS))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    part = _part(module)
    if part is None:
        return
    wrong = []
    for target in sorted(GRAPH[module]):
        other = _part(target)
        if other is None:
            continue
        if part == "kernels" and other != "kernels":
            wrong.append(f"{target} (kernels import nothing of the project)")
        elif RANKS[other] > RANKS[part] or (part, other) in FORBIDDEN:
            wrong.append(f"{target} ({other} is above {part})")
    assert not wrong, f"{module} imports a layer above it: {wrong}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_circles():
    assert not (found := _cycles(GRAPH)), f"import circles: {found}"


def test_no_private_name_is_imported_across_files():
    private = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and _resolve(node.module or "") and node.module != module:
                private += [f"{module}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, private


def test_the_checker_sees_circles_and_lazy_imports():
    """The rules above are not vacuous: a circle is found, and the graph holds imports inside functions."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "omnivideo.ui.server" in GRAPH["omnivideo.cli.serve"]      # imported inside the command
    assert "omnivideo.app.app" in GRAPH["omnivideo.ui.app"]
    assert "omnivideo.engine.engine" in GRAPH["omnivideo.app.app"]
    assert any(_part(t) == "kernels" for t in GRAPH["omnivideo.engine.fused.vision_attention"])
