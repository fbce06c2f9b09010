"""Swagger UI at /docs and ReDoc at /redoc, offline: their scripts and styles come from the
`fastapi-offline` package (it ships swagger-ui-dist 5 and redoc 2), served under
/docs/assets, never from a CDN, and each page carries a Content-Security-Policy that lets it
load nothing from anywhere but this server. With CHIPLEDGER_DOCS=off the document and both
pages are not served at all (404)."""

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/docs/assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def csp(html: str) -> str:
    """Nothing from outside: scripts by their hash or from here; styles and images from here
    (Swagger UI and ReDoc set inline styles, and draw icons as data: URIs); ReDoc's search
    runs in a blob: worker."""
    scripts = " ".join(["'self'", *(_hash(s) for s in _INLINE_SCRIPT.findall(html))])
    return (f"default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _hash(script: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


def _page(response: HTMLResponse) -> HTMLResponse:
    html = bytes(response.body).decode()
    return HTMLResponse(html, headers={"Content-Security-Policy": csp(html)})


def install(app: FastAPI) -> None:
    """Serve the assets and both pages (the app is built with docs_url=redoc_url=None)."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    favicon = f"{PREFIX}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(get_swagger_ui_html(
            openapi_url="/openapi.json", title="chipledger API",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css", swagger_favicon_url=favicon))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(get_redoc_html(
            openapi_url="/openapi.json", title="chipledger API",
            redoc_js_url=f"{PREFIX}/redoc.standalone.js", redoc_favicon_url=favicon,
            with_google_fonts=False))
