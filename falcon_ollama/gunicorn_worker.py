"""gunicorn's worker for our app: uvicorn's worker with the guarded HTTP protocol and the master's settings.

``gunicorn.conf.py`` names :class:`Worker` as ``worker_class`` and :func:`app` as ``wsgi_app``. Each worker
builds its app from the settings the master validated (inherited by the fork), not by reading the
environment and ``.env`` again: a file broken between the master's check and a worker's start, or before a
SIGHUP, can then never fail a worker's boot (which would make gunicorn halt the master).
"""

from __future__ import annotations

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from falcon_ollama.app import FalconOllamaApp, app_from_settings
from falcon_ollama.gunicorn_support import current_settings
from falcon_ollama.open_files import guarded_http_protocol


class Worker(UvicornWorker):  # type: ignore[misc]
    """uvicorn's gunicorn worker; its HTTP protocol bounds what a client can hold (http_guard)."""

    def load_wsgi(self) -> None:
        super().load_wsgi()  # builds the app, which configures logging: what follows is logged
        self.config.http = guarded_http_protocol(current_settings())


def app() -> FalconOllamaApp:
    """The app factory gunicorn calls in each worker."""
    return app_from_settings(current_settings())
