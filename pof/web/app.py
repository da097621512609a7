"""``create_app(DATASET)``: the FastAPI application of ``pof serve``.

Pages are rendered on the server (Jinja2, one CSS file, a few lines of JavaScript); the JSON
API under ``/api/`` mirrors them and is described at ``/api/openapi.json`` (for a token). Every route checks
the caller's role; every error is rendered by one handler (``pof.web.errors``).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..accounts import User
from . import admin_routes, auth, gallery_routes, review_routes, search_routes, unknown_routes
from .errors import install, render_error
from .state import HERE, WebConfig, WebState

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def create_app(dataset: str | Path, config: WebConfig | None = None) -> FastAPI:
    """The web app over one dataset (its catalog gets the app's tables on first start).

    ``config``: ``WebConfig`` (rate limits, upload limits, the password hasher; defaults are
    for production). Raises DatasetError if ``dataset`` has no catalog."""
    state = WebState(Path(dataset), config or WebConfig())
    app = FastAPI(title="pof", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Search, review and browse a pof face dataset. Candidates are "
                              "leads with their false-match rate, never verdicts.")
    app.state.web = state
    install(app)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Refuse oversized requests; add security headers to every response."""
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > state.config.max_request_bytes:
            response = render_error(request, 413, f"request over {state.config.max_request_bytes // 2**20} MiB")
        else:
            response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (auth, search_routes, review_routes, gallery_routes, unknown_routes, admin_routes):
        app.include_router(module.router)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(user: User = Depends(auth.api())) -> JSONResponse:
        """The API's OpenAPI description (for any signed-in token)."""
        return JSONResponse(app.openapi())

    return app
