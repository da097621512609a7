"""``create_app(DATASET)``: the FastAPI application of ``pof serve``.

Pages are rendered on the server (Jinja2, one CSS file, a few lines of JavaScript); the JSON
API under ``/api/`` mirrors them and is described at ``/api/openapi.json`` (for a token). Every route checks
the caller's role; every error is rendered by one handler (``pof.web.errors``). In front of
every route, ``pof.web.guard`` authenticates, bounds and times a request before its body is read.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from pof import __version__
from pof.casework.accounts import User
from pof.web import admin_routes, auth, case_routes, gallery_routes, review_routes, search_routes, unknown_routes
from pof.web.errors import install
from pof.web.guard import Guard, Transport, keep_uploads_in_memory, largest_body
from pof.web.state import HERE, WebConfig, WebState


def create_app(dataset: str | Path, config: WebConfig | None = None,
               transport: Transport | None = None) -> FastAPI:
    """The web app over one dataset (its catalog gets the app's tables on first start).

    ``config``: ``WebConfig`` (rate limits, upload limits, the password hasher; defaults are
    for production). ``transport``: ``pof.web.guard.Transport`` (body limits of forms, the
    body read timeout). Raises DatasetError if ``dataset`` has no catalog."""
    state = WebState(Path(dataset), config or WebConfig())
    transport = transport or Transport()
    app = FastAPI(title="pof", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Search, review and browse a pof face dataset. Candidates are "
                              "leads with their false-match rate, never verdicts.")
    app.state.web = state
    install(app)

    # authenticate, bound and time every body before a route reads it; uploads stay in memory
    app.add_middleware(Guard, transport=transport)
    keep_uploads_in_memory(largest_body(state.config, transport))

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (auth, search_routes, review_routes, case_routes, gallery_routes, unknown_routes,
                   admin_routes):
        app.include_router(module.router)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(user: User = Depends(auth.api())) -> JSONResponse:
        """The API's OpenAPI description (for any signed-in token)."""
        return JSONResponse(app.openapi())

    return app
