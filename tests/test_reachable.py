"""Every module the product ships is reached from its entry points.

The entry points are ``python -m monitor`` (``monitor/__main__.py``) and the console
script of ``pyproject.toml`` (``driftwatch = "monitor.cli:main"``).  From them the
static imports are followed -- ``import x``, ``from x import y`` (``y`` a submodule
counts as one), relative imports, and imports inside functions, which is how the
CLI loads the daemon and the demo lazily.  A module in ``monitor/``, ``detectors/``
or ``alerts/`` that no chain of imports reaches is code the daemon never runs: wire
it in, or move it out (``benchmarks/research/lib/`` holds what only the research
scripts use).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "detectors", "alerts")


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the packages."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> set[str]:
    """Every module name ``path`` (the module ``name``) imports, anywhere in it.

    ``from a import b`` yields ``a`` and ``a.b`` (the caller keeps only names that
    are modules); a relative import is resolved against the module's package.
    """
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join([*base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            out.add(stem)
            out.update(f"{stem}.{alias.name}" for alias in node.names)
    return out


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the known modules it imports (a dotted import also runs every
    package ``__init__`` on its way)."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        for imported in imported_names(name, path):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known:
                    targets.add(prefix)
        graph[name] = targets
    return graph


def unreachable(graph: dict[str, set[str]], entry_points: Iterable[str]) -> set[str]:
    """The modules of ``graph`` no chain of imports from ``entry_points`` reaches."""
    seen: set[str] = set()
    todo = list(entry_points)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        todo.extend(graph.get(name, ()))
    return set(graph) - seen


def entry_points(root: Path) -> list[str]:
    """``monitor.__main__`` and every console script's module from pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    scripts = [target.split(":")[0] for target in project.get("scripts", {}).values()]
    return ["monitor.__main__", *scripts]


def test_every_product_module_is_reached_from_the_entry_points():
    known = modules(ROOT, PACKAGES)
    entries = entry_points(ROOT)
    assert "monitor.cli" in entries and all(e in known for e in entries), entries
    assert len(known) > 50  # the walk really saw the packages
    left = unreachable(import_graph(known), entries)
    assert not left, (
        f"never imported from {entries}: {sorted(left)} -- wire them in or move them to "
        "benchmarks/research/lib/")


def test_the_check_follows_every_kind_of_import_and_finds_an_orphan(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "__main__.py": "from pkg import cli\n",
        "cli.py": "def main():\n    from . import lazy  # a function-level relative import\n",
        "lazy.py": "import pkg.sub.deep\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from ..util import helper\n",
        "util.py": "def helper():\n    pass\n",
        "orphan.py": "import pkg.util\n",  # imports others, imported by nobody
        "sub/orphan2.py": "",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph = import_graph(modules(tmp_path, ["pkg"]))
    assert graph["pkg.cli"] == {"pkg", "pkg.lazy"}
    assert graph["pkg.sub.deep"] == {"pkg", "pkg.util"}
    assert unreachable(graph, ["pkg.__main__"]) == {"pkg.orphan", "pkg.sub.orphan2"}
    # wiring the orphan in from a function clears it
    (pkg / "util.py").write_text("def helper():\n    import pkg.orphan\n")
    graph = import_graph(modules(tmp_path, ["pkg"]))
    assert unreachable(graph, ["pkg.__main__"]) == {"pkg.sub.orphan2"}


def test_the_moved_research_detectors_would_be_caught_in_the_product():
    """A copy of the repo's packages plus one module nothing imports fails the check:
    what detectors/sequential.py was before it moved to benchmarks/research/lib/."""
    known = modules(ROOT, PACKAGES)
    graph = import_graph(known)
    graph["detectors.sequential"] = set()
    assert unreachable(graph, entry_points(ROOT)) == {"detectors.sequential"}
