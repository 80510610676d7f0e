"""The sandbox as an ASGI application: mounted at /sandbox by `make run`, or on its own port."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from sendwell.sandbox import admin, google, microsoft, signin
from sendwell.sandbox.state import SandboxState

MOUNT_PATH = "/sandbox"
CSS = Path(__file__).parent / "templates" / "sandbox.css"


def create_sandbox_app(state: SandboxState | None = None, *, admin_token: str = "") -> FastAPI:
    """Every emulated endpoint, rooted where it is mounted.

    The admin endpoints answer loopback callers, and others only with `admin_token`.
    """
    state = state or SandboxState()
    app = FastAPI(
        title="Sendwell sandbox providers", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.sandbox = state
    app.include_router(signin.build_router(state))
    app.include_router(google.build_router(state))
    app.include_router(microsoft.build_router(state))
    app.include_router(admin.build_router(state, admin_token))

    @app.get("/assets/sandbox.css", include_in_schema=False)
    def stylesheet() -> FileResponse:
        return FileResponse(CSS, media_type="text/css")

    return app


def create_standalone_app(state: SandboxState | None = None, *, admin_token: str = "") -> FastAPI:
    """The sandbox alone, under the same /sandbox path it has inside Sendwell."""
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    outer.mount(MOUNT_PATH, create_sandbox_app(state, admin_token=admin_token))
    return outer
