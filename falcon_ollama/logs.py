"""Logging: JSON lines on stdout by default (plain text for development), optionally also to a file.

One place decides the format and level for the CLI, uvicorn and gunicorn workers. Fields given to a log
call through ``extra={"fields": {...}}`` become top-level keys of the JSON line (the per-request summary
uses this). Nothing here ever logs a request body unless ``FALCON_OLLAMA_LOG_BODIES`` asks for it.
Every line passes the process's :class:`~falcon_ollama.redaction.Redactor` last, whatever put a key in it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from falcon_ollama.redaction import BELT_ONLY, Redactor

_SECRET_KEYS = frozenset({"api_key", "apikey", "authorization", "key", "token", "password", "secret"})


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record: time, level, logger, message, and the record's ``fields``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The last second formatted and its text (one tuple: handlers on other threads may share us).
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        payload: dict[str, Any] = {
            "time": f"{cached[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for reading in a terminal.

    Control characters in the message and fields are escaped (a ``%0a`` in a path or a newline in a model
    name must not start a forged line, as with the JSON format); traceback lines are indented, so a line
    that starts at column 0 is always the start of a genuine record."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        text = (
            f"{self.formatTime(record)} {record.levelname} {record.name}: {escape_controls(record.message)}"
        )
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(
                f"{escape_controls(str(k))}={escape_controls(str(v))}" for k, v in fields.items()
            )
        if record.exc_info:
            text += "\n" + _indented(self.formatException(record.exc_info))
        if record.stack_info:
            text += "\n" + _indented(self.formatStack(record.stack_info))
        return text


# C0 and C1 controls, DEL and the Unicode line/paragraph separators: whatever a terminal or a log shipper
# might take for the end of a line.
_CONTROLS = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``), on one line."""
    if text.isprintable():
        return text
    return text.translate(_CONTROLS)


def _indented(block: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in block.splitlines())


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner``, then redacts the whole line (message, fields and traceback alike)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.text(self._inner.format(record))


def configure_logging(
    level: str, fmt: str = "json", file: str | None = None, redactor: Redactor = BELT_ONLY
) -> None:
    """Install our handler(s) on the root logger (idempotent: a second call replaces them)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_falcon_ollama", False)]:
        root.removeHandler(handler)
        handler.close()
    inner: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter = RedactingFormatter(inner, redactor)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if file:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._falcon_ollama = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    lean_log_records()
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    logging.getLogger("falcon_ollama").setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def lean_log_records() -> None:
    """Stop collecting what no line of ours prints: a record's thread, process and asyncio task names and
    its caller's file and line (both formatters print time, level, logger, message and fields). Process-wide
    (the ``logging`` module's own switches); it takes a few µs off every line, the per-request summary
    included (docs/performance.md)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    setattr(logging, "logAsyncioTasks", False)  # noqa: B010 (Python >= 3.12: taskName; absent before)
    logging._srcfile = None  # no findCaller: funcName and lineno are never printed


def gunicorn_log_config(level: str, fmt: str = "json", file: str | None = None) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its own lines (master and workers, ``gunicorn.error``) in our format, on
    stdout and the log file like ours, so one process tree writes one format. The root logger gets no handler
    here: each worker's ``configure_logging`` adds ours (a handler here too would print every line twice)."""
    formatter = f"{__name__}.{JsonFormatter.__name__ if fmt == 'json' else TextFormatter.__name__}"
    handlers: dict[str, dict[str, Any]] = {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "falcon_ollama",
            "stream": "ext://sys.stdout",
        }
    }
    if file:
        handlers["file"] = {
            "class": "logging.FileHandler",
            "formatter": "falcon_ollama",
            "filename": file,
            "encoding": "utf-8",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"falcon_ollama": {"()": formatter}},
        "handlers": handlers,
        "root": {"level": level.upper(), "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": list(handlers), "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with secret-looking fields masked (for opt-in body logging)."""
    if isinstance(value, dict):
        return {k: "[redacted]" if k.lower() in _SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


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
