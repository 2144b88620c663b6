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
