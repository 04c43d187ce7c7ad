"""The import rules import-linter cannot state: no import circle between our modules, and no
module importing another's private (`_name`) names. The layers themselves are contracts in
.importlinter, checked by `lint-imports` in `make test`."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "streaming", "jobs", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], bool]]:
    """(module imported, names taken from it, at module level?) for each import of ours."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            target = node.module
            names = [a.name for a in node.names]
            # `from common.trading import execution_engine` imports a module, not a name
            sub = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for module in sub:
                found.append((module, [], id(node) in top_level))
            if target in modules:
                found.append((target, [n for n in names if f"{target}.{n}" not in modules], id(node) in top_level))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.append((alias.name, [], id(node) in top_level))
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every import, in a function too: an import moved into a function to dodge a circle is
    still the circle."""
    return {name: {target for target, _, _ in imports_of(path, modules) if target != name}
            for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def private_imports(modules: dict[str, Path]) -> list[str]:
    return [f"{name} imports {target}.{n}" for name, path in sorted(modules.items())
            for target, names, _ in imports_of(path, modules) for n in names
            if n.startswith("_") and not n.startswith("__") and target != name]


def test_no_import_circle_between_our_modules():
    assert circles(import_graph(our_modules())) == []


def test_no_module_imports_another_modules_private_names():
    assert private_imports(our_modules()) == []


def test_the_checks_see_a_circle_and_a_private_import(tmp_path):
    """The checks themselves: a circle of two and a private import in a made-up graph are found."""
    assert circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    probe = tmp_path / "probe.py"
    probe.write_text("from common.trading.trading_store import _dec\n")
    assert private_imports({**our_modules(), "jobs.probe": probe}) == [
        "jobs.probe imports common.trading.trading_store._dec"]
