"""The seams of the code base, checked: SQL only in ``soilclay/db/``, no import cycle between
soilclay's packages, and the infrastructure below the pipeline's stages never importing them.

Imports are read with ``ast`` (function-level ones too, since a cycle through a lazy import is still
a cycle of design), so nothing here imports the code it checks.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "soilclay", ROOT / "dags", ROOT / "plugins"]
DB = ROOT / "soilclay" / "db"
#: Below the stages: may import each other (no cycle) but no stage and no application package.
INFRASTRUCTURE = {"errors", "redact", "settings", "contract", "io", "db", "earthengine"}
#: The pipeline's stages in order, then the packages that drive them.
STAGES = {"scenes", "composites", "features", "samples", "parcels", "model", "serving", "predict"}
APPLICATIONS = {"cli", "demo", "stack", "testing", "monitoring", "ui"}

#: SQL in a string literal: a statement's opening words, as SQL is written in this code base.
SQL = re.compile(r"\b(SELECT\s+[\w*(]|INSERT\s+INTO|UPDATE\s+\w+(\.\w+)?\s+SET|DELETE\s+FROM|CREATE\s+"
                 r"(TABLE|DATABASE|INDEX|EXTENSION|VIEW)|ALTER\s+TABLE|DROP\s+(TABLE|DATABASE)|pg_advisory)")
#: The driver's SQL and error modules: only the database layer uses them.
DRIVER = re.compile(r"^\s*(from\s+sqlalchemy(\.exc)?\s+import\s+.*\b(text|IntegrityError|DataError|OperationalError|"
                    r"InternalError|DBAPIError)\b|import\s+sqlalchemy\.exc|from\s+sqlalchemy\.exc\s+import)", re.M)


def _files() -> list[Path]:
    return sorted(p for root in SOURCES for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _strings(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.STRING]


def sql_outside_db() -> list[str]:
    found = []
    for path in _files():
        if DB in path.parents:
            continue
        rel = path.relative_to(ROOT)
        found += [f"{rel}:{line}: {text.strip()[:60]}" for line, text in _strings(path) if SQL.search(text)]
        found += [f"{rel}: {m.group(0).strip()}" for m in DRIVER.finditer(path.read_text())]
    return found


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "soilclay" and len(parts) > 1 else None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def package_graph() -> dict[str, set[str]]:
    """soilclay's packages (and top-level modules) -> the ones they import."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "soilclay").rglob("*.py"):
        rel = path.relative_to(ROOT / "soilclay").with_suffix("")
        if len(rel.parts) == 1 and rel.parts[0] in ("__init__",):
            continue
        own = rel.parts[0]
        targets = {_package_of(m) for m in _imports(path)} - {None, own}
        graph.setdefault(own, set()).update(t for t in targets if (ROOT / "soilclay" / t).exists()
                                             or (ROOT / "soilclay" / f"{t}.py").exists())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_sql_outside_the_database_layer():
    assert sql_outside_db() == []


def test_no_import_cycle_between_packages():
    assert cycles(package_graph()) == []


def test_infrastructure_does_not_import_stages_or_applications():
    graph = package_graph()
    wrong = {p: sorted(graph.get(p, set()) & (STAGES | APPLICATIONS)) for p in INFRASTRUCTURE}
    assert {p: w for p, w in wrong.items() if w} == {}


def test_every_package_is_classified():
    assert set(package_graph()) - INFRASTRUCTURE - STAGES - APPLICATIONS == set()


# The checks themselves must catch what they are for.

def test_the_sql_check_sees_sql_in_strings_and_driver_imports(tmp_path, monkeypatch):
    bad = tmp_path / "soilclay" / "stage"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text('from sqlalchemy import Engine, text\nQ = "SELECT count(*) FROM soilclay.scenes"\n'
                              'D = f"UPDATE soilclay.parcels SET geom = {1}"\nOK = "select what to do"\n')
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "SOURCES", [tmp_path / "soilclay"])
    monkeypatch.setitem(globals(), "DB", tmp_path / "soilclay" / "db")
    found = sql_outside_db()
    assert len(found) == 3 and all(f.startswith("soilclay/stage/x.py") for f in found), found


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_the_cycle_check_finds_cycles(graph, expected):
    assert cycles(graph) == expected
