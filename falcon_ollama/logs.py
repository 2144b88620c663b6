"""Logging set-up: one place decides the format and level for the CLI, uvicorn and gunicorn workers."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Plain ``time level logger: message`` lines on stderr at ``level`` (idempotent)."""
    root = logging.getLogger()
    numeric = getattr(logging, level.upper(), logging.INFO)
    if not any(getattr(h, "_falcon_ollama", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._falcon_ollama = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(numeric)
    logging.getLogger("falcon_ollama").setLevel(numeric)


class WarnOnce:
    """Logs a warning the first time a key is seen in this worker, never again.

    Used for Ollama options with no OpenAI equivalent: one line per option name and worker tells the operator
    what is being dropped without a line per request."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()

    def __call__(self, key: str, message: str) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        self._logger.warning(message)
