"""Package layering: physics/ never imports data/; the shared Trajectory type imports neither.

The simulators produce trajectories and the datasets read them, so the type they share lives in
``graphdyn.trajectory``; ``data/simulated.py`` may use the simulators (data -> physics), never the
reverse, so the two packages cannot import each other in a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import graphdyn

ROOT = Path(graphdyn.__file__).parent


def module_name(path: Path) -> str:
    """``graphdyn.physics.generate`` for ROOT/physics/generate.py, ``graphdyn.physics`` for its __init__.py."""
    parts = ("graphdyn",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` (the text of ``module``) imports, anywhere in
    the file (also inside functions); relative imports resolved against ``module``'s package."""
    package = module if is_package else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def file_imports(path: Path) -> set[str]:
    return imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")


def _imports_package(names: set[str], package: str) -> list[str]:
    return sorted(n for n in names if n == package or n.startswith(package + "."))


def test_imported_modules_sees_absolute_relative_and_function_level_imports():
    assert "graphdyn.trajectory.Trajectory" in file_imports(ROOT / "physics" / "generate.py")
    source = "import numpy\n\ndef f():\n    from ..data import windows\n    import graphdyn.data.md17\n    from . import springs\n"
    names = imported_modules(source, "graphdyn.physics.x")
    assert _imports_package(names, "graphdyn.data") == ["graphdyn.data", "graphdyn.data.md17", "graphdyn.data.windows"]
    assert "graphdyn.physics.springs" in names
    assert _imports_package(imported_modules("from .. import data\n", "graphdyn.physics", is_package=True), "graphdyn.data") == ["graphdyn.data"]


def test_physics_never_imports_data():
    files = sorted((ROOT / "physics").rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): _imports_package(file_imports(f), "graphdyn.data") for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_shared_trajectory_module_imports_neither_package():
    names = file_imports(ROOT / "trajectory.py")
    assert _imports_package(names, "graphdyn.data") == [] and _imports_package(names, "graphdyn.physics") == []


def test_importing_physics_loads_no_data_module():
    code = "import sys, graphdyn.physics; print(sorted(m for m in sys.modules if m.startswith('graphdyn.data')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_old_import_path_is_the_same_type():
    from graphdyn import Trajectory as top
    from graphdyn.data.trajectory import Trajectory as old
    from graphdyn.trajectory import Trajectory as new

    assert old is new is top
