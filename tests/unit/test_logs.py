"""The JSON log formatter's time field (its second is formatted once and kept), and what a configured
process collects for each line."""

from __future__ import annotations

import io
import logging
import time

import orjson
import pytest

from falcon_ollama.logs import JsonFormatter, configure_logging


def test_each_line_has_its_own_time_across_seconds() -> None:
    formatter = JsonFormatter()
    for created in (1733390000.998, 1733390000.999, 1733390001.0, 1733390001.5, 1733390000.25, 86399.9):
        record = logging.makeLogRecord({"name": "falcon_ollama.request", "msg": "x", "levelname": "INFO"})
        record.created, record.msecs = created, (created - int(created)) * 1000
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(record.msecs):03d}Z"
        assert orjson.loads(formatter.format(record))["time"] == expected


def test_a_configured_process_collects_no_thread_process_or_caller_and_prints_every_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """configure_logging turns off what no formatter of ours prints (a few µs a line); the line is whole."""
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    configure_logging("info", "json")
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    root = logging.getLogger()
    keep = Keep()
    root.addHandler(keep)
    try:
        logging.getLogger("falcon_ollama.request").info(
            "POST /api/chat %d", 200, extra={"fields": {"status": 200, "model": "m"}}
        )
    finally:
        root.removeHandler(keep)
    line = orjson.loads(out.getvalue().splitlines()[-1])
    assert line["message"] == "POST /api/chat 200" and line["level"] == "info"
    assert line["logger"] == "falcon_ollama.request" and line["status"] == 200 and line["model"] == "m"
    (record,) = kept
    assert record.threadName is None and record.processName is None and record.process is None
    assert record.funcName == "(unknown function)" and record.lineno == 0
