"""The layout's rules, read from the source with `ast` (architecture.md, style.md; issue 12):

- layers: `domain` <- `projections` <- `infra` <- `api`. A module imports only from its own layer
  or the layers to its left, counting imports inside functions too; `domain` imports nothing
  but the standard library, pydantic and eventsourcing's domain, application and persistence;
- the database drivers (`sqlite3`, `psycopg`) are imported only in the backend folders
  (`infra/postgres/`, `infra/sqlite/`) and in `infra/bootstrap.py`, which chooses the backend;
- no module is over 400 lines, and the median function of each package is at most 8 lines.

Offenders of today that other branches are fixing stand in PENDING, each by exact name. A PENDING
entry that no longer offends fails the test too, so the list can only shrink.
"""

import ast
import statistics
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("domain", "projections", "infra", "api")
FIRST_PARTY = {*LAYERS, "bench", "tests"}
# What the pure core may use beside the standard library: pydantic (with its own core, whose
# errors domain.types raises) and eventsourcing's core modules, not its database recorders.
DOMAIN_ALLOWS = ("pydantic", "pydantic_core", "eventsourcing.domain", "eventsourcing.application",
                 "eventsourcing.persistence")
DRIVERS = ("sqlite3", "psycopg", "psycopg_pool")
DRIVER_PLACES = ("infra.postgres", "infra.sqlite", "infra.bootstrap")
MAX_MODULE_LINES = 400
MAX_MEDIAN_FUNCTION_LINES = 8
Finding = TypeVar("Finding", str, tuple[str, str])

# PENDING: today's offenders, each removed by the branch that fixes it (issue 12). The lead
# empties these as those branches merge; an entry that no longer offends fails the test.
PENDING_LAYERING: set[tuple[str, str]] = set()  # (module, what it imports)
PENDING_DRIVERS: set[tuple[str, str]] = set()  # (module, driver)
PENDING_OVERSIZED: set[str] = set()  # modules over 400 lines (issue 12, "Big rooms")
PENDING_MEDIANS: set[str] = set()  # packages whose median function is over 8 lines


@dataclass(frozen=True)
class Module:
    name: str  # dotted, as imported: "infra.store", "domain" for domain/__init__.py
    path: Path
    source: str

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def tree(self) -> ast.Module:
        return ast.parse(self.source, filename=str(self.path))


