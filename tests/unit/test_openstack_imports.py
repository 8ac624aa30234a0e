"""The import rules of the openstack package, checked on the source (every import, lazy ones too)."""
import ast
import subprocess
import sys
from pathlib import Path

import stackfleet

SRC = Path(stackfleet.__file__).resolve().parent
PACKAGE = "stackfleet.openstack"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules a file imports (`from P import m` counts as P.m if m is one)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    this = module_name(path).split(".")
    if path.name != "__init__.py":
        this = this[:-1]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(this[:len(this) - node.level + 1] + ([base] if base else []))
            found.add(base)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if (SRC.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                    found.add(candidate)
    return found


def openstack_graph() -> dict[str, set[str]]:
    files = sorted((SRC / "openstack").glob("*.py"))
    names = {module_name(f) for f in files}
    return {module_name(f): {m for m in imports_of(f) if m in names} for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_no_openstack_module_imports_the_cli():
    offenders = {module_name(f): sorted(m for m in imports_of(f) if m.startswith("stackfleet.cli"))
                 for f in (SRC / "openstack").glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_circle_inside_openstack():
    assert find_cycle(openstack_graph()) is None


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_service_table_imports_only_the_standard_library():
    # scripts/install-openstack runs it with the system python3, before any venv exists.
    for name in ("openstack/services.py", "openstack/__init__.py", "__init__.py"):
        outside = {m for m in imports_of(SRC / name, top_level_only=True)
                   if m.split(".")[0] not in sys.stdlib_module_names}
        assert outside == set(), name


def test_discovery_and_the_service_table_load_no_grpc():
    code = ("import sys, stackfleet.discovery, stackfleet.openstack.services; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'aetcd', 'cryptography')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC.parent)})
    assert out.stdout.strip() == "[]"
