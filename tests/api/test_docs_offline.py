"""/docs and /redoc are served offline: assets from the installed package, no external URL in
the pages, a CSP that allows nothing from outside; CHIPLEDGER_DOCS=off serves none of it."""

import re

from fastapi.testclient import TestClient

from api.app import create_app
from infra.bootstrap import Container
from infra.settings import DocsMode

EXTERNAL = re.compile(r"""(?:src|href|url)\s*[=:(]\s*['"]?(?:https?:)?//""", re.I)


def test_the_pages_name_no_external_url_and_forbid_any(client):
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert not EXTERNAL.search(response.text), response.text
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "http" not in policy  # no source outside this server
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_the_assets_come_from_the_server(client):
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 100_000  # the real bundle, not a placeholder


def test_docs_off_serves_neither_document_nor_pages(container: Container):
    settings = container.settings.model_copy(update={"docs": DocsMode.OFF})
    container.settings = settings
    with TestClient(create_app(container=container)) as off:
        for path in ("/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui.css"):
            assert off.get(path).status_code == 404, path
