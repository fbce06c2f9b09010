"""Every path of docs/api.md is served, and written out in api/routes/ (a router's prefix plus
a route's path, as literals), so searching for a path's last segments finds its handler."""

import ast
import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Match

from api.app import create_app
from domain.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]
_METHOD_PATH = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^\s`?]*)`(?: and `(/[a-z-]+)`)?")
_PARAMETER = re.compile(r"\{[^}]*\}")


def _shape(path: str) -> str:
    """A path with every parameter as {}: docs say {id}, routes {record_id} or {firm_id}."""
    return _PARAMETER.sub("{}", path)


def documented() -> set[tuple[str, str]]:
    """(method, path) of every endpoint api.md names, {kind} spelled out for each kind."""
    found = set()
    for method, path, sibling in _METHOD_PATH.findall((ROOT / "docs/api.md").read_text()):
        paths = [path] + ([path.rsplit("/", 1)[0] + sibling] if sibling else [])
        for one in paths:
            kinds = [s.collection for s in KINDS.values()] if "{kind}" in one else [""]
            found |= {(method, _shape(one.replace("{kind}", k))) for k in kinds}
    return found


def served() -> set[tuple[str, str]]:
    spec = create_app().openapi()
    return {(method.upper(), _shape(path)) for path, methods in spec["paths"].items()
            for method in methods}


def answers(app: Starlette, method: str, shape: str) -> bool:
    """Whether a route of `app` fully matches `method` on `shape` (its parameters filled):
    the workbench's pages are routes outside the OpenAPI document."""
    scope = {"type": "http", "method": method, "path": shape.replace("{}", "x1"),
             "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in app.routes)


def written_out(*folders: str) -> set[str]:
    """Every prefix + literal of each module of `folders` (api/routes/), as a path shape."""
    shapes = set()
    for module in (m for f in folders or ("api/routes",) for m in (ROOT / f).glob("*.py")):
        tree = ast.parse(module.read_text())
        literals = {n.value for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        prefixes = {k.value.value for n in ast.walk(tree) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "APIRouter" for k in n.keywords
                    if k.arg == "prefix" and isinstance(k.value, ast.Constant)} or {""}
        shapes |= {_shape(p + lit) for p in prefixes | {""} for lit in literals
                   if lit.startswith("/")}
    return shapes


def test_the_documentation_names_the_endpoints_it_is_checked_against() -> None:
    paths = documented()
    assert len(paths) >= 60
    assert ("POST", "/v1/leases/{}/amendments") in paths
    assert ("POST", "/v1/data-centres/{}/corrections") in paths
    assert ("GET", "/v1/shipments/{}/history") in paths


def test_every_documented_path_is_served() -> None:
    app = create_app()
    assert {(m, p) for m, p in documented() - served() if not answers(app, m, p)} == set()


@pytest.mark.parametrize("path", sorted({p for _, p in documented()}))
def test_every_documented_path_is_written_out_in_the_routes(path: str) -> None:
    # The API's paths are in api/routes/; the workbench's pages (/ui/) in api/workbench/.
    assert path in (written_out("api/workbench") if path.startswith("/ui/") else written_out())


def test_every_served_path_is_written_out_in_the_routes() -> None:
    openapi = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    routes = written_out("api/routes", "api/workbench")
    assert {p for _, p in served()} - openapi - routes == set()


def test_a_path_not_written_out_is_found_missing() -> None:
    assert "/v1/leases/{}/renewals" not in written_out()


def test_a_page_not_served_is_found_missing() -> None:
    app = create_app()
    assert answers(app, "POST", "/ui/logout")
    assert not answers(app, "POST", "/ui/renewals")
    assert not answers(app, "DELETE", "/ui/logout")
