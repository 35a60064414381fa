"""The seams of :mod:`soilclay.earthengine`, read with ``ast`` (function-level imports too): it
depends on no stage, ``ee`` is imported only by it and the Earth Engine backends (never at the top
of a DAG or plugin file), and scenes and composites reach Earth Engine without importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "soilclay" / "earthengine"
#: Files that may import ``ee`` (at all); the plugin hook only inside a function.
EE_USERS = {"soilclay/composites/earthengine.py", "soilclay/composites/live_parity.py",
            "soilclay/scenes/earthengine.py", "soilclay/features/earthengine.py",
            "plugins/soilclay_airflow/hooks/earthengine.py"}


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def sources() -> list[Path]:
    return sorted(p for d in ("soilclay", "dags", "plugins") for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def imports_ee(names: set[str]) -> bool:
    return any(n == "ee" or n.startswith("ee.") for n in names)


def test_the_package_imports_nothing_of_soilclay_but_errors():
    for path in PACKAGE.glob("*.py"):
        own = {n for n in imports(path) if n.split(".")[0] == "soilclay"}
        wrong = {n for n in own if not n.startswith(("soilclay.errors", "soilclay.earthengine"))}
        assert wrong == set(), path.name


def test_ee_is_imported_only_by_the_package_and_the_backends_never_at_dag_or_plugin_top_level():
    users = {str(p.relative_to(ROOT)) for p in sources() if imports_ee(imports(p)) and PACKAGE not in p.parents}
    assert users <= EE_USERS
    for path in sources():
        if path.parts[len(ROOT.parts)] in ("dags", "plugins"):
            assert not imports_ee(imports(path, top_level_only=True)), path
    pure = {"errors.py", "assets.py", "operations.py", "__init__.py"}  # imported by the triggerer and DAG files
    assert {p.name for p in PACKAGE.glob("*.py") if imports_ee(imports(p, top_level_only=True))} & pure == set()


def test_scenes_and_composites_reach_earth_engine_without_each_other():
    for stage, other in (("scenes", "soilclay.composites"), ("composites", "soilclay.scenes")):
        names = imports(ROOT / "soilclay" / stage / "earthengine.py")
        assert not any(n.startswith(other) for n in names), stage
        assert any(n.startswith("soilclay.earthengine") for n in names), stage
    for path in (ROOT / "soilclay" / "scenes").glob("*.py"):
        assert not any(n.startswith("soilclay.composites") for n in imports(path)), path.name