def modules_under(root: Path, packages: Iterable[str] = LAYERS) -> list[Module]:
    """Every module of `packages` below `root`, by the name it is imported as."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append(Module(name, path, path.read_text()))
    return found


def imports_of(module: Module) -> Iterator[str]:
    """The dotted name of everything `module` imports, anywhere in it (functions too), with
    relative imports resolved; `from a import b` yields `a.b` (b may be a module)."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            yield from (f"{base}.{alias.name}" if alias.name != "*" else base
                        for alias in node.names)


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package = package[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _is_within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def layering_violations(modules: Iterable[Module]) -> set[tuple[str, str]]:
    """(module, import) for each import that reaches a layer to the right of the module's own,
    and for each import of `domain` beyond what the pure core may use."""
    found = set()
    for module in modules:
        layer = module.name.split(".")[0]
        allowed = LAYERS[:LAYERS.index(layer) + 1]
        for imported in imports_of(module):
            top = imported.split(".")[0]
            if top in FIRST_PARTY:
                ok = top in allowed
            elif layer == "domain":
                ok = top in sys.stdlib_module_names or _is_within(imported, DOMAIN_ALLOWS)
            else:
                ok = True
            if not ok:
                found.add((module.name, _top_module(imported, top)))
    return found


def _top_module(imported: str, top: str) -> str:
    """What to name in a finding: the first-party module, or the third-party package (with
    eventsourcing's module, whose core modules domain may use)."""
    if top in FIRST_PARTY or top == "eventsourcing":
        return ".".join(imported.split(".")[:2])
    return top


def driver_violations(modules: Iterable[Module]) -> set[tuple[str, str]]:
    """(module, driver) for each database driver imported outside the backend folders."""
    return {(module.name, imported.split(".")[0])
            for module in modules if not _is_within(module.name, DRIVER_PLACES)
            for imported in imports_of(module) if imported.split(".")[0] in DRIVERS}


def oversized(modules: Iterable[Module]) -> set[str]:
    return {module.name for module in modules
            if len(module.source.splitlines()) > MAX_MODULE_LINES}


def function_lengths(module: Module) -> Iterator[int]:
    """Lines from each function's `def` to its last line, methods and nested ones too."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield (node.end_lineno or node.lineno) - node.lineno + 1


def median_function_lines(modules: Iterable[Module]) -> dict[str, float]:
    """Each package's median function length."""
    lengths: dict[str, list[int]] = {}
    for module in modules:
        lengths.setdefault(module.name.split(".")[0], []).extend(function_lengths(module))
    return {package: statistics.median(found) for package, found in lengths.items() if found}


def over_median(modules: Iterable[Module]) -> set[str]:
    return {package for package, median in median_function_lines(modules).items()
            if median > MAX_MEDIAN_FUNCTION_LINES}


def _assert_only_pending(found: set[Finding], pending: set[Finding], rule: str) -> None:
    new, fixed = found - pending, pending - found
    assert not new, f"{rule}: {sorted(new)}"
    assert not fixed, f"{rule} no longer: {sorted(fixed)}; remove them from its PENDING list"


# The rules, on this repository ----------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> list[Module]:
    return modules_under(ROOT)


def test_the_checker_reads_every_layer(source: list[Module]) -> None:
    # A rule over nothing passes: make sure the modules are there to be checked.
    assert {module.name.split(".")[0] for module in source} == set(LAYERS)
    assert len(source) > 40


def test_a_module_imports_only_its_own_layer_or_the_layers_to_its_left(
    source: list[Module],
) -> None:
    _assert_only_pending(layering_violations(source), PENDING_LAYERING,
                         "imports against domain <- projections <- infra <- api")


def test_only_the_backend_folders_and_bootstrap_import_a_database_driver(
    source: list[Module],
) -> None:
    _assert_only_pending(driver_violations(source), PENDING_DRIVERS,
                         "database drivers imported outside infra/postgres/, infra/sqlite/ "
                         "and infra/bootstrap.py")


def test_no_module_is_over_400_lines(source: list[Module]) -> None:
    _assert_only_pending(oversized(source), PENDING_OVERSIZED, "modules over 400 lines")


def test_the_median_function_of_each_package_is_at_most_8_lines(source: list[Module]) -> None:
    _assert_only_pending(over_median(source), PENDING_MEDIANS,
                         f"packages whose median function is over 8 lines "
                         f"({median_function_lines(source)})")


# The checker flags what it should, on a synthetic tree -----------------------------------------


def _write(root: Path, files: dict[str, str]) -> list[Module]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return modules_under(root)


def test_the_checker_flags_imports_against_the_layers_even_inside_functions(tmp_path: Path) -> None:
    modules = _write(tmp_path, {
        "domain/__init__.py": "",
        "domain/rules.py": "import json\nfrom pydantic import BaseModel\n"
                           "from eventsourcing.domain import Aggregate\n"
                           "def late():\n    from infra import store\n",
        "domain/records.py": "import httpx\nfrom eventsourcing.postgres import Factory\n"
                             "from .rules import late\n",
        "projections/__init__.py": "",
        "projections/findings.py": "from domain.rules import late\nfrom ..api import app\n",
        "infra/__init__.py": "from . import store\n",
        "infra/store.py": "import psycopg\nfrom projections import findings\n",
        "api/__init__.py": "",
        "api/app.py": "import fastapi\nfrom infra.store import x\nfrom tests.data import LEASE\n",
    })
    assert layering_violations(modules) == {
        ("domain.rules", "infra.store"),
        ("domain.records", "httpx"),
        ("domain.records", "eventsourcing.postgres"),
        ("projections.findings", "api.app"),
        ("api.app", "tests.data"),
    }


def test_the_checker_flags_drivers_outside_the_backend_folders(tmp_path: Path) -> None:
    modules = _write(tmp_path, {
        "domain/__init__.py": "", "projections/__init__.py": "", "api/__init__.py": "",
        "infra/__init__.py": "",
        "infra/store.py": "def probe():\n    import sqlite3\n",
        "infra/runner.py": "from psycopg.errors import LockNotAvailable\n",
        "infra/bootstrap.py": "import sqlite3\nimport psycopg\n",
        "infra/postgres/recorder.py": "import psycopg\nimport psycopg_pool\n",
        "infra/sqlite/__init__.py": "import sqlite3\n",
        "infra/postgresql_notes.py": "import psycopg\n",  # a name that only starts alike
    })
    assert driver_violations(modules) == {
        ("infra.store", "sqlite3"), ("infra.runner", "psycopg"),
        ("infra.postgresql_notes", "psycopg"),
    }


def test_the_checker_flags_a_long_module_and_a_package_of_long_functions(tmp_path: Path) -> None:
    short = "def short():\n    return 1\n"
    long = "def long():\n" + "    x = 1\n" * 12 + "    return x\n"
    modules = _write(tmp_path, {
        "domain/__init__.py": "", "projections/__init__.py": "", "api/__init__.py": "",
        "domain/big.py": "x = 1\n" * 401,
        "domain/fits.py": "x = 1\n" * 400,
        "domain/funcs.py": short * 3,
        "infra/__init__.py": short + long * 2,
    })
    assert oversized(modules) == {"domain.big"}
    assert median_function_lines(modules) == {"domain": 2, "infra": 14}
    assert over_median(modules) == {"infra"}


def test_a_pending_entry_that_no_longer_offends_fails() -> None:
    with pytest.raises(AssertionError, match="remove them from its PENDING list"):
        _assert_only_pending({"infra.store"}, {"infra.store", "infra.webhooks"}, "modules")
    with pytest.raises(AssertionError, match=r"modules: \['api.cli'\]"):
        _assert_only_pending({"api.cli"}, set(), "modules")
